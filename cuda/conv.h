// cuda/conv.h - convolution on CUDA devices: the forward pass, the input
// gradient (= conv_transpose's forward) and the weight gradient, lowered to
// im2col + cuda::matmul (gemm.h); depthwise ones (one input channel per
// group) by direct kernels. csrc/cpu/conv.cpp checks every argument,
// sizes the output and then calls these with the geometry it computed, so
// both devices give the same errors; the arrays are always 4-D here (1-D
// convolutions arrive as (N, C, 1, L) views).
//
// Deterministic: every output element is written by one thread or summed by
// the GEMM in a fixed order; the input gradient gathers (one thread per
// input element, taps in a fixed order) and the weight gradient sums fixed
// splits of the images in a fixed order. No atomics.
#pragma once
#include <cstdint>
#include <optional>

#include "array.h"

namespace fg {
namespace cuda {

// The convolution's sizes as conv.cpp's Geom holds them (2-D view):
// input (N, C, H, W), weight (O, C / groups, kh, kw), output (N, O, OH, OW),
// stride (sh, sw), leading padding (pt, pl), dilation (dh, dw).
struct ConvGeom {
  int64_t N, C, H, W;
  int64_t O, kh, kw;
  int64_t OH, OW;
  int64_t sh, sw, pt, pl, dh, dw;
  int64_t groups;
};

// From conv.cpp's geometry struct (any type with these fields).
template <class G>
ConvGeom conv_geom(const G& g) {
  return ConvGeom{g.N, g.C, g.H, g.W, g.O, g.kh, g.kw, g.OH, g.OW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, g.groups};
}

// y (fresh, contiguous, (N, O, OH, OW)) = conv(x, w) + bias. x, w: any strides.
void conv_forward(const ConvGeom& g, const Array& x, const Array& w, const std::optional<Array>& bias,
                  const Array& y, const char* op);

// dx (fresh, contiguous, (N, C, H, W)) = conv's adjoint in x applied to gout
// ((N, O, OH, OW), OH / OW possibly smaller than the forward's) + bias per channel.
void conv_input_grad(const ConvGeom& g, const Array& gout, const Array& w, const std::optional<Array>& bias,
                     const Array& dx, const char* op);

// dw (fresh, contiguous, (O, C / groups, kh, kw)) = conv's adjoint in w applied to gout.
void conv_weight_grad(const ConvGeom& g, const Array& gout, const Array& x, const Array& dw, const char* op);

}  // namespace cuda
}  // namespace fg
