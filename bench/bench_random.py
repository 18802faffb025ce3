"""Random numbers: fastgrad (Philox) vs NumPy (PCG64 Generator) vs PyTorch
(mt19937), side by side, 1 and 2 threads.

Rows: rand / randn in float32 and float64 on N elements (default 4M), and
multinomial on (rows, categories) weights with and without replacement.
Clock: with one thread the medians are of thread CPU time (the box is
shared; CPU time counts the work this process did, not the waits); with two
threads of wall time. Ratios are fastgrad's time over the other's (< 1:
fastgrad faster).

    python bench/bench_random.py [--n 4194304] [--reps 9] [--threads 1,2]
"""
import argparse

import numpy as np

import fastgrad as fg

import _timing
from _timing import median_time

try:
    import torch
except ImportError:
    torch = None


def rows(n):
    g = np.random.default_rng(0)
    w32 = fg.rand(256, 1000) + 0.01
    tw = torch.tensor(w32.numpy()) if torch else None
    nw = w32.numpy().astype(np.float64)
    out = []
    for dt, ndt, tdt in ((fg.float32, np.float32, "float32"), (fg.float64, np.float64, "float64")):
        out.append((f"rand {tdt} n={n}", lambda dt=dt: fg.rand(n, dtype=dt),
                    lambda ndt=ndt: g.random(n, dtype=ndt),
                    (lambda tdt=tdt: torch.rand(n, dtype=getattr(torch, tdt))) if torch else None))
        out.append((f"randn {tdt} n={n}", lambda dt=dt: fg.randn(n, dtype=dt),
                    lambda ndt=ndt: g.standard_normal(n, dtype=ndt),
                    (lambda tdt=tdt: torch.randn(n, dtype=getattr(torch, tdt))) if torch else None))
    p = nw / nw.sum(1, keepdims=True)
    out.append(("multinomial 256x1000, 100 with repl.", lambda: fg.multinomial(w32, 100, replacement=True),
                lambda: [g.choice(1000, 100, p=p[i]) for i in range(256)],
                (lambda: torch.multinomial(tw, 100, replacement=True)) if torch else None))
    out.append(("multinomial 256x1000, 100 without", lambda: fg.multinomial(w32, 100),
                lambda: [g.choice(1000, 100, replace=False, p=p[i]) for i in range(256)],
                (lambda: torch.multinomial(tw, 100)) if torch else None))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    for th in [int(t) for t in args.threads.split(",")]:
        fg.set_num_threads(th)
        if torch:
            torch.set_num_threads(th)
        _timing.CPU_CLOCK = th == 1
        print(f"\n{th} thread(s), median {'CPU' if th == 1 else 'wall'} ms of {args.reps}")
        print(f"{'case':40s} {'fastgrad':>9s} {'numpy':>9s} {'torch':>9s} {'fg/np':>6s} {'fg/torch':>8s}")
        for name, f, nf, tf in rows(args.n):
            tg = median_time(f, args.reps)
            tn = median_time(nf, args.reps)
            tt = median_time(tf, args.reps) if tf else float("nan")
            print(f"{name:40s} {tg * 1e3:9.2f} {tn * 1e3:9.2f} {tt * 1e3:9.2f} {tg / tn:6.2f} {tg / tt:8.2f}")


if __name__ == "__main__":
    main()
