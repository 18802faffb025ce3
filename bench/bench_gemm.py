"""GEMM workbench: fastgrad's matmul against NumPy (and PyTorch when it is
installed), in GFLOP/s, float32.

Cases: square N x N @ N x N for N = 64 .. 2048, and the matrix products of a
784-256 MLP layer at batch 128: the forward X @ W and the two backward
products, which read a transposed operand in place (dW = X^T @ dY and
dX = dY @ W^T). Each timing is the median of several runs; all libraries use
the same number of threads.

    PYTHONPATH=python python bench/bench_gemm.py [--threads N] [--quick]

FASTGRAD_CPU_CAPABILITY=avx2|avx512|scalar forces a micro-kernel path.
"""
import argparse
import glob
import importlib.util
import os
import statistics
import sys
import time

import numpy as np


def load_native():
    """fastgrad._C (falls back to the bare extension if the package cannot import)."""
    try:
        from fastgrad import _C

        return _C
    except Exception:  # noqa: BLE001
        if "fastgrad._C" in sys.modules:
            return sys.modules["fastgrad._C"]
        here = os.path.dirname(os.path.abspath(__file__))
        path = glob.glob(os.path.join(here, "..", "python", "fastgrad", "_C*.so"))[0]
        spec = importlib.util.spec_from_file_location("fastgrad._C", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


def median_seconds(fn, budget_s):
    """Median wall time of fn() over as many runs as fit in budget_s (3..50)."""
    fn()  # warm up: caches, packing buffers, thread pool
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    reps = int(min(50, max(3, budget_s / once)))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="threads for every library (default: fastgrad's)")
    ap.add_argument("--quick", action="store_true", help="shorter timings")
    args = ap.parse_args()

    C = load_native()
    if args.threads:
        C.set_num_threads(args.threads)
    nt = C.get_num_threads()
    try:
        import torch

        torch.set_num_threads(nt)
    except ImportError:
        torch = None
    budget = 0.15 if args.quick else 0.4

    rng = np.random.default_rng(0)

    def mat(r, c):
        return rng.standard_normal((r, c), dtype=np.float32)

    cases = []
    for n in (64, 128, 256, 512, 1024, 2048):
        a, b = mat(n, n), mat(n, n)
        cases.append((f"square {n}", a, b))
    x, w, dy = mat(128, 784), mat(784, 256), mat(128, 256)
    cases.append(("mlp fwd  X@W    128x784 @ 784x256", x, w))
    cases.append(("mlp dW   X^T@dY 784x128 @ 128x256", x.T, dy))   # transposed view, no copy
    cases.append(("mlp dX   dY@W^T 128x256 @ 256x784", dy, w.T))   # transposed view, no copy

    print(f"fastgrad matmul, float32, {nt} thread(s), micro-kernel path: {C.gemm_info()}")
    head = f"{'case':36s} {'fastgrad':>9s} {'numpy':>9s} {'fg/np':>6s}"
    if torch is not None:
        head += f" {'torch':>9s} {'fg/torch':>8s}"
    print(head + "   (GFLOP/s)")
    for name, a, b in cases:
        m, k = a.shape
        n = b.shape[1]
        flops = 2.0 * m * n * k
        fa, fb = C.from_numpy(a), C.from_numpy(b)  # share memory and strides with NumPy
        ref = a @ b
        got = np.asarray(C.to_numpy(C.matmul(fa, fb)))
        err = float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) + 1e-30))
        assert err < 1e-4, f"{name}: wrong result (relative error {err})"
        g_fg = flops / median_seconds(lambda: C.matmul(fa, fb), budget) / 1e9
        g_np = flops / median_seconds(lambda: a @ b, budget) / 1e9
        line = f"{name:36s} {g_fg:9.1f} {g_np:9.1f} {g_fg / g_np:6.2f}"
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            g_t = flops / median_seconds(lambda: ta @ tb, budget) / 1e9
            line += f" {g_t:9.1f} {g_fg / g_t:8.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
