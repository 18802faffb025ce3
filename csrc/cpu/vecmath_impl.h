// vecmath_impl.h - the math of vecmath.h, written once over a value type V:
// a scalar (float, double) or a GCC vector of them (8/4 lanes with AVX2,
// 16/8 with AVX-512). Operators act lane by lane, comparisons give lane masks
// (all ones / zero), `m ? a : b` selects per lane, so one template serves
// every width.
//
// Included by vecmath_avx2.cpp / vecmath_avx512.cpp (FG_VECMATH_ISA = avx2 /
// avx512: the span kernels) and, through reduce_kernels.h, by the reduction
// files, whose softmax / logsumexp loops call the scalar exp() below (written
// branch-free so those loops still vectorise): one exp in the engine.
// Everything lives in fg::vecmath_detail::FG_VECMATH_ISA and calls only
// compiler builtins (no std:: functions), so the linker can never merge an
// inline function compiled with AVX flags into code a plain x86-64 CPU runs.
//
// Methods (facts from the standard literature, coefficients fitted here):
//   exp:   x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its
//          Taylor polynomial (degree 7 float, 13 double), 2^n applied as two
//          factors so results down into the subnormals are right.
//   log:   x = 2^e m, m in [sqrt(1/2), sqrt(2)) ([0.75, 1.5) from vgetmantps
//          with AVX-512); log(m) = log1p(f) from
//          s = f / (2 + f) and the odd series of 2 atanh(s) (fdlibm's
//          arrangement, which keeps the rounding of s out of the big terms).
//   tanh:  float64: -expm1(-2|x|) / (expm1(-2|x|) + 2) with the sign of x:
//          no cancellation anywhere, so one formula covers all x; float32:
//          expm1(2|x|) / (expm1(2|x|) + 2), one path (see tanh_op).
//   sigmoid / silu / gelu_tanh: e = exp(-|z|) never overflows; sigmoid(z) is
//          1 / (1 + e) or e / (1 + e); gelu_tanh(x) = x * sigmoid(2u), since
//          (1 + tanh u) / 2 = sigmoid(2u) (stable where 1 + tanh u cancels).
//   gelu:  x Phi(x) with Phi(-|x|) = erfc(z) / 2, z = |x| / sqrt 2:
//          z < 0.7: 1/2 - erf(z)/2, erf(z) = z P(z^2);
//          else     exp(-z^2) t Q(t) / 2, t = 1 / (1 + z/2), with -z^2 split
//          exactly into hi + lo by an FMA (its rounding would cost ~z^2 ulp).
//          P and Q are Chebyshev fits (mpmath.chebyfit) of erf(sqrt u)/sqrt u
//          on [0, 0.49] and erfc(z) exp(z^2) / t on t in [0, 1/1.35]; fit
//          error < 0.1 ulp.
#pragma once
#include <cstdint>

#include "cpu/vecmath.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#ifndef FG_VECMATH_ISA
#error "define FG_VECMATH_ISA (base, avx2 or avx512) before including cpu/vecmath_impl.h"
#endif

namespace fg {
namespace vecmath_detail {
namespace FG_VECMATH_ISA {

// ---- value types ------------------------------------------------------------
// Tr<V>: element type T, same-width signed / unsigned integer types I / U,
// lanes W.
template <class V> struct Tr;
template <> struct Tr<float> { using T = float; using I = int32_t; using U = uint32_t; static constexpr int W = 1; };
template <> struct Tr<double> { using T = double; using I = int64_t; using U = uint64_t; static constexpr int W = 1; };

template <class V> inline V mad(V a, V b, V c) { return a * b + c; }  // scalars: contracted where FMA exists
// max(lo, x) / min(hi, x) that keep a NaN x.
template <class V> inline V max_keep_nan(V lo, V x) { return x < lo ? lo : x; }
template <class V> inline V min_keep_nan(V hi, V x) { return x > hi ? hi : x; }

#define FG_VM_VECTYPES(F, D, IF, UF, ID, UD, bytes)                                 \
  typedef float F __attribute__((vector_size(bytes)));                               \
  typedef double D __attribute__((vector_size(bytes)));                              \
  typedef int32_t IF __attribute__((vector_size(bytes)));                            \
  typedef uint32_t UF __attribute__((vector_size(bytes)));                           \
  typedef int64_t ID __attribute__((vector_size(bytes)));                            \
  typedef uint64_t UD __attribute__((vector_size(bytes)));                           \
  template <> struct Tr<F> { using T = float; using I = IF; using U = UF; static constexpr int W = bytes / 4; }; \
  template <> struct Tr<D> { using T = double; using I = ID; using U = UD; static constexpr int W = bytes / 8; };

#ifdef __AVX2__
FG_VM_VECTYPES(f32x8, f64x4, i32x8, u32x8, i64x4, u64x4, 32)
// Explicit FMAs: the exact product split in gelu needs a real one, and every
// multiply-add below is written with mad() so that no copy of an inlined
// function is contracted differently (results must not depend on where in a
// span an element sits).
inline f32x8 mad(f32x8 a, f32x8 b, f32x8 c) { return _mm256_fmadd_ps(a, b, c); }
inline f64x4 mad(f64x4 a, f64x4 b, f64x4 c) { return _mm256_fmadd_pd(a, b, c); }
#endif
#ifdef __AVX512F__
FG_VM_VECTYPES(f32x16, f64x8, i32x16, u32x16, i64x8, u64x8, 64)
inline f32x16 mad(f32x16 a, f32x16 b, f32x16 c) { return _mm512_fmadd_ps(a, b, c); }
inline f64x8 mad(f64x8 a, f64x8 b, f64x8 c) { return _mm512_fmadd_pd(a, b, c); }
// vmaxps(lo, x) / vminps(hi, x) return their second operand when either is
// NaN or both are equal: exactly the selects above, in one instruction
// (GCC emitted a compare and a masked move). The all-lanes masked forms:
// GCC 12's unmasked intrinsics trip -Wmaybe-uninitialized.
inline f32x16 max_keep_nan(f32x16 lo, f32x16 x) { return _mm512_mask_max_ps(x, 0xffff, lo, x); }
inline f32x16 min_keep_nan(f32x16 hi, f32x16 x) { return _mm512_mask_min_ps(x, 0xffff, hi, x); }
inline f64x8 max_keep_nan(f64x8 lo, f64x8 x) { return _mm512_mask_max_pd(x, 0xff, lo, x); }
inline f64x8 min_keep_nan(f64x8 hi, f64x8 x) { return _mm512_mask_min_pd(x, 0xff, hi, x); }
#endif
// x 2^n for float-valued n with one rounding (vscalefps: overflow to inf,
// gradual underflow): exp's scaling in one instruction where AVX-512 has it.
template <class V> struct HasScalef { static constexpr bool value = false; };
#ifdef __AVX512F__
template <> struct HasScalef<f32x16> { static constexpr bool value = true; };
template <> struct HasScalef<f64x8> { static constexpr bool value = true; };
inline f32x16 scalef(f32x16 x, f32x16 n) { return _mm512_mask_scalef_ps(x, 0xffff, x, n); }
inline f64x8 scalef(f64x8 x, f64x8 n) { return _mm512_mask_scalef_pd(x, 0xff, x, n); }
// |x|'s mantissa scaled into [0.75, 1.5) and floor(log2 |x|) (log's split).
inline f32x16 getmant_p75(f32x16 x) {
  return _mm512_mask_getmant_ps(x, 0xffff, x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_zero);
}
inline f64x8 getmant_p75(f64x8 x) {
  return _mm512_mask_getmant_pd(x, 0xff, x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_zero);
}
inline f32x16 getexp(f32x16 x) { return _mm512_mask_getexp_ps(x, 0xffff, x); }
inline f64x8 getexp(f64x8 x) { return _mm512_mask_getexp_pd(x, 0xff, x); }
#endif

// num / d for d in [1, 2^64] (or NaN): every divisor below is 1 + something
// positive. A 16-lane vdivps occupies the divider ~10 cycles, which alone
// made tanh / sigmoid / gelu compute-bound; instead a 14-bit reciprocal, one
// Newton step (~28 bits) and a residual correction (q0 + (num - d q0) / d),
// which gives the correctly rounded quotient but for rare near-halfway cases.
template <class V>
inline V div_pos(V num, V d) {
  return num / d;
}
#ifdef __AVX512F__
inline f32x16 div_pos(f32x16 num, f32x16 d) {
  const f32x16 one = f32x16{} + 1.0f;
  const f32x16 y0 = _mm512_mask_rcp14_ps(d, 0xffff, d);
  const f32x16 y1 = mad(y0, mad(-d, y0, one), y0);
  const f32x16 q0 = num * y1;
  return mad(mad(-d, q0, num), y1, q0);
}
#endif
// num / (d + dlo), d in [1, 2^64] and dlo the rounding error of d (|dlo| <=
// ulp(d) / 2): the residual num - (d + dlo) q0 (exact but for dlo q0) also
// takes the part of the divisor that rounding d dropped. With AVX-512 the
// reciprocal is vrcp14ps alone: q0 is then off by e <= 2^-14 and the
// residual step leaves e^2 <= 2^-28 before the last rounding (div_pos's
// Newton step buys correct rounding, not needed here).
template <class V>
inline V recip_pos(V d) {
  return static_cast<typename Tr<V>::T>(1) / d;
}
#ifdef __AVX512F__
inline f32x16 recip_pos(f32x16 d) { return _mm512_mask_rcp14_ps(d, 0xffff, d); }
#endif
template <class V>
inline V div_pos_lo(V num, V d, V dlo) {
  const V y = recip_pos(d);
  const V q0 = num * y;
  return mad(mad(-dlo, q0, mad(-d, q0, num)), y, q0);
}
#undef FG_VM_VECTYPES

template <class To, class From>
inline To bit_cast(From x) {
  static_assert(sizeof(To) == sizeof(From), "bit cast between different sizes");
  To r;
  __builtin_memcpy(&r, &x, sizeof(r));
  return r;
}

template <class V> using TOf = typename Tr<V>::T;
template <class V> using IOf = typename Tr<V>::I;
template <class V> using UOf = typename Tr<V>::U;

// Every lane = c.
template <class V>
inline V splat(TOf<V> c) {
  if constexpr (Tr<V>::W == 1) {
    return c;
  } else {
    // vector + scalar broadcasts in one instruction (GCC 12 left a lane loop
    // here as up to 16 masked inserts per constant in the big functions);
    // the bits go through an integer so that -0 stays -0.
    using E = decltype(IOf<V>{}[0] + 0);
    return bit_cast<V>(IOf<V>{} + bit_cast<E>(c));
  }
}
template <class V>
inline IOf<V> splat_int(int64_t c) {
  if constexpr (Tr<V>::W == 1) {
    return static_cast<IOf<V>>(c);
  } else {
    return IOf<V>{} + static_cast<decltype(IOf<V>{}[0] + 0)>(c);  // a broadcast, as in splat
  }
}

template <class V> inline IOf<V> as_int(V x) { return bit_cast<IOf<V>>(x); }
template <class V> inline V as_float(IOf<V> x) { return bit_cast<V>(x); }

// Per-type constants.
template <class T> struct K;
template <> struct K<float> {
  static constexpr int kMant = 23, kBias = 127, kExpBias2 = 256;
  static constexpr int32_t kSign = INT32_MIN;
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // hi has 15 trailing zero bits
  static constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: x + kMagic rounds x to an integer in the low bits
  static constexpr float kExpLo = -104.0f, kExpHi = 89.0f;  // exp is 0 below, inf above
  static constexpr float kMinNormal = 1.17549435e-38f, kSubScale = 33554432.0f;  // 2^25
  static constexpr int kSubShift = 25;
  static constexpr float kSqrtHalf = 0.707106781186547524f;
  static constexpr float kTanhLo = -20.0f;  // expm1(-20) == -1 in float
  static constexpr float kGeluClamp = 16.0f;  // Phi(-16) underflows, Phi(16) == 1
  // e^r - 1 - r = r^2 (1/2! + r/3! + ... + r^5/7!)
  static constexpr float kExpm1[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f};
  // 2 atanh(s) / s - 2 = z (2/3 + 2z/5 + ...), z = s^2 <= 0.0295
  static constexpr float kLog[] = {2.0f / 11, 2.0f / 9, 2.0f / 7, 2.0f / 5, 2.0f / 3};
  static constexpr float kErf[] = {-6.962326006e-4f, 5.139740650e-3f, -2.684514038e-2f,
                                   1.128355265e-1f,  -3.761262894e-1f, 1.128379226f};
  static constexpr float kErfcTail[] = {-7.568916155e-2f, 2.457351237e-1f, -2.419835246e-1f, 2.232062206e-2f,
                                        -2.44364188e-2f,  8.683566138e-2f, 1.760303905e-1f,  2.468462752e-1f,
                                        2.820945266e-1f,  2.820947927e-1f};
};
template <> struct K<double> {
  static constexpr int kMant = 52, kBias = 1023, kExpBias2 = 2048;
  static constexpr int64_t kSign = INT64_MIN;
  static constexpr double kLog2e = 1.4426950408889634074;
  static constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double kExpLo = -746.0, kExpHi = 710.0;
  static constexpr double kMinNormal = 2.2250738585072014e-308, kSubScale = 18014398509481984.0;  // 2^54
  static constexpr int kSubShift = 54;
  static constexpr double kSqrtHalf = 0.70710678118654752440;
  static constexpr double kTanhLo = -44.0;
  static constexpr double kGeluClamp = 40.0;
  static constexpr double kExpm1[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                      1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,
                                      1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,        0.5};
  static constexpr double kLog[] = {2.0 / 23, 2.0 / 21, 2.0 / 19, 2.0 / 17, 2.0 / 15, 2.0 / 13,
                                    2.0 / 11, 2.0 / 9,  2.0 / 7,  2.0 / 5,  2.0 / 3};
  static constexpr double kErf[] = {1.1853900971294912e-08, -1.6035418250690846e-07, 1.6440803924876524e-06,
                                    -1.4924790060035794e-05, 0.00012055310581411148, -0.0008548326648005887,
                                    0.005223977621513423,   -0.026866170644891173,  0.11283791670954373,
                                    -0.3761263890318374,    1.1283791670955126};
  static constexpr double kErfcTail[] = {
      2.647652826084110018e-1,  -2.153767690438974367,   8.016974578111152821,   -1.797809830916726623e+1,
      2.688083967595273553e+1,  -2.800866821508957463e+1, 2.073243761657107306e+1, -1.111552409260457222e+1,
      4.587900750694746626,     -1.59336951621324188,    3.76419210362913233e-1,  -2.292604769762372481e-2,
      6.165075883444102193e-2,  -5.235036497677903956e-3, -5.331107847750454629e-2, -5.675854957972567769e-2,
      -4.407293772056756314e-3, 8.374687693893886241e-2,  1.763092451525290581e-1,  2.468329427988996937e-1,
      2.820947917738926673e-1,  2.820947917738781324e-1};
};
constexpr double kErfSplit = 0.7;    // z below: the erf polynomial, above: the erfc tail
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

// ---- lane helpers -------------------------------------------------------------

template <class V, int N>
inline V horner(V x, const TOf<V> (&c)[N]) {
  V r = splat<V>(c[0]);
  for (int i = 1; i < N; ++i) r = mad(r, x, splat<V>(c[i]));
  return r;
}

template <class V> inline V vabs(V x) { return as_float<V>(as_int(x) & ~splat_int<V>(K<TOf<V>>::kSign)); }
// |mag| with the sign of s.
template <class V>
inline V copysign(V mag, V s) {
  const IOf<V> sign = splat_int<V>(K<TOf<V>>::kSign);
  return as_float<V>((as_int(mag) & ~sign) | (as_int(s) & sign));
}

// Order-preserving integer key of a float's bits (and its own inverse).
inline int32_t fkey(int32_t b) { return b ^ ((b >> 31) & 0x7fffffff); }
inline int64_t fkey(int64_t b) { return b ^ ((b >> 63) & 0x7fffffffffffffffLL); }

// x clamped to [lo, hi]; NaN stays NaN. Vectors: two lane selects. Scalars
// (the reduction loops): integer compares on order-preserving keys and a NaN
// bit mask, which the vectoriser if-converts (float compares may trap, so
// GCC keeps branches for chained float selects).
template <class V>
inline V clamp_nan(V x, TOf<V> lo, TOf<V> hi) {
  if constexpr (Tr<V>::W == 1) {
    using I = IOf<V>;
    constexpr I kAbs = static_cast<I>(~static_cast<UOf<V>>(K<V>::kSign));
    const I b = as_int(x);
    const I nan = -static_cast<I>((b & kAbs) > as_int(static_cast<V>(__builtin_inf())));  // all ones for NaN
    const I klo = fkey(as_int(lo)), khi = fkey(as_int(hi));
    I k = fkey(b);
    k = k < klo ? klo : k;
    k = k > khi ? khi : k;
    return as_float<V>((fkey(k) & ~nan) | (b & nan));
  } else {
    return min_keep_nan(splat<V>(hi), max_keep_nan(splat<V>(lo), x));
  }
}

// All-ones lanes where x < lo, zero elsewhere (NaN included). Scalars: the
// integer keys of clamp_nan, so the reduction loops still vectorise.
template <class V>
inline IOf<V> below(V x, TOf<V> lo) {
  if constexpr (Tr<V>::W == 1) {
    using I = IOf<V>;
    constexpr I kAbs = static_cast<I>(~static_cast<UOf<V>>(K<V>::kSign));
    const I b = as_int(x);
    const bool nan = (b & kAbs) > as_int(static_cast<V>(__builtin_inf()));
    return -static_cast<I>((fkey(b) < fkey(as_int(lo))) & !nan);
  } else {
    return x < lo;
  }
}

// n as integer lanes from t = n + kMagic (n small): the low mantissa bits.
template <class V>
inline IOf<V> magic_int(V t) {
  return as_int(t) - as_int(splat<V>(K<TOf<V>>::kMagic));
}
// 2^n for n in the normal exponent range.
template <class V>
inline V pow2(IOf<V> n) {
  using T = TOf<V>;
  return as_float<V>((n + splat_int<V>(K<T>::kBias)) << K<T>::kMant);
}
// Integer lanes -> float lanes, |n| < 2^22 (float) / 2^51 (double): the magic
// number again, because AVX2 has no int64 -> double conversion.
template <class V>
inline V int_to_float(IOf<V> n) {
  const V m = splat<V>(K<TOf<V>>::kMagic);
  return as_float<V>(n + as_int(m)) - m;
}
// floor(n / 2) for |n| < 4096 without an arithmetic shift (AVX2 has none for
// 64-bit lanes): shift the biased, positive value logically.
template <class V>
inline IOf<V> half_floor(IOf<V> n) {
  using U = UOf<V>;
  const U u = bit_cast<U>(n + splat_int<V>(4096)) >> 1;
  return bit_cast<IOf<V>>(u) - splat_int<V>(2048);
}

// e^r - 1 for |r| <= ln2 / 2.
template <class V>
inline V expm1_poly(V r) {
  return mad(r * r, horner(r, K<TOf<V>>::kExpm1), r);
}

// Range reduction x = n ln2 + r: returns r, sets n.
template <class V>
inline V reduce_ln2(V x, IOf<V>* n) {
  using T = TOf<V>;
  const V t = mad(x, splat<V>(K<T>::kLog2e), splat<V>(K<T>::kMagic));
  const V fn = t - K<T>::kMagic;
  *n = magic_int(t);
  V r = mad(fn, splat<V>(-K<T>::kLn2Hi), x);
  return mad(fn, splat<V>(-K<T>::kLn2Lo), r);
}

// ---- the functions ---------------------------------------------------------------

// e^x 2^shift (shift in [-64, 64]: lets a caller keep a tiny result normal).
template <class V>
inline V exp_shift(V x, int shift) {
  using T = TOf<V>;
  IOf<V> n;
  // Below lo the result underflows to 0 even after the shift (1 ln2 margin).
  const T lo = K<T>::kExpLo - T(shift + 1) * T(0.6931471805599453);
  // Lanes below lo are computed from x = 0 and zeroed at the end: an
  // underflowing product costs a microcode assist (~150 cycles), and masked
  // softmax / attention feeds long runs of -inf or -1e9 through here.
  const IOf<V> zero = below(x, lo);
  x = as_float<V>(as_int(x) & ~zero);
  if constexpr (HasScalef<V>::value) {
    // AVX-512: half the instructions of the integer 2^n below (which
    // made float32 exp compute-bound); lanes >= lo need only the top clamp.
    x = min_keep_nan(splat<V>(K<T>::kExpHi), x);
    const V fn = mad(x, splat<V>(K<T>::kLog2e), splat<V>(K<T>::kMagic)) - K<T>::kMagic;
    const V r = mad(fn, splat<V>(-K<T>::kLn2Lo), mad(fn, splat<V>(-K<T>::kLn2Hi), x));
    const V e = expm1_poly(r) + T(1);
    return as_float<V>(as_int(scalef(e, fn + T(shift))) & ~zero);
  }
  const V r = reduce_ln2(clamp_nan(x, lo, K<T>::kExpHi), &n);
  const V e = expm1_poly(r) + T(1);
  // Two factors: n reaches 128 / 1024 at the top and -150 / -1075 at the
  // bottom, beyond one normal power of two.
  n = n + splat_int<V>(shift);
  const IOf<V> n1 = half_floor<V>(n);
  return as_float<V>(as_int(e * pow2<V>(n1) * pow2<V>(n - n1)) & ~zero);
}

template <class V>
inline V exp(V x) {
  return exp_shift(x, 0);
}

// e^x - 1 for x in [kTanhLo, 0] (what tanh needs).
template <class V>
inline V expm1_neg(V x) {
  IOf<V> n;
  const V r = reduce_ln2(x, &n);
  const V s = pow2<V>(n);
  return mad(s, expm1_poly(r), s - TOf<V>(1));  // 2^n (e^r - 1) + (2^n - 1)
}

template <class V>
inline V log(V x) {
  using T = TOf<V>;
  using I = IOf<V>;
  using U = UOf<V>;
  V f, ef;  // x = 2^ef (1 + f), 1 + f in [sqrt(1/2), sqrt(2)) ([0.75, 1.5) with AVX-512)
  if constexpr (HasScalef<V>::value) {
    // vgetmantps / vgetexpps: mantissa in [0.75, 1.5) and exponent in three
    // instructions, subnormals included (the integer path below takes ~12).
    // |s| <= 0.2 there (z <= 0.04): the series' next term stays < 1e-9 ulp-relative.
    const V m = getmant_p75(x), e = getexp(x);
    f = m - T(1);  // exact (Sterbenz)
    ef = m < T(1) ? e + T(1) : e;  // mantissas >= 1.5 were halved
  } else {
    // Subnormals: scale into the normal range first.
    const auto sub = x < K<T>::kMinNormal;
    const V xs = sub ? x * K<T>::kSubScale : x;
    const I adj = sub ? splat_int<V>(K<T>::kSubShift) : splat_int<V>(0);
    const I b = as_int(xs) - as_int(splat<V>(K<T>::kSqrtHalf));
    // e = b >> kMant (floor), through an unsigned shift of a biased value.
    // (adding the sign bit biases by 2^(exponent bits): 256 / 2048)
    const U ub = bit_cast<U>(b) + bit_cast<U>(splat_int<V>(K<T>::kSign));
    const I e = bit_cast<I>(ub >> K<T>::kMant) - splat_int<V>(K<T>::kExpBias2) - adj;
    const I mant = (b & splat_int<V>((int64_t{1} << K<T>::kMant) - 1)) + as_int(splat<V>(K<T>::kSqrtHalf));
    f = as_float<V>(mant) - T(1);  // m - 1, m in [sqrt(1/2), sqrt(2)): exact
    ef = int_to_float<V>(e);
  }
  const V s = div_pos(f, f + T(2));
  const V z = s * s;
  const V hfsq = T(0.5) * f * f;
  // log1p(f) = f - (hfsq - s (hfsq + R)), R = z P(z); e ln2 added in two parts.
  const V r = f - (hfsq - mad(s, mad(z, horner(z, K<T>::kLog), hfsq), ef * K<T>::kLn2Lo));
  V y = mad(ef, splat<V>(K<T>::kLn2Hi), r);
  const T inf = __builtin_inf();
  y = x == inf ? x : y;
  y = x == T(0) ? splat<V>(-inf) : y;
  return x >= T(0) ? y : splat<V>(__builtin_nan(""));  // x < 0 and NaN
}

template <class V>
inline V tanh(V x) {
  using T = TOf<V>;
  V y = vabs(x) * T(-2);
  y = max_keep_nan(splat<V>(K<T>::kTanhLo), y);
  const V em = expm1_neg(y);
  return copysign(div_pos(-em, em + T(2)), x);
}

// ---- the exp / tanh ops -------------------------------------------------------------
// float32 runs pure float vector code (round 1 evaluated it in double and
// rounded once: correctly rounded, but twice the arithmetic and below memory
// speed). Measured max error over dense float32 sweeps: exp 1.06 ulp, tanh 1.43 ulp (at |x| ~ 0.65).

// float32 tanh(|x|) = em / (em + 2), em = expm1(2|x|) = 2^n (e^r - 1) +
// (2^n - 1): one path for every lane (round 2 computed a small-|x|
// polynomial and an exp form in every lane and blended them: twice the
// arithmetic). With a positive argument nothing cancels: near 0 em is
// e^r - 1 itself, and for large |x| a relative error e in em moves the
// quotient by only 2e / (em + 2). (A 5/4 rational minimax in x^2 was 30%
// cheaper but its Horner roundings cost up to 4.7 ulp where tanh -> 1.)
// Above kTanhClamp tanh rounds to 1 in float32 (em stays ~8e7, finite).
// Measured max error (dense float32 sweep): see vecmath.h.
constexpr float kTanhClamp = 9.1f;
constexpr float kTanhExpm1[] = {K<float>::kExpm1[0] * 64, K<float>::kExpm1[1] * 32, K<float>::kExpm1[2] * 16,
                                K<float>::kExpm1[3] * 8,  K<float>::kExpm1[4] * 4,  K<float>::kExpm1[5] * 2};

// min(|x|, hi), NaN stays NaN. (AVX-512DQ's vrangeps min-abs would be one
// instruction instead of two, but measured it turns a NaN x into hi.)
template <class V>
inline V abs_min(V x, TOf<V> hi) {
  return min_keep_nan(splat<V>(hi), vabs(x));
}

template <class V>
inline V exp_op(V x) {
  return exp(x);
}
template <class V>
inline V tanh_op(V x) {
  if constexpr (sizeof(TOf<V>) == 4) {
    using T = float;
    // 2|x| = n ln2 + 2h; everything is halved (exact power-of-two scalings
    // of exp's constants: the same bits as reducing 2|x|, one multiply less)
    const V ax = abs_min(x, kTanhClamp);  // NaN stays NaN
    const V fn = mad(ax, splat<V>(2 * K<T>::kLog2e), splat<V>(K<T>::kMagic)) - K<T>::kMagic;
    const V h = mad(fn, splat<V>(-K<T>::kLn2Lo / 2), mad(fn, splat<V>(-K<T>::kLn2Hi / 2), ax));
    V s2;  // 2^(n+1), n in [0, 27]
    if constexpr (HasScalef<V>::value) {
      s2 = scalef(splat<V>(2.0f), fn);
    } else {
      s2 = pow2<V>(magic_int(fn + K<T>::kMagic) + splat_int<V>(1));
    }
    // (e^2h - 1) / 2 = h + h^2 P(h): expm1_poly's coefficients times 2^(k-1)
    const V half_em = mad(h * h, horner(h, kTanhExpm1), h);
    const V em = mad(s2, half_em, mad(s2, splat<V>(0.5f), splat<V>(-1.0f)));  // 2^n (e^2h - 1) + 2^n - 1
    // d - 2 is exact for every d >= 2 and then so is em - (d - 2): the
    // rounding error of d, which would cost up to 1 ulp of the quotient.
    const V d = em + 2.0f;
    // the quotient is >= 0 (or NaN): or-ing in x's sign is copysign (-0 stays -0)
    const V q = div_pos_lo(em, d, em - (d - 2.0f));
    return as_float<V>(as_int(q) | (as_int(x) & splat_int<V>(K<T>::kSign)));
  } else {
    return tanh(x);
  }
}

// The shift that keeps far-tail intermediates (e^-|z|, Phi(-|x|)) normal:
// x e^-|z| or x Phi(x) are normal numbers again for x down to ~ -90 / -13
// (float), but would otherwise be formed from a subnormal with few bits.
template <class T> constexpr int kShift = sizeof(T) == 4 ? 32 : 64;
template <class T> constexpr T kUp = T(1ULL << (kShift<T> / 2)) * T(1ULL << (kShift<T> / 2));
template <class T> constexpr T kDown = T(1) / kUp<T>;

// Parts of sigmoid(z) = num / d * 2^-kShift: es = exp(-|z|) 2^kShift,
// d = 1 + exp(-|z|), num = 2^kShift (z >= 0) or es (z < 0). Also
// sigmoid (1 - sigmoid) = e / d^2, with no cancellation.
template <class V>
struct SigParts {
  V es, d, num;
};
template <class V>
inline SigParts<V> sig_parts(V z) {
  using T = TOf<V>;
  SigParts<V> p;
  p.es = exp_shift(-vabs(z), kShift<T>);
  p.d = mad(p.es, splat<V>(kDown<T>), splat<V>(T(1)));
  p.num = z >= T(0) ? splat<V>(kUp<T>) : p.es;  // NaN z: es is NaN
  return p;
}

template <class V>
inline V sigmoid(V x) {
  const SigParts<V> p = sig_parts(x);
  return div_pos(p.num, p.d) * kDown<TOf<V>>;
}

// x sigmoid(z): unscaled last where the result may be tiny (x < 0), first
// where x may be huge.
template <class V>
inline V times_sigmoid(V x, V z) {
  using T = TOf<V>;
  const SigParts<V> p = sig_parts(z);
  const V r = div_pos(p.num, p.d);
  return x < T(0) ? (x * r) * kDown<T> : x * (r * kDown<T>);
}

template <class V>
inline V silu(V x) {
  return times_sigmoid(x, x);
}

// z = 2u = 2 sqrt(2/pi) (x + 0.044715 x^3) and dz/dx.
template <class V>
inline V gelu_tanh_arg(V x, V* dz) {
  using T = TOf<V>;
  const T c0 = T(2 * kSqrt2OverPi), c1 = T(2 * kSqrt2OverPi * 0.044715);
  const V x2 = x * x;
  if (dz) *dz = mad(x2, splat<V>(3 * c1), splat<V>(c0));
  return x * mad(x2, splat<V>(c1), splat<V>(c0));
}

template <class V>
inline V gelu_tanh(V x) {
  return times_sigmoid(x, gelu_tanh_arg<V>(x, nullptr));
}

// Phi(-|x|) (the normal CDF) and exp(-x^2 / 2), both times 2^kShift.
template <class V>
inline V normal_tail_scaled(V x, V* gauss) {
  using T = TOf<V>;
  V xa = vabs(x);
  xa = min_keep_nan(splat<V>(K<T>::kGeluClamp), xa);
  const V h = xa * xa;
  const V l = mad(xa, xa, -h);  // x^2 = h + l exactly
  const V z = xa * T(K<T>::kSqrtHalf);
  // exp(-(h + l) / 2) = exp(-h/2) (1 - l/2) to working precision
  const V e0 = exp_shift(h * T(-0.5), kShift<T>);
  const V g = mad(e0, l * T(-0.5), e0);
  const T scale = T(0.5) * kUp<T>;
  const V small = mad(z * (-scale), horner(h * T(0.5), K<T>::kErf), splat<V>(scale));
  const V t = div_pos(splat<V>(T(1)), mad(z, splat<V>(T(0.5)), splat<V>(T(1))));
  const V tail = T(0.5) * g * t * horner(t, K<T>::kErfcTail);
  *gauss = g;
  return z < T(kErfSplit) ? small : tail;
}

template <class V>
inline V gelu(V x) {
  using T = TOf<V>;
  V gauss;
  const V q = normal_tail_scaled(x, &gauss);
  // x < 0: x Phi(-|x|), unscaled last; x >= 0: x (1 - Phi(-|x|)).
  return x < T(0) ? (x * q) * kDown<T> : x * mad(q, splat<V>(-kDown<T>), splat<V>(T(1)));
}

// ---- backward (g: incoming gradient, v: see vecmath.h) ------------------------------

template <class V>
inline V relu_backward(V g, V y) {
  using T = TOf<V>;
  return y <= T(0) ? splat<V>(T(0)) : g;  // NaN passes the gradient, as in PyTorch
}
template <class V>
inline V sigmoid_backward(V g, V y) {
  using T = TOf<V>;
  return g * y * (T(1) - y);
}
template <class V>
inline V tanh_backward(V g, V y) {
  using T = TOf<V>;
  return g * mad(-y, y, splat<V>(T(1)));
}
template <class V>
inline V gelu_backward(V g, V x) {
  // Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi); scaled as in gelu.
  using T = TOf<V>;
  V gauss;
  const V q = normal_tail_scaled(x, &gauss);
  const V xg = x * gauss;
  const V neg = mad(xg, splat<V>(T(kInvSqrt2Pi)), q) * kDown<T>;
  const V pos = mad(xg * kDown<T>, splat<V>(T(kInvSqrt2Pi)), mad(q, splat<V>(-kDown<T>), splat<V>(T(1))));
  return g * (x < T(0) ? neg : pos);
}
template <class V>
inline V gelu_tanh_backward(V g, V x) {
  // d/dx x s(z) = s + x z' s (1 - s) = (num + x z' e / d) / d
  using T = TOf<V>;
  V dz;
  const SigParts<V> p = sig_parts(gelu_tanh_arg<V>(x, &dz));
  const V inv = div_pos(splat<V>(T(1)), p.d);
  return g * ((mad(x * dz, p.es * inv, p.num) * inv) * kDown<T>);
}
template <class V>
inline V silu_backward(V g, V x) {
  // s (1 + x (1 - s)) = (num + x e / d) / d
  using T = TOf<V>;
  const SigParts<V> p = sig_parts(x);
  const V inv = div_pos(splat<V>(T(1)), p.d);
  return g * ((mad(x, p.es * inv, p.num) * inv) * kDown<T>);
}
template <class V>
inline V relu(V x) {
  using T = TOf<V>;
  return x < T(0) ? splat<V>(T(0)) : x;  // keeps -0 and NaN, like torch
}

// ---- span kernels ------------------------------------------------------------------
// Whole vectors, then the tail through the same vector code in a zero-padded
// buffer (so an element's result never depends on its position).

#define FG_VM_OP1(Name, fn, stream)            \
  struct Name {                                \
    static constexpr bool kStream = stream;    \
    template <class V>                         \
    static V apply(V x) {                      \
      return fn<V>(x);                         \
    }                                          \
  };
#define FG_VM_OP2(Name, fn, stream)            \
  struct Name {                                \
    static constexpr bool kStream = stream;    \
    template <class V>                         \
    static V apply(V g, V v) {                 \
      return fn<V>(g, v);                      \
    }                                          \
  };
FG_VM_OP1(ExpOp, exp_op, false)
FG_VM_OP1(LogOp, log, false)
FG_VM_OP1(TanhOp, tanh_op, false)
FG_VM_OP1(SigmoidOp, sigmoid, false)
FG_VM_OP1(SiluOp, silu, false)
FG_VM_OP1(GeluOp, gelu, false)
FG_VM_OP1(GeluTanhOp, gelu_tanh, false)
FG_VM_OP1(ReluOp, relu, true)
FG_VM_OP2(ReluBwOp, relu_backward, true)
FG_VM_OP2(SigmoidBwOp, sigmoid_backward, true)
FG_VM_OP2(TanhBwOp, tanh_backward, true)
FG_VM_OP2(GeluBwOp, gelu_backward, false)
FG_VM_OP2(GeluTanhBwOp, gelu_tanh_backward, false)
FG_VM_OP2(SiluBwOp, silu_backward, false)
#undef FG_VM_OP1
#undef FG_VM_OP2

// Outputs of at least kStreamBytes per call (a parallel_for chunk) of the
// cheap ops (Op::kStream: relu and the backward ops that are a few flops)
// are written with non-temporal stores: they cannot stay in the 48 MB LLC
// with their input anyway, and a streaming store skips the read-for-ownership
// of each output line (8 instead of 12 bytes of traffic per float for a
// unary op). Measured (16M floats, one thread): relu 0.53x -> 0.88x of the
// copy bandwidth, but exp 0.52x -> 0.36x and tanh / gelu lost as much: where
// the arithmetic already takes longer than the memory traffic, streaming
// stores slowed the loop, so the transcendental ops keep cached stores.
// Smaller outputs stay cacheable for the op that reads them next.
// (8 MB: parallel_for gives each of 2 threads 4 chunks, so a 64 MB output
// arrives in 8 MB pieces; one thread sees the whole span.)
constexpr int64_t kStreamBytes = int64_t{8} << 20;

// Streaming store of a whole vector to p, aligned to sizeof(V).
template <class V>
inline void stream_store(TOf<V>* p, V a) {
  __builtin_memcpy(p, &a, sizeof(V));  // scalars: a plain store
}
#ifdef __AVX2__
inline void stream_store(float* p, f32x8 a) { _mm256_stream_ps(p, a); }
inline void stream_store(double* p, f64x4 a) { _mm256_stream_pd(p, a); }
#endif
#ifdef __AVX512F__
inline void stream_store(float* p, f32x16 a) { _mm512_stream_ps(p, a); }
inline void stream_store(double* p, f64x8 a) { _mm512_stream_pd(p, a); }
#endif

template <class V>
inline void store_v(TOf<V>* p, V a, bool stream) {
  if (stream) {
    stream_store(p, a);
  } else {
    __builtin_memcpy(p, &a, sizeof(V));
  }
}

// Elements [0, m), m <= W, through the full-vector code (zero padded).
template <class V, class Op>
inline void part1(const TOf<V>* x, TOf<V>* y, int64_t m) {
  V a{};
  __builtin_memcpy(&a, x, m * sizeof(TOf<V>));
  a = Op::apply(a);
  __builtin_memcpy(y, &a, m * sizeof(TOf<V>));
}
template <class V, class Op>
inline void part2(const TOf<V>* g, const TOf<V>* v, TOf<V>* y, int64_t m) {
  V a{}, b{};
  __builtin_memcpy(&a, g, m * sizeof(TOf<V>));
  __builtin_memcpy(&b, v, m * sizeof(TOf<V>));
  a = Op::apply(a, b);
  __builtin_memcpy(y, &a, m * sizeof(TOf<V>));
}

// Elements before y + result are the head that brings y to a vector
// boundary when streaming (0 otherwise, or when y is not even T-aligned).
template <class V>
inline int64_t stream_head(const TOf<V>* y, int64_t n) {
  using T = TOf<V>;
  if (n * int64_t{sizeof(T)} < kStreamBytes) return -1;
  const auto addr = reinterpret_cast<uintptr_t>(y);
  if (addr % sizeof(T) != 0) return -1;
  return static_cast<int64_t>((sizeof(V) - addr % sizeof(V)) % sizeof(V) / sizeof(T));
}

template <class V, class Op>
void span1(const TOf<V>* x, TOf<V>* y, int64_t n) {
  constexpr int W = Tr<V>::W;
  int64_t i = 0;
  const int64_t head = Op::kStream ? stream_head<V>(y, n) : -1;
  const bool stream = head >= 0;
  if (head > 0) {
    part1<V, Op>(x, y, head);
    i = head;
  }
  // Two vectors per trip: independent chains for the out-of-order core.
  for (; i + 2 * W <= n; i += 2 * W) {
    V a, b;
    __builtin_memcpy(&a, x + i, sizeof(V));
    __builtin_memcpy(&b, x + i + W, sizeof(V));
    a = Op::apply(a);
    b = Op::apply(b);
    store_v(y + i, a, stream);
    store_v(y + i + W, b, stream);
  }
  if (stream) __builtin_ia32_sfence();  // order the streamed lines before the caller's next stores
  for (; i < n; i += W) part1<V, Op>(x + i, y + i, n - i < W ? n - i : W);
}

template <class V, class Op>
void span2(const TOf<V>* g, const TOf<V>* v, TOf<V>* y, int64_t n) {
  constexpr int W = Tr<V>::W;
  int64_t i = 0;
  const int64_t head = Op::kStream ? stream_head<V>(y, n) : -1;
  const bool stream = head >= 0;
  if (head > 0) {
    part2<V, Op>(g, v, y, head);
    i = head;
  }
  // Two vectors per trip, as in span1.
  for (; i + 2 * W <= n; i += 2 * W) {
    V a, b, c, d;
    __builtin_memcpy(&a, g + i, sizeof(V));
    __builtin_memcpy(&b, v + i, sizeof(V));
    __builtin_memcpy(&c, g + i + W, sizeof(V));
    __builtin_memcpy(&d, v + i + W, sizeof(V));
    a = Op::apply(a, b);
    c = Op::apply(c, d);
    store_v(y + i, a, stream);
    store_v(y + i + W, c, stream);
  }
  if (stream) __builtin_ia32_sfence();
  for (; i < n; i += W) part2<V, Op>(g + i, v + i, y + i, n - i < W ? n - i : W);
}

template <class V>
vecmath::Kernels<TOf<V>> make_table(const char* isa) {
  return vecmath::Kernels<TOf<V>>{
      isa,
      {&span1<V, ExpOp>, &span1<V, LogOp>, &span1<V, TanhOp>, &span1<V, SigmoidOp>, &span1<V, SiluOp>,
       &span1<V, GeluOp>, &span1<V, GeluTanhOp>, &span1<V, ReluOp>},
      {&span2<V, ReluBwOp>, &span2<V, SigmoidBwOp>, &span2<V, TanhBwOp>, &span2<V, GeluBwOp>,
       &span2<V, GeluTanhBwOp>, &span2<V, SiluBwOp>}};
}

}  // namespace FG_VECMATH_ISA
}  // namespace vecmath_detail
}  // namespace fg
