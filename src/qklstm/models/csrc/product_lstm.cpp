// The product-form QK-LSTM over a whole sequence, forward and backward through time, on the CPU.
//
// The same computation as forward_torch / backward_torch in ../fused.py (read those first; the
// shapes and the saved tensors are documented there). Inside the time loop the matrices are small
// (B x H times H x Q, N x H per gate), so their products are plain loops whose inner index runs over
// contiguous memory (the compiler vectorises them); tanh and cos/sin are ATen's vectorised calls. One
// time step costs four ATen calls instead of ~30 dispatched ops. The sums over time for the
// parameters' gradients are one ATen matmul each, after the loop.
#include <torch/extension.h>

#include <vector>

using at::Tensor;

namespace {

template <typename scalar_t>
void fidelities(const scalar_t* cs, const scalar_t* sn, const scalar_t* RB, scalar_t* f, scalar_t* k, int64_t B,
                int64_t Q, int64_t M) {
  // f[q, b, m] = (1 + b(a_bq) . RB[q, :, m]) / 2, b(a) = (cos^2 a, sin a, -sin a cos a); k[b, m] = prod_q f
  for (int64_t i = 0; i < B * M; ++i) k[i] = scalar_t(1);
  for (int64_t q = 0; q < Q; ++q) {
    const scalar_t* r0 = RB + (q * 3 + 0) * M;
    const scalar_t* r1 = RB + (q * 3 + 1) * M;
    const scalar_t* r2 = RB + (q * 3 + 2) * M;
    for (int64_t b = 0; b < B; ++b) {
      const scalar_t c = cs[b * Q + q], s = sn[b * Q + q];
      const scalar_t p0 = c * c, p1 = s, p2 = -s * c;
      scalar_t* fq = f + (q * B + b) * M;
      scalar_t* kb = k + b * M;
      for (int64_t m = 0; m < M; ++m) {
        const scalar_t v = (scalar_t(1) + (p0 * r0[m] + p1 * r1[m] + p2 * r2[m])) * scalar_t(0.5);
        fq[m] = v;
        kb[m] *= v;
      }
    }
  }
}

// y[r, c] += sum_k x[r * ldx + k] * W[k * ldw + c], for r < R, k < K, c < C (y row stride ldy).
// Columns go in blocks of 16 held in registers over k (a plain loop would store and reload y per k).
template <typename scalar_t>
inline void gemm_acc(const scalar_t* x, int64_t ldx, const scalar_t* W, int64_t ldw, scalar_t* y, int64_t ldy,
                     int64_t R, int64_t K, int64_t C) {
  constexpr int64_t CB = 16;
  for (int64_t r = 0; r < R; ++r) {
    scalar_t* yr = y + r * ldy;
    const scalar_t* xr = x + r * ldx;
    int64_t c0 = 0;
    for (; c0 + CB <= C; c0 += CB) {
      scalar_t acc[CB];
      for (int64_t c = 0; c < CB; ++c) acc[c] = yr[c0 + c];
      for (int64_t k = 0; k < K; ++k) {
        const scalar_t xk = xr[k];
        const scalar_t* wk = W + k * ldw + c0;
        for (int64_t c = 0; c < CB; ++c) acc[c] += xk * wk[c];
      }
      for (int64_t c = 0; c < CB; ++c) yr[c0 + c] = acc[c];
    }
    for (int64_t k = 0; k < K && c0 < C; ++k) {
      const scalar_t xk = xr[k];
      for (int64_t c = c0; c < C; ++c) yr[c] += xk * W[k * ldw + c];
    }
  }
}

// sum_i a[i] * b[i] with eight partial sums (vectorised; the order of a BLAS dot, not of a serial loop)
template <typename scalar_t>
inline scalar_t dot(const scalar_t* a, const scalar_t* b, int64_t n) {
  scalar_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  scalar_t s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

// cos and sin of n angles: ATen's vectorised calls for many, scalar calls for a few (no call overhead)
template <typename scalar_t>
inline void cos_sin(const Tensor& a, Tensor& co, Tensor& si) {
  const int64_t n = a.numel();
  if (n >= 64) {
    at::cos_out(co, a);
    at::sin_out(si, a);
    return;
  }
  const scalar_t* ap = a.data_ptr<scalar_t>();
  scalar_t *cp = co.data_ptr<scalar_t>(), *sp = si.data_ptr<scalar_t>();
  for (int64_t i = 0; i < n; ++i) cp[i] = std::cos(ap[i]), sp[i] = std::sin(ap[i]);
}

}  // namespace

std::vector<Tensor> forward(Tensor U, Tensor h0, Tensor c0, Tensor WhT, Tensor w, Tensor b, Tensor RB, Tensor A,
                            Tensor bias, Tensor mask, bool save) {
  const int64_t T = U.size(0), B = U.size(1), Q = U.size(2), G = A.size(0), N = A.size(1), H = A.size(2);
  const int64_t M = G * N, BH = B * H, BQ = B * Q;
  const bool masked = mask.numel() > 0;
  auto opt = U.options();
  Tensor out = at::empty({T, B, H}, opt);
  Tensor h = h0.clone(), c = c0.clone();
  Tensor cos_s, sin_s, z_s, fac_s, k_s, act_s, tc_s, h_s, c_s;
  if (save) {
    cos_s = at::empty({T, B, Q}, opt), sin_s = at::empty({T, B, Q}, opt), z_s = at::empty({T, B, Q}, opt);
    fac_s = at::empty({T, Q, B, M}, opt), k_s = at::empty({T, B, M}, opt);
    act_s = at::empty({T, G, B, H}, opt), tc_s = at::empty({T, B, H}, opt);
    h_s = at::empty({T + 1, B, H}, opt), c_s = at::empty({T + 1, B, H}, opt);
    h_s[0].copy_(h0), c_s[0].copy_(c0);
  }
  // scratch of one step, and the views the ATen calls take (made once, not per step)
  Tensor z = at::empty({B, Q}, opt), a = at::empty({B, Q}, opt), co = at::empty({B, Q}, opt),
         si = at::empty({B, Q}, opt), f = at::empty({Q, B, M}, opt), k = at::empty({B, M}, opt),
         pre = at::empty({G, B, H}, opt), act = at::empty({G, B, H}, opt), cn = at::empty({B, H}, opt),
         tc = at::empty({B, H}, opt);
  // sigmoid(x) = (1 + tanh(x / 2)) / 2: with the sigmoid gates' readout halved, one tanh call activates all gates
  Tensor half = at::ones({G, 1, 1}, opt);
  half.narrow(0, 0, 3).fill_(0.5);
  Tensor A_half = (A * half).contiguous(), bias_half = (bias * half).contiguous(), Wh = WhT.t().contiguous();
  const bool* mk = masked ? mask.data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(U.scalar_type(), "product_lstm_forward", [&] {
    const scalar_t *Up = U.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>();
    scalar_t *zp = z.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(), *cop = co.data_ptr<scalar_t>(),
             *sip = si.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *ig = act.data_ptr<scalar_t>(),
             *hp = h.data_ptr<scalar_t>(), *cp = c.data_ptr<scalar_t>(), *cnp = cn.data_ptr<scalar_t>(),
             *tcp = tc.data_ptr<scalar_t>();
    const scalar_t *fg = ig + BH, *og = ig + 2 * BH, *gg = ig + 3 * BH;
    const scalar_t *whp = Wh.data_ptr<scalar_t>(), *Ahp = A_half.data_ptr<scalar_t>(),
                   *bhp = bias_half.data_ptr<scalar_t>();
    scalar_t* prep = pre.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t bb = 0; bb < B; ++bb) {  // z = U_t + h Wh^T, a = b + z w
        for (int64_t q = 0; q < Q; ++q) {
          const int64_t j = bb * Q + q;
          zp[j] = Up[t * BQ + j] + dot(hp + bb * H, whp + q * H, H);
          ap[j] = bp[q] + zp[j] * wp[q];
        }
      }
      cos_sin<scalar_t>(a, co, si);
      scalar_t* fp = save ? fac_s.data_ptr<scalar_t>() + t * Q * B * M : f.data_ptr<scalar_t>();
      fidelities<scalar_t>(cop, sip, RB.data_ptr<scalar_t>(), fp, kp, B, Q, M);
      for (int64_t g = 0; g < G; ++g) {  // pre[g] = bias[g] + k[:, gN:(g+1)N] A[g] (halved for the sigmoid gates)
        scalar_t* pg = prep + g * BH;
        for (int64_t bb = 0; bb < B; ++bb) std::copy(bhp + g * H, bhp + (g + 1) * H, pg + bb * H);
        gemm_acc(kp + g * N, M, Ahp + g * N * H, H, pg, H, B, N, H);
      }
      at::tanh_out(act, pre);
      for (int64_t i = 0; i < 3 * BH; ++i) ig[i] = scalar_t(0.5) + scalar_t(0.5) * ig[i];
      for (int64_t i = 0; i < BH; ++i) cnp[i] = fg[i] * cp[i] + ig[i] * gg[i];
      at::tanh_out(tc, cn);
      scalar_t* op = out.data_ptr<scalar_t>() + t * BH;
      for (int64_t bb = 0; bb < B; ++bb) {
        const bool on = !masked || mk[t * B + bb];
        _Pragma("omp simd")
        for (int64_t j = bb * H; j < (bb + 1) * H; ++j) {
          const scalar_t hn = og[j] * tcp[j];
          op[j] = on ? hn : scalar_t(0);
          if (on) hp[j] = hn, cp[j] = cnp[j];
        }
      }
      if (save) {
        std::copy(zp, zp + BQ, z_s.data_ptr<scalar_t>() + t * BQ);
        std::copy(cop, cop + BQ, cos_s.data_ptr<scalar_t>() + t * BQ);
        std::copy(sip, sip + BQ, sin_s.data_ptr<scalar_t>() + t * BQ);
        std::copy(kp, kp + B * M, k_s.data_ptr<scalar_t>() + t * B * M);
        std::copy(ig, ig + G * BH, act_s.data_ptr<scalar_t>() + t * G * BH);
        std::copy(tcp, tcp + BH, tc_s.data_ptr<scalar_t>() + t * BH);
        std::copy(hp, hp + BH, h_s.data_ptr<scalar_t>() + (t + 1) * BH);
        std::copy(cp, cp + BH, c_s.data_ptr<scalar_t>() + (t + 1) * BH);
      }
    }
  });
  std::vector<Tensor> res = {out, h, c};
  if (save) res.insert(res.end(), {cos_s, sin_s, z_s, fac_s, k_s, act_s, tc_s, h_s, c_s});
  return res;
}

std::vector<Tensor> backward(Tensor dout, Tensor dhn, Tensor dcn, Tensor U, Tensor WhT, Tensor w, Tensor RB, Tensor A,
                             Tensor mask, std::vector<Tensor> saved) {
  const int64_t T = U.size(0), B = U.size(1), Q = U.size(2), G = A.size(0), N = A.size(1), H = A.size(2);
  const int64_t M = G * N, BH = B * H, BQ = B * Q, BM = B * M;
  const bool masked = mask.numel() > 0;
  Tensor cos_s = saved[0], sin_s = saved[1], z_s = saved[2], fac_s = saved[3], k_s = saved[4], act_s = saved[5],
         tc_s = saved[6], h_s = saved[7], c_s = saved[8];
  auto opt = U.options();
  Tensor dh = dhn.clone(), dc = dcn.clone(), keep = at::zeros({B, H}, opt);
  // gradients per step, laid out (gate or qubit, t, ...) so the sums over time below are plain matmuls
  Tensor d_ang = at::empty({T, B, Q}, opt), d_pre = at::empty({G, T, B, H}, opt), d_dots = at::empty({Q, T, B, M}, opt);
  Tensor dpre = at::empty({G, B, H}, opt), dk = at::empty({G, B, N}, opt),
         dphi = at::empty({Q, B, 3}, opt), dz = at::empty({B, Q}, opt), prefix = at::empty({Q + 1, M}, opt);
  Tensor Wh = WhT.t().contiguous(), At = A.transpose(1, 2).contiguous();
  const bool* mk = masked ? mask.data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(U.scalar_type(), "product_lstm_backward", [&] {
    const scalar_t* wp = w.data_ptr<scalar_t>();
    scalar_t *dhp = dh.data_ptr<scalar_t>(), *dcp = dc.data_ptr<scalar_t>(), *kp = keep.data_ptr<scalar_t>(),
             *dp = dpre.data_ptr<scalar_t>(), *pp = prefix.data_ptr<scalar_t>(), *dzp = dz.data_ptr<scalar_t>(),
             *dpp = dphi.data_ptr<scalar_t>(), *d_pre_p = d_pre.data_ptr<scalar_t>(),
             *d_dots_p = d_dots.data_ptr<scalar_t>(), *d_ang_p = d_ang.data_ptr<scalar_t>();
    const scalar_t *dkp = dk.data_ptr<scalar_t>(), *Whp = Wh.data_ptr<scalar_t>(), *RBp = RB.data_ptr<scalar_t>(),
                   *act_p = act_s.data_ptr<scalar_t>(), *tc_p = tc_s.data_ptr<scalar_t>(),
                   *c_p = c_s.data_ptr<scalar_t>(), *dout_p = dout.data_ptr<scalar_t>(),
                   *fac_p = fac_s.data_ptr<scalar_t>(), *cos_p = cos_s.data_ptr<scalar_t>(),
                   *sin_p = sin_s.data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* ig = act_p + t * G * BH;
      const scalar_t *fg = ig + BH, *og = ig + 2 * BH, *gg = ig + 3 * BH;
      const scalar_t* tcp = tc_p + t * BH;
      const scalar_t* cprev = c_p + t * BH;
      const scalar_t* dop = dout_p + t * BH;
      for (int64_t bb = 0; bb < B; ++bb) {
        const bool on = !masked || mk[t * B + bb];
        _Pragma("omp simd")
        for (int64_t j = bb * H; j < (bb + 1) * H; ++j) {
          // a masked step passes (dh, dc) straight to the step before it
          const scalar_t dhj = on ? dop[j] + dhp[j] : scalar_t(0);
          scalar_t dcj = on ? dcp[j] : scalar_t(0);
          kp[j] = on ? scalar_t(0) : dhp[j];
          const scalar_t keep_c = on ? scalar_t(0) : dcp[j];
          const scalar_t i = ig[j], f = fg[j], o = og[j], g = gg[j], tc = tcp[j];
          dcj = dcj + dhj * o * (scalar_t(1) - tc * tc);
          dp[j] = dcj * g * i * (scalar_t(1) - i);
          dp[BH + j] = dcj * cprev[j] * f * (scalar_t(1) - f);
          dp[2 * BH + j] = dhj * tc * o * (scalar_t(1) - o);
          dp[3 * BH + j] = dcj * i * (scalar_t(1) - g * g);
          dcp[j] = dcj * f + keep_c;
        }
      }
      for (int64_t g = 0; g < G; ++g) std::copy(dp + g * BH, dp + (g + 1) * BH, d_pre_p + (g * T + t) * BH);
      at::bmm_out(dk, dpre, At);  // dk[g] = dpre[g] A[g]^T: long dot products, where BLAS beats a loop
      // dd[q, b, m] = dk[b, m] / 2 * prod_{q' != q} f[q', b, m], by prefix and suffix products (a factor may be
      // 0), and at once dphi[q, b, i] = sum_m dd[q, b, m] RB[q, i, m] (three dot products: no GEMM shape)
      const scalar_t* fp = fac_p + t * Q * BM;
      for (int64_t bb = 0; bb < B; ++bb) {
        for (int64_t g = 0; g < G; ++g)
          for (int64_t n = 0; n < N; ++n) pp[g * N + n] = scalar_t(0.5) * dkp[(g * B + bb) * N + n];
        for (int64_t q = 1; q < Q; ++q) {
          const scalar_t* fq = fp + (q - 1) * BM + bb * M;
          for (int64_t m = 0; m < M; ++m) pp[q * M + m] = pp[(q - 1) * M + m] * fq[m];
        }
        scalar_t* suf = pp + Q * M;
        for (int64_t m = 0; m < M; ++m) suf[m] = scalar_t(1);
        for (int64_t q = Q - 1; q >= 0; --q) {
          const scalar_t* fq = fp + q * BM + bb * M;
          const scalar_t *r0 = RBp + (q * 3) * M, *r1 = r0 + M, *r2 = r1 + M;
          scalar_t* store = d_dots_p + (q * T + t) * BM + bb * M;
          const scalar_t* before = pp + q * M;
          scalar_t s0 = 0, s1 = 0, s2 = 0;
          _Pragma("omp simd reduction(+ : s0, s1, s2)")
          for (int64_t m = 0; m < M; ++m) {
            const scalar_t v = before[m] * suf[m];
            store[m] = v;
            s0 += v * r0[m];
            s1 += v * r1[m];
            s2 += v * r2[m];
            suf[m] *= fq[m];
          }
          scalar_t* d3 = dpp + (q * B + bb) * 3;
          d3[0] = s0;
          d3[1] = s1;
          d3[2] = s2;
        }
      }
      const scalar_t *co = cos_p + t * BQ, *si = sin_p + t * BQ;
      scalar_t* dap = d_ang_p + t * BQ;
      for (int64_t bb = 0; bb < B; ++bb) {
        for (int64_t q = 0; q < Q; ++q) {
          const scalar_t c = co[bb * Q + q], s = si[bb * Q + q];
          const scalar_t* d3 = dpp + (q * B + bb) * 3;
          const scalar_t da = scalar_t(-2) * c * s * d3[0] + c * d3[1] - (c * c - s * s) * d3[2];
          dap[bb * Q + q] = da;
          dzp[bb * Q + q] = da * wp[q];
        }
      }
      std::copy(kp, kp + BH, dhp);
      gemm_acc(dzp, Q, Whp, H, dhp, H, B, Q, H);  // dh = keep + dz Wh
    }
  });
  Tensor dz_all = d_ang * w;
  Tensor phi = at::stack({cos_s * cos_s, sin_s, -sin_s * cos_s}, -1).view({T * B, Q, 3});
  return {dz_all,
          dh,
          dc,
          at::mm(h_s.narrow(0, 0, T).reshape({T * B, H}).t(), dz_all.view({T * B, Q})),
          (d_ang * z_s).sum({0, 1}),
          d_ang.sum({0, 1}),
          at::bmm(phi.permute({1, 2, 0}), d_dots.view({Q, T * B, M})),
          at::bmm(k_s.view({T * B, G, N}).permute({1, 2, 0}), d_pre.view({G, T * B, H})),
          d_pre.sum({1, 2}).unsqueeze(1)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "product-form QK-LSTM over a sequence");
  m.def("backward", &backward, "its backward through time");
}
