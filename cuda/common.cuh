// cuda/common.cuh - shared by every .cu file: the error check, the device
// guard, launch sizes, dtype load/store and the strided N-d indexer.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "array.h"
#include "iter.h"

namespace fg {
namespace cuda {

[[noreturn]] inline void raise_cuda(const char* op, cudaError_t err) {
  throw std::runtime_error(std::string(op) + ": CUDA error: " + cudaGetErrorString(err) + " (" +
                           cudaGetErrorName(err) + ")");
}

// Every CUDA runtime call goes through this.
#define FG_CUDA_CHECK(op, expr)                          \
  do {                                                   \
    cudaError_t fg_err_ = (expr);                        \
    if (fg_err_ != cudaSuccess) ::fg::cuda::raise_cuda(op, fg_err_); \
  } while (0)

// After a kernel launch: launch configuration errors surface here.
#define FG_CUDA_LAUNCH_CHECK(op) FG_CUDA_CHECK(op, cudaGetLastError())

// Makes `index` the current device for a scope, restoring the previous one.
class DeviceGuard {
 public:
  DeviceGuard(int index, const char* op) {
    FG_CUDA_CHECK(op, cudaGetDevice(&prev_));
    if (prev_ != index) FG_CUDA_CHECK(op, cudaSetDevice(index));
    cur_ = index;
  }
  ~DeviceGuard() {
    if (prev_ != cur_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0, cur_ = 0;
};

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65536) b = 65536;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b);
}

// Multiprocessor count of device `dev` (cached): persistent grid-stride
// kernels launch a few blocks per SM rather than one thread per element.
inline int sm_count(int dev) {
  static int cache[64] = {0};
  if (dev < 0 || dev >= 64) return 80;
  if (cache[dev] == 0) {
    int v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || v <= 0) {
      cudaGetLastError();  // clear it: a fallback size is fine
      v = 80;
    }
    cache[dev] = v;
  }
  return cache[dev];
}

// Blocks of kThreads for a persistent kernel over `work` items per thread
// slot: enough resident threads to fill every SM (2048 per SM), never more
// blocks than there is work for.
inline unsigned persistent_grid(int64_t work, int dev) {
  const int64_t want = (work + kThreads - 1) / kThreads;
  const int64_t cap = int64_t(sm_count(dev)) * (2048 / kThreads);
  return static_cast<unsigned>(want < 1 ? 1 : (want < cap ? want : cap));
}

// 16 bytes of T: one 128-bit load or store (float4 / double2 / ...).
template <class T>
struct alignas(16) Vec16 {
  static constexpr int kN = 16 / sizeof(T);
  T v[kN];
};

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- dtype conversions at run time (one instantiation per compute type) ----

template <class T>
__device__ __forceinline__ T load_as(const char* p, DType t) {
  switch (t) {
    case DType::Bool: return static_cast<T>(*reinterpret_cast<const bool*>(p));
    case DType::Int32: return static_cast<T>(*reinterpret_cast<const int32_t*>(p));
    case DType::Int64: return static_cast<T>(*reinterpret_cast<const int64_t*>(p));
    case DType::Float32: return static_cast<T>(*reinterpret_cast<const float*>(p));
    default: return static_cast<T>(*reinterpret_cast<const double*>(p));
  }
}

template <class T>
__device__ __forceinline__ void store_as(char* p, DType t, T v) {
  switch (t) {
    case DType::Bool: *reinterpret_cast<bool*>(p) = static_cast<bool>(v); break;
    case DType::Int32: *reinterpret_cast<int32_t*>(p) = static_cast<int32_t>(v); break;
    case DType::Int64: *reinterpret_cast<int64_t*>(p) = static_cast<int64_t>(v); break;
    case DType::Float32: *reinterpret_cast<float*>(p) = static_cast<float>(v); break;
    default: *reinterpret_cast<double*>(p) = static_cast<double>(v); break;
  }
}

// ---- the strided indexer ----------------------------------------------------

constexpr int kMaxDims = 12;  // after coalescing; more raises a clear error

// N operands of one (broadcast) shape, dims coalesced as NdLoop does it, byte
// strides per operand, passed to kernels by value.
template <int N>
struct Indexer {
  int nd = 1;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];
  char* base[N];
  DType dtype[N];

  // Byte offsets of linear element i for every operand.
  __device__ __forceinline__ void offsets(int64_t i, int64_t* off) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      int64_t idx = i, s = shape[d];
      if (d > 0) {
        idx = i % s;
        i /= s;
      }
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += idx * strides[k][d];
    }
  }
};

template <int N>
Indexer<N> make_indexer(const Shape& shape, const Array* const* ops, const char* op) {
  NdLoop<N> loop(shape, ops);
  if (loop.shape.size() > static_cast<size_t>(kMaxDims))
    throw std::invalid_argument(std::string(op) + ": more than " + std::to_string(kMaxDims) +
                                " non-mergeable dims are not supported on CUDA");
  Indexer<N> ix;
  ix.nd = static_cast<int>(loop.shape.size());
  for (int d = 0; d < ix.nd; ++d) ix.shape[d] = loop.shape[d];
  for (int k = 0; k < N; ++k) {
    ix.base[k] = loop.base[k];
    ix.dtype[k] = ops[k]->dtype;
    for (int d = 0; d < ix.nd; ++d) ix.strides[k][d] = loop.strides[k][d];
  }
  return ix;
}

// Set by kernels that find bad input they cannot raise on (integer division
// by zero, an index out of range). Device code is not relocatable (no -rdc),
// so each .cu file has its own flag and its own static helpers.
static __device__ int g_kernel_error;

static inline void reset_kernel_error(const char* op) {
  int zero = 0;
  FG_CUDA_CHECK(op, cudaMemcpyToSymbol(g_kernel_error, &zero, sizeof(int)));
}

// Reads the flag (a host sync) and raises with `msg` when a kernel set it.
static inline void check_kernel_error(const char* op, const std::string& msg, bool index_error = false) {
  int v = 0;
  FG_CUDA_CHECK(op, cudaMemcpyFromSymbol(&v, g_kernel_error, sizeof(int)));
  if (v == 0) return;
  reset_kernel_error(op);
  if (index_error) throw std::out_of_range(std::string(op) + ": " + msg);
  throw std::runtime_error(std::string(op) + ": " + msg);
}

}  // namespace cuda
}  // namespace fg
