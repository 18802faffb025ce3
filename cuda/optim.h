// cuda/optim.h - fused optimizer updates on CUDA devices: one kernel launch
// per parameter group (and dtype), running the per-element math of
// csrc/cpu/optim_math.h, so the updates round exactly as the CPU's FMA build
// (and torch) do. csrc/cpu/optim.cpp checks the lists and computes the
// constants, then calls these for CUDA params.
#pragma once
#include <vector>

#include "array.h"
#include "cpu/optim_math.h"

namespace fg {
namespace cuda {

using optim_detail::AdagradConsts;
using optim_detail::AdamConsts;
using optim_detail::RmspropConsts;
using optim_detail::SgdConsts;

void sgd_step(const SgdConsts<float>& cf, const SgdConsts<double>& cd, const std::vector<Array>& params,
              const std::vector<Array>& grads, const std::vector<Array>& bufs, bool has_momentum, bool first_step);
void adam_step(const AdamConsts<float>& cf, const AdamConsts<double>& cd, const std::vector<Array>& params,
               const std::vector<Array>& grads, const std::vector<Array>& exp_avgs,
               const std::vector<Array>& exp_avg_sqs, const std::vector<Array>& max_exp_avg_sqs, bool amsgrad);
void adagrad_step(const AdagradConsts<float>& cf, const AdagradConsts<double>& cd, const std::vector<Array>& params,
                  const std::vector<Array>& grads, const std::vector<Array>& sums);
void rmsprop_step(const RmspropConsts<float>& cf, const RmspropConsts<double>& cd, const std::vector<Array>& params,
                  const std::vector<Array>& grads, const std::vector<Array>& square_avgs,
                  const std::vector<Array>& bufs, const std::vector<Array>& grad_avgs, bool centered,
                  bool has_momentum);

}  // namespace cuda
}  // namespace fg
