// random.h - counter-based random numbers (Philox-4x32-10) and the global
// generator state.
//
// The generator is a pair (seed, offset). Philox is a keyed bijection of a
// 128-bit counter: block(seed, c) gives four independent 32-bit words for any
// counter c, in any order, on any thread. A call that needs B blocks takes
// the counters [offset, offset + B) and advances offset by B, so:
//   - element i of a call depends only on (seed, the call's base offset, i),
//     never on the thread count or on how the work was split;
//   - the state after a call is known without generating anything, and a
//     device backend that follows the same element mapping produces the
//     same stream.
//
// Element mapping (block q = Philox(key = seed, counter = base + q), words
// w0..w3; "u64" joins two words as lo | hi << 32):
//   rand   f32: element i = word i % 4 of block i / 4, u = (w >> 8) * 2^-24
//          f64: element i = u64 of words (2(i%2), 2(i%2)+1) of block i / 2,
//               u = (u64 >> 11) * 2^-53            (both in [0, 1))
//   randn  Box-Muller on pairs (u1, u2), u1 in (0, 1] (top bits + 1) and u2
//          in [0, 1): r = sqrt(-2 ln u1), elements r cos(2 pi u2), r sin(2 pi u2)
//          f32: block q gives elements 4q..4q+3 from (w0, w1) and (w2, w3)
//               (float polynomials for ln/cos/sin, within ~1 ulp of libm)
//          f64: block q gives elements 2q, 2q+1 from u64(w0, w1), u64(w2, w3)
//   randint, randperm: 64-bit draws as for rand f64, mapped to [0, n) by
//          (u64 * n) >> 64
//   bernoulli, dropout_mask: uniforms as for rand, compared with p
#pragma once
#include <cstdint>
#include <utility>

#include "array.h"

namespace fg {

// ---- the Philox-4x32-10 bijection (shared by every device) -------------------

struct PhiloxBlock {
  uint32_t w[4];
};

// Random123's philox4x32-10 with counter (lo32(ctr), hi32(ctr), 0, 0) and
// key (lo32(seed), hi32(seed)).
inline PhiloxBlock philox4x32_10(uint64_t seed, uint64_t ctr) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
  uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t(kM0) * c0, p1 = uint64_t(kM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kW0;
    k1 += kW1;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// ---- the global generator ------------------------------------------------------------

// Resets the stream: seed = seed, offset = 0.
void manual_seed(uint64_t seed);
// (seed, offset): offset counts the Philox blocks used since the seed.
std::pair<uint64_t, uint64_t> get_rng_state();
void set_rng_state(uint64_t seed, uint64_t offset);

// ---- sampling into new arrays (CPU, contiguous) -----------------------------------------

// Uniform on [0, 1). dtype: float32 or float64 (else TypeError).
Array rand(const Shape& shape, DType dtype);
// Standard normal.
Array randn(const Shape& shape, DType dtype);
// Normal with the given mean and standard deviation (std >= 0).
Array normal(double mean, double std, const Shape& shape, DType dtype);
// Integers uniform on [low, high) (low < high). dtype: any but bool.
Array randint(int64_t low, int64_t high, const Shape& shape, DType dtype);
// out[i] = 1 with probability p[i] (0 <= p <= 1), else 0; p's shape and dtype.
Array bernoulli(const Array& p);
// Inverted-dropout mask: 1 / (1 - p) with probability 1 - p, else 0
// (0 <= p <= 1; p == 1 gives all zeros). Multiply by it to apply dropout.
Array dropout_mask(const Shape& shape, double p, DType dtype);
// A uniformly random permutation of 0..n-1 (Fisher-Yates). dtype: any but bool.
Array randperm(int64_t n, DType dtype);

// ---- in-place sampling (any strides; bumps the array's version) ------------------------

// a = uniform on [lo, hi) (lo <= hi).
void uniform_(const Array& a, double lo, double hi);
// a = normal(mean, std) (std >= 0).
void normal_(const Array& a, double mean, double std);

}  // namespace fg
