// gemm.cpp - the GEMM driver (packing, cache blocking, threading, run-time
// ISA choice), the portable micro-kernel, and matmul() on top.
//
// Layout of the blocked product (BLIS loop order, see gemm.h for the API):
//
//   for jc in N step NC:            B block (KC x NC) lives in L3
//     for pc in K step KC:          pack B[pc:pc+KC, jc:jc+NC] (all threads)
//       for ic in M step MC:        pack A[ic:ic+MC, pc:pc+KC] (per thread, L2)
//         for jr in NC step NR:     one B micro-panel (KC x NR) stays in L1
//           for ir in MC step MR:   micro-kernel: C[ir:+MR, jr:+NR] += Ap @ Bp
//
// Threads split the (ic, jr) space: blocks of rows of C, and when there are
// fewer row blocks than threads also chunks of NR-panels (when all of M is
// one block, each thread then runs the whole pc loop on its own columns).
// K is never split, and the MR x NR tile grid and the KC blocks depend on the
// shape only, so each C element is computed by the same operations in the
// same order for any thread count: results are bit-identical.
//
// Products with M == 1 or N == 1 (memory-bound) and tiny products (where
// packing costs more than it saves) take direct loops instead.
#include "cpu/gemm.h"
#include "cuda/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "errors.h"
#include "parallel.h"

namespace fg {
namespace {

using gemm_detail::MicroKernel;

// ---- run-time ISA choice ------------------------------------------------------

enum class Cap : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

Cap hardware_cap() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f")) return Cap::Avx512;
  if (avx2) return Cap::Avx2;
#endif
  return Cap::Scalar;
}

// "" / "auto" -> -1 (the hardware's best); unknown -> -2.
int parse_cap(const std::string& s) {
  if (s.empty() || s == "auto" || s == "default") return -1;
  if (s == "avx512") return static_cast<int>(Cap::Avx512);
  if (s == "avx2") return static_cast<int>(Cap::Avx2);
  if (s == "scalar" || s == "none") return static_cast<int>(Cap::Scalar);
  return -2;
}

Cap clamp_to_hardware(int requested) {
  Cap hw = hardware_cap();
  if (requested < 0) return hw;
  return static_cast<int>(hw) < requested ? hw : static_cast<Cap>(requested);
}

std::atomic<int> g_cap{-1};  // -1: not chosen yet

Cap current_cap() {
  int c = g_cap.load(std::memory_order_relaxed);
  if (c < 0) {
    const char* env = std::getenv("FASTGRAD_CPU_CAPABILITY");
    int req = env ? parse_cap(env) : -1;
    c = static_cast<int>(clamp_to_hardware(req < -1 ? -1 : req));  // unknown value: ignore it
    g_cap.store(c, std::memory_order_relaxed);
  }
  return static_cast<Cap>(c);
}

const char* cap_name(Cap c) {
  switch (c) {
    case Cap::Avx512: return "avx512";
    case Cap::Avx2: return "avx2";
    case Cap::Scalar: return "scalar";
  }
  return "scalar";
}

// ---- arithmetic type --------------------------------------------------------------
// Integer products are summed in the unsigned type of the same width, so that
// overflow wraps (defined behaviour) like PyTorch's integer matmul.
template <class T> struct AccOf { using type = T; };
template <> struct AccOf<int32_t> { using type = uint32_t; };
template <> struct AccOf<int64_t> { using type = uint64_t; };
template <class T> using Acc = typename AccOf<T>::type;

// ---- scratch memory -----------------------------------------------------------------
// Packing buffers are kept per thread and only grow: a GEMM call then costs
// no allocation and touches no fresh pages (fresh pages would page-fault on
// every call for the large buffers that malloc serves with mmap).
class ScratchBuffer {
 public:
  ~ScratchBuffer() { std::free(ptr_); }
  void* get(size_t nbytes) {
    if (nbytes > cap_) {
      std::free(ptr_);
      cap_ = (nbytes + 4095) / 4096 * 4096;
      ptr_ = std::aligned_alloc(64, cap_);  // 64: aligned micro-panel loads
      if (!ptr_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t cap_ = 0;
};
thread_local ScratchBuffer t_pack_a;  // the A block a thread packs for itself
thread_local ScratchBuffer t_pack_b;  // the B block the calling thread shares with the pool

// ---- packing -------------------------------------------------------------------------

// dst[k * L + l] = src[l * ls + k] for l < L, k < kc: gathers L lines that
// are contiguous along k (rows of a row-major A, columns of a transposed B)
// into the interleaved panel layout. Generic version: read each line as one
// sequential stream; the strided writes land in a panel that stays in L1.
template <class T, int L>
struct PackLines {
  static void run(int64_t kc, const T* src, int64_t ls, T* dst) {
    for (int l = 0; l < L; ++l)
      for (int64_t k = 0; k < kc; ++k) dst[k * L + l] = src[l * ls + k];
  }
};

#if defined(__SSE2__)
// Why: this is a transpose, and element-by-element it costs as much as the
// micro-kernel itself for small products (e.g. a batch of 32x32 matrices).
// In-register 4x4 (float) / 2x2 (double) transposes move 4 / 2 elements per
// instruction instead. SSE2 is part of x86-64, so no run-time check.
template <int L>
struct PackLines<float, L> {
  static void run(int64_t kc, const float* src, int64_t ls, float* dst) {
    if (L % 4 != 0) return PackLinesScalar(kc, src, ls, dst);
    for (int l = 0; l < L; l += 4) {
      const float *s0 = src + l * ls, *s1 = s0 + ls, *s2 = s1 + ls, *s3 = s2 + ls;
      int64_t k = 0;
      for (; k + 4 <= kc; k += 4) {
        __m128 x0 = _mm_loadu_ps(s0 + k), x1 = _mm_loadu_ps(s1 + k);
        __m128 x2 = _mm_loadu_ps(s2 + k), x3 = _mm_loadu_ps(s3 + k);
        _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
        _mm_storeu_ps(dst + (k + 0) * L + l, x0);
        _mm_storeu_ps(dst + (k + 1) * L + l, x1);
        _mm_storeu_ps(dst + (k + 2) * L + l, x2);
        _mm_storeu_ps(dst + (k + 3) * L + l, x3);
      }
      for (; k < kc; ++k) {
        dst[k * L + l + 0] = s0[k];
        dst[k * L + l + 1] = s1[k];
        dst[k * L + l + 2] = s2[k];
        dst[k * L + l + 3] = s3[k];
      }
    }
  }
  static void PackLinesScalar(int64_t kc, const float* src, int64_t ls, float* dst) {
    for (int l = 0; l < L; ++l)
      for (int64_t k = 0; k < kc; ++k) dst[k * L + l] = src[l * ls + k];
  }
};

template <int L>
struct PackLines<double, L> {
  static void run(int64_t kc, const double* src, int64_t ls, double* dst) {
    if (L % 2 != 0) return PackLinesScalar(kc, src, ls, dst);
    for (int l = 0; l < L; l += 2) {
      const double *s0 = src + l * ls, *s1 = s0 + ls;
      int64_t k = 0;
      for (; k + 2 <= kc; k += 2) {
        const __m128d x0 = _mm_loadu_pd(s0 + k), x1 = _mm_loadu_pd(s1 + k);
        _mm_storeu_pd(dst + (k + 0) * L + l, _mm_unpacklo_pd(x0, x1));
        _mm_storeu_pd(dst + (k + 1) * L + l, _mm_unpackhi_pd(x0, x1));
      }
      for (; k < kc; ++k) {
        dst[k * L + l + 0] = s0[k];
        dst[k * L + l + 1] = s1[k];
      }
    }
  }
  static void PackLinesScalar(int64_t kc, const double* src, int64_t ls, double* dst) {
    for (int l = 0; l < L; ++l)
      for (int64_t k = 0; k < kc; ++k) dst[k * L + l] = src[l * ls + k];
  }
};
#endif

// Packs A[0:mc, 0:kc] (strides rsA, csA) into ceil(mc / MR) micro-panels,
// each (kc, MR) row-major; rows past mc are zero.
template <class T, int MR>
void pack_a(int64_t mc, int64_t kc, const T* A, int64_t rsA, int64_t csA, T* dst) {
  for (int64_t i = 0; i < mc; i += MR, dst += MR * kc) {
    const int64_t mr = std::min<int64_t>(MR, mc - i);
    const T* src = A + i * rsA;
    if (mr == MR && csA == 1) {
      PackLines<T, MR>::run(kc, src, rsA, dst);  // rows contiguous along k: a transpose
    } else if (mr == MR && rsA == 1) {
      // Transposed A (columns contiguous): each k is MR consecutive values.
      for (int64_t k = 0; k < kc; ++k)
        for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[k * csA + r];
    } else {
      // Last, partial panel (or doubly strided A): row by row, then zero rows.
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[r * rsA + k * csA];
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = mr; r < MR; ++r) dst[k * MR + r] = T(0);
    }
  }
}

// Packs one micro-panel B[0:kc, 0:nr] (nr <= NR) as (kc, NR) row-major,
// columns past nr zero.
template <class T, int NR>
void pack_b_panel(int64_t kc, int64_t nr, const T* B, int64_t rsB, int64_t csB, T* dst) {
  if (nr == NR && csB == 1) {
    // Rows contiguous: NR-wide copies (vectorised by the compiler).
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = B[k * rsB + j];
  } else if (nr == NR && rsB == 1) {
    PackLines<T, NR>::run(kc, B, csB, dst);  // transposed B (columns contiguous): a transpose
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t j = 0; j < nr; ++j) dst[k * NR + j] = B[k * rsB + j * csB];
      for (int64_t j = nr; j < NR; ++j) dst[k * NR + j] = T(0);
    }
  }
}

// Packs NR-panels p0 <= p < p1 of B[0:kc, 0:nc] into dst (panel p at
// dst + (p - p0) * NR * kc, each as pack_b_panel lays it out).
template <class T, int NR>
void pack_b(int64_t kc, int64_t nc, int64_t p0, int64_t p1, const T* B, int64_t rsB, int64_t csB, T* dst) {
  if (csB == 1) {
    // Rows contiguous: walk B row by row, so that each read is one long
    // sequential stream rather than kc short pieces per panel, one row
    // stride apart. (Measured about neutral on 128x784 @ 784x256, where
    // packing is ~9% of the time: that is B's first trip from L3/memory,
    // which the packing pays whichever order it reads in.)
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = B + k * rsB;
      for (int64_t p = p0; p < p1; ++p) {
        T* d = dst + (p - p0) * NR * kc + k * NR;
        const int64_t j0 = p * NR, nr = std::min<int64_t>(NR, nc - j0);
        if (nr == NR) {
          for (int j = 0; j < NR; ++j) d[j] = src[j0 + j];
        } else {
          for (int64_t j = 0; j < nr; ++j) d[j] = src[j0 + j];
          for (int64_t j = nr; j < NR; ++j) d[j] = T(0);
        }
      }
    }
    return;
  }
  for (int64_t p = p0; p < p1; ++p)
    pack_b_panel<T, NR>(kc, std::min<int64_t>(NR, nc - p * NR), B + p * NR * csB, rsB, csB, dst + (p - p0) * NR * kc);
}

// pack_b for float on AVX-512: rows of a row-major B as two zmm each, and
// full panels of a transposed B by 16 x 16 register transposes instead of
// SSE 4 x 4 ones. Measured on 128x256 @ 256x784 with B = W^T (a linear
// layer's products): packing 16% -> 14% of the time; the rest is B's first
// trip from L2/L3, not the shuffles.
void pack_b_f32_avx512(int64_t kc, int64_t nc, int64_t p0, int64_t p1, const float* B, int64_t rsB, int64_t csB,
                       float* dst) {
  constexpr int NR = gemm_detail::kAvx512NrF32;
  if (csB == 1) {
    for (int64_t p = p0; p < p1; ++p)
      gemm_detail::pack_rows32_avx512_f32(kc, std::min<int64_t>(NR, nc - p * NR), B + p * NR, rsB,
                                          dst + (p - p0) * NR * kc);
    return;
  }
  if (rsB != 1) return pack_b<float, NR>(kc, nc, p0, p1, B, rsB, csB, dst);
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t nr = std::min<int64_t>(NR, nc - p * NR);
    float* d = dst + (p - p0) * NR * kc;
    if (nr == NR) gemm_detail::pack_lines32_avx512_f32(kc, B + p * NR * csB, csB, d);
    else pack_b_panel<float, NR>(kc, nr, B + p * NR * csB, rsB, csB, d);
  }
}

// ---- the portable micro-kernel --------------------------------------------------------
// Plain C++ with a fixed-size accumulator tile; with constant MR/NR the
// compiler unrolls it and keeps the tile in (SSE2) vector registers. Used for
// the "scalar" path and for integer types.
template <class T, int MR, int NR>
void ukernel_generic(int64_t kc, const T* __restrict Ap, const T* __restrict Bp, T* __restrict C, int64_t rsC,
                     int64_t csC, T alpha, T beta, int64_t m, int64_t n) {
  using A = Acc<T>;
  A acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int r = 0; r < MR; ++r) {
      const A a = static_cast<A>(Ap[r]);
      for (int j = 0; j < NR; ++j) acc[r][j] += a * static_cast<A>(Bp[j]);
    }
    Ap += MR;
    Bp += NR;
  }
  const A al = static_cast<A>(alpha), be = static_cast<A>(beta);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      T* p = C + r * rsC + j * csC;
      A out = al * acc[r][j];
      *p = static_cast<T>(beta != T(0) ? be * static_cast<A>(*p) + out : out);
    }
}

// ---- kernel table --------------------------------------------------------------------------

template <class T>
struct Spec {
  MicroKernel<T> kernel;
  void (*pack_a)(int64_t, int64_t, const T*, int64_t, int64_t, T*);
  void (*pack_b)(int64_t, int64_t, int64_t, int64_t, const T*, int64_t, int64_t, T*);
  int64_t mr, nr;
  // Cache blocking, sized for a 48 KiB L1 / 1.25 MiB L2 per core (Ice Lake;
  // similar on most current x86). KC: an A micro-panel (MR x KC) plus the B
  // micro-panel (KC x NR) fit in L1 (e.g. f32 AVX-512: 12 KiB + 32 KiB), so
  // the B panel survives the sweep over A panels. MC: the packed A block
  // (MC x KC) stays well inside L2. NC: the packed B block (KC x NC) fits in
  // L3. Larger KC also means fewer passes of C through the registers.
  int64_t mc, kc, nc;
};

template <class T, int MR, int NR>
Spec<T> make_spec(MicroKernel<T> k, int64_t mc, int64_t kc, int64_t nc) {
  return Spec<T>{k, &pack_a<T, MR>, &pack_b<T, NR>, MR, NR, mc, kc, nc};
}

template <class T> Spec<T> spec_for(Cap cap);

template <>
Spec<float> spec_for<float>(Cap cap) {
  using namespace gemm_detail;
  switch (cap) {
    case Cap::Avx512:
    {
      Spec<float> sp = make_spec<float, kAvx512MrF32, kAvx512NrF32>(&ukernel_avx512_f32, 384, 256, 4096);
      sp.pack_b = &pack_b_f32_avx512;
      return sp;
    }
    case Cap::Avx2:
      return make_spec<float, kAvx2MrF32, kAvx2NrF32>(&ukernel_avx2_f32, 240, 256, 4096);
    default:
      return make_spec<float, 4, 8>(&ukernel_generic<float, 4, 8>, 128, 256, 4096);
  }
}

template <>
Spec<double> spec_for<double>(Cap cap) {
  using namespace gemm_detail;
  switch (cap) {
    case Cap::Avx512:
      return make_spec<double, kAvx512MrF64, kAvx512NrF64>(&ukernel_avx512_f64, 240, 192, 2048);
    case Cap::Avx2:
      return make_spec<double, kAvx2MrF64, kAvx2NrF64>(&ukernel_avx2_f64, 120, 256, 2048);
    default:
      return make_spec<double, 4, 4>(&ukernel_generic<double, 4, 4>, 128, 128, 2048);
  }
}

template <>
Spec<int32_t> spec_for<int32_t>(Cap) {
  return make_spec<int32_t, 4, 8>(&ukernel_generic<int32_t, 4, 8>, 128, 256, 4096);
}

template <>
Spec<int64_t> spec_for<int64_t>(Cap) {
  return make_spec<int64_t, 4, 4>(&ukernel_generic<int64_t, 4, 4>, 128, 128, 2048);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Below this many multiply-adds a product is not worth waking the pool for:
// a fork/join costs ~5-20 us (more under virtualisation), about what one core
// needs for 96^3 multiply-adds, so a second thread cannot win it back.
constexpr double kParallelMinMacs = 96.0 * 96 * 96;
// Below this many multiply-adds the direct loops beat packing (measured: at
// 16^3 the packed AVX-512 path is already faster, at 8^3 it is not).
constexpr double kSmallMacs = 12.0 * 12 * 12;

int threads_for(double macs) {
  if (in_parallel_region() || macs < kParallelMinMacs) return 1;
  return get_num_threads();
}

// ---- the blocked, packed path ---------------------------------------------------------------

template <class T>
void gemm_packed(const Spec<T>& s, int64_t M, int64_t N, int64_t K, const T* A, int64_t rsA, int64_t csA,
                 const T* B, int64_t rsB, int64_t csB, T* C, int64_t rsC, int64_t csC, T alpha, T beta) {
  const int64_t MR = s.mr, NR = s.nr;
  const int nt = threads_for(double(M) * double(N) * double(K));

  // K and N blocks of even size (K = 784 with KC = 256 gives 4 x 196, not
  // 3 x 256 + 16: a thin last block pays the C load/store for few FMAs).
  // Depends on the shape only, so each element's sum order is fixed.
  const int64_t kc_max = ceil_div(K, ceil_div(K, s.kc));
  const int64_t nc_max = round_up(ceil_div(N, ceil_div(N, s.nc)), NR);

  // Row blocks: about MC rows each, but as many blocks as a multiple of the
  // thread count so that every thread gets the same amount of work (e.g.
  // M = 1024 gives 4 x 264 rows rather than 384 + 384 + 256). A multiple of
  // MR, so the MR x NR tile grid (and with it each element's arithmetic)
  // never depends on the thread count.
  int64_t mblocks = ceil_div(M, s.mc);
  if (mblocks >= nt) mblocks = round_up(mblocks, nt);
  // At least two blocks per thread when M allows blocks of >= 96 rows: the
  // threads claim blocks dynamically (below), so a thread that the OS
  // preempts, on a busy machine, holds up at most one small block.
  if (nt > 1 && mblocks < 2 * nt && M >= 2 * nt * 96) mblocks = 2 * nt;
  const int64_t mc = round_up(ceil_div(M, mblocks), MR);
  mblocks = ceil_div(M, mc);
  const size_t a_bytes = size_t(mc) * size_t(kc_max) * sizeof(T);

  // C[i0:i0+mlen, panels p0..p1 of the N block at jc] (+)= A block @ B panels.
  //   Ap: the packed A block (mlen x kc); Bp: packed panel p0 (panels follow).
  auto tiles = [&](const T* Ap, const T* Bp, int64_t i0, int64_t mlen, int64_t jc, int64_t nc, int64_t p0,
                   int64_t p1, int64_t kc, T beta_k) {
    for (int64_t p = p0; p < p1; ++p, Bp += NR * kc) {
      const int64_t j = p * NR, nlen = std::min(NR, nc - j);
      for (int64_t ir = 0; ir < mlen; ir += MR) {
        T* c = C + (i0 + ir) * rsC + (jc + j) * csC;
        s.kernel(kc, Ap + ir * kc, Bp, c, rsC, csC, alpha, beta_k, std::min(MR, mlen - ir), nlen);
      }
    }
  };

  for (int64_t jc = 0; jc < N; jc += nc_max) {
    const int64_t nc = std::min(nc_max, N - jc);
    const int64_t npanels = ceil_div(nc, NR);

    if (mblocks == 1 && (nt == 1 || npanels > 1)) {
      // Few rows (e.g. a batch of 128 through a linear layer): all of M is
      // one A block, so each B panel serves one sweep over it and nothing
      // else. Each B panel is therefore packed right before that sweep into
      // a one-panel buffer, where the sweep finds it in L1; packing the
      // whole B block first would write it to L2 and read it back (~3% of
      // 128x256 @ 256x784). With threads, they split the columns and each
      // packs its own B panels and (the same) A, so the whole K loop runs
      // with one fork/join instead of two per KC block; this is what makes
      // mid-sized products scale.
      const int64_t nchunks = std::min<int64_t>(npanels, nt);
      auto chunks = [&](int64_t c0, int64_t c1) {
        for (int64_t ch = c0; ch < c1; ++ch) {
          const int64_t p0 = npanels * ch / nchunks, p1 = npanels * (ch + 1) / nchunks;
          T* Ap = static_cast<T*>(t_pack_a.get(a_bytes));
          T* Bp = static_cast<T*>(t_pack_b.get(size_t(kc_max) * size_t(NR) * sizeof(T)));
          for (int64_t pc = 0; pc < K; pc += kc_max) {
            const int64_t kc = std::min(kc_max, K - pc);
            const T beta_k = pc == 0 ? beta : T(1);
            s.pack_a(M, kc, A + pc * csA, rsA, csA, Ap);
            for (int64_t p = p0; p < p1; ++p) {
              s.pack_b(kc, nc, p, p + 1, B + pc * rsB + jc * csB, rsB, csB, Bp);
              tiles(Ap, Bp, 0, M, jc, nc, p, p + 1, kc, beta_k);
            }
          }
        }
      };
      if (nchunks > 1) parallel_for(nchunks, 1, chunks);
      else chunks(0, 1);
      continue;
    }

    // Many rows: B's block is packed once (by all threads) and shared; each
    // thread packs the A blocks of its own row blocks. When there are fewer
    // row blocks than threads, NR-panels are split too.
    const int64_t nchunks = mblocks >= nt ? 1 : std::min(npanels, ceil_div(nt, mblocks));
    T* Bp = static_cast<T*>(t_pack_b.get(size_t(kc_max) * size_t(npanels * NR) * sizeof(T)));
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      const T beta_k = pc == 0 ? beta : T(1);  // later K blocks accumulate

      const T* Bblk = B + pc * rsB + jc * csB;
      auto pack_b = [&](int64_t p0, int64_t p1) { s.pack_b(kc, nc, p0, p1, Bblk, rsB, csB, Bp + p0 * NR * kc); };
      if (nt > 1) parallel_for(npanels, std::max<int64_t>(1, 16384 / (kc * NR)), pack_b);
      else pack_b(0, npanels);

      // Task t = (row block t / nchunks, panel chunk t % nchunks). Threads
      // claim tasks from a shared counter rather than taking fixed ranges, so
      // the work balances itself when one thread runs slower (preempted, or
      // a smaller last block); which thread computes a tile never changes
      // its value.
      const int64_t ntasks = mblocks * nchunks;
      std::atomic<int64_t> next_task{0};
      auto compute = [&](int64_t, int64_t) {
        T* Ap = static_cast<T*>(t_pack_a.get(a_bytes));
        int64_t packed_ib = -1;
        for (int64_t t; (t = next_task.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
          const int64_t ib = t / nchunks, ch = t % nchunks;
          const int64_t i0 = ib * mc, mlen = std::min(mc, M - i0);
          if (ib != packed_ib) {
            s.pack_a(mlen, kc, A + i0 * rsA + pc * csA, rsA, csA, Ap);
            packed_ib = ib;
          }
          const int64_t p0 = npanels * ch / nchunks, p1 = npanels * (ch + 1) / nchunks;
          tiles(Ap, Bp + p0 * NR * kc, i0, mlen, jc, nc, p0, p1, kc, beta_k);
        }
      };
      if (nt > 1) parallel_for(std::min<int64_t>(nt, ntasks), 1, compute);  // one claimer per thread
      else compute(0, ntasks);
    }
  }
}

// ---- direct paths for small products and matrix-vector products ------------------------------

// Up to this many multiply-adds a float product on AVX-512 with B's and C's
// rows contiguous skips packing: the direct kernel reads A and B in place.
// Packing A is a transpose, about a third of the micro-kernel's own time at
// 64^3; it pays off only once each packed panel is reused over many tiles.
// Measured (one core, against the packed path): 64^3 4.9 vs 7.1 us, 96^3
// 15.2 vs 16.0 us, 128^3 38 vs 35 us; and with N <= 16 (a classifier's last
// layer, 128x256 @ 256x10) 14 vs 24 us at any size, as the packed path pads
// N to 32 columns.
constexpr double kDirectMacs = 110.0 * 110 * 110;
constexpr int64_t kDirectMaxN = 16;

// C = alpha * A @ B + beta * C by the direct AVX-512 tile kernel (see gemm.h):
// row tiles of MR, column tiles of NR; threads split the row tiles, and every
// tile's arithmetic is the same whichever thread runs it.
void gemm_direct_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsA, int64_t csA, const float* B,
                     int64_t rsB, float* C, int64_t rsC, float alpha, float beta) {
  constexpr int64_t MR = gemm_detail::kAvx512MrF32, NR = gemm_detail::kAvx512NrF32;
  const int64_t ntiles = ceil_div(M, MR);
  auto rows = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t * MR, m = std::min(MR, M - i);
      for (int64_t j = 0; j < N; j += NR)
        gemm_detail::ukernel_direct_avx512_f32(K, A + i * rsA, rsA, csA, B + j, rsB, C + i * rsC + j, rsC, alpha,
                                               beta, m, std::min(NR, N - j));
    }
  };
  const int nt = threads_for(double(M) * double(N) * double(K));
  if (nt > 1 && ntiles > 1) parallel_for(ntiles, 1, rows);
  else rows(0, ntiles);
}

// C = alpha * A @ B + beta * C by plain loops (row of C accumulated over k as
// axpy's on rows of B, which vectorises when B's rows are contiguous).
template <class T>
void gemm_small(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
                int64_t csB, T* C, int64_t rsC, int64_t csC, T alpha, T beta) {
  using U = Acc<T>;
  std::vector<U> acc(static_cast<size_t>(N));
  const U al = static_cast<U>(alpha), be = static_cast<U>(beta);
  for (int64_t i = 0; i < M; ++i) {
    std::fill(acc.begin(), acc.end(), U(0));
    for (int64_t k = 0; k < K; ++k) {
      const U a = static_cast<U>(A[i * rsA + k * csA]);
      const T* b = B + k * rsB;
      if (csB == 1)
        for (int64_t j = 0; j < N; ++j) acc[j] += a * static_cast<U>(b[j]);
      else
        for (int64_t j = 0; j < N; ++j) acc[j] += a * static_cast<U>(b[j * csB]);
    }
    T* c = C + i * rsC;
    for (int64_t j = 0; j < N; ++j) {
      T* p = c + j * csC;
      *p = static_cast<T>(beta != T(0) ? be * static_cast<U>(*p) + al * acc[j] : al * acc[j]);
    }
  }
}

// Row vector times matrix: c[0, j] = alpha * sum_k a[k] * B[k, j] + beta * c[0, j]
// (a[k] = A[k * csA], c[j] = C[j * csC]). Memory-bound: no packing, threads
// split j. Each c[j] is summed in a fixed order, whatever the split.
template <class T>
void gemv_row(int64_t N, int64_t K, const T* a, int64_t csA, const T* B, int64_t rsB, int64_t csB, T* C,
              int64_t csC, T alpha, T beta) {
  using U = Acc<T>;
  const U al = static_cast<U>(alpha), be = static_cast<U>(beta);
  auto finish = [&](int64_t j, U sum) {
    T* p = C + j * csC;
    *p = static_cast<T>(beta != T(0) ? be * static_cast<U>(*p) + al * sum : al * sum);
  };
  const int64_t grain = std::max<int64_t>(16, 65536 / std::max<int64_t>(K, 1));
  const int nt = threads_for(double(N) * double(K));
  auto body = [&](int64_t j0, int64_t j1) {
    if (rsB == 1 && csB != 1) {
      // Columns of B contiguous (B is a transposed view): one dot product per
      // column, with 16 independent partial sums so the loop vectorises and
      // is not bound by the add latency.
      constexpr int L = 16;
      for (int64_t j = j0; j < j1; ++j) {
        const T* b = B + j * csB;
        U part[L] = {};
        int64_t k = 0;
        if (csA == 1)
          for (; k + L <= K; k += L)
            for (int l = 0; l < L; ++l) part[l] += static_cast<U>(a[k + l]) * static_cast<U>(b[k + l]);
        U sum = U(0);
        for (; k < K; ++k) sum += static_cast<U>(a[k * csA]) * static_cast<U>(b[k]);
        for (int l = 0; l < L; ++l) sum += part[l];
        finish(j, sum);
      }
    } else {
      // Rows of B contiguous (or both strided): axpy a[k] * B[k, j0:j1] into
      // a block of sums that stays in L1.
      constexpr int64_t JB = 512;
      U acc[JB];
      for (int64_t jb = j0; jb < j1; jb += JB) {
        const int64_t n = std::min(JB, j1 - jb);
        std::fill(acc, acc + n, U(0));
        int64_t k = 0;
        if (csB == 1) {
          // Four rows of B per pass over the sums: a quarter of the loads and
          // stores of acc, and still the same k order for every element.
          for (; k + 4 <= K; k += 4) {
            const U a0 = static_cast<U>(a[k * csA]), a1 = static_cast<U>(a[(k + 1) * csA]);
            const U a2 = static_cast<U>(a[(k + 2) * csA]), a3 = static_cast<U>(a[(k + 3) * csA]);
            const T* b0 = B + k * rsB + jb;
            const T *b1 = b0 + rsB, *b2 = b1 + rsB, *b3 = b2 + rsB;
            for (int64_t j = 0; j < n; ++j)
              acc[j] = (((acc[j] + a0 * static_cast<U>(b0[j])) + a1 * static_cast<U>(b1[j])) +
                        a2 * static_cast<U>(b2[j])) + a3 * static_cast<U>(b3[j]);
          }
        }
        for (; k < K; ++k) {
          const U ak = static_cast<U>(a[k * csA]);
          const T* b = B + k * rsB + jb * csB;
          if (csB == 1)
            for (int64_t j = 0; j < n; ++j) acc[j] += ak * static_cast<U>(b[j]);
          else
            for (int64_t j = 0; j < n; ++j) acc[j] += ak * static_cast<U>(b[j * csB]);
        }
        for (int64_t j = 0; j < n; ++j) finish(jb + j, acc[j]);
      }
    }
  };
  if (nt > 1) parallel_for(N, grain, body);
  else body(0, N);
}

}  // namespace

// ---- gemm: pick a path ------------------------------------------------------------------------

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
          int64_t csB, T* C, int64_t rsC, int64_t csC, T alpha, T beta) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // empty sum: C = beta * C (beta == 0: C is not read)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        T* p = C + i * rsC + j * csC;
        *p = beta != T(0) ? static_cast<T>(static_cast<Acc<T>>(beta) * static_cast<Acc<T>>(*p)) : T(0);
      }
    return;
  }
  // The micro-kernels store rows of C: for a column-major C compute
  // C^T = B^T @ A^T instead, which has contiguous rows. A matrix-vector
  // product is turned into the row-vector form the same way.
  if ((M > 1 && N > 1 && csC != 1 && rsC == 1) || (N == 1 && M > 1)) {
    gemm<T>(N, M, K, B, csB, rsB, A, csA, rsA, C, csC, rsC, alpha, beta);
    return;
  }
  if (M == 1) {
    gemv_row<T>(N, K, A, csA, B, rsB, csB, C, csC, alpha, beta);
    return;
  }
  if (double(M) * double(N) * double(K) < kSmallMacs) {
    gemm_small<T>(M, N, K, A, rsA, csA, B, rsB, csB, C, rsC, csC, alpha, beta);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    const bool small = double(M) * double(N) * double(K) <= kDirectMacs || N <= kDirectMaxN;
    if (small && csC == 1 && current_cap() == Cap::Avx512) {
      if (csB == 1) {
        gemm_direct_f32(M, N, K, A, rsA, csA, B, rsB, C, rsC, alpha, beta);
        return;
      }
      if (double(K) * double(N) <= kDirectMacs / 16) {
        // B with strided rows (typically a transposed weight, x @ W^T): a
        // row-major copy of B costs K*N moves, little next to M*N*K FMAs.
        float* Bt = static_cast<float*>(t_pack_b.get(size_t(K) * size_t(N) * sizeof(float)));
        for (int64_t j = 0; j < N; ++j)
          for (int64_t k = 0; k < K; ++k) Bt[k * N + j] = B[k * rsB + j * csB];
        gemm_direct_f32(M, N, K, A, rsA, csA, Bt, N, C, rsC, alpha, beta);
        return;
      }
    }
  }
  const Spec<T> s = spec_for<T>(current_cap());
  gemm_packed<T>(s, M, N, K, A, rsA, csA, B, rsB, csB, C, rsC, csC, alpha, beta);
}

template void gemm<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                          int64_t, float*, int64_t, int64_t, float, float);
template void gemm<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t, const double*, int64_t,
                           int64_t, double*, int64_t, int64_t, double, double);
template void gemm<int32_t>(int64_t, int64_t, int64_t, const int32_t*, int64_t, int64_t, const int32_t*, int64_t,
                            int64_t, int32_t*, int64_t, int64_t, int32_t, int32_t);
template void gemm<int64_t>(int64_t, int64_t, int64_t, const int64_t*, int64_t, int64_t, const int64_t*, int64_t,
                            int64_t, int64_t*, int64_t, int64_t, int64_t, int64_t);

std::string gemm_info() { return cap_name(current_cap()); }

void set_cpu_capability(const std::string& cap) {
  int req = parse_cap(cap);
  if (req == -2)
    throw std::invalid_argument("set_cpu_capability: expected 'avx512', 'avx2', 'scalar' or 'auto', got '" + cap +
                                "'");
  g_cap.store(static_cast<int>(clamp_to_hardware(req)), std::memory_order_relaxed);
}

// ---- matmul ---------------------------------------------------------------------------------------

namespace {

// When dims [0, nd-1) of (shape, strides) - the batch dims plus the row dim -
// walk memory as one dimension, returns true and its stride in *rs; then a
// batch of matrices is one tall matrix (e.g. (B, T, C) @ (C, D) computed as
// (B*T, C) @ (C, D): one well-shaped GEMM instead of B thin ones). Size-1
// dims are skipped, so (B, 1, K) row vectors fold whatever their row stride.
bool rows_fold(const Shape& shape, const Strides& strides, int64_t* rs) {
  const int nd = static_cast<int>(shape.size());
  bool seen = false;      // a dim of size > 1 was seen
  int64_t expected = 0;   // the stride the next outer dim of size > 1 must have
  *rs = strides[nd - 2];  // all sizes 1: a single row
  for (int d = nd - 2; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (!seen) *rs = strides[d];
    else if (strides[d] != expected) return false;
    seen = true;
    expected = strides[d] * shape[d];
  }
  return true;
}

template <class T>
void matmul_typed(const Array& a, const Array& b, const Shape& batch, int64_t M, int64_t N, int64_t K, Array& out) {
  const int nbd = static_cast<int>(batch.size());
  const int64_t nb = shape_numel(batch);
  if (nb == 0 || M == 0 || N == 0) return;
  Shape ashape = batch, bshape = batch;
  ashape.insert(ashape.end(), {M, K});
  bshape.insert(bshape.end(), {K, N});
  const Array ae = expand(a, ashape), be = expand(b, bshape);  // views: batch strides 0 where broadcast
  const int64_t rsA = ae.strides[nbd], csA = ae.strides[nbd + 1];
  const int64_t rsB = be.strides[nbd], csB = be.strides[nbd + 1];
  const T* A = ae.data<T>();
  const T* B = be.data<T>();
  T* C = out.data<T>();

  bool b_shared = true;
  for (int d = 0; d < nbd; ++d) b_shared = b_shared && (be.strides[d] == 0 || batch[d] == 1);
  int64_t rs_fold = rsA;
  if (nb == 1 || (b_shared && rows_fold(ae.shape, ae.strides, &rs_fold))) {
    // One GEMM: a single matrix, or a stack of A's sharing one B.
    gemm<T>(nb * M, N, K, A, rs_fold, csA, B, rsB, csB, C, N, 1, T(1), T(0));
    return;
  }

  // Element offsets of each batch entry (odometer over the batch dims).
  std::vector<int64_t> oa(static_cast<size_t>(nb)), ob(static_cast<size_t>(nb));
  std::vector<int64_t> idx(static_cast<size_t>(nbd), 0);
  int64_t offa = 0, offb = 0;
  for (int64_t i = 0; i < nb; ++i) {
    oa[i] = offa;
    ob[i] = offb;
    for (int d = nbd - 1; d >= 0; --d) {
      offa += ae.strides[d];
      offb += be.strides[d];
      if (++idx[d] < batch[d]) break;
      offa -= ae.strides[d] * batch[d];
      offb -= be.strides[d] * batch[d];
      idx[d] = 0;
    }
  }
  auto one = [&](int64_t i) {
    gemm<T>(M, N, K, A + oa[i], rsA, csA, B + ob[i], rsB, csB, C + i * M * N, N, 1, T(1), T(0));
  };
  const double macs = double(M) * double(N) * double(K);
  const int nt = get_num_threads();
  if (macs < kParallelMinMacs || (macs < 256.0 * 256 * 256 && (nb >= 4 * nt || nb % nt == 0))) {
    // Many small products: whole products per task (each runs
    // single-threaded inside the pool) beat splitting each one, whose
    // fork/join would cost about as much as the product itself. Only when
    // the products divide evenly enough among the threads, though: 3
    // products on 2 threads would leave one thread idle a third of the time.
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(65536.0 / std::max(macs, 1.0)));
    parallel_for(nb, grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < nb; ++i) one(i);  // big products: each uses all threads
  }
}

}  // namespace

Array matmul(const Array& a_in, const Array& b_in) {
  const char* op = "matmul";
  auto shapes = [&] { return shape_str(a_in.shape) + " and " + shape_str(b_in.shape); };
  if (a_in.ndim() == 0 || b_in.ndim() == 0)
    throw std::invalid_argument("matmul: both arguments need to be at least 1-D, got shapes " + shapes());
  check_same_device(op, a_in.device(), b_in.device());
  if (a_in.dtype == DType::Bool || b_in.dtype == DType::Bool)
    throw TypeError(std::string("matmul: not supported for bool tensors (got ") + dtype_name(a_in.dtype) + " and " +
                    dtype_name(b_in.dtype) + ")");

  // Two CPU matrices of one dtype (every linear layer's products): straight
  // to gemm. Why: the general path below builds ~a dozen small heap objects
  // (array copies, expanded views, shapes), ~0.2-0.3 us of a ~1 us call,
  // which is most of the fixed cost of a small product.
  if (a_in.ndim() == 2 && b_in.ndim() == 2 && a_in.dtype == b_in.dtype && !is_cuda(a_in.device()) &&
      a_in.numel() > 0 && b_in.numel() > 0) {
    const int64_t M = a_in.shape[0], K = a_in.shape[1], N = b_in.shape[1];
    if (b_in.shape[0] != K)
      throw std::invalid_argument("matmul: shapes " + shapes() + " cannot be multiplied (" + std::to_string(K) +
                                  " != " + std::to_string(b_in.shape[0]) + ")");
    Array out = empty({M, N}, a_in.dtype, a_in.device());
    dispatch_number(a_in.dtype, op, [&](auto t) {
      using T = decltype(t);
      gemm<T>(M, N, K, a_in.data<T>(), a_in.strides[0], a_in.strides[1], b_in.data<T>(), b_in.strides[0],
              b_in.strides[1], out.data<T>(), N, 1, T(1), T(0));
    });
    return out;
  }

  const DType rt = promote(a_in.dtype, b_in.dtype);
  Array a = a_in.dtype == rt ? a_in : astype(a_in, rt);
  Array b = b_in.dtype == rt ? b_in : astype(b_in, rt);
  const bool a_vec = a.ndim() == 1, b_vec = b.ndim() == 1;
  if (a_vec) a = unsqueeze(a, 0);  // (K,) -> (1, K)
  if (b_vec) b = unsqueeze(b, 1);  // (K,) -> (K, 1)
  const int nda = a.ndim(), ndb = b.ndim();
  const int64_t M = a.shape[nda - 2], K = a.shape[nda - 1], N = b.shape[ndb - 1];
  if (b.shape[ndb - 2] != K)
    throw std::invalid_argument("matmul: shapes " + shapes() + " cannot be multiplied (" + std::to_string(K) +
                                " != " + std::to_string(b.shape[ndb - 2]) + ")");

  // Broadcast the batch dims (all but the last two), right-aligned.
  const int nbd = std::max(nda, ndb) - 2;
  Shape batch(static_cast<size_t>(nbd), 1);
  for (int d = 0; d < nbd; ++d) {
    const int da = d - (nbd - (nda - 2)), db = d - (nbd - (ndb - 2));
    const int64_t sa = da >= 0 ? a.shape[da] : 1, sb = db >= 0 ? b.shape[db] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      throw std::invalid_argument("matmul: batch dimensions of shapes " + shapes() + " cannot be broadcast (" +
                                  std::to_string(sa) + " vs " + std::to_string(sb) + ")");
    batch[d] = sa == 1 ? sb : sa;
  }

  Shape rshape = batch;  // the result drops the dims of vector operands
  if (!a_vec) rshape.push_back(M);
  if (!b_vec) rshape.push_back(N);
  Array out = empty(rshape, rt, a.device());  // contiguous: memory of (batch, M, N)
  on_device(op, a.device(), [&] {
    dispatch_number(rt, op, [&](auto t) { matmul_typed<decltype(t)>(a, b, batch, M, N, K, out); });
  }, [&] { cuda::matmul(a, b, batch, M, N, K, out); });
  return out;
}

}  // namespace fg
