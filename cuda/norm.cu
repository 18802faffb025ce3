// cuda/norm.cu - see norm.h.
//
// Layer norm: one team of threads per row, a warp for rows up to 1024
// elements (8 rows per block), the whole 256-thread block for longer rows;
// each thread sums a strided slice of the row in double, then the team adds
// the slices by a butterfly of warp shuffles (every lane ends with the same
// bits: each step adds two equal-shaped sums, and fp addition commutes) and,
// for a block, a second butterfly over the per-warp sums. The dweight /
// dbias column sums are split into row chunks; the per-chunk sums are added
// in chunk order by a second kernel.
// Batch norm: each channel's N*L elements are split into S chunks (S from the
// sizes only); a block sums one (channel, chunk), a one-thread-per-channel
// kernel adds the chunks in order and finishes the statistics; an
// elementwise kernel writes y (or dx).
// The per-element formulas, and where they round to T, are the CPU's.
#include "cuda/norm.h"

#include <algorithm>

#include "cuda/common.cuh"

namespace fg {
namespace cuda {
namespace {

// Threads of a block; a multiple of 32.
constexpr int kBlock = 256;
// Rows up to this length get one warp each.
constexpr int64_t kWarpRowMax = 1024;

// ---- reductions --------------------------------------------------------------

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum of v over a team: one warp (team == 32) or the whole block. Every
// thread of the team gets the same result. smem: 32 doubles; the leading
// __syncthreads makes back-to-back calls safe. A block team must call this
// from block-uniform control flow.
__device__ __forceinline__ double team_sum(double v, int team, double* smem) {
  v = warp_sum(v);
  if (team == 32) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  return warp_sum(lane < static_cast<int>(blockDim.x / 32) ? smem[lane] : 0.0);
}

// a * b rounded on its own: never contracted into an FMA with a following
// add (the CPU rounds the product first; with gy = dy * w a contracted
// gy - mean(gy) keeps the product's rounding error, which rstd amplifies
// where the CPU gets an exact 0, e.g. rows of length 1).
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

int team_for(int64_t m) { return m <= kWarpRowMax ? 32 : kBlock; }

unsigned row_grid(int64_t rows, int team) {
  const int64_t per = kBlock / team;
  const int64_t b = (rows + per - 1) / per;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, 1 << 20)));  // rows loop beyond
}

// ---- layer norm ----------------------------------------------------------------
// Args: x, y: (rows, m) contiguous; mean, rstd: (rows,); w, b: (m,) or null.

template <class T>
__global__ void ln_forward_kernel(const T* x, T* y, T* mean, T* rstd, const T* w, const T* b, int64_t rows,
                                  int64_t m, double eps, int team) {
  __shared__ double smem[32];
  const int per = blockDim.x / team, lane = threadIdx.x % team;
  for (int64_t r = int64_t(blockIdx.x) * per + threadIdx.x / team; r < rows; r += int64_t(gridDim.x) * per) {
    const T* xr = x + r * m;
    T* yr = y + r * m;
    double s = 0;
    for (int64_t i = lane; i < m; i += team) s += static_cast<double>(xr[i]);
    const double mu = team_sum(s, team, smem) / m;
    s = 0;
    for (int64_t i = lane; i < m; i += team) {
      const double d = static_cast<double>(xr[i]) - mu;
      s += d * d;
    }
    const double var = team_sum(s, team, smem) / m;
    const double rs = 1.0 / sqrt(var + eps);
    if (lane == 0) {
      mean[r] = static_cast<T>(mu);
      rstd[r] = static_cast<T>(rs);
    }
    const T mt = static_cast<T>(mu), rt = static_cast<T>(rs);
    for (int64_t i = lane; i < m; i += team) {
      T v = (xr[i] - mt) * rt;
      if (w) v = v * w[i];
      if (b) v = v + b[i];
      yr[i] = v;
    }
  }
}

// dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)), gy = dy * w.
template <class T>
__global__ void ln_backward_dx_kernel(const T* dy, const T* x, const T* mean, const T* rstd, const T* w, T* dx,
                                      int64_t rows, int64_t m, int team) {
  __shared__ double smem[32];
  const int per = blockDim.x / team, lane = threadIdx.x % team;
  for (int64_t r = int64_t(blockIdx.x) * per + threadIdx.x / team; r < rows; r += int64_t(gridDim.x) * per) {
    const T* g = dy + r * m;
    const T* xr = x + r * m;
    T* o = dx + r * m;
    const T mu = mean[r], rs = rstd[r];
    double a = 0, c = 0;
    for (int64_t i = lane; i < m; i += team) {
      const T gy = w ? mul_rn(g[i], w[i]) : g[i];
      a += static_cast<double>(gy);
      c += static_cast<double>(gy) * static_cast<double>((xr[i] - mu) * rs);
    }
    a = team_sum(a, team, smem);
    c = team_sum(c, team, smem);
    const T am = static_cast<T>(a / m), cm = static_cast<T>(c / m);
    for (int64_t i = lane; i < m; i += team) {
      const T gy = w ? mul_rn(g[i], w[i]) : g[i];
      o[i] = rs * (gy - am - (xr[i] - mu) * rs * cm);
    }
  }
}

// Per (row chunk k, column j): part[k, j] = sum dy * xhat, part[K + k, j] =
// sum dy over the chunk's rows, in row order. Grid (ceil(m / kBlock), K).
template <class T>
__global__ void ln_dwdb_partial_kernel(const T* dy, const T* x, const T* mean, const T* rstd, int64_t rows,
                                       int64_t m, int64_t chunk, double* part) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= m) return;
  const int64_t k = blockIdx.y, K = gridDim.y;
  const int64_t r0 = k * chunk, r1 = min(rows, r0 + chunk);
  double sw = 0, sb = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const T g = dy[r * m + j];
    sw += static_cast<double>(g) * static_cast<double>((x[r * m + j] - mean[r]) * rstd[r]);
    sb += static_cast<double>(g);
  }
  part[k * m + j] = sw;
  part[(K + k) * m + j] = sb;
}

// Adds the K chunk sums of each column in chunk order.
template <class T>
__global__ void ln_dwdb_final_kernel(const double* part, int64_t m, int64_t K, T* dw, T* db) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m; j += int64_t(gridDim.x) * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t k = 0; k < K; ++k) {
      sw += part[k * m + j];
      sb += part[(K + k) * m + j];
    }
    if (dw) dw[j] = static_cast<T>(sw);
    if (db) db[j] = static_cast<T>(sb);
  }
}

// ---- batch norm -------------------------------------------------------------------
// x is (N, C, L): element k = n * L + l of channel c at (n * C + c) * L + l.

struct BnShape {
  int64_t N, C, L;
  int64_t M() const { return N * L; }
};

__device__ __forceinline__ int64_t bn_at(int64_t k, int64_t c, int64_t C, int64_t L) {
  const int64_t n = k / L;
  return (n * C + c) * L + (k - n * L);
}

// What a partial sum adds up per element of a channel.
enum BnSum : int {
  kSumX = 0,     // (x, 0)
  kSumSqDev = 1, // ((x - mu)^2, 0), mu the double batch mean
  kSumGrad = 2,  // (dy, dy * xhat), xhat in T from the saved mean / rstd
};

// part[(c * S + s) * 2 + {0, 1}]: the two sums of channel c over chunk s
// (elements [s * chunk, (s + 1) * chunk)). Grid (C, S).
template <class T>
__global__ void bn_partial_kernel(const T* x, const T* dy, const double* mu, const T* mean, const T* rstd,
                                  int64_t C, int64_t L, int64_t M, int64_t chunk, int what, double* part) {
  __shared__ double smem[32];
  const int64_t c = blockIdx.x, s = blockIdx.y, S = gridDim.y;
  const int64_t k0 = s * chunk, k1 = min(M, k0 + chunk);
  double a = 0, b = 0;
  if (what == kSumX) {
    for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) a += static_cast<double>(x[bn_at(k, c, C, L)]);
  } else if (what == kSumSqDev) {
    const double mc = mu[c];
    for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) {
      const double d = static_cast<double>(x[bn_at(k, c, C, L)]) - mc;
      a += d * d;
    }
  } else {
    const T mc = mean[c], rc = rstd[c];
    for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) {
      const int64_t i = bn_at(k, c, C, L);
      const T g = dy[i];
      a += static_cast<double>(g);
      b += static_cast<double>(g) * static_cast<double>((x[i] - mc) * rc);
    }
  }
  a = team_sum(a, blockDim.x, smem);
  b = team_sum(b, blockDim.x, smem);
  if (threadIdx.x == 0) {
    part[(c * S + s) * 2] = a;
    part[(c * S + s) * 2 + 1] = b;
  }
}

__device__ __forceinline__ double chunk_total(const double* part, int64_t c, int64_t S, int which) {
  double t = 0;
  for (int64_t s = 0; s < S; ++s) t += part[(c * S + s) * 2 + which];
  return t;
}

// mu[c] = batch mean (double), from the kSumX partials.
__global__ void bn_mean_kernel(const double* part, int64_t C, int64_t S, int64_t M, double* mu) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x)
    mu[c] = chunk_total(part, c, S, 0) / M;
}

// Training (part = kSumSqDev partials, mu the batch means) or eval (part
// null: the running statistics): mean, rstd, var in T.
template <class T>
__global__ void bn_stats_kernel(const double* part, const double* mu, const T* rm, const T* rv, int64_t C,
                                int64_t S, int64_t M, double eps, T* mean, T* rstd, T* var) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    double m, v;
    if (part) {
      m = mu[c];
      v = chunk_total(part, c, S, 0) / M;
    } else {
      m = static_cast<double>(rm[c]);
      v = static_cast<double>(rv[c]);
    }
    mean[c] = static_cast<T>(m);
    rstd[c] = static_cast<T>(1.0 / sqrt(v + eps));
    var[c] = static_cast<T>(v);
  }
}

// y = (x - mean) * rstd * w + b, per channel; n = numel.
template <class T>
__global__ void bn_apply_kernel(const T* x, T* y, const T* mean, const T* rstd, const T* w, const T* b, int64_t n,
                                int64_t C, int64_t L) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / L) % C;
    const T wc = w ? w[c] : T(1), bc = b ? b[c] : T(0);
    y[i] = (x[i] - mean[c]) * rstd[c] * wc + bc;
  }
}

// From the kSumGrad partials: dw, db (either may be null) and the two
// per-channel coefficients of dx (zero in eval: the statistics are constants).
template <class T>
__global__ void bn_grad_stats_kernel(const double* part, int64_t C, int64_t S, int64_t M, bool training, T* dw,
                                     T* db, T* am, T* cm) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    const double a = chunk_total(part, c, S, 0), cc = chunk_total(part, c, S, 1);
    if (dw) dw[c] = static_cast<T>(cc);
    if (db) db[c] = static_cast<T>(a);
    am[c] = training ? static_cast<T>(a / M) : T(0);
    cm[c] = training ? static_cast<T>(cc / M) : T(0);
  }
}

// dx = w * rstd * (dy - am - xhat * cm).
template <class T>
__global__ void bn_dx_kernel(const T* dy, const T* x, const T* mean, const T* rstd, const T* w, const T* am,
                             const T* cm, T* dx, int64_t n, int64_t C, int64_t L) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / L) % C;
    const T mu = mean[c], rs = rstd[c];
    const T k = (w ? w[c] : T(1)) * rs;
    dx[i] = k * (dy[i] - am[c] - (x[i] - mu) * rs * cm[c]);
  }
}

// ---- host helpers -------------------------------------------------------------------

template <class T>
const T* ptr(const std::optional<Array>& p) {
  return p ? p->data<T>() : nullptr;
}

template <class Fn>
void dispatch_float(DType t, Fn&& fn) {
  if (t == DType::Float32) fn(float{});
  else fn(double{});
}

BnShape bn_shape(const Array& x) {
  BnShape s{x.shape[0], x.shape[1], 1};
  for (int d = 2; d < x.ndim(); ++d) s.L *= x.shape[d];
  return s;
}

// Chunks per channel: enough blocks to fill the device for few channels,
// at least 4096 elements a chunk; from the sizes only (fixed sum order).
int64_t bn_chunks(const BnShape& s) {
  const int64_t by_size = (s.M() + 4095) / 4096;
  const int64_t by_blocks = std::max<int64_t>(1, 1024 / std::max<int64_t>(s.C, 1));
  return std::max<int64_t>(1, std::min<int64_t>({by_size, by_blocks, 65535}));
}

// Launches bn_partial_kernel over (C, S) into a fresh (C, S, 2) double array.
template <class T>
Array bn_partial(const char* op, const Array& x, const T* dy, const double* mu, const T* mean, const T* rstd,
                 const BnShape& s, int64_t S, int what) {
  Array part = empty({s.C * S * 2}, DType::Float64, x.device());
  const int64_t chunk = (s.M() + S - 1) / S;
  bn_partial_kernel<T><<<dim3(static_cast<unsigned>(s.C), static_cast<unsigned>(S)), kBlock>>>(
      x.data<T>(), dy, mu, mean, rstd, s.C, s.L, s.M(), chunk, what, part.data<double>());
  FG_CUDA_LAUNCH_CHECK(op);
  return part;
}

Array empty_vec(bool want, int64_t n, const Array& x) { return empty({want ? n : 0}, x.dtype, x.device()); }

}  // namespace

// ---------------------------------------------------------------------------------

std::tuple<Array, Array, Array> layer_norm_forward(const Array& x, int64_t m, const std::optional<Array>& weight,
                                                   const std::optional<Array>& bias, double eps) {
  const char* op = "layer_norm";
  DeviceGuard guard(x.device().index, op);
  const int64_t rows = x.numel() / m;
  Array y = empty(x.shape, x.dtype, x.device());
  Array mean = empty({rows}, x.dtype, x.device()), rstd = empty({rows}, x.dtype, x.device());
  if (rows == 0) return std::make_tuple(y, mean, rstd);
  const int team = team_for(m);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ln_forward_kernel<T><<<row_grid(rows, team), kBlock>>>(x.data<T>(), y.data<T>(), mean.data<T>(), rstd.data<T>(),
                                                           ptr<T>(weight), ptr<T>(bias), rows, m, eps, team);
    FG_CUDA_LAUNCH_CHECK(op);
  });
  return std::make_tuple(y, mean, rstd);
}

std::tuple<Array, Array, Array> layer_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool want_dw, bool want_db) {
  const char* op = "layer_norm_backward";
  DeviceGuard guard(x.device().index, op);
  const int64_t rows = mean.numel(), m = x.numel() / rows;
  Array dx = empty(x.shape, x.dtype, x.device());
  Array dw = empty_vec(want_dw, m, x), db = empty_vec(want_db, m, x);
  if (x.numel() == 0) return std::make_tuple(dx, dw, db);
  const int team = team_for(m);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ln_backward_dx_kernel<T><<<row_grid(rows, team), kBlock>>>(dy.data<T>(), x.data<T>(), mean.data<T>(),
                                                               rstd.data<T>(), ptr<T>(weight), dx.data<T>(), rows,
                                                               m, team);
    FG_CUDA_LAUNCH_CHECK(op);
    if (!want_dw && !want_db) return;
    // Row chunks of at least 16 rows, at most 128 chunks, and at most 4M
    // partial sums (64 MiB) for very wide rows; from the sizes only.
    const int64_t K = std::max<int64_t>(1, std::min<int64_t>({128, rows / 16, (int64_t(1) << 22) / m}));
    const int64_t chunk = (rows + K - 1) / K;
    Array part = empty({2 * K * m}, DType::Float64, x.device());
    const dim3 grid(static_cast<unsigned>((m + kBlock - 1) / kBlock), static_cast<unsigned>(K));
    ln_dwdb_partial_kernel<T><<<grid, kBlock>>>(dy.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(), rows, m,
                                                chunk, part.data<double>());
    FG_CUDA_LAUNCH_CHECK(op);
    ln_dwdb_final_kernel<T><<<grid_for(m), kBlock>>>(part.data<double>(), m, K, want_dw ? dw.data<T>() : nullptr,
                                                     want_db ? db.data<T>() : nullptr);
    FG_CUDA_LAUNCH_CHECK(op);
  });
  return std::make_tuple(dx, dw, db);
}

std::tuple<Array, Array, Array, Array> batch_norm_forward(const Array& x, const std::optional<Array>& weight,
                                                          const std::optional<Array>& bias,
                                                          const std::optional<Array>& running_mean,
                                                          const std::optional<Array>& running_var, bool training,
                                                          double eps) {
  const char* op = "batch_norm";
  DeviceGuard guard(x.device().index, op);
  const BnShape s = bn_shape(x);
  Array y = empty(x.shape, x.dtype, x.device());
  Array mean = empty({s.C}, x.dtype, x.device()), rstd = empty({s.C}, x.dtype, x.device()),
        var = empty({s.C}, x.dtype, x.device());
  if (s.C == 0) return std::make_tuple(y, mean, rstd, var);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (training) {  // two passes, as the CPU: the mean, then the squared deviations from it
      const int64_t S = bn_chunks(s);
      Array p1 = bn_partial<T>(op, x, nullptr, nullptr, nullptr, nullptr, s, S, kSumX);
      Array mu = empty({s.C}, DType::Float64, x.device());
      bn_mean_kernel<<<grid_for(s.C), kBlock>>>(p1.data<double>(), s.C, S, s.M(), mu.data<double>());
      FG_CUDA_LAUNCH_CHECK(op);
      Array p2 = bn_partial<T>(op, x, nullptr, mu.data<double>(), nullptr, nullptr, s, S, kSumSqDev);
      bn_stats_kernel<T><<<grid_for(s.C), kBlock>>>(p2.data<double>(), mu.data<double>(), nullptr, nullptr, s.C, S,
                                                    s.M(), eps, mean.data<T>(), rstd.data<T>(), var.data<T>());
    } else {
      bn_stats_kernel<T><<<grid_for(s.C), kBlock>>>(nullptr, nullptr, ptr<T>(running_mean), ptr<T>(running_var), s.C,
                                                    1, s.M(), eps, mean.data<T>(), rstd.data<T>(), var.data<T>());
    }
    FG_CUDA_LAUNCH_CHECK(op);
    if (x.numel() == 0) return;
    bn_apply_kernel<T><<<grid_for(x.numel()), kBlock>>>(x.data<T>(), y.data<T>(), mean.data<T>(), rstd.data<T>(),
                                                        ptr<T>(weight), ptr<T>(bias), x.numel(), s.C, s.L);
    FG_CUDA_LAUNCH_CHECK(op);
  });
  return std::make_tuple(y, mean, rstd, var);
}

std::tuple<Array, Array, Array> batch_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool training, bool want_dw, bool want_db) {
  const char* op = "batch_norm_backward";
  DeviceGuard guard(x.device().index, op);
  const BnShape s = bn_shape(x);
  Array dx = empty(x.shape, x.dtype, x.device());
  Array dw = empty_vec(want_dw, s.C, x), db = empty_vec(want_db, s.C, x);
  if (s.C == 0) return std::make_tuple(dx, dw, db);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t S = bn_chunks(s);
    Array p = bn_partial<T>(op, x, dy.data<T>(), nullptr, mean.data<T>(), rstd.data<T>(), s, S, kSumGrad);
    Array coef = empty({2 * s.C}, x.dtype, x.device());
    T* am = coef.data<T>();
    bn_grad_stats_kernel<T><<<grid_for(s.C), kBlock>>>(p.data<double>(), s.C, S, s.M(), training,
                                                       want_dw ? dw.data<T>() : nullptr,
                                                       want_db ? db.data<T>() : nullptr, am, am + s.C);
    FG_CUDA_LAUNCH_CHECK(op);
    if (x.numel() == 0) return;
    bn_dx_kernel<T><<<grid_for(x.numel()), kBlock>>>(dy.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                                                     ptr<T>(weight), am, am + s.C, dx.data<T>(), x.numel(), s.C,
                                                     s.L);
    FG_CUDA_LAUNCH_CHECK(op);
  });
  return std::make_tuple(dx, dw, db);
}

}  // namespace cuda
}  // namespace fg
