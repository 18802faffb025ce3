// rnn_math.h - the per-element math of the recurrent cells (RNN tanh/relu,
// LSTM, GRU), forward and backward, over one batch row of H units.
//
// rnn.cpp runs the time loop (one GEMM per step for h @ W_hh^T) and calls
// these row routines between the GEMMs. They are written as plain loops over
// contiguous rows with a branch-free exp, so the compiler vectorises them;
// three instruction-set builds include this file: rnn.cpp (baseline x86-64,
// FG_RNN_ISA=scalar), rnn_avx2.cpp (-mavx2 -mfma) and rnn_avx512.cpp. As in
// optim_math.h, everything compiled with ISA flags lives in the namespace
// fg::rnn_detail::FG_RNN_ISA so no AVX instruction leaks into baseline code
// through the linker merging inline functions; the math uses builtins only.
//
// Gate layouts follow torch: LSTM rows are [i | f | g | o], GRU rows
// [r | z | n], each H wide.
#pragma once
#include <cstdint>

namespace fg {
namespace rnn_detail {

// The row routines of one build, for one dtype T. Pointers are rows of H
// (or G*H) contiguous elements; see each routine below for its Args.
template <class T>
struct Kernels {
  void (*lstm_fwd)(int64_t H, const T* xp, const T* b, T* g, const T* cp, T* c, T* h);
  void (*lstm_bwd)(int64_t H, const T* g, const T* c, const T* cp, const T* dy, const T* dhr, T* dc, T* dg);
  void (*gru_fwd)(int64_t H, const T* xp, const T* bx, const T* hh, const T* b, const T* hp, T* ws, T* h);
  void (*gru_bwd)(int64_t H, const T* ws, const T* hp, const T* dy, T* dh, T* dxp, T* dhh);
  void (*rnn_fwd)(int64_t H, const T* xp, const T* b, T* y, bool relu);
  void (*rnn_bwd)(int64_t H, const T* y, const T* dy, const T* dhr, T* dpre, bool relu);
};

Kernels<float> kernels_scalar_f32();
Kernels<double> kernels_scalar_f64();
Kernels<float> kernels_avx2_f32();
Kernels<double> kernels_avx2_f64();
Kernels<float> kernels_avx512_f32();
Kernels<double> kernels_avx512_f64();

#ifdef FG_RNN_ISA
namespace FG_RNN_ISA {

// ---------------------------------------------------------------------------
// exp, sigmoid, tanh without branches or library calls (so loops vectorise).
// ---------------------------------------------------------------------------

template <class T> struct ExpConsts;

// Cephes expf: x = k ln2 + r, |r| <= ln2/2, e^r by a degree-7 polynomial;
// ~1 ulp. Inputs are clamped so 2^k stays a normal float: sigmoid and tanh
// saturate long before the clamp matters.
template <> struct ExpConsts<float> {
  using Bits = int32_t;
  static constexpr float lo = -87.0f, hi = 88.0f;
  static constexpr float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  static constexpr int mant = 23, bias = 127;
};

// Cephes exp: the same reduction, e^r by a Pade form 1 + 2 r P / (Q - r P).
template <> struct ExpConsts<double> {
  using Bits = int64_t;
  static constexpr double lo = -708.0, hi = 709.0;
  static constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int mant = 52, bias = 1023;
};

template <class T>
inline T fast_exp(T x) {
  using C = ExpConsts<T>;
  using Bits = typename C::Bits;
  x = x < C::lo ? C::lo : (x > C::hi ? C::hi : x);
  // k = round(x / ln2): the shifter puts k (two's complement) in the low bits
  T t = x * T(1.4426950408889634073599) + C::shifter;
  T k = t - C::shifter;
  Bits tb, sb;
  T shifter = C::shifter;
  __builtin_memcpy(&tb, &t, sizeof(T));
  __builtin_memcpy(&sb, &shifter, sizeof(T));
  Bits ki = tb - sb;
  T p;
  if constexpr (sizeof(T) == 4) {
    T r = x - k * 0.693359375f + k * 2.12194440e-4f;
    T z = r * r;
    p = ((((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r + 4.1665795894E-2f) * r +
           1.6666665459E-1f) * r + 5.0000001201E-1f) * z + r) + 1.0f;
  } else {
    T r = x - k * 6.93145751953125E-1 - k * 1.42860682030941723212E-6;
    T z = r * r;
    T px = r * ((1.26177193074810590878E-4 * z + 3.02994407707441961300E-2) * z + 9.99999999999999999910E-1);
    T qx = ((3.00198505138664455042E-6 * z + 2.52448340349684104192E-3) * z + 2.27265548208155028766E-1) * z +
           2.00000000000000000009E0;
    p = T(1) + T(2) * (px / (qx - px));
  }
  Bits sbits = (ki + C::bias) << C::mant;  // 2^k
  T scale;
  __builtin_memcpy(&scale, &sbits, sizeof(T));
  return p * scale;
}

template <class T> inline T sigm(T x) { return T(1) / (T(1) + fast_exp(-x)); }

// tanh(x) = 1 - 2 / (e^2x + 1): saturates cleanly to +-1; absolute error
// ~1 ulp of 1 near 0 (relative error grows there, which no cell notices).
template <class T> inline T tnh(T x) { return T(1) - T(2) / (fast_exp(T(2) * x) + T(1)); }

// ---------------------------------------------------------------------------
// LSTM
// ---------------------------------------------------------------------------

// Forward of one row.
// Args:
//   xp  (4H) input projection x W_ih^T;  b (4H) b_ih + b_hh (zeros if none)
//   g   (4H) in: h_prev W_hh^T; out: the activated gates i, f, g, o
//   cp  (H)  c_prev;  c (H) out: c = f * c_prev + i * g;  h (H) out: o * tanh(c)
template <class T>
void lstm_fwd(int64_t H, const T* __restrict xp, const T* __restrict b, T* __restrict g, const T* __restrict cp,
              T* __restrict c, T* __restrict h) {
  for (int64_t j = 0; j < H; ++j) {
    T i = sigm(xp[j] + g[j] + b[j]);
    T f = sigm(xp[H + j] + g[H + j] + b[H + j]);
    T gg = tnh(xp[2 * H + j] + g[2 * H + j] + b[2 * H + j]);
    T o = sigm(xp[3 * H + j] + g[3 * H + j] + b[3 * H + j]);
    g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
    T cn = f * cp[j] + i * gg;
    c[j] = cn;
    h[j] = o * tnh(cn);
  }
}

// Backward of one row.
// Args:
//   g (4H) activated gates; c (H) this step's cell state; cp (H) c_prev
//   dy (H) gradient of this step's output; dhr (H) gradient from step t+1
//   dc (H) in: gradient of c from step t+1; out: gradient of c_prev
//   dg (4H) out: gradients of the pre-activation gates
template <class T>
void lstm_bwd(int64_t H, const T* __restrict g, const T* __restrict c, const T* __restrict cp,
              const T* __restrict dy, const T* __restrict dhr, T* __restrict dc, T* __restrict dg) {
  for (int64_t j = 0; j < H; ++j) {
    T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
    T dh = dy[j] + dhr[j];
    T tc = tnh(c[j]);
    T dcj = dc[j] + dh * o * (T(1) - tc * tc);
    dg[j] = dcj * gg * i * (T(1) - i);
    dg[H + j] = dcj * cp[j] * f * (T(1) - f);
    dg[2 * H + j] = dcj * i * (T(1) - gg * gg);
    dg[3 * H + j] = dh * tc * o * (T(1) - o);
    dc[j] = dcj * f;
  }
}

// ---------------------------------------------------------------------------
// GRU
// ---------------------------------------------------------------------------

// Forward of one row.
// Args:
//   xp (3H) x W_ih^T;  bx (3H) b_ih;  hh (3H) h_prev W_hh^T;  b (3H) b_hh (biases: zeros if none)
//   hp (H) h_prev;  ws (4H) out: r, z, n, h_prev W_hn^T + b_hn (for backward)
//   h (H) out: n + z * (h_prev - n)  (= (1 - z) n + z h_prev, as torch computes it)
template <class T>
void gru_fwd(int64_t H, const T* __restrict xp, const T* __restrict bx, const T* __restrict hh,
             const T* __restrict b, const T* __restrict hp, T* __restrict ws, T* __restrict h) {
  for (int64_t j = 0; j < H; ++j) {
    T r = sigm((xp[j] + bx[j]) + (hh[j] + b[j]));
    T z = sigm((xp[H + j] + bx[H + j]) + (hh[H + j] + b[H + j]));
    T hn = hh[2 * H + j] + b[2 * H + j];
    T n = tnh((xp[2 * H + j] + bx[2 * H + j]) + r * hn);
    ws[j] = r, ws[H + j] = z, ws[2 * H + j] = n, ws[3 * H + j] = hn;
    h[j] = n + z * (hp[j] - n);
  }
}

// Backward of one row.
// Args:
//   ws (4H) r, z, n, hn from forward;  hp (H) h_prev;  dy (H) output gradient
//   dh (H) in: gradient from step t+1; out: dh_total * z (the direct path to h_prev)
//   dxp (3H) out: gradients of x W_ih^T + b_ih;  dhh (3H) out: of h W_hh^T + b_hh
template <class T>
void gru_bwd(int64_t H, const T* __restrict ws, const T* __restrict hp, const T* __restrict dy, T* __restrict dh,
             T* __restrict dxp, T* __restrict dhh) {
  for (int64_t j = 0; j < H; ++j) {
    T r = ws[j], z = ws[H + j], n = ws[2 * H + j], hn = ws[3 * H + j];
    T d = dy[j] + dh[j];
    T dz = d * (hp[j] - n) * z * (T(1) - z);
    T dn = d * (T(1) - z) * (T(1) - n * n);
    T dr = dn * hn * r * (T(1) - r);
    dxp[j] = dr, dxp[H + j] = dz, dxp[2 * H + j] = dn;
    dhh[j] = dr, dhh[H + j] = dz, dhh[2 * H + j] = dn * r;
    dh[j] = d * z;
  }
}

// ---------------------------------------------------------------------------
// Elman RNN
// ---------------------------------------------------------------------------

// y (H) in: h_prev W_hh^T; out: act(xp + y + b), b = b_ih + b_hh (zeros if none).
template <class T>
void rnn_fwd(int64_t H, const T* __restrict xp, const T* __restrict b, T* __restrict y, bool relu) {
  if (relu) {
    for (int64_t j = 0; j < H; ++j) {
      T v = xp[j] + y[j] + b[j];
      y[j] = v > T(0) ? v : T(0);
    }
  } else {
    for (int64_t j = 0; j < H; ++j) y[j] = tnh(xp[j] + y[j] + b[j]);
  }
}

// dpre (H) out: (dy + dhr) * act'(.), from the step's output y.
template <class T>
void rnn_bwd(int64_t H, const T* __restrict y, const T* __restrict dy, const T* __restrict dhr, T* __restrict dpre,
             bool relu) {
  if (relu) {
    for (int64_t j = 0; j < H; ++j) dpre[j] = y[j] > T(0) ? dy[j] + dhr[j] : T(0);
  } else {
    for (int64_t j = 0; j < H; ++j) dpre[j] = (dy[j] + dhr[j]) * (T(1) - y[j] * y[j]);
  }
}

template <class T>
Kernels<T> kernels() {
  return Kernels<T>{&lstm_fwd<T>, &lstm_bwd<T>, &gru_fwd<T>, &gru_bwd<T>, &rnn_fwd<T>, &rnn_bwd<T>};
}

}  // namespace FG_RNN_ISA
#endif  // FG_RNN_ISA

}  // namespace rnn_detail
}  // namespace fg
