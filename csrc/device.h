// device.h - where an array's memory lives. CPU today; CUDA arrives with the
// CUDA backend, and every op checks devices through check_same_device().
#pragma once
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

// The single device dispatch point: CPU kernels run here; other devices raise
// until their backend is built.
template <class CpuFn>
decltype(auto) on_device(const char* op, const Device& d, CpuFn&& cpu) {
  if (d.type == DeviceType::CPU) return cpu();
  throw std::runtime_error(std::string(op) + ": fastgrad was built without CUDA (device " + d.str() + ")");
}

}  // namespace fg
