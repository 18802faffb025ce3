// cuda/norm.h - fused layer norm and batch norm on CUDA devices, forward and
// backward, with the contract of csrc/cpu/norm.h: the same saved mean / rstd
// (rstd = 1 / sqrt(biased var + eps)), the same returned batch variance, the
// same (dx, dweight, dbias) with empty 0-element dweight / dbias unless
// asked for. norm.cpp checks every argument for both devices, then calls
// these for CUDA arrays: inputs contiguous, of one float dtype.
//
// Sums run in double as on the CPU. Every reduction has a fixed shape that
// depends only on the sizes (warp-shuffle trees, per-chunk partial sums added
// in chunk order, no atomics), so results are bit-identical run to run.
// Group norm needs no kernel of its own: the Python layer runs it as a
// layer norm over each (sample, group).
#pragma once
#include <cstdint>
#include <optional>
#include <tuple>

#include "array.h"

namespace fg {
namespace cuda {

// x viewed as (rows, m); weight, bias: m elements or none.
// Returns (y, mean (rows,), rstd (rows,)).
std::tuple<Array, Array, Array> layer_norm_forward(const Array& x, int64_t m, const std::optional<Array>& weight,
                                                   const std::optional<Array>& bias, double eps);
// Returns (dx, dweight, dbias).
std::tuple<Array, Array, Array> layer_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool want_dw, bool want_db);

// x is (N, C, *), statistics per channel. Returns (y, mean, rstd, var), var
// the biased batch variance (training) or running_var (eval).
std::tuple<Array, Array, Array, Array> batch_norm_forward(const Array& x, const std::optional<Array>& weight,
                                                          const std::optional<Array>& bias,
                                                          const std::optional<Array>& running_mean,
                                                          const std::optional<Array>& running_var, bool training,
                                                          double eps);
// Returns (dx, dweight, dbias); training selects the batch-statistics gradient.
std::tuple<Array, Array, Array> batch_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool training, bool want_dw, bool want_db);

}  // namespace cuda
}  // namespace fg
