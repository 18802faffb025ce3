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
// read x in place. Stride-1 float32 convolutions on AVX-512 CPUs take a direct
// path instead where it measured faster (small maps: see conv_detail below).
// Results are bit-identical for any thread count. Inputs may be strided views
// (read in place where the GEMM can).
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

// ---- internals shared by conv.cpp and conv_avx512.cpp -----------------------
// The direct path for stride-1 convolutions (float, AVX-512): the input is
// copied once into kw "row-shifted" images per channel,
//   xs[((j * Cg + c) * Hp + y) * OW + ox] = x[c, y - pt, ox + j * dw - pl]  (0 outside x),
// Hp = OH + (kh - 1) * dh rows, so that tap k = (c, i, j) meets output
// position p = oy * OW + ox at xs[koff[k] + p], koff[k] = ((j * Cg + c) * Hp +
// i * dh) * OW: each tap's column-matrix row is one contiguous run, read in
// place by the kernels (no im2col, no packing of the positions).
namespace conv_detail {

constexpr int kDirectMr = 8;                  // output channels per direct tile (x 3 vectors of 16 positions)
constexpr int kWgradMo = 4, kWgradMt = 6;     // weight-gradient tile: output channels x taps
constexpr int kWgradBt = 12, kWgradBv = 2;    // broadcast weight-gradient tile: taps x vectors of 16 channels

// C_v[r * ldc + q] = bias[r] (0 without bias) + sum_k Ap[k * kDirectMr + r] *
// B_v[koff[k] + q] for r < m, q < 16 where bit q of masks[v] is set, v < nv
// (1..3). Ap is (K, kDirectMr) with zero rows past m; bias (if any) holds
// kDirectMr values. Reads B_v only at set mask bits.
void direct_tile_avx512_f32(int64_t K, const float* Ap, const int64_t* koff, int nv, const float* const* B,
                            float* const* C, const uint16_t* masks, int64_t ldc, int m, const float* bias);

// xs (kw, Ci, Hp, OW) of one image and group from x[c, y, q] = x[c * sC + y *
// sH + q] (unit column stride), with conv.h's layout above.
void shift_rows_avx512_f32(const float* x, int64_t sC, int64_t sH, int64_t Ci, int64_t Hi, int64_t Wi, int64_t OW,
                           int64_t Hp, int64_t kw, int64_t dw, int64_t pt, int64_t pl, float* xs);

// dw[o * ldw + t] (= or +=) sum_{n < nimg, p < P} G[o][n * gsn + p] *
// xs[n * xsn + koff[t] + p] for o < mo, t < mt; G holds kWgradMo row
// pointers and koff kWgradMt offsets, all valid (pad with copies).
void wgrad_tile_avx512_f32(int64_t nimg, int64_t P, const float* const* G, int64_t gsn, const float* xs,
                           int64_t xsn, const int64_t* koff, float* dw, int64_t ldw, int mo, int mt,
                           bool accumulate);

// dw[o * ldw + t] (= or +=) sum_{n < nimg, p < P} gt[n * gtn + p * ldo + o] *
// xs[n * xsn + koff[t] + p] for t < mt <= kWgradBt, o < mo <= 16 * kWgradBv;
// koff holds kWgradBt valid offsets, gt rows 16 * kWgradBv readable values.
void wgrad_bcast_avx512_f32(int64_t nimg, int64_t P, const float* gt, int64_t gtn, int64_t ldo, const float* xs,
                            int64_t xsn, const int64_t* koff, float* dw, int64_t ldw, int mt, int mo,
                            bool accumulate);

}  // namespace conv_detail

}  // namespace fg
