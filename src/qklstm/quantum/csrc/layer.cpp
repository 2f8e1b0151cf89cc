// One-qubit layers in cache: the CPU kernel behind qklstm.quantum.simulate's "wires" stages (cext.py builds it).
// A layer's 2x2 matrices act on distinct wires, so they commute and can run in any order: the bits of the index
// are taken in groups from the least significant up, and each group's gates all run on one tile of 2^c amplitudes
// while it stays in cache. A 20-qubit state is read and written twice per layer instead of once per wire.
//
// Each tile is copied into a per-thread buffer with the real and imaginary parts apart, so that a gate is
// nothing but vertical fused multiply-adds on at::vec::Vectorized<T> (AVX2 or AVX-512 where torch dispatches to
// them): 4 per output vector, no shuffles, where the interleaved complex product of ATen's complex vectors costs
// a permute, a sign flip and a horizontal subtract per product. The buffer's lowest bits (the lanes of a vector)
// are never a gated bit: a tile's rows are runs of at least one vector of contiguous amplitudes whose bits belong
// to another group, and the first group (whose gated bits are the lowest ones) takes the next bits as its lanes,
// transposed on the way in and out. Rows (states) run in parallel, and so do the tiles of a row; the backward's
// sums are over fixed parts of the tiles, so its result does not depend on the thread count. Qubit 0 is the most
// significant bit, as in qklstm.quantum.circuit.
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/complex.h>
#include <torch/extension.h>

#include <algorithm>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using at::Tensor;

// A vector of one lane with Vectorized's interface: states too small for a vector's lanes run through it.
template <typename T>
struct One {
  T v;
  static constexpr int64_t size() { return 1; }
  One() = default;
  explicit One(T x) : v(x) {}
  static One loadu(const T* p) { return One(*p); }
  void store(T* p) const { *p = v; }
};
template <typename T>
One<T> fmadd(One<T> a, One<T> b, One<T> c) { return One<T>(a.v * b.v + c.v); }
template <typename T>
One<T> operator*(One<T> a, One<T> b) { return One<T>(a.v * b.v); }
template <typename T>
One<T> operator-(One<T> a, One<T> b) { return One<T>(a.v - b.v); }

template <typename T>
using Vec = at::vec::Vectorized<T>;  // its fmadd is found by argument-dependent lookup, as One's is

int64_t log2_of(int64_t v) { return 63 - __builtin_clzll(uint64_t(v)); }

// One group of gated bits [lo, lo + k) of an n-bit index and its tiles of 2^(k + w) amplitudes: rows of W = 2^w
// contiguous amplitudes (bits [0, w), lanes of the buffer), row r at base + (r << lo), buffer index (r << w) | j.
// The first group (lo = 0) reads a contiguous chunk of 2^(k + w) amplitudes instead, its lanes the bits
// [k, k + w): buffer index (i << w) | h for the amplitude base + (h << k) + i.
struct Group {
  int64_t lo, k, w, tiles;
  int64_t base(int64_t t) const {
    if (lo == 0) return t << (k + w);
    const int64_t mid = lo - w;
    return ((t & ((int64_t(1) << mid) - 1)) << w) | ((t >> mid) << (lo + k));
  }
  // the buffer's stride of global bit b of this group
  int64_t stride(int64_t b) const { return int64_t(1) << (w + b - lo); }
};

// Groups of at most c bits a tile (c - lanes gated), the lanes taken from bits outside the group (a tile holds
// at least two vectors' bits, so that every group has lanes).
std::vector<Group> groups(int64_t n, int64_t c, int64_t lanes) {
  std::vector<Group> out;
  c = std::min(std::max(c, 2 * lanes), n);
  const int64_t k0 = c - lanes;
  out.push_back({0, k0, lanes, (int64_t(1) << n) >> c});
  for (int64_t lo = k0; lo < n; lo += c - lanes) {
    const int64_t k = std::min(c - lanes, n - lo), w = std::min(lo, c - k);
    out.push_back({lo, k, w, (int64_t(1) << n) >> (k + w)});
  }
  return out;
}

// One's interleaving: a lone lane's real and imaginary parts are already apart
template <typename T>
std::pair<One<T>, One<T>> deinterleave2(One<T> a, One<T> b) { return {a, b}; }
template <typename T>
std::pair<One<T>, One<T>> interleave2(One<T> a, One<T> b) { return {a, b}; }

// the W x W block of W vectors transposed in place, by log2(W) rounds of perfect shuffles
template <typename V>
inline void transpose(V* r) {
  constexpr int64_t W = V::size();
  for (int64_t round = 1; round < W; round *= 2) {
    V next[W];
    for (int64_t h = 0; h < W / 2; ++h) std::tie(next[2 * h], next[2 * h + 1]) = interleave2(r[h], r[h + W / 2]);
    std::copy(next, next + W, r);
  }
}

// The tile at src (interleaved complex, from its base) into the split buffer (re, im): rows by deinterleaving
// vectors; the first group's W runs a W x W block at a time, transposed so that a run's bits land above the lanes.
template <typename V, typename T>
void gather(const Group& g, const T* src, T* re, T* im, const T* next = nullptr) {
  constexpr int64_t W = V::size();
  if (g.lo == 0) {
    for (int64_t j0 = 0; j0 < (int64_t(1) << g.k); j0 += W) {
      V r[W], i[W];
      for (int64_t h = 0; h < W; ++h) {
        const T* s = src + 2 * ((h << g.k) + j0);
        std::tie(r[h], i[h]) = deinterleave2(V::loadu(s), V::loadu(s + W));
      }
      transpose(r), transpose(i);
      for (int64_t j = 0; j < W; ++j) r[j].store(re + (j0 + j) * W), i[j].store(im + (j0 + j) * W);
    }
    return;
  }
  for (int64_t row = 0; row < (int64_t(1) << g.k); ++row) {
    if (next)
      for (int64_t j = 0; j < 2 * (int64_t(1) << g.w); j += 64 / sizeof(T)) __builtin_prefetch(next + 2 * (row << g.lo) + j);
    for (int64_t j = 0; j < (int64_t(1) << g.w); j += W) {
      const T* s = src + 2 * ((row << g.lo) + j);
      const auto [r, i] = deinterleave2(V::loadu(s), V::loadu(s + W));
      r.store(re + (row << g.w) + j), i.store(im + (row << g.w) + j);
    }
  }
}

// the split buffer back into the tile at dst: gather's inverse
template <typename V, typename T>
void scatter(const Group& g, const T* re, const T* im, T* dst) {
  constexpr int64_t W = V::size();
  if (g.lo == 0) {
    for (int64_t j0 = 0; j0 < (int64_t(1) << g.k); j0 += W) {
      V r[W], i[W];
      for (int64_t j = 0; j < W; ++j) r[j] = V::loadu(re + (j0 + j) * W), i[j] = V::loadu(im + (j0 + j) * W);
      transpose(r), transpose(i);
      for (int64_t h = 0; h < W; ++h) {
        T* d = dst + 2 * ((h << g.k) + j0);
        const auto [a, b] = interleave2(r[h], i[h]);
        a.store(d), b.store(d + W);
      }
    }
    return;
  }
  for (int64_t row = 0; row < (int64_t(1) << g.k); ++row)
    for (int64_t j = 0; j < (int64_t(1) << g.w); j += W) {
      T* d = dst + 2 * ((row << g.lo) + j);
      const auto [a, b] = interleave2(V::loadu(re + (row << g.w) + j), V::loadu(im + (row << g.w) + j));
      a.store(d), b.store(d + W);
    }
}

// u = (a, b; c, d) as broadcast real vectors: re and im of each entry, and -im
template <typename V, typename T>
struct Mat {
  V r[4], i[4], ni[4];
  explicit Mat(const c10::complex<T>* u) {
    for (int e = 0; e < 4; ++e) r[e] = V(u[e].real()), i[e] = V(u[e].imag()), ni[e] = V(-u[e].imag());
  }
};

// (p + i q) = (a x0 + b x1) for entries a = m[e0], b = m[e0 + 1]
template <typename V, typename T>
inline void row(const Mat<V, T>& m, int e0, const V& x0r, const V& x0i, const V& x1r, const V& x1i, V& p, V& q) {
  p = fmadd(m.ni[e0 + 1], x1i, fmadd(m.r[e0 + 1], x1r, fmadd(m.ni[e0], x0i, m.r[e0] * x0r)));
  q = fmadd(m.i[e0 + 1], x1r, fmadd(m.r[e0 + 1], x1i, fmadd(m.i[e0], x0r, m.r[e0] * x0i)));
}

// gate u on the buffer's pairs at distance s (a multiple of V::size())
template <typename V, typename T>
void gate(T* re, T* im, int64_t size, int64_t s, const c10::complex<T>* u) {
  const Mat<V, T> m(u);
  for (int64_t hi = 0; hi < size; hi += 2 * s)
    for (int64_t j = hi; j < hi + s; j += V::size()) {
      const V x0r = V::loadu(re + j), x0i = V::loadu(im + j), x1r = V::loadu(re + j + s), x1i = V::loadu(im + j + s);
      V p, q;
      row(m, 0, x0r, x0i, x1r, x1i, p, q), p.store(re + j), q.store(im + j);
      row(m, 2, x0r, x0i, x1r, x1i, p, q), p.store(re + j + s), q.store(im + j + s);
    }
}

// The adjoint step of gate u (uh its adjoint) on the buffers: psi <- uh psi (its input), lam <- uh lam, and the
// gradient sums grad[i][j] += sum lam_i conj(psi_j) (psi after the step) into acc (8 vectors: re, im of 4)
template <typename V, typename T>
void adjoint(T* pr, T* pi, T* lr, T* li, int64_t size, int64_t s, const c10::complex<T>* uh, V* acc) {
  const Mat<V, T> m(uh);
  for (int64_t hi = 0; hi < size; hi += 2 * s)
    for (int64_t j = hi; j < hi + s; j += V::size()) {
      const int64_t at[2] = {j, j + s};
      V yr[2], yi[2], mr[2], mi[2];
      {
        const V x0r = V::loadu(pr + j), x0i = V::loadu(pi + j), x1r = V::loadu(pr + j + s), x1i = V::loadu(pi + j + s);
        row(m, 0, x0r, x0i, x1r, x1i, yr[0], yi[0]), row(m, 2, x0r, x0i, x1r, x1i, yr[1], yi[1]);
      }
      {
        const V x0r = V::loadu(lr + j), x0i = V::loadu(li + j), x1r = V::loadu(lr + j + s), x1i = V::loadu(li + j + s);
        row(m, 0, x0r, x0i, x1r, x1i, mr[0], mi[0]), row(m, 2, x0r, x0i, x1r, x1i, mr[1], mi[1]);
      }
      for (int a = 0; a < 2; ++a) {  // lam after this gate (still in memory) times conj(its input)
        const V lar = V::loadu(lr + at[a]), lai = V::loadu(li + at[a]);
        for (int b = 0; b < 2; ++b) {
          V* g = acc + 2 * (2 * a + b);
          g[0] = fmadd(lai, yi[b], fmadd(lar, yr[b], g[0]));                  // re(l conj(y)) = lr yr + li yi
          g[1] = fmadd(lai, yr[b], fmadd(V(T(0)) - lar, yi[b], g[1]));  // im(l conj(y)) = li yr - lr yi
        }
      }
      for (int a = 0; a < 2; ++a) {
        yr[a].store(pr + at[a]), yi[a].store(pi + at[a]), mr[a].store(lr + at[a]), mi[a].store(li + at[a]);
      }
    }
}

// the bit's gate index in `wires` (-1: none)
std::vector<int64_t> gate_of_bit(const std::vector<int64_t>& wires, int64_t n) {
  std::vector<int64_t> of(n, -1);
  for (size_t i = 0; i < wires.size(); ++i) {
    TORCH_CHECK(wires[i] >= 0 && wires[i] < n && of[n - 1 - wires[i]] < 0, "layer: wires must be distinct, in [0, n)");
    of[n - 1 - wires[i]] = int64_t(i);
  }
  return of;
}

bool gated(const Group& g, const std::vector<int64_t>& of) {
  for (int64_t b = g.lo; b < g.lo + g.k; ++b)
    if (of[b] >= 0) return true;
  return false;
}

void check(const Tensor& state, const Tensor& mats) {
  TORCH_CHECK(state.device().is_cpu() && state.is_contiguous() && state.dim() == 2, "layer: CPU (B, 2^n) states");
  TORCH_CHECK(mats.scalar_type() == state.scalar_type() && mats.is_contiguous() && mats.dim() == 4 &&
                  mats.size(0) == state.size(0) && mats.size(2) == 2 && mats.size(3) == 2,
              "layer: (B, k, 2, 2) matrices of the states' dtype");
}

// the forward over one group's tiles, with vectors V
template <typename V, typename T>
void forward_group(const Group& g, const std::vector<int64_t>& of, int64_t B, int64_t S, int64_t k,
                   const c10::complex<T>* sp, c10::complex<T>* dp, const c10::complex<T>* mp) {
  const int64_t size = int64_t(1) << (g.k + g.w);
  at::parallel_for(0, B * g.tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> buf(2 * size);
    T *re = buf.data(), *im = re + size;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t row = t / g.tiles, base = g.base(t % g.tiles);
      const T* ahead = t + 1 < t1 && (t + 1) / g.tiles == row ? reinterpret_cast<const T*>(sp + row * S + g.base((t + 1) % g.tiles)) : nullptr;
      gather<V>(g, reinterpret_cast<const T*>(sp + row * S + base), re, im, ahead);
      for (int64_t b = g.lo; b < g.lo + g.k; ++b)
        if (of[b] >= 0) gate<V, T>(re, im, size, g.stride(b), mp + (row * k + of[b]) * 4);
      scatter<V>(g, re, im, reinterpret_cast<T*>(dp + row * S + base));
    }
  });
}

template <typename T>
int64_t lanes_for(int64_t n) {
  const int64_t lanes = log2_of(Vec<T>::size());
  return n >= 2 * lanes ? lanes : 0;
}

// the matrices' (B, k, 2, 2) layer on `wires` of the states (B, 2^n) src, into dst (which may be src)
void layer(Tensor src, Tensor dst, Tensor mats, std::vector<int64_t> wires, int64_t tile_bits) {
  check(src, mats);
  const int64_t B = src.size(0), S = src.size(1), n = S > 1 ? log2_of(S) : 0;
  const auto of = gate_of_bit(wires, n);
  const int64_t k = int64_t(wires.size());
  AT_DISPATCH_COMPLEX_TYPES(src.scalar_type(), "layer", [&] {
    using C = scalar_t;
    using T = typename C::value_type;
    const int64_t lanes = lanes_for<T>(n);
    const auto gs = groups(n, tile_bits, lanes);
    const C *sp = src.data_ptr<C>(), *mp = mats.data_ptr<C>();
    C* dp = dst.data_ptr<C>();
    for (const Group& g : gs) {
      if (!gated(g, of)) continue;
      if (lanes) forward_group<Vec<T>, T>(g, of, B, S, k, sp, dp, mp);
      else forward_group<One<T>, T>(g, of, B, S, k, sp, dp, mp);
      sp = dp;
    }
    if (sp != dp) std::copy(sp, sp + B * S, dp);
  });
}

// the backward over one group's tiles: parts of tiles in parallel, each part's sums into partial
template <typename V, typename T>
void backward_group(const Group& g, const std::vector<int64_t>& of, int64_t B, int64_t S, int64_t k, const T* src[2],
                    c10::complex<T>* dst[2], const c10::complex<T>* uh, std::vector<c10::complex<T>>& partial,
                    int64_t parts) {
  using C = c10::complex<T>;
  const int64_t size = int64_t(1) << (g.k + g.w), per = (g.tiles + parts - 1) / parts;
  at::parallel_for(0, B * parts, 1, [&](int64_t p0, int64_t p1) {
    std::vector<T> buf(4 * size);
    T *pr = buf.data(), *pi = pr + size, *lr = pi + size, *li = lr + size;
    std::vector<V> acc(8 * k, V(T(0)));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t row = p / parts, part = p % parts;
      std::fill(acc.begin(), acc.end(), V(T(0)));
      for (int64_t t = part * per; t < std::min(g.tiles, (part + 1) * per); ++t) {
        const int64_t base = g.base(t);
        gather<V>(g, src[0] + 2 * (row * S + base), pr, pi), gather<V>(g, src[1] + 2 * (row * S + base), lr, li);
        for (int64_t b = g.lo + g.k - 1; b >= g.lo; --b)
          if (of[b] >= 0) adjoint<V, T>(pr, pi, lr, li, size, g.stride(b), uh + (row * k + of[b]) * 4, &acc[8 * of[b]]);
        scatter<V>(g, pr, pi, reinterpret_cast<T*>(dst[0] + row * S + base));
        scatter<V>(g, lr, li, reinterpret_cast<T*>(dst[1] + row * S + base));
      }
      C* out = partial.data() + p * k * 4;
      T lane[V::size()];
      for (int64_t e = 0; e < 4 * k; ++e) {
        T sum[2] = {0, 0};
        for (int part_of = 0; part_of < 2; ++part_of) {
          acc[2 * e + part_of].store(lane);
          for (int64_t i = 0; i < V::size(); ++i) sum[part_of] += lane[i];
        }
        out[e] = C(sum[0], sum[1]);
      }
    }
  });
}

// The adjoint pass of the layer: from its output states psi and lam = dL/d conj(psi) there, the input states
// and lam before it (into psi_in, lam_in, which may be psi and lam) and the matrices' gradients (B, k, 2, 2)
std::vector<Tensor> layer_backward(Tensor psi, Tensor lam, Tensor mats, std::vector<int64_t> wires, int64_t tile_bits,
                                   Tensor psi_in, Tensor lam_in) {
  check(psi, mats), check(lam, mats);
  const int64_t B = psi.size(0), S = psi.size(1), n = S > 1 ? log2_of(S) : 0;
  const auto of = gate_of_bit(wires, n);
  const int64_t k = int64_t(wires.size());
  Tensor grad = at::zeros_like(mats);
  AT_DISPATCH_COMPLEX_TYPES(psi.scalar_type(), "layer_backward", [&] {
    using C = scalar_t;
    using T = typename C::value_type;
    const int64_t lanes = lanes_for<T>(n);
    auto gs = groups(n, tile_bits, lanes);
    std::reverse(gs.begin(), gs.end());
    const C* mp = mats.data_ptr<C>();
    C *pd = psi_in.data_ptr<C>(), *ld = lam_in.data_ptr<C>(), *gp = grad.data_ptr<C>();
    std::vector<C> uh(B * k * 4);  // the adjoints
    for (int64_t i = 0; i < B * k; ++i) {
      const C* u = mp + i * 4;
      uh[i * 4] = std::conj(u[0]), uh[i * 4 + 1] = std::conj(u[2]), uh[i * 4 + 2] = std::conj(u[1]);
      uh[i * 4 + 3] = std::conj(u[3]);
    }
    const T* src[2] = {reinterpret_cast<const T*>(psi.data_ptr<C>()), reinterpret_cast<const T*>(lam.data_ptr<C>())};
    C* dst[2] = {pd, ld};
    for (const Group& g : gs) {
      if (!gated(g, of)) continue;
      const int64_t parts = std::min<int64_t>(g.tiles, 64);
      std::vector<C> partial(B * parts * k * 4, C(0));  // each part's sums, added in a fixed order below
      if (lanes) backward_group<Vec<T>, T>(g, of, B, S, k, src, dst, uh.data(), partial, parts);
      else backward_group<One<T>, T>(g, of, B, S, k, src, dst, uh.data(), partial, parts);
      for (int64_t row = 0; row < B; ++row)
        for (int64_t part = 0; part < parts; ++part)
          for (int64_t e = 0; e < k * 4; ++e) gp[row * k * 4 + e] += partial[(row * parts + part) * k * 4 + e];
      src[0] = reinterpret_cast<const T*>(pd), src[1] = reinterpret_cast<const T*>(ld);
    }
    if (reinterpret_cast<const C*>(src[0]) != pd) {
      std::copy(psi.data_ptr<C>(), psi.data_ptr<C>() + B * S, pd), std::copy(lam.data_ptr<C>(), lam.data_ptr<C>() + B * S, ld);
    }
  });
  return {psi_in, lam_in, grad};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("layer", &layer, "a one-qubit layer on some wires of (B, 2^n) states, tile by tile in cache");
  m.def("layer_backward", &layer_backward, "its adjoint pass: input states, lam before it, matrices' gradients");
}
