// interop.cpp - NumPy buffers shared both ways, no copies.
#include "interop.h"

#include "errors.h"

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

py::array to_numpy(const Array& a) {
  if (a.device().type != DeviceType::CPU)
    throw std::runtime_error("numpy: tensor is on " + a.device().str() + "; call .cpu() first");
  auto* keep = new std::shared_ptr<Storage>(a.storage);
  py::capsule owner(keep, [](void* p) { delete static_cast<std::shared_ptr<Storage>*>(p); });
  std::vector<py::ssize_t> strides;
  for (auto s : a.strides) strides.push_back(static_cast<py::ssize_t>(s * static_cast<int64_t>(a.itemsize())));
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

}  // namespace fg
