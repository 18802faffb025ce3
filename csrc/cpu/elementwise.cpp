// elementwise.cpp - kernels and dtype rules of the elementwise op family
// (see elementwise.h for the contract).
//
// Every op runs through ONE n-d map kernel, run_map<R, Ts...>(out, ins, f):
// out[i] = f(in0[i], in1[i], ...) over an NdLoop, split with parallel_for.
// Each input has a compute type Ts (what f takes) and the output a result
// type R (what f returns); an operand whose array dtype differs from its
// compute type is converted in blocks of kBlock elements through a stack
// buffer. So mixed-dtype ops (int32 + float64, in-place int32 += int64) never
// allocate a converted copy, and each op is instantiated once per compute
// type instead of once per dtype pair.
//
// Inside one run of the innermost dimension the kernel picks, in order:
//   1. all operands contiguous and of their compute types: one flat loop over
//      typed pointers (auto-vectorises at -O3);
//   2. output contiguous, inputs contiguous or broadcast (stride 0), or some
//      dtype conversion needed: blocks through stack buffers (stride-0 inputs
//      are splatted once), so the compute loop is still flat;
//   3. otherwise (transposed, sliced, flipped views of matching dtypes): a
//      plain strided loop, no buffering.
#include "cpu/elementwise.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cpu/vecmath.h"
#include "cpu/vecmath_extra.h"
#include "cpu/vecmath_scalar.h"
#include "cuda/elementwise.h"
#include "errors.h"
#include "iter.h"
#include "parallel.h"

namespace fg {
namespace {

// ---------------------------------------------------------------------------
// Per-element math. Plain templates over the compute type, free of any array
// or loop code, so a CUDA backend can share them.
// ---------------------------------------------------------------------------

template <class T> constexpr bool kIsBool = std::is_same_v<T, bool>;
template <class T> constexpr bool kIsInt = std::is_integral_v<T> && !kIsBool<T>;
template <class T> constexpr bool kIsFloat = std::is_floating_point_v<T>;


// Signed overflow is undefined behaviour in C++, but integer tensors must wrap
// like torch's, so integer arithmetic goes through the unsigned type.
template <class T> using Unsigned = std::make_unsigned_t<T>;
template <class T> inline T wrap_add(T a, T b) { return static_cast<T>(static_cast<Unsigned<T>>(a) + static_cast<Unsigned<T>>(b)); }
template <class T> inline T wrap_sub(T a, T b) { return static_cast<T>(static_cast<Unsigned<T>>(a) - static_cast<Unsigned<T>>(b)); }
template <class T> inline T wrap_mul(T a, T b) { return static_cast<T>(static_cast<Unsigned<T>>(a) * static_cast<Unsigned<T>>(b)); }
template <class T> inline T wrap_neg(T a) { return static_cast<T>(Unsigned<T>(0) - static_cast<Unsigned<T>>(a)); }

struct AddF {
  template <class T> T operator()(T a, T b) const {
    if constexpr (kIsBool<T>) return a || b;  // torch: bool + bool is logical or
    else if constexpr (kIsInt<T>) return wrap_add(a, b);
    else return a + b;
  }
};
struct SubF {  // never sees bool: rejected up front, like torch
  template <class T> T operator()(T a, T b) const {
    if constexpr (kIsInt<T>) return wrap_sub(a, b);
    else return a - b;
  }
};
struct MulF {
  template <class T> T operator()(T a, T b) const {
    if constexpr (kIsBool<T>) return a && b;
    else if constexpr (kIsInt<T>) return wrap_mul(a, b);
    else return a * b;
  }
};
struct DivF {  // float compute types only (true division)
  template <class T> T operator()(T a, T b) const { return a / b; }
};

// Python / torch floor division and modulo: the quotient rounds toward -inf
// and the remainder takes the divisor's sign.
template <class T>
T int_floor_div(T a, T b) {
  // Thrown inside the parallel loop: the pool rethrows it on the calling
  // thread and the half-written output is discarded.
  if (b == 0) throw std::runtime_error("floor_divide: ZeroDivisionError (integer division by zero)");
  if (b == -1) return wrap_neg(a);  // MIN / -1 overflows: SIGFPE on x86
  T q = static_cast<T>(a / b);
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}
template <class T>
T int_mod(T a, T b) {
  if (b == 0) throw std::runtime_error("remainder: ZeroDivisionError (integer modulo by zero)");
  if (b == -1) return 0;  // MIN % -1 overflows: SIGFPE on x86
  T r = static_cast<T>(a % b);
  if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
  return r;
}
// CPython's float floor division: derive the quotient from fmod so that
// 7 // 0.1 == 69 (plain floor(7 / 0.1) would round the quotient up to 70).
template <class T>
T float_floor_div(T a, T b) {
  if (b == 0) return a / b;  // IEEE +-inf or nan, like torch
  T mod = std::fmod(a, b);
  T div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= T(1);
  if (div == 0) return std::copysign(T(0), a / b);
  T fl = std::floor(div);
  if (div - fl > T(0.5)) fl += T(1);  // (a - mod) / b may land just below an integer
  return fl;
}
template <class T>
T float_mod(T a, T b) {
  T m = std::fmod(a, b);  // nan for b == 0 or a == inf, like torch
  if (m != 0) {
    if ((b < 0) != (m < 0)) m += b;
  } else {
    m = std::copysign(T(0), b);
  }
  return m;
}

// Integer power by squaring, wrapping on overflow like torch.
template <class T>
T int_pow_nonneg(T base, uint64_t e) {
  Unsigned<T> r = 1, b = static_cast<Unsigned<T>>(base);
  while (e) {
    if (e & 1) r = static_cast<Unsigned<T>>(r * b);
    b = static_cast<Unsigned<T>>(b * b);
    e >>= 1;
  }
  return static_cast<T>(r);
}
template <class T>
T int_pow(T base, T e) {
  // torch's tensor ** tensor on integers: base ** -n is the truncated
  // 1 / base ** n, i.e. 1 for base 1, +-1 for base -1 and 0 otherwise.
  if (e < 0) {
    if (base == 1) return 1;
    if (base == -1) return (e & 1) ? T(-1) : T(1);
    return 0;
  }
  return int_pow_nonneg(base, static_cast<uint64_t>(e));
}

// NaN-propagating max/min (std::max returns whichever argument the
// comparison happens to pick). Written as one select, no early return, so the
// flat loop still vectorises: a NaN `a` is picked by a != a, a NaN `b` by the
// comparison failing.
struct MaximumF {
  template <class T> T operator()(T a, T b) const {
    if constexpr (kIsFloat<T>) return (a > b || a != a) ? a : b;
    else return a > b ? a : b;
  }
};
struct MinimumF {
  template <class T> T operator()(T a, T b) const {
    if constexpr (kIsFloat<T>) return (a < b || a != a) ? a : b;
    else return a < b ? a : b;
  }
};

// sigmoid, silu, gelu and their derivatives: the scalar math of the vecmath
// ops (numerically stable forms), shared with vecmath's libm fallback.
namespace sm = vecmath::scalar;

// ---------------------------------------------------------------------------
// The map kernel.
// ---------------------------------------------------------------------------

// Elements per conversion block: 256 * 8 bytes per operand stays in L1.
constexpr int64_t kBlock = 256;

// dst[i] = T(src[i * stride]) for a source of dtype `dt`.
template <class T>
void load_block(T* dst, const char* src, int64_t stride, DType dt, int64_t n) {
  dispatch(dt, [&](auto tag) {
    using S = decltype(tag);
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(*reinterpret_cast<const S*>(src + i * stride));
  });
}

// dst[i * stride] = D(src[i]) for a destination of dtype `dt`.
template <class R>
void store_block(char* dst, int64_t stride, DType dt, const R* src, int64_t n) {
  dispatch(dt, [&](auto tag) {
    using D = decltype(tag);
    for (int64_t i = 0; i < n; ++i) *reinterpret_cast<D*>(dst + i * stride) = static_cast<D>(src[i]);
  });
}

// Calls fn(std::integral_constant<size_t, I>) for I in [0, N): a loop over
// operands whose compute types differ.
template <class Fn, size_t... I>
inline void for_each_index(Fn&& fn, std::index_sequence<I...>) {
  (fn(std::integral_constant<size_t, I>{}), ...);
}

// A per-element functor paired with the vecmath span kernel (vecmath.h) that
// computes the same function over contiguous runs. The tables are looked up
// once per op call; nullptr (capability "scalar") keeps the per-element loop.
template <class F>
struct Spanned {
  F f;
  int idx;  // vecmath::Unary (one input) or vecmath::Backward (two)
  const vecmath::Kernels<float>* k32;
  const vecmath::Kernels<double>* k64;
  template <class... A>
  auto operator()(A... a) const { return f(a...); }
  template <class T>
  const vecmath::Kernels<T>* table() const {
    if constexpr (std::is_same_v<T, float>) return k32;
    else if constexpr (std::is_same_v<T, double>) return k64;
    else return nullptr;
  }
};
template <class F>
Spanned<F> spanned(int idx, F f) {
  return {f, idx, vecmath::kernels_f32(), vecmath::kernels_f64()};
}
template <class F> constexpr bool kIsSpanned = false;
template <class F> constexpr bool kIsSpanned<Spanned<F>> = true;

// The same for the one-input span kernels of vecmath_extra.h, which take up
// to two parameters (softplus's beta and threshold, elu's alpha, ...).
template <class F>
struct ParamSpanned {
  F f;
  int idx;  // vecmath::Extra
  double p0, p1;
  const vecmath::ExtraKernels<float>* k32;
  const vecmath::ExtraKernels<double>* k64;
  template <class... A>
  auto operator()(A... a) const { return f(a...); }
  template <class T>
  vecmath::ParamFn<T> fn() const {
    if constexpr (std::is_same_v<T, float>) return k32 ? k32->fn[idx] : nullptr;
    else if constexpr (std::is_same_v<T, double>) return k64 ? k64->fn[idx] : nullptr;
    else return nullptr;
  }
};
template <class F>
ParamSpanned<F> param_spanned(int idx, double p0, double p1, F f) {
  return {f, idx, p0, p1, vecmath::extra_kernels_f32(), vecmath::extra_kernels_f64()};
}
template <class F> constexpr bool kIsParamSpanned = false;
template <class F> constexpr bool kIsParamSpanned<ParamSpanned<F>> = true;

// The span kernel of f for result type R and inputs Ts, or nullptr.
template <class R, class... Ts, class F>
bool has_span(const F& f) {
  if constexpr (kIsSpanned<F> && (std::is_same_v<R, Ts> && ...)) return f.template table<R>() != nullptr;
  else if constexpr (kIsParamSpanned<F> && sizeof...(Ts) == 1 && (std::is_same_v<R, Ts> && ...))
    return f.template fn<R>() != nullptr;
  else return false;
}

template <class R, class... Ts>
struct MapKernel {
  static constexpr size_t N = sizeof...(Ts);
  using Seq = std::make_index_sequence<N>;
  static constexpr DType kInType[N] = {dtype_of<Ts>::value...};
  static constexpr int64_t kInSize[N] = {static_cast<int64_t>(sizeof(Ts))...};

  // Args: o: n outputs of type R; x[k]: n inputs of type Ts[k]; all contiguous.
  template <class F, size_t... I>
  static void flat(char* o, const char* const* x, int64_t n, const F& f, std::index_sequence<I...>) {
    R* out = reinterpret_cast<R*>(o);
    if constexpr (kIsSpanned<F> && (std::is_same_v<R, Ts> && ...)) {
      if (const auto* k = f.template table<R>()) {  // the vectorised span kernel
        if constexpr (N == 1) return k->unary[f.idx](reinterpret_cast<const R*>(x[0]), out, n);
        else return k->backward[f.idx](reinterpret_cast<const R*>(x[I])..., out, n);
      }
    }
    if constexpr (kIsParamSpanned<F> && N == 1 && (std::is_same_v<R, Ts> && ...)) {
      if (const auto fn = f.template fn<R>())  // parameters in the compute type, as the scalar path
        return fn(reinterpret_cast<const R*>(x[0]), out, n, static_cast<R>(f.p0), static_cast<R>(f.p1));
    }
    // Typed pointers in locals so the compiler sees independent streams.
    std::tuple<const Ts*...> in{reinterpret_cast<const Ts*>(x[I])...};
    for (int64_t i = 0; i < n; ++i) out[i] = f(std::get<I>(in)[i]...);
  }

  // Args: p[0] output, p[1 + k] input k; s[*]: byte strides; matching dtypes.
  template <class F, size_t... I>
  static void strided(char* const* p, const int64_t* s, int64_t n, const F& f, std::index_sequence<I...>) {
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<R*>(p[0] + i * s[0]) = f(*reinterpret_cast<const Ts*>(p[1 + I] + i * s[1 + I])...);
  }

  // One innermost run of `cnt` elements through stack buffers.
  template <class F>
  static void blocked(char* const* p, const int64_t* s, int64_t cnt, const F& f, DType out_t,
                      const DType* in_t) {
    alignas(64) char buf[N][kBlock * 8];  // 8 = the widest item
    alignas(64) R obuf[kBlock];
    const bool out_direct = out_t == dtype_of<R>::value && s[0] == static_cast<int64_t>(sizeof(R));
    const char* x[N];
    for (int64_t j = 0; j < cnt; j += kBlock) {
      const int64_t m = std::min(kBlock, cnt - j);
      for_each_index(
          [&](auto ic) {
            constexpr size_t k = decltype(ic)::value;
            using T = std::tuple_element_t<k, std::tuple<Ts...>>;
            T* b = reinterpret_cast<T*>(buf[k]);
            const char* src = p[1 + k] + j * s[1 + k];
            if (s[1 + k] == 0) {
              // Broadcast input: convert its one value and splat it once per run.
              if (j == 0) {
                T v;
                load_block(&v, src, 0, in_t[k], 1);
                std::fill_n(b, std::min(kBlock, cnt), v);
              }
              x[k] = buf[k];
            } else if (in_t[k] == kInType[k] && s[1 + k] == kInSize[k]) {
              x[k] = src;
            } else {
              load_block(b, src, s[1 + k], in_t[k], m);
              x[k] = buf[k];
            }
          },
          Seq{});
      char* o = out_direct ? p[0] + j * s[0] : reinterpret_cast<char*>(obuf);
      flat(o, x, m, f, Seq{});
      if (!out_direct) store_block(p[0] + j * s[0], s[0], out_t, obuf, m);
    }
  }
};

// out[i] = f(ins[0][i], ...). Args: out: any dtype and strides, shape S (it
// may be one of the inputs, element for element, for in-place ops);
// ins[k]: shape S (already expanded), any dtype and strides, converted to Ts[k].
template <class R, class... Ts, class F>
void run_map(const Array& out, const std::array<const Array*, sizeof...(Ts)>& ins, const F& f) {
  using K = MapKernel<R, Ts...>;
  constexpr size_t N = sizeof...(Ts);
  const int64_t n = out.numel();
  if (n == 0) return;
  const Array* ops[N + 1];
  ops[0] = &out;
  DType in_t[N];
  bool typed = out.dtype == dtype_of<R>::value;
  for (size_t k = 0; k < N; ++k) {
    ops[k + 1] = ins[k];
    in_t[k] = ins[k]->dtype;
    typed = typed && in_t[k] == K::kInType[k];
  }
  NdLoop<N + 1> loop(out.shape, ops);
  const DType out_t = out.dtype;
  // Span kernels take strided runs through the blocks too, so every layout
  // gets the same (vectorised) results.
  const bool span = has_span<R, Ts...>(f);
  parallel_for(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    loop.for_range(begin, end, [&](char* const* p, const int64_t* s, int64_t cnt) {
      if (typed) {
        bool flat = s[0] == static_cast<int64_t>(sizeof(R));
        bool flat_or_splat = flat;
        for (size_t k = 0; k < N; ++k) {
          flat = flat && s[1 + k] == K::kInSize[k];
          flat_or_splat = flat_or_splat && (s[1 + k] == K::kInSize[k] || s[1 + k] == 0);
        }
        if (flat) return K::flat(p[0], p + 1, cnt, f, typename K::Seq{});
        // Short runs gain nothing from buffering.
        if (!span && (!flat_or_splat || cnt < 16)) return K::strided(p, s, cnt, f, typename K::Seq{});
      }
      K::blocked(p, s, cnt, f, out_t, in_t);
    });
  });
}

// ---------------------------------------------------------------------------
// Dtype classes, checks and the op front ends.
// ---------------------------------------------------------------------------

// Which compute dtypes an op accepts (a bit set).
enum Kinds : unsigned { kBool = 1, kInt = 2, kFloat = 4, kNumber = kInt | kFloat, kBoolInt = kBool | kInt, kAll = 7 };

template <unsigned K, class T>
constexpr bool kAccepts = (kIsBool<T> && (K & kBool)) || (kIsInt<T> && (K & kInt)) || (kIsFloat<T> && (K & kFloat));

bool accepts(unsigned k, DType t) {
  if (t == DType::Bool) return k & kBool;
  if (is_integral(t)) return k & kInt;
  return k & kFloat;
}

const char* kinds_str(unsigned k) {
  switch (k) {
    case kFloat: return "float32 or float64";
    case kNumber: return "an integer or float dtype (not bool)";
    case kBoolInt: return "bool or an integer dtype";
    default: return "a supported dtype";
  }
}

void check_unary(const char* op, unsigned k, DType compute, DType input) {
  if (!accepts(k, compute))
    throw TypeError(std::string(op) + ": not supported for dtype " + dtype_name(input) + " (expected " + kinds_str(k) +
                    ")");
}

void check_binary(const char* op, unsigned k, DType compute, DType a, DType b) {
  if (!accepts(k, compute))
    throw TypeError(std::string(op) + ": not supported for dtypes " + dtype_name(a) + " and " + dtype_name(b) +
                    " (expected " + kinds_str(k) + ")");
}

// dispatch() restricted to the accepted compute types, so an op's functor is
// only instantiated where it makes sense. Callers check the dtype first.
template <unsigned K, class Fn>
void dispatch_kinds(DType t, Fn&& fn) {
  dispatch(t, [&](auto tag) {
    if constexpr (kAccepts<K, decltype(tag)>) fn(tag);
    else throw std::logic_error("elementwise: dtype check missed");
  });
}

// The dtype float-valued math computes in: ints and bool become float32.
DType float_type(DType t) { return is_floating(t) ? t : DType::Float32; }

// Out-of-place unary op computing in `compute`; the output dtype is f's result type.
template <unsigned K, class F>
Array unary(const char* op, const Array& a, DType compute, F f) {
  check_unary(op, K, compute, a.dtype);
  return on_device(op, a.device(), [&] {
    Array out;
    dispatch_kinds<K>(compute, [&](auto tag) {
      using T = decltype(tag);
      using R = decltype(f(T{}));
      out = empty(a.shape, dtype_of<R>::value, a.device());
      run_map<R, T>(out, {&a}, f);
    });
    return out;
  }, [&] { return cuda::unary(op, a, compute); });
}

template <class F>
Array float_unary(const char* op, const Array& a, F f) {
  return unary<kFloat>(op, a, float_type(a.dtype), f);
}

// Out-of-place binary op with broadcasting, computing in `compute`.
template <unsigned K, class F>
Array binary(const char* op, const Array& a, const Array& b, DType compute, F f) {
  const Device dev = common_device(op, a, b);
  Shape shape = broadcast_shapes(a.shape, b.shape, op);
  check_binary(op, K, compute, a.dtype, b.dtype);
  return on_device(op, dev, [&] {
    Array x = expand(a, shape), y = expand(b, shape);
    Array out;
    dispatch_kinds<K>(compute, [&](auto tag) {
      using T = decltype(tag);
      using R = decltype(f(T{}, T{}));
      out = empty(shape, dtype_of<R>::value, a.device());
      run_map<R, T, T>(out, {&x, &y}, f);
    });
    return out;
  }, [&] { return cuda::binary(op, a, b, shape, compute); });
}

// ---- in-place helpers ----

int category(DType t) { return t == DType::Bool ? 0 : is_integral(t) ? 1 : 2; }

// torch refuses in-place results that would lose their category.
void check_inplace_cast(const char* op, DType result, DType target) {
  if (category(result) > category(target))
    throw std::runtime_error(std::string(op) + ": result type " + dtype_name(result) +
                             " can't be cast to the desired output type " + dtype_name(target));
}

// A target with a broadcast dim would receive several writes per element.
void check_inplace_target(const char* op, const Array& a) {
  if (a.numel() == 0) return;  // nothing is written (and zero-size views may carry any strides)
  for (int d = 0; d < a.ndim(); ++d)
    if (a.strides[d] == 0 && a.shape[d] > 1)
      throw std::runtime_error(std::string(op) + ": unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location (shape " + shape_str(a.shape) + ", strides " +
                               shape_str(a.strides) + "); clone() it first");
}

// Byte range [lo, hi) spanned by an array's elements (numel > 0).
std::pair<uintptr_t, uintptr_t> byte_extent(const Array& x) {
  int64_t lo = 0, hi = 0;
  for (int d = 0; d < x.ndim(); ++d) {
    int64_t ext = x.strides[d] * (x.shape[d] - 1);
    (ext < 0 ? lo : hi) += ext;
  }
  const auto isz = static_cast<int64_t>(x.itemsize());
  const auto base = reinterpret_cast<uintptr_t>(x.raw());
  return {base + lo * isz, base + (hi + 1) * isz};
}

// b viewed at a's shape, copied first when it overlaps a's memory other than
// element for element (a.add_(a.flip(0)) must read the old values).
Array inplace_operand(const char* op, const Array& a, const Array& b) {
  check_operand_device(op, a, b);
  Array e;
  try {
    e = expand(b, a.shape);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(std::string(op) + ": operand of shape " + shape_str(b.shape) +
                                " cannot be broadcast to the in-place target of shape " + shape_str(a.shape));
  }
  if (a.numel() == 0) return e;
  auto ra = byte_extent(a), rb = byte_extent(e);
  if (ra.first >= rb.second || rb.first >= ra.second) return e;
  bool same = a.raw() == e.raw() && a.dtype == e.dtype;
  for (int d = 0; same && d < a.ndim(); ++d) same = a.shape[d] == 1 || a.strides[d] == e.strides[d];
  return same ? e : expand(copy(b), a.shape);
}

// a = f(a, b) computed in `compute`, stored back in a's dtype.
template <unsigned K, class F>
void inplace_binary(const char* op, const Array& a, const Array& b, DType compute, F f) {
  check_binary(op, K, compute, a.dtype, b.dtype);
  check_inplace_cast(op, compute, a.dtype);
  check_inplace_target(op, a);
  on_device(op, a.device(), [&] {
    Array y = inplace_operand(op, a, b);
    dispatch_kinds<K>(compute, [&](auto tag) {
      using T = decltype(tag);
      run_map<T, T, T>(a, {&a, &y}, f);
    });
  }, [&] { cuda::inplace_binary(op, a, inplace_operand(op, a, b), compute); });
  a.bump_version();
}

// ---- clamp ----

// Bounds converted to T. Floats: a missing bound is -inf / +inf. Integers: a
// bound must be integral (this op keeps the integer dtype, so 1.5 has no
// exact meaning) and saturates to T's range.
template <class T>
T clamp_bound(const char* op, const char* name, std::optional<double> v, bool upper) {
  if constexpr (kIsFloat<T>) {
    constexpr T inf = std::numeric_limits<T>::infinity();
    return v ? static_cast<T>(*v) : upper ? inf : -inf;  // +-inf pass through unclamped
  } else {
    if (!v) return upper ? std::numeric_limits<T>::max() : std::numeric_limits<T>::lowest();
    if (!(std::trunc(*v) == *v))
      throw std::invalid_argument(std::string(op) + ": " + name + "=" + std::to_string(*v) +
                                  " is not an integer, but the tensor is " + dtype_name(dtype_of<T>::value) +
                                  " (convert it to a float dtype first)");
    // 2^63 as a double: everything at or above it saturates.
    if (*v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (*v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(*v);
  }
}

// out = clamp(a); out may be a itself.
void clamp_into(const char* op, const Array& out, const Array& a, std::optional<double> lo_in,
                std::optional<double> hi_in) {
  dispatch_kinds<kNumber>(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T lo = clamp_bound<T>(op, "min", lo_in, false);
    const T hi = clamp_bound<T>(op, "max", hi_in, true);
    if constexpr (kIsFloat<T>) {
      if (std::isnan(lo) || std::isnan(hi)) {  // torch: a NaN bound makes every element NaN
        run_map<T, T>(out, {&a}, [](T) { return std::numeric_limits<T>::quiet_NaN(); });
        return;
      }
    }
    // max(x, lo) then min(., hi); a NaN x fails both comparisons and stays NaN.
    run_map<T, T>(out, {&a}, [lo, hi](T x) {
      T r = x < lo ? lo : x;
      return r > hi ? hi : r;
    });
  });
}

void check_clamp_args(const char* op, const Array& a, std::optional<double> lo, std::optional<double> hi) {
  if (!lo && !hi) throw std::invalid_argument(std::string(op) + ": at least one of min or max must be given");
  if (a.dtype == DType::Bool)
    throw TypeError(std::string(op) + ": not supported for dtype bool (expected an integer or float dtype)");
}

}  // namespace

// ---------------------------------------------------------------------------
// Unary ops.
// ---------------------------------------------------------------------------

Array neg(const Array& a) {
  if (a.dtype == DType::Bool)
    throw TypeError("neg: negation, the `-` operator, on a bool tensor is not supported; to invert a mask use the `~` "
                    "or logical_not() operator instead");
  return unary<kNumber>("neg", a, a.dtype, [](auto x) {
    using T = decltype(x);
    if constexpr (kIsInt<T>) return wrap_neg(x);
    else return -x;
  });
}

Array abs(const Array& a) {
  return unary<kNumber>("abs", a, a.dtype, [](auto x) {
    using T = decltype(x);
    if constexpr (kIsInt<T>) return x < 0 ? wrap_neg(x) : x;  // abs(MIN) wraps to MIN, like torch
    else return std::abs(x);
  });
}

Array sign(const Array& a) {
  if (a.dtype == DType::Bool) return copy(a);
  // (0 < x) - (x < 0): 0 for +-0 and, like torch, for NaN.
  return unary<kNumber>("sign", a, a.dtype, [](auto x) {
    using T = decltype(x);
    return static_cast<T>(static_cast<int>(T(0) < x) - static_cast<int>(x < T(0)));
  });
}

Array square(const Array& a) {
  DType t = a.dtype == DType::Bool ? DType::Int64 : a.dtype;  // torch: bool ** 2 is int64
  return unary<kNumber>("square", a, t, [](auto x) {
    using T = decltype(x);
    if constexpr (kIsInt<T>) return wrap_mul(x, x);
    else return x * x;
  });
}

Array reciprocal(const Array& a) {
  return float_unary("reciprocal", a, [](auto x) { return decltype(x)(1) / x; });
}
Array exp(const Array& a) { return float_unary("exp", a, spanned(vecmath::kExp, [](auto x) { return std::exp(x); })); }
Array log(const Array& a) { return float_unary("log", a, spanned(vecmath::kLog, [](auto x) { return std::log(x); })); }
Array log1p(const Array& a) {
  return float_unary("log1p", a, param_spanned(vecmath::kLog1p, 0, 0, [](auto x) { return std::log1p(x); }));
}
Array expm1(const Array& a) {
  return float_unary("expm1", a, param_spanned(vecmath::kExpm1, 0, 0, [](auto x) { return std::expm1(x); }));
}
Array sqrt(const Array& a) { return float_unary("sqrt", a, [](auto x) { return std::sqrt(x); }); }
Array rsqrt(const Array& a) {
  return float_unary("rsqrt", a, [](auto x) { return decltype(x)(1) / std::sqrt(x); });
}
Array sin(const Array& a) {
  return float_unary("sin", a, param_spanned(vecmath::kSin, 0, 0, [](auto x) { return std::sin(x); }));
}
Array cos(const Array& a) {
  return float_unary("cos", a, param_spanned(vecmath::kCos, 0, 0, [](auto x) { return std::cos(x); }));
}
Array tan(const Array& a) {
  return float_unary("tan", a, param_spanned(vecmath::kTan, 0, 0, [](auto x) { return std::tan(x); }));
}
Array tanh(const Array& a) {
  return float_unary("tanh", a, spanned(vecmath::kTanh, [](auto x) { return std::tanh(x); }));
}
Array sigmoid(const Array& a) {
  return float_unary("sigmoid", a, spanned(vecmath::kSigmoid, [](auto x) { return sm::sigmoid(x); }));
}
Array erf(const Array& a) {
  return float_unary("erf", a, param_spanned(vecmath::kErf, 0, 0, [](auto x) { return std::erf(x); }));
}
Array gelu(const Array& a) { return float_unary("gelu", a, spanned(vecmath::kGelu, [](auto x) { return sm::gelu(x); })); }
Array gelu_tanh(const Array& a) {
  return float_unary("gelu_tanh", a, spanned(vecmath::kGeluTanh, [](auto x) { return sm::gelu_tanh(x); }));
}
Array silu(const Array& a) {
  return float_unary("silu", a, spanned(vecmath::kSilu, [](auto x) { return sm::silu(x); }));
}

Array relu(const Array& a) {
  // x < 0 ? 0 : x keeps -0.0 and NaN as they are, like torch.
  return unary<kNumber>("relu", a, a.dtype, spanned(vecmath::kRelu, [](auto x) {
    using T = decltype(x);
    return x < T(0) ? T(0) : x;
  }));
}

namespace {
// floor/ceil/round/trunc: identity on integers, TypeError on bool (torch).
template <class F>
Array rounding(const char* op, const Array& a, F f) {
  if (is_integral(a.dtype)) return on_device(op, a.device(), [&] { return copy(a); }, [&] { return copy(a); });
  return unary<kFloat>(op, a, a.dtype, f);
}
}  // namespace

Array floor(const Array& a) { return rounding("floor", a, [](auto x) { return std::floor(x); }); }
Array ceil(const Array& a) { return rounding("ceil", a, [](auto x) { return std::ceil(x); }); }
// nearbyint rounds half to even in the default rounding mode, like torch.round.
Array round(const Array& a) { return rounding("round", a, [](auto x) { return std::nearbyint(x); }); }
Array trunc(const Array& a) { return rounding("trunc", a, [](auto x) { return std::trunc(x); }); }

namespace {
// isnan/isinf/isfinite: constant for bool and integer tensors.
template <class F>
Array classify(const char* op, const Array& a, bool value_for_ints, F f) {
  if (!is_floating(a.dtype))
    return full(a.shape, value_for_ints ? 1.0 : 0.0, DType::Bool, a.device());  // any device
  return unary<kFloat>(op, a, a.dtype, f);
}
}  // namespace

Array isnan(const Array& a) { return classify("isnan", a, false, [](auto x) { return static_cast<bool>(std::isnan(x)); }); }
Array isinf(const Array& a) { return classify("isinf", a, false, [](auto x) { return static_cast<bool>(std::isinf(x)); }); }
Array isfinite(const Array& a) {
  return classify("isfinite", a, true, [](auto x) { return static_cast<bool>(std::isfinite(x)); });
}

Array logical_not(const Array& a) {
  // Computing in bool converts any dtype by truthiness (NaN is true).
  return unary<kBool>("logical_not", a, DType::Bool, [](bool x) { return !x; });
}

Array bitwise_not(const Array& a) {
  return unary<kBoolInt>("bitwise_not", a, a.dtype, [](auto x) {
    using T = decltype(x);
    if constexpr (kIsBool<T>) return !x;
    else return static_cast<T>(~x);
  });
}

// ---------------------------------------------------------------------------
// Parametrised unary ops.
// ---------------------------------------------------------------------------

Array leaky_relu(const Array& a, double negative_slope) {
  if (is_cuda(a.device())) return cuda::unary_param("leaky_relu", a, negative_slope);
  const auto f = [negative_slope](auto x) {
    using T = decltype(x);
    return x > T(0) ? x : x * static_cast<T>(negative_slope);
  };
  return unary<kFloat>("leaky_relu", a, a.dtype, param_spanned(vecmath::kLeakyRelu, negative_slope, 0, f));
}

Array elu(const Array& a, double alpha) {
  if (is_cuda(a.device())) return cuda::unary_param("elu", a, alpha);
  const auto f = [alpha](auto x) {
    using T = decltype(x);
    return x > T(0) ? x : static_cast<T>(alpha) * std::expm1(x);
  };
  return unary<kFloat>("elu", a, a.dtype, param_spanned(vecmath::kElu, alpha, 0, f));
}

Array softplus(const Array& a, double beta, double threshold) {
  if (is_cuda(a.device())) return cuda::unary_param("softplus", a, beta, threshold);
  const auto f = [beta, threshold](auto x) {
    using T = decltype(x);
    const T b = static_cast<T>(beta);
    // Above the threshold log1p(exp(bx)) / b == x to working precision, and
    // exp(bx) would overflow.
    return x * b > static_cast<T>(threshold) ? x : std::log1p(std::exp(x * b)) / b;
  };
  // the span kernel computes max(bx, 0) + log1p(exp(-|bx|)): no overflow for any threshold
  return unary<kFloat>("softplus", a, a.dtype, param_spanned(vecmath::kSoftplus, beta, threshold, f));
}

Array clamp(const Array& a, std::optional<double> min, std::optional<double> max) {
  check_clamp_args("clamp", a, min, max);
  return on_device("clamp", a.device(), [&] {
    Array out = empty(a.shape, a.dtype, a.device());
    clamp_into("clamp", out, a, min, max);
    return out;
  }, [&] {
    Array out = empty(a.shape, a.dtype, a.device());
    cuda::clamp_into("clamp", out, a, min, max);
    return out;
  });
}

Array pow_scalar(const Array& a, const std::variant<int64_t, double>& exponent) {
  const char* op = "pow";
  if (is_cuda(a.device())) return cuda::pow_scalar(a, exponent);
  if (const int64_t* ie = std::get_if<int64_t>(&exponent); ie && !is_floating(a.dtype)) {
    // Integer tensor, integer exponent: the result stays integer (bool -> int64).
    if (*ie < 0) throw std::runtime_error("pow: Integers to negative integer powers are not allowed.");
    const uint64_t e = static_cast<uint64_t>(*ie);
    DType t = a.dtype == DType::Bool ? DType::Int64 : a.dtype;
    return unary<kInt>(op, a, t, [e](auto x) { return int_pow_nonneg(x, e); });
  }
  const double e = std::visit([](auto v) { return static_cast<double>(v); }, exponent);
  // Common exponents as cheaper, vectorisable expressions (the ones torch
  // special-cases too, so results agree to the last bit there).
  auto run = [&](auto f) { return float_unary(op, a, f); };
  if (e == 0) return run([](auto x) { return decltype(x)(1); });
  if (e == 1) return run([](auto x) { return x; });
  if (e == 2) return run([](auto x) { return x * x; });
  if (e == 3) return run([](auto x) { return x * x * x; });
  if (e == 0.5) return run([](auto x) { return std::sqrt(x); });
  if (e == -0.5) return run([](auto x) { return decltype(x)(1) / std::sqrt(x); });
  if (e == -1) return run([](auto x) { return decltype(x)(1) / x; });
  if (e == -2) return run([](auto x) { return decltype(x)(1) / (x * x); });
  return run([e](auto x) { return std::pow(x, static_cast<decltype(x)>(e)); });
}

// ---------------------------------------------------------------------------
// Binary ops.
// ---------------------------------------------------------------------------

namespace {
void reject_bool_sub(const char* op, const Array& a, const Array& b) {
  if (a.dtype == DType::Bool && b.dtype == DType::Bool)
    throw TypeError(std::string(op) + ": subtraction, the `-` operator, with two bool tensors is not supported; use "
                    "the `^` or logical_xor() operator instead");
  if (a.dtype == DType::Bool || b.dtype == DType::Bool)
    throw TypeError(std::string(op) + ": subtraction, the `-` operator, with a bool tensor is not supported; if you "
                    "are trying to invert a mask, use the `~` or logical_not() operator instead");
}
DType div_type(DType a, DType b) { return float_type(promote(a, b)); }
}  // namespace

Array add(const Array& a, const Array& b) { return binary<kAll>("add", a, b, promote(a.dtype, b.dtype), AddF{}); }
Array sub(const Array& a, const Array& b) {
  reject_bool_sub("sub", a, b);
  return binary<kNumber>("sub", a, b, promote(a.dtype, b.dtype), SubF{});
}
Array mul(const Array& a, const Array& b) { return binary<kAll>("mul", a, b, promote(a.dtype, b.dtype), MulF{}); }
Array div(const Array& a, const Array& b) { return binary<kFloat>("div", a, b, div_type(a.dtype, b.dtype), DivF{}); }

Array binary_scalar(const Array& a, double s, char op, bool reversed) {
  if (!is_floating(a.dtype))
    throw TypeError(std::string("binary_scalar: expected a float32 or float64 tensor, got ") + dtype_name(a.dtype));
  // On a's device: a CUDA op would otherwise copy a host 0-d operand over on every call.
  const Array b = full({}, s, a.dtype, a.device());
  const Array& x = reversed ? b : a;
  const Array& y = reversed ? a : b;
  switch (op) {
    case '+': return add(x, y);
    case '-': return sub(x, y);
    case '*': return mul(x, y);
    case '/': return div(x, y);
    default: throw std::invalid_argument(std::string("binary_scalar: unknown op '") + op + "' (expected + - * /)");
  }
}

Array floor_divide(const Array& a, const Array& b) {
  return binary<kNumber>("floor_divide", a, b, promote(a.dtype, b.dtype), [](auto x, auto y) {
    if constexpr (kIsInt<decltype(x)>) return int_floor_div(x, y);
    else return float_floor_div(x, y);
  });
}

Array remainder(const Array& a, const Array& b) {
  return binary<kNumber>("remainder", a, b, promote(a.dtype, b.dtype), [](auto x, auto y) {
    if constexpr (kIsInt<decltype(x)>) return int_mod(x, y);
    else return float_mod(x, y);
  });
}

Array pow(const Array& a, const Array& b) {
  return binary<kNumber>("pow", a, b, promote(a.dtype, b.dtype), [](auto x, auto y) {
    if constexpr (kIsInt<decltype(x)>) return int_pow(x, y);
    else return std::pow(x, y);
  });
}

Array maximum(const Array& a, const Array& b) { return binary<kAll>("maximum", a, b, promote(a.dtype, b.dtype), MaximumF{}); }
Array minimum(const Array& a, const Array& b) { return binary<kAll>("minimum", a, b, promote(a.dtype, b.dtype), MinimumF{}); }
Array atan2(const Array& a, const Array& b) {
  return binary<kFloat>("atan2", a, b, div_type(a.dtype, b.dtype), [](auto y, auto x) { return std::atan2(y, x); });
}

// Comparisons compute in the promoted dtype, like torch (so an int64 compared
// with a float32 compares as float32).
#define FG_COMPARISON(name, expr)                                                                  \
  Array name(const Array& a, const Array& b) {                                                     \
    return binary<kAll>(#name, a, b, promote(a.dtype, b.dtype), [](auto x, auto y) { return expr; }); \
  }
FG_COMPARISON(eq, x == y)
FG_COMPARISON(ne, x != y)
FG_COMPARISON(lt, x < y)
FG_COMPARISON(le, x <= y)
FG_COMPARISON(gt, x > y)
FG_COMPARISON(ge, x >= y)
#undef FG_COMPARISON

// Computing in bool converts each operand by truthiness on the fly.
Array logical_and(const Array& a, const Array& b) {
  return binary<kBool>("logical_and", a, b, DType::Bool, [](bool x, bool y) { return x && y; });
}
Array logical_or(const Array& a, const Array& b) {
  return binary<kBool>("logical_or", a, b, DType::Bool, [](bool x, bool y) { return x || y; });
}
Array logical_xor(const Array& a, const Array& b) {
  return binary<kBool>("logical_xor", a, b, DType::Bool, [](bool x, bool y) { return x != y; });
}

Array bitwise_and(const Array& a, const Array& b) {
  return binary<kBoolInt>("bitwise_and", a, b, promote(a.dtype, b.dtype),
                          [](auto x, auto y) { return static_cast<decltype(x)>(x & y); });
}
Array bitwise_or(const Array& a, const Array& b) {
  return binary<kBoolInt>("bitwise_or", a, b, promote(a.dtype, b.dtype),
                          [](auto x, auto y) { return static_cast<decltype(x)>(x | y); });
}
Array bitwise_xor(const Array& a, const Array& b) {
  return binary<kBoolInt>("bitwise_xor", a, b, promote(a.dtype, b.dtype),
                          [](auto x, auto y) { return static_cast<decltype(x)>(x ^ y); });
}

// ---------------------------------------------------------------------------
// where
// ---------------------------------------------------------------------------

Array where(const Array& cond, const Array& a, const Array& b) {
  if (cond.dtype != DType::Bool)
    throw TypeError(std::string("where: expected condition to be a bool tensor, got ") + dtype_name(cond.dtype));
  const Device dev = common_device("where", cond, common_device("where", a, b) == a.device() ? a : b);
  Shape shape;
  try {
    shape = broadcast_shapes(broadcast_shapes(cond.shape, a.shape, "where"), b.shape, "where");
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("where: shapes " + shape_str(cond.shape) + " (condition), " + shape_str(a.shape) +
                                " and " + shape_str(b.shape) + " cannot be broadcast together");
  }
  return on_device("where", dev, [&] {
    Array c = expand(cond, shape), x = expand(a, shape), y = expand(b, shape);
    Array out = empty(shape, promote(a.dtype, b.dtype), a.device());
    dispatch(out.dtype, [&](auto tag) {
      using T = decltype(tag);
      run_map<T, bool, T, T>(out, {&c, &x, &y}, [](bool k, T u, T v) { return k ? u : v; });
    });
    return out;
  }, [&] { return cuda::where(cond, a, b, shape); });
}

// ---------------------------------------------------------------------------
// In-place ops.
// ---------------------------------------------------------------------------

void add_(const Array& a, const Array& b) { inplace_binary<kAll>("add_", a, b, promote(a.dtype, b.dtype), AddF{}); }
void sub_(const Array& a, const Array& b) {
  reject_bool_sub("sub_", a, b);
  inplace_binary<kNumber>("sub_", a, b, promote(a.dtype, b.dtype), SubF{});
}
void mul_(const Array& a, const Array& b) { inplace_binary<kAll>("mul_", a, b, promote(a.dtype, b.dtype), MulF{}); }
void div_(const Array& a, const Array& b) { inplace_binary<kFloat>("div_", a, b, div_type(a.dtype, b.dtype), DivF{}); }

void clamp_(const Array& a, std::optional<double> min, std::optional<double> max) {
  check_clamp_args("clamp_", a, min, max);
  check_inplace_target("clamp_", a);
  on_device("clamp_", a.device(), [&] { clamp_into("clamp_", a, a, min, max); },
            [&] { cuda::clamp_into("clamp_", a, a, min, max); });
  a.bump_version();
}

// ---------------------------------------------------------------------------
// Fused first-order backward helpers.
// ---------------------------------------------------------------------------

Array relu_backward(const Array& grad, const Array& out) {
  return binary<kFloat>("relu_backward", grad, out, promote(grad.dtype, out.dtype),
                        spanned(vecmath::kReluBw, [](auto g, auto y) {
                          using T = decltype(g);
                          return y <= T(0) ? T(0) : g;  // NaN passes the gradient through, as in PyTorch
                        }));
}

Array sigmoid_backward(const Array& grad, const Array& out) {
  return binary<kFloat>("sigmoid_backward", grad, out, promote(grad.dtype, out.dtype),
                        spanned(vecmath::kSigmoidBw, [](auto g, auto y) {
                          using T = decltype(g);
                          return g * y * (T(1) - y);
                        }));
}

Array tanh_backward(const Array& grad, const Array& out) {
  return binary<kFloat>("tanh_backward", grad, out, promote(grad.dtype, out.dtype),
                        spanned(vecmath::kTanhBw, [](auto g, auto y) {
                          using T = decltype(g);
                          return g * (T(1) - y * y);
                        }));
}

Array gelu_backward(const Array& grad, const Array& x) {
  return binary<kFloat>("gelu_backward", grad, x, promote(grad.dtype, x.dtype),
                        spanned(vecmath::kGeluBw, [](auto g, auto v) { return g * sm::gelu_grad(v); }));
}

Array gelu_tanh_backward(const Array& grad, const Array& x) {
  return binary<kFloat>("gelu_tanh_backward", grad, x, promote(grad.dtype, x.dtype),
                        spanned(vecmath::kGeluTanhBw, [](auto g, auto v) { return g * sm::gelu_tanh_grad(v); }));
}

Array silu_backward(const Array& grad, const Array& x) {
  return binary<kFloat>("silu_backward", grad, x, promote(grad.dtype, x.dtype),
                        spanned(vecmath::kSiluBw, [](auto g, auto v) { return g * sm::silu_grad(v); }));
}

const char* elementwise_simd_level() {
  // The transcendental / activation ops and their backward run the vecmath
  // build in force ("avx512", "avx2" or "scalar" libm loops); the other flat
  // loops auto-vectorise for the x86-64 baseline (SSE2).
  return vecmath::isa();
}

}  // namespace fg
