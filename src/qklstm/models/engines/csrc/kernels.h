// Loops the fused op is built from: a register-blocked GEMM on ATen's vector types, tanh, the product-form
// kernel (one-layer paper map) forward and backward, and the LSTM update's backward. Included by
// product_lstm.cpp only (one translation unit), so everything here is internal to it.
#pragma once
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>

namespace {

using at::vec::Vectorized;

constexpr int64_t G = 4;  // the LSTM's gates, in the order of GATES in qklstm.py: input, forget, output, candidate


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

}  // namespace
