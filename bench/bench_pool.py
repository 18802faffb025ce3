"""Pooling and upsampling workbench: fastgrad vs PyTorch (CPU), 1 and 2 threads.

Typical CNN shapes, forward and backward timed separately (backward = one
autograd.grad of the op's output w.r.t. its input with retain_graph: the
gradient kernel plus the autograd call, as a training step pays it inside a
network; .backward() on a leaf would add fastgrad's copy into .grad). fastgrad and torch runs alternate so that machine
noise hits both; medians of --reps runs, and the ratio torch / fastgrad
(> 1: fastgrad is faster). Also checks that both give the same values.
With one thread the clock is the calling thread's CPU time (both libraries
then run everything on it), which a shared, loaded machine disturbs far less
than wall time; with more threads it is wall time. Runs in about a minute.

    PYTHONPATH=python python bench/bench_pool.py [--reps 30] [--threads 1,2]
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as TF

import fastgrad as fg
import fastgrad.nn.functional as F

CASES = [  # name, input shape, fastgrad fn, torch fn
    ("max_pool2d 2x2", (32, 32, 32, 32), lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)),
    ("max_pool2d 2x2 (DigitsCNN 1)", (32, 32, 8, 8), lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)),
    ("max_pool2d 2x2 (DigitsCNN 2)", (32, 64, 4, 4), lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)),
    ("max_pool2d 3x3 s2 p1", (64, 16, 24, 24), lambda x: F.max_pool2d(x, 3, 2, 1),
     lambda x: TF.max_pool2d(x, 3, 2, 1)),
    ("avg_pool2d 2x2", (64, 16, 24, 24), lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2)),
    ("avg_pool2d 3x3 s1 p1", (64, 16, 24, 24), lambda x: F.avg_pool2d(x, 3, 1, 1),
     lambda x: TF.avg_pool2d(x, 3, 1, 1)),
    ("adaptive_avg_pool2d ->1x1", (32, 512, 7, 7), lambda x: F.adaptive_avg_pool2d(x, 1),
     lambda x: TF.adaptive_avg_pool2d(x, 1)),
    ("nearest x2", (32, 64, 16, 16), lambda x: F.interpolate(x, scale_factor=2),
     lambda x: TF.interpolate(x, scale_factor=2)),
    ("bilinear x2", (32, 64, 16, 16), lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
     lambda x: TF.interpolate(x, scale_factor=2, mode="bilinear")),
]


CLOCK = [time.perf_counter]


def timed(fn):
    clock = CLOCK[0]
    t0 = clock()
    fn()
    return clock() - t0


def bench_case(fn, tfn, shape, reps):
    """Median ms of (fastgrad fwd, torch fwd, fastgrad bwd, torch bwd)."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    a, b = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    oa, ob = fn(a), tfn(b)
    np.testing.assert_allclose(oa.detach().numpy(), ob.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = np.random.default_rng(1).standard_normal(tuple(ob.shape), dtype=np.float32)
    ga, gb = fg.tensor(g), torch.tensor(g)

    def back_fg():
        return fg.autograd.grad(oa, a, ga, retain_graph=True)[0]

    def back_torch():
        return torch.autograd.grad(ob, b, gb, retain_graph=True)[0]

    np.testing.assert_allclose(back_fg().numpy(), back_torch().numpy(), rtol=1e-5, atol=1e-5)
    with fg.no_grad(), torch.no_grad():
        fwd_fg, fwd_torch = lambda: fn(a), lambda: tfn(b)
        for _ in range(2):
            fwd_fg(), fwd_torch()
        t = np.array([(timed(fwd_fg), timed(fwd_torch)) for _ in range(reps)])
    u = np.array([(timed(back_fg), timed(back_torch)) for _ in range(reps)])
    med = lambda col: 1e3 * float(np.median(col))  # noqa: E731
    return med(t[:, 0]), med(t[:, 1]), med(u[:, 0]), med(u[:, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    print(f"torch {torch.__version__}; float32; medians of {args.reps} runs; speed-up = torch time / fastgrad time")
    print(f"{'op':<29} {'input':<17} {'thr':>3} {'fwd fg ms':>10} {'fwd torch':>10} {'speed-up':>8} "
          f"{'bwd fg ms':>10} {'bwd torch':>10} {'speed-up':>8}")
    old = (fg.get_num_threads(), torch.get_num_threads())
    try:
        for n in (int(v) for v in args.threads.split(",")):
            fg.set_num_threads(n)
            torch.set_num_threads(n)
            CLOCK[0] = time.thread_time if n == 1 else time.perf_counter
            for name, shape, fn, tfn in CASES:
                ff, tf, fb, tb = bench_case(fn, tfn, shape, args.reps)
                print(f"{name:<29} {'x'.join(map(str, shape)):<17} {n:>3} {ff:>10.3f} {tf:>10.3f} {tf / ff:>7.2f}x "
                      f"{fb:>10.3f} {tb:>10.3f} {tb / fb:>7.2f}x", flush=True)
    finally:
        fg.set_num_threads(old[0])
        torch.set_num_threads(old[1])


if __name__ == "__main__":
    main()
