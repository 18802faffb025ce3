// index.cu - native CUDA index kernels (see index.h; the rest of the index
// family still runs through the host in phase 1).
#include "cuda/index.h"

#include <string>

#include "cuda/common.cuh"

namespace fg {
namespace cuda {
namespace {

// out (outer, n, inner) = a (outer, size, inner)[:, idx, :], all contiguous.
template <class T>
__global__ void index_select_kernel(const T* a, const int64_t* idx, T* out, int64_t total, int64_t n, int64_t size,
                                    int64_t inner) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % inner, j = (i / inner) % n, o = i / (inner * n);
    const int64_t v = idx[j];
    if (v < 0 || v >= size) {
      g_kernel_error = 1;
      out[i] = T(0);
      continue;
    }
    out[i] = a[(o * size + v) * inner + k];
  }
}

template <class T>
__global__ void gather_kernel(Indexer<3> ix, int64_t total, int64_t ds, int64_t bound) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    ix.offsets(i, off);
    const int64_t j = *reinterpret_cast<const int64_t*>(ix.base[1] + off[1]);
    T* dst = reinterpret_cast<T*>(ix.base[0] + off[0]);
    if (j < 0 || j >= bound) {
      g_kernel_error = 1;
      *dst = T(0);
      continue;
    }
    *dst = *reinterpret_cast<const T*>(ix.base[2] + off[2] + j * ds);
  }
}

}  // namespace

void gather(const Array& o, const Array& index, const Array& a_v, int64_t dim_stride, int64_t bound) {
  const char* op = "gather";
  const int64_t total = o.numel();
  if (total == 0) return;
  DeviceGuard g(o.device().index, op);
  const Array* ops[3] = {&o, &index, &a_v};
  Indexer<3> ix = make_indexer<3>(index.shape, ops, op);
  reset_kernel_error(op);
  dispatch(o.dtype, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<grid_for(total), kThreads>>>(ix, total, dim_stride * static_cast<int64_t>(sizeof(T)), bound);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  check_kernel_error(op, "index out of bounds (dimension size " + std::to_string(bound) + ")", true);
}

Array index_select(const Array& a_in, int dim, const Array& index_in) {
  const char* op = "index_select";
  const Array idx = contiguous(index_in.dtype == DType::Int64 ? index_in : astype(index_in, DType::Int64));
  const int64_t n = idx.numel();
  Shape os = a_in.shape;
  os[dim] = n;
  Array out = empty(os, a_in.dtype, a_in.device());
  if (out.numel() == 0) return out;
  const Array a = contiguous(a_in);
  int64_t inner = 1;
  for (int d = dim + 1; d < a.ndim(); ++d) inner *= a.shape[d];
  const int64_t size = a.shape[dim], total = out.numel();
  DeviceGuard g(a.device().index, op);
  reset_kernel_error(op);
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<T><<<grid_for(total), kThreads>>>(a.data<T>(), idx.data<int64_t>(), out.data<T>(), total, n,
                                                          size, inner);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  check_kernel_error(op, "index out of range in self (dim " + std::to_string(dim) + " has size " +
                             std::to_string(size) + ")", true);
  return out;
}

}  // namespace cuda
}  // namespace fg
