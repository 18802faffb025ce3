"""End-to-end training steps per second: fastgrad beside PyTorch, the same
model, weights, data and hyperparameters, one and two threads.

Models (one step = zero_grad, forward, cross-entropy, backward, Adam step):
  iris     MLP 4-8-3 (ReLU), the 150 Iris flowers as one batch, Adam lr 1e-2
  mlp784   MLP 784-256-256-10 (ReLU), a batch of 128 random inputs, Adam 1e-3
  cnn      fastgrad.models.DigitsCNN and its torch twin, a batch of 32 digits
           (8x8, scaled to [0, 1]), Adam lr 1e-3; dropout active (train mode)

Both models start from the same weights (fastgrad's state_dict loaded into
torch); before timing, their first losses (dropout off) are compared.
Timing: blocks of steps, fastgrad's and torch's blocks alternating so that
machine noise hits both; the median step time over the blocks (and the
best). With one thread the clock is the calling thread's CPU time (both
libraries then run everything on it), which a loaded, shared machine
disturbs far less than wall time; with two threads it is wall time.

    PYTHONPATH=python python bench/bench_train.py [--threads 1 2] [--quick] [--only iris mlp784 cnn]
"""
import argparse
import os
import sys

import numpy as np

try:
    import fastgrad as fg
except ImportError:  # a source checkout without PYTHONPATH=python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import _bench

MODELS = ("iris", "mlp784", "cnn")
TARGETS = {"iris": 2.0, "mlp784": 1.2, "cnn": 1.5}  # fastgrad / torch steps per second (the targets)


def _torch_mlp(torch, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_digits_cnn(torch):
    """The torch twin of fastgrad.models.DigitsCNN() (same layers, same parameter names)."""
    tn = torch.nn

    class TorchDigitsCNN(tn.Module):
        def __init__(self):
            super().__init__()
            self.features = tn.Sequential(tn.Conv2d(1, 32, 3, padding=1), tn.ReLU(),
                                          tn.Conv2d(32, 32, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
                                          tn.Conv2d(32, 64, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2))
            self.classifier = tn.Sequential(tn.Flatten(), tn.Linear(256, 128), tn.ReLU(), tn.Dropout(0.25),
                                            tn.Linear(128, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    return TorchDigitsCNN()


def _data(name):
    rng = np.random.default_rng(0)
    if name == "iris":
        X, y = fg.datasets.iris(as_numpy=True)
        return X, y
    if name == "mlp784":
        return rng.standard_normal((128, 784)).astype(np.float32), rng.integers(0, 10, 128)
    X, y = fg.datasets.digits(as_numpy=True)
    return (X[:32] / 16.0).reshape(32, 1, 8, 8).astype(np.float32), y[:32].copy()


def build(name, torch):
    """(description, fastgrad step, torch step or None) for one model, from the same weights and data."""
    fg.manual_seed(0)
    if name == "iris":
        desc, model, lr = "Iris MLP 4-8-3, batch 150, Adam", fg.models.MLP([4, 8, 3]), 1e-2
    elif name == "mlp784":
        desc, model, lr = "MLP 784-256-256-10, batch 128, Adam", fg.models.MLP([784, 256, 256, 10]), 1e-3
    elif name == "cnn":
        desc, model, lr = "DigitsCNN, batch 32 digits, Adam", fg.models.DigitsCNN(), 1e-3
    else:
        raise ValueError(f"bench_train: unknown model {name!r} (expected one of {MODELS})")
    X_np, y_np = _data(name)
    X, y = fg.from_numpy(X_np), fg.from_numpy(y_np)
    opt = fg.optim.Adam(model.parameters(), lr=lr)

    def fg_step():
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()

    if torch is None:
        return desc, fg_step, None
    tm = (_torch_mlp(torch, [4, 8, 3]) if name == "iris" else
          _torch_mlp(torch, [784, 256, 256, 10]) if name == "mlp784" else _torch_digits_cnn(torch))
    prefix = "net." if name != "cnn" else ""  # fastgrad's MLP wraps its Sequential as .net
    sd = {k[len(prefix):]: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    tm.load_state_dict(sd)
    tX, ty = torch.from_numpy(X_np), torch.from_numpy(y_np)
    topt = torch.optim.Adam(tm.parameters(), lr=lr)

    # Same model, same weights: the first losses agree (dropout off).
    model.eval()
    tm.eval()
    with fg.no_grad():
        l_fg = float(F.cross_entropy(model(X), y).item())
    with torch.no_grad():
        l_t = float(torch.nn.functional.cross_entropy(tm(tX), ty))
    model.train()
    tm.train()
    if abs(l_fg - l_t) > 1e-4 * max(1.0, abs(l_t)):
        raise RuntimeError(f"bench_train {name}: fastgrad and torch disagree on the first loss ({l_fg} vs {l_t})")

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tm(tX), ty).backward()
        topt.step()

    return desc, fg_step, torch_step


def run(threads=(1, 2), quick=False, only=MODELS):
    """Prints the table; returns rows (model, threads, fg steps/s, torch steps/s or None, ratio or None)."""
    torch = _bench.try_torch()
    rows = []
    print("\nend-to-end training steps per second (zero_grad + forward + backward + Adam), fastgrad vs torch")
    print("median over alternating blocks of steps (best in brackets); 1 thread: thread CPU time, 2: wall time")
    print(f"{'model':<38}{'thr':>4}{'fastgrad/s':>18}{'torch/s':>18}{'fg/torch':>9}{'target':>8}")
    for name in only:
        desc, f_fg, f_t = build(name, torch)
        for nt in threads:
            _bench.set_threads(nt, torch)
            budget = 0.6 if quick else 2.0
            (m_fg, b_fg), (m_t, b_t) = _bench.paired_times(f_fg, f_t, budget, cpu_clock=(nt == 1))
            sps_fg, sps_t = 1.0 / m_fg, (1.0 / m_t if m_t else None)
            ratio = sps_fg / sps_t if sps_t else None
            t_col = f"{sps_t:9.0f} [{1 / b_t:6.0f}]" if sps_t else f"{'-':>18}"
            r_col = f"{ratio:8.2f}x" if ratio else f"{'-':>9}"
            print(f"{desc:<38}{nt:>4}{sps_fg:9.0f} [{1 / b_fg:6.0f}]{t_col}{r_col}{TARGETS[name]:7.1f}x", flush=True)
            rows.append((name, nt, sps_fg, sps_t, ratio))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="shorter timings")
    ap.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS))
    args = ap.parse_args(argv)
    run(args.threads, args.quick, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
