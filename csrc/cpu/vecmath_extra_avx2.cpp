// vecmath_extra_avx2.cpp - the vecmath_extra span kernels built for AVX2 + FMA
// (-mavx2 -mfma from CMakeLists.txt): 8 floats / 4 doubles per vector.
// vecmath_extra.cpp calls these only after the CPU capability check.
#define FG_VECMATH_ISA avx2
#include "cpu/vecmath_extra_impl.h"

namespace fg {
namespace vecmath_detail {

const vecmath::ExtraKernels<float>& extra_kernels_avx2_f32() {
  static const vecmath::ExtraKernels<float> k = avx2::extra::make_extra_table<avx2::f32x8>("avx2");
  return k;
}
const vecmath::ExtraKernels<double>& extra_kernels_avx2_f64() {
  static const vecmath::ExtraKernels<double> k = avx2::extra::make_extra_table<avx2::f64x4>("avx2");
  return k;
}

}  // namespace vecmath_detail
}  // namespace fg
