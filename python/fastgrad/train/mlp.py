"""Universal approximation: a one-hidden-layer MLP 1-H(tanh)-1 fitting
continuous functions on [-pi, pi]; reports the max abs error on a dense grid."""
import math
import time

import numpy as np

from ._common import (adam_cosine, out_path, plot_curves, print_outputs, pyplot, save_figure, write_curves_csv,
                      write_summary)

NAME = "mlp"
DESCRIPTION = "universal approximation: one-hidden-layer MLP fitting sin(x) and sin(x) + sin(5x)/2 on [-pi, pi]"

# name -> (formula for the figure, function of a NumPy array)
FUNCTIONS = {
    "sin": ("sin(x)", np.sin),
    "sin5": ("sin(x) + sin(5x)/2", lambda x: np.sin(x) + 0.5 * np.sin(5 * x)),
    # not in the defaults: the kinks need many more tanh units for a small max error
    "kinked": ("|sin(2x)| + x/4", lambda x: np.abs(np.sin(2 * x)) + x / 4),
}
DEFAULT_FUNCTIONS = ["sin", "sin5"]


def add_arguments(p):
    p.add_argument("--steps", type=int, default=3000, help="full-batch Adam steps per function (default 3000)")
    p.add_argument("--hidden", type=int, default=128, help="hidden units (default 128)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate, cosine-annealed (default 0.01)")
    p.add_argument("--points", type=int, default=512, help="training points, evenly spaced (default 512)")
    p.add_argument("--functions", nargs="+", default=DEFAULT_FUNCTIONS, choices=list(FUNCTIONS),
                   help=f"target functions (default: {' '.join(DEFAULT_FUNCTIONS)})")
    p.add_argument("--init-scale", type=float, default=4.0,
                   help="first-layer slopes ~ U(-s, s), centres spread over [-pi, pi] (default 4; 0 = PyTorch's "
                        "default init)")


def spread_init_(linear, scale):
    """Slopes w ~ U(-scale, scale) and biases b = -w c with centres c ~ U(-pi, pi).

    PyTorch's default init gives |w| <= 1 and centres near 0, so the units
    start too flat and too bunched for the fast part of sin(5x); spreading the
    centres (where each tanh bends) over the interval is the usual fix."""
    import fastgrad as fg

    n = linear.weight.shape[0]
    with fg.no_grad():
        w = (fg.rand(n, 1) * 2 - 1) * scale
        c = (fg.rand(n) * 2 - 1) * math.pi
        linear.weight.copy_(w)
        linear.bias.copy_(-w.reshape(-1) * c)


def fit(fn, steps, hidden, lr, points, seed, init_scale=4.0):
    """Trains MLP 1-hidden(tanh)-1 on `points` samples of fn; returns (model, losses)."""
    import fastgrad as fg
    import fastgrad.nn.functional as F
    from ..models import MLP

    fg.manual_seed(seed)
    x = np.linspace(-math.pi, math.pi, points, dtype=np.float32)[:, None]
    X, Y = fg.tensor(x), fg.tensor(fn(x).astype(np.float32))
    model = MLP([1, hidden, 1], activation="tanh")
    if init_scale > 0:
        spread_init_(model.net[0], init_scale)
    losses = adam_cosine(model.parameters(), lambda: F.mse_loss(model(X), Y), steps, lr, lr * 0.01, "mlp fit")
    return model, losses


def max_error(model, fn, n=10001):
    """(grid, target, prediction, max abs error) on a dense grid of [-pi, pi]."""
    import fastgrad as fg

    grid = np.linspace(-math.pi, math.pi, n, dtype=np.float32)[:, None]
    with fg.no_grad():
        pred = model(fg.tensor(grid)).numpy()
    target = fn(grid)
    return grid[:, 0], target[:, 0], pred[:, 0], float(np.abs(pred - target).max())


def plot_fits(path, fits, hidden):
    plt = pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, len(fits), figsize=(5.5 * len(fits), 4), squeeze=False)
    for ax, (name, (grid, target, pred, err)) in zip(axes[0], fits.items()):
        ax.plot(grid, target, label=f"target {FUNCTIONS[name][0]}", linewidth=3, alpha=0.5)
        ax.plot(grid, pred, "--", label=f"MLP 1-{hidden}(tanh)-1", linewidth=1.5)
        ax.set_title(f"{name}: max |error| = {err:.2g}")
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def run(args):
    t0 = time.perf_counter()
    fits, curves, results = {}, {}, {}
    for name in args.functions:
        fn = FUNCTIONS[name][1]
        start = time.perf_counter()
        model, losses = fit(fn, args.steps, args.hidden, args.lr, args.points, args.seed, args.init_scale)
        seconds = time.perf_counter() - start
        fits[name] = max_error(model, fn)
        curves[name] = losses
        results[name] = {"max_abs_error": fits[name][3], "final_mse": losses[-1], "seconds": seconds}
    elapsed = time.perf_counter() - t0

    write_curves_csv(out_path(args, "mlp_loss.csv"), curves)
    write_summary(out_path(args, "mlp_summary.json"),
                  {"hidden": args.hidden, "steps": args.steps, "init_scale": args.init_scale, "functions": results,
                   "seconds": elapsed})
    plotted = plot_curves(out_path(args, "mlp_loss.png"), curves,
                          f"MLP 1-{args.hidden}(tanh)-1: training MSE", xlabel="step (full batch)",
                          ylabel="training MSE")
    plotted &= plot_fits(out_path(args, "mlp_fit.png"), fits, args.hidden)

    print(f"\nUniversal approximation on [-pi, pi]: MLP 1-{args.hidden}(tanh)-1, {args.points} training points, "
          f"{args.steps} Adam steps, seed {args.seed}")
    print(f"{'function':<10}{'formula':<22}{'train MSE':>12}{'max |err| (10001 pts)':>24}{'time':>8}")
    for name, r in results.items():
        print(f"{name:<10}{FUNCTIONS[name][0]:<22}{r['final_mse']:>12.2e}{r['max_abs_error']:>24.4f}"
              f"{r['seconds']:>7.1f}s")
    print_outputs(args, ["mlp_fit.png", "mlp_loss.png"], plotted, f"total {elapsed:.1f} s; ")
    return 0
