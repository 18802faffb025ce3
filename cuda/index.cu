// index.cu - native CUDA index kernels (see index.h).
//
// Determinism without float atomics: scatter_add gives each line to one
// thread (a line owns its output column, and adds its entries in index
// order); put() groups entries by destination with a stable radix sort and
// gives each (group, slice element) to one thread, which applies the group in
// entry order. masked_select / nonzero are a flag pass, an inclusive prefix
// sum and a compaction pass (one host sync to size the output).
#include "cuda/index.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <climits>
#include <string>
#include <type_traits>

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

template <class T>
__device__ __forceinline__ void add_to(T& dst, T v) {
  if constexpr (std::is_same<T, bool>::value) {
    dst = dst || v;  // torch: addition on bool is logical or
  } else if constexpr (std::is_integral<T>::value) {
    using U = typename std::make_unsigned<T>::type;  // wraps like the CPU
    dst = static_cast<T>(static_cast<U>(dst) + static_cast<U>(v));
  } else {
    dst = dst + v;
  }
}

#define FG_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// One thread per line: K entries at byte strides is / ss along dim.
template <class T>
__global__ void scatter_add_kernel(Indexer<3> ix, int64_t lines, int64_t K, int64_t os, int64_t is, int64_t ss,
                                   int64_t bound) {
  FG_GRID_STRIDE(L, lines) {
    int64_t off[3];
    ix.offsets(L, off);
    char* o = ix.base[0] + off[0];
    const char* ip = ix.base[1] + off[1];
    const char* sp = ix.base[2] + off[2];
    for (int64_t k = 0; k < K; ++k) {
      const int64_t j = *reinterpret_cast<const int64_t*>(ip + k * is);
      if (j < 0 || j >= bound) {
        g_kernel_error = 1;
        continue;
      }
      add_to(*reinterpret_cast<T*>(o + j * os), *reinterpret_cast<const T*>(sp + k * ss));
    }
  }
}

// scatter_add entries (row-major over index's shape): the destination as an
// element offset from o.raw() and the source as a byte offset from src.raw().
// Operands: o viewed at index's shape with stride 0 along dim, index, src.
__global__ void scatter_entries_kernel(Indexer<3> ix, int64_t* keys, int64_t* voff, int64_t n, int64_t o_dim_stride,
                                       int64_t bound, int64_t isz) {
  FG_GRID_STRIDE(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    int64_t j = *reinterpret_cast<const int64_t*>(ix.base[1] + off[1]);
    if (j < 0 || j >= bound) {
      g_kernel_error = 1;
      j = 0;
    }
    keys[i] = off[0] / isz + j * o_dim_stride;
    voff[i] = off[2];
  }
}

__global__ void offsets_kernel(Indexer<2> ix, int64_t n, int64_t size, int64_t stride, bool first, bool wrap) {
  FG_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    int64_t v = load_as<int64_t>(ix.base[1] + off[1], ix.dtype[1]);
    if (wrap && v < 0) v += size;
    if (static_cast<uint64_t>(v) >= static_cast<uint64_t>(size)) {
      g_kernel_error = 1;
      v = 0;
    }
    int64_t* o = reinterpret_cast<int64_t*>(ix.base[0] + off[0]);
    *o = first ? v * stride : *o + v * stride;
  }
}

template <class T>
__global__ void take_kernel(Indexer<3> ix, int64_t n) {
  FG_GRID_STRIDE(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    const int64_t e = *reinterpret_cast<const int64_t*>(ix.base[1] + off[1]);
    *reinterpret_cast<T*>(ix.base[0] + off[0]) =
        *reinterpret_cast<const T*>(ix.base[2] + off[2] + e * static_cast<int64_t>(sizeof(T)));
  }
}

__global__ void iota_kernel(int64_t* p, int64_t n) {
  FG_GRID_STRIDE(i, n) p[i] = i;
}

// Byte offsets of the entries of v_b (one operand, row-major).
__global__ void entry_offsets_kernel(Indexer<1> ix, int64_t* out, int64_t n) {
  FG_GRID_STRIDE(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    out[i] = off[0];
  }
}

// Thread (i, s): sorted entry i, slice element s (s fastest). Only the first
// entry of a group works; it applies the whole group in entry order.
template <class T>
__global__ void put_kernel(Indexer<2> ix, const int64_t* keys, const int64_t* order, const int64_t* voff, int64_t nb,
                           int64_t ns, bool accumulate) {
  FG_GRID_STRIDE(t, nb * ns) {
    const int64_t i = t / ns, s = t % ns;
    const int64_t key = keys[i];
    if (i > 0 && keys[i - 1] == key) continue;
    int64_t e = i + 1;
    while (e < nb && keys[e] == key) ++e;
    int64_t off[2];
    ix.offsets(s, off);
    T* dst = reinterpret_cast<T*>(ix.base[0] + off[0] + key * static_cast<int64_t>(sizeof(T)));
    const char* vbase = ix.base[1] + off[1];
    if (accumulate) {
      T acc = *dst;
      for (int64_t j = i; j < e; ++j) add_to(acc, *reinterpret_cast<const T*>(vbase + voff[order[j]]));
      *dst = acc;
    } else {
      *dst = *reinterpret_cast<const T*>(vbase + voff[order[e - 1]]);
    }
  }
}

// flags[i] = element i (row-major) of the operand is true / non-zero.
__global__ void flag_kernel(Indexer<1> ix, int64_t* flags, int64_t n) {
  FG_GRID_STRIDE(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    flags[i] = load_as<double>(ix.base[0] + off[0], ix.dtype[0]) != 0.0;
  }
}

// pos: inclusive prefix sum of the flags; element i goes to pos[i] - 1.
template <class T>
__global__ void masked_select_kernel(Indexer<2> ix, const int64_t* pos, T* out, int64_t n) {
  FG_GRID_STRIDE(i, n) {
    const int64_t before = i > 0 ? pos[i - 1] : 0;
    if (pos[i] == before) continue;
    int64_t off[2];
    ix.offsets(i, off);
    out[before] = *reinterpret_cast<const T*>(ix.base[0] + off[0]);
  }
}

constexpr int kMaxNonzeroDims = 64;
struct DimList {
  int nd;
  int64_t s[kMaxNonzeroDims];
};

__global__ void nonzero_kernel(const int64_t* pos, DimList dims, int64_t* out, int64_t n) {
  FG_GRID_STRIDE(i, n) {
    const int64_t before = i > 0 ? pos[i - 1] : 0;
    if (pos[i] == before) continue;
    int64_t rem = i;
    int64_t* row = out + before * dims.nd;
    for (int d = dims.nd - 1; d >= 0; --d) {
      row[d] = rem % dims.s[d];
      rem /= dims.s[d];
    }
  }
}

__global__ void min_max_kernel(Indexer<1> ix, int64_t n, long long* mm) {
  FG_GRID_STRIDE(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    const long long v = *reinterpret_cast<const int64_t*>(ix.base[0] + off[0]);
    atomicMin(mm, v);  // integer min / max: the result does not depend on the order
    atomicMax(mm + 1, v);
  }
}

__global__ void one_hot_kernel(Indexer<1> ix, int64_t* out, int64_t n, int64_t classes) {
  FG_GRID_STRIDE(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    out[i * classes + *reinterpret_cast<const int64_t*>(ix.base[0] + off[0])] = 1;
  }
}

// Reads and clears the kernel error flag: true when no kernel set it.
bool flag_clear(const char* op) {
  int v = 0;
  FG_CUDA_CHECK(op, cudaMemcpyFromSymbol(&v, g_kernel_error, sizeof(int)));
  if (v != 0) reset_kernel_error(op);
  return v == 0;
}

// Scratch device memory of at least `bytes` (an int64 array keeps it alive).
Array scratch(size_t bytes, const Device& d) {
  return empty({static_cast<int64_t>((bytes + 7) / 8) + 1}, DType::Int64, d);
}

// Inclusive prefix sum of n int64 flags into pos; returns the total (one
// host sync).
int64_t inclusive_sum(const Array& flags, const Array& pos, int64_t n, const char* op) {
  if (n > INT_MAX) throw std::invalid_argument(std::string(op) + ": more than 2^31 - 1 elements on CUDA");
  size_t bytes = 0;
  FG_CUDA_CHECK(op, cub::DeviceScan::InclusiveSum(nullptr, bytes, flags.data<const int64_t>(), pos.data<int64_t>(),
                                                  static_cast<int>(n)));
  Array tmp = scratch(bytes, flags.device());
  FG_CUDA_CHECK(op, cub::DeviceScan::InclusiveSum(tmp.raw(), bytes, flags.data<const int64_t>(),
                                                  pos.data<int64_t>(), static_cast<int>(n)));
  int64_t total = 0;
  FG_CUDA_CHECK(op, cudaMemcpy(&total, pos.data<int64_t>() + (n - 1), sizeof(int64_t), cudaMemcpyDeviceToHost));
  return total;
}

// Flags of an operand of `shape` (a view already broadcast to it).
Array flags_of(const Array& x, const Shape& shape, int64_t n, const char* op) {
  Array flags = empty({n}, DType::Int64, x.device());
  const Array* ops[1] = {&x};
  Indexer<1> ix = make_indexer<1>(shape, ops, op);
  flag_kernel<<<grid_for(n), kThreads>>>(ix, flags.data<int64_t>(), n);
  FG_CUDA_LAUNCH_CHECK(op);
  return flags;
}

void sorted_put(const Array& a_s, const Array& v_s, const Array& offs, const Array& voff, int64_t nb, bool accumulate,
                const char* op);

}  // namespace

bool scatter_add(const Array& o, int dim, const Array& index, const Array& src) {
  const char* op = "scatter_add";
  Shape lines = index.shape;
  const int64_t K = lines[dim];
  lines[dim] = 1;
  const int64_t nl = shape_numel(lines);
  if (nl == 0 || K == 0) return true;
  if (nl < 2048 && K > 64) {
    // Few long lines (a 1-d scatter_add over a big index): a thread per line
    // would leave the GPU idle, so the entries go through put()'s stable
    // sort by destination instead. Row-major entry order lists a
    // destination's entries in index order (they all come from one line),
    // so each output element still sums them in the CPU's order.
    DeviceGuard g(o.device().index, op);
    const int64_t nb = index.numel();
    Strides o_st = o.strides;
    o_st[dim] = 0;  // the line's base in o; the index supplies the position along dim
    const Array o_v = as_strided(o, index.shape, o_st, o.offset);
    const Array* ops[3] = {&o_v, &index, &src};
    Indexer<3> ix = make_indexer<3>(index.shape, ops, op);
    Array keys = empty({nb}, DType::Int64, o.device()), voff = empty({nb}, DType::Int64, o.device());
    reset_kernel_error(op);
    scatter_entries_kernel<<<grid_for(nb), kThreads>>>(ix, keys.data<int64_t>(), voff.data<int64_t>(), nb,
                                                       o.strides[dim], o.shape[dim], static_cast<int64_t>(o.itemsize()));
    FG_CUDA_LAUNCH_CHECK(op);
    if (!flag_clear(op)) return false;  // the caller raises; its output is dropped
    const Array o_0 = as_strided(o, {}, {}, o.offset), s_0 = as_strided(src, {}, {}, src.offset);
    sorted_put(o_0, s_0, keys, voff, nb, true, op);
    return true;
  }
  const Array o_l = as_strided(o, lines, o.strides, o.offset), i_l = as_strided(index, lines, index.strides, index.offset),
              s_l = as_strided(src, lines, src.strides, src.offset);
  const Array* ops[3] = {&o_l, &i_l, &s_l};
  Indexer<3> ix = make_indexer<3>(lines, ops, op);
  DeviceGuard g(o.device().index, op);
  reset_kernel_error(op);
  dispatch(o.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t isz = static_cast<int64_t>(sizeof(T));
    scatter_add_kernel<T><<<grid_for(nl), kThreads>>>(ix, nl, K, o.strides[dim] * isz, index.strides[dim] * 8,
                                                      src.strides[dim] * isz, o.shape[dim]);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  return flag_clear(op);
}

bool accumulate_offsets(const Array& offs, const Array& idx, int64_t size, int64_t stride, bool first, bool wrap) {
  const char* op = "index";
  const int64_t n = offs.numel();
  if (n == 0) return true;
  const Array* ops[2] = {&offs, &idx};
  Indexer<2> ix = make_indexer<2>(offs.shape, ops, op);
  DeviceGuard g(offs.device().index, op);
  reset_kernel_error(op);
  offsets_kernel<<<grid_for(n), kThreads>>>(ix, n, size, stride, first, wrap);
  FG_CUDA_LAUNCH_CHECK(op);
  return flag_clear(op);
}

void take(const Array& out, const Array& offs_v, const Array& a_v, const char* op) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const Array* ops[3] = {&out, &offs_v, &a_v};
  Indexer<3> ix = make_indexer<3>(out.shape, ops, op);
  DeviceGuard g(out.device().index, op);
  dispatch(out.dtype, [&](auto tag) { take_kernel<decltype(tag)><<<grid_for(n), kThreads>>>(ix, n); });
  FG_CUDA_LAUNCH_CHECK(op);
}

namespace {

// put()'s grouping and writes, given each entry's destination (offs: element
// offsets from a_s.raw()) and value (voff: byte offsets from v_s.raw()), nb
// entries in index order; the current device is a_s's.
void sorted_put(const Array& a_s, const Array& v_s, const Array& offs, const Array& voff, int64_t nb, bool accumulate,
                const char* op) {
  const int64_t ns = a_s.numel();
  if (nb > INT_MAX || ns > INT64_MAX / nb)
    throw std::invalid_argument(std::string(op) + ": too many index entries for CUDA (" + std::to_string(nb) + ")");
  const Device d = a_s.device();
  // Entries sorted by destination, stably (radix sort keeps equal keys in
  // input order, so a group lists its entries in index order).
  Array ids = empty({nb}, DType::Int64, d), keys = empty({nb}, DType::Int64, d), order = empty({nb}, DType::Int64, d);
  iota_kernel<<<grid_for(nb), kThreads>>>(ids.data<int64_t>(), nb);
  FG_CUDA_LAUNCH_CHECK(op);
  size_t bytes = 0;
  const int n = static_cast<int>(nb);
  FG_CUDA_CHECK(op, cub::DeviceRadixSort::SortPairs(nullptr, bytes, offs.data<const int64_t>(), keys.data<int64_t>(),
                                                    ids.data<const int64_t>(), order.data<int64_t>(), n));
  Array tmp = scratch(bytes, d);
  FG_CUDA_CHECK(op, cub::DeviceRadixSort::SortPairs(tmp.raw(), bytes, offs.data<const int64_t>(),
                                                    keys.data<int64_t>(), ids.data<const int64_t>(),
                                                    order.data<int64_t>(), n));
  const Array* ops[2] = {&a_s, &v_s};
  Indexer<2> ix = make_indexer<2>(a_s.shape, ops, op);
  dispatch(a_s.dtype, [&](auto tag) {
    put_kernel<decltype(tag)><<<grid_for(nb * ns), kThreads>>>(ix, keys.data<const int64_t>(),
                                                               order.data<const int64_t>(),
                                                               voff.data<const int64_t>(), nb, ns, accumulate);
  });
  FG_CUDA_LAUNCH_CHECK(op);
}

}  // namespace

void put(const Array& a_s, const Array& v_s, const Array& offs, const Array& v_b, bool accumulate, const char* op) {
  const int64_t nb = offs.numel(), ns = a_s.numel();
  if (nb == 0 || ns == 0) return;
  DeviceGuard g(a_s.device().index, op);
  // Byte offset of each entry's values.
  Array voff = empty({nb}, DType::Int64, a_s.device());
  const Array* ops[1] = {&v_b};
  Indexer<1> ix = make_indexer<1>(v_b.shape, ops, op);
  entry_offsets_kernel<<<grid_for(nb), kThreads>>>(ix, voff.data<int64_t>(), nb);
  FG_CUDA_LAUNCH_CHECK(op);
  sorted_put(a_s, v_s, offs, voff, nb, accumulate, op);
}

Array masked_select(const Array& a_v, const Array& m_v) {
  const char* op = "masked_select";
  const Shape& shape = a_v.shape;
  const int64_t n = shape_numel(shape, op);
  if (n == 0) return empty({0}, a_v.dtype, a_v.device());
  DeviceGuard g(a_v.device().index, op);
  Array flags = flags_of(m_v, shape, n, op);
  Array pos = empty({n}, DType::Int64, a_v.device());
  const int64_t total = inclusive_sum(flags, pos, n, op);
  Array out = empty({total}, a_v.dtype, a_v.device());
  if (total == 0) return out;
  const Array* ops[2] = {&a_v, &m_v};
  Indexer<2> ix = make_indexer<2>(shape, ops, op);
  dispatch(a_v.dtype, [&](auto tag) {
    using T = decltype(tag);
    masked_select_kernel<T><<<grid_for(n), kThreads>>>(ix, pos.data<const int64_t>(), out.data<T>(), n);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  return out;
}

Array nonzero(const Array& a) {
  const char* op = "nonzero";
  const int nd = a.ndim();
  if (nd > kMaxNonzeroDims)
    throw std::invalid_argument(std::string(op) + ": more than " + std::to_string(kMaxNonzeroDims) +
                                " dims are not supported on CUDA");
  const int64_t n = a.numel();
  DeviceGuard g(a.device().index, op);
  Array flags = flags_of(a, a.shape, n, op);
  Array pos = empty({n}, DType::Int64, a.device());
  const int64_t total = inclusive_sum(flags, pos, n, op);
  Array out = empty({total, nd}, DType::Int64, a.device());
  if (out.numel() == 0) return out;  // no hits, or a 0-d input (no coordinates)
  DimList dims{};
  dims.nd = nd;
  for (int d = 0; d < nd; ++d) dims.s[d] = a.shape[d];
  nonzero_kernel<<<grid_for(n), kThreads>>>(pos.data<const int64_t>(), dims, out.data<int64_t>(), n);
  FG_CUDA_LAUNCH_CHECK(op);
  return out;
}

std::pair<int64_t, int64_t> min_max(const Array& index) {
  const char* op = "one_hot";
  const int64_t n = index.numel();
  long long mm[2] = {LLONG_MAX, LLONG_MIN};
  DeviceGuard g(index.device().index, op);
  Array dev = empty({2}, DType::Int64, index.device());
  FG_CUDA_CHECK(op, cudaMemcpy(dev.raw(), mm, sizeof(mm), cudaMemcpyHostToDevice));
  const Array* ops[1] = {&index};
  Indexer<1> ix = make_indexer<1>(index.shape, ops, op);
  min_max_kernel<<<grid_for(n), kThreads>>>(ix, n, reinterpret_cast<long long*>(dev.raw()));
  FG_CUDA_LAUNCH_CHECK(op);
  FG_CUDA_CHECK(op, cudaMemcpy(mm, dev.raw(), sizeof(mm), cudaMemcpyDeviceToHost));
  return {static_cast<int64_t>(mm[0]), static_cast<int64_t>(mm[1])};
}

void one_hot_fill(const Array& out, const Array& index, int64_t num_classes) {
  const char* op = "one_hot";
  const int64_t n = index.numel();
  if (n == 0 || num_classes == 0) return;
  DeviceGuard g(index.device().index, op);
  const Array* ops[1] = {&index};
  Indexer<1> ix = make_indexer<1>(index.shape, ops, op);
  one_hot_kernel<<<grid_for(n), kThreads>>>(ix, out.data<int64_t>(), n, num_classes);
  FG_CUDA_LAUNCH_CHECK(op);
}

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
