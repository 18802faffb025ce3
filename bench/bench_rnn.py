"""Recurrent layers: fastgrad's LSTM/GRU against torch.nn on the CPU,
forward + backward (the training step minus the optimizer), side by side.

Cases: LSTM at batch 32, input 64, sequence 64/128, hidden 128/256, 1 and 2
layers; the character language model's LSTM (batch 64, sequence 100, embed
64, hidden 256); a GRU; inference (forward under no_grad); and the same LSTM
through fastgrad's composite path (the recurrence in fastgrad ops, one
Python-level op at a time) to show what the native time loop buys; and an
LSTMCell stepped from Python as a seq2seq decoder does. Each
timing is the median of several runs, fastgrad's and torch's alternating so
both see the same load; both libraries use the same number of threads. "vs torch" = torch's time / fastgrad's (above 1: fastgrad faster).

    PYTHONPATH=python python bench/bench_rnn.py [--threads N] [--quick] [--cpu-time]
"""
import argparse
import statistics
import time

import numpy as np


def paired_medians(fa, fb, budget_s, max_reps=15, clock=time.perf_counter):
    """Median times of fa() and fb(), run alternately so that both see the
    same machine load (this box is shared and noisy)."""
    fa(), fb()  # warm up: allocator caches, thread pool
    t0 = time.perf_counter()
    fa(), fb()
    once = max(time.perf_counter() - t0, 1e-7)
    reps = int(min(max_reps, max(3, budget_s / once)))
    ta, tb = [], []
    for _ in range(reps):
        for fn, ts in ((fa, ta), (fb, tb)):
            t = clock()
            fn()
            ts.append(clock() - t)
    return statistics.median(ta), statistics.median(tb)


def step_fn(framework, mod, x, cell, train):
    """The timed call of mod, an RNN module of `framework` (torch or fastgrad), on x (T, B, I): forward and
    backward of the outputs' sum (with train), or a forward under no_grad; for a cell (cell=True), a
    decoder-style loop of one cell call per step with the loss on every h."""
    if cell:
        def run():
            mod.zero_grad()
            hc, loss = None, 0
            for t in range(x.shape[0]):
                hc = mod(x[t], hc)
                loss = loss + hc[0].sum()
            loss.backward()
    elif train:
        def run():
            mod.zero_grad()
            mod(x)[0].sum().backward()
    else:
        def run():
            with framework.no_grad():
                mod(x)
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer cases, shorter timings")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the process CPU clock instead of the wall clock (one thread only: steadier "
                         "than wall time when the machine is oversubscribed)")
    args = ap.parse_args()

    import torch

    import fastgrad as fg
    from fastgrad.nn.modules import rnn as rnn_mod

    fg.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    budget = 0.5 if args.quick else 2.0
    if args.cpu_time and args.threads != 1:
        ap.error("--cpu-time needs --threads 1")
    clock = time.process_time if args.cpu_time else time.perf_counter

    # (label, kind, B, T, I, H, layers, train)
    cases = [("LSTM", "LSTM", 32, 64, 64, 128, 1, True),
             ("LSTM", "LSTM", 32, 64, 64, 256, 1, True),
             ("LSTM", "LSTM", 32, 64, 64, 128, 2, True),
             ("LSTM", "LSTM", 32, 128, 64, 128, 1, True),
             ("LSTM", "LSTM", 32, 128, 64, 256, 2, True),
             ("char-LM LSTM", "LSTM", 64, 100, 64, 256, 1, True),
             ("GRU", "GRU", 32, 64, 64, 128, 1, True),
             ("LSTM inference", "LSTM", 32, 64, 64, 128, 1, False),
             ("LSTM composite path", "LSTM", 32, 64, 64, 128, 1, True),
             ("LSTMCell stepped from Python", "LSTMCell", 32, 20, 64, 128, 1, True)]
    if args.quick:
        cases = [cases[i] for i in (0, 2, 5, 8, 9)]

    print(f"threads: {args.threads}; fastgrad ISA: {fg._C.gemm_info()}; "
          f"clock: {'process CPU time' if args.cpu_time else 'wall'}")
    print("| case | fastgrad | torch | vs torch |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for label, kind, B, T, I, H, L, train in cases:
        kw = {} if kind.endswith("Cell") else {"num_layers": L}
        tm = getattr(torch.nn, kind)(I, H, **kw)
        m = getattr(fg.nn, kind)(I, H, **kw)
        m.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
        x = rng.standard_normal((T, B, I), dtype=np.float32)
        tx, fx = torch.tensor(x), fg.tensor(x)

        run_torch = step_fn(torch, tm, tx, kind.endswith("Cell"), train)
        run_fg = step_fn(fg, m, fx, kind.endswith("Cell"), train)

        def run_fg_path(run=run_fg, fused="composite" not in label):
            rnn_mod.use_fused = fused
            try:
                run()
            finally:
                rnn_mod.use_fused = True

        t_fg, t_torch = paired_medians(run_fg_path, run_torch, budget, clock=clock)
        what = "fwd+bwd" if train else "fwd"
        name = f"{label} {what} B={B} T={T} in={I} H={H} layers={L}"
        print(f"| {name} | {t_fg * 1e3:.2f} ms | {t_torch * 1e3:.2f} ms | {t_torch / t_fg:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
