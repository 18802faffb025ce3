// array.h - the n-dimensional array: refcounted storage plus a view
// (shape, strides in elements, offset in elements, dtype).
//
// Views (reshape when strides allow, transpose, permute, slices with steps,
// expand, squeeze/unsqueeze, flip) share storage and never copy. The storage
// carries the version counter that autograd checks: every in-place write to
// any view of a storage bumps it.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "device.h"
#include "dtype.h"

namespace fg {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  // Memory not owned by our allocator (a NumPy array, a DLPack capsule):
  // `release` gives it back; our own memory goes back to the allocator.
  std::function<void()> release;
  std::atomic<int64_t> version{0};

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();
};

struct Array {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;  // in elements, may be 0 (broadcast) or negative (flip)
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t numel() const;
  Device device() const { return storage->device; }
  size_t itemsize() const { return fg::itemsize(dtype); }
  bool is_contiguous() const;
  // Pointer to element [0, 0, ..., 0].
  char* raw() const { return static_cast<char*>(storage->data) + offset * static_cast<int64_t>(itemsize()); }
  template <class T> T* data() const { return reinterpret_cast<T*>(raw()); }
  void bump_version() const { storage->version.fetch_add(1); }
};

std::string shape_str(const Shape& s);
Strides contiguous_strides(const Shape& shape);
int64_t shape_numel(const Shape& shape, const char* op = "shape");

// Normalises a possibly negative dim; raises IndexError naming `op`.
int wrap_dim(int64_t dim, int ndim, const char* op);

// Creation.
Array empty(const Shape& shape, DType dtype, Device device = Device{});
Array zeros(const Shape& shape, DType dtype, Device device = Device{});
Array full(const Shape& shape, double value, DType dtype, Device device = Device{});
Array scalar(double value, DType dtype);  // 0-d array
Array wrap_external(void* data, const Shape& shape, const Strides& strides, DType dtype, Device device,
                    std::function<void()> release);

// Views (no copy).
Array as_strided(const Array& a, const Shape& shape, const Strides& strides, int64_t offset);
Array view(const Array& a, const Shape& shape);  // raises if strides do not allow it
Array reshape(const Array& a, const Shape& shape);  // view if possible, else copy
Array transpose(const Array& a, int64_t d0, int64_t d1);
Array permute(const Array& a, const std::vector<int64_t>& dims);
Array slice(const Array& a, int64_t dim, int64_t start, int64_t stop, int64_t step);
Array select(const Array& a, int64_t dim, int64_t index);
Array expand(const Array& a, const Shape& shape);
Array squeeze(const Array& a, const std::vector<int64_t>& dims);  // empty: all size-1 dims
Array unsqueeze(const Array& a, int64_t dim);
Array flip(const Array& a, const std::vector<int64_t>& dims);
Shape infer_reshape(const Shape& from, const Shape& to, int64_t numel, const char* op);

// Copies.
Array contiguous(const Array& a);
Array copy(const Array& a);                 // always a fresh contiguous copy
Array astype(const Array& a, DType dtype);  // fresh copy converted to dtype
void copy_into(const Array& dst, const Array& src, const char* op = "copy_");  // broadcast + cast
// A contiguous copy of `a` on `device` (host <-> device or between devices);
// `a` itself when it already lives there.
Array to_device(const Array& a, Device device);

// The device an op on a and b runs on. As in PyTorch, a 0-d CPU array (a
// Python scalar) may join an array on another device, which then wins; any
// other mix raises ValueError naming op (check_same_device's message).
Device common_device(const char* op, const Array& a, const Array& b);
// For in-place ops: `operand` must live on target's device or be a 0-d CPU array.
void check_operand_device(const char* op, const Array& target, const Array& operand);

// NumPy-style broadcast of two shapes; raises ValueError naming op.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace fg
