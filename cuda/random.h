// cuda/random.h - Philox sampling kernels for CUDA arrays (random.cu).
//
// The generator state stays the one global (seed, offset) of cpu/random.h:
// the caller (cpu/random.cpp) reserves the call's counter blocks exactly as
// the CPU kernel would and passes (seed, base) here, and the kernels use the
// element mapping documented in cpu/random.h with the same arithmetic
// (rng:: functions shared with the CPU), so a CUDA draw gives the bits the
// CPU draw would and leaves the same generator state. Plain C++ declarations:
// callable from any .cpp; every array is contiguous, on one CUDA device.
#pragma once
#include <cstdint>

#include "array.h"

namespace fg {
namespace cuda {

// out (float32/float64) = u, or lo + w * u when `affine` (lo, w already
// rounded to out's dtype), u ~ U[0, 1): ceil(n / 4) blocks (float32) or
// ceil(n / 2) (float64).
void philox_uniform(const Array& out, uint64_t seed, uint64_t base, bool affine, double lo, double w);
// out = z, or mean + std * z when `affine`, z ~ N(0, 1) by Box-Muller:
// ceil(n / 4) blocks (float32) or ceil(n / 2) (float64).
void philox_normal(const Array& out, uint64_t seed, uint64_t base, bool affine, double mean, double std);
// out (any dtype but bool) = low + below(u64, range): ceil(n / 2) blocks.
void philox_randint(const Array& out, uint64_t seed, uint64_t base, int64_t low, uint64_t range);
// True when every p (float32/float64) is in [0, 1] (one host sync).
bool probabilities_ok(const Array& p);
// out = (u < p) for p of out's shape and dtype: blocks as philox_uniform.
void philox_bernoulli(const Array& out, const Array& p, uint64_t seed, uint64_t base);
// out = keep * (u >= p) (p, keep already rounded to out's dtype): blocks as
// philox_uniform.
void philox_dropout(const Array& out, uint64_t seed, uint64_t base, double p, double keep);

// multinomial on w (contiguous float32/float64, R rows of C): true when every
// weight is finite and >= 0 and each row has at least `need` positive ones
// (one host sync).
bool multinomial_ok(const Array& w, int64_t R, int64_t C, int64_t need);
// out (int64, R x S, contiguous) from checked weights, mapping of
// cpu/random.h: ceil(R S / 2) blocks with replacement, ceil(R C / 2) without.
void philox_multinomial(const Array& out, const Array& w, int64_t R, int64_t C, int64_t S, bool replacement,
                        uint64_t seed, uint64_t base);

}  // namespace cuda
}  // namespace fg
