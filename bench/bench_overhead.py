"""Per-op Python overhead: fastgrad beside PyTorch (and NumPy), microseconds per call.

Tiny operands (16 floats, a 4x4 matmul) so that the kernel is negligible and
what is timed is the framework's per-call cost: argument handling, dtype
promotion, the tape record (with autograd), the Tensor wrapper. Rows:
add / mul / scalar mul / matmul / relu without and with autograd (an input
that requires grad, so the op is recorded), plus a small forward+backward
(y = relu(x @ w + b).sum(); y.backward()) and one optimizer step.

One thread, thread CPU time (a loaded shared machine disturbs it little);
medians over repeated samples, fastgrad's and torch's samples alternating.

    PYTHONPATH=python python bench/bench_overhead.py [--json out.json] [--before before.json]

--json writes the fastgrad times; --before reads such a file and adds a
"before" column (e.g. the numbers of an older commit) and the speed-up.
"""
import argparse
import json
import os
import sys

import numpy as np

try:
    import fastgrad as fg
except ImportError:  # a source checkout without PYTHONPATH=python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import fastgrad as fg
from fastgrad import _bench


def train_step(lib, m, v):
    """relu(x @ w + b).sum() with x = m (4x4), in fastgrad or torch (lib: the
    same API): its fwd+bwd and its zero_grad + fwd+bwd + SGD step."""
    w = lib.tensor(m.T.copy(), requires_grad=True)
    bias = lib.tensor(v[:4].copy(), requires_grad=True)
    x4 = lib.tensor(m)
    opt = lib.optim.SGD([w, bias], lr=1e-3)

    def fb():
        ((x4 @ w + bias).relu().sum()).backward()

    def step():
        opt.zero_grad()
        fb()
        opt.step()

    return fb, step


def cases(torch):
    """[(name, fastgrad fn, torch fn or None, numpy fn or None)]."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal(16).astype(np.float32)
    m = rng.standard_normal((4, 4)).astype(np.float32)
    a, b = fg.tensor(v), fg.tensor(v[::-1].copy())
    ag = fg.tensor(v, requires_grad=True)
    ma, mag = fg.tensor(m), fg.tensor(m, requires_grad=True)
    fb, fstep = train_step(fg, m, v)

    if torch is not None:
        ta, tb = torch.from_numpy(v.copy()), torch.from_numpy(v[::-1].copy())
        tag = torch.from_numpy(v.copy()).requires_grad_()
        tma, tmag = torch.from_numpy(m.copy()), torch.from_numpy(m.copy()).requires_grad_()
        tfb, tstep = train_step(torch, m, v)

    def t(fn):
        return fn if torch is not None else None

    return [
        ("add", lambda: a + b, t(lambda: ta + tb), lambda: v + v),
        ("add, requires grad", lambda: ag + b, t(lambda: tag + tb), None),
        ("mul", lambda: a * b, t(lambda: ta * tb), lambda: v * v),
        ("mul, requires grad", lambda: ag * b, t(lambda: tag * tb), None),
        ("scalar mul a * 2.0", lambda: a * 2.0, t(lambda: ta * 2.0), lambda: v * 2.0),
        ("scalar mul, requires grad", lambda: ag * 2.0, t(lambda: tag * 2.0), None),
        ("scalar add a + 1.0", lambda: a + 1.0, t(lambda: ta + 1.0), lambda: v + 1.0),
        ("matmul 4x4", lambda: ma @ ma, t(lambda: tma @ tma), lambda: m @ m),
        ("matmul 4x4, requires grad", lambda: mag @ ma, t(lambda: tmag @ tma), None),
        ("relu", lambda: a.relu(), t(lambda: ta.relu()), lambda: np.maximum(v, 0)),
        ("relu, requires grad", lambda: ag.relu(), t(lambda: tag.relu()), None),
        ("fwd+bwd relu(x@w+b).sum()", fb, t(lambda: tfb()), None),
        ("zero_grad+fwd+bwd+SGD step", fstep, t(lambda: tstep()), None),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write fastgrad's times (us) to this file")
    ap.add_argument("--before", help="a --json file from an earlier run: adds a 'before' column")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per row (default 1)")
    args = ap.parse_args(argv)
    torch = _bench.try_torch()
    _bench.set_threads(1, torch)
    before = json.load(open(args.before)) if args.before else {}
    print("per-op overhead, microseconds per call (1 thread, thread CPU time, median of alternating samples)")
    head = f"{'op':<30}" + (f"{'before':>9}" if before else "") + f"{'fastgrad':>9}{'torch':>9}{'numpy':>9}"
    head += (f"{'before/fg':>10}" if before else "") + f"{'torch/fg':>9}"
    print(head)
    result = {}
    for name, f_fg, f_t, f_np in cases(torch):
        (t_fg, _), (t_t, _) = _bench.paired_times(f_fg, f_t, args.budget, cpu_clock=True)
        t_np = _bench._median_time(f_np, 5, cpu_clock=True) if f_np is not None else None
        result[name] = t_fg * 1e6
        b = before.get(name)
        line = f"{name:<30}" + (f"{b:9.2f}" if before and b else f"{'-':>9}" if before else "")
        line += f"{t_fg * 1e6:9.2f}" + (f"{t_t * 1e6:9.2f}" if t_t else f"{'-':>9}")
        line += f"{t_np * 1e6:9.2f}" if t_np else f"{'-':>9}"
        if before:
            line += f"{b / (t_fg * 1e6):9.2f}x" if b else f"{'-':>10}"
        line += f"{t_t / t_fg:8.2f}x" if t_t else f"{'-':>9}"
        print(line, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
