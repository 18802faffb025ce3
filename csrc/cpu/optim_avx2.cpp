// optim_avx2.cpp - the fused optimizer span loops built for AVX2 + FMA.
//
// Compiled with -mavx2 -mfma (CMakeLists.txt does this for *_avx2.cpp), so
// optim_math.h's fmadd() is one FMA instruction, as in torch's CPU kernels,
// and the loops vectorise 8 floats / 4 doubles wide. optim.cpp calls these
// only after checking that the CPU has AVX2 and FMA. Nothing but the
// namespace fg::optim_detail::avx2 is defined here.
#define FG_OPTIM_ISA avx2
#include "cpu/optim_math.h"
