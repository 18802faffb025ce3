// vecmath_extra.h - more vectorised span kernels beside vecmath.h: log1p,
// expm1, erf, sin, cos, tan and the parametrised activations softplus, elu
// and leaky_relu.
//
// Kept in their own translation units (vecmath_extra_avx2.cpp /
// vecmath_extra_avx512.cpp, math in vecmath_extra_impl.h) on top of the
// building blocks of vecmath_impl.h (exp, log, the ln2 range reduction), so
// vecmath's own table stays as it is. The build in force follows the same
// process-wide CPU capability as vecmath.h (vecmath::isa()); under "scalar"
// callers keep their libm loop.
//
// Accuracy (tests/test_vecmath_extra.py, against float64 / long double
// references): log1p, expm1 within 2 ulp; softplus, elu within a few ulp
// (absolute error below the smallest normal number); leaky_relu exact;
// erf, sin, cos within 2.5 ulp, tan within 4 ulp (measured max: float32
// erf 1.08, sin 1.52, cos 1.55, tan 3.35; float64 erf 2.0 (just above its
// split at 0.7), sin 1.54, cos 1.52, tan 3.10;
// sin / cos / tan: lanes with |x| > 1e5 are computed by libm).
// Special values follow libm / PyTorch: log1p(-1) = -inf, log1p(x < -1) =
// nan, log1p(inf) = inf, expm1(-inf) = -1, expm1(inf) = inf, -0 keeps its
// sign, NaN in -> NaN out.
//
// Every span kernel reads x[0, n) and writes y[0, n); y may equal x. The
// tail runs through the same vector code, so an element's result does not
// depend on where it sits.
#pragma once
#include <cstdint>

namespace fg {
namespace vecmath {

// y = f(x; p0, p1):
//   kLog1p, kExpm1      no parameters
//   kSoftplus           p0 = beta, p1 = threshold: x where beta x > threshold,
//                       else log1p(exp(beta x)) / beta (as PyTorch)
//   kElu                p0 = alpha: x > 0 ? x : alpha expm1(x)
//   kLeakyRelu          p0 = negative slope: x > 0 ? x : x p0
//   kErf, kSin, kCos, kTan  no parameters
enum Extra : int { kLog1p, kExpm1, kSoftplus, kElu, kLeakyRelu, kErf, kSin, kCos, kTan, kNumExtra };

template <class T>
using ParamFn = void (*)(const T* x, T* y, int64_t n, T p0, T p1);

template <class T>
struct ExtraKernels {
  const char* isa;  // "avx512" or "avx2"
  ParamFn<T> fn[kNumExtra];
};

// The vector kernels for the capability in force, or nullptr under "scalar"
// (or on a CPU without AVX2 + FMA). Cheap enough to call once per op.
const ExtraKernels<float>* extra_kernels_f32();
const ExtraKernels<double>* extra_kernels_f64();

// Named span kernels (the vector build in force, else a libm loop).
void log1p_f32(const float* x, float* y, int64_t n);
void log1p_f64(const double* x, double* y, int64_t n);
void expm1_f32(const float* x, float* y, int64_t n);
void expm1_f64(const double* x, double* y, int64_t n);

}  // namespace vecmath

namespace vecmath_detail {
// Defined in vecmath_extra_avx512.cpp / vecmath_extra_avx2.cpp; call only
// after the CPU was checked for the instruction set.
const vecmath::ExtraKernels<float>& extra_kernels_avx512_f32();
const vecmath::ExtraKernels<double>& extra_kernels_avx512_f64();
const vecmath::ExtraKernels<float>& extra_kernels_avx2_f32();
const vecmath::ExtraKernels<double>& extra_kernels_avx2_f64();
}  // namespace vecmath_detail
}  // namespace fg
