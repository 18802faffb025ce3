// device.h - where an array's memory lives (CPU or a CUDA device); every op
// checks devices through check_same_device() and dispatches through on_device().
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fg {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const {
    return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
};

inline void check_same_device(const char* op, const Device& a, const Device& b) {
  if (a != b)
    throw std::invalid_argument(std::string(op) + ": expected all tensors on the same device, got " +
                                a.str() + " and " + b.str());
}

inline bool is_cuda(const Device& d) { return d.type == DeviceType::CUDA; }

// The single device dispatch point. on_device(op, d, cpu, cuda) runs the CPU
// or the CUDA implementation; without FASTGRAD_WITH_CUDA the CUDA branch
// raises (its lambda is never called, so it needs no definition at link
// time). The CPU-only form on_device(op, d, cpu) raises for CUDA arrays: an
// op without a CUDA kernel must never run CPU loops on device memory.
template <class CpuFn, class CudaFn>
decltype(auto) on_device(const char* op, const Device& d, CpuFn&& cpu, CudaFn&& cuda) {
  if (d.type == DeviceType::CPU) return cpu();
#ifdef FASTGRAD_WITH_CUDA
  return cuda();
#else
  (void)cuda;
  throw std::runtime_error(std::string(op) + ": fastgrad was built without CUDA (device " + d.str() + ")");
#endif
}

template <class CpuFn>
decltype(auto) on_device(const char* op, const Device& d, CpuFn&& cpu) {
  if (d.type == DeviceType::CPU) return cpu();
#ifdef FASTGRAD_WITH_CUDA
  throw std::runtime_error(std::string(op) + ": not implemented for CUDA yet (device " + d.str() + ")");
#else
  throw std::runtime_error(std::string(op) + ": fastgrad was built without CUDA (device " + d.str() + ")");
#endif
}

// An early CUDA branch in a device-generic function:
//   if (is_cuda(a.device())) return cuda_only("op", a.device(), [&] { return cuda::op(a); });
// Without FASTGRAD_WITH_CUDA the lambda is never called, so cuda::op needs
// no definition there, and this raises instead.
template <class CudaFn>
auto cuda_only(const char* op, const Device& d, CudaFn&& cuda) -> decltype(cuda()) {
#ifdef FASTGRAD_WITH_CUDA
  return cuda();
#else
  (void)cuda;
  throw std::runtime_error(std::string(op) + ": fastgrad was built without CUDA (device " + d.str() + ")");
#endif
}

}  // namespace fg
