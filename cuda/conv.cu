// conv.cu - convolution on CUDA devices (see conv.h), lowered to GEMMs on
// column matrices as the CPU does it (conv.cpp's header has the algebra):
//
//   col[(c, i, j), p] = x[c, oy * sh - pt + i * dh, ox * sw - pl + j * dw]   (0 outside x)
//
//   forward      y   (Og, P)  = w   (Og, Kg) @ col (Kg, P)        per image and group
//   input grad   col (Kg, P)  = w^T (Kg, Og) @ g   (Og, P),  then col2im
//   weight grad  dw  (Og, Kg) = sum over images of g (Og, P) @ col^T (P, Kg)
//
// Images are processed in chunks whose column matrix fits a bounded
// workspace (from the device allocator); within a chunk one batched
// cuda::matmul call covers every (image, group) pair. col2im is a gather:
// one thread per input element sums its taps in a fixed order. The weight
// gradient lays the chunk's columns out as (group, image * P, Kg) so that the
// sum over images is the GEMM's own K loop; K is cut into fixed splits (from
// the shape only) that run as a batch, and the splits and chunks are added in
// a fixed order. Every result is therefore the same bits on every run.
// Depthwise convolutions (one input channel per group) skip the GEMMs:
// direct kernels further down, summing in the same order.
#include "cuda/conv.h"

#include <algorithm>
#include <string>

#include "cuda/common.cuh"
#include "cuda/gemm.h"

namespace fg {
namespace cuda {
namespace {

// Column matrices of one chunk stay under this (one image may exceed it).
constexpr int64_t kWorkspaceBytes = int64_t(256) << 20;

// Element strides of a 4-D (N, C, H, W) array.
struct Strides4 {
  int64_t n, c, h, w;
};

Strides4 strides_of(const Array& a) { return Strides4{a.strides[0], a.strides[1], a.strides[2], a.strides[3]}; }

// (N, C, H, W) laid out row-major (size-1 dims may have any stride).
bool dense4(const Array& a) {
  const int64_t H = a.shape[2], W = a.shape[3], C = a.shape[1];
  return a.strides[3] == 1 && (H == 1 || a.strides[2] == W) && (C == 1 || a.strides[1] == H * W) &&
         (a.shape[0] == 1 || a.strides[0] == C * H * W);
}

bool pointwise(const ConvGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.OH == g.H && g.OW == g.W;
}

// Images per chunk for `per_image` workspace elements of size `elem`.
int64_t chunk_images(int64_t N, int64_t per_image, size_t elem) {
  const int64_t budget = kWorkspaceBytes / static_cast<int64_t>(elem);
  return std::clamp<int64_t>(budget / std::max<int64_t>(1, per_image), 1, std::max<int64_t>(1, N));
}

// Sizes within one image as 32-bit ints (index math in 64 bits costs several
// times more on the GPU); offsets into the arrays stay 64-bit. Built by
// geom32(), which checks that every per-image quantity fits.
struct Geom32 {
  int C, H, W, kh, kw, OH, OW, sh, sw, pt, pl, dh, dw;
  int kk, Cg, Kg, P;
};

Geom32 geom32(const ConvGeom& g, int64_t nimg, const char* op) {
  const int64_t lim = (int64_t(1) << 31) - 1;
  const int64_t kk = g.kh * g.kw, Kg = g.C / g.groups * kk;
  const int64_t worst[] = {g.C * kk * nimg, g.H * g.W, g.OH * g.OW, g.OW * Kg, g.groups * nimg * g.OH,
                           g.H + g.pt + g.kh * g.dh + g.OH * g.sh, g.W + g.pl + g.kw * g.dw + g.OW * g.sw,
                           nimg * g.C};
  for (int64_t v : worst)
    if (v < 0 || v > lim)
      throw std::invalid_argument(std::string(op) + ": sizes too large for the CUDA kernels (input " +
                                  std::to_string(g.C) + " x " + std::to_string(g.H) + " x " + std::to_string(g.W) +
                                  ", kernel " + std::to_string(g.kh) + " x " + std::to_string(g.kw) + ")");
  auto i = [](int64_t v) { return static_cast<int>(v); };
  return Geom32{i(g.C), i(g.H), i(g.W), i(g.kh), i(g.kw), i(g.OH), i(g.OW), i(g.sh), i(g.sw), i(g.pt), i(g.pl),
                i(g.dh), i(g.dw), i(kk), i(g.C / g.groups), i(Kg), i(g.OH * g.OW)};
}

// col[img][(c * kh + i) * kw + j][p] for images n0 .. n0 + rows / (C kh kw):
// grid.x covers the output positions p, grid.y (striding) the rows, so
// consecutive threads write consecutive columns. Each group's Kg rows start
// Kp >= Kg rows apart (rows Kg .. Kp - 1 are padding, left as they are).
template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, Strides4 xs, Geom32 g, int64_t n0, int rows, int groups,
                              int Kp, T* __restrict__ col) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= g.P) return;
  const int oy = p / g.OW, ox = p - oy * g.OW;
  const int ckk = g.C * g.kk;
  for (int r = blockIdx.y; r < rows; r += gridDim.y) {
    const int img = r / ckk, rem = r - img * ckk;
    const int c = rem / g.kk, ij = rem - c * g.kk;
    const int i = ij / g.kw, j = ij - i * g.kw;
    const int gi = rem / g.Kg, k = rem - gi * g.Kg;  // r's group and row within it
    const int iy = oy * g.sh - g.pt + i * g.dh, ix = ox * g.sw - g.pl + j * g.dw;
    T v = T(0);
    if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) v = x[(n0 + img) * xs.n + c * xs.c + iy * xs.h + ix * xs.w];
    col[((int64_t(img) * groups + gi) * Kp + k) * g.P + p] = v;
  }
}

// The weight gradient's columns, transposed and grouped:
// colT[gi][img * P + p][k] with k = (cg * kh + i) * kw + j, c = gi * Cg + cg.
// grid.y (striding) walks the rows (gi, img, oy); grid.x covers one row's
// OW * Kg entries. Rows of colT are Kq >= Kg apart (columns Kg .. Kq - 1 are
// padding, left as they are).
template <class T>
__global__ void im2col_t_kernel(const T* __restrict__ x, Strides4 xs, Geom32 g, int64_t n0, int nimg, int rows,
                                int Kq, T* __restrict__ colT) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= g.OW * g.Kg) return;
  const int ox = e / g.Kg, k = e - ox * g.Kg;
  const int cg = k / g.kk, ij = k - cg * g.kk;
  const int i = ij / g.kw, j = ij - i * g.kw;
  const int ix = ox * g.sw - g.pl + j * g.dw;
  for (int r = blockIdx.y; r < rows; r += gridDim.y) {
    const int oy = r % g.OH, q = r / g.OH;
    const int img = q % nimg, gi = q / nimg;
    const int iy = oy * g.sh - g.pt + i * g.dh;
    T v = T(0);
    if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W)
      v = x[(n0 + img) * xs.n + (gi * g.Cg + cg) * xs.c + iy * xs.h + ix * xs.w];
    colT[(int64_t(r) * g.OW + ox) * Kq + k] = v;
  }
}

// Calls f(t, q) for each tap t = i * kw + j, in (i, j) order, whose output
// q = oy * OW + ox reads input pixel (iy, ix): the gather order of both
// input-gradient kernels.
template <class F>
__device__ __forceinline__ void for_each_tap_at(const Geom32& g, int iy, int ix, F&& f) {
  for (int i = 0; i < g.kh; ++i) {
    const int ty = iy + g.pt - i * g.dh;
    if (ty < 0) break;  // ty only falls as i grows
    const int oy = ty / g.sh;
    if (oy * g.sh != ty || oy >= g.OH) continue;
    for (int j = 0; j < g.kw; ++j) {
      const int tx = ix + g.pl - j * g.dw;
      if (tx < 0) break;
      const int ox = tx / g.sw;
      if (ox * g.sw != tx || ox >= g.OW) continue;
      f(i * g.kw + j, oy * g.OW + ox);
    }
  }
}

// dx[n0 + img][c][iy][ix] = bias[c] + the sum of the column entries whose tap
// lands on (iy, ix), taps in (i, j) order: a gather, one thread per element.
// col is (nimg, C kh kw, P) as im2col_kernel lays it out; dx contiguous.
// grid.y (striding) walks the (img, c) planes, grid.x covers one plane.
template <class T>
__global__ void col2im_kernel(const T* __restrict__ col, Geom32 g, int64_t n0, int planes,
                              const T* __restrict__ bias, int64_t bstride, T* __restrict__ dx) {
  const int HW = g.H * g.W;
  const int pix = blockIdx.x * blockDim.x + threadIdx.x;
  if (pix >= HW) return;
  const int iy = pix / g.W, ix = pix - iy * g.W;
  for (int r = blockIdx.y; r < planes; r += gridDim.y) {  // r = img * C + c
    const int c = r % g.C;
    const T* cr = col + int64_t(r) * g.kk * g.P;
    T acc = bias ? bias[c * bstride] : T(0);
    for_each_tap_at(g, iy, ix, [&](int t, int q) { acc += cr[t * g.P + q]; });
    dx[(n0 * g.C + r) * HW + pix] = acc;
  }
}

// y[n][c][p] += bias[c] over a contiguous (N, C, P) array: grid.y (striding)
// walks the (n, c) planes, grid.x one plane, so no element needs a 64-bit
// division (two per element cost more than the memory traffic).
template <class T>
__global__ void add_bias_kernel(T* __restrict__ y, const T* __restrict__ bias, int64_t bstride, int64_t planes,
                                int64_t C, int64_t P) {
  for (int64_t r = blockIdx.y; r < planes; r += gridDim.y) {
    const T b = bias[(r % C) * bstride];
    T* yr = y + r * P;
    for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < P; p += int64_t(gridDim.x) * blockDim.x)
      yr[p] += b;
  }
}

// dw[e] (=, or += when accumulate) the sum of part[s * stride + ep] over
// s = 0 .. S-1, in order; dw is (rows, Kg), each split of part (rows, Kq):
// ep = (e / Kg) * Kq + e % Kg.
template <class T>
__global__ void sum_splits_kernel(const T* __restrict__ part, int64_t S, int64_t stride, int64_t Kg, int64_t Kq,
                                  int64_t n, bool accumulate, T* __restrict__ dw) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ep = Kq == Kg ? e : e / Kg * Kq + e % Kg;
    T acc = part[ep];
    for (int64_t s = 1; s < S; ++s) acc += part[s * stride + ep];
    dw[e] = accumulate ? dw[e] + acc : acc;
  }
}

// ---- depthwise (one input channel per group: groups == C, O = C * mult) ------------
//
// The GEMMs there have M = mult (often 1) and K = kh kw: nearly every FMA of a
// tile is wasted. Direct kernels instead, in the GEMM path's order of
// summation: taps in (i, j) order per output; the input gradient sums the
// mult output channels per tap, then the taps (as GEMM + col2im did).

// y[n][o][p] = sum of w[o][i][j] * x[n][o / mult][tap] over taps in (i, j)
// order, + bias[o]. grid.x covers p, grid.y (striding) the (n, o) planes.
template <class T>
__global__ void dw_forward_kernel(const T* __restrict__ x, Strides4 xs, const T* __restrict__ w,
                                  const T* __restrict__ bias, int64_t bstride, Geom32 g, int O, int mult, int planes,
                                  T* __restrict__ y) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= g.P) return;
  const int oy = p / g.OW, ox = p - oy * g.OW;
  const int iy0 = oy * g.sh - g.pt, ix0 = ox * g.sw - g.pl;
  for (int r = blockIdx.y; r < planes; r += gridDim.y) {  // r = n * O + o
    const int n = r / O, o = r - n * O;
    const T* xp = x + n * xs.n + (o / mult) * xs.c;
    const T* wp = w + int64_t(o) * g.kk;
    T acc = T(0);
    for (int i = 0; i < g.kh; ++i) {
      const int iy = iy0 + i * g.dh;
      if (iy < 0 || iy >= g.H) continue;
      for (int j = 0; j < g.kw; ++j) {
        const int ix = ix0 + j * g.dw;
        if (ix < 0 || ix >= g.W) continue;
        acc += wp[i * g.kw + j] * xp[iy * xs.h + ix * xs.w];
      }
    }
    if (bias) acc += bias[o * bstride];
    y[int64_t(r) * g.P + p] = acc;
  }
}

// dx[n][c][iy][ix] = bias[c] + over taps (i, j) in order whose output lands
// in range: the sum over m < mult of w[c mult + m][i][j] * gout[n][c mult + m][out].
// gout contiguous (N, C mult, OH, OW); grid.y (striding) walks the (n, c) planes.
template <class T>
__global__ void dw_input_grad_kernel(const T* __restrict__ gout, const T* __restrict__ w,
                                     const T* __restrict__ bias, int64_t bstride, Geom32 g, int mult, int planes,
                                     T* __restrict__ dx) {
  const int HW = g.H * g.W;
  const int pix = blockIdx.x * blockDim.x + threadIdx.x;
  if (pix >= HW) return;
  const int iy = pix / g.W, ix = pix - iy * g.W;
  for (int r = blockIdx.y; r < planes; r += gridDim.y) {  // r = n * C + c: gout's planes r * mult ..
    const int c = r % g.C;
    const T* gp = gout + int64_t(r) * mult * g.P;
    const T* wp = w + int64_t(c) * mult * g.kk;
    T acc = bias ? bias[c * bstride] : T(0);
    for_each_tap_at(g, iy, ix, [&](int t, int q) {
      T s = T(0);
      for (int m = 0; m < mult; ++m) s += wp[m * g.kk + t] * gp[int64_t(m) * g.P + q];
      acc += s;
    });
    dx[int64_t(r) * HW + pix] = acc;
  }
}

// The weight gradient, pass 1: block b = (o kk + t) * S + s sums its tap's
// products over reduction indices r = n P + p in [s L, (s + 1) L): each
// thread a fixed stride of them in order, then a fixed tree over the block.
constexpr int kDwThreads = 256;
constexpr int64_t kDwSplit = 4096;  // L: reduction elements per block

template <class T>
__global__ void __launch_bounds__(kDwThreads)
dw_weight_grad_partial(const T* __restrict__ gout, const T* __restrict__ x, Strides4 xs, Geom32 g, int O, int mult,
                       int64_t R, int64_t S, T* __restrict__ part) {
  __shared__ T red[kDwThreads];
  const int64_t b = blockIdx.x;
  const int wi = static_cast<int>(b / S);  // o * kk + t
  const int64_t s = b - int64_t(wi) * S;
  const int o = wi / g.kk, t = wi - o * g.kk;
  const int i = t / g.kw, j = t - i * g.kw;
  const T* xc = x + (o / mult) * xs.c;
  const int64_t r1 = min(R, (s + 1) * kDwSplit);
  T acc = T(0);
  for (int64_t r = s * kDwSplit + threadIdx.x; r < r1; r += kDwThreads) {
    const int64_t n = r / g.P;
    const int p = static_cast<int>(r - n * g.P);
    const int oy = p / g.OW, ox = p - oy * g.OW;
    const int iy = oy * g.sh - g.pt + i * g.dh, ix = ox * g.sw - g.pl + j * g.dw;
    if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W)
      acc += gout[(n * O + o) * g.P + p] * xc[n * xs.n + iy * xs.h + ix * xs.w];
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int h = kDwThreads / 2; h > 0; h /= 2) {
    if (threadIdx.x < h) red[threadIdx.x] += red[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[b] = red[0];
}

// Pass 2: dw[e] = part[e S] + part[e S + 1] + ... in order.
template <class T>
__global__ void dw_weight_grad_sum(const T* __restrict__ part, int64_t S, int64_t n, T* __restrict__ dw) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    T acc = part[e * S];
    for (int64_t s = 1; s < S; ++s) acc += part[e * S + s];
    dw[e] = acc;
  }
}

// The direct depthwise kernels apply: one input channel per group, and the
// plane counts and the weight gradient's block count fit in int.
bool depthwise(const ConvGeom& g) {
  if (g.groups != g.C || g.C == 0) return false;
  const int64_t lim = (int64_t(1) << 31) - 1;
  const int64_t R = g.N * g.OH * g.OW, S = (R + kDwSplit - 1) / kDwSplit;
  return g.N * g.O <= lim && g.N * g.C <= lim && g.O * g.kh * g.kw * std::max<int64_t>(S, 1) <= lim;
}

unsigned grid_y(int64_t rows) { return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 65535)); }
unsigned grid_x(int64_t n) { return static_cast<unsigned>(std::max<int64_t>(1, (n + kThreads - 1) / kThreads)); }

template <class T>
void launch_im2col(const Array& x, const Geom32& g, int64_t n0, int64_t nimg, int64_t groups, int64_t Kp,
                   const Array& col, const char* op) {
  const int64_t rows = nimg * g.C * g.kk;
  if (rows == 0) return;
  dim3 grid(grid_x(g.P), grid_y(rows));
  im2col_kernel<T><<<grid, kThreads>>>(x.data<T>(), strides_of(x), g, n0, static_cast<int>(rows),
                                       static_cast<int>(groups), static_cast<int>(Kp), col.data<T>());
  FG_CUDA_LAUNCH_CHECK(op);
}

template <class T>
void launch_bias(const Array& y, const std::optional<Array>& bias, int64_t C, int64_t P, const char* op) {
  const int64_t total = y.numel();
  if (!bias || total == 0) return;
  const int64_t planes = total / P;  // P > 0 as total > 0
  const dim3 grid(grid_x(P), grid_y(planes));
  add_bias_kernel<T><<<grid, kThreads>>>(y.data<T>(), bias->data<T>(), bias->strides[0], planes, C, P);
  FG_CUDA_LAUNCH_CHECK(op);
}

}  // namespace

void conv_forward(const ConvGeom& g, const Array& x, const Array& w, const std::optional<Array>& bias,
                  const Array& y, const char* op) {
  DeviceGuard guard(y.device().index, op);
  const int64_t P = g.OH * g.OW, kk = g.kh * g.kw, Og = g.O / g.groups, Cg = g.C / g.groups, Kg = Cg * kk;
  if (Kg == 0) {  // no input channels: y is the bias (or zeros)
    FG_CUDA_CHECK(op, cudaMemsetAsync(y.raw(), 0, static_cast<size_t>(y.numel()) * y.itemsize()));
    dispatch_float(y.dtype, op, [&](auto t) { launch_bias<decltype(t)>(y, bias, g.O, P, op); });
    return;
  }
  const Array wc = contiguous(w);
  if (depthwise(g)) {
    const Geom32 g32 = geom32(g, 1, op);
    const int64_t planes = g.N * g.O;
    if (planes == 0) return;
    dispatch_float(y.dtype, op, [&](auto t) {
      using T = decltype(t);
      const dim3 grid(grid_x(P), grid_y(planes));
      dw_forward_kernel<T><<<grid, kThreads>>>(x.data<T>(), strides_of(x), wc.data<T>(),
                                               bias ? bias->data<T>() : nullptr, bias ? bias->strides[0] : 0, g32,
                                               static_cast<int>(g.O), static_cast<int>(Og), static_cast<int>(planes),
                                               y.data<T>());
      FG_CUDA_LAUNCH_CHECK(op);
    });
    return;
  }
  // A 1x1 convolution with stride 1 and no padding has col == x.
  const bool direct = pointwise(g) && dense4(x);
  // float32 GEMMs take the fast (float4) kernel only for K and N multiples of
  // 4: K = Kg padded up with zero weights and zero column rows (3 input
  // channels x 3 x 3 = 27 -> 28). The extra terms add 0 after the real ones.
  const int64_t Kp = y.dtype == DType::Float32 && !direct && Kg % 4 != 0 && P % 4 == 0 ? (Kg + 3) / 4 * 4 : Kg;
  Array a = as_strided(wc, {g.groups, Og, Kg}, {Og * Kg, Kg, 1}, wc.offset);
  if (Kp != Kg) {
    const Array ap = zeros({g.groups, Og, Kp}, y.dtype, y.device());
    copy_into(as_strided(ap, {g.groups, Og, Kg}, {Og * Kp, Kp, 1}, ap.offset), a, op);
    a = ap;
  }
  const int64_t per_image = g.groups * Kp * P;  // C kh kw P unpadded
  const int64_t nc = chunk_images(g.N, per_image, y.itemsize());
  const Array col = direct ? Array{}
                    : Kp != Kg ? zeros({nc * per_image}, y.dtype, y.device())  // the padding rows stay 0
                               : empty({nc * per_image}, y.dtype, y.device());
  const Geom32 g32 = geom32(g, nc, op);
  dispatch_float(y.dtype, op, [&](auto t) {
    using T = decltype(t);
    for (int64_t n0 = 0; n0 < g.N; n0 += nc) {
      const int64_t nimg = std::min(nc, g.N - n0);
      Array b;
      if (direct) {
        b = as_strided(x, {nimg, g.groups, Kg, P}, {g.C * P, Kg * P, P, 1}, x.offset + n0 * x.strides[0]);
      } else {
        launch_im2col<T>(x, g32, n0, nimg, g.groups, Kp, col, op);
        b = as_strided(col, {nimg, g.groups, Kp, P}, {per_image, Kp * P, P, 1}, col.offset);
      }
      const Array out = as_strided(y, {nimg, g.groups, Og, P}, {g.O * P, Og * P, P, 1}, y.offset + n0 * g.O * P);
      matmul(a, b, {nimg, g.groups}, Og, P, Kp, out);
    }
    launch_bias<T>(y, bias, g.O, P, op);
  });
}

void conv_input_grad(const ConvGeom& g, const Array& gout, const Array& w, const std::optional<Array>& bias,
                     const Array& dx, const char* op) {
  DeviceGuard guard(dx.device().index, op);
  const int64_t P = g.OH * g.OW, kk = g.kh * g.kw, Og = g.O / g.groups, Cg = g.C / g.groups, Kg = Cg * kk;
  const Array gc = contiguous(gout);
  const Array wc = contiguous(w);
  if (depthwise(g)) {
    const Geom32 g32 = geom32(g, 1, op);
    const int64_t planes = g.N * g.C;
    if (planes == 0) return;
    dispatch_float(dx.dtype, op, [&](auto t) {
      using T = decltype(t);
      const dim3 grid(grid_x(g.H * g.W), grid_y(planes));
      dw_input_grad_kernel<T><<<grid, kThreads>>>(gc.data<T>(), wc.data<T>(), bias ? bias->data<T>() : nullptr,
                                                  bias ? bias->strides[0] : 0, g32, static_cast<int>(Og),
                                                  static_cast<int>(planes), dx.data<T>());
      FG_CUDA_LAUNCH_CHECK(op);
    });
    return;
  }
  // w^T per group, (groups, Kg, Og), made contiguous so the GEMM reads rows.
  const Array wt = contiguous(as_strided(wc, {g.groups, Kg, Og}, {Og * Kg, 1, Kg}, wc.offset));
  // A 1x1 convolution with stride 1 and no padding: col == dx, no col2im.
  const bool direct = pointwise(g);
  const int64_t per_image = g.C * kk * P;
  const int64_t nc = chunk_images(g.N, per_image, dx.itemsize());
  const Array col = direct ? Array{} : empty({nc * per_image}, dx.dtype, dx.device());
  const Geom32 g32 = geom32(g, nc, op);
  dispatch_float(dx.dtype, op, [&](auto t) {
    using T = decltype(t);
    for (int64_t n0 = 0; n0 < g.N; n0 += nc) {
      const int64_t nimg = std::min(nc, g.N - n0);
      const Array b = as_strided(gc, {nimg, g.groups, Og, P}, {g.O * P, Og * P, P, 1}, gc.offset + n0 * g.O * P);
      if (direct) {
        const Array out = as_strided(dx, {nimg, g.groups, Kg, P}, {g.C * P, Kg * P, P, 1}, dx.offset + n0 * g.C * P);
        matmul(wt, b, {nimg, g.groups}, Kg, P, Og, out);
        continue;
      }
      const Array cv = as_strided(col, {nimg, g.groups, Kg, P}, {per_image, Kg * P, P, 1}, col.offset);
      matmul(wt, b, {nimg, g.groups}, Kg, P, Og, cv);
      const dim3 grid(grid_x(g.H * g.W), grid_y(nimg * g.C));
      col2im_kernel<T><<<grid, kThreads>>>(col.data<T>(), g32, n0, static_cast<int>(nimg * g.C),
                                           bias ? bias->data<T>() : nullptr, bias ? bias->strides[0] : 0,
                                           dx.data<T>());
      FG_CUDA_LAUNCH_CHECK(op);
    }
    if (direct) launch_bias<T>(dx, bias, g.C, g.H * g.W, op);
  });
}

void conv_weight_grad(const ConvGeom& g, const Array& gout, const Array& x, const Array& dw, const char* op) {
  DeviceGuard guard(dw.device().index, op);
  const int64_t P = g.OH * g.OW, kk = g.kh * g.kw, Og = g.O / g.groups, Cg = g.C / g.groups, Kg = Cg * kk;
  const int64_t wsize = g.groups * Og * Kg;
  if (g.N == 0) {  // an empty sum
    FG_CUDA_CHECK(op, cudaMemsetAsync(dw.raw(), 0, static_cast<size_t>(wsize) * dw.itemsize()));
    return;
  }
  const Array gc = contiguous(gout);
  if (depthwise(g)) {
    // Two passes, no atomics: fixed splits of the N * P products per weight,
    // then the splits in order.
    const Geom32 g32 = geom32(g, 1, op);
    const int64_t R = g.N * P, S = (R + kDwSplit - 1) / kDwSplit;
    if (wsize == 0) return;
    if (R == 0) {
      FG_CUDA_CHECK(op, cudaMemsetAsync(dw.raw(), 0, static_cast<size_t>(wsize) * dw.itemsize()));
      return;
    }
    const Array part = empty({wsize * S}, dw.dtype, dw.device());
    dispatch_float(dw.dtype, op, [&](auto t) {
      using T = decltype(t);
      dw_weight_grad_partial<T><<<static_cast<unsigned>(wsize * S), kDwThreads>>>(
          gc.data<T>(), x.data<T>(), strides_of(x), g32, static_cast<int>(g.O), static_cast<int>(Og), R, S,
          part.data<T>());
      FG_CUDA_LAUNCH_CHECK(op);
      dw_weight_grad_sum<T><<<grid_for(wsize), kThreads>>>(part.data<T>(), S, wsize, dw.data<T>());
      FG_CUDA_LAUNCH_CHECK(op);
    });
    return;
  }
  // The GEMMs' N is Kg: float32 pads it to a multiple of 4 (zero columns of
  // colT, results dropped) so they take the fast float4 kernel. The sums
  // themselves are unchanged.
  const int64_t Kq = dw.dtype == DType::Float32 && Kg % 4 != 0 ? (Kg + 3) / 4 * 4 : Kg, wq = g.groups * Og * Kq;
  // Per image: its columns (groups x P x Kq) and its slice of g regrouped (O x P).
  const int64_t per_image = g.groups * Kq * P + g.O * P;
  const int64_t nc = chunk_images(g.N, per_image, dw.itemsize());
  const Array colT = Kq != Kg ? zeros({nc * g.groups * Kq * P}, dw.dtype, dw.device())  // padding stays 0
                              : empty({nc * g.groups * Kq * P}, dw.dtype, dw.device());
  // Splits of K = images * P: enough (group, split) GEMMs to fill the device
  // a few times over (about 1024 block tiles: 64 x 128 of the float32 kernel
  // for Og <= 64, else 128 x 128; 64 x 64 of the general one), each at least
  // 256 long. Fixed by the shape. (512 tiles counted as 64 x 64 gave 280
  // blocks of 64 x 128 for 64 -> 64 channels 3x3: one wave plus a few.)
  const int64_t tiles = dw.dtype == DType::Float32 ? (Og <= 64 ? 1 : (Og + 127) / 128) * ((Kq + 127) / 128) * g.groups
                                                   : (Og + 63) / 64 * ((Kg + 63) / 64) * g.groups;
  const int64_t want_splits = std::max<int64_t>(1, 1024 / tiles);
  const Geom32 g32 = geom32(g, nc, op);
  dispatch_float(dw.dtype, op, [&](auto t) {
    using T = decltype(t);
    bool first = true;
    for (int64_t n0 = 0; n0 < g.N; n0 += nc) {
      const int64_t nimg = std::min(nc, g.N - n0), nP = nimg * P;
      const int64_t rows = g.groups * nimg * g.OH;
      const dim3 grid(grid_x(g.OW * Kg), grid_y(rows));
      im2col_t_kernel<T><<<grid, kThreads>>>(x.data<T>(), strides_of(x), g32, n0, static_cast<int>(nimg),
                                             static_cast<int>(rows), static_cast<int>(Kq), colT.data<T>());
      FG_CUDA_LAUNCH_CHECK(op);
      // g of this chunk as (groups, Og, nimg * P), rows contiguous
      const Array gp = contiguous(
          as_strided(gc, {g.groups, Og, nimg, P}, {Og * P, P, g.O * P, 1}, gc.offset + n0 * g.O * P));
      int64_t L = std::max<int64_t>(256, ((nP + want_splits - 1) / want_splits + 3) / 4 * 4);
      if (L > nP) L = nP;
      const int64_t full = nP / L, rem = nP - full * L, S = full + (rem > 0 ? 1 : 0);
      const Array part = empty({S * wq}, dw.dtype, dw.device());
      if (full > 0) {
        const Array a = as_strided(gp, {full, g.groups, Og, L}, {L, Og * nP, nP, 1}, gp.offset);
        const Array b = as_strided(colT, {full, g.groups, L, Kq}, {L * Kq, nP * Kq, Kq, 1}, colT.offset);
        const Array out = as_strided(part, {full, g.groups, Og, Kq}, {wq, Og * Kq, Kq, 1}, part.offset);
        matmul(a, b, {full, g.groups}, Og, Kq, L, out);
      }
      if (rem > 0) {
        const Array a = as_strided(gp, {g.groups, Og, rem}, {Og * nP, nP, 1}, gp.offset + full * L);
        const Array b = as_strided(colT, {g.groups, rem, Kq}, {nP * Kq, Kq, 1}, colT.offset + full * L * Kq);
        const Array out = as_strided(part, {g.groups, Og, Kq}, {Og * Kq, Kq, 1}, part.offset + full * wq);
        matmul(a, b, {g.groups}, Og, Kq, rem, out);
      }
      sum_splits_kernel<T><<<grid_for(wsize), kThreads>>>(part.data<T>(), S, wq, Kg, Kq, wsize, !first,
                                                          dw.data<T>());
      FG_CUDA_LAUNCH_CHECK(op);
      first = false;
    }
  });
}

}  // namespace cuda
}  // namespace fg
