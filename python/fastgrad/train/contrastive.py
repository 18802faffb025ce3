"""Contrastive learning (SimCLR-style) on the 8x8 digits: two augmented views
of each digit (random shift by cropping a zero-padded image, plus Gaussian
noise), the NT-Xent / InfoNCE loss with a temperature, and a k-nearest-
neighbour classifier on the learned representation of the test split."""
import time

import numpy as np

from ._common import (image_grid, out_path, plot_curves, print_outputs, progress, pyplot, save_figure,
                      write_curves_csv, write_summary)
from ._digits_split import digits_split

NAME = "contrastive"
DESCRIPTION = "contrastive (NT-Xent) embedding of digits from two augmented views; kNN accuracy vs raw pixels"


def add_arguments(p):
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=256, help="examples per batch, 2 views each (default 256)")
    p.add_argument("--temperature", type=float, default=0.5, help="NT-Xent temperature (default 0.5)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--k", type=int, default=5, help="neighbours in the kNN vote (default 5)")
    p.add_argument("--noise", type=float, default=0.1, help="std of the Gaussian-noise augmentation (default 0.1)")
    p.add_argument("--eval-every", type=int, default=100, help="steps between kNN evaluations (default 100)")


def augmentation(noise):
    """One random view: shift by up to 1 pixel (crop 8x8 from the image zero-padded to 10x10), add noise."""
    from ..data import transforms as T

    return T.Compose([T.RandomCrop(8, padding=1), T.GaussianNoise(std=noise)])


def embed(model, X):
    import fastgrad as fg

    with fg.no_grad():
        return model.embed(fg.tensor(X)).numpy()


def run(args):
    import fastgrad as fg
    from ..models import ContrastiveEncoder, info_nce, knn_accuracy

    Xtr, ytr, Xte, yte = digits_split()
    fg.manual_seed(args.seed)
    model = ContrastiveEncoder(64, hidden=(256,), rep_dim=64, proj_dim=32)
    augment = augmentation(args.noise)
    # a fixed shifted+noisy copy of the test digits: what invariance to the augmentations buys
    aug_test = augment(fg.tensor(Xte.reshape(-1, 1, 8, 8))).reshape(-1, 64).numpy()
    random_acc = knn_accuracy(embed(model, Xtr), ytr, embed(model, Xte), yte, args.k)
    random_aug = knn_accuracy(embed(model, Xtr), ytr, embed(model, aug_test), yte, args.k)
    pixel_acc = knn_accuracy(Xtr, ytr, Xte, yte, args.k)
    pixel_aug = knn_accuracy(Xtr, ytr, aug_test, yte, args.k)
    images = fg.tensor(Xtr.reshape(-1, 1, 8, 8))
    opt = fg.optim.Adam(model.parameters(), lr=args.lr)
    losses, knn_steps, knn_curve = [], [], []
    bar = progress(args.steps, "contrastive")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = images[fg.randint(0, len(Xtr), (args.batch_size,))]
        v1, v2 = augment(batch).reshape(-1, 64), augment(batch).reshape(-1, 64)
        opt.zero_grad()
        loss = info_nce(model(v1), model(v2), args.temperature)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            knn_steps.append(step)
            knn_curve.append(knn_accuracy(embed(model, Xtr), ytr, embed(model, Xte), yte, args.k))
            bar.set_postfix(knn=f"{knn_curve[-1]:.3f}")
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - t0
    acc = knn_curve[-1]
    acc_aug = knn_accuracy(embed(model, Xtr), ytr, embed(model, aug_test), yte, args.k)

    write_curves_csv(out_path(args, "contrastive_loss.csv"), {"NT-Xent loss": losses})
    write_curves_csv(out_path(args, "contrastive_knn.csv"), {"step": knn_steps, "kNN test accuracy": knn_curve},
                     index_name="evaluation")
    write_summary(out_path(args, "contrastive_summary.json"),
                  {"knn_accuracy": acc, "raw_pixels_knn_accuracy": pixel_acc, "random_init_knn_accuracy": random_acc,
                   "augmented_test_knn_accuracy": acc_aug, "augmented_test_raw_pixels_knn_accuracy": pixel_aug,
                   "augmented_test_random_init_knn_accuracy": random_aug, "initial_loss": losses[0],
                   "k": args.k, "temperature": args.temperature, "steps": args.steps, "final_loss": losses[-1],
                   "seconds": elapsed})
    plotted = plot_curves(out_path(args, "contrastive_loss.png"), {"NT-Xent loss": losses},
                          f"Contrastive digits embedding: NT-Xent loss (batch {args.batch_size} x 2 views, "
                          f"temperature {args.temperature})", ylabel="NT-Xent loss", logy=False)
    plotted &= plot_knn(out_path(args, "contrastive_knn.png"), knn_steps, knn_curve, pixel_acc, random_acc, args.k)
    views = augment(images[:8])
    more = augment(images[:8])
    grid = [x.reshape(8, 8) for x in np.concatenate([Xtr[:8].reshape(8, 64), views.reshape(8, 64).numpy(),
                                                      more.reshape(8, 64).numpy()])]
    plotted &= image_grid(out_path(args, "contrastive_views.png"), grid,
                          "rows: training digits, a first and a second augmented view", ncols=8, cmap="gray_r")

    print(f"\nContrastive embedding of digits (NT-Xent, temperature {args.temperature}, batch {args.batch_size} x 2 "
          f"views), encoder MLP 64-256-64, {args.steps} steps, seed {args.seed}, {elapsed:.1f} s")
    print(f"{args.k}-NN accuracy on the {len(Xte)} test digits (cosine similarity, training digits as reference):")
    print(f"  {'':<32}{'clean test':>11}{'shifted+noisy test':>20}")
    print(f"  {'learned embedding':<32}{acc:>11.1%}{acc_aug:>20.1%}")
    print(f"  {'raw pixels':<32}{pixel_acc:>11.1%}{pixel_aug:>20.1%}")
    print(f"  {'random-init encoder':<32}{random_acc:>11.1%}{random_aug:>20.1%}")
    print_outputs(args, ["contrastive_knn.png", "contrastive_loss.png", "contrastive_views.png"], plotted)
    return 0


def plot_knn(path, steps, curve, pixel_acc, random_acc, k):
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(steps, [100 * a for a in curve], "o-", label="learned embedding")
    ax.axhline(100 * pixel_acc, color="C1", linestyle="--", label="raw pixels")
    ax.axhline(100 * random_acc, color="C2", linestyle=":", label="random-init encoder")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"{k}-NN test accuracy (%)")
    ax.set_title("Contrastive digits embedding: kNN accuracy on the test split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)
