// cuda/index.h - indexing on CUDA devices.
//
// Phase 1: the rest of the index family (scatter_add, index_add,
// masked_select, nonzero, one_hot, advanced indexing) runs CUDA arrays through
// the CPU kernels: inputs are copied to the host, the CPU op runs, and the
// result is copied back (one host sync per call). Correct and deterministic
// (the CPU's accumulation order), but slow; native kernels come next
// (index_select and gather have kernels here; masked_fill and tril/triu run
// on the device through cuda::where, see index.cpp). The host helpers
// work in every build (to_device raises without CUDA).
#pragma once
#include <optional>
#include <utility>
#include <vector>

#include "array.h"

namespace fg {
namespace cuda {

inline Array to_host(const Array& a) { return to_device(a, Device{}); }

inline std::vector<std::optional<Array>> to_host(const std::vector<std::optional<Array>>& v) {
  std::vector<std::optional<Array>> r;
  r.reserve(v.size());
  for (const auto& x : v) r.push_back(x ? std::optional<Array>(to_host(*x)) : std::nullopt);
  return r;
}

inline bool any_cuda(const std::vector<std::optional<Array>>& v) {
  for (const auto& x : v)
    if (x && x->device().type == DeviceType::CUDA) return true;
  return false;
}

// A host round trip for an op without CUDA kernels yet (conv, pooling,
// upsampling): `fn(h)` calls the CPU op on h(x) for each operand x, where
// h checks x is on `d` (a clear device error otherwise) and copies it to the
// host; the result comes back to `d`. One host sync per call: correct and
// deterministic (the CPU's arithmetic), slow.
struct HostArgs {
  const char* op;
  Device d;
  Array operator()(const Array& x) const {
    check_same_device(op, d, x.device());
    return to_host(x);
  }
  std::optional<Array> operator()(const std::optional<Array>& x) const {
    if (!x) return std::nullopt;
    return (*this)(*x);
  }
};
inline Array back_to(const Array& r, const Device& d) { return to_device(r, d); }
inline std::pair<Array, Array> back_to(const std::pair<Array, Array>& r, const Device& d) {
  return {to_device(r.first, d), to_device(r.second, d)};
}
template <class Fn>
auto via_host(const char* op, const Device& d, Fn&& fn) {
  return back_to(fn(HostArgs{op, d}), d);
}

// Native kernels (index.cu).
// a.index_select(dim, index): a with ndim >= 1 on a CUDA device, dim already
// wrapped, index 0-d or 1-d int32/int64 on the same device; an index out of
// [0, a.shape[dim]) raises IndexError.
Array index_select(const Array& a, int dim, const Array& index);
// The gather loop of fg::gather (checks done there): o[i] = a_v[i] shifted by
// index[i] * dim_stride elements; o, index (int64) and a_v (a viewed at
// index's shape, stride 0 along dim) on one CUDA device. An index outside
// [0, bound) raises IndexError.
void gather(const Array& o, const Array& index, const Array& a_v, int64_t dim_stride, int64_t bound);

}  // namespace cuda
}  // namespace fg
