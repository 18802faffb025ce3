// cuda/pool.h - pooling and upsampling on CUDA devices, forward and
// backward, with the semantics of csrc/cpu/pool.h (window placement, the
// first maximum / last NaN rule, flat int64 indices, divisors, torch's
// source-index rules). pool.cpp checks every argument and computes the
// output size for both devices, then calls these: inputs are 3-D or 4-D
// with any strides, outputs fresh and contiguous.
//
// Forward kernels run one thread per output element. Backward kernels are
// gathers, one thread per input element summing its contributions in output
// order (the CPU's order), so results are deterministic with no atomics.
// Max pooling's backward has no window geometry (adaptive pooling shares it):
// it first bounds, from the saved indices, which outputs can point at each
// input row and column, then gathers over those.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "array.h"
#include "device.h"

namespace fg {
namespace cuda {

// pool.cpp's entry points run one body for both devices: checks first, then
// a branch to these kernels for CUDA arrays. Without CUDA, a CUDA array
// raises here as on_device does.
template <class Fn>
decltype(auto) on_any_device(const char* op, const Device& d, Fn&& body) {
  return on_device(op, d, body, body);
}

// (oh, ow) from pool.cpp's checks; window (k, s, p, d) as torch's max_pool2d.
std::pair<Array, Array> max_pool2d(const Array& x, int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh,
                                   int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw);
std::pair<Array, Array> adaptive_max_pool2d(const Array& x, int64_t oh, int64_t ow);
// input_shape checked against grad_out / indices by pool.cpp.
Array max_pool2d_backward(const Array& grad_out, const Array& indices, const Shape& input_shape);
Array max_pool2d_gather(const Array& x, const Array& indices);

Array avg_pool2d(const Array& x, int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                 int64_t pw, bool count_include_pad, int64_t divisor_override);
Array avg_pool2d_backward(const Array& grad_out, const Shape& input_shape, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, bool count_include_pad, int64_t divisor_override);
Array adaptive_avg_pool2d(const Array& x, int64_t oh, int64_t ow);
Array adaptive_avg_pool2d_backward(const Array& grad_out, const Shape& input_shape);

// th / tw: the source row / column of each output row / column (pool.cpp's
// nearest_table, so both devices round alike).
Array upsample_nearest2d(const Array& x, const std::vector<int64_t>& th, const std::vector<int64_t>& tw);
Array upsample_nearest2d_backward(const Array& grad_out, const Shape& input_shape, const std::vector<int64_t>& th,
                                  const std::vector<int64_t>& tw);
Array upsample_bilinear2d(const Array& x, int64_t oh, int64_t ow, bool align_corners, double scale_h,
                          double scale_w);
Array upsample_bilinear2d_backward(const Array& grad_out, const Shape& input_shape, bool align_corners,
                                   double scale_h, double scale_w);

}  // namespace cuda
}  // namespace fg
