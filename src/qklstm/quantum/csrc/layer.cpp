// One-qubit layers in cache: the CPU kernel behind qklstm.quantum.simulate's "wires" stages (cext.py builds it).
// A layer's 2x2 matrices act on distinct wires, so they commute and can run in any order: the bits of the index
// are taken in groups of at most c from the least significant up, and each group's gates all run on one tile of
// 2^c amplitudes (rows of W contiguous amplitudes at the group's stride) while it stays in cache. A 20-qubit
// state is read and written twice per layer instead of once per wire, and each gate costs two complex products
// per amplitude (a dense 2^k x 2^k block costs 2^k / k per wire); simulate.py runs it below 16 qubits, where it
// beats the dense blocks (from 16 on, their GEMMs win: see CPP_LAYER_BELOW). Rows (states) run in parallel, and
// so do the tiles of a row; the backward's sums are over fixed parts of the tiles, so its result does not depend
// on the thread count. Qubit 0 is the most significant bit, as in qklstm.quantum.circuit.
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/complex.h>
#include <torch/extension.h>

#include <algorithm>
#include <vector>

namespace {

using at::Tensor;
using at::vec::Vectorized;

// The tiles of one group of bits [lo, lo + k) of an n-bit index: R = 2^k rows of W = 2^w contiguous amplitudes,
// row r at base + (r << lo), with w = min(lo, c - k); tile t's base spreads t's bits over the bits outside
// [0, w) and [lo, lo + k).
struct Group {
  int64_t lo, k, w, tiles;
  int64_t base(int64_t t) const {
    const int64_t mid = lo - w;
    return ((t & ((int64_t(1) << mid) - 1)) << w) | ((t >> mid) << (lo + k));
  }
};

std::vector<Group> groups(int64_t n, int64_t c) {
  std::vector<Group> out;
  for (int64_t lo = 0; lo < n; lo += c) {
    const int64_t k = std::min(c, n - lo), w = std::min(lo, c - k);
    out.push_back({lo, k, w, (int64_t(1) << n) >> (k + w)});
  }
  return out;
}

// the pairs (p0[j], p1[j]), j < len, of one gate on one tile: both halves as runs (one row, or one chunk)
template <typename F>
inline void tile_pairs(const Group& g, int64_t bit, int64_t base, F&& run) {
  const int64_t R = int64_t(1) << g.k, W = int64_t(1) << g.w;
  if (g.lo == 0) {  // a contiguous chunk of R amplitudes: pairs at distance 2^bit
    const int64_t st = int64_t(1) << bit;
    for (int64_t i0 = 0; i0 < R; i0 += 2 * st) run(base + i0, base + i0 + st, st);
  } else {  // rows that differ in the row bit
    const int64_t sb = int64_t(1) << (bit - g.lo);
    for (int64_t r = 0; r < R; ++r)
      if (!(r & sb)) run(base + (r << g.lo), base + ((r | sb) << g.lo), W);
  }
}

// copy one tile from src to dst
template <typename C>
inline void copy_tile(const Group& g, int64_t base, const C* src, C* dst) {
  const int64_t R = int64_t(1) << g.k, W = int64_t(1) << g.w;
  if (g.lo == 0) {
    std::copy(src + base, src + base + R, dst + base);
    return;
  }
  for (int64_t r = 0; r < R; ++r) std::copy(src + base + (r << g.lo), src + base + (r << g.lo) + W, dst + base + (r << g.lo));
}

// (x0, x1) <- (a x0 + b x1, c x0 + d x1) over a run
template <typename C>
inline void gate_run(C* p0, C* p1, int64_t len, const C* u) {
  using V = Vectorized<C>;
  int64_t j = 0;
  if (len >= V::size()) {
    const V a(u[0]), b(u[1]), c(u[2]), d(u[3]);
    for (; j + V::size() <= len; j += V::size()) {
      const V x0 = V::loadu(p0 + j), x1 = V::loadu(p1 + j);
      (a * x0 + b * x1).store(p0 + j), (c * x0 + d * x1).store(p1 + j);
    }
  }
  for (; j < len; ++j) {
    const C x0 = p0[j], x1 = p1[j];
    p0[j] = u[0] * x0 + u[1] * x1, p1[j] = u[2] * x0 + u[3] * x1;
  }
}

// the adjoint step of one gate over a run: psi <- u^H psi (its input), the gradient sums
// grad[i][j] += lam_i conj(psi_j), lam <- u^H lam
template <typename C>
inline void adjoint_run(C* s0, C* s1, C* l0, C* l1, int64_t len, const C* uh, C* grad) {
  using V = Vectorized<C>;
  int64_t j = 0;
  if (len >= V::size()) {
    const V a(uh[0]), b(uh[1]), c(uh[2]), d(uh[3]);
    V g00(C(0)), g01(C(0)), g10(C(0)), g11(C(0));
    for (; j + V::size() <= len; j += V::size()) {
      const V x0 = V::loadu(s0 + j), x1 = V::loadu(s1 + j), m0 = V::loadu(l0 + j), m1 = V::loadu(l1 + j);
      const V y0 = a * x0 + b * x1, y1 = c * x0 + d * x1, c0 = y0.conj(), c1 = y1.conj();
      g00 = g00 + m0 * c0, g01 = g01 + m0 * c1, g10 = g10 + m1 * c0, g11 = g11 + m1 * c1;
      y0.store(s0 + j), y1.store(s1 + j), (a * m0 + b * m1).store(l0 + j), (c * m0 + d * m1).store(l1 + j);
    }
    const V* parts[4] = {&g00, &g01, &g10, &g11};
    C buf[V::size()];
    for (int e = 0; e < 4; ++e) {
      parts[e]->store(buf);
      for (int64_t i = 0; i < V::size(); ++i) grad[e] += buf[i];
    }
  }
  for (; j < len; ++j) {
    const C x0 = s0[j], x1 = s1[j], m0 = l0[j], m1 = l1[j];
    const C y0 = uh[0] * x0 + uh[1] * x1, y1 = uh[2] * x0 + uh[3] * x1;
    grad[0] += m0 * std::conj(y0), grad[1] += m0 * std::conj(y1), grad[2] += m1 * std::conj(y0);
    grad[3] += m1 * std::conj(y1);
    s0[j] = y0, s1[j] = y1, l0[j] = uh[0] * m0 + uh[1] * m1, l1[j] = uh[2] * m0 + uh[3] * m1;
  }
}

// the bit's gate index in `wires` (-1: none) and whether a group has any
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

// the matrices' (B, k, 2, 2) layer on `wires` of the states (B, 2^n) src, into dst (which may be src)
void layer(Tensor src, Tensor dst, Tensor mats, std::vector<int64_t> wires, int64_t tile_bits) {
  check(src, mats);
  const int64_t B = src.size(0), S = src.size(1), n = S > 1 ? 63 - __builtin_clzll(uint64_t(S)) : 0;
  const auto of = gate_of_bit(wires, n);
  const auto gs = groups(n, std::min(n, tile_bits));
  const int64_t k = int64_t(wires.size());
  AT_DISPATCH_COMPLEX_TYPES(src.scalar_type(), "layer", [&] {
    using C = scalar_t;
    const C *sp = src.data_ptr<C>(), *mp = mats.data_ptr<C>();
    C* dp = dst.data_ptr<C>();
    bool copied = sp == dp;
    for (const Group& g : gs) {
      if (!gated(g, of)) continue;
      const bool copy = !copied;
      at::parallel_for(0, B * g.tiles, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t row = t / g.tiles, base = g.base(t % g.tiles);
          C* st = dp + row * S;
          if (copy) copy_tile(g, base, sp + row * S, st);
          for (int64_t b = g.lo; b < g.lo + g.k; ++b)
            if (of[b] >= 0)
              tile_pairs(g, b, base, [&](int64_t i0, int64_t i1, int64_t len) {
                gate_run(st + i0, st + i1, len, mp + (row * k + of[b]) * 4);
              });
        }
      });
      copied = true;
    }
    if (!copied) std::copy(sp, sp + B * S, dp);
  });
}

// The adjoint pass of the layer: from its output states psi and lam = dL/d conj(psi) there, the input states
// and lam before it (into psi_in, lam_in, which may be psi and lam) and the matrices' gradients (B, k, 2, 2)
std::vector<Tensor> layer_backward(Tensor psi, Tensor lam, Tensor mats, std::vector<int64_t> wires, int64_t tile_bits,
                                   Tensor psi_in, Tensor lam_in) {
  check(psi, mats), check(lam, mats);
  const int64_t B = psi.size(0), S = psi.size(1), n = S > 1 ? 63 - __builtin_clzll(uint64_t(S)) : 0;
  const auto of = gate_of_bit(wires, n);
  auto gs = groups(n, std::min(n, tile_bits));
  std::reverse(gs.begin(), gs.end());
  const int64_t k = int64_t(wires.size());
  Tensor grad = at::zeros_like(mats);
  AT_DISPATCH_COMPLEX_TYPES(psi.scalar_type(), "layer_backward", [&] {
    using C = scalar_t;
    const C *pp = psi.data_ptr<C>(), *lp = lam.data_ptr<C>(), *mp = mats.data_ptr<C>();
    C *pd = psi_in.data_ptr<C>(), *ld = lam_in.data_ptr<C>(), *gp = grad.data_ptr<C>();
    std::vector<C> uh(B * k * 4);  // the adjoints
    for (int64_t i = 0; i < B * k; ++i) {
      const C* u = mp + i * 4;
      uh[i * 4] = std::conj(u[0]), uh[i * 4 + 1] = std::conj(u[2]), uh[i * 4 + 2] = std::conj(u[1]);
      uh[i * 4 + 3] = std::conj(u[3]);
    }
    bool copied = pp == pd && lp == ld;
    for (const Group& g : gs) {
      if (!gated(g, of)) continue;
      const bool copy = !copied;
      const int64_t parts = std::min<int64_t>(g.tiles, 64), per = (g.tiles + parts - 1) / parts;
      std::vector<C> partial(B * parts * k * 4, C(0));  // each part's sums, added in a fixed order below
      at::parallel_for(0, B * parts, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t row = p / parts, part = p % parts;
          C *st = pd + row * S, *lt = ld + row * S, *acc = partial.data() + p * k * 4;
          for (int64_t t = part * per; t < std::min(g.tiles, (part + 1) * per); ++t) {
            const int64_t base = g.base(t);
            if (copy) copy_tile(g, base, pp + row * S, st), copy_tile(g, base, lp + row * S, lt);
            for (int64_t b = g.lo + g.k - 1; b >= g.lo; --b)
              if (of[b] >= 0)
                tile_pairs(g, b, base, [&](int64_t i0, int64_t i1, int64_t len) {
                  adjoint_run(st + i0, st + i1, lt + i0, lt + i1, len, uh.data() + (row * k + of[b]) * 4,
                              acc + of[b] * 4);
                });
          }
        }
      });
      for (int64_t row = 0; row < B; ++row)
        for (int64_t part = 0; part < parts; ++part)
          for (int64_t e = 0; e < k * 4; ++e) gp[row * k * 4 + e] += partial[(row * parts + part) * k * 4 + e];
      copied = true;
    }
    if (!copied) std::copy(pp, pp + B * S, pd), std::copy(lp, lp + B * S, ld);
  });
  return {psi_in, lam_in, grad};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("layer", &layer, "a one-qubit layer on some wires of (B, 2^n) states, tile by tile in cache");
  m.def("layer_backward", &layer_backward, "its adjoint pass: input states, lam before it, matrices' gradients");
}
