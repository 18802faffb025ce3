// vecmath_extra.cpp - picks the vecmath_extra build that matches vecmath's
// (vecmath::isa(): the process-wide CPU capability) and holds the libm
// fallback of the named span functions (see vecmath_extra.h).
#include "cpu/vecmath_extra.h"

#include <cmath>
#include <cstring>

#include "cpu/vecmath.h"

namespace fg {
namespace vecmath {

const ExtraKernels<float>* extra_kernels_f32() {
  const char* isa = vecmath::isa();
  if (std::strcmp(isa, "avx512") == 0) return &vecmath_detail::extra_kernels_avx512_f32();
  if (std::strcmp(isa, "avx2") == 0) return &vecmath_detail::extra_kernels_avx2_f32();
  return nullptr;
}
const ExtraKernels<double>* extra_kernels_f64() {
  const char* isa = vecmath::isa();
  if (std::strcmp(isa, "avx512") == 0) return &vecmath_detail::extra_kernels_avx512_f64();
  if (std::strcmp(isa, "avx2") == 0) return &vecmath_detail::extra_kernels_avx2_f64();
  return nullptr;
}

void log1p_f32(const float* x, float* y, int64_t n) {
  if (auto* k = extra_kernels_f32()) return k->fn[kLog1p](x, y, n, 0.0f, 0.0f);
  for (int64_t i = 0; i < n; ++i) y[i] = std::log1p(x[i]);
}
void log1p_f64(const double* x, double* y, int64_t n) {
  if (auto* k = extra_kernels_f64()) return k->fn[kLog1p](x, y, n, 0.0, 0.0);
  for (int64_t i = 0; i < n; ++i) y[i] = std::log1p(x[i]);
}
void expm1_f32(const float* x, float* y, int64_t n) {
  if (auto* k = extra_kernels_f32()) return k->fn[kExpm1](x, y, n, 0.0f, 0.0f);
  for (int64_t i = 0; i < n; ++i) y[i] = std::expm1(x[i]);
}
void expm1_f64(const double* x, double* y, int64_t n) {
  if (auto* k = extra_kernels_f64()) return k->fn[kExpm1](x, y, n, 0.0, 0.0);
  for (int64_t i = 0; i < n; ++i) y[i] = std::expm1(x[i]);
}

}  // namespace vecmath
}  // namespace fg
