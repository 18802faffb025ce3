// reduce.cu - see reduce.h. Reductions pick a launch plan from the shape
// (and strides) alone, so a run repeats bit for bit:
//  - a block per (output, chunk): threads stride over the chunk's elements in
//    a fixed order, then a fixed shared-memory tree. Long reductions over few
//    outputs (x.sum()) are split into a fixed number of chunks so that every
//    SM works; a second pass combines each output's partials in a fixed tree.
//  - a thread per (output, chunk), looping over the reduced elements in order:
//    short reductions (many rows of a few elements) and reductions whose
//    outputs are contiguous in memory (sum over dim 0 of (N, C)): consecutive
//    threads read consecutive addresses. Chunks (and a second pass) again
//    when there are too few outputs to fill the GPU.
// Never floating-point atomics.
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

  __device__ __forceinline__ int64_t kept(int64_t o) const {
    if (nk == 1) return o * kstride[0];
    int64_t off = 0;
    for (int d = nk - 1; d >= 0; --d) {
      off += (o % kshape[d]) * kstride[d];
      o /= kshape[d];
    }
    return off;
  }
  __device__ __forceinline__ int64_t red(int64_t r) const {
    if (nr == 1) return r * rstride[0];  // the common case once dims are merged: no division
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

// Drops size-1 dims and merges neighbours (i, i+1) with stride[i] ==
// stride[i+1] * shape[i+1]: the same offsets with fewer divisions per element
// (a contiguous full reduction becomes one dim). Empty lists stay as they are.
void merge_dims(int& n, int64_t* shape, int64_t* stride) {
  for (int i = 0; i < n; ++i)
    if (shape[i] == 0) return;
  int m = 0;
  for (int i = 0; i < n; ++i) {
    if (shape[i] == 1) continue;
    if (m > 0 && stride[m - 1] == stride[i] * shape[i]) {
      shape[m - 1] *= shape[i];
      stride[m - 1] = stride[i];
    } else {
      shape[m] = shape[i];
      stride[m++] = stride[i];
    }
  }
  n = m;
}

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
  merge_dims(s.ix.nk, s.ix.kshape, s.ix.kstride);
  merge_dims(s.ix.nr, s.ix.rshape, s.ix.rstride);
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

// Per-output value of the aux input (mean for var, the shift for logsumexp).
__device__ __forceinline__ double aux_of(const double* aux, int op, int64_t o) {
  if (!aux) return 0;
  double av = aux[o];
  if (op == R_LSE2 && !isfinite(av)) av = 0;
  return av;
}

template <class A>
__device__ __forceinline__ void finish_store(A v, const Finish& fin, double av, char* out, DType out_t,
                                             int64_t out_isz, int64_t o) {
  if constexpr (std::is_floating_point_v<A>) {
    if (fin.scale != 1.0) v = v * A(fin.scale);
    if (fin.sqrt_) v = sqrt(v);
    if (fin.root) v = pow(v, A(fin.inv_p));
    if (fin.lse) v = log(v) + A(av);
  }
  store_as<A>(out + o * out_isz, out_t, v);
}

// Fixed shared-memory tree over the block's values; the result is valid in
// thread 0 only.
template <class A>
__device__ __forceinline__ A block_combine(int op, A v, A* smem) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] = comb<A>(op, smem[threadIdx.x], smem[threadIdx.x + s]);
    __syncthreads();
  }
  A r = smem[0];
  __syncthreads();
  return r;
}

// How a reduction is launched: `chunks` pieces of `csize` reduced elements
// per output (the last may be shorter), by blocks or by threads.
struct Plan {
  bool by_thread = false;
  int64_t chunks = 1, csize = 0;
};

constexpr int64_t kBlockChunkMin = 16384;  // elements per block-chunk (64 per thread) before splitting pays
constexpr int64_t kBlockTarget = 1024;     // blocks to aim for when splitting (several per SM)
constexpr int64_t kThreadChunkMin = 32;    // elements per thread-chunk
constexpr int64_t kThreadTarget = 262144;  // threads to aim for when splitting
constexpr int64_t kShortRed = 32;          // reductions this short take a thread per output

// A function of the shape and strides only (never of the device), so that
// the result's bits are too.
Plan make_plan(const Spec& s) {
  Plan pl;
  const RedIndex& ix = s.ix;
  const bool out_contig = ix.nk >= 1 && ix.kstride[ix.nk - 1] == 1;
  const bool red_contig = ix.nr >= 1 && ix.rstride[ix.nr - 1] == 1;
  pl.by_thread = s.n_red <= kShortRed || (out_contig && !red_contig);
  if (s.n_red == 0) return pl;
  const int64_t cmin = pl.by_thread ? kThreadChunkMin : kBlockChunkMin;
  const int64_t target = pl.by_thread ? kThreadTarget : kBlockTarget;
  int64_t chunks = std::min((s.n_red + cmin - 1) / cmin, (target + s.n_out - 1) / s.n_out);
  chunks = std::max<int64_t>(chunks, 1);
  pl.csize = (s.n_red + chunks - 1) / chunks;
  pl.chunks = (s.n_red + pl.csize - 1) / pl.csize;
  return pl;
}

// Pass 1 by blocks: block u handles output o = u / chunks, chunk c = u % chunks.
// With one chunk it finishes and stores the output; otherwise it writes its
// partial to part[u] (that is, part[o * chunks + c]).
template <class T, class A>
__global__ void reduce_block_kernel(const T* x, RedIndex ix, int64_t n_out, int64_t n_red, int64_t chunks,
                                    int64_t csize, int op, double p, const double* aux, char* out, DType out_t,
                                    int64_t out_isz, Finish fin, A* part) {
  __shared__ A smem[kRedThreads];
  const int64_t units = n_out * chunks;
  const int64_t B = blockDim.x;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t o = u / chunks, c = u % chunks;
    const T* base = x + ix.kept(o);
    const double av = aux_of(aux, op, o);
    const int64_t r1 = min(n_red, (c + 1) * csize);
    A acc = identity<A>(op);
    int64_t r = c * csize + threadIdx.x;
    // Four loads in flight per thread, combined in the order of the plain loop.
    for (; r + 3 * B < r1; r += 4 * B) {
      const T v0 = base[ix.red(r)], v1 = base[ix.red(r + B)], v2 = base[ix.red(r + 2 * B)],
              v3 = base[ix.red(r + 3 * B)];
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v0), av, p));
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v1), av, p));
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v2), av, p));
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v3), av, p));
    }
    for (; r < r1; r += B) acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(base[ix.red(r)]), av, p));
    acc = block_combine<A>(op, acc, smem);
    if (threadIdx.x == 0) {
      if (part) part[u] = acc;
      else finish_store<A>(acc, fin, av, out, out_t, out_isz, o);
    }
  }
}

// Pass 1 by threads: thread t handles output o = t % n_out, chunk c = t / n_out
// (consecutive threads, consecutive outputs), looping over the chunk in order.
// Partials go to part[t] (that is, part[c * n_out + o]).
template <class T, class A>
__global__ void reduce_thread_kernel(const T* x, RedIndex ix, int64_t n_out, int64_t n_red, int64_t chunks,
                                     int64_t csize, int op, double p, const double* aux, char* out, DType out_t,
                                     int64_t out_isz, Finish fin, A* part) {
  const int64_t units = n_out * chunks;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < units; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = t / n_out, o = t % n_out;
    const T* base = x + ix.kept(o);
    const double av = aux_of(aux, op, o);
    const int64_t r1 = min(n_red, (c + 1) * csize);
    A acc = identity<A>(op);
    int64_t r = c * csize;
    for (; r + 3 < r1; r += 4) {  // four loads in flight, combined in order
      const T v0 = base[ix.red(r)], v1 = base[ix.red(r + 1)], v2 = base[ix.red(r + 2)], v3 = base[ix.red(r + 3)];
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v0), av, p));
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v1), av, p));
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v2), av, p));
      acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(v3), av, p));
    }
    for (; r < r1; ++r) acc = comb<A>(op, acc, map_in<A>(op, static_cast<A>(base[ix.red(r)]), av, p));
    if (part) part[t] = acc;
    else finish_store<A>(acc, fin, av, out, out_t, out_isz, o);
  }
}

// Pass 2, a block per output: partial (o, c) is part[o * so + c * sc];
// threads stride over c, then the fixed tree; finish and store.
template <class A>
__global__ void combine_block_kernel(const A* part, int64_t n_out, int64_t chunks, int64_t so, int64_t sc, int op,
                                     const double* aux, char* out, DType out_t, int64_t out_isz, Finish fin) {
  __shared__ A smem[kRedThreads];
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    A acc = identity<A>(op);
    for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) acc = comb<A>(op, acc, part[o * so + c * sc]);
    acc = block_combine<A>(op, acc, smem);
    if (threadIdx.x == 0) finish_store<A>(acc, fin, aux_of(aux, op, o), out, out_t, out_isz, o);
  }
}

// Pass 2, a thread per output, chunks in order (few chunks, many outputs).
template <class A>
__global__ void combine_thread_kernel(const A* part, int64_t n_out, int64_t chunks, int64_t so, int64_t sc, int op,
                                      const double* aux, char* out, DType out_t, int64_t out_isz, Finish fin) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n_out; o += int64_t(gridDim.x) * blockDim.x) {
    A acc = identity<A>(op);
    for (int64_t c = 0; c < chunks; ++c) acc = comb<A>(op, acc, part[o * so + c * sc]);
    finish_store<A>(acc, fin, aux_of(aux, op, o), out, out_t, out_isz, o);
  }
}

// Runs one reduction into `out` (contiguous, spec.out_shape, any dtype).
void run(const char* opname, const Array& a, const Spec& s, int op, const Array& out, double p = 0,
         const Array* aux = nullptr, Finish fin = {}) {
  if (s.n_out == 0) return;
  DeviceGuard g(a.device().index, opname);
  const double* pa = aux ? aux->data<double>() : nullptr;
  const Plan pl = make_plan(s);
  const int64_t units = s.n_out * pl.chunks;
  const int64_t out_isz = static_cast<int64_t>(out.itemsize());
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    // Workspace for the partials (device allocator; freed after the launches
    // below are queued, which the stream orders).
    Array ws;
    A* part = nullptr;
    if (pl.chunks > 1) {
      ws = empty({units}, std::is_floating_point_v<A> ? DType::Float64 : DType::Int64, a.device());
      part = ws.data<A>();
    }
    if (pl.by_thread)
      reduce_thread_kernel<T, A><<<grid_for(units), kRedThreads>>>(a.data<T>(), s.ix, s.n_out, s.n_red, pl.chunks,
                                                                    pl.csize, op, p, pa, out.raw(), out.dtype,
                                                                    out_isz, fin, part);
    else
      reduce_block_kernel<T, A><<<static_cast<unsigned>(std::min<int64_t>(units, 65535)), kRedThreads>>>(
          a.data<T>(), s.ix, s.n_out, s.n_red, pl.chunks, pl.csize, op, p, pa, out.raw(), out.dtype, out_isz, fin,
          part);
    FG_CUDA_LAUNCH_CHECK(opname);
    if (!part) return;
    const int64_t so = pl.by_thread ? 1 : pl.chunks, sc = pl.by_thread ? s.n_out : 1;
    if (pl.chunks <= 64 && s.n_out >= 1024)
      combine_thread_kernel<A><<<grid_for(s.n_out), kRedThreads>>>(part, s.n_out, pl.chunks, so, sc, op, pa,
                                                                   out.raw(), out.dtype, out_isz, fin);
    else
      combine_block_kernel<A><<<static_cast<unsigned>(std::min<int64_t>(s.n_out, 65535)), kRedThreads>>>(
          part, s.n_out, pl.chunks, so, sc, op, pa, out.raw(), out.dtype, out_isz, fin);
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

// Pass 1 by blocks: block u takes output o = u / chunks (o = ob * inner + ib),
// chunk c = u % chunks of the n elements; writes (value, index) to pv[u], pi[u].
template <class T>
__global__ void argext_block_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, int64_t chunks,
                                    int64_t csize, bool is_max, T* pv, int64_t* pi) {
  __shared__ T sv[kRedThreads];
  __shared__ int64_t si[kRedThreads];
  const int64_t units = outer * inner * chunks;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t o = u / chunks, c = u % chunks;
    const int64_t ob = o / inner, ib = o % inner;
    const T* base = x + ob * n * inner + ib;
    T bv = T(0);
    int64_t bi = INT64_MAX;  // no element yet: loses every comparison below
    const int64_t r1 = min(n, (c + 1) * csize);
    for (int64_t r = c * csize + threadIdx.x; r < r1; r += blockDim.x) {
      T v = base[r * inner];
      if (bi == INT64_MAX || better(is_max, v, r, bv, bi)) {
        bv = v;
        bi = r;
      }
    }
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
      if (pv) pv[u] = sv[0];
      pi[u] = si[0];
    }
    __syncthreads();
  }
}

// Pass 2 of a split arg-extremum: a thread per output over its chunks' winners
// in order (each chunk is nonempty). The winner does not depend on the order
// anyway: (value, index) pairs compare totally, ties to the first index.
template <class T>
__global__ void argext_combine_kernel(const T* cv, const int64_t* ci, int64_t n_out, int64_t chunks, bool is_max,
                                      T* vals, int64_t* idx) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n_out; o += int64_t(gridDim.x) * blockDim.x) {
    T bv = cv[o * chunks];
    int64_t bi = ci[o * chunks];
    for (int64_t c = 1; c < chunks; ++c) {
      const T v = cv[o * chunks + c];
      const int64_t i = ci[o * chunks + c];
      if (better(is_max, v, i, bv, bi)) {
        bv = v;
        bi = i;
      }
    }
    if (vals) vals[o] = bv;
    idx[o] = bi;
  }
}

// A thread per output o = ob * inner + ib (consecutive threads read
// consecutive addresses when inner > 1), looping over the n elements in order.
template <class T>
__global__ void argext_thread_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, bool is_max, T* vals,
                                     int64_t* idx) {
  const int64_t n_out = outer * inner;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n_out; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ob = o / inner, ib = o % inner;
    const T* base = x + ob * n * inner + ib;
    T bv = base[0];
    int64_t bi = 0;
    for (int64_t r = 1; r < n; ++r) {
      const T v = base[r * inner];
      if (better(is_max, v, r, bv, bi)) {
        bv = v;
        bi = r;
      }
    }
    if (vals) vals[o] = bv;
    idx[o] = bi;
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
  // Plans as for run(): a thread per output when the rows are short or the
  // outputs are contiguous and numerous; otherwise blocks, long rows split
  // into chunks (a function of the shape only) and a second pass.
  const bool by_thread = s.n <= kShortRed || (s.inner > 1 && n_out >= 4096);
  int64_t chunks = 1, csize = s.n;
  if (!by_thread) {
    chunks = std::max<int64_t>(1, std::min((s.n + kBlockChunkMin - 1) / kBlockChunkMin, (kBlockTarget + n_out - 1) / n_out));
    csize = (s.n + chunks - 1) / chunks;
    chunks = (s.n + csize - 1) / csize;
  }
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* pv = vals ? vals->data<T>() : nullptr;
    if (by_thread) {
      argext_thread_kernel<T><<<grid_for(n_out), kRedThreads>>>(a.data<T>(), s.outer, s.n, s.inner, is_max, pv,
                                                                idx.data<int64_t>());
      return;
    }
    const int64_t units = n_out * chunks;
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(units, 65535));
    if (chunks == 1) {
      argext_block_kernel<T><<<grid, kRedThreads>>>(a.data<T>(), s.outer, s.n, s.inner, 1, csize, is_max, pv,
                                                    idx.data<int64_t>());
      return;
    }
    Array wv = empty({units}, a.dtype, a.device()), wi = empty({units}, DType::Int64, a.device());
    argext_block_kernel<T><<<grid, kRedThreads>>>(a.data<T>(), s.outer, s.n, s.inner, chunks, csize, is_max,
                                                  wv.data<T>(), wi.data<int64_t>());
    FG_CUDA_LAUNCH_CHECK(op);
    argext_combine_kernel<T><<<grid_for(n_out), kRedThreads>>>(wv.data<T>(), wi.data<int64_t>(), n_out, chunks,
                                                               is_max, pv, idx.data<int64_t>());
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

// Short lines (n <= kShortSoftmax) of many: a thread per line, in order (a
// block of 256 threads per few elements idles almost all of them; with
// inner > 1 consecutive threads read consecutive addresses).
constexpr int64_t kShortSoftmax = 64;

template <class T>
__global__ void softmax_thread_kernel(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log_) {
  const int64_t lines = outer * inner;
  for (int64_t l = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    const int64_t off = (l / inner) * n * inner + l % inner;
    const T* xr = x + off;
    T* yr = y + off;
    T m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      const T v = xr[i * inner];
      m = (v > m || v != v) ? v : m;
    }
    if (isinf(m) && m < 0) m = 0;  // as softmax_kernel
    T s = 0;
    for (int64_t i = 0; i < n; ++i) s += exp(xr[i * inner] - m);
    if (log_) {
      const T ls = log(s);
      for (int64_t i = 0; i < n; ++i) yr[i * inner] = xr[i * inner] - m - ls;
    } else {
      const T inv = T(1) / s;
      for (int64_t i = 0; i < n; ++i) yr[i * inner] = exp(xr[i * inner] - m) * inv;
    }
  }
}

template <class T>
__global__ void softmax_bw_thread_kernel(const T* g, const T* o, T* gi, int64_t outer, int64_t n, int64_t inner,
                                         bool log_) {
  const int64_t lines = outer * inner;
  for (int64_t l = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    const int64_t off = (l / inner) * n * inner + l % inner;
    T s = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = off + i * inner;
      s += log_ ? g[k] : g[k] * o[k];
    }
    for (int64_t i = 0; i < n; ++i) {
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
    if (s.n <= kShortSoftmax)
      softmax_thread_kernel<T><<<grid_for(s.outer * s.inner), kRedThreads>>>(a.data<T>(), out.data<T>(), s.outer,
                                                                             s.n, s.inner, log);
    else
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
    if (s.n <= kShortSoftmax)
      softmax_bw_thread_kernel<T><<<grid_for(s.outer * s.inner), kRedThreads>>>(gc.data<T>(), oc.data<T>(),
                                                                                gi.data<T>(), s.outer, s.n, s.inner,
                                                                                log);
    else
      softmax_bw_kernel<T><<<grid, kRedThreads>>>(gc.data<T>(), oc.data<T>(), gi.data<T>(), s.outer, s.n, s.inner, log);
  });
  FG_CUDA_LAUNCH_CHECK(op);
  return gi;
}

}  // namespace cuda
}  // namespace fg
