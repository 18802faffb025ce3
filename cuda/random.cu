// random.cu - Philox sampling on CUDA devices (see cuda/random.h).
//
// One thread per counter block (grid-stride): block q computes
// philox4x32_10(seed, base + q) and writes the elements q owns under the
// mapping of cpu/random.h, through the same rng:: functions the CPU kernels
// call (explicitly rounded arithmetic, so no FMA contraction changes a bit).
#include "cuda/random.h"

#include <math_constants.h>

#include <cuda/std/limits>
#include <type_traits>

#include "cpu/random.h"
#include "cuda/common.cuh"

namespace fg {
namespace cuda {
namespace {

using rng::join;

#define FG_RNG_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Elements per block of T for the uniform and normal mappings.
template <class T>
constexpr int64_t per_block() {
  return sizeof(T) == 4 ? 4 : 2;
}

// The uniform of element l of block b (l < per_block<T>()).
__device__ __forceinline__ float uniform_of(const PhiloxBlock& b, int l, float) { return rng::u01_f32(b.w[l]); }
__device__ __forceinline__ double uniform_of(const PhiloxBlock& b, int l, double) {
  return rng::u01_f64(join(b.w[2 * l], b.w[2 * l + 1]));
}

// kind 0: u, 1: lo + w * u, 2: keep * (u >= p) (a = p, b = keep), 3: u < p[i].
template <class T, int kKind>
__global__ void uniform_kernel(T* out, const T* prob, int64_t n, uint64_t seed, uint64_t base, T a, T b) {
  constexpr int64_t kPer = per_block<T>();
  const int64_t blocks = (n + kPer - 1) / kPer;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < blocks; q += int64_t(gridDim.x) * blockDim.x) {
    const PhiloxBlock w = philox4x32_10(seed, base + static_cast<uint64_t>(q));
#pragma unroll
    for (int l = 0; l < kPer; ++l) {
      const int64_t i = q * kPer + l;
      if (i >= n) break;
      const T u = uniform_of(w, l, T());
      if (kKind == 0) out[i] = u;
      if (kKind == 1) out[i] = rng::affine(a, b, u);
      if (kKind == 2) out[i] = b * static_cast<T>(u >= a);  // exact: keep or 0
      if (kKind == 3) out[i] = static_cast<T>(u < prob[i]);
    }
  }
}

template <class T>
__global__ void normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t base, bool affine, T mean, T sd) {
  constexpr int64_t kPer = per_block<T>();
  const int64_t blocks = (n + kPer - 1) / kPer;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < blocks; q += int64_t(gridDim.x) * blockDim.x) {
    const PhiloxBlock w = philox4x32_10(seed, base + static_cast<uint64_t>(q));
    T z[4];
    if constexpr (sizeof(T) == 4) {  // pairs (w0, w1), (w2, w3)
      rng::box_muller(rng::u01_open0_f32(w.w[0]), rng::u01_f32(w.w[1]), &z[0], &z[1]);
      rng::box_muller(rng::u01_open0_f32(w.w[2]), rng::u01_f32(w.w[3]), &z[2], &z[3]);
    } else {  // one pair (u64(w0, w1), u64(w2, w3))
      rng::box_muller(rng::u01_open0_f64(join(w.w[0], w.w[1])), rng::u01_f64(join(w.w[2], w.w[3])), &z[0], &z[1]);
    }
#pragma unroll
    for (int l = 0; l < kPer; ++l) {
      const int64_t i = q * kPer + l;
      if (i >= n) break;
      out[i] = affine ? rng::affine(mean, sd, z[l]) : z[l];
    }
  }
}

template <class T>
__global__ void randint_kernel(T* out, int64_t n, uint64_t seed, uint64_t base, int64_t low, uint64_t range) {
  const int64_t blocks = (n + 1) / 2;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < blocks; q += int64_t(gridDim.x) * blockDim.x) {
    const PhiloxBlock w = philox4x32_10(seed, base + static_cast<uint64_t>(q));
#pragma unroll
    for (int l = 0; l < 2; ++l) {
      const int64_t i = 2 * q + l;
      if (i >= n) break;
      const uint64_t x = join(w.w[2 * l], w.w[2 * l + 1]);
      out[i] = static_cast<T>(static_cast<int64_t>(static_cast<uint64_t>(low) + rng::below(x, range)));
    }
  }
}

template <class T>
__global__ void prob_check_kernel(const T* p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (!(p[i] >= T(0) && p[i] <= T(1))) g_kernel_error = 1;
}

// ---- multinomial ----

// One thread per row: bad weights or too few positive ones set the flag.
template <class T>
__global__ void multinomial_check_kernel(const T* w, int64_t R, int64_t C, int64_t need) {
  FG_RNG_STRIDE(r, R) {
    int64_t positive = 0;
    for (int64_t k = 0; k < C; ++k) {
      const T x = w[r * C + k];
      if (!(x >= T(0) && x <= ::cuda::std::numeric_limits<T>::max())) g_kernel_error = 1;
      positive += x > T(0);
    }
    if (positive < need) g_kernel_error = 1;
  }
}

// With replacement, pass 1 (a thread per row): the running sums in category
// order (cdf, R x C) and the last positive category of the row.
template <class T>
__global__ void cdf_kernel(const T* w, double* cdf, int64_t* last, int64_t R, int64_t C) {
  FG_RNG_STRIDE(r, R) {
    double acc = 0.0;
    int64_t lp = 0;
    for (int64_t k = 0; k < C; ++k) {
      acc = rng::d_add(acc, static_cast<double>(w[r * C + k]));
      cdf[r * C + k] = acc;
      if (w[r * C + k] > T(0)) lp = k;
    }
    last[r] = lp;
  }
}

// Pass 2 (a thread per sample i = r S + s): the first k with cdf[k] > u total.
__global__ void inverse_cdf_kernel(const double* cdf, const int64_t* last, int64_t* out, int64_t R, int64_t C,
                                   int64_t S, uint64_t seed, uint64_t base) {
  FG_RNG_STRIDE(i, R * S) {
    const int64_t r = i / S;
    const PhiloxBlock b = philox4x32_10(seed, base + static_cast<uint64_t>(i / 2));
    const int l = static_cast<int>(i % 2);
    const double* row = cdf + r * C;
    const double target = rng::d_mul(rng::u01_f64(join(b.w[2 * l], b.w[2 * l + 1])), row[C - 1]);
    int64_t lo = 0, hi = C;  // upper_bound
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (row[mid] > target)
        hi = mid;
      else
        lo = mid + 1;
    }
    out[i] = lo < C ? lo : last[r];
  }
}

// Without replacement, pass 1 (a thread per (r, k)): key = Exp(1) / w.
template <class T>
__global__ void race_keys_kernel(const T* w, double* keys, int64_t n, uint64_t seed, uint64_t base) {
  FG_RNG_STRIDE(i, n) {
    const PhiloxBlock b = philox4x32_10(seed, base + static_cast<uint64_t>(i / 2));
    const int l = static_cast<int>(i % 2);
    const double e = -rng::fast_log(rng::u01_open0_f64(join(b.w[2 * l], b.w[2 * l + 1])));
    const T x = w[i];
    keys[i] = x > T(0) ? rng::d_div(e, static_cast<double>(x)) : CUDART_INF;
  }
}

// Pass 2 (a thread per (r, k)): k's rank among the row's (key, k); the S
// smallest land in order. O(C) per thread: simple and deterministic.
__global__ void race_rank_kernel(const double* keys, int64_t* out, int64_t R, int64_t C, int64_t S) {
  FG_RNG_STRIDE(i, R * C) {
    const int64_t r = i / C, k = i % C;
    const double* row = keys + r * C;
    const double key = row[k];
    int64_t rank = 0;
    for (int64_t j = 0; j < C; ++j) rank += row[j] < key || (row[j] == key && j < k);
    if (rank < S) out[r * S + rank] = k;
  }
}

unsigned grid_blocks(int64_t n, int64_t per) { return grid_for((n + per - 1) / per); }

template <int kKind>
void launch_uniform(const char* op, const Array& out, const Array* prob, uint64_t seed, uint64_t base, double a,
                    double b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard g(out.device().index, op);
  if (out.dtype == DType::Float32) {
    uniform_kernel<float, kKind><<<grid_blocks(n, 4), kThreads>>>(
        out.data<float>(), prob ? prob->data<const float>() : nullptr, n, seed, base, static_cast<float>(a),
        static_cast<float>(b));
  } else {
    uniform_kernel<double, kKind><<<grid_blocks(n, 2), kThreads>>>(
        out.data<double>(), prob ? prob->data<const double>() : nullptr, n, seed, base, a, b);
  }
  FG_CUDA_LAUNCH_CHECK(op);
}

}  // namespace

void philox_uniform(const Array& out, uint64_t seed, uint64_t base, bool affine, double lo, double w) {
  if (affine)
    launch_uniform<1>("uniform_", out, nullptr, seed, base, lo, w);
  else
    launch_uniform<0>("rand", out, nullptr, seed, base, 0.0, 0.0);
}

void philox_dropout(const Array& out, uint64_t seed, uint64_t base, double p, double keep) {
  launch_uniform<2>("dropout_mask", out, nullptr, seed, base, p, keep);
}

void philox_bernoulli(const Array& out, const Array& p, uint64_t seed, uint64_t base) {
  launch_uniform<3>("bernoulli", out, &p, seed, base, 0.0, 0.0);
}

bool probabilities_ok(const Array& p) {
  const char* op = "bernoulli";
  const int64_t n = p.numel();
  if (n == 0) return true;
  DeviceGuard g(p.device().index, op);
  reset_kernel_error(op);
  if (p.dtype == DType::Float32)
    prob_check_kernel<float><<<grid_for(n), kThreads>>>(p.data<const float>(), n);
  else
    prob_check_kernel<double><<<grid_for(n), kThreads>>>(p.data<const double>(), n);
  FG_CUDA_LAUNCH_CHECK(op);
  int v = 0;
  FG_CUDA_CHECK(op, cudaMemcpyFromSymbol(&v, g_kernel_error, sizeof(int)));
  if (v != 0) reset_kernel_error(op);
  return v == 0;
}

void philox_normal(const Array& out, uint64_t seed, uint64_t base, bool affine, double mean, double std) {
  const char* op = "normal";
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard g(out.device().index, op);
  if (out.dtype == DType::Float32)
    normal_kernel<float><<<grid_blocks(n, 4), kThreads>>>(out.data<float>(), n, seed, base, affine,
                                                           static_cast<float>(mean), static_cast<float>(std));
  else
    normal_kernel<double><<<grid_blocks(n, 2), kThreads>>>(out.data<double>(), n, seed, base, affine, mean, std);
  FG_CUDA_LAUNCH_CHECK(op);
}

void philox_randint(const Array& out, uint64_t seed, uint64_t base, int64_t low, uint64_t range) {
  const char* op = "randint";
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard g(out.device().index, op);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same<T, bool>::value)
      randint_kernel<T><<<grid_blocks(n, 2), kThreads>>>(out.data<T>(), n, seed, base, low, range);
  });
  FG_CUDA_LAUNCH_CHECK(op);
}

bool multinomial_ok(const Array& w, int64_t R, int64_t C, int64_t need) {
  const char* op = "multinomial";
  DeviceGuard g(w.device().index, op);
  reset_kernel_error(op);
  if (w.dtype == DType::Float32)
    multinomial_check_kernel<float><<<grid_for(R), kThreads>>>(w.data<const float>(), R, C, need);
  else
    multinomial_check_kernel<double><<<grid_for(R), kThreads>>>(w.data<const double>(), R, C, need);
  FG_CUDA_LAUNCH_CHECK(op);
  int v = 0;
  FG_CUDA_CHECK(op, cudaMemcpyFromSymbol(&v, g_kernel_error, sizeof(int)));
  if (v != 0) reset_kernel_error(op);
  return v == 0;
}

void philox_multinomial(const Array& out, const Array& w, int64_t R, int64_t C, int64_t S, bool replacement,
                        uint64_t seed, uint64_t base) {
  const char* op = "multinomial";
  const Device d = out.device();
  DeviceGuard g(d.index, op);
  Array keys = empty({R, C}, DType::Float64, d);  // cdf or race keys
  const bool f32 = w.dtype == DType::Float32;
  if (replacement) {
    Array last = empty({R}, DType::Int64, d);
    if (f32)
      cdf_kernel<float><<<grid_for(R), kThreads>>>(w.data<const float>(), keys.data<double>(), last.data<int64_t>(), R, C);
    else
      cdf_kernel<double><<<grid_for(R), kThreads>>>(w.data<const double>(), keys.data<double>(), last.data<int64_t>(), R,
                                                     C);
    FG_CUDA_LAUNCH_CHECK(op);
    inverse_cdf_kernel<<<grid_for(R * S), kThreads>>>(keys.data<const double>(), last.data<const int64_t>(),
                                                      out.data<int64_t>(), R, C, S, seed, base);
  } else {
    if (f32)
      race_keys_kernel<float><<<grid_for(R * C), kThreads>>>(w.data<const float>(), keys.data<double>(), R * C, seed, base);
    else
      race_keys_kernel<double><<<grid_for(R * C), kThreads>>>(w.data<const double>(), keys.data<double>(), R * C, seed,
                                                               base);
    FG_CUDA_LAUNCH_CHECK(op);
    race_rank_kernel<<<grid_for(R * C), kThreads>>>(keys.data<const double>(), out.data<int64_t>(), R, C, S);
  }
  FG_CUDA_LAUNCH_CHECK(op);
}

}  // namespace cuda
}  // namespace fg
