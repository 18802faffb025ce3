// parallel.cpp - a fixed pool of worker threads fed one job at a time.
//
// A job is ntasks chunks handed out by one atomic ticket: (job id, ntasks,
// next chunk) packed in 64 bits, claimed by compare-and-swap. The caller
// claims chunks too, so it never waits for a worker that has not started:
// whatever no worker has claimed when the caller runs out of its own, the
// caller runs itself. It only waits for chunks that a worker is running.
// Loaded machines deschedule workers for whole time slices (reported: a
// small MLP step up to 15x slower with 2 threads than with 1), hence:
//   - nothing waits on a worker's wake-up, only on chunks it holds;
//   - a worker spins briefly after a job (pause, then yielding its core)
//     before it sleeps, so the next small op of a training step finds it
//     awake;
//   - a job is cut into up to kChunksPerThread chunks per thread (each still
//     >= grain), so a worker that starts late takes a share, not a half;
//   - the caller waits for held chunks by spinning, then yielding, and
//     sleeps only after that (a wake-up costs a scheduling round trip).
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace fg {
namespace {

thread_local bool t_in_parallel = false;

// Far above any machine's core count; a bound keeps a typo from asking the OS
// for a billion threads.
constexpr int kMaxThreads = 1024;
// Chunks per thread a job is cut into at most (each at least `grain` items).
constexpr int64_t kChunksPerThread = 4;
// The ticket's fields: 32 bits of job id, 16 of ntasks, 16 of the next chunk.
constexpr int64_t kMaxTasks = 0xffff;
// How long a waiting thread spins on pause instructions, then spins
// yielding its core (to whatever else wants it: on a loaded machine, maybe
// the very worker it waits for), before it sleeps: a worker after a job
// waits kWorkerSpin for the next, the caller kCallerYield for held chunks.
constexpr auto kPauseSpin = std::chrono::microseconds(20);
constexpr auto kWorkerSpin = std::chrono::microseconds(50);
constexpr auto kCallerYield = std::chrono::microseconds(1000);

int default_threads() {
  if (const char* env = std::getenv("FASTGRAD_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return std::min(n, kMaxThreads);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

inline uint32_t ticket_next(uint64_t t) { return static_cast<uint32_t>(t & 0xffff); }
inline uint32_t ticket_ntasks(uint64_t t) { return static_cast<uint32_t>((t >> 16) & 0xffff); }
inline bool has_work(uint64_t t) { return ticket_next(t) < ticket_ntasks(t); }

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop_workers(); }

  int size() const { return nthreads_; }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    stop_workers();
    stopping_.store(false);
    nthreads_ = std::max(1, n);
    try {
      for (int i = 1; i < nthreads_; ++i) workers_.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error& e) {
      // the OS refused a thread: keep the ones that started, report the rest
      nthreads_ = static_cast<int>(workers_.size()) + 1;
      throw std::runtime_error("set_num_threads: could only start " + std::to_string(nthreads_) + " of " +
                               std::to_string(n) + " threads (" + e.what() + ")");
    }
  }

  // Runs task(i) for i in [0, ntasks) across the pool (ntasks <= kMaxTasks);
  // blocks until all are done and rethrows the first exception of a task.
  void run(int ntasks, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);  // one job at a time
    // The previous job is complete (every chunk finished), so no worker reads
    // these fields now; a worker reads them only after claiming a chunk of
    // the ticket published below, whose release store orders them first.
    task_.store(&task, std::memory_order_relaxed);
    pending_.store(ntasks, std::memory_order_relaxed);
    error_ = nullptr;
    ++job_;
    ticket_.store((static_cast<uint64_t>(job_) << 32) | (static_cast<uint64_t>(ntasks) << 16),
                  std::memory_order_release);
    {
      // Under the mutex: a worker between its wait predicate and its sleep
      // cannot miss this.
      std::lock_guard<std::mutex> lk(mutex_);
      if (sleepers_ > 0) cv_.notify_all();
    }
    drain();
    wait_done();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Claims the next chunk of the current job: false when none is left.
  bool claim(int* idx) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    while (has_work(t))
      if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        *idx = static_cast<int>(ticket_next(t));
        return true;
      }
    return false;
  }

  // Runs chunks until none is left to claim; returns how many it ran. A chunk
  // claimed here keeps its job alive (pending_ > 0), so task_ is that job's
  // until it is finished.
  int drain() {
    t_in_parallel = true;
    int i, ran = 0;
    while (claim(&i)) {
      ++ran;
      try {
        (*task_.load(std::memory_order_relaxed))(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mutex_);  // see wait_done: no lost wake-up
        done_cv_.notify_all();
      }
    }
    t_in_parallel = false;
    return ran;
  }

  // The caller, after drain(): waits for the chunks that workers still run.
  void wait_done() {
    auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (done()) return;
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    for (int k = 0;; ++k) {
      if (done()) return;
      if ((k & 15) == 0) {
        const auto waited = Clock::now() - start;
        if (waited > kCallerYield) break;
        if (waited > kPauseSpin) std::this_thread::yield();
      }
      cpu_relax();
    }
    std::unique_lock<std::mutex> lk(mutex_);
    done_cv_.wait(lk, done);
  }

  void worker_loop() {
    using Clock = std::chrono::steady_clock;
    for (;;) {
      // Stay awake a little for the next job, then sleep until one comes; a
      // worker that woke too late to get a chunk goes straight back to sleep
      // (on a busy machine its spinning would only slow the caller down).
      const bool worked = drain() > 0;
      const auto start = Clock::now();
      bool found = false;
      for (int k = 0; !found; ++k) {
        if (stopping_.load(std::memory_order_relaxed)) return;
        found = has_work(ticket_.load(std::memory_order_relaxed));
        if (!found && (k & 15) == 0) {
          const auto waited = Clock::now() - start;
          if (!worked || waited > kWorkerSpin) break;
          if (waited > kPauseSpin) std::this_thread::yield();
        }
        cpu_relax();
      }
      if (found) continue;
      std::unique_lock<std::mutex> lk(mutex_);
      ++sleepers_;
      cv_.wait(lk, [this] { return stopping_.load() || has_work(ticket_.load(std::memory_order_acquire)); });
      --sleepers_;
      if (stopping_.load()) return;
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      stopping_.store(true);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  int nthreads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, mutex_;
  std::condition_variable cv_, done_cv_;
  std::atomic<const std::function<void(int)>*> task_{nullptr};
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int> pending_{0};
  uint32_t job_ = 0;
  int sleepers_ = 0;  // guarded by mutex_
  std::atomic<bool> stopping_{false};
  std::exception_ptr error_;  // guarded by mutex_ while a job runs
};

Pool& pool() {
  static Pool* p = new Pool(default_threads());  // leaked on purpose: no join at exit
  return *p;
}

}  // namespace

int get_num_threads() { return pool().size(); }

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads)
    throw std::invalid_argument("set_num_threads: expected 1 <= n <= " + std::to_string(kMaxThreads) + ", got " +
                                std::to_string(n));
  if (n != pool().size()) pool().resize(n);
}

bool in_parallel_region() { return t_in_parallel; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int nt = pool().size();
  const int64_t max_chunks = (n + grain - 1) / grain;
  if (nt <= 1 || max_chunks <= 1 || t_in_parallel) {
    fn(0, n);
    return;
  }
  const int64_t chunks = std::min({max_chunks, nt * kChunksPerThread, kMaxTasks});
  // Chunk boundaries depend on n, grain and the thread count, never on timing.
  const int64_t per = (n + chunks - 1) / chunks;
  const int ntasks = static_cast<int>((n + per - 1) / per);
  pool().run(ntasks, [&](int i) {
    const int64_t b = i * per, e = std::min(n, b + per);
    fn(b, e);
  });
}

}  // namespace fg
