// rnn_avx512.cpp - the recurrent cells' row math (rnn_math.h) built for
// AVX-512: 16 floats / 8 doubles per instruction. rnn.cpp calls these only
// when gemm_info() says the CPU runs AVX-512 code.
#define FG_RNN_ISA avx512
#include "cpu/rnn_math.h"

namespace fg {
namespace rnn_detail {

Kernels<float> kernels_avx512_f32() { return avx512::kernels<float>(); }
Kernels<double> kernels_avx512_f64() { return avx512::kernels<double>(); }

}  // namespace rnn_detail
}  // namespace fg
