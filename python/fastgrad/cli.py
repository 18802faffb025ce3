"""The `fastgrad` command (also `python -m fastgrad`).

    fastgrad train iris [--steps N] [--seed S] [--out DIR] [--optimizers ...] [--lrs ...]
    fastgrad bench [--quick]
    fastgrad info
"""
import argparse
import csv
import json
import os
import sys
import time

# Learning rates that suit full-batch Iris for each optimizer (the sweep varies them).
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.1, "rmsprop": 0.01, "adam": 0.01,
              "adamw": 0.01}


def _make_optimizer(name, params, lr):
    from . import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if name == "nesterov":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    if name == "adagrad":
        return optim.Adagrad(params, lr=lr)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    if name == "adamw":
        return optim.AdamW(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r} (choose from {', '.join(DEFAULT_LR)})")


def _progress(total, desc):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
    except ImportError:
        return None


def train_iris_run(X, y, optimizer, lr, steps, seed, hidden=8):
    """One full-batch run of MLP 4-hidden(ReLU)-3; returns per-step losses and final accuracy."""
    import fastgrad as fg
    import fastgrad.nn.functional as F
    from .models import MLP

    fg.manual_seed(seed)
    model = MLP([X.shape[1], hidden, 3], activation="relu")
    opt = _make_optimizer(optimizer, model.parameters(), lr)
    losses = []
    bar = _progress(steps, f"{optimizer} lr={lr:g}")
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    with fg.no_grad():
        acc = (model(X).argmax(dim=1) == y).to(fg.float32).mean().item()
    return losses, acc


def _write_csv(path, curves, steps):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        names = list(curves)
        w.writerow(["step"] + names)
        for i in range(steps):
            w.writerow([i + 1] + [f"{curves[n][i]:.6g}" for n in names])


def _plot(path, curves, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, label=name, linewidth=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("step (full batch)")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def cmd_train(args):
    if args.model != "iris":
        print(f"fastgrad train: unknown model {args.model!r} (available: iris)", file=sys.stderr)
        return 2
    import fastgrad as fg

    X, y = fg.datasets.iris()
    # standardise the features: plain SGD then behaves at the learning rates above
    X = (X - X.mean(dim=0)) / X.std(dim=0)
    os.makedirs(args.out, exist_ok=True)
    optimizers = [o.lower() for o in args.optimizers]
    for o in optimizers:
        if o not in DEFAULT_LR:
            print(f"fastgrad train: unknown optimizer {o!r} (choose from {', '.join(DEFAULT_LR)})", file=sys.stderr)
            return 2
    summary = []
    t0 = time.perf_counter()
    per_opt = {}
    for o in optimizers:
        lr = DEFAULT_LR[o]
        losses, acc = train_iris_run(X, y, o, lr, args.steps, args.seed)
        per_opt[f"{o} (lr={lr:g})"] = losses
        summary.append((o, lr, losses[-1], acc))
    per_lr = {}
    for lr in args.lrs:
        losses, acc = train_iris_run(X, y, args.sweep_optimizer, lr, args.steps, args.seed)
        per_lr[f"{args.sweep_optimizer} lr={lr:g}"] = losses
        summary.append((args.sweep_optimizer + " (sweep)", lr, losses[-1], acc))
    elapsed = time.perf_counter() - t0

    _write_csv(os.path.join(args.out, "iris_loss_per_optimizer.csv"), per_opt, args.steps)
    _write_csv(os.path.join(args.out, "iris_loss_per_lr.csv"), per_lr, args.steps)
    with open(os.path.join(args.out, "iris_summary.json"), "w") as f:
        json.dump([dict(optimizer=o, lr=lr, final_loss=l, accuracy=a) for o, lr, l, a in summary], f, indent=1)
    plotted = _plot(os.path.join(args.out, "iris_loss_per_optimizer.png"), per_opt,
                    "Iris, MLP 4-8(ReLU)-3: training loss per optimizer")
    plotted &= _plot(os.path.join(args.out, "iris_loss_per_lr.png"), per_lr,
                     f"Iris, MLP 4-8(ReLU)-3: {args.sweep_optimizer} per learning rate")

    print(f"\nIris (150 examples, full batch), MLP 4-8(ReLU)-3, {args.steps} steps, seed {args.seed}")
    print(f"{'optimizer':<18}{'lr':>8}{'final loss':>13}{'accuracy':>10}")
    for o, lr, loss, acc in summary:
        print(f"{o:<18}{lr:>8g}{loss:>13.4f}{acc * 100:>9.1f}%")
    print(f"\n{len(summary)} runs in {elapsed:.1f} s; wrote CSV to {args.out}/")
    if plotted:
        print(f"figures: {args.out}/iris_loss_per_optimizer.png, {args.out}/iris_loss_per_lr.png")
    else:
        print("matplotlib is not installed, so no PNG figures were drawn; "
              "`pip install 'fastgrad[examples]'` (matplotlib, tqdm) adds them.")
    return 0


def cmd_info(args):
    import fastgrad as fg

    for k, v in fg.config().items():
        print(f"{k:>24}: {v}")
    return 0


def cmd_bench(args):
    from . import _bench

    return _bench.main(quick=args.quick)


def build_parser():
    p = argparse.ArgumentParser(prog="fastgrad", description="fastgrad: train built-in examples, benchmark, info")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a built-in example and write learning curves")
    t.add_argument("model", help="the example to train: iris")
    t.add_argument("--steps", type=int, default=500, help="full-batch training steps per run (default 500)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="runs/iris", help="output folder for CSV/PNG (default runs/iris)")
    t.add_argument("--optimizers", nargs="+", default=list(DEFAULT_LR), metavar="OPT",
                   help=f"optimizers to compare (default: all of {' '.join(DEFAULT_LR)})")
    t.add_argument("--lrs", nargs="+", type=float, default=[0.001, 0.003, 0.01, 0.03, 0.1],
                   help="learning rates for the sweep")
    t.add_argument("--sweep-optimizer", default="adam", help="optimizer used for the learning-rate sweep")
    t.set_defaults(fn=cmd_train)
    b = sub.add_parser("bench", help="micro-benchmarks against NumPy (and PyTorch if installed)")
    b.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    b.set_defaults(fn=cmd_bench)
    i = sub.add_parser("info", help="print build and runtime information")
    i.set_defaults(fn=cmd_info)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "steps", 1) < 1:
        print("fastgrad train: --steps must be at least 1", file=sys.stderr)
        return 2
    return args.fn(args)
