// rnn.cpp - the time loops of RNN/LSTM/GRU layers, forward and backward
// (see rnn.h); the per-element cell math is in rnn_math.h.
//
// Work per step: one GEMM (B, H) x (H, G*H) going forward, one (B, G*H) x
// (G*H, H) going back, both through gemm() (threaded, bit-identical for any
// thread count), and the pointwise cell math over the B rows (split across
// threads by rows, so also deterministic). dW_hh is one GEMM over all T*B
// rows at the end rather than T small ones (K = B is too thin to be fast).
//
// Workspace layout (rnn_forward keep=true), regions one after another, each
// in time order (row (t, b) belongs to time step t of the sequence):
//   LSTM  gates (T*B, 4H) activated i, f, g, o | c (T*B, H) | h_prev (T*B, H)
//   GRU   r, z, n, hn (T*B, 4H)                | h_prev (T*B, H)
//   RNN   y (T*B, H)                           | h_prev (T*B, H)
// h_prev[t] is the hidden state that step t read (h0 for the first step of
// the direction), so dW_hh = dgates^T @ h_prev row for row.
#define FG_RNN_ISA scalar
#include "cpu/rnn_math.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/rnn.h"
#include "errors.h"
#include "parallel.h"

namespace fg {
namespace rnn_detail {

Kernels<float> kernels_scalar_f32() { return scalar::kernels<float>(); }
Kernels<double> kernels_scalar_f64() { return scalar::kernels<double>(); }

namespace {

// ---------------------------------------------------------------------------
// dispatch
// ---------------------------------------------------------------------------

// The build gemm() uses (FASTGRAD_CPU_CAPABILITY / set_cpu_capability).
template <class S>
Kernels<S> pick_kernels() {
  const std::string cap = gemm_info();
  if constexpr (sizeof(S) == 4) {
    if (cap == "avx512") return kernels_avx512_f32();
    if (cap == "avx2") return kernels_avx2_f32();
    return kernels_scalar_f32();
  } else {
    if (cap == "avx512") return kernels_avx512_f64();
    if (cap == "avx2") return kernels_avx2_f64();
    return kernels_scalar_f64();
  }
}

int gates_of(RnnMode m) { return m == RnnMode::Lstm ? 4 : (m == RnnMode::Gru ? 3 : 1); }

int64_t ws_cols(RnnMode m, int64_t H) { return m == RnnMode::Lstm ? 6 * H : (m == RnnMode::Gru ? 5 * H : 2 * H); }

// Rows per parallel_for chunk: enough gate elements (~8K) per chunk that the
// pool hand-off stays small next to the exps.
int64_t row_grain(int64_t GH) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(GH, 1)); }

RnnMode check_mode(int mode, const char* op) {
  if (mode < 0 || mode > 3) throw std::invalid_argument(std::string(op) + ": unknown mode " + std::to_string(mode));
  return static_cast<RnnMode>(mode);
}

void check_float(const Array& a, DType dt, const char* op, const char* what) {
  if (a.device().type != DeviceType::CPU)
    throw std::invalid_argument(std::string(op) + ": " + what + " must be on the CPU");
  if (a.dtype != dt)
    throw TypeError(std::string(op) + ": " + what + " has dtype " + dtype_name(a.dtype) + ", expected " +
                    dtype_name(dt));
}

void check_shape(const Array& a, const Shape& want, const char* op, const char* what) {
  if (a.shape != want)
    throw std::invalid_argument(std::string(op) + ": " + what + " has shape " + shape_str(a.shape) + ", expected " +
                                shape_str(want));
}

// ---------------------------------------------------------------------------
// the recurrent product with the weight packed once
// ---------------------------------------------------------------------------

// C (M, N) = A (M, K) @ Bm (K, N) + beta * C for T steps with the same Bm
// (W_hh^T going forward, W_hh going back). gemm() would re-pack Bm into
// micro-panels at every step: for the thin products of a recurrence (M = the
// batch) that copy costs about as much as the multiply-adds. Here Bm is
// packed once per sequence and each step packs only the small A, then runs
// gemm's own micro-kernels over the tiles. Threads split the NR-wide column
// panels; each tile sums its K blocks in order, so the result does not
// depend on the thread count. The scalar build uses gemm() as it is.
template <class S>
class RecurrentProduct {
 public:
  RecurrentProduct(int64_t M, int64_t K, int64_t N, const S* Bm, int64_t rsB, int64_t csB, DType dt)
      : M_(M), K_(K), N_(N), Bm_(Bm), rsB_(rsB), csB_(csB) {
    using namespace gemm_detail;
    const std::string cap = gemm_info();
    if constexpr (sizeof(S) == 4) {
      if (cap == "avx512") kern_ = &ukernel_avx512_f32, MR_ = kAvx512MrF32, NR_ = kAvx512NrF32;
      if (cap == "avx2") kern_ = &ukernel_avx2_f32, MR_ = kAvx2MrF32, NR_ = kAvx2NrF32;
    } else {
      if (cap == "avx512") kern_ = &ukernel_avx512_f64, MR_ = kAvx512MrF64, NR_ = kAvx512NrF64;
      if (cap == "avx2") kern_ = &ukernel_avx2_f64, MR_ = kAvx2MrF64, NR_ = kAvx2NrF64;
    }
    if (!kern_) return;
    // K blocks of even size, at most 256 deep: a (kc, NR) B micro-panel then
    // stays in L1 (<= 32 KiB) while the A panels stream past it.
    kblocks_ = (K + 255) / 256;
    kc_ = (K + kblocks_ - 1) / kblocks_;
    npanels_ = (N + NR_ - 1) / NR_;
    mpanels_ = (M + MR_ - 1) / MR_;
    bp_ = empty({kblocks_ * npanels_ * kc_ * NR_}, dt);  // 64-byte aligned storage
    ap_ = empty({kblocks_ * mpanels_ * kc_ * MR_}, dt);
    S* dst = bp_.data<S>();
    for (int64_t kb = 0; kb < kblocks_; ++kb) {
      const int64_t k0 = kb * kc_, kcb = std::min(kc_, K - k0);
      for (int64_t p = 0; p < npanels_; ++p) {
        S* d = dst + (kb * npanels_ + p) * kc_ * NR_;
        const int64_t j0 = p * NR_, nr = std::min<int64_t>(NR_, N - j0);
        for (int64_t k = 0; k < kcb; ++k)
          for (int64_t j = 0; j < NR_; ++j) d[k * NR_ + j] = j < nr ? Bm[(k0 + k) * rsB + (j0 + j) * csB] : S(0);
      }
    }
  }

  void run(const S* A, int64_t rsA, S* C, int64_t rsC, S beta) {
    if (!kern_) {
      gemm<S>(M_, N_, K_, A, rsA, 1, Bm_, rsB_, csB_, C, rsC, 1, S(1), beta);
      return;
    }
    S* ap = ap_.data<S>();
    for (int64_t kb = 0; kb < kblocks_; ++kb) {  // A panels: (kc, MR) row-major, zero rows past M
      const int64_t k0 = kb * kc_, kcb = std::min(kc_, K_ - k0);
      for (int64_t i = 0; i < mpanels_; ++i) {
        S* d = ap + (kb * mpanels_ + i) * kc_ * MR_;
        const int64_t r0 = i * MR_, mr = std::min<int64_t>(MR_, M_ - r0);
        for (int64_t r = 0; r < MR_; ++r) {
          const S* src = A + (r0 + r) * rsA + k0;
          if (r < mr)
            for (int64_t k = 0; k < kcb; ++k) d[k * MR_ + r] = src[k];
          else
            for (int64_t k = 0; k < kcb; ++k) d[k * MR_ + r] = S(0);
        }
      }
    }
    const S* bp = bp_.data<S>();
    // ~64K multiply-adds per chunk: smaller products stay on one thread
    const int64_t per_panel = M_ * K_ * NR_;
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(per_panel, 1));
    parallel_for(npanels_, grain, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t j0 = p * NR_, nr = std::min<int64_t>(NR_, N_ - j0);
        for (int64_t i = 0; i < mpanels_; ++i) {
          const int64_t r0 = i * MR_, mr = std::min<int64_t>(MR_, M_ - r0);
          for (int64_t kb = 0; kb < kblocks_; ++kb) {
            const int64_t kcb = std::min(kc_, K_ - kb * kc_);
            kern_(kcb, ap + (kb * mpanels_ + i) * kc_ * MR_, bp + (kb * npanels_ + p) * kc_ * NR_,
                  C + r0 * rsC + j0, rsC, 1, S(1), kb == 0 ? beta : S(1), mr, nr);
          }
        }
      }
    });
  }

 private:
  int64_t M_, K_, N_;
  const S* Bm_;
  int64_t rsB_, csB_;
  gemm_detail::MicroKernel<S> kern_ = nullptr;
  int64_t MR_ = 0, NR_ = 0, kblocks_ = 0, kc_ = 0, npanels_ = 0, mpanels_ = 0;
  Array bp_, ap_;
};

// ---------------------------------------------------------------------------
// forward
// ---------------------------------------------------------------------------

template <class S>
void forward_impl(RnnMode mode, const Array& xp, const Array& h0, const Array* c0, const Array& w,
                  const Array* b_ih, const Array* b_hh, bool reverse, Array& out, Array* ws) {
  const Kernels<S> K = pick_kernels<S>();
  const int64_t T = xp.shape[0], B = xp.shape[1], GH = xp.shape[2], H = h0.shape[1], BH = B * H;
  const int64_t sT = xp.strides[0], sB = xp.strides[1];
  const S* X = xp.data<S>();
  const S* W = w.data<S>();
  S* Y = out.data<S>();
  S* HN = Y + T * BH;
  S* CN = HN + BH;
  const bool relu = mode == RnnMode::Relu;

  S* wsA = ws ? ws->data<S>() : nullptr;  // first region (gates / rznh / y)
  S* wsC = nullptr;                         // LSTM c region
  S* wsHp = nullptr;                        // h_prev region
  if (ws) {
    const int64_t a_cols = mode == RnnMode::Lstm || mode == RnnMode::Gru ? 4 * H : H;
    wsC = wsA + T * B * a_cols;
    wsHp = mode == RnnMode::Lstm ? wsC + T * BH : wsC;
  }
  // Scratch: the recurrent product of one step, GRU's per-step r, z, n, hn
  // without a workspace, LSTM's two alternating c buffers.
  Array gbuf_arr = empty({B, GH}, xp.dtype);
  Array aux_arr = empty({mode == RnnMode::Gru ? 4 * BH : 2 * BH}, xp.dtype);
  S* gbuf = gbuf_arr.data<S>();
  S* aux = aux_arr.data<S>();
  // Biases (zeros when the layer has none): GRU keeps b_ih (bx) and b_hh
  // (bh) apart, since b_hn sits inside r * (.); the others add one sum.
  Array bias_arr = zeros({2 * GH}, xp.dtype);
  S* bx = bias_arr.data<S>();
  S* bh = bx + GH;
  if (b_ih) {
    const S* bi = b_ih->data<S>();
    const S* bb = b_hh->data<S>();
    for (int64_t j = 0; j < GH; ++j) {
      if (mode == RnnMode::Gru) {
        bx[j] = bi[j];
        bh[j] = bb[j];
      } else {
        bx[j] = bi[j] + bb[j];
      }
    }
  }

  const S* hprev = h0.data<S>();
  const S* cprev = c0 ? c0->data<S>() : nullptr;
  const int64_t grain = row_grain(GH);
  RecurrentProduct<S> rec(B, H, GH, W, 1, H, xp.dtype);  // W_hh^T: (H, G*H)
  for (int64_t k = 0; k < T; ++k) {
    const int64_t t = reverse ? T - 1 - k : k;
    S* yt = Y + t * BH;
    S* g = mode == RnnMode::Lstm && ws ? wsA + t * B * GH : (mode == RnnMode::Tanh || relu ? yt : gbuf);
    rec.run(hprev, H, g, GH, S(0));  // h_prev @ W_hh^T
    if (ws) std::memcpy(wsHp + t * BH, hprev, sizeof(S) * BH);
    const S* xt = X + t * sT;
    if (mode == RnnMode::Lstm) {
      S* ct = ws ? wsC + t * BH : aux + (k & 1) * BH;
      parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i)
          K.lstm_fwd(H, xt + i * sB, bx, g + i * GH, cprev + i * H, ct + i * H, yt + i * H);
      });
      cprev = ct;
    } else if (mode == RnnMode::Gru) {
      S* r = ws ? wsA + t * B * 4 * H : aux;
      parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i)
          K.gru_fwd(H, xt + i * sB, bx, g + i * GH, bh, hprev + i * H, r + i * 4 * H, yt + i * H);
      });
    } else {
      parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i) K.rnn_fwd(H, xt + i * sB, bx, yt + i * H, relu);
      });
    }
    hprev = yt;
  }
  std::memcpy(HN, hprev, sizeof(S) * BH);
  if (mode == RnnMode::Lstm) std::memcpy(CN, cprev, sizeof(S) * BH);
  if (ws && (mode == RnnMode::Tanh || relu)) std::memcpy(wsA, Y, sizeof(S) * T * BH);
}

// ---------------------------------------------------------------------------
// backward
// ---------------------------------------------------------------------------

// d[j] += sum of the n rows of m (n, cols), row by row: a fixed order, and
// done per step while the step's gradients are still in cache.
template <class S>
void add_rows(int64_t n, int64_t cols, const S* m, S* d) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < cols; ++j) d[j] += m[r * cols + j];
}

template <class S>
void backward_impl(RnnMode mode, const Array& ws, const Array& grad, const Array* c0, const Array& w, bool reverse,
                   Array& dxp, Array& dh0, Array* dc0, Array& dw, Array* db_ih, Array* db_hh) {
  const Kernels<S> K = pick_kernels<S>();
  const int64_t T = ws.shape[0], B = ws.shape[1], H = w.shape[1], GH = w.shape[0], BH = B * H;
  const S* W = w.data<S>();
  const S* gY = grad.data<S>();
  const S* wsA = ws.data<S>();
  const int64_t a_cols = mode == RnnMode::Lstm || mode == RnnMode::Gru ? 4 * H : H;
  const S* wsC = wsA + T * B * a_cols;
  const S* wsHp = mode == RnnMode::Lstm ? wsC + T * BH : wsC;
  const bool relu = mode == RnnMode::Relu;
  S* DX = dxp.data<S>();
  S* dh = dh0.data<S>();  // the running gradient of h; ends as dh0
  S* dc = dc0 ? dc0->data<S>() : nullptr;
  std::memcpy(dh, gY + T * BH, sizeof(S) * BH);
  if (dc) std::memcpy(dc, gY + T * BH + BH, sizeof(S) * BH);
  Array dhh_arr = empty({mode == RnnMode::Gru ? T * B * GH : 0}, ws.dtype);  // GRU: grads of h W_hh^T + b_hh
  S* DHH = dhh_arr.data<S>();

  const int64_t grain = row_grain(GH);
  RecurrentProduct<S> rec(B, GH, H, W, H, 1, ws.dtype);  // W_hh: (G*H, H)
  for (int64_t k = T - 1; k >= 0; --k) {
    const int64_t t = reverse ? T - 1 - k : k;
    const S* dyt = gY + t * BH;
    S* dg = DX + t * B * GH;
    if (mode == RnnMode::Lstm) {
      const S* ct = wsC + t * BH;
      const S* cp = k > 0 ? wsC + (reverse ? t + 1 : t - 1) * BH : c0->data<S>();
      const S* gt = wsA + t * B * GH;
      parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i)
          K.lstm_bwd(H, gt + i * GH, ct + i * H, cp + i * H, dyt + i * H, dh + i * H, dc + i * H, dg + i * GH);
      });
      rec.run(dg, GH, dh, H, S(0));  // dh_prev = dgates @ W_hh
      if (db_ih) add_rows(B, GH, dg, db_ih->data<S>());
    } else if (mode == RnnMode::Gru) {
      const S* rt = wsA + t * B * 4 * H;
      const S* hp = wsHp + t * BH;
      S* dhht = DHH + t * B * GH;
      parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i)
          K.gru_bwd(H, rt + i * 4 * H, hp + i * H, dyt + i * H, dh + i * H, dg + i * GH, dhht + i * GH);
      });
      rec.run(dhht, GH, dh, H, S(1));  // dh_prev = dh * z + dhh @ W_hh
      if (db_ih) {
        add_rows(B, GH, dg, db_ih->data<S>());
        add_rows(B, GH, dhht, db_hh->data<S>());
      }
    } else {
      const S* yt = wsA + t * BH;
      parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i) K.rnn_bwd(H, yt + i * H, dyt + i * H, dh + i * H, dg + i * H, relu);
      });
      rec.run(dg, GH, dh, H, S(0));
      if (db_ih) add_rows(B, GH, dg, db_ih->data<S>());
    }
  }
  // dW_hh = sum over all rows of dgates^T h_prev, as one (GH, T*B) x (T*B, H) product
  const S* G = mode == RnnMode::Gru ? DHH : DX;
  gemm<S>(GH, H, T * B, G, 1, GH, wsHp, H, 1, dw.data<S>(), H, 1, S(1), S(0));
  // b_ih and b_hh enter the same sum outside GRU: the same gradient
  if (db_ih && mode != RnnMode::Gru) std::memcpy(db_hh->data<S>(), db_ih->data<S>(), sizeof(S) * GH);
}

}  // namespace
}  // namespace rnn_detail

// ---------------------------------------------------------------------------
// front ends
// ---------------------------------------------------------------------------

std::pair<Array, std::optional<Array>> rnn_forward(int mode_id, const Array& xp_in, const Array& h0_in,
                                                   const std::optional<Array>& c0_in, const Array& w_in,
                                                   const std::optional<Array>& b_ih_in,
                                                   const std::optional<Array>& b_hh_in, bool reverse, bool keep) {
  using namespace rnn_detail;
  const char* op = "rnn_forward";
  const RnnMode mode = check_mode(mode_id, op);
  const DType dt = xp_in.dtype;
  if (dt != DType::Float32 && dt != DType::Float64)
    throw TypeError(std::string(op) + ": expected float32 or float64, got " + dtype_name(dt));
  check_float(xp_in, dt, op, "input projection");
  check_float(h0_in, dt, op, "h0");
  check_float(w_in, dt, op, "weight_hh");
  if (xp_in.ndim() != 3)
    throw std::invalid_argument(std::string(op) + ": input projection must be 3-D (T, B, G*H), got " +
                                shape_str(xp_in.shape));
  if (h0_in.ndim() != 2)
    throw std::invalid_argument(std::string(op) + ": h0 must be 2-D (B, H), got " + shape_str(h0_in.shape));
  const int64_t T = xp_in.shape[0], B = xp_in.shape[1], H = h0_in.shape[1], G = gates_of(mode);
  if (T <= 0) throw std::invalid_argument(std::string(op) + ": expected sequence length to be larger than 0");
  check_shape(h0_in, {B, H}, op, "h0");
  check_shape(xp_in, {T, B, G * H}, op, "input projection");
  check_shape(w_in, {G * H, H}, op, "weight_hh");
  if ((mode == RnnMode::Lstm) != c0_in.has_value())
    throw std::invalid_argument(std::string(op) + ": c0 is required for LSTM and only for LSTM");
  if (c0_in) {
    check_float(*c0_in, dt, op, "c0");
    check_shape(*c0_in, {B, H}, op, "c0");
  }
  if (b_ih_in.has_value() != b_hh_in.has_value())
    throw std::invalid_argument(std::string(op) + ": pass both biases or neither");
  if (b_ih_in) {
    check_float(*b_ih_in, dt, op, "bias_ih");
    check_shape(*b_ih_in, {G * H}, op, "bias_ih");
    check_float(*b_hh_in, dt, op, "bias_hh");
    check_shape(*b_hh_in, {G * H}, op, "bias_hh");
  }
  const Array xp = xp_in.strides[2] == 1 || G * H == 1 ? xp_in : contiguous(xp_in);
  const Array h0 = contiguous(h0_in), w = contiguous(w_in);
  std::optional<Array> c0, b_ih, b_hh;
  if (c0_in) c0 = contiguous(*c0_in);
  if (b_ih_in) b_ih = contiguous(*b_ih_in), b_hh = contiguous(*b_hh_in);
  const int64_t n_states = mode == RnnMode::Lstm ? 2 : 1;
  Array out = empty({T * B * H + n_states * B * H}, dt);
  std::optional<Array> ws;
  if (keep) ws = empty({T, B, ws_cols(mode, H)}, dt);
  if (B > 0 && H > 0) {
    const Array* c = c0 ? &*c0 : nullptr;
    const Array* bi = b_ih ? &*b_ih : nullptr;
    const Array* bh = b_hh ? &*b_hh : nullptr;
    Array* wsp = ws ? &*ws : nullptr;
    if (dt == DType::Float32)
      forward_impl<float>(mode, xp, h0, c, w, bi, bh, reverse, out, wsp);
    else
      forward_impl<double>(mode, xp, h0, c, w, bi, bh, reverse, out, wsp);
  }
  return {out, ws};
}

RnnGrads rnn_backward(int mode_id, const Array& ws, const Array& grad_in, const Array& h0,
                      const std::optional<Array>& c0_in, const Array& w_in, bool bias, bool reverse) {
  using namespace rnn_detail;
  const char* op = "rnn_backward";
  const RnnMode mode = check_mode(mode_id, op);
  const DType dt = ws.dtype;
  if (dt != DType::Float32 && dt != DType::Float64)
    throw TypeError(std::string(op) + ": expected float32 or float64, got " + dtype_name(dt));
  check_float(ws, dt, op, "workspace");
  check_float(grad_in, dt, op, "grad");
  check_float(w_in, dt, op, "weight_hh");
  if (ws.ndim() != 3 || !ws.is_contiguous())
    throw std::invalid_argument(std::string(op) + ": not a workspace of rnn_forward");
  const int64_t T = ws.shape[0], B = ws.shape[1], G = gates_of(mode);
  if (w_in.ndim() != 2) throw std::invalid_argument(std::string(op) + ": weight_hh must be 2-D");
  const int64_t H = w_in.shape[1];
  check_shape(w_in, {G * H, H}, op, "weight_hh");
  check_shape(ws, {T, B, ws_cols(mode, H)}, op, "workspace");
  check_shape(h0, {B, H}, op, "h0");
  const int64_t n_states = mode == RnnMode::Lstm ? 2 : 1;
  check_shape(grad_in, {T * B * H + n_states * B * H}, op, "grad");
  if ((mode == RnnMode::Lstm) != c0_in.has_value())
    throw std::invalid_argument(std::string(op) + ": c0 is required for LSTM and only for LSTM");
  const Array grad = contiguous(grad_in), w = contiguous(w_in);
  std::optional<Array> c0;
  if (c0_in) {
    check_float(*c0_in, dt, op, "c0");
    check_shape(*c0_in, {B, H}, op, "c0");
    c0 = contiguous(*c0_in);
  }
  Array dxp = empty({T, B, G * H}, dt), dh0 = empty({B, H}, dt), dw = empty({G * H, H}, dt);
  std::optional<Array> dc0, db_ih, db_hh;
  if (mode == RnnMode::Lstm) dc0 = empty({B, H}, dt);
  if (bias) db_ih = zeros({G * H}, dt), db_hh = zeros({G * H}, dt);
  if (B == 0 || H == 0) {
    dw = zeros({G * H, H}, dt);
  } else {
    Array* dc = dc0 ? &*dc0 : nullptr;
    Array* dbi = db_ih ? &*db_ih : nullptr;
    Array* dbh = db_hh ? &*db_hh : nullptr;
    const Array* c = c0 ? &*c0 : nullptr;
    if (dt == DType::Float32)
      backward_impl<float>(mode, ws, grad, c, w, reverse, dxp, dh0, dc, dw, dbi, dbh);
    else
      backward_impl<double>(mode, ws, grad, c, w, reverse, dxp, dh0, dc, dw, dbi, dbh);
  }
  return {dxp, dh0, dc0, dw, db_ih, db_hh};
}

}  // namespace fg
