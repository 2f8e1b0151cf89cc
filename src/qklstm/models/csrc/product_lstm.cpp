// The product-form QK-LSTM over a whole sequence, forward and backward through time, on the CPU.
//
// The same computation as forward_torch / backward_torch in ../fused.py (read those first; the
// shapes and the saved tensors are documented there). Inside the time loop the matrices are small
// (B x H times H x Q, N x H per gate), so their products are one register-blocked loop (`gemm`) on
// ATen's portable vectors (at::vec::Vectorized: AVX2 where the build enables it, plain C++ elsewhere),
// and tanh, cos and sin are the same vectorised SLEEF functions ATen's kernels call, inline: one time
// step makes no ATen call and no allocation. Gradients that are sums over time are accumulated inside
// the loop where that saves a buffer of the sequence's size, else taken by one ATen matmul after it.
#include <ATen/cpu/vec/vec.h>
#include <torch/extension.h>

#include <algorithm>
#include <vector>

using at::Tensor;
using at::vec::Vectorized;

namespace {

template <typename T>
inline Vectorized<T> load(const T* p, int64_t n) {
  return n == Vectorized<T>::size() ? Vectorized<T>::loadu(p) : Vectorized<T>::loadu(p, n);
}

template <typename T>
inline void store(const Vectorized<T>& v, T* p, int64_t n) {
  if (n == Vectorized<T>::size())
    v.store(p);
  else
    v.store(p, n);
}

// y[r, c] (+)= sum_k x[r * xr + k * xk] W[k * ldw + c] for RB rows r, k < K, c < C (y row stride ldy).
// Each row's columns go two vectors at a time, held in registers over k.
template <typename T, int RB>
inline void gemm_rows(const T* x, int64_t xr, int64_t xk, const T* W, int64_t ldw, T* y, int64_t ldy, int64_t K,
                      int64_t C, bool acc) {
  using V = Vectorized<T>;
  constexpr int64_t S = V::size();
  for (int64_t c0 = 0; c0 < C; c0 += 2 * S) {
    const int64_t n0 = std::min(S, C - c0), n1 = std::min(S, C - c0 - n0);
    V a0[RB], a1[RB];
    for (int i = 0; i < RB; ++i) {
      a0[i] = acc ? load(y + i * ldy + c0, n0) : V(T(0));
      a1[i] = acc && n1 > 0 ? load(y + i * ldy + c0 + S, n1) : V(T(0));
    }
    for (int64_t k = 0; k < K; ++k) {
      const T* wk = W + k * ldw + c0;
      const V w0 = load(wk, n0), w1 = n1 > 0 ? load(wk + S, n1) : V(T(0));
      for (int i = 0; i < RB; ++i) {
        const V xb(x[i * xr + k * xk]);
        a0[i] = at::vec::fmadd(xb, w0, a0[i]);
        a1[i] = at::vec::fmadd(xb, w1, a1[i]);
      }
    }
    for (int i = 0; i < RB; ++i) {
      store(a0[i], y + i * ldy + c0, n0);
      if (n1 > 0) store(a1[i], y + i * ldy + c0 + S, n1);
    }
  }
}

// y (R x C) (+)= x (R x K) W (K x C); x's element (r, k) at x[r * xr + k * xk] (a transposed x is a stride).
template <typename T>
void gemm(const T* x, int64_t xr, int64_t xk, const T* W, int64_t ldw, T* y, int64_t ldy, int64_t R, int64_t K,
          int64_t C, bool acc) {
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) gemm_rows<T, 4>(x + r * xr, xr, xk, W, ldw, y + r * ldy, ldy, K, C, acc);
  for (; r < R; ++r) gemm_rows<T, 1>(x + r * xr, xr, xk, W, ldw, y + r * ldy, ldy, K, C, acc);
}

// sum_i a[i] * b[i] with eight partial sums (vectorised; the order of a BLAS dot, not of a serial loop)
template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  T s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

// the angles a = b + z w of one step, z = bp + Wx x_t + Wh h the projection of [h; x_t] (Wx (Q, D), Wh (Q, H)
// row-major), with z kept, and their cosines and sines
template <typename T>
void angles(const T* x, const T* h, const T* Wx, const T* Wh, const T* bp, const T* w, const T* b, T* z, T* co, T* si,
            int64_t B, int64_t Q, int64_t D, int64_t H, T* a) {
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t q = 0; q < Q; ++q) {
      const int64_t j = bb * Q + q;
      z[j] = bp[q] + dot(x + bb * D, Wx + q * D, D) + dot(h + bb * H, Wh + q * H, H);
      a[j] = b[q] + z[j] * w[q];
    }
  using V = Vectorized<T>;
  constexpr int64_t S = V::size();
  for (int64_t i = 0; i < B * Q; i += S) {
    const int64_t n = std::min(S, B * Q - i);
    const V x = load(a + i, n);
    store(x.cos(), co + i, n);
    store(x.sin(), si + i, n);
  }
}

// tanh of a vector: SLEEF's (1 ulp) in double; in float the rational approximation Eigen and XLA use (a
// degree 13/6 minimax fit on [-7.9, 7.9], within 6 ulp of tanh), several times faster than SLEEF's
template <typename T>
inline Vectorized<T> tanh_v(const Vectorized<T>& a) {
  return a.tanh();
}

template <>
inline Vectorized<float> tanh_v(const Vectorized<float>& a) {
  using V = Vectorized<float>;
  const V x = at::vec::clamp(a, V(-7.90531110763549805f), V(7.90531110763549805f)), x2 = x * x;
  V p = at::vec::fmadd(x2, V(-2.76076847742355e-16f), V(2.00018790482477e-13f));
  p = at::vec::fmadd(x2, p, V(-8.60467152213735e-11f));
  p = at::vec::fmadd(x2, p, V(5.12229709037114e-08f));
  p = at::vec::fmadd(x2, p, V(1.48572235717979e-05f));
  p = at::vec::fmadd(x2, p, V(6.37261928875436e-04f));
  p = at::vec::fmadd(x2, p, V(4.89352455891786e-03f));
  V q = at::vec::fmadd(x2, V(1.19825839466702e-06f), V(1.18534705686654e-04f));
  q = at::vec::fmadd(x2, q, V(2.26843463243900e-03f));
  q = at::vec::fmadd(x2, q, V(4.89352518554385e-03f));
  return V::blendv(x * p / q, a, a.abs() < V(0.0004f));  // tanh(a) = a to float precision below 4e-4
}

template <typename T>
inline T hsum(const Vectorized<T>& v) {
  T buf[Vectorized<T>::size()];
  v.store(buf);
  T s = 0;
  for (int64_t i = 0; i < Vectorized<T>::size(); ++i) s += buf[i];
  return s;
}

// f[q, m] = (1 + b(a_q) . RB[q, :, m]) / 2 for one batch row, b(a) = (cos^2 a, sin a, -sin a cos a)
template <typename T>
inline void factors(const T* co, const T* si, const T* RB, T* f, int64_t Q, int64_t M) {
  for (int64_t q = 0; q < Q; ++q) {
    const T* r0 = RB + q * 3 * M;
    const T *r1 = r0 + M, *r2 = r1 + M;
    const T c = co[q], s = si[q], p0 = c * c, p1 = s, p2 = -s * c;
    T* fq = f + q * M;
    _Pragma("omp simd")
    for (int64_t m = 0; m < M; ++m) fq[m] = (T(1) + (p0 * r0[m] + p1 * r1[m] + p2 * r2[m])) * T(0.5);
  }
}

// k[m] = prod_q f[q, m]: one batch row's kernel values with the M references (f: scratch of Q M values)
template <typename T>
void kernel_row(const T* co, const T* si, const T* RB, T* f, T* k, int64_t Q, int64_t M) {
  using V = Vectorized<T>;
  constexpr int64_t S = V::size();
  factors(co, si, RB, f, Q, M);
  for (int64_t m = 0; m < M; m += S) {
    const int64_t n = std::min(S, M - m);
    V p = load(f + m, n);
    for (int64_t q = 1; q < Q; ++q) p = p * load(f + q * M + m, n);
    store(p, k + m, n);
  }
}

// One step of the LSTM update's backward for B rows of H: from dh (+ the step's output gradient) and dc, the
// gates' pre-activation gradients dp (G, B, H) and dc for the step before; a row whose mask is off (mk[b]
// false) passes dh, dc through (dh by `keep`, since the caller adds the kernel path's part to dh).
template <typename T>
void lstm_backward(const T* act, const T* tc, const T* c_prev, const T* dout, const bool* mk, T* dh, T* dc, T* keep,
                   T* dp, int64_t B, int64_t H) {
  using V = Vectorized<T>;
  constexpr int64_t S = V::size();
  const int64_t BH = B * H;
  const V one(T(1));
  for (int64_t bb = 0; bb < B; ++bb) {
    const int64_t r = bb * H;
    if (mk != nullptr && !mk[bb]) {
      std::copy(dh + r, dh + r + H, keep + r);
      for (int64_t g = 0; g < 4; ++g) std::fill(dp + g * BH + r, dp + g * BH + r + H, T(0));
      continue;
    }
    std::fill(keep + r, keep + r + H, T(0));
    for (int64_t j = r; j < r + H; j += S) {
      const int64_t n = std::min(S, r + H - j);
      const V i = load(act + j, n), f = load(act + BH + j, n), o = load(act + 2 * BH + j, n),
              g = load(act + 3 * BH + j, n), tcj = load(tc + j, n);
      const V dhj = load(dout + j, n) + load(dh + j, n);
      const V dcj = at::vec::fmadd(dhj * o, one - tcj * tcj, load(dc + j, n));
      store(dcj * g * i * (one - i), dp + j, n);
      store(dcj * load(c_prev + j, n) * f * (one - f), dp + BH + j, n);
      store(dhj * tcj * o * (one - o), dp + 2 * BH + j, n);
      store(dcj * i * (one - g * g), dp + 3 * BH + j, n);
      store(dcj * f, dc + j, n);
    }
  }
}

// The kernel values' backward for one batch row: from dk (M) / 2 in pp[0:M], dd[q, m] = pp[m] prod_{q' != q}
// f[q', m] by prefix (pp) and suffix products (a factor may be 0, so never a quotient); at once
// dphi[q, i] = sum_m dd[q, m] RB[q, i, m] into d3 (Q, 3) and dRB[q, i, m] += phi[q, i] dd[q, m].
// f and pp are scratch of Q M and (Q + 1) M values.
template <typename T>
void kernel_backward(const T* co, const T* si, const T* RB, T* f, T* pp, T* dRB, T* d3, int64_t Q, int64_t M) {
  using V = Vectorized<T>;
  constexpr int64_t S = V::size();
  factors(co, si, RB, f, Q, M);
  for (int64_t q = 1; q < Q; ++q)
    for (int64_t m = 0; m < M; m += S) {
      const int64_t n = std::min(S, M - m);
      store(load(pp + (q - 1) * M + m, n) * load(f + (q - 1) * M + m, n), pp + q * M + m, n);
    }
  T* suf = pp + Q * M;
  std::fill(suf, suf + M, T(1));
  for (int64_t q = Q - 1; q >= 0; --q) {
    const T *fq = f + q * M, *before = pp + q * M, *r0 = RB + q * 3 * M, *r1 = r0 + M, *r2 = r1 + M;
    T *g0 = dRB + q * 3 * M, *g1 = g0 + M, *g2 = g1 + M;
    const T c = co[q], s = si[q];
    const V p0(c * c), p1(s), p2(-s * c);
    V s0(T(0)), s1(T(0)), s2(T(0));
    for (int64_t m = 0; m < M; m += S) {
      const int64_t n = std::min(S, M - m);
      const V v = load(before + m, n) * load(suf + m, n);  // zero past n: adds nothing to the sums
      s0 = at::vec::fmadd(v, load(r0 + m, n), s0);
      s1 = at::vec::fmadd(v, load(r1 + m, n), s1);
      s2 = at::vec::fmadd(v, load(r2 + m, n), s2);
      store(at::vec::fmadd(p0, v, load(g0 + m, n)), g0 + m, n);
      store(at::vec::fmadd(p1, v, load(g1 + m, n)), g1 + m, n);
      store(at::vec::fmadd(p2, v, load(g2 + m, n)), g2 + m, n);
      store(load(suf + m, n) * load(fq + m, n), suf + m, n);
    }
    d3[q * 3 + 0] = hsum(s0), d3[q * 3 + 1] = hsum(s1), d3[q * 3 + 2] = hsum(s2);
  }
}

// The references' Bloch vectors RB (Q, 3, M) from their angles a = refs w + b (refs (M, Q), the paper map's
// first layer): b(a) = (cos^2 a, sin a, -sin a cos a)
template <typename T>
void reference_bloch(const T* refs, const T* w, const T* b, T* RB, int64_t M, int64_t Q) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t q = 0; q < Q; ++q) {
      const T a = refs[m * Q + q] * w[q] + b[q], c = std::cos(a), s = std::sin(a);
      RB[(q * 3 + 0) * M + m] = c * c, RB[(q * 3 + 1) * M + m] = s, RB[(q * 3 + 2) * M + m] = -s * c;
    }
}

// Its chain rule: from dRB, the references' gradient drefs (M, Q), and the angle map's (added to dw, db)
template <typename T>
void reference_bloch_backward(const T* refs, const T* w, const T* b, const T* dRB, T* drefs, T* dw, T* db, int64_t M,
                              int64_t Q) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t q = 0; q < Q; ++q) {
      const T a = refs[m * Q + q] * w[q] + b[q], c = std::cos(a), s = std::sin(a);
      const T da = T(-2) * c * s * dRB[(q * 3 + 0) * M + m] + c * dRB[(q * 3 + 1) * M + m] -
                   (c * c - s * s) * dRB[(q * 3 + 2) * M + m];
      drefs[m * Q + q] = da * w[q];
      dw[q] += da * refs[m * Q + q];
      db[q] += da;
    }
}

constexpr int64_t G = 4;  // the LSTM's gates, in the order of GATES in qklstm.py: input, forget, output, candidate

// ------------------------------------------------------------------------------------ full-state maps
// The paper map with L >= 2 layers: H on every qubit, then per layer RZ(a_lq) RY(a_lq) on each qubit q and the
// entangler's CNOTs. Its states do not factorise, so they are simulated: 2^Q complex amplitudes (real and
// imaginary parts apart), qubit 0 the most significant bit, as in qklstm.quantum.circuit. The kernel is
// k = |<phi(r)|phi(z)>|^2; its backward runs the adjoint method gate by gate.
struct Map {
  int64_t Q, L, S;            // qubits, layers, amplitudes
  std::vector<int64_t> perm;  // the entangler: its CNOTs send basis state j to perm[j]
  Map(int64_t Q_, int64_t L_, int64_t entangler) : Q(Q_), L(L_), S(int64_t(1) << Q_), perm(S) {
    std::vector<std::pair<int64_t, int64_t>> cnots;  // (control, target); entangler 0: none, 1: chain, 2: ring
    if (entangler >= 1)
      for (int64_t k = 0; k + 1 < Q; ++k) cnots.push_back({k, k + 1});
    if (entangler == 2 && Q > 2) cnots.push_back({Q - 1, 0});
    for (int64_t j = 0; j < S; ++j) {
      int64_t v = j;
      for (auto [c, t] : cnots)
        if (v >> (Q - 1 - c) & 1) v ^= int64_t(1) << (Q - 1 - t);
      perm[j] = v;
    }
  }
};

// Full-state simulation runs Vectorized<T>::size() inputs at once, one per vector lane (a "lane block"): a
// block's state is (S, LB) with the lane innermost, so every gate is whole-vector arithmetic whatever qubit
// it acts on. Per-lane angles come as cos(a / 2), sin(a / 2) arrays cs (L Q, 2, LB).
template <typename T>
inline void rz_ry(T* re, T* im, int64_t S, int64_t bit, const T* cs) {
  using V = Vectorized<T>;
  constexpr int64_t LB = V::size();
  const V c = V::loadu(cs), s = V::loadu(cs + LB);
  const int64_t st = int64_t(1) << bit;
  for (int64_t base = 0; base < S; base += 2 * st)
    for (int64_t j = base; j < base + st; ++j) {
      T *pr = re + j * LB, *pi = im + j * LB, *qr = re + (j + st) * LB, *qi = im + (j + st) * LB;
      const V ar = V::loadu(pr), ai = V::loadu(pi), br = V::loadu(qr), bi = V::loadu(qi);
      // RZ: v0 (c - i s), v1 (c + i s); then RY: [[c, -s], [s, c]]
      const V r0 = c * ar + s * ai, i0 = c * ai - s * ar, r1 = c * br - s * bi, i1 = c * bi + s * br;
      (c * r0 - s * r1).store(pr), (c * i0 - s * i1).store(pi), (s * r0 + c * r1).store(qr), (s * i0 + c * i1).store(qi);
    }
}

// |phi(a)> of a lane block into (re, im). tmp: 2 S LB values.
template <typename T>
void simulate(const Map& mp, const T* cs, T* re, T* im, T* tmp) {
  constexpr int64_t LB = Vectorized<T>::size();
  const int64_t n = mp.S * LB;
  std::fill(re, re + n, T(1) / std::sqrt(T(mp.S))), std::fill(im, im + n, T(0));
  for (int64_t l = 0; l < mp.L; ++l) {
    for (int64_t q = 0; q < mp.Q; ++q) rz_ry(re, im, mp.S, mp.Q - 1 - q, cs + (l * mp.Q + q) * 2 * LB);
    std::copy(re, re + n, tmp), std::copy(im, im + n, tmp + n);
    for (int64_t j = 0; j < mp.S; ++j) {
      std::copy(tmp + j * LB, tmp + (j + 1) * LB, re + mp.perm[j] * LB);
      std::copy(tmp + n + j * LB, tmp + n + (j + 1) * LB, im + mp.perm[j] * LB);
    }
  }
}

// x[j] = x'[perm[j]] for the S lane vectors of x (the entangler undone: its CNOTs are a permutation)
template <typename T>
inline void unpermute(const Map& mp, T* x, T* tmp) {
  constexpr int64_t LB = Vectorized<T>::size();
  std::copy(x, x + mp.S * LB, tmp);
  for (int64_t j = 0; j < mp.S; ++j) std::copy(tmp + mp.perm[j] * LB, tmp + (mp.perm[j] + 1) * LB, x + j * LB);
}

// The adjoint pass of a lane block: from the circuit's output state (vr, vi) and lam = dL/dRe phi + i dL/dIm phi
// there, the angles' gradients da (L Q, LB). Gate by gate backwards, the state is uncomputed (the gates are
// unitary) and lam pulled back; both are overwritten.
template <typename T>
void adjoint(const Map& mp, const T* cs, T* vr, T* vi, T* lr, T* li, T* da, T* tmp) {
  using V = Vectorized<T>;
  constexpr int64_t LB = V::size();
  const int64_t S = mp.S;
  const V half(T(0.5));
  for (int64_t l = mp.L - 1; l >= 0; --l) {
    unpermute(mp, vr, tmp), unpermute(mp, vi, tmp), unpermute(mp, lr, tmp), unpermute(mp, li, tmp);
    for (int64_t q = mp.Q - 1; q >= 0; --q) {
      const T* csq = cs + (l * mp.Q + q) * 2 * LB;
      const V c = V::loadu(csq), s = V::loadu(csq + LB);
      const int64_t st = int64_t(1) << (mp.Q - 1 - q);
      V g(T(0));
      for (int64_t base = 0; base < S; base += 2 * st)
        for (int64_t j = base; j < base + st; ++j) {
          const int64_t j0 = j * LB, j1 = (j + st) * LB;
          const V p0r = V::loadu(vr + j0), p0i = V::loadu(vi + j0), p1r = V::loadu(vr + j1), p1i = V::loadu(vi + j1);
          // RZ's output o = RY^T psi_out, and psi_in = RZ^dagger o: (c + i s), (c - i s)
          const V o0r = c * p0r + s * p1r, o0i = c * p0i + s * p1i, o1r = c * p1r - s * p0r, o1i = c * p1i - s * p0i;
          (c * o0r - s * o0i).store(vr + j0), (c * o0i + s * o0r).store(vi + j0);
          (c * o1r + s * o1i).store(vr + j1), (c * o1i - s * o1r).store(vi + j1);
          const V l0r = V::loadu(lr + j0), l0i = V::loadu(li + j0), l1r = V::loadu(lr + j1), l1i = V::loadu(li + j1);
          // RY: d/da = [[-s, -c], [c, -s]] / 2, paired with lam (Re <lam, .>)
          g = g + half * (l0r * (-s * o0r - c * o1r) + l0i * (-s * o0i - c * o1i) + l1r * (c * o0r - s * o1r) +
                          l1i * (c * o0i - s * o1i));
          const V m0r = c * l0r + s * l1r, m0i = c * l0i + s * l1i;  // RY^T lam
          const V m1r = c * l1r - s * l0r, m1i = c * l1i - s * l0i;
          // RZ: d o0/da = -i/2 o0, d o1/da = i/2 o1
          g = g + half * ((m0r * o0i - m0i * o0r) - (m1r * o1i - m1i * o1r));
          (c * m0r - s * m0i).store(lr + j0), (c * m0i + s * m0r).store(li + j0);  // RZ^dagger
          (c * m1r + s * m1i).store(lr + j1), (c * m1i - s * m1r).store(li + j1);
        }
      g.store(da + (l * mp.Q + q) * LB);
    }
  }
}

// cos and sin of half the angles a_lq = w_lq v_q + b_lq for the lanes of a block (rows of v, stride Q; n of
// them, the rest of the block gets angle 0), as cs (L Q, 2, LB)
template <typename T>
void lane_angles(const T* v, int64_t n, const T* w, const T* b, int64_t L, int64_t Q, T* cs) {
  using V = Vectorized<T>;
  constexpr int64_t LB = V::size();
  T a[LB];
  for (int64_t l = 0; l < L; ++l)
    for (int64_t q = 0; q < Q; ++q) {
      for (int64_t i = 0; i < LB; ++i) a[i] = i < n ? (w[l * Q + q] * v[i * Q + q] + b[l * Q + q]) / 2 : T(0);
      const V x = V::loadu(a);
      x.cos().store(cs + (l * Q + q) * 2 * LB), x.sin().store(cs + (l * Q + q) * 2 * LB + LB);
    }
}

// the references' states: Phi (M, S) real and imaginary parts, and their transposes (S, M) with -Im
template <typename T>
void reference_states(const Map& mp, const T* refs, const T* w, const T* b, int64_t M, T* Pr, T* Pi, T* PrT, T* PiT,
                      T* nPiT, T* scratch) {
  constexpr int64_t LB = Vectorized<T>::size();
  const int64_t S = mp.S;
  T *cs = scratch, *re = cs + mp.L * mp.Q * 2 * LB, *im = re + S * LB, *tmp = im + S * LB;
  for (int64_t m0 = 0; m0 < M; m0 += LB) {
    const int64_t n = std::min(LB, M - m0);
    lane_angles(refs + m0 * mp.Q, n, w, b, mp.L, mp.Q, cs);
    simulate(mp, cs, re, im, tmp);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < S; ++j) {
        const int64_t m = m0 + i;
        Pr[m * S + j] = PrT[j * M + m] = re[j * LB + i];
        Pi[m * S + j] = PiT[j * M + m] = im[j * LB + i];
        nPiT[j * M + m] = -im[j * LB + i];
      }
  }
}

// overlaps s = <phi_m|psi> (sr, si: n rows of M) of a lane block's states (re, im)
template <typename T>
void overlaps(const T* re, const T* im, int64_t n, const T* PrT, const T* PiT, const T* nPiT, T* sr, T* si, int64_t S,
              int64_t M) {
  constexpr int64_t LB = Vectorized<T>::size();
  gemm(re, int64_t(1), LB, PrT, M, sr, M, n, S, M, false);
  gemm(im, int64_t(1), LB, PiT, M, sr, M, n, S, M, true);
  gemm(im, int64_t(1), LB, PrT, M, si, M, n, S, M, false);
  gemm(re, int64_t(1), LB, nPiT, M, si, M, n, S, M, true);
}

}  // namespace

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
  T *RB = nullptr, *Pr = nullptr, *Pi = nullptr, *PrT = nullptr, *PiT = nullptr, *nPiT = nullptr;
  References(const T* refs, const T* w, const T* b, int64_t M_, int64_t L_, int64_t Q_, int64_t entangler)
      : M(M_), L(L_), Q(Q_), S(L_ == 1 ? 0 : int64_t(1) << Q_), map(L_ == 1 ? 0 : Q_, L_, entangler) {  // one layer: no map
    if (L == 1) {
      buf.resize(Q * 3 * M);
      RB = buf.data();
      reference_bloch(refs, w, b, RB, M, Q);
    } else {
      constexpr int64_t LB = Vectorized<T>::size();
      buf.resize(5 * M * S + L * Q * 2 * LB + 4 * S * LB);
      Pr = buf.data(), Pi = Pr + M * S, PrT = Pi + M * S, PiT = PrT + M * S, nPiT = PiT + M * S;
      reference_states(map, refs, w, b, M, Pr, Pi, PrT, PiT, nPiT, nPiT + M * S);
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
  // saved for the backward (see fused.py), indexed by time; without `save` one step's scratch stands in for each
  std::vector<Tensor> saved;
  if (save)
    for (auto shape : std::vector<std::vector<int64_t>>{
             {T, B, Q}, {T, B, Q}, {T, B, Q}, {T, B, M}, {T, G, B, H}, {T, B, H}, {T, B, H}, {T, B, H}})
      saved.push_back(at::empty(shape, opt));
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
          overlaps(psi, psi + S * LB, n, ref.PrT, ref.PiT, ref.nPiT, sr + b0 * M, sim + b0 * M, S, M);
        }
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
    const int64_t SL = S * LB;
    std::vector<scalar_t> work(G * BH + G * B * N + (2 * Q + 1) * M + Q * B * 3 + 2 * SL + 4 * LB * M + 2 * SL + 2 * SL + 2 * M * S + 2 * SL + LQ * 2 * LB + LQ * LB);
    scalar_t *dp = work.data(), *dkp = dp + G * BH, *fp = dkp + G * B * N, *pp = fp + Q * M, *dpp = pp + (Q + 1) * M,
             *psi = dpp + Q * B * 3, *sov = psi + 2 * SL, *cf = sov + 2 * LB * M,
             *lrow = cf + 2 * LB * M, *lam = lrow + 2 * SL, *GT = lam + 2 * SL, *tmp = GT + 2 * M * S,
             *ang = tmp + 2 * SL, *dang = ang + LQ * 2 * LB;
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
        // per lane block: the states again; the overlaps s; with c = 2 dk s,
        // lam = dk/dpsi = c Phi and dPhi^T += psi^T conj(c), summed over the steps from the first one here;
        // then the adjoint pass
        scalar_t *lr = lam, *li = lam + SL, *GTr = GT, *GTi = GT + M * S, *pr = psi, *pim = psi + SL;
        for (int64_t b0 = 0; b0 < B; b0 += LB) {
          const int64_t n = std::min(LB, B - b0);
          lane_angles(z + b0 * Q, n, wp, bp, L, Q, ang);
          simulate(ref.map, ang, pr, pim, tmp);
          scalar_t *sr = sov, *sim = sov + LB * M, *cr = cf, *ci = cf + LB * M, *lrr = lrow, *lri = lrow + SL;
          overlaps(pr, pim, n, ref.PrT, ref.PiT, ref.nPiT, sr, sim, S, M);
          for (int64_t i = 0; i < n; ++i)
            for (int64_t g = 0; g < G; ++g)
              for (int64_t k = 0; k < N; ++k) {
                const int64_t m = g * N + k;
                const scalar_t dk2 = scalar_t(2) * dkp[(g * B + b0 + i) * N + k];
                cr[i * M + m] = dk2 * sr[i * M + m], ci[i * M + m] = dk2 * sim[i * M + m];
              }
          // lam rows (n, S): lr = cr Pr - ci Pi, li = cr Pi + ci Pr; dPhi^T (S, M) += pr^T cr + pi^T ci (real),
          // pi^T cr - pr^T ci (imaginary)
          const bool acc = step != T - 1 || b0 > 0;
          gemm(cr, M, int64_t(1), ref.Pr, S, lrr, S, n, M, S, false);
          gemm(cr, M, int64_t(1), ref.Pi, S, lri, S, n, M, S, false);
          gemm(ci, M, int64_t(1), ref.Pr, S, lri, S, n, M, S, true);
          gemm(pr, LB, int64_t(1), cr, M, GTr, M, S, n, M, acc);
          gemm(pim, LB, int64_t(1), ci, M, GTr, M, S, n, M, true);
          gemm(pim, LB, int64_t(1), cr, M, GTi, M, S, n, M, acc);
          for (int64_t i = 0; i < n * M; ++i) ci[i] = -ci[i];
          gemm(pr, LB, int64_t(1), ci, M, GTi, M, S, n, M, true);
          gemm(ci, M, int64_t(1), ref.Pi, S, lrr, S, n, M, S, true);
          std::fill(lam, lam + 2 * SL, scalar_t(0));  // into the lane layout (S, LB)
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < S; ++j) lr[j * LB + i] = lrr[i * S + j], li[j * LB + i] = lri[i * S + j];
          adjoint(ref.map, ang, pr, pim, lr, li, dang, tmp);
          for (int64_t i = 0; i < n; ++i) {
            const int64_t bb = b0 + i;
            for (int64_t q = 0; q < Q; ++q) {
              scalar_t dzq = 0;
              for (int64_t l = 0; l < L; ++l) {
                const scalar_t da = dang[(l * Q + q) * LB + i];
                dzq += wp[l * Q + q] * da;
                dwp[l * Q + q] += da * z[bb * Q + q];
                dbq[l * Q + q] += da;
              }
              dz[bb * Q + q] = dzq;
            }
          }
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
        for (int64_t i = 0; i < n; ++i) {
          const int64_t m = m0 + i;
          for (int64_t q = 0; q < Q; ++q) {
            scalar_t d = 0;
            for (int64_t l = 0; l < L; ++l) {
              const scalar_t da = dang[(l * Q + q) * LB + i];
              d += wp[l * Q + q] * da;
              dwp[l * Q + q] += da * refs_p[m * Q + q];
              dbq[l * Q + q] += da;
            }
            drp[m * Q + q] = d;
          }
        }
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
