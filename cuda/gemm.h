// cuda/gemm.h - the matrix product on CUDA devices: a shared-memory tiled,
// register-blocked GEMM that reads strided (transposed, sliced, broadcast)
// operands in place, batched over broadcast batch dims.
#pragma once
#include <cstdint>

#include "array.h"

namespace fg {
namespace cuda {

// out (contiguous, batch + (M, N)) = a @ b, where a and b (same dtype as out,
// on out's device) are viewed as batch + (M, K) and batch + (K, N) by
// expand(); called by fg::matmul after its shape and dtype checks.
void matmul(const Array& a, const Array& b, const Shape& batch, int64_t M, int64_t N, int64_t K, const Array& out);

}  // namespace cuda
}  // namespace fg
