"""Fused optimizer workbench: one step of each optimizer on 10M float32 parameters,
against the memory-bandwidth bound and torch.optim's fastest CPU modes.

Every update is memory-bound. Per element each optimizer must read and write
these float32 arrays once (p = param, g = grad, then its state):

    SGD           read p g          write p          12 bytes
    SGD momentum  read p g buf      write p buf      20 bytes
    Adam, AdamW   read p g m v      write p m v      28 bytes
    Adagrad       read p g sum      write p sum      20 bytes
    RMSprop       read p g sq       write p sq       20 bytes

The bound is that traffic at the machine's copy bandwidth (_C.measure_copy_bandwidth:
memcpy of a 40 MB buffer, read + write bytes counted, on the same thread
count). Every written array is also read, so a step moves no more than those
bytes (no write-allocate of lines that were not read). The box is shared and
noisy, so each repetition times the copy and then every implementation back
to back, and "x bound" is the median over repetitions of (bound time / step
time): 1.0 means the step runs at copy speed. With one thread times are CPU
times (process_time: the step and the NumPy copy both run on the calling
thread), with two threads wall times.

Rows: fastgrad's native call alone (_C.<opt>_step on the arrays, what the
kernel can do), fastgrad's optimizer.step() (adds the Python of the optimizer
class), torch fused=True where torch has it, torch foreach=True. Two layouts:
one 10M tensor, and 100 tensors of 100K (per-tensor overhead).

    PYTHONPATH=python python bench/bench_optim.py [--reps 9] [--numel 10000000] [--threads 1 2]
        [--only adam sgd ...] [--layouts one many]
"""
import argparse
import time

import numpy as np
import torch

import fastgrad as fg
from fastgrad import _C
from fastgrad import optim as fg_optim

# name: (bytes per float32 element, fastgrad class + kwargs, torch class + kwargs, native call builder)
OPTIMIZERS = {
    "sgd": (12, (fg_optim.SGD, dict(lr=1e-3)), (torch.optim.SGD, dict(lr=1e-3))),
    "sgd_momentum": (20, (fg_optim.SGD, dict(lr=1e-3, momentum=0.9)), (torch.optim.SGD, dict(lr=1e-3, momentum=0.9))),
    "adam": (28, (fg_optim.Adam, dict(lr=1e-3)), (torch.optim.Adam, dict(lr=1e-3))),
    "adamw": (28, (fg_optim.AdamW, dict(lr=1e-3, weight_decay=1e-2)),
              (torch.optim.AdamW, dict(lr=1e-3, weight_decay=1e-2))),
    "adagrad": (20, (fg_optim.Adagrad, dict(lr=1e-2)), (torch.optim.Adagrad, dict(lr=1e-2))),
    "rmsprop": (20, (fg_optim.RMSprop, dict(lr=1e-3)), (torch.optim.RMSprop, dict(lr=1e-3))),
}


def native_call(name, opt, params):
    """The bare _C call that opt.step() makes, on the state opt.step() created (opt has stepped once)."""
    ps = [p._data for p in params]
    gs = [p.grad._data for p in params]
    st = [opt.state[p] for p in params]
    arr = lambda key: [s[key]._data for s in st]  # noqa: E731
    if name == "sgd":
        return lambda: _C.sgd_step(ps, gs, [], 1e-3, 0.0, 0.0, 0.0, False, False, False)
    if name == "sgd_momentum":
        bufs = arr("momentum_buffer")
        return lambda: _C.sgd_step(ps, gs, bufs, 1e-3, 0.9, 0.0, 0.0, False, False, False)
    if name in ("adam", "adamw"):
        ms, vs, wd = arr("exp_avg"), arr("exp_avg_sq"), (1e-2 if name == "adamw" else 0.0)
        return lambda: _C.adam_step(ps, gs, ms, vs, [], 10, 1e-3, 0.9, 0.999, 1e-8, wd, False, False, name == "adamw")
    if name == "adagrad":
        sums = arr("sum")
        return lambda: _C.adagrad_step(ps, gs, sums, 10, 1e-2, 0.0, 0.0, 1e-10, False)
    if name == "rmsprop":
        sqs = arr("square_avg")
        return lambda: _C.rmsprop_step(ps, gs, sqs, [], [], 1e-3, 0.99, 1e-8, 0.0, 0.0, False, False)
    raise KeyError(name)


def make_fastgrad(name, shapes, rng):
    cls, kw = OPTIMIZERS[name][1]
    params = [fg.tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True) for s in shapes]
    for p in params:
        p.grad = fg.tensor(rng.standard_normal(p.shape, dtype=np.float32) * 1e-3)
    opt = cls(params, **kw)
    opt.step()  # creates the state
    return opt, params


def make_torch(name, shapes, rng, mode):
    cls, kw = OPTIMIZERS[name][2]
    params = [torch.tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.tensor(rng.standard_normal(p.shape, dtype=np.float32) * 1e-3)
    try:
        opt = cls(params, **kw, **mode)
        opt.step()
    except (RuntimeError, ValueError, TypeError):
        return None  # this torch has no such mode for this optimizer
    return opt


def seconds(fn, threads):
    """Wall time of fn(); with one thread the process CPU time instead (the step runs on this
    thread): time spent descheduled on the shared box then does not count, memory stalls do."""
    clock = time.process_time if threads == 1 else time.perf_counter
    t0 = clock()
    fn()
    return clock() - t0


def run(name, shapes, n, reps, threads, rng):
    nbytes = OPTIMIZERS[name][0] * n
    fopt, fparams = make_fastgrad(name, shapes, rng)
    rows = [("fastgrad _C call", native_call(name, fopt, fparams)), ("fastgrad opt.step()", fopt.step)]
    for label, mode in [("torch fused=True", dict(fused=True)), ("torch foreach=True", dict(foreach=True))]:
        topt = make_torch(name, shapes, rng, mode)
        rows.append((label, topt.step if topt is not None else None))
    times = {label: [] for label, _ in rows}
    ratios = {label: [] for label, _ in rows}
    copy_gbs = []
    copy_src = np.ones(10_000_000, np.float32)
    copy_dst = np.zeros_like(copy_src)
    for _ in range(reps):
        # Copy bandwidth right before the steps it is compared with.
        # (Best of 3 memcpy's of 40 MB, past glibc's non-temporal threshold: each byte
        # is read once and written once, as in a step.) With one thread, its CPU time.
        if threads == 1:
            t = min(seconds(lambda: np.copyto(copy_dst, copy_src), 1) for _ in range(3))
            gbs = 2 * copy_src.nbytes / t / 1e9
        else:
            gbs = float(max(_C.measure_copy_bandwidth(copy_src.nbytes, 3, threads)))
        copy_gbs.append(gbs)
        bound_s = nbytes / (gbs * 1e9)
        for label, fn in rows:
            if fn is None:
                continue
            t = seconds(fn, threads)
            times[label].append(t)
            ratios[label].append(bound_s / t)
    bound_ms = 1e3 * nbytes / (float(np.median(copy_gbs)) * 1e9)
    out = []
    for label, _ in rows:
        if not times[label]:
            out.append((label, None))
            continue
        ms = 1e3 * float(np.median(times[label]))
        out.append((label, (ms, 1e3 * min(times[label]), nbytes / ms / 1e6, float(np.median(ratios[label])))))
    return float(np.median(copy_gbs)), bound_ms, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    ap.add_argument("--layouts", nargs="+", default=["one", "many"], choices=["one", "many"])
    args = ap.parse_args()
    n = args.numel
    rng = np.random.default_rng(0)
    layouts = {"one": (f"1x{n / 1e6:g}M", [(n,)]), "many": (f"100x{n / 1e5:g}K", [(n // 100,)] * 100)}
    print(f"kernel build: {_C.gemm_info()} (FASTGRAD_CPU_CAPABILITY=scalar|avx2 forces one); "
          f"{n / 1e6:g}M float32 params; median of {args.reps}")
    for threads in args.threads:
        fg.set_num_threads(threads)
        torch.set_num_threads(threads)
        print(f"\n== {threads} thread(s) ==")
        print(f"{'optimizer':<13} {'layout':<9} {'implementation':<20} {'median ms':>9} {'best ms':>8} "
              f"{'GB/s':>6} {'x bound':>7} {'bound ms':>8} {'copy GB/s':>9}")
        for name in args.only:
            for key in args.layouts:
                lname, shapes = layouts[key]
                copy_gbs, bound_ms, out = run(name, shapes, n, args.reps, threads, rng)
                for label, r in out:
                    if r is None:
                        print(f"{name:<13} {lname:<9} {label:<20} {'(no such mode in torch)':>33}")
                        continue
                    ms, best, gbs, ratio = r
                    print(f"{name:<13} {lname:<9} {label:<20} {ms:9.2f} {best:8.2f} {gbs:6.1f} {ratio:7.2f} "
                          f"{bound_ms:8.2f} {copy_gbs:9.1f}")


if __name__ == "__main__":
    main()
