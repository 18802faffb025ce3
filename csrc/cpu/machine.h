// machine.h - what the benchmarks print about the machine they ran on: the
// measured peak FP32 FMA rate (a register-resident loop, no memory traffic)
// and the measured copy bandwidth. Not used by any op.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fg {

struct FmaPeak {
  std::string isa;              // the FMA loop's instruction set: "avx512", "avx2" or "scalar"
  int threads;                  // threads that ran the loop at the same time
  double seconds;               // wall time of the whole run
  double gflops;                // all threads together, flops / wall time
  std::vector<double> per_thread_cpu_gflops;  // each thread's flops / its own CPU time
};

// Runs an FP32 FMA loop with enough independent accumulators to hide the FMA
// latency on `threads` threads of the pool at once (threads <= the pool size;
// 1 runs on the calling thread), each for about `seconds`. The ISA is the one
// GEMM uses (FASTGRAD_CPU_CAPABILITY / set_cpu_capability apply).
FmaPeak measure_fma_peak(int threads, double seconds);

// Copies a buffer of `nbytes` into another `reps` times with `threads`
// threads (each its own contiguous part) and returns each repetition's rate
// in GB/s, counting bytes read plus bytes written (STREAM's copy convention).
std::vector<double> measure_copy_bandwidth(int64_t nbytes, int reps, int threads);

}  // namespace fg
