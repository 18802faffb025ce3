// runtime.cu - device queries, raw memory and copies (see runtime.h).
#include "cuda/runtime.h"

#include <atomic>

#include "cuda/common.cuh"
#include "errors.h"

namespace fg {
namespace cuda {

int device_count() {
  // Without a driver cudaGetDeviceCount fails (cudaErrorInsufficientDriver /
  // cudaErrorNoDevice); that means "no devices", not an error.
  static const int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error state
      return 0;
    }
    return c;
  }();
  return n;
}

void check_device(int index, const char* op) {
  int n = device_count();
  if (n == 0)
    throw std::runtime_error(std::string(op) + ": no CUDA device is available (fastgrad.cuda.is_available() is "
                             "False: no GPU or no driver)");
  if (index < 0 || index >= n)
    throw std::runtime_error(std::string(op) + ": invalid CUDA device cuda:" + std::to_string(index) + " (" +
                             std::to_string(n) + " device(s) visible)");
}

void set_device(int index) {
  check_device(index, "set_device");
  FG_CUDA_CHECK("set_device", cudaSetDevice(index));
}

int current_device() {
  check_device(0, "current_device");
  int d = 0;
  FG_CUDA_CHECK("current_device", cudaGetDevice(&d));
  return d;
}

void synchronize(int index) {
  if (index < 0) index = current_device();
  check_device(index, "synchronize");
  DeviceGuard g(index, "synchronize");
  FG_CUDA_CHECK("synchronize", cudaDeviceSynchronize());
}

std::string device_name(int index) {
  check_device(index, "get_device_name");
  cudaDeviceProp p;
  FG_CUDA_CHECK("get_device_name", cudaGetDeviceProperties(&p, index));
  return p.name;
}

std::string version_info() {
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  std::string r = "runtime " + std::to_string(rt / 1000) + "." + std::to_string(rt % 1000 / 10);
  if (cudaDriverGetVersion(&drv) != cudaSuccess || drv == 0) return r + ", no driver";
  return r + ", driver " + std::to_string(drv / 1000) + "." + std::to_string(drv % 1000 / 10);
}

void* device_malloc(size_t nbytes, int index) {
  check_device(index, "allocate");
  DeviceGuard g(index, "allocate");
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, nbytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it and report "out of memory" to the caller
    return nullptr;
  }
  FG_CUDA_CHECK("allocate", err);
  return p;
}

void device_free(void* p, int index) {
  // At interpreter exit the runtime may already be unloading: nothing to do then.
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess) return;
  if (prev != index) cudaSetDevice(index);
  cudaFree(p);
  cudaGetLastError();
  if (prev != index) cudaSetDevice(prev);
}

void memcpy_h2d(void* dst, const void* src, size_t nbytes, int index) {
  if (nbytes == 0) return;
  DeviceGuard g(index, "to");
  FG_CUDA_CHECK("to (host to device copy)", cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}

void memcpy_d2h(void* dst, const void* src, size_t nbytes, int index) {
  if (nbytes == 0) return;
  DeviceGuard g(index, "to");
  FG_CUDA_CHECK("to (device to host copy)", cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}

void memcpy_d2d(void* dst, const void* src, size_t nbytes, int index) {
  if (nbytes == 0) return;
  DeviceGuard g(index, "to");
  // cudaMemcpyDefault: with unified addressing this also copies between GPUs.
  FG_CUDA_CHECK("to (device to device copy)", cudaMemcpy(dst, src, nbytes, cudaMemcpyDefault));
}

void memset0(void* dst, size_t nbytes, int index) {
  if (nbytes == 0) return;
  DeviceGuard g(index, "zeros");
  FG_CUDA_CHECK("zeros", cudaMemset(dst, 0, nbytes));
}

namespace {
std::atomic<bool> g_tf32{false};
}
void set_allow_tf32(bool on) { g_tf32.store(on); }
bool allow_tf32() { return g_tf32.load(); }

}  // namespace cuda
}  // namespace fg
