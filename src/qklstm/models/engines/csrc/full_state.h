// Full-state paper maps (layers >= 2) for the fused op: lane-block state-vector simulation and the adjoint
// method. Included by product_lstm.cpp after kernels.h.
#pragma once
#include <utility>
#include <vector>

#include "kernels.h"

namespace {

// The paper map with L >= 2 layers: H on every qubit, then per layer RZ(a_lq) RY(a_lq) on each qubit q and the
// entangler's CNOTs. Its states do not factorise, so they are simulated: 2^Q complex amplitudes (real and
// imaginary parts apart), qubit 0 the most significant bit, as in qklstm.quantum.circuit. The kernel is
// k = |<phi(r)|phi(z)>|^2; its backward runs the adjoint method gate by gate.
// Its states serve overlaps only: the last layer's entangler, the same permutation of every state, cancels in
// <phi(r)|phi(z)> and is left out, and the chain after the first layer is built into its product state.
struct Map {
  int64_t Q, L, S;            // qubits, layers, amplitudes
  bool chain;                 // the entangler is the CNOT chain
  std::vector<int64_t> perm;  // the entangler: its CNOTs send basis state j to perm[j]
  Map(int64_t Q_, int64_t L_, int64_t entangler)
      : Q(Q_), L(L_), S(int64_t(1) << Q_), chain(entangler == 1), perm(S) {
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
      (c * r0 - s * r1).store(pr), (c * i0 - s * i1).store(pi);
      (s * r0 + c * r1).store(qr), (s * i0 + c * i1).store(qi);
    }
}

// One qubit's state after the first layer, RY(a) RZ(a) H|0>, from c = cos(a / 2), s = sin(a / 2):
// (c - i s, c + i s) / sqrt 2 rotated by RY. With first_factor_derivative, the one place that writes it down.
template <typename T>
inline void first_factor(const Vectorized<T>& c, const Vectorized<T>& s, Vectorized<T>* f) {
  using V = Vectorized<T>;
  const V h(T(1) / std::sqrt(T(2))), zero(T(0));
  const V r0 = c * h, i0 = zero - s * h, r1 = c * h, i1 = s * h;  // RZ H|0>
  f[0] = c * r0 - s * r1, f[1] = c * i0 - s * i1, f[2] = s * r0 + c * r1, f[3] = s * i0 + c * i1;  // RY
}

// d/da of first_factor: its amplitudes are ((1 + cos a - sin a) - i (1 + sin a - cos a),
// (1 + cos a + sin a) + i (sin a + cos a - 1)) / (2 sqrt 2), so d/da = (-(cos a + sin a) (1 + i),
// (cos a - sin a) (1 + i)) / (2 sqrt 2)
template <typename T>
inline void first_factor_derivative(const Vectorized<T>& c, const Vectorized<T>& s, Vectorized<T>* d) {
  using V = Vectorized<T>;
  const V k(T(0.5) / std::sqrt(T(2))), cos_a = c * c - s * s, sin_a = T(2) * c * s;
  d[0] = d[1] = V(T(0)) - k * (cos_a + sin_a), d[2] = d[3] = k * (cos_a - sin_a);
}

// The first layer's state RY(a_q) RZ(a_q) H|0> on every qubit q is a product state: built as the Kronecker
// product of the one-qubit states (qubit 0 the most significant bit), 2 S complex products instead of Q
// passes of rz_ry over S amplitudes. With the chain, the state after its CNOTs: the chain sends bit q to the
// XOR of bits 0..q, so amplitude 2k + x reads qubit q's factor at x XOR the last bit of k (as
// qklstm.quantum.gates.kron_factors' taps do).
template <typename T>
inline void product_layer(const Map& mp, const T* cs, T* re, T* im) {
  using V = Vectorized<T>;
  constexpr int64_t LB = V::size();
  V(T(1)).store(re), V(T(0)).store(im);
  for (int64_t q = 0; q < mp.Q; ++q) {
    V f[4];
    first_factor(V::loadu(cs + q * 2 * LB), V::loadu(cs + q * 2 * LB + LB), f);
    for (int64_t k = (int64_t(1) << q) - 1; k >= 0; --k) {  // amplitude k -> 2k, 2k + 1, from the top: in place
      const bool flip = mp.chain && q > 0 && (k & 1);
      const V &g0r = f[flip ? 2 : 0], &g0i = f[flip ? 3 : 1], &g1r = f[flip ? 0 : 2], &g1i = f[flip ? 1 : 3];
      const V ar = V::loadu(re + k * LB), ai = V::loadu(im + k * LB);
      (ar * g1r - ai * g1i).store(re + (2 * k + 1) * LB), (ar * g1i + ai * g1r).store(im + (2 * k + 1) * LB);
      (ar * g0r - ai * g0i).store(re + 2 * k * LB), (ar * g0i + ai * g0r).store(im + 2 * k * LB);
    }
  }
}

// |phi(a)> of a lane block, less its last entangler (see Map), into (re, im). tmp: 2 S LB values.
template <typename T>
void simulate(const Map& mp, const T* cs, T* re, T* im, T* tmp) {
  constexpr int64_t LB = Vectorized<T>::size();
  const int64_t n = mp.S * LB;
  for (int64_t l = 0; l < mp.L; ++l) {
    if (l == 0)
      product_layer(mp, cs, re, im);
    else
      for (int64_t q = 0; q < mp.Q; ++q) rz_ry(re, im, mp.S, mp.Q - 1 - q, cs + (l * mp.Q + q) * 2 * LB);
    if (l == mp.L - 1 || (l == 0 && mp.chain)) continue;
    std::copy(re, re + n, tmp), std::copy(im, im + n, tmp + n);
    for (int64_t j = 0; j < mp.S; ++j) {
      std::copy(tmp + j * LB, tmp + (j + 1) * LB, re + mp.perm[j] * LB);
      std::copy(tmp + n + j * LB, tmp + n + (j + 1) * LB, im + mp.perm[j] * LB);
    }
  }
}

// Rows of a lane block's states (input i's real parts at rows + i * stride, its imaginary ones `plane` further
// on) into the lane layout (re, im: S lane vectors each), the lanes past n zero
template <typename T>
void to_lanes(const T* rows, int64_t n, int64_t S, int64_t stride, int64_t plane, T* re, T* im) {
  constexpr int64_t LB = Vectorized<T>::size();
  std::fill(re, re + S * LB, T(0)), std::fill(im, im + S * LB, T(0));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < S; ++j) re[j * LB + i] = rows[i * stride + j], im[j * LB + i] = rows[i * stride + plane + j];
}

// x[j] = x'[perm[j]] for the S lane vectors of x (the entangler undone: its CNOTs are a permutation)
template <typename T>
inline void unpermute(const Map& mp, T* x, T* tmp) {
  constexpr int64_t LB = Vectorized<T>::size();
  std::copy(x, x + mp.S * LB, tmp);
  for (int64_t j = 0; j < mp.S; ++j) std::copy(tmp + mp.perm[j] * LB, tmp + (mp.perm[j] + 1) * LB, x + j * LB);
}

// The first layer's angles' gradients da (Q, LB), without uncomputing it: its state is the product
// P = f_0 (x) ... (x) f_{Q-1} (first_factor), so with lam pulled back through the CNOTs after it,
// dL/da_q = Re <lam, f_0 (x) .. f_q' .. (x) f_{Q-1}> = Re (lam . conj(P_q')): lam contracted with the
// conjugated factors of the qubits after q (R, from the least significant qubit up: 2 S products in all) and
// with the product state of those before (built up as product_layer does). 4 S complex products in all, where
// uncomputing the layer gate by gate takes about 10 Q S. tmp: 2 S LB values; pr, pi: S LB / 2 each.
template <typename T>
void first_layer_grads(const Map& mp, const T* cs, const T* lr, const T* li, T* pr, T* pi, T* tmp, T* da) {
  using V = Vectorized<T>;
  constexpr int64_t LB = V::size();
  const int64_t Q = mp.Q, S = mp.S;
  auto conj_factors = [&](int64_t q, V* f, V* d) {  // conj f_q, and conj f_q' where d is given
    const V c = V::loadu(cs + q * 2 * LB), s = V::loadu(cs + q * 2 * LB + LB), zero(T(0));
    first_factor(c, s, f), f[1] = zero - f[1], f[3] = zero - f[3];
    if (d) first_factor_derivative(c, s, d), d[1] = zero - d[1], d[3] = zero - d[3];
  };
  // R at level k (lam contracted over qubits k .. Q - 1: 2^k entries) from entry 2^k - 2 of (rr, ri); level Q is lam
  T *rr = tmp, *ri = tmp + S * LB;
  auto level = [&](int64_t k, bool imag) -> T* {
    return k == Q ? const_cast<T*>(imag ? li : lr) : (imag ? ri : rr) + ((int64_t(1) << k) - 2) * LB;
  };
  // sum_x u[2 j + x] f[x] for a pair (f[0], f[1], f[2], f[3]) = (f0 re, f0 im, f1 re, f1 im)
  auto pair = [&](const T* ur, const T* ui, int64_t j, const V* f, V& re, V& im) {
    const V ar = V::loadu(ur + 2 * j * LB), ai = V::loadu(ui + 2 * j * LB);
    const V br = V::loadu(ur + (2 * j + 1) * LB), bi = V::loadu(ui + (2 * j + 1) * LB);
    re = ar * f[0] - ai * f[1] + br * f[2] - bi * f[3], im = ar * f[1] + ai * f[0] + br * f[3] + bi * f[2];
  };
  for (int64_t k = Q - 1; k >= 1; --k) {
    V f[4];
    conj_factors(k, f, nullptr);
    const T *ur = level(k + 1, false), *ui = level(k + 1, true);
    T *dr = level(k, false), *di = level(k, true);
    for (int64_t j = 0; j < (int64_t(1) << k); ++j) {
      V re, im;
      pair(ur, ui, j, f, re, im);
      re.store(dr + j * LB), im.store(di + j * LB);
    }
  }
  V(T(1)).store(pr), V(T(0)).store(pi);  // conj of the product state of the qubits before q
  for (int64_t q = 0; q < Q; ++q) {
    V f[4], d[4], g(T(0));
    conj_factors(q, f, d);
    const T *ur = level(q + 1, false), *ui = level(q + 1, true);
    for (int64_t j = 0; j < (int64_t(1) << q); ++j) {
      V re, im;
      pair(ur, ui, j, d, re, im);
      g = g + (V::loadu(pr + j * LB) * re - V::loadu(pi + j * LB) * im);
    }
    g.store(da + q * LB);
    if (q + 1 == Q) break;
    for (int64_t k = (int64_t(1) << q) - 1; k >= 0; --k) {  // amplitude k -> 2k, 2k + 1, from the top: in place
      const V ar = V::loadu(pr + k * LB), ai = V::loadu(pi + k * LB);
      (ar * f[2] - ai * f[3]).store(pr + (2 * k + 1) * LB), (ar * f[3] + ai * f[2]).store(pi + (2 * k + 1) * LB);
      (ar * f[0] - ai * f[1]).store(pr + 2 * k * LB), (ar * f[1] + ai * f[0]).store(pi + 2 * k * LB);
    }
  }
}

// The adjoint pass of a lane block: from the circuit's output state (vr, vi) and lam = dL/dRe phi + i dL/dIm phi
// there, the angles' gradients da (L Q, LB). Gate by gate backwards through the layers after the first, the
// state is uncomputed (the gates are unitary) and lam pulled back; the first layer's by first_layer_grads.
// All four are overwritten.
template <typename T>
void adjoint(const Map& mp, const T* cs, T* vr, T* vi, T* lr, T* li, T* da, T* tmp) {
  using V = Vectorized<T>;
  constexpr int64_t LB = V::size();
  const int64_t S = mp.S;
  const V half(T(0.5));
  for (int64_t l = mp.L - 1; l >= 1; --l) {
    if (l < mp.L - 1)
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
  unpermute(mp, lr, tmp), unpermute(mp, li, tmp);  // the CNOTs after the first layer
  first_layer_grads(mp, cs, lr, li, vr, vi, tmp, da);
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

// The angle map a_lq = w_lq v_q + b_lq backwards for lane i of a block: dv (Q) from the angles' gradients da
// (L Q, LB), and w's and b's gradients accumulated into dw, db (L Q)
template <typename T>
void angle_map_backward(const T* da, int64_t i, const T* v, const T* w, int64_t L, int64_t Q, T* dv, T* dw, T* db) {
  constexpr int64_t LB = Vectorized<T>::size();
  for (int64_t q = 0; q < Q; ++q) {
    T d = 0;
    for (int64_t l = 0; l < L; ++l) {
      const T g = da[(l * Q + q) * LB + i];
      d += w[l * Q + q] * g;
      dw[l * Q + q] += g * v[q];
      db[l * Q + q] += g;
    }
    dv[q] = d;
  }
}

// The references' states Phi = Pr + i Pi (M of them) in the forms that the complex products below read, each
// three real GEMMs instead of four (Gauss: (x + i y)(c + i d) = c (x + y) - y (c + d) + i (c (x + y) + x (d - c))):
// rows (M, S) Pr, Pi - Pr, Pr + Pi for lam = c Phi; columns (S, M) Pr^T, Pi^T, (Pr - Pi)^T for s = Phi^H psi.
template <typename T>
struct PhiForms {
  T *Pr, *PiPr, *PrPi, *PrT, *PiT, *DT;
  PhiForms(T* buf, int64_t M, int64_t S)  // 6 M S values
      : Pr(buf), PiPr(buf + M * S), PrPi(buf + 2 * M * S), PrT(buf + 3 * M * S), PiT(buf + 4 * M * S),
        DT(buf + 5 * M * S) {}
};

// the references' states into phi's forms
template <typename T>
void reference_states(const Map& mp, const T* refs, const T* w, const T* b, int64_t M, const PhiForms<T>& phi,
                      T* scratch) {
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
        const T r = re[j * LB + i], q = im[j * LB + i];
        phi.Pr[m * S + j] = phi.PrT[j * M + m] = r, phi.PiT[j * M + m] = q;
        phi.PiPr[m * S + j] = q - r, phi.PrPi[m * S + j] = r + q, phi.DT[j * M + m] = r - q;
      }
  }
}

// overlaps s = <phi_m|psi> (sr, si: n rows of M) of a lane block's states (re, im): with
// k1 = re (Pr - Pi)^T, sr = k1 + (re + im) Pi^T and si = k1 + (im - re) Pr^T. tmp: 2 S LB values.
template <typename T>
void overlaps(const T* re, const T* im, int64_t n, const PhiForms<T>& phi, T* sr, T* si, int64_t S, int64_t M,
              T* tmp) {
  constexpr int64_t LB = Vectorized<T>::size();
  T *sum = tmp, *diff = tmp + S * LB;
  _Pragma("omp simd")
  for (int64_t j = 0; j < S * LB; ++j) sum[j] = re[j] + im[j], diff[j] = im[j] - re[j];
  gemm(re, int64_t(1), LB, phi.DT, M, sr, M, n, S, M, false);
  std::copy(sr, sr + n * M, si);
  gemm(sum, int64_t(1), LB, phi.PiT, M, sr, M, n, S, M, true);
  gemm(diff, int64_t(1), LB, phi.PrT, M, si, M, n, S, M, true);
}

// lam rows (lr, li: n rows of S) = c Phi for coefficients c (cr, ci: n rows of M): with k1 = (cr + ci) Pr,
// lr = k1 - ci (Pr + Pi) and li = k1 + cr (Pi - Pr). csum: n M values.
template <typename T>
void combine(const T* cr, const T* ci, int64_t n, const PhiForms<T>& phi, T* lr, T* li, int64_t S, int64_t M,
             T* csum) {
  for (int64_t i = 0; i < n * M; ++i) csum[i] = cr[i] + ci[i];
  gemm(csum, M, int64_t(1), phi.Pr, S, lr, S, n, M, S, false);
  std::copy(lr, lr + n * S, li);
  for (int64_t i = 0; i < n * M; ++i) csum[i] = -ci[i];
  gemm(csum, M, int64_t(1), phi.PrPi, S, lr, S, n, M, S, true);
  gemm(cr, M, int64_t(1), phi.PiPr, S, li, S, n, M, S, true);
}

}  // namespace
