"""GEMM workbench: fastgrad's matmul against NumPy (and PyTorch when it is
installed), in GFLOP/s, float32, next to the machine's measured peak.

Cases: square N x N @ N x N for N = 64 .. 2048, and the matrix products of a
784-256 MLP layer at batch 128: the forward X @ W and the two backward
products, which read a transposed operand in place (dW = X^T @ dY and
dX = dY @ W^T); then the same three with the weight stored as nn.Linear
stores it, (256, 784) ("lin": x @ W^T, dY @ W, dY^T @ x). All libraries use the same number of threads (NumPy's
OpenBLAS is set through its own call). Each figure is the median over
samples in which the libraries alternate; with one thread the clock is the
calling thread's CPU time (a loaded machine disturbs it far less than wall
time), with more threads wall time. "fastgrad" times the native product
(_C.matmul on the tensors' arrays, ~1 us of binding like NumPy's call);
"Tensor@" is the same product through fastgrad's Python op layer (a @ b on
Tensors, ~4 us more per call). Targets (the issue): fg/np >= 0.95 for
N >= 512, >= 1.2 for N <= 128 and the MLP shapes, and >= 85% of the peak FMA
rate at N = 2048.

    PYTHONPATH=python python bench/bench_gemm.py [--threads 1 2] [--quick] [--sizes 512 1024]

FASTGRAD_CPU_CAPABILITY=avx2|avx512|scalar forces a micro-kernel path.
"""
import argparse
import os
import sys

import numpy as np

try:
    import fastgrad as fg
except ImportError:  # a source checkout without PYTHONPATH=python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import fastgrad as fg
from fastgrad import _bench
from fastgrad import _C

SIZES = (64, 128, 256, 512, 1024, 2048)


def cases(sizes):
    rng = np.random.default_rng(0)

    def mat(r, c):
        return rng.standard_normal((r, c), dtype=np.float32)

    out = [(f"square {n}", mat(n, n), mat(n, n), 0.95 if n >= 512 else 1.2 if n <= 128 else None) for n in sizes]
    x, w, dy = mat(128, 784), mat(784, 256), mat(128, 256)
    out.append(("mlp fwd X@W     128x784 @ 784x256", x, w, 1.2))
    out.append(("mlp dW  X^T@dY  784x128 @ 128x256", x.T, dy, 1.2))  # transposed view, no copy
    out.append(("mlp dX  dY@W^T  128x256 @ 256x784", dy, w.T, 1.2))  # transposed view, no copy
    # The same layer with the weight stored as nn.Linear stores it, (out, in) = (256, 784):
    # the forward reads it transposed, dX reads it row-major, dW reads dY transposed.
    wl = np.ascontiguousarray(w.T)
    out.append(("lin fwd x@W^T   128x784 @ 784x256", x, wl.T, 1.2))
    out.append(("lin dX  dY@W    128x256 @ 256x784", dy, wl, 1.2))
    out.append(("lin dW  dY^T@x  256x128 @ 128x784", dy.T, x, 1.2))
    return out


def run(threads=(1, 2), quick=False, sizes=SIZES, peak=None):
    """Prints one table per thread count; returns rows (case, threads, fg, np, torch, Tensor GFLOP/s).

    peak: {threads: GFLOP/s} of the machine (bench/run.py measures it); adds a % of peak column."""
    torch = _bench.try_torch()
    budget = 0.4 if quick else 1.5
    rows = []
    for nt in threads:
        _bench.set_threads(nt, torch)
        clock = "thread CPU time" if nt == 1 else "wall time"
        print(f"\nGEMM float32 (GFLOP/s), {nt} thread(s), micro-kernels {_C.gemm_info()}, clock: {clock}")
        print(f"{'case':<36}{'fastgrad':>9}{'numpy':>9}{'torch':>9}{'fg/np':>7}{'fg/torch':>9}"
              f"{'%peak':>7}{'target':>8}{'Tensor@':>9}{'T/np':>7}")
        for name, a, b, target in cases(sizes):
            m, k = a.shape
            n = b.shape[1]
            flops = 2.0 * m * n * k
            fa, fb = fg.from_numpy(a), fg.from_numpy(b)  # shares memory and strides with NumPy
            ref = a.astype(np.float64) @ b.astype(np.float64)
            got = (fa @ fb).numpy()
            err = float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) + 1e-30))
            if err > 1e-5:
                raise RuntimeError(f"bench_gemm {name}: wrong result (relative error {err})")
            big = flops > 2e9  # a few calls already fill a sample
            ca, cb = fa._data, fb._data  # the native arrays: the product without the Python op layer
            (t_fg, _), (t_np, _) = _bench.paired_times(lambda: _C.matmul(ca, cb), lambda: a @ b, budget,
                                                       cpu_clock=nt == 1, min_time=0.05 if big else 0.02,
                                                       min_samples=3 if quick else 5)
            (t_tensor, _), _ = _bench.paired_times(lambda: fa @ fb, None, budget / 3, cpu_clock=nt == 1,
                                                   min_samples=3)
            g_fg, g_np, g_tensor = flops / t_fg / 1e9, flops / t_np / 1e9, flops / t_tensor / 1e9
            g_t = None
            if torch is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                (t_t, _), _ = _bench.paired_times(lambda: ta @ tb, None, budget / 2, cpu_clock=nt == 1,
                                                  min_samples=3)
                g_t = flops / t_t / 1e9
            pk = f"{100 * g_fg / peak[nt]:6.0f}%" if peak and nt in peak else f"{'-':>7}"
            tg = f"{target:7.2f}x" if target else ("  85%pk" if name == "square 2048" else "")
            t_col, rt_col = (f"{g_t:9.1f}", f" {g_fg / g_t:7.2f}x") if g_t else (f"{'-':>9}", f"{'-':>9}")
            print(f"{name:<36}{g_fg:9.1f}{g_np:9.1f}{t_col} {g_fg / g_np:5.2f}x{rt_col}{pk}{tg}"
                  f"{g_tensor:9.1f} {g_tensor / g_np:5.2f}x", flush=True)
            rows.append((name, nt, g_fg, g_np, g_t, g_tensor))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="shorter timings")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--peak", action="store_true", help="measure the peak FMA rate first (adds %% of peak)")
    args = ap.parse_args(argv)
    peak = None
    if args.peak:
        peak = {}
        for nt in args.threads:
            fg.set_num_threads(nt)
            # what nt cores deliver while running (CPU time), whatever else the machine runs
            peak[nt] = sum(_C.measure_fma_peak(nt, 0.2).per_thread_cpu_gflops)
            print(f"peak FP32 FMA, {nt} thread(s): {peak[nt]:.1f} GFLOP/s")
    run(args.threads, args.quick, args.sizes, peak)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
