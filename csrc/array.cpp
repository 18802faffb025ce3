// array.cpp - storage lifetime, creation, views and copies.
#include "array.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "allocator.h"
#include "cuda/elementwise.h"
#include "cuda/runtime.h"
#include "iter.h"
#include "parallel.h"

namespace fg {

Storage::~Storage() {
  if (release) {
    release();
  } else if (data) {
    deallocate(data, nbytes, device);
  }
}

int64_t Array::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

bool Array::is_contiguous() const {
  if (numel() == 0) return true;  // nothing to lay out (PyTorch agrees)
  int64_t expected = 1;
  for (int d = ndim() - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Strides contiguous_strides(const Shape& shape) {
  Strides st(shape.size());
  int64_t acc = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    st[d] = acc;
    acc *= std::max<int64_t>(shape[d], 1);
  }
  return st;
}

int64_t shape_numel(const Shape& shape, const char* op) {
  // The product of the non-zero dims is bounded too, even when a 0 makes
  // numel 0: contiguous strides are built from it and must not overflow.
  int64_t n = 1;
  bool empty = false;
  for (auto s : shape) {
    if (s < 0) throw std::invalid_argument(std::string(op) + ": negative dimension in shape " + shape_str(shape));
    if (s == 0) {
      empty = true;
      continue;
    }
    if (n > (int64_t(1) << 62) / s)
      throw std::invalid_argument(std::string(op) + ": shape " + shape_str(shape) + " is too large");
    n *= s;
  }
  return empty ? 0 : n;
}

int wrap_dim(int64_t dim, int ndim, const char* op) {
  int64_t n = std::max(ndim, 1);  // a 0-d array accepts dim 0 / -1, like PyTorch
  if (dim < -n || dim >= n)
    throw std::out_of_range(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for a " +
                            std::to_string(ndim) + "-d tensor (expected in [" + std::to_string(-n) + ", " +
                            std::to_string(n - 1) + "])");
  return static_cast<int>(dim < 0 ? dim + n : dim);
}

Array empty(const Shape& shape, DType dtype, Device device) {
  int64_t n = shape_numel(shape, "empty");
  // shape_numel allows 2**62 elements; their bytes (and the byte strides,
  // zero-size shapes included) must not wrap.
  int64_t span = 1;
  for (auto s : shape) span *= std::max<int64_t>(s, 1);
  if (span > (int64_t(1) << 62) / static_cast<int64_t>(fg::itemsize(dtype)))
    throw std::invalid_argument("empty: shape " + shape_str(shape) + " of " + dtype_name(dtype) + " is too large (" +
                                std::to_string(span) + " elements)");
  Array a;
  a.storage = std::make_shared<Storage>();
  a.storage->nbytes = static_cast<size_t>(n) * fg::itemsize(dtype);
  a.storage->device = device;
  a.storage->data = allocate(a.storage->nbytes, device);
  a.shape = shape;
  a.strides = contiguous_strides(shape);
  a.dtype = dtype;
  return a;
}

namespace {
template <class T>
void fill_typed(const Array& a, T v) {
  T* p = a.data<T>();
  int64_t n = a.numel();
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, v); });
}
}  // namespace

Array zeros(const Shape& shape, DType dtype, Device device) {
  Array a = empty(shape, dtype, device);
  on_device("zeros", device, [&] { std::memset(a.storage->data, 0, a.storage->nbytes); },
            [&] { cuda::memset0(a.storage->data, a.storage->nbytes, device.index); });
  return a;
}

Array full(const Shape& shape, double value, DType dtype, Device device) {
  Array a = empty(shape, dtype, device);
  on_device("full", device, [&] { dispatch(dtype, [&](auto t) { fill_typed(a, static_cast<decltype(t)>(value)); }); },
            [&] { cuda::fill(a, value); });
  return a;
}

Array scalar(double value, DType dtype) { return full({}, value, dtype); }

namespace {
// The lowest and highest element offsets (relative to element [0, ..., 0])
// that a view of `shape` and `strides` touches; false when numel is 0.
// Raises ValueError naming `op` when the extent does not fit in int64.
bool element_extent(const Shape& shape, const Strides& strides, int64_t& lo, int64_t& hi, const char* op) {
  lo = hi = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) throw std::invalid_argument(std::string(op) + ": negative dimension in shape " + shape_str(shape));
    if (shape[d] == 0) return false;
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t step;
    if (__builtin_mul_overflow(shape[d] - 1, strides[d], &step) ||
        __builtin_add_overflow(step < 0 ? lo : hi, step, step < 0 ? &lo : &hi))
      throw std::invalid_argument(std::string(op) + ": shape " + shape_str(shape) + " with strides " +
                                  shape_str(strides) + " is too large");
  }
  return true;
}
}  // namespace

Array wrap_external(void* data, const Shape& shape, const Strides& strides, DType dtype, Device device,
                    std::function<void()> release) {
  if (shape.size() != strides.size())
    throw std::invalid_argument("wrap_external: shape " + shape_str(shape) + " and strides " + shape_str(strides) +
                                " differ in length");
  // `data` points at element [0, ..., 0]; negative strides reach below it.
  // The storage starts at the lowest element and spans every element the
  // view touches, so as_strided() can check later views against it.
  int64_t lo = 0, hi = 0;
  int64_t isz = static_cast<int64_t>(fg::itemsize(dtype));
  shape_numel(shape, "wrap_external");
  bool nonempty = element_extent(shape, strides, lo, hi, "wrap_external");
  int64_t span;
  if (nonempty && (__builtin_sub_overflow(hi, lo, &span) || span >= (int64_t(1) << 62) / isz))
    throw std::invalid_argument("wrap_external: strides " + shape_str(strides) + " for shape " + shape_str(shape) +
                                " span too much memory");
  Array a;
  a.storage = std::make_shared<Storage>();
  a.storage->data = static_cast<char*>(data) + lo * isz;
  a.storage->nbytes = nonempty ? static_cast<size_t>(hi - lo + 1) * static_cast<size_t>(isz) : 0;
  a.storage->device = device;
  a.storage->release = std::move(release);
  a.shape = shape;
  a.strides = strides;
  a.offset = -lo;
  a.dtype = dtype;
  return a;
}

Array as_strided(const Array& a, const Shape& shape, const Strides& strides, int64_t offset) {
  if (shape.size() != strides.size())
    throw std::invalid_argument("as_strided: shape " + shape_str(shape) + " and strides " + shape_str(strides) +
                                " differ in length");
  // Every element of the view must lie inside the storage: a view past its
  // end would read or write foreign memory.
  shape_numel(shape, "as_strided");
  int64_t lo = 0, hi = 0;
  int64_t avail = static_cast<int64_t>(a.storage->nbytes / a.itemsize());
  if (!element_extent(shape, strides, lo, hi, "as_strided")) {
    // A zero-size view touches nothing (and views like zeros(3, 0)[2] sit past
    // their empty storage), but raw() still computes offset * itemsize.
    if (offset < 0 || offset > (int64_t(1) << 62) / static_cast<int64_t>(a.itemsize()))
      throw std::out_of_range("as_strided: offset " + std::to_string(offset) + " is out of range");
  } else {
    int64_t first, last;
    bool overflow = __builtin_add_overflow(offset, lo, &first) || __builtin_add_overflow(offset, hi, &last);
    if (overflow || first < 0 || last >= avail)
      throw std::out_of_range("as_strided: shape " + shape_str(shape) + ", strides " + shape_str(strides) +
                              " and offset " + std::to_string(offset) + " reach " +
                              (overflow ? std::string("past int64") :
                                          "elements " + std::to_string(first) + " to " + std::to_string(last)) +
                              ", outside the storage of " + std::to_string(avail) + " elements");
  }
  Array r;
  r.storage = a.storage;
  r.shape = shape;
  r.strides = strides;
  r.offset = offset;
  r.dtype = a.dtype;
  return r;
}

Shape infer_reshape(const Shape& from, const Shape& to, int64_t numel, const char* op) {
  Shape out = to;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < to.size(); ++i) {
    if (to[i] == -1) {
      if (infer >= 0) throw std::invalid_argument(std::string(op) + ": only one dimension can be -1, got " + shape_str(to));
      infer = static_cast<int>(i);
    } else if (to[i] < 0) {
      throw std::invalid_argument(std::string(op) + ": invalid shape " + shape_str(to));
    } else if (__builtin_mul_overflow(known, to[i], &known)) {
      throw std::invalid_argument(std::string(op) + ": shape " + shape_str(to) + " is invalid for input of shape " +
                                  shape_str(from) + " (" + std::to_string(numel) + " elements)");
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw std::invalid_argument(std::string(op) + ": shape " + shape_str(to) + " is invalid for input of shape " +
                                  shape_str(from) + " (" + std::to_string(numel) + " elements)");
    out[infer] = numel / known;
  } else if (known != numel) {
    throw std::invalid_argument(std::string(op) + ": shape " + shape_str(to) + " is invalid for input of shape " +
                                shape_str(from) + " (" + std::to_string(numel) + " elements)");
  }
  shape_numel(out, op);  // e.g. [0, 2**62, 4]: numel 0, but its strides would overflow
  return out;
}

namespace {
// Strides for viewing `a` as `shape` without a copy, or false when the
// memory layout does not allow it (the algorithm: match groups of old dims
// that are contiguous among themselves against groups of new dims).
bool view_strides(const Array& a, const Shape& shape, Strides& out) {
  out.assign(shape.size(), 0);
  if (a.numel() == 0) {
    out = contiguous_strides(shape);
    return true;
  }
  // drop size-1 dims of the source
  Shape os;
  Strides ost;
  for (int d = 0; d < a.ndim(); ++d)
    if (a.shape[d] != 1) {
      os.push_back(a.shape[d]);
      ost.push_back(a.strides[d]);
    }
  size_t oi = 0;
  int ni = 0;
  const int nn = static_cast<int>(shape.size());
  while (oi < os.size()) {
    // take a chunk of old dims that are mutually contiguous
    size_t oj = oi;
    int64_t chunk = os[oi];
    while (oj + 1 < os.size() && ost[oj] == ost[oj + 1] * os[oj + 1]) {
      ++oj;
      chunk *= os[oj];
    }
    // consume new dims whose product equals chunk
    int64_t prod = 1;
    int start = ni;
    while (ni < nn && prod < chunk) {
      prod *= shape[ni];
      ++ni;
    }
    if (prod != chunk) return false;
    int64_t st = ost[oj];
    for (int k = ni - 1; k >= start; --k) {
      out[k] = st;
      st *= shape[k];
    }
    oi = oj + 1;
  }
  // remaining new dims must be size 1
  for (; ni < nn; ++ni) {
    if (shape[ni] != 1) return false;
    out[ni] = 1;
  }
  for (int k = 0; k < nn; ++k)
    if (shape[k] == 1 && out[k] == 0) out[k] = 1;
  return true;
}
}  // namespace

Array view(const Array& a, const Shape& shape_in) {
  Shape shape = infer_reshape(a.shape, shape_in, a.numel(), "view");
  Strides st;
  if (!view_strides(a, shape, st))
    throw std::runtime_error("view: shape " + shape_str(shape) + " is not compatible with the input's size and strides (shape " +
                             shape_str(a.shape) + ", strides " + shape_str(a.strides) + "); use reshape() instead");
  return as_strided(a, shape, st, a.offset);
}

Array reshape(const Array& a, const Shape& shape_in) {
  Shape shape = infer_reshape(a.shape, shape_in, a.numel(), "reshape");
  Strides st;
  if (view_strides(a, shape, st)) return as_strided(a, shape, st, a.offset);
  Array c = contiguous(a);
  return as_strided(c, shape, contiguous_strides(shape), c.offset);
}

Array transpose(const Array& a, int64_t d0, int64_t d1) {
  if (a.ndim() == 0) {
    wrap_dim(d0, 0, "transpose");
    wrap_dim(d1, 0, "transpose");
    return a;
  }
  int x = wrap_dim(d0, a.ndim(), "transpose"), y = wrap_dim(d1, a.ndim(), "transpose");
  Array r = a;
  std::swap(r.shape[x], r.shape[y]);
  std::swap(r.strides[x], r.strides[y]);
  return r;
}

Array permute(const Array& a, const std::vector<int64_t>& dims) {
  if (static_cast<int>(dims.size()) != a.ndim())
    throw std::invalid_argument("permute: expected " + std::to_string(a.ndim()) + " dims for a tensor of shape " +
                                shape_str(a.shape) + ", got " + shape_str(dims));
  std::vector<bool> seen(a.ndim(), false);
  Array r = a;
  for (int i = 0; i < a.ndim(); ++i) {
    int d = wrap_dim(dims[i], a.ndim(), "permute");
    if (seen[d]) throw std::invalid_argument("permute: repeated dim in " + shape_str(dims));
    seen[d] = true;
    r.shape[i] = a.shape[d];
    r.strides[i] = a.strides[d];
  }
  return r;
}

Array slice(const Array& a, int64_t dim, int64_t start, int64_t stop, int64_t step) {
  int d = wrap_dim(dim, a.ndim(), "slice");
  if (a.ndim() == 0) throw std::out_of_range("slice: cannot slice a 0-d tensor");
  if (step <= 0) throw std::invalid_argument("slice: step must be positive, got " + std::to_string(step));
  int64_t n = a.shape[d];
  // Python slice semantics with clamping.
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  start = std::clamp<int64_t>(start, 0, n);
  stop = std::clamp<int64_t>(stop, 0, n);
  // (stop - start - 1) / step + 1, not (stop - start + step - 1) / step:
  // the latter overflows int64 for huge steps.
  int64_t len = stop > start ? (stop - start - 1) / step + 1 : 0;
  Array r = a;
  r.offset = a.offset + (len > 0 ? start * a.strides[d] : 0);
  r.shape[d] = len;
  // With at most one element the stride is never used (and stride * step
  // could overflow for a huge step).
  r.strides[d] = len > 1 ? a.strides[d] * step : a.strides[d];
  return r;
}

Array select(const Array& a, int64_t dim, int64_t index) {
  if (a.ndim() == 0) throw std::out_of_range("select: cannot index a 0-d tensor");
  int d = wrap_dim(dim, a.ndim(), "select");
  int64_t n = a.shape[d];
  if (index < -n || index >= n)
    throw std::out_of_range("index " + std::to_string(index) + " is out of bounds for dimension " + std::to_string(d) +
                            " with size " + std::to_string(n));
  if (index < 0) index += n;
  Array r = a;
  r.offset = a.offset + index * a.strides[d];
  r.shape.erase(r.shape.begin() + d);
  r.strides.erase(r.strides.begin() + d);
  return r;
}

Array expand(const Array& a, const Shape& shape) {
  int nd = static_cast<int>(shape.size());
  if (nd < a.ndim())
    throw std::invalid_argument("expand: cannot expand shape " + shape_str(a.shape) + " to " + shape_str(shape) +
                                " (fewer dimensions)");
  Array r = a;
  r.shape.assign(nd, 0);
  r.strides.assign(nd, 0);
  int lead = nd - a.ndim();
  for (int i = nd - 1; i >= 0; --i) {
    int64_t want = shape[i];
    if (i < lead) {
      if (want < 0) throw std::invalid_argument("expand: -1 is not allowed for a new leading dim in " + shape_str(shape));
      r.shape[i] = want;
      r.strides[i] = 0;
      continue;
    }
    int64_t have = a.shape[i - lead];
    if (want == -1) want = have;
    if (have == want) {
      r.shape[i] = have;
      r.strides[i] = a.strides[i - lead];
    } else if (have == 1 && want >= 0) {
      r.shape[i] = want;
      r.strides[i] = 0;
    } else {
      throw std::invalid_argument("expand: cannot expand shape " + shape_str(a.shape) + " to " + shape_str(shape) +
                                  " (dim " + std::to_string(i) + ": " + std::to_string(have) + " vs " +
                                  std::to_string(want) + ")");
    }
  }
  shape_numel(r.shape, "expand");  // a broadcast view's numel must still fit in int64
  return r;
}

Array squeeze(const Array& a, const std::vector<int64_t>& dims) {
  std::vector<bool> drop(a.ndim(), false);
  if (dims.empty()) {
    for (int d = 0; d < a.ndim(); ++d) drop[d] = a.shape[d] == 1;
  } else {
    for (auto dd : dims) {
      if (a.ndim() == 0) { wrap_dim(dd, 0, "squeeze"); continue; }
      int d = wrap_dim(dd, a.ndim(), "squeeze");
      drop[d] = a.shape[d] == 1;  // PyTorch: squeezing a non-1 dim is a no-op
    }
  }
  Array r = a;
  r.shape.clear();
  r.strides.clear();
  for (int d = 0; d < a.ndim(); ++d)
    if (!drop[d]) {
      r.shape.push_back(a.shape[d]);
      r.strides.push_back(a.strides[d]);
    }
  return r;
}

Array unsqueeze(const Array& a, int64_t dim) {
  int d = wrap_dim(dim, a.ndim() + 1, "unsqueeze");
  Array r = a;
  int64_t st = d < a.ndim() ? a.shape[d] * a.strides[d] : 1;
  r.shape.insert(r.shape.begin() + d, 1);
  r.strides.insert(r.strides.begin() + d, st);
  return r;
}

Array flip(const Array& a, const std::vector<int64_t>& dims) {
  Array r = a;
  std::vector<bool> seen(a.ndim(), false);
  for (auto dd : dims) {
    int d = wrap_dim(dd, a.ndim(), "flip");
    if (a.ndim() == 0) continue;
    if (seen[d]) throw std::invalid_argument("flip: dim " + std::to_string(d) + " appears more than once");
    seen[d] = true;
    if (a.shape[d] > 0) r.offset += (a.shape[d] - 1) * r.strides[d];
    r.strides[d] = -r.strides[d];
  }
  return r;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (x != y && x != 1 && y != 1)
      throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                  " cannot be broadcast together");
    r[i] = x == 1 ? y : x;
  }
  return r;
}

namespace {
template <class D, class S>
void cast_loop(const NdLoop<2>& loop) {
  parallel_for(loop.numel(), kElementwiseGrain, [&](int64_t b, int64_t e) {
    loop.for_range(b, e, [](char* const* p, const int64_t* s, int64_t n) {
      char* dst = p[0];
      const char* src = p[1];
      if (s[0] == sizeof(D) && s[1] == sizeof(S)) {
        D* d = reinterpret_cast<D*>(dst);
        const S* x = reinterpret_cast<const S*>(src);
        for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(x[i]);
      } else {
        for (int64_t i = 0; i < n; ++i)
          *reinterpret_cast<D*>(dst + i * s[0]) = static_cast<D>(*reinterpret_cast<const S*>(src + i * s[1]));
      }
    });
  });
}
}  // namespace

Device common_device(const char* op, const Array& a, const Array& b) {
  if (a.device() == b.device()) return a.device();
  if (a.device().type == DeviceType::CPU && a.ndim() == 0) return b.device();
  if (b.device().type == DeviceType::CPU && b.ndim() == 0) return a.device();
  check_same_device(op, a.device(), b.device());  // raises
  return a.device();
}

void check_operand_device(const char* op, const Array& target, const Array& operand) {
  if (operand.device() == target.device() || (operand.device().type == DeviceType::CPU && operand.ndim() == 0)) return;
  check_same_device(op, target.device(), operand.device());  // raises
}

void copy_into(const Array& dst, const Array& src_in, const char* op) {
  // copy_ between devices (as torch's): the source moves to dst's device first.
  Array src = src_in.device() == dst.device() ? src_in : to_device(src_in, dst.device());
  if (src.shape != dst.shape) {
    try {
      src = expand(src, dst.shape);
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument(std::string(op) + ": source of shape " + shape_str(src_in.shape) +
                                  " cannot be broadcast to destination shape " + shape_str(dst.shape));
    }
  }
  if (dst.numel() == 0) return;
  const Array* ops[2] = {&dst, &src};
  NdLoop<2> loop(dst.shape, ops);
  on_device(op, dst.device(), [&] {
    dispatch(dst.dtype, [&](auto d) {
      dispatch(src.dtype, [&](auto s) { cast_loop<decltype(d), decltype(s)>(loop); });
    });
  }, [&] { cuda::copy_cast(dst, src, op); });
}

Array to_device(const Array& a, Device device) {
  if (a.device() == device) return a;
  const char* op = "to";
  Array src = contiguous(a);  // on its own device: copies move one dense block
  Array dst = empty(a.shape, a.dtype, device);
  const size_t n = dst.storage->nbytes;
  if (n == 0) return dst;
  on_device(op, device.type == DeviceType::CUDA ? device : a.device(), [&] {}, [&] {
    if (device.type == DeviceType::CPU)
      cuda::memcpy_d2h(dst.raw(), src.raw(), n, a.device().index);
    else if (a.device().type == DeviceType::CPU)
      cuda::memcpy_h2d(dst.raw(), src.raw(), n, device.index);
    else
      cuda::memcpy_d2d(dst.raw(), src.raw(), n, device.index);
  });
  return dst;
}

Array contiguous(const Array& a) {
  if (a.is_contiguous()) return a;
  return copy(a);
}

Array copy(const Array& a) {
  Array r = empty(a.shape, a.dtype, a.device());
  copy_into(r, a, "copy");
  return r;
}

Array astype(const Array& a, DType dtype) {
  Array r = empty(a.shape, dtype, a.device());
  copy_into(r, a, "to");
  return r;
}

}  // namespace fg
