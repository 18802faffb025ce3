// index.cpp - indexing and joining kernels (see index.h for the semantics).
//
// Three kernel shapes cover the family:
//   * copies into views of a fresh output (cat, stack, pad, repeat) reuse
//     copy_into, which already broadcasts, casts and runs in parallel;
//   * "take" kernels (gather, index_select, index_gather) are elementwise
//     loops over the output in which one operand is an index (or a
//     precomputed element offset) that moves the read pointer of the source;
//   * "put" kernels (scatter_add, index_add, index_put) write where an index
//     says; they are split so that no two tasks ever touch the same output
//     element and each element receives its contributions in index order,
//     which makes them race-free and deterministic for any thread count.
// Index values are range-checked inside the loops (a bad one is skipped and
// flagged); the error is then raised from a serial rescan so the message
// always names the first bad value in row-major order.
#include "cpu/index.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

#include "cuda/elementwise.h"
#include "cuda/index.h"
#include "errors.h"
#include "iter.h"
#include "parallel.h"

namespace fg {
namespace {

// ---- helpers -------------------------------------------------------------------------

template <class T>
constexpr bool is_index_type = std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>;

// Calls fn(I{}) for an int32 or int64 array; callers check the dtype first
// (ops differ in what they accept), so other dtypes are a no-op here.
template <class Fn>
void dispatch_index(DType t, Fn&& fn) {
  dispatch(t, [&](auto v) {
    if constexpr (is_index_type<decltype(v)>) fn(v);
  });
}

void check_index_dtype(const Array& index, const char* op, bool allow_int32) {
  if (index.dtype == DType::Int64 || (allow_int32 && index.dtype == DType::Int32)) return;
  throw TypeError(std::string(op) + ": expected an int64" + (allow_int32 ? " or int32" : "") +
                  " index tensor, got " + dtype_name(index.dtype));
}

// torch treats a 0-d tensor as a 1-d tensor of one element in these ops.
Array atleast_1d(const Array& a) {
  if (a.ndim() > 0) return a;
  return as_strided(a, {1}, {1}, a.offset);
}

Array restride(const Array& a, const Shape& shape, const Strides& strides) {
  return as_strided(a, shape, strides, a.offset);
}

std::string oob_message(const char* op, int64_t index, int64_t dim, int64_t size) {
  return std::string(op) + ": index " + std::to_string(index) + " is out of bounds for dimension " +
         std::to_string(dim) + " with size " + std::to_string(size);
}

// Converts a Python scalar for a fill; rejects values the dtype cannot hold
// (a float -> int cast out of range is undefined behaviour in C++).
template <class T>
T scalar_to(double v, const char* op) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else if constexpr (std::is_integral_v<T>) {
    // 2^63 is exactly representable; every double below it fits int64.
    const double lo = static_cast<double>(std::numeric_limits<T>::min());
    const double hi = -lo;
    if (!(v >= lo && v < hi))
      throw std::invalid_argument(std::string(op) + ": value " + std::to_string(v) + " cannot be converted to " +
                                  dtype_name(dtype_of<T>::value) + " without overflow");
    return static_cast<T>(v);
  } else {
    return static_cast<T>(v);
  }
}

template <class T>
inline void add_to(T& dst, T v) {
  if constexpr (std::is_same_v<T, bool>) {
    dst = dst || v;  // torch: addition on bool is logical or
  } else if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;  // integers wrap like torch's, without signed-overflow UB
    dst = static_cast<T>(static_cast<U>(dst) + static_cast<U>(v));
  } else {
    dst += v;
  }
}

// NdLoop::for_range with the base pointers given by the caller and the
// odometer kept in `idx`, so a kernel can walk the same index space from
// many bases (one per index entry) without allocating each time.
template <int N, class Inner>
void walk(const NdLoop<N>& loop, char* const* base, int64_t begin, int64_t end, std::vector<int64_t>& idx,
          Inner&& inner) {
  const int nd = static_cast<int>(loop.shape.size());
  const int64_t inner_n = loop.shape[nd - 1];
  idx.assign(nd, 0);
  int64_t rem = begin;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = rem % loop.shape[d];
    rem /= loop.shape[d];
  }
  char* p[N];
  int64_t inner_s[N];
  for (int k = 0; k < N; ++k) {
    p[k] = base[k];
    for (int d = 0; d < nd; ++d) p[k] += idx[d] * loop.strides[k][d];
    inner_s[k] = loop.strides[k][nd - 1];
  }
  int64_t i = begin;
  while (i < end) {
    int64_t run = std::min(inner_n - idx[nd - 1], end - i);
    inner(static_cast<char* const*>(p), static_cast<const int64_t*>(inner_s), run);
    i += run;
    if (i >= end) break;
    for (int k = 0; k < N; ++k) p[k] -= idx[nd - 1] * inner_s[k];
    idx[nd - 1] = 0;
    for (int d = nd - 2; d >= 0; --d) {
      ++idx[d];
      for (int k = 0; k < N; ++k) p[k] += loop.strides[k][d];
      if (idx[d] < loop.shape[d]) break;
      for (int k = 0; k < N; ++k) p[k] -= loop.shape[d] * loop.strides[k][d];
      idx[d] = 0;
    }
  }
}

// Raises the IndexError for the first (row-major) entry of `index` outside
// [0, size) (or [-size, size) when negatives wrap). Called after a kernel
// flagged a bad value, so the message does not depend on thread timing.
[[noreturn]] void throw_first_bad(const Array& index, int64_t size, bool wrap, const char* op, int64_t dim) {
  const Array* ops[1] = {&index};
  NdLoop<1> loop(index.shape, ops);
  int64_t bad = 0;
  bool found = false;
  dispatch_index(index.dtype, [&](auto tag) {
    using I = decltype(tag);
    std::vector<int64_t> scratch;
    char* base[1] = {loop.base[0]};
    walk(loop, base, 0, loop.numel(), scratch, [&](char* const* p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n && !found; ++i) {
        int64_t v = *reinterpret_cast<const I*>(p[0] + i * s[0]);
        if (v >= size || v < (wrap ? -size : 0)) {
          bad = v;
          found = true;
        }
      }
    });
  });
  if (!found) throw std::logic_error(std::string(op) + ": index check failed without a bad index (bug)");
  throw std::out_of_range(oob_message(op, bad, dim, size));
}

// Element offsets (row-major order over shape) of a strided layout; serial,
// used for index spaces (the number of index entries), not data.
std::vector<int64_t> linear_offsets(const Shape& shape, const Strides& strides) {
  int64_t n = shape_numel(shape);
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (n == 0) return out;
  const int nd = static_cast<int>(shape.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = off;
    for (int d = nd - 1; d >= 0; --d) {
      off += strides[d];
      if (++idx[d] < shape[d]) break;
      off -= shape[d] * strides[d];
      idx[d] = 0;
    }
  }
  return out;
}

void check_devices(const char* op, const Array& a, const Array& b) { check_same_device(op, a.device(), b.device()); }

// ---- the advanced-indexing plan ----------------------------------------------

// What a[indices] means for a given a: which dims are indexed, the broadcast
// index shape B, the result shape, and for every entry of B the element
// offset (relative to a.raw()) of the indexed dims. The offsets are computed
// and range-checked before any data moves, so index_put raises before it
// writes anything.
struct IndexPlan {
  std::vector<int> adims;  // indexed dims of a, ascending
  std::vector<int> sdims;  // the other dims of a ("slice" dims), ascending
  Shape bshape;            // broadcast shape of the index arrays
  Shape rshape;            // result shape
  int bpos = 0;            // first dim of rshape that belongs to bshape
  Array offs;              // int64, contiguous, bshape

  // Strides (in elements) giving, for an operand laid out as rshape, the part
  // that belongs to the slice dims, and the part that belongs to bshape.
  Strides slice_part(const Strides& rstrides) const {
    Strides s;
    int nb = static_cast<int>(bshape.size());
    for (int r = 0; r < static_cast<int>(rshape.size()); ++r)
      if (r < bpos || r >= bpos + nb) s.push_back(rstrides[r]);
    return s;
  }
  Strides b_part(const Strides& rstrides) const {
    return Strides(rstrides.begin() + bpos, rstrides.begin() + bpos + static_cast<int64_t>(bshape.size()));
  }
  Shape slice_shape(const Array& a) const {
    Shape s;
    for (int d : sdims) s.push_back(a.shape[d]);
    return s;
  }
};

template <class I>
void accumulate_offsets(const Array& offs, const Array& idx, int64_t size, int64_t stride, bool first, bool wrap,
                        std::atomic<bool>& bad) {
  const Array* ops[2] = {&offs, &idx};
  NdLoop<2> loop(offs.shape, ops);
  parallel_for(loop.numel(), kElementwiseGrain, [&](int64_t b, int64_t e) {
    loop.for_range(b, e, [&](char* const* p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        int64_t v = *reinterpret_cast<const I*>(p[1] + i * s[1]);
        if (wrap && v < 0) v += size;
        int64_t& o = *reinterpret_cast<int64_t*>(p[0] + i * s[0]);
        // One unsigned compare covers both ends; a bad entry gets offset 0
        // so nothing ever reads through it before the error is raised.
        if (static_cast<uint64_t>(v) >= static_cast<uint64_t>(size)) {
          bad.store(true, std::memory_order_relaxed);
          v = 0;
        }
        o = first ? v * stride : o + v * stride;
      }
    });
  });
}

// wrap: negative indices count from the end (t[...]); index_select and
// index_add follow torch and reject them instead.
IndexPlan make_plan(const Array& a, const std::vector<std::optional<Array>>& indices_in, bool wrap, const char* op) {
  if (static_cast<int>(indices_in.size()) > a.ndim())
    throw std::out_of_range(std::string(op) + ": too many indices for tensor of dimension " +
                            std::to_string(a.ndim()) + " (got " + std::to_string(indices_in.size()) + ")");
  IndexPlan plan;
  std::vector<Array> idx;
  for (int d = 0; d < a.ndim(); ++d) {
    if (d >= static_cast<int>(indices_in.size()) || !indices_in[d]) {
      plan.sdims.push_back(d);
      continue;
    }
    Array ix = *indices_in[d];
    check_devices(op, a, ix);
    if (ix.dtype == DType::Bool) {
      // A 1-d mask over one dim is its nonzero positions; masks over several
      // dims are split into per-dim index arrays by the Python layer.
      if (ix.ndim() != 1 || ix.shape[0] != a.shape[d])
        throw std::out_of_range(std::string(op) + ": the shape of the mask " + shape_str(ix.shape) + " at index " +
                                std::to_string(d) + " does not match the shape of the indexed tensor " +
                                shape_str(a.shape));
      ix = select(nonzero(ix), 1, 0);
    } else if (!is_integral(ix.dtype)) {
      throw TypeError(std::string(op) + ": tensors used as indices must be int64, int32 or bool, got " +
                      dtype_name(ix.dtype));
    }
    plan.adims.push_back(d);
    idx.push_back(ix);
  }
  for (size_t m = 0; m < idx.size(); ++m) {
    if (m == 0) {
      plan.bshape = idx[0].shape;
      continue;
    }
    try {
      plan.bshape = broadcast_shapes(plan.bshape, idx[m].shape, op);
    } catch (const std::invalid_argument&) {
      std::string shapes;
      for (size_t j = 0; j < idx.size(); ++j) shapes += (j ? ", " : "") + shape_str(idx[j].shape);
      throw std::out_of_range(std::string(op) + ": shape mismatch: indexing tensors could not be broadcast "
                              "together with shapes " + shapes);
    }
  }
  bool adjacent = true;
  for (size_t m = 1; m < plan.adims.size(); ++m) adjacent = adjacent && plan.adims[m] == plan.adims[m - 1] + 1;
  plan.bpos = adjacent && !plan.adims.empty() ? plan.adims[0] : 0;
  for (int d : plan.sdims)
    if (d < plan.bpos) plan.rshape.push_back(a.shape[d]);
  plan.rshape.insert(plan.rshape.end(), plan.bshape.begin(), plan.bshape.end());
  for (int d : plan.sdims)
    if (d >= plan.bpos) plan.rshape.push_back(a.shape[d]);
  shape_numel(plan.rshape, op);

  plan.offs = zeros(plan.bshape, DType::Int64, a.device());
  if (plan.offs.numel() == 0) return plan;
  for (size_t m = 0; m < idx.size(); ++m) {
    int d = plan.adims[m];
    Array ix = expand(idx[m], plan.bshape);
    std::atomic<bool> bad{false};
    if (is_cuda(a.device())) {  // the offsets stay on the device; a bad index is reported from a host copy
      cuda_only(op, a.device(), [&] {
        bad = !cuda::accumulate_offsets(plan.offs, ix, a.shape[d], a.strides[d], m == 0, wrap);
      });
      if (bad.load()) throw_first_bad(cuda::to_host(ix), a.shape[d], wrap, op, d);
      continue;
    }
    dispatch_index(ix.dtype, [&](auto tag) {
      accumulate_offsets<decltype(tag)>(plan.offs, ix, a.shape[d], a.strides[d], m == 0, wrap, bad);
    });
    if (bad.load()) throw_first_bad(ix, a.shape[d], wrap, op, d);
  }
  return plan;
}

// ---- take: out[r] = a[offset(r)] ------------------------------------------------

// Gathers through a plan. Args:
//   a:    the source, any strides.
//   plan: offsets of shape B (element units, relative to a.raw()).
// The output is laid out as plan.rshape. The loop runs over the output with
// two extra operands viewed at rshape: the offsets (stride 0 along slice
// dims) and a (stride 0 along B dims), so one pointer bump per element
// finds the source.
Array take(const Array& a, const IndexPlan& plan, const char* op) {
  Array out = empty(plan.rshape, a.dtype, a.device());
  if (out.numel() == 0) return out;
  const int nr = static_cast<int>(plan.rshape.size());
  const int nb = static_cast<int>(plan.bshape.size());
  Strides ost = contiguous_strides(plan.bshape);
  Strides offs_st(nr, 0), a_st(nr, 0);
  for (int i = 0; i < nb; ++i) offs_st[plan.bpos + i] = ost[i];
  int j = 0;
  for (int r = 0; r < nr; ++r)
    if (r < plan.bpos || r >= plan.bpos + nb) a_st[r] = a.strides[plan.sdims[j++]];
  Array offs_v = restride(plan.offs, plan.rshape, offs_st);
  Array a_v = restride(a, plan.rshape, a_st);
  const Array* ops[3] = {&out, &offs_v, &a_v};
  NdLoop<3> loop(plan.rshape, ops);
  if (is_cuda(a.device())) return cuda_only(op, a.device(), [&] { cuda::take(out, offs_v, a_v, op); return out; });
  on_device(op, a.device(), [&] {
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      parallel_for(loop.numel(), kElementwiseGrain, [&](int64_t b, int64_t e) {
        loop.for_range(b, e, [&](char* const* p, const int64_t* s, int64_t n) {
          if (s[1] == 0) {
            // One offset for the whole run (a row of an embedding lookup):
            // a plain strided copy, memcpy when both sides are dense.
            const char* src = p[2] + *reinterpret_cast<const int64_t*>(p[1]) * static_cast<int64_t>(sizeof(T));
            if (s[0] == sizeof(T) && s[2] == sizeof(T)) {
              std::memcpy(p[0], src, static_cast<size_t>(n) * sizeof(T));
            } else {
              for (int64_t i = 0; i < n; ++i)
                *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(src + i * s[2]);
            }
            return;
          }
          for (int64_t i = 0; i < n; ++i) {
            int64_t off = *reinterpret_cast<const int64_t*>(p[1] + i * s[1]);
            *reinterpret_cast<T*>(p[0] + i * s[0]) =
                *reinterpret_cast<const T*>(p[2] + i * s[2] + off * static_cast<int64_t>(sizeof(T)));
          }
        });
      });
    });
  });
  return out;
}

// ---- put: a[offset(b) + slice] (+)= values[b, slice] ----------------------------

// Writes through a plan. Args:
//   a:      destination, written in place; no two of its elements may share
//           memory (checked by the caller).
//   values: already broadcast to plan.rshape and of a's dtype.
// Index entries are grouped by destination offset (a stable sort, skipped
// when the offsets are already strictly increasing, as masks give). Tasks
// are (group, chunk of slice elements) pairs, which never overlap; inside a
// task the group's entries are applied in index order.
void put(const Array& a, const IndexPlan& plan, const Array& values, bool accumulate, const char* op) {
  const int64_t nb = plan.offs.numel();
  Shape sshape = plan.slice_shape(a);
  const int64_t ns = shape_numel(sshape);
  if (nb == 0 || ns == 0) return;
  if (is_cuda(a.device())) {  // the same grouping, on the device (cuda/index.h)
    cuda_only(op, a.device(), [&] {
      Strides a_sst;
      for (int d : plan.sdims) a_sst.push_back(a.strides[d]);
      cuda::put(restride(a, sshape, a_sst), restride(values, sshape, plan.slice_part(values.strides)), plan.offs,
                restride(values, plan.bshape, plan.b_part(values.strides)), accumulate, op);
    });
    return;
  }

  const int64_t* offs = plan.offs.data<const int64_t>();
  std::vector<int64_t> voffs = linear_offsets(plan.bshape, plan.b_part(values.strides));

  // order[i]: entries sorted by destination; starts[g]..starts[g+1]: group g.
  std::vector<int64_t> order(static_cast<size_t>(nb));
  std::iota(order.begin(), order.end(), int64_t{0});
  bool increasing = true;
  for (int64_t i = 1; i < nb && increasing; ++i) increasing = offs[i] > offs[i - 1];
  if (!increasing)
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return offs[x] < offs[y]; });
  std::vector<int64_t> starts;
  starts.reserve(static_cast<size_t>(nb) + 1);
  for (int64_t i = 0; i < nb; ++i)
    if (i == 0 || offs[order[i]] != offs[order[i - 1]]) starts.push_back(i);
  starts.push_back(nb);
  const int64_t ngroups = static_cast<int64_t>(starts.size()) - 1;

  Strides a_sst;
  for (int d : plan.sdims) a_sst.push_back(a.strides[d]);
  Array a_s = restride(a, sshape, a_sst);
  Array v_s = restride(values, sshape, plan.slice_part(values.strides));
  const Array* ops[2] = {&a_s, &v_s};
  NdLoop<2> loop(sshape, ops);

  // Big slices are cut into chunks so one group alone still spreads over
  // the pool; small slices keep a task per group run.
  const int64_t chunk = std::min<int64_t>(ns, 16384);
  const int64_t nchunks = (ns + chunk - 1) / chunk;
  const int64_t ntasks = ngroups * nchunks;
  const int64_t per_task = std::max<int64_t>(1, chunk * (nb / std::max<int64_t>(ngroups, 1)));
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / per_task);

  on_device(op, a.device(), [&] {
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      const int64_t isz = static_cast<int64_t>(sizeof(T));
      parallel_for(ntasks, grain, [&](int64_t tb, int64_t te) {
        std::vector<int64_t> scratch;
        for (int64_t t = tb; t < te; ++t) {
          const int64_t g = t / nchunks, c = t % nchunks;
          const int64_t lo = c * chunk, hi = std::min(ns, lo + chunk);
          // Without accumulate only the last entry of a group matters.
          const int64_t first = accumulate ? starts[g] : starts[g + 1] - 1;
          for (int64_t i = first; i < starts[g + 1]; ++i) {
            const int64_t b = order[i];
            char* base[2] = {a.raw() + offs[b] * isz, values.raw() + voffs[b] * isz};
            walk(loop, base, lo, hi, scratch, [&](char* const* p, const int64_t* s, int64_t n) {
              for (int64_t k = 0; k < n; ++k) {
                T& dst = *reinterpret_cast<T*>(p[0] + k * s[0]);
                const T v = *reinterpret_cast<const T*>(p[1] + k * s[1]);
                if (accumulate) {
                  add_to(dst, v);
                } else {
                  dst = v;
                }
              }
            });
          }
        }
      });
    });
  });
}

// values prepared for put(): a's dtype, broadcast to the result shape (extra
// leading 1s dropped, as `t[idx] = v` allows), and never aliasing a (a
// write could otherwise change values not yet read).
Array prepare_values(const Array& a, const IndexPlan& plan, const Array& values_in, const char* op) {
  check_devices(op, a, values_in);
  Array v = values_in;
  while (v.ndim() > static_cast<int>(plan.rshape.size()) && v.shape[0] == 1) v = select(v, 0, 0);
  try {
    v = expand(v, plan.rshape);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(std::string(op) + ": shape mismatch: value tensor of shape " +
                                shape_str(values_in.shape) + " cannot be broadcast to indexing result of shape " +
                                shape_str(plan.rshape));
  }
  if (v.dtype != a.dtype || v.storage == a.storage) {
    Array c = empty(v.shape, a.dtype, a.device());
    copy_into(c, v, op);
    v = c;
  }
  return v;
}

void check_no_overlap(const Array& a, const char* op) {
  if (a.numel() == 0) return;
  for (int d = 0; d < a.ndim(); ++d)
    if (a.strides[d] == 0 && a.shape[d] > 1)
      throw std::runtime_error(std::string(op) + ": the destination tensor of shape " + shape_str(a.shape) +
                               " has elements that share memory (an expanded view); clone() it before writing");
}

std::vector<std::optional<Array>> index_at(int dim, const Array& index) {
  std::vector<std::optional<Array>> r(static_cast<size_t>(dim) + 1);
  r[dim] = index;
  return r;
}

// ---- tril / triu ---------------------------------------------------------------

// Args: a (..., M, N), any strides. Output contiguous (..., M, N). One task
// per run of rows; row i keeps columns j with j - i <= k (lower) or
// j - i >= k (upper) and zeroes the rest.
Array triangle(const Array& a, int64_t k, bool lower, const char* op) {
  if (a.ndim() < 2)
    throw std::invalid_argument(std::string(op) + ": input tensor must have at least 2 dimensions, got shape " +
                                shape_str(a.shape));
  if (is_cuda(a.device()))  // where(mask, a, 0) on the device, the (M, N) mask made here
    return cuda_only(op, a.device(), [&] {
      const int64_t M = a.shape[a.ndim() - 2], N = a.shape[a.ndim() - 1];
      Array mask = to_device(triangle(full({M, N}, 1.0, DType::Bool), k, lower, op), a.device());
      return cuda::where(mask, a, full({}, 0.0, a.dtype, a.device()), a.shape);
    });
  Array out = empty(a.shape, a.dtype, a.device());
  if (out.numel() == 0) return out;
  const int nd = a.ndim();
  const int64_t M = a.shape[nd - 2], N = a.shape[nd - 1];
  k = std::clamp<int64_t>(k, -M - 1, N + 1);  // beyond this nothing changes; avoids overflow below
  Shape rows(a.shape.begin(), a.shape.end() - 1);
  Array o_r = restride(out, rows, Strides(out.strides.begin(), out.strides.end() - 1));
  Array a_r = restride(a, rows, Strides(a.strides.begin(), a.strides.end() - 1));
  const Array* ops[2] = {&o_r, &a_r};
  NdLoop<2> loop(rows, ops);
  const int64_t a_col = a.strides[nd - 1];
  on_device(op, a.device(), [&] {
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      parallel_for(loop.numel(), std::max<int64_t>(1, kElementwiseGrain / N), [&](int64_t b, int64_t e) {
        int64_t pos = b;
        loop.for_range(b, e, [&](char* const* p, const int64_t* s, int64_t n) {
          for (int64_t r = 0; r < n; ++r, ++pos) {
            const int64_t i = pos % M;
            T* dst = reinterpret_cast<T*>(p[0] + r * s[0]);
            const T* src = reinterpret_cast<const T*>(p[1] + r * s[1]);
            // [keep_lo, keep_hi) is copied, the rest of the row zeroed.
            int64_t keep_lo = lower ? 0 : std::clamp<int64_t>(i + k, 0, N);
            int64_t keep_hi = lower ? std::clamp<int64_t>(i + k + 1, 0, N) : N;
            for (int64_t j = 0; j < keep_lo; ++j) dst[j] = T(0);
            for (int64_t j = keep_lo; j < keep_hi; ++j) dst[j] = src[j * a_col];
            for (int64_t j = std::max(keep_lo, keep_hi); j < N; ++j) dst[j] = T(0);
          }
        });
      });
    });
  });
  return out;
}

// ---- scatter_add ----------------------------------------------------------------

// Args (all n-d after atleast_1d): out (contiguous copy of a), index and src
// of index's shape I. Lines are the positions of I with dim dropped; each
// line writes only its own column of out, so lines run in parallel, and a
// line adds its entries in index order. When dim is not the innermost dim
// the loop runs index-position-major over a chunk of lines, reading index
// and src row by row instead of column by column (same order per element,
// same result).
template <class T>
void scatter_add_kernel(const Array& out, int dim, const Array& index, const Array& src, std::atomic<bool>& bad) {
  Shape lines = index.shape;
  const int64_t K = lines[dim];
  lines[dim] = 1;
  Array o_l = restride(out, lines, out.strides), i_l = restride(index, lines, index.strides),
        s_l = restride(src, lines, src.strides);
  const Array* ops[3] = {&o_l, &i_l, &s_l};
  NdLoop<3> loop(lines, ops);
  const int64_t isz = static_cast<int64_t>(sizeof(T));
  const int64_t os = out.strides[dim] * isz, is = index.strides[dim] * 8, ss = src.strides[dim] * isz;
  const uint64_t bound = static_cast<uint64_t>(out.shape[dim]);
  const bool line_major = dim == index.ndim() - 1 || loop.numel() == 1;
  parallel_for(loop.numel(), std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(K, 1)),
               [&](int64_t b, int64_t e) {
                 auto add_one = [&](char* o, const char* ip, const char* sp) {
                   int64_t j = *reinterpret_cast<const int64_t*>(ip);
                   if (static_cast<uint64_t>(j) >= bound) {
                     bad.store(true, std::memory_order_relaxed);
                     return;
                   }
                   add_to(*reinterpret_cast<T*>(o + j * os), *reinterpret_cast<const T*>(sp));
                 };
                 // Index-position-major pays one walk() per position, so it
                 // needs enough lines in the chunk to be worth it.
                 if (line_major || e - b < 64) {
                   loop.for_range(b, e, [&](char* const* p, const int64_t* s, int64_t n) {
                     for (int64_t r = 0; r < n; ++r)
                       for (int64_t kk = 0; kk < K; ++kk)
                         add_one(p[0] + r * s[0], p[1] + r * s[1] + kk * is, p[2] + r * s[2] + kk * ss);
                   });
                 } else {
                   std::vector<int64_t> scratch;
                   for (int64_t kk = 0; kk < K; ++kk) {
                     char* base[3] = {loop.base[0], loop.base[1] + kk * is, loop.base[2] + kk * ss};
                     walk(loop, base, b, e, scratch, [&](char* const* p, const int64_t* s, int64_t n) {
                       for (int64_t r = 0; r < n; ++r) add_one(p[0] + r * s[0], p[1] + r * s[1], p[2] + r * s[2]);
                     });
                   }
                 }
               });
}

// ---- nonzero / masked_select: count per block, then write -------------------------

// Fixed-size blocks (not one per thread) so the output never depends on the
// thread count; counts per block give each block its output position.
constexpr int64_t kBlock = 1 << 16;

}  // namespace

// ---- joining and shaping ------------------------------------------------------

Array cat(const std::vector<Array>& xs, int64_t dim) {
  if (xs.empty()) throw std::invalid_argument("cat: expected a non-empty list of tensors");
  DType dt = xs[0].dtype;
  const Array* ref = nullptr;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Array& x = xs[i];
    check_devices("cat", xs[0], x);
    dt = promote(dt, x.dtype);
    if (x.ndim() == 0)
      throw std::invalid_argument("cat: zero-dimensional tensor (at position " + std::to_string(i) +
                                  ") cannot be concatenated");
    if (!ref && !(x.ndim() == 1 && x.shape[0] == 0)) ref = &x;
  }
  if (!ref) {
    wrap_dim(dim, 1, "cat");
    return empty({0}, dt, xs[0].device());
  }
  const int d = wrap_dim(dim, ref->ndim(), "cat");
  Shape shape = ref->shape;
  shape[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Array& x = xs[i];
    if (x.ndim() == 1 && x.shape[0] == 0) continue;  // torch's legacy empty tensor
    if (x.ndim() != ref->ndim())
      throw std::invalid_argument("cat: tensors must have the same number of dimensions, got shapes " +
                                  shape_str(ref->shape) + " and " + shape_str(x.shape) + " (tensor " +
                                  std::to_string(i) + ")");
    for (int k = 0; k < x.ndim(); ++k)
      if (k != d && x.shape[k] != ref->shape[k])
        throw std::invalid_argument("cat: sizes of tensors must match except in dimension " + std::to_string(d) +
                                    ", got shapes " + shape_str(ref->shape) + " and " + shape_str(x.shape) +
                                    " (tensor " + std::to_string(i) + ")");
    shape[d] += x.shape[d];
  }
  Array out = empty(shape, dt, xs[0].device());
  int64_t off = 0;
  for (const Array& x : xs) {
    if (x.ndim() == 1 && x.shape[0] == 0) continue;
    copy_into(slice(out, d, off, off + x.shape[d], 1), x, "cat");
    off += x.shape[d];
  }
  return out;
}

Array stack(const std::vector<Array>& xs, int64_t dim) {
  if (xs.empty()) throw std::invalid_argument("stack: expected a non-empty list of tensors");
  for (size_t i = 1; i < xs.size(); ++i)
    if (xs[i].shape != xs[0].shape)
      throw std::invalid_argument("stack: expects each tensor to be equal size, but got " + shape_str(xs[0].shape) +
                                  " at entry 0 and " + shape_str(xs[i].shape) + " at entry " + std::to_string(i));
  const int d = wrap_dim(dim, xs[0].ndim() + 1, "stack");
  std::vector<Array> us;
  us.reserve(xs.size());
  for (const Array& x : xs) us.push_back(unsqueeze(x, d));
  return cat(us, d);
}

Array pad(const Array& a, const std::vector<int64_t>& pads, double value) {
  const int nd = a.ndim();
  if (pads.size() % 2 != 0)
    throw std::invalid_argument("pad: padding length must be divisible by 2, got " + std::to_string(pads.size()));
  if (pads.size() > 2 * static_cast<size_t>(nd))
    throw std::invalid_argument("pad: padding length should be less than or equal to two times the input "
                                "dimension but got padding length " + std::to_string(pads.size()) +
                                " and input of shape " + shape_str(a.shape));
  dispatch(a.dtype, [&](auto tag) { (void)scalar_to<decltype(tag)>(value, "pad"); });
  Shape shape = a.shape;
  Array src = a;
  std::vector<int64_t> dst_start(nd, 0);
  bool grows = false;
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int d = nd - 1 - static_cast<int>(i);
    const int64_t l = pads[2 * i], r = pads[2 * i + 1];
    const int64_t limit = int64_t(1) << 48;  // keeps the arithmetic below far from overflow
    if (l > limit || r > limit || l < -limit || r < -limit)
      throw std::invalid_argument("pad: padding " + shape_str(pads) + " is too large");
    const int64_t kept = a.shape[d] + std::min<int64_t>(l, 0) + std::min<int64_t>(r, 0);
    if (kept < 0)
      throw std::invalid_argument("pad: negative padding (" + std::to_string(l) + ", " + std::to_string(r) +
                                  ") on dimension " + std::to_string(d) + " of size " + std::to_string(a.shape[d]) +
                                  " crops more than the whole dimension (input shape " + shape_str(a.shape) + ")");
    src = slice(src, d, std::max<int64_t>(-l, 0), std::max<int64_t>(-l, 0) + kept, 1);
    dst_start[d] = std::max<int64_t>(l, 0);
    shape[d] = a.shape[d] + l + r;
    grows = grows || l > 0 || r > 0;
  }
  shape_numel(shape, "pad");
  // Only padding that adds elements needs the fill; pure crops are a copy.
  Array out = grows ? full(shape, value, a.dtype, a.device()) : empty(shape, a.dtype, a.device());
  Array dst = out;
  for (int d = 0; d < nd; ++d) dst = slice(dst, d, dst_start[d], dst_start[d] + src.shape[d], 1);
  copy_into(dst, src, "pad");
  return out;
}

Array repeat(const Array& a, const std::vector<int64_t>& repeats) {
  const int nd = a.ndim();
  const int nr = static_cast<int>(repeats.size());
  if (nr < nd)
    throw std::invalid_argument("repeat: number of repeat dims (" + std::to_string(nr) +
                                ") can not be smaller than the number of dimensions of the tensor (shape " +
                                shape_str(a.shape) + ")");
  for (auto r : repeats)
    if (r < 0) throw std::invalid_argument("repeat: repeats must be non-negative, got " + shape_str(repeats));
  for (int d = nr - nd; d < nr; ++d) {  // each output dim must fit in int64 (signed overflow is UB)
    int64_t out_d;
    if (__builtin_mul_overflow(a.shape[d - (nr - nd)], repeats[d], &out_d))
      throw std::invalid_argument("repeat: repeats " + shape_str(repeats) + " for a tensor of shape " +
                                  shape_str(a.shape) + " give a shape that is too large");
  }
  // The input with leading 1s, as torch pads it.
  Shape in_shape(nr - nd, 1);
  in_shape.insert(in_shape.end(), a.shape.begin(), a.shape.end());
  Strides in_st(nr - nd, 0);
  in_st.insert(in_st.end(), a.strides.begin(), a.strides.end());
  Shape shape(nr);
  for (int d = 0; d < nr; ++d) shape[d] = in_shape[d] * repeats[d];
  shape_numel(shape, "repeat");
  Array out = empty(shape, a.dtype, a.device());
  if (out.numel() == 0) return out;
  // One copy: out viewed as (r0, s0, r1, s1, ...) and the input viewed at the
  // same shape with stride 0 on every r_d.
  Shape il;
  Strides out_st, src_st;
  for (int d = 0; d < nr; ++d) {
    il.push_back(repeats[d]);
    il.push_back(in_shape[d]);
    out_st.push_back(in_shape[d] * out.strides[d]);
    out_st.push_back(out.strides[d]);
    src_st.push_back(0);
    src_st.push_back(in_st[d]);
  }
  copy_into(restride(out, il, out_st), restride(a, il, src_st), "repeat");
  return out;
}

Array tril(const Array& a, int64_t k) { return triangle(a, k, true, "tril"); }
Array triu(const Array& a, int64_t k) { return triangle(a, k, false, "triu"); }

// ---- gather / scatter ------------------------------------------------------------

Array gather(const Array& a_in, int64_t dim_in, const Array& index_in) {
  check_devices("gather", a_in, index_in);
  check_index_dtype(index_in, "gather", false);
  const int dim = wrap_dim(dim_in, a_in.ndim(), "gather");
  Array out = empty(index_in.shape, a_in.dtype, a_in.device());
  if (out.numel() == 0) return out;  // torch skips the shape checks for an empty index
  Array a = atleast_1d(a_in), index = atleast_1d(index_in);
  if (index.ndim() != a.ndim())
    throw std::invalid_argument("gather: index tensor must have the same number of dimensions as input, got index " +
                                shape_str(index_in.shape) + " and input " + shape_str(a_in.shape));
  for (int d = 0; d < a.ndim(); ++d)
    if (d != dim && index.shape[d] > a.shape[d])
      throw std::invalid_argument("gather: size does not match at dimension " + std::to_string(d) +
                                  ": expected index " + shape_str(index_in.shape) + " to be no larger than input " +
                                  shape_str(a_in.shape) + " apart from dimension " + std::to_string(dim));
  // a viewed at index's shape with stride 0 along dim: the index supplies it.
  Strides a_st = a.strides;
  a_st[dim] = 0;
  Array a_v = restride(a, index.shape, a_st);
  Array o = atleast_1d(out);
  const Array* ops[3] = {&o, &index, &a_v};
  NdLoop<3> loop(index.shape, ops);
  std::atomic<bool> bad{false};
  const uint64_t bound = static_cast<uint64_t>(a.shape[dim]);
  if (is_cuda(a.device()))
    return cuda_only("gather", a.device(), [&] { cuda::gather(o, index, a_v, a.strides[dim], a.shape[dim]); return out; });
  on_device("gather", a.device(), [&] {
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      const int64_t ds = a.strides[dim] * static_cast<int64_t>(sizeof(T));
      parallel_for(loop.numel(), kElementwiseGrain, [&](int64_t b, int64_t e) {
        loop.for_range(b, e, [&](char* const* p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i) {
            int64_t j = *reinterpret_cast<const int64_t*>(p[1] + i * s[1]);
            if (static_cast<uint64_t>(j) >= bound) {
              bad.store(true, std::memory_order_relaxed);
              continue;
            }
            *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(p[2] + i * s[2] + j * ds);
          }
        });
      });
    });
  });
  if (bad.load()) throw_first_bad(index, a.shape[dim], false, "gather", dim);
  return out;
}

Array scatter_add(const Array& a_in, int64_t dim_in, const Array& index_in, const Array& src_in) {
  check_devices("scatter_add", a_in, index_in);
  check_devices("scatter_add", a_in, src_in);
  check_index_dtype(index_in, "scatter_add", false);
  if (src_in.dtype != a_in.dtype)
    throw TypeError(std::string("scatter_add: expected src of the same dtype as self (") + dtype_name(a_in.dtype) +
                    "), got " + dtype_name(src_in.dtype));
  const int dim = wrap_dim(dim_in, a_in.ndim(), "scatter_add");
  Array out = copy(a_in);
  if (index_in.numel() == 0) return out;
  Array o = atleast_1d(out), index = atleast_1d(index_in), src = atleast_1d(src_in);
  if (index.ndim() != o.ndim() || src.ndim() != o.ndim())
    throw std::invalid_argument("scatter_add: index and src must have the same number of dimensions as self, got "
                                "self " + shape_str(a_in.shape) + ", index " + shape_str(index_in.shape) +
                                ", src " + shape_str(src_in.shape));
  for (int d = 0; d < o.ndim(); ++d)
    if (index.shape[d] > src.shape[d] || (d != dim && index.shape[d] > o.shape[d]))
      throw std::invalid_argument("scatter_add: expected index " + shape_str(index_in.shape) +
                                  " to be no larger than self " + shape_str(a_in.shape) + " apart from dimension " +
                                  std::to_string(dim) + " and to be no larger than src " + shape_str(src_in.shape));
  std::atomic<bool> bad{false};
  on_device(
      "scatter_add", o.device(),
      [&] { dispatch(o.dtype, [&](auto tag) { scatter_add_kernel<decltype(tag)>(o, dim, index, src, bad); }); },
      [&] { bad = !cuda::scatter_add(o, dim, index, src); });
  if (bad.load()) throw_first_bad(cuda::to_host(index), o.shape[dim], false, "scatter_add", dim);
  return out;
}

Array index_select(const Array& a_in, int64_t dim_in, const Array& index_in) {
  check_devices("index_select", a_in, index_in);
  check_index_dtype(index_in, "index_select", true);
  if (index_in.ndim() > 1)
    throw std::out_of_range("index_select: index is supposed to be a 0-d or 1-d tensor, got shape " +
                            shape_str(index_in.shape));
  const int dim = wrap_dim(dim_in, a_in.ndim(), "index_select");
  if (is_cuda(a_in.device()) && a_in.ndim() > 0)  // a 0-d input takes the plan path below (device-generic)
    return cuda_only("index_select", a_in.device(), [&] { return cuda::index_select(a_in, dim, index_in); });
  Array index = atleast_1d(index_in);
  if (a_in.ndim() == 0 && index.shape[0] != 1)
    throw std::out_of_range("index_select: index into a 0-d tensor can have only 1 value, got " +
                            std::to_string(index.shape[0]));
  Array a = atleast_1d(a_in);
  Array out = take(a, make_plan(a, index_at(dim, index), false, "index_select"), "index_select");
  return a_in.ndim() == 0 ? restride(out, {}, {}) : out;
}

Array index_add(const Array& a_in, int64_t dim_in, const Array& index_in, const Array& src_in) {
  check_devices("index_add", a_in, index_in);
  check_devices("index_add", a_in, src_in);
  check_index_dtype(index_in, "index_add", true);
  if (src_in.dtype != a_in.dtype)
    throw TypeError(std::string("index_add: expected source of the same dtype as self (") + dtype_name(a_in.dtype) +
                    "), got " + dtype_name(src_in.dtype));
  if (index_in.ndim() > 1)
    throw std::out_of_range("index_add: index is supposed to be a 0-d or 1-d tensor, got shape " +
                            shape_str(index_in.shape));
  const int dim = wrap_dim(dim_in, a_in.ndim(), "index_add");
  Array index = atleast_1d(index_in), src = atleast_1d(src_in);
  Array out = copy(a_in);
  Array o = atleast_1d(out);
  bool ok = src.ndim() == o.ndim() && src.shape[dim] == index.shape[0];
  for (int d = 0; ok && d < o.ndim(); ++d) ok = d == dim || src.shape[d] == o.shape[d];
  if (!ok)
    throw std::invalid_argument("index_add: source of shape " + shape_str(src_in.shape) +
                                " does not match self of shape " + shape_str(a_in.shape) + " with " +
                                std::to_string(index.shape[0]) + " indices along dim " + std::to_string(dim));
  // The same thing as out[(:,)*dim, index] += src, with torch's rule that
  // negative indices are errors here.
  IndexPlan plan = make_plan(o, index_at(dim, index), false, "index_add");
  put(o, plan, src, true, "index_add");
  return out;
}

// ---- masks -------------------------------------------------------------------------

Array masked_fill(const Array& a, const Array& mask, double value) {
  check_devices("masked_fill", a, mask);
  if (mask.dtype != DType::Bool)
    throw TypeError(std::string("masked_fill: expected a bool mask, got ") + dtype_name(mask.dtype));
  Shape shape = broadcast_shapes(a.shape, mask.shape, "masked_fill");
  Array out = empty(shape, a.dtype, a.device());
  dispatch(a.dtype, [&](auto tag) { (void)scalar_to<decltype(tag)>(value, "masked_fill"); });
  if (out.numel() == 0) return out;
  if (is_cuda(a.device()))
    return cuda_only("masked_fill", a.device(),
                     [&] { return cuda::where(mask, full({}, value, a.dtype, a.device()), a, shape); });
  Array a_v = expand(a, shape), m_v = expand(mask, shape);
  const Array* ops[3] = {&out, &a_v, &m_v};
  NdLoop<3> loop(shape, ops);
  on_device("masked_fill", a.device(), [&] {
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      const T v = scalar_to<T>(value, "masked_fill");
      parallel_for(loop.numel(), kElementwiseGrain, [&](int64_t b, int64_t e) {
        loop.for_range(b, e, [&](char* const* p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i) {
            const bool m = *reinterpret_cast<const bool*>(p[2] + i * s[2]);
            *reinterpret_cast<T*>(p[0] + i * s[0]) = m ? v : *reinterpret_cast<const T*>(p[1] + i * s[1]);
          }
        });
      });
    });
  });
  return out;
}

Array masked_select(const Array& a, const Array& mask) {
  check_devices("masked_select", a, mask);
  if (mask.dtype != DType::Bool)
    throw TypeError(std::string("masked_select: expected a bool mask, got ") + dtype_name(mask.dtype));
  Shape shape = broadcast_shapes(a.shape, mask.shape, "masked_select");
  const int64_t n = shape_numel(shape, "masked_select");
  if (n == 0) return empty({0}, a.dtype, a.device());
  Array a_v = expand(a, shape), m_v = expand(mask, shape);
  if (is_cuda(a.device())) return cuda_only("masked_select", a.device(), [&] { return cuda::masked_select(a_v, m_v); });
  const Array* ops[2] = {&a_v, &m_v};
  NdLoop<2> loop(shape, ops);
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  std::vector<int64_t> counts(static_cast<size_t>(nblocks) + 1, 0);
  parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      int64_t c = 0;
      loop.for_range(blk * kBlock, std::min(n, (blk + 1) * kBlock), [&](char* const* p, const int64_t* s, int64_t m) {
        for (int64_t i = 0; i < m; ++i) c += *reinterpret_cast<const bool*>(p[1] + i * s[1]);
      });
      counts[blk + 1] = c;
    }
  });
  std::partial_sum(counts.begin(), counts.end(), counts.begin());
  Array out = empty({counts.back()}, a.dtype, a.device());
  if (counts.back() == 0) return out;
  on_device("masked_select", a.device(), [&] {
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* dst = out.data<T>();
      parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
        for (int64_t blk = b; blk < e; ++blk) {
          T* w = dst + counts[blk];
          loop.for_range(blk * kBlock, std::min(n, (blk + 1) * kBlock),
                         [&](char* const* p, const int64_t* s, int64_t m) {
                           for (int64_t i = 0; i < m; ++i)
                             if (*reinterpret_cast<const bool*>(p[1] + i * s[1]))
                               *w++ = *reinterpret_cast<const T*>(p[0] + i * s[0]);
                         });
        }
      });
    });
  });
  return out;
}

Array nonzero(const Array& a) {
  const int nd = a.ndim();
  const int64_t n = a.numel();
  if (n == 0) return empty({0, nd}, DType::Int64, a.device());
  if (is_cuda(a.device())) return cuda_only("nonzero", a.device(), [&] { return cuda::nonzero(a); });
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  std::vector<int64_t> counts(static_cast<size_t>(nblocks) + 1, 0);
  // Both passes walk a block with an odometer over a's own (uncoalesced)
  // shape, because the output needs the coordinates themselves.
  auto for_block = [&](int64_t blk, auto&& fn) {
    const int64_t b = blk * kBlock, e = std::min(n, b + kBlock);
    std::vector<int64_t> idx(nd, 0);
    int64_t rem = b, off = 0;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % a.shape[d];
      rem /= a.shape[d];
      off += idx[d] * a.strides[d];
    }
    for (int64_t i = b; i < e; ++i) {
      fn(off, idx);
      for (int d = nd - 1; d >= 0; --d) {
        off += a.strides[d];
        if (++idx[d] < a.shape[d]) break;
        off -= a.shape[d] * a.strides[d];
        idx[d] = 0;
      }
    }
  };
  Array out;
  on_device("nonzero", a.device(), [&] {
    dispatch(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* base = a.data<const T>();
      parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
        for (int64_t blk = b; blk < e; ++blk) {
          int64_t c = 0;
          for_block(blk, [&](int64_t off, const std::vector<int64_t>&) { c += base[off] != T(0); });
          counts[blk + 1] = c;
        }
      });
      std::partial_sum(counts.begin(), counts.end(), counts.begin());
      out = empty({counts.back(), nd}, DType::Int64, a.device());
      if (out.numel() == 0) return;  // no hits, or a 0-d input (no coordinates)
      int64_t* dst = out.data<int64_t>();
      parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
        for (int64_t blk = b; blk < e; ++blk) {
          int64_t* w = dst + counts[blk] * nd;
          for_block(blk, [&](int64_t off, const std::vector<int64_t>& idx) {
            if (base[off] != T(0)) {
              std::copy(idx.begin(), idx.end(), w);
              w += nd;
            }
          });
        }
      });
    });
  });
  return out;
}

Array one_hot(const Array& index, int64_t num_classes) {
  if (index.dtype != DType::Int64)
    throw TypeError(std::string("one_hot: expected an int64 index tensor, got ") + dtype_name(index.dtype));
  if (num_classes < -1)
    throw std::invalid_argument("one_hot: num_classes must be -1 or non-negative, got " +
                                std::to_string(num_classes));
  const int64_t n = index.numel();
  // min and max in one parallel pass (exact, so the split does not matter).
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  if (n > 0 && is_cuda(index.device())) {
    std::tie(lo, hi) = cuda_only("one_hot", index.device(), [&] { return cuda::min_max(index); });
  } else if (n > 0) {
    const Array* ops[1] = {&index};
    NdLoop<1> loop(index.shape, ops);
    const int64_t nblocks = (n + kBlock - 1) / kBlock;
    std::vector<int64_t> los(nblocks), his(nblocks);
    parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
      for (int64_t blk = b; blk < e; ++blk) {
        int64_t l = std::numeric_limits<int64_t>::max(), h = std::numeric_limits<int64_t>::min();
        loop.for_range(blk * kBlock, std::min(n, (blk + 1) * kBlock), [&](char* const* p, const int64_t* s, int64_t m) {
          for (int64_t i = 0; i < m; ++i) {
            int64_t v = *reinterpret_cast<const int64_t*>(p[0] + i * s[0]);
            l = std::min(l, v);
            h = std::max(h, v);
          }
        });
        los[blk] = l;
        his[blk] = h;
      }
    });
    lo = *std::min_element(los.begin(), los.end());
    hi = *std::max_element(his.begin(), his.end());
  }
  if (num_classes == -1) {
    if (n == 0) throw std::invalid_argument("one_hot: can not infer the number of classes from an empty tensor");
    if (hi == INT64_MAX)  // hi + 1 would overflow
      throw std::invalid_argument("one_hot: class value " + std::to_string(hi) + " is too large");
    num_classes = hi + 1;
  }
  if (n > 0 && lo < 0)
    throw std::out_of_range("one_hot: class values must be non-negative, got " + std::to_string(lo));
  if (n > 0 && hi >= num_classes)
    throw std::out_of_range("one_hot: class value " + std::to_string(hi) + " is out of range for num_classes=" +
                            std::to_string(num_classes));
  Shape shape = index.shape;
  shape.push_back(num_classes);
  shape_numel(shape, "one_hot");
  Array out = zeros(shape, DType::Int64, index.device());
  if (out.numel() == 0) return out;
  if (is_cuda(index.device())) {
    cuda_only("one_hot", index.device(), [&] { cuda::one_hot_fill(out, index, num_classes); });
    return out;
  }
  int64_t* dst = out.data<int64_t>();
  const Array* ops[1] = {&index};
  NdLoop<1> loop(index.shape, ops);
  parallel_for(n, std::max<int64_t>(1, kElementwiseGrain / num_classes), [&](int64_t b, int64_t e) {
    int64_t pos = b;
    loop.for_range(b, e, [&](char* const* p, const int64_t* s, int64_t m) {
      for (int64_t i = 0; i < m; ++i, ++pos) dst[pos * num_classes + *reinterpret_cast<const int64_t*>(p[0] + i * s[0])] = 1;
    });
  });
  return out;
}

// ---- advanced indexing -----------------------------------------------------------

Array index_gather(const Array& a, const std::vector<std::optional<Array>>& indices_in) {
  if (!is_cuda(a.device()) && cuda::any_cuda(indices_in)) throw std::invalid_argument("index_gather: indices on a CUDA device cannot index a cpu tensor");
  const auto indices = cuda::cpu_moved_to(indices_in, a.device());  // CPU indices may index a CUDA tensor, as in torch
  IndexPlan plan = make_plan(a, indices, true, "index_gather");
  if (plan.adims.empty()) return copy(a);
  return take(a, plan, "index_gather");
}

void index_put(const Array& a, const std::vector<std::optional<Array>>& indices_in, const Array& values_in,
               bool accumulate) {
  const char* op = "index_put";
  if (!is_cuda(a.device()) && cuda::any_cuda(indices_in))
    throw std::invalid_argument("index_put: indices on a CUDA device cannot index a cpu tensor");
  // CPU indices and values may index / fill a CUDA tensor, as in torch.
  const auto indices = cuda::cpu_moved_to(indices_in, a.device());
  const Array values = is_cuda(a.device()) && !is_cuda(values_in.device()) ? to_device(values_in, a.device()) : values_in;
  IndexPlan plan = make_plan(a, indices, true, op);
  Array v = prepare_values(a, plan, values, op);
  check_no_overlap(a, op);
  a.bump_version();
  // With no tensor index the plan has one entry at offset 0 and put() is a
  // plain (broadcast) assignment or addition.
  put(a, plan, v, accumulate, op);
}

}  // namespace fg
