// gemm_avx2.cpp - the AVX2 + FMA GEMM micro-kernels (float and double).
//
// Compiled with -mavx2 -mfma (CMakeLists.txt does this for *_avx2.cpp);
// gemm.cpp calls these only after checking the CPU supports AVX2 and FMA.
// Only intrinsics and file-local templates live here, so no AVX instruction
// can leak into code that a plain x86-64 CPU runs.
//
// One call computes a tile C[0:m, 0:n] (m <= MR, n <= NR) from a packed A
// micro-panel (kc x MR) and a packed B micro-panel (kc x NR); see gemm.h.
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm.h"

namespace fg {
namespace gemm_detail {
namespace {

struct F32 {
  using T = float;
  using V = __m256;
  static constexpr int W = 8;  // lanes per ymm register
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(T x) { return _mm256_set1_ps(x); }
  static V load(const T* p) { return _mm256_load_ps(p); }
  static V loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

struct F64 {
  using T = double;
  using V = __m256d;
  static constexpr int W = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(T x) { return _mm256_set1_pd(x); }
  static V load(const T* p) { return _mm256_load_pd(p); }
  static V loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
};

// Tile MR x (NV * W). Args as gemm_detail::MicroKernel in gemm.h.
template <class S, int MR, int NV>
inline void kernel(int64_t kc, const typename S::T* __restrict Ap, const typename S::T* __restrict Bp,
                   typename S::T* __restrict C, int64_t rsC, int64_t csC, typename S::T alpha,
                   typename S::T beta, int64_t m, int64_t n) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int W = S::W;
  constexpr int NR = NV * W;

  // Why: C's tile is touched only after the k loop; starting its cache misses
  // now hides them behind the FMAs. A tile row spans up to two cache lines
  // (its first and last element); a strided C just gets its first column.
  for (int64_t r = 0; r < m; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * rsC), _MM_HINT_T0);
    if (csC == 1) _mm_prefetch(reinterpret_cast<const char*>(C + r * rsC + n - 1), _MM_HINT_T0);
  }

  // MR x NV accumulators + NV B vectors + 1 broadcast = 15 of the 16 ymm
  // registers: the tile never leaves registers during the k loop.
  V c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = S::zero();

  for (int64_t k = 0; k < kc; ++k) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = S::load(Bp + v * W);  // packed B: aligned
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      V a = S::set1(Ap[r]);  // vbroadcastss/sd straight from memory
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = S::fmadd(a, b[v], c[r][v]);
    }
    Ap += MR;
    Bp += NR;
  }

  const V va = S::set1(alpha);
  const V vb = S::set1(beta);
  if (csC == 1 && m == MR && n == NR) {
    // Full tile, rows of C contiguous: plain vector stores.
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        T* p = C + r * rsC + v * W;
        V out = S::mul(va, c[r][v]);
        if (beta != T(0)) out = S::fmadd(vb, S::loadu(p), out);
        S::storeu(p, out);
      }
  } else {
    // Edge tile or strided C: same arithmetic through a scratch tile, then
    // write only the m x n valid part.
    alignas(32) T tile[MR * NR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) S::storeu(tile + r * NR + v * W, S::mul(va, c[r][v]));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        T* p = C + r * rsC + j * csC;
        T out = tile[r * NR + j];
        *p = beta != T(0) ? beta * *p + out : out;
      }
  }
}

}  // namespace

void ukernel_avx2_f32(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t rsC, int64_t csC,
                      float alpha, float beta, int64_t m, int64_t n) {
  kernel<F32, kAvx2MrF32, kAvx2NrF32 / F32::W>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
}

void ukernel_avx2_f64(int64_t kc, const double* Ap, const double* Bp, double* C, int64_t rsC, int64_t csC,
                      double alpha, double beta, int64_t m, int64_t n) {
  kernel<F64, kAvx2MrF64, kAvx2NrF64 / F64::W>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
}

// 12 independent FMA chains (two ports x 4-cycle latency = 8 needed), plus
// the two constants: 14 of the 16 ymm registers.
float fma_loop_avx2(int64_t iters, float x) {
  __m256 acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps(x + float(j));
  const __m256 m = _mm256_set1_ps(0.9999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], m, a);
  for (int j = 1; j < 12; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, acc[0]);
  float s = 0.0f;
  for (float v : out) s += v;
  return s;
}

}  // namespace gemm_detail
}  // namespace fg
