// reduce.h - the reduction family on the CPU: sums, extrema, boolean
// reductions, variance, logsumexp, vector norms, arg-extrema, cumulative
// scans, and softmax / log-softmax with their backward kernels.
//
// Conventions shared by every entry point:
//   - `dims` lists the dims to reduce; an EMPTY list means every dim (the
//     Python layer maps dim=None to {}). Negative dims wrap; a repeated dim is
//     a ValueError, an out-of-range dim an IndexError naming the op.
//   - keepdim keeps reduced dims with size 1, as in PyTorch.
//   - dtypes follow PyTorch: sum/prod of bool/int32 give int64, of floats the
//     same float; mean/var/logsumexp/norm/softmax need float input (TypeError).
//   - results are bit-identical for every thread count: work is split by
//     fixed, shape-determined blocks whose partials combine in a fixed order.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "array.h"

namespace fg {

// ---- order-free reductions over a set of dims ----------------------------------
Array sum(const Array& a, const std::vector<int64_t>& dims, bool keepdim, std::optional<DType> dtype);
Array mean(const Array& a, const std::vector<int64_t>& dims, bool keepdim);
Array prod(const Array& a, const std::vector<int64_t>& dims, bool keepdim);
Array amax(const Array& a, const std::vector<int64_t>& dims, bool keepdim);
Array amin(const Array& a, const std::vector<int64_t>& dims, bool keepdim);
Array all(const Array& a, const std::vector<int64_t>& dims, bool keepdim);
Array any(const Array& a, const std::vector<int64_t>& dims, bool keepdim);
// Divides the summed squared deviations by max(0, n - correction);
// correction = 1 is the unbiased estimator.
Array var(const Array& a, const std::vector<int64_t>& dims, double correction, bool keepdim);
Array logsumexp(const Array& a, const std::vector<int64_t>& dims, bool keepdim);
// torch.linalg.vector_norm: p = 2, 1, inf, -inf, 0 (count of non-zeros) or
// any other float (sum(|x|^p))^(1/p).
Array norm(const Array& a, double p, const std::vector<int64_t>& dims, bool keepdim);

// ---- reductions along one dim that care about order ---------------------------
// (values, int64 indices); the index is the first occurrence, NaN counts as
// the maximum (and the minimum), as in PyTorch.
std::pair<Array, Array> max_dim(const Array& a, int64_t dim, bool keepdim);
std::pair<Array, Array> min_dim(const Array& a, int64_t dim, bool keepdim);
// dim = nullopt: the index into the flattened array.
Array argmax(const Array& a, std::optional<int64_t> dim, bool keepdim);
Array argmin(const Array& a, std::optional<int64_t> dim, bool keepdim);

// ---- scans -------------------------------------------------------------------
Array cumsum(const Array& a, int64_t dim);
Array cumprod(const Array& a, int64_t dim);

// ---- softmax -----------------------------------------------------------------
Array softmax(const Array& a, int64_t dim);
Array log_softmax(const Array& a, int64_t dim);
// grad_in = out * (grad - sum(grad * out, dim)), with out = softmax(x).
Array softmax_backward(const Array& grad, const Array& out, int64_t dim);
// grad_in = grad - exp(out) * sum(grad, dim), with out = log_softmax(x).
Array log_softmax_backward(const Array& grad, const Array& out, int64_t dim);

}  // namespace fg
