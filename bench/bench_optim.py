"""Fused optimizer workbench: one Adam step on 10M float32 parameters.

Compares fastgrad's fused Adam (one native call per param group) with
torch.optim.Adam in its three CPU modes: fused=True, foreach=True and the
default single-tensor for-loop. Two layouts of the same 10M parameters: one
tensor, and 100 tensors of 100K elements (where per-tensor overhead shows).

Adam is memory-bound: per element it reads param, grad, exp_avg, exp_avg_sq
and writes param, exp_avg, exp_avg_sq, i.e. 7 x 4 bytes for float32. GB/s is
that traffic over the median step time (the best time is printed too:
on a busy machine it shows what the code can do); the NumPy copy line (read 4 + write
4 bytes per element) gives this machine's practical memory bandwidth for
comparison. Runs in well under a minute.

    PYTHONPATH=python python bench/bench_optim.py [--reps 10] [--numel 10000000] [--threads N]
"""
import argparse
import time

import numpy as np
import torch

import fastgrad as fg
from fastgrad import _C
from fastgrad import optim as fg_optim

ADAM_BYTES_PER_ELEM = 7 * 4


def time_ms(fn, reps, warmup=1):
    """(median, best) wall time of fn() in ms; the best shows the machine's capability when it is busy."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)), 1e3 * min(times)


def make_fastgrad(shapes, rng):
    params = [fg.tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True) for s in shapes]
    for p in params:
        p.grad = fg.tensor(rng.standard_normal(p.shape, dtype=np.float32) * 1e-3)
    return fg_optim.Adam(params, lr=1e-3), params


def make_torch(shapes, rng, **mode):
    params = [torch.tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.tensor(rng.standard_normal(p.shape, dtype=np.float32) * 1e-3)
    return torch.optim.Adam(params, lr=1e-3, **mode), params


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="threads for both fastgrad and torch (0: their defaults)")
    args = ap.parse_args()
    if args.threads:
        fg.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    n = args.numel
    rng = np.random.default_rng(0)

    print(f"fastgrad threads: {fg.get_num_threads()}, torch threads: {torch.get_num_threads()}, "
          f"kernel build: {'scalar' if _C.gemm_info() == 'scalar' else 'avx2+fma'} "
          "(FASTGRAD_CPU_CAPABILITY=scalar forces the baseline)")
    src = rng.standard_normal(n, dtype=np.float32)
    dst = np.empty_like(src)
    copy_ms, _ = time_ms(lambda: np.copyto(dst, src), args.reps)
    print(f"NumPy copy of {n / 1e6:.0f}M float32: {copy_ms:.2f} ms = {8 * n / copy_ms / 1e6:.1f} GB/s "
          "(single-threaded memory bandwidth reference)\n")

    layouts = [(f"1 x {n / 1e6:g}M", [(n,)]), (f"100 x {n / 1e5:g}K", [(n // 100,)] * 100)]
    print(f"{'layout':<12} {'implementation':<26} {'median ms':>10} {'best ms':>8} {'GB/s':>7} "
          f"{'fastgrad speed-up':>18}")
    for name, shapes in layouts:
        fopt, fparams = make_fastgrad(shapes, rng)
        fg_ms, fg_best = time_ms(fopt.step, args.reps)
        rows = [("fastgrad Adam (fused)", (fg_ms, fg_best))]

        # The native call alone (the Python step adds state lookup and list building).
        st = [fopt.state[p] for p in fparams]
        arrays = ([p._data for p in fparams], [p.grad._data for p in fparams],
                  [s["exp_avg"]._data for s in st], [s["exp_avg_sq"]._data for s in st])
        rows.append(("fastgrad _C.adam_step only",
                     time_ms(lambda: _C.adam_step(*arrays, [], 10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False,
                                                    False), args.reps)))
        del fopt, fparams, st, arrays

        for label, mode in [("torch Adam fused=True", dict(fused=True)),
                            ("torch Adam foreach=True", dict(foreach=True)),
                            ("torch Adam (default loop)", dict(foreach=False))]:
            topt, tparams = make_torch(shapes, rng, **mode)
            rows.append((label, time_ms(topt.step, args.reps)))
            del topt, tparams

        for label, (ms, best) in rows:
            gbs = ADAM_BYTES_PER_ELEM * n / ms / 1e6  # at the median time
            ratio = "" if label.startswith("fastgrad") else f"{ms / fg_ms:.2f}x"
            print(f"{name:<12} {label:<26} {ms:10.2f} {best:8.2f} {gbs:7.1f} {ratio:>18}")
        print()


if __name__ == "__main__":
    main()
