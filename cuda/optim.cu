// optim.cu - see optim.h. A group is a table of pieces (one per param:
// pointers to the param, its grad and up to three state arrays, and the
// length), uploaded once per step; the kernel's blockIdx.y picks the piece
// and the x-blocks stride over its elements. Compiled with --fmad=false (set
// in CMakeLists.txt) so only the explicit fmadd() calls fuse, as on the CPU.
#define FG_OPTIM_ISA cuda_isa
#include "cuda/optim.h"

#include <string>

#include "cuda/common.cuh"

namespace fg {
namespace cuda {
namespace {

namespace od = optim_detail::cuda_isa;

template <class T>
struct Piece {
  T* p;
  const T* g;
  T* s0;
  T* s1;
  T* s2;
  int64_t n;
};

template <class T, bool kMomentum, bool kFirstStep>
__global__ void sgd_kernel(const Piece<T>* pieces, SgdConsts<T> c) {
  const Piece<T> s = pieces[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < s.n; i += int64_t(gridDim.x) * blockDim.x)
    od::sgd_update<T, kMomentum, kFirstStep>(c, s.p[i], s.g[i], kMomentum ? s.s0 + i : nullptr);
}

template <class T, bool kAmsgrad>
__global__ void adam_kernel(const Piece<T>* pieces, AdamConsts<T> c) {
  const Piece<T> s = pieces[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < s.n; i += int64_t(gridDim.x) * blockDim.x)
    od::adam_update<T, kAmsgrad>(c, s.p[i], s.g[i], s.s0[i], s.s1[i], kAmsgrad ? s.s2 + i : nullptr);
}

template <class T>
__global__ void adagrad_kernel(const Piece<T>* pieces, AdagradConsts<T> c) {
  const Piece<T> s = pieces[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < s.n; i += int64_t(gridDim.x) * blockDim.x)
    od::adagrad_update<T>(c, s.p[i], s.g[i], s.s0[i]);
}

template <class T, bool kCentered, bool kMomentum>
__global__ void rmsprop_kernel(const Piece<T>* pieces, RmspropConsts<T> c) {
  const Piece<T> s = pieces[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < s.n; i += int64_t(gridDim.x) * blockDim.x)
    od::rmsprop_update<T, kCentered, kMomentum>(c, s.p[i], s.g[i], s.s0[i], kMomentum ? s.s1 + i : nullptr,
                                                kCentered ? s.s2 + i : nullptr);
}

template <class T>
T* ptr(const std::vector<Array>& list, size_t i) {
  return list.empty() ? nullptr : list[i].data<T>();
}

// Builds the piece tables of the group (per dtype), uploads each and calls
// launch(device_table, count, grid_x) for it.
template <class T, class Launch>
void run_group(const char* op, const std::vector<Array>& params, const std::vector<Array>& grads,
               const std::vector<Array>& s0, const std::vector<Array>& s1, const std::vector<Array>& s2,
               const Launch& launch) {
  std::vector<Piece<T>> pieces;
  int64_t longest = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].dtype != dtype_of<T>::value || params[i].numel() == 0) continue;
    pieces.push_back(Piece<T>{params[i].data<T>(), grads[i].data<T>(), ptr<T>(s0, i), ptr<T>(s1, i), ptr<T>(s2, i),
                              params[i].numel()});
    longest = std::max(longest, params[i].numel());
  }
  if (pieces.empty()) return;
  const Device dev = params[0].device();
  DeviceGuard g(dev.index, op);
  const unsigned gx = std::min<unsigned>(grid_for(longest), 1024);
  constexpr size_t kMaxY = 65535;
  for (size_t start = 0; start < pieces.size(); start += kMaxY) {
    const size_t cnt = std::min(kMaxY, pieces.size() - start);
    Array table = empty({static_cast<int64_t>(cnt * sizeof(Piece<T>))}, DType::Bool, dev);
    FG_CUDA_CHECK(op, cudaMemcpy(table.raw(), pieces.data() + start, cnt * sizeof(Piece<T>), cudaMemcpyHostToDevice));
    launch(reinterpret_cast<const Piece<T>*>(table.raw()), dim3(gx, static_cast<unsigned>(cnt)));
    FG_CUDA_LAUNCH_CHECK(op);
    // The table is freed (to the cache) when `table` dies; the default
    // stream orders its reuse after this kernel.
  }
}

void check_one_device(const char* op, const std::vector<Array>& params) {
  for (size_t i = 1; i < params.size(); ++i) check_same_device(op, params[0].device(), params[i].device());
}

}  // namespace

void sgd_step(const SgdConsts<float>& cf, const SgdConsts<double>& cd, const std::vector<Array>& params,
              const std::vector<Array>& grads, const std::vector<Array>& bufs, bool has_momentum, bool first_step) {
  const char* op = "sgd_step";
  check_one_device(op, params);
  const std::vector<Array> none;
  auto go = [&](auto tag, const auto& c) {
    using T = decltype(tag);
    run_group<T>(op, params, grads, has_momentum ? bufs : none, none, none, [&](const Piece<T>* t, dim3 grid) {
      if (!has_momentum) sgd_kernel<T, false, false><<<grid, kThreads>>>(t, c);
      else if (first_step) sgd_kernel<T, true, true><<<grid, kThreads>>>(t, c);
      else sgd_kernel<T, true, false><<<grid, kThreads>>>(t, c);
    });
  };
  go(float{}, cf);
  go(double{}, cd);
}

void adam_step(const AdamConsts<float>& cf, const AdamConsts<double>& cd, const std::vector<Array>& params,
               const std::vector<Array>& grads, const std::vector<Array>& exp_avgs,
               const std::vector<Array>& exp_avg_sqs, const std::vector<Array>& max_exp_avg_sqs, bool amsgrad) {
  const char* op = "adam_step";
  check_one_device(op, params);
  const std::vector<Array> none;
  auto go = [&](auto tag, const auto& c) {
    using T = decltype(tag);
    run_group<T>(op, params, grads, exp_avgs, exp_avg_sqs, amsgrad ? max_exp_avg_sqs : none,
                 [&](const Piece<T>* t, dim3 grid) {
                   if (amsgrad) adam_kernel<T, true><<<grid, kThreads>>>(t, c);
                   else adam_kernel<T, false><<<grid, kThreads>>>(t, c);
                 });
  };
  go(float{}, cf);
  go(double{}, cd);
}

void adagrad_step(const AdagradConsts<float>& cf, const AdagradConsts<double>& cd, const std::vector<Array>& params,
                  const std::vector<Array>& grads, const std::vector<Array>& sums) {
  const char* op = "adagrad_step";
  check_one_device(op, params);
  const std::vector<Array> none;
  auto go = [&](auto tag, const auto& c) {
    using T = decltype(tag);
    run_group<T>(op, params, grads, sums, none, none,
                 [&](const Piece<T>* t, dim3 grid) { adagrad_kernel<T><<<grid, kThreads>>>(t, c); });
  };
  go(float{}, cf);
  go(double{}, cd);
}

void rmsprop_step(const RmspropConsts<float>& cf, const RmspropConsts<double>& cd, const std::vector<Array>& params,
                  const std::vector<Array>& grads, const std::vector<Array>& square_avgs,
                  const std::vector<Array>& bufs, const std::vector<Array>& grad_avgs, bool centered,
                  bool has_momentum) {
  const char* op = "rmsprop_step";
  check_one_device(op, params);
  const std::vector<Array> none;
  auto go = [&](auto tag, const auto& c) {
    using T = decltype(tag);
    run_group<T>(op, params, grads, square_avgs, has_momentum ? bufs : none, centered ? grad_avgs : none,
                 [&](const Piece<T>* t, dim3 grid) {
                   if (centered) {
                     if (has_momentum) rmsprop_kernel<T, true, true><<<grid, kThreads>>>(t, c);
                     else rmsprop_kernel<T, true, false><<<grid, kThreads>>>(t, c);
                   } else {
                     if (has_momentum) rmsprop_kernel<T, false, true><<<grid, kThreads>>>(t, c);
                     else rmsprop_kernel<T, false, false><<<grid, kThreads>>>(t, c);
                   }
                 });
  };
  go(float{}, cf);
  go(double{}, cd);
}

}  // namespace cuda
}  // namespace fg
