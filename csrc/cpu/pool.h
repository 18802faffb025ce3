// pool.h - pooling and upsampling over the last two dims of (N, C, H, W) or
// (C, H, W) arrays: max / average / adaptive pooling and nearest / bilinear
// upsampling, forward and backward.
//
// Semantics follow PyTorch (CPU): output sizes, window placement, which
// element max-pooling picks (the first maximum; a NaN wins, the last NaN in
// the window), the int64 indices (flat within each H*W input plane), the
// average divisors, and the source-index rules of upsampling. 1-d pooling
// and 'linear' upsampling are the 2-d kernels on (N, C, 1, L) views.
//
// Every kernel takes inputs of any strides (no compact copy is made) and
// returns a fresh contiguous array. Work is split over the N*C planes, which
// are independent, so results are bit-identical for any thread count; the
// backward kernels accumulate each plane serially in output order (no races).
#pragma once
#include <cstdint>
#include <utility>

#include "array.h"

namespace fg {

// ---- max pooling ---------------------------------------------------------------

// Max pooling with a (kh, kw) window.
// Args:
//   x: (N, C, H, W) or (C, H, W); float32/float64 (or int32/int64, no NaN rule)
//   stride (sh, sw) > 0, padding (ph, pw) with p <= k / 2, dilation (dh, dw) > 0
// Returns (out, indices), both of shape (N, C, OH, OW) (or (C, OH, OW)),
// indices int64 = ih * W + iw of the chosen element.
std::pair<Array, Array> max_pool2d(const Array& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                                   int64_t pw, int64_t dh, int64_t dw, bool ceil_mode);

// Adaptive max pooling to (oh, ow): row window i is [floor(i*H/oh), ceil((i+1)*H/oh)).
std::pair<Array, Array> adaptive_max_pool2d(const Array& x, int64_t oh, int64_t ow);

// Gradient of max pooling (either kind): grad_in[plane][indices[...]] += grad_out[...].
// Args:
//   grad_out, indices: same shape, (N, C, OH, OW) or (C, OH, OW)
//   input_shape: the forward input's shape (N, C, H, W) or (C, H, W)
Array max_pool2d_backward(const Array& grad_out, const Array& indices, const Shape& input_shape);

// The adjoint of max_pool2d_backward: out[plane][o] = x[plane][indices[o]],
// of indices' shape (the forward-mode tangent and double backward of max pooling).
Array max_pool2d_gather(const Array& x, const Array& indices);

// ---- average pooling ---------------------------------------------------------

// Average pooling; divisor_override 0 means none. x as for max_pool2d
// (integer inputs divide with truncation, as torch does).
Array avg_pool2d(const Array& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                 bool ceil_mode, bool count_include_pad, int64_t divisor_override);
// Its gradient (float only); grad_out has the forward output's shape.
Array avg_pool2d_backward(const Array& grad_out, const Shape& input_shape, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, bool ceil_mode, bool count_include_pad,
                          int64_t divisor_override);

// Adaptive average pooling to (oh, ow) (float only).
Array adaptive_avg_pool2d(const Array& x, int64_t oh, int64_t ow);
Array adaptive_avg_pool2d_backward(const Array& grad_out, const Shape& input_shape);

// ---- upsampling -----------------------------------------------------------------

// Nearest upsampling to (oh, ow). scale_h/scale_w: the user's scale factors
// (<= 0: none; then in/out is used), as torch passes them to its kernel.
// exact=false: src = min(floor(dst * s), in - 1) ('nearest');
// exact=true:  src = min(floor((dst + 0.5) * s), in - 1) ('nearest-exact'),
// with s = 1/scale or in/out, in float32 arithmetic as torch does.
Array upsample_nearest2d(const Array& x, int64_t oh, int64_t ow, double scale_h, double scale_w, bool exact);
Array upsample_nearest2d_backward(const Array& grad_out, const Shape& input_shape, double scale_h, double scale_w,
                                  bool exact);

// Bilinear upsampling (or downsampling) to (oh, ow), align_corners as torch.
Array upsample_bilinear2d(const Array& x, int64_t oh, int64_t ow, bool align_corners, double scale_h,
                          double scale_w);
Array upsample_bilinear2d_backward(const Array& grad_out, const Shape& input_shape, bool align_corners,
                                   double scale_h, double scale_w);

}  // namespace fg
