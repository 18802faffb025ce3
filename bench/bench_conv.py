"""Convolution workbench: fastgrad's conv2d against PyTorch (CPU) and a NumPy
im2col + matmul reference, float32, forward and forward + backward (input,
weight and bias gradients), in images/s and GFLOP/s.

Cases (the issue's targets, plus a deeper layer):
  a  batch 32, 3 -> 32 channels, 32x32, 3x3, padding 1   (a CIFAR stem)
  b  batch 64, 1 -> 16 channels, 28x28, 5x5, no padding  (a LeNet / MNIST stem)
  c  batch 32, 32 -> 64 channels, 16x16, 3x3, padding 1  (a deeper layer)
  d2, d3  the DigitsCNN's 8x8 32 -> 32 and 4x4 32 -> 64 layers (batch 32)

For each case and thread count: the median of several runs (after warm-up) of
  fwd      y = conv2d(x, w, b) without recording gradients
  fwd+bwd  y = conv2d(x, w, b); y.backward(g) with x, w, b requiring grad
and, for fastgrad, the three native kernels on their own (forward, input
gradient, weight gradient) to show where the time goes. GFLOP/s counts 2
flops per multiply-add: the forward does N*O*OH*OW*C*kh*kw of them and the
backward twice as many; compare with the machine's peak of ~117 GFLOP/s per
core (2.8 GHz x 2 AVX-512 FMA units x 16 lanes x 2 flops... ~179 nominal, ~117
measured for large GEMMs here). Ratios are torch time / fastgrad time (> 1:
fastgrad faster). The NumPy reference runs with NumPy's own BLAS threading.

    PYTHONPATH=python python bench/bench_conv.py [--threads 1 2] [--quick] [--repeat 3] [--clock cpu]

--clock cpu times with the process's CPU time instead of wall time: on a
shared machine it is not inflated by waiting for a core (meaningful for one
thread only: with two it sums both threads). NumPy's BLAS is limited to one
thread (OPENBLAS_NUM_THREADS=1 unless set): its idle threads spin after each
call and would steal the second core from the two-thread runs.
FASTGRAD_CPU_CAPABILITY=avx2|avx512 forces a GEMM micro-kernel path;
FASTGRAD_CONV_DIRECT=0|1 turns conv.cpp's direct stride-1 path off / on for
every eligible convolution (unset: where it measured faster).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads its BLAS
import numpy as np  # noqa: E402

import fastgrad as fg  # noqa: E402
import fastgrad.nn.functional as F  # noqa: E402
from fastgrad import _C  # noqa: E402

CASES = {
    "a": (32, 3, 32, 32, 32, 3, 1),
    "b": (64, 1, 28, 28, 16, 5, 0),
    "c": (32, 32, 16, 16, 64, 3, 1),
    "d2": (32, 32, 8, 8, 32, 3, 1),   # fastgrad.models.DigitsCNN's second conv (batch 32)
    "d3": (32, 32, 4, 4, 64, 3, 1),   # and its third
}


CLOCK = time.perf_counter


def median_ms(fn, budget_s, repeat=1):
    """Median wall time of fn() in ms over as many runs as fit in budget_s
    (5..60), after two warm-up runs; with repeat > 1, the median of that many
    such medians (the machine is shared: single medians move)."""
    fn()
    fn()
    t0 = CLOCK()
    fn()
    once = max(CLOCK() - t0, 1e-7)
    reps = int(min(60, max(5, budget_s / once)))
    meds = []
    for _ in range(repeat):
        times = []
        for _ in range(reps):
            t = CLOCK()
            fn()
            times.append(CLOCK() - t)
        meds.append(statistics.median(times))
    return statistics.median(meds) * 1e3


# -- the NumPy reference: im2col + one matmul per direction -------------------------------------


def np_im2col(x, k, p):
    """x (N, C, H, W) -> col (N, C*k*k, OH*OW), stride 1."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = h + 2 * p - k + 1, w + 2 * p - k + 1
    col = np.empty((n, c, k, k, oh, ow), x.dtype)
    for i in range(k):
        for j in range(k):
            col[:, :, i, j] = xp[:, :, i:i + oh, j:j + ow]
    return col.reshape(n, c * k * k, oh * ow), oh, ow


def np_forward(x, w, b, p):
    col, oh, ow = np_im2col(x, w.shape[2], p)
    y = np.matmul(w.reshape(w.shape[0], -1), col) + b[:, None]
    return y.reshape(x.shape[0], w.shape[0], oh, ow)


def np_forward_backward(x, w, b, g, p):
    n, c, h, wd = x.shape
    o, k = w.shape[0], w.shape[2]
    col, oh, ow = np_im2col(x, k, p)
    w2 = w.reshape(o, -1)
    _ = np.matmul(w2, col) + b[:, None]
    g2 = g.reshape(n, o, oh * ow)
    dw = np.einsum("nop,nkp->ok", g2, col, optimize=True).reshape(w.shape)
    db = g2.sum(axis=(0, 2))
    dcol = np.matmul(w2.T, g2).reshape(n, c, k, k, oh, ow)
    dxp = np.zeros((n, c, h + 2 * p, wd + 2 * p), x.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + oh, j:j + ow] += dcol[:, :, i, j]
    return dxp[:, :, p:p + h, p:p + wd], dw, db


# -- one case ------------------------------------------------------------------------------------------


def run_case(name, threads, budget, repeat, torch):
    n, c, h, wd, o, k, p = CASES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, wd), dtype=np.float32)
    w = (rng.standard_normal((o, c, k, k), dtype=np.float32) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    oh, ow = h + 2 * p - k + 1, wd + 2 * p - k + 1
    g = rng.standard_normal((n, o, oh, ow), dtype=np.float32)
    macs = n * o * oh * ow * c * k * k
    res = {}

    # fastgrad (check against NumPy first: a fast wrong answer is no answer)
    fx, fw, fb, fgr = fg.tensor(x), fg.tensor(w), fg.tensor(b), fg.tensor(g)
    ref = np_forward(x, w, b, p)
    np.testing.assert_allclose(F.conv2d(fx, fw, fb, padding=p).numpy(), ref, rtol=1e-4, atol=1e-4)

    def fg_fwd():
        with fg.no_grad():
            F.conv2d(fx, fw, fb, padding=p)

    fxr, fwr, fbr = fx.detach().requires_grad_(), fw.detach().requires_grad_(), fb.detach().requires_grad_()

    def fg_step():
        fxr.grad = fwr.grad = fbr.grad = None
        F.conv2d(fxr, fwr, fbr, padding=p).backward(fgr)

    res["fg fwd"] = median_ms(fg_fwd, budget, repeat)
    res["fg f+b"] = median_ms(fg_step, budget, repeat)
    pads = [p] * 4
    X, W, B, G = fx._data, fw._data, fb._data, fgr._data
    res["fg k:fwd"] = median_ms(lambda: _C.conv_forward(X, W, B, [1, 1], pads, [1, 1], 1), budget, repeat)
    res["fg k:dx"] = median_ms(lambda: _C.conv_input_grad(G, W, None, [h, wd], [1, 1], pads, [1, 1], 1), budget,
                               repeat)
    res["fg k:dw"] = median_ms(lambda: _C.conv_weight_grad(G, X, [k, k], [1, 1], pads, [1, 1], 1), budget, repeat)

    if torch is not None:
        tx, tw, tb, tg = (torch.tensor(a) for a in (x, w, b, g))
        txr, twr, tbr = (t.clone().requires_grad_() for t in (tx, tw, tb))

        def t_fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, tb, padding=p)

        def t_step():
            txr.grad = twr.grad = tbr.grad = None
            torch.nn.functional.conv2d(txr, twr, tbr, padding=p).backward(tg)

        res["torch fwd"] = median_ms(t_fwd, budget, repeat)
        res["torch f+b"] = median_ms(t_step, budget, repeat)

    res["numpy fwd"] = median_ms(lambda: np_forward(x, w, b, p), budget, repeat)
    res["numpy f+b"] = median_ms(lambda: np_forward_backward(x, w, b, g, p), budget, repeat)
    return n, macs, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--quick", action="store_true", help="shorter timings")
    ap.add_argument("--repeat", type=int, default=1, help="medians of this many timing rounds")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall time or process CPU time")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    try:
        import torch
    except ImportError:
        torch = None
    budget = 0.25 if args.quick else 0.8
    print(f"GEMM path: {_C.gemm_info()}; torch: {torch.__version__ if torch else 'not installed'}; "
          f"clock: {args.clock}")
    hdr = (f"{'case':4} {'thr':>3} | {'fg fwd':>7} {'torch':>7} {'numpy':>7} {'ratio':>5} | {'fg f+b':>7} {'torch':>7} "
           f"{'numpy':>7} {'ratio':>5} | {'img/s fg':>8} {'torch':>7} | {'GF/s f+b':>8} | kernels fwd/dx/dw ms")
    print(hdr)
    print("-" * len(hdr))
    for nt in args.threads:
        fg.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        for name in args.cases:
            n, macs, r = run_case(name, nt, budget, args.repeat, torch)
            tf, tb = r.get("torch fwd", float("nan")), r.get("torch f+b", float("nan"))
            gf = 3 * 2 * macs / (r["fg f+b"] * 1e-3) / 1e9
            print(f"{name:4} {nt:>3} | {r['fg fwd']:7.2f} {tf:7.2f} {r['numpy fwd']:7.2f} {tf / r['fg fwd']:5.2f} | "
                  f"{r['fg f+b']:7.2f} {tb:7.2f} {r['numpy f+b']:7.2f} {tb / r['fg f+b']:5.2f} | "
                  f"{n / r['fg f+b'] * 1e3:8.0f} {n / tb * 1e3:7.0f} | {gf:8.1f} | "
                  f"{r['fg k:fwd']:.2f}/{r['fg k:dx']:.2f}/{r['fg k:dw']:.2f}")
    print("times in ms (medians); ratio = torch / fastgrad; img/s and GF/s for forward + backward")


if __name__ == "__main__":
    main()
