// pool.cpp - pooling and upsampling kernels (see pool.h for the semantics).
//
// Every kernel has the same shape: validate, precompute per output row and
// per output column where its window (or source index) lies, then run over
// the N*C planes in parallel, each plane read through its own strides and
// written contiguously. Tables per row/column keep the per-element work to
// loads and adds; the window arithmetic (clipping, dilation, torch's
// rounding rules) lives in one place per op. Backward kernels own whole
// planes of the gradient, zero them and accumulate in output order, which is
// torch's order too, so sums match its rounding.
#include "cpu/pool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cuda/pool.h"
#include "errors.h"
#include "parallel.h"

namespace fg {
namespace {

// ---- helpers -------------------------------------------------------------------

// A 3-D or 4-D array seen as N*C planes of H x W; strides in elements.
struct Planes {
  int64_t N = 1, C = 1, H = 1, W = 1;
  int64_t sN = 0, sC = 0, sH = 0, sW = 0;
  bool flat = false;  // plane p starts at p * sC (NCHW-contiguous batches): no division per plane
  int64_t count() const { return N * C; }
  int64_t offset(int64_t p) const { return flat ? p * sC : (p / C) * sN + (p % C) * sC; }
};

Planes planes_of(const Array& a) {
  Planes q;
  const int b = a.ndim() - 3;  // 1 for (N, C, H, W), 0 for (C, H, W)
  if (b == 1) {
    q.N = a.shape[0];
    q.sN = a.strides[0];
  }
  q.C = a.shape[b];
  q.sC = a.strides[b];
  q.H = a.shape[b + 1];
  q.sH = a.strides[b + 1];
  q.W = a.shape[b + 2];
  q.sW = a.strides[b + 2];
  q.flat = q.N == 1 || q.sN == q.C * q.sC;
  return q;
}

Shape with_hw(const Shape& s, int64_t h, int64_t w) {
  Shape o = s;
  o[o.size() - 2] = h;
  o[o.size() - 1] = w;
  return o;
}

std::string hw_str(int64_t h, int64_t w) { return "(" + std::to_string(h) + ", " + std::to_string(w) + ")"; }

// torch's rule: 3-D (C, H, W) or 4-D (N, C, H, W), where only N may be 0.
void check_input(const Array& x, const char* op) {
  const int nd = x.ndim();
  bool ok = nd == 3 || nd == 4;
  for (int d = nd - 3; ok && d < nd; ++d) ok = x.shape[d] != 0;
  if (!ok)
    throw std::invalid_argument(std::string(op) +
                                ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input with non-zero C, H and W "
                                "(only N may be 0), got shape " + shape_str(x.shape));
}

void check_float(const Array& a, const char* op) {
  if (!is_floating(a.dtype))
    throw TypeError(std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(a.dtype));
}

void check_number(const Array& a, const char* op) {
  if (a.dtype == DType::Bool) throw TypeError(std::string(op) + ": not supported for dtype bool");
}

// The forward input's shape handed to a backward kernel, checked like an input.
Shape checked_input_shape(const Shape& s, const char* op) {
  const int nd = static_cast<int>(s.size());
  bool ok = nd == 3 || nd == 4;
  for (int d = 0; ok && d < nd; ++d) ok = s[d] >= 0 && (d == 0 && nd == 4 ? true : s[d] != 0);
  if (!ok)
    throw std::invalid_argument(std::string(op) + ": bad input shape " + shape_str(s) +
                                " (expected (C, H, W) or (N, C, H, W) with non-zero C, H and W)");
  return s;
}

void check_grad_shape(const Array& g, const Shape& expected, const char* op, const char* what = "grad_output") {
  if (g.shape != expected)
    throw std::invalid_argument(std::string(op) + ": " + what + " has shape " + shape_str(g.shape) + ", expected " +
                                shape_str(expected));
}

// Splits the planes over the pool so that each task has enough work to pay
// for its dispatch (about 32K inner steps).
void for_planes(int64_t nplanes, int64_t work_per_plane, const std::function<void(int64_t, int64_t)>& fn) {
  if (nplanes == 0) return;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, work_per_plane));
  parallel_for(nplanes, grain, fn);
}

template <class T>
inline bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

template <class T>
constexpr T lowest() {
  if constexpr (std::is_floating_point_v<T>) {
    return -std::numeric_limits<T>::infinity();
  } else {
    return std::numeric_limits<T>::lowest();
  }
}

// floor(a / b) for b > 0 (C++ division truncates toward zero).
int64_t div_floor(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// torch's pooling output size, ceil_mode included: the last window must
// start inside the input or its left padding.
int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil_mode) {
  int64_t out = div_floor(in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

struct PoolGeom {
  int64_t oh, ow;
};

PoolGeom check_pool(const char* op, const Shape& in, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                    int64_t pw, int64_t dh, int64_t dw, bool ceil_mode) {
  if (kh <= 0 || kw <= 0)
    throw std::invalid_argument(std::string(op) + ": kernel_size should be greater than zero, got " + hw_str(kh, kw));
  if (sh <= 0 || sw <= 0)
    throw std::invalid_argument(std::string(op) + ": stride should be greater than zero, got " + hw_str(sh, sw));
  if (dh <= 0 || dw <= 0)
    throw std::invalid_argument(std::string(op) + ": dilation should be greater than zero, got " + hw_str(dh, dw));
  if (ph < 0 || pw < 0)
    throw std::invalid_argument(std::string(op) + ": padding must be non-negative, got " + hw_str(ph, pw));
  if (ph > kh / 2 || pw > kw / 2)
    throw std::invalid_argument(std::string(op) + ": padding should be at most half of kernel_size, got padding " +
                                hw_str(ph, pw) + " and kernel_size " + hw_str(kh, kw));
  const int64_t H = in[in.size() - 2], W = in[in.size() - 1];
  // Bounds keep the arithmetic below far from overflow for absurd arguments.
  const int64_t big = int64_t{1} << 40;
  if (kh > big || kw > big || sh > big || sw > big || dh > big || dw > big)
    throw std::invalid_argument(std::string(op) + ": kernel_size, stride or dilation too large");
  PoolGeom g{pool_out_size(H, kh, ph, sh, dh, ceil_mode), pool_out_size(W, kw, pw, sw, dw, ceil_mode)};
  if (g.oh < 1 || g.ow < 1)
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(in) + " gives output size " +
                                hw_str(g.oh, g.ow) + " with kernel_size " + hw_str(kh, kw) + ", stride " +
                                hw_str(sh, sw) + ", padding " + hw_str(ph, pw) + ", dilation " + hw_str(dh, dw) +
                                ": output size is too small");
  return g;
}

// ---- window tables --------------------------------------------------------------

// Taps of one output row (or column) of a max window: `count` in-bounds input
// positions start, start + step, ... An empty window (possible only with a
// dilation wider than the input) keeps torch's first-tap start.
struct Taps {
  int64_t start, count;
};

std::vector<Taps> max_taps(int64_t out, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  std::vector<Taps> t(out);
  for (int64_t o = 0; o < out; ++o) {
    const int64_t st = o * s - p;
    const int64_t first = st < 0 ? st + (-st + d - 1) / d * d : st;
    const int64_t end = std::min(st + (k - 1) * d + 1, in);
    t[o] = {first, first < end ? (end - first + d - 1) / d : 0};
  }
  return t;
}

// torch's adaptive windows: [floor(o*in/out), ceil((o+1)*in/out)).
std::vector<Taps> adaptive_taps(int64_t out, int64_t in) {
  std::vector<Taps> t(out);
  for (int64_t o = 0; o < out; ++o) {
    const int64_t a = (o / out) * in + ((o % out) * in) / out;
    const int64_t b = 1 + ((o + 1) * in - 1) / out;
    t[o] = {a, b - a};
  }
  return t;
}

// One output row (or column) of an average window: the clipped range
// [lo, hi) and the window's extent `size` counting padding.
struct Span {
  int64_t lo, hi, size;
};

std::vector<Span> avg_spans(int64_t out, int64_t in, int64_t k, int64_t s, int64_t p) {
  std::vector<Span> t(out);
  for (int64_t o = 0; o < out; ++o) {
    const int64_t st = o * s - p;
    const int64_t en = std::min(st + k, in + p);
    t[o] = {std::max<int64_t>(st, 0), std::min(en, in), en - st};
  }
  return t;
}

// ---- max pooling ------------------------------------------------------------------

// One plane: out/idx contiguous (OH x OW); first maximum wins, a NaN always
// takes over (so the last NaN of a window is picked), as torch does.
template <class T>
void max_plane(const T* in, int64_t sH, int64_t sW, int64_t W, T* out, int64_t* idx, const std::vector<Taps>& rows,
               const std::vector<Taps>& cols, int64_t dh, int64_t dw) {
  for (const Taps& r : rows) {
    for (const Taps& c : cols) {
      T best = lowest<T>();
      int64_t bi = r.start * W + c.start;
      for (int64_t i = 0; i < r.count; ++i) {
        const int64_t ih = r.start + i * dh;
        const T* row = in + ih * sH;
        for (int64_t j = 0; j < c.count; ++j) {
          const int64_t iw = c.start + j * dw;
          const T v = row[iw * sW];
          if (v > best || is_nan(v)) {
            best = v;
            bi = ih * W + iw;
          }
        }
      }
      *out++ = best;
      *idx++ = bi;
    }
  }
}

// One plane's output element (oh, ow) by the scalar rule above.
template <class T>
void max_one(const T* in, int64_t sH, int64_t sW, int64_t W, const Taps& r, const Taps& c, int64_t dh, int64_t dw,
             T* out, int64_t* idx) {
  T best = lowest<T>();
  int64_t bi = r.start * W + c.start;
  for (int64_t i = 0; i < r.count; ++i) {
    const int64_t ih = r.start + i * dh;
    for (int64_t j = 0; j < c.count; ++j) {
      const int64_t iw = c.start + j * dw;
      const T v = in[ih * sH + iw * sW];
      if (v > best || is_nan(v)) {
        best = v;
        bi = ih * W + iw;
      }
    }
  }
  *out = best;
  *idx = bi;
}

// The vector path records, per output, the chosen tap's offset in the plane
// (row * W + column of the window's first output), in an integer as wide as
// T so that value and offset lanes line up in one vector (mixed widths stop
// the vectoriser); planes of 2^31 elements or more take the scalar path.
template <class T>
using TapOff = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;

// Max pooling of one output row over the columns whose windows lie inside the
// input (no clipping), for a window column stride of S elements (the
// pooling stride: 1 and 2 are compiled as constants so the loads vectorise).
// rows[i] points at the first tap of the first output of the range in valid
// window row i, offs[i * kw + j] is tap (i, j)'s offset. Taps are visited in
// window order, each pass a branch-free vector loop over the outputs; the
// selection rule is max_plane's, so the picks (first maximum, last NaN) are
// the same.
template <class T, int S>
void max_row_interior(const T* const* rows, const TapOff<T>* offs, int64_t nrows, int64_t kw, int64_t dw, int64_t n,
                      T* __restrict best, TapOff<T>* __restrict off) {
  const T* __restrict r0 = rows[0];
  for (int64_t o = 0; o < n; ++o) {
    best[o] = r0[o * S];
    off[o] = offs[0];
  }
  for (int64_t i = 0; i < nrows; ++i)
    for (int64_t j = (i == 0 ? 1 : 0); j < kw; ++j) {
      const T* __restrict p = rows[i] + j * dw;
      const TapOff<T> k = offs[i * kw + j];
      for (int64_t o = 0; o < n; ++o) {
        const T v = p[o * S];
        const bool take = v > best[o] || is_nan(v);
        best[o] = take ? v : best[o];
        off[o] = take ? k : off[o];
      }
    }
}

// One plane with unit column stride in memory: the interior columns of each
// row go through max_row_interior, the clipped edge columns through max_one.
template <class T, int S>
void max_plane_vec(const T* in, int64_t sH, int64_t W, T* out, int64_t* idx, const std::vector<Taps>& rows,
                   const std::vector<Taps>& cols, int64_t kw, int64_t sw, int64_t pw, int64_t dh, int64_t dw,
                   int64_t lo, int64_t hi, std::vector<TapOff<T>>& off, std::vector<const T*>& rp,
                   std::vector<TapOff<T>>& offs) {
  const int64_t OW = static_cast<int64_t>(cols.size());
  for (size_t oh = 0; oh < rows.size(); ++oh, out += OW, idx += OW) {
    const Taps& r = rows[oh];
    for (int64_t ow = 0; ow < lo; ++ow) max_one(in, sH, 1, W, r, cols[ow], dh, dw, out + ow, idx + ow);
    for (int64_t ow = hi; ow < OW; ++ow) max_one(in, sH, 1, W, r, cols[ow], dh, dw, out + ow, idx + ow);
    if (hi <= lo) continue;
    if (r.count == 0) {
      for (int64_t ow = lo; ow < hi; ++ow) max_one(in, sH, 1, W, r, cols[ow], dh, dw, out + ow, idx + ow);
      continue;
    }
    const int64_t c0 = lo * sw - pw;  // first tap column of output lo
    rp.resize(r.count);
    offs.resize(r.count * kw);
    for (int64_t i = 0; i < r.count; ++i) {
      const int64_t ih = r.start + i * dh;
      rp[i] = in + ih * sH + c0;
      for (int64_t j = 0; j < kw; ++j) offs[i * kw + j] = static_cast<TapOff<T>>(ih * W + c0 + j * dw);
    }
    const int64_t n = hi - lo;
    max_row_interior<T, S>(rp.data(), offs.data(), r.count, kw, dw, n, out + lo, off.data());
    for (int64_t o = 0; o < n; ++o) idx[lo + o] = static_cast<int64_t>(off[o]) + o * sw;
  }
}

// 2x2 windows, stride 2, no padding or dilation (the usual CNN pooling):
// every window is whole. Per output, the pair maxima of the top and the
// bottom row, then the larger of the two: with max_plane's rule at each step
// (the later operand wins only if larger or NaN) this picks what the taps in
// window order pick (the first maximum; the last NaN). float goes through
// SSE2 masks (part of x86-64): a compare-and-branch per tap mispredicts half
// the time on real data, and GCC does not turn these selects into blends
// itself. The general path's per-row tap tables cost more than the work on
// small planes (1024 planes of 8x8: 230 us).
template <class T>
void max_plane_2x2(const T* in, int64_t sH, int64_t W, int64_t OH, int64_t OW, T* __restrict out,
                   int64_t* __restrict idx) {
  for (int64_t oh = 0; oh < OH; ++oh, out += OW, idx += OW) {
    const T* r0 = in + 2 * oh * sH;
    const T* r1 = r0 + sH;
    const int64_t base = 2 * oh * W;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
      const bool tb = b > a || is_nan(b), td = d > c || is_nan(d);
      const T top = tb ? b : a, bot = td ? d : c;
      const bool tv = bot > top || is_nan(bot);
      out[ow] = tv ? bot : top;
      idx[ow] = base + 2 * ow + (tv ? W + int64_t(td) : int64_t(tb));
    }
  }
}

#if defined(__SSE2__)
// Four windows at once: a, b, c, d hold their taps (0, 0), (0, 1), (1, 0),
// (1, 1); returns the maxima and sets *off to the picked taps' offsets (0, 1,
// W or W + 1).
inline __m128 max4_2x2(__m128 a, __m128 b, __m128 c, __m128 d, __m128i w, __m128i* off) {
  const __m128 tb = _mm_or_ps(_mm_cmpgt_ps(b, a), _mm_cmpunord_ps(b, b));
  const __m128 td = _mm_or_ps(_mm_cmpgt_ps(d, c), _mm_cmpunord_ps(d, d));
  const __m128 top = _mm_or_ps(_mm_and_ps(tb, b), _mm_andnot_ps(tb, a));
  const __m128 bot = _mm_or_ps(_mm_and_ps(td, d), _mm_andnot_ps(td, c));
  const __m128 tv = _mm_or_ps(_mm_cmpgt_ps(bot, top), _mm_cmpunord_ps(bot, bot));
  const __m128i one = _mm_set1_epi32(1);
  const __m128i kt = _mm_and_si128(_mm_castps_si128(tb), one);
  const __m128i kb = _mm_add_epi32(w, _mm_and_si128(_mm_castps_si128(td), one));
  *off = _mm_or_si128(_mm_and_si128(_mm_castps_si128(tv), kb), _mm_andnot_si128(_mm_castps_si128(tv), kt));
  return _mm_or_ps(_mm_and_ps(tv, bot), _mm_andnot_ps(tv, top));
}

template <>
void max_plane_2x2<float>(const float* in, int64_t sH, int64_t W, int64_t OH, int64_t OW, float* __restrict out,
                          int64_t* __restrict idx) {
  const __m128i w = _mm_set1_epi32(static_cast<int32_t>(W));  // W < 2^30 (checked by the caller)
  alignas(16) int32_t o4[4];
  for (int64_t oh = 0; oh < OH; ++oh, out += OW, idx += OW) {
    const float* r0 = in + 2 * oh * sH;
    const float* r1 = r0 + sH;
    const int64_t base = 2 * oh * W;
    __m128i off;
    int64_t ow = 0;
    for (; ow + 4 <= OW; ow += 4) {  // reads up to column 2 * ow + 7 <= 2 * OW - 1 < W
      const __m128 x0 = _mm_loadu_ps(r0 + 2 * ow), x1 = _mm_loadu_ps(r0 + 2 * ow + 4);
      const __m128 y0 = _mm_loadu_ps(r1 + 2 * ow), y1 = _mm_loadu_ps(r1 + 2 * ow + 4);
      const __m128 m = max4_2x2(_mm_shuffle_ps(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm_shuffle_ps(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)),
                                _mm_shuffle_ps(y0, y1, _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 1, 3, 1)), w, &off);
      _mm_storeu_ps(out + ow, m);
      _mm_store_si128(reinterpret_cast<__m128i*>(o4), off);
      for (int q = 0; q < 4; ++q) idx[ow + q] = base + 2 * (ow + q) + o4[q];
    }
    for (; ow < OW; ++ow) {  // one window in lane 0
      const __m128 m = max4_2x2(_mm_set_ss(r0[2 * ow]), _mm_set_ss(r0[2 * ow + 1]), _mm_set_ss(r1[2 * ow]),
                                _mm_set_ss(r1[2 * ow + 1]), w, &off);
      out[ow] = _mm_cvtss_f32(m);
      idx[ow] = base + 2 * ow + _mm_cvtsi128_si32(off);
    }
  }
}
#endif

std::pair<Array, Array> max_pool_impl(const char* op, const Array& x, int64_t OH, int64_t OW,
                                      const std::vector<Taps>& rows, const std::vector<Taps>& cols, int64_t dh,
                                      int64_t dw, int64_t kw, int64_t sw, int64_t pw) {
  const Shape oshape = with_hw(x.shape, OH, OW);
  Array out = empty(oshape, x.dtype, x.device());
  Array idx = empty(oshape, DType::Int64, x.device());
  const Planes P = planes_of(x);
  int64_t kr = 1, kc = 1;  // largest window, for the work estimate
  for (const Taps& r : rows) kr = std::max(kr, r.count);
  for (const Taps& c : cols) kc = std::max(kc, c.count);
  const int64_t kwork = kr * kc;
  // Interior columns [lo, hi): whole windows inside the input. kw = 0 marks
  // windows that are not a fixed stride pattern (adaptive pooling).
  int64_t lo = 0, hi = 0;
  if (kw > 0) {
    lo = std::min(OW, (pw + sw - 1) / sw);
    const int64_t last = P.W - 1 - (kw - 1) * dw + pw;  // largest ow*sw with the last tap inside
    hi = last < 0 ? lo : std::max(lo, std::min(OW, last / sw + 1));
  }
  const bool vec = kw > 0 && P.sW == 1 && (sw == 1 || sw == 2) && hi > lo && P.H * P.W < (int64_t{1} << 31);
  bool two = kw == 2 && sw == 2 && dw == 1 && dh == 1 && P.sW == 1 && P.W < (int64_t{1} << 30);
  for (size_t i = 0; two && i < rows.size(); ++i) two = rows[i].start == 2 * int64_t(i) && rows[i].count == 2;
  for (size_t i = 0; two && i < cols.size(); ++i) two = cols[i].start == 2 * int64_t(i) && cols[i].count == 2;
  dispatch_number(x.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    int64_t* di = idx.data<int64_t>();
    for_planes(P.count(), OH * OW * kwork, [&](int64_t b, int64_t e) {
      std::vector<TapOff<T>> off(vec ? hi - lo : 0), offs;
      std::vector<const T*> rp;
      for (int64_t p = b; p < e; ++p) {
        const T* in = src + P.offset(p);
        T* o = dst + p * OH * OW;
        int64_t* ix = di + p * OH * OW;
        if (two)
          max_plane_2x2(in, P.sH, P.W, OH, OW, o, ix);
        else if (vec && sw == 1)
          max_plane_vec<T, 1>(in, P.sH, P.W, o, ix, rows, cols, kw, sw, pw, dh, dw, lo, hi, off, rp, offs);
        else if (vec)
          max_plane_vec<T, 2>(in, P.sH, P.W, o, ix, rows, cols, kw, sw, pw, dh, dw, lo, hi, off, rp, offs);
        else
          max_plane(in, P.sH, P.sW, P.W, o, ix, rows, cols, dh, dw);
      }
    });
  });
  return {out, idx};
}

}  // namespace

std::pair<Array, Array> max_pool2d(const Array& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                                   int64_t pw, int64_t dh, int64_t dw, bool ceil_mode) {
  const char* op = "max_pool2d";
  return cuda::on_any_device(op, x.device(), [&] {
    check_input(x, op);
    check_number(x, op);
    const PoolGeom g = check_pool(op, x.shape, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode);
    if (is_cuda(x.device()))
      return cuda_only(op, x.device(), [&] { return cuda::max_pool2d(x, g.oh, g.ow, kh, kw, sh, sw, ph, pw, dh, dw); });
    const Planes P = planes_of(x);
    return max_pool_impl(op, x, g.oh, g.ow, max_taps(g.oh, P.H, kh, sh, ph, dh), max_taps(g.ow, P.W, kw, sw, pw, dw),
                         dh, dw, kw, sw, pw);
  });
}

std::pair<Array, Array> adaptive_max_pool2d(const Array& x, int64_t oh, int64_t ow) {
  const char* op = "adaptive_max_pool2d";
  return cuda::on_any_device(op, x.device(), [&] {
    check_input(x, op);
    check_float(x, op);
    if (oh < 0 || ow < 0)
      throw std::invalid_argument(std::string(op) + ": output_size must be non-negative, got " + hw_str(oh, ow));
    if (is_cuda(x.device())) return cuda_only(op, x.device(), [&] { return cuda::adaptive_max_pool2d(x, oh, ow); });
    const Planes P = planes_of(x);
    return max_pool_impl(op, x, oh, ow, adaptive_taps(oh, P.H), adaptive_taps(ow, P.W), 1, 1, 0, 1, 0);
  });
}

Array max_pool2d_backward(const Array& grad_out, const Array& indices, const Shape& input_shape) {
  const char* op = "max_pool2d_backward";
  return cuda::on_any_device(op, grad_out.device(), [&] {
    check_same_device(op, grad_out.device(), indices.device());
    check_float(grad_out, op);
    if (indices.dtype != DType::Int64)
      throw TypeError(std::string(op) + ": expected int64 indices, got " + dtype_name(indices.dtype));
    const Shape in = checked_input_shape(input_shape, op);
    if (grad_out.ndim() != static_cast<int>(in.size()))
      throw std::invalid_argument(std::string(op) + ": grad_output of shape " + shape_str(grad_out.shape) +
                                  " does not match input shape " + shape_str(in));
    check_grad_shape(indices, grad_out.shape, op, "indices");
    for (size_t d = 0; d + 2 < in.size(); ++d)
      if (grad_out.shape[d] != in[d])
        throw std::invalid_argument(std::string(op) + ": grad_output of shape " + shape_str(grad_out.shape) +
                                    " does not match input shape " + shape_str(in));
    if (is_cuda(grad_out.device()))
      return cuda_only(op, grad_out.device(), [&] { return cuda::max_pool2d_backward(grad_out, indices, in); });
    Array gin = empty(in, grad_out.dtype, grad_out.device());
    const Planes G = planes_of(grad_out), I = planes_of(indices);
    const int64_t H = in[in.size() - 2], W = in[in.size() - 1], HW = H * W;
    const int64_t OH = G.H, OW = G.W;
    dispatch_float(grad_out.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* g = grad_out.data<T>();
      const int64_t* ix = indices.data<int64_t>();
      T* dst = gin.data<T>();
      for_planes(G.count(), HW + OH * OW, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          T* gp = dst + p * HW;
          std::fill(gp, gp + HW, T(0));
          const T* gs = g + G.offset(p);
          const int64_t* is = ix + I.offset(p);
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
              const int64_t k = is[oh * I.sH + ow * I.sW];
              // an index outside the plane belongs to an empty window (whose
              // output is a constant -inf): it gets no gradient
              if (k >= 0 && k < HW) gp[k] += gs[oh * G.sH + ow * G.sW];
            }
        }
      });
    });
    return gin;
  });
}

Array max_pool2d_gather(const Array& x, const Array& indices) {
  const char* op = "max_pool2d_gather";
  return cuda::on_any_device(op, x.device(), [&] {
    check_same_device(op, x.device(), indices.device());
    check_input(x, op);
    check_float(x, op);
    if (indices.dtype != DType::Int64)
      throw TypeError(std::string(op) + ": expected int64 indices, got " + dtype_name(indices.dtype));
    if (indices.ndim() != x.ndim() || !std::equal(x.shape.begin(), x.shape.end() - 2, indices.shape.begin()))
      throw std::invalid_argument(std::string(op) + ": indices of shape " + shape_str(indices.shape) +
                                  " do not match input shape " + shape_str(x.shape));
    if (is_cuda(x.device())) return cuda_only(op, x.device(), [&] { return cuda::max_pool2d_gather(x, indices); });
    const Planes X = planes_of(x), I = planes_of(indices);
    const int64_t HW = X.H * X.W, OH = I.H, OW = I.W;
    Array out = empty(indices.shape, x.dtype, x.device());
    dispatch_float(x.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      const int64_t* ix = indices.data<int64_t>();
      T* dst = out.data<T>();
      for_planes(X.count(), OH * OW, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          const T* xs = src + X.offset(p);
          const int64_t* is = ix + I.offset(p);
          T* o = dst + p * OH * OW;
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
              const int64_t k = is[oh * I.sH + ow * I.sW];
              *o++ = (k >= 0 && k < HW) ? xs[(k / X.W) * X.sH + (k % X.W) * X.sW] : T(0);
            }
        }
      });
    });
    return out;
  });
}

// ---- average pooling ----------------------------------------------------------------

namespace {

// Sum of n contiguous values with 8 independent partial sums, so the compiler
// can keep them in one vector register (a serial sum is latency-bound).
template <class T>
T sum_contig(const T* p, int64_t n) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += p[i + k];
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += p[i];
  return s;
}

// Average pooling of one plane. `div` gives the divisor of output (oh, ow);
// sums run row-major over the window as torch's do.
template <class T, class Div>
void avg_plane(const T* in, int64_t sH, int64_t sW, T* out, const std::vector<Span>& rows,
               const std::vector<Span>& cols, Div&& div) {
  for (size_t oh = 0; oh < rows.size(); ++oh) {
    const Span& r = rows[oh];
    for (size_t ow = 0; ow < cols.size(); ++ow) {
      const Span& c = cols[ow];
      if (r.lo >= r.hi || c.lo >= c.hi) {
        *out++ = T(0);
        continue;
      }
      T sum = T(0);
      for (int64_t ih = r.lo; ih < r.hi; ++ih)
        for (int64_t iw = c.lo; iw < c.hi; ++iw) sum += in[ih * sH + iw * sW];
      *out++ = div(sum, r, c);
    }
  }
}

// The divisor of one average window: divisor_override, or the window's
// extent counting padding, or its in-bounds size.
struct AvgDivisor {
  bool count_include_pad;
  int64_t divisor_override;
  int64_t operator()(const Span& r, const Span& c) const {
    if (divisor_override != 0) return divisor_override;
    return count_include_pad ? r.size * c.size : (r.hi - r.lo) * (c.hi - c.lo);
  }
};

template <class T>
void avg_plane_backward(const T* g, int64_t gsH, int64_t gsW, T* gin, int64_t W, const std::vector<Span>& rows,
                        const std::vector<Span>& cols, const AvgDivisor& div) {
  for (size_t oh = 0; oh < rows.size(); ++oh) {
    const Span& r = rows[oh];
    for (size_t ow = 0; ow < cols.size(); ++ow) {
      const Span& c = cols[ow];
      if (r.lo >= r.hi || c.lo >= c.hi) continue;
      const T delta = g[oh * gsH + ow * gsW] / static_cast<T>(div(r, c));
      for (int64_t ih = r.lo; ih < r.hi; ++ih) {
        T* row = gin + ih * W;
        for (int64_t iw = c.lo; iw < c.hi; ++iw) row[iw] += delta;
      }
    }
  }
}

}  // namespace

Array avg_pool2d(const Array& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                 bool ceil_mode, bool count_include_pad, int64_t divisor_override) {
  const char* op = "avg_pool2d";
  return cuda::on_any_device(op, x.device(), [&] {
    check_input(x, op);
    check_number(x, op);
    const PoolGeom g = check_pool(op, x.shape, kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode);
    if (is_cuda(x.device()))
      return cuda_only(op, x.device(), [&] {
        return cuda::avg_pool2d(x, g.oh, g.ow, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override);
      });
    const Planes P = planes_of(x);
    const std::vector<Span> rows = avg_spans(g.oh, P.H, kh, sh, ph), cols = avg_spans(g.ow, P.W, kw, sw, pw);
    const AvgDivisor divisor{count_include_pad, divisor_override};
    Array out = empty(with_hw(x.shape, g.oh, g.ow), x.dtype, x.device());
    dispatch_number(x.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      auto div = [&](T sum, const Span& r, const Span& c) -> T {
        const int64_t d = divisor(r, c);
        if constexpr (std::is_integral_v<T>) {
          return static_cast<T>(static_cast<int64_t>(sum) / d);  // truncates, as torch does
        } else {
          return sum / static_cast<T>(d);
        }
      };
      for_planes(P.count(), g.oh * g.ow * kh * kw, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p)
          avg_plane(src + P.offset(p), P.sH, P.sW, dst + p * g.oh * g.ow, rows, cols, div);
      });
    });
    return out;
  });
}

Array avg_pool2d_backward(const Array& grad_out, const Shape& input_shape, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, bool ceil_mode, bool count_include_pad,
                          int64_t divisor_override) {
  const char* op = "avg_pool2d_backward";
  return cuda::on_any_device(op, grad_out.device(), [&] {
    check_float(grad_out, op);
    const Shape in = checked_input_shape(input_shape, op);
    const PoolGeom g = check_pool(op, in, kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode);
    check_grad_shape(grad_out, with_hw(in, g.oh, g.ow), op);
    if (is_cuda(grad_out.device()))
      return cuda_only(op, grad_out.device(), [&] {
        return cuda::avg_pool2d_backward(grad_out, in, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override);
      });
    const int64_t H = in[in.size() - 2], W = in[in.size() - 1];
    const std::vector<Span> rows = avg_spans(g.oh, H, kh, sh, ph), cols = avg_spans(g.ow, W, kw, sw, pw);
    const AvgDivisor divisor{count_include_pad, divisor_override};
    Array gin = empty(in, grad_out.dtype, grad_out.device());
    const Planes G = planes_of(grad_out);
    dispatch_float(grad_out.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* gs = grad_out.data<T>();
      T* dst = gin.data<T>();
      for_planes(G.count(), H * W + g.oh * g.ow * kh * kw, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          T* gp = dst + p * H * W;
          std::fill(gp, gp + H * W, T(0));
          avg_plane_backward(gs + G.offset(p), G.sH, G.sW, gp, W, rows, cols, divisor);
        }
      });
    });
    return gin;
  });
}

// ---- adaptive average pooling ------------------------------------------------------------

namespace {

std::vector<Span> adaptive_spans(int64_t out, int64_t in) {
  std::vector<Span> s(out);
  const std::vector<Taps> t = adaptive_taps(out, in);
  for (int64_t o = 0; o < out; ++o) s[o] = {t[o].start, t[o].start + t[o].count, t[o].count};
  return s;
}

void check_adaptive(const char* op, int64_t oh, int64_t ow) {
  if (oh < 0 || ow < 0)
    throw std::invalid_argument(std::string(op) + ": output_size must be non-negative, got " + hw_str(oh, ow));
}

}  // namespace

Array adaptive_avg_pool2d(const Array& x, int64_t oh, int64_t ow) {
  const char* op = "adaptive_avg_pool2d";
  return cuda::on_any_device(op, x.device(), [&] {
    check_input(x, op);
    check_float(x, op);
    check_adaptive(op, oh, ow);
    if (is_cuda(x.device())) return cuda_only(op, x.device(), [&] { return cuda::adaptive_avg_pool2d(x, oh, ow); });
    const Planes P = planes_of(x);
    const std::vector<Span> rows = adaptive_spans(oh, P.H), cols = adaptive_spans(ow, P.W);
    Array out = empty(with_hw(x.shape, oh, ow), x.dtype, x.device());
    // a whole plane into one value: contiguous planes take the vectorised sum
    const bool global = oh == 1 && ow == 1 && P.sW == 1 && P.sH == P.W;
    dispatch_float(x.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      // torch divides by the window's height, then by its width
      auto div = [](T sum, const Span& r, const Span& c) -> T {
        return sum / static_cast<T>(r.size) / static_cast<T>(c.size);
      };
      for_planes(P.count(), P.H * P.W + oh * ow, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          if (global)
            dst[p] = div(sum_contig(src + P.offset(p), P.H * P.W), rows[0], cols[0]);
          else
            avg_plane(src + P.offset(p), P.sH, P.sW, dst + p * oh * ow, rows, cols, div);
        }
      });
    });
    return out;
  });
}

Array adaptive_avg_pool2d_backward(const Array& grad_out, const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  return cuda::on_any_device(op, grad_out.device(), [&] {
    check_float(grad_out, op);
    const Shape in = checked_input_shape(input_shape, op);
    if (grad_out.ndim() != static_cast<int>(in.size()))
      throw std::invalid_argument(std::string(op) + ": grad_output of shape " + shape_str(grad_out.shape) +
                                  " does not match input shape " + shape_str(in));
    const Planes G = planes_of(grad_out);
    check_grad_shape(grad_out, with_hw(in, G.H, G.W), op);
    if (is_cuda(grad_out.device()))
      return cuda_only(op, grad_out.device(), [&] { return cuda::adaptive_avg_pool2d_backward(grad_out, in); });
    const int64_t H = in[in.size() - 2], W = in[in.size() - 1];
    const std::vector<Span> rows = adaptive_spans(G.H, H), cols = adaptive_spans(G.W, W);
    Array gin = empty(in, grad_out.dtype, grad_out.device());
    dispatch_float(grad_out.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* gs = grad_out.data<T>();
      T* dst = gin.data<T>();
      for_planes(G.count(), H * W + G.H * G.W, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          T* gp = dst + p * H * W;
          const T* g = gs + G.offset(p);
          if (G.H == 1 && G.W == 1) {  // global pooling: one value spread over the plane
            std::fill(gp, gp + H * W, g[0] / static_cast<T>(H) / static_cast<T>(W));
            continue;
          }
          std::fill(gp, gp + H * W, T(0));
          for (int64_t oh = 0; oh < G.H; ++oh)
            for (int64_t ow = 0; ow < G.W; ++ow) {
              const Span &r = rows[oh], &c = cols[ow];
              const T delta = g[oh * G.sH + ow * G.sW] / static_cast<T>(r.size) / static_cast<T>(c.size);
              for (int64_t ih = r.lo; ih < r.hi; ++ih)
                for (int64_t iw = c.lo; iw < c.hi; ++iw) gp[ih * W + iw] += delta;
            }
        }
      });
    });
    return gin;
  });
}

// ---- nearest upsampling ------------------------------------------------------------------

namespace {

void check_sizes(const char* op, int64_t ih, int64_t iw, int64_t oh, int64_t ow) {
  if (ih <= 0 || iw <= 0 || oh <= 0 || ow <= 0)
    throw std::invalid_argument(std::string(op) + ": input and output sizes should be greater than 0, got input " +
                                hw_str(ih, iw) + " and output " + hw_str(oh, ow));
}

// Source index of each output position along one dim, by torch's rules
// (float32 arithmetic; 'nearest' copies when sizes match and halves when the
// output is twice the input, whatever the scale).
std::vector<int64_t> nearest_table(int64_t out, int64_t in, double scale, bool exact) {
  std::vector<int64_t> t(out);
  const float s = scale > 0 ? static_cast<float>(1.0 / scale) : static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t src;
    if (exact)
      src = static_cast<int64_t>(std::floor(static_cast<float>((static_cast<double>(o) + 0.5) * s)));
    else if (out == in)
      src = o;
    else if (out == 2 * in)
      src = o >> 1;
    else
      src = static_cast<int64_t>(std::floor(static_cast<float>(o) * s));
    t[o] = std::min(src, in - 1);
  }
  return t;
}

// Whether the table is o -> o / r for an integer r (every source repeated r times).
int64_t repeat_factor(const std::vector<int64_t>& t, int64_t in) {
  const int64_t out = static_cast<int64_t>(t.size());
  if (out % in != 0) return 0;
  const int64_t r = out / in;
  for (int64_t o = 0; o < out; ++o)
    if (t[o] != o / r) return 0;
  return r;
}

}  // namespace

Array upsample_nearest2d(const Array& x, int64_t oh, int64_t ow, double scale_h, double scale_w, bool exact) {
  const char* op = "upsample_nearest2d";
  return cuda::on_any_device(op, x.device(), [&] {
    if (x.ndim() != 3 && x.ndim() != 4)
      throw std::invalid_argument(std::string(op) + ": expected a 3-D or 4-D input, got shape " + shape_str(x.shape));
    check_float(x, op);
    const Planes P = planes_of(x);
    check_sizes(op, P.H, P.W, oh, ow);
    const std::vector<int64_t> th = nearest_table(oh, P.H, scale_h, exact), tw = nearest_table(ow, P.W, scale_w, exact);
    if (is_cuda(x.device())) return cuda_only(op, x.device(), [&] { return cuda::upsample_nearest2d(x, th, tw); });
    const int64_t rw = P.sW == 1 ? repeat_factor(tw, P.W) : 0;
    Array out = empty(with_hw(x.shape, oh, ow), x.dtype, x.device());
    dispatch_float(x.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      for_planes(P.count(), oh * ow, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          const T* in = src + P.offset(p);
          T* o = dst + p * oh * ow;
          for (int64_t y = 0; y < oh; ++y, o += ow) {
            if (y > 0 && th[y] == th[y - 1]) {  // same source row: copy the row just written
              std::memcpy(o, o - ow, ow * sizeof(T));
              continue;
            }
            const T* row = in + th[y] * P.sH;
            if (rw == 2) {
              for (int64_t i = 0; i < P.W; ++i) o[2 * i] = o[2 * i + 1] = row[i];
            } else if (rw > 0) {
              for (int64_t i = 0; i < P.W; ++i)
                for (int64_t k = 0; k < rw; ++k) o[i * rw + k] = row[i];
            } else {
              for (int64_t i = 0; i < ow; ++i) o[i] = row[tw[i] * P.sW];
            }
          }
        }
      });
    });
    return out;
  });
}

Array upsample_nearest2d_backward(const Array& grad_out, const Shape& input_shape, double scale_h, double scale_w,
                                  bool exact) {
  const char* op = "upsample_nearest2d_backward";
  return cuda::on_any_device(op, grad_out.device(), [&] {
    check_float(grad_out, op);
    const Shape in = input_shape;
    if ((in.size() != 3 && in.size() != 4) || grad_out.ndim() != static_cast<int>(in.size()))
      throw std::invalid_argument(std::string(op) + ": grad_output of shape " + shape_str(grad_out.shape) +
                                  " does not match input shape " + shape_str(in));
    const Planes G = planes_of(grad_out);
    const int64_t H = in[in.size() - 2], W = in[in.size() - 1];
    check_sizes(op, H, W, G.H, G.W);
    check_grad_shape(grad_out, with_hw(in, G.H, G.W), op);
    const std::vector<int64_t> th = nearest_table(G.H, H, scale_h, exact), tw = nearest_table(G.W, W, scale_w, exact);
    if (is_cuda(grad_out.device()))
      return cuda_only(op, grad_out.device(), [&] { return cuda::upsample_nearest2d_backward(grad_out, in, th, tw); });
    const int64_t rw = G.sW == 1 ? repeat_factor(tw, W) : 0;
    Array gin = empty(in, grad_out.dtype, grad_out.device());
    dispatch_float(grad_out.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const T* gs = grad_out.data<T>();
      T* dst = gin.data<T>();
      for_planes(G.count(), H * W + G.H * G.W, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          T* gp = dst + p * H * W;
          std::fill(gp, gp + H * W, T(0));
          const T* g = gs + G.offset(p);
          // output rows in order, each adding into its source row: torch's order
          for (int64_t y = 0; y < G.H; ++y) {
            T* row = gp + th[y] * W;
            const T* gr = g + y * G.sH;
            if (rw == 2) {
              for (int64_t i = 0; i < W; ++i) row[i] = (row[i] + gr[2 * i]) + gr[2 * i + 1];
            } else if (rw > 0) {
              for (int64_t i = 0; i < W; ++i)
                for (int64_t k = 0; k < rw; ++k) row[i] += gr[i * rw + k];
            } else {
              for (int64_t i = 0; i < G.W; ++i) row[tw[i]] += gr[i * G.sW];
            }
          }
        }
      });
    });
    return gin;
  });
}

// ---- bilinear upsampling --------------------------------------------------------------

namespace {

// Source positions and weights of one output index along one dim.
template <class T>
struct Lerp {
  int64_t i0, i1;
  T l0, l1;
};

// torch's compute_source_index_and_lambda, in the op's math type T.
template <class T>
std::vector<Lerp<T>> lerp_table(int64_t out, int64_t in, bool align_corners, double scale) {
  T ratio;
  if (align_corners)
    ratio = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  else
    ratio = scale > 0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
  std::vector<Lerp<T>> t(out);
  for (int64_t o = 0; o < out; ++o) {
    if (out == in) {
      t[o] = {o, o, T(1), T(0)};
      continue;
    }
    T real;
    if (align_corners) {
      real = ratio * static_cast<T>(o);
    } else {
      real = ratio * (static_cast<T>(o) + T(0.5)) - T(0.5);
      if (real < 0) real = T(0);
    }
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(real)), in - 1);
    const T l1 = std::min(std::max(real - static_cast<T>(i0), T(0)), T(1));
    t[o] = {i0, i0 + (i0 < in - 1 ? 1 : 0), T(1) - l1, l1};
  }
  return t;
}

}  // namespace

Array upsample_bilinear2d(const Array& x, int64_t oh, int64_t ow, bool align_corners, double scale_h,
                          double scale_w) {
  const char* op = "upsample_bilinear2d";
  return cuda::on_any_device(op, x.device(), [&] {
    if (x.ndim() != 3 && x.ndim() != 4)
      throw std::invalid_argument(std::string(op) + ": expected a 3-D or 4-D input, got shape " + shape_str(x.shape));
    check_float(x, op);
    const Planes P = planes_of(x);
    check_sizes(op, P.H, P.W, oh, ow);
    if (is_cuda(x.device()))
      return cuda_only(op, x.device(),
                       [&] { return cuda::upsample_bilinear2d(x, oh, ow, align_corners, scale_h, scale_w); });
    Array out = empty(with_hw(x.shape, oh, ow), x.dtype, x.device());
    dispatch_float(x.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const auto th = lerp_table<T>(oh, P.H, align_corners, scale_h);
      const auto tw = lerp_table<T>(ow, P.W, align_corners, scale_w);
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      for_planes(P.count(), 4 * oh * ow, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          const T* in = src + P.offset(p);
          T* o = dst + p * oh * ow;
          for (int64_t y = 0; y < oh; ++y) {
            const Lerp<T>& h = th[y];
            const T* r0 = in + h.i0 * P.sH;
            const T* r1 = in + h.i1 * P.sH;
            for (int64_t i = 0; i < ow; ++i) {
              const Lerp<T>& w = tw[i];
              const int64_t a = w.i0 * P.sW, c = w.i1 * P.sW;
              // rows first, then columns: torch's order of the products
              *o++ = (r0[a] * w.l0 + r0[c] * w.l1) * h.l0 + (r1[a] * w.l0 + r1[c] * w.l1) * h.l1;
            }
          }
        }
      });
    });
    return out;
  });
}

Array upsample_bilinear2d_backward(const Array& grad_out, const Shape& input_shape, bool align_corners,
                                   double scale_h, double scale_w) {
  const char* op = "upsample_bilinear2d_backward";
  return cuda::on_any_device(op, grad_out.device(), [&] {
    check_float(grad_out, op);
    const Shape in = input_shape;
    if ((in.size() != 3 && in.size() != 4) || grad_out.ndim() != static_cast<int>(in.size()))
      throw std::invalid_argument(std::string(op) + ": grad_output of shape " + shape_str(grad_out.shape) +
                                  " does not match input shape " + shape_str(in));
    const Planes G = planes_of(grad_out);
    const int64_t H = in[in.size() - 2], W = in[in.size() - 1];
    check_sizes(op, H, W, G.H, G.W);
    check_grad_shape(grad_out, with_hw(in, G.H, G.W), op);
    if (is_cuda(grad_out.device()))
      return cuda_only(op, grad_out.device(), [&] {
        return cuda::upsample_bilinear2d_backward(grad_out, in, align_corners, scale_h, scale_w);
      });
    Array gin = empty(in, grad_out.dtype, grad_out.device());
    dispatch_float(grad_out.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const auto th = lerp_table<T>(G.H, H, align_corners, scale_h);
      const auto tw = lerp_table<T>(G.W, W, align_corners, scale_w);
      const T* gs = grad_out.data<T>();
      T* dst = gin.data<T>();
      for_planes(G.count(), H * W + 4 * G.H * G.W, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          T* gp = dst + p * H * W;
          std::fill(gp, gp + H * W, T(0));
          const T* g = gs + G.offset(p);
          for (int64_t y = 0; y < G.H; ++y) {
            const Lerp<T>& h = th[y];
            T* r0 = gp + h.i0 * W;
            T* r1 = gp + h.i1 * W;
            for (int64_t i = 0; i < G.W; ++i) {
              const Lerp<T>& w = tw[i];
              const T v = g[y * G.sH + i * G.sW];
              r0[w.i0] += h.l0 * w.l0 * v;
              r0[w.i1] += h.l0 * w.l1 * v;
              r1[w.i0] += h.l1 * w.l0 * v;
              r1[w.i1] += h.l1 * w.l1 * v;
            }
          }
        }
      });
    });
    return gin;
  });
}

}  // namespace fg
