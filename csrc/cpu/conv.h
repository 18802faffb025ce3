// conv.h - convolution on the CPU (1-D and 2-D, float32 and float64): the
// forward pass and the two backward pieces, each an op of its own so that the
// Python layer can write every derivative rule with them (double backward).
//
// Shapes (2-D; 1-D drops the H / kh / OH dims):
//   x  (N, C, H, W)             input
//   w  (O, C / groups, kh, kw)  weight
//   b  (O,)                     bias
//   y  (N, O, OH, OW)           output, OH = (H + pad_top + pad_bottom - dh * (kh - 1) - 1) / sh + 1
//
// Parameters, for d spatial dims: stride and dilation hold d values (>= 1),
// padding 2 * d values (>= 0), begin and end per dim ({top, bottom, left,
// right} in 2-D), so that 'same' with an even kernel (asymmetric) fits.
//
// conv_input_grad is the adjoint of conv_forward in x: it is also the forward
// pass of conv_transpose (x of conv_transpose = y here, w the same tensor).
// conv_weight_grad is the adjoint in w. Both take the output size from g and
// need the input / kernel size it came from.
//
// Implementation: im2col + the packed GEMM (gemm.h), by blocks of output rows
// whose column matrix stays in L2 (the forward packs the GEMM's panels from x
// directly); 1x1 convolutions with stride 1 and no padding skip im2col and
// read x in place. Results are bit-identical for any thread count. Inputs may
// be strided views (read in place where the GEMM can).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "array.h"

namespace fg {

// y = conv(x, w) + b.
//
// Args:
//   x        (N, C, [H,] W), float32 or float64, any strides
//   w        (O, C / groups, [kh,] kw), same dtype
//   bias     (O,) or none
//   stride, padding, dilation, groups   as above
//   op       the name errors carry ("conv2d", "conv1d", ...)
// Returns a fresh contiguous (N, O, [OH,] OW) array.
Array conv_forward(const Array& x, const Array& w, const std::optional<Array>& bias,
                   const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                   const std::vector<int64_t>& dilation, int64_t groups, const std::string& op = "conv2d");

// dx = conv_forward's adjoint in x applied to g (+ bias per channel of dx):
// the gradient of conv wrt its input, and conv_transpose's forward pass.
//
// Args:
//   g           (N, O, [OH,] OW), the output-side tensor
//   w           (O, C / groups, [kh,] kw)
//   bias        (C,) or none (conv_transpose's bias)
//   input_size  the spatial size of dx ([H,] W); each spatial size of g may
//               be at most what conv_forward would give for it
// Returns a fresh contiguous (N, C, [H,] W) array.
Array conv_input_grad(const Array& g, const Array& w, const std::optional<Array>& bias,
                      const std::vector<int64_t>& input_size, const std::vector<int64_t>& stride,
                      const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups,
                      const std::string& op = "conv2d_backward_input");

// dw = conv_forward's adjoint in w applied to g: sum over the batch and the
// output positions of g times the matching input patch of x.
//
// Args:
//   g            (N, O, [OH,] OW)
//   x            (N, C, [H,] W)
//   kernel_size  ([kh,] kw)
// Returns a fresh contiguous (O, C / groups, [kh,] kw) array.
Array conv_weight_grad(const Array& g, const Array& x, const std::vector<int64_t>& kernel_size,
                       const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                       const std::vector<int64_t>& dilation, int64_t groups,
                       const std::string& op = "conv2d_backward_weight");

}  // namespace fg
