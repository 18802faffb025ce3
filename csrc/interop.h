// interop.h - zero-copy exchange with NumPy and DLPack.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "array.h"

namespace fg {

// A NumPy array viewing the same memory; it keeps the storage alive.
pybind11::array to_numpy(const Array& a);
// An Array viewing the NumPy array's memory; it keeps the NumPy array alive.
// Raises TypeError for dtypes fastgrad does not have.
Array from_numpy(const pybind11::array& a);

// ---- DLPack ------------------------------------------------------------------
// The C ABI of the DLPack exchange format (dmlc/dlpack, v1.0), written out
// from the specification. Field order and widths are the ABI: do not reorder.
namespace dlpack {

enum DeviceType : int32_t { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLROCM = 10, kDLCUDAManaged = 13 };
enum TypeCode : uint8_t { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLOpaqueHandle = 3, kDLBfloat = 4, kDLComplex = 5,
                          kDLBool = 6 };

struct DLDevice {
  int32_t device_type;  // a DeviceType (a C enum: int-sized)
  int32_t device_id;
};

struct DLDataType {
  uint8_t code;    // a TypeCode
  uint8_t bits;    // bits per lane
  uint16_t lanes;  // 1 for scalar element types
};

struct DLTensor {
  void* data;            // base pointer; element [0, ..., 0] is at data + byte_offset
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;        // ndim entries
  int64_t* strides;      // ndim entries, in elements; NULL means C-contiguous
  uint64_t byte_offset;
};

// Legacy (unversioned) managed tensor: PyCapsule name "dltensor".
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

struct DLPackVersion {
  uint32_t major;
  uint32_t minor;
};

constexpr uint32_t kMajorVersion = 1;
constexpr uint32_t kMinorVersion = 0;
constexpr uint64_t kFlagReadOnly = uint64_t(1) << 0;
constexpr uint64_t kFlagIsCopied = uint64_t(1) << 1;

// Versioned managed tensor (DLPack >= 1.0): PyCapsule name "dltensor_versioned".
struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};

}  // namespace dlpack

// A PyCapsule "dltensor_versioned" (versioned) or "dltensor" (legacy) whose
// managed tensor views `a`'s memory and keeps its storage alive until the
// consumer calls the deleter (or the unconsumed capsule dies). `copy`
// exports a fresh copy instead (flagged IS_COPIED when versioned).
pybind11::object to_dlpack(const Array& a, bool versioned, bool copy);
// An Array viewing the memory of a DLPack capsule of either name. Renames the
// capsule to "used_..." and owns the managed tensor: the producer's deleter
// runs (with the GIL) when the last view of the storage dies. Raises
// RuntimeError for a non-CPU device or a consumed capsule, TypeError for
// dtypes fastgrad does not have, BufferError for an unsupported major version.
Array from_dlpack(const pybind11::object& capsule);

}  // namespace fg
