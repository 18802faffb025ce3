"""What LSTM proj_size, packed sequences and the non-constant pad modes cost,
fastgrad vs torch on the CPU, forward + backward (a training step minus the
optimizer), side by side.

- LSTM proj_size: the native loop has no projection, so it runs as a plain
  LSTM with W_hh W_hr (then one output projection), or step by step in
  fastgrad ops (the composite path, as on other devices): both vs fastgrad
  without proj and torch with and without.
- Packed input: one native layer call per run of equal lengths; padded vs
  packed (random lengths, few distinct / all distinct) vs torch packed.
- F.pad reflect / replicate / circular (an index_select per padded dim) vs
  mode='constant' (native) vs torch.

Each number is the median of alternating runs (fastgrad and torch see the
same load); "ratio" = torch time / fastgrad time (above 1: fastgrad faster).

    PYTHONPATH=python python bench/bench_rnn_proj_packed.py [--threads N] [--quick]
"""
import argparse
import statistics
import time

import numpy as np


def medians(fns, budget_s, max_reps=11):
    """Median wall time of each fn, run round-robin (shared, noisy box)."""
    for f in fns:
        f()
    t0 = time.perf_counter()
    for f in fns:
        f()
    once = max(time.perf_counter() - t0, 1e-7)
    reps = int(min(max_reps, max(3, budget_s / once)))
    ts = [[] for _ in fns]
    for _ in range(reps):
        for f, t in zip(fns, ts):
            s = time.perf_counter()
            f()
            t.append(time.perf_counter() - s)
    return [statistics.median(t) for t in ts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch

    import fastgrad as fg
    import fastgrad.nn.functional as F
    import fastgrad.nn.modules.rnn as rnn_mod
    import fastgrad.nn.utils.rnn as FR

    torch.set_num_threads(args.threads)
    fg.set_num_threads(args.threads)
    budget = 1.0 if args.quick else 4.0
    rng = np.random.default_rng(0)
    print(f"threads={args.threads}, torch {torch.__version__}")

    def lstm_step(lib, m, x, packed_lengths=None):
        def run():
            xs = lib.tensor(x, requires_grad=True)
            if packed_lengths is not None:
                util = torch.nn.utils.rnn if lib is torch else FR
                out, _ = m(util.pack_padded_sequence(xs, packed_lengths, enforce_sorted=False))
                out = out.data
            else:
                out, _ = m(xs)
            out.square().sum().backward()
        return run

    def pair(**kw):
        tm = torch.nn.LSTM(64, 128, **kw)
        m = fg.nn.LSTM(64, 128, **kw)
        m.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
        return tm, m

    T, B = (32, 32) if args.quick else (64, 32)
    x = rng.standard_normal((T, B, 64)).astype(np.float32)
    print(f"\nLSTM 64 -> 128, T={T}, B={B}, float32, forward + backward (ms)")
    tm, m = pair()
    tmp, mp = pair(proj_size=64)
    fused = lstm_step(fg, m, x)
    proj = lstm_step(fg, mp, x)

    def composite():
        rnn_mod.use_fused = False
        try:
            fused()
        finally:
            rnn_mod.use_fused = True

    def proj_composite():
        rnn_mod.use_fused = False
        try:
            proj()
        finally:
            rnn_mod.use_fused = True

    t = medians([fused, composite, proj, proj_composite, lstm_step(torch, tm, x), lstm_step(torch, tmp, x)],
                budget)
    rows = [("no proj, native loop", t[0], t[4]), ("no proj, composite path", t[1], t[4]),
            ("proj_size=64, native (W_hh W_hr)", t[2], t[5]), ("proj_size=64, composite path", t[3], t[5])]
    for name, a, b in rows:
        print(f"  {name:34s} fastgrad {a * 1e3:8.2f}  torch {b * 1e3:8.2f}  ratio {b / a:5.2f}")
    print(f"  proj step / no-proj step: fastgrad native {t[2] / t[0]:.2f}x, composite {t[3] / t[0]:.2f}x; "
          f"torch {t[5] / t[4]:.2f}x")

    print(f"\nLSTM 64 -> 128 on packed input, T={T}, B={B}, float32, forward + backward (ms)")
    few = rng.choice([T, T // 2, T // 4, 3 * T // 4], size=B).tolist()
    many = rng.integers(1, T + 1, size=B).tolist()
    many[0] = T
    for name, lengths in (("4 distinct lengths", few), (f"{len(set(many))} distinct lengths", many)):
        t = medians([fused, lstm_step(fg, m, x, lengths), lstm_step(torch, tm, x, lengths)], budget)
        print(f"  {name:20s} fastgrad packed {t[1] * 1e3:8.2f}  (padded {t[0] * 1e3:7.2f})  torch packed "
              f"{t[2] * 1e3:8.2f}  ratio {t[2] / t[1]:5.2f}")

    shape = (8, 16, 64, 64) if args.quick else (32, 16, 64, 64)
    print(f"\nF.pad (2, 3, 1, 2) on {shape} float32, forward + backward (ms)")
    xp = rng.standard_normal(shape).astype(np.float32)
    for mode in ("constant", "reflect", "replicate", "circular"):
        def run_fg():
            a = fg.tensor(xp, requires_grad=True)
            F.pad(a, (2, 3, 1, 2), mode=mode).sum().backward()

        def run_torch():
            a = torch.tensor(xp, requires_grad=True)
            torch.nn.functional.pad(a, (2, 3, 1, 2), mode=mode).sum().backward()
        a, b = medians([run_fg, run_torch], budget)
        print(f"  {mode:10s} fastgrad {a * 1e3:8.2f}  torch {b * 1e3:8.2f}  ratio {b / a:5.2f}")


if __name__ == "__main__":
    main()
