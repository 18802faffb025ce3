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
  int64_t cached_bytes = 0;     // freed blocks kept for reuse (not in use)
  int64_t cache_hits = 0;       // allocations served from the cache
};

constexpr size_t kAlignment = 64;  // one cache line; also what AVX-512 loads like

void* allocate(size_t nbytes, Device device);
void deallocate(void* ptr, size_t nbytes, Device device);
MemoryStats memory_stats(Device device);
void reset_peak(Device device);
// Returns every cached CPU block to the system.
void empty_cache();
// Returns the cached blocks of one device (CUDA: to cudaFree).
void empty_device_cache(Device device);

}  // namespace fg
