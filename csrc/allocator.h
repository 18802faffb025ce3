// allocator.h - per-device memory with statistics (bytes in use, peak,
// number of allocations), so fg.memory.stats() tells the truth.
#pragma once
#include <cstddef>
#include <cstdint>

#include "device.h"

namespace fg {

struct MemoryStats {
  int64_t bytes_in_use = 0;
  int64_t peak_bytes = 0;
  int64_t allocations = 0;      // calls to allocate() since start
  int64_t live_allocations = 0; // blocks currently handed out
};

constexpr size_t kAlignment = 64;  // one cache line; also what AVX-512 loads like

void* allocate(size_t nbytes, Device device);
void deallocate(void* ptr, size_t nbytes, Device device);
MemoryStats memory_stats(Device device);
void reset_peak(Device device);

}  // namespace fg
