// allocator.cpp - 64-byte aligned host memory with atomic counters.
#include "allocator.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace fg {
namespace {

struct Counters {
  std::atomic<int64_t> in_use{0}, peak{0}, allocations{0}, live{0};
};
Counters g_cpu;

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
  // aligned_alloc wants a size that is a multiple of the alignment; zero-size
  // arrays still get a valid, unique pointer.
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (!p) throw std::bad_alloc();
  note_alloc(g_cpu, static_cast<int64_t>(nbytes));
  return p;
}

void deallocate(void* ptr, size_t nbytes, Device device) {
  (void)device;
  std::free(ptr);
  g_cpu.in_use.fetch_sub(static_cast<int64_t>(nbytes));
  g_cpu.live.fetch_sub(1);
}

MemoryStats memory_stats(Device device) {
  MemoryStats s;
  if (device.type != DeviceType::CPU) return s;
  s.bytes_in_use = g_cpu.in_use.load();
  s.peak_bytes = g_cpu.peak.load();
  s.allocations = g_cpu.allocations.load();
  s.live_allocations = g_cpu.live.load();
  return s;
}

void reset_peak(Device device) {
  if (device.type == DeviceType::CPU) g_cpu.peak.store(g_cpu.in_use.load());
}

}  // namespace fg
