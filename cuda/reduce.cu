// reduce.cu - see reduce.h. Every kernel here is "one block per output":
// threads stride over the reduced elements in a fixed order, then combine in
// a fixed shared-memory tree. Simple, deterministic, and fast enough when
// outputs are few and long (the common training case: full sums, rows).
#include "cuda/reduce.h"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "errors.h"

namespace fg {
namespace cuda {
namespace {

constexpr int kRedThreads = 256;

enum ROp : int { R_SUM, R_PROD, R_MAX, R_MIN, R_ALL, R_ANY, R_VAR2, R_LSE2, R_NORM0, R_NORM1, R_NORM2, R_NORMP,
                 R_NORMINF, R_NORMNINF };

// Input element offsets (in elements) split into kept (output) and reduced dims.
struct RedIndex {
  int nk = 0, nr = 0;
  int64_t kshape[kMaxDims], kstride[kMaxDims];
  int64_t rshape[kMaxDims], rstride[kMaxDims];

  __device__ int64_t kept(int64_t o) const {
    int64_t off = 0;
    for (int d = nk - 1; d >= 0; --d) {
      off += (o % kshape[d]) * kstride[d];
      o /= kshape[d];
    }
    return off;
  }
  __device__ int64_t red(int64_t r) const {
    int64_t off = 0;
    for (int d = nr - 1; d >= 0; --d) {
      off += (r % rshape[d]) * rstride[d];
      r /= rshape[d];
    }
    return off;
  }
};

struct Spec {
  Shape out_shape;
  int64_t n_out = 1, n_red = 1;
  RedIndex ix;
};

Spec make_spec(const Array& a, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  const int nd = a.ndim();
  if (nd > kMaxDims) throw std::invalid_argument(std::string(op) + ": more than " + std::to_string(kMaxDims) + " dims are not supported on CUDA");
  std::vector<bool> mask(nd, dims.empty());
  for (int64_t d0 : dims) {
    int d = wrap_dim(d0, nd, op);
    if (nd == 0) continue;
    if (mask[d]) throw std::invalid_argument(std::string(op) + ": dim " + std::to_string(d) + " appears multiple times in the list of dims");
    mask[d] = true;
  }
  Spec s;
  for (int d = 0; d < nd; ++d) {
    if (mask[d]) {
      s.ix.rshape[s.ix.nr] = a.shape[d];
      s.ix.rstride[s.ix.nr++] = a.strides[d];
      s.n_red *= a.shape[d];
      if (keepdim) s.out_shape.push_back(1);
    } else {
      s.ix.kshape[s.ix.nk] = a.shape[d];
      s.ix.kstride[s.ix.nk++] = a.strides[d];
      s.n_out *= a.shape[d];
      s.out_shape.push_back(a.shape[d]);
    }
  }
  return s;
}

template <class A>
__device__ __forceinline__ A comb(int op, A x, A y) {
  switch (op) {
    case R_PROD: return x * y;
    case R_MAX:
    case R_NORMINF:
      if constexpr (std::is_floating_point_v<A>) return (x > y || x != x) ? x : y;
      else return x > y ? x : y;
    case R_MIN:
    case R_NORMNINF:
      if constexpr (std::is_floating_point_v<A>) return (x < y || x != x) ? x : y;
      else return x < y ? x : y;
    case R_ALL: return (x != A(0) && y != A(0)) ? A(1) : A(0);
    case R_ANY: return (x != A(0) || y != A(0)) ? A(1) : A(0);
    default:
      if constexpr (std::is_floating_point_v<A>) return x + y;
      else return static_cast<A>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y));  // wraps like the CPU
  }
}

template <class A>
__device__ __forceinline__ A identity(int op) {
  switch (op) {
    case R_PROD:
    case R_ALL: return A(1);
    case R_MAX:
    case R_NORMINF:
      if constexpr (std::is_floating_point_v<A>) return -INFINITY;
      else return std::numeric_limits<A>::lowest();
    case R_MIN:
    case R_NORMNINF:
      if constexpr (std::is_floating_point_v<A>) return INFINITY;
      else return std::numeric_limits<A>::max();
    default: return A(0);
  }
}

template <class A>
__device__ __forceinline__ A map_in(int op, A x, double aux, double p) {
  if constexpr (std::is_floating_point_v<A>) {
    switch (op) {
      case R_VAR2: { A d = x - A(aux); return d * d; }
      case R_LSE2: return exp(x - A(aux));
      case R_NORM0: return x != A(0) ? A(1) : A(0);
      case R_NORM1:
      case R_NORMINF:
      case R_NORMNINF: return fabs(x);
      case R_NORM2: return x * x;
      case R_NORMP: return pow(fabs(x), A(p));
      default: return x;
    }
  } else {
    if (op == R_ALL || op == R_ANY) return x != A(0) ? A(1) : A(0);
    return x;
  }
}

// Post-processing of the combined value: mean, var, logsumexp, norms.
struct Finish {
  double scale = 1.0;  // multiply (mean: 1/n, var: 1/divisor)
  bool lse = false, sqrt_ = false, root = false;
  double inv_p = 1.0;
};

// One block per output o: out[o] = finish(combine over r of map(x[o, r])).
// T: input element type; A: accumulator (double for floats, int64 for ints
// and bool). aux: per-output doubles (mean / shift) or null.
template <class T, class A>
__global__ void reduce_kernel(const T* x, RedIndex ix, int64_t n_out, int64_t n_red, int op, double p,
                              const double* aux, char* out, DType out_t, int64_t out_isz, Finish fin) {
  __shared__ A smem[kRedThreads];
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    const T* base = x + ix.kept(o);
    double av = 0;
    if (aux) {
      av = aux[o];
      if (op == R_LSE2 && !isfinite(av)) av = 0;
    }
    A acc = identity<A>(op);
    for (int64_t r = threadIdx.x; r < n_red; r += blockDim.x)
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(base[ix.red(r)]), av, p));
    smem[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) smem[threadIdx.x] = comb<A>(op, smem[threadIdx.x], smem[threadIdx.x + s]);
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      A v = smem[0];
      if constexpr (std::is_floating_point_v<A>) {
        if (fin.scale != 1.0) v = v * A(fin.scale);
        if (fin.sqrt_) v = sqrt(v);
        if (fin.root) v = pow(v, A(fin.inv_p));
        if (fin.lse) v = log(v) + A(av);
      }
      char* po = out + o * out_isz;
      store_as<A>(po, out_t, v);
    }
    __syncthreads();
  }
}

// Runs one reduction into `out` (contiguous, spec.out_shape, any dtype).
void run(const char* opname, const Array& a, const Spec& s, int op, const Array& out, double p = 0,
         const Array* aux = nullptr, Finish fin = {}) {
  if (s.n_out == 0) return;
  DeviceGuard g(a.device().index, opname);
  const double* pa = aux ? aux->data<double>() : nullptr;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(s.n_out, 65535));
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    reduce_kernel<T, A><<<grid, kRedThreads>>>(a.data<T>(), s.ix, s.n_out, s.n_red, op, p, pa, out.raw(), out.dtype,
                                                static_cast<int64_t>(out.itemsize()), fin);
  });
  FG_CUDA_LAUNCH_CHECK(opname);
}

void check_nonempty(const Array& a, const std::vector<int64_t>& dims, const Spec& s, const char* op) {
  if (a.numel() != 0) return;
  if (dims.empty())
    throw std::invalid_argument(std::string(op) +
                                ": expected reduction dim to be specified for input.numel() == 0 (the "
                                "reduction has no identity); reduce over a dim instead");
  if (s.n_red == 0)
    throw std::out_of_range(std::string(op) + ": expected reduction dim to have non-zero size");
}

// ---- arg-extrema over one dim of a contiguous (outer, n, inner) array ----

template <class T>
__device__ __forceinline__ bool better(bool is_max, T v1, int64_t i1, T v2, int64_t i2) {
  // true when (v1, i1) wins over (v2, i2): NaN beats everything, then the
  // larger (smaller) value, ties to the first index.
  if constexpr (std::is_floating_point_v<T>) {
    const bool n1 = v1 != v1, n2 = v2 != v2;
    if (n1 || n2) return n1 && (!n2 || i1 < i2);
  }
  if (v1 == v2) return i1 < i2;
  return is_max ? v1 > v2 : v1 < v2;
}

template <class T>
__global__ void argext_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, bool is_max, T* vals,
                              int64_t* idx) {
  __shared__ T sv[kRedThreads];
  __shared__ int64_t si[kRedThreads];
  const int64_t n_out = outer * inner;
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    const int64_t ob = o / inner, ib = o % inner;
    const T* base = x + ob * n * inner + ib;
    T bv = base[0];
    int64_t bi = 0;
    for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
      T v = base[r * inner];
      if (r == threadIdx.x || better(is_max, v, r, bv, bi)) {
        bv = v;
        bi = r;
      }
    }
    if (threadIdx.x >= n) bi = INT64_MAX;  // no element: loses every comparison below
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        const int j = threadIdx.x + s;
        if (si[j] != INT64_MAX && (si[threadIdx.x] == INT64_MAX || better(is_max, sv[j], si[j], sv[threadIdx.x], si[threadIdx.x]))) {
          sv[threadIdx.x] = sv[j];
          si[threadIdx.x] = si[j];
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (vals) vals[o] = sv[0];
      idx[o] = si[0];
    }
    __syncthreads();
  }
}

struct Split3 {
  int64_t outer = 1, n = 1, inner = 1;
};
Split3 split3(const Shape& shape, int d) {
  Split3 s;
  if (shape.empty()) return s;
  for (int i = 0; i < d; ++i) s.outer *= shape[i];
  s.n = shape[d];
  for (size_t i = d + 1; i < shape.size(); ++i) s.inner *= shape[i];
  return s;
}

Shape drop_dim(const Shape& shape, int d, bool keepdim) {
  Shape r = shape;
  if (r.empty()) return r;
  if (keepdim) r[d] = 1;
  else r.erase(r.begin() + d);
  return r;
}

void run_argext(const char* op, const Array& a, const Split3& s, bool is_max, const Array* vals, const Array& idx) {
  const int64_t n_out = s.outer * s.inner;
  if (n_out == 0 || s.n == 0) return;
  DeviceGuard g(a.device().index, op);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(n_out, 65535));
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    argext_kernel<T><<<grid, kRedThreads>>>(a.data<T>(), s.outer, s.n, s.inner, is_max,
                                            vals ? vals->data<T>() : nullptr, idx.data<int64_t>());
  });
  FG_CUDA_LAUNCH_CHECK(op);
}

// ---- scans: one thread per line, sequential (the order of the CPU's) ----

template <class T, class A, class O>
__global__ void scan_kernel(const T* x, O* y, int64_t outer, int64_t n, int64_t inner, bool prod) {
  const int64_t lines = outer * inner;
  for (int64_t l = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ob = l / inner, ib = l % inner;
    const T* xr = x + ob * n * inner + ib;
    O* yr = y + ob * n * inner + ib;
    A acc = prod ? A(1) : A(0);
    for (int64_t i = 0; i < n; ++i) {
      const A v = static_cast<A>(xr[i * inner]);
      if constexpr (std::is_floating_point_v<A>) acc = prod ? acc * v : acc + v;
      else acc = static_cast<A>(prod ? static_cast<uint64_t>(acc) * static_cast<uint64_t>(v)
                                     : static_cast<uint64_t>(acc) + static_cast<uint64_t>(v));
      yr[i * inner] = static_cast<O>(acc);
    }
  }
}

// ---- softmax: one block per line of a contiguous (outer, n, inner) array ----

template <class T>
__device__ T block_sum(T v, T* smem) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] += smem[threadIdx.x + s];
    __syncthreads();
  }
  T r = smem[0];
  __syncthreads();
  return r;
}

template <class T>
__device__ T block_max(T v, T* smem) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      T a = smem[threadIdx.x], b = smem[threadIdx.x + s];
      smem[threadIdx.x] = (a > b || a != a) ? a : b;
    }
    __syncthreads();
  }
  T r = smem[0];
  __syncthreads();
  return r;
}

template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log_) {
  __shared__ T smem[kRedThreads];
  const int64_t lines = outer * inner;
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    const int64_t off = (l / inner) * n * inner + l % inner;
    const T* xr = x + off;
    T* yr = y + off;
    T m = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      T v = xr[i * inner];
      m = (v > m || v != v) ? v : m;
    }
    m = block_max(m, smem);
    if (isinf(m) && m < 0) m = 0;  // a row of -inf: exp(-inf - 0) = 0 everywhere, no NaN from -inf - -inf
    T s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += exp(xr[i * inner] - m);
    s = block_sum(s, smem);
    if (log_) {
      const T ls = log(s);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i * inner] = xr[i * inner] - m - ls;
    } else {
      const T inv = T(1) / s;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i * inner] = exp(xr[i * inner] - m) * inv;
    }
  }
}

template <class T>
__global__ void softmax_bw_kernel(const T* g, const T* o, T* gi, int64_t outer, int64_t n, int64_t inner, bool log_) {
  __shared__ T smem[kRedThreads];
  const int64_t lines = outer * inner;
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    const int64_t off = (l / inner) * n * inner + l % inner;
    T s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t k = off + i * inner;
      s += log_ ? g[k] : g[k] * o[k];
    }
    s = block_sum(s, smem);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t k = off + i * inner;
      gi[k] = log_ ? g[k] - exp(o[k]) * s : o[k] * (g[k] - s);
    }
  }
}

Array as_contig(const Array& a) { return a.is_contiguous() ? a : contiguous(a); }

}  // namespace

Array sum(const Array& a0, const std::vector<int64_t>& dims, bool keepdim, std::optional<DType> dtype) {
  Array a = (dtype && *dtype != a0.dtype) ? astype(a0, *dtype) : a0;
  DType ot = dtype ? *dtype : (is_floating(a.dtype) ? a.dtype : DType::Int64);
  Spec s = make_spec(a, dims, keepdim, "sum");
  Array out = empty(s.out_shape, ot, a.device());
  run("sum", a, s, R_SUM, out);
  return out;
}

Array reduce(const char* op, const Array& a, const std::vector<int64_t>& dims, bool keepdim, double p) {
  Spec s = make_spec(a, dims, keepdim, op);
  const std::string name(op);
  const Device dev = a.device();
  Finish fin;
  if (name == "mean") {
    Array out = empty(s.out_shape, a.dtype, dev);
    fin.scale = 1.0 / static_cast<double>(s.n_red);
    if (s.n_red == 0) fin.scale = std::numeric_limits<double>::quiet_NaN();
    run(op, a, s, R_SUM, out, 0, nullptr, fin);
    return out;
  }
  if (name == "prod") {
    Array out = empty(s.out_shape, is_floating(a.dtype) ? a.dtype : DType::Int64, dev);
    run(op, a, s, R_PROD, out);
    return out;
  }
  if (name == "amax" || name == "amin") {
    check_nonempty(a, dims, s, op);
    Array out = empty(s.out_shape, a.dtype, dev);
    run(op, a, s, name == "amax" ? R_MAX : R_MIN, out);
    return out;
  }
  if (name == "all" || name == "any") {
    Array out = empty(s.out_shape, DType::Bool, dev);
    run(op, a, s, name == "all" ? R_ALL : R_ANY, out);
    return out;
  }
  if (name == "var") {
    Array m = empty(s.out_shape, DType::Float64, dev);
    Finish mf;
    mf.scale = s.n_red ? 1.0 / static_cast<double>(s.n_red) : std::numeric_limits<double>::quiet_NaN();
    run(op, a, s, R_SUM, m, 0, nullptr, mf);
    Array out = empty(s.out_shape, a.dtype, dev);
    const double divisor = std::max(0.0, static_cast<double>(s.n_red) - p);
    fin.scale = 1.0 / divisor;  // inf for divisor 0: 0 * inf = nan, x * inf = inf (as n / 0 on the CPU)
    run(op, a, s, R_VAR2, out, 0, &m, fin);
    return out;
  }
  if (name == "logsumexp") {
    Array out = empty(s.out_shape, a.dtype, dev);
    Array shift = empty(s.out_shape, DType::Float64, dev);
    run(op, a, s, R_MAX, shift);
    fin.lse = true;
    run(op, a, s, R_LSE2, out, 0, &shift, fin);
    return out;
  }
  if (name == "norm") {
    if (std::isinf(p) && a.numel() == 0 && s.n_red == 0)
      throw std::invalid_argument(std::string("norm: cannot compute the ") + (p > 0 ? "inf" : "-inf") +
                                  " norm over an empty dim (the reduction has no identity)");
    Array out = empty(s.out_shape, a.dtype, dev);
    int code = R_NORMP;
    if (std::isinf(p)) code = p > 0 ? R_NORMINF : R_NORMNINF;
    else if (p == 0) code = R_NORM0;
    else if (p == 1) code = R_NORM1;
    else if (p == 2) { code = R_NORM2; fin.sqrt_ = true; }
    else { fin.root = true; fin.inv_p = 1.0 / p; }
    run(op, a, s, code, out, p, nullptr, fin);
    return out;
  }
  throw std::runtime_error(std::string(op) + ": not implemented for CUDA yet");
}

std::pair<Array, Array> max_min_dim(const Array& a0, int64_t dim, bool keepdim, bool is_max, const char* op) {
  int d = wrap_dim(dim, a0.ndim(), op);
  if (a0.ndim() > 0 && a0.shape[d] == 0)
    throw std::out_of_range(std::string(op) + ": expected reduction dim " + std::to_string(d) + " to have non-zero size");
  Shape os = drop_dim(a0.shape, d, keepdim);
  Array vals = empty(os, a0.dtype, a0.device()), idx = empty(os, DType::Int64, a0.device());
  if (a0.numel() == 0) return {vals, idx};
  Array a = as_contig(a0);
  run_argext(op, a, split3(a.shape, d), is_max, &vals, idx);
  return {vals, idx};
}

Array arg_ext(const Array& a0, std::optional<int64_t> dim, bool keepdim, bool is_max, const char* op) {
  if (a0.dtype == DType::Bool) throw TypeError(std::string(op) + ": does not support bool input");
  if (!dim) {
    if (a0.numel() == 0)
      throw std::out_of_range(std::string(op) + ": expected reduction dim to be specified for input.numel() == 0");
    Array a = as_contig(a0);
    Array idx = empty(keepdim ? Shape(a.ndim(), 1) : Shape{}, DType::Int64, a.device());
    Split3 s;
    s.n = a.numel();
    run_argext(op, a, s, is_max, nullptr, idx);
    return idx;
  }
  int d = wrap_dim(*dim, a0.ndim(), op);
  if (a0.ndim() > 0 && a0.shape[d] == 0)
    throw std::out_of_range(std::string(op) + ": expected reduction dim " + std::to_string(d) + " to have non-zero size");
  Array idx = empty(drop_dim(a0.shape, d, keepdim), DType::Int64, a0.device());
  if (a0.numel() == 0) return idx;
  Array a = as_contig(a0);
  run_argext(op, a, split3(a.shape, d), is_max, nullptr, idx);
  return idx;
}

Array scan(const Array& a0, int64_t dim, bool prod, const char* op) {
  int d = wrap_dim(dim, a0.ndim(), op);
  DType ot = is_floating(a0.dtype) ? a0.dtype : DType::Int64;
  Array out = empty(a0.shape, ot, a0.device());
  if (a0.numel() == 0) return out;
  Array a = as_contig(a0);
  Split3 s = split3(a.shape, d);
  DeviceGuard g(a.device().index, op);
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    using O = std::conditional_t<std::is_floating_point_v<T>, T, int64_t>;
    scan_kernel<T, A, O><<<grid_for(s.outer * s.inner), kThreads>>>(a.data<T>(), out.data<O>(), s.outer, s.n, s.inner, prod);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  return out;
}

Array softmax(const Array& a0, int64_t dim, bool log, const char* op) {
  int d = wrap_dim(dim, a0.ndim(), op);
  Array out = empty(a0.shape, a0.dtype, a0.device());
  if (a0.numel() == 0) return out;
  Array a = as_contig(a0);
  Split3 s = split3(a.shape, d);
  DeviceGuard g(a.device().index, op);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(s.outer * s.inner, 65535));
  dispatch_float(a.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<grid, kRedThreads>>>(a.data<T>(), out.data<T>(), s.outer, s.n, s.inner, log);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  return out;
}

Array softmax_backward(const Array& g0, const Array& o0, int64_t dim, bool log, const char* op) {
  int d = wrap_dim(dim, g0.ndim(), op);
  Array gi = empty(g0.shape, g0.dtype, g0.device());
  if (g0.numel() == 0) return gi;
  Array gc = as_contig(g0), oc = as_contig(o0);
  Split3 s = split3(gc.shape, d);
  DeviceGuard g(gc.device().index, op);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(s.outer * s.inner, 65535));
  dispatch_float(gc.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    softmax_bw_kernel<T><<<grid, kRedThreads>>>(gc.data<T>(), oc.data<T>(), gi.data<T>(), s.outer, s.n, s.inner, log);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  return gi;
}

}  // namespace cuda
}  // namespace fg
