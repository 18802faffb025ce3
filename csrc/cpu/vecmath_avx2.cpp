// vecmath_avx2.cpp - the vecmath span kernels built for AVX2 + FMA.
//
// Compiled with -mavx2 -mfma (CMakeLists.txt does this for *_avx2.cpp):
// 8 floats / 4 doubles per vector. vecmath.cpp calls these only after the
// CPU capability check. Nothing but the two table getters is defined here.
#define FG_VECMATH_ISA avx2
#include "cpu/vecmath_impl.h"

namespace fg {
namespace vecmath_detail {

const vecmath::Kernels<float>& kernels_avx2_f32() {
  static const vecmath::Kernels<float> k = avx2::make_table<avx2::f32x8>("avx2");
  return k;
}
const vecmath::Kernels<double>& kernels_avx2_f64() {
  static const vecmath::Kernels<double> k = avx2::make_table<avx2::f64x4>("avx2");
  return k;
}

}  // namespace vecmath_detail
}  // namespace fg
