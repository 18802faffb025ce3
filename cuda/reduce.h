// cuda/reduce.h - reductions, arg-extrema, scans and softmax on CUDA devices.
// csrc/cpu/reduce.cpp checks dtypes and calls these for CUDA arrays; the
// conventions (dims, keepdim, result dtypes, errors) are those of reduce.h.
//
// Deterministic: the launch plan (a block or a thread per output, long
// reductions split into a fixed number of chunks whose partials a second pass
// combines in a fixed tree) is a function of the shape and strides only, and
// no floating-point atomics are used, so a run repeats bit for bit.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "array.h"

namespace fg {
namespace cuda {

Array sum(const Array& a, const std::vector<int64_t>& dims, bool keepdim, std::optional<DType> dtype);
// op: "mean", "prod", "amax", "amin", "all", "any", "var" (p = correction),
// "logsumexp", "norm" (p = the order).
Array reduce(const char* op, const Array& a, const std::vector<int64_t>& dims, bool keepdim, double p = 0);
std::pair<Array, Array> max_min_dim(const Array& a, int64_t dim, bool keepdim, bool is_max, const char* op);
Array arg_ext(const Array& a, std::optional<int64_t> dim, bool keepdim, bool is_max, const char* op);
Array scan(const Array& a, int64_t dim, bool prod, const char* op);
Array softmax(const Array& a, int64_t dim, bool log, const char* op);
Array softmax_backward(const Array& grad, const Array& out, int64_t dim, bool log, const char* op);

}  // namespace cuda
}  // namespace fg
