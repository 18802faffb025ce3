"""GANs trained in alternation with the non-saturating generator loss
-log D(G(z)) (BCE with logits): on a ring of 8 Gaussians (mode coverage and
sample quality) and on the 8x8 digits (a grid of samples)."""
import math
import time

import numpy as np

from ._common import (image_grid, out_path, plot_curves, print_outputs, progress, pyplot, running_mean,
                      save_figure, write_curves_csv, write_summary)
from ._digits_split import digit_classifier, digits_split, judge_digits, print_judged_digits

NAME = "gan"
DESCRIPTION = "GAN (non-saturating loss) on a ring of 8 Gaussians (mode coverage) and on digits (samples)"

RING_MODES, RING_RADIUS = 8, 2.0


def add_arguments(p):
    p.add_argument("--data", choices=["ring", "digits", "both"], default="both", help="which GAN(s) to train")
    p.add_argument("--steps", type=int, default=None,
                   help="alternating D/G steps per GAN (default 3500 ring, 6000 digits)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 512 ring, 256 digits)")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate of G and D (default 1e-3 ring, 2e-4 digits)")
    p.add_argument("--ring-std", type=float, default=0.05, help="std of each ring mode (default 0.05)")
    p.add_argument("--samples", type=int, default=2000, help="samples drawn for the ring metrics (default 2000)")


def ring_modes():
    angles = 2 * math.pi * np.arange(RING_MODES) / RING_MODES
    return RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def sample_ring(n, std):
    """n points of the 8-Gaussian ring, drawn from fastgrad's generator (so --seed fixes them)."""
    import fastgrad as fg

    modes = fg.tensor(ring_modes())
    return modes[fg.randint(0, RING_MODES, (n,))] + fg.randn(n, 2) * std


def ring_metrics(samples, std):
    """Mode coverage and quality as in the unrolled-GAN / VEEGAN papers: a sample is high quality when
    within 3 std of its nearest mode; a mode is covered when it has at least 1/4 of a uniform share
    of high-quality samples."""
    d = np.linalg.norm(samples[:, None, :] - ring_modes()[None, :, :], axis=2)
    nearest, dist = d.argmin(axis=1), d.min(axis=1)
    good = dist < 3 * std
    per_mode = np.bincount(nearest[good], minlength=RING_MODES)
    covered = int((per_mode >= 0.25 * len(samples) / RING_MODES).sum())
    return {"modes_covered": covered, "modes": RING_MODES, "high_quality_fraction": float(good.mean()),
            "per_mode_high_quality": per_mode.tolist()}


def train_gan(gan, real_batch, steps, name):
    d_losses, g_losses = [], []
    bar = progress(steps, f"gan {name}")
    for _ in range(steps):
        d, g = gan.step(real_batch())
        d_losses.append(d)
        g_losses.append(g)
        bar.update(1)
    bar.close()
    return d_losses, g_losses


def run_ring(args, steps):
    import fastgrad as fg
    from ..models import GAN, Discriminator, Generator

    fg.manual_seed(args.seed)
    lr = args.lr or 1e-3
    gan = GAN(Generator(8, 2, hidden=(128, 128)), Discriminator(2, hidden=(128, 128)), lr_g=lr, lr_d=lr)
    start = time.perf_counter()
    batch = args.batch_size or 512  # large batches help D see every mode (fewer dropped modes)
    d_losses, g_losses = train_gan(gan, lambda: sample_ring(batch, args.ring_std), steps, "ring")
    seconds = time.perf_counter() - start
    samples = gan.G.sample(args.samples).numpy()
    metrics = ring_metrics(samples, args.ring_std)
    real_metrics = ring_metrics(sample_ring(args.samples, args.ring_std).numpy(), args.ring_std)
    return {"metrics": metrics, "real_data_metrics": real_metrics, "seconds": seconds, "steps": steps,
            "d_loss": d_losses, "g_loss": g_losses, "samples": samples}


def run_digits(args, steps):
    import fastgrad as fg
    from ..models import GAN, Discriminator, Generator

    Xtr, ytr, _, _ = digits_split()
    fg.manual_seed(args.seed)
    lr = args.lr or 2e-4
    gan = GAN(Generator(32, 64, hidden=(128, 256), output="sigmoid"), Discriminator(64, hidden=(256, 128)), lr_g=lr,
              lr_d=lr)
    data = fg.tensor(Xtr)
    start = time.perf_counter()
    batch = args.batch_size or 256
    d_losses, g_losses = train_gan(gan, lambda: data[fg.randint(0, len(Xtr), (batch,))], steps, "digits")
    seconds = time.perf_counter() - start
    samples = gan.G.sample(500).numpy()
    judged = judge_digits(digit_classifier(Xtr, ytr), samples)
    return {"metrics": judged, "seconds": seconds, "steps": steps, "d_loss": d_losses, "g_loss": g_losses,
            "samples": samples}


def plot_ring(path, samples, std):
    plt = pyplot()
    if plt is None:
        return False
    real = sample_ring(len(samples), std).numpy()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(real[:, 0], real[:, 1], s=3, alpha=0.3, label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, label="GAN samples")
    for m in ring_modes():
        ax.add_patch(plt.Circle(m, 3 * std, fill=False, color="k", linewidth=0.7))
    ax.set_aspect("equal")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    ax.set_title("GAN on a ring of 8 Gaussians (circles: 3 std)")
    return save_figure(plt, fig, path)


def run(args):
    parts = ["ring", "digits"] if args.data == "both" else [args.data]
    results, curves, figures, plotted = {}, {}, [], True
    t0 = time.perf_counter()
    for part in parts:
        steps = args.steps or (3500 if part == "ring" else 6000)
        r = run_ring(args, steps) if part == "ring" else run_digits(args, steps)
        results[part] = r
        curves[f"{part} D loss"], curves[f"{part} G loss"] = r["d_loss"], r["g_loss"]
        if part == "ring":
            plotted &= plot_ring(out_path(args, "gan_ring.png"), r["samples"], args.ring_std)
            figures.append("gan_ring.png")
        else:
            plotted &= image_grid(out_path(args, "gan_digits.png"), [s.reshape(8, 8) for s in r["samples"][:64]],
                                  "GAN: 64 generated digits", ncols=8, cmap="gray_r")
            figures.append("gan_digits.png")
    elapsed = time.perf_counter() - t0

    write_curves_csv(out_path(args, "gan_loss.csv"), curves)
    plotted &= plot_curves(out_path(args, "gan_loss.png"), {k: running_mean(v) for k, v in curves.items()},
                           "GAN losses (running mean over 50 steps)", ylabel="BCE-with-logits loss", logy=False)
    figures.append("gan_loss.png")
    write_summary(out_path(args, "gan_summary.json"),
                  {**{part: {k: v for k, v in r.items() if k not in ("d_loss", "g_loss", "samples")}
                      for part, r in results.items()}, "seconds": elapsed})

    print(f"\nGANs (non-saturating loss, Adam betas (0.5, 0.999)), seed {args.seed}")
    if "ring" in results:
        r, m = results["ring"], results["ring"]["metrics"]
        real = r["real_data_metrics"]
        print(f"ring of 8 Gaussians (radius {RING_RADIUS}, std {args.ring_std}), {r['steps']} steps, "
              f"{r['seconds']:.1f} s:")
        print(f"  modes covered {m['modes_covered']}/{m['modes']}, high-quality samples (within 3 std) "
              f"{m['high_quality_fraction']:.1%}  (real data: {real['modes_covered']}/8, "
              f"{real['high_quality_fraction']:.1%})")
        print(f"  high-quality samples per mode: {m['per_mode_high_quality']}")
    if "digits" in results:
        print_judged_digits(results["digits"])
    print_outputs(args, figures, plotted, f"total {elapsed:.1f} s; ")
    return 0
