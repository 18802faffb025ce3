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

constexpr double kTwoPi = 6.283185307179586476925286766559;

inline uint64_t join(uint32_t lo, uint32_t hi) { return uint64_t(lo) | (uint64_t(hi) << 32); }

// [0, 1) from the top 24 / 53 bits: every value is exactly representable,
// and 1.0 can never come out (which would happen when rounding w * 2^-32).
inline float u01_f32(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
inline double u01_f64(uint64_t x) { return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0); }
// (0, 1]: the log in Box-Muller must never see 0.
inline float u01_open0_f32(uint32_t w) { return static_cast<float>((w >> 8) + 1) * (1.0f / 16777216.0f); }
inline double u01_open0_f64(uint64_t x) { return static_cast<double>((x >> 11) + 1) * (1.0 / 9007199254740992.0); }

// Uniform integer in [0, n) by Lemire's multiply-shift (bias <= n / 2^64).
inline uint64_t below(uint64_t x, uint64_t n) { return static_cast<uint64_t>((__uint128_t(x) * n) >> 64); }

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
// float32: z0 = r cos(t), z1 = r sin(t) with r = sqrt(-2 log u1), t = 2 pi u2,
// computed for 32 pairs at a time by the branch-free loops below, which the
// compiler vectorises. Why not std::log/cos/sin: those are scalar library
// calls and made randn ~3x slower than rand; the polynomials here (Cephes'
// single-precision ones) are accurate to a few float ulps, and their
// arithmetic is fixed, so results do not depend on the libm either.
// float64 keeps the libm functions: double users want full accuracy.

inline uint32_t float_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}
inline float bits_float(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// Natural log for normal floats x > 0 (Cephes logf).
inline float fast_logf(float x) {
  const uint32_t bits = float_bits(x);
  float e = static_cast<float>(static_cast<int32_t>(bits >> 23) - 126);  // x = m * 2^e, m in [0.5, 1)
  float m = bits_float((bits & 0x007FFFFFu) | 0x3F000000u);
  // Keep the argument in [sqrt(1/2) - 1, sqrt(2) - 1): below sqrt(1/2) use
  // 2m - 1 and e - 1. Selects as bit masks, so the loop has no branches.
  const uint32_t small = 0u - static_cast<uint32_t>(m < 0.70710678118654752f);
  e -= bits_float(float_bits(1.0f) & small);
  m = (m - 1.0f) + bits_float(float_bits(m) & small);  // both forms exact
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + e * 0.693359375f;
}

// (cos, sin) of 2 pi u for u in [0, 1) (Cephes sinf/cosf kernels): reduce to
// the nearest quarter turn j, where the remainder is within pi/4, then rotate.
inline void fast_sincos_turns(float u, float* c_out, float* s_out) {
  const float x = 4.0f * u;                          // quarter turns, exact
  const float j = static_cast<float>(static_cast<int32_t>(x + 0.5f));  // nearest, 0..4
  const float g = (x - j) * 1.57079632679489662f;    // in [-pi/4, pi/4]
  const float g2 = g * g;
  const float s = g + g * g2 * (-1.6666654611e-1f + g2 * (8.3321608736e-3f + g2 * -1.9515295891e-4f));
  const float c = 1.0f - 0.5f * g2 +
                  g2 * g2 * (4.166664568298827e-2f + g2 * (-1.388731625493765e-3f + g2 * 2.443315711809948e-5f));
  // Rotate by j quarter turns: odd j swaps cos and sin; the signs follow the
  // quadrant (cos < 0 for j % 4 in {1, 2}, sin < 0 for {2, 3}). Bit masks
  // again instead of branches.
  const uint32_t q = static_cast<uint32_t>(static_cast<int32_t>(j)) & 3u;
  const uint32_t swap = 0u - (q & 1u);
  const uint32_t cb = float_bits(c), sb = float_bits(s);
  *c_out = bits_float(((cb & ~swap) | (sb & swap)) ^ (((q + 1u) & 2u) << 30));
  *s_out = bits_float(((sb & ~swap) | (cb & swap)) ^ ((q & 2u) << 30));
}

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
    for (int p = 0; p < kPairs; ++p) {  // vectorised: no calls, no branches
      float c, s;
      fast_sincos_turns(u2[p], &c, &s);
      const float r = std::sqrt(-2.0f * fast_logf(u1[p]));
      z0[p] = r * c;
      z1[p] = r * s;
    }
    for (int p = 0; p < 2 * nb; ++p) {
      const int64_t i = 4 * qb + 2 * p;
      if (i < n) emit(i, z0[p]);
      if (i + 1 < n) emit(i + 1, z1[p]);
    }
  }
}

template <class Emit>
void box_muller_f64(uint64_t x1, uint64_t x2, int64_t i, int64_t n, Emit& emit) {
  const double r = std::sqrt(-2.0 * std::log(u01_open0_f64(x1)));
  const double th = kTwoPi * u01_f64(x2);
  if (i < n) emit(i, r * std::cos(th));
  if (i + 1 < n) emit(i + 1, r * std::sin(th));
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
      for_blocks(seed, base, q0, q1, [&](int64_t q, const PhiloxBlock& b) {
        box_muller_f64(join(b.w[0], b.w[1]), join(b.w[2], b.w[3]), 2 * q, n, emit);
      });
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

void require_cpu(const char* op, const Array& a) {
  on_device(op, a.device(), [] {});
}

// Runs fill(dst) on a contiguous array that receives a's values: `a` itself
// when it is contiguous, else a temporary that is then copied into a, so
// element i (in row-major order of a's shape) is the same either way.
template <class Fill>
void fill_any_layout(const Array& a, Fill&& fill) {
  if (a.is_contiguous()) {
    fill(a);
  } else {
    Array tmp = empty(a.shape, a.dtype);
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

Array rand(const Shape& shape, DType dtype) {
  require_float("rand", dtype);
  Array out = empty(shape, dtype);
  dispatch_float(dtype, "rand", [&](auto t) {
    using T = decltype(t);
    T* p = out.data<T>();
    for_each_uniform<T>(out.numel(), [p](int64_t i, T u) { p[i] = u; });
  });
  return out;
}

Array randn(const Shape& shape, DType dtype) { return normal(0.0, 1.0, shape, dtype); }

Array normal(double mean, double std, const Shape& shape, DType dtype) {
  require_float("normal", dtype);
  if (!(std >= 0.0)) throw std::invalid_argument("normal: expected std >= 0, got " + std::to_string(std));
  Array out = empty(shape, dtype);
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

Array randint(int64_t low, int64_t high, const Shape& shape, DType dtype) {
  require_number("randint", dtype);
  if (low >= high)
    throw std::invalid_argument("randint: expected low < high, got low=" + std::to_string(low) +
                                ", high=" + std::to_string(high));
  if (dtype == DType::Int32 && (low < std::numeric_limits<int32_t>::min() ||
                                high - 1 > std::numeric_limits<int32_t>::max()))
    throw std::invalid_argument("randint: range [" + std::to_string(low) + ", " + std::to_string(high) +
                                ") does not fit in int32");
  Array out = empty(shape, dtype);
  // high - low as unsigned: exact even for the full int64 range.
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
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
  require_cpu("bernoulli", p_in);
  require_float("bernoulli", p_in.dtype);
  Array p = contiguous(p_in);
  Array out = empty(p.shape, p.dtype);
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

Array dropout_mask(const Shape& shape, double p, DType dtype) {
  require_float("dropout_mask", dtype);
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument("dropout_mask: expected 0 <= p <= 1, got p=" + std::to_string(p));
  Array out = empty(shape, dtype);
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

Array randperm(int64_t n, DType dtype) {
  require_number("randperm", dtype);
  if (n < 0) throw std::invalid_argument("randperm: expected n >= 0, got " + std::to_string(n));
  if ((dtype == DType::Int32 && n - 1 > std::numeric_limits<int32_t>::max()) ||
      (dtype == DType::Float32 && n > (int64_t(1) << 24)) || (dtype == DType::Float64 && n > (int64_t(1) << 53)))
    throw std::invalid_argument("randperm: n=" + std::to_string(n) + " is too large for " + dtype_name(dtype) +
                                " (the indices would not be exact)");
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

// ---- in place ---------------------------------------------------------------------------

void uniform_(const Array& a, double lo, double hi) {
  require_cpu("uniform_", a);
  require_float("uniform_", a.dtype);
  if (!(lo <= hi))
    throw std::invalid_argument("uniform_: expected from <= to, got from=" + std::to_string(lo) +
                                ", to=" + std::to_string(hi));
  dispatch_float(a.dtype, "uniform_", [&](auto t) {
    using T = decltype(t);
    const T l = static_cast<T>(lo), w = static_cast<T>(hi - lo);
    fill_any_layout(a, [&](const Array& dst) {
      T* p = dst.data<T>();
      for_each_uniform<T>(dst.numel(), [p, l, w](int64_t i, T u) { p[i] = l + w * u; });
    });
  });
  a.bump_version();
}

void normal_(const Array& a, double mean, double std) {
  require_cpu("normal_", a);
  require_float("normal_", a.dtype);
  if (!(std >= 0.0)) throw std::invalid_argument("normal_: expected std >= 0, got " + std::to_string(std));
  dispatch_float(a.dtype, "normal_", [&](auto t) {
    using T = decltype(t);
    const T m = static_cast<T>(mean), s = static_cast<T>(std);
    fill_any_layout(a, [&](const Array& dst) {
      T* p = dst.data<T>();
      for_each_normal<T>(dst.numel(), [p, m, s](int64_t i, T z) { p[i] = m + s * z; });
    });
  });
  a.bump_version();
}

}  // namespace fg
