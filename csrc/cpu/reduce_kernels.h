// reduce_kernels.h - the innermost loops of the reduction family, compiled
// once per instruction set.
//
// reduce.cpp includes this file with FG_REDUCE_ISA=base (plain x86-64, SSE2)
// and reduce_avx2.cpp with FG_REDUCE_ISA=avx2 (-mavx2 -mfma). The engine in
// reduce.cpp uses the base helpers (vexp, max_nan, lanes_reduce, sum_contig,
// ext_contig). The softmax family, whose exp-heavy loops are compute-bound,
// runs the kernels at the end of this file from the AVX2 build when the CPU
// has it (measured: the exp loop 3.5x, a (4096, 1024) float softmax 1.8x
// faster than the base build); their exps go through vecmath's span kernel
// when one is in force (AVX-512 on such CPUs: a (256, 128, 128) float
// softmax 6.8 -> 4.8 ms), else through vexp.
// As in optim_math.h, everything here lives in fg::reduce_detail::FG_REDUCE_ISA
// and calls only compiler builtins (no std:: functions), so the linker can
// never merge an inline function compiled with AVX flags into code that a
// plain x86-64 CPU runs.
//
// Softmax kernel layout: x, y, g, o, gi are (outer, n, inner) contiguous,
// n >= 1. *_rows handle inner == 1 for rows [r0, r1); *_cols handle one block
// of w <= kCols columns (inner > 1), walking whole rows of the block so memory
// is read in order.
#include <cstdint>
#include <type_traits>

#ifndef FG_REDUCE_ISA
#error "define FG_REDUCE_ISA (base or avx2) before including cpu/reduce_kernels.h"
#endif

#define FG_VECMATH_ISA FG_REDUCE_ISA
#include "cpu/vecmath_impl.h"

namespace fg {
namespace reduce_detail {

#ifndef FG_REDUCE_KERNEL_TABLE
#define FG_REDUCE_KERNEL_TABLE
constexpr int64_t kCols = 512;  // column block of the *_cols kernels (fits L1 with its accumulators)

// y[0, n) = exp(x[0, n)): vecmath's span kernel (vecmath.h) for the CPU's
// widest vectors (AVX-512 where there is one: this build is only AVX2), or
// null (capability "scalar"): then the kernels below use vexp, the scalar
// form of the same exp, which the compiler vectorises within this build.
template <class T>
using ExpSpan = void (*)(const T* x, T* y, int64_t n);

// The softmax-family kernels of one build; index [0] softmax, [1] log_softmax.
template <class T>
struct SoftmaxKernels {
  void (*fwd_rows[2])(const T* x, T* y, int64_t r0, int64_t r1, int64_t n, ExpSpan<T> ex);
  void (*fwd_cols[2])(const T* x, T* y, int64_t n, int64_t inner, int64_t w, ExpSpan<T> ex);
  void (*bwd_rows[2])(const T* g, const T* o, T* gi, int64_t r0, int64_t r1, int64_t n, ExpSpan<T> ex);
  void (*bwd_cols[2])(const T* g, const T* o, T* gi, int64_t n, int64_t inner, int64_t w, ExpSpan<T> ex);
};
// Defined in reduce_avx2.cpp; call only when the CPU has AVX2 and FMA.
SoftmaxKernels<float> softmax_kernels_avx2_f32();
SoftmaxKernels<double> softmax_kernels_avx2_f64();
#endif

namespace FG_REDUCE_ISA {

// ---- element helpers ---------------------------------------------------------

// Contiguous runs longer than this are halved recursively (pairwise sum).
constexpr int64_t kPairBlock = 256;

// Independent accumulators in a contiguous run: 64 bytes of lanes (one
// AVX-512 register, two AVX2, four SSE) to hide the latency of the adds.
template <class A>
constexpr int lanes() {
  return sizeof(A) >= 8 ? 8 : 16;
}

template <class T>
inline bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>)
    return x != x;
  else
    return false;
}

// NaN wins, then the larger value; on ties the earlier operand stays. The
// bitwise | (not ||) keeps the select branch-free, so loops over it vectorise.
template <class T>
inline T max_nan(T a, T b) {
  bool take = (b > a) | is_nan(b);
  return take ? b : a;
}
template <class T>
inline T min_nan(T a, T b) {
  bool take = (b < a) | is_nan(b);
  return take ? b : a;
}

// exp() comes from vecmath (the one vectorised exp of the engine): written
// with arithmetic and integer selects only, so the loops of softmax and
// logsumexp vectorise (libm's exp is a call per element, several times
// slower there); <= 1 ulp, NaN passes through, results right down into the
// subnormals.
inline float vexp(float x) { return vecmath_detail::FG_REDUCE_ISA::exp(x); }
inline double vexp(double x) { return vecmath_detail::FG_REDUCE_ISA::exp(x); }

// ---- explicit vectors ------------------------------------------------------------
// GCC vector extensions: 16-byte vectors in the base build, 32-byte with
// AVX2, R registers of W lanes making the same 64 bytes of lanes as
// lanes_reduce, so results are bit-identical to lanes_reduce over the same
// elements. Needed because the compiler does not vectorise a lanes loop whose
// combine is a select (max with NaN), and keeps lanes in memory for others.
#ifdef __AVX2__
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif
template <class T>
struct VecOf {
  typedef T type __attribute__((vector_size(kVecBytes)));
};
template <class T>
using Vec = typename VecOf<T>::type;
template <class T>
constexpr bool kHasVec = std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t> ||
                         std::is_same_v<T, int64_t>;

// Lane k of a contiguous run takes p[k], p[k + L], ...; then the tail and the
// lane tree exactly as in lanes_reduce. vop combines vectors, sop scalars.
template <class T, class VOp, class SOp>
T vec_lanes(const T* p, int64_t n, T id, const VOp& vop, const SOp& sop) {
  constexpr int W = kVecBytes / static_cast<int>(sizeof(T)), R = 64 / kVecBytes, L = W * R;
  static_assert(L == lanes<T>(), "vector lanes must match lanes_reduce");
  Vec<T> acc[R];
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < W; ++w) acc[r][w] = id;
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int r = 0; r < R; ++r) {
      Vec<T> v;
      __builtin_memcpy(&v, p + i + r * W, sizeof(v));
      acc[r] = vop(acc[r], v);
    }
  T a[L];
  __builtin_memcpy(a, acc, sizeof(a));
  for (int k = 0; k < L - 1; ++k)
    if (i + k < n) a[k] = sop(a[k], p[i + k]);
  for (int w = L / 2; w > 0; w /= 2)
    for (int k = 0; k < w; ++k) a[k] = sop(a[k], a[k + w]);
  return a[0];
}

// Pairwise sum of a contiguous float run (== lanes_reduce<true> bit for bit).
template <class T>
T sum_contig(const T* p, int64_t n) {
  constexpr int L = lanes<T>();
  if (n > kPairBlock) {
    int64_t h = (n / 2) / L * L;
    return sum_contig(p, h) + sum_contig(p + h, n - h);
  }
  return vec_lanes(p, n, T(0), [](Vec<T> a, Vec<T> b) { return a + b; }, [](T a, T b) { return a + b; });
}

// NaN-propagating max (Max) or min of a contiguous run, lanes seeded with `seed`.
template <class T, bool Max>
T ext_contig(const T* p, int64_t n, T seed) {
  return vec_lanes(
      p, n, seed,
      [](Vec<T> a, Vec<T> b) {
        auto take = (Max ? (b > a) : (b < a)) | (b != b);
        return take ? b : a;
      },
      [](T a, T b) { return Max ? max_nan(a, b) : min_nan(a, b); });
}

// Reduces get(i) for i in [b, e) with combine `comb`. lanes<A>() independent
// accumulators let the compiler vectorise the loop; with Pairwise, runs longer
// than kPairBlock are split in halves (split points are multiples of the lane
// count), so a float sum's rounding error grows like log n, not n.
// StagedSum (for a costly get() such as exp; comb must be +) maps each leaf
// into a buffer with a plain loop, which vectorises, then sums the buffer.
template <bool Pairwise, bool StagedSum = false, class A, class Comb, class Get>
A lanes_reduce(int64_t b, int64_t e, A id, const Comb& comb, const Get& get) {
  static_assert(Pairwise || !StagedSum, "staged leaves need the pairwise split");
  constexpr int L = lanes<A>();
  if (Pairwise && e - b > kPairBlock) {
    int64_t h = b + ((e - b) / 2) / L * L;
    return comb(lanes_reduce<Pairwise, StagedSum>(b, h, id, comb, get),
                lanes_reduce<Pairwise, StagedSum>(h, e, id, comb, get));
  }
  if constexpr (StagedSum) {
    A tmp[kPairBlock];
    const int64_t n = e - b;
    for (int64_t j = 0; j < n; ++j) tmp[j] = get(b + j);
    return sum_contig(tmp, n);
  }
  A acc[L];
  for (int k = 0; k < L; ++k) acc[k] = id;
  int64_t i = b;
  for (; i + L <= e; i += L)
    for (int k = 0; k < L; ++k) acc[k] = comb(acc[k], get(i + k));
  // Tail: a fixed trip count keeps acc[] in registers (an index running to
  // e - i would force it into memory).
  for (int k = 0; k < L - 1; ++k)
    if (i + k < e) acc[k] = comb(acc[k], get(i + k));
  for (int w = L / 2; w > 0; w /= 2)
    for (int k = 0; k < w; ++k) acc[k] = comb(acc[k], acc[k + w]);
  return acc[0];
}

// ---- softmax -------------------------------------------------------------------
// Subtracting the row max keeps exp() from overflowing; a NaN or +inf max
// makes the row NaN, as in PyTorch.

template <class T>
inline T flog(T x) {
  if constexpr (std::is_same_v<T, float>)
    return __builtin_logf(x);
  else
    return __builtin_log(x);
}

// y[i] = exp(x[i] - m[i * Step]) for i < n (y may equal x): one
// subtraction pass, then the span kernel in place, or vexp per element.
template <class T, int Step>
inline void exp_minus(const T* x, const T* m, T* y, int64_t n, ExpSpan<T> ex) {
  if (ex) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - m[i * Step];
    ex(y, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = vexp(x[i] - m[i * Step]);
  }
}

// sum_i exp(x[i] - m), pairwise exactly as lanes_reduce<true, true> splits.
template <class T>
T sum_exp_minus(const T* x, T m, int64_t n, ExpSpan<T> ex) {
  constexpr int L = lanes<T>();
  if (n > kPairBlock) {
    const int64_t h = (n / 2) / L * L;
    return sum_exp_minus(x, m, h, ex) + sum_exp_minus(x + h, m, n - h, ex);
  }
  T tmp[kPairBlock];
  exp_minus<T, 0>(x, &m, tmp, n, ex);
  return sum_contig(tmp, n);
}

template <class T, bool Log>
void softmax_rows(const T* x, T* y, int64_t r0, int64_t r1, int64_t n, ExpSpan<T> ex) {
  for (int64_t o = r0; o < r1; ++o) {
    const T* xr = x + o * n;
    T* yr = y + o * n;
    const T m = ext_contig<T, true>(xr, n, xr[0]);
    if (Log) {  // the exps are only summed, never stored
      const T ls = flog(sum_exp_minus(xr, m, n, ex));
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - m - ls;
    } else {
      exp_minus<T, 0>(xr, &m, yr, n, ex);
      const T r = T(1) / sum_contig(yr, n);
      for (int64_t i = 0; i < n; ++i) yr[i] *= r;
    }
  }
}

// One column block: x, y point at column c0 of outer index o; w <= kCols.
template <class T, bool Log>
void softmax_cols(const T* x, T* y, int64_t n, int64_t inner, int64_t w, ExpSpan<T> ex) {
  T m[kCols], s[kCols], e[kCols];
  for (int64_t j = 0; j < w; ++j) m[j] = x[j];
  for (int64_t r = 1; r < n; ++r)
    for (int64_t j = 0; j < w; ++j) m[j] = max_nan(m[j], x[r * inner + j]);
  for (int64_t j = 0; j < w; ++j) s[j] = T(0);
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
    T* er = Log ? e : y + r * inner;  // log_softmax only sums the exps
    exp_minus<T, 1>(xr, m, er, w, ex);
    for (int64_t j = 0; j < w; ++j) s[j] += er[j];
  }
  for (int64_t j = 0; j < w; ++j) s[j] = Log ? flog(s[j]) : T(1) / s[j];
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
    T* yr = y + r * inner;
    if (Log)  // (x - m) - log(s): folding m + log(s) first would round away log(s)
      for (int64_t j = 0; j < w; ++j) yr[j] = xr[j] - m[j] - s[j];
    else
      for (int64_t j = 0; j < w; ++j) yr[j] *= s[j];
  }
}

// Backward, with o the forward output:
//   softmax:     gi = o * (g - sum_n(g * o))
//   log_softmax: gi = g - exp(o) * sum_n(g)
// gi[i] = g[i] - exp(o[i]) * s[i * Step] (the log_softmax backward).
template <class T, int Step>
inline void log_softmax_grad(const T* g, const T* o, const T* s, T* gi, int64_t n, ExpSpan<T> ex) {
  if (ex) {
    ex(o, gi, n);
    for (int64_t i = 0; i < n; ++i) gi[i] = g[i] - gi[i] * s[i * Step];
  } else {
    for (int64_t i = 0; i < n; ++i) gi[i] = g[i] - vexp(o[i]) * s[i * Step];
  }
}

template <class T, bool Log>
void softmax_bw_rows(const T* g, const T* o, T* gi, int64_t r0, int64_t r1, int64_t n, ExpSpan<T> ex) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* gr = g + r * n;
    const T* orow = o + r * n;
    T* ir = gi + r * n;
    if (Log) {
      const T s = sum_contig(gr, n);
      log_softmax_grad<T, 0>(gr, orow, &s, ir, n, ex);
    } else {
      const T dot = lanes_reduce<true>(0, n, T(0), [](T a, T b) { return a + b; },
                                       [&](int64_t i) { return gr[i] * orow[i]; });
      for (int64_t i = 0; i < n; ++i) ir[i] = orow[i] * (gr[i] - dot);
    }
  }
}

template <class T, bool Log>
void softmax_bw_cols(const T* g, const T* o, T* gi, int64_t n, int64_t inner, int64_t w, ExpSpan<T> ex) {
  T s[kCols];
  for (int64_t j = 0; j < w; ++j) s[j] = T(0);
  for (int64_t r = 0; r < n; ++r) {
    const T* gr = g + r * inner;
    const T* orow = o + r * inner;
    if (Log)
      for (int64_t j = 0; j < w; ++j) s[j] += gr[j];
    else
      for (int64_t j = 0; j < w; ++j) s[j] += gr[j] * orow[j];
  }
  for (int64_t r = 0; r < n; ++r) {
    const T* gr = g + r * inner;
    const T* orow = o + r * inner;
    T* ir = gi + r * inner;
    if (Log)
      log_softmax_grad<T, 1>(gr, orow, s, ir, w, ex);
    else
      for (int64_t j = 0; j < w; ++j) ir[j] = orow[j] * (gr[j] - s[j]);
  }
}

template <class T>
SoftmaxKernels<T> softmax_kernels() {
  return SoftmaxKernels<T>{{&softmax_rows<T, false>, &softmax_rows<T, true>},
                           {&softmax_cols<T, false>, &softmax_cols<T, true>},
                           {&softmax_bw_rows<T, false>, &softmax_bw_rows<T, true>},
                           {&softmax_bw_cols<T, false>, &softmax_bw_cols<T, true>}};
}

}  // namespace FG_REDUCE_ISA
}  // namespace reduce_detail
}  // namespace fg
