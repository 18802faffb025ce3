// norm.h - fused layer norm and batch norm, forward and backward.
//
// One kernel per direction instead of the chain of reductions and
// elementwise ops that the composite formula records: the forward makes the
// statistics (two passes over each row / channel, summed in double, so
// float32 results match torch within ~1e-6 relative) and the normalised,
// scaled output; the backward makes dx, dweight and dbias in two passes.
// Inputs must be contiguous float32 / float64 CPU arrays (the Python layer
// calls .contiguous() first); weight, bias and the running statistics have
// the input's dtype. Results are bit-identical for any thread count.
#pragma once
#include <cstdint>
#include <optional>
#include <tuple>

#include "array.h"

namespace fg {

// Layer norm over the trailing `m` elements: x is viewed as (rows, m).
// Args: x: any shape with numel % m == 0; weight, bias: m elements or none.
// Returns (y of x's shape, mean (rows,), rstd (rows,)), rstd = 1/sqrt(var + eps),
// var the biased variance.
std::tuple<Array, Array, Array> layer_norm_forward(const Array& x, int64_t m, const std::optional<Array>& weight,
                                                   const std::optional<Array>& bias, double eps);
// Args: dy, x: (rows, m) as in the forward; mean, rstd from the forward.
// Returns (dx, dweight, dbias); dweight / dbias are empty 0-element arrays
// unless want_dw / want_db.
std::tuple<Array, Array, Array> layer_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool want_dw, bool want_db);

// Batch norm over dims (0, 2, 3, ...) of x (N, C, *): per channel c.
// training: statistics of the batch; else running_mean / running_var.
// Returns (y, mean (C,), rstd (C,), var (C,)) with var the biased batch
// variance (training) or running_var (eval): the caller updates the running
// statistics from mean / var.
std::tuple<Array, Array, Array, Array> batch_norm_forward(const Array& x, const std::optional<Array>& weight,
                                                          const std::optional<Array>& bias,
                                                          const std::optional<Array>& running_mean,
                                                          const std::optional<Array>& running_var, bool training,
                                                          double eps);
// Returns (dx, dweight, dbias) as layer_norm_backward; training selects the
// batch-statistics gradient (through mean and var) or the eval one.
std::tuple<Array, Array, Array> batch_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool training, bool want_dw, bool want_db);

}  // namespace fg
