"""What every training example shares: progress bars, learning-curve files,
figures and the printed summary. Only matplotlib and tqdm are optional."""
import csv
import json
import os
import time

import numpy as np


def progress(total, desc):
    """A tqdm bar when tqdm is installed, else a stand-in that does nothing."""
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
    except ImportError:
        return _NoBar()


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def adam_cosine(params, loss_fn, steps, lr, final_lr, desc):
    """`steps` Adam steps on loss_fn() (called after the gradients are cleared), the learning rate
    cosine-annealed from lr to final_lr; the loss of every step."""
    import fastgrad as fg

    opt = fg.optim.Adam(params, lr=lr)
    sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=final_lr)
    losses = []
    bar = progress(steps, desc)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.update(1)
    bar.close()
    return losses


def out_path(args, filename):
    """args.out/filename, creating args.out."""
    os.makedirs(args.out, exist_ok=True)
    return os.path.join(args.out, filename)


def write_curves_csv(path, curves, index_name="step"):
    """curves: {column name: list of values}; shorter columns are padded with blanks."""
    names = list(curves)
    length = max((len(v) for v in curves.values()), default=0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([index_name] + names)
        for i in range(length):
            w.writerow([i + 1] + [f"{curves[n][i]:.6g}" if i < len(curves[n]) else "" for n in names])


def write_summary(path, summary):
    with open(path, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def running_mean(values, width=50):
    """Means over every window of `width` consecutive values (fewer points; all of them when there are
    fewer than width), so that noisy per-step losses show their trend."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < width:
        return v.tolist()
    return np.convolve(v, np.ones(width) / width, mode="valid").tolist()


def save_figure(plt, fig, path, dpi=120):
    """Lay out, write and close a finished figure; True (what the plot helpers return once drawn)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return True


def plot_curves(path, curves, title, xlabel="step", ylabel="training loss", logy=True):
    """One line per curve; returns False when matplotlib is not installed."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, label=name, linewidth=1.5)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def image_grid(path, images, title, ncols=8, cmap="gray"):
    """Draw a list of 2-D arrays (NumPy) as a grid; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    n = len(images)
    nrows = max(1, (n + ncols - 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.1, nrows * 1.1 + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap=cmap)
    fig.suptitle(title, fontsize=9)
    return save_figure(plt, fig, path, dpi=110)


def no_matplotlib_hint():
    print("matplotlib is not installed, so no PNG figures were drawn; "
          "`pip install 'fastgrad[examples]'` (matplotlib, tqdm) adds them.")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def print_outputs(args, figures, plotted, lead=""):
    """The closing lines of every example: `lead` (e.g. "total 12.3 s; "), where the CSV went, then the
    figures (file names under args.out) or, without matplotlib, how to get them."""
    print(f"\n{lead}wrote CSV to {args.out}/")
    if plotted:
        print(("figure: " if len(figures) == 1 else "figures: ") + ", ".join(f"{args.out}/{f}" for f in figures))
    else:
        no_matplotlib_hint()
