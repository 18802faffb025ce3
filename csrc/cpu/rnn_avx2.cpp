// rnn_avx2.cpp - the recurrent cells' row math (rnn_math.h) built for AVX2 +
// FMA: the loops vectorise 8 floats / 4 doubles wide, exps included.
// rnn.cpp calls these only when gemm_info() says the CPU runs AVX2 code.
#define FG_RNN_ISA avx2
#include "cpu/rnn_math.h"

namespace fg {
namespace rnn_detail {

Kernels<float> kernels_avx2_f32() { return avx2::kernels<float>(); }
Kernels<double> kernels_avx2_f64() { return avx2::kernels<double>(); }

}  // namespace rnn_detail
}  // namespace fg
