// parallel.h - the thread pool every CPU kernel uses.
//
// parallel_for(n, grain, fn) splits [0, n) into contiguous chunks of at least
// `grain` items and runs fn(begin, end) on the pool's threads (the caller's
// thread takes part). Chunks never depend on timing, so a kernel whose chunks
// write disjoint outputs is deterministic for any thread count. Reductions
// that must be bit-identical across thread counts split by a fixed block size
// instead (see reduce.cpp), not by the number of threads.
#pragma once
#include <cstdint>
#include <functional>

namespace fg {

int get_num_threads();
void set_num_threads(int n);

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// True while the current thread runs inside a parallel_for body; nested
// parallel_for calls then run inline instead of deadlocking the pool.
bool in_parallel_region();

}  // namespace fg
