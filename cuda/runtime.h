// cuda/runtime.h - the CUDA runtime as the rest of the engine sees it: plain
// C++ declarations (no CUDA headers), implemented in runtime.cu. Every call
// copes with "no driver / no device": device_count() answers 0 there and the
// others raise a RuntimeError naming the op and the CUDA error.
#pragma once
#include <cstddef>
#include <string>

namespace fg {
namespace cuda {

// Devices visible to this process; 0 without a driver or a GPU. Never throws.
int device_count();
// Raises RuntimeError when `index` is not a visible device (naming `op`).
void check_device(int index, const char* op);
void set_device(int index);
int current_device();
// Waits for all work on `index` (-1: the current device).
void synchronize(int index = -1);
std::string device_name(int index);
// "runtime 13.0, driver 13.0" or why there is none.
std::string version_info();

// Raw device memory (the caching allocator sits on top of these).
// device_malloc returns nullptr when the device is out of memory.
void* device_malloc(size_t nbytes, int index);
void device_free(void* p, int index);  // errors at interpreter exit are ignored

// Synchronous copies (they wait for the kernels queued before them).
void memcpy_h2d(void* dst, const void* src, size_t nbytes, int index);
void memcpy_d2h(void* dst, const void* src, size_t nbytes, int index);
void memcpy_d2d(void* dst, const void* src, size_t nbytes, int index);
void memset0(void* dst, size_t nbytes, int index);

// TF32 tensor cores in float32 GEMM (off by default).
void set_allow_tf32(bool on);
bool allow_tf32();

}  // namespace cuda
}  // namespace fg
