// index.h - indexing and joining: cat/stack/pad/repeat/tril/triu, gather and
// scatter, index_select/index_add, masks, one_hot, and the advanced-indexing
// kernels behind `t[idx]` and `t[idx] = v`.
//
// Semantics follow PyTorch (CPU) unless a line below says otherwise. Every op
// accepts non-contiguous inputs (any strides, including 0 and negative) and
// zero-size arrays, and returns a fresh contiguous array except index_put,
// which writes into its argument. Index values are checked before they are
// used for an address: a bad one raises IndexError naming the op and the
// value, never an out-of-bounds access. Accumulating ops (scatter_add,
// index_add, index_put with accumulate) sum duplicates in index order, so the
// result is bit-identical for any thread count.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "array.h"

namespace fg {

// ---- joining and shaping ------------------------------------------------------

// Concatenates along `dim`; dtypes promote like torch.result_type. All inputs
// have the same ndim and equal shapes except in `dim`; 1-d empty arrays
// (shape [0]) are skipped, as torch's legacy rule allows.
Array cat(const std::vector<Array>& xs, int64_t dim);
// Joins equal-shaped arrays along a new dim (dim in [-ndim-1, ndim]).
Array stack(const std::vector<Array>& xs, int64_t dim);
// Constant padding, F.pad convention: pads = (left_last, right_last,
// left_second_last, ...); negative pads crop.
Array pad(const Array& a, const std::vector<int64_t>& pads, double value);
// torch.Tensor.repeat: len(repeats) >= ndim; missing leading dims are 1.
Array repeat(const Array& a, const std::vector<int64_t>& repeats);
// Lower / upper triangle of the last two dims (batched); k shifts the diagonal.
Array tril(const Array& a, int64_t k);
Array triu(const Array& a, int64_t k);

// ---- gather / scatter ------------------------------------------------------------

// out[i][j][k] = a[index[i][j][k]][j][k] (dim 0); out has index's shape.
// index is int64, same ndim as a, no larger than a outside `dim`.
Array gather(const Array& a, int64_t dim, const Array& index);
// A copy of a with out[index[i][j][k]][j][k] += src[i][j][k] (dim 0).
Array scatter_add(const Array& a, int64_t dim, const Array& index, const Array& src);
// a's slices at the (0-d or 1-d, int32/int64, non-negative) index along dim.
Array index_select(const Array& a, int64_t dim, const Array& index);
// A copy of a with out.select(dim, index[k]) += src.select(dim, k).
Array index_add(const Array& a, int64_t dim, const Array& index, const Array& src);

// ---- masks -------------------------------------------------------------------------

// a where mask is false, value where it is true; a and the bool mask broadcast.
Array masked_fill(const Array& a, const Array& mask, double value);
// The elements of a (broadcast with the bool mask) where mask is true, 1-d.
Array masked_select(const Array& a, const Array& mask);
// Coordinates of the non-zero elements of a, int64 of shape (n, ndim), in
// row-major order.
Array nonzero(const Array& a);
// int64 one-hot of the int64 index: shape index.shape + (num_classes,);
// num_classes = -1 uses max(index) + 1.
Array one_hot(const Array& index, int64_t num_classes);

// ---- advanced indexing -----------------------------------------------------------

// a[indices]: indices[d] indexes dim d of a (nullopt = the whole dim; dims
// past the list are whole). Index arrays are int64/int32 (or a 1-d bool mask
// of the dim's size) and broadcast together; negative values wrap. NumPy
// placement: adjacent indexed dims are replaced in place by the broadcast
// index shape, otherwise the broadcast dims come first.
Array index_gather(const Array& a, const std::vector<std::optional<Array>>& indices);
// a[indices] = values (values broadcast to the shape index_gather would
// return, cast to a's dtype), in place. accumulate=true adds instead, summing
// duplicates in index order; without it the last duplicate wins.
void index_put(const Array& a, const std::vector<std::optional<Array>>& indices, const Array& values,
               bool accumulate);

}  // namespace fg
