// norm.cpp - fused layer norm and batch norm (see norm.h for the contract).
//
// Sums run in double with 8 independent lanes in a fixed order: the loops
// vectorise, float32 statistics keep ~1e-16 relative error before the final
// rounding, and every thread count gives the same bits. Work splits by rows
// (layer norm), by channels (batch norm) or by column blocks (the layer-norm
// dweight / dbias sums), never inside one sum.
// CUDA arrays take the same checks, then cuda/norm.h's kernels.
#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/norm.h"
#include "errors.h"
#include "parallel.h"

namespace fg {
namespace {

// Elements per parallel_for task (the kernels are memory-bound).
constexpr int64_t kGrain = 32768;
// Columns per task of the layer-norm dweight / dbias pass (accumulators in L1).
constexpr int64_t kCols = 256;

// ---- checks ------------------------------------------------------------------

void check_input(const char* op, const char* name, const Array& x) {
  if (!is_floating(x.dtype))
    throw TypeError(std::string(op) + ": expected " + name + " of dtype float32 or float64, got " +
                    dtype_name(x.dtype));
  if (!x.is_contiguous() && x.numel() > 0)
    throw std::invalid_argument(std::string(op) + ": " + name + " of shape " + shape_str(x.shape) +
                                " must be contiguous");
}

void check_like(const char* op, const char* name, const Array& p, const Array& x, int64_t n) {
  check_same_device(op, x.device(), p.device());
  if (p.dtype != x.dtype)
    throw TypeError(std::string(op) + ": " + name + " has dtype " + dtype_name(p.dtype) + " but the input has " +
                    dtype_name(x.dtype));
  if (p.numel() != n)
    throw std::invalid_argument(std::string(op) + ": " + name + " of shape " + shape_str(p.shape) + " should have " +
                                std::to_string(n) + " elements (input of shape " + shape_str(x.shape) + ")");
  if (!p.is_contiguous()) throw std::invalid_argument(std::string(op) + ": " + name + " must be contiguous");
}

void check_opt(const char* op, const char* name, const std::optional<Array>& p, const Array& x, int64_t n) {
  if (p) check_like(op, name, *p, x, n);
}

template <class T>
const T* ptr(const std::optional<Array>& p) {
  return p ? p->data<T>() : nullptr;
}

// ---- sums --------------------------------------------------------------------

// sum of f(i) for i in [0, n), in double, 8 lanes.
template <class F>
double lane_sum(int64_t n, const F& f) {
  double a[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) a[k] += f(i + k);
  for (int k = 0; i < n; ++i, ++k) a[k] += f(i);
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// sum over one channel of (N, C, L): f(n, l) for n < N, l < L.
template <class F>
double channel_sum(int64_t N, int64_t L, const F& f) {
  if (L == 1) return lane_sum(N, [&](int64_t n) { return f(n, 0); });
  double s = 0;
  for (int64_t n = 0; n < N; ++n) s += lane_sum(L, [&](int64_t l) { return f(n, l); });
  return s;
}

template <class Fn>
void dispatch_float(DType t, Fn&& fn) {
  if (t == DType::Float32) fn(float{});
  else fn(double{});
}

// ---- layer norm ----------------------------------------------------------------

template <class T>
void ln_forward(const T* x, T* y, T* mean, T* rstd, const T* w, const T* b, int64_t rows, int64_t m, double eps) {
  parallel_for(rows, std::max<int64_t>(1, kGrain / m), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * m;
      T* yr = y + r * m;
      const double mu = lane_sum(m, [&](int64_t i) { return static_cast<double>(xr[i]); }) / m;
      const double var = lane_sum(m, [&](int64_t i) {
                           const double d = static_cast<double>(xr[i]) - mu;
                           return d * d;
                         }) / m;
      const double rs = 1.0 / std::sqrt(var + eps);
      mean[r] = static_cast<T>(mu);
      rstd[r] = static_cast<T>(rs);
      const T mt = static_cast<T>(mu), rt = static_cast<T>(rs);
      // Four loops rather than a branch per element, so each vectorises.
      if (w && b)
        for (int64_t i = 0; i < m; ++i) yr[i] = (xr[i] - mt) * rt * w[i] + b[i];
      else if (w)
        for (int64_t i = 0; i < m; ++i) yr[i] = (xr[i] - mt) * rt * w[i];
      else if (b)
        for (int64_t i = 0; i < m; ++i) yr[i] = (xr[i] - mt) * rt + b[i];
      else
        for (int64_t i = 0; i < m; ++i) yr[i] = (xr[i] - mt) * rt;
    }
  });
}

// dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)), gy = dy * w.
template <class T>
void ln_backward_dx(const T* dy, const T* x, const T* mean, const T* rstd, const T* w, T* dx, int64_t rows,
                    int64_t m) {
  parallel_for(rows, std::max<int64_t>(1, kGrain / m), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* g = dy + r * m;
      const T* xr = x + r * m;
      T* o = dx + r * m;
      const T mu = mean[r], rs = rstd[r];
      auto gy = [&](int64_t i) { return w ? g[i] * w[i] : g[i]; };
      const double a = lane_sum(m, [&](int64_t i) { return static_cast<double>(gy(i)); });
      const double c = lane_sum(m, [&](int64_t i) { return static_cast<double>(gy(i)) * ((xr[i] - mu) * rs); });
      const T am = static_cast<T>(a / m), cm = static_cast<T>(c / m);
      for (int64_t i = 0; i < m; ++i) o[i] = rs * (gy(i) - am - (xr[i] - mu) * rs * cm);
    }
  });
}

// dw[j] = sum_r dy[r, j] xhat[r, j], db[j] = sum_r dy[r, j]: column blocks,
// rows in order.
template <class T>
void ln_backward_dwdb(const T* dy, const T* x, const T* mean, const T* rstd, T* dw, T* db, int64_t rows,
                      int64_t m) {
  const int64_t nblk = (m + kCols - 1) / kCols;
  parallel_for(nblk, std::max<int64_t>(1, kGrain / std::max<int64_t>(rows * kCols, 1)), [&](int64_t b0, int64_t b1) {
    double sw[kCols], sb[kCols];
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t j0 = blk * kCols, nj = std::min(kCols, m - j0);
      std::fill_n(sw, nj, 0.0);
      std::fill_n(sb, nj, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const T* g = dy + r * m + j0;
        const T* xr = x + r * m + j0;
        const T mu = mean[r], rs = rstd[r];
        for (int64_t j = 0; j < nj; ++j) {
          sw[j] += static_cast<double>(g[j]) * static_cast<double>((xr[j] - mu) * rs);
          sb[j] += static_cast<double>(g[j]);
        }
      }
      for (int64_t j = 0; j < nj; ++j) {
        if (dw) dw[j0 + j] = static_cast<T>(sw[j]);
        if (db) db[j0 + j] = static_cast<T>(sb[j]);
      }
    }
  });
}

// ---- batch norm -------------------------------------------------------------------
// x is (N, C, L): element (n, c, l) at (n * C + c) * L + l.

struct BnShape {
  int64_t N, C, L;
};

BnShape bn_shape(const char* op, const Array& x) {
  if (x.ndim() < 2)
    throw std::invalid_argument(std::string(op) + ": expected at least 2-D input (N, C, ...), got shape " +
                                shape_str(x.shape));
  BnShape s{x.shape[0], x.shape[1], 1};
  for (int d = 2; d < x.ndim(); ++d) s.L *= x.shape[d];
  return s;
}

template <class T>
void bn_forward(const T* x, T* y, T* mean, T* rstd, T* var, const T* w, const T* b, const T* rm, const T* rv,
                BnShape s, bool training, double eps) {
  const int64_t M = s.N * s.L;
  parallel_for(s.C, std::max<int64_t>(1, kGrain / std::max<int64_t>(M, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      auto at = [&](int64_t n, int64_t l) { return (n * s.C + c) * s.L + l; };
      double mu, v;
      if (training) {
        mu = channel_sum(s.N, s.L, [&](int64_t n, int64_t l) { return static_cast<double>(x[at(n, l)]); }) / M;
        v = channel_sum(s.N, s.L, [&](int64_t n, int64_t l) {
              const double d = static_cast<double>(x[at(n, l)]) - mu;
              return d * d;
            }) / M;
      } else {
        mu = static_cast<double>(rm[c]);
        v = static_cast<double>(rv[c]);
      }
      const double rs = 1.0 / std::sqrt(v + eps);
      mean[c] = static_cast<T>(mu);
      rstd[c] = static_cast<T>(rs);
      var[c] = static_cast<T>(v);
      const T mt = static_cast<T>(mu), rt = static_cast<T>(rs);
      const T wc = w ? w[c] : T(1), bc = b ? b[c] : T(0);
      for (int64_t n = 0; n < s.N; ++n) {
        const T* xr = x + at(n, 0);
        T* yr = y + at(n, 0);
        for (int64_t l = 0; l < s.L; ++l) yr[l] = (xr[l] - mt) * rt * wc + bc;
      }
    }
  });
}

template <class T>
void bn_backward(const T* dy, const T* x, const T* mean, const T* rstd, const T* w, T* dx, T* dw, T* db, BnShape s,
                 bool training) {
  const int64_t M = s.N * s.L;
  parallel_for(s.C, std::max<int64_t>(1, kGrain / std::max<int64_t>(M, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      auto at = [&](int64_t n, int64_t l) { return (n * s.C + c) * s.L + l; };
      const T mu = mean[c], rs = rstd[c], wc = w ? w[c] : T(1);
      const double a = channel_sum(s.N, s.L, [&](int64_t n, int64_t l) { return static_cast<double>(dy[at(n, l)]); });
      const double cc = channel_sum(s.N, s.L, [&](int64_t n, int64_t l) {
        return static_cast<double>(dy[at(n, l)]) * static_cast<double>((x[at(n, l)] - mu) * rs);
      });
      if (dw) dw[c] = static_cast<T>(cc);
      if (db) db[c] = static_cast<T>(a);
      const T k = wc * rs;
      // training: the batch statistics depend on x too (the mean and xhat terms)
      const T am = training ? static_cast<T>(a / M) : T(0), cm = training ? static_cast<T>(cc / M) : T(0);
      for (int64_t n = 0; n < s.N; ++n) {
        const T* g = dy + at(n, 0);
        const T* xr = x + at(n, 0);
        T* o = dx + at(n, 0);
        for (int64_t l = 0; l < s.L; ++l) o[l] = k * (g[l] - am - (xr[l] - mu) * rs * cm);
      }
    }
  });
}

Array empty_like_vec(bool want, int64_t n, const Array& x) { return empty({want ? n : 0}, x.dtype, x.device()); }

}  // namespace

// ---------------------------------------------------------------------------------

std::tuple<Array, Array, Array> layer_norm_forward(const Array& x, int64_t m, const std::optional<Array>& weight,
                                                   const std::optional<Array>& bias, double eps) {
  const char* op = "layer_norm";
  check_input(op, "input", x);
  if (m <= 0 || x.numel() % m != 0)
    throw std::invalid_argument(std::string(op) + ": normalized size " + std::to_string(m) +
                                " does not divide the input of shape " + shape_str(x.shape));
  check_opt(op, "weight", weight, x, m);
  check_opt(op, "bias", bias, x, m);
  return on_device(op, x.device(), [&] {
    const int64_t rows = x.numel() / m;
    Array y = empty(x.shape, x.dtype, x.device());
    Array mean = empty({rows}, x.dtype, x.device()), rstd = empty({rows}, x.dtype, x.device());
    dispatch_float(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      ln_forward<T>(x.data<T>(), y.data<T>(), mean.data<T>(), rstd.data<T>(), ptr<T>(weight), ptr<T>(bias), rows, m,
                    eps);
    });
    return std::make_tuple(y, mean, rstd);
  }, [&] { return cuda::layer_norm_forward(x, m, weight, bias, eps); });
}

std::tuple<Array, Array, Array> layer_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool want_dw, bool want_db) {
  const char* op = "layer_norm_backward";
  check_input(op, "input", x);
  check_like(op, "grad", dy, x, x.numel());
  const int64_t rows = mean.numel();
  if (rows <= 0 || x.numel() % rows != 0)
    throw std::invalid_argument(std::string(op) + ": mean of shape " + shape_str(mean.shape) +
                                " does not match the input of shape " + shape_str(x.shape));
  const int64_t m = x.numel() / rows;
  check_like(op, "mean", mean, x, rows);
  check_like(op, "rstd", rstd, x, rows);
  check_opt(op, "weight", weight, x, m);
  return on_device(op, x.device(), [&] {
    Array dx = empty(x.shape, x.dtype, x.device());
    Array dw = empty_like_vec(want_dw, m, x), db = empty_like_vec(want_db, m, x);
    dispatch_float(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      ln_backward_dx<T>(dy.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(), ptr<T>(weight), dx.data<T>(),
                        rows, m);
      if (want_dw || want_db)
        ln_backward_dwdb<T>(dy.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                            want_dw ? dw.data<T>() : nullptr, want_db ? db.data<T>() : nullptr, rows, m);
    });
    return std::make_tuple(dx, dw, db);
  }, [&] { return cuda::layer_norm_backward(dy, x, mean, rstd, weight, want_dw, want_db); });
}

std::tuple<Array, Array, Array, Array> batch_norm_forward(const Array& x, const std::optional<Array>& weight,
                                                          const std::optional<Array>& bias,
                                                          const std::optional<Array>& running_mean,
                                                          const std::optional<Array>& running_var, bool training,
                                                          double eps) {
  const char* op = "batch_norm";
  check_input(op, "input", x);
  const BnShape s = bn_shape(op, x);
  check_opt(op, "weight", weight, x, s.C);
  check_opt(op, "bias", bias, x, s.C);
  check_opt(op, "running_mean", running_mean, x, s.C);
  check_opt(op, "running_var", running_var, x, s.C);
  if (training && s.N * s.L <= 1)
    throw std::invalid_argument(std::string(op) + ": expected more than 1 value per channel when training, got input "
                                "of shape " + shape_str(x.shape));
  if (!training && (!running_mean || !running_var))
    throw std::invalid_argument(std::string(op) + ": running_mean and running_var are required when training=False");
  return on_device(op, x.device(), [&] {
    Array y = empty(x.shape, x.dtype, x.device());
    Array mean = empty({s.C}, x.dtype, x.device()), rstd = empty({s.C}, x.dtype, x.device()),
          var = empty({s.C}, x.dtype, x.device());
    dispatch_float(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      bn_forward<T>(x.data<T>(), y.data<T>(), mean.data<T>(), rstd.data<T>(), var.data<T>(), ptr<T>(weight),
                    ptr<T>(bias), ptr<T>(running_mean), ptr<T>(running_var), s, training, eps);
    });
    return std::make_tuple(y, mean, rstd, var);
  }, [&] { return cuda::batch_norm_forward(x, weight, bias, running_mean, running_var, training, eps); });
}

std::tuple<Array, Array, Array> batch_norm_backward(const Array& dy, const Array& x, const Array& mean,
                                                    const Array& rstd, const std::optional<Array>& weight,
                                                    bool training, bool want_dw, bool want_db) {
  const char* op = "batch_norm_backward";
  check_input(op, "input", x);
  const BnShape s = bn_shape(op, x);
  check_like(op, "grad", dy, x, x.numel());
  check_like(op, "mean", mean, x, s.C);
  check_like(op, "rstd", rstd, x, s.C);
  check_opt(op, "weight", weight, x, s.C);
  return on_device(op, x.device(), [&] {
    Array dx = empty(x.shape, x.dtype, x.device());
    Array dw = empty_like_vec(want_dw, s.C, x), db = empty_like_vec(want_db, s.C, x);
    dispatch_float(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      bn_backward<T>(dy.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(), ptr<T>(weight), dx.data<T>(),
                     want_dw ? dw.data<T>() : nullptr, want_db ? db.data<T>() : nullptr, s, training);
    });
    return std::make_tuple(dx, dw, db);
  }, [&] { return cuda::batch_norm_backward(dy, x, mean, rstd, weight, training, want_dw, want_db); });
}

}  // namespace fg
