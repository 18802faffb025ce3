// gemm.h - the matrix product: a raw strided GEMM kernel and matmul() with
// torch.matmul semantics on top of it.
//
// gemm() is BLIS-shaped: the operands are packed block by block into aligned
// buffers, and a register-blocked micro-kernel (AVX-512, AVX2+FMA, or a
// portable fallback, chosen at run time from the CPU's features) computes one
// MR x NR tile of C at a time. Strides are in elements and may be anything
// (transposed, sliced, negative), so transposed operands are read in place.
#pragma once
#include <cstdint>
#include <string>

#include "array.h"

namespace fg {

// C = alpha * A @ B + beta * C.
//
// Args:
//   M, N, K      sizes: A is (M, K), B is (K, N), C is (M, N)
//   A, rsA, csA  A[i, k] = A[i * rsA + k * csA]
//   B, rsB, csB  B[k, j] = B[k * rsB + j * csB]
//   C, rsC, csC  C[i, j] = C[i * rsC + j * csC]; must not overlap A or B
//   alpha, beta  scalars; beta == 0 means C is not read (it may hold garbage)
//
// Multi-threaded with parallel_for over blocks of rows/columns of C (never K),
// so every element's sum is formed in the same order for any thread count:
// results are bit-identical whether 1 or N threads run it. Instantiated for
// float, double, int32_t and int64_t (integers wrap on overflow).
template <class T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
          int64_t csB, T* C, int64_t rsC, int64_t csC, T alpha, T beta);

// torch.matmul: 1-D @ 1-D is a dot product (0-d result); 2-D @ 1-D and
// 1-D @ 2-D are matrix-vector products; N-D operands are stacks of matrices
// whose batch dimensions broadcast. The result dtype is the wider of the two
// (bool is rejected). Strided inputs are read in place; the result is a fresh
// contiguous array.
Array matmul(const Array& a, const Array& b);

// The micro-kernel family in use: "avx512", "avx2" or "scalar".
std::string gemm_info();

// Forces a path ("avx512", "avx2", "scalar"; "auto" = best the CPU has).
// Requests beyond what the CPU supports fall back to the best it has. Read
// from FASTGRAD_CPU_CAPABILITY at first use; this overrides it (tests).
void set_cpu_capability(const std::string& cap);

// ---- internals shared by gemm.cpp and the per-ISA kernel files ------------
namespace gemm_detail {

// Micro-kernel: C[0:m, 0:n] = alpha * Ap @ Bp + beta * C (m <= MR, n <= NR).
//   Ap  packed A micro-panel, (kc, MR) row-major: Ap[k * MR + r] = A[r, k]
//   Bp  packed B micro-panel, (kc, NR) row-major: Bp[k * NR + j] = B[k, j];
//       64-byte aligned
// Rows/columns past m/n in the panels are zero padding and are not stored.
template <class T>
using MicroKernel = void (*)(int64_t kc, const T* Ap, const T* Bp, T* C, int64_t rsC, int64_t csC, T alpha,
                             T beta, int64_t m, int64_t n);

// Tile shapes per ISA. The tile fills the register file: MR rows of C, each
// NR wide (NR a multiple of the vector width), accumulators + B vectors +
// one broadcast of A must fit in 32 zmm (AVX-512) or 16 ymm (AVX2) registers.
constexpr int kAvx512MrF32 = 12, kAvx512NrF32 = 32;  // 24 zmm accumulators
constexpr int kAvx512MrF64 = 12, kAvx512NrF64 = 16;  // 24 zmm accumulators
constexpr int kAvx2MrF32 = 6, kAvx2NrF32 = 16;       // 12 ymm accumulators
constexpr int kAvx2MrF64 = 6, kAvx2NrF64 = 8;        // 12 ymm accumulators

// Defined in gemm_avx512.cpp / gemm_avx2.cpp (compiled with those flags);
// only called after the CPU was checked for the instruction set.
void ukernel_avx512_f32(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t rsC, int64_t csC,
                        float alpha, float beta, int64_t m, int64_t n);
void ukernel_avx512_f64(int64_t kc, const double* Ap, const double* Bp, double* C, int64_t rsC, int64_t csC,
                        double alpha, double beta, int64_t m, int64_t n);
void ukernel_avx2_f32(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t rsC, int64_t csC,
                      float alpha, float beta, int64_t m, int64_t n);
void ukernel_avx2_f64(int64_t kc, const double* Ap, const double* Bp, double* C, int64_t rsC, int64_t csC,
                      double alpha, double beta, int64_t m, int64_t n);

// dst[k * 32 + l] = src[l * ls + k] for l < 32, k < kc: a full B micro-panel
// of a B whose columns are contiguous (a transposed view), by 16 x 16
// in-register transposes. Reads nothing past k = kc - 1 of each line.
void pack_lines32_avx512_f32(int64_t kc, const float* src, int64_t ls, float* dst);

// dst[k * 32 + j] = src[k * rs + j] for j < nr, 0 for nr <= j < 32, k < kc:
// a B micro-panel of a B whose rows are contiguous, two zmm per row (the
// portable loop copies 16 bytes at a time). dst 64-byte aligned; reads
// nothing past column nr - 1 of each row.
void pack_rows32_avx512_f32(int64_t kc, int64_t nr, const float* src, int64_t rs, float* dst);

// Small products without packing (AVX-512, float): C[0:m, 0:n] = alpha *
// A[0:m, 0:kc] @ B[0:kc, 0:n] + beta * C with A[i, k] = A[i * rsA + k * csA],
// B's rows contiguous (B[k, j] = B[k * rsB + j]) and C's rows contiguous
// (C[i, j] = C[i * rsC + j]); m <= kAvx512MrF32, n <= kAvx512NrF32. Reads and
// writes nothing outside those ranges.
void ukernel_direct_avx512_f32(int64_t kc, const float* A, int64_t rsA, int64_t csA, const float* B, int64_t rsB,
                               float* C, int64_t rsC, float alpha, float beta, int64_t m, int64_t n);

// Register-resident FP32 FMA loops for measuring the peak rate (machine.cpp):
// `iters` iterations of kFmaLoopFlops* flops each on independent
// accumulators; the result only keeps the loop from being optimised away.
constexpr int64_t kFmaLoopFlopsAvx512 = 16 * 16 * 2;  // 16 zmm chains, 16 lanes, mul + add
constexpr int64_t kFmaLoopFlopsAvx2 = 12 * 8 * 2;     // 12 ymm chains, 8 lanes
float fma_loop_avx512(int64_t iters, float x);
float fma_loop_avx2(int64_t iters, float x);

}  // namespace gemm_detail
}  // namespace fg
