// cuda/elementwise.h - the elementwise family on CUDA devices. The dtype and
// shape rules live in csrc/cpu/elementwise.cpp, which checks its arguments
// and then calls these with the compute dtype it chose; each op is named by
// its CPU name (an unknown name raises "not implemented for CUDA yet").
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <variant>

#include "array.h"

namespace fg {
namespace cuda {

// Parameters of the parametrised unary ops (leaky_relu, elu, softplus).
struct UnaryParams {
  double d0 = 0, d1 = 0;
};

// out = op(a) computed in `compute`; out dtype = compute, or bool for
// isnan/isinf/isfinite/logical_not.
Array unary(const char* op, const Array& a, DType compute, UnaryParams p = {});
#ifdef FASTGRAD_WITH_CUDA
// leaky_relu / elu / softplus with their parameter(s); checks a is float.
Array unary_param(const char* op, const Array& a, double p0, double p1 = 0);
// a ** exponent with the CPU's dtype rules (pow_scalar in elementwise.h).
Array pow_scalar(const Array& a, const std::variant<int64_t, double>& exponent);
#else
// Called directly (not through on_device), so a CPU-only build needs bodies.
inline Array unary_param(const char* op, const Array& a, double, double = 0) {
  return on_device(op, a.device(), [&]() -> Array { throw std::logic_error("unreachable"); });
}
inline Array pow_scalar(const Array& a, const std::variant<int64_t, double>&) {
  return on_device("pow", a.device(), [&]() -> Array { throw std::logic_error("unreachable"); });
}
#endif
// out = clamp(a) in a's dtype; out may be a (in place). Bounds as the CPU's:
// floats missing -> inf, ints must be integral and saturate.
void clamp_into(const char* op, const Array& out, const Array& a, std::optional<double> lo, std::optional<double> hi);

// out[shape] = op(a, b) computed in `compute` (a and b broadcast to shape);
// comparisons and logical ops give bool.
Array binary(const char* op, const Array& a, const Array& b, const Shape& shape, DType compute);
// a = op(a, b) in place (b already viewed at a's shape, no harmful overlap).
void inplace_binary(const char* op, const Array& a, const Array& b, DType compute);
Array where(const Array& cond, const Array& a, const Array& b, const Shape& shape);

// Array plumbing used by array.cpp.
void fill(const Array& a, double value);  // a: contiguous, fresh
void copy_cast(const Array& dst, const Array& src, const char* op);  // same shape, any strides/dtypes

}  // namespace cuda
}  // namespace fg
