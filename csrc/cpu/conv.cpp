// conv.cpp - convolution forward, input gradient (= transposed convolution)
// and weight gradient on the CPU; see conv.h for the API and shapes.
//
// Every op is lowered to GEMMs on "column" matrices (im2col):
//
//   col[(c, i, j), p] = x[c, oy * sh - pt + i * dh, ox * sw - pl + j * dw]   (0 outside x)
//
// with p = (oy, ox) an output position. For one image and one group:
//
//   forward       y   (Og, P)  = w   (Og, Kg) @ col (Kg, P)
//   input grad    col (Kg, P)  = w^T (Kg, Og) @ g   (Og, P),  then col2im adds col back into dx
//   weight grad   dw  (Og, Kg) += g  (Og, P)  @ col^T (P, Kg)
//
// (Kg = C / groups * kh * kw.) The column matrix is built for a block of
// output rows at a time, sized so that it stays in L2, from a zero-padded
// copy of the input rows the block reads. The forward and the weight gradient
// skip the column matrix altogether: they drive gemm.h's micro-kernels
// themselves and gather each packed B panel straight from the padded rows
// (the portable path uses im2col + gemm()). A 1x1 convolution with stride 1
// and no padding has col == x: the GEMM reads x in place. The GEMM reads w,
// w^T, g and x through their strides. Stride-1 float32 convolutions on
// AVX-512 skip all of this where it measured faster: the direct path below
// (kernels in conv_avx512.cpp; FASTGRAD_CONV_DIRECT=0|1 forces it off / on).
//
// Threads: images (x blocks of rows, forward only) are independent work
// units; a unit runs its GEMMs single-threaded. With fewer units than
// threads can share evenly, units run one after another and each GEMM uses
// all threads instead. The weight gradient sums over images: fixed chunks of
// images (chosen from the shape, never the thread count) each sum into their
// own buffer, and the buffers are added in chunk order, so results are
// bit-identical for any thread count (the GEMM itself is, see gemm.h).
#include "cpu/conv.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu/gemm.h"
#include "cuda/conv.h"
#include "device.h"
#include "errors.h"
#include "parallel.h"

namespace fg {
namespace {

// ---- geometry ---------------------------------------------------------------------

// One convolution's sizes, always seen as 2-D (1-D convolutions have H = OH =
// kh = 1). Only the leading padding matters once OH / OW are known.
struct Geom {
  int64_t N, C, H, W;   // input
  int64_t O, kh, kw;    // weight (O, C / groups, kh, kw)
  int64_t OH, OW;       // output
  int64_t sh, sw, pt, pl, dh, dw;
  int64_t groups;

  int64_t Cg() const { return C / groups; }
  int64_t Og() const { return O / groups; }
  int64_t Kg() const { return Cg() * kh * kw; }
  int64_t P() const { return OH * OW; }
  // col == x: a 1x1 kernel, stride 1, no padding, output as large as the input.
  bool pointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && OH == H && OW == W;
  }
};

// Parameters as given, normalised to 2-D.
struct Params {
  int sd;  // spatial dims: 1 or 2
  int64_t sh, sw, pt, pb, pl, pr, dh, dw, groups;
};

std::string vec_str(const std::vector<int64_t>& v) { return shape_str(Shape(v.begin(), v.end())); }

Params parse_params(const std::string& op, int sd, const std::vector<int64_t>& stride,
                    const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
  const size_t n = static_cast<size_t>(sd);
  if (stride.size() != n || dilation.size() != n || padding.size() != 2 * n)
    throw std::invalid_argument(op + ": expected " + std::to_string(sd) + " stride and dilation values and " +
                                std::to_string(2 * sd) + " padding values, got stride " + vec_str(stride) +
                                ", padding " + vec_str(padding) + ", dilation " + vec_str(dilation));
  // The bound keeps every size computation below far from int64 overflow.
  constexpr int64_t kMax = int64_t(1) << 31;
  for (int64_t s : stride)
    if (s < 1 || s > kMax) throw std::invalid_argument(op + ": stride must be positive, got " + vec_str(stride));
  for (int64_t d : dilation)
    if (d < 1 || d > kMax) throw std::invalid_argument(op + ": dilation must be positive, got " + vec_str(dilation));
  for (int64_t p : padding)
    if (p < 0 || p > kMax) throw std::invalid_argument(op + ": padding must be non-negative, got " + vec_str(padding));
  if (groups < 1) throw std::invalid_argument(op + ": groups must be positive, got " + std::to_string(groups));
  Params p{sd, 1, stride[n - 1], 0, 0, padding[2 * n - 2], padding[2 * n - 1], 1, dilation[n - 1], groups};
  if (sd == 2) {
    p.sh = stride[0];
    p.pt = padding[0];
    p.pb = padding[1];
    p.dh = dilation[0];
  }
  return p;
}

// 1-D arrays get a unit H dim (a view) so that one 2-D kernel serves both.
Array as_2d(const Array& a, int sd) { return sd == 1 ? unsqueeze(a, 2) : a; }

void check_dtypes(const std::string& op, const char* what_a, const Array& a, const char* what_b, const Array& b) {
  if (!is_floating(a.dtype) || !is_floating(b.dtype))
    throw TypeError(op + ": expected float32 or float64 tensors, got " + what_a + " " + dtype_name(a.dtype) + " and " +
                    what_b + " " + dtype_name(b.dtype));
  if (a.dtype != b.dtype)
    throw TypeError(op + ": " + what_a + " (" + dtype_name(a.dtype) + ") and " + what_b + " (" +
                    dtype_name(b.dtype) + ") must have the same dtype");
  check_same_device(op.c_str(), a.device(), b.device());
}

void check_bias(const std::string& op, const std::optional<Array>& bias, int64_t channels, const Array& like) {
  if (!bias) return;
  if (bias->ndim() != 1 || bias->shape[0] != channels)
    throw std::invalid_argument(op + ": bias of shape " + shape_str(bias->shape) + " should have shape [" +
                                std::to_string(channels) + "]");
  check_dtypes(op, "bias", *bias, "weight", like);
}

// Output size along one dim; -1 when the dilated kernel exceeds the padded input.
int64_t out_size(int64_t in, int64_t pad_sum, int64_t k, int64_t s, int64_t d) {
  const int64_t span = in + pad_sum - d * (k - 1) - 1;
  return span < 0 ? -1 : span / s + 1;
}

// Checks x / w against each other and fills the geometry (OH / OW from x).
// `x_what` names x in messages ("input", or "grad_input" shapes).
Geom make_geom(const std::string& op, const Params& p, const Shape& xs, const Shape& ws, const char* x_what) {
  const int nd = p.sd + 2;
  if (static_cast<int>(xs.size()) != nd)
    throw std::invalid_argument(op + ": expected " + x_what + " with " + std::to_string(nd) + " dims (N, C" +
                                (p.sd == 2 ? ", H, W" : ", L") + "), got shape " + shape_str(xs));
  if (static_cast<int>(ws.size()) != nd)
    throw std::invalid_argument(op + ": expected a " + std::to_string(nd) + "-D weight for a " + std::to_string(nd) +
                                "-D " + x_what + ", got weight of shape " + shape_str(ws));
  Geom g{};
  g.N = xs[0];
  g.C = xs[1];
  g.H = p.sd == 2 ? xs[2] : 1;
  g.W = xs[nd - 1];
  g.O = ws[0];
  g.kh = p.sd == 2 ? ws[2] : 1;
  g.kw = ws[nd - 1];
  g.sh = p.sh, g.sw = p.sw, g.pt = p.pt, g.pl = p.pl, g.dh = p.dh, g.dw = p.dw, g.groups = p.groups;
  if (g.kh < 1 || g.kw < 1)
    throw std::invalid_argument(op + ": kernel size must be positive, got weight of shape " + shape_str(ws));
  if (g.O % p.groups != 0)
    throw std::invalid_argument(op + ": groups=" + std::to_string(p.groups) + " must divide the " +
                                std::to_string(g.O) + " output channels of weight of shape " + shape_str(ws));
  if (g.C % p.groups != 0)
    throw std::invalid_argument(op + ": groups=" + std::to_string(p.groups) + " must divide the " +
                                std::to_string(g.C) + " channels of " + x_what + " of shape " + shape_str(xs));
  if (ws[1] * p.groups != g.C)
    throw std::invalid_argument(op + ": " + x_what + " of shape " + shape_str(xs) + " has " + std::to_string(g.C) +
                                " channels, but weight of shape " + shape_str(ws) + " with groups=" +
                                std::to_string(p.groups) + " expects " + std::to_string(ws[1] * p.groups));
  g.OH = out_size(g.H, p.pt + p.pb, g.kh, p.sh, p.dh);
  g.OW = out_size(g.W, p.pl + p.pr, g.kw, p.sw, p.dw);
  if (g.OH < 1 || g.OW < 1) {
    const std::string pad = p.sd == 2 ? vec_str({p.pt, p.pb, p.pl, p.pr}) : vec_str({p.pl, p.pr});
    throw std::invalid_argument(op + ": the kernel (weight of shape " + shape_str(ws) + ", dilation " +
                                (p.sd == 2 ? vec_str({p.dh, p.dw}) : vec_str({p.dw})) +
                                ") is larger than the padded " + x_what + " (shape " + shape_str(xs) +
                                ", padding " + pad + ")");
  }
  return g;
}

// The output shape for `like`'s rank: (N, O, [OH,] OW).
Shape out_shape(const Geom& g, int sd) {
  return sd == 2 ? Shape{g.N, g.O, g.OH, g.OW} : Shape{g.N, g.O, g.OW};
}

// If (H, W) walk memory with one stride, sets *sp to it: the spatial dims
// then form one matrix dim of P = H * W entries, which the GEMM can read.
bool fold_hw(int64_t H, int64_t W, int64_t sH, int64_t sW, int64_t* sp) {
  if (H == 1 || W == 1) {
    *sp = W == 1 ? sH : sW;
    return true;
  }
  *sp = sW;
  return sH == W * sW;
}

// ---- scratch memory ------------------------------------------------------------------
// A per-thread, grow-only buffer for column matrices: a convolution then costs
// no allocation (and no fresh pages) per image.
class Scratch {
 public:
  ~Scratch() { std::free(ptr_); }
  void* get(size_t nbytes) {
    if (nbytes > cap_) {
      std::free(ptr_);
      cap_ = (nbytes + 4095) / 4096 * 4096;
      ptr_ = std::aligned_alloc(64, cap_);
      if (!ptr_) {
        cap_ = 0;
        throw OutOfMemory("conv: could not allocate a " + std::to_string(nbytes) + "-byte column buffer");
      }
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t cap_ = 0;
};
thread_local Scratch t_col;  // column matrices
thread_local Scratch t_pad;  // zero-padded input rows (or a padded input gradient)

template <class T>
T* col_buffer(int64_t n) {
  return static_cast<T*>(t_col.get(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)));
}

template <class T>
T* pad_buffer(int64_t n) {
  return static_cast<T*>(t_pad.get(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)));
}

// Output rows per column block: the block's column matrix (Kg x rows * OW)
// fits in about half of a 1.25 MiB L2. Depends on the shape only.
template <class T>
int64_t rows_per_block(const Geom& g) {
  constexpr int64_t kBudget = 512 * 1024;
  const int64_t row_bytes = std::max<int64_t>(1, g.Kg() * g.OW * int64_t(sizeof(T)));
  return std::clamp<int64_t>(kBudget / row_bytes, 1, g.OH);
}

// Whether `units` equal work units should be spread over the threads (each
// unit single-threaded) rather than run in turn with threaded GEMMs: only
// when they split evenly enough. A thread left idle a third of the time (3
// units on 2 threads) loses to the GEMM's own threading.
bool split_units(int64_t units) {
  const int nt = get_num_threads();
  return nt > 1 && !in_parallel_region() && units >= 2 && (units % nt == 0 || units >= 4 * nt);
}

void run_units(int64_t units, const std::function<void(int64_t)>& unit) {
  if (split_units(units)) {
    parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) unit(u);
    });
  } else {
    for (int64_t u = 0; u < units; ++u) unit(u);
  }
}

// ---- im2col / col2im -----------------------------------------------------------------------
// Both go through a zero-padded copy of the input rows a block of output rows
// reads ("xp"): the inner loops then have no bounds checks and no zero fills,
// and with stride 1 every column-matrix row segment is one plain copy (or
// add). Per-segment overhead is what costs at small widths (OW = 16 or 32).

// Row copy / add for the short segments im2col and col2im move (often 16-32
// elements). Why by hand: GCC turns a copy loop (even one of SSE loads and
// stores) into a memmove call, whose call and size dispatch cost as much as
// the copy at these lengths; NO_MEMMOVE keeps the loops as written in the
// functions that copy. SSE2 is part of x86-64, so no run-time check.
#if defined(__GNUC__) && !defined(__clang__)
#define NO_MEMMOVE __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_MEMMOVE
#endif

template <class T>
NO_MEMMOVE inline void copy_row(T* __restrict d, const T* __restrict s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = s[i];
}
template <class T>
inline void add_row(T* __restrict d, const T* __restrict s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] += s[i];
}
#if defined(__SSE2__)
template <>
NO_MEMMOVE inline void copy_row<float>(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(d + i, _mm_loadu_ps(s + i));
  switch (n - i) {  // straight-line tail: a loop here would become a memmove call again
    case 3: d[i + 2] = s[i + 2]; [[fallthrough]];
    case 2: d[i + 1] = s[i + 1]; [[fallthrough]];
    case 1: d[i] = s[i]; [[fallthrough]];
    default: break;
  }
}
template <>
NO_MEMMOVE inline void copy_row<double>(double* __restrict d, const double* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) _mm_storeu_pd(d + i, _mm_loadu_pd(s + i));
  if (i < n) d[i] = s[i];
}
template <>
inline void add_row<float>(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(d + i, _mm_add_ps(_mm_loadu_ps(d + i), _mm_loadu_ps(s + i)));
  for (; i < n; ++i) d[i] += s[i];
}
template <>
inline void add_row<double>(double* __restrict d, const double* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) _mm_storeu_pd(d + i, _mm_add_pd(_mm_loadu_pd(d + i), _mm_loadu_pd(s + i)));
  if (i < n) d[i] += s[i];
}
#endif

// The padded width the output columns read: (OW - 1) * sw + (kw - 1) * dw + 1.
int64_t padded_width(const Geom& g) { return (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1; }
// Padded rows that output rows [oy0, oy1) read, starting at padded row oy0 * sh.
int64_t padded_rows(const Geom& g, int64_t oy0, int64_t oy1) { return (oy1 - 1 - oy0) * g.sh + (g.kh - 1) * g.dh + 1; }

// xp[c, r, q] = x[c, r0 + r - pt, q - pl] (0 outside x), for r < Hb, q < Wp.
//
// Args:
//   x     the group's first channel of one image; x[c, y, x] = x[c * sC + y * sH + x * sW]
//   xp    (Cg, Hb, Wp) contiguous (out)
template <class T>
NO_MEMMOVE void pad_rows(const Geom& g, const T* x, int64_t sC, int64_t sH, int64_t sW, int64_t r0, int64_t Hb, int64_t Wp,
              T* __restrict xp) {
  const int64_t lo = std::min(g.pl, Wp), hi = std::clamp<int64_t>(g.pl + g.W, lo, Wp);  // x's columns in xp
  for (int64_t c = 0; c < g.Cg(); ++c)
    for (int64_t r = 0; r < Hb; ++r) {
      T* __restrict d = xp + (c * Hb + r) * Wp;
      const int64_t iy = r0 + r - g.pt;
      if (iy < 0 || iy >= g.H) {
        std::fill(d, d + Wp, T(0));
        continue;
      }
      const T* s = x + c * sC + iy * sH;
      for (int64_t q = 0; q < lo; ++q) d[q] = T(0);
      if (sW == 1)
        copy_row(d + lo, s + lo - g.pl, hi - lo);
      else
        for (int64_t q = lo; q < hi; ++q) d[q] = s[(q - g.pl) * sW];
      for (int64_t q = hi; q < Wp; ++q) d[q] = T(0);
    }
}

// The column matrix of output rows [oy0, oy1) for one group, from its padded rows.
//
// Args:
//   xp         (Cg, Hb, Wp) from pad_rows(r0 = oy0 * sh)
//   col (out)  (rows, (oy1 - oy0) * OW) row-major, rows (c, i, j); rows past Kg (up to `rows`) are zeroed
template <class T>
NO_MEMMOVE void im2col(const Geom& g, const T* xp, int64_t Hb, int64_t Wp, int64_t oy0, int64_t oy1, int64_t rows,
            T* __restrict col) {
  const int64_t OW = g.OW, nrows = oy1 - oy0, ncols = nrows * OW, sw = g.sw;
  for (int64_t c = 0; c < g.Cg(); ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        T* __restrict dst = col + ((c * g.kh + i) * g.kw + j) * ncols;
        const T* src = xp + (c * Hb + i * g.dh) * Wp + j * g.dw;
        for (int64_t r = 0; r < nrows; ++r, dst += OW, src += g.sh * Wp) {
          if (sw == 1)
            copy_row(dst, src, OW);
          else
            for (int64_t ox = 0; ox < OW; ++ox) dst[ox] = src[ox * sw];
        }
      }
  std::fill(col + g.Kg() * ncols, col + rows * ncols, T(0));
}

// Adds the column matrix of output rows [oy0, oy1) back into the padded
// positions it was gathered from (the adjoint of im2col).
//
// Args:
//   col   (Kg, (oy1 - oy0) * OW) as im2col writes it
//   xp    (Cg, Hp, Wp): one group's whole padded image, accumulated into
template <class T>
void col2im(const Geom& g, const T* col, int64_t oy0, int64_t oy1, int64_t Hp, int64_t Wp, T* __restrict xp) {
  const int64_t OW = g.OW, nrows = oy1 - oy0, ncols = nrows * OW, sw = g.sw;
  for (int64_t c = 0; c < g.Cg(); ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* __restrict src = col + ((c * g.kh + i) * g.kw + j) * ncols;
        T* dst = xp + (c * Hp + oy0 * g.sh + i * g.dh) * Wp + j * g.dw;
        for (int64_t r = 0; r < nrows; ++r, src += OW, dst += g.sh * Wp) {
          if (sw == 1)
            add_row(dst, src, OW);
          else
            for (int64_t ox = 0; ox < OW; ++ox) dst[ox * sw] += src[ox];
        }
      }
}

// dx[c, y, x] += xp[c, y + pt, x + pl] where that lies inside xp (Hp, Wp).
//
// Args:
//   xp   (Cg, Hp, Wp) from col2im
//   dx   (Cg, H, W) contiguous: the group's channels of one image
template <class T>
void unpad_add(const Geom& g, const T* xp, int64_t Hp, int64_t Wp, T* __restrict dx) {
  const int64_t yh = std::clamp<int64_t>(Hp - g.pt, 0, g.H), xw = std::clamp<int64_t>(Wp - g.pl, 0, g.W);
  for (int64_t c = 0; c < g.Cg(); ++c)
    for (int64_t y = 0; y < yh; ++y) {
      const T* __restrict s = xp + (c * Hp + y + g.pt) * Wp + g.pl;
      T* d = dx + (c * g.H + y) * g.W;
      add_row(d, s, xw);
    }
}

// ---- operands as matrices --------------------------------------------------------------------

// The weight as an (O, Kg) matrix: w[o, k] = w[o * rs + k * cs]. The (C/g, kh,
// kw) dims of a strided view are folded when its strides allow, else the
// (small) weight is copied.
struct WeightMat {
  Array keep;
  int64_t rs, cs;
};

WeightMat weight_matrix(const Array& w4) {
  const int64_t cg = w4.shape[1], kh = w4.shape[2], kw = w4.shape[3];
  // Folding (c, i, j) into k = (c * kh + i) * kw + j needs stride(c) = kh *
  // stride(i) and stride(i) = kw * stride(j), ignoring size-1 dims.
  int64_t cs = 0, expect = 0;
  bool ok = true, seen = false;
  for (int d = 3; d >= 1; --d) {
    if (w4.shape[d] == 1) continue;
    if (!seen) cs = w4.strides[d];
    else ok = ok && w4.strides[d] == expect;
    seen = true;
    expect = w4.strides[d] * w4.shape[d];
  }
  if (!seen) cs = 1;
  if (ok) return {w4, w4.strides[0], cs};
  Array c = contiguous(w4);
  return {c, cg * kh * kw, 1};
}

// g (N, O, OH, OW) with its (OH, OW) dims folded into one stride (copied when
// they do not fold, e.g. a transposed view).
struct OutMat {
  Array keep;
  int64_t sn, so, sp;
};

OutMat out_matrix(const Array& g4) {
  int64_t sp;
  if (fold_hw(g4.shape[2], g4.shape[3], g4.strides[2], g4.strides[3], &sp))
    return {g4, g4.strides[0], g4.strides[1], sp};
  Array c = contiguous(g4);
  return {c, c.strides[0], c.strides[1], 1};
}

// ---- forward: the column matrix built straight into the GEMM's packed panels ---------------------------
// im2col + gemm() writes the column matrix and then the GEMM copies it again
// into its packed B panels (and packs w again for every image). Here the
// micro-kernels of gemm.h are driven directly: w is packed once per call and
// each B panel (kc x NR output positions) is gathered from the padded input
// rows, which removes a pass over the column matrix (10-15% of the forward).

template <class T>
struct Micro {
  gemm_detail::MicroKernel<T> kernel = nullptr;
  int64_t mr = 0, nr = 0, kc = 0;  // tile, and the K block (as gemm.cpp's for this ISA)
};

// The micro-kernel gemm() would use now (gemm_info() reports the capability
// it checked against the CPU); none for the portable path.
template <class T> Micro<T> micro_kernel();
template <>
Micro<float> micro_kernel<float>() {
  using namespace gemm_detail;
  const std::string cap = gemm_info();
  if (cap == "avx512") return {&ukernel_avx512_f32, kAvx512MrF32, kAvx512NrF32, 256};
  if (cap == "avx2") return {&ukernel_avx2_f32, kAvx2MrF32, kAvx2NrF32, 256};
  return {};
}
template <>
Micro<double> micro_kernel<double>() {
  using namespace gemm_detail;
  const std::string cap = gemm_info();
  if (cap == "avx512") return {&ukernel_avx512_f64, kAvx512MrF64, kAvx512NrF64, 192};
  if (cap == "avx2") return {&ukernel_avx2_f64, kAvx2MrF64, kAvx2NrF64, 256};
  return {};
}

thread_local Scratch t_panel;  // one packed B panel

// One B panel: Bp[k, t] = xp[kofs[k] + offset of position t], for kc taps and
// the nn <= NR positions given as runs (t0, length, offset) of consecutive
// positions; columns past nn are zero.
template <class T>
NO_MEMMOVE void pack_panel(const T* xp, const int64_t* kofs, int64_t kc, const int64_t* runs, int64_t nruns,
                           int64_t sw, int64_t nn, int64_t NR, T* __restrict Bp) {
  for (int64_t k = 0; k < kc; ++k) {
    T* dst = Bp + k * NR;
    const T* base = xp + kofs[k];
    for (int64_t q = 0; q < nruns; q += 3) {
      const T* src = base + runs[q + 2];
      if (sw == 1) {
        copy_row(dst + runs[q], src, runs[q + 1]);
      } else {
        for (int64_t t = 0; t < runs[q + 1]; ++t) dst[runs[q] + t] = src[t * sw];
      }
    }
    for (int64_t t = nn; t < NR; ++t) dst[t] = T(0);
  }
}

template <class T>
void forward_packed(const Geom& g, const Micro<T>& mk, const WeightMat& wm, const Array& x,
                    const std::optional<Array>& bias, Array& y) {
  const T* W = wm.keep.data<T>();
  const T* X = x.data<T>();
  const T* B = bias ? bias->data<T>() : nullptr;
  const int64_t bst = bias ? bias->strides[0] : 0;
  T* Y = y.data<T>();
  const int64_t sN = x.strides[0], sC = x.strides[1], sH = x.strides[2], sW = x.strides[3];
  const int64_t Og = g.Og(), Cg = g.Cg(), Kg = g.Kg(), P = g.P(), OW = g.OW;
  const int64_t MR = mk.mr, NR = mk.nr, khw = g.kh * g.kw;
  const int64_t rb = rows_per_block<T>(g), nblk = (g.OH + rb - 1) / rb, Wp = padded_width(g);
  // K blocks of even size (as gemm.cpp), A panels of MR rows per group.
  const int64_t nkb = (Kg + mk.kc - 1) / mk.kc, kcm = (Kg + nkb - 1) / nkb;
  const int64_t npa = (Og + MR - 1) / MR, apanel = MR * kcm;

  // Ap[((gi * nkb + kb) * npa + a) * apanel + k * MR + r] = w[gi * Og + a * MR + r, kb * kcm + k] (0 past Og).
  Array apack = empty({g.groups * nkb * npa * apanel}, y.dtype);
  T* Ap = apack.data<T>();
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t kb = 0; kb < nkb; ++kb) {
      const int64_t k0 = kb * kcm, kc = std::min(kcm, Kg - k0);
      for (int64_t a = 0; a < npa; ++a) {
        T* dst = Ap + ((gi * nkb + kb) * npa + a) * apanel;
        for (int64_t r = 0; r < MR; ++r) {
          const int64_t o = a * MR + r;
          const T* src = W + (gi * Og + o) * wm.rs + k0 * wm.cs;
          for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = o < Og ? src[k * wm.cs] : T(0);
        }
      }
    }

  run_units(g.N * nblk, [&](int64_t u) {
    const int64_t n = u / nblk, oy0 = (u % nblk) * rb, oy1 = std::min(g.OH, oy0 + rb);
    const int64_t ncols = (oy1 - oy0) * OW, Hb = padded_rows(g, oy0, oy1);
    T* xp = pad_buffer<T>(Cg * Hb * Wp);
    T* Bp = static_cast<T*>(t_panel.get(static_cast<size_t>(kcm * NR) * sizeof(T)));  // 64-byte aligned
    // kofs[k]: where kernel tap k = (c, i, j) starts in xp; runs: the pieces of
    // one panel's NR positions that are contiguous (within one output row).
    std::vector<int64_t> kofs(static_cast<size_t>(Kg));
    for (int64_t k = 0; k < Kg; ++k) {
      const int64_t c = k / khw, i = (k % khw) / g.kw, j = k % g.kw;
      kofs[k] = (c * Hb + i * g.dh) * Wp + j * g.dw;
    }
    std::vector<int64_t> runs;  // (t0, length, offset in xp) triples
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      pad_rows<T>(g, X + n * sN + gi * Cg * sC, sC, sH, sW, oy0 * g.sh, Hb, Wp, xp);
      T* yg = Y + (n * g.O + gi * Og) * P + oy0 * OW;
      T beta = T(0);
      if (B) {  // start from the bias; the kernels add onto it (beta = 1)
        for (int64_t o = 0; o < Og; ++o) std::fill(yg + o * P, yg + o * P + ncols, B[(gi * Og + o) * bst]);
        beta = T(1);
      }
      for (int64_t p0 = 0; p0 < ncols; p0 += NR) {
        const int64_t nn = std::min(NR, ncols - p0);
        runs.clear();
        for (int64_t t = 0; t < nn;) {
          const int64_t r = (p0 + t) / OW, ox = (p0 + t) % OW, len = std::min(OW - ox, nn - t);
          runs.insert(runs.end(), {t, len, r * g.sh * Wp + ox * g.sw});
          t += len;
        }
        for (int64_t kb = 0; kb < nkb; ++kb) {
          const int64_t k0 = kb * kcm, kc = std::min(kcm, Kg - k0);
          pack_panel<T>(xp, kofs.data() + k0, kc, runs.data(), static_cast<int64_t>(runs.size()), g.sw, nn, NR, Bp);
          const T* Ab = Ap + (gi * nkb + kb) * npa * apanel;
          const T bk = kb == 0 ? beta : T(1);
          for (int64_t a = 0; a < npa; ++a)
            mk.kernel(kc, Ab + a * apanel, Bp, yg + a * MR * P + p0, P, 1, T(1), bk, std::min(MR, Og - a * MR), nn);
        }
      }
    }
  });
}

// ---- direct path: stride-1 float convolutions read in place (AVX-512) -------------------------------------
// At small spatial sizes (the 8x8 and 4x4 maps of a digits CNN) the GEMM
// path pays for gathering its packed panels in runs of OW = 4-8 elements
// and, with fewer than 32 positions per image, for micro-kernel columns that
// hold zeros. Here the input is copied once into conv.h's row-shifted layout
// (kw copies of each padded channel, one per horizontal tap), where every
// tap's column-matrix row is one contiguous run; the kernels of
// conv_avx512.cpp read those runs as they lie, 16 output positions per
// vector, and a tile may take its vectors from several images. The input
// gradient of a stride-1 convolution is itself such a convolution (of g,
// with the kernel flipped and the channel roles swapped), so it needs no
// col2im scatter either.

// One direct convolution: out[co, y, x] = bias[co] + sum_{ci, i, j}
// wt(co, ci, i, j) * in[ci, y + i * dh - pt, x + j * dw - pl] (0 outside in),
// per group; pt / pl may be negative (input-gradient geometry).
struct Direct {
  int64_t N, Ci, Hi, Wi;  // the input read, Ci channels per group
  int64_t Co, OH, OW;     // output channels per group, output size
  int64_t kh, kw, dh, dw, pt, pl, groups;
  int64_t Hp() const { return OH + (kh - 1) * dh; }
  int64_t K() const { return Ci * kh * kw; }
  int64_t P() const { return OH * OW; }
  int64_t xs_size() const { return kw * Ci * Hp() * OW; }  // per image and group
  // Where tap (c, i, j) meets position 0 in xs (conv.h).
  int64_t koff(int64_t c, int64_t i, int64_t j) const { return ((j * Ci + c) * Hp() + i * dh) * OW; }
};

// FASTGRAD_CONV_DIRECT=0 turns the direct path off, =1 takes it for every
// stride-1 float convolution the CPU can run it for (tests force both
// paths); unset, it is taken where it measured faster.
int direct_mode() {
  const char* e = std::getenv("FASTGRAD_CONV_DIRECT");
  if (!e || !*e) return -1;
  return e[0] == '1' ? 1 : 0;
}

// The per-image (and group) input copy the direct path works from, in bytes
// at most: above it the GEMM path's blocks of rows keep the cache better.
constexpr int64_t kDirectXsBudget = 256 * 1024;

// Whether to take the direct path for a Direct convolution d (forward or
// input gradient: d.Co output channels fill the kernel's rows) or, with
// wgrad, for the weight gradient of the forward geometry d.
template <class T>
bool use_direct(const Geom& g, const Direct& d, bool wgrad = false) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
    if (g.sh != 1 || g.sw != 1 || d.Ci == 0 || gemm_info() != "avx512") return false;
    const int mode = direct_mode();
    if (mode >= 0) return mode == 1;
    // Measured (bench_conv.py, DigitsCNN, 1 thread): the direct path wins
    // while the copy stays in L2 and the output channels fill the tile's 8
    // rows (3 -> 32 channels 32x32: forward 1.2 -> 0.6 ms; its input
    // gradient, 3 rows of 8 used, 0.9 -> 2.3 ms). The weight gradient:
    // 9 - 27 taps 2-3x faster, 288 taps on 8x8 0.47 -> 0.36 ms.
    if (g.pointwise() || d.xs_size() * int64_t(sizeof(float)) > kDirectXsBudget) return false;
    return wgrad || d.Co >= conv_detail::kDirectMr;
  }
}

// xs (conv.h layout) of one image and group.
//
// Args:
//   x    the group's first channel of one image: x[c, y, x] = x[c * sC + y * sH + x * sW]
//   xs   (kw, Ci, Hp, OW) contiguous (out)
NO_MEMMOVE void build_shifted(const Direct& d, const float* x, int64_t sC, int64_t sH, int64_t sW,
                              float* __restrict xs) {
  const int64_t Hp = d.Hp(), OW = d.OW;
  if (sW == 1)  // the direct path runs on AVX-512 only: masked row moves
    return conv_detail::shift_rows_avx512_f32(x, sC, sH, d.Ci, d.Hi, d.Wi, OW, Hp, d.kw, d.dw, d.pt, d.pl, xs);
  for (int64_t j = 0; j < d.kw; ++j) {
    const int64_t shift = j * d.dw - d.pl;  // input column of output column 0
    const int64_t lo = std::clamp<int64_t>(-shift, 0, OW), hi = std::clamp<int64_t>(d.Wi - shift, lo, OW);
    for (int64_t c = 0; c < d.Ci; ++c)
      for (int64_t y = 0; y < Hp; ++y) {
        float* __restrict dst = xs + ((j * d.Ci + c) * Hp + y) * OW;
        const int64_t iy = y - d.pt;
        if (iy < 0 || iy >= d.Hi) {
          for (int64_t q = 0; q < OW; ++q) dst[q] = 0.0f;
          continue;
        }
        const float* s = x + c * sC + iy * sH + shift * sW;
        for (int64_t q = 0; q < lo; ++q) dst[q] = 0.0f;
        if (sW == 1)
          copy_row(dst + lo, s + lo, hi - lo);
        else
          for (int64_t q = lo; q < hi; ++q) dst[q] = s[q * sW];
        for (int64_t q = hi; q < OW; ++q) dst[q] = 0.0f;
      }
  }
}

// Work units of whole images: enough to keep every thread busy, each unit's
// copies within the budget. Results do not depend on the split (every output
// element is summed whole inside one kernel call).
int64_t direct_units(int64_t N, int64_t per_image_bytes) {
  int64_t units = (N * per_image_bytes + kDirectXsBudget - 1) / kDirectXsBudget;
  if (!in_parallel_region()) units = std::max<int64_t>(units, get_num_threads());
  units = std::clamp<int64_t>(units, 1, N);
  const int64_t ipu = (N + units - 1) / units;
  return (N + ipu - 1) / ipu;
}

void parallel_units(int64_t units, const std::function<void(int64_t)>& unit) {
  if (units > 1 && !in_parallel_region() && get_num_threads() > 1)
    parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) unit(u);
    });
  else
    for (int64_t u = 0; u < units; ++u) unit(u);
}

// out (N, groups * Co, OH, OW) contiguous = the Direct convolution of X.
//
// Args:
//   X, sN..sW  the input (N, groups * Ci, Hi, Wi) and its strides
//   wt         wt(gi, co, ci, i, j): the group's weight as the convolution reads it
//   B, bst     bias (groups * Co values, stride bst) or null
template <class WT>
void direct_conv(const Direct& d, const float* X, int64_t sN, int64_t sC, int64_t sH, int64_t sW, WT wt,
                 const float* B, int64_t bst, float* Y) {
  constexpr int64_t MR = conv_detail::kDirectMr;
  const int64_t K = d.K(), P = d.P(), Cout = d.groups * d.Co, npa = (d.Co + MR - 1) / MR, xsz = d.xs_size();
  // K runs over the taps as (j, c, i): consecutive taps read nearby rows of xs.
  std::vector<int64_t> koff(static_cast<size_t>(K));
  std::vector<float> ap(static_cast<size_t>(d.groups * npa * K * MR)), bp;
  for (int64_t k = 0, j = 0; j < d.kw; ++j)
    for (int64_t c = 0; c < d.Ci; ++c)
      for (int64_t i = 0; i < d.kh; ++i, ++k) {
        koff[k] = d.koff(c, i, j);
        for (int64_t gi = 0; gi < d.groups; ++gi)
          for (int64_t a = 0; a < npa; ++a) {
            float* dst = ap.data() + ((gi * npa + a) * K + k) * MR;
            for (int64_t r = 0; r < MR; ++r) dst[r] = a * MR + r < d.Co ? wt(gi, a * MR + r, c, i, j) : 0.0f;
          }
      }
  if (B) {
    bp.assign(static_cast<size_t>(d.groups * npa * MR), 0.0f);
    for (int64_t gi = 0; gi < d.groups; ++gi)
      for (int64_t o = 0; o < d.Co; ++o) bp[gi * npa * MR + o] = B[(gi * d.Co + o) * bst];
  }
  const int64_t vpi = (P + 15) / 16;  // vectors per image
  const int64_t units = direct_units(d.N, xsz * int64_t(sizeof(float)));
  const int64_t ipu = (d.N + units - 1) / units;
  parallel_units(units, [&](int64_t u) {
    const int64_t n0 = u * ipu, n1 = std::min(d.N, n0 + ipu), nv = (n1 - n0) * vpi;
    float* xs = pad_buffer<float>((n1 - n0) * xsz);
    for (int64_t gi = 0; gi < d.groups; ++gi) {
      for (int64_t n = n0; n < n1; ++n)
        build_shifted(d, X + n * sN + gi * d.Ci * sC, sC, sH, sW, xs + (n - n0) * xsz);
      for (int64_t v0 = 0; v0 < nv; v0 += 3) {
        const float* bv[3];
        float* cv[3];
        uint16_t mk[3];
        const int cnt = static_cast<int>(std::min<int64_t>(3, nv - v0));
        for (int q = 0; q < cnt; ++q) {
          const int64_t v = v0 + q, n = v / vpi, p0 = (v % vpi) * 16, len = std::min<int64_t>(16, P - p0);
          bv[q] = xs + n * xsz + p0;
          cv[q] = Y + ((n0 + n) * Cout + gi * d.Co) * P + p0;
          mk[q] = static_cast<uint16_t>((1u << len) - 1u);
        }
        for (int64_t a = 0; a < npa; ++a) {
          float* ca[3];
          for (int q = 0; q < cnt; ++q) ca[q] = cv[q] + a * MR * P;
          conv_detail::direct_tile_avx512_f32(K, ap.data() + (gi * npa + a) * K * MR, koff.data(), cnt, bv, ca, mk,
                                              P, static_cast<int>(std::min(MR, d.Co - a * MR)),
                                              B ? bp.data() + (gi * npa + a) * MR : nullptr);
        }
      }
    }
  });
}

// dw (groups * Co, Ci, kh, kw) contiguous = sum over images and positions of
// G[n, co, p] * (tap (ci, i, j) of X at p), for the forward geometry d.
// Chunks of images (fixed by the shape) sum in order; inside a chunk every
// (channels x taps) tile is summed whole by one kernel call.
void direct_weight_grad(const Direct& d, const float* X, int64_t sN, int64_t sC, int64_t sH, int64_t sW,
                        const float* G, int64_t gsn, int64_t gso, float* DW) {
  constexpr int MO = conv_detail::kWgradMo, MT = conv_detail::kWgradMt;
  const int64_t K = d.K(), P = d.P(), khw = d.kh * d.kw, xsz = d.xs_size();
  const int64_t ntt = (K + MT - 1) / MT, nto = (d.Co + MO - 1) / MO;
  // Taps in the weight's (c, i, j) order, padded to whole tiles with copies of tap 0.
  std::vector<int64_t> koff(static_cast<size_t>(ntt * MT), d.koff(0, 0, 0));
  for (int64_t k = 0; k < K; ++k) koff[k] = d.koff(k / khw, (k % khw) / d.kw, k % d.kw);
  // Chunks of images whose copies (xs, and gt below) fill about one L2: the
  // kernels then re-read them from L2, and a batch of small maps is one chunk
  // (two chunks of 8x8 32-channel images kept 2 threads at 1-thread speed:
  // 0.36 ms either way; one chunk 0.21 ms on 2 threads).
  const int64_t per_image = (xsz + P * ((d.Co + 31) / 32 * 32)) * int64_t(sizeof(float));
  const int64_t ipc = std::clamp<int64_t>((int64_t(1280) << 10) / per_image, 1, d.N);
  float* xs = pad_buffer<float>(ipc * xsz);  // the caller's: the workers only read it
  // Many taps: the broadcast kernel (no horizontal sums; 8x8 maps, 288 taps:
  // 0.51 -> 0.36 ms); few taps (a stem): the position-vector kernel, whose
  // tiles the taps fill (9 taps: 0.05 -> 0.02 ms).
  const bool bcast = K > 64;
  std::vector<int64_t> koffb;
  for (int64_t n0 = 0; n0 < d.N; n0 += ipc) {
    const int64_t n1 = std::min(d.N, n0 + ipc);
    for (int64_t gi = 0; gi < d.groups; ++gi) {
      parallel_units(n1 - n0, [&](int64_t q) {
        build_shifted(d, X + (n0 + q) * sN + gi * d.Ci * sC, sC, sH, sW, xs + q * xsz);
      });
      if (bcast) {
        constexpr int BT = conv_detail::kWgradBt, BO = 16 * conv_detail::kWgradBv;
        const int64_t nbo = (d.Co + BO - 1) / BO, ldo = nbo * BO, nbt = (K + BT - 1) / BT;
        // gt (images, P, ldo): g transposed to position-major, channels past Co zero
        float* gt = col_buffer<float>((n1 - n0) * P * ldo);
        parallel_units(n1 - n0, [&](int64_t q) {
          float* dst = gt + q * P * ldo;
          const float* src = G + (n0 + q) * gsn + gi * d.Co * gso;
          for (int64_t p = 0; p < P; ++p) {
            for (int64_t o = 0; o < d.Co; ++o) dst[p * ldo + o] = src[o * gso + p];
            for (int64_t o = d.Co; o < ldo; ++o) dst[p * ldo + o] = 0.0f;
          }
        });
        koffb.assign(static_cast<size_t>(nbt * BT), d.koff(0, 0, 0));
        for (int64_t k = 0; k < K; ++k) koffb[k] = koff[k];
        parallel_units(nbo * nbt, [&](int64_t t) {
          const int64_t o0 = (t / nbt) * BO, t0 = (t % nbt) * BT;
          conv_detail::wgrad_bcast_avx512_f32(n1 - n0, P, gt + o0, P * ldo, ldo, xs, xsz, koffb.data() + t0,
                                              DW + (gi * d.Co + o0) * K + t0, K,
                                              static_cast<int>(std::min<int64_t>(BT, K - t0)),
                                              static_cast<int>(std::min<int64_t>(BO, d.Co - o0)), n0 > 0);
        });
        continue;
      }
      parallel_units(nto * ntt, [&](int64_t t) {
        const int64_t o0 = (t / ntt) * MO, t0 = (t % ntt) * MT;
        const float* gp[MO];
        for (int q = 0; q < MO; ++q)
          gp[q] = G + n0 * gsn + (gi * d.Co + std::min<int64_t>(o0 + q, d.Co - 1)) * gso;
        conv_detail::wgrad_tile_avx512_f32(n1 - n0, P, gp, gsn, xs, xsz, koff.data() + t0,
                                           DW + (gi * d.Co + o0) * K + t0, K,
                                           static_cast<int>(std::min<int64_t>(MO, d.Co - o0)),
                                           static_cast<int>(std::min<int64_t>(MT, K - t0)), n0 > 0);
      });
    }
  }
}

template <class T>
void forward_typed(const Geom& g, const Array& x, const Array& w, const std::optional<Array>& bias, Array& y) {
  const WeightMat wm = weight_matrix(w);
  const T* W = wm.keep.data<T>();
  const T* X = x.data<T>();
  const T* B = bias ? bias->data<T>() : nullptr;
  const int64_t bst = bias ? bias->strides[0] : 0;
  T* Y = y.data<T>();
  const int64_t sN = x.strides[0], sC = x.strides[1], sH = x.strides[2], sW = x.strides[3];
  const int64_t Og = g.Og(), Cg = g.Cg(), Kg = g.Kg(), P = g.P(), OW = g.OW;
  if constexpr (std::is_same_v<T, float>) {
    const Direct d{g.N, Cg, g.H, g.W, Og, g.OH, g.OW, g.kh, g.kw, g.dh, g.dw, g.pt, g.pl, g.groups};
    if (use_direct<T>(g, d)) {
      direct_conv(d, X, sN, sC, sH, sW, [&](int64_t gi, int64_t o, int64_t c, int64_t i, int64_t j) {
        return W[(gi * Og + o) * wm.rs + ((c * g.kh + i) * g.kw + j) * wm.cs];
      }, B, bst, Y);
      return;
    }
  }
  int64_t sp = 0;
  const bool direct = g.pointwise() && fold_hw(g.H, g.W, sH, sW, &sp);
  if (!direct && Kg > 0) {  // (Kg = 0, no input channels: the GEMM path writes the bias)
    const Micro<T> mk = micro_kernel<T>();
    if (mk.kernel) return forward_packed<T>(g, mk, wm, x, bias, y);
  }
  const int64_t rb = rows_per_block<T>(g), nblk = (g.OH + rb - 1) / rb, Wp = padded_width(g);

  run_units(g.N * nblk, [&](int64_t u) {
    const int64_t n = u / nblk, oy0 = (u % nblk) * rb, oy1 = std::min(g.OH, oy0 + rb);
    const int64_t ncols = (oy1 - oy0) * OW;
    const T* xn = X + n * sN;
    const int64_t Hb = padded_rows(g, oy0, oy1);
    T* col = direct ? nullptr : col_buffer<T>(Kg * ncols);
    T* xp = direct ? nullptr : pad_buffer<T>(Cg * Hb * Wp);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const T* xg = xn + gi * Cg * sC;
      T* yg = Y + (n * g.O + gi * Og) * P + oy0 * OW;
      T beta = T(0);
      if (B) {  // start from the bias; the GEMM adds onto it (beta = 1)
        for (int64_t o = 0; o < Og; ++o) std::fill(yg + o * P, yg + o * P + ncols, B[(gi * Og + o) * bst]);
        beta = T(1);
      }
      if (direct) {
        gemm<T>(Og, ncols, Kg, W + gi * Og * wm.rs, wm.rs, wm.cs, xg + oy0 * OW * sp, sC, sp, yg, P, 1, T(1), beta);
      } else {
        pad_rows<T>(g, xg, sC, sH, sW, oy0 * g.sh, Hb, Wp, xp);
        im2col<T>(g, xp, Hb, Wp, oy0, oy1, Kg, col);
        gemm<T>(Og, ncols, Kg, W + gi * Og * wm.rs, wm.rs, wm.cs, col, ncols, 1, yg, P, 1, T(1), beta);
      }
    }
  });
}

// ---- input gradient (transposed convolution) -------------------------------------------------------

template <class T>
void input_grad_typed(const Geom& g, const Array& gout, const Array& w, const std::optional<Array>& bias,
                      Array& dx) {
  const WeightMat wm = weight_matrix(w);
  if constexpr (std::is_same_v<T, float>) {
    // Stride 1: dx[c, y, x] = sum_{o, i, j} w[o, c, i, j] g[o, y + pt - i * dh, x + pl - j * dw], a
    // convolution of g with the kernel flipped (i' = kh - 1 - i) and padding (kh - 1) * dh - pt.
    const Direct d{g.N, g.Og(), g.OH, g.OW, g.Cg(), g.H, g.W, g.kh, g.kw, g.dh, g.dw,
                   (g.kh - 1) * g.dh - g.pt, (g.kw - 1) * g.dw - g.pl, g.groups};
    if (use_direct<T>(g, d)) {
      const T* W = wm.keep.data<T>();
      const int64_t Og = g.Og(), kh = g.kh, kw = g.kw;
      direct_conv(d, gout.data<T>(), gout.strides[0], gout.strides[1], gout.strides[2], gout.strides[3],
                  [&](int64_t gi, int64_t c, int64_t o, int64_t i, int64_t j) {
                    return W[(gi * Og + o) * wm.rs + ((c * kh + kh - 1 - i) * kw + kw - 1 - j) * wm.cs];
                  }, bias ? bias->data<T>() : nullptr, bias ? bias->strides[0] : 0, dx.data<T>());
      return;
    }
  }
  const OutMat gm = out_matrix(gout);
  const T* W = wm.keep.data<T>();
  const T* G = gm.keep.data<T>();
  const T* B = bias ? bias->data<T>() : nullptr;
  const int64_t bst = bias ? bias->strides[0] : 0;
  T* DX = dx.data<T>();
  const int64_t Og = g.Og(), Cg = g.Cg(), Kg = g.Kg(), OW = g.OW, HW = g.H * g.W;
  const bool direct = g.pointwise();
  const int64_t rb = rows_per_block<T>(g), nblk = (g.OH + rb - 1) / rb;

  // One image per unit: blocks of output rows add into overlapping input
  // rows, so they stay in one thread, in order. Non-pointwise: each group's
  // gradient is summed in a zero-padded image (no bounds checks in col2im)
  // and its interior added to dx at the end.
  const int64_t Hp = padded_rows(g, 0, g.OH), Wp = padded_width(g);
  run_units(g.N, [&](int64_t n) {
    T* dxn = DX + n * g.C * HW;
    if (B) {
      for (int64_t c = 0; c < g.C; ++c) std::fill(dxn + c * HW, dxn + (c + 1) * HW, B[c * bst]);
    } else if (!direct) {
      std::fill(dxn, dxn + g.C * HW, T(0));
    }
    const T beta = B ? T(1) : T(0);
    T* col = direct ? nullptr : col_buffer<T>(Kg * std::min(rb, g.OH) * OW);
    T* xp = direct ? nullptr : pad_buffer<T>(Cg * Hp * Wp);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      // w^T (Kg, Og): element (k, o) at o * rs + k * cs.
      const T* Wt = W + gi * Og * wm.rs;
      T* dxg = dxn + gi * Cg * HW;
      if (!direct) std::fill(xp, xp + Cg * Hp * Wp, T(0));
      for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t oy0 = blk * rb, oy1 = std::min(g.OH, oy0 + rb), ncols = (oy1 - oy0) * OW;
        const T* Gg = G + n * gm.sn + gi * Og * gm.so + oy0 * OW * gm.sp;
        if (direct) {
          gemm<T>(Kg, ncols, Og, Wt, wm.cs, wm.rs, Gg, gm.so, gm.sp, dxg + oy0 * OW, HW, 1, T(1), beta);
        } else {
          gemm<T>(Kg, ncols, Og, Wt, wm.cs, wm.rs, Gg, gm.so, gm.sp, col, ncols, 1, T(1), T(0));
          col2im<T>(g, col, oy0, oy1, Hp, Wp, xp);
        }
      }
      if (!direct) unpad_add<T>(g, xp, Hp, Wp, dxg);
    }
  });
}

// ---- weight gradient with panels gathered straight from the padded input --------------------------------
// dw (Og, Kg) = g (Og, P) @ col^T (P, Kg): the reduction runs over output
// positions, which lie along rows of both g and col, so both operands need a
// transpose to reach the packed layout. im2col + gemm() pays it twice (im2col
// writes col, the GEMM transposes it while packing); here each B panel
// (positions x NR taps) is transposed straight out of the padded input, with
// 4x4 SSE transposes where four positions are adjacent in memory.

// Bp[p * NR + t] = xp[kofs[t] + offs[p]] for t < nn taps and p < kc positions;
// columns nn..NR are zero.
template <class T>
NO_MEMMOVE void pack_taps(const T* xp, const int64_t* kofs, int64_t nn, const int64_t* offs, int64_t kc, int64_t NR,
                          bool unit, T* __restrict Bp) {
  int64_t t = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    for (; t + 4 <= nn; t += 4) {
      const float *r0 = xp + kofs[t], *r1 = xp + kofs[t + 1], *r2 = xp + kofs[t + 2], *r3 = xp + kofs[t + 3];
      int64_t p = 0;
      for (; p + 4 <= kc; p += 4) {
        const int64_t o = offs[p];
        if (unit && offs[p + 3] == o + 3) {  // four positions side by side in one row
          __m128 a = _mm_loadu_ps(r0 + o), b = _mm_loadu_ps(r1 + o), c = _mm_loadu_ps(r2 + o), d = _mm_loadu_ps(r3 + o);
          _MM_TRANSPOSE4_PS(a, b, c, d);
          _mm_storeu_ps(Bp + (p + 0) * NR + t, a);
          _mm_storeu_ps(Bp + (p + 1) * NR + t, b);
          _mm_storeu_ps(Bp + (p + 2) * NR + t, c);
          _mm_storeu_ps(Bp + (p + 3) * NR + t, d);
        } else {
          for (int64_t q = p; q < p + 4; ++q) {
            float* dst = Bp + q * NR + t;
            dst[0] = r0[offs[q]], dst[1] = r1[offs[q]], dst[2] = r2[offs[q]], dst[3] = r3[offs[q]];
          }
        }
      }
      for (; p < kc; ++p) {
        float* dst = Bp + p * NR + t;
        dst[0] = r0[offs[p]], dst[1] = r1[offs[p]], dst[2] = r2[offs[p]], dst[3] = r3[offs[p]];
      }
    }
  }
#endif
  for (; t < nn; ++t) {
    const T* r = xp + kofs[t];
    for (int64_t p = 0; p < kc; ++p) Bp[p * NR + t] = r[offs[p]];
  }
  if (nn < NR)
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t u = nn; u < NR; ++u) Bp[p * NR + u] = T(0);
}

// Ap[p * MR + r] = G[r * so + p * sp] for r < m rows and p < kc positions; rows m..MR are zero.
template <class T>
void pack_out_rows(const T* G, int64_t so, int64_t sp, int64_t m, int64_t kc, int64_t MR, T* __restrict Ap) {
  int64_t r0 = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    if (sp == 1 && MR % 4 == 0) {  // 4x4 transposes: 4 rows x 4 positions at a time
      for (; r0 + 4 <= m; r0 += 4) {
        const float *g0 = G + r0 * so, *g1 = g0 + so, *g2 = g1 + so, *g3 = g2 + so;
        int64_t p = 0;
        for (; p + 4 <= kc; p += 4) {
          __m128 a = _mm_loadu_ps(g0 + p), b = _mm_loadu_ps(g1 + p), c = _mm_loadu_ps(g2 + p), d = _mm_loadu_ps(g3 + p);
          _MM_TRANSPOSE4_PS(a, b, c, d);
          _mm_storeu_ps(Ap + (p + 0) * MR + r0, a);
          _mm_storeu_ps(Ap + (p + 1) * MR + r0, b);
          _mm_storeu_ps(Ap + (p + 2) * MR + r0, c);
          _mm_storeu_ps(Ap + (p + 3) * MR + r0, d);
        }
        for (; p < kc; ++p) {
          float* dst = Ap + p * MR + r0;
          dst[0] = g0[p], dst[1] = g1[p], dst[2] = g2[p], dst[3] = g3[p];
        }
      }
    }
  }
#endif
  for (int64_t r = r0; r < m; ++r) {
    const T* src = G + r * so;
    for (int64_t p = 0; p < kc; ++p) Ap[p * MR + r] = src[p * sp];
  }
  for (int64_t p = 0; p < kc; ++p)
    for (int64_t r = m; r < MR; ++r) Ap[p * MR + r] = T(0);
}

template <class T>
void weight_grad_packed(const Geom& g, const Micro<T>& mk, const OutMat& gm, const Array& x, Array& dw) {
  const T* G = gm.keep.data<T>();
  const T* X = x.data<T>();
  T* DW = dw.data<T>();
  const int64_t sN = x.strides[0], sC = x.strides[1], sH = x.strides[2], sW = x.strides[3];
  const int64_t Og = g.Og(), Cg = g.Cg(), Kg = g.Kg(), P = g.P(), OW = g.OW, khw = g.kh * g.kw;
  const int64_t MR = mk.mr, NR = mk.nr, Hp = padded_rows(g, 0, g.OH), Wp = padded_width(g);
  // K (positions) blocks of even size; A panels of MR output channels; B panels of NR taps.
  const int64_t nkb = (P + mk.kc - 1) / mk.kc, kcm = (P + nkb - 1) / nkb;
  const int64_t npa = (Og + MR - 1) / MR, wsize = g.O * Kg;
  std::vector<int64_t> kofs(static_cast<size_t>(Kg)), offs(static_cast<size_t>(P));
  for (int64_t k = 0; k < Kg; ++k)
    kofs[k] = ((k / khw) * Hp + ((k % khw) / g.kw) * g.dh) * Wp + (k % g.kw) * g.dw;
  for (int64_t p = 0; p < P; ++p) offs[p] = (p / OW) * g.sh * Wp + (p % OW) * g.sw;

  // Chunks of images as in weight_grad_typed.
  const int64_t budget = (int64_t(32) << 20) / int64_t(sizeof(T));
  const int64_t nchunks = std::clamp<int64_t>(std::min<int64_t>(16, budget / wsize), 1, g.N);
  Array partial_keep;
  T* partial = nullptr;
  if (nchunks > 1) {
    partial_keep = empty({(nchunks - 1) * wsize}, dw.dtype);
    partial = partial_keep.data<T>();
  }

  run_units(nchunks, [&](int64_t ch) {
    T* acc = ch == 0 ? DW : partial + (ch - 1) * wsize;
    const int64_t n0 = g.N * ch / nchunks, n1 = g.N * (ch + 1) / nchunks;
    T* xp = pad_buffer<T>(Cg * Hp * Wp);
    T* Ap = col_buffer<T>(npa * MR * kcm);
    T* Bp = static_cast<T*>(t_panel.get(static_cast<size_t>(kcm * NR) * sizeof(T)));  // 64-byte aligned
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        pad_rows<T>(g, X + n * sN + gi * Cg * sC, sC, sH, sW, 0, Hp, Wp, xp);
        T* dwg = acc + gi * Og * Kg;
        for (int64_t kb = 0; kb < nkb; ++kb) {
          const int64_t p0 = kb * kcm, kc = std::min(kcm, P - p0);
          const T beta = n == n0 && kb == 0 ? T(0) : T(1);
          const T* Gg = G + n * gm.sn + gi * Og * gm.so + p0 * gm.sp;
          for (int64_t a = 0; a < npa; ++a)
            pack_out_rows<T>(Gg + a * MR * gm.so, gm.so, gm.sp, std::min(MR, Og - a * MR), kc, MR, Ap + a * MR * kcm);
          for (int64_t t0 = 0; t0 < Kg; t0 += NR) {
            const int64_t nn = std::min(NR, Kg - t0);
            pack_taps<T>(xp, kofs.data() + t0, nn, offs.data() + p0, kc, NR, g.sw == 1, Bp);
            for (int64_t a = 0; a < npa; ++a)
              mk.kernel(kc, Ap + a * MR * kcm, Bp, dwg + a * MR * Kg + t0, Kg, 1, T(1), beta,
                        std::min(MR, Og - a * MR), nn);
          }
        }
      }
  });

  if (nchunks > 1) {
    // dw += the other chunks' sums, in chunk order for every element.
    auto add = [&](int64_t i0, int64_t i1) {
      for (int64_t ch = 1; ch < nchunks; ++ch) add_row(DW + i0, partial + (ch - 1) * wsize + i0, i1 - i0);
    };
    if (!in_parallel_region() && wsize * nchunks >= 65536) parallel_for(wsize, 4096, add);
    else add(0, wsize);
  }
}

// ---- weight gradient ------------------------------------------------------------------------------------

template <class T>
void weight_grad_typed(const Geom& g, const Array& gout, const Array& x, Array& dw) {
  const OutMat gm = out_matrix(gout);
  const T* G = gm.keep.data<T>();
  const T* X = x.data<T>();
  T* DW = dw.data<T>();
  const int64_t sN = x.strides[0], sC = x.strides[1], sH = x.strides[2], sW = x.strides[3];
  const int64_t Og = g.Og(), Cg = g.Cg(), Kg = g.Kg(), OW = g.OW;
  int64_t sp = 0;
  const bool direct = g.pointwise() && fold_hw(g.H, g.W, sH, sW, &sp);
  const int64_t rb = rows_per_block<T>(g), nblk = (g.OH + rb - 1) / rb, Wp = padded_width(g);
  if (g.N == 0 || g.O * Kg == 0) {
    std::fill(DW, DW + g.O * Kg, T(0));
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    const Direct d{g.N, Cg, g.H, g.W, Og, g.OH, g.OW, g.kh, g.kw, g.dh, g.dw, g.pt, g.pl, g.groups};
    if (gm.sp == 1 && use_direct<T>(g, d, true))
      return direct_weight_grad(d, X, sN, sC, sH, sW, G, gm.sn, gm.so, DW);
  }
  if (!direct) {
    const Micro<T> mk = micro_kernel<T>();
    if (mk.kernel) return weight_grad_packed<T>(g, mk, gm, x, dw);
  }
  // The GEMM reads col^T (ncols, Kg) as B: its packing transposes whole
  // panels of 32 columns with vector shuffles but copies a narrower last
  // panel element by element. Zero rows that round Kg up to a multiple of 32
  // keep every panel whole (Kg = 27 for a 3x3 RGB stem: 2-3x faster).
  const int64_t Kp = direct ? Kg : (Kg + 31) / 32 * 32;
  const int64_t wsize = g.O * Kp;

  // Chunks of images, each summing into its own buffer: at most 16, and at
  // most ~32 MiB of them. Chunk 0 writes dw itself when no padding is needed.
  const int64_t budget = (int64_t(32) << 20) / int64_t(sizeof(T));
  const int64_t nchunks = std::clamp<int64_t>(std::min<int64_t>(16, budget / wsize), 1, g.N);
  const bool in_place = nchunks == 1 && Kp == Kg;
  Array partial_keep;
  T* partial = nullptr;
  if (!in_place) {
    partial_keep = empty({nchunks * wsize}, dw.dtype);
    partial = partial_keep.data<T>();
  }

  run_units(nchunks, [&](int64_t ch) {
    T* acc = in_place ? DW : partial + ch * wsize;
    const int64_t n0 = g.N * ch / nchunks, n1 = g.N * (ch + 1) / nchunks;
    bool first = true;
    for (int64_t n = n0; n < n1; ++n) {
      const T* xn = X + n * sN;
      for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t oy0 = blk * rb, oy1 = std::min(g.OH, oy0 + rb), ncols = (oy1 - oy0) * OW;
        const int64_t Hb = padded_rows(g, oy0, oy1);
        T* col = direct ? nullptr : col_buffer<T>(Kp * ncols);
        T* xp = direct ? nullptr : pad_buffer<T>(Cg * Hb * Wp);
        for (int64_t gi = 0; gi < g.groups; ++gi) {
          const T* xg = xn + gi * Cg * sC;
          const T* Gg = G + n * gm.sn + gi * Og * gm.so + oy0 * OW * gm.sp;
          T* dwg = acc + gi * Og * Kp;
          const T beta = first ? T(0) : T(1);
          if (direct) {
            // col^T (ncols, Kg): element (p, c) = x[c, p]
            gemm<T>(Og, Kg, ncols, Gg, gm.so, gm.sp, xg + oy0 * OW * sp, sp, sC, dwg, Kp, 1, T(1), beta);
          } else {
            pad_rows<T>(g, xg, sC, sH, sW, oy0 * g.sh, Hb, Wp, xp);
            im2col<T>(g, xp, Hb, Wp, oy0, oy1, Kp, col);
            gemm<T>(Og, Kp, ncols, Gg, gm.so, gm.sp, col, 1, ncols, dwg, Kp, 1, T(1), beta);
          }
        }
        first = false;
      }
    }
  });

  if (!in_place) {
    // dw[o, k] = sum of the chunks' [o, k], in chunk order for every element.
    auto add = [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        T* d = DW + o * Kg;
        const T* p = partial + o * Kp;
        for (int64_t k = 0; k < Kg; ++k) d[k] = p[k];
        for (int64_t ch = 1; ch < nchunks; ++ch) {
          p += wsize;
          for (int64_t k = 0; k < Kg; ++k) d[k] += p[k];
        }
      }
    };
    if (!in_parallel_region() && wsize * nchunks >= 65536)
      parallel_for(g.O, std::max<int64_t>(1, 4096 / Kp), add);
    else
      add(0, g.O);
  }
}

}  // namespace

// ---- entry points ---------------------------------------------------------------------------------------

Array conv_forward(const Array& x, const Array& w, const std::optional<Array>& bias,
                   const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                   const std::vector<int64_t>& dilation, int64_t groups, const std::string& op) {
  const int sd = x.ndim() == 3 ? 1 : 2;
  const Params p = parse_params(op, sd, stride, padding, dilation, groups);
  const Geom g = make_geom(op, p, x.shape, w.shape, "input");
  check_dtypes(op, "input", x, "weight", w);
  check_bias(op, bias, g.O, w);
  Array y = empty(out_shape(g, sd), x.dtype, x.device());
  if (y.numel() == 0) return y;
  const Array x4 = as_2d(x, sd), w4 = as_2d(w, sd);
  Array y4 = as_2d(y, sd);
  on_device(op.c_str(), x.device(), [&] {
    dispatch_float(x.dtype, op.c_str(), [&](auto t) { forward_typed<decltype(t)>(g, x4, w4, bias, y4); });
  }, [&] { cuda::conv_forward(cuda::conv_geom(g), x4, w4, bias, y4, op.c_str()); });
  return y;
}

Array conv_input_grad(const Array& gout, const Array& w, const std::optional<Array>& bias,
                      const std::vector<int64_t>& input_size, const std::vector<int64_t>& stride,
                      const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups,
                      const std::string& op) {
  const int sd = gout.ndim() == 3 ? 1 : 2;
  const Params p = parse_params(op, sd, stride, padding, dilation, groups);
  if (gout.ndim() != sd + 2 || w.ndim() != sd + 2)
    throw std::invalid_argument(op + ": expected input and weight with " + std::to_string(sd + 2) +
                                " dims, got shapes " + shape_str(gout.shape) + " and " + shape_str(w.shape));
  if (static_cast<int>(input_size.size()) != sd)
    throw std::invalid_argument(op + ": expected an output size of " + std::to_string(sd) + " values, got " +
                                vec_str(input_size));
  for (int64_t s : input_size)
    if (s < 0) throw std::invalid_argument(op + ": negative output size " + vec_str(input_size));
  check_dtypes(op, "input", gout, "weight", w);
  // gout is (N, O, OH, OW): its channel count must be the weight's first dim.
  if (gout.shape[1] != w.shape[0])
    throw std::invalid_argument(op + ": input of shape " + shape_str(gout.shape) + " has " +
                                std::to_string(gout.shape[1]) + " channels, but weight of shape " +
                                shape_str(w.shape) + " expects " + std::to_string(w.shape[0]));
  Shape xs{gout.shape[0], w.shape[1] * groups};
  xs.insert(xs.end(), input_size.begin(), input_size.end());
  Geom g = make_geom(op, p, xs, w.shape, "output");
  check_bias(op, bias, g.C, w);
  const int64_t oh = sd == 2 ? gout.shape[2] : 1, ow = gout.shape[sd + 1];
  if (oh > g.OH || ow > g.OW)
    throw std::invalid_argument(op + ": input of shape " + shape_str(gout.shape) + " is larger than a convolution " +
                                "of an output of size " + vec_str(input_size) + " gives (" +
                                (sd == 2 ? vec_str({g.OH, g.OW}) : vec_str({g.OW})) + ")");
  g.OH = oh, g.OW = ow;
  Array dx = empty(xs, gout.dtype, gout.device());
  if (dx.numel() == 0) return dx;
  if (g.P() == 0 || g.O == 0) {  // nothing to scatter: dx is the bias (or zeros)
    copy_into(dx, bias ? expand(reshape(*bias, sd == 2 ? Shape{g.C, 1, 1} : Shape{g.C, 1}), xs)
                       : zeros({1}, dx.dtype), op.c_str());
    return dx;
  }
  const Array g4 = as_2d(gout, sd), w4 = as_2d(w, sd);
  Array dx4 = as_2d(dx, sd);
  on_device(op.c_str(), gout.device(), [&] {
    dispatch_float(gout.dtype, op.c_str(), [&](auto t) { input_grad_typed<decltype(t)>(g, g4, w4, bias, dx4); });
  }, [&] { cuda::conv_input_grad(cuda::conv_geom(g), g4, w4, bias, dx4, op.c_str()); });
  return dx;
}

Array conv_weight_grad(const Array& gout, const Array& x, const std::vector<int64_t>& kernel_size,
                       const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                       const std::vector<int64_t>& dilation, int64_t groups, const std::string& op) {
  const int sd = x.ndim() == 3 ? 1 : 2;
  const Params p = parse_params(op, sd, stride, padding, dilation, groups);
  if (gout.ndim() != sd + 2 || x.ndim() != sd + 2)
    throw std::invalid_argument(op + ": expected grad_output and input with " + std::to_string(sd + 2) +
                                " dims, got shapes " + shape_str(gout.shape) + " and " + shape_str(x.shape));
  if (static_cast<int>(kernel_size.size()) != sd)
    throw std::invalid_argument(op + ": expected a kernel size of " + std::to_string(sd) + " values, got " +
                                vec_str(kernel_size));
  check_dtypes(op, "grad_output", gout, "input", x);
  if (gout.shape[0] != x.shape[0])
    throw std::invalid_argument(op + ": grad_output of shape " + shape_str(gout.shape) + " and input of shape " +
                                shape_str(x.shape) + " have different batch sizes");
  if (x.shape[1] % groups != 0)
    throw std::invalid_argument(op + ": groups=" + std::to_string(groups) + " must divide the " +
                                std::to_string(x.shape[1]) + " channels of input of shape " + shape_str(x.shape));
  Shape ws{gout.shape[1], x.shape[1] / groups};
  ws.insert(ws.end(), kernel_size.begin(), kernel_size.end());
  Geom g = make_geom(op, p, x.shape, ws, "input");
  const int64_t oh = sd == 2 ? gout.shape[2] : 1, ow = gout.shape[sd + 1];
  if (oh > g.OH || ow > g.OW)
    throw std::invalid_argument(op + ": grad_output of shape " + shape_str(gout.shape) +
                                " is larger than the convolution of input of shape " + shape_str(x.shape) +
                                " gives (" + (sd == 2 ? vec_str({g.OH, g.OW}) : vec_str({g.OW})) + ")");
  g.OH = oh, g.OW = ow;
  Array dw = empty(ws, x.dtype, x.device());
  if (dw.numel() == 0) return dw;
  if (g.P() == 0) return zeros(ws, x.dtype, x.device());
  const Array g4 = as_2d(gout, sd), x4 = as_2d(x, sd);
  Array dw4 = as_2d(dw, sd);
  on_device(op.c_str(), x.device(), [&] {
    dispatch_float(x.dtype, op.c_str(), [&](auto t) { weight_grad_typed<decltype(t)>(g, g4, x4, dw4); });
  }, [&] { cuda::conv_weight_grad(cuda::conv_geom(g), g4, x4, dw4, op.c_str()); });
  return dw;
}

}  // namespace fg
