// optim.cpp - the front end of the fused optimizers (see optim.h): argument
// checks, host-side scalars (bias corrections in double), the split of a
// whole param group into parallel chunks, and the choice between the
// baseline and the AVX2 + FMA build of the span loops (optim_math.h).
//
// This file also holds the baseline build of the loops: optim_math.h is
// included with FG_OPTIM_ISA=scalar below.
#include "cpu/optim.h"

#define FG_OPTIM_ISA scalar
#include "cpu/optim_math.h"
#undef FG_OPTIM_ISA

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "cpu/gemm.h"
#include "cuda/optim.h"
#include "device.h"
#include "errors.h"
#include "parallel.h"

namespace fg {
namespace {

using namespace optim_detail;

// Elements per parallel_for chunk. The update is memory-bound (Adam moves 28
// bytes per float element); 32K elements keep each chunk's fixed cost (the
// pool hand-off, the binary search for its first param) well under 1%.
constexpr int64_t kOptimGrain = int64_t{1} << 15;

// ---------------------------------------------------------------------------
// Which build of the span loops runs.
// ---------------------------------------------------------------------------

enum class Isa { Scalar, Avx2 };

Isa hardware_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Scalar;
}

// The AVX2 + FMA build whenever the CPU has it, unless the process forced the
// baseline with FASTGRAD_CPU_CAPABILITY=scalar or _C.set_cpu_capability
// ("scalar"): that setting is owned by gemm.cpp and reported by gemm_info().
// (An AVX-512 build measured no consistent gain: the update is bound by
// memory or cache bandwidth, not by the width of its arithmetic.)
Isa current_isa() {
  static const Isa hw = hardware_isa();
  return gemm_info() == "scalar" ? Isa::Scalar : hw;
}

// The span loop of each optimizer variant in the chosen build.
template <class T, bool kMomentum, bool kFirstStep>
auto sgd_kernel(Isa isa) {
  return isa == Isa::Avx2 ? &avx2::sgd_span<T, kMomentum, kFirstStep> : &scalar::sgd_span<T, kMomentum, kFirstStep>;
}

template <class T, bool kAmsgrad>
auto adam_kernel(Isa isa) {
  return isa == Isa::Avx2 ? &avx2::adam_span<T, kAmsgrad> : &scalar::adam_span<T, kAmsgrad>;
}

template <class T>
auto adagrad_kernel(Isa isa) {
  return isa == Isa::Avx2 ? &avx2::adagrad_span<T> : &scalar::adagrad_span<T>;
}

template <class T, bool kCentered, bool kMomentum>
auto rmsprop_kernel(Isa isa) {
  return isa == Isa::Avx2 ? &avx2::rmsprop_span<T, kCentered, kMomentum>
                          : &scalar::rmsprop_span<T, kCentered, kMomentum>;
}

// ---------------------------------------------------------------------------
// Argument checks. Messages name the op, the list and the index.
// ---------------------------------------------------------------------------

std::string strides_str(const Strides& s) { return shape_str(Shape(s.begin(), s.end())); }

void check_contiguous(const char* op, const char* what, size_t i, const Array& a) {
  // An empty array has nothing to read or write, whatever its strides say.
  if (a.numel() > 0 && !a.is_contiguous())
    throw std::invalid_argument(std::string(op) + ": " + what + " " + std::to_string(i) +
                                " is not contiguous (shape " + shape_str(a.shape) + ", strides " +
                                strides_str(a.strides) + "); the fused update needs contiguous arrays");
}

void check_params(const char* op, const std::vector<Array>& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    const Array& p = params[i];
    on_device(op, p.device(), [] {}, [] {});  // raises for devices without a backend
    if (!is_floating(p.dtype))
      throw TypeError(std::string(op) + ": param " + std::to_string(i) + " has dtype " + dtype_name(p.dtype) +
                      "; optimizers update float32 or float64 params");
    check_contiguous(op, "param", i, p);
  }
  // Params are written in parallel chunks: two that share memory would race.
  std::vector<std::pair<const char*, size_t>> starts;
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].numel() > 0) starts.emplace_back(params[i].raw(), i);
  std::sort(starts.begin(), starts.end());
  for (size_t k = 1; k < starts.size(); ++k) {
    const Array& prev = params[starts[k - 1].second];
    const char* prev_end = prev.raw() + prev.numel() * static_cast<int64_t>(prev.itemsize());
    if (starts[k].first < prev_end)
      throw std::invalid_argument(std::string(op) + ": params " + std::to_string(starts[k - 1].second) + " and " +
                                  std::to_string(starts[k].second) +
                                  " share memory; each parameter may appear only once");
  }
}

// `list` must hold one array per param, each shaped, typed and placed like
// its param, and contiguous. Lists an option does not use are not checked.
void check_state(const char* op, const char* what, const std::vector<Array>& list,
                 const std::vector<Array>& params, bool used = true) {
  if (!used) return;
  if (list.size() != params.size())
    throw std::invalid_argument(std::string(op) + ": expected one " + what + " per param (" +
                                std::to_string(params.size()) + "), got " + std::to_string(list.size()));
  for (size_t i = 0; i < list.size(); ++i) {
    const Array& a = list[i];
    const Array& p = params[i];
    check_same_device(op, p.device(), a.device());
    if (a.dtype != p.dtype)
      throw TypeError(std::string(op) + ": " + what + " " + std::to_string(i) + " has dtype " + dtype_name(a.dtype) +
                      " but param " + std::to_string(i) + " has dtype " + dtype_name(p.dtype));
    if (a.shape != p.shape)
      throw std::invalid_argument(std::string(op) + ": " + what + " " + std::to_string(i) + " has shape " +
                                  shape_str(a.shape) + " but param " + std::to_string(i) + " has shape " +
                                  shape_str(p.shape));
    check_contiguous(op, what, i, a);
  }
}

void check_step(const char* op, int64_t step) {
  if (step < 1)
    throw std::invalid_argument(std::string(op) + ": step counts this update and must be >= 1, got " +
                                std::to_string(step));
}

void bump_all(const std::vector<Array>& list, bool used = true) {
  if (!used) return;
  for (const Array& a : list) a.bump_version();
}

// ---------------------------------------------------------------------------
// The whole group as one long vector: elements [start[i], start[i+1]) belong
// to params[i]. parallel_for splits that range; each chunk calls
// fn(i, begin, end) for the piece of every param it covers (offsets within
// params[i]). Chunks depend only on sizes and the thread count, and every
// element is updated on its own, so results are the same for any split.
// ---------------------------------------------------------------------------

template <class Fn>
void for_each_piece(const std::vector<Array>& params, const Fn& fn) {
  std::vector<int64_t> start(params.size() + 1, 0);
  for (size_t i = 0; i < params.size(); ++i) start[i + 1] = start[i] + params[i].numel();
  parallel_for(start.back(), kOptimGrain, [&](int64_t begin, int64_t end) {
    // The last param starting at or before `begin` (empty params are skipped below).
    size_t i = static_cast<size_t>(std::upper_bound(start.begin(), start.end(), begin) - start.begin()) - 1;
    for (; begin < end; ++i) {
      int64_t stop = std::min(end, start[i + 1]);
      if (stop > begin) fn(i, begin - start[i], stop - start[i]);
      begin = stop;
    }
  });
}

// The consts of dtype T out of the pair made up front (one group may mix
// float32 and float64 params; the dtype is dispatched per piece).
template <class T, template <class> class C>
const C<T>& for_dtype(const C<float>& f, const C<double>& d) {
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else {
    return d;
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------

namespace {
template <class T>
SgdConsts<T> sgd_consts(double lr, double momentum, double dampening, double weight_decay, bool nesterov,
                        bool maximize) {
  SgdConsts<T> c{};
  c.sign = maximize ? T(-1) : T(1);
  c.has_weight_decay = weight_decay != 0;
  c.weight_decay = static_cast<T>(weight_decay);
  c.momentum = static_cast<T>(momentum);
  c.one_minus_dampening = static_cast<T>(1 - dampening);
  c.nesterov = nesterov;
  c.neg_lr = static_cast<T>(-lr);
  return c;
}
}  // namespace

void sgd_step(const std::vector<Array>& params, const std::vector<Array>& grads,
              const std::vector<Array>& momentum_bufs, double lr, double momentum, double dampening,
              double weight_decay, bool nesterov, bool maximize, bool first_step) {
  const char* op = "sgd_step";
  const bool has_momentum = momentum != 0;
  check_params(op, params);
  check_state(op, "grad", grads, params);
  check_state(op, "momentum_buffer", momentum_bufs, params, has_momentum);

  const auto cf = sgd_consts<float>(lr, momentum, dampening, weight_decay, nesterov, maximize);
  const auto cd = sgd_consts<double>(lr, momentum, dampening, weight_decay, nesterov, maximize);
  const Isa isa = current_isa();
  if (!params.empty() && is_cuda(params[0].device()))
    cuda_only(op, params[0].device(), [&] { cuda::sgd_step(cf, cd, params, grads, momentum_bufs, has_momentum, first_step); });
  else for_each_piece(params, [&](size_t i, int64_t b, int64_t e) {
    dispatch_float(params[i].dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const auto& c = for_dtype<T, SgdConsts>(cf, cd);
      SgdSpan<T> s{params[i].data<T>() + b, grads[i].data<T>() + b,
                   has_momentum ? momentum_bufs[i].data<T>() + b : nullptr, e - b};
      if (!has_momentum) {
        sgd_kernel<T, false, false>(isa)(c, s);
      } else if (first_step) {
        sgd_kernel<T, true, true>(isa)(c, s);
      } else {
        sgd_kernel<T, true, false>(isa)(c, s);
      }
    });
  });
  bump_all(params);
  bump_all(momentum_bufs, has_momentum);
}

// ---------------------------------------------------------------------------
// Adam / AdamW
// ---------------------------------------------------------------------------

namespace {
template <class T>
AdamConsts<T> adam_consts(int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                          bool maximize, bool decoupled) {
  // As torch: bias_correction1 = 1 - beta1**step, step_size = lr / bias_correction1,
  // bias_correction2_sqrt = (1 - beta2**step) ** 0.5, all in double.
  const double s = static_cast<double>(step);
  const double bias_correction1 = 1 - std::pow(beta1, s);
  const double bias_correction2 = 1 - std::pow(beta2, s);
  AdamConsts<T> c{};
  c.sign = maximize ? T(-1) : T(1);
  c.decay_mode = weight_decay == 0 ? AdamConsts<T>::kNoDecay
                 : decoupled       ? AdamConsts<T>::kDecoupled
                                   : AdamConsts<T>::kL2;
  c.weight_decay = static_cast<T>(weight_decay);
  c.decay = static_cast<T>(1 - lr * weight_decay);
  c.beta1_lerp = make_lerp<T>(1 - beta1);
  c.beta2 = static_cast<T>(beta2);
  c.one_minus_beta2 = static_cast<T>(1 - beta2);
  c.bias_correction2_sqrt = static_cast<T>(std::pow(bias_correction2, 0.5));
  c.eps = static_cast<T>(eps);
  c.neg_step_size = static_cast<T>(-(lr / bias_correction1));
  return c;
}
}  // namespace

void adam_step(const std::vector<Array>& params, const std::vector<Array>& grads,
               const std::vector<Array>& exp_avgs, const std::vector<Array>& exp_avg_sqs,
               const std::vector<Array>& max_exp_avg_sqs, int64_t step, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled) {
  const char* op = "adam_step";
  check_step(op, step);
  check_params(op, params);
  check_state(op, "grad", grads, params);
  check_state(op, "exp_avg", exp_avgs, params);
  check_state(op, "exp_avg_sq", exp_avg_sqs, params);
  check_state(op, "max_exp_avg_sq", max_exp_avg_sqs, params, amsgrad);

  const auto cf = adam_consts<float>(step, lr, beta1, beta2, eps, weight_decay, maximize, decoupled);
  const auto cd = adam_consts<double>(step, lr, beta1, beta2, eps, weight_decay, maximize, decoupled);
  const Isa isa = current_isa();
  if (!params.empty() && is_cuda(params[0].device()))
    cuda_only(op, params[0].device(), [&] { cuda::adam_step(cf, cd, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, amsgrad); });
  else for_each_piece(params, [&](size_t i, int64_t b, int64_t e) {
    dispatch_float(params[i].dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const auto& c = for_dtype<T, AdamConsts>(cf, cd);
      AdamSpan<T> s{params[i].data<T>() + b, grads[i].data<T>() + b, exp_avgs[i].data<T>() + b,
                    exp_avg_sqs[i].data<T>() + b, amsgrad ? max_exp_avg_sqs[i].data<T>() + b : nullptr, e - b};
      if (amsgrad) {
        adam_kernel<T, true>(isa)(c, s);
      } else {
        adam_kernel<T, false>(isa)(c, s);
      }
    });
  });
  bump_all(params);
  bump_all(exp_avgs);
  bump_all(exp_avg_sqs);
  bump_all(max_exp_avg_sqs, amsgrad);
}

// ---------------------------------------------------------------------------
// Adagrad
// ---------------------------------------------------------------------------

namespace {
template <class T>
AdagradConsts<T> adagrad_consts(int64_t step, double lr, double lr_decay, double weight_decay, double eps,
                                bool maximize) {
  const double clr = lr / (1 + (static_cast<double>(step) - 1) * lr_decay);  // as torch, in double
  AdagradConsts<T> c{};
  c.sign = maximize ? T(-1) : T(1);
  c.has_weight_decay = weight_decay != 0;
  c.weight_decay = static_cast<T>(weight_decay);
  c.eps = static_cast<T>(eps);
  c.neg_clr = static_cast<T>(-clr);
  return c;
}
}  // namespace

void adagrad_step(const std::vector<Array>& params, const std::vector<Array>& grads,
                  const std::vector<Array>& state_sums, int64_t step, double lr, double lr_decay,
                  double weight_decay, double eps, bool maximize) {
  const char* op = "adagrad_step";
  check_step(op, step);
  check_params(op, params);
  check_state(op, "grad", grads, params);
  check_state(op, "sum", state_sums, params);

  const auto cf = adagrad_consts<float>(step, lr, lr_decay, weight_decay, eps, maximize);
  const auto cd = adagrad_consts<double>(step, lr, lr_decay, weight_decay, eps, maximize);
  const Isa isa = current_isa();
  if (!params.empty() && is_cuda(params[0].device()))
    cuda_only(op, params[0].device(), [&] { cuda::adagrad_step(cf, cd, params, grads, state_sums); });
  else for_each_piece(params, [&](size_t i, int64_t b, int64_t e) {
    dispatch_float(params[i].dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const auto& c = for_dtype<T, AdagradConsts>(cf, cd);
      AdagradSpan<T> s{params[i].data<T>() + b, grads[i].data<T>() + b, state_sums[i].data<T>() + b, e - b};
      adagrad_kernel<T>(isa)(c, s);
    });
  });
  bump_all(params);
  bump_all(state_sums);
}

// ---------------------------------------------------------------------------
// RMSprop
// ---------------------------------------------------------------------------

namespace {
template <class T>
RmspropConsts<T> rmsprop_consts(double lr, double alpha, double eps, double weight_decay, double momentum,
                                bool maximize) {
  RmspropConsts<T> c{};
  c.sign = maximize ? T(-1) : T(1);
  c.has_weight_decay = weight_decay != 0;
  c.weight_decay = static_cast<T>(weight_decay);
  c.alpha = static_cast<T>(alpha);
  c.one_minus_alpha = static_cast<T>(1 - alpha);
  c.alpha_lerp = make_lerp<T>(1 - alpha);
  c.eps = static_cast<T>(eps);
  c.momentum = static_cast<T>(momentum);
  c.neg_lr = static_cast<T>(-lr);
  return c;
}
}  // namespace

void rmsprop_step(const std::vector<Array>& params, const std::vector<Array>& grads,
                  const std::vector<Array>& square_avgs, const std::vector<Array>& momentum_bufs,
                  const std::vector<Array>& grad_avgs, double lr, double alpha, double eps, double weight_decay,
                  double momentum, bool centered, bool maximize) {
  const char* op = "rmsprop_step";
  const bool has_momentum = momentum > 0;  // torch's test
  check_params(op, params);
  check_state(op, "grad", grads, params);
  check_state(op, "square_avg", square_avgs, params);
  check_state(op, "momentum_buffer", momentum_bufs, params, has_momentum);
  check_state(op, "grad_avg", grad_avgs, params, centered);

  const auto cf = rmsprop_consts<float>(lr, alpha, eps, weight_decay, momentum, maximize);
  const auto cd = rmsprop_consts<double>(lr, alpha, eps, weight_decay, momentum, maximize);
  const Isa isa = current_isa();
  if (!params.empty() && is_cuda(params[0].device()))
    cuda_only(op, params[0].device(), [&] {
      cuda::rmsprop_step(cf, cd, params, grads, square_avgs, momentum_bufs, grad_avgs, centered, has_momentum);
    });
  else for_each_piece(params, [&](size_t i, int64_t b, int64_t e) {
    dispatch_float(params[i].dtype, op, [&](auto tag) {
      using T = decltype(tag);
      const auto& c = for_dtype<T, RmspropConsts>(cf, cd);
      RmspropSpan<T> s{params[i].data<T>() + b, grads[i].data<T>() + b, square_avgs[i].data<T>() + b,
                       has_momentum ? momentum_bufs[i].data<T>() + b : nullptr,
                       centered ? grad_avgs[i].data<T>() + b : nullptr, e - b};
      if (centered) {
        has_momentum ? rmsprop_kernel<T, true, true>(isa)(c, s) : rmsprop_kernel<T, true, false>(isa)(c, s);
      } else {
        has_momentum ? rmsprop_kernel<T, false, true>(isa)(c, s) : rmsprop_kernel<T, false, false>(isa)(c, s);
      }
    });
  });
  bump_all(params);
  bump_all(square_avgs);
  bump_all(momentum_bufs, has_momentum);
  bump_all(grad_avgs, centered);
}

}  // namespace fg
