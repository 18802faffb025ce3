// optim.h - fused optimizer updates on the CPU: torch.optim's SGD,
// Adam / AdamW, Adagrad and RMSprop, one native call per parameter group.
//
// Every entry point takes LISTS of arrays: params[i] is updated in place from
// grads[i] and its optimizer state (one state array per param and per state
// kind, same shape and dtype as the param). One call covers all elements of
// all params: the elements of the list are seen as one long vector, split
// into chunks with parallel_for, and each element of each array is read once
// and written once. Updates are elementwise, so results do not depend on the
// thread count.
//
// The arithmetic mirrors torch.optim's default CPU path (the single-tensor
// for-loop) op for op, with the scalars cast to the param's dtype and bias
// corrections computed in double on the host, so trajectories equal torch's
// to float32 rounding (bit for bit for SGD on FMA hardware; see optim_math.h).
//
// Common contract:
//   - params: float32 or float64, CPU, contiguous (ValueError naming the op
//     otherwise) and distinct (the same array twice would race);
//   - grads and state arrays: same shape (ValueError), dtype (TypeError) and
//     device as their param, contiguous;
//   - state lists that an option does not use may be empty; a list that is
//     used must hold one array per param (ValueError);
//   - every param and every state array written gets its version bumped.
// Hyper-parameters are validated in Python (torch's messages); the kernels
// only check what would make them read or write out of bounds.
#pragma once
#include <cstdint>
#include <vector>

#include "array.h"

namespace fg {

// torch.optim.SGD. With momentum != 0, momentum_bufs holds one buffer per
// param; first_step=true initialises it to the (weight-decayed) gradient, as
// torch does when the buffer does not exist yet (no dampening on that step);
// the buffer's old contents are then not read.
//
// Args:
//   params, grads, momentum_bufs: lists of N arrays, shapes matching pairwise
//   lr, momentum, dampening, weight_decay: torch's hyper-parameters
//   nesterov, maximize: torch's flags
//   first_step: buffers are fresh (written, not read)
void sgd_step(const std::vector<Array>& params, const std::vector<Array>& grads,
              const std::vector<Array>& momentum_bufs, double lr, double momentum, double dampening,
              double weight_decay, bool nesterov, bool maximize, bool first_step);

// torch.optim.Adam (decoupled=false: L2 weight decay added to the gradient)
// and torch.optim.AdamW (decoupled=true: p *= 1 - lr * weight_decay).
//
// Args:
//   params, grads, exp_avgs, exp_avg_sqs: lists of N arrays
//   max_exp_avg_sqs: N arrays when amsgrad, else empty
//   step: the step count INCLUDING this update (1 on the first call), used
//         for the bias corrections 1 - beta^step
void adam_step(const std::vector<Array>& params, const std::vector<Array>& grads,
               const std::vector<Array>& exp_avgs, const std::vector<Array>& exp_avg_sqs,
               const std::vector<Array>& max_exp_avg_sqs, int64_t step, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled);

// torch.optim.Adagrad (dense gradients).
//
// Args:
//   params, grads, state_sums: lists of N arrays
//   step: the step count including this update; the learning rate is
//         lr / (1 + (step - 1) * lr_decay)
void adagrad_step(const std::vector<Array>& params, const std::vector<Array>& grads,
                  const std::vector<Array>& state_sums, int64_t step, double lr, double lr_decay,
                  double weight_decay, double eps, bool maximize);

// torch.optim.RMSprop.
//
// Args:
//   params, grads, square_avgs: lists of N arrays
//   momentum_bufs: N arrays when momentum > 0, else empty
//   grad_avgs: N arrays when centered, else empty
void rmsprop_step(const std::vector<Array>& params, const std::vector<Array>& grads,
                  const std::vector<Array>& square_avgs, const std::vector<Array>& momentum_bufs,
                  const std::vector<Array>& grad_avgs, double lr, double alpha, double eps, double weight_decay,
                  double momentum, bool centered, bool maximize);

}  // namespace fg
