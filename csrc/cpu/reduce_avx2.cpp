// reduce_avx2.cpp - the reduction kernels of reduce_kernels.h built for AVX2 + FMA.
//
// Compiled with -mavx2 -mfma (CMakeLists.txt does this for *_avx2.cpp), so
// the softmax loops and their vectorised exp run 8 floats / 4 doubles wide
// with fused multiply-adds. reduce.cpp calls these only after checking that
// the CPU has AVX2 and FMA. Nothing but fg::reduce_detail::avx2 and the two
// table getters is defined here.
#define FG_REDUCE_ISA avx2
#include "cpu/reduce_kernels.h"

namespace fg {
namespace reduce_detail {

SoftmaxKernels<float> softmax_kernels_avx2_f32() { return avx2::softmax_kernels<float>(); }
SoftmaxKernels<double> softmax_kernels_avx2_f64() { return avx2::softmax_kernels<double>(); }

}  // namespace reduce_detail
}  // namespace fg
