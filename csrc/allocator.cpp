// allocator.cpp - 64-byte aligned host memory with a bounded cache.
//
// Why a cache: a fresh multi-megabyte block from the system arrives
// unmapped, so the first write to every 4 KiB page faults. An op writing a
// new 64 MB output then runs at a fraction of memory bandwidth. Keeping freed
// blocks and handing them out again for a request of the same size class
// avoids that (and the system calls): training loops allocate the same
// shapes every step.
//
// Size classes: four per power of two (sizes rounded up to a multiple of a
// quarter of the next power of two), so a cached block wastes under 25%.
// The cache holds at most FASTGRAD_CPU_CACHE_MB megabytes (default 1024);
// beyond that, freed blocks go straight back to the system.
#include "allocator.h"

#include "errors.h"
#ifdef FASTGRAD_WITH_CUDA
#include "cuda/runtime.h"
#endif

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace fg {
namespace {

struct Counters {
  std::atomic<int64_t> in_use{0}, peak{0}, allocations{0}, live{0}, cached{0}, cache_hits{0};
};
Counters g_cpu;

size_t size_class(size_t nbytes) {
  if (nbytes <= kAlignment) return kAlignment;
  size_t p = kAlignment;
  while (p < nbytes) p <<= 1;  // p: next power of two >= nbytes
  size_t quarter = p / 8;      // steps of p/8 between p/2 and p: four classes per octave
  if (quarter < kAlignment) quarter = kAlignment;
  return (nbytes + quarter - 1) / quarter * quarter;
}

size_t cache_limit() {
  static const size_t limit = [] {
    const char* env = std::getenv("FASTGRAD_CPU_CACHE_MB");
    long mb = env ? std::atol(env) : 1024;
    return static_cast<size_t>(mb < 0 ? 0 : mb) << 20;
  }();
  return limit;
}

struct Cache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  size_t bytes = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during interpreter exit
  return *c;
}

void note_alloc(Counters& c, int64_t n) {
  int64_t now = c.in_use.fetch_add(n) + n;
  int64_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
  c.allocations.fetch_add(1);
  c.live.fetch_add(1);
}

#ifdef FASTGRAD_WITH_CUDA
// ---- CUDA: one caching allocator per device ---------------------------------
// cudaMalloc/cudaFree synchronise the device and cost tens of microseconds, so
// freed blocks are kept by size class (same classes as the CPU) and handed out
// again; fg.cuda.empty_cache() returns them. No size limit: on an
// out-of-memory the device's cache is released and the allocation retried.
constexpr int kMaxCudaDevices = 64;

struct DeviceCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  size_t bytes = 0;
  Counters counters;
};

DeviceCache& device_cache(int index) {
  static DeviceCache* caches = new DeviceCache[kMaxCudaDevices];  // never destroyed, like the CPU cache
  return caches[index];
}

void release_device_cache(int index) {
  DeviceCache& c = device_cache(index);
  std::lock_guard<std::mutex> lk(c.mutex);
  for (auto& kv : c.free_blocks)
    for (void* p : kv.second) cuda::device_free(p, index);
  c.free_blocks.clear();
  c.bytes = 0;
  c.counters.cached.store(0);
}

void* cuda_allocate(size_t nbytes, Device device) {
  const int idx = device.index;
  cuda::check_device(idx, "allocate");
  if (idx >= kMaxCudaDevices) throw std::runtime_error("allocate: device " + device.str() + " is beyond the supported count");
  DeviceCache& c = device_cache(idx);
  size_t cls = size_class(nbytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lk(c.mutex);
    auto it = c.free_blocks.find(cls);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      c.bytes -= cls;
      c.counters.cached.store(static_cast<int64_t>(c.bytes));
      c.counters.cache_hits.fetch_add(1);
    }
  }
  if (!p) {
    p = cuda::device_malloc(cls, idx);
    if (!p) {
      release_device_cache(idx);
      p = cuda::device_malloc(cls, idx);
    }
    if (!p)
      throw OutOfMemory("allocate: CUDA out of memory allocating " + std::to_string(nbytes) + " bytes on " +
                        device.str() + " (" + std::to_string(c.counters.in_use.load()) + " bytes in use by fastgrad)");
  }
  note_alloc(c.counters, static_cast<int64_t>(nbytes));
  return p;
}

void cuda_deallocate(void* ptr, size_t nbytes, Device device) {
  DeviceCache& c = device_cache(device.index);
  c.counters.in_use.fetch_sub(static_cast<int64_t>(nbytes));
  c.counters.live.fetch_sub(1);
  size_t cls = size_class(nbytes);
  std::lock_guard<std::mutex> lk(c.mutex);
  c.free_blocks[cls].push_back(ptr);
  c.bytes += cls;
  c.counters.cached.store(static_cast<int64_t>(c.bytes));
}
#endif

}  // namespace

void* allocate(size_t nbytes, Device device) {
  if (device.type != DeviceType::CPU) {
#ifdef FASTGRAD_WITH_CUDA
    return cuda_allocate(nbytes, device);
#else
    throw std::runtime_error("allocate: fastgrad was built without CUDA (device " + device.str() + ")");
#endif
  }
  size_t cls = size_class(nbytes);
  void* p = nullptr;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mutex);
    auto it = c.free_blocks.find(cls);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      c.bytes -= cls;
      g_cpu.cached.store(static_cast<int64_t>(c.bytes));
      g_cpu.cache_hits.fetch_add(1);
    }
  }
  if (!p) {
    p = std::aligned_alloc(kAlignment, cls);
    if (!p) {
      empty_cache();  // give the cache back and try once more before failing
      p = std::aligned_alloc(kAlignment, cls);
    }
    if (!p)
      throw OutOfMemory("allocate: out of memory allocating " + std::to_string(nbytes) + " bytes on cpu");
  }
  note_alloc(g_cpu, static_cast<int64_t>(nbytes));
  return p;
}

void deallocate(void* ptr, size_t nbytes, Device device) {
#ifdef FASTGRAD_WITH_CUDA
  if (device.type == DeviceType::CUDA) return cuda_deallocate(ptr, nbytes, device);
#endif
  g_cpu.in_use.fetch_sub(static_cast<int64_t>(nbytes));
  g_cpu.live.fetch_sub(1);
  size_t cls = size_class(nbytes);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mutex);
    if (c.bytes + cls <= cache_limit()) {
      c.free_blocks[cls].push_back(ptr);
      c.bytes += cls;
      g_cpu.cached.store(static_cast<int64_t>(c.bytes));
      return;
    }
  }
  std::free(ptr);
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mutex);
  for (auto& kv : c.free_blocks)
    for (void* p : kv.second) std::free(p);
  c.free_blocks.clear();
  c.bytes = 0;
  g_cpu.cached.store(0);
}

void empty_device_cache(Device device) {
  if (device.type == DeviceType::CPU) return empty_cache();
#ifdef FASTGRAD_WITH_CUDA
  if (device.index >= 0 && device.index < kMaxCudaDevices && device.index < cuda::device_count())
    release_device_cache(device.index);
#endif
}

namespace {
// The counters of `device`, or null when it has none (a CUDA device in a
// build without CUDA, or one that was never used).
Counters* counters_of(Device device) {
  if (device.type == DeviceType::CPU) return &g_cpu;
#ifdef FASTGRAD_WITH_CUDA
  if (device.index >= 0 && device.index < kMaxCudaDevices) return &device_cache(device.index).counters;
#endif
  return nullptr;
}
}  // namespace

MemoryStats memory_stats(Device device) {
  MemoryStats s;
  Counters* c = counters_of(device);
  if (!c) return s;
  s.bytes_in_use = c->in_use.load();
  s.peak_bytes = c->peak.load();
  s.allocations = c->allocations.load();
  s.live_allocations = c->live.load();
  s.cached_bytes = c->cached.load();
  s.cache_hits = c->cache_hits.load();
  return s;
}

void reset_peak(Device device) {
  if (Counters* c = counters_of(device)) c->peak.store(c->in_use.load());
}

}  // namespace fg
