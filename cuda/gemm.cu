// gemm.cu - C = A @ B. float32 with TF32 allowed (fg.cuda.set_allow_tf32,
// sm_80+) takes sgemm_tf32 on the tensor cores; otherwise float32 with K and
// N multiples of 4 (and enough work) takes sgemm_tiled (below). Everything else takes the general kernel: each
// 256-thread block computes a 64 x 64 tile of C, each thread a 4 x 4
// register block, stepping through K in slices of 16 staged in shared
// memory. Operands are read through their strides, so transposed and
// broadcast views need no copy. Every element of C is summed over k in
// increasing order by one thread: deterministic.
#include "cuda/gemm.h"

#include <mma.h>

#include <string>

#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace fg {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
constexpr int kGemmThreads = (BM / TM) * (BN / TN);  // 256

struct Batch {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t sa[kMaxDims], sb[kMaxDims];  // element strides of A and B per batch dim (0 when broadcast)

  // Element offsets into A and B of batch entry z (the last dim varies fastest).
  __device__ __forceinline__ void offsets(int64_t z, int64_t& oa, int64_t& ob) const {
    oa = 0;
    ob = 0;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t i = z % shape[d];
      z /= shape[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
  }
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
    int64_t oa, ob;
    batch.offsets(z, oa, ob);
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

// ---- float32 fast path ------------------------------------------------------------
//
// 128 x 128 tiles of C per 256-thread block, each thread an 8 x 8 register
// tile (two 4 x 4 quadrants 64 apart, so its shared-memory reads are float4s
// without bank conflicts), K in slices of 8. A's slice is stored transposed
// (k-major) in shared memory, padded by 4 floats so the transposed stores
// of the two threads sharing a row land in different banks. Global loads are
// float4s into registers for the next slice while this one is multiplied
// (two shared buffers, one barrier per slice). Needs row-major A and B with
// K and N multiples of 4 and 16-byte aligned rows (the caller packs A or B
// otherwise); M, N and K edges are bounds-checked per float4. Each C element
// is still summed over k in increasing order by one thread: deterministic.
//
// kQ = 1 is the variant for M <= 64 (every convolution with 64 output
// channels or fewer, its weight gradient): a 64 x 128 tile, each thread a
// 4 x 8 block (one quadrant row), only threads 0..127 load A. A 128-row tile
// there spent half its multiplies on zero rows. Same k order, same bits.
// kR = 1 likewise halves the columns for N <= 64 (a 128 x 64 or 64 x 64
// tile; threads 0..127 load B): a convolution weight gradient's N is
// C kh kw, 28 for 3 input channels.

constexpr int FBK = 8, kPadA = 4;

template <int kQ, int kR>  // 64-row / 64-column quadrants per tile: 2 (128) or 1 (64)
__global__ void __launch_bounds__(256, 2)  // two blocks per SM: 128 registers, no spills (sm_90)
sgemm_tiled(int64_t M, int64_t N, int64_t K, const float* __restrict__ A, int64_t lda, const float* __restrict__ B,
            int64_t ldb, float* __restrict__ C, Batch batch, int64_t nb) {
  constexpr int TBMq = 64 * kQ, TBNr = 64 * kR;
  __shared__ __align__(16) float As[2][FBK][TBMq + kPadA];
  __shared__ __align__(16) float Bs[2][FBK][TBNr];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;             // this thread's (4 kQ) x (4 kR) block of C
  const int a_row = tid / 2, a_k = (tid % 2) * 4;     // its float4 of A's slice (when a_row < TBMq)
  const bool a_on = kQ == 2 || a_row < TBMq;  // constant for the full tile (no extra register)
  // its float4 of B's slice (when b_k < FBK): TBNr / 4 float4s per k
  const int b_k = tid / (TBNr / 4), b_col = (tid % (TBNr / 4)) * 4;
  const bool b_on = kR == 2 || b_k < FBK;
  const int64_t row0 = int64_t(blockIdx.y) * TBMq, col0 = int64_t(blockIdx.x) * TBNr;
  const int64_t ga_row = row0 + a_row, gb_col = col0 + b_col;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int64_t z = blockIdx.z; z < nb; z += gridDim.z) {
    int64_t oa, ob;
    batch.offsets(z, oa, ob);
    const float* Ab = A + oa;
    const float* Bb = B + ob;
    float* Cb = C + z * M * N;
    auto load_a = [&](int64_t k0) {
      return (a_on && ga_row < M && k0 + a_k < K) ? *reinterpret_cast<const float4*>(Ab + ga_row * lda + k0 + a_k)
                                                  : zero;
    };
    auto load_b = [&](int64_t k0) {
      return (b_on && gb_col < N && k0 + b_k < K) ? *reinterpret_cast<const float4*>(Bb + (k0 + b_k) * ldb + gb_col)
                                                  : zero;
    };
    auto store = [&](int buf, float4 ra, float4 rb) {
      if (a_on) {
        As[buf][a_k + 0][a_row] = ra.x;
        As[buf][a_k + 1][a_row] = ra.y;
        As[buf][a_k + 2][a_row] = ra.z;
        As[buf][a_k + 3][a_row] = ra.w;
      }
      if (b_on) *reinterpret_cast<float4*>(&Bs[buf][b_k][b_col]) = rb;
    };
    float acc[4 * kQ][4 * kR];
#pragma unroll
    for (int i = 0; i < 4 * kQ; ++i)
#pragma unroll
      for (int j = 0; j < 4 * kR; ++j) acc[i][j] = 0.f;
    float4 ra = load_a(0), rb = load_b(0);
    __syncthreads();  // the previous batch entry's last reads of buffer 0 are done
    store(0, ra, rb);
    __syncthreads();
    int buf = 0;
    for (int64_t k0 = 0; k0 < K; k0 += FBK) {
      const bool more = k0 + FBK < K;
      if (more) {
        ra = load_a(k0 + FBK);
        rb = load_b(k0 + FBK);
      }
#pragma unroll
      for (int k = 0; k < FBK; ++k) {
        float a[4 * kQ];
#pragma unroll
        for (int q = 0; q < kQ; ++q) {
          const float4 aq = *reinterpret_cast<const float4*>(&As[buf][k][ty * 4 + q * 64]);
          a[4 * q] = aq.x, a[4 * q + 1] = aq.y, a[4 * q + 2] = aq.z, a[4 * q + 3] = aq.w;
        }
        float b[4 * kR];
#pragma unroll
        for (int h = 0; h < kR; ++h) {
          const float4 bh = *reinterpret_cast<const float4*>(&Bs[buf][k][tx * 4 + h * 64]);
          b[4 * h] = bh.x, b[4 * h + 1] = bh.y, b[4 * h + 2] = bh.z, b[4 * h + 3] = bh.w;
        }
#pragma unroll
        for (int i = 0; i < 4 * kQ; ++i)
#pragma unroll
          for (int j = 0; j < 4 * kR; ++j) acc[i][j] += a[i] * b[j];
      }
      if (more) store(buf ^ 1, ra, rb);  // read by nobody since the last barrier
      __syncthreads();
      buf ^= 1;
    }
#pragma unroll
    for (int i = 0; i < 4 * kQ; ++i) {
      const int64_t r = row0 + ty * 4 + (i % 4) + (i / 4) * 64;
      if (r >= M) continue;
#pragma unroll
      for (int h = 0; h < kR; ++h) {
        const int64_t c = col0 + tx * 4 + h * 64;
        if (c < N)
          *reinterpret_cast<float4*>(Cb + r * N + c) =
              make_float4(acc[i][h * 4 + 0], acc[i][h * 4 + 1], acc[i][h * 4 + 2], acc[i][h * 4 + 3]);
      }
    }
  }
}

// ---- float32 on TF32 tensor cores (fg.cuda.set_allow_tf32(True); sm_80+) -----------
//
// 128 x 128 tiles of C per 256-thread block: 8 warps in a 2 x 4 grid, each
// warp a 64 x 32 tile held as 4 x 2 wmma accumulators (m16n16k8, TF32 inputs,
// float32 sums). K in slices of 16 staged in shared memory, the values
// rounded to TF32 (round to nearest) as they are stored; the next slice is
// loaded into registers while this one is multiplied, then stored into the
// other of two shared buffers (one barrier per slice). Two variants:
//   kVec   K and N multiples of 4: row-major operands (others packed first)
//          read as float4s; 128 registers, two blocks per SM. H200, 4096^3:
//          47 TFLOP/s before this variant existed (element loads, one block
//          per SM), cuBLAS TF32 377.
//   else   any layout, sizes and alignment: element loads through the
//          strides, in the order of whichever of A's / B's dims is
//          contiguous so warps read whole cache lines.
// Edges are zero-filled on load and bounds-checked on store (through a
// per-warp 16 x 16 staging tile). Deterministic: every C element is summed
// in a fixed order.

constexpr int TBM = 128, TBN = 128, TBK = 16;
// Row pitches in floats (wmma needs multiples of 4): 20 and 136 put the 32
// lanes' reads of an A fragment (rows lane/4, cols lane%4) and of a B
// fragment (rows lane%4, cols lane/4) in 32 different banks.
constexpr int kLdA = TBK + 4, kLdB = TBN + 8;
constexpr int kTf32Regs = TBM * TBK / 256;     // 8 elements of A (and of B) per thread per slice
constexpr int kBufA = TBM * kLdA, kBufB = TBK * kLdB;  // floats per buffer: multiples of 8 (32-byte aligned)

template <bool kVec>
__global__ void __launch_bounds__(256, kVec ? 2 : 1)  // kVec: two blocks per SM in 128 registers, no spills (sm_90)
sgemm_tf32(int64_t M, int64_t N, int64_t K, const float* __restrict__ A, int64_t rsA, int64_t csA, bool a_kfast,
           const float* __restrict__ B, int64_t rsB, int64_t csB, bool b_nfast, float* __restrict__ C, Batch batch,
           int64_t z0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // the host never launches this below sm_80
#else
  using namespace nvcuda;
  // Two buffers of A's slice (TBM x TBK, row-major), then two of B's (TBK x
  // TBN): 38 KB. A's first buffer is reused for the output staging tiles
  // after the K loop. wmma pointers: 32-byte aligned.
  __shared__ __align__(32) float smem[2 * kBufA + 2 * kBufB];
  float* const As = smem;
  float* const Bs = smem + 2 * kBufA;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wr = warp / 4, wc = warp % 4;  // this warp's 64 x 32 tile
  const int64_t row0 = int64_t(blockIdx.y) * TBM, col0 = int64_t(blockIdx.x) * TBN;
  {
    // One batch entry per block (no grid-stride loop over z: kept live across
    // it, the per-thread constants below cost ~70 registers).
    const int64_t z = z0 + blockIdx.z;
    int64_t oa, ob;
    batch.offsets(z, oa, ob);
    const float* Ab = A + oa;
    const float* Bb = B + ob;
    float* Cb = C + z * M * N;
    // Element t of this thread's share of a slice: A's (ar + t * dar, ak + t * dak)
    // and B's (bk + t * dbk, bc + t * dbc), consecutive threads along the
    // operand's contiguous dim; one pointer and one step per operand keep
    // the register count down.
    const int ar = a_kfast ? tid / TBK : tid % TBM, ak = a_kfast ? tid % TBK : tid / TBM;
    const int dar = a_kfast ? 256 / TBK : 0, dak = a_kfast ? 0 : 256 / TBM;
    const int bk = b_nfast ? tid / TBN : tid % TBK, bc = b_nfast ? tid % TBN : tid / TBK;
    const int dbk = b_nfast ? 256 / TBN : 0, dbc = b_nfast ? 0 : 256 / TBK;
    const int64_t a_step = dar * rsA + dak * csA, b_step = dbk * rsB + dbc * csB;
    float ra[kTf32Regs], rb[kTf32Regs];
    // kVec (row-major A and B, K and N multiples of 4, rows 16-byte aligned):
    // two float4s of A per thread, rows vr and vr + 64, k's vk..vk+3; two of
    // B, k's wk and wk + 8, cols wc4..wc4+3. No division, one bounds check per float4.
    const int vr = tid / 4, vk = (tid % 4) * 4, wk = tid / 32, wc4 = (tid % 32) * 4;
    // The general path: this thread's elements that lie inside A / B (the
    // rest are zero) are a prefix, as its row (col) and k grow with t.
    // Distances left are clamped to int: t * d is at most 7 * 16.
    auto left = [](int64_t v) { return static_cast<int>(v < 0 ? 0 : (v > 1024 ? 1024 : v)); };
    auto load = [&](int64_t k0) {
      if constexpr (kVec) {
        const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int t = 0; t < 2; ++t) {
          const int64_t r = row0 + vr + t * 64, k = k0 + wk + t * 8;
          const float4 a = (r < M && k0 + vk < K) ? *reinterpret_cast<const float4*>(Ab + r * rsA + k0 + vk) : zero;
          const float4 b = (k < K && col0 + wc4 < N) ? *reinterpret_cast<const float4*>(Bb + k * rsB + col0 + wc4) : zero;
          ra[4 * t] = a.x, ra[4 * t + 1] = a.y, ra[4 * t + 2] = a.z, ra[4 * t + 3] = a.w;
          rb[4 * t] = b.x, rb[4 * t + 1] = b.y, rb[4 * t + 2] = b.z, rb[4 * t + 3] = b.w;
        }
      } else {
        const float* pa = Ab + (row0 + ar) * rsA + (k0 + ak) * csA;
        const float* pb = Bb + (k0 + bk) * rsB + (col0 + bc) * csB;
        const int la_r = left(M - row0 - ar), la_k = left(K - k0 - ak);
        const int lb_k = left(K - k0 - bk), lb_c = left(N - col0 - bc);
#pragma unroll
        for (int t = 0; t < kTf32Regs; ++t) {
          ra[t] = (t * dar < la_r && t * dak < la_k) ? *pa : 0.f;
          rb[t] = (t * dbk < lb_k && t * dbc < lb_c) ? *pb : 0.f;
          pa += a_step;  // read only inside A / B
          pb += b_step;
        }
      }
    };
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[4][2];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
    auto store = [&](int buf) {
      if constexpr (kVec) {
#pragma unroll
        for (int t = 0; t < 2; ++t) {
          const float* x = ra + 4 * t;
          const float* y = rb + 4 * t;
          *reinterpret_cast<float4*>(As + buf * kBufA + (vr + t * 64) * kLdA + vk) =
              make_float4(wmma::__float_to_tf32(x[0]), wmma::__float_to_tf32(x[1]), wmma::__float_to_tf32(x[2]),
                          wmma::__float_to_tf32(x[3]));
          *reinterpret_cast<float4*>(Bs + buf * kBufB + (wk + t * 8) * kLdB + wc4) =
              make_float4(wmma::__float_to_tf32(y[0]), wmma::__float_to_tf32(y[1]), wmma::__float_to_tf32(y[2]),
                          wmma::__float_to_tf32(y[3]));
        }
      } else {
#pragma unroll
        for (int t = 0; t < kTf32Regs; ++t) {
          As[buf * kBufA + (ar + t * dar) * kLdA + ak + t * dak] = wmma::__float_to_tf32(ra[t]);
          Bs[buf * kBufB + (bk + t * dbk) * kLdB + bc + t * dbc] = wmma::__float_to_tf32(rb[t]);
        }
      }
    };
    load(0);
    store(0);
    __syncthreads();
    int buf = 0;
    for (int64_t k0 = 0; k0 < K; k0 += TBK) {
      const bool more = k0 + TBK < K;
      if (more) load(k0 + TBK);  // in flight while the tensor cores work
      const float* a_s = As + buf * kBufA;
      const float* b_s = Bs + buf * kBufB;
#pragma unroll
      for (int kk = 0; kk < TBK; kk += 8) {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[4];
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
#pragma unroll
        for (int i = 0; i < 4; ++i) wmma::load_matrix_sync(fa[i], a_s + (wr * 64 + i * 16) * kLdA + kk, kLdA);
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], b_s + kk * kLdB + wc * 32 + j * 16, kLdB);
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
      if (more) store(buf ^ 1);  // read by nobody since the last barrier
      __syncthreads();
      buf ^= 1;
    }
    // The loop's last barrier: every slice is read, A's first buffer becomes
    // the staging tiles (8 warps x 16 x 16 floats fit in it).
    static_assert(8 * 256 <= kBufA, "staging tiles must fit in A's first buffer");
    float* stage = smem + warp * 256;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const int64_t r = row0 + wr * 64 + i * 16 + e / 16, c = col0 + wc * 32 + j * 16 + e % 16;
          if (r < M && c < N) Cb[r * N + c] = stage[e];
        }
        __syncwarp();
      }
  }
#endif
}

// TF32 needs compute capability 8.0+ (cached per device).
bool has_tf32(int dev) {
  static int cache[64] = {0};  // 0 unknown, 1 yes, 2 no
  if (dev < 0 || dev >= 64) return false;
  if (cache[dev] == 0) {
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
      cudaGetLastError();
      major = 0;
    }
    cache[dev] = major >= 8 ? 1 : 2;
  }
  return cache[dev] == 1;
}

// The fast path's layout: rows contiguous, row and batch strides multiples
// of 4 floats, 16-byte aligned base.
bool rows_ok(const Array& x, int nbd) {
  if (x.strides[nbd + 1] != 1 || x.strides[nbd] % 4 != 0 || !aligned16(x.raw())) return false;
  for (int d = 0; d < nbd; ++d)
    if (x.strides[d] % 4 != 0) return false;
  return true;
}

// The batch dims of `batch` with the batch strides of the operands a and b.
Batch batch_of(const Shape& batch, const Array& a, const Array& b) {
  Batch bt;
  bt.nd = static_cast<int>(batch.size());
  for (int d = 0; d < bt.nd; ++d) {
    bt.shape[d] = batch[d];
    bt.sa[d] = a.strides[d];
    bt.sb[d] = b.strides[d];
  }
  return bt;
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
  const Batch bt = batch_of(batch, ae, be);
  if (out.dtype == DType::Float32 && allow_tf32() && has_tf32(out.device().index) &&
      (M + TBM - 1) / TBM <= 65535) {
    // K and N multiples of 4: float4 loads from row-major operands (others
    // packed first, as for sgemm_tiled); otherwise element loads through the
    // strides, along the contiguous dim (k of a row-major A, n of a row-major B).
    const bool vec = K % 4 == 0 && N % 4 == 0;
    const Array af = !vec || rows_ok(ae, nbd) ? ae : contiguous(ae);
    const Array bf = !vec || rows_ok(be, nbd) ? be : contiguous(be);
    const Batch tb = batch_of(batch, af, bf);
    const int64_t rsA = af.strides[nbd], csA = af.strides[nbd + 1], rsB = bf.strides[nbd], csB = bf.strides[nbd + 1];
    const bool a_kfast = !(csA != 1 && rsA == 1), b_nfast = !(csB != 1 && rsB == 1);
    for (int64_t z0 = 0; z0 < nb; z0 += 65535) {  // grid z is at most 65535 batch entries per launch
      dim3 tgrid(static_cast<unsigned>((N + TBN - 1) / TBN), static_cast<unsigned>((M + TBM - 1) / TBM),
                 static_cast<unsigned>(std::min<int64_t>(nb - z0, 65535)));
      if (vec)
        sgemm_tf32<true><<<tgrid, 256>>>(M, N, K, af.data<float>(), rsA, csA, a_kfast, bf.data<float>(), rsB, csB,
                                         b_nfast, out.data<float>(), tb, z0);
      else
        sgemm_tf32<false><<<tgrid, 256>>>(M, N, K, af.data<float>(), rsA, csA, a_kfast, bf.data<float>(), rsB, csB,
                                          b_nfast, out.data<float>(), tb, z0);
      FG_CUDA_LAUNCH_CHECK(op);
    }
    return;
  }
  if (out.dtype == DType::Float32 && K % 4 == 0 && N % 4 == 0 && M * N * K >= (int64_t(1) << 18) &&
      (M + 127) / 128 <= 65535 && aligned16(out.raw())) {
    // Pack an operand that is not row-major (a transposed view, odd strides);
    // a packed copy has plain batch strides (a broadcast batch is materialised).
    const Array af = rows_ok(ae, nbd) ? ae : contiguous(ae);
    const Array bf = rows_ok(be, nbd) ? be : contiguous(be);
    const Batch fb = batch_of(batch, af, bf);
    // 64-row / 64-column tiles where M / N fit them: no zero rows or columns computed
    const bool half_m = M <= 64, half_n = N <= 64;
    dim3 fgrid(static_cast<unsigned>(half_n ? 1 : (N + 127) / 128), static_cast<unsigned>(half_m ? 1 : (M + 127) / 128),
               static_cast<unsigned>(std::min<int64_t>(nb, 65535)));
    auto launch = [&](auto kernel) {
      kernel<<<fgrid, 256>>>(M, N, K, af.data<float>(), af.strides[nbd], bf.data<float>(), bf.strides[nbd],
                             out.data<float>(), fb, nb);
    };
    if (half_m)
      launch(half_n ? sgemm_tiled<1, 1> : sgemm_tiled<1, 2>);
    else
      launch(half_n ? sgemm_tiled<2, 1> : sgemm_tiled<2, 2>);
    FG_CUDA_LAUNCH_CHECK(op);
    return;
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
