// rnn.h - one layer and direction of an RNN (tanh/relu), LSTM or GRU over a
// whole sequence, forward and backward through time, in one call each.
//
// The caller (python/fastgrad/nn/modules/rnn.py) has already computed the
// input projection of every step with one matmul (the biases are added here,
// in the cell math, saving a pass over (T, B, G*H)), so each step is one
// GEMM (h @ W_hh^T, or dgates @ W_hh going back) plus the cell's pointwise
// math (rnn_math.h); the weight gradient is one GEMM over all T*B rows at the
// end. Running the time loop natively removes the per-step Python overhead
// that dominates at the sizes RNNs are trained at.
#pragma once
#include <optional>
#include <tuple>
#include <utility>

#include "array.h"

namespace fg {

// Mode ids (python rnn.py _MODE_ID).
enum class RnnMode : int { Tanh = 0, Relu = 1, Lstm = 2, Gru = 3 };

// Forward over the sequence.
//
// Args:
//   mode     RnnMode as int
//   xp       (T, B, G*H) input projection x W_ih^T (no bias), G = 1/4/3 gates
//            (RNN/LSTM/GRU); any strides on T and B
//   h0       (B, H) initial hidden state
//   c0       (B, H) initial cell state (LSTM only, else None)
//   w_hh     (G*H, H) recurrent weight
//   b_ih, b_hh  (G*H,) biases, both or None
//   reverse  run from t = T-1 down to 0 (the backward direction)
//   keep     also return the workspace rnn_backward needs
// Returns (out, ws): out is flat [y (T, B, H) | h_n (B, H) | c_n (B, H)]
// (c_n for LSTM only); ws is an opaque (T, B, K) array or None.
std::pair<Array, std::optional<Array>> rnn_forward(int mode, const Array& xp, const Array& h0,
                                                   const std::optional<Array>& c0, const Array& w_hh,
                                                   const std::optional<Array>& b_ih,
                                                   const std::optional<Array>& b_hh, bool reverse, bool keep);

// (dxp (T, B, G*H) contiguous, dh0, dc0 or None, dw_hh, db_ih or None, db_hh or None)
using RnnGrads = std::tuple<Array, Array, std::optional<Array>, Array, std::optional<Array>, std::optional<Array>>;

// Backward through time.
//
// Args:
//   ws       the workspace of rnn_forward(keep=true)
//   grad     gradient of `out` (same flat layout)
//   h0, c0, w_hh, reverse   as given to rnn_forward
//   bias     whether rnn_forward had biases (then their gradients are returned)
RnnGrads rnn_backward(int mode, const Array& ws, const Array& grad, const Array& h0, const std::optional<Array>& c0,
                      const Array& w_hh, bool bias, bool reverse);

}  // namespace fg
