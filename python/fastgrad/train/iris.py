"""Iris, MLP 4-8(ReLU)-3 with softmax cross-entropy: training-loss curves per
optimizer and, for one optimizer, per learning rate (full batch)."""
import sys
import time

from ._common import out_path, plot_curves, print_outputs, progress, write_curves_csv, write_summary

NAME = "iris"
DESCRIPTION = "MLP 4-8(ReLU)-3 on Iris: loss curves per optimizer and per learning rate"

# Learning rates that suit full-batch Iris for each optimizer (the sweep varies them).
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.1, "rmsprop": 0.01, "adam": 0.01,
              "adamw": 0.01}


def add_arguments(p):
    p.add_argument("--steps", type=int, default=500, help="full-batch training steps per run (default 500)")
    p.add_argument("--optimizers", nargs="+", default=list(DEFAULT_LR), metavar="OPT",
                   help=f"optimizers to compare (default: all of {' '.join(DEFAULT_LR)})")
    p.add_argument("--lrs", nargs="+", type=float, default=[0.001, 0.003, 0.01, 0.03, 0.1],
                   help="learning rates for the sweep")
    p.add_argument("--sweep-optimizer", default="adam", help="optimizer used for the learning-rate sweep")


def make_optimizer(name, params, lr):
    from .. import optim

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


def train_run(X, y, optimizer, lr, steps, seed, hidden=8):
    """One full-batch run of MLP 4-hidden(ReLU)-3; returns per-step losses and final accuracy."""
    import fastgrad as fg
    import fastgrad.nn.functional as F
    from ..models import MLP

    fg.manual_seed(seed)
    model = MLP([X.shape[1], hidden, 3], activation="relu")
    opt = make_optimizer(optimizer, model.parameters(), lr)
    losses = []
    bar = progress(steps, f"{optimizer} lr={lr:g}")
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.update(1)
    bar.close()
    with fg.no_grad():
        acc = (model(X).argmax(dim=1) == y).to(fg.float32).mean().item()
    return losses, acc


def run(args):
    import fastgrad as fg

    optimizers = [o.lower() for o in args.optimizers]
    for o in optimizers + [args.sweep_optimizer]:
        if o not in DEFAULT_LR:
            print(f"fastgrad train iris: unknown optimizer {o!r} (choose from {', '.join(DEFAULT_LR)})",
                  file=sys.stderr)
            return 2
    X, y = fg.datasets.iris()
    # standardise the features: plain SGD then behaves at the learning rates above
    X = (X - X.mean(dim=0)) / X.std(dim=0)
    summary = []
    t0 = time.perf_counter()
    per_opt = {}
    for o in optimizers:
        lr = DEFAULT_LR[o]
        losses, acc = train_run(X, y, o, lr, args.steps, args.seed)
        per_opt[f"{o} (lr={lr:g})"] = losses
        summary.append((o, lr, losses[-1], acc))
    per_lr = {}
    for lr in args.lrs:
        losses, acc = train_run(X, y, args.sweep_optimizer, lr, args.steps, args.seed)
        per_lr[f"{args.sweep_optimizer} lr={lr:g}"] = losses
        summary.append((args.sweep_optimizer + " (sweep)", lr, losses[-1], acc))
    elapsed = time.perf_counter() - t0

    write_curves_csv(out_path(args, "iris_loss_per_optimizer.csv"), per_opt)
    write_curves_csv(out_path(args, "iris_loss_per_lr.csv"), per_lr)
    write_summary(out_path(args, "iris_summary.json"),
                  {"runs": [dict(optimizer=o, lr=lr, final_loss=l, accuracy=a) for o, lr, l, a in summary],
                   "seconds": elapsed})
    plotted = plot_curves(out_path(args, "iris_loss_per_optimizer.png"), per_opt,
                          "Iris, MLP 4-8(ReLU)-3: training loss per optimizer", xlabel="step (full batch)",
                          ylabel="training loss (cross-entropy)")
    plotted &= plot_curves(out_path(args, "iris_loss_per_lr.png"), per_lr,
                           f"Iris, MLP 4-8(ReLU)-3: {args.sweep_optimizer} per learning rate",
                           xlabel="step (full batch)", ylabel="training loss (cross-entropy)")

    print(f"\nIris (150 examples, full batch), MLP 4-8(ReLU)-3, {args.steps} steps, seed {args.seed}")
    print(f"{'optimizer':<18}{'lr':>8}{'final loss':>13}{'accuracy':>10}")
    for o, lr, loss, acc in summary:
        print(f"{o:<18}{lr:>8g}{loss:>13.4f}{acc * 100:>9.1f}%")
    print_outputs(args, ["iris_loss_per_optimizer.png", "iris_loss_per_lr.png"], plotted,
                  f"{len(summary)} runs in {elapsed:.1f} s; ")
    return 0
