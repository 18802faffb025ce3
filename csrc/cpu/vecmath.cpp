// vecmath.cpp - picks the vecmath build for the CPU capability in force and
// holds the libm fallback of the named span functions (see vecmath.h).
#include "cpu/vecmath.h"

#include <cmath>
#include <string>

#include "cpu/gemm.h"  // gemm_info(): the process-wide CPU capability setting
#include "cpu/vecmath_scalar.h"

namespace fg {
namespace vecmath {
namespace {

// The AVX-512 build also uses DQ/BW/VL instructions, which gemm's capability
// check (avx512f) does not cover: without them it runs the AVX2 build.
bool cpu_has_avx512_all() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  }();
  return ok;
#else
  return false;
#endif
}

// 2 = avx512, 1 = avx2, 0 = scalar. gemm_info() already clamps the setting
// to what the CPU has (AVX2 there means AVX2 + FMA).
int level() {
  const std::string cap = gemm_info();
  if (cap == "avx512") return cpu_has_avx512_all() ? 2 : 1;
  return cap == "avx2" ? 1 : 0;
}

// ---- libm fallback (vecmath_scalar.h) ------------------------------------------------

template <class T, class F>
void loop1(const T* x, T* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
template <class T, class F>
void loop2(const T* g, const T* v, T* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(g[i], v[i]);
}

}  // namespace

template <>
const Kernels<float>* kernels<float>() {
  switch (level()) {
    case 2: return &vecmath_detail::kernels_avx512_f32();
    case 1: return &vecmath_detail::kernels_avx2_f32();
    default: return nullptr;
  }
}
template <>
const Kernels<double>* kernels<double>() {
  switch (level()) {
    case 2: return &vecmath_detail::kernels_avx512_f64();
    case 1: return &vecmath_detail::kernels_avx2_f64();
    default: return nullptr;
  }
}
const Kernels<float>* kernels_f32() { return kernels<float>(); }
const Kernels<double>* kernels_f64() { return kernels<double>(); }

const char* isa() {
  static const char* const names[] = {"scalar", "avx2", "avx512"};
  return names[level()];
}

// Each named function: the vector kernel when one is in force, else the loop.
#define FG_VECMATH_DEFINE(name, idx, expr)                                     \
  void name##_f32(const float* x, float* y, int64_t n) {                      \
    if (auto* k = kernels<float>()) return k->unary[idx](x, y, n);            \
    loop1(x, y, n, [](auto v) { return expr; });                              \
  }                                                                           \
  void name##_f64(const double* x, double* y, int64_t n) {                    \
    if (auto* k = kernels<double>()) return k->unary[idx](x, y, n);           \
    loop1(x, y, n, [](auto v) { return expr; });                              \
  }
#define FG_VECMATH_DEFINE_BW(name, idx, expr)                                  \
  void name##_f32(const float* g, const float* v, float* y, int64_t n) {      \
    if (auto* k = kernels<float>()) return k->backward[idx](g, v, y, n);      \
    loop2(g, v, y, n, [](auto a, auto b) { return expr; });                   \
  }                                                                           \
  void name##_f64(const double* g, const double* v, double* y, int64_t n) {   \
    if (auto* k = kernels<double>()) return k->backward[idx](g, v, y, n);     \
    loop2(g, v, y, n, [](auto a, auto b) { return expr; });                   \
  }

FG_VECMATH_DEFINE(exp, kExp, std::exp(v))
FG_VECMATH_DEFINE(log, kLog, std::log(v))
FG_VECMATH_DEFINE(tanh, kTanh, std::tanh(v))
FG_VECMATH_DEFINE(sigmoid, kSigmoid, scalar::sigmoid(v))
FG_VECMATH_DEFINE(silu, kSilu, scalar::silu(v))
FG_VECMATH_DEFINE(gelu, kGelu, scalar::gelu(v))
FG_VECMATH_DEFINE(gelu_tanh, kGeluTanh, scalar::gelu_tanh(v))
FG_VECMATH_DEFINE(relu, kRelu, v < decltype(v)(0) ? decltype(v)(0) : v)
FG_VECMATH_DEFINE_BW(relu_backward, kReluBw, b <= decltype(b)(0) ? decltype(b)(0) : a)
FG_VECMATH_DEFINE_BW(sigmoid_backward, kSigmoidBw, a * b * (decltype(b)(1) - b))
FG_VECMATH_DEFINE_BW(tanh_backward, kTanhBw, a * (decltype(b)(1) - b * b))
FG_VECMATH_DEFINE_BW(gelu_backward, kGeluBw, a * scalar::gelu_grad(b))
FG_VECMATH_DEFINE_BW(gelu_tanh_backward, kGeluTanhBw, a * scalar::gelu_tanh_grad(b))
FG_VECMATH_DEFINE_BW(silu_backward, kSiluBw, a * scalar::silu_grad(b))
#undef FG_VECMATH_DEFINE
#undef FG_VECMATH_DEFINE_BW

}  // namespace vecmath
}  // namespace fg
