"""Benchmarks: fastgrad beside NumPy (and PyTorch when installed), in one run
on one machine, reported as medians and ratios (the machines are shared and
noisy, so single absolute times mean little).

This module is the shared part of bench/run.py and `fastgrad bench`: clocks
and paired timing, thread control for all three libraries, the machine line
(CPU, ISA, measured peak FP32 FMA rate and copy bandwidth) and the tables
that need nothing outside the package (per-op overhead, elementwise ops and
reductions, matmul, MLP training steps). `fastgrad bench` runs bench/run.py
when it finds a source checkout's bench/ folder, and these tables otherwise.

Clocks: with one thread every library runs the whole op on the calling
thread, so its CPU time (time.thread_time) is the clock - a loaded machine
disturbs it far less than wall time. With more threads it is wall time.
"""
import ctypes
import os
import platform
import statistics
import time

import numpy as np

# ---- timing ----------------------------------------------------------------------


def _clock(cpu_clock):
    return time.thread_time if cpu_clock else time.perf_counter


def _calls_per_sample(fn, min_time, clock):
    """How many calls make one sample of at least min_time seconds (fn warmed up first)."""
    fn()  # warm up (allocations, first-touch page faults, lazy inits)
    n = 1
    while True:
        t0 = clock()
        for _ in range(n):
            fn()
        dt = clock() - t0
        if dt >= min_time or n >= 1 << 20:
            return n, dt / n
        n *= 4 if dt < min_time / 8 else 2


def _median_time(fn, repeat, min_time=0.02, cpu_clock=False):
    """Median seconds per call over `repeat` samples of >= min_time each."""
    clock = _clock(cpu_clock)
    n, _ = _calls_per_sample(fn, min_time, clock)
    samples = []
    for _ in range(repeat):
        t0 = clock()
        for _ in range(n):
            fn()
        samples.append((clock() - t0) / n)
    return statistics.median(samples)


def paired_times(fa, fb, budget, cpu_clock=False, min_time=0.02, min_samples=5, max_samples=41):
    """((median, best) seconds per call of fa, same of fb or None).

    With cpu_clock (one thread) the samples of fa and fb alternate, so that
    a burst of load from other processes hits both; as many samples as fit
    in `budget` seconds. On wall time (several threads) each function's
    samples run in one block instead: a BLAS's worker threads spin for a
    while after each call and would take the cores from the other library.
    """
    clock = _clock(cpu_clock)
    fns = [f for f in (fa, fb) if f is not None]
    counts = [_calls_per_sample(f, min_time, clock) for f in fns]
    per_round = sum(n * t for n, t in counts)
    rounds = int(min(max_samples, max(min_samples, budget / max(per_round, 1e-9))))
    samples = [[] for _ in fns]

    def sample(i):
        n = counts[i][0]
        t0 = clock()
        for _ in range(n):
            fns[i]()
        samples[i].append((clock() - t0) / n)

    if cpu_clock:
        for _ in range(rounds):
            for i in range(len(fns)):
                sample(i)
    else:
        for i in range(len(fns)):
            fns[i]()  # warm up again after the other library ran
            for _ in range(rounds):
                sample(i)
    out = [(statistics.median(s), min(s)) for s in samples]
    return out[0], (out[1] if fb is not None else (None, None))


# ---- threads ---------------------------------------------------------------------

_blas_setter = None


def _find_blas_setter():
    """NumPy's BLAS thread setter (OpenBLAS, as NumPy's wheels ship it), found
    through the libraries this process has loaded; None when there is none."""
    names = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
             "openblas_set_num_threads", "MKL_Set_Num_Threads")
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() or "mkl" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        if os.sep + "torch" + os.sep + "lib" in path or not os.path.exists(path):
            continue  # torch's own BLAS follows torch.set_num_threads
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn.restype = None
                return fn
    return None


def blas_threads(n):
    """Sets NumPy's BLAS threads (returns False when it cannot: then NumPy uses its default)."""
    global _blas_setter
    if _blas_setter is None:
        np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS library is loaded
        _blas_setter = _find_blas_setter() or False
    if not _blas_setter:
        return False
    _blas_setter(int(n))
    return True


def try_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def set_threads(n, torch=None):
    """The same number of threads for fastgrad, NumPy's BLAS and torch."""
    import fastgrad as fg

    fg.set_num_threads(n)
    blas_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


# ---- the machine -------------------------------------------------------------------


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads, quick=False):
    """Prints the machine line(s) and returns a dict: cores, ISA, peak GFLOP/s and copy GB/s."""
    import fastgrad as fg
    from fastgrad import _C

    torch = try_torch()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cfg = fg.config()
    secs = 0.1 if quick else 0.25
    p1 = _C.measure_fma_peak(1, secs)
    pn = _C.measure_fma_peak(threads, secs) if threads > 1 else p1
    per_core = p1.per_thread_cpu_gflops[0]
    all_cores = sum(pn.per_thread_cpu_gflops)
    nbytes = (64 if quick else 256) << 20
    bw1 = _C.measure_copy_bandwidth(nbytes, 3 if quick else 5, 1)
    bwn = _C.measure_copy_bandwidth(nbytes, 3 if quick else 5, threads) if threads > 1 else bw1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    blas_ok = blas_threads(threads)
    info = dict(cpu=cpu_model(), cores=cores, threads=threads, isa=p1.isa, peak_core=per_core,
                peak_all=all_cores, peak_all_wall=pn.gflops, copy1=statistics.median(bw1),
                copyn=statistics.median(bwn), load=load)
    print(f"machine: {info['cpu']}, {cores} cores, load average {load:.1f}; fastgrad {cfg.get('version')}: "
          f"GEMM {cfg.get('gemm')}, elementwise {cfg.get('simd')}; numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    print(f"peak FP32 FMA ({p1.isa} register loop): {per_core:.1f} GFLOP/s per core (thread CPU time), "
          f"{all_cores:.1f} for {threads} cores together ({pn.gflops:.1f} by wall time now)")
    print(f"copy bandwidth ({nbytes >> 20} MiB, read + write): {info['copy1']:.1f} GB/s on 1 thread "
          f"(best {max(bw1):.1f}), {info['copyn']:.1f} on {threads} (best {max(bwn):.1f})")
    if not blas_ok:
        print("NOTE: NumPy's BLAS thread count could not be set: NumPy's GEMM columns use its default threads")
    print("times are medians; ratio = other time / fastgrad time (> 1: fastgrad faster)")
    return info


# ---- tables that need only the package ----------------------------------------------


def _row(name, t_fg, t_np, t_torch, unit_work=None, unit=""):
    def fmt(t):
        return f"{t * 1e6:10.1f}" if t is not None else f"{'-':>10}"

    r_np = f"{t_np / t_fg:7.2f}x" if t_np else f"{'-':>8}"
    r_t = f"{t_torch / t_fg:7.2f}x" if t_torch else f"{'-':>8}"
    rate = f"{unit_work / t_fg / 1e9:8.1f} {unit}" if unit_work else ""
    print(f"{name:<34}{fmt(t_fg)}{fmt(t_np)}{fmt(t_torch)}  {r_np}  {r_t}  {rate}")


def _head(first):
    print(f"{first:<34}{'fastgrad':>10}{'numpy':>10}{'torch':>10}  {'np/fg':>8}  {'torch/fg':>8}")


def overhead(repeat=7):
    """Per-op Python overhead: a 16-element add, with and without autograd (1 thread, CPU time)."""
    import fastgrad as fg

    torch = try_torch()
    set_threads(1, torch)
    a_np = np.ones(16, np.float32)
    a, b = fg.ones(16), fg.ones(16)
    ag = fg.ones(16, requires_grad=True)
    t_fg = _median_time(lambda: a + b, repeat, cpu_clock=True)
    t_fg_grad = _median_time(lambda: ag + b, repeat, cpu_clock=True)
    t_np = _median_time(lambda: a_np + a_np, repeat, cpu_clock=True)
    t_t = t_tg = None
    if torch is not None:
        ta, tb = torch.ones(16), torch.ones(16)
        tg = torch.ones(16, requires_grad=True)
        t_t = _median_time(lambda: ta + tb, repeat, cpu_clock=True)
        t_tg = _median_time(lambda: tg + tb, repeat, cpu_clock=True)
    print("\nper-op overhead (16-element float32 add), microseconds per op, 1 thread")
    _head("")
    _row("add, no autograd", t_fg, t_np, t_t)
    _row("add, input requires grad", t_fg_grad, None, t_tg)
    return t_fg, t_fg_grad


def elementwise_and_reductions(sizes, repeat=5, threads=1):
    import fastgrad as fg

    torch = try_torch()
    set_threads(threads, torch)
    cpu = threads == 1
    print(f"\nelementwise and reductions (float32), microseconds per op, {threads} thread(s); GB/s of fastgrad")
    _head("op")
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
            t_fg = _median_time(f_fg, repeat, cpu_clock=cpu)
            t_np = _median_time(f_np, repeat, cpu_clock=cpu)
            t_t = _median_time(f_t, repeat, cpu_clock=cpu) if f_t else None
            _row(f"{name} n={n}", t_fg, t_np, t_t, bytes_per * n, "GB/s")
        x2_np = rng.standard_normal((n // 256, 256)).astype(np.float32)
        x2 = fg.from_numpy(x2_np)
        t2 = torch.from_numpy(x2_np) if torch is not None else None
        t_fg = _median_time(lambda: x2.sum(dim=0), repeat, cpu_clock=cpu)
        t_np = _median_time(lambda: x2_np.sum(axis=0), repeat, cpu_clock=cpu)
        t_t = _median_time(lambda: t2.sum(dim=0), repeat, cpu_clock=cpu) if t2 is not None else None
        _row(f"sum(dim=0) ({n // 256}x256)", t_fg, t_np, t_t, 4 * n, "GB/s")
        t_fg = _median_time(lambda: x2.softmax(dim=1), repeat, cpu_clock=cpu)
        t_t = _median_time(lambda: t2.softmax(dim=1), repeat, cpu_clock=cpu) if t2 is not None else None
        _row(f"softmax(dim=1) ({n // 256}x256)", t_fg, None, t_t, 8 * n, "GB/s")


def matmul(sizes, repeat=5, threads=1):
    import fastgrad as fg

    torch = try_torch()
    set_threads(threads, torch)
    cpu = threads == 1
    print(f"\nmatmul (float32), microseconds per product, {threads} thread(s); GFLOP/s of fastgrad")
    _head("shape")
    rng = np.random.default_rng(0)
    for m, k, n in [(n, n, n) for n in sizes] + [(128, 784, 256)]:
        a_np = rng.standard_normal((m, k)).astype(np.float32)
        b_np = rng.standard_normal((k, n)).astype(np.float32)
        a, b = fg.from_numpy(a_np), fg.from_numpy(b_np)
        t_fg = _median_time(lambda: a @ b, repeat, cpu_clock=cpu)
        t_np = _median_time(lambda: a_np @ b_np, repeat, cpu_clock=cpu)
        t_t = None
        if torch is not None:
            ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
            t_t = _median_time(lambda: ta @ tb, repeat, cpu_clock=cpu)
        _row(f"{m}x{k} @ {k}x{n}", t_fg, t_np, t_t, 2 * m * k * n, "GFLOP/s")


def mlp_training(repeat=5, threads=1):
    """One training step (forward, backward, Adam) of the Iris MLP and of an MNIST-sized MLP."""
    import fastgrad as fg
    import fastgrad.nn.functional as F

    torch = try_torch()
    set_threads(threads, torch)
    cpu = threads == 1
    print(f"\nMLP training step (forward + backward + Adam), microseconds per step, {threads} thread(s)")
    _head("model")
    rng = np.random.default_rng(0)
    for name, sizes, batch in (("iris 4-8-3, batch 150", (4, 8, 3), 150),
                               ("mlp 784-256-256-10, batch 128", (784, 256, 256, 10), 128)):
        X_np = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        y_np = rng.integers(0, sizes[-1], batch)
        model = fg.models.MLP(list(sizes))
        opt = fg.optim.Adam(model.parameters(), lr=1e-3)
        X, y = fg.from_numpy(X_np), fg.from_numpy(y_np)

        def step_fg():
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.step()

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

        (t_fg, _), (t_t, _) = paired_times(step_fg, step_t if torch is not None else None, 0.3 * repeat,
                                           cpu_clock=cpu)
        _row(name, t_fg, None, t_t)


def source_run_py():
    """bench/run.py of the source checkout this package was imported from, or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.normpath(os.path.join(here, "..", "..", "bench", "run.py"))
    return path if os.path.isfile(path) else None


def builtin(quick=False):
    """The tables this package can run on its own (an installed wheel has no bench/ folder)."""
    import fastgrad as fg

    nt = fg.get_num_threads()
    machine(nt, quick)
    overhead()
    elementwise_and_reductions([1 << 16] if quick else [1 << 16, 1 << 20, 1 << 24])
    for t in sorted({1, nt}):
        matmul([64, 256] if quick else [64, 128, 256, 512, 1024], threads=t)
        mlp_training(threads=t)
    return 0


def main(quick=False, argv=None):
    """`fastgrad bench`: bench/run.py when this is a source checkout, else builtin()."""
    path = source_run_py()
    if path is None:
        return builtin(quick)
    import importlib.util

    spec = importlib.util.spec_from_file_location("fastgrad_bench_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = list(argv or [])
    if quick and "--quick" not in args:
        args.append("--quick")
    return mod.main(args)
