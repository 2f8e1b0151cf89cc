// The QK-LSTM with the paper map over a whole sequence, forward and backward through time, on the CPU:
// the op of ../fused.py (read forward_torch / backward_torch there first; the shapes and the saved tensors
// are documented there). One layer: the closed product form (kernels.h); two or more: state-vector
// simulation (full_state.h). Inside the time loop the matrices are small, so their products are one
// register-blocked loop (`gemm`) on ATen's portable vectors (at::vec::Vectorized: AVX2 where the build
// enables it, plain C++ elsewhere), with tanh, cos and sin inline: a time step makes no allocation and, at
// small sizes, no ATen call. Gradients that are sums over time are accumulated inside the loop where that
// saves a buffer of the sequence's size, else taken by one ATen matmul after it.
#include <ATen/cpu/vec/vec.h>
#include <torch/extension.h>

#include "full_state.h"
#include "kernels.h"

#include <algorithm>
#include <vector>

using at::Tensor;

// The constants every step shares, from the op's arguments, in the loops' layout: Wx (Q, D) and Wh (Q, H) the two
// halves of the projection and the readout A (4, N, H), bias (4, H) with the sigmoid gates' halved:
// sigmoid(x) = (1 + tanh(x / 2)) / 2 makes every gate one tanh. A shared readout (Gr = 1) serves all four gates.
template <typename T>
void constants(const T* Wp, const T* At, const T* bias, int64_t Gr, int64_t Q, int64_t D, int64_t H, int64_t N, T* Wx,
               T* Wh, T* A, T* bias_g) {
  for (int64_t q = 0; q < Q; ++q) {
    std::copy(Wp + q * (H + D), Wp + q * (H + D) + H, Wh + q * H);
    std::copy(Wp + q * (H + D) + H, Wp + (q + 1) * (H + D), Wx + q * D);
  }
  for (int64_t g = 0; g < G; ++g) {
    const T scale = g < 3 ? T(0.5) : T(1);
    const T* Ag = At + (Gr == 1 ? 0 : g) * H * N;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < H; ++j) A[(g * N + n) * H + j] = scale * Ag[j * N + n];
    for (int64_t j = 0; j < H; ++j) bias_g[g * H + j] = scale * bias[(Gr == 1 ? 0 : g) * H + j];
  }
}

// The reference side of the kernel, shared by forward and backward: the references' Bloch vectors RB (Q, 3, M)
// for one layer, else their states and the map
template <typename T>
struct References {
  int64_t M, L, Q, S;
  Map map;
  std::vector<T> buf;
  T* RB = nullptr;
  PhiForms<T> phi{nullptr, 0, 0};
  References(const T* refs, const T* w, const T* b, int64_t M_, int64_t L_, int64_t Q_, int64_t entangler)
      // one layer needs no map (and no 2^Q permutation)
      : M(M_), L(L_), Q(Q_), S(L_ == 1 ? 0 : int64_t(1) << Q_), map(L_ == 1 ? 0 : Q_, L_, entangler) {
    if (L == 1) {
      buf.resize(Q * 3 * M);
      RB = buf.data();
      reference_bloch(refs, w, b, RB, M, Q);
    } else {
      constexpr int64_t LB = Vectorized<T>::size();
      buf.resize(6 * M * S + L * Q * 2 * LB + 4 * S * LB);
      phi = PhiForms<T>(buf.data(), M, S);
      reference_states(map, refs, w, b, M, phi, buf.data() + 6 * M * S);
    }
  }
};

std::vector<Tensor> forward(Tensor x, Tensor h0, Tensor c0, Tensor Wp, Tensor bp, Tensor w, Tensor b, Tensor refs,
                            Tensor At, Tensor bias, Tensor mask, int64_t entangler, bool reverse, bool save) {
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), Q = Wp.size(0), H = At.size(1), N = At.size(2);
  const int64_t M = G * N, BH = B * H, BQ = B * Q, BM = B * M, Gr = At.size(0), L = w.dim() == 2 ? w.size(0) : 1;
  const int64_t S = L == 1 ? 0 : int64_t(1) << Q;
  const bool masked = mask.numel() > 0;
  auto opt = x.options();
  Tensor out = at::empty({T, B, H}, opt), h = h0.clone(), c = c0.clone();
  // saved for the backward (contract.py: Saved), indexed by time; without `save` one step's scratch stands in for each
  std::vector<Tensor> saved;
  if (save)
    for (auto shape : std::vector<std::vector<int64_t>>{
             {T, B, Q}, {T, B, Q}, {T, B, Q}, {T, B, M}, {T, G, B, H}, {T, B, H}, {T, B, H}, {T, B, H}})
      saved.push_back(at::empty(shape, opt));
  // full-state maps: also the overlaps (T, 2, B, M), which the backward reads instead of taking them again. (Their
  // final states too would spare the backward simulate(), but writing them costs the forward more: 8 qubits,
  // T = 30, B = 64, float32, measured: forward +0.6 ms, backward -0.25 ms; at 12 qubits +36 ms and -4 ms.)
  const bool keep_overlaps = save && L > 1;
  if (keep_overlaps) saved.push_back(at::empty({T, 2, B, M}, opt));
  // Many values: ATen's tanh (MKL's in double, several times faster per value than SLEEF's) over all gates at
  // once; a few: tanh_v inline, where a call would cost more than the arithmetic. Float always inline.
  const bool aten_tanh = x.scalar_type() == at::kDouble && G * BH >= 512;
  const bool* mk = masked ? mask.data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "product_lstm_forward", [&] {
    using V = Vectorized<scalar_t>;
    constexpr int64_t VS = V::size();
    const scalar_t *wp = w.data_ptr<scalar_t>(), *bq = b.data_ptr<scalar_t>(), *xp = x.data_ptr<scalar_t>(),
                   *bpp = bp.data_ptr<scalar_t>();
    References<scalar_t> ref(refs.data_ptr<scalar_t>(), wp, bq, M, L, Q, entangler);
    // one buffer: the constants, then one step's scratch, then (without save) the stand-ins for the saved
    constexpr int64_t LB = V::size();  // a lane block of full-state simulation
    std::vector<scalar_t> work(Q * (D + H) + G * N * H + G * H + BQ + Q * M + 2 * BH + 2 * S * LB + 2 * BM +
                               L * Q * 2 * LB + 2 * S * LB + (save ? 0 : 3 * BQ + BM + G * BH + BH));
    scalar_t *Wx = work.data(), *Wh = Wx + Q * D, *A = Wh + Q * H, *bias_g = A + G * N * H, *ap = bias_g + G * H,
             *fp = ap + BQ, *cnp = fp + Q * M, *hnp = cnp + BH, *psi = hnp + BH, *sov = psi + 2 * S * LB,
             *ang = sov + 2 * BM, *tmp = ang + L * Q * 2 * LB, *spare = tmp + 2 * S * LB;
    constants(Wp.data_ptr<scalar_t>(), At.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(), Gr, Q, D, H, N, Wx, Wh, A,
              bias_g);
    scalar_t *hp = h.data_ptr<scalar_t>(), *cp = c.data_ptr<scalar_t>(), *outp = out.data_ptr<scalar_t>();
    scalar_t* base[6];  // cos, sin, z, k, gates, tanh c: the saved tensors, or one step of scratch
    const int64_t per_step[6] = {BQ, BQ, BQ, BM, G * BH, BH};
    for (int i = 0; i < 6; ++i) {
      base[i] = save ? saved[i].data_ptr<scalar_t>() : spare;
      if (!save) spare += per_step[i];
    }
    // a masked step computes into scratch and keeps the state where the mask is off
    scalar_t *c_dst = masked ? cnp : cp, *h_dst = masked ? hnp : hp;
    const V half_v(scalar_t(0.5));
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = reverse ? T - 1 - step : step, ts = save ? t : 0;
      scalar_t *co = base[0] + ts * BQ, *si = base[1] + ts * BQ, *z = base[2] + ts * BQ, *kp = base[3] + ts * BM,
               *pre = base[4] + ts * G * BH, *tcp = base[5] + ts * BH;
      if (save) {  // the state entering the step
        std::copy(hp, hp + BH, saved[6].data_ptr<scalar_t>() + t * BH);
        std::copy(cp, cp + BH, saved[7].data_ptr<scalar_t>() + t * BH);
      }
      angles(xp + t * B * D, hp, Wx, Wh, bpp, wp, bq, z, co, si, B, Q, D, H, ap);
      if (L == 1) {
        for (int64_t bb = 0; bb < B; ++bb) kernel_row(co + bb * Q, si + bb * Q, ref.RB, fp, kp + bb * M, Q, M);
      } else {
        scalar_t *sr = sov, *sim = sov + BM;
        for (int64_t b0 = 0; b0 < B; b0 += LB) {
          const int64_t n = std::min(LB, B - b0);
          lane_angles(z + b0 * Q, n, wp, bq, L, Q, ang);
          simulate(ref.map, ang, psi, psi + S * LB, tmp);
          overlaps(psi, psi + S * LB, n, ref.phi, sr + b0 * M, sim + b0 * M, S, M, tmp);
        }
        if (keep_overlaps) std::copy(sov, sov + 2 * BM, saved[8].data_ptr<scalar_t>() + t * 2 * BM);
        for (int64_t i = 0; i < BM; ++i) kp[i] = sr[i] * sr[i] + sim[i] * sim[i];
      }
      for (int64_t g = 0; g < G; ++g) {  // pre[g] = bias[g] + k[:, gN:(g+1)N] A[g]
        scalar_t* pg = pre + g * BH;
        for (int64_t bb = 0; bb < B; ++bb) std::copy(bias_g + g * H, bias_g + (g + 1) * H, pg + bb * H);
        gemm(kp + g * N, M, int64_t(1), A + g * N * H, H, pg, H, B, N, H, true);
      }
      // the gates activated in place (the backward reads them), then the LSTM update
      if (aten_tanh) {
        Tensor pre_t = at::from_blob(pre, {G * BH}, opt);
        at::tanh_out(pre_t, pre_t);
      }
      for (int64_t j = 0; j < BH; j += VS) {
        const int64_t n = std::min(VS, BH - j);
        V ti = load(pre + j, n), tf = load(pre + BH + j, n), to = load(pre + 2 * BH + j, n),
          g = load(pre + 3 * BH + j, n);
        if (!aten_tanh) ti = tanh_v(ti), tf = tanh_v(tf), to = tanh_v(to), g = tanh_v(g);
        const V i = at::vec::fmadd(half_v, ti, half_v), f = at::vec::fmadd(half_v, tf, half_v),
                o = at::vec::fmadd(half_v, to, half_v);
        const V cn = at::vec::fmadd(f, load(cp + j, n), i * g);
        store(i, pre + j, n), store(f, pre + BH + j, n), store(o, pre + 2 * BH + j, n), store(g, pre + 3 * BH + j, n);
        store(cn, c_dst + j, n);
        if (!aten_tanh) {
          const V tc = tanh_v(cn);
          store(tc, tcp + j, n), store(o * tc, h_dst + j, n);
        }
      }
      if (aten_tanh) {
        Tensor tc_t = at::from_blob(tcp, {BH}, opt);
        at::tanh_out(tc_t, at::from_blob(c_dst, {BH}, opt));
        const scalar_t* og = pre + 2 * BH;
        _Pragma("omp simd")
        for (int64_t j = 0; j < BH; ++j) h_dst[j] = og[j] * tcp[j];
      }
      scalar_t* op = outp + t * BH;
      if (!masked) {
        std::copy(hp, hp + BH, op);
      } else {
        for (int64_t bb = 0; bb < B; ++bb) {
          const int64_t j0 = bb * H, j1 = j0 + H;
          if (mk[t * B + bb]) {
            std::copy(hnp + j0, hnp + j1, op + j0), std::copy(hnp + j0, hnp + j1, hp + j0);
            std::copy(cnp + j0, cnp + j1, cp + j0);
          } else {
            std::fill(op + j0, op + j1, scalar_t(0));
          }
        }
      }
    }
  });
  std::vector<Tensor> res = {out, h, c};
  res.insert(res.end(), saved.begin(), saved.end());
  return res;
}

std::vector<Tensor> backward(Tensor dout, Tensor dhn, Tensor dcn, Tensor x, Tensor Wp, Tensor w, Tensor b,
                             Tensor refs, Tensor At, Tensor mask, int64_t entangler, bool reverse, bool need_dx,
                             std::vector<Tensor> saved) {
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), Q = Wp.size(0), H = At.size(1), N = At.size(2);
  const int64_t M = G * N, BH = B * H, BQ = B * Q, BM = B * M, L = w.dim() == 2 ? w.size(0) : 1;
  const int64_t S = L == 1 ? 0 : int64_t(1) << Q, LQ = L * Q;
  const bool masked = mask.numel() > 0;
  Tensor cos_s = saved[0], sin_s = saved[1], z_s = saved[2], k_s = saved[3], act_s = saved[4], tc_s = saved[5],
         h_s = saved[6], c_s = saved[7];
  auto opt = x.options();
  Tensor dh = dhn.clone(), dc = dcn.clone(), keep = at::zeros({B, H}, opt), dz_all = at::empty({T, B, Q}, opt);
  // sums over time, accumulated in the loop
  Tensor dRB = at::zeros({Q, 3, M}, opt), dA = at::zeros({G, N, H}, opt), dbias = at::zeros({G, 1, H}, opt);
  Tensor dw = at::zeros_like(w), db = at::zeros_like(b), drefs = at::empty({M, Q}, opt);
  Tensor Wh = Wp.narrow(1, 0, H).contiguous(), Atg = At.expand({G, H, N}).contiguous();
  const bool* mk = masked ? mask.data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "product_lstm_backward", [&] {
    const scalar_t *wp = w.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>(), *Whp = Wh.data_ptr<scalar_t>(),
                   *Atp = Atg.data_ptr<scalar_t>(), *act_p = act_s.data_ptr<scalar_t>(),
                   *tc_p = tc_s.data_ptr<scalar_t>(), *c_p = c_s.data_ptr<scalar_t>(),
                   *dout_p = dout.data_ptr<scalar_t>(), *k_p = k_s.data_ptr<scalar_t>(),
                   *cos_p = cos_s.data_ptr<scalar_t>(), *sin_p = sin_s.data_ptr<scalar_t>(),
                   *z_p = z_s.data_ptr<scalar_t>(), *refs_p = refs.data_ptr<scalar_t>();
    scalar_t *dhp = dh.data_ptr<scalar_t>(), *dcp = dc.data_ptr<scalar_t>(), *kp = keep.data_ptr<scalar_t>(),
             *dz_p = dz_all.data_ptr<scalar_t>(), *dRBp = dRB.data_ptr<scalar_t>(), *dAp = dA.data_ptr<scalar_t>(),
             *dbp = dbias.data_ptr<scalar_t>(), *dwp = dw.data_ptr<scalar_t>(), *dbq = db.data_ptr<scalar_t>();
    References<scalar_t> ref(refs_p, wp, bp, M, L, Q, entangler);
    constexpr int64_t LB = Vectorized<scalar_t>::size();  // a lane block of full-state simulation
    TORCH_CHECK(L == 1 || saved.size() > 8, "product_lstm backward: a full-state map's forward saves its overlaps");
    const scalar_t* overlaps_p = L == 1 ? nullptr : saved[8].data_ptr<scalar_t>();
    const int64_t SL = S * LB;
    // the pointers below, in order: dp, dk, f, prefix/suffix, dphi; psi, s, c, lam rows, lam, dPhi^T, tmp, angles, da
    std::vector<scalar_t> work(G * BH + G * B * N + (2 * Q + 1) * M + Q * B * 3 + 2 * SL + 2 * LB * M + 2 * SL +
                               2 * SL + 2 * M * S + 2 * SL + LQ * 2 * LB + LQ * LB + LB * M);
    scalar_t *dp = work.data(), *dkp = dp + G * BH, *fp = dkp + G * B * N, *pp = fp + Q * M, *dpp = pp + (Q + 1) * M,
             *psi = dpp + Q * B * 3, *cf = psi + 2 * SL,
             *lrow = cf + 2 * LB * M, *lam = lrow + 2 * SL, *GT = lam + 2 * SL, *tmp = GT + 2 * M * S,
             *ang = tmp + 2 * SL, *dang = ang + LQ * 2 * LB, *csum = dang + LQ * LB;
    for (int64_t step = T - 1; step >= 0; --step) {
      const int64_t t = reverse ? T - 1 - step : step;
      lstm_backward(act_p + t * G * BH, tc_p + t * BH, c_p + t * BH, dout_p + t * BH, masked ? mk + t * B : nullptr,
                    dhp, dcp, kp, dp, B, H);
      const scalar_t* kt = k_p + t * BM;
      for (int64_t g = 0; g < G; ++g) {
        const scalar_t* dpg = dp + g * BH;
        gemm(dpg, H, int64_t(1), Atp + g * H * N, N, dkp + g * B * N, N, B, H, N, false);  // dk[g] = dpre[g] A[g]^T
        gemm(kt + g * N, int64_t(1), M, dpg, H, dAp + g * N * H, H, N, B, H, true);       // dA[g] += k_g^T dpre[g]
        scalar_t* dbg = dbp + g * H;
        for (int64_t bb = 0; bb < B; ++bb) {
          _Pragma("omp simd")
          for (int64_t j = 0; j < H; ++j) dbg[j] += dpg[bb * H + j];
        }
      }
      const scalar_t *co = cos_p + t * BQ, *si = sin_p + t * BQ, *z = z_p + t * BQ;
      scalar_t* dz = dz_p + t * BQ;
      if (L == 1) {
        // dd[q, m] = dk[m] / 2 * prod_{q' != q} f[q', m] per batch row, by prefix and suffix products (a factor
        // may be 0); at once dphi[q, i] = sum_m dd[q, m] RB[q, i, m] and dRB[q, i, m] += phi[q, i] dd[q, m]
        for (int64_t bb = 0; bb < B; ++bb) {
          for (int64_t g = 0; g < G; ++g)
            for (int64_t n = 0; n < N; ++n) pp[g * N + n] = scalar_t(0.5) * dkp[(g * B + bb) * N + n];
          kernel_backward(co + bb * Q, si + bb * Q, ref.RB, fp, pp, dRBp, dpp + bb * Q * 3, Q, M);
        }
        for (int64_t bb = 0; bb < B; ++bb) {
          for (int64_t q = 0; q < Q; ++q) {
            const scalar_t c = co[bb * Q + q], s = si[bb * Q + q];
            const scalar_t* d3 = dpp + (bb * Q + q) * 3;
            const scalar_t da = scalar_t(-2) * c * s * d3[0] + c * d3[1] - (c * c - s * s) * d3[2];
            dz[bb * Q + q] = da * wp[q];
            dwp[q] += da * z[bb * Q + q];
            dbq[q] += da;
          }
        }
      } else {
        // per lane block: the states again and the forward's overlaps s; with c = 2 dk s,
        // lam = dk/dpsi = c Phi and dPhi^T += psi^T conj(c), summed over the steps from the first one here;
        // then the adjoint pass
        scalar_t *lr = lam, *li = lam + SL, *GTr = GT, *GTi = GT + M * S, *pr = psi, *pim = psi + SL;
        for (int64_t b0 = 0; b0 < B; b0 += LB) {
          const int64_t n = std::min(LB, B - b0);
          lane_angles(z + b0 * Q, n, wp, bp, L, Q, ang);
          const scalar_t *sr = overlaps_p + t * 2 * BM + b0 * M, *sim = sr + BM;
          scalar_t *cr = cf, *ci = cf + LB * M, *lrr = lrow, *lri = lrow + SL;
          simulate(ref.map, ang, pr, pim, tmp);
          for (int64_t i = 0; i < n; ++i)
            for (int64_t g = 0; g < G; ++g)
              for (int64_t k = 0; k < N; ++k) {
                const int64_t m = g * N + k;
                const scalar_t dk2 = scalar_t(2) * dkp[(g * B + b0 + i) * N + k];
                cr[i * M + m] = dk2 * sr[i * M + m], ci[i * M + m] = dk2 * sim[i * M + m];
              }
          // lam rows (n, S) = c Phi; dPhi^T (S, M) += pr^T cr + pi^T ci (real), pi^T cr - pr^T ci (imaginary)
          const bool acc = step != T - 1 || b0 > 0;
          combine(cr, ci, n, ref.phi, lrr, lri, S, M, csum);
          gemm(pr, LB, int64_t(1), cr, M, GTr, M, S, n, M, acc);
          gemm(pim, LB, int64_t(1), ci, M, GTr, M, S, n, M, true);
          gemm(pim, LB, int64_t(1), cr, M, GTi, M, S, n, M, acc);
          for (int64_t i = 0; i < n * M; ++i) ci[i] = -ci[i];
          gemm(pr, LB, int64_t(1), ci, M, GTi, M, S, n, M, true);
          to_lanes(lrr, n, S, S, SL, lr, li);
          adjoint(ref.map, ang, pr, pim, lr, li, dang, tmp);
          for (int64_t i = 0; i < n; ++i)
            angle_map_backward(dang, i, z + (b0 + i) * Q, wp, L, Q, dz + (b0 + i) * Q, dwp, dbq);
        }
      }
      std::copy(kp, kp + BH, dhp);
      gemm(dz, Q, int64_t(1), Whp, H, dhp, H, B, Q, H, true);  // dh = keep + dz Wh
    }
    // the references' side of the angle map
    scalar_t* drp = drefs.data_ptr<scalar_t>();
    if (L == 1) {
      reference_bloch_backward(refs_p, wp, bp, dRBp, drp, dwp, dbq, M, Q);
    } else {
      scalar_t *pr = psi, *pim = psi + SL, *lr = lam, *li = lam + SL, *GTr = GT, *GTi = GT + M * S;
      for (int64_t m0 = 0; m0 < M; m0 += LB) {
        const int64_t n = std::min(LB, M - m0);
        lane_angles(refs_p + m0 * Q, n, wp, bp, L, Q, ang);
        simulate(ref.map, ang, pr, pim, tmp);
        std::fill(lam, lam + 2 * SL, scalar_t(0));
        for (int64_t j = 0; j < S; ++j)
          for (int64_t i = 0; i < n; ++i) lr[j * LB + i] = GTr[j * M + m0 + i], li[j * LB + i] = GTi[j * M + m0 + i];
        adjoint(ref.map, ang, pr, pim, lr, li, dang, tmp);
        for (int64_t i = 0; i < n; ++i)
          angle_map_backward(dang, i, refs_p + (m0 + i) * Q, wp, L, Q, drp + (m0 + i) * Q, dwp, dbq);
      }
    }
  });
  // the sums over the sequence: the projection's gradients as dz^T [h | x] (the form MKL runs fastest here)
  Tensor dU = dz_all.view({T * B, Q}), dUt = dU.t();
  Tensor dWp = at::cat({at::mm(dUt, h_s.view({T * B, H})), at::mm(dUt, x.view({T * B, D}))}, 1);
  Tensor dx = need_dx ? at::mm(dU, Wp.narrow(1, H, D)).view({T, B, D}) : at::empty({0}, opt);
  Tensor dAt = dA.transpose(1, 2), dbias_g = dbias.view({G, H});
  if (At.size(0) == 1) dAt = dAt.sum(0, true), dbias_g = dbias_g.sum(0, true);  // a shared readout
  return {dx, dh, dc, dWp, dU.sum(0), dw, db, drefs, dAt.contiguous(), dbias_g};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "QK-LSTM with the paper map over a sequence");
  m.def("backward", &backward, "its backward through time");
}
