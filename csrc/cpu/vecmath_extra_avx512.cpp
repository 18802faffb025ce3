// vecmath_extra_avx512.cpp - the vecmath_extra span kernels built for AVX-512
// (-mavx512f/dq/bw/vl from CMakeLists.txt): 16 floats / 8 doubles per vector.
// vecmath_extra.cpp calls these only after the CPU capability check.
#define FG_VECMATH_ISA avx512
#include "cpu/vecmath_extra_impl.h"

namespace fg {
namespace vecmath_detail {

const vecmath::ExtraKernels<float>& extra_kernels_avx512_f32() {
  static const vecmath::ExtraKernels<float> k = avx512::extra::make_extra_table<avx512::f32x16>("avx512");
  return k;
}
const vecmath::ExtraKernels<double>& extra_kernels_avx512_f64() {
  static const vecmath::ExtraKernels<double> k = avx512::extra::make_extra_table<avx512::f64x8>("avx512");
  return k;
}

}  // namespace vecmath_detail
}  // namespace fg
