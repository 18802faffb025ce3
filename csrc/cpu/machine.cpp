// machine.cpp - measurements of the machine itself for the benchmarks'
// header line: peak FP32 FMA rate and copy bandwidth (see machine.h).
#include "cpu/machine.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

#include "cpu/gemm.h"
#include "parallel.h"

namespace fg {
namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The portable loop: 8 independent scalar chains (2 flops per step each).
constexpr int64_t kFmaLoopFlopsScalar = 8 * 2;
float fma_loop_scalar(int64_t iters, float x) {
  float acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = x + float(j);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 8; ++j) acc[j] = acc[j] * 0.9999999f + 1e-7f;
  float s = 0.0f;
  for (float v : acc) s += v;
  return s;
}

struct FmaLoop {
  float (*fn)(int64_t, float);
  int64_t flops_per_iter;
};

FmaLoop fma_loop_for(const std::string& isa) {
  if (isa == "avx512") return {&gemm_detail::fma_loop_avx512, gemm_detail::kFmaLoopFlopsAvx512};
  if (isa == "avx2") return {&gemm_detail::fma_loop_avx2, gemm_detail::kFmaLoopFlopsAvx2};
  return {&fma_loop_scalar, kFmaLoopFlopsScalar};
}

// Sinks the loops' results so the compiler cannot drop them.
std::atomic<float> g_sink{0.0f};

}  // namespace

FmaPeak measure_fma_peak(int threads, double seconds) {
  if (threads < 1) throw std::invalid_argument("measure_fma_peak: threads must be >= 1, got " + std::to_string(threads));
  if (!(seconds > 0.0) || seconds > 60.0)
    throw std::invalid_argument("measure_fma_peak: seconds must be in (0, 60], got " + std::to_string(seconds));
  FmaPeak r;
  r.isa = gemm_info();
  r.threads = threads;
  const FmaLoop loop = fma_loop_for(r.isa);

  // Calibrate on this thread: iterations that take about `seconds` of CPU.
  int64_t iters = 1 << 16;
  for (;;) {
    const double t0 = thread_cpu_seconds();
    g_sink.store(loop.fn(iters, 1.0f));
    const double dt = thread_cpu_seconds() - t0;
    if (dt > 0.02 || iters > (int64_t(1) << 40)) {
      iters = std::max<int64_t>(1, int64_t(double(iters) * seconds / std::max(dt, 1e-9)));
      break;
    }
    iters *= 4;
  }

  r.per_thread_cpu_gflops.assign(static_cast<size_t>(threads), 0.0);
  auto body = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double t0 = thread_cpu_seconds();
      g_sink.store(loop.fn(iters, 1.0f + float(i)));
      const double dt = std::max(thread_cpu_seconds() - t0, 1e-9);
      r.per_thread_cpu_gflops[size_t(i)] = double(iters) * double(loop.flops_per_iter) / dt / 1e9;
    }
  };
  const double w0 = wall_seconds();
  if (threads == 1) body(0, 1);
  else parallel_for(threads, 1, body);  // one task per thread (grain 1)
  r.seconds = wall_seconds() - w0;
  r.gflops = double(threads) * double(iters) * double(loop.flops_per_iter) / r.seconds / 1e9;
  return r;
}

std::vector<double> measure_copy_bandwidth(int64_t nbytes, int reps, int threads) {
  if (nbytes < 4096 || nbytes > (int64_t(1) << 34))
    throw std::invalid_argument("measure_copy_bandwidth: nbytes must be in [4096, 2^34], got " +
                                std::to_string(nbytes));
  if (reps < 1 || threads < 1)
    throw std::invalid_argument("measure_copy_bandwidth: reps and threads must be >= 1");
  const size_t n = (size_t(nbytes) + 4095) / 4096 * 4096;
  std::unique_ptr<char, decltype(&std::free)> src_buf(static_cast<char*>(std::aligned_alloc(4096, n)), &std::free);
  std::unique_ptr<char, decltype(&std::free)> dst_buf(static_cast<char*>(std::aligned_alloc(4096, n)), &std::free);
  if (!src_buf || !dst_buf) throw std::bad_alloc();
  char* src = src_buf.get();
  char* dst = dst_buf.get();
  // Each thread copies its own part in 4 KiB-aligned pieces: no two threads
  // write the same page or cache line.
  const int64_t pages = int64_t(n / 4096);
  auto copy = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const size_t b = size_t(pages * t / threads) * 4096, e = size_t(pages * (t + 1) / threads) * 4096;
      std::memcpy(dst + b, src + b, e - b);
    }
  };
  auto run = [&] {
    if (threads == 1) copy(0, 1);
    else parallel_for(threads, 1, copy);
  };
  std::memset(src, 1, n);  // touch every page before timing
  std::memset(dst, 0, n);
  run();
  std::vector<double> rates;
  for (int i = 0; i < reps; ++i) {
    const double t0 = wall_seconds();
    run();
    rates.push_back(2.0 * double(n) / std::max(wall_seconds() - t0, 1e-9) / 1e9);
  }
  return rates;
}

}  // namespace fg
