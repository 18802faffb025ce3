// elementwise.cu - unary, binary, where, fill and cast-copy kernels.
//
// One grid-stride kernel per arity and compute type: operands are read and
// written through the strided Indexer with their own dtypes (converted at run
// time, as the CPU's run_map does), and the op is a uniform switch inside the
// loop. That keeps nvcc's work to a few instantiations per compute type
// instead of one per op and dtype pair; the switch costs little next to the
// memory traffic of an elementwise op.
#include "cuda/elementwise.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "errors.h"

namespace fg {
namespace cuda {
namespace {

// ---- op codes ---------------------------------------------------------------

enum UOp : int {
  U_NEG, U_ABS, U_SIGN, U_SQUARE, U_RECIP, U_EXP, U_LOG, U_LOG1P, U_EXPM1, U_SQRT, U_RSQRT, U_SIN, U_COS, U_TAN,
  U_TANH, U_SIGMOID, U_ERF, U_GELU, U_GELU_TANH, U_SILU, U_RELU, U_FLOOR, U_CEIL, U_ROUND, U_TRUNC, U_ISNAN,
  U_ISINF, U_ISFINITE, U_LOGICAL_NOT, U_BITWISE_NOT, U_LEAKY_RELU, U_ELU, U_SOFTPLUS,
  // internal: pow by a scalar (float: d0; int: i0 >= 0), clamp (float d0/d1, int i0/i1)
  U_POW_F, U_POW_I, U_CLAMP, U_CLAMP_NAN, U_COUNT
};

enum BOp : int {
  B_ADD, B_SUB, B_MUL, B_DIV, B_FLOORDIV, B_REM, B_POW, B_MAX, B_MIN, B_ATAN2, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE,
  B_LAND, B_LOR, B_LXOR, B_BAND, B_BOR, B_BXOR, B_RELU_BW, B_SIGMOID_BW, B_TANH_BW, B_GELU_BW, B_SILU_BW, B_GELU_TANH_BW, B_COUNT
};

const char* const kUnaryNames[] = {"neg", "abs", "sign", "square", "reciprocal", "exp", "log", "log1p", "expm1",
                                   "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "erf", "gelu",
                                   "gelu_tanh", "silu", "relu", "floor", "ceil", "round", "trunc", "isnan", "isinf",
                                   "isfinite", "logical_not", "bitwise_not", "leaky_relu", "elu", "softplus"};
const char* const kBinaryNames[] = {"add", "sub", "mul", "div", "floor_divide", "remainder", "pow", "maximum",
                                    "minimum", "atan2", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
                                    "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
                                    "relu_backward", "sigmoid_backward", "tanh_backward", "gelu_backward",
                                    "silu_backward", "gelu_tanh_backward"};

[[noreturn]] void not_implemented(const char* op) {
  throw std::runtime_error(std::string(op) + ": not implemented for CUDA yet");
}

int find_op(const char* op, const char* const* names, int count) {
  std::string s(op);
  if (!s.empty() && s.back() == '_') s.pop_back();  // add_ -> add
  for (int i = 0; i < count; ++i)
    if (s == names[i]) return i;
  not_implemented(op);
}

struct Params {
  double d0 = 0, d1 = 0;
  int64_t i0 = 0, i1 = 0;
};

// ---- per-element math (mirrors csrc/cpu/elementwise.cpp) ------------------------

template <class T> constexpr bool kIsBool = std::is_same_v<T, bool>;
template <class T> constexpr bool kIsInt = std::is_integral_v<T> && !kIsBool<T>;
template <class T> constexpr bool kIsFloat = std::is_floating_point_v<T>;

template <class T> using U = std::make_unsigned_t<T>;
template <class T> __device__ T wadd(T a, T b) { return static_cast<T>(static_cast<U<T>>(a) + static_cast<U<T>>(b)); }
template <class T> __device__ T wsub(T a, T b) { return static_cast<T>(static_cast<U<T>>(a) - static_cast<U<T>>(b)); }
template <class T> __device__ T wmul(T a, T b) { return static_cast<T>(static_cast<U<T>>(a) * static_cast<U<T>>(b)); }
template <class T> __device__ T wneg(T a) { return static_cast<T>(U<T>(0) - static_cast<U<T>>(a)); }

template <class T>
__device__ T int_pow_nonneg(T base, uint64_t e) {
  U<T> r = 1, b = static_cast<U<T>>(base);
  while (e) {
    if (e & 1) r = static_cast<U<T>>(r * b);
    b = static_cast<U<T>>(b * b);
    e >>= 1;
  }
  return static_cast<T>(r);
}

template <class T>
__device__ T sigmoid_f(T x) { return T(1) / (T(1) + exp(-x)); }

template <class T>
__device__ T gelu_grad_f(T x) {
  T cdf = T(0.5) * erfc(-x * T(0.70710678118654752440));
  T pdf = T(0.39894228040143267794) * exp(T(-0.5) * x * x);
  return cdf + x * pdf;
}

template <class T>
__device__ T unary_f(int op, T x, const Params& p) {
  if constexpr (kIsFloat<T>) {
    switch (op) {
      case U_NEG: return -x;
      case U_ABS: return fabs(x);
      case U_SIGN: return static_cast<T>(static_cast<int>(T(0) < x) - static_cast<int>(x < T(0)));
      case U_SQUARE: return x * x;
      case U_RECIP: return T(1) / x;
      case U_EXP: return exp(x);
      case U_LOG: return log(x);
      case U_LOG1P: return log1p(x);
      case U_EXPM1: return expm1(x);
      case U_SQRT: return sqrt(x);
      case U_RSQRT: return T(1) / sqrt(x);
      case U_SIN: return sin(x);
      case U_COS: return cos(x);
      case U_TAN: return tan(x);
      case U_TANH: return tanh(x);
      case U_SIGMOID: return sigmoid_f(x);
      case U_ERF: return erf(x);
      case U_GELU: return T(0.5) * x * erfc(-x * T(0.70710678118654752440));
      case U_GELU_TANH: {
        T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
        return T(0.5) * x * (T(1) + tanh(inner));
      }
      case U_SILU: return x / (T(1) + exp(-x));
      case U_RELU: return x < T(0) ? T(0) : x;
      case U_FLOOR: return floor(x);
      case U_CEIL: return ceil(x);
      case U_ROUND: return rint(x);  // half to even
      case U_TRUNC: return trunc(x);
      case U_ISNAN: return T(isnan(x) ? 1 : 0);
      case U_ISINF: return T(isinf(x) ? 1 : 0);
      case U_ISFINITE: return T(isfinite(x) ? 1 : 0);
      case U_LEAKY_RELU: return x > T(0) ? x : x * static_cast<T>(p.d0);
      case U_ELU: return x > T(0) ? x : static_cast<T>(p.d0) * expm1(x);
      case U_SOFTPLUS: {
        const T b = static_cast<T>(p.d0);
        return x * b > static_cast<T>(p.d1) ? x : log1p(exp(x * b)) / b;
      }
      case U_POW_F: {
        const double e = p.d0;
        if (e == 0) return T(1);
        if (e == 1) return x;
        if (e == 2) return x * x;
        if (e == 3) return x * x * x;
        if (e == 0.5) return sqrt(x);
        if (e == -0.5) return T(1) / sqrt(x);
        if (e == -1) return T(1) / x;
        if (e == -2) return T(1) / (x * x);
        return pow(x, static_cast<T>(e));
      }
      case U_CLAMP: {
        T r = x < static_cast<T>(p.d0) ? static_cast<T>(p.d0) : x;
        return r > static_cast<T>(p.d1) ? static_cast<T>(p.d1) : r;
      }
      case U_CLAMP_NAN: return static_cast<T>(NAN);
      default: return x;
    }
  } else if constexpr (kIsInt<T>) {
    switch (op) {
      case U_NEG: return wneg(x);
      case U_ABS: return x < 0 ? wneg(x) : x;
      case U_SIGN: return static_cast<T>(static_cast<int>(T(0) < x) - static_cast<int>(x < T(0)));
      case U_SQUARE: return wmul(x, x);
      case U_RELU: return x < T(0) ? T(0) : x;
      case U_BITWISE_NOT: return static_cast<T>(~x);
      case U_POW_I: return int_pow_nonneg(x, static_cast<uint64_t>(p.i0));
      case U_CLAMP: {
        T r = x < static_cast<T>(p.i0) ? static_cast<T>(p.i0) : x;
        return r > static_cast<T>(p.i1) ? static_cast<T>(p.i1) : r;
      }
      default: return x;
    }
  } else {  // bool
    switch (op) {
      case U_LOGICAL_NOT:
      case U_BITWISE_NOT: return !x;
      default: return x;
    }
  }
}

template <class T>
__device__ T binary_f(int op, T a, T b) {
  switch (op) {  // the comparisons: every compute type
    case B_EQ: return T(a == b);
    case B_NE: return T(a != b);
    case B_LT: return T(a < b);
    case B_LE: return T(a <= b);
    case B_GT: return T(a > b);
    case B_GE: return T(a >= b);
    default: break;
  }
  if constexpr (kIsFloat<T>) {
    switch (op) {
      case B_ADD: return a + b;
      case B_SUB: return a - b;
      case B_MUL: return a * b;
      case B_DIV: return a / b;
      case B_FLOORDIV: {  // CPython's float floor division (see the CPU kernel)
        if (b == 0) return a / b;
        T mod = fmod(a, b);
        T div = (a - mod) / b;
        if (mod != 0 && ((b < 0) != (mod < 0))) div -= T(1);
        if (div == 0) return copysign(T(0), a / b);
        T fl = floor(div);
        if (div - fl > T(0.5)) fl += T(1);
        return fl;
      }
      case B_REM: {
        T m = fmod(a, b);
        if (m != 0) {
          if ((b < 0) != (m < 0)) m += b;
        } else {
          m = copysign(T(0), b);
        }
        return m;
      }
      case B_POW: return pow(a, b);
      case B_MAX: return (a > b || a != a) ? a : b;
      case B_MIN: return (a < b || a != a) ? a : b;
      case B_ATAN2: return atan2(a, b);
      case B_RELU_BW: return b <= T(0) ? T(0) : a;
      case B_SIGMOID_BW: return a * b * (T(1) - b);
      case B_TANH_BW: return a * (T(1) - b * b);
      case B_GELU_BW: return a * gelu_grad_f(b);
      case B_SILU_BW: {
        T s = sigmoid_f(b);
        return a * s * (T(1) + b * (T(1) - s));
      }
      case B_GELU_TANH_BW: {
        const T k = T(0.79788456080286535588);
        T t = tanh(k * (b + T(0.044715) * b * b * b));
        T dinner = k * (T(1) + T(3 * 0.044715) * b * b);
        return a * (T(0.5) * (T(1) + t) + T(0.5) * b * (T(1) - t * t) * dinner);
      }
      default: return a;
    }
  } else if constexpr (kIsInt<T>) {
    switch (op) {
      case B_ADD: return wadd(a, b);
      case B_SUB: return wsub(a, b);
      case B_MUL: return wmul(a, b);
      case B_FLOORDIV: {
        if (b == 0) {
          g_kernel_error = 1;
          return 0;
        }
        if (b == -1) return wneg(a);
        T q = static_cast<T>(a / b);
        if (a % b != 0 && ((a < 0) != (b < 0))) --q;
        return q;
      }
      case B_REM: {
        if (b == 0) {
          g_kernel_error = 1;
          return 0;
        }
        if (b == -1) return 0;
        T r = static_cast<T>(a % b);
        if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
        return r;
      }
      case B_POW: {
        if (b < 0) {
          if (a == 1) return 1;
          if (a == -1) return (b & 1) ? T(-1) : T(1);
          return 0;
        }
        return int_pow_nonneg(a, static_cast<uint64_t>(b));
      }
      case B_MAX: return a > b ? a : b;
      case B_MIN: return a < b ? a : b;
      case B_BAND: return static_cast<T>(a & b);
      case B_BOR: return static_cast<T>(a | b);
      case B_BXOR: return static_cast<T>(a ^ b);
      default: return a;
    }
  } else {  // bool
    switch (op) {
      case B_ADD:
      case B_LOR:
      case B_BOR: return a || b;
      case B_MUL:
      case B_LAND:
      case B_BAND: return a && b;
      case B_LXOR:
      case B_BXOR: return a != b;
      case B_MAX: return a || b;
      case B_MIN: return a && b;
      default: return a;
    }
  }
}

// ---- kernels ---------------------------------------------------------------------

template <class T>
__global__ void unary_kernel(Indexer<2> ix, int64_t n, int op, Params p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    ix.offsets(i, off);
    T x = load_as<T>(ix.base[1] + off[1], ix.dtype[1]);
    store_as<T>(ix.base[0] + off[0], ix.dtype[0], unary_f<T>(op, x, p));
  }
}

template <class T>
__global__ void binary_kernel(Indexer<3> ix, int64_t n, int op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    ix.offsets(i, off);
    T a = load_as<T>(ix.base[1] + off[1], ix.dtype[1]);
    T b = load_as<T>(ix.base[2] + off[2], ix.dtype[2]);
    store_as<T>(ix.base[0] + off[0], ix.dtype[0], binary_f<T>(op, a, b));
  }
}

template <class T>
__global__ void where_kernel(Indexer<4> ix, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[4];
    ix.offsets(i, off);
    bool c = load_as<bool>(ix.base[1] + off[1], ix.dtype[1]);
    T v = c ? load_as<T>(ix.base[2] + off[2], ix.dtype[2]) : load_as<T>(ix.base[3] + off[3], ix.dtype[3]);
    store_as<T>(ix.base[0] + off[0], ix.dtype[0], v);
  }
}

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = v;
}

// dst[i] = D(src[i]) with S the source type, D the destination's run-time dtype.
template <class S>
__global__ void copy_kernel(Indexer<2> ix, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    ix.offsets(i, off);
    store_as<S>(ix.base[0] + off[0], ix.dtype[0], *reinterpret_cast<const S*>(ix.base[1] + off[1]));
  }
}

// ---- contiguous fast paths -------------------------------------------------------
//
// Same-dtype contiguous operands, 16-byte aligned: each thread moves kIlp
// independent 16-byte vectors per operand per step (enough bytes in flight
// to cover the memory latency), over a persistent grid-stride loop; the last
// n % Vec16::kN elements are done one by one. The op switch stays per element:
// it is uniform across the warp and cheap next to the memory traffic.

constexpr int kIlp = 4;

// The per-element op as an out-of-line call: its switch is compiled once per
// type instead of once per unrolled lane (that inlining doubled nvcc's time
// for this file); a call is cheap next to the memory traffic per element.
// (Params go as scalars: in registers, not through the stack.)
template <class T>
__device__ __noinline__ T unary_call(int op, T x, double d0, double d1, int64_t i0, int64_t i1) {
  Params p;
  p.d0 = d0, p.d1 = d1, p.i0 = i0, p.i1 = i1;
  return unary_f<T>(op, x, p);
}
template <class T>
__device__ __noinline__ T binary_call(int op, T a, T b) { return binary_f<T>(op, a, b); }

template <class T>
__global__ void __launch_bounds__(kThreads) unary_vec_kernel(T* out, const T* a, int64_t n, int op, Params prm) {
  const double d0 = prm.d0, d1 = prm.d1;
  const int64_t i0 = prm.i0, i1 = prm.i1;
  using V = Vec16<T>;
  constexpr int W = V::kN;
  const int64_t nvec = n / W;
  const V* av = reinterpret_cast<const V*>(a);
  V* ov = reinterpret_cast<V*>(out);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (; i + (kIlp - 1) * stride < nvec; i += kIlp * stride) {
    V r[kIlp];
#pragma unroll
    for (int u = 0; u < kIlp; ++u) r[u] = av[i + u * stride];
#pragma unroll
    for (int u = 0; u < kIlp; ++u)
#pragma unroll
      for (int e = 0; e < W; ++e) r[u].v[e] = unary_call<T>(op, r[u].v[e], d0, d1, i0, i1);
#pragma unroll
    for (int u = 0; u < kIlp; ++u) ov[i + u * stride] = r[u];
  }
  for (; i < nvec; i += stride) {
    V r = av[i];
#pragma unroll
    for (int e = 0; e < W; ++e) r.v[e] = unary_call<T>(op, r.v[e], d0, d1, i0, i1);
    ov[i] = r;
  }
  if (blockIdx.x == 0 && threadIdx.x < n - nvec * W) {
    const int64_t k = nvec * W + threadIdx.x;
    out[k] = unary_call<T>(op, a[k], d0, d1, i0, i1);
  }
}

// x or y may be a broadcast scalar (sx / sy): its one value is read once.
template <class T>
__global__ void __launch_bounds__(kThreads) binary_vec_kernel(T* out, const T* x, const T* y, int64_t n, int op,
                                                              bool sx, bool sy) {
  using V = Vec16<T>;
  constexpr int W = V::kN;
  const int64_t nvec = n / W;
  const V* xv = reinterpret_cast<const V*>(x);
  const V* yv = reinterpret_cast<const V*>(y);
  V* ov = reinterpret_cast<V*>(out);
  V xs, ys;  // the broadcast values, when scalar
  const T x0 = sx ? x[0] : T(0), y0 = sy ? y[0] : T(0);
#pragma unroll
  for (int e = 0; e < W; ++e) xs.v[e] = x0, ys.v[e] = y0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (; i + (kIlp - 1) * stride < nvec; i += kIlp * stride) {
    V a[kIlp], b[kIlp];
#pragma unroll
    for (int u = 0; u < kIlp; ++u) {
      a[u] = sx ? xs : xv[i + u * stride];
      b[u] = sy ? ys : yv[i + u * stride];
    }
#pragma unroll
    for (int u = 0; u < kIlp; ++u)
#pragma unroll
      for (int e = 0; e < W; ++e) a[u].v[e] = binary_call<T>(op, a[u].v[e], b[u].v[e]);
#pragma unroll
    for (int u = 0; u < kIlp; ++u) ov[i + u * stride] = a[u];
  }
  for (; i < nvec; i += stride) {
    V a = sx ? xs : xv[i];
    const V b = sy ? ys : yv[i];
#pragma unroll
    for (int e = 0; e < W; ++e) a.v[e] = binary_call<T>(op, a.v[e], b.v[e]);
    ov[i] = a;
  }
  if (blockIdx.x == 0 && threadIdx.x < n - nvec * W) {
    const int64_t k = nvec * W + threadIdx.x;
    out[k] = binary_call<T>(op, sx ? x0 : x[k], sy ? y0 : y[k]);
  }
}

// A dense operand of the fast path: contiguous at out's shape, or every
// stride 0 (a broadcast scalar); aligned and of the compute dtype.
bool dense_operand(const Array& a, const Array& out, DType compute, bool* scalar) {
  if (a.dtype != compute) return false;
  *scalar = true;
  for (int64_t s : a.strides) *scalar = *scalar && s == 0;
  if (*scalar) return true;  // read element by element: no alignment needed
  return a.shape == out.shape && a.is_contiguous() && aligned16(a.raw());
}

bool fast_float(const Array& out, DType compute) {
  return (compute == DType::Float32 || compute == DType::Float64) && out.dtype == compute && out.is_contiguous() &&
         aligned16(out.raw());
}

template <class Fn>
void dispatch_fast(DType t, Fn&& fn) {
  if (t == DType::Float32) fn(float{});
  else fn(double{});
}

// ---- launchers ---------------------------------------------------------------------

void run_unary(const char* op, const Array& out, const Array& a, DType compute, int code, const Params& p) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard g(out.device().index, op);
  bool sa = false;
  if (fast_float(out, compute) && dense_operand(a, out, compute, &sa) && !sa) {
    dispatch_fast(compute, [&](auto tag) {
      using T = decltype(tag);
      const int64_t work = (n / Vec16<T>::kN + kIlp - 1) / kIlp;
      unary_vec_kernel<T><<<persistent_grid(work, out.device().index), kThreads>>>(out.data<T>(), a.data<T>(), n,
                                                                                   code, p);
    });
    FG_CUDA_LAUNCH_CHECK(op);
    return;
  }
  const Array* ops[2] = {&out, &a};
  Indexer<2> ix = make_indexer<2>(out.shape, ops, op);
  dispatch(compute, [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<T><<<grid_for(n), kThreads>>>(ix, n, code, p);
  });
  FG_CUDA_LAUNCH_CHECK(op);
}

void run_binary(const char* op, const Array& out, const Array& x, const Array& y, DType compute, int code) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard g(out.device().index, op);
  bool sx = false, sy = false;
  if (fast_float(out, compute) && dense_operand(x, out, compute, &sx) && dense_operand(y, out, compute, &sy)) {
    dispatch_fast(compute, [&](auto tag) {
      using T = decltype(tag);
      const int64_t work = (n / Vec16<T>::kN + kIlp - 1) / kIlp;
      binary_vec_kernel<T><<<persistent_grid(work, out.device().index), kThreads>>>(
          out.data<T>(), x.data<T>(), y.data<T>(), n, code, sx, sy);
    });
    FG_CUDA_LAUNCH_CHECK(op);
    return;
  }
  const Array* ops[3] = {&out, &x, &y};
  Indexer<3> ix = make_indexer<3>(out.shape, ops, op);
  const bool may_fail = (code == B_FLOORDIV || code == B_REM) && is_integral(compute);
  if (may_fail) reset_kernel_error(op);
  dispatch(compute, [&](auto tag) {
    using T = decltype(tag);
    binary_kernel<T><<<grid_for(n), kThreads>>>(ix, n, code);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  if (may_fail)
    check_kernel_error(op, code == B_FLOORDIV ? "ZeroDivisionError (integer division by zero)"
                                              : "ZeroDivisionError (integer modulo by zero)");
}

// x on device d: a CPU operand here is a broadcast 0-d scalar (common_device
// allows nothing else), so only its one element crosses to the device.
Array on(const Array& x, Device d) {
  if (x.device() == d) return x;
  if (x.device().type != DeviceType::CPU) check_same_device("to", d, x.device());
  Array one = as_strided(x, {}, {}, x.offset);
  return expand(to_device(one, d), x.shape);
}

Device first_cuda(const Array& a, const Array& b) { return a.device().type == DeviceType::CUDA ? a.device() : b.device(); }

bool bool_result(int code) { return code == B_EQ || code == B_NE || code == B_LT || code == B_LE || code == B_GT || code == B_GE || code == B_LAND || code == B_LOR || code == B_LXOR; }

}  // namespace

Array unary(const char* op, const Array& a, DType compute, UnaryParams up) {
  const int code = find_op(op, kUnaryNames, static_cast<int>(sizeof(kUnaryNames) / sizeof(kUnaryNames[0])));
  const bool to_bool = code == U_ISNAN || code == U_ISINF || code == U_ISFINITE || code == U_LOGICAL_NOT;
  Array out = empty(a.shape, to_bool ? DType::Bool : compute, a.device());
  Params p;
  p.d0 = up.d0;
  p.d1 = up.d1;
  run_unary(op, out, a, compute, code, p);
  return out;
}

Array unary_param(const char* op, const Array& a, double p0, double p1) {
  if (!is_floating(a.dtype))
    throw TypeError(std::string(op) + ": not supported for dtype " + dtype_name(a.dtype) +
                    " (expected float32 or float64)");
  return unary(op, a, a.dtype, UnaryParams{p0, p1});
}

Array pow_scalar(const Array& a, const std::variant<int64_t, double>& exponent) {
  const char* op = "pow";
  if (const int64_t* ie = std::get_if<int64_t>(&exponent); ie && !is_floating(a.dtype)) {
    if (*ie < 0) throw std::runtime_error("pow: Integers to negative integer powers are not allowed.");
    DType t = a.dtype == DType::Bool ? DType::Int64 : a.dtype;
    Array out = empty(a.shape, t, a.device());
    Params p;
    p.i0 = *ie;
    run_unary(op, out, a, t, U_POW_I, p);
    return out;
  }
  const double e = std::visit([](auto v) { return static_cast<double>(v); }, exponent);
  DType t = is_floating(a.dtype) ? a.dtype : DType::Float32;
  Array out = empty(a.shape, t, a.device());
  Params p;
  p.d0 = e;
  run_unary(op, out, a, t, U_POW_F, p);
  return out;
}

void clamp_into(const char* op, const Array& out, const Array& a, std::optional<double> lo, std::optional<double> hi) {
  Params p;
  int code = U_CLAMP;
  if (is_floating(a.dtype)) {
    const double inf = std::numeric_limits<double>::infinity();
    p.d0 = lo ? *lo : -inf;
    p.d1 = hi ? *hi : inf;
    if (std::isnan(p.d0) || std::isnan(p.d1)) code = U_CLAMP_NAN;
  } else {
    dispatch_number(a.dtype, op, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_integral_v<T>) {
        auto bound = [&](const char* name, std::optional<double> v, bool upper) -> int64_t {
          if (!v) return upper ? std::numeric_limits<T>::max() : std::numeric_limits<T>::lowest();
          if (!(std::trunc(*v) == *v))
            throw std::invalid_argument(std::string(op) + ": " + name + "=" + std::to_string(*v) +
                                        " is not an integer, but the tensor is " + dtype_name(a.dtype) +
                                        " (convert it to a float dtype first)");
          if (*v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
          if (*v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
          return static_cast<int64_t>(*v);
        };
        p.i0 = bound("min", lo, false);
        p.i1 = bound("max", hi, true);
      }
    });
  }
  run_unary(op, out, a, a.dtype, code, p);
}

Array binary(const char* op, const Array& a, const Array& b, const Shape& shape, DType compute) {
  const int code = find_op(op, kBinaryNames, static_cast<int>(sizeof(kBinaryNames) / sizeof(kBinaryNames[0])));
  const Device dev = first_cuda(a, b);
  Array x = expand(on(a, dev), shape), y = expand(on(b, dev), shape);
  Array out = empty(shape, bool_result(code) ? DType::Bool : compute, dev);
  run_binary(op, out, x, y, compute, code);
  return out;
}

void inplace_binary(const char* op, const Array& a, const Array& b, DType compute) {
  const int code = find_op(op, kBinaryNames, static_cast<int>(sizeof(kBinaryNames) / sizeof(kBinaryNames[0])));
  run_binary(op, a, a, on(b, a.device()), compute, code);
}

Array where(const Array& cond, const Array& a, const Array& b, const Shape& shape) {
  const char* op = "where";
  const Device dev = first_cuda(cond, first_cuda(a, b) == a.device() ? a : b);
  Array c = expand(on(cond, dev), shape), x = expand(on(a, dev), shape), y = expand(on(b, dev), shape);
  Array out = empty(shape, promote(a.dtype, b.dtype), dev);
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard g(out.device().index, op);
  const Array* ops[4] = {&out, &c, &x, &y};
  Indexer<4> ix = make_indexer<4>(shape, ops, op);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<grid_for(n), kThreads>>>(ix, n);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  return out;
}

void fill(const Array& a, double value) {
  const int64_t n = a.numel();
  if (n == 0) return;
  DeviceGuard g(a.device().index, "full");
  if (value == 0 && !std::signbit(value)) {  // zeros (every dtype's 0 is all zero bytes)
    FG_CUDA_CHECK("full", cudaMemsetAsync(a.raw(), 0, static_cast<size_t>(n) * a.itemsize()));
    return;
  }
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(n), kThreads>>>(a.data<T>(), n, static_cast<T>(value));
  });
  FG_CUDA_LAUNCH_CHECK("full");
}

void copy_cast(const Array& dst, const Array& src, const char* op) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard g(dst.device().index, op);
  if (dst.dtype == src.dtype && dst.is_contiguous() && src.is_contiguous() && dst.shape == src.shape) {
    FG_CUDA_CHECK(op, cudaMemcpyAsync(dst.raw(), src.raw(), static_cast<size_t>(n) * dst.itemsize(),
                                      cudaMemcpyDeviceToDevice));
    return;
  }
  const Array* ops[2] = {&dst, &src};
  Indexer<2> ix = make_indexer<2>(dst.shape, ops, op);
  dispatch(src.dtype, [&](auto tag) {
    using S = decltype(tag);
    copy_kernel<S><<<grid_for(n), kThreads>>>(ix, n);
  });
  FG_CUDA_LAUNCH_CHECK(op);
}

}  // namespace cuda
}  // namespace fg
