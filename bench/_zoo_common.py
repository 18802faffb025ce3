"""What the model zoo benchmarks (bench_zoo*.py, and bench_transformer.py) share: timing a call, timing
a training step in blocks, the command line and the fastgrad-vs-torch table of the step benchmarks, and
the torch twins' helpers.

Imported as `_zoo_common` by the scripts next to it (a script's folder is on sys.path)."""
import argparse
import os
import time

import numpy as np


def time_step(step, steps, reps):
    """Median and best ms per call of step() over `reps` blocks of `steps` calls, after one warm-up block."""
    for _ in range(steps):
        step()
    blocks = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        blocks.append((time.perf_counter() - t0) / steps)
    return 1e3 * float(np.median(blocks)), 1e3 * min(blocks)


def time_ms(fn, reps, warmup=3):
    """(median, best) wall time of one fn() call in ms over `reps` calls, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)), 1e3 * min(times)


def torch_mlp(sizes, act):
    """torch.nn.Sequential of Linear layers sizes[0]-...-sizes[-1] with act() between them (fastgrad's MLP)."""
    import torch

    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def copy_weights(fg_module, torch_module):
    """Load fastgrad weights into a torch module with the same parameter names."""
    import torch

    sd = {k: torch.from_numpy(v.numpy().copy()) for k, v in fg_module.state_dict().items()}
    torch_module.load_state_dict(sd)


def step_args(doc, steps):
    """The step benchmarks' command line: --threads, --reps, --steps (default `steps`), --only."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="threads for fastgrad and torch (default 1)")
    ap.add_argument("--reps", type=int, default=7, help="timed blocks per entry (default 7)")
    ap.add_argument("--steps", type=int, default=steps, help=f"steps per timed block (default {steps})")
    ap.add_argument("--only", nargs="+", default=None, help="entries to run (default: all)")
    return ap.parse_args()


def import_frameworks(threads):
    """fastgrad and torch, both set to `threads` threads (fastgrad's pool reads the variable at import)."""
    os.environ["FASTGRAD_NUM_THREADS"] = str(threads)
    import torch

    import fastgrad as fg

    fg.set_num_threads(threads)
    torch.set_num_threads(threads)
    return fg, torch


def run_steps(sections, args, fg, torch, note="", digits=3):
    """Time every entry of sections = {section title or None: {name: (build, default steps)}}, where
    build(fg, torch) returns (fastgrad step, torch step) built from the same seed, and print one row each:
    medians (best), torch / fastgrad, and the example's default steps with the fastgrad total ("(by time)"
    where the example trains for a time instead)."""
    best = f"{8 - digits}.{digits}f"
    print(f"threads: {args.threads}; ms per training step, median of {args.reps} blocks of {args.steps} "
          f"(best in brackets); ratio = torch / fastgrad (> 1: fastgrad faster){note}")
    print(f"{'entry':<14}{'fastgrad ms':>18}{'torch ms':>18}{'ratio':>8}{'default steps':>15}{'fastgrad s':>12}")
    for section, entries in sections.items():
        if section:
            print(f"-- {section}")
        for name, (build, default_steps) in entries.items():
            if args.only and name not in args.only:
                continue
            fg.manual_seed(0)
            torch.manual_seed(0)
            fg_step, torch_step = build(fg, torch)
            f_med, f_best = time_step(fg_step, args.steps, args.reps)
            t_med, t_best = time_step(torch_step, args.steps, args.reps)
            total = f"{default_steps * f_med / 1e3:>11.1f}s" if default_steps else f"{'(by time)':>12}"
            print(f"{name:<14}{f_med:>10.{digits}f} ({f_best:{best}}){t_med:>10.{digits}f} ({t_best:{best}})"
                  f"{t_med / f_med:>7.2f}x{default_steps or '-':>15}{total}", flush=True)
