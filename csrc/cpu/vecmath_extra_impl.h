// vecmath_extra_impl.h - the math of vecmath_extra.h over a value type V
// (see vecmath_impl.h: a GCC vector of float or double, lane-wise operators,
// lane masks from comparisons), built from vecmath_impl.h's exp, log and
// ln2 range reduction.
//
// Included by vecmath_extra_avx2.cpp / vecmath_extra_avx512.cpp with
// FG_VECMATH_ISA set; everything lives in
// fg::vecmath_detail::FG_VECMATH_ISA::extra and calls only compiler builtins.
//
// Methods:
//   expm1: x = n ln2 + r as in exp; 2^n (e^r - 1) + (2^n - 1), which has no
//          cancellation near 0 (n = 0 gives e^r - 1 itself); below kTanhLo
//          the result is -1 in the type, at the very top (2^n not normal)
//          e^r 2^n1 2^n2 as in exp.
//   log1p: u = 1 + x rounded, log1p(x) = log(u) + (x - (u - 1)) / u: the
//          second term is the first-order correction for what the rounding
//          of 1 + x lost.
//   softplus: log1p(e^z) = max(z, 0) + log1p(e^-|z|): no overflow for any z.
//   erf, sin, cos, tan: see their sections below.
#pragma once
#include "cpu/vecmath_extra.h"
#include "cpu/vecmath_impl.h"

namespace fg {
namespace vecmath_detail {
namespace FG_VECMATH_ISA {
namespace extra {

template <class V>
inline V expm1(V x) {
  using T = TOf<V>;
  IOf<V> n;
  const V r = reduce_ln2(clamp_nan(x, K<T>::kTanhLo, K<T>::kExpHi), &n);
  const V em = expm1_poly(r);
  const V s = pow2<V>(n);
  const V y = mad(s, em, s - T(1));
  const IOf<V> n1 = half_floor<V>(n);
  const V top = (em + T(1)) * pow2<V>(n1) * pow2<V>(n - n1);  // overflows to inf where it should
  const V res = n >= splat_int<V>(K<T>::kBias + 1) ? top : y;
  return x == T(0) ? x : res;  // -0 stays -0
}

template <class V>
inline V log1p(V x) {
  using T = TOf<V>;
  const V u = x + T(1);
  V c = (x - (u - T(1))) / u;
  c = c == c ? c : splat<V>(T(0));  // u = 0 or inf (x = -1 or inf): 0/0, inf - inf
  const V y = log(u) + c;
  return x == T(0) ? x : y;  // -0 stays -0
}

// log1p(t) for t in [0, 1] (or NaN): u = 1 + t lies in [1, 2], where
// div_pos divides without the divider (AVX-512).
template <class V>
inline V log1p_unit(V t) {
  using T = TOf<V>;
  const V u = t + T(1);
  return log(u) + div_pos(t - (u - T(1)), u);
}

template <class V>
inline V softplus(V x, TOf<V> beta, TOf<V> threshold) {
  using T = TOf<V>;
  const V z = x * beta;
  const V pos = z > T(0) ? z : splat<V>(T(0));
  V y = pos + log1p_unit(exp(-vabs(z)));
  if (beta != T(1)) y = y / beta;  // a division, as PyTorch's kernel does (the branch is the same for a whole span)
  return z > threshold ? x : y;
}

template <class V>
inline V elu(V x, TOf<V> alpha) {
  using T = TOf<V>;
  return x > T(0) ? x : expm1(x) * alpha;
}

template <class V>
inline V leaky_relu(V x, TOf<V> slope) {
  using T = TOf<V>;
  return x > T(0) ? x : x * slope;
}

// ---- erf -------------------------------------------------------------------------
// erf(z), z = |x|: below the split z (1 + c + z^2 Q(z^2)), c = 2/sqrt(pi) - 1
// (adding the constant to z last keeps its rounding out: ~0.1 ulp instead
// of ~0.5); above it 1 - erfc(z), erfc(z) = exp(-z^2) t R(t), t = 1 /
// (1 + z/2), R vecmath_impl.h's fit (the normal tail of gelu). float32: Q a
// relative minimax fit of erf on z <= 1.25 (Lawson-weighted least squares
// here, coefficients rounded to float one at a time with the rest refitted;
// fit error 0.02 ulp), split 1.0, where erfc = 0.16 scales the tail's
// error down (1.25 measured 1.48 ulp, its Horner sum cancelling);
// float64: the gelu fit of erf on z <= 0.7 (vecmath_impl.h).
// -z^2 is rounded here (gelu splits it exactly): that costs erfc(z) z^2 / 2
// ulp relative, under 0.1 ulp of erf = 1 - erfc. Above kClamp erf rounds to 1.
template <class T> struct ErfK;
template <> struct ErfK<float> {
  static constexpr float kSplit = 1.0f, kClamp = 4.0f, kC = 0.12837916612625122f;
  static constexpr float kQ[] = {-7.420449946948793e-06f, 0.0001031532883644104f, -0.0008323835791088641f,
                                 0.005207476671785116f,   -0.026859493926167488f, 0.11283658444881439f,
                                 -0.3761262893676758f};
};
template <> struct ErfK<double> {
  static constexpr double kSplit = kErfSplit, kClamp = 6.0;
  static constexpr int kN = sizeof(K<double>::kErf) / sizeof(double);
  static constexpr double kC = K<double>::kErf[kN - 1] - 1.0;  // exact: the fit's constant term minus 1
};

template <class V>
inline V erf(V x) {
  using T = TOf<V>;
  using E = ErfK<T>;
  const V z = min_keep_nan(splat<V>(E::kClamp), vabs(x));  // NaN stays NaN
  const V z2 = z * z;
  V q;
  if constexpr (sizeof(T) == 4) {
    q = horner(z2, E::kQ);
  } else {  // the gelu fit without its constant term
    q = splat<V>(K<T>::kErf[0]);
    for (int i = 1; i < E::kN - 1; ++i) q = mad(q, z2, splat<V>(K<T>::kErf[i]));
  }
  const V small = mad(z, mad(q, z2, splat<V>(E::kC)), z);
  const V t = div_pos(splat<V>(T(1)), mad(z, splat<V>(T(0.5)), splat<V>(T(1))));
  const V erfc = exp(-z2) * t * horner(t, K<T>::kErfcTail);
  return copysign(z < E::kSplit ? small : T(1) - erfc, x);  // the sign last: erf(-0) = -0
}

// ---- sin, cos, tan ---------------------------------------------------------------------
// x = n pi/2 + r, |r| <= pi/4: n = round(x 2/pi), r = x - n C1 - n C2 - n C3
// with pi/2 = C1 + C2 + C3 (each the rounded rest), every step an FMA. The
// first step is exact: x and n C1 are multiples of ulp(C1) (x >= 1) and
// |r| < 1, so the result fits; the later ones round relative to r itself.
// Adequate while n C3's dropped tail stays far below r's ulp: |x| <=
// kTrigBig (the closest float / double multiples of pi/2 there leave r >=
// ~1e-9 / ~1e-19); larger lanes (and +-inf) go to libm, per lane.
// sin(r) and cos(r) by their Taylor series (truncation < 0.05 ulp on
// |r| <= pi/4), then the quadrant n mod 4 swaps them and flips signs.
template <class T> struct Trig;
template <> struct Trig<float> {
  static constexpr float k2OverPi = 0.636619772f;
  static constexpr float kC1 = 1.570796371e+00f, kC2 = -4.371138829e-08f, kC3 = -1.715124510e-15f;
  static constexpr float kBig = 1e5f;
  // sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2), highest degree first
  static constexpr float kSin[] = {1.0f / 362880, -1.0f / 5040, 1.0f / 120, -1.0f / 6};
  static constexpr float kCos[] = {-1.0f / 3628800, 1.0f / 40320, -1.0f / 720, 1.0f / 24};
  static constexpr int kSignShift = 30;  // bit 1 of n -> the sign bit
};
template <> struct Trig<double> {
  static constexpr double k2OverPi = 0.6366197723675814;
  static constexpr double kC1 = 1.5707963267948966, kC2 = 6.123233995736766e-17, kC3 = -1.4973849048591698e-33;
  static constexpr double kBig = 1e5;
  static constexpr double kSin[] = {1.0 / 355687428096000.0, -1.0 / 1307674368000.0, 1.0 / 6227020800.0,
                                    -1.0 / 39916800.0,        1.0 / 362880.0,         -1.0 / 5040.0,
                                    1.0 / 120.0,              -1.0 / 6.0};
  static constexpr double kCos[] = {-1.0 / 6402373705728000.0, 1.0 / 20922789888000.0, -1.0 / 87178291200.0,
                                    1.0 / 479001600.0,         -1.0 / 3628800.0,       1.0 / 40320.0,
                                    -1.0 / 720.0,              1.0 / 24.0};
  static constexpr int kSignShift = 62;
};

// Which = 0: sin, 1: cos, 2: tan, for |x| <= kTrigBig (other lanes: garbage).
template <int Which, class V>
inline V trig_reduced(V x) {
  using T = TOf<V>;
  using C = Trig<T>;
  const V t = mad(x, splat<V>(C::k2OverPi), splat<V>(K<T>::kMagic));
  const V fn = t - K<T>::kMagic;
  const IOf<V> n = magic_int(t);
  V r = mad(fn, splat<V>(-C::kC1), x);  // -0 stays -0 (fn = +0)
  r = mad(fn, splat<V>(-C::kC2), r);
  r = mad(fn, splat<V>(-C::kC3), r);
  const V r2 = r * r;
  const V s = mad(r * r2, horner(r2, C::kSin), r);
  const V c = mad(r2 * r2, horner(r2, C::kCos), mad(r2, splat<V>(T(-0.5)), splat<V>(T(1))));
  const IOf<V> one = splat_int<V>(1), two = splat_int<V>(2);
  const IOf<V> odd = (n & one) != splat_int<V>(0);  // lane masks
  // sin x = (s, c, -s, -c)[n mod 4], cos x = (c, -s, -c, s)[n mod 4]
  V sx = as_float<V>(as_int(odd ? c : s) ^ ((n & two) << C::kSignShift));
  sx = x == T(0) ? x : sx;  // sin(-0) = -0: r^3 S(r^2) (S < 0) would add +0 to r = -0
  if constexpr (Which == 0) return sx;
  const V cx = as_float<V>(as_int(odd ? s : c) ^ (((n + one) & two) << C::kSignShift));
  if constexpr (Which == 1) return cx;
  return sx / cx;  // a real division: cx may be negative
}

// All-ones lanes of m? (movemask / test instructions; scalars: m != 0)
template <class I>
inline bool any_lane(I m) {
  return m != 0;
}
#ifdef __AVX2__
inline bool any_lane(i32x8 m) { const __m256i v = bit_cast<__m256i>(m); return !_mm256_testz_si256(v, v); }
inline bool any_lane(i64x4 m) { const __m256i v = bit_cast<__m256i>(m); return !_mm256_testz_si256(v, v); }
#endif
#ifdef __AVX512F__
inline bool any_lane(i32x16 m) { const __m512i v = bit_cast<__m512i>(m); return _mm512_test_epi32_mask(v, v) != 0; }
inline bool any_lane(i64x8 m) { const __m512i v = bit_cast<__m512i>(m); return _mm512_test_epi64_mask(v, v) != 0; }
#endif

template <int Which, class T>
inline T trig_libm(T v) {
  if constexpr (sizeof(T) == 4) {
    return Which == 0 ? __builtin_sinf(v) : Which == 1 ? __builtin_cosf(v) : __builtin_tanf(v);
  } else {
    return Which == 0 ? __builtin_sin(v) : Which == 1 ? __builtin_cos(v) : __builtin_tan(v);
  }
}

template <int Which, class V>
inline V trig(V x) {
  using T = TOf<V>;
  V y = trig_reduced<Which>(x);
  const IOf<V> big = vabs(x) > Trig<T>::kBig;  // +-inf too; NaN is not (and stays NaN above)
  if (__builtin_expect(any_lane(big), 0)) {
    for (int i = 0; i < Tr<V>::W; ++i) {
      if (big[i]) y[i] = trig_libm<Which>(x[i]);
    }
  }
  return y;
}

#define FG_VMX_OP(Name, expr)                         \
  struct Name {                                       \
    template <class V>                                \
    static V apply(V x, TOf<V> p0, TOf<V> p1) {       \
      (void)p0;                                       \
      (void)p1;                                       \
      return expr;                                    \
    }                                                 \
  };
FG_VMX_OP(Log1pOp, log1p(x))
FG_VMX_OP(Expm1Op, expm1(x))
FG_VMX_OP(SoftplusOp, softplus(x, p0, p1))
FG_VMX_OP(EluOp, elu(x, p0))
FG_VMX_OP(LeakyReluOp, leaky_relu(x, p0))
FG_VMX_OP(ErfOp, erf(x))
FG_VMX_OP(SinOp, trig<0>(x))
FG_VMX_OP(CosOp, trig<1>(x))
FG_VMX_OP(TanOp, trig<2>(x))
#undef FG_VMX_OP

// Whole vectors two at a time (independent chains), then the tail through
// the same vector code in a zero-padded buffer.
template <class V, class Op>
void span(const TOf<V>* x, TOf<V>* y, int64_t n, TOf<V> p0, TOf<V> p1) {
  constexpr int W = Tr<V>::W;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    V a, b;
    __builtin_memcpy(&a, x + i, sizeof(V));
    __builtin_memcpy(&b, x + i + W, sizeof(V));
    a = Op::apply(a, p0, p1);
    b = Op::apply(b, p0, p1);
    __builtin_memcpy(y + i, &a, sizeof(V));
    __builtin_memcpy(y + i + W, &b, sizeof(V));
  }
  for (; i < n; i += W) {
    const int64_t m = n - i < W ? n - i : W;
    V a{};
    __builtin_memcpy(&a, x + i, m * sizeof(TOf<V>));
    a = Op::apply(a, p0, p1);
    __builtin_memcpy(y + i, &a, m * sizeof(TOf<V>));
  }
}

template <class V>
vecmath::ExtraKernels<TOf<V>> make_extra_table(const char* isa) {
  return vecmath::ExtraKernels<TOf<V>>{
      isa,
      {&span<V, Log1pOp>, &span<V, Expm1Op>, &span<V, SoftplusOp>, &span<V, EluOp>, &span<V, LeakyReluOp>,
       &span<V, ErfOp>, &span<V, SinOp>, &span<V, CosOp>, &span<V, TanOp>}};
}

}  // namespace extra
}  // namespace FG_VECMATH_ISA
}  // namespace vecmath_detail
}  // namespace fg
