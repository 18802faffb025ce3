// gemm_avx512.cpp - the AVX-512 GEMM micro-kernels (float and double).
//
// Compiled with -mavx512f... (CMakeLists.txt does this for *_avx512.cpp);
// gemm.cpp calls these only after checking the CPU supports AVX-512F. Nothing
// here is inline code shared with other translation units (only intrinsics
// and file-local templates), so no AVX-512 instruction can leak into code a
// non-AVX-512 CPU runs.
//
// One call computes a tile C[0:m, 0:n] (m <= MR, n <= NR) from a packed A
// micro-panel (kc x MR) and a packed B micro-panel (kc x NR); see gemm.h.
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm.h"

namespace fg {
namespace gemm_detail {
namespace {

// The few vector operations the kernel needs, for one element type.
struct F32 {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;  // lanes per zmm register
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(T x) { return _mm512_set1_ps(x); }
  static V load(const T* p) { return _mm512_load_ps(p); }
  static V loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, V v) { _mm512_storeu_ps(p, v); }
  static V maskz_loadu(Mask k, const T* p) { return _mm512_maskz_loadu_ps(k, p); }
  static void mask_storeu(T* p, Mask k, V v) { _mm512_mask_storeu_ps(p, k, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int W = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V set1(T x) { return _mm512_set1_pd(x); }
  static V load(const T* p) { return _mm512_load_pd(p); }
  static V loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, V v) { _mm512_storeu_pd(p, v); }
  static V maskz_loadu(Mask k, const T* p) { return _mm512_maskz_loadu_pd(k, p); }
  static void mask_storeu(T* p, Mask k, V v) { _mm512_mask_storeu_pd(p, k, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
};

// Tile MR x (NV * W) out of packed panels of AS rows and BS columns
// (MR <= AS, NV * W <= BS): the same kernel computes the edge tiles of a
// product whose M or N is not a multiple of the panel sizes on the rows and
// columns that exist only (e.g. M = 128 = 10 x 12 + 8: the last tile runs
// 8 rows, not 12 rows of which 4 are zero padding). Each computed element
// gets the same arithmetic as in the full tile. Args as
// gemm_detail::MicroKernel in gemm.h.
template <class S, int MR, int NV, int AS, int BS>
inline void kernel(int64_t kc, const typename S::T* __restrict Ap, const typename S::T* __restrict Bp,
                   typename S::T* __restrict C, int64_t rsC, int64_t csC, typename S::T alpha,
                   typename S::T beta, int64_t m, int64_t n) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int W = S::W;
  constexpr int NR = NV * W;
  static_assert(MR <= AS && NR <= BS, "the tile must lie inside the packed panels");

  // The whole MR x NR tile of C lives in registers for the entire k loop
  // (MR * NV accumulators): each loaded B vector is reused MR times and each
  // broadcast A value NV times, so the loop is FMA-bound, not load-bound.
  V c[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = S::zero();

  // Why prefetch, measured on a 2048^2 product (Ice Lake, one core): the B
  // micro-panel sits in L1, but A streams from L2 and C's tile comes from
  // L3 or memory. Prefetching A ~1.5 KiB ahead and C's lines one per 4 k
  // steps (spread out, so that they do not all wait for line-fill buffers
  // at once while the A stream needs them) took the product from ~128 to
  // ~142 GFLOP/s; all of C's lines at once at the start gave no gain.
  constexpr int kABytesPer4 = 4 * AS * int(sizeof(T));  // A consumed per 4 k steps
  constexpr int kAAhead = 1536;                          // bytes of A ahead of the loads
  const int64_t c_lines = csC == 1 ? 2 * m : m;          // row starts (and row ends) of the tile
  int64_t line = 0;
  auto prefetch_c = [&] {
    if (line < c_lines) {
      const int64_t r = csC == 1 ? line >> 1 : line;
      const T* p = C + r * rsC + ((csC == 1 && (line & 1)) ? n - 1 : 0);
      _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
      ++line;
    }
  };
  auto step = [&] {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = S::load(Bp + v * W);  // packed B: aligned
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      V a = S::set1(Ap[r]);  // folds into the FMA as an embedded {1toW} broadcast
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = S::fmadd(a, b[v], c[r][v]);
    }
    Ap += AS;
    Bp += BS;
  };
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    prefetch_c();
    const char* pa = reinterpret_cast<const char*>(Ap) + kAAhead;
#pragma GCC unroll 8
    for (int off = 0; off < kABytesPer4; off += 64) _mm_prefetch(pa + off, _MM_HINT_T0);
    // Not unrolled: unrolled 4x, GCC interleaves the steps and runs out of
    // registers (zmm moves in the loop; ~10% slower).
#pragma GCC unroll 1
    for (int u = 0; u < 4; ++u) step();
  }
  for (; k < kc; ++k) step();

  const V va = S::set1(alpha);
  const V vb = S::set1(beta);
  if (csC == 1) {
    if (m == MR && n == NR) {
      // Full tile, rows of C contiguous: plain vector stores.
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          T* p = C + r * rsC + v * W;
          V out = S::mul(va, c[r][v]);
          if (beta != T(0)) out = S::fmadd(vb, S::loadu(p), out);
          S::storeu(p, out);
        }
    } else {
      // Edge tile: masked loads/stores touch only the n valid columns (no
      // scratch tile, no out-of-bounds access).
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        if (r >= m) break;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          int64_t left = n - v * W;
          if (left <= 0) break;
          typename S::Mask k = left >= W ? typename S::Mask(~0u) : typename S::Mask((1u << left) - 1u);
          T* p = C + r * rsC + v * W;
          V out = S::mul(va, c[r][v]);
          if (beta != T(0)) out = S::fmadd(vb, S::maskz_loadu(k, p), out);
          S::mask_storeu(p, k, out);
        }
      }
    }
  } else {
    // C with a non-unit column stride: compute the tile in a scratch buffer
    // with the same vector arithmetic, then scatter it.
    alignas(64) T tile[MR * NR];
#pragma GCC unroll 16
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

// 16 x 16 transpose in registers: r[i] holds row i on entry, column i on exit
// (4 shuffle stages of 16 instructions: 32-bit, 64-bit, then 128-bit lanes twice).
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_ps(0xFFFF, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // u[4i + c]: column 4j + c of rows 4i..4i+3 in 128-bit lane j
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i + 0] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, a, c));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, a, c));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, b, d));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, b, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[c], u[4 + c], 0x44);
    const __m512 v1 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[c], u[4 + c], 0xEE);
    const __m512 w0 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[8 + c], u[12 + c], 0x44);
    const __m512 w1 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_maskz_shuffle_f32x4(0xFFFF, v0, w0, 0x88);
    r[4 + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, v0, w0, 0xDD);
    r[8 + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, v1, w1, 0x88);
    r[12 + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, v1, w1, 0xDD);
  }
}

// Direct (unpacked) tile: C[0:MR, 0:n] = alpha * A @ B + beta * C for small
// products, reading A and B where they lie. A's 12 rows are addressed from
// four row pointers (rows 3q, 3q+1, 3q+2 = a[3q] + {0, 1, 2} * rsA), so the
// loop needs few integer registers; B's row k is one or two (masked) vector
// loads, so columns past n are never read. Arithmetic per element as in the
// packed kernel: one accumulator from zero over k in order, then alpha, beta.
template <int MR, int NV>
void direct_tile(int64_t kc, const float* A, int64_t rsA, int64_t csA, const float* B, int64_t rsB, float* C,
                 int64_t rsC, float alpha, float beta, int64_t n) {
  constexpr int W = 16;
  const __mmask16 mk0 = n >= W ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
  const __mmask16 mk1 = n >= 2 * W ? __mmask16(0xFFFF) : n <= W ? __mmask16(0) : __mmask16((1u << (n - W)) - 1u);
  __m512 c[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) c[r][v] = _mm512_setzero_ps();
  const float* a[4] = {A, A + 3 * rsA, A + 6 * rsA, A + 9 * rsA};  // only those < MR rows are read
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b[NV];
    b[0] = _mm512_maskz_loadu_ps(mk0, B);
    if (NV > 1) b[NV - 1] = _mm512_maskz_loadu_ps(mk1, B + W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r / 3][(r % 3) * rsA]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(av, b[v], c[r][v]);
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) a[q] += csA;
    B += rsB;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mk = v == 0 ? mk0 : mk1;
      float* p = C + r * rsC + v * W;
      __m512 out = _mm512_mul_ps(va, c[r][v]);
      if (beta != 0.0f) out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, p), out);
      _mm512_mask_storeu_ps(p, mk, out);
    }
}

template <int NV>
void direct_tile_rows(int64_t m, int64_t kc, const float* A, int64_t rsA, int64_t csA, const float* B, int64_t rsB,
                      float* C, int64_t rsC, float alpha, float beta, int64_t n) {
  switch (m) {  // a tile with exactly m rows: rows past M are never read
#define FG_DIRECT_CASE(R) \
  case R: return direct_tile<R, NV>(kc, A, rsA, csA, B, rsB, C, rsC, alpha, beta, n);
    FG_DIRECT_CASE(1) FG_DIRECT_CASE(2) FG_DIRECT_CASE(3) FG_DIRECT_CASE(4) FG_DIRECT_CASE(5) FG_DIRECT_CASE(6)
    FG_DIRECT_CASE(7) FG_DIRECT_CASE(8) FG_DIRECT_CASE(9) FG_DIRECT_CASE(10) FG_DIRECT_CASE(11)
    default: return direct_tile<12, NV>(kc, A, rsA, csA, B, rsB, C, rsC, alpha, beta, n);
#undef FG_DIRECT_CASE
  }
}

}  // namespace

void ukernel_direct_avx512_f32(int64_t kc, const float* A, int64_t rsA, int64_t csA, const float* B, int64_t rsB,
                               float* C, int64_t rsC, float alpha, float beta, int64_t m, int64_t n) {
  if (n <= 16) direct_tile_rows<1>(m, kc, A, rsA, csA, B, rsB, C, rsC, alpha, beta, n);
  else direct_tile_rows<2>(m, kc, A, rsA, csA, B, rsB, C, rsC, alpha, beta, n);
}

void pack_lines32_avx512_f32(int64_t kc, const float* src, int64_t ls, float* dst) {
  constexpr int L = 32;
  for (int l0 = 0; l0 < L; l0 += 16) {
    const float* s0 = src + l0 * ls;
    for (int64_t k = 0; k < kc; k += 16) {
      const int64_t rem = kc - k < 16 ? kc - k : 16;
      const __mmask16 mk = rem == 16 ? __mmask16(0xFFFF) : __mmask16((1u << rem) - 1u);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_ps(mk, s0 + i * ls + k);  // never past k < kc
      transpose16(r);
      for (int64_t j = 0; j < rem; ++j) _mm512_storeu_ps(dst + (k + j) * L + l0, r[j]);
    }
  }
}

namespace {
// The full MR x NR tile, or for an edge tile the smallest variant that covers
// its m rows (in steps of 4) and n columns (one or two vectors): FMAs on
// zero padding are skipped. Why: M = 128 (a batch) leaves an 8-row last
// tile of 12, 3% of all FMAs; N = 784 a 16-column last panel of 32, 2%.
template <class S, int AS, int BS>
void edge_dispatch(int64_t kc, const typename S::T* Ap, const typename S::T* Bp, typename S::T* C, int64_t rsC,
                   int64_t csC, typename S::T alpha, typename S::T beta, int64_t m, int64_t n) {
  constexpr int W = S::W;
  static_assert(AS == 12 && BS == 2 * W, "variants below are written for 12-row, two-vector panels");
  if (n > W) {
    if (m > 8) return kernel<S, 12, 2, AS, BS>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
    if (m > 4) return kernel<S, 8, 2, AS, BS>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
    return kernel<S, 4, 2, AS, BS>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
  }
  if (m > 8) return kernel<S, 12, 1, AS, BS>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
  if (m > 4) return kernel<S, 8, 1, AS, BS>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
  return kernel<S, 4, 1, AS, BS>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
}
}  // namespace

void pack_rows32_avx512_f32(int64_t kc, int64_t nr, const float* src, int64_t rs, float* dst) {
  const __mmask16 mk0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1u);
  const __mmask16 mk1 = nr >= 32 ? __mmask16(0xFFFF) : nr <= 16 ? __mmask16(0) : __mmask16((1u << (nr - 16)) - 1u);
  for (int64_t k = 0; k < kc; ++k, src += rs, dst += 32) {
    _mm512_store_ps(dst, _mm512_maskz_loadu_ps(mk0, src));  // masked-off lanes: zero, never read
    _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(mk1, src + 16));
  }
}

void ukernel_avx512_f32(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t rsC, int64_t csC,
                        float alpha, float beta, int64_t m, int64_t n) {
  constexpr int MR = kAvx512MrF32, NR = kAvx512NrF32;
  if (m == MR && n == NR) return kernel<F32, MR, NR / F32::W, MR, NR>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
  edge_dispatch<F32, MR, NR>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
}

void ukernel_avx512_f64(int64_t kc, const double* Ap, const double* Bp, double* C, int64_t rsC, int64_t csC,
                        double alpha, double beta, int64_t m, int64_t n) {
  constexpr int MR = kAvx512MrF64, NR = kAvx512NrF64;
  if (m == MR && n == NR) return kernel<F64, MR, NR / F64::W, MR, NR>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
  edge_dispatch<F64, MR, NR>(kc, Ap, Bp, C, rsC, csC, alpha, beta, m, n);
}

// 16 independent FMA chains: with a 4-cycle latency and two FMA ports, 8
// would be just enough; 16 leaves slack and still fits the 32 zmm registers.
float fma_loop_avx512(int64_t iters, float x) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(x + float(j));
  const __m512 m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
  for (int j = 1; j < 16; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  alignas(64) float out[16];  // (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized)
  _mm512_store_ps(out, acc[0]);
  float s = 0.0f;
  for (float v : out) s += v;
  return s;
}

}  // namespace gemm_detail
}  // namespace fg
