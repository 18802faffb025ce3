// pool.cu - pooling and upsampling kernels on CUDA devices (see pool.h).
//
// Window rules are the CPU's (pool.cpp), computed per output element:
//   max:       taps start, start + d, ... of o * s - p, clipped to the input
//   adaptive:  [floor(o * in / out), ceil((o + 1) * in / out))
//   average:   [o * s - p, min(o * s - p + k, in + p)) clipped to [0, in)
// Upsampling tables (source indices, bilinear weights) are built on the host
// with the CPU's arithmetic and copied to the device in one transfer; their
// backward passes use the inverse tables (for each input row, the output rows
// that read it, in order), so every gradient is a gather.
#include "cuda/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "errors.h"

namespace fg {
namespace cuda {
namespace {

// The N*C planes of a 3-D or 4-D array: element offset of plane p, and the
// strides within it.
struct Planes {
  int64_t C, sN, sC, sH, sW;
  __device__ __forceinline__ int64_t off(int64_t p) const { return (p / C) * sN + (p % C) * sC; }
};

Planes planes_of(const Array& a) {
  const int b = a.ndim() - 3;
  return Planes{a.shape[b], b == 1 ? a.strides[0] : 0, a.strides[b], a.strides[b + 1], a.strides[b + 2]};
}

int64_t plane_count(const Shape& s) { return s.size() == 4 ? s[0] * s[1] : s[0]; }

Shape with_hw(const Shape& s, int64_t h, int64_t w) {
  Shape o = s;
  o[o.size() - 2] = h;
  o[o.size() - 1] = w;
  return o;
}

#define FG_GRID_LOOP(e, total) \
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (total); e += int64_t(gridDim.x) * blockDim.x)

template <class T>
__device__ __forceinline__ bool nan_of(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    return isnan(v);
  } else {
    return false;
  }
}

template <class T>
__device__ __forceinline__ T lowest_of() {
  if constexpr (std::is_floating_point_v<T>) {
    return -std::numeric_limits<T>::infinity();
  } else {
    return std::numeric_limits<T>::lowest();
  }
}

// One dim of a max window: regular (k, s, p, d) or adaptive (in -> out).
struct MaxWin {
  int64_t k, s, p, d, in, out;
  bool adaptive;
  __device__ __forceinline__ void taps(int64_t o, int64_t& start, int64_t& count) const {
    if (adaptive) {
      start = o * in / out;
      count = 1 + ((o + 1) * in - 1) / out - start;
      return;
    }
    const int64_t st = o * s - p;
    const int64_t first = st < 0 ? st + (-st + d - 1) / d * d : st;
    const int64_t end = min(st + (k - 1) * d + 1, in);
    start = first;
    count = first < end ? (end - first + d - 1) / d : 0;
  }
};

// One output element per thread: first maximum wins, a NaN always takes over.
template <class T>
__global__ void max_pool_kernel(const T* __restrict__ x, Planes xp, int64_t W, int64_t OH, int64_t OW, MaxWin wr,
                                MaxWin wc, T* __restrict__ out, int64_t* __restrict__ idx, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (OH * OW), p = e / (OH * OW);
    const int64_t oh = q / OW, ow = q - oh * OW;
    int64_t rs, rc, cs, cc;
    wr.taps(oh, rs, rc);
    wc.taps(ow, cs, cc);
    const T* in = x + xp.off(p);
    T best = lowest_of<T>();
    int64_t bi = rs * W + cs;
    for (int64_t i = 0; i < rc; ++i) {
      const int64_t ih = rs + i * wr.d;
      for (int64_t j = 0; j < cc; ++j) {
        const int64_t iw = cs + j * wc.d;
        const T v = in[ih * xp.sH + iw * xp.sW];
        if (v > best || nan_of(v)) {
          best = v;
          bi = ih * W + iw;
        }
      }
    }
    out[e] = best;
    idx[e] = bi;
  }
}

// Max pooling's gradient without the window geometry (adaptive pooling
// shares it): the saved indices say where each output's gradient goes. Pass
// 1 finds, for each output row (column), the range of input rows (columns)
// its indices point at, over all planes; pass 2 inverts that into, for each
// input row (column), the range of output rows (columns) that may point at
// it. The gather (pass 3) then scans only those outputs for each input
// element and sums, in output order, the grads whose index is that element:
// the CPU's sum, for any indices (out-of-plane ones are skipped as there).
//
// bounds: [OH] row min, [OH] row max, [OW] col min, [OW] col max (empty: W+H, -1).
__global__ void max_index_bounds_kernel(const int64_t* __restrict__ ix, Planes ip, int64_t np, int64_t OH,
                                        int64_t OW, int64_t H, int64_t W, int64_t* __restrict__ bounds) {
  __shared__ int64_t smin[kThreads], smax[kThreads];
  const bool rows = blockIdx.x < OH;
  const int64_t o = rows ? blockIdx.x : blockIdx.x - OH;  // this block's output row (or column)
  const int64_t n = rows ? OW : OH, HW = H * W;
  int64_t mn = H + W, mx = -1;
  for (int64_t e = threadIdx.x; e < np * n; e += blockDim.x) {
    const int64_t p = e / n, j = e - p * n;
    const int64_t k = rows ? ix[ip.off(p) + o * ip.sH + j * ip.sW] : ix[ip.off(p) + j * ip.sH + o * ip.sW];
    if (k < 0 || k >= HW) continue;
    const int64_t v = rows ? k / W : k % W;
    mn = min(mn, v);
    mx = max(mx, v);
  }
  smin[threadIdx.x] = mn;
  smax[threadIdx.x] = mx;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) {
      smin[threadIdx.x] = min(smin[threadIdx.x], smin[threadIdx.x + s]);
      smax[threadIdx.x] = max(smax[threadIdx.x], smax[threadIdx.x + s]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    int64_t* b = rows ? bounds : bounds + 2 * OH;
    const int64_t no = rows ? OH : OW;
    b[o] = smin[0];
    b[no + o] = smax[0];
  }
}

// inv: [H] first, [H] last output row whose range holds the input row, then
// [W] and [W] for columns (none: 0, -1).
__global__ void max_index_invert_kernel(const int64_t* __restrict__ bounds, int64_t OH, int64_t OW, int64_t H,
                                        int64_t W, int64_t* __restrict__ inv) {
  FG_GRID_LOOP(t, H + W) {
    const bool rows = t < H;
    const int64_t i = rows ? t : t - H, no = rows ? OH : OW;
    const int64_t* b = rows ? bounds : bounds + 2 * OH;
    int64_t lo = no, hi = -1;
    for (int64_t o = 0; o < no; ++o)
      if (b[o] <= i && i <= b[no + o]) {
        lo = min(lo, o);
        hi = o;
      }
    int64_t* d = rows ? inv : inv + 2 * H;
    const int64_t ni = rows ? H : W;
    d[i] = hi < 0 ? 0 : lo;
    d[ni + i] = hi;
  }
}

template <class T>
__global__ void max_backward_kernel(const T* __restrict__ g, Planes gp, const int64_t* __restrict__ ix, Planes ip,
                                    const int64_t* __restrict__ inv, int64_t H, int64_t W, T* __restrict__ gin,
                                    int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (H * W), p = e / (H * W);
    const int64_t ih = q / W, iw = q - ih * W;
    const int64_t oh0 = inv[ih], oh1 = inv[H + ih], ow0 = inv[2 * H + iw], ow1 = inv[2 * H + W + iw];
    const T* gs = g + gp.off(p);
    const int64_t* is = ix + ip.off(p);
    T acc = T(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        if (is[oh * ip.sH + ow * ip.sW] == q) acc += gs[oh * gp.sH + ow * gp.sW];
    gin[e] = acc;
  }
}

template <class T>
__global__ void max_gather_kernel(const T* __restrict__ x, Planes xp, int64_t H, int64_t W,
                                  const int64_t* __restrict__ ix, Planes ip, int64_t OH, int64_t OW,
                                  T* __restrict__ out, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (OH * OW), p = e / (OH * OW);
    const int64_t oh = q / OW, ow = q - oh * OW;
    const int64_t k = ix[ip.off(p) + oh * ip.sH + ow * ip.sW];
    out[e] = (k >= 0 && k < H * W) ? x[xp.off(p) + (k / W) * xp.sH + (k % W) * xp.sW] : T(0);
  }
}

// One dim of an average window: clipped range [lo, hi) and extent with padding.
struct AvgWin {
  int64_t k, s, p, in;
  __device__ __forceinline__ void span(int64_t o, int64_t& lo, int64_t& hi, int64_t& size) const {
    const int64_t st = o * s - p;
    const int64_t en = min(st + k, in + p);
    lo = max(st, int64_t(0));
    hi = min(en, in);
    size = en - st;
  }
};

struct AvgDiv {
  bool count_include_pad;
  int64_t divisor_override;
  __device__ __forceinline__ int64_t operator()(int64_t rlo, int64_t rhi, int64_t rsize, int64_t clo, int64_t chi,
                                                int64_t csize) const {
    if (divisor_override != 0) return divisor_override;
    return count_include_pad ? rsize * csize : (rhi - rlo) * (chi - clo);
  }
};

template <class T>
__global__ void avg_pool_kernel(const T* __restrict__ x, Planes xp, int64_t OH, int64_t OW, AvgWin wr, AvgWin wc,
                                AvgDiv div, T* __restrict__ out, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (OH * OW), p = e / (OH * OW);
    const int64_t oh = q / OW, ow = q - oh * OW;
    int64_t rlo, rhi, rs, clo, chi, cs;
    wr.span(oh, rlo, rhi, rs);
    wc.span(ow, clo, chi, cs);
    if (rlo >= rhi || clo >= chi) {
      out[e] = T(0);
      continue;
    }
    const T* in = x + xp.off(p);
    T sum = T(0);
    for (int64_t ih = rlo; ih < rhi; ++ih)
      for (int64_t iw = clo; iw < chi; ++iw) sum += in[ih * xp.sH + iw * xp.sW];
    const int64_t d = div(rlo, rhi, rs, clo, chi, cs);
    if constexpr (std::is_integral_v<T>) {
      out[e] = static_cast<T>(static_cast<int64_t>(sum) / d);  // truncates, as torch does
    } else {
      out[e] = sum / static_cast<T>(d);
    }
  }
}

// floor(a / b) for b > 0.
__device__ __forceinline__ int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// One input element per thread: the windows holding it are those starting
// in (i + p - k, i + p]; each adds g / divisor, in output order.
template <class T>
__global__ void avg_backward_kernel(const T* __restrict__ g, Planes gp, int64_t OH, int64_t OW, int64_t H, int64_t W,
                                    AvgWin wr, AvgWin wc, AvgDiv div, T* __restrict__ gin, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (H * W), p = e / (H * W);
    const int64_t ih = q / W, iw = q - ih * W;
    const int64_t oh0 = max(int64_t(0), floor_div(ih + wr.p - wr.k, wr.s) + 1);
    const int64_t oh1 = min(OH - 1, floor_div(ih + wr.p, wr.s));
    const int64_t ow0 = max(int64_t(0), floor_div(iw + wc.p - wc.k, wc.s) + 1);
    const int64_t ow1 = min(OW - 1, floor_div(iw + wc.p, wc.s));
    const T* gs = g + gp.off(p);
    T acc = T(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      int64_t rlo, rhi, rs;
      wr.span(oh, rlo, rhi, rs);
      if (ih < rlo || ih >= rhi) continue;
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        int64_t clo, chi, cs;
        wc.span(ow, clo, chi, cs);
        if (iw < clo || iw >= chi) continue;
        acc += gs[oh * gp.sH + ow * gp.sW] / static_cast<T>(div(rlo, rhi, rs, clo, chi, cs));
      }
    }
    gin[e] = acc;
  }
}

// Adaptive window of output o along a dim of `in` -> `out`.
__device__ __forceinline__ void adaptive_span(int64_t o, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = o * in / out;
  hi = 1 + ((o + 1) * in - 1) / out;
}

template <class T>
__global__ void adaptive_avg_kernel(const T* __restrict__ x, Planes xp, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                    T* __restrict__ out, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (OH * OW), p = e / (OH * OW);
    const int64_t oh = q / OW, ow = q - oh * OW;
    int64_t rlo, rhi, clo, chi;
    adaptive_span(oh, H, OH, rlo, rhi);
    adaptive_span(ow, W, OW, clo, chi);
    const T* in = x + xp.off(p);
    T sum = T(0);
    for (int64_t ih = rlo; ih < rhi; ++ih)
      for (int64_t iw = clo; iw < chi; ++iw) sum += in[ih * xp.sH + iw * xp.sW];
    // torch divides by the window's height, then by its width
    out[e] = sum / static_cast<T>(rhi - rlo) / static_cast<T>(chi - clo);
  }
}

// Large windows (global pooling): one warp per output, lanes striding over
// the window in row-major order, then a fixed shuffle tree: a thread per
// output would leave most of the GPU idle and read each plane serially.
template <class T>
__global__ void adaptive_avg_warp_kernel(const T* __restrict__ x, Planes xp, int64_t H, int64_t W, int64_t OH,
                                         int64_t OW, T* __restrict__ out, int64_t total) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t e = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32; e < total; e += warps) {
    const int64_t q = e % (OH * OW), p = e / (OH * OW);
    const int64_t oh = q / OW, ow = q - oh * OW;
    int64_t rlo, rhi, clo, chi;
    adaptive_span(oh, H, OH, rlo, rhi);
    adaptive_span(ow, W, OW, clo, chi);
    const int64_t cw = chi - clo, area = (rhi - rlo) * cw;
    const T* in = x + xp.off(p);
    T sum = T(0);
    for (int64_t t = lane; t < area; t += 32) {
      const int64_t i = t / cw;
      sum += in[(rlo + i) * xp.sH + (clo + t - i * cw) * xp.sW];
    }
    for (int s = 16; s > 0; s /= 2) sum += __shfl_down_sync(0xffffffffu, sum, s);
    if (lane == 0) out[e] = sum / static_cast<T>(rhi - rlo) / static_cast<T>(cw);
  }
}

// Gather: output rows whose window holds ih lie in [floor(ih * OH / H), ceil((ih + 1) * OH / H)).
template <class T>
__global__ void adaptive_avg_backward_kernel(const T* __restrict__ g, Planes gp, int64_t OH, int64_t OW, int64_t H,
                                             int64_t W, T* __restrict__ gin, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (H * W), p = e / (H * W);
    const int64_t ih = q / W, iw = q - ih * W;
    const int64_t oh0 = ih * OH / H, oh1 = min(OH, ((ih + 1) * OH + H - 1) / H);
    const int64_t ow0 = iw * OW / W, ow1 = min(OW, ((iw + 1) * OW + W - 1) / W);
    const T* gs = g + gp.off(p);
    T acc = T(0);
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      int64_t rlo, rhi;
      adaptive_span(oh, H, OH, rlo, rhi);
      if (ih < rlo || ih >= rhi) continue;
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        int64_t clo, chi;
        adaptive_span(ow, W, OW, clo, chi);
        if (iw < clo || iw >= chi) continue;
        acc += gs[oh * gp.sH + ow * gp.sW] / static_cast<T>(rhi - rlo) / static_cast<T>(chi - clo);
      }
    }
    gin[e] = acc;
  }
}

// ---- upsampling tables ------------------------------------------------------------
//
// One int64 buffer per call, copied to the device at once; weights of type T
// sit in int64 slots (bit copies).

template <class T>
int64_t to_slot(T v) {
  int64_t s = 0;
  std::memcpy(&s, &v, sizeof(T));
  return s;
}

template <class T>
__device__ __forceinline__ T from_slot(const int64_t* p) {
  return *reinterpret_cast<const T*>(p);
}

Array upload(const std::vector<int64_t>& buf, const Device& d) {
  Array h = empty({static_cast<int64_t>(buf.size())}, DType::Int64);
  if (!buf.empty()) std::memcpy(h.data<int64_t>(), buf.data(), buf.size() * sizeof(int64_t));
  return to_device(h, d);
}

// For each source index s in [0, in): the positions o of `src` (in order)
// with src[o] == s, as CSR: ptr (in + 1 entries) then the positions.
void append_inverse(std::vector<int64_t>& buf, const std::vector<int64_t>& src, int64_t in) {
  std::vector<int64_t> count(in + 1, 0);
  for (int64_t s : src) ++count[s + 1];
  for (int64_t i = 0; i < in; ++i) count[i + 1] += count[i];
  buf.insert(buf.end(), count.begin(), count.end());
  const size_t base = buf.size();
  buf.resize(base + src.size());
  for (size_t o = 0; o < src.size(); ++o) buf[base + count[src[o]]++] = static_cast<int64_t>(o);
}

template <class T>
__global__ void nearest_kernel(const T* __restrict__ x, Planes xp, const int64_t* __restrict__ th,
                               const int64_t* __restrict__ tw, int64_t OH, int64_t OW, T* __restrict__ out,
                               int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (OH * OW), p = e / (OH * OW);
    const int64_t oh = q / OW, ow = q - oh * OW;
    out[e] = x[xp.off(p) + th[oh] * xp.sH + tw[ow] * xp.sW];
  }
}

// rinv / cinv: CSR inverse tables of the rows and columns (append_inverse).
template <class T>
__global__ void nearest_backward_kernel(const T* __restrict__ g, Planes gp, const int64_t* __restrict__ rinv,
                                        const int64_t* __restrict__ cinv, int64_t H, int64_t W,
                                        T* __restrict__ gin, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (H * W), p = e / (H * W);
    const int64_t ih = q / W, iw = q - ih * W;
    const int64_t* rl = rinv + H + 1;
    const int64_t* cl = cinv + W + 1;
    const T* gs = g + gp.off(p);
    T acc = T(0);
    for (int64_t a = rinv[ih]; a < rinv[ih + 1]; ++a) {
      const T* row = gs + rl[a] * gp.sH;
      for (int64_t b = cinv[iw]; b < cinv[iw + 1]; ++b) acc += row[cl[b] * gp.sW];
    }
    gin[e] = acc;
  }
}

// torch's compute_source_index_and_lambda in T, as pool.cpp's lerp_table:
// appends i0 (out), i1 (out), l0 (out), l1 (out).
template <class T>
void append_lerp(std::vector<int64_t>& buf, int64_t out, int64_t in, bool align_corners, double scale,
                 std::vector<int64_t>* i0s = nullptr, std::vector<int64_t>* i1s = nullptr,
                 std::vector<T>* l0s = nullptr, std::vector<T>* l1s = nullptr) {
  T ratio;
  if (align_corners)
    ratio = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  else
    ratio = scale > 0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
  std::vector<int64_t> i0(out), i1(out);
  std::vector<T> l0(out), l1(out);
  for (int64_t o = 0; o < out; ++o) {
    if (out == in) {
      i0[o] = i1[o] = o;
      l0[o] = T(1);
      l1[o] = T(0);
      continue;
    }
    T real;
    if (align_corners) {
      real = ratio * static_cast<T>(o);
    } else {
      real = ratio * (static_cast<T>(o) + T(0.5)) - T(0.5);
      if (real < 0) real = T(0);
    }
    const int64_t a = std::min(static_cast<int64_t>(std::floor(real)), in - 1);
    const T w1 = std::min(std::max(real - static_cast<T>(a), T(0)), T(1));
    i0[o] = a;
    i1[o] = a + (a < in - 1 ? 1 : 0);
    l0[o] = T(1) - w1;
    l1[o] = w1;
  }
  buf.insert(buf.end(), i0.begin(), i0.end());
  buf.insert(buf.end(), i1.begin(), i1.end());
  for (T v : l0) buf.push_back(to_slot(v));
  for (T v : l1) buf.push_back(to_slot(v));
  if (i0s) *i0s = i0, *i1s = i1, *l0s = l0, *l1s = l1;
}

// Inverse of a lerp table: for each input index s, the (o, weight) pairs that
// read it, in output order (i0's before i1's for one o): ptr (in + 1), o
// (2 out), weight (2 out).
template <class T>
void append_lerp_inverse(std::vector<int64_t>& buf, int64_t out, int64_t in, bool align_corners, double scale) {
  std::vector<int64_t> scratch, i0, i1;
  std::vector<T> l0, l1;
  append_lerp<T>(scratch, out, in, align_corners, scale, &i0, &i1, &l0, &l1);
  std::vector<int64_t> count(in + 1, 0);
  for (int64_t o = 0; o < out; ++o) ++count[i0[o] + 1], ++count[i1[o] + 1];
  for (int64_t i = 0; i < in; ++i) count[i + 1] += count[i];
  buf.insert(buf.end(), count.begin(), count.end());
  const size_t bo = buf.size(), bw = bo + 2 * out;
  buf.resize(bw + 2 * out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t k = count[i0[o]]++;
    buf[bo + k] = o;
    buf[bw + k] = to_slot(l0[o]);
    k = count[i1[o]]++;
    buf[bo + k] = o;
    buf[bw + k] = to_slot(l1[o]);
  }
}

// th / tw: i0 (n), i1 (n), l0 (n), l1 (n) for n = OH / OW.
template <class T>
__global__ void bilinear_kernel(const T* __restrict__ x, Planes xp, const int64_t* __restrict__ th,
                                const int64_t* __restrict__ tw, int64_t OH, int64_t OW, T* __restrict__ out,
                                int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (OH * OW), p = e / (OH * OW);
    const int64_t oh = q / OW, ow = q - oh * OW;
    const T* in = x + xp.off(p);
    const T* r0 = in + th[oh] * xp.sH;
    const T* r1 = in + th[OH + oh] * xp.sH;
    const T h0 = from_slot<T>(th + 2 * OH + oh), h1 = from_slot<T>(th + 3 * OH + oh);
    const int64_t a = tw[ow] * xp.sW, c = tw[OW + ow] * xp.sW;
    const T w0 = from_slot<T>(tw + 2 * OW + ow), w1 = from_slot<T>(tw + 3 * OW + ow);
    // rows first, then columns: torch's order of the products
    out[e] = (r0[a] * w0 + r0[c] * w1) * h0 + (r1[a] * w0 + r1[c] * w1) * h1;
  }
}

// rinv / cinv: append_lerp_inverse tables with OH / OW outputs.
template <class T>
__global__ void bilinear_backward_kernel(const T* __restrict__ g, Planes gp, const int64_t* __restrict__ rinv,
                                         const int64_t* __restrict__ cinv, int64_t OH, int64_t OW, int64_t H,
                                         int64_t W, T* __restrict__ gin, int64_t total) {
  FG_GRID_LOOP(e, total) {
    const int64_t q = e % (H * W), p = e / (H * W);
    const int64_t ih = q / W, iw = q - ih * W;
    const int64_t *ro = rinv + H + 1, *rw = ro + 2 * OH;
    const int64_t *co = cinv + W + 1, *cw = co + 2 * OW;
    const T* gs = g + gp.off(p);
    T acc = T(0);
    for (int64_t a = rinv[ih]; a < rinv[ih + 1]; ++a) {
      const T* row = gs + ro[a] * gp.sH;
      const T wr = from_slot<T>(rw + a);
      for (int64_t b = cinv[iw]; b < cinv[iw + 1]; ++b) acc += wr * from_slot<T>(cw + b) * row[co[b] * gp.sW];
    }
    gin[e] = acc;
  }
}

}  // namespace

// ---- entry points ---------------------------------------------------------------------

namespace {

// Rows and columns of a shape (its last two dimensions).
int64_t rows(const Shape& s) { return s[s.size() - 2]; }
int64_t cols(const Shape& s) { return s[s.size() - 1]; }

// The frame of every entry point: an empty result needs no launch; otherwise
// launch(total) runs on the result's device and its launches are checked.
template <class F>
Array launched(const char* op, const Array& out, F&& launch) {
  const int64_t total = out.numel();
  if (total == 0) return out;
  DeviceGuard guard(out.device().index, op);
  launch(total);
  FG_CUDA_LAUNCH_CHECK(op);
  return out;
}

// Zeroes a gradient that no output reaches.
void zero_fill(const char* op, const Array& a) {
  FG_CUDA_CHECK(op, cudaMemsetAsync(a.raw(), 0, static_cast<size_t>(a.numel()) * a.itemsize()));
}

std::pair<Array, Array> max_pool_run(const char* op, const Array& x, int64_t OH, int64_t OW, const MaxWin& wr,
                                     const MaxWin& wc) {
  const Shape os = with_hw(x.shape, OH, OW);
  Array out = empty(os, x.dtype, x.device());
  Array idx = empty(os, DType::Int64, x.device());
  launched(op, out, [&](int64_t total) {
    dispatch_number(x.dtype, op, [&](auto t) {
      using T = decltype(t);
      max_pool_kernel<T><<<grid_for(total), kThreads>>>(x.data<T>(), planes_of(x), cols(x.shape), OH, OW, wr, wc,
                                                        out.data<T>(), idx.data<int64_t>(), total);
    });
  });
  return {out, idx};
}

}  // namespace

std::pair<Array, Array> max_pool2d(const Array& x, int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh,
                                   int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const int64_t H = rows(x.shape), W = cols(x.shape);
  return max_pool_run("max_pool2d", x, oh, ow, MaxWin{kh, sh, ph, dh, H, oh, false},
                      MaxWin{kw, sw, pw, dw, W, ow, false});
}

std::pair<Array, Array> adaptive_max_pool2d(const Array& x, int64_t oh, int64_t ow) {
  const int64_t H = rows(x.shape), W = cols(x.shape);
  return max_pool_run("adaptive_max_pool2d", x, oh, ow, MaxWin{1, 1, 0, 1, H, oh, true},
                      MaxWin{1, 1, 0, 1, W, ow, true});
}

Array max_pool2d_backward(const Array& grad_out, const Array& indices, const Shape& input_shape) {
  const char* op = "max_pool2d_backward";
  Array gin = empty(input_shape, grad_out.dtype, grad_out.device());
  return launched(op, gin, [&](int64_t total) {
    const int64_t H = rows(input_shape), W = cols(input_shape);
    const int64_t OH = rows(grad_out.shape), OW = cols(grad_out.shape);
    const int64_t np = plane_count(input_shape);
    if (OH * OW == 0) return zero_fill(op, gin);  // no outputs: no gradient
    const Array work = empty({2 * (OH + OW + H + W)}, DType::Int64, grad_out.device());
    int64_t* bounds = work.data<int64_t>();
    int64_t* inv = bounds + 2 * (OH + OW);
    const Planes ip = planes_of(indices);
    if (OH + OW > (int64_t(1) << 31) - 1)
      throw std::invalid_argument(std::string(op) + ": output of " + std::to_string(OH) + " x " +
                                  std::to_string(OW) + " is too large for the CUDA kernel");
    max_index_bounds_kernel<<<static_cast<unsigned>(OH + OW), kThreads>>>(indices.data<int64_t>(), ip, np, OH, OW,
                                                                          H, W, bounds);
    FG_CUDA_LAUNCH_CHECK(op);
    max_index_invert_kernel<<<grid_for(H + W), kThreads>>>(bounds, OH, OW, H, W, inv);
    FG_CUDA_LAUNCH_CHECK(op);
    dispatch_float(grad_out.dtype, op, [&](auto t) {
      using T = decltype(t);
      max_backward_kernel<T><<<grid_for(total), kThreads>>>(grad_out.data<T>(), planes_of(grad_out),
                                                            indices.data<int64_t>(), ip, inv, H, W, gin.data<T>(),
                                                            total);
    });
  });
}

Array max_pool2d_gather(const Array& x, const Array& indices) {
  const char* op = "max_pool2d_gather";
  Array out = empty(indices.shape, x.dtype, x.device());
  return launched(op, out, [&](int64_t total) {
    const int64_t H = rows(x.shape), W = cols(x.shape);
    const int64_t OH = rows(indices.shape), OW = cols(indices.shape);
    dispatch_float(x.dtype, op, [&](auto t) {
      using T = decltype(t);
      max_gather_kernel<T><<<grid_for(total), kThreads>>>(x.data<T>(), planes_of(x), H, W, indices.data<int64_t>(),
                                                          planes_of(indices), OH, OW, out.data<T>(), total);
    });
  });
}

Array avg_pool2d(const Array& x, int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                 int64_t pw, bool count_include_pad, int64_t divisor_override) {
  const char* op = "avg_pool2d";
  Array out = empty(with_hw(x.shape, oh, ow), x.dtype, x.device());
  return launched(op, out, [&](int64_t total) {
    const int64_t H = rows(x.shape), W = cols(x.shape);
    dispatch_number(x.dtype, op, [&](auto t) {
      using T = decltype(t);
      avg_pool_kernel<T><<<grid_for(total), kThreads>>>(x.data<T>(), planes_of(x), oh, ow, AvgWin{kh, sh, ph, H},
                                                        AvgWin{kw, sw, pw, W},
                                                        AvgDiv{count_include_pad, divisor_override}, out.data<T>(),
                                                        total);
    });
  });
}

Array avg_pool2d_backward(const Array& grad_out, const Shape& input_shape, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, bool count_include_pad, int64_t divisor_override) {
  const char* op = "avg_pool2d_backward";
  Array gin = empty(input_shape, grad_out.dtype, grad_out.device());
  return launched(op, gin, [&](int64_t total) {
    const int64_t H = rows(input_shape), W = cols(input_shape);
    const int64_t OH = rows(grad_out.shape), OW = cols(grad_out.shape);
    dispatch_float(grad_out.dtype, op, [&](auto t) {
      using T = decltype(t);
      avg_backward_kernel<T><<<grid_for(total), kThreads>>>(grad_out.data<T>(), planes_of(grad_out), OH, OW, H, W,
                                                            AvgWin{kh, sh, ph, H}, AvgWin{kw, sw, pw, W},
                                                            AvgDiv{count_include_pad, divisor_override},
                                                            gin.data<T>(), total);
    });
  });
}

Array adaptive_avg_pool2d(const Array& x, int64_t oh, int64_t ow) {
  const char* op = "adaptive_avg_pool2d";
  Array out = empty(with_hw(x.shape, oh, ow), x.dtype, x.device());
  return launched(op, out, [&](int64_t total) {
    const int64_t H = rows(x.shape), W = cols(x.shape);
    dispatch_float(x.dtype, op, [&](auto t) {
      using T = decltype(t);
      // about the largest window (a heuristic: either kernel is exact)
      if ((H / oh + 1) * (W / ow + 1) >= 128)
        adaptive_avg_warp_kernel<T><<<grid_for(total * 32), kThreads>>>(x.data<T>(), planes_of(x), H, W, oh, ow,
                                                                        out.data<T>(), total);
      else
        adaptive_avg_kernel<T><<<grid_for(total), kThreads>>>(x.data<T>(), planes_of(x), H, W, oh, ow,
                                                              out.data<T>(), total);
    });
  });
}

Array adaptive_avg_pool2d_backward(const Array& grad_out, const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  Array gin = empty(input_shape, grad_out.dtype, grad_out.device());
  return launched(op, gin, [&](int64_t total) {
    const int64_t H = rows(input_shape), W = cols(input_shape);
    const int64_t OH = rows(grad_out.shape), OW = cols(grad_out.shape);
    if (OH * OW == 0) return zero_fill(op, gin);  // no windows: no gradient
    dispatch_float(grad_out.dtype, op, [&](auto t) {
      using T = decltype(t);
      adaptive_avg_backward_kernel<T><<<grid_for(total), kThreads>>>(grad_out.data<T>(), planes_of(grad_out), OH,
                                                                     OW, H, W, gin.data<T>(), total);
    });
  });
}

Array upsample_nearest2d(const Array& x, const std::vector<int64_t>& th, const std::vector<int64_t>& tw) {
  const char* op = "upsample_nearest2d";
  const int64_t OH = static_cast<int64_t>(th.size()), OW = static_cast<int64_t>(tw.size());
  Array out = empty(with_hw(x.shape, OH, OW), x.dtype, x.device());
  return launched(op, out, [&](int64_t total) {
    std::vector<int64_t> buf(th);
    buf.insert(buf.end(), tw.begin(), tw.end());
    const Array tab = upload(buf, x.device());
    const int64_t* t = tab.data<int64_t>();
    dispatch_float(x.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      nearest_kernel<T><<<grid_for(total), kThreads>>>(x.data<T>(), planes_of(x), t, t + OH, OH, OW, out.data<T>(),
                                                       total);
    });
  });
}

Array upsample_nearest2d_backward(const Array& grad_out, const Shape& input_shape, const std::vector<int64_t>& th,
                                  const std::vector<int64_t>& tw) {
  const char* op = "upsample_nearest2d_backward";
  Array gin = empty(input_shape, grad_out.dtype, grad_out.device());
  return launched(op, gin, [&](int64_t total) {
    const int64_t H = rows(input_shape), W = cols(input_shape);
    std::vector<int64_t> buf;
    append_inverse(buf, th, H);
    const int64_t cols_at = static_cast<int64_t>(buf.size());
    append_inverse(buf, tw, W);
    const Array tab = upload(buf, grad_out.device());
    const int64_t* t = tab.data<int64_t>();
    dispatch_float(grad_out.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      nearest_backward_kernel<T><<<grid_for(total), kThreads>>>(grad_out.data<T>(), planes_of(grad_out), t,
                                                                t + cols_at, H, W, gin.data<T>(), total);
    });
  });
}

Array upsample_bilinear2d(const Array& x, int64_t oh, int64_t ow, bool align_corners, double scale_h,
                          double scale_w) {
  const char* op = "upsample_bilinear2d";
  Array out = empty(with_hw(x.shape, oh, ow), x.dtype, x.device());
  return launched(op, out, [&](int64_t total) {
    const int64_t H = rows(x.shape), W = cols(x.shape);
    dispatch_float(x.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      std::vector<int64_t> buf;
      append_lerp<T>(buf, oh, H, align_corners, scale_h);
      append_lerp<T>(buf, ow, W, align_corners, scale_w);
      const Array tab = upload(buf, x.device());
      const int64_t* t = tab.data<int64_t>();
      bilinear_kernel<T><<<grid_for(total), kThreads>>>(x.data<T>(), planes_of(x), t, t + 4 * oh, oh, ow,
                                                        out.data<T>(), total);
      FG_CUDA_LAUNCH_CHECK(op);  // while the table lives
    });
  });
}

Array upsample_bilinear2d_backward(const Array& grad_out, const Shape& input_shape, bool align_corners,
                                   double scale_h, double scale_w) {
  const char* op = "upsample_bilinear2d_backward";
  Array gin = empty(input_shape, grad_out.dtype, grad_out.device());
  return launched(op, gin, [&](int64_t total) {
    const int64_t H = rows(input_shape), W = cols(input_shape);
    const int64_t OH = rows(grad_out.shape), OW = cols(grad_out.shape);
    dispatch_float(grad_out.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      std::vector<int64_t> buf;
      append_lerp_inverse<T>(buf, OH, H, align_corners, scale_h);
      const int64_t cols_at = static_cast<int64_t>(buf.size());
      append_lerp_inverse<T>(buf, OW, W, align_corners, scale_w);
      const Array tab = upload(buf, grad_out.device());
      const int64_t* t = tab.data<int64_t>();
      bilinear_backward_kernel<T><<<grid_for(total), kThreads>>>(grad_out.data<T>(), planes_of(grad_out), t,
                                                                 t + cols_at, OH, OW, H, W, gin.data<T>(), total);
      FG_CUDA_LAUNCH_CHECK(op);  // while the table lives
    });
  });
}

}  // namespace cuda
}  // namespace fg
