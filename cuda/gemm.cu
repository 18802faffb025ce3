// gemm.cu - C = A @ B, tiled: each 256-thread block computes a 64 x 64 tile
// of C, each thread a 4 x 4 register block, stepping through K in slices of
// 16 staged in shared memory. Operands are read through their strides, so
// transposed and broadcast views need no copy. Every element of C is summed
// over k in increasing order by one thread: deterministic.
#include "cuda/gemm.h"

#include <string>

#include "cuda/common.cuh"

namespace fg {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
constexpr int kGemmThreads = (BM / TM) * (BN / TN);  // 256

struct Batch {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t sa[kMaxDims], sb[kMaxDims];  // element strides of A and B per batch dim (0 when broadcast)
};

template <class T>
__global__ void __launch_bounds__(kGemmThreads)
gemm_kernel(int64_t M, int64_t N, int64_t K, const T* __restrict__ A, int64_t rsA, int64_t csA,
            const T* __restrict__ B, int64_t rsB, int64_t csB, T* __restrict__ C, Batch batch, int64_t nb) {
  __shared__ T As[BK][BM + 1];  // +1: no bank conflicts on the transposed store
  __shared__ T Bs[BK][BN];
  const int tid = threadIdx.x;
  const int tr = tid / (BN / TN), tc = tid % (BN / TN);
  const int64_t row0 = int64_t(blockIdx.y) * BM, col0 = int64_t(blockIdx.x) * BN;
  for (int64_t z = blockIdx.z; z < nb; z += gridDim.z) {
    int64_t oa = 0, ob = 0, rem = z;
    for (int d = batch.nd - 1; d >= 0; --d) {
      const int64_t i = rem % batch.shape[d];
      rem /= batch.shape[d];
      oa += i * batch.sa[d];
      ob += i * batch.sb[d];
    }
    const T* Ab = A + oa;
    const T* Bb = B + ob;
    T* Cb = C + z * M * N;
    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
    for (int64_t k0 = 0; k0 < K; k0 += BK) {
      // Stage A[row0:row0+BM, k0:k0+BK] and B[k0:k0+BK, col0:col0+BN]; zero outside.
      for (int e = tid; e < BM * BK; e += kGemmThreads) {
        const int r = e / BK, k = e % BK;
        const int64_t gr = row0 + r, gk = k0 + k;
        As[k][r] = (gr < M && gk < K) ? Ab[gr * rsA + gk * csA] : T(0);
      }
      for (int e = tid; e < BK * BN; e += kGemmThreads) {
        const int k = e / BN, c = e % BN;
        const int64_t gk = k0 + k, gc = col0 + c;
        Bs[k][c] = (gk < K && gc < N) ? Bb[gk * rsB + gc * csB] : T(0);
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < BK; ++k) {
        T a[TM], b[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) a[i] = As[k][tr * TM + i];
#pragma unroll
        for (int j = 0; j < TN; ++j) b[j] = Bs[k][tc * TN + j];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int64_t r = row0 + tr * TM + i;
      if (r >= M) continue;
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const int64_t c = col0 + tc * TN + j;
        if (c < N) Cb[r * N + c] = acc[i][j];
      }
    }
  }
}

}  // namespace

void matmul(const Array& a, const Array& b, const Shape& batch, int64_t M, int64_t N, int64_t K, const Array& out) {
  const char* op = "matmul";
  const int nbd = static_cast<int>(batch.size());
  const int64_t nb = shape_numel(batch);
  if (nb == 0 || M == 0 || N == 0) return;
  if (nbd > kMaxDims) throw std::invalid_argument("matmul: more than " + std::to_string(kMaxDims) + " batch dims are not supported on CUDA");
  DeviceGuard g(out.device().index, op);
  if (K == 0) {  // empty sum: zeros
    FG_CUDA_CHECK(op, cudaMemsetAsync(out.raw(), 0, out.storage->nbytes));
    return;
  }
  Shape ashape = batch, bshape = batch;
  ashape.insert(ashape.end(), {M, K});
  bshape.insert(bshape.end(), {K, N});
  const Array ae = expand(a, ashape), be = expand(b, bshape);
  Batch bt;
  bt.nd = nbd;
  for (int d = 0; d < nbd; ++d) {
    bt.shape[d] = batch[d];
    bt.sa[d] = ae.strides[d];
    bt.sb[d] = be.strides[d];
  }
  const int64_t gy = (M + BM - 1) / BM, gx = (N + BN - 1) / BN;
  if (gy > 65535) throw std::invalid_argument("matmul: M = " + std::to_string(M) + " is too large for the CUDA kernel");
  dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(std::min<int64_t>(nb, 65535)));
  dispatch_number(out.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    gemm_kernel<T><<<grid, kGemmThreads>>>(M, N, K, ae.data<T>(), ae.strides[nbd], ae.strides[nbd + 1], be.data<T>(),
                                           be.strides[nbd], be.strides[nbd + 1], out.data<T>(), bt, nb);
  });
  FG_CUDA_LAUNCH_CHECK(op);
}

}  // namespace cuda
}  // namespace fg
