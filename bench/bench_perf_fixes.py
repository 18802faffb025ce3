"""The model-zoo performance bugs, measured: fastgrad vs PyTorch (and NumPy), side by side.

  softmax   masked (causal -inf / -1e9) vs unmasked softmax, log_softmax,
            logsumexp on (256, 128, 128) float32, forward and backward
  unary     1M float32 elements through each unary op that used to run
            scalar libm (log1p, expm1, softplus, elu, leaky_relu, erf, sin,
            cos, tan), and softplus on the (100, 64) batch of the VAE/GAN loss
  threads   one training step (full-batch Adam) of the Iris MLP 4-8-3 and of a
            784-256-10 MLP at batch 128, at 1 and 2 threads; plus the
            hand-off cost of one parallel_for (an add just above the grain)
  crop      RandomCrop(32, padding=4) / RandomHorizontalFlip on 256 images
            (3, 32, 32) and RandomCrop(8, padding=1) on 256 digits (1, 8, 8)

The machine is shared and loaded: one-thread rows report the calling
thread's CPU time (time.thread_time), the thread rows wall time (what a
stalled hand-off costs) with its CPU time beside it; every number is the
median of --reps repeats.

    python bench/bench_perf_fixes.py [--only softmax,unary,threads,crop] [--reps 15]
"""
import argparse
import statistics
import time

import numpy as np

import fastgrad as fg
import fastgrad.data.transforms as T
import fastgrad.nn as nn
import fastgrad.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # torch columns are left out
    torch = None


def med(fn, reps, clock=time.thread_time, inner=1, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = clock()
        for _ in range(inner):
            fn()
        ts.append((clock() - t0) / inner)
    return statistics.median(ts)


def set_threads(n):
    fg.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def row(name, f, t=None, unit="ms", scale=1e3):
    tt = f"{t * scale:9.3f}" if t is not None else "        -"
    ratio = f"{f / t:6.2f}x" if t else "      -"
    print(f"  {name:44s} fastgrad {f * scale:9.3f} {unit}   torch {tt} {unit}   fg/torch {ratio}")


# ---- 1. masked softmax --------------------------------------------------------------------

def bench_softmax(reps):
    print("softmax family on (256, 128, 128) float32, dim -1, one thread (thread CPU time)")
    set_threads(1)
    x = fg.randn(256, 128, 128)
    mask = fg.ones(128, 128).triu(1).bool()
    cases = {"unmasked": x, "causal -inf": x.masked_fill(mask, float("-inf")),
             "causal -1e9": x.masked_fill(mask, -1e9)}
    for label, xf in cases.items():
        xt = torch.from_numpy(xf.numpy()) if torch is not None else None
        g = fg.randn(256, 128, 128)
        gt = torch.from_numpy(g.numpy()) if torch is not None else None
        for op in ("softmax", "log_softmax", "logsumexp"):
            tf = med(lambda: getattr(fg, op)(xf, -1), reps)
            tt = med(lambda: getattr(torch, op)(xt, -1), reps) if torch is not None else None
            row(f"{op:11s} fwd {label}", tf, tt)
        of, ot = xf.softmax(-1), (xt.softmax(-1) if torch is not None else None)
        lf, lt = xf.log_softmax(-1), (xt.log_softmax(-1) if torch is not None else None)
        tf = med(lambda: fg._C.softmax_backward(g._data, of._data, -1), reps)
        tt = med(lambda: torch._softmax_backward_data(gt, ot, -1, torch.float32), reps) if torch is not None else None
        row(f"softmax     bwd {label}", tf, tt)
        tf = med(lambda: fg._C.log_softmax_backward(g._data, lf._data, -1), reps)
        tt = (med(lambda: torch._log_softmax_backward_data(gt, lt, -1, torch.float32), reps)
              if torch is not None else None)
        row(f"log_softmax bwd {label}", tf, tt)


# ---- 2. unary ops -------------------------------------------------------------------------

def bench_unary(reps):
    print("unary ops on 1M float32 (fresh output), one thread (thread CPU time); NumPy where it has the op")
    set_threads(1)
    x = fg.randn(1 << 20)
    xp = x.abs()  # log1p's domain
    xn, xpn = x.numpy(), xp.numpy()
    xt = torch.from_numpy(xn) if torch is not None else None
    xpt = torch.from_numpy(xpn) if torch is not None else None
    ops = [
        ("log1p", lambda: xp.log1p(), lambda: xpt.log1p(), lambda: np.log1p(xpn)),
        ("expm1", lambda: x.expm1(), lambda: xt.expm1(), lambda: np.expm1(xn)),
        ("softplus", lambda: F.softplus(x), lambda: TF.softplus(xt), None),
        ("softplus beta=2 threshold=5", lambda: F.softplus(x, 2.0, 5.0), lambda: TF.softplus(xt, 2.0, 5.0), None),
        ("elu", lambda: F.elu(x), lambda: TF.elu(xt), None),
        ("leaky_relu", lambda: F.leaky_relu(x), lambda: TF.leaky_relu(xt), None),
        ("erf", lambda: x.erf(), lambda: xt.erf(), None),
        ("sin", lambda: x.sin(), lambda: xt.sin(), lambda: np.sin(xn)),
        ("cos", lambda: x.cos(), lambda: xt.cos(), lambda: np.cos(xn)),
        ("tan", lambda: x.tan(), lambda: xt.tan(), lambda: np.tan(xn)),
        ("exp (vecmath, for scale)", lambda: x.exp(), lambda: xt.exp(), lambda: np.exp(xn)),
    ]
    for name, f, t, n in ops:
        tf = med(f, reps)
        tt = med(t, reps) if torch is not None else None
        tn = med(n, reps) if n is not None else None
        extra = f"   numpy {tn * 1e3:7.3f} ms" if tn is not None else ""
        row(name, tf, tt)
        if extra:
            print(" " * 46 + extra)
    x2 = fg.randn(100, 64)
    x2t = torch.from_numpy(x2.numpy()) if torch is not None else None
    row("softplus (100, 64): the VAE/GAN loss batch", med(lambda: F.softplus(x2), reps * 10),
        med(lambda: TF.softplus(x2t), reps * 10) if torch is not None else None, unit="us", scale=1e6)


# ---- 3. threads -----------------------------------------------------------------------------

def mlp_step(sizes, batch, classes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    opt = fg.optim.Adam(model.parameters(), lr=1e-3)
    x = fg.randn(batch, sizes[0])
    y = fg.tensor(np.random.default_rng(0).integers(0, classes, batch))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def torch_mlp_step(sizes, batch, classes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, sizes[0])
    y = torch.from_numpy(np.random.default_rng(0).integers(0, classes, batch))

    def step():
        opt.zero_grad()
        TF.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def bench_threads(reps):
    print("training steps and one parallel_for hand-off: wall time (CPU time of all threads), median")
    cases = [("Iris MLP 4-8-3, batch 150, Adam", [4, 8, 3], 150, 3),
             ("MLP 784-256-10, batch 128, Adam", [784, 256, 10], 128, 10)]
    for name, sizes, batch, classes in cases:
        fstep = mlp_step(sizes, batch, classes)
        tstep = torch_mlp_step(sizes, batch, classes) if torch is not None else None
        for nt in (1, 2):
            set_threads(nt)
            inner = 20 if sizes[0] < 100 else 5
            tf = med(fstep, reps, clock=time.perf_counter, inner=inner, warmup=5)
            cf = med(fstep, reps, clock=time.process_time, inner=inner, warmup=1)
            tt = med(tstep, reps, clock=time.perf_counter, inner=inner, warmup=5) if tstep else None
            row(f"{name}, {nt} thread{'s' if nt > 1 else ''}", tf, tt)
            print(" " * 46 + f"   fastgrad CPU time {cf * 1e3:7.3f} ms")
    # one op whose work is split in two chunks at 2 threads: the hand-off cost
    a, b = fg.randn(1 << 16), fg.randn(1 << 16)
    for nt in (1, 2):
        set_threads(nt)
        tf = med(lambda: a + b, reps, clock=time.perf_counter, inner=200, warmup=50)
        row(f"add of 64K floats, {nt} thread{'s' if nt > 1 else ''}", tf, None, unit="us", scale=1e6)
    # the same after 2 ms idle: the workers are asleep and must be woken
    for nt in (1, 2):
        set_threads(nt)
        ts = []
        for _ in range(reps * 20):
            time.sleep(0.002)
            t0 = time.perf_counter()
            a + b
            ts.append(time.perf_counter() - t0)
        row(f"add of 64K floats after 2 ms idle, {nt} thread{'s' if nt > 1 else ''}", statistics.median(ts), None,
            unit="us", scale=1e6)


# ---- 4. crop / flip ---------------------------------------------------------------------------

def bench_crop(reps):
    print("batch augmentation, one thread (thread CPU time)")
    set_threads(1)
    imgs = fg.randn(256, 3, 32, 32)
    digits = fg.randn(256, 1, 8, 8)
    for name, tr, x in [("RandomCrop(32, padding=4), 256x3x32x32", T.RandomCrop(32, padding=4), imgs),
                        ("RandomHorizontalFlip(), 256x3x32x32", T.RandomHorizontalFlip(), imgs),
                        ("RandomCrop(8, padding=1), 256x1x8x8", T.RandomCrop(8, padding=1), digits)]:
        row(name, med(lambda: tr(x), reps), None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="softmax,unary,threads,crop")
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args()
    print(f"fastgrad {fg.__version__}, torch {torch.__version__ if torch else '-'}, numpy {np.__version__}")
    parts = {"softmax": bench_softmax, "unary": bench_unary, "threads": bench_threads, "crop": bench_crop}
    for name in args.only.split(","):
        parts[name](args.reps)


if __name__ == "__main__":
    main()
