// vecmath_scalar.h - the scalar (libm) form of the vecmath activations: the
// per-element definition the elementwise ops run under capability "scalar"
// and the fallback of vecmath.h's span functions.
//
// Numerically stable forms: sigmoid(z) from e = exp(-|z|) (no overflow, so
// x sigmoid(x) keeps the tiny normal results of x << 0), (1 + tanh u) / 2 as
// sigmoid(2u) (no cancellation), s (1 - s) as e / (1 + e)^2. float inputs
// are evaluated in double, where rounding an argument such as -x / sqrt 2 or
// -x^2 / 2 would cost ~x^2 ulp in the tails. Include only from translation
// units built without ISA flags (these are inline functions calling libm).
#pragma once
#include <cmath>
#include <type_traits>

namespace fg {
namespace vecmath {
namespace scalar {

constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kGeluC = 0.044715;

template <class T> using Wide = std::conditional_t<std::is_same_v<T, float>, double, T>;

// x * sigmoid(z), in Wide<T>.
template <class A> inline A times_sigmoid_w(A x, A z) {
  const A e = std::exp(-std::abs(z));
  return z >= A(0) ? x / (A(1) + e) : x * e / (A(1) + e);
}
// sigmoid(z) (1 - sigmoid(z)) = e / (1 + e)^2
template <class A> inline A sigmoid_slope_w(A z) {
  const A e = std::exp(-std::abs(z)), d = A(1) + e;
  return e / (d * d);
}

template <class T> inline T sigmoid(T x) { using A = Wide<T>; return T(times_sigmoid_w(A(1), A(x))); }
template <class T> inline T silu(T x) { using A = Wide<T>; return T(times_sigmoid_w(A(x), A(x))); }
template <class T> inline T gelu(T x) {
  using A = Wide<T>;
  return T(A(0.5) * A(x) * std::erfc(-A(x) * A(kSqrt1_2)));
}
// z = 2u = 2 sqrt(2/pi) (x + 0.044715 x^3); gelu_tanh = x sigmoid(z)
template <class A> inline A gelu_tanh_z(A x) { return A(2 * kSqrt2OverPi) * (x + A(kGeluC) * x * x * x); }
template <class T> inline T gelu_tanh(T x) {
  using A = Wide<T>;
  return T(times_sigmoid_w(A(x), gelu_tanh_z(A(x))));
}

// Derivatives.
template <class T> inline T silu_grad(T x) {  // s + x s (1 - s)
  using A = Wide<T>;
  return T(times_sigmoid_w(A(1), A(x)) + A(x) * sigmoid_slope_w(A(x)));
}
template <class T> inline T gelu_grad(T x) {  // Phi(x) + x phi(x)
  using A = Wide<T>;
  const A v = A(x);
  return T(A(0.5) * std::erfc(-v * A(kSqrt1_2)) + v * A(kInvSqrt2Pi) * std::exp(A(-0.5) * v * v));
}
template <class T> inline T gelu_tanh_grad(T x) {  // s(z) + x z' s (1 - s)
  using A = Wide<T>;
  const A v = A(x), z = gelu_tanh_z(v), dz = A(2 * kSqrt2OverPi) * (A(1) + A(3 * kGeluC) * v * v);
  return T(times_sigmoid_w(A(1), z) + v * dz * sigmoid_slope_w(z));
}

}  // namespace scalar
}  // namespace vecmath
}  // namespace fg
