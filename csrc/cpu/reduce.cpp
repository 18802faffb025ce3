// reduce.cpp - CPU kernels of the reduction family (reduce.h).
//
// Two engines live here.
//
// 1. Order-free reductions (sum, mean, prod, amax, amin, all, any, var,
//    logsumexp, norm) share one strided engine. An op is a small struct:
//    identity / map(x) / combine(a, b) / finalize(acc). The engine views the
//    input in MEMORY order (dims sorted by stride, flipped dims turned round,
//    size-1 dims dropped, neighbours coalesced), so transposed, flipped,
//    sliced and broadcast views are read in place without a copy. Then:
//      - innermost dim reduced ("generic" path): every output reduces its own
//        runs along that dim; contiguous runs use 64 bytes of independent
//        accumulators (explicit vectors for float sums and for extrema) and
//        pairwise halving (sum error ~ log n).
//      - innermost dim kept ("row" path, e.g. sum over dim 0 of (N, C), the
//        bias gradient): whole input rows are accumulated into a row of
//        accumulators, walking memory contiguously instead of striding per
//        output; rows enter a pairwise cascade every kLeafRows rows.
//      Partials of runs and of row leaves combine through a binary-counter
//      cascade (pairwise), so float32 sums stay accurate without double.
//    Determinism: one output's elements are split into blocks of a FIXED size
//    (shape-determined, never thread-determined) whose partials combine in a
//    fixed tree, so every thread count gives the same bits.
//
// 2. Ops along one dim whose result depends on order (max/min with indices,
//    argmax/argmin, cumsum/cumprod, softmax and its backward) view the input
//    as (outer, n, inner). They make a strided input contiguous first (one
//    copy): their inner loops then read unit-stride rows (inner == 1) or
//    accumulate whole rows of `inner` elements (inner > 1).
//
// The innermost loops shared with the AVX2 build (vectorisable exp, NaN-aware
// max, pairwise lane sums, the softmax kernels) live in reduce_kernels.h.
#include "cpu/reduce.h"
#include "cuda/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>

#include "cpu/gemm.h"  // gemm_info(): the process-wide CPU capability setting
#include "cpu/vecmath.h"
#include "errors.h"
#include "parallel.h"

#define FG_REDUCE_ISA base
#include "cpu/reduce_kernels.h"

namespace fg {
namespace {

using reduce_detail::kCols;
using reduce_detail::SoftmaxKernels;
using reduce_detail::base::ext_contig;
using reduce_detail::base::is_nan;
using reduce_detail::base::kHasVec;
using reduce_detail::base::lanes_reduce;
using reduce_detail::base::max_nan;
using reduce_detail::base::min_nan;
using reduce_detail::base::sum_contig;
using reduce_detail::base::vexp;

// ---- tuning constants --------------------------------------------------------
// Elements of one output's reduced index space per partial result. Fixed, so
// the combination tree depends on the shape only, never on the thread count.
constexpr int64_t kBlock = 16384;
// Row path: rows accumulated one after another before entering the cascade.
constexpr int64_t kLeafRows = 8;
// Row path: output columns one task owns (its accumulators stay in L1).
constexpr int64_t kColChunk = 512;
// Row path only when the innermost kept dim is at least this long; shorter rows
// cost more in loop overhead than strided runs per output.
constexpr int64_t kMinRow = 8;
// Row path: split the reduced rows into blocks only when there are fewer
// independent (group, column chunk) tasks than this (a shape-only rule).
constexpr int64_t kMinTasks = 64;
// Elements of work per parallel chunk; smaller problems stay on this thread.
// A chunk should take tens of microseconds, or waking a worker for it costs
// more than it saves (on a loaded machine the worker may not run for a
// while): kGrain for the exp-heavy softmax family, the scans and arg-extrema
// (~1 ns per element), kReduceGrain for the order-free reductions, which
// stream at ~0.1-0.3 ns per element.
constexpr int64_t kGrain = 32768;
constexpr int64_t kReduceGrain = 131072;

// Integer sums and products wrap like PyTorch's (signed overflow is UB in C++).
template <class A>
inline A wadd(A a, A b) {
  if constexpr (std::is_integral_v<A> && !std::is_same_v<A, bool>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <class A>
inline A wmul(A a, A b) {
  if constexpr (std::is_integral_v<A> && !std::is_same_v<A, bool>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

// A plain heap buffer: std::vector<bool> has no data(), and the kernels want
// raw pointers for every accumulator type.
template <class A>
struct Scratch {
  std::unique_ptr<A[]> p;
  explicit Scratch(int64_t n) : p(n > 0 ? new A[n] : nullptr) {}
  A* data() const { return p.get(); }
  A& operator[](int64_t i) const { return p[i]; }
};

// Combines p[0], p[stride], ..., p[(n-1)*stride] as a balanced tree (n >= 1).
template <class Op, class A>
A tree_combine(const Op& op, const A* p, int64_t n, int64_t stride) {
  if (n == 1) return p[0];
  int64_t h = n / 2;
  return op.combine(tree_combine(op, p, h, stride), tree_combine(op, p + h * stride, n - h, stride));
}

// Streaming pairwise combination: partials pushed one by one are merged like
// a binary counter (two partials of equal weight merge), so a long sequence
// of short runs still sums with logarithmic error growth.
template <class Op>
struct Cascade {
  using A = typename Op::acc_t;
  const Op& op;
  A val[64];
  int64_t cnt[64];
  int top = 0;
  explicit Cascade(const Op& o) : op(o) {}
  void push(A v) {
    val[top] = v;
    cnt[top] = 1;
    ++top;
    while (top >= 2 && cnt[top - 1] == cnt[top - 2]) {
      val[top - 2] = op.combine(val[top - 2], val[top - 1]);
      cnt[top - 2] *= 2;
      --top;
    }
  }
  A result() const {
    if (top == 0) return op.identity();
    A r = val[top - 1];
    for (int i = top - 2; i >= 0; --i) r = op.combine(val[i], r);
    return r;
  }
};

// Sum ops whose map is costly (exp) set kStaged: their runs map into a buffer
// first (see lanes_reduce).
template <class Op, class = void>
struct is_staged : std::false_type {};
template <class Op>
struct is_staged<Op, std::void_t<decltype(Op::kStaged)>> : std::bool_constant<Op::kStaged> {};

// Ops whose contiguous runs have an explicitly vectorised kernel set kFast.
enum : int { kFastNone = 0, kFastSum = 1, kFastMax = 2, kFastMin = 3 };
template <class Op, class = void>
struct fast_kind : std::integral_constant<int, kFastNone> {};
template <class Op>
struct fast_kind<Op, std::void_t<decltype(Op::kFast)>> : std::integral_constant<int, Op::kFast> {};

// ---- reduction ops --------------------------------------------------------------
// T: input element, A: accumulator, O: output element. kAux ops read one value
// per output (the mean for var, the shift for logsumexp) from an array laid
// out like the output.

template <class T, class A, class O>
struct SumOp {
  using in_t = T;
  using acc_t = A;
  using out_t = O;
  static constexpr bool kPairwise = true, kAux = false;
  static constexpr int kFast = std::is_floating_point_v<T> && std::is_same_v<T, A> ? kFastSum : kFastNone;
  A identity() const { return A(0); }
  A map(T x, A) const { return static_cast<A>(x); }
  A combine(A a, A b) const { return wadd(a, b); }
  O finalize(A a, A) const { return static_cast<O>(a); }
};

template <class T>
struct MeanOp {
  using in_t = T;
  using acc_t = T;
  using out_t = T;
  static constexpr bool kPairwise = true, kAux = false;
  static constexpr int kFast = kFastSum;
  int64_t n;
  T identity() const { return T(0); }
  T map(T x, T) const { return x; }
  T combine(T a, T b) const { return a + b; }
  // n == 0 gives 0/0 = nan, like PyTorch.
  T finalize(T a, T) const { return static_cast<T>(static_cast<double>(a) / static_cast<double>(n)); }
};

template <class T, class A, class O>
struct ProdOp {
  using in_t = T;
  using acc_t = A;
  using out_t = O;
  static constexpr bool kPairwise = false, kAux = false;
  A identity() const { return A(1); }
  A map(T x, A) const { return static_cast<A>(x); }
  A combine(A a, A b) const { return wmul(a, b); }
  O finalize(A a, A) const { return static_cast<O>(a); }
};

// amax / amin, and the inf / -inf norms (Abs = true maps x to |x|).
template <class T, bool Max, bool Abs = false>
struct ExtremumOp {
  using in_t = T;
  using acc_t = T;
  using out_t = T;
  static constexpr bool kPairwise = false, kAux = false;
  static constexpr int kFast = Abs || !kHasVec<T> ? kFastNone : Max ? kFastMax : kFastMin;
  // Only seeds the lanes: empty extrema are rejected before the kernel runs.
  T identity() const {
    if constexpr (std::is_floating_point_v<T>)
      return Max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    else
      return Max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  }
  T map(T x, T) const {
    if constexpr (Abs)
      return std::abs(x);
    else
      return x;
  }
  T combine(T a, T b) const { return Max ? max_nan(a, b) : min_nan(a, b); }
  T finalize(T a, T) const { return a; }
};

template <class T, bool All>
struct BoolOp {
  using in_t = T;
  using acc_t = bool;
  using out_t = bool;
  static constexpr bool kPairwise = false, kAux = false;
  bool identity() const { return All; }
  bool map(T x, bool) const { return x != T(0); }  // NaN counts as true, like PyTorch
  bool combine(bool a, bool b) const { return All ? (a && b) : (a || b); }
  bool finalize(bool a, bool) const { return a; }
};

// Second pass of the two-pass variance: sum of (x - mean)^2, mean from aux.
// Two passes avoid the cancellation of sum(x^2) - n*mean^2.
template <class T>
struct VarOp {
  using in_t = T;
  using acc_t = T;
  using out_t = T;
  static constexpr bool kPairwise = true, kAux = true;
  double divisor;  // max(0, n - correction): 0 gives inf or nan, like PyTorch
  T identity() const { return T(0); }
  T map(T x, T m) const { return (x - m) * (x - m); }
  T combine(T a, T b) const { return a + b; }
  T finalize(T a, T) const { return static_cast<T>(static_cast<double>(a) / divisor); }
};

// Second pass of logsumexp: log(sum(exp(x - s))) + s, the shift s the max
// (0 where the max is not finite, so inf and all -inf rows come out right).
template <class T>
struct LseOp {
  using in_t = T;
  using acc_t = T;
  using out_t = T;
  static constexpr bool kPairwise = true, kAux = true, kStaged = true;
  T identity() const { return T(0); }
  T map(T x, T s) const { return vexp(x - s); }
  T combine(T a, T b) const { return a + b; }
  T finalize(T a, T s) const { return std::log(a) + s; }
};

// Vector p-norms with a sum: Kind 0 counts non-zeros, 1 sums |x|, 2 is the
// Euclidean norm, 3 the general (sum |x|^p)^(1/p).
template <class T, int Kind>
struct NormOp {
  using in_t = T;
  using acc_t = T;
  using out_t = T;
  static constexpr bool kPairwise = true, kAux = false;
  T p = 2, inv_p = 0.5;
  T identity() const { return T(0); }
  T map(T x, T) const {
    if constexpr (Kind == 0)
      return x != T(0) ? T(1) : T(0);
    else if constexpr (Kind == 1)
      return std::abs(x);
    else if constexpr (Kind == 2)
      return x * x;
    else
      return std::pow(std::abs(x), p);
  }
  T combine(T a, T b) const { return a + b; }
  T finalize(T a, T) const {
    if constexpr (Kind == 2)
      return std::sqrt(a);
    else if constexpr (Kind == 3)
      return std::pow(a, inv_p);
    else
      return a;
  }
};

// ---- the strided engine --------------------------------------------------------

// Which dims to reduce and what the output looks like.
struct Spec {
  std::vector<bool> mask;  // per input dim: reduced?
  Shape out_shape;         // honours keepdim
  Strides ostr;            // per input dim: output stride in elements, 0 if reduced
  int64_t n_red = 1;       // elements reduced into each output
};

Spec make_spec(const Array& a, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  const int nd = a.ndim();
  Spec s;
  s.mask.assign(nd, dims.empty());
  std::vector<bool> seen(std::max(nd, 1), false);
  for (int64_t d : dims) {
    int w = wrap_dim(d, nd, op);
    if (seen[w])
      throw std::invalid_argument(std::string(op) + ": dim " + std::to_string(w) +
                                  " appears multiple times in the list of dims");
    seen[w] = true;
    if (nd > 0) s.mask[w] = true;
  }
  Shape keep(nd);
  for (int d = 0; d < nd; ++d) {
    keep[d] = s.mask[d] ? 1 : a.shape[d];
    if (s.mask[d]) s.n_red *= a.shape[d];
    if (!s.mask[d] || keepdim) s.out_shape.push_back(keep[d]);
  }
  s.ostr = contiguous_strides(keep);
  for (int d = 0; d < nd; ++d)
    if (s.mask[d]) s.ostr[d] = 0;
  return s;
}

// The input seen in memory order, outermost dim first; strides in elements.
struct Plan {
  std::vector<int64_t> size, istr, ostr;
  std::vector<char> red;
  int64_t ioff = 0, ooff = 0;  // element offsets of the first visited element
};

Plan make_plan(const Array& a, const Spec& s) {
  struct D {
    int64_t size, is, os;
    bool red;
  };
  std::vector<D> ds;
  Plan p;
  for (int d = 0; d < a.ndim(); ++d) {
    if (a.shape[d] == 1) continue;
    D x{a.shape[d], a.strides[d], s.ostr[d], static_cast<bool>(s.mask[d])};
    if (x.is < 0) {  // walk flipped dims forwards; the output index flips with them
      p.ioff += (x.size - 1) * x.is;
      x.is = -x.is;
      p.ooff += (x.size - 1) * x.os;
      x.os = -x.os;
    }
    ds.push_back(x);
  }
  // Largest stride outermost; broadcast (stride 0) dims go outermost too, as
  // they cost no memory traffic. Stable: ties keep their logical order.
  auto key = [](const D& x) { return x.is == 0 ? std::numeric_limits<int64_t>::max() : x.is; };
  std::stable_sort(ds.begin(), ds.end(), [&](const D& x, const D& y) { return key(x) > key(y); });
  std::vector<D> merged;
  for (const D& x : ds) {
    if (!merged.empty()) {
      D& m = merged.back();
      if (m.red == x.red && m.is == x.is * x.size && m.os == x.os * x.size) {
        m.size *= x.size;
        m.is = x.is;
        m.os = x.os;
        continue;
      }
    }
    merged.push_back(x);
  }
  // Every plan holds a reduced dim: a size-1 one in front when all reduced
  // dims had size 1 (then each output maps one input element).
  bool has_red = false;
  for (const D& x : merged) has_red |= x.red;
  if (!has_red) merged.insert(merged.begin(), D{1, 0, 0, true});
  for (const D& x : merged) {
    p.size.push_back(x.size);
    p.istr.push_back(x.is);
    p.ostr.push_back(x.os);
    p.red.push_back(x.red);
  }
  return p;
}

// Small index buffer that avoids the heap for the usual number of dims.
struct IndexBuf {
  int64_t small[16];
  std::vector<int64_t> big;
  int64_t* get(size_t n) {
    if (n <= 16) return small;
    big.assign(n, 0);
    return big.data();
  }
};

// Innermost plan dim reduced (or short): each output reduces its own runs.
//   in: input at element [0, ..., 0], out/aux: output-shaped arrays.
template <class Op>
void reduce_generic(const Op& op, const Plan& pl, const typename Op::in_t* in, typename Op::out_t* out,
                    const typename Op::out_t* aux) {
  using T = typename Op::in_t;
  using A = typename Op::acc_t;
  std::vector<int64_t> ks, kis, kos, rs, ris;
  for (size_t d = 0; d < pl.size.size(); ++d) {
    if (pl.red[d]) {
      rs.push_back(pl.size[d]);
      ris.push_back(pl.istr[d]);
    } else {
      ks.push_back(pl.size[d]);
      kis.push_back(pl.istr[d]);
      kos.push_back(pl.ostr[d]);
    }
  }
  const int nk = static_cast<int>(ks.size()), nr = static_cast<int>(rs.size());
  int64_t n_out = 1, n_red = 1;
  for (int64_t x : ks) n_out *= x;
  for (int64_t x : rs) n_red *= x;
  const int64_t n0 = rs[nr - 1], s0 = ris[nr - 1];
  auto comb = [&](A a, A b) { return op.combine(a, b); };

  auto run = [&](const T* p, int64_t n, int64_t s, A auxv) -> A {
    constexpr int fast = fast_kind<Op>::value;
    if constexpr (fast == kFastSum) {
      if (s == 1) return sum_contig(p, n);
    } else if constexpr (fast == kFastMax || fast == kFastMin) {
      if (s == 1) return ext_contig<T, fast == kFastMax>(p, n, op.identity());
    }
    if (s == 1)  // separate instantiation so the contiguous loop vectorises
      return lanes_reduce<Op::kPairwise, is_staged<Op>::value>(0, n, op.identity(), comb,
                                                               [&](int64_t i) { return op.map(p[i], auxv); });
    return lanes_reduce<Op::kPairwise, is_staged<Op>::value>(0, n, op.identity(), comb,
                                       [&](int64_t i) { return op.map(p[i * s], auxv); });
  };
  // Reduces flat reduced indices [b0, b1) of the output whose input starts at base.
  auto block = [&](const T* base, int64_t b0, int64_t b1, A auxv) -> A {
    if (nr == 1) return run(base + b0 * s0, b1 - b0, s0, auxv);
    IndexBuf ib;
    int64_t* idx = ib.get(nr);
    int64_t rem = b0, off = 0;
    for (int d = nr - 1; d >= 0; --d) {
      idx[d] = rem % rs[d];
      rem /= rs[d];
      if (d < nr - 1) off += idx[d] * ris[d];
    }
    Cascade<Op> c(op);
    int64_t pos = b0;
    for (;;) {
      int64_t len = std::min(n0 - idx[nr - 1], b1 - pos);
      c.push(run(base + off + idx[nr - 1] * s0, len, s0, auxv));
      pos += len;
      if (pos >= b1) break;
      idx[nr - 1] = 0;
      for (int d = nr - 2; d >= 0; --d) {
        ++idx[d];
        off += ris[d];
        if (idx[d] < rs[d]) break;
        off -= rs[d] * ris[d];
        idx[d] = 0;
      }
    }
    return c.result();
  };
  auto locate = [&](int64_t m, int64_t& io, int64_t& oo) {
    io = pl.ioff;
    oo = pl.ooff;
    for (int d = nk - 1; d >= 0; --d) {
      int64_t i = m % ks[d];
      m /= ks[d];
      io += i * kis[d];
      oo += i * kos[d];
    }
  };
  auto aux_at = [&](int64_t oo) -> A {
    if constexpr (Op::kAux)
      return static_cast<A>(aux[oo]);
    else
      return A(0);
  };

  const int64_t nb = (n_red + kBlock - 1) / kBlock;
  const int64_t out_grain = std::max<int64_t>(1, kReduceGrain / n_red);
  if (nb == 1) {
    parallel_for(n_out, out_grain, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) {
        int64_t io, oo;
        locate(m, io, oo);
        A av = aux_at(oo);
        out[oo] = op.finalize(block(in + io, 0, n_red, av), av);
      }
    });
    return;
  }
  // Long reductions: fixed blocks of kBlock reduced elements are independent
  // tasks (this is what parallelises a full reduction), then each output
  // combines its block partials in a balanced tree.
  Scratch<A> part(n_out * nb);
  parallel_for(n_out * nb, kReduceGrain / kBlock, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t m = t / nb, b = t % nb, io, oo;
      locate(m, io, oo);
      part[t] = block(in + io, b * kBlock, std::min(n_red, (b + 1) * kBlock), aux_at(oo));
    }
  });
  parallel_for(n_out, std::max<int64_t>(1, kReduceGrain / nb), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      int64_t io, oo;
      locate(m, io, oo);
      out[oo] = op.finalize(tree_combine(op, part.data() + m * nb, nb, 1), aux_at(oo));
    }
  });
}

// Innermost plan dim kept and long enough: accumulate whole input rows into a
// row of accumulators (e.g. sum over dim 0 of (N, C) reads the matrix once,
// front to back). Tasks are (outer kept group, column chunk[, row block]).
template <class Op>
void reduce_rows(const Op& op, const Plan& pl, const typename Op::in_t* in, typename Op::out_t* out,
                 const typename Op::out_t* aux) {
  using T = typename Op::in_t;
  using A = typename Op::acc_t;
  const int nd = static_cast<int>(pl.size.size());
  const int64_t C = pl.size[nd - 1], cis = pl.istr[nd - 1], cos = pl.ostr[nd - 1];
  std::vector<int64_t> ks, kis, kos, rs, ris;
  for (int d = 0; d < nd - 1; ++d) {
    if (pl.red[d]) {
      rs.push_back(pl.size[d]);
      ris.push_back(pl.istr[d]);
    } else {
      ks.push_back(pl.size[d]);
      kis.push_back(pl.istr[d]);
      kos.push_back(pl.ostr[d]);
    }
  }
  const int nk = static_cast<int>(ks.size()), nr = static_cast<int>(rs.size());
  int64_t G = 1, NR = 1;
  for (int64_t x : ks) G *= x;
  for (int64_t x : rs) NR *= x;
  const int64_t ncc = (C + kColChunk - 1) / kColChunk;
  // Row blocks only when the (group, chunk) tasks are too few to share out;
  // the rule reads the shape only, so results do not depend on threads.
  int64_t rpb = NR, nrb = 1;
  if (G * ncc < kMinTasks && NR > kLeafRows) {
    int64_t want = (kMinTasks + G * ncc - 1) / (G * ncc);
    rpb = std::max((NR + want - 1) / want, (kBlock + C - 1) / C);
    rpb = (rpb + kLeafRows - 1) / kLeafRows * kLeafRows;
    nrb = (NR + rpb - 1) / rpb;
    if (nrb == 1) rpb = NR;
  }
  int64_t leaves = (std::min(rpb, NR) + kLeafRows - 1) / kLeafRows, depth = 1;
  while ((int64_t{1} << (depth - 1)) <= leaves) ++depth;  // cascade levels + current leaf
  const int64_t levels = Op::kPairwise ? depth + 1 : 1;
  const int64_t wmax = std::min(C, kColChunk);
  Scratch<A> part(nrb > 1 ? G * nrb * C : 0);

  auto locate = [&](int64_t g, int64_t& io, int64_t& oo) {
    io = pl.ioff;
    oo = pl.ooff;
    for (int d = nk - 1; d >= 0; --d) {
      int64_t i = g % ks[d];
      g /= ks[d];
      io += i * kis[d];
      oo += i * kos[d];
    }
  };
  auto comb = [&](A a, A b) { return op.combine(a, b); };

  const int64_t ntask = G * ncc * nrb;
  const int64_t work = std::min(rpb, NR) * wmax;
  const int64_t grain = std::max<int64_t>(1, kReduceGrain / std::max<int64_t>(work, 1));
  parallel_for(ntask, grain, [&](int64_t t0, int64_t t1) {
    Scratch<A> buf(levels * wmax);
    IndexBuf ib;
    int64_t* idx = ib.get(std::max(nr, 1));
    int64_t cnt[66];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t rb = t % nrb, cc = (t / nrb) % ncc, g = t / (nrb * ncc);
      int64_t gio, goo;
      locate(g, gio, goo);
      const int64_t c0 = cc * kColChunk, w = std::min(kColChunk, C - c0);
      const int64_t r0 = rb * rpb, r1 = std::min(NR, r0 + rpb);
      const T* gbase = in + gio + c0 * cis;
      const typename Op::out_t* arow = Op::kAux ? aux + goo + c0 * cos : nullptr;
      // row odometer over the reduced dims, starting at row r0
      int64_t rem = r0, roff = 0;
      for (int d = nr - 1; d >= 0; --d) {
        idx[d] = rem % rs[d];
        rem /= rs[d];
        roff += idx[d] * ris[d];
      }
      // Rows go in leaves of kLeafRows consecutive rows; for pairwise ops
      // each leaf then enters the cascade. Within a leaf, rows combine in
      // order, so fusing the 8 rows of a full contiguous leaf into one pass
      // over the columns (one load/store of the accumulators per 8 rows
      // instead of per row) gives the same bits as row after row.
      int top = 0;
      const T* rp[kLeafRows];
      std::fill(buf.data(), buf.data() + w, op.identity());
      for (int64_t r = r0; r < r1;) {
        A* leaf = buf.data() + top * wmax;
        if (Op::kPairwise && top > 0) std::fill(leaf, leaf + w, op.identity());
        const int nrow = static_cast<int>(std::min<int64_t>(kLeafRows, r1 - r));
        for (int q = 0; q < nrow; ++q) {
          rp[q] = gbase + roff;
          for (int d = nr - 1; d >= 0; --d) {  // next row
            ++idx[d];
            roff += ris[d];
            if (idx[d] < rs[d]) break;
            roff -= rs[d] * ris[d];
            idx[d] = 0;
          }
        }
        r += nrow;
        if constexpr (!Op::kAux) {
          if (cis == 1 && nrow == kLeafRows) {
            for (int64_t j = 0; j < w; ++j) {
              A v = leaf[j];
              for (int q = 0; q < kLeafRows; ++q) v = comb(v, op.map(rp[q][j], A(0)));
              leaf[j] = v;
            }
          } else {
            for (int q = 0; q < nrow; ++q) {
              const T* p = rp[q];
              if (cis == 1)  // the contiguous case, kept separate so it vectorises
                for (int64_t j = 0; j < w; ++j) leaf[j] = comb(leaf[j], op.map(p[j], A(0)));
              else
                for (int64_t j = 0; j < w; ++j) leaf[j] = comb(leaf[j], op.map(p[j * cis], A(0)));
            }
          }
        } else {
          for (int q = 0; q < nrow; ++q) {
            const T* p = rp[q];
            if (cis == 1 && cos == 1)  // contiguous: vectorises
              for (int64_t j = 0; j < w; ++j) leaf[j] = comb(leaf[j], op.map(p[j], static_cast<A>(arow[j])));
            else
              for (int64_t j = 0; j < w; ++j)
                leaf[j] = comb(leaf[j], op.map(p[j * cis], static_cast<A>(arow[j * cos])));
          }
        }
        if (Op::kPairwise) {  // the leaf into the cascade
          cnt[top++] = 1;
          while (top >= 2 && cnt[top - 1] == cnt[top - 2]) {
            A* x = buf.data() + (top - 2) * wmax;
            const A* y = buf.data() + (top - 1) * wmax;
            for (int64_t j = 0; j < w; ++j) x[j] = comb(x[j], y[j]);
            cnt[top - 2] *= 2;
            --top;
          }
        }
      }
      for (int i = top - 2; i >= 0; --i) {  // fold the cascade, newest last
        A* x = buf.data() + i * wmax;
        const A* y = buf.data() + (i + 1) * wmax;
        for (int64_t j = 0; j < w; ++j) x[j] = comb(x[j], y[j]);
      }
      const A* res = buf.data();
      if (nrb == 1) {
        for (int64_t j = 0; j < w; ++j) {
          A av = A(0);
          if constexpr (Op::kAux) av = static_cast<A>(arow[j * cos]);
          out[goo + (c0 + j) * cos] = op.finalize(res[j], av);
        }
      } else {
        std::copy(res, res + w, part.data() + (g * nrb + rb) * C + c0);
      }
    }
  });
  if (nrb == 1) return;
  parallel_for(G, std::max<int64_t>(1, kReduceGrain / (nrb * C)), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      int64_t gio, goo;
      locate(g, gio, goo);
      for (int64_t c = 0; c < C; ++c) {
        A av = A(0);
        if constexpr (Op::kAux) av = static_cast<A>(aux[goo + c * cos]);
        out[goo + c * cos] = op.finalize(tree_combine(op, part.data() + g * nrb * C + c, nrb, C), av);
      }
    }
  });
}

// Runs `op` over `a` into `out` (contiguous, spec.out_shape); aux, if the op
// reads one, is an array shaped like out.
template <class Op>
void run_reduce(const Op& op, const Array& a, const Spec& spec, const Array& out, const Array* aux = nullptr) {
  using A = typename Op::acc_t;
  using O = typename Op::out_t;
  const int64_t n_out = out.numel();
  if (n_out == 0) return;
  O* po = out.data<O>();
  const O* pa = aux ? aux->data<O>() : nullptr;
  if (a.numel() == 0) {  // reducing over an empty dim: the identity, finalized
    for (int64_t i = 0; i < n_out; ++i) po[i] = op.finalize(op.identity(), pa ? static_cast<A>(pa[i]) : A(0));
    return;
  }
  Plan pl = make_plan(a, spec);
  const typename Op::in_t* pin = a.data<typename Op::in_t>();
  if (!pl.red.back() && pl.size.back() >= kMinRow)
    reduce_rows(op, pl, pin, po, pa);
  else
    reduce_generic(op, pl, pin, po, pa);
}

// ---- front-end helpers ------------------------------------------------------------

void require_float(const Array& a, const char* op) {
  if (!is_floating(a.dtype))
    throw TypeError(std::string(op) + ": expected a floating-point input (float32 or float64), got " +
                    dtype_name(a.dtype));
}

// amax/amin/max/argmax have no identity: an empty reduced dim is an error.
void check_nonempty(const Array& a, const Spec& s, bool all_dims, const char* op) {
  if (a.numel() != 0) return;
  if (all_dims)
    throw std::invalid_argument(std::string(op) +
                                ": expected reduction dim to be specified for input.numel() == 0 (the "
                                "reduction has no identity); reduce over a dim instead");
  for (int d = 0; d < a.ndim(); ++d)
    if (s.mask[d] && a.shape[d] == 0)
      throw std::out_of_range(std::string(op) + ": expected reduction dim " + std::to_string(d) +
                              " to have non-zero size");
}

// Runs OpT<T> for the input's dtype T; the output dtype is the op's out_t.
// no_identity: extrema, for which an empty reduced dim is an error.
template <template <class> class OpT>
Array simple_reduce(const Array& a, const std::vector<int64_t>& dims, bool keepdim, const char* op,
                    bool no_identity) {
  if (is_cuda(a.device())) return cuda_only(op, a.device(), [&] { return cuda::reduce(op, a, dims, keepdim); });
  return on_device(op, a.device(), [&] {
    Spec s = make_spec(a, dims, keepdim, op);
    if (no_identity) check_nonempty(a, s, dims.empty(), op);
    Array out;
    dispatch(a.dtype, [&](auto tag) {
      using Op = OpT<decltype(tag)>;
      out = empty(s.out_shape, dtype_of<typename Op::out_t>::value);
      run_reduce(Op{}, a, s, out);
    });
    return out;
  });
}

template <class T>
using AmaxOp = ExtremumOp<T, true>;
template <class T>
using AminOp = ExtremumOp<T, false>;
template <class T>
using AllOp = BoolOp<T, true>;
template <class T>
using AnyOp = BoolOp<T, false>;

// (outer, n, inner) around dim d of a contiguous shape.
struct Split3 {
  int64_t outer = 1, n = 1, inner = 1;
};
Split3 split3(const Shape& shape, int d) {
  Split3 s;
  if (shape.empty()) return s;
  for (int i = 0; i < d; ++i) s.outer *= shape[i];
  s.n = shape[d];
  for (size_t i = d + 1; i < shape.size(); ++i) s.inner *= shape[i];
  return s;
}

Shape drop_dim(const Shape& shape, int d, bool keepdim) {
  Shape r = shape;
  if (r.empty()) return r;
  if (keepdim)
    r[d] = 1;
  else
    r.erase(r.begin() + d);
  return r;
}

// The single-dim kernels read unit-stride rows: a strided input is copied once.
Array as_contig(const Array& a) { return a.is_contiguous() ? a : contiguous(a); }

// ---- arg-extrema ---------------------------------------------------------------

// Args: x (outer, n, inner) contiguous, n >= 1; vals (outer, inner) or null;
// idx (outer, inner) int64. First occurrence wins; NaN beats everything.
template <bool Max, class T>
void argext_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, T* vals, int64_t* idx) {
  auto better = [](T v, T best) {  // bitwise ops: branch-free, see max_nan
    if (Max) return (v > best) | (is_nan(v) & !is_nan(best));
    return (v < best) | (is_nan(v) & !is_nan(best));
  };
  if (inner == 1) {
    // Vectorised extremum first, then a scan for its first position.
    parallel_for(outer, std::max<int64_t>(1, kGrain / n), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const T* row = x + o * n;
        T m;
        if constexpr (kHasVec<T>)
          m = ext_contig<T, Max>(row, n, row[0]);
        else
          m = lanes_reduce<false>(
              0, n, row[0], [](T a, T b) { return Max ? max_nan(a, b) : min_nan(a, b); },
              [&](int64_t i) { return row[i]; });
        int64_t k = 0;
        if (is_nan(m))
          while (!is_nan(row[k])) ++k;
        else
          while (!(row[k] == m)) ++k;
        if (vals) vals[o] = row[k];
        idx[o] = k;
      }
    });
    return;
  }
  const int64_t ncc = (inner + kColChunk - 1) / kColChunk;
  parallel_for(outer * ncc, std::max<int64_t>(1, kGrain / (n * std::min(inner, kColChunk))),
               [&](int64_t t0, int64_t t1) {
                 Scratch<T> best(kColChunk);
                 Scratch<int64_t> bi(kColChunk);
                 for (int64_t t = t0; t < t1; ++t) {
                   const int64_t o = t / ncc, c0 = (t % ncc) * kColChunk, w = std::min(kColChunk, inner - c0);
                   const T* base = x + o * n * inner + c0;
                   std::copy(base, base + w, best.data());
                   std::fill(bi.data(), bi.data() + w, 0);
                   for (int64_t r = 1; r < n; ++r) {
                     const T* row = base + r * inner;
                     for (int64_t j = 0; j < w; ++j)
                       if (better(row[j], best[j])) {
                         best[j] = row[j];
                         bi[j] = r;
                       }
                   }
                   if (vals) std::copy(best.data(), best.data() + w, vals + o * inner + c0);
                   std::copy(bi.data(), bi.data() + w, idx + o * inner + c0);
                 }
               });
}

template <bool Max>
std::pair<Array, Array> max_min_dim(const Array& a0, int64_t dim, bool keepdim, const char* op) {
  if (is_cuda(a0.device())) return cuda_only(op, a0.device(), [&] { return cuda::max_min_dim(a0, dim, keepdim, Max, op); });
  return on_device(op, a0.device(), [&] {
    int d = wrap_dim(dim, a0.ndim(), op);
    if (a0.ndim() > 0 && a0.shape[d] == 0)
      throw std::out_of_range(std::string(op) + ": expected reduction dim " + std::to_string(d) +
                              " to have non-zero size");
    Shape os = drop_dim(a0.shape, d, keepdim);
    Array vals = empty(os, a0.dtype), idx = empty(os, DType::Int64);
    if (a0.numel() == 0) return std::make_pair(vals, idx);
    Array a = as_contig(a0);
    Split3 s = split3(a.shape, d);
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      argext_kernel<Max, T>(a.data<T>(), s.outer, s.n, s.inner, vals.data<T>(), idx.data<int64_t>());
    });
    return std::make_pair(vals, idx);
  });
}

template <bool Max>
Array arg_ext(const Array& a0, std::optional<int64_t> dim, bool keepdim, const char* op) {
  if (is_cuda(a0.device())) return cuda_only(op, a0.device(), [&] { return cuda::arg_ext(a0, dim, keepdim, Max, op); });
  return on_device(op, a0.device(), [&] {
    if (a0.dtype == DType::Bool) throw TypeError(std::string(op) + ": does not support bool input");
    if (!dim) {  // over the flattened array
      if (a0.numel() == 0)
        throw std::out_of_range(std::string(op) + ": expected reduction dim to be specified for input.numel() == 0");
      Array a = as_contig(a0);
      Shape os = keepdim ? Shape(a.ndim(), 1) : Shape{};
      Array idx = empty(os, DType::Int64);
      dispatch(a.dtype, [&](auto tag) {
        using T = decltype(tag);
        argext_kernel<Max, T>(a.data<T>(), 1, a.numel(), 1, nullptr, idx.data<int64_t>());
      });
      return idx;
    }
    int d = wrap_dim(*dim, a0.ndim(), op);
    if (a0.ndim() > 0 && a0.shape[d] == 0)
      throw std::out_of_range(std::string(op) + ": expected reduction dim " + std::to_string(d) +
                              " to have non-zero size");
    Array idx = empty(drop_dim(a0.shape, d, keepdim), DType::Int64);
    if (a0.numel() == 0) return idx;
    Array a = as_contig(a0);
    Split3 s = split3(a.shape, d);
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      argext_kernel<Max, T>(a.data<T>(), s.outer, s.n, s.inner, nullptr, idx.data<int64_t>());
    });
    return idx;
  });
}

// ---- scans ---------------------------------------------------------------------

// Args: x (outer, n, inner) contiguous, y the same shape. Sequential scan in
// accumulator A (double for floats, like PyTorch's CPU cumsum; int64 for
// integers, wrapping).
template <class T, class A, class O, class Comb>
void scan_kernel(const T* x, O* y, int64_t outer, int64_t n, int64_t inner, A init, Comb comb) {
  if (inner == 1) {
    parallel_for(outer, std::max<int64_t>(1, kGrain / n), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        A acc = init;
        const T* xr = x + o * n;
        O* yr = y + o * n;
        for (int64_t i = 0; i < n; ++i) {
          acc = comb(acc, static_cast<A>(xr[i]));
          yr[i] = static_cast<O>(acc);
        }
      }
    });
    return;
  }
  // Rows of `inner` elements: scan whole rows at once, reading memory in order.
  const int64_t ncc = (inner + kColChunk - 1) / kColChunk;
  parallel_for(outer * ncc, std::max<int64_t>(1, kGrain / (n * std::min(inner, kColChunk))),
               [&](int64_t t0, int64_t t1) {
                 std::vector<A> acc(kColChunk);
                 for (int64_t t = t0; t < t1; ++t) {
                   const int64_t o = t / ncc, c0 = (t % ncc) * kColChunk, w = std::min(kColChunk, inner - c0);
                   std::fill(acc.begin(), acc.begin() + w, init);
                   for (int64_t r = 0; r < n; ++r) {
                     const T* xr = x + (o * n + r) * inner + c0;
                     O* yr = y + (o * n + r) * inner + c0;
                     for (int64_t j = 0; j < w; ++j) {
                       acc[j] = comb(acc[j], static_cast<A>(xr[j]));
                       yr[j] = static_cast<O>(acc[j]);
                     }
                   }
                 }
               });
}

template <bool Prod>
Array scan(const Array& a0, int64_t dim, const char* op) {
  if (is_cuda(a0.device())) return cuda_only(op, a0.device(), [&] { return cuda::scan(a0, dim, Prod, op); });
  return on_device(op, a0.device(), [&] {
    int d = wrap_dim(dim, a0.ndim(), op);
    DType ot = is_floating(a0.dtype) ? a0.dtype : DType::Int64;
    Array out = empty(a0.shape, ot);
    if (a0.numel() == 0) return out;
    Array a = as_contig(a0);
    Split3 s = split3(a.shape, d);
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      using A = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
      using O = std::conditional_t<std::is_floating_point_v<T>, T, int64_t>;
      if constexpr (Prod)
        scan_kernel<T, A, O>(a.data<T>(), out.data<O>(), s.outer, s.n, s.inner, A(1),
                             [](A x, A y) { return wmul(x, y); });
      else
        scan_kernel<T, A, O>(a.data<T>(), out.data<O>(), s.outer, s.n, s.inner, A(0),
                             [](A x, A y) { return wadd(x, y); });
    });
    return out;
  });
}

// ---- softmax ---------------------------------------------------------------------

// The softmax kernels come from the AVX2 build when the CPU has AVX2 + FMA,
// unless the process forced the baseline (FASTGRAD_CPU_CAPABILITY=scalar or
// _C.set_cpu_capability("scalar"), a setting owned by gemm.cpp).
bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool hw = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return hw;
#else
  return false;
#endif
}

template <class T>
const SoftmaxKernels<T>& softmax_table() {
  static const SoftmaxKernels<T> base = reduce_detail::base::softmax_kernels<T>();
  // Not even the table getter may run on a CPU without AVX2: it is AVX2 code.
  static const SoftmaxKernels<T> avx2 = [] {
    if (!cpu_has_avx2()) return base;
    if constexpr (std::is_same_v<T, float>)
      return reduce_detail::softmax_kernels_avx2_f32();
    else
      return reduce_detail::softmax_kernels_avx2_f64();
  }();
  return cpu_has_avx2() && gemm_info() != "scalar" ? avx2 : base;
}

// The exp of the softmax kernels: vecmath's span kernel for the capability in
// force (AVX-512 where the CPU has it), looked up once per op; null under
// "scalar" (the kernels then call vexp per element).
template <class T>
reduce_detail::ExpSpan<T> exp_span() {
  const vecmath::Kernels<T>* vk;
  if constexpr (std::is_same_v<T, float>)
    vk = vecmath::kernels_f32();
  else
    vk = vecmath::kernels_f64();
  return vk ? vk->unary[vecmath::kExp] : nullptr;
}

// Runs rows(r0, r1) over the `outer` rows (inner == 1) or cols(o, c0, w) over
// (outer index, column block) tasks (inner > 1), in parallel. Every output
// element is computed by one task, so any thread count gives the same bits.
template <class Rows, class Cols>
void for_softmax_tasks(const Split3& s, const Rows& rows, const Cols& cols) {
  if (s.inner == 1) {
    parallel_for(s.outer, std::max<int64_t>(1, kGrain / s.n), rows);
    return;
  }
  const int64_t ncc = (s.inner + kCols - 1) / kCols;
  parallel_for(s.outer * ncc, std::max<int64_t>(1, kGrain / (s.n * std::min(s.inner, kCols))),
               [&](int64_t t0, int64_t t1) {
                 for (int64_t t = t0; t < t1; ++t) {
                   const int64_t o = t / ncc, c0 = (t % ncc) * kCols;
                   cols(o, c0, std::min(kCols, s.inner - c0));
                 }
               });
}

Array softmax_impl(const Array& a0, int64_t dim, bool log, const char* op) {
  require_float(a0, op);
  if (is_cuda(a0.device())) return cuda_only(op, a0.device(), [&] { return cuda::softmax(a0, dim, log, op); });
  return on_device(op, a0.device(), [&] {
    int d = wrap_dim(dim, a0.ndim(), op);
    Array out = empty(a0.shape, a0.dtype);
    if (a0.numel() == 0) return out;
    Array a = as_contig(a0);
    Split3 s = split3(a.shape, d);
    dispatch_float(a.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const SoftmaxKernels<T>& k = softmax_table<T>();
      const reduce_detail::ExpSpan<T> ex = exp_span<T>();
      const T* x = a.data<T>();
      T* y = out.data<T>();
      for_softmax_tasks(
          s, [&](int64_t r0, int64_t r1) { k.fwd_rows[log](x, y, r0, r1, s.n, ex); },
          [&](int64_t o, int64_t c0, int64_t w) {
            int64_t off = o * s.n * s.inner + c0;
            k.fwd_cols[log](x + off, y + off, s.n, s.inner, w, ex);
          });
    });
    return out;
  });
}

Array softmax_bw_impl(const Array& g0, const Array& o0, int64_t dim, bool log, const char* op) {
  require_float(g0, op);
  if (g0.dtype != o0.dtype)
    throw TypeError(std::string(op) + ": grad and output dtypes differ (" + dtype_name(g0.dtype) + " vs " +
                    dtype_name(o0.dtype) + ")");
  if (g0.shape != o0.shape)
    throw std::invalid_argument(std::string(op) + ": grad shape " + shape_str(g0.shape) +
                                " does not match output shape " + shape_str(o0.shape));
  check_same_device(op, g0.device(), o0.device());
  if (is_cuda(g0.device())) return cuda_only(op, g0.device(), [&] { return cuda::softmax_backward(g0, o0, dim, log, op); });
  return on_device(op, g0.device(), [&] {
    int d = wrap_dim(dim, g0.ndim(), op);
    Array gi = empty(g0.shape, g0.dtype);
    if (g0.numel() == 0) return gi;
    Array g = as_contig(g0), o = as_contig(o0);
    Split3 s = split3(g.shape, d);
    dispatch_float(g.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const SoftmaxKernels<T>& k = softmax_table<T>();
      const reduce_detail::ExpSpan<T> ex = exp_span<T>();
      const T *gp = g.data<T>(), *op_ = o.data<T>();
      T* ip = gi.data<T>();
      for_softmax_tasks(
          s, [&](int64_t r0, int64_t r1) { k.bwd_rows[log](gp, op_, ip, r0, r1, s.n, ex); },
          [&](int64_t b, int64_t c0, int64_t w) {
            int64_t off = b * s.n * s.inner + c0;
            k.bwd_cols[log](gp + off, op_ + off, ip + off, s.n, s.inner, w, ex);
          });
    });
    return gi;
  });
}

}  // namespace

// ---- public entry points -----------------------------------------------------------

Array sum(const Array& a0, const std::vector<int64_t>& dims, bool keepdim, std::optional<DType> dtype) {
  if (is_cuda(a0.device())) return cuda_only("sum", a0.device(), [&] { return cuda::sum(a0, dims, keepdim, dtype); });
  return on_device("sum", a0.device(), [&] {
    // With an explicit dtype PyTorch converts the input first, then sums in
    // that type; the conversion here is that one extra copy.
    Array a = (dtype && *dtype != a0.dtype) ? astype(a0, *dtype) : a0;
    DType ot = dtype ? *dtype : (is_floating(a.dtype) ? a.dtype : DType::Int64);
    Spec s = make_spec(a, dims, keepdim, "sum");
    Array out = empty(s.out_shape, ot);
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_floating_point_v<T>) {
        run_reduce(SumOp<T, T, T>{}, a, s, out);
      } else if (ot == DType::Int64) {  // integers add up in int64, wrapping
        run_reduce(SumOp<T, int64_t, int64_t>{}, a, s, out);
      } else {  // an explicit int32/bool dtype: int64 sum narrowed at the end
        run_reduce(SumOp<T, int64_t, T>{}, a, s, out);
      }
    });
    return out;
  });
}

Array mean(const Array& a, const std::vector<int64_t>& dims, bool keepdim) {
  require_float(a, "mean");
  if (is_cuda(a.device())) return cuda_only("mean", a.device(), [&] { return cuda::reduce("mean", a, dims, keepdim); });
  return on_device("mean", a.device(), [&] {
    Spec s = make_spec(a, dims, keepdim, "mean");
    Array out = empty(s.out_shape, a.dtype);
    dispatch_float(a.dtype, "mean", [&](auto tag) {
      using T = decltype(tag);
      run_reduce(MeanOp<T>{s.n_red}, a, s, out);
    });
    return out;
  });
}

Array prod(const Array& a, const std::vector<int64_t>& dims, bool keepdim) {
  if (is_cuda(a.device())) return cuda_only("prod", a.device(), [&] { return cuda::reduce("prod", a, dims, keepdim); });
  return on_device("prod", a.device(), [&] {
    Spec s = make_spec(a, dims, keepdim, "prod");
    Array out = empty(s.out_shape, is_floating(a.dtype) ? a.dtype : DType::Int64);
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_floating_point_v<T>)
        run_reduce(ProdOp<T, T, T>{}, a, s, out);
      else
        run_reduce(ProdOp<T, int64_t, int64_t>{}, a, s, out);
    });
    return out;
  });
}

Array amax(const Array& a, const std::vector<int64_t>& dims, bool keepdim) {
  return simple_reduce<AmaxOp>(a, dims, keepdim, "amax", true);
}

Array amin(const Array& a, const std::vector<int64_t>& dims, bool keepdim) {
  return simple_reduce<AminOp>(a, dims, keepdim, "amin", true);
}

Array all(const Array& a, const std::vector<int64_t>& dims, bool keepdim) {
  return simple_reduce<AllOp>(a, dims, keepdim, "all", false);
}

Array any(const Array& a, const std::vector<int64_t>& dims, bool keepdim) {
  return simple_reduce<AnyOp>(a, dims, keepdim, "any", false);
}

Array var(const Array& a, const std::vector<int64_t>& dims, double correction, bool keepdim) {
  require_float(a, "var");
  if (is_cuda(a.device())) return cuda_only("var", a.device(), [&] { return cuda::reduce("var", a, dims, keepdim, correction); });
  return on_device("var", a.device(), [&] {
    Spec s = make_spec(a, dims, keepdim, "var");
    Array out = empty(s.out_shape, a.dtype);
    Array m = empty(s.out_shape, a.dtype);  // pass 1: the mean, laid out like out
    dispatch_float(a.dtype, "var", [&](auto tag) {
      using T = decltype(tag);
      run_reduce(MeanOp<T>{s.n_red}, a, s, m);
      double divisor = std::max(0.0, static_cast<double>(s.n_red) - correction);
      run_reduce(VarOp<T>{divisor}, a, s, out, &m);
    });
    return out;
  });
}

namespace {
// logsumexp of `rows` contiguous runs of n elements (the reduced dims are the
// trailing ones of a contiguous input): per row the max, then x - max in
// chunks through vecmath's span exp (AVX-512 where the CPU has it; vexp per
// element under "scalar") and a pairwise sum per chunk. The generic engine's
// two passes map exp through the scalar vexp of the base build instead
// (its lane mask for masked inputs made that 15% slower). Each row is one
// task's: any thread count gives the same bits.
template <class T>
void logsumexp_rows(const T* x, T* y, int64_t rows, int64_t n, reduce_detail::ExpSpan<T> ex) {
  constexpr int64_t kChunk = 2048;  // 8-16 KB of exps, stays in L1
  parallel_for(rows, std::max<int64_t>(1, kGrain / n), [&](int64_t r0, int64_t r1) {
    alignas(64) T buf[kChunk];
    for (int64_t r = r0; r < r1; ++r) {
      const T* p = x + r * n;
      T m = ext_contig<T, true>(p, n, -std::numeric_limits<T>::infinity());
      if (!std::isfinite(m)) m = T(0);  // inf / all -inf / NaN rows come out right from shift 0
      T acc = T(0);
      for (int64_t c = 0; c < n; c += kChunk) {
        const int64_t len = std::min(kChunk, n - c);
        for (int64_t i = 0; i < len; ++i) buf[i] = p[c + i] - m;
        if (ex) {
          ex(buf, buf, len);
        } else {
          for (int64_t i = 0; i < len; ++i) buf[i] = vexp(buf[i]);
        }
        acc += sum_contig(buf, len);
      }
      y[r] = std::log(acc) + m;
    }
  });
}
}  // namespace

Array logsumexp(const Array& a, const std::vector<int64_t>& dims, bool keepdim) {
  require_float(a, "logsumexp");
  if (is_cuda(a.device())) return cuda_only("logsumexp", a.device(), [&] { return cuda::reduce("logsumexp", a, dims, keepdim); });
  return on_device("logsumexp", a.device(), [&] {
    Spec s = make_spec(a, dims, keepdim, "logsumexp");
    Array out = empty(s.out_shape, a.dtype);
    Array shift = empty(s.out_shape, a.dtype);
    dispatch_float(a.dtype, "logsumexp", [&](auto tag) {
      using T = decltype(tag);
      if (a.numel() == 0) {  // sum of no exps is 0: log 0 = -inf, as in PyTorch
        std::fill(out.data<T>(), out.data<T>() + out.numel(), -std::numeric_limits<T>::infinity());
        return;
      }
      // Fast path: the reduced dims are the trailing ones of a contiguous input.
      int first_red = a.ndim();
      while (first_red > 0 && s.mask[first_red - 1]) --first_red;
      bool trailing = a.is_contiguous() && first_red < a.ndim();
      for (int d = 0; d < first_red; ++d) trailing = trailing && !s.mask[d];
      if (trailing) {
        logsumexp_rows(a.data<T>(), out.data<T>(), out.numel(), s.n_red, exp_span<T>());
        return;
      }
      run_reduce(ExtremumOp<T, true>{}, a, s, shift);
      T* sp = shift.data<T>();
      for (int64_t i = 0; i < shift.numel(); ++i)
        if (!std::isfinite(sp[i])) sp[i] = T(0);
      run_reduce(LseOp<T>{}, a, s, out, &shift);
    });
    return out;
  });
}

Array norm(const Array& a, double p, const std::vector<int64_t>& dims, bool keepdim) {
  require_float(a, "norm");
  if (is_cuda(a.device())) return cuda_only("norm", a.device(), [&] { return cuda::reduce("norm", a, dims, keepdim, p); });
  return on_device("norm", a.device(), [&] {
    Spec s = make_spec(a, dims, keepdim, "norm");
    if (std::isinf(p) && a.numel() == 0 && s.n_red == 0)
      throw std::invalid_argument(std::string("norm: cannot compute the ") + (p > 0 ? "inf" : "-inf") +
                                  " norm over an empty dim (the reduction has no identity)");
    Array out = empty(s.out_shape, a.dtype);
    dispatch_float(a.dtype, "norm", [&](auto tag) {
      using T = decltype(tag);
      if (std::isinf(p)) {
        if (p > 0)
          run_reduce(ExtremumOp<T, true, true>{}, a, s, out);
        else
          run_reduce(ExtremumOp<T, false, true>{}, a, s, out);
      } else if (p == 0) {
        run_reduce(NormOp<T, 0>{}, a, s, out);
      } else if (p == 1) {
        run_reduce(NormOp<T, 1>{}, a, s, out);
      } else if (p == 2) {
        run_reduce(NormOp<T, 2>{}, a, s, out);
      } else {
        run_reduce(NormOp<T, 3>{static_cast<T>(p), static_cast<T>(1.0 / p)}, a, s, out);
      }
    });
    return out;
  });
}

std::pair<Array, Array> max_dim(const Array& a, int64_t dim, bool keepdim) {
  return max_min_dim<true>(a, dim, keepdim, "max");
}
std::pair<Array, Array> min_dim(const Array& a, int64_t dim, bool keepdim) {
  return max_min_dim<false>(a, dim, keepdim, "min");
}
Array argmax(const Array& a, std::optional<int64_t> dim, bool keepdim) { return arg_ext<true>(a, dim, keepdim, "argmax"); }
Array argmin(const Array& a, std::optional<int64_t> dim, bool keepdim) { return arg_ext<false>(a, dim, keepdim, "argmin"); }

Array cumsum(const Array& a, int64_t dim) { return scan<false>(a, dim, "cumsum"); }
Array cumprod(const Array& a, int64_t dim) { return scan<true>(a, dim, "cumprod"); }

Array softmax(const Array& a, int64_t dim) { return softmax_impl(a, dim, false, "softmax"); }
Array log_softmax(const Array& a, int64_t dim) { return softmax_impl(a, dim, true, "log_softmax"); }
Array softmax_backward(const Array& grad, const Array& out, int64_t dim) {
  return softmax_bw_impl(grad, out, dim, false, "softmax_backward");
}
Array log_softmax_backward(const Array& grad, const Array& out, int64_t dim) {
  return softmax_bw_impl(grad, out, dim, true, "log_softmax_backward");
}

}  // namespace fg
