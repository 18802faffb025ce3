// random.h - counter-based random numbers (Philox-4x32-10) and the global
// generator state.
//
// The generator is a pair (seed, offset). Philox is a keyed bijection of a
// 128-bit counter: block(seed, c) gives four independent 32-bit words for any
// counter c, in any order, on any thread. A call that needs B blocks takes
// the counters [offset, offset + B) and advances offset by B, so:
//   - element i of a call depends only on (seed, the call's base offset, i),
//     never on the thread count or on how the work was split;
//   - the state after a call is known without generating anything, and a
//     device backend that follows the same element mapping produces the
//     same stream.
//
// Element mapping (block q = Philox(key = seed, counter = base + q), words
// w0..w3; "u64" joins two words as lo | hi << 32):
//   rand   f32: element i = word i % 4 of block i / 4, u = (w >> 8) * 2^-24
//          f64: element i = u64 of words (2(i%2), 2(i%2)+1) of block i / 2,
//               u = (u64 >> 11) * 2^-53            (both in [0, 1))
//   randn  Box-Muller on pairs (u1, u2), u1 in (0, 1] (top bits + 1) and u2
//          in [0, 1): r = sqrt(-2 ln u1), elements r cos(2 pi u2), r sin(2 pi u2)
//          f32: block q gives elements 4q..4q+3 from (w0, w1) and (w2, w3)
//               (float polynomials for ln/cos/sin, within ~1 ulp of libm)
//          f64: block q gives elements 2q, 2q+1 from u64(w0, w1), u64(w2, w3)
//               (double polynomials: ln within 1 ulp, cos/sin within
//               2e-16 absolute)
//          The ln/cos/sin are our own (below, in `rng`), not the libm's, and
//          every operation in them is a single IEEE-rounded op: the CUDA
//          kernels run the same functions and give the same bits.
//   randint, randperm: 64-bit draws as for rand f64, mapped to [0, n) by
//          (u64 * n) >> 64 (randperm's Fisher-Yates is serial: a CUDA
//          permutation is made on the host and copied)
//   bernoulli, dropout_mask: uniforms as for rand, compared with p
//   multinomial (weights w of R rows x C categories, S samples per row; all
//          in float64 whatever w's dtype):
//          with replacement: element i = r S + s is the u64 draw i (as for
//               rand f64), u = (u64 >> 11) 2^-53; the sample is the first k
//               with cdf[k] > u * cdf[C-1] (cdf: the row's running sum in
//               category order), or the last positive category if rounding
//               leaves none. ceil(R S / 2) blocks.
//          without: the exponential race (sampling without replacement in
//               proportion to w is the order of the keys E_k / w_k with
//               E_k ~ Exp(1) i.i.d.): element i = r C + k is u64 draw i,
//               E = -ln(((u64 >> 11) + 1) 2^-53), key = E / w[k] (+inf for
//               w = 0); the samples are the S smallest (key, k) in increasing
//               order. ceil(R C / 2) blocks.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>

#include "array.h"

// Host-and-device functions: compiled for both sides by nvcc (cuda/random.cu
// includes this header), plain inline functions for the C++ compiler.
#if defined(__CUDACC__)
#define FG_HD __host__ __device__
#else
#define FG_HD
#endif

namespace fg {

// ---- the Philox-4x32-10 bijection (shared by every device) -------------------

struct PhiloxBlock {
  uint32_t w[4];
};

// Random123's philox4x32-10 with counter (lo32(ctr), hi32(ctr), 0, 0) and
// key (lo32(seed), hi32(seed)).
FG_HD inline PhiloxBlock philox4x32_10(uint64_t seed, uint64_t ctr) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
  uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t(kM0) * c0, p1 = uint64_t(kM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kW0;
    k1 += kW1;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// ---- words to numbers, shared by the CPU and CUDA kernels -------------------------------
//
// Why the f_* / d_* wrappers: bitwise-equal results need the same roundings
// on both sides. The CPU build has no FMA contraction (random.cpp is built
// for baseline x86-64, which has no FMA instruction); nvcc contracts a * b + c
// into an FMA by default, so device code spells every multiply and add as an
// explicitly rounded intrinsic (never fused), and sqrt / division as the
// IEEE-rounded ones.
namespace rng {

// Each op as the device intrinsic and as the host expression.
#ifdef __CUDA_ARCH__
#define FG_RNG_OP(device, host) device
#else
#define FG_RNG_OP(device, host) host
#endif
FG_HD inline float f_mul(float a, float b) { return FG_RNG_OP(__fmul_rn(a, b), a * b); }
FG_HD inline float f_add(float a, float b) { return FG_RNG_OP(__fadd_rn(a, b), a + b); }
FG_HD inline float f_sqrt(float a) { return FG_RNG_OP(__fsqrt_rn(a), __builtin_sqrtf(a)); }
FG_HD inline double d_mul(double a, double b) { return FG_RNG_OP(__dmul_rn(a, b), a * b); }
FG_HD inline double d_add(double a, double b) { return FG_RNG_OP(__dadd_rn(a, b), a + b); }
FG_HD inline double d_div(double a, double b) { return FG_RNG_OP(__ddiv_rn(a, b), a / b); }
FG_HD inline double d_sqrt(double a) { return FG_RNG_OP(__dsqrt_rn(a), __builtin_sqrt(a)); }
#undef FG_RNG_OP

FG_HD inline uint64_t join(uint32_t lo, uint32_t hi) { return uint64_t(lo) | (uint64_t(hi) << 32); }

// [0, 1) from the top 24 / 53 bits: every value is exactly representable,
// and 1.0 can never come out (which would happen when rounding w * 2^-32).
FG_HD inline float u01_f32(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
FG_HD inline double u01_f64(uint64_t x) { return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0); }
// (0, 1]: the log in Box-Muller must never see 0.
FG_HD inline float u01_open0_f32(uint32_t w) { return static_cast<float>((w >> 8) + 1) * (1.0f / 16777216.0f); }
FG_HD inline double u01_open0_f64(uint64_t x) {
  return static_cast<double>((x >> 11) + 1) * (1.0 / 9007199254740992.0);
}
// (All four products above are exact: a power-of-two scaling of an integer
// that fits the mantissa, so they need no rounding control.)

// Uniform integer in [0, n) by Lemire's multiply-shift (bias <= n / 2^64).
FG_HD inline uint64_t below(uint64_t x, uint64_t n) {
#ifdef __CUDA_ARCH__
  return __umul64hi(x, n);
#else
  return static_cast<uint64_t>((__uint128_t(x) * n) >> 64);
#endif
}

FG_HD inline uint32_t float_bits(float x) {
  uint32_t b;
  memcpy(&b, &x, 4);
  return b;
}
FG_HD inline float bits_float(uint32_t b) {
  float x;
  memcpy(&x, &b, 4);
  return x;
}
FG_HD inline uint64_t double_bits(double x) {
  uint64_t b;
  memcpy(&b, &x, 8);
  return b;
}
FG_HD inline double bits_double(uint64_t b) {
  double x;
  memcpy(&x, &b, 8);
  return x;
}

// Natural log for normal floats x > 0 (Cephes logf).
FG_HD inline float fast_logf(float x) {
  const uint32_t bits = float_bits(x);
  float e = static_cast<float>(static_cast<int32_t>(bits >> 23) - 126);  // x = m * 2^e, m in [0.5, 1)
  float m = bits_float((bits & 0x007FFFFFu) | 0x3F000000u);
  // Keep the argument in [sqrt(1/2) - 1, sqrt(2) - 1): below sqrt(1/2) use
  // 2m - 1 and e - 1. Selects as bit masks, so the loop has no branches.
  const uint32_t small = 0u - static_cast<uint32_t>(m < 0.70710678118654752f);
  e = f_add(e, -bits_float(float_bits(1.0f) & small));
  m = f_add(f_add(m, -1.0f), bits_float(float_bits(m) & small));  // both forms exact
  const float z = f_mul(m, m);
  float y = 7.0376836292e-2f;
  y = f_add(f_mul(y, m), -1.1514610310e-1f);
  y = f_add(f_mul(y, m), 1.1676998740e-1f);
  y = f_add(f_mul(y, m), -1.2420140846e-1f);
  y = f_add(f_mul(y, m), 1.4249322787e-1f);
  y = f_add(f_mul(y, m), -1.6668057665e-1f);
  y = f_add(f_mul(y, m), 2.0000714765e-1f);
  y = f_add(f_mul(y, m), -2.4999993993e-1f);
  y = f_add(f_mul(y, m), 3.3333331174e-1f);
  y = f_mul(f_mul(y, m), z);
  y = f_add(y, f_mul(e, -2.12194440e-4f));
  y = f_add(y, f_mul(-0.5f, z));
  return f_add(f_add(m, y), f_mul(e, 0.693359375f));
}

// (cos, sin) of 2 pi u for u in [0, 1) (Cephes sinf/cosf kernels): reduce to
// the nearest quarter turn j, where the remainder is within pi/4, then rotate.
FG_HD inline void fast_sincos_turns(float u, float* c_out, float* s_out) {
  const float x = f_mul(4.0f, u);                                          // quarter turns, exact
  const float j = static_cast<float>(static_cast<int32_t>(f_add(x, 0.5f)));  // nearest, 0..4
  const float g = f_mul(f_add(x, -j), 1.57079632679489662f);              // in [-pi/4, pi/4]
  const float g2 = f_mul(g, g);
  const float s = f_add(g, f_mul(f_mul(g, g2),
                                 f_add(-1.6666654611e-1f, f_mul(g2, f_add(8.3321608736e-3f,
                                                                          f_mul(g2, -1.9515295891e-4f))))));
  const float c = f_add(f_add(1.0f, -f_mul(0.5f, g2)),
                        f_mul(f_mul(g2, g2), f_add(4.166664568298827e-2f,
                                                   f_mul(g2, f_add(-1.388731625493765e-3f,
                                                                   f_mul(g2, 2.443315711809948e-5f))))));
  // Rotate by j quarter turns: odd j swaps cos and sin; the signs follow the
  // quadrant (cos < 0 for j % 4 in {1, 2}, sin < 0 for {2, 3}). Bit masks
  // again instead of branches.
  const uint32_t q = static_cast<uint32_t>(static_cast<int32_t>(j)) & 3u;
  const uint32_t swap = 0u - (q & 1u);
  const uint32_t cb = float_bits(c), sb = float_bits(s);
  *c_out = bits_float(((cb & ~swap) | (sb & swap)) ^ (((q + 1u) & 2u) << 30));
  *s_out = bits_float(((sb & ~swap) | (cb & swap)) ^ ((q & 2u) << 30));
}

// Natural log for normal doubles x > 0. x = 2^k (1 + f) with 1 + f in
// [sqrt(1/2), sqrt(2)); ln(1 + f) = 2 atanh(s), s = f / (2 + f), as
// f - (hfsq - s (hfsq + R(s^2))) with hfsq = f^2 / 2 and R the minimax
// polynomial of fdlibm's log (the coefficients are its published ones);
// ln 2 is split in a high part (exact times k) and a low part.
FG_HD inline double fast_log(double x) {
  const uint64_t bits = double_bits(x);
  int k = static_cast<int>(bits >> 52) - 1023;
  uint64_t mb = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;  // [1, 2)
  if (bits_double(mb) > 1.4142135623730951) {  // halve into [sqrt(1/2), 1)
    mb -= 0x0010000000000000ull;
    k += 1;
  }
  const double f = d_add(bits_double(mb), -1.0);  // exact
  const double s = d_div(f, d_add(2.0, f));
  const double z = d_mul(s, s), w = d_mul(z, z);
  const double t1 = d_mul(w, d_add(3.999999999940941908e-01,
                                   d_mul(w, d_add(2.222219843214978396e-01, d_mul(w, 1.531383769920937332e-01)))));
  const double t2 = d_mul(z, d_add(6.666666666666735130e-01,
                                   d_mul(w, d_add(2.857142874366239149e-01,
                                                  d_mul(w, d_add(1.818357216161805012e-01,
                                                                 d_mul(w, 1.479819860511658591e-01)))))));
  const double R = d_add(t2, t1);
  const double hfsq = d_mul(d_mul(0.5, f), f);
  const double dk = static_cast<double>(k);
  // k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f)
  const double inner = d_add(d_mul(s, d_add(hfsq, R)), d_mul(dk, 1.90821492927058770002e-10));
  return d_add(d_mul(dk, 6.93147180369123816490e-01), -d_add(d_add(hfsq, -inner), -f));
}

// (cos, sin) of 2 pi u for u in [0, 1), double: the same quarter-turn
// reduction as the float version (x - j is exact), then fdlibm's sin / cos
// kernel polynomials on [-pi/4, pi/4] (published coefficients).
FG_HD inline void fast_sincos_turns(double u, double* c_out, double* s_out) {
  const double x = d_mul(4.0, u);  // exact
  const double j = static_cast<double>(static_cast<int32_t>(d_add(x, 0.5)));
  const double g = d_mul(d_add(x, -j), 1.5707963267948966);
  const double z = d_mul(g, g);
  const double rs = d_add(8.33333333332248946124e-03,
                          d_mul(z, d_add(-1.98412698298579493134e-04,
                                         d_mul(z, d_add(2.75573137070700676789e-06,
                                                        d_mul(z, d_add(-2.50507602534068634195e-08,
                                                                       d_mul(z, 1.58969099521155010221e-10))))))));
  const double s = d_add(g, d_mul(d_mul(z, g), d_add(-1.66666666666666324348e-01, d_mul(z, rs))));
  const double rc = d_mul(z, d_add(4.16666666666666019037e-02,
                                   d_mul(z, d_add(-1.38888888888741095749e-03,
                                                  d_mul(z, d_add(2.48015872894767294178e-05,
                                                                 d_mul(z, d_add(-2.75573143513906633035e-07,
                                                                                d_mul(z, d_add(2.08757232129817482790e-09,
                                                                                               d_mul(z, -1.13596475577881948265e-11)))))))))));
  const double hz = d_mul(0.5, z), w = d_add(1.0, -hz);
  // cos = w + (((1 - w) - hz) + z R): the low bits 1 - w loses, put back.
  const double c = d_add(w, d_add(d_add(d_add(1.0, -w), -hz), d_mul(z, rc)));
  const uint32_t q = static_cast<uint32_t>(static_cast<int32_t>(j)) & 3u;
  const double cs = (q & 1u) ? s : c, sn = (q & 1u) ? c : s;
  *c_out = ((q + 1u) & 2u) ? -cs : cs;
  *s_out = (q & 2u) ? -sn : sn;
}

// The Box-Muller pair for (u1 in (0, 1], u2 in [0, 1)).
FG_HD inline void box_muller(float u1, float u2, float* z0, float* z1) {
  float c, s;
  fast_sincos_turns(u2, &c, &s);
  const float r = f_sqrt(f_mul(-2.0f, fast_logf(u1)));
  *z0 = f_mul(r, c);
  *z1 = f_mul(r, s);
}
FG_HD inline void box_muller(double u1, double u2, double* z0, double* z1) {
  double c, s;
  fast_sincos_turns(u2, &c, &s);
  const double r = d_sqrt(d_mul(-2.0, fast_log(u1)));
  *z0 = d_mul(r, c);
  *z1 = d_mul(r, s);
}

// lo + w * x in T's arithmetic (uniform_, normal with mean / std).
FG_HD inline float affine(float lo, float w, float x) { return f_add(lo, f_mul(w, x)); }
FG_HD inline double affine(double lo, double w, double x) { return d_add(lo, d_mul(w, x)); }

}  // namespace rng

// ---- the global generator ------------------------------------------------------------

// Resets the stream: seed = seed, offset = 0.
void manual_seed(uint64_t seed);
// (seed, offset): offset counts the Philox blocks used since the seed.
std::pair<uint64_t, uint64_t> get_rng_state();
void set_rng_state(uint64_t seed, uint64_t offset);

// ---- sampling into new arrays (contiguous, on `device`) --------------------------------------
//
// On a CUDA device the same numbers as on the CPU (cuda/random.h), drawn
// there; the call reserves the same counter blocks either way.

// Uniform on [0, 1). dtype: float32 or float64 (else TypeError).
Array rand(const Shape& shape, DType dtype, Device device = Device{});
// Standard normal.
Array randn(const Shape& shape, DType dtype, Device device = Device{});
// Normal with the given mean and standard deviation (std >= 0).
Array normal(double mean, double std, const Shape& shape, DType dtype, Device device = Device{});
// Integers uniform on [low, high) (low < high). dtype: any but bool.
Array randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Device device = Device{});
// out[i] = 1 with probability p[i] (0 <= p <= 1), else 0; p's shape, dtype and device.
Array bernoulli(const Array& p);
// Inverted-dropout mask: 1 / (1 - p) with probability 1 - p, else 0
// (0 <= p <= 1; p == 1 gives all zeros). Multiply by it to apply dropout.
Array dropout_mask(const Shape& shape, double p, DType dtype, Device device = Device{});
// A uniformly random permutation of 0..n-1 (Fisher-Yates). dtype: any but bool.
// Serial, so made on the host for a CUDA device (same permutation).
Array randperm(int64_t n, DType dtype, Device device = Device{});

// Samples category indices from the rows of w (1-d: one row; 2-d: a row per
// output row): int64 of shape (S,) or (R, S), on w's device. w: float32 or
// float64, non-negative and finite, each row with a positive entry; need not
// sum to 1. Without replacement, zero-weight categories come last (in index
// order) once the positive ones are used up, as torch allows. Mapping above.
Array multinomial(const Array& w, int64_t num_samples, bool replacement);

// ---- in-place sampling (any strides, any device; bumps the array's version) --------------

// a = uniform on [lo, hi) (lo <= hi).
void uniform_(const Array& a, double lo, double hi);
// a = normal(mean, std) (std >= 0).
void normal_(const Array& a, double mean, double std);

}  // namespace fg
