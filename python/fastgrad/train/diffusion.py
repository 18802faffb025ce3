"""DDPM: forward noising with a cosine (or linear) beta schedule, an MLP
denoiser with a sinusoidal time embedding that predicts the noise, and
ancestral sampling; on 2-D two moons (sliced Wasserstein distance to held-out
data, against a Gaussian fitted to the data) and on the 8x8 digits."""
import math
import time

import numpy as np

from ._common import (adam_cosine, image_grid, out_path, plot_curves, print_outputs, pyplot, running_mean,
                      save_figure, write_curves_csv, write_summary)
from ._digits_split import digit_classifier, digits_split, judge_digits, print_judged_digits

NAME = "diffusion"
DESCRIPTION = "DDPM with an MLP denoiser on 2-D two moons (sliced Wasserstein vs held-out data) and on digits"


def add_arguments(p):
    p.add_argument("--data", choices=["moons", "digits", "both"], default="both", help="which model(s) to train")
    p.add_argument("--steps", type=int, default=None, help="training steps per model (default 4000 moons, "
                                                           "6000 digits)")
    p.add_argument("--T", type=int, default=100, help="diffusion steps (default 100)")
    p.add_argument("--schedule", choices=["cosine", "linear"], default="cosine", help="beta schedule")
    p.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-annealed (default 2e-3)")
    p.add_argument("--samples", type=int, default=2000, help="samples for the 2-D metrics (default 2000)")


def two_moons(n, rng, noise=0.05):
    """n points of two interleaved half circles (sklearn's make_moons layout), centred and scaled to unit-ish
    spread; NumPy float32 (n, 2)."""
    k = n // 2
    a = rng.uniform(0, math.pi, n)
    upper = np.stack([np.cos(a[:k]), np.sin(a[:k])], axis=1)
    lower = np.stack([1 - np.cos(a[k:]), 0.5 - np.sin(a[k:])], axis=1)
    x = np.concatenate([upper, lower]) + rng.normal(0, noise, (n, 2))
    return ((x - np.array([0.5, 0.25])) * 1.5).astype(np.float32)


def sliced_wasserstein(a, b, projections=256, seed=0):
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projections
    (equal sample sizes: the sorted projections are matched)."""
    if len(a) != len(b):
        raise ValueError(f"sliced_wasserstein: equal sample sizes expected, got {len(a)} and {len(b)}")
    d = np.random.default_rng(seed).normal(size=(a.shape[1], projections))
    d /= np.linalg.norm(d, axis=0, keepdims=True)
    pa, pb = np.sort(a @ d, axis=0), np.sort(b @ d, axis=0)
    return float(np.abs(pa - pb).mean())


def mean_nn_distance(a, b):
    """Mean distance from each row of a to its nearest row of b."""
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return float(np.sqrt(d.min(axis=1)).mean())


def train_ddpm(model, sample_batch, steps, lr, name):
    """Adam on the DDPM loss of sample_batch() batches, the learning rate annealed to lr / 20; the losses."""
    return adam_cosine(model.parameters(), lambda: model.loss(sample_batch()), steps, lr, lr * 0.05, f"ddpm {name}")


def run_moons(args, steps):
    import fastgrad as fg
    from ..models import DDPM, Denoiser

    rng = np.random.default_rng(args.seed)
    train = fg.tensor(two_moons(20000, rng))
    heldout, heldout2 = two_moons(args.samples, rng), two_moons(args.samples, rng)
    fg.manual_seed(args.seed)
    model = DDPM(Denoiser(2, hidden=128, depth=3, time_dim=32), T=args.T, schedule=args.schedule)
    start = time.perf_counter()
    losses = train_ddpm(model, lambda: train[fg.randint(0, len(train), (args.batch_size,))], steps, args.lr,
                        "moons")
    seconds = time.perf_counter() - start
    samples = model.sample(args.samples, 2).numpy()
    # the baseline: a Gaussian with the data's mean and covariance
    mean, cov = heldout2.mean(axis=0), np.cov(heldout2.T)
    gauss = rng.multivariate_normal(mean, cov, args.samples).astype(np.float32)
    metrics = {name: {"sliced_wasserstein": sliced_wasserstein(x, heldout), "mean_nn_distance":
                      mean_nn_distance(x, heldout)}
               for name, x in (("ddpm", samples), ("gaussian_baseline", gauss), ("real_data", heldout2))}
    return {"metrics": metrics, "seconds": seconds, "steps": steps, "loss": losses, "samples": samples,
            "heldout": heldout}


def run_digits(args, steps):
    import fastgrad as fg
    from ..models import DDPM, Denoiser

    Xtr, ytr, _, _ = digits_split()
    data = fg.tensor(Xtr * 2 - 1)  # DDPM convention: data in [-1, 1]
    fg.manual_seed(args.seed)
    model = DDPM(Denoiser(64, hidden=256, depth=3, time_dim=64), T=args.T, schedule=args.schedule)
    start = time.perf_counter()
    losses = train_ddpm(model, lambda: data[fg.randint(0, len(Xtr), (args.batch_size,))], steps, args.lr,
                        "digits")
    seconds = time.perf_counter() - start
    samples = (model.sample(500, 64, clip=(-1.0, 1.0)).numpy() + 1) / 2
    judged = judge_digits(digit_classifier(Xtr, ytr), samples)
    return {"metrics": judged, "seconds": seconds, "steps": steps, "loss": losses, "samples": samples}


def plot_moons(path, samples, heldout, metrics):
    plt = pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
    axes[0].scatter(heldout[:, 0], heldout[:, 1], s=3, alpha=0.5)
    axes[0].set_title("held-out data (two moons)")
    axes[1].scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, color="C1")
    swd = metrics["ddpm"]["sliced_wasserstein"]
    axes[1].set_title(f"DDPM samples (sliced W1 {swd:.3f}; Gaussian fit "
                      f"{metrics['gaussian_baseline']['sliced_wasserstein']:.3f})")
    for ax in axes:
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    return save_figure(plt, fig, path)


def run(args):
    parts = ["moons", "digits"] if args.data == "both" else [args.data]
    results, curves, figures, plotted = {}, {}, [], True
    t0 = time.perf_counter()
    for part in parts:
        steps = args.steps or (4000 if part == "moons" else 6000)
        r = run_moons(args, steps) if part == "moons" else run_digits(args, steps)
        results[part] = r
        curves[f"{part} noise-prediction MSE"] = r["loss"]
        if part == "moons":
            plotted &= plot_moons(out_path(args, "diffusion_moons.png"), r["samples"], r["heldout"], r["metrics"])
            figures.append("diffusion_moons.png")
        else:
            plotted &= image_grid(out_path(args, "diffusion_digits.png"),
                                  [s.reshape(8, 8) for s in r["samples"][:64]],
                                  f"DDPM ({args.T} steps, {args.schedule} schedule): 64 sampled digits", ncols=8,
                                  cmap="gray_r")
            figures.append("diffusion_digits.png")
    elapsed = time.perf_counter() - t0

    write_curves_csv(out_path(args, "diffusion_loss.csv"), curves)
    smoothed = {k: running_mean(v) for k, v in curves.items()}
    plotted &= plot_curves(out_path(args, "diffusion_loss.png"), smoothed,
                           "DDPM training loss (running mean over 50 steps)", ylabel="noise-prediction MSE")
    figures.append("diffusion_loss.png")
    write_summary(out_path(args, "diffusion_summary.json"),
                  {**{part: {k: v for k, v in r.items() if k not in ("loss", "samples", "heldout")}
                      for part, r in results.items()}, "T": args.T, "schedule": args.schedule,
                   "seconds": elapsed})

    print(f"\nDDPM, T={args.T}, {args.schedule} schedule, MLP denoiser with sinusoidal time embedding, "
          f"seed {args.seed}")
    if "moons" in results:
        r = results["moons"]
        print(f"two moons, {r['steps']} steps, {r['seconds']:.1f} s; {args.samples} samples vs {args.samples} "
              f"held-out points:")
        print(f"  {'':<30}{'sliced W1':>11}{'mean NN dist':>14}")
        for name, label in (("ddpm", "DDPM samples"), ("gaussian_baseline", "Gaussian fitted to the data"),
                            ("real_data", "a second real sample")):
            m = r["metrics"][name]
            print(f"  {label:<30}{m['sliced_wasserstein']:>11.4f}{m['mean_nn_distance']:>14.4f}")
    if "digits" in results:
        print_judged_digits(results["digits"])
    print_outputs(args, figures, plotted, f"total {elapsed:.1f} s; ")
    return 0
