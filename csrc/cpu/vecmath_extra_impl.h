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
      {&span<V, Log1pOp>, &span<V, Expm1Op>, &span<V, SoftplusOp>, &span<V, EluOp>, &span<V, LeakyReluOp>}};
}

}  // namespace extra
}  // namespace FG_VECMATH_ISA
}  // namespace vecmath_detail
}  // namespace fg
