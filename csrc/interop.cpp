// interop.cpp - NumPy buffers and DLPack capsules shared both ways, no copies.
#include "interop.h"

#include <cstring>

#include "errors.h"
#ifdef FASTGRAD_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace py = pybind11;

namespace fg {

namespace {
py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::Bool: return py::dtype::of<bool>();
    case DType::Int32: return py::dtype::of<int32_t>();
    case DType::Int64: return py::dtype::of<int64_t>();
    case DType::Float32: return py::dtype::of<float>();
    case DType::Float64: return py::dtype::of<double>();
  }
  return py::dtype::of<float>();
}
}  // namespace

py::array to_numpy(const Array& a_in) {
  // A device array is copied to the host (a fresh array, not shared).
  const Array a = a_in.device().type == DeviceType::CPU ? a_in : to_device(a_in, Device{});
  auto* keep = new std::shared_ptr<Storage>(a.storage);
  py::capsule owner(keep, [](void* p) { delete static_cast<std::shared_ptr<Storage>*>(p); });
  std::vector<py::ssize_t> strides;
  for (int d = 0; d < a.ndim(); ++d) {
    int64_t bytes;
    // A size-1 dim may carry any stride (as_strided allows it); its byte
    // stride must not overflow, and is never used.
    if (__builtin_mul_overflow(a.strides[d], static_cast<int64_t>(a.itemsize()), &bytes)) bytes = 0;
    strides.push_back(static_cast<py::ssize_t>(bytes));
  }
  std::vector<py::ssize_t> shape(a.shape.begin(), a.shape.end());
  return py::array(numpy_dtype(a.dtype), shape, strides, a.raw(), owner);
}

Array from_numpy(const py::array& arr) {
  DType t;
  char kind = arr.dtype().kind();
  auto size = arr.itemsize();
  if (kind == 'b') t = DType::Bool;
  else if (kind == 'i' && size == 4) t = DType::Int32;
  else if (kind == 'i' && size == 8) t = DType::Int64;
  else if (kind == 'f' && size == 4) t = DType::Float32;
  else if (kind == 'f' && size == 8) t = DType::Float64;
  else
    throw TypeError("from_numpy: unsupported NumPy dtype " + std::string(py::str(arr.dtype())) +
                    " (fastgrad has bool, int32, int64, float32, float64)");
  if (!arr.dtype().attr("isnative").cast<bool>())
    throw TypeError("from_numpy: byte-swapped (non-native endian) arrays are not supported");
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  Strides strides(arr.ndim());
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
    if (arr.strides(d) % size != 0)
      throw std::invalid_argument("from_numpy: strides that are not a multiple of the item size are not supported");
    strides[d] = arr.strides(d) / size;
  }
  auto* keep = new py::object(arr);
  Array a = wrap_external(const_cast<void*>(arr.data()), shape, strides, t, Device{}, [keep] {
    py::gil_scoped_acquire gil;
    delete keep;
  });
  return a;
}

// ---- DLPack ------------------------------------------------------------------
// The Python protocol (data-apis.org, "DLPack" in the array API standard): a
// PyCapsule named "dltensor" (legacy) or "dltensor_versioned" holds a managed
// tensor. A consumer renames the capsule to "used_dltensor[_versioned]" and
// takes ownership: it calls the deleter once it no longer needs the memory.
// A capsule that dies unconsumed calls the deleter itself.

namespace {

constexpr const char* kLegacyName = "dltensor";
constexpr const char* kVersionedName = "dltensor_versioned";
constexpr const char* kUsedLegacyName = "used_dltensor";
constexpr const char* kUsedVersionedName = "used_dltensor_versioned";

// What an exported managed tensor owns: the storage (kept alive) and the
// shape/strides arrays the DLTensor points into (never empty, so the
// pointers are valid even for 0-d arrays).
struct ExportCtx {
  std::shared_ptr<Storage> storage;
  std::vector<int64_t> shape, strides;
};

template <class Managed>
void export_deleter(Managed* self) {
  if (!self) return;
  // Dropping the storage may release a NumPy array or another capsule; those
  // release functions take the GIL themselves, so any thread may call this.
  delete static_cast<ExportCtx*>(self->manager_ctx);
  delete self;
}

template <class Managed>
void capsule_destructor(PyObject* cap, const char* name) {
  if (!PyCapsule_IsValid(cap, name)) return;  // renamed: a consumer owns it now
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  auto* m = static_cast<Managed*>(PyCapsule_GetPointer(cap, name));
  if (m && m->deleter) m->deleter(m);
  PyErr_Restore(type, value, tb);
}

void legacy_capsule_destructor(PyObject* cap) { capsule_destructor<dlpack::DLManagedTensor>(cap, kLegacyName); }
void versioned_capsule_destructor(PyObject* cap) {
  capsule_destructor<dlpack::DLManagedTensorVersioned>(cap, kVersionedName);
}

dlpack::DLDataType dl_dtype(DType t) {
  switch (t) {
    case DType::Bool: return {dlpack::kDLBool, 8, 1};
    case DType::Int32: return {dlpack::kDLInt, 32, 1};
    case DType::Int64: return {dlpack::kDLInt, 64, 1};
    case DType::Float32: return {dlpack::kDLFloat, 32, 1};
    case DType::Float64: return {dlpack::kDLFloat, 64, 1};
  }
  throw std::runtime_error("to_dlpack: unknown dtype");
}

// The fastgrad dtype of a DLPack type; TypeError naming it when there is none.
DType from_dl_dtype(const dlpack::DLDataType& t) {
  if (t.lanes == 1) {
    if (t.code == dlpack::kDLBool && t.bits == 8) return DType::Bool;
    if (t.code == dlpack::kDLInt && t.bits == 32) return DType::Int32;
    if (t.code == dlpack::kDLInt && t.bits == 64) return DType::Int64;
    if (t.code == dlpack::kDLFloat && t.bits == 32) return DType::Float32;
    if (t.code == dlpack::kDLFloat && t.bits == 64) return DType::Float64;
  }
  std::string name;
  switch (t.code) {
    case dlpack::kDLInt: name = "int" + std::to_string(t.bits); break;
    case dlpack::kDLUInt: name = "uint" + std::to_string(t.bits); break;
    case dlpack::kDLFloat: name = "float" + std::to_string(t.bits); break;
    case dlpack::kDLBfloat: name = "bfloat" + std::to_string(t.bits); break;
    case dlpack::kDLComplex: name = "complex" + std::to_string(t.bits); break;
    case dlpack::kDLBool: name = "bool" + std::to_string(t.bits); break;
    case dlpack::kDLOpaqueHandle: name = "opaque handle"; break;
    default: name = "type code " + std::to_string(t.code) + " (" + std::to_string(t.bits) + " bits)"; break;
  }
  if (t.lanes != 1) name += " x " + std::to_string(t.lanes) + " lanes";
  throw TypeError("from_dlpack: unsupported dtype " + name +
                  " (fastgrad has bool, int32, int64, float32, float64)");
}

std::string dl_device_str(const dlpack::DLDevice& d) {
  const char* name = "unknown";
  switch (d.device_type) {
    case dlpack::kDLCPU: name = "cpu"; break;
    case dlpack::kDLCUDA: name = "cuda"; break;
    case dlpack::kDLCUDAHost: name = "cuda_host"; break;
    case dlpack::kDLROCM: name = "rocm"; break;
    case dlpack::kDLCUDAManaged: name = "cuda_managed"; break;
    default: break;
  }
  return std::string(name) + ":" + std::to_string(d.device_id) + " (DLPack device type " +
         std::to_string(d.device_type) + ")";
}

template <class Managed>
void fill_managed(Managed* m, const Array& a, ExportCtx* ctx) {
  m->manager_ctx = ctx;
  m->deleter = &export_deleter<Managed>;
  dlpack::DLTensor& t = m->dl_tensor;
  // The element [0, ..., 0] pointer with byte_offset 0, as NumPy and PyTorch
  // export CPU memory (some consumers ignore byte_offset).
  t.data = a.raw();
  t.device = a.device().type == DeviceType::CUDA ? dlpack::DLDevice{dlpack::kDLCUDA, a.device().index}
                                                 : dlpack::DLDevice{dlpack::kDLCPU, 0};
  t.ndim = a.ndim();
  t.dtype = dl_dtype(a.dtype);
  t.shape = ctx->shape.data();
  t.strides = ctx->strides.data();
  t.byte_offset = 0;
}

// Calls a producer's deleter with the GIL held: NumPy's and pure-Python
// producers' deleters touch Python objects, and our storage may die on any
// thread (a kernel thread, or with the GIL released).
template <class Managed>
void call_producer_deleter(Managed* m) {
  if (!m->deleter) return;
  if (!Py_IsInitialized()) {  // interpreter gone: the producer copes (NumPy checks this too)
    m->deleter(m);
    return;
  }
  PyGILState_STATE st = PyGILState_Ensure();
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  m->deleter(m);
  PyErr_Restore(type, value, tb);
  PyGILState_Release(st);
}

// A valid pointer for zero-size imports whose producer passed NULL data.
alignas(64) char g_empty_data[64];

}  // namespace

py::object to_dlpack(const Array& a_in, bool versioned, bool copy) {
  // CUDA arrays export as kDLCUDA: our kernels run on the default stream,
  // which the consumer's stream argument (handled in Python) syncs with.
  Array a = copy ? fg::copy(a_in) : a_in;
  const int64_t numel = a.numel();
  Strides strides = numel == 0 ? contiguous_strides(a.shape) : a.strides;
  for (int d = 0; d < a.ndim(); ++d) {
    if (strides[d] >= 0) continue;
    if (a.shape[d] == 1) {  // the stride of a size-1 dim is never used
      strides[d] = -strides[d];
      continue;
    }
    // DLPack allows negative strides, but PyTorch's importer aborts the
    // process on them (and NumPy is the only consumer that takes them), so
    // refuse politely instead of handing out a capsule that can crash.
    throw py::buffer_error("to_dlpack: cannot export a tensor with negative strides " + shape_str(a.strides) +
                           " (a flipped view) without a copy; call .contiguous() first or pass copy=True");
  }
  auto ctx = std::make_unique<ExportCtx>();
  ctx->storage = a.storage;
  ctx->shape.assign(a.shape.begin(), a.shape.end());
  ctx->strides.assign(strides.begin(), strides.end());
  if (ctx->shape.empty()) {  // 0-d: keep the pointers non-NULL
    ctx->shape.reserve(1);
    ctx->strides.reserve(1);
  }
  PyObject* cap = nullptr;
  if (versioned) {
    auto* m = new dlpack::DLManagedTensorVersioned{};
    m->version = {dlpack::kMajorVersion, dlpack::kMinorVersion};
    m->flags = copy ? dlpack::kFlagIsCopied : 0;
    fill_managed(m, a, ctx.get());
    cap = PyCapsule_New(m, kVersionedName, &versioned_capsule_destructor);
    if (!cap) {
      delete m;
      throw py::error_already_set();
    }
  } else {
    auto* m = new dlpack::DLManagedTensor{};
    fill_managed(m, a, ctx.get());
    cap = PyCapsule_New(m, kLegacyName, &legacy_capsule_destructor);
    if (!cap) {
      delete m;
      throw py::error_already_set();
    }
  }
  ctx.release();  // owned by the managed tensor now
  return py::reinterpret_steal<py::object>(cap);
}

Array from_dlpack(const py::object& obj) {
  PyObject* cap = obj.ptr();
  if (!PyCapsule_CheckExact(cap))
    throw TypeError("from_dlpack: expected a DLPack capsule or an object with __dlpack__(), got " +
                    std::string(Py_TYPE(cap)->tp_name));
  const char* name = PyCapsule_GetName(cap);
  if (!name) PyErr_Clear();
  bool versioned;
  if (name && std::strcmp(name, kVersionedName) == 0) {
    versioned = true;
  } else if (name && std::strcmp(name, kLegacyName) == 0) {
    versioned = false;
  } else if (name && (std::strcmp(name, kUsedLegacyName) == 0 || std::strcmp(name, kUsedVersionedName) == 0)) {
    throw std::runtime_error(std::string("from_dlpack: this DLPack capsule was already consumed (its name is '") +
                             name + "'); a capsule can be imported only once");
  } else {
    throw TypeError(std::string("from_dlpack: expected a PyCapsule named 'dltensor' or 'dltensor_versioned', got ") +
                    (name ? "one named '" + std::string(name) + "'" : std::string("one without a name")));
  }
  void* ptr = PyCapsule_GetPointer(cap, name);
  if (!ptr) throw py::error_already_set();

  dlpack::DLTensor* t;
  if (versioned) {
    auto* m = static_cast<dlpack::DLManagedTensorVersioned*>(ptr);
    // Only the version may be read before it is known to be one we speak.
    if (m->version.major != dlpack::kMajorVersion)
      throw py::buffer_error("from_dlpack: unsupported DLPack version " + std::to_string(m->version.major) + "." +
                             std::to_string(m->version.minor) + " (fastgrad reads major version " +
                             std::to_string(dlpack::kMajorVersion) + ")");
    t = &m->dl_tensor;
  } else {
    t = &static_cast<dlpack::DLManagedTensor*>(ptr)->dl_tensor;
  }

  // Validate everything before taking ownership: on any error the capsule
  // stays unconsumed and its own destructor frees the tensor.
  Device device;
  if (t->device.device_type == dlpack::kDLCUDA) {
#ifdef FASTGRAD_WITH_CUDA
    const int visible = cuda::device_count();
    if (t->device.device_id < 0 || t->device.device_id >= visible)
      throw std::runtime_error("from_dlpack: cannot import a tensor on device " + dl_device_str(t->device) +
                               ": no such CUDA device (" + std::to_string(visible) + " visible)");
    device = Device{DeviceType::CUDA, static_cast<int>(t->device.device_id)};
#else
    throw std::runtime_error("from_dlpack: cannot import a tensor on device " + dl_device_str(t->device) +
                             ": fastgrad was built without CUDA");
#endif
  } else if (t->device.device_type != dlpack::kDLCPU) {
    throw std::runtime_error("from_dlpack: cannot import a tensor on device " + dl_device_str(t->device) +
                             ": fastgrad imports CPU and CUDA tensors only");
  }
  DType dtype = from_dl_dtype(t->dtype);
  if (t->ndim < 0) throw std::invalid_argument("from_dlpack: negative ndim " + std::to_string(t->ndim));
  if (t->ndim > 0 && !t->shape) throw std::invalid_argument("from_dlpack: shape is NULL for a " +
                                                            std::to_string(t->ndim) + "-d tensor");
  Shape shape(t->shape, t->shape + t->ndim);
  int64_t numel = shape_numel(shape, "from_dlpack");
  Strides strides = t->strides ? Strides(t->strides, t->strides + t->ndim) : contiguous_strides(shape);
  char* data = static_cast<char*>(t->data);
  if (!data) {
    if (numel != 0) throw std::invalid_argument("from_dlpack: data is NULL for a tensor of shape " + shape_str(shape));
    data = g_empty_data;
  } else {
    data += t->byte_offset;
  }

  // From here on the storage owns the managed tensor, armed only once the
  // capsule is renamed (so a failure in between frees nothing twice).
  auto armed = std::make_shared<bool>(false);
  std::function<void()> release;
  if (versioned) {
    auto* m = static_cast<dlpack::DLManagedTensorVersioned*>(ptr);
    release = [m, armed] { if (*armed) call_producer_deleter(m); };
  } else {
    auto* m = static_cast<dlpack::DLManagedTensor*>(ptr);
    release = [m, armed] { if (*armed) call_producer_deleter(m); };
  }
  Array a = wrap_external(data, shape, strides, dtype, device, std::move(release));
  if (PyCapsule_SetName(cap, versioned ? kUsedVersionedName : kUsedLegacyName) != 0) throw py::error_already_set();
  *armed = true;
  return a;
}

}  // namespace fg
