// cuda/index.h - indexing on CUDA devices.
//
// Every op of the index family has device kernels here, called by
// cpu/index.cpp after its (device-independent) argument checks; masked_fill
// and tril/triu run on the device through cuda::where. Accumulating kernels
// never use float atomics: each output element receives its contributions in
// the CPU's order (index order), so results equal the CPU's bit for bit and
// do not change from run to run. Kernels that find a bad index skip it and
// report it (return false); index.cpp then raises the CPU's message from a
// host copy of the index. The host helpers below work in every build
// (to_device raises without CUDA); the round trip remains for ops outside
// this file (conv, pooling, upsampling).
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

// The CPU arrays of v moved to `d` when d is a CUDA device (v itself otherwise).
inline std::vector<std::optional<Array>> cpu_moved_to(const std::vector<std::optional<Array>>& v, const Device& d) {
  if (d.type != DeviceType::CUDA) return v;
  std::vector<std::optional<Array>> r;
  r.reserve(v.size());
  for (const auto& x : v)
    r.push_back(x && x->device().type == DeviceType::CPU ? std::optional<Array>(to_device(*x, d)) : x);
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

// The scatter_add loop of fg::scatter_add (checks done there): o (a fresh
// contiguous copy of self, >= 1-d), index (int64) and src of o's ndim, index
// no larger than src. One thread per line (index positions with `dim`
// dropped) adds the line's entries in index order, as the CPU does. Entries
// outside [0, o.shape[dim]) are skipped; returns false if there were any.
bool scatter_add(const Array& o, int dim, const Array& index, const Array& src);

// Advanced-indexing plan offsets (make_plan in index.cpp): offs (int64,
// contiguous) = (first ? 0 : offs) + idx * stride, idx (int32/int64, any
// strides, offs' shape) wrapped by size when `wrap`; an entry outside
// [0, size) adds 0 instead. Returns false if there was one.
bool accumulate_offsets(const Array& offs, const Array& idx, int64_t size, int64_t stride, bool first, bool wrap);
// out[i] = a_v[i] moved by offs_v[i] elements: the three of out's shape
// (offs_v int64), on one device.
void take(const Array& out, const Array& offs_v, const Array& a_v, const char* op);
// a[offs[b] + slice] (+)= values[b, slice] for the nb entries b of offs
// (int64, contiguous, element offsets from a.raw()). a_s / v_s: a and the
// values (a's dtype) viewed at the slice shape; v_b: the values viewed at the
// entries' shape (element offsets of entry b from values.raw()). Entries are
// grouped by destination with a stable sort; each group is applied in entry
// order (accumulate: summed in that order onto a; else the last one wins).
void put(const Array& a_s, const Array& v_s, const Array& offs, const Array& v_b, bool accumulate, const char* op);

// a_v[m_v] of one broadcast shape (the bool mask), 1-d, row-major order.
Array masked_select(const Array& a_v, const Array& m_v);
// Coordinates of a's non-zero elements, int64 (n, ndim), row-major order;
// a.numel() > 0.
Array nonzero(const Array& a);
// (min, max) of a non-empty int64 array.
std::pair<int64_t, int64_t> min_max(const Array& index);
// out (zeros, int64, index.shape + (C,), contiguous) gets 1 at each
// (position, index value); values already checked to be in [0, C).
void one_hot_fill(const Array& out, const Array& index, int64_t num_classes);

}  // namespace cuda
}  // namespace fg
