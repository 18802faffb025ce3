// optim_math.h - THE per-element update math of every fused optimizer, and
// the loops that run it over one contiguous span of a parameter.
//
// One routine per optimizer (sgd_update, adam_update, adagrad_update,
// rmsprop_update), free of arrays, threads and dtype dispatch, so the CPU
// builds and a CUDA kernel can share it. Each mirrors torch.optim's
// single-tensor CPU path op for op, with the same roundings:
//   - `x.add(y, alpha=a)`, `x.lerp_(y, w)` and `x.addcmul_(y, z, value=v)` are
//     computed by torch with one FMA each (we measured: x + a*y, x + w*(y-x)
//     and x + (v*y)*z with a single rounding), so we call fmadd() there;
//   - `x.mul_(s)`, `x / s`, `x.add_(s)`, `x.addcdiv_(y, z, value=v)`
//     (= x + (v*y)/z), sqrt and maximum round every op, as written below;
//   - every scalar is cast to the param's dtype before use, like torch's
//     Scalar arguments.
// The builds with FMA (optim_avx2.cpp, and CUDA) therefore round exactly like
// torch's float32 CPU path, with one exception: our sqrt is correctly
// rounded, while torch 2.13's CPU sqrt is 1 ulp off for ~0.6% of float32
// elements (measured against NumPy), so Adam, Adagrad and RMSprop agree with
// torch to ~1 ulp per step; SGD, with no sqrt, matches bit for bit. The
// baseline x86-64 build (no FMA instruction) rounds the product in fmadd()
// separately and differs from torch by an ulp at times.
//
// Two instruction-set builds include this file: optim.cpp (baseline) with
// FG_OPTIM_ISA=scalar and optim_avx2.cpp (-mavx2 -mfma) with
// FG_OPTIM_ISA=avx2. Everything compiled with ISA flags lives in the
// namespace fg::optim_detail::FG_OPTIM_ISA, so no AVX instruction can leak
// into code a plain x86-64 CPU runs (inline functions of one name compiled
// with different flags would otherwise be merged by the linker). For the same
// reason the math calls compiler builtins, not std::sqrt / std::fma.
#pragma once
#include <cstdint>

namespace fg {
namespace optim_detail {

// ---------------------------------------------------------------------------
// Host-side parameters of one update, already cast to the param's dtype T.
// ---------------------------------------------------------------------------

// torch's Tensor.lerp_(end, w) = start + w * (end - start) for |w| < 0.5,
// else end - (1 - w) * (end - start); both as one FMA with these operands.
template <class T>
struct Lerp {
  T coeff;           // w, or w - 1 (rounded in T, like torch)
  bool from_start;   // |w| < 0.5: the FMA adds to start, else to end
};

template <class T>
Lerp<T> make_lerp(double weight) {
  T w = static_cast<T>(weight);
  bool small = (w < T(0) ? -w : w) < T(0.5);
  return Lerp<T>{small ? w : w - T(1), small};
}

template <class T>
struct SgdConsts {
  T sign;                  // -1 when maximize (negation is exact)
  bool has_weight_decay;   // weight_decay != 0
  T weight_decay;
  T momentum;
  T one_minus_dampening;
  bool nesterov;
  T neg_lr;
};

template <class T>
struct AdamConsts {
  T sign;
  enum : int { kNoDecay = 0, kL2 = 1, kDecoupled = 2 } decay_mode;
  T weight_decay;      // kL2: grad += weight_decay * param
  T decay;             // kDecoupled: param *= 1 - lr * weight_decay
  Lerp<T> beta1_lerp;  // exp_avg.lerp_(grad, 1 - beta1)
  T beta2;
  T one_minus_beta2;
  T bias_correction2_sqrt;  // sqrt(1 - beta2^step), computed in double
  T eps;
  T neg_step_size;          // -lr / (1 - beta1^step), computed in double
};

template <class T>
struct AdagradConsts {
  T sign;
  bool has_weight_decay;
  T weight_decay;
  T eps;
  T neg_clr;  // -lr / (1 + (step - 1) * lr_decay), computed in double
};

template <class T>
struct RmspropConsts {
  T sign;
  bool has_weight_decay;
  T weight_decay;
  T alpha;
  T one_minus_alpha;
  Lerp<T> alpha_lerp;  // grad_avg.lerp_(grad, 1 - alpha)
  T eps;
  T momentum;
  T neg_lr;
};

// ---------------------------------------------------------------------------
// One contiguous span of one param and its state (n elements each).
// ---------------------------------------------------------------------------

template <class T> struct SgdSpan { T* param; const T* grad; T* momentum_buffer; int64_t n; };
template <class T> struct AdamSpan { T* param; const T* grad; T* exp_avg; T* exp_avg_sq; T* max_exp_avg_sq; int64_t n; };
template <class T> struct AdagradSpan { T* param; const T* grad; T* sum; int64_t n; };
template <class T> struct RmspropSpan { T* param; const T* grad; T* square_avg; T* momentum_buffer; T* grad_avg; int64_t n; };

// The span loops of each instruction-set build (explicitly instantiated for
// float and double in optim.cpp and optim_avx2.cpp). Template flags select
// which state arrays are touched, so each variant is one straight loop.
#define FG_OPTIM_DECLARE_SPANS(ISA)                                                            \
  namespace ISA {                                                                              \
  template <class T, bool kMomentum, bool kFirstStep>                                          \
  void sgd_span(const SgdConsts<T>& c, const SgdSpan<T>& s);                                   \
  template <class T, bool kAmsgrad>                                                            \
  void adam_span(const AdamConsts<T>& c, const AdamSpan<T>& s);                                \
  template <class T>                                                                           \
  void adagrad_span(const AdagradConsts<T>& c, const AdagradSpan<T>& s);                       \
  template <class T, bool kCentered, bool kMomentum>                                           \
  void rmsprop_span(const RmspropConsts<T>& c, const RmspropSpan<T>& s);                       \
  }
FG_OPTIM_DECLARE_SPANS(scalar)
FG_OPTIM_DECLARE_SPANS(avx2)
#undef FG_OPTIM_DECLARE_SPANS

}  // namespace optim_detail
}  // namespace fg

// ---------------------------------------------------------------------------
// The math and the loops, compiled once per instruction set.
// ---------------------------------------------------------------------------
#ifdef FG_OPTIM_ISA

#ifdef __CUDACC__
#define FG_OPTIM_HD __host__ __device__
#else
#define FG_OPTIM_HD
#endif

// torch rounds `x.mul_(s)` before adding to it; GCC's default
// -ffp-contract=fast would fuse such a product into the next add (even
// across statements), so contraction is off here and every FMA is explicit.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

namespace fg {
namespace optim_detail {
namespace FG_OPTIM_ISA {

// a * b + c, rounded once where the hardware has FMA (as torch computes it).
FG_OPTIM_HD inline float fmadd(float a, float b, float c) {
#if defined(__FMA__) || defined(__CUDACC__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}
FG_OPTIM_HD inline double fmadd(double a, double b, double c) {
#if defined(__FMA__) || defined(__CUDACC__)
  return __builtin_fma(a, b, c);
#else
  return a * b + c;
#endif
}
FG_OPTIM_HD inline float sqrt_(float x) { return __builtin_sqrtf(x); }
FG_OPTIM_HD inline double sqrt_(double x) { return __builtin_sqrt(x); }

// torch.maximum: NaN in either operand gives NaN.
template <class T>
FG_OPTIM_HD inline T maximum(T a, T b) { return (a != a || a > b) ? a : b; }

template <class T>
FG_OPTIM_HD inline T lerp(const Lerp<T>& w, T start, T end) {
  return fmadd(w.coeff, end - start, w.from_start ? start : end);
}

// ---- SGD ----------------------------------------------------------------------
// torch: g = -grad if maximize; g = g.add(p, alpha=wd);
//        buf = g.clone() on the first step, else buf.mul_(momentum).add_(g, alpha=1-dampening);
//        g = g.add(buf, alpha=momentum) if nesterov else buf;  p.add_(g, alpha=-lr)
template <class T, bool kMomentum, bool kFirstStep>
FG_OPTIM_HD inline void sgd_update(const SgdConsts<T>& c, T& p, T grad, T* buf) {
  T g = grad * c.sign;
  g = c.has_weight_decay ? fmadd(p, c.weight_decay, g) : g;
  if constexpr (kMomentum) {
    T b;
    if constexpr (kFirstStep) {
      b = g;
    } else {
      b = fmadd(g, c.one_minus_dampening, *buf * c.momentum);
    }
    *buf = b;
    g = c.nesterov ? fmadd(b, c.momentum, g) : b;
  }
  p = fmadd(g, c.neg_lr, p);
}

// ---- Adam / AdamW ---------------------------------------------------------------
// torch: g = -grad if maximize; p.mul_(1 - lr*wd) (AdamW) or g = g.add(p, alpha=wd) (Adam);
//        exp_avg.lerp_(g, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2);
//        [amsgrad: max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq), used below]
//        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps);
//        p.addcdiv_(exp_avg, denom, value=-step_size)
template <class T, bool kAmsgrad>
FG_OPTIM_HD inline void adam_update(const AdamConsts<T>& c, T& p, T grad, T& exp_avg, T& exp_avg_sq,
                                    T* max_exp_avg_sq) {
  T g = grad * c.sign;
  T pv = p;
  pv = c.decay_mode == AdamConsts<T>::kDecoupled ? pv * c.decay : pv;
  g = c.decay_mode == AdamConsts<T>::kL2 ? fmadd(pv, c.weight_decay, g) : g;
  T m = lerp(c.beta1_lerp, exp_avg, g);
  T v = fmadd(c.one_minus_beta2 * g, g, exp_avg_sq * c.beta2);
  exp_avg = m;
  exp_avg_sq = v;
  if constexpr (kAmsgrad) {
    v = maximum(*max_exp_avg_sq, v);
    *max_exp_avg_sq = v;
  }
  T denom = sqrt_(v) / c.bias_correction2_sqrt + c.eps;
  p = pv + (c.neg_step_size * m) / denom;
}

// ---- Adagrad ----------------------------------------------------------------------
// torch: g = -grad if maximize; g = g.add(p, alpha=wd); sum.addcmul_(g, g, value=1);
//        std = sum.sqrt().add_(eps); p.addcdiv_(g, std, value=-clr)
template <class T>
FG_OPTIM_HD inline void adagrad_update(const AdagradConsts<T>& c, T& p, T grad, T& sum) {
  T g = grad * c.sign;
  g = c.has_weight_decay ? fmadd(p, c.weight_decay, g) : g;
  T s = fmadd(g, g, sum);  // value=1: 1 * g is exact
  sum = s;
  T std_ = sqrt_(s) + c.eps;
  p = p + (c.neg_clr * g) / std_;
}

// ---- RMSprop ------------------------------------------------------------------------
// torch: g = -grad if maximize; g = g.add(p, alpha=wd);
//        square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha);
//        centered: grad_avg.lerp_(g, 1 - alpha); avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
//        else avg = square_avg.sqrt();  avg = avg.add_(eps)
//        momentum > 0: buf.mul_(momentum).addcdiv_(g, avg); p.add_(buf, alpha=-lr)
//        else p.addcdiv_(g, avg, value=-lr)
template <class T, bool kCentered, bool kMomentum>
FG_OPTIM_HD inline void rmsprop_update(const RmspropConsts<T>& c, T& p, T grad, T& square_avg, T* buf,
                                       T* grad_avg) {
  T g = grad * c.sign;
  g = c.has_weight_decay ? fmadd(p, c.weight_decay, g) : g;
  T sq = fmadd(c.one_minus_alpha * g, g, square_avg * c.alpha);
  square_avg = sq;
  T avg;
  if constexpr (kCentered) {
    T ga = lerp(c.alpha_lerp, *grad_avg, g);
    *grad_avg = ga;
    avg = sqrt_(fmadd(-ga, ga, sq));  // value=-1: -1 * ga is exact
  } else {
    avg = sqrt_(sq);
  }
  avg = avg + c.eps;
  if constexpr (kMomentum) {
    T b = *buf * c.momentum + g / avg;  // addcdiv value=1: 1 * g is exact
    *buf = b;
    p = fmadd(b, c.neg_lr, p);
  } else {
    p = p + (c.neg_lr * g) / avg;
  }
}

// ---------------------------------------------------------------------------
// Span loops: the arrays of one param never overlap (the Python layer
// allocates each state array; the front end rejects repeated params), hence
// __restrict, which lets the compiler vectorise without alias checks.
//
// The loops go one cache line of elements at a time and first prefetch each
// array's line kPrefetchBytes ahead. Why: the update is memory-bound, and
// the hardware prefetchers alone kept plain SGD (two read streams, one
// written back) at ~0.85 of the copy bandwidth on one core; asking for the
// lines ahead keeps more misses in flight.
// ---------------------------------------------------------------------------

constexpr int64_t kPrefetchBytes = 2048;

template <class T>
inline void prefetch_ahead(const T* p) {
#ifndef __CUDACC__
  // Integer arithmetic: the address may lie past the array's end, which a
  // prefetch may touch (it never faults) but a pointer may not point to.
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + kPrefetchBytes));
#else
  (void)p;
#endif
}

// The loop of every *_span below: update(i) for i in [0, n), one cache line
// of elements at a time, each stream's line prefetched first (a null stream,
// an array the variant does not use, is skipped).
template <class T, class U, class... S>
inline void by_lines(int64_t n, U update, S*... streams) {
  constexpr int L = 64 / sizeof(T);  // elements per cache line
  int64_t i = 0;
  for (; i < n - (L - 1); i += L) {
    ((streams ? prefetch_ahead(streams + i) : void()), ...);
    for (int j = 0; j < L; ++j) update(i + j);
  }
  for (; i < n; ++i) update(i);
}

template <class T, bool kMomentum, bool kFirstStep>
void sgd_span(const SgdConsts<T>& c, const SgdSpan<T>& s) {
  const SgdConsts<T> k = c;  // a local copy: the compiler may keep it in registers
  T* __restrict p = s.param;
  const T* __restrict g = s.grad;
  T* __restrict buf = kMomentum ? s.momentum_buffer : nullptr;
  by_lines<T>(
      s.n, [&](int64_t i) { sgd_update<T, kMomentum, kFirstStep>(k, p[i], g[i], kMomentum ? buf + i : nullptr); },
      p, g, buf);
}

template <class T, bool kAmsgrad>
void adam_span(const AdamConsts<T>& c, const AdamSpan<T>& s) {
  const AdamConsts<T> k = c;
  T* __restrict p = s.param;
  const T* __restrict g = s.grad;
  T* __restrict m = s.exp_avg;
  T* __restrict v = s.exp_avg_sq;
  T* __restrict vmax = kAmsgrad ? s.max_exp_avg_sq : nullptr;
  by_lines<T>(
      s.n, [&](int64_t i) { adam_update<T, kAmsgrad>(k, p[i], g[i], m[i], v[i], kAmsgrad ? vmax + i : nullptr); }, p,
      g, m, v, vmax);
}

template <class T>
void adagrad_span(const AdagradConsts<T>& c, const AdagradSpan<T>& s) {
  const AdagradConsts<T> k = c;
  T* __restrict p = s.param;
  const T* __restrict g = s.grad;
  T* __restrict sum = s.sum;
  by_lines<T>(s.n, [&](int64_t i) { adagrad_update<T>(k, p[i], g[i], sum[i]); }, p, g, sum);
}

template <class T, bool kCentered, bool kMomentum>
void rmsprop_span(const RmspropConsts<T>& c, const RmspropSpan<T>& s) {
  const RmspropConsts<T> k = c;
  T* __restrict p = s.param;
  const T* __restrict g = s.grad;
  T* __restrict sq = s.square_avg;
  T* __restrict buf = kMomentum ? s.momentum_buffer : nullptr;
  T* __restrict ga = kCentered ? s.grad_avg : nullptr;
  by_lines<T>(
      s.n,
      [&](int64_t i) {
        rmsprop_update<T, kCentered, kMomentum>(k, p[i], g[i], sq[i], kMomentum ? buf + i : nullptr,
                                                kCentered ? ga + i : nullptr);
      },
      p, g, sq, buf, ga);
}

// Explicit instantiations for float and double, every flag combination.
#define FG_OPTIM_INSTANTIATE(T)                                                  \
  template void sgd_span<T, false, false>(const SgdConsts<T>&, const SgdSpan<T>&);  \
  template void sgd_span<T, true, false>(const SgdConsts<T>&, const SgdSpan<T>&);   \
  template void sgd_span<T, true, true>(const SgdConsts<T>&, const SgdSpan<T>&);    \
  template void adam_span<T, false>(const AdamConsts<T>&, const AdamSpan<T>&);      \
  template void adam_span<T, true>(const AdamConsts<T>&, const AdamSpan<T>&);       \
  template void adagrad_span<T>(const AdagradConsts<T>&, const AdagradSpan<T>&);    \
  template void rmsprop_span<T, false, false>(const RmspropConsts<T>&, const RmspropSpan<T>&); \
  template void rmsprop_span<T, false, true>(const RmspropConsts<T>&, const RmspropSpan<T>&);  \
  template void rmsprop_span<T, true, false>(const RmspropConsts<T>&, const RmspropSpan<T>&);  \
  template void rmsprop_span<T, true, true>(const RmspropConsts<T>&, const RmspropSpan<T>&);
#ifndef __CUDACC__
FG_OPTIM_INSTANTIATE(float)
FG_OPTIM_INSTANTIATE(double)
#endif
#undef FG_OPTIM_INSTANTIATE

}  // namespace FG_OPTIM_ISA
}  // namespace optim_detail
}  // namespace fg

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif  // FG_OPTIM_ISA
