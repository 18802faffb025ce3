// cuda/index.h - indexing on CUDA devices.
//
// Phase 1: the index family (gather/scatter, index_select/add, masks,
// nonzero, one_hot, tril/triu, advanced indexing) runs CUDA arrays through
// the CPU kernels: inputs are copied to the host, the CPU op runs, and the
// result is copied back (one host sync per call). Correct and deterministic
// (the CPU's accumulation order), but slow; native kernels come next. These
// helpers work in every build (to_device raises without CUDA).
#pragma once
#include <optional>
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

}  // namespace cuda
}  // namespace fg
