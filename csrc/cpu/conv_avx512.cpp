// conv_avx512.cpp - the AVX-512 (float) kernels of conv.cpp's direct path for
// stride-1 convolutions.
//
// Compiled with -mavx512f... (CMakeLists.txt does this for *_avx512.cpp);
// conv.cpp calls these only after gemm_info() reported AVX-512 (the CPU was
// checked). Nothing here is inline code shared with other translation units.
//
// Both kernels read the input from "row-shifted" copies (see conv.h,
// conv_detail): for a stride-1 convolution the input values that kernel tap
// k = (c, i, j) meets at output positions p = 0, 1, ... P - 1 (row-major over
// the output rows) lie at xs[koff[k] + p], one contiguous run. The column
// matrix of im2col is never built: each tap's row is read where it lies.
#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "cpu/conv.h"

namespace fg {
namespace conv_detail {
namespace {

// C_v[r, 0:16] = bias[r] + sum_k Ap[k * MR + r] * B_v[koff[k] + 0:16] for NV
// column vectors v (16 output positions each, masked), rows r < m stored.
// The MR x NV accumulators stay in registers for the whole K loop: each B
// vector is used MR times and each broadcast weight NV times (FMA-bound).
template <int NV>
inline void direct_tile(int64_t K, const float* __restrict Ap, const int64_t* __restrict koff,
                        const float* const* B, float* const* C, const uint16_t* masks, int64_t ldc, int m,
                        const float* bias) {
  constexpr int MR = kDirectMr;
  __m512 c[MR][NV];
  const float* b[NV];
  __mmask16 mk[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) b[v] = B[v], mk[v] = masks[v];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const __m512 init = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = init;
  }
  for (int64_t k = 0; k < K; ++k) {
    const int64_t off = koff[k];
    __m512 bv[NV];
    // Masked loads: the last vector of an image may stop short of 16
    // positions, and nothing past it may be read (it can be past the buffer).
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(mk[v], b[v] + off);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(Ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(a, bv[v], c[r][v]);
    }
    Ap += MR;
  }
  // Unrolled with constant indices: a run-time bound here would make GCC keep
  // the accumulators in memory (stored back on every k step).
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    if (r < m)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(C[v] + r * ldc, mk[v], c[r][v]);
}

// The sum of the 16 lanes, in a fixed order, through memory: GCC 12's
// _mm512_reduce_add_ps and its shuffle / cast intrinsics trip
// -Wmaybe-uninitialized inside its own headers (as in gemm_avx512.cpp).
inline float hsum(__m512 v) {
  alignas(64) float l[16];
  _mm512_store_ps(l, v);
  float s[8];
  for (int i = 0; i < 8; ++i) s[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; ++i) s[i] += s[i + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

}  // namespace

void direct_tile_avx512_f32(int64_t K, const float* Ap, const int64_t* koff, int nv, const float* const* B,
                            float* const* C, const uint16_t* masks, int64_t ldc, int m, const float* bias) {
  if (nv >= 3) direct_tile<3>(K, Ap, koff, B, C, masks, ldc, m, bias);
  else if (nv == 2) direct_tile<2>(K, Ap, koff, B, C, masks, ldc, m, bias);
  else direct_tile<1>(K, Ap, koff, B, C, masks, ldc, m, bias);
}

// xs of one image and group (conv.h's layout) from an input whose rows are
// contiguous (unit column stride): each row is a few masked 16-float moves.
// Rows of 4-16 floats are what small maps have; a copy loop with a scalar
// tail and separate zero fills cost ~10% of a digits-CNN training step.
void shift_rows_avx512_f32(const float* x, int64_t sC, int64_t sH, int64_t Ci, int64_t Hi, int64_t Wi, int64_t OW,
                           int64_t Hp, int64_t kw, int64_t dw, int64_t pt, int64_t pl, float* xs) {
  auto bits = [](int64_t a, int64_t b) -> __mmask16 {  // lanes [a, b) of 0..15, clamped
    a = a < 0 ? 0 : a > 16 ? 16 : a;
    b = b < a ? a : b > 16 ? 16 : b;
    return static_cast<__mmask16>(((1u << b) - 1u) & ~((1u << a) - 1u));
  };
  if (sH == OW && 16 % OW == 0) {
    // Input rows as long as output rows, and a vector holds whole rows: each
    // (j, c) plane is one flat shifted copy, plane[t] = s[t] at valid rows and
    // columns (lane l is column l % OW), 0 elsewhere. The masks depend on j
    // only: computed once, each plane is then one masked load and store per
    // vector.
    const int64_t ya = pt < 0 ? 0 : pt > Hp ? Hp : pt, yb = pt + Hi < ya ? ya : pt + Hi > Hp ? Hp : pt + Hi;
    const int64_t len = Hp * OW, nvec = (len + 15) / 16;
    std::vector<uint32_t> masks(static_cast<size_t>(nvec));  // load mask << 16 | store mask
    for (int64_t j = 0; j < kw; ++j) {
      const int64_t shift = j * dw - pl;
      __mmask16 cols = 0;
      for (int l = 0; l < 16; ++l) {
        const int64_t q = l % OW + shift;
        if (q >= 0 && q < Wi) cols = static_cast<__mmask16>(cols | (1u << l));
      }
      for (int64_t v = 0; v < nvec; ++v) {
        const int64_t t = 16 * v;
        const uint32_t st = bits(0, len - t), ld = bits(ya * OW - t, yb * OW - t) & cols & st;
        masks[v] = ld << 16 | st;
      }
      for (int64_t c = 0; c < Ci; ++c) {
        float* plane = xs + (j * Ci + c) * len;
        const float* s = x + c * sC - pt * OW + shift;  // s[t] feeds plane[t] (read only at valid lanes)
        for (int64_t v = 0; v < nvec; ++v) {
          const uint32_t m = masks[v];
          _mm512_mask_storeu_ps(plane + 16 * v, static_cast<__mmask16>(m),
                                _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), s + 16 * v));
        }
      }
    }
    return;
  }
  for (int64_t j = 0; j < kw; ++j) {
    const int64_t shift = j * dw - pl;  // input column of output column 0
    for (int64_t c = 0; c < Ci; ++c)
      for (int64_t y = 0; y < Hp; ++y) {
        float* dst = xs + ((j * Ci + c) * Hp + y) * OW;
        const int64_t iy = y - pt;
        const bool inside = iy >= 0 && iy < Hi;
        const float* s = x + c * sC + (inside ? iy : 0) * sH + shift;
        for (int64_t q0 = 0; q0 < OW; q0 += 16) {
          const __mmask16 st = bits(0, OW - q0);
          // valid input columns: 0 <= q0 + lane + shift < Wi
          const __mmask16 ld = inside ? bits(-shift - q0, Wi - shift - q0) & st : 0;
          _mm512_mask_storeu_ps(dst + q0, st, _mm512_maskz_loadu_ps(ld, s + q0));
        }
      }
  }
}

// Zeroes a tile of accumulators, fully unrolled so that it stays in registers.
template <int R, int C>
inline __attribute__((always_inline)) void zero_tile(__m512 (&acc)[R][C]) {
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
}

// dw[o, t] (+)= sum over images n < nimg and positions p < P of
// G[o][n * gsn + p] * xs[n * xsn + koff[t] + p], for kWgradMo rows o and
// kWgradMt taps t (rows / taps past mo / mt are computed but not stored).
// Vectors run along the positions, so every accumulator is a 16-lane partial
// sum, reduced once at the end: the reduction over the whole batch stays in
// registers.
void wgrad_tile_avx512_f32(int64_t nimg, int64_t P, const float* const* G, int64_t gsn, const float* xs,
                           int64_t xsn, const int64_t* koff, float* dw, int64_t ldw, int mo, int mt,
                           bool accumulate) {
  constexpr int MO = kWgradMo, MT = kWgradMt;
  __m512 acc[MO][MT];
  zero_tile(acc);
  const int64_t pfull = P / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (P - pfull)) - 1u);
  for (int64_t n = 0; n < nimg; ++n) {
    const float* g[MO];
    const float* x[MT];
#pragma GCC unroll 8
    for (int o = 0; o < MO; ++o) g[o] = G[o] + n * gsn;
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) x[t] = xs + n * xsn + koff[t];
    auto step = [&](int64_t p, __mmask16 mask) {
      __m512 gv[MO];
#pragma GCC unroll 8
      for (int o = 0; o < MO; ++o) gv[o] = _mm512_maskz_loadu_ps(mask, g[o] + p);
#pragma GCC unroll 8
      for (int t = 0; t < MT; ++t) {
        const __m512 xv = _mm512_maskz_loadu_ps(mask, x[t] + p);
#pragma GCC unroll 8
        for (int o = 0; o < MO; ++o) acc[o][t] = _mm512_fmadd_ps(gv[o], xv, acc[o][t]);
      }
    };
    for (int64_t p = 0; p < pfull; p += 16) step(p, static_cast<__mmask16>(0xFFFF));
    if (pfull < P) step(pfull, tail);
  }
  // Constant indices (see direct_tile).
#pragma GCC unroll 8
  for (int o = 0; o < MO; ++o)
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t)
      if (o < mo && t < mt) {
        const float s = hsum(acc[o][t]);
        float& d = dw[o * ldw + t];
        d = accumulate ? d + s : s;
      }
}

// dw^T tile: dw[o * ldw + t] (= or +=) sum_{n < nimg, p < P} gt[n * gtn + p *
// ldo + o] * xs[n * xsn + koff[t] + p] for t < mt (of kWgradBt taps) and o < mo
// (of 16 * kWgradBv channels). Vectors run along the output channels (gt is
// g transposed to position-major), each tap's value is broadcast: no
// horizontal sums, and the whole batch's reduction stays in registers.
void wgrad_bcast_avx512_f32(int64_t nimg, int64_t P, const float* gt, int64_t gtn, int64_t ldo, const float* xs,
                            int64_t xsn, const int64_t* koff, float* dw, int64_t ldw, int mt, int mo,
                            bool accumulate) {
  constexpr int MT = kWgradBt, NV = kWgradBv;
  __m512 acc[MT][NV];
  zero_tile(acc);
  for (int64_t n = 0; n < nimg; ++n) {
    const float* x = xs + n * xsn;
    const float* g = gt + n * gtn;
    for (int64_t p = 0; p < P; ++p, g += ldo) {
      __m512 b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(g + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < MT; ++r) {
        const __m512 a = _mm512_set1_ps(x[koff[r] + p]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
      }
    }
  }
  alignas(64) float tile[MT][NV * 16];
#pragma GCC unroll 16
  for (int r = 0; r < MT; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_store_ps(&tile[r][16 * v], acc[r][v]);
  for (int o = 0; o < mo; ++o)
    for (int r = 0; r < mt; ++r) {
      float& d = dw[o * ldw + r];
      d = accumulate ? d + tile[r][o] : tile[r][o];
    }
}

}  // namespace conv_detail
}  // namespace fg
