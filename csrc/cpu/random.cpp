// random.cpp - the global Philox generator and the CPU sampling kernels.
//
// Every kernel here has the same shape: reserve B counter blocks from the
// generator (one short critical section), then fill the output with
// parallel_for over block indices. Block q writes a fixed set of elements
// (see the mapping in random.h), so the result does not depend on the thread
// count or the split.
#include "cpu/random.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/random.h"
#include "errors.h"
#include "parallel.h"

namespace fg {
namespace {

// ---- generator state --------------------------------------------------------------

// PyTorch's default CPU seed, so a fresh process is deterministic too.
constexpr uint64_t kDefaultSeed = 67280421310721ull;

struct Generator {
  std::mutex mu;
  uint64_t seed = kDefaultSeed;
  uint64_t offset = 0;
};

Generator& generator() {
  static Generator* g = new Generator();  // leaked: usable during interpreter exit
  return *g;
}

// Reserves `blocks` counters; returns (seed, first counter).
std::pair<uint64_t, uint64_t> reserve(uint64_t blocks) {
  Generator& g = generator();
  std::lock_guard<std::mutex> lk(g.mu);
  uint64_t base = g.offset;
  g.offset += blocks;
  return {g.seed, base};
}

// Blocks per parallel chunk: ~16K elements, so small draws stay on the
// calling thread (the pool's wake-up costs more than a few thousand blocks).
constexpr int64_t kBlockGrain = 4096;

// ---- words to numbers ----------------------------------------------------------------

using rng::below;
using rng::join;
using rng::u01_f32;
using rng::u01_f64;
using rng::u01_open0_f32;
using rng::u01_open0_f64;

// Calls body(q, block) for each block q in [q0, q1) of the stream at
// (seed, base). Why batches: 16 independent Philox evaluations in one loop
// with a constant trip count get vectorised by the compiler (4 lanes of
// SSE2), about 2.5x the rate of one block at a time. The few blocks past q1
// in the last batch are computed and ignored (Philox is a pure function).
template <class Body>
void for_blocks(uint64_t seed, uint64_t base, int64_t q0, int64_t q1, Body&& body) {
  constexpr int kBatch = 16;
  PhiloxBlock w[kBatch];
  for (int64_t qb = q0; qb < q1; qb += kBatch) {
    for (int b = 0; b < kBatch; ++b) w[b] = philox4x32_10(seed, base + static_cast<uint64_t>(qb + b));
    const int nb = static_cast<int>(std::min<int64_t>(kBatch, q1 - qb));
    for (int b = 0; b < nb; ++b) body(qb + b, w[b]);
  }
}

// The uniform mapping of random.h for element type T: block(b, q, n, emit)
// turns the words of block q into the uniforms of the elements q owns and
// calls emit(i, u) for each of them that is < n.
template <class T> struct Uniforms;

template <>
struct Uniforms<float> {
  static constexpr int64_t kPerBlock = 4;
  template <class Emit>
  static void block(const PhiloxBlock& b, int64_t q, int64_t n, Emit&& emit) {
    for (int l = 0; l < 4; ++l) {
      int64_t i = q * 4 + l;
      if (i < n) emit(i, u01_f32(b.w[l]));
    }
  }
};

template <>
struct Uniforms<double> {
  static constexpr int64_t kPerBlock = 2;
  template <class Emit>
  static void block(const PhiloxBlock& b, int64_t q, int64_t n, Emit&& emit) {
    for (int l = 0; l < 2; ++l) {
      int64_t i = q * 2 + l;
      if (i < n) emit(i, u01_f64(join(b.w[2 * l], b.w[2 * l + 1])));
    }
  }
};

// Runs emit(i, u) for i in [0, n) with u ~ U[0, 1) of type T, in parallel.
template <class T, class Emit>
void for_each_uniform(int64_t n, Emit&& emit) {
  using U = Uniforms<T>;
  const int64_t blocks = (n + U::kPerBlock - 1) / U::kPerBlock;
  auto [seed, base] = reserve(static_cast<uint64_t>(blocks));
  parallel_for(blocks, kBlockGrain, [&, seed = seed, base = base](int64_t q0, int64_t q1) {
    for_blocks(seed, base, q0, q1, [&](int64_t q, const PhiloxBlock& b) { U::block(b, q, n, emit); });
  });
}

// ---- Box-Muller --------------------------------------------------------------------
//
// rng::box_muller (random.h): z0 = r cos(t), z1 = r sin(t) with
// r = sqrt(-2 log u1), t = 2 pi u2. float32 computes 32 pairs at a time in
// the branch-free loop below, which the compiler vectorises. Why not
// std::log/cos/sin: those are scalar library calls (randn was ~3x slower
// than rand with them), and their bits depend on the libm; our polynomials
// are a few ulps from exact with fixed arithmetic, which is what lets the
// CUDA kernels reproduce the CPU's numbers bit for bit.

// Normals of blocks [q0, q1) of a float32 call (4 per block: pairs (w0, w1)
// and (w2, w3) give elements 4q, 4q+1 and 4q+2, 4q+3).
template <class Emit>
void normals_f32(uint64_t seed, uint64_t base, int64_t q0, int64_t q1, int64_t n, Emit& emit) {
  constexpr int kBlocks = 16, kPairs = 2 * kBlocks;
  float u1[kPairs], u2[kPairs], z0[kPairs], z1[kPairs];
  std::fill(u1, u1 + kPairs, 1.0f);  // a last, partial batch computes (unused) pairs from these
  std::fill(u2, u2 + kPairs, 0.0f);
  for (int64_t qb = q0; qb < q1; qb += kBlocks) {
    const int64_t qe = std::min<int64_t>(qb + kBlocks, q1);
    const int nb = static_cast<int>(qe - qb);
    for_blocks(seed, base, qb, qe, [&](int64_t q, const PhiloxBlock& w) {
      const int b = static_cast<int>(q - qb);
      u1[2 * b] = u01_open0_f32(w.w[0]);
      u2[2 * b] = u01_f32(w.w[1]);
      u1[2 * b + 1] = u01_open0_f32(w.w[2]);
      u2[2 * b + 1] = u01_f32(w.w[3]);
    });
    for (int p = 0; p < kPairs; ++p) rng::box_muller(u1[p], u2[p], &z0[p], &z1[p]);  // vectorised
    for (int p = 0; p < 2 * nb; ++p) {
      const int64_t i = 4 * qb + 2 * p;
      if (i < n) emit(i, z0[p]);
      if (i + 1 < n) emit(i + 1, z1[p]);
    }
  }
}

// Normals of blocks [q0, q1) of a float64 call (2 per block, one pair
// (u64(w0, w1), u64(w2, w3))): 16 pairs per batch in a call-free loop, as
// for float32, which the compiler vectorises (about 2x one pair at a time;
// the same function per pair, so the same bits).
template <class Emit>
void normals_f64(uint64_t seed, uint64_t base, int64_t q0, int64_t q1, int64_t n, Emit& emit) {
  constexpr int kPairs = 16;
  double u1[kPairs], u2[kPairs], z0[kPairs], z1[kPairs];
  std::fill(u1, u1 + kPairs, 1.0);  // a last, partial batch computes (unused) pairs from these
  std::fill(u2, u2 + kPairs, 0.0);
  for (int64_t qb = q0; qb < q1; qb += kPairs) {
    const int64_t qe = std::min<int64_t>(qb + kPairs, q1);
    for_blocks(seed, base, qb, qe, [&](int64_t q, const PhiloxBlock& w) {
      const int p = static_cast<int>(q - qb);
      u1[p] = u01_open0_f64(join(w.w[0], w.w[1]));
      u2[p] = u01_f64(join(w.w[2], w.w[3]));
    });
    for (int p = 0; p < kPairs; ++p) rng::box_muller(u1[p], u2[p], &z0[p], &z1[p]);  // vectorised
    for (int p = 0; p < static_cast<int>(qe - qb); ++p) {
      const int64_t i = 2 * (qb + p);
      if (i < n) emit(i, z0[p]);
      if (i + 1 < n) emit(i + 1, z1[p]);
    }
  }
}

// Runs emit(i, z) for i in [0, n) with z ~ N(0, 1) of type T, in parallel.
template <class T, class Emit>
void for_each_normal(int64_t n, Emit&& emit) {
  constexpr int64_t per = std::is_same<T, float>::value ? 4 : 2;
  const int64_t blocks = (n + per - 1) / per;
  auto [seed, base] = reserve(static_cast<uint64_t>(blocks));
  parallel_for(blocks, kBlockGrain / 2, [&, seed = seed, base = base](int64_t q0, int64_t q1) {
    if constexpr (std::is_same<T, float>::value) {
      normals_f32(seed, base, q0, q1, n, emit);
    } else {
      normals_f64(seed, base, q0, q1, n, emit);
    }
  });
}

// Runs emit(i, x) for i in [0, n) with x a uniform 64-bit word, in parallel.
template <class Emit>
void for_each_u64(int64_t n, Emit&& emit) {
  const int64_t blocks = (n + 1) / 2;
  auto [seed, base] = reserve(static_cast<uint64_t>(blocks));
  parallel_for(blocks, kBlockGrain, [&, seed = seed, base = base](int64_t q0, int64_t q1) {
    for_blocks(seed, base, q0, q1, [&](int64_t q, const PhiloxBlock& b) {
      emit(2 * q, join(b.w[0], b.w[1]));
      if (2 * q + 1 < n) emit(2 * q + 1, join(b.w[2], b.w[3]));
    });
  });
}

// ---- validation -----------------------------------------------------------------------

void require_float(const char* op, DType t) {
  if (!is_floating(t))
    throw TypeError(std::string(op) + ": expected a floating dtype (float32 or float64), got " + dtype_name(t));
}

void require_number(const char* op, DType t) {
  if (t == DType::Bool) throw TypeError(std::string(op) + ": not supported for dtype bool");
}

// Counter blocks of the uniform / normal mappings for n elements of dtype t
// (random.h): 4 per block for float32, 2 for float64.
uint64_t float_blocks(int64_t n, DType t) {
  const int64_t per = t == DType::Float32 ? 4 : 2;
  return static_cast<uint64_t>((n + per - 1) / per);
}

// Runs fn(seed, base) on the CUDA side after reserving `blocks` counters,
// exactly the reservation the CPU kernel makes, so the generator state after
// the call does not depend on the device. Without CUDA, raises.
template <class Fn>
void on_cuda(const char* op, const Device& d, uint64_t blocks, Fn&& fn) {
  cuda_only(op, d, [&] {
    auto [seed, base] = reserve(blocks);
    fn(seed, base);
  });
}

// Runs fill(dst) on a contiguous array that receives a's values: `a` itself
// when it is contiguous, else a temporary that is then copied into a, so
// element i (in row-major order of a's shape) is the same either way.
template <class Fill>
void fill_any_layout(const Array& a, Fill&& fill) {
  if (a.is_contiguous()) {
    fill(a);
  } else {
    Array tmp = empty(a.shape, a.dtype, a.device());
    fill(tmp);
    copy_into(a, tmp);
  }
}

}  // namespace

// ---- generator state ------------------------------------------------------------------

void manual_seed(uint64_t seed) { set_rng_state(seed, 0); }

std::pair<uint64_t, uint64_t> get_rng_state() {
  Generator& g = generator();
  std::lock_guard<std::mutex> lk(g.mu);
  return {g.seed, g.offset};
}

void set_rng_state(uint64_t seed, uint64_t offset) {
  Generator& g = generator();
  std::lock_guard<std::mutex> lk(g.mu);
  g.seed = seed;
  g.offset = offset;
}

// ---- new arrays -----------------------------------------------------------------------

Array rand(const Shape& shape, DType dtype, Device device) {
  require_float("rand", dtype);
  Array out = empty(shape, dtype, device);
  if (is_cuda(device)) {
    on_cuda("rand", device, float_blocks(out.numel(), dtype),
            [&](uint64_t seed, uint64_t base) { cuda::philox_uniform(out, seed, base, false, 0.0, 0.0); });
    return out;
  }
  dispatch_float(dtype, "rand", [&](auto t) {
    using T = decltype(t);
    T* p = out.data<T>();
    for_each_uniform<T>(out.numel(), [p](int64_t i, T u) { p[i] = u; });
  });
  return out;
}

Array randn(const Shape& shape, DType dtype, Device device) { return normal(0.0, 1.0, shape, dtype, device); }

Array normal(double mean, double std, const Shape& shape, DType dtype, Device device) {
  require_float("normal", dtype);
  if (!(std >= 0.0)) throw std::invalid_argument("normal: expected std >= 0, got " + std::to_string(std));
  Array out = empty(shape, dtype, device);
  if (is_cuda(device)) {
    on_cuda("normal", device, float_blocks(out.numel(), dtype), [&](uint64_t seed, uint64_t base) {
      cuda::philox_normal(out, seed, base, !(mean == 0.0 && std == 1.0), mean, std);
    });
    return out;
  }
  dispatch_float(dtype, "normal", [&](auto t) {
    using T = decltype(t);
    T* p = out.data<T>();
    const T m = static_cast<T>(mean), s = static_cast<T>(std);
    if (mean == 0.0 && std == 1.0)
      for_each_normal<T>(out.numel(), [p](int64_t i, T z) { p[i] = z; });
    else
      for_each_normal<T>(out.numel(), [p, m, s](int64_t i, T z) { p[i] = m + s * z; });
  });
  return out;
}

Array randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Device device) {
  require_number("randint", dtype);
  if (low >= high)
    throw std::invalid_argument("randint: expected low < high, got low=" + std::to_string(low) +
                                ", high=" + std::to_string(high));
  if (dtype == DType::Int32 && (low < std::numeric_limits<int32_t>::min() ||
                                high - 1 > std::numeric_limits<int32_t>::max()))
    throw std::invalid_argument("randint: range [" + std::to_string(low) + ", " + std::to_string(high) +
                                ") does not fit in int32");
  Array out = empty(shape, dtype, device);
  // high - low as unsigned: exact even for the full int64 range.
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  if (is_cuda(device)) {
    on_cuda("randint", device, static_cast<uint64_t>((out.numel() + 1) / 2),
            [&](uint64_t seed, uint64_t base) { cuda::philox_randint(out, seed, base, low, range); });
    return out;
  }
  dispatch_number(dtype, "randint", [&](auto t) {
    using T = decltype(t);
    T* p = out.data<T>();
    for_each_u64(out.numel(), [p, low, range](int64_t i, uint64_t x) {
      p[i] = static_cast<T>(static_cast<int64_t>(static_cast<uint64_t>(low) + below(x, range)));
    });
  });
  return out;
}

Array bernoulli(const Array& p_in) {
  require_float("bernoulli", p_in.dtype);
  Array p = contiguous(p_in);
  Array out = empty(p.shape, p.dtype, p.device());
  if (is_cuda(p.device())) {
    // Checked before the reservation, as on the CPU; a bad p raises the
    // CPU's message (first bad value in row-major order) from a host copy.
    cuda_only("bernoulli", p.device(), [&] {
      if (!cuda::probabilities_ok(p)) bernoulli(to_device(p, Device{}));
    });
    on_cuda("bernoulli", p.device(), float_blocks(p.numel(), p.dtype),
            [&](uint64_t seed, uint64_t base) { cuda::philox_bernoulli(out, p, seed, base); });
    return out;
  }
  dispatch_float(p.dtype, "bernoulli", [&](auto t) {
    using T = decltype(t);
    const T* pp = p.data<T>();
    const int64_t n = p.numel();
    for (int64_t i = 0; i < n; ++i)
      if (!(pp[i] >= T(0) && pp[i] <= T(1)))
        throw std::invalid_argument("bernoulli: expected 0 <= p <= 1, got p=" + std::to_string(double(pp[i])) +
                                    " at flat index " + std::to_string(i));
    T* o = out.data<T>();
    for_each_uniform<T>(n, [o, pp](int64_t i, T u) { o[i] = static_cast<T>(u < pp[i]); });
  });
  return out;
}

Array dropout_mask(const Shape& shape, double p, DType dtype, Device device) {
  require_float("dropout_mask", dtype);
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument("dropout_mask: expected 0 <= p <= 1, got p=" + std::to_string(p));
  Array out = empty(shape, dtype, device);
  if (is_cuda(device)) {
    // The CPU's constants, rounded to the dtype here.
    const bool f32 = dtype == DType::Float32;
    const double keep = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
    const double pt = f32 ? static_cast<float>(p) : p, kt = f32 ? static_cast<float>(keep) : keep;
    on_cuda("dropout_mask", device, float_blocks(out.numel(), dtype),
            [&](uint64_t seed, uint64_t base) { cuda::philox_dropout(out, seed, base, pt, kt); });
    return out;
  }
  dispatch_float(dtype, "dropout_mask", [&](auto t) {
    using T = decltype(t);
    T* o = out.data<T>();
    const T pt = static_cast<T>(p);
    const T keep = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
    // Branch-free select: with p near 0.5 a branch would mispredict half the time.
    for_each_uniform<T>(out.numel(), [o, pt, keep](int64_t i, T u) { o[i] = keep * static_cast<T>(u >= pt); });
  });
  return out;
}

Array randperm(int64_t n, DType dtype, Device device) {
  require_number("randperm", dtype);
  if (n < 0) throw std::invalid_argument("randperm: expected n >= 0, got " + std::to_string(n));
  if ((dtype == DType::Int32 && n - 1 > std::numeric_limits<int32_t>::max()) ||
      (dtype == DType::Float32 && n > (int64_t(1) << 24)) || (dtype == DType::Float64 && n > (int64_t(1) << 53)))
    throw std::invalid_argument("randperm: n=" + std::to_string(n) + " is too large for " + dtype_name(dtype) +
                                " (the indices would not be exact)");
  // Fisher-Yates is inherently serial (step i swaps with a position that
  // earlier steps moved), so a CUDA permutation is made here and copied over:
  // the same permutation and generator state as on the CPU.
  if (is_cuda(device)) return to_device(randperm(n, dtype), device);
  Array out = empty({n}, dtype);
  dispatch_number(dtype, "randperm", [&](auto t) {
    using T = decltype(t);
    T* o = out.data<T>();
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(i);
    // Fisher-Yates from the top: step i swaps o[i] with o[j], j uniform in
    // [0, i], drawn from 64-bit word i of the call's stream. Sequential (each
    // step depends on the previous ones), cheap next to anything that uses n
    // indices.
    const int64_t blocks = (n + 1) / 2;
    auto [seed, base] = reserve(static_cast<uint64_t>(blocks));
    PhiloxBlock b{};
    int64_t have = -1;  // block currently in b
    for (int64_t i = n - 1; i >= 1; --i) {
      const int64_t q = i / 2;
      if (q != have) {
        b = philox4x32_10(seed, base + static_cast<uint64_t>(q));
        have = q;
      }
      const int l = static_cast<int>(i % 2);
      const int64_t j = static_cast<int64_t>(below(join(b.w[2 * l], b.w[2 * l + 1]), static_cast<uint64_t>(i + 1)));
      std::swap(o[i], o[j]);
    }
  });
  return out;
}

// ---- multinomial ------------------------------------------------------------------------

namespace {

// Raises for the first bad row (in order), with torch's wording.
void check_multinomial_weights(const Array& w, int64_t R, int64_t C, int64_t need) {
  dispatch_float(w.dtype, "multinomial", [&](auto t) {
    using T = decltype(t);
    const T* p = w.data<const T>();
    for (int64_t r = 0; r < R; ++r) {
      int64_t positive = 0;
      for (int64_t k = 0; k < C; ++k) {
        const T x = p[r * C + k];
        if (!(x >= T(0) && x <= std::numeric_limits<T>::max()))
          throw std::invalid_argument("multinomial: probability tensor contains either inf, nan or element < 0 (" +
                                      std::to_string(double(x)) + " in row " + std::to_string(r) + ")");
        positive += x > T(0);
      }
      if (positive < need)
        throw std::invalid_argument("multinomial: invalid multinomial distribution (sum of probabilities <= 0) in "
                                    "row " + std::to_string(r));
    }
  });
}

}  // namespace

Array multinomial(const Array& w_in, int64_t num_samples, bool replacement) {
  const char* op = "multinomial";
  require_float(op, w_in.dtype);
  if (w_in.ndim() != 1 && w_in.ndim() != 2)
    throw std::invalid_argument("multinomial: prob_dist must be 1 or 2 dim, got shape " + shape_str(w_in.shape));
  const int64_t C = w_in.shape.back(), R = w_in.ndim() == 2 ? w_in.shape[0] : 1, S = num_samples;
  if (S <= 0)
    throw std::invalid_argument("multinomial: cannot sample n_sample <= 0 samples (num_samples=" +
                                std::to_string(S) + ")");
  if (!replacement && S > C)
    throw std::invalid_argument("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without "
                                "replacement (num_samples=" + std::to_string(S) + ", " + std::to_string(C) +
                                " categories)");
  if (C > (int64_t(1) << 24))
    throw std::invalid_argument("multinomial: number of categories cannot exceed 2^24, got " + std::to_string(C));
  const Device dev = w_in.device();
  Array out = empty(w_in.ndim() == 2 ? Shape{R, S} : Shape{S}, DType::Int64, dev);
  if (R == 0) return out;
  const Array w = contiguous(w_in);
  // As torch, a row needs one positive weight even without replacement:
  // zero-weight categories then come after the positive ones (key +inf).
  const int64_t need = 1;
  const uint64_t blocks = static_cast<uint64_t>(((replacement ? R * S : R * C) + 1) / 2);
  if (is_cuda(dev)) {
    // Checked before the reservation, as on the CPU; bad weights raise the
    // CPU's message from a host copy.
    cuda_only(op, dev, [&] {
      if (!cuda::multinomial_ok(w, R, C, need)) check_multinomial_weights(to_device(w, Device{}), R, C, need);
    });
    on_cuda(op, dev, blocks,
            [&](uint64_t seed, uint64_t base) { cuda::philox_multinomial(out, w, R, C, S, replacement, seed, base); });
    return out;
  }
  check_multinomial_weights(w, R, C, need);
  int64_t* o = out.data<int64_t>();
  // The draws first (in parallel; any split gives the same words), then the
  // per-row work in double.
  std::vector<uint64_t> x(static_cast<size_t>(replacement ? R * S : R * C));
  uint64_t* xp = x.data();
  for_each_u64(static_cast<int64_t>(x.size()), [xp](int64_t i, uint64_t v) { xp[i] = v; });
  dispatch_float(w.dtype, op, [&](auto t) {
    using T = decltype(t);
    const T* p = w.data<const T>();
    parallel_for(R, std::max<int64_t>(1, kBlockGrain / std::max<int64_t>(C + S, 1)), [&](int64_t r0, int64_t r1) {
      std::vector<double> buf(static_cast<size_t>(C));
      std::vector<int64_t> idx;
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = p + r * C;
        if (replacement) {
          double acc = 0.0;
          int64_t last = 0;
          for (int64_t k = 0; k < C; ++k) {
            acc += static_cast<double>(row[k]);  // running sum in category order
            buf[k] = acc;
            if (row[k] > T(0)) last = k;
          }
          for (int64_t s = 0; s < S; ++s) {
            const double target = u01_f64(xp[r * S + s]) * acc;
            const int64_t k = std::upper_bound(buf.begin(), buf.end(), target) - buf.begin();
            o[r * S + s] = k < C ? k : last;  // k == C only if u * total rounded up to total
          }
        } else {
          for (int64_t k = 0; k < C; ++k) {
            const double e = -rng::fast_log(u01_open0_f64(xp[r * C + k]));
            buf[k] = row[k] > T(0) ? e / static_cast<double>(row[k]) : std::numeric_limits<double>::infinity();
          }
          idx.resize(static_cast<size_t>(C));
          for (int64_t k = 0; k < C; ++k) idx[k] = k;
          // (key, k) is a total order: the S smallest and their order are unique.
          std::partial_sort(idx.begin(), idx.begin() + S, idx.end(), [&](int64_t a, int64_t b) {
            return buf[a] < buf[b] || (buf[a] == buf[b] && a < b);
          });
          std::copy(idx.begin(), idx.begin() + S, o + r * S);
        }
      }
    });
  });
  return out;
}

// ---- in place ---------------------------------------------------------------------------

void uniform_(const Array& a, double lo, double hi) {
  require_float("uniform_", a.dtype);
  if (!(lo <= hi))
    throw std::invalid_argument("uniform_: expected from <= to, got from=" + std::to_string(lo) +
                                ", to=" + std::to_string(hi));
  dispatch_float(a.dtype, "uniform_", [&](auto t) {
    using T = decltype(t);
    const T l = static_cast<T>(lo), w = static_cast<T>(hi - lo);
    fill_any_layout(a, [&](const Array& dst) {
      if (is_cuda(dst.device())) {
        on_cuda("uniform_", dst.device(), float_blocks(dst.numel(), dst.dtype),
                [&](uint64_t seed, uint64_t base) { cuda::philox_uniform(dst, seed, base, true, l, w); });
        return;
      }
      T* p = dst.data<T>();
      for_each_uniform<T>(dst.numel(), [p, l, w](int64_t i, T u) { p[i] = l + w * u; });
    });
  });
  a.bump_version();
}

void normal_(const Array& a, double mean, double std) {
  require_float("normal_", a.dtype);
  if (!(std >= 0.0)) throw std::invalid_argument("normal_: expected std >= 0, got " + std::to_string(std));
  dispatch_float(a.dtype, "normal_", [&](auto t) {
    using T = decltype(t);
    const T m = static_cast<T>(mean), s = static_cast<T>(std);
    fill_any_layout(a, [&](const Array& dst) {
      if (is_cuda(dst.device())) {
        on_cuda("normal_", dst.device(), float_blocks(dst.numel(), dst.dtype),
                [&](uint64_t seed, uint64_t base) { cuda::philox_normal(dst, seed, base, true, m, s); });
        return;
      }
      T* p = dst.data<T>();
      for_each_normal<T>(dst.numel(), [p, m, s](int64_t i, T z) { p[i] = m + s * z; });
    });
  });
  a.bump_version();
}

}  // namespace fg
