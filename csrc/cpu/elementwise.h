// elementwise.h - the elementwise op family: unary, parametrised unary,
// binary with NumPy broadcasting, where(), in-place updates and the fused
// first-order backward helpers the autograd layer calls.
//
// Every op accepts any strides (non-contiguous, broadcast stride 0, negative),
// zero-size and 0-d arrays, and returns a fresh contiguous array of the
// broadcast shape (in-place ops write into their first argument instead).
// Dtype rules follow PyTorch: tensor-tensor promotion with promote();
// float-valued math on bool/int inputs gives float32; comparisons, logical
// ops and isnan/isinf/isfinite give bool. Errors name the op: ValueError for
// shapes, TypeError (fg::TypeError) for dtypes, RuntimeError for values
// (integer division by zero, negative integer powers, unsafe in-place casts).
#pragma once
#include <cstdint>
#include <optional>
#include <variant>

#include "array.h"

namespace fg {

// ---- unary ------------------------------------------------------------------
// Args: a: any shape, any strides. Returns: a's shape, contiguous.
Array neg(const Array& a);         // bool -> TypeError; ints wrap (neg(INT_MIN) == INT_MIN)
Array abs(const Array& a);         // bool -> TypeError
Array sign(const Array& a);        // sign(nan) == 0 like torch; bool stays bool
Array square(const Array& a);      // bool -> int64 like torch
Array reciprocal(const Array& a);  // float-valued: bool/int -> float32
Array exp(const Array& a);
Array log(const Array& a);
Array log1p(const Array& a);
Array expm1(const Array& a);
Array sqrt(const Array& a);
Array rsqrt(const Array& a);
Array sin(const Array& a);
Array cos(const Array& a);
Array tan(const Array& a);
Array tanh(const Array& a);
Array sigmoid(const Array& a);
Array erf(const Array& a);
Array gelu(const Array& a);       // exact: x * Phi(x)
Array gelu_tanh(const Array& a);  // tanh approximation
Array silu(const Array& a);
Array relu(const Array& a);   // keeps int dtype; bool -> TypeError
Array floor(const Array& a);  // ints: copy; bool -> TypeError
Array ceil(const Array& a);
Array round(const Array& a);  // half to even
Array trunc(const Array& a);
Array isnan(const Array& a);  // -> bool
Array isinf(const Array& a);
Array isfinite(const Array& a);
Array logical_not(const Array& a);  // -> bool, truthiness of any dtype
Array bitwise_not(const Array& a);  // bool/int only

// ---- parametrised unary (float-only unless noted) -----------------------------
Array leaky_relu(const Array& a, double negative_slope);
Array elu(const Array& a, double alpha);
// torch semantics: x * beta > threshold -> x, else log1p(exp(x * beta)) / beta.
Array softplus(const Array& a, double beta, double threshold);
// Result dtype = a's dtype (int/float; bool -> TypeError). At least one bound.
// Integer tensors need integral bounds (saturated to the dtype's range).
// NaN in the input or in a bound propagates.
Array clamp(const Array& a, std::optional<double> min, std::optional<double> max);
// a ** exponent. An int64 exponent on a bool/int tensor keeps an integer
// result (bool -> int64); a negative one raises. A double exponent gives
// float32 for bool/int tensors.
Array pow_scalar(const Array& a, const std::variant<int64_t, double>& exponent);

// ---- binary (NumPy broadcasting; result dtype promote(a, b) unless noted) -----
Array add(const Array& a, const Array& b);  // bool + bool = logical or
Array sub(const Array& a, const Array& b);  // any bool operand -> TypeError
Array mul(const Array& a, const Array& b);
Array div(const Array& a, const Array& b);           // true division; bool/int -> float32
Array floor_divide(const Array& a, const Array& b);  // int / 0 -> RuntimeError
Array remainder(const Array& a, const Array& b);     // sign of the divisor; int % 0 -> RuntimeError
Array pow(const Array& a, const Array& b);           // ints: integer power (torch: x ** -n is 0, 1 or -1)
Array maximum(const Array& a, const Array& b);       // NaN propagates
Array minimum(const Array& a, const Array& b);
Array atan2(const Array& a, const Array& b);  // bool/int -> float32
// Comparisons, computed in the promoted dtype -> bool.
Array eq(const Array& a, const Array& b);
Array ne(const Array& a, const Array& b);
Array lt(const Array& a, const Array& b);
Array le(const Array& a, const Array& b);
Array gt(const Array& a, const Array& b);
Array ge(const Array& a, const Array& b);
// Truthiness of any dtype -> bool.
Array logical_and(const Array& a, const Array& b);
Array logical_or(const Array& a, const Array& b);
Array logical_xor(const Array& a, const Array& b);
// bool/int only.
Array bitwise_and(const Array& a, const Array& b);
Array bitwise_or(const Array& a, const Array& b);
Array bitwise_xor(const Array& a, const Array& b);

// ---- binary with a Python-number operand ----------------------------------------
// a op s, or s op a when `reversed`; op is '+', '-', '*' or '/'. For a float
// tensor a (float32/float64; other dtypes -> TypeError: their promotion with
// a Python number is the Python layer's general path). s is converted to a's
// dtype first, so the result is bit for bit that of the tensor-tensor op with
// a 0-d array of a's dtype; the point is the per-op overhead of `x * 0.5`:
// no 0-d tensor built in Python, no promotion logic there.
// Args: a: any shape, any strides, any device. Returns: a's shape, contiguous.
Array binary_scalar(const Array& a, double s, char op, bool reversed);

// ---- ternary ------------------------------------------------------------------
// cond must be bool; the three shapes broadcast together; dtype promote(a, b).
Array where(const Array& cond, const Array& a, const Array& b);

// ---- in place -----------------------------------------------------------------
// a op= b: b broadcasts to a's shape (a's shape does not change); computed in
// promote(a, b) and cast back to a's dtype, which must not lose the category
// (float into int, int into bool -> RuntimeError, like torch). `a` may be any
// view except one with broadcast (stride-0) dims; b may overlap a's memory.
// Each bumps a's version counter.
void add_(const Array& a, const Array& b);
void sub_(const Array& a, const Array& b);
void mul_(const Array& a, const Array& b);
void div_(const Array& a, const Array& b);  // a must be float
void clamp_(const Array& a, std::optional<double> min, std::optional<double> max);

// ---- fused first-order backward helpers (float dtypes; shapes broadcast) -------
Array relu_backward(const Array& grad, const Array& out);     // grad where out > 0 else 0
Array sigmoid_backward(const Array& grad, const Array& out);  // grad * out * (1 - out)
Array tanh_backward(const Array& grad, const Array& out);     // grad * (1 - out^2)
Array gelu_backward(const Array& grad, const Array& x);       // grad * (Phi(x) + x phi(x))
Array gelu_tanh_backward(const Array& grad, const Array& x);  // derivative of gelu_tanh, fused
Array silu_backward(const Array& grad, const Array& x);       // grad * s * (1 + x (1 - s))

// What the elementwise kernels use at run time (reported by fg.config()).
const char* elementwise_simd_level();

}  // namespace fg
