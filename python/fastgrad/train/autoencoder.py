"""Autoencoders on the 8x8 digits: a 2-D code (to look at) and an 8-D code
(for quality), against the mean image and PCA with the same code size."""
import time

import numpy as np

from ._common import (image_grid, out_path, plot_curves, print_outputs, progress, pyplot, save_figure,
                      write_curves_csv, write_summary)
from ._digits_split import digits_split

NAME = "autoencoder"
DESCRIPTION = "autoencoders 64 -> 2 and 64 -> 8 -> 64 on digits: reconstructions, 2-D latent space, vs PCA"


def add_arguments(p):
    p.add_argument("--epochs", type=int, default=200, help="epochs over the 1500 training digits (default 200)")
    p.add_argument("--latents", nargs="+", type=int, default=[2, 8], help="code sizes m to train (default 2 8)")
    p.add_argument("--hidden", nargs="+", type=int, default=[128], help="hidden layer sizes (default 128)")
    p.add_argument("--batch-size", type=int, default=100, help="batch size (default 100)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")


def pca_mse(train, test, m):
    """Test MSE of the best rank-m affine reconstruction fitted on train (PCA via SVD)."""
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:m]
    rec = (test - mean) @ basis.T @ basis + mean
    return float(((rec - test) ** 2).mean()), rec


def train_autoencoder(Xtr, Xte, latent, hidden, epochs, batch_size, lr, seed):
    """Returns (model, per-epoch train MSE, per-epoch test MSE)."""
    import fastgrad as fg
    import fastgrad.nn.functional as F
    from ..data import DataLoader, TensorDataset
    from ..models import AutoEncoder

    fg.manual_seed(seed)
    model = AutoEncoder(Xtr.shape[1], latent, hidden)
    opt = fg.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(fg.tensor(Xtr)), batch_size=batch_size, shuffle=True, drop_last=True)
    test = fg.tensor(Xte)
    train_curve, test_curve = [], []
    bar = progress(epochs, f"autoencoder m={latent}")
    for _ in range(epochs):
        total, count = 0.0, 0
        for (xb,) in loader:
            opt.zero_grad()
            loss = F.mse_loss(model(xb), xb)
            loss.backward()
            opt.step()
            total += loss.item()
            count += 1
        train_curve.append(total / count)
        with fg.no_grad():
            test_curve.append(F.mse_loss(model(test), test).item())
        bar.update(1)
        bar.set_postfix(test_mse=f"{test_curve[-1]:.4f}")
    bar.close()
    return model, train_curve, test_curve


def plot_latent(path, codes, labels):
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_title("2-D autoencoder code of the digits (train + test)")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    return save_figure(plt, fig, path)


def run(args):
    import fastgrad as fg

    if any(m < 1 or m >= 64 for m in args.latents):
        print(f"fastgrad train autoencoder: code sizes must be in 1..63, got {args.latents}")
        return 2
    Xtr, ytr, Xte, yte = digits_split()
    mean_mse = float(((Xte - Xtr.mean(axis=0)) ** 2).mean())
    t0 = time.perf_counter()
    results, curves, models, pca_recs = {}, {}, {}, {}
    for m in args.latents:
        start = time.perf_counter()
        model, tr, te = train_autoencoder(Xtr, Xte, m, args.hidden, args.epochs, args.batch_size, args.lr,
                                          args.seed)
        seconds = time.perf_counter() - start
        pca, pca_recs[m] = pca_mse(Xtr, Xte, m)
        models[m] = model
        curves[f"m={m} train"], curves[f"m={m} test"] = tr, te
        results[m] = {"test_mse": te[-1], "train_mse": tr[-1], "pca_test_mse": pca, "seconds": seconds}
    elapsed = time.perf_counter() - t0

    write_curves_csv(out_path(args, "autoencoder_loss.csv"), curves, index_name="epoch")
    write_summary(out_path(args, "autoencoder_summary.json"),
                  {"latents": {str(m): r for m, r in results.items()}, "mean_image_test_mse": mean_mse,
                   "hidden": args.hidden, "epochs": args.epochs, "seconds": elapsed})
    plotted = plot_curves(out_path(args, "autoencoder_loss.png"), curves,
                          "Digits autoencoders: reconstruction MSE per epoch", xlabel="epoch",
                          ylabel="MSE (pixels in [0, 1])")
    # rows: 10 test digits, then each model's reconstructions, then PCA with the largest m
    show = Xte[:10]
    rows = [show]
    with fg.no_grad():
        for m in args.latents:
            rows.append(models[m](fg.tensor(show)).numpy())
    m_big = max(args.latents)
    rows.append(pca_recs[m_big][:10])
    names = ", ".join(["inputs"] + [f"AE m={m}" for m in args.latents] + [f"PCA m={m_big}"])
    plotted &= image_grid(out_path(args, "autoencoder_recon.png"), [r.reshape(8, 8) for row in rows for r in row],
                          f"test digits, rows: {names}", ncols=10, cmap="gray_r")
    figures = ["autoencoder_recon.png", "autoencoder_loss.png"]
    if 2 in models:
        with fg.no_grad():
            codes = models[2].encode(fg.tensor(np.concatenate([Xtr, Xte]))).numpy()
        plotted &= plot_latent(out_path(args, "autoencoder_latent.png"), codes, np.concatenate([ytr, yte]))
        figures.insert(1, "autoencoder_latent.png")

    print(f"\nDigits autoencoders, MLP 64-{'-'.join(map(str, args.hidden))}-m (and back), {args.epochs} epochs, "
          f"seed {args.seed}; test set {len(Xte)} digits, pixels in [0, 1]")
    print(f"{'code size m':<13}{'AE test MSE':>13}{'PCA test MSE':>14}{'mean-image MSE':>16}{'time':>8}")
    for m, r in results.items():
        print(f"{m:<13}{r['test_mse']:>13.4f}{r['pca_test_mse']:>14.4f}{mean_mse:>16.4f}{r['seconds']:>7.1f}s")
    print_outputs(args, figures, plotted, f"total {elapsed:.1f} s; ")
    return 0
