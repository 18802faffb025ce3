// vecmath_avx512.cpp - the vecmath span kernels built for AVX-512.
//
// Compiled with -mavx512f/dq/bw/vl -mavx2 -mfma (CMakeLists.txt does this for
// *_avx512.cpp): 16 floats / 8 doubles per vector. vecmath.cpp calls these
// only after the CPU capability check. Nothing but the two table getters is
// defined here.
#define FG_VECMATH_ISA avx512
#include "cpu/vecmath_impl.h"

namespace fg {
namespace vecmath_detail {

const vecmath::Kernels<float>& kernels_avx512_f32() {
  static const vecmath::Kernels<float> k = avx512::make_table<avx512::f32x16>("avx512");
  return k;
}
const vecmath::Kernels<double>& kernels_avx512_f64() {
  static const vecmath::Kernels<double> k = avx512::make_table<avx512::f64x8>("avx512");
  return k;
}

}  // namespace vecmath_detail
}  // namespace fg
