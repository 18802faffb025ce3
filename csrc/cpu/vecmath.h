// vecmath.h - vectorised transcendental and activation kernels over
// contiguous spans: exp, log, tanh, sigmoid, silu, gelu (erf and tanh forms),
// relu and the fused first-order backward of the activations.
//
// The math is written once (vecmath_impl.h) over a vector type and compiled
// for AVX-512 (vecmath_avx512.cpp) and AVX2 + FMA (vecmath_avx2.cpp); which
// build runs follows the process-wide CPU capability of gemm.cpp
// (FASTGRAD_CPU_CAPABILITY / _C.set_cpu_capability). Under "scalar" the
// named span functions below run plain libm loops.
//
// Accuracy (tested in tests/test_vecmath.py against float64 / long double
// references): exp, log, tanh within 2 ulp (measured max: float32 exp 1.06,
// tanh 1.58 (one expm1 path per lane since round 3), both pure float32
// vector code; float64 exp 0.98, tanh 2.54);
// sigmoid, silu, gelu forms within a few ulp down to the smallest normal
// number (absolute error below it). exp's results below the normal range are
// gradual-underflow subnormals (within 1 unit of the smallest subnormal), 0
// below the last one; not flushed.
//
// Large outputs (>= 8 MB per parallel_for chunk) of relu and the cheap backward
// kernels are written with non-temporal stores (see vecmath_impl.h).
// Special values follow libm: exp(+-inf) = inf / 0, log(0) = -inf,
// log(x < 0) = nan, tanh(+-inf) = +-1, NaN in -> NaN out, -0 keeps its sign
// where libm keeps it.
//
// Every span kernel reads x[0, n) and writes y[0, n); y may equal x (in
// place). The tail (n not a multiple of the vector width) runs through the
// same vector code, so results do not depend on where an element sits.
#pragma once
#include <cstdint>

namespace fg {
namespace vecmath {

// y = f(x)
enum Unary : int { kExp, kLog, kTanh, kSigmoid, kSilu, kGelu, kGeluTanh, kRelu, kNumUnary };
// y = grad * f'(...): relu/sigmoid/tanh take the forward OUTPUT as `v`,
// gelu/gelu_tanh/silu take the forward INPUT.
enum Backward : int { kReluBw, kSigmoidBw, kTanhBw, kGeluBw, kGeluTanhBw, kSiluBw, kNumBackward };

template <class T>
using UnaryFn = void (*)(const T* x, T* y, int64_t n);
template <class T>
using BinaryFn = void (*)(const T* g, const T* v, T* y, int64_t n);

template <class T>
struct Kernels {
  const char* isa;  // "avx512" or "avx2"
  UnaryFn<T> unary[kNumUnary];
  BinaryFn<T> backward[kNumBackward];
};

// The vector kernels for the capability in force, or nullptr under "scalar"
// (or on a CPU without AVX2 + FMA): callers then keep their own scalar loop.
// Cheap enough to call once per op (not per element).
const Kernels<float>* kernels_f32();
const Kernels<double>* kernels_f64();
template <class T>
const Kernels<T>* kernels();

// "avx512", "avx2" or "scalar": what the span functions below run.
const char* isa();

// Named span kernels (the vector build in force, else a libm loop).
#define FG_VECMATH_DECLARE(name)                                         \
  void name##_f32(const float* x, float* y, int64_t n);                  \
  void name##_f64(const double* x, double* y, int64_t n);
#define FG_VECMATH_DECLARE_BW(name)                                                   \
  void name##_f32(const float* g, const float* v, float* y, int64_t n);              \
  void name##_f64(const double* g, const double* v, double* y, int64_t n);
FG_VECMATH_DECLARE(exp)
FG_VECMATH_DECLARE(log)
FG_VECMATH_DECLARE(tanh)
FG_VECMATH_DECLARE(sigmoid)
FG_VECMATH_DECLARE(silu)
FG_VECMATH_DECLARE(gelu)
FG_VECMATH_DECLARE(gelu_tanh)
FG_VECMATH_DECLARE(relu)
FG_VECMATH_DECLARE_BW(relu_backward)       // v = relu output: g where v > 0 (or NaN) else 0
FG_VECMATH_DECLARE_BW(sigmoid_backward)    // v = sigmoid output: g * v * (1 - v)
FG_VECMATH_DECLARE_BW(tanh_backward)       // v = tanh output: g * (1 - v^2)
FG_VECMATH_DECLARE_BW(gelu_backward)       // v = input: g * (Phi(v) + v phi(v))
FG_VECMATH_DECLARE_BW(gelu_tanh_backward)  // v = input
FG_VECMATH_DECLARE_BW(silu_backward)       // v = input: g * s * (1 + v (1 - s))
#undef FG_VECMATH_DECLARE
#undef FG_VECMATH_DECLARE_BW

}  // namespace vecmath

namespace vecmath_detail {
// Defined in vecmath_avx512.cpp / vecmath_avx2.cpp; call only after the CPU
// was checked for the instruction set.
const vecmath::Kernels<float>& kernels_avx512_f32();
const vecmath::Kernels<double>& kernels_avx512_f64();
const vecmath::Kernels<float>& kernels_avx2_f32();
const vecmath::Kernels<double>& kernels_avx2_f64();
}  // namespace vecmath_detail
}  // namespace fg
