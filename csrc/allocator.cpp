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

}  // namespace

void* allocate(size_t nbytes, Device device) {
  if (device.type != DeviceType::CPU)
    throw std::runtime_error("allocate: fastgrad was built without CUDA (device " + device.str() + ")");
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
  (void)device;
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

MemoryStats memory_stats(Device device) {
  MemoryStats s;
  if (device.type != DeviceType::CPU) return s;
  s.bytes_in_use = g_cpu.in_use.load();
  s.peak_bytes = g_cpu.peak.load();
  s.allocations = g_cpu.allocations.load();
  s.live_allocations = g_cpu.live.load();
  s.cached_bytes = g_cpu.cached.load();
  s.cache_hits = g_cpu.cache_hits.load();
  return s;
}

void reset_peak(Device device) {
  if (device.type == DeviceType::CPU) g_cpu.peak.store(g_cpu.in_use.load());
}

}  // namespace fg
