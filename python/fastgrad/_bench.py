"""Micro-benchmarks: fastgrad beside NumPy (and PyTorch when installed), in
one run on one machine, reported as medians and ratios (the machines are
shared and noisy, so single absolute times mean little).

Used by `fastgrad bench` and bench/bench_ops.py."""
import platform
import statistics
import time

import numpy as np


def _median_time(fn, repeat, min_time=0.02):
    """Median seconds per call over `repeat` samples of >= min_time each."""
    fn()  # warm up (allocations, first-touch page faults, lazy inits)
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 20:
            break
        n *= 4
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def _torch():
    try:
        import torch

        torch.set_num_threads(__import__("fastgrad").get_num_threads())
        return torch
    except ImportError:
        return None


def _row(name, t_fg, t_np, t_torch, unit_work=None, unit=""):
    def fmt(t):
        return f"{t * 1e6:10.1f}" if t is not None else f"{'-':>10}"

    r_np = f"{t_np / t_fg:7.2f}x" if t_np else f"{'-':>8}"
    r_t = f"{t_torch / t_fg:7.2f}x" if t_torch else f"{'-':>8}"
    rate = f"{unit_work / t_fg / 1e9:8.1f} {unit}" if unit_work else ""
    print(f"{name:<34}{fmt(t_fg)}{fmt(t_np)}{fmt(t_torch)}  {r_np}  {r_t}  {rate}")


def overhead(repeat=7):
    """Per-op Python overhead: a 16-element add, with and without autograd."""
    import fastgrad as fg

    torch = _torch()
    a_np = np.ones(16, np.float32)
    a = fg.ones(16)
    b = fg.ones(16)
    ag = fg.ones(16, requires_grad=True)
    t_fg = _median_time(lambda: a + b, repeat)
    t_fg_grad = _median_time(lambda: ag + b, repeat)
    t_np = _median_time(lambda: a_np + a_np, repeat)
    t_t = t_tg = None
    if torch is not None:
        ta, tb = torch.ones(16), torch.ones(16)
        tg = torch.ones(16, requires_grad=True)
        t_t = _median_time(lambda: ta + tb, repeat)
        t_tg = _median_time(lambda: tg + tb, repeat)
    print("\nper-op overhead (16-element float32 add), microseconds per op")
    print(f"{'':<34}{'fastgrad':>10}{'numpy':>10}{'torch':>10}  {'np/fg':>8}  {'torch/fg':>8}")
    _row("add, no autograd", t_fg, t_np, t_t)
    _row("add, input requires grad", t_fg_grad, None, t_tg)
    return t_fg, t_fg_grad


def elementwise_and_reductions(sizes, repeat=5):
    import fastgrad as fg

    torch = _torch()
    print("\nelementwise and reductions (float32), microseconds per op; ratios > 1 mean fastgrad is faster")
    print(f"{'op':<34}{'fastgrad':>10}{'numpy':>10}{'torch':>10}  {'np/fg':>8}  {'torch/fg':>8}  GB/s (fg)")
    rng = np.random.default_rng(0)
    for n in sizes:
        x_np = rng.standard_normal(n).astype(np.float32)
        y_np = rng.standard_normal(n).astype(np.float32)
        x, y = fg.from_numpy(x_np), fg.from_numpy(y_np)
        tx = ty = None
        if torch is not None:
            tx, ty = torch.from_numpy(x_np), torch.from_numpy(y_np)
        cases = [
            ("add", lambda: x + y, lambda: x_np + y_np, (lambda: tx + ty) if tx is not None else None, 12),
            ("mul", lambda: x * y, lambda: x_np * y_np, (lambda: tx * ty) if tx is not None else None, 12),
            ("exp", lambda: x.exp(), lambda: np.exp(x_np), (lambda: tx.exp()) if tx is not None else None, 8),
            ("tanh", lambda: x.tanh(), lambda: np.tanh(x_np), (lambda: tx.tanh()) if tx is not None else None, 8),
            ("relu", lambda: x.relu(), lambda: np.maximum(x_np, 0), (lambda: tx.relu()) if tx is not None else None, 8),
            ("sum", lambda: x.sum(), lambda: x_np.sum(), (lambda: tx.sum()) if tx is not None else None, 4),
            ("max", lambda: x.max(), lambda: x_np.max(), (lambda: tx.max()) if tx is not None else None, 4),
        ]
        for name, f_fg, f_np, f_t, bytes_per in cases:
            t_fg = _median_time(f_fg, repeat)
            t_np = _median_time(f_np, repeat)
            t_t = _median_time(f_t, repeat) if f_t else None
            _row(f"{name} n={n}", t_fg, t_np, t_t, bytes_per * n, "GB/s")
        x2_np = rng.standard_normal((n // 256, 256)).astype(np.float32)
        x2 = fg.from_numpy(x2_np)
        t2 = torch.from_numpy(x2_np) if torch is not None else None
        t_fg = _median_time(lambda: x2.sum(dim=0), repeat)
        t_np = _median_time(lambda: x2_np.sum(axis=0), repeat)
        t_t = _median_time(lambda: t2.sum(dim=0), repeat) if t2 is not None else None
        _row(f"sum(dim=0) ({n // 256}x256)", t_fg, t_np, t_t, 4 * n, "GB/s")
        t_fg = _median_time(lambda: x2.softmax(dim=1), repeat)
        t_t = _median_time(lambda: t2.softmax(dim=1), repeat) if t2 is not None else None
        _row(f"softmax(dim=1) ({n // 256}x256)", t_fg, None, t_t, 8 * n, "GB/s")


def matmul(sizes, repeat=5):
    import fastgrad as fg

    torch = _torch()
    print("\nmatmul (float32), microseconds per product; GFLOP/s of fastgrad")
    print(f"{'shape':<34}{'fastgrad':>10}{'numpy':>10}{'torch':>10}  {'np/fg':>8}  {'torch/fg':>8}")
    rng = np.random.default_rng(0)
    shapes = [(n, n, n) for n in sizes] + [(128, 784, 256)]
    for m, k, n in shapes:
        a_np = rng.standard_normal((m, k)).astype(np.float32)
        b_np = rng.standard_normal((k, n)).astype(np.float32)
        a, b = fg.from_numpy(a_np), fg.from_numpy(b_np)
        t_fg = _median_time(lambda: a @ b, repeat)
        t_np = _median_time(lambda: a_np @ b_np, repeat)
        t_t = None
        if torch is not None:
            ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
            t_t = _median_time(lambda: ta @ tb, repeat)
        _row(f"{m}x{k} @ {k}x{n}", t_fg, t_np, t_t, 2 * m * k * n, "GFLOP/s")


def mlp_training(repeat=5):
    """One training step (forward, backward, Adam) of the Iris MLP and of an MNIST-sized MLP."""
    import fastgrad as fg
    import fastgrad.nn.functional as F

    torch = _torch()
    print("\nMLP training step (forward + backward + Adam), microseconds per step")
    print(f"{'model':<34}{'fastgrad':>10}{'numpy':>10}{'torch':>10}  {'np/fg':>8}  {'torch/fg':>8}")
    rng = np.random.default_rng(0)
    for name, sizes, batch in (("iris 4-8-3, batch 150", (4, 8, 3), 150),
                               ("mnist 784-256-10, batch 128", (784, 256, 10), 128)):
        X_np = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        y_np = rng.integers(0, sizes[-1], batch)
        model = fg.models.MLP(list(sizes))
        opt = fg.optim.Adam(model.parameters(), lr=1e-3)
        X, y = fg.from_numpy(X_np), fg.from_numpy(y_np)

        def step_fg():
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.step()

        t_fg = _median_time(step_fg, repeat)
        t_t = None
        if torch is not None:
            layers = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(torch.nn.Linear(a, b))
                if i < len(sizes) - 2:
                    layers.append(torch.nn.ReLU())
            tm = torch.nn.Sequential(*layers)
            topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            tX, ty = torch.from_numpy(X_np), torch.from_numpy(y_np)

            def step_t():
                topt.zero_grad()
                torch.nn.functional.cross_entropy(tm(tX), ty).backward()
                topt.step()

            t_t = _median_time(step_t, repeat)
        _row(name, t_fg, None, t_t)


def main(quick=False):
    import fastgrad as fg

    cfg = fg.config()
    print(f"fastgrad {cfg['version']} bench on {platform.processor() or platform.machine()}, "
          f"{cfg['threads']} threads, SIMD {cfg['simd']}, GEMM {cfg['gemm']}; numpy {np.__version__}"
          + (f", torch {_torch().__version__}" if _torch() else ", torch not installed"))
    print("times are medians; ratio = other time / fastgrad time (> 1: fastgrad faster)")
    overhead()
    elementwise_and_reductions([1 << 16] if quick else [1 << 16, 1 << 20, 1 << 24])
    matmul([64, 256] if quick else [64, 128, 256, 512, 1024])
    mlp_training()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
