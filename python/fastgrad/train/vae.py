"""A VAE on the 8x8 digits: Gaussian encoder with the reparameterisation
z = mu + exp(logvar / 2) * eps (diagonal L), Bernoulli decoder, trained on the
ELBO; digits decoded from z ~ N(0, I).

By default the pixels are binarised (> 8 of 16), so the Bernoulli decoder is
a true likelihood and the ELBO a true lower bound on log p(x) in nats; --grey
keeps the 17 grey levels as Bernoulli targets (Kingma & Welling's MNIST
recipe: smoother samples, but then the "likelihood" is not normalised)."""
import time

import numpy as np

from ._common import (image_grid, out_path, plot_curves, print_outputs, progress, write_curves_csv,
                      write_summary)
from ._digits_split import digits_split

NAME = "vae"
DESCRIPTION = "variational autoencoder 64-256-8 on digits: test ELBO, samples decoded from N(0, I)"


def add_arguments(p):
    p.add_argument("--epochs", type=int, default=150, help="epochs over the 1500 training digits (default 150)")
    p.add_argument("--latent", type=int, default=8, help="latent size (default 8)")
    p.add_argument("--hidden", nargs="+", type=int, default=[256], help="hidden layer sizes (default 256)")
    p.add_argument("--batch-size", type=int, default=100, help="batch size (default 100)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    p.add_argument("--grey", action="store_true", help="keep grey levels instead of binarising the pixels")


def test_elbo(model, X, passes=10):
    """Per-example test ELBO and its two terms, averaged over `passes` draws of z (less noisy than one)."""
    import fastgrad as fg

    elbo = rec = kl = 0.0
    with fg.no_grad():
        for _ in range(passes):
            e, r, k = model.elbo(X, return_terms=True)
            elbo, rec, kl = elbo + e.mean().item(), rec + r.mean().item(), kl + k.mean().item()
    return elbo / passes, rec / passes, kl / passes


def independent_pixels_loglik(Xtr, Xte):
    """Bernoulli log-likelihood per test example with each pixel's training mean as its probability:
    the model with no latent at all, a floor for the ELBO."""
    p = np.clip(Xtr.mean(axis=0), 1e-4, 1 - 1e-4)
    return float((Xte * np.log(p) + (1 - Xte) * np.log(1 - p)).sum(axis=1).mean())


def run(args):
    import fastgrad as fg
    from ..data import DataLoader, TensorDataset
    from ..models import VAE

    Xtr, _, Xte, _ = digits_split()
    if not args.grey:
        Xtr, Xte = (Xtr > 0.5).astype(np.float32), (Xte > 0.5).astype(np.float32)
    fg.manual_seed(args.seed)
    model = VAE(64, args.latent, args.hidden)
    opt = fg.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(TensorDataset(fg.tensor(Xtr)), batch_size=args.batch_size, shuffle=True, drop_last=True)
    test = fg.tensor(Xte)
    train_curve, test_curve = [], []
    bar = progress(args.epochs, "vae")
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        total, count = 0.0, 0
        for (xb,) in loader:
            opt.zero_grad()
            loss = model.loss(xb)
            loss.backward()
            opt.step()
            total += loss.item()
            count += 1
        train_curve.append(-total / count)
        test_curve.append(test_elbo(model, test, passes=1)[0])
        bar.update(1)
        bar.set_postfix(test_elbo=f"{test_curve[-1]:.2f}")
    bar.close()
    elapsed = time.perf_counter() - t0
    elbo, rec, kl = test_elbo(model, test)
    floor = independent_pixels_loglik(Xtr, Xte)
    samples = model.sample(64).numpy()

    write_curves_csv(out_path(args, "vae_elbo.csv"), {"train ELBO": train_curve, "test ELBO": test_curve},
                     index_name="epoch")
    write_summary(out_path(args, "vae_summary.json"),
                  {"test_elbo": elbo, "test_reconstruction_loglik": rec, "test_kl": kl,
                   "independent_pixels_loglik": floor, "pixels": "grey" if args.grey else "binary",
                   "latent": args.latent, "hidden": args.hidden,
                   "epochs": args.epochs, "seconds": elapsed})
    # plotted as -ELBO (nats per digit, lower is better) so the log axis shows the tail
    plotted = plot_curves(out_path(args, "vae_elbo.png"),
                          {"train -ELBO": [-v for v in train_curve], "test -ELBO": [-v for v in test_curve]},
                          f"Digits VAE 64-{'-'.join(map(str, args.hidden))}-{args.latent}: negative ELBO",
                          xlabel="epoch", ylabel="-ELBO (nats per digit)")
    plotted &= image_grid(out_path(args, "vae_samples.png"), [s.reshape(8, 8) for s in samples],
                          f"VAE: decoded means of 64 draws z ~ N(0, I), latent {args.latent}", ncols=8,
                          cmap="gray_r")

    pixels = "grey-level" if args.grey else "binarised"
    print(f"\nDigits VAE 64-{'-'.join(map(str, args.hidden))}-{args.latent} on {pixels} pixels (Bernoulli decoder, "
          f"diagonal L = exp(logvar/2)), {args.epochs} epochs, seed {args.seed}, {elapsed:.1f} s")
    print(f"{'test ELBO per digit':<44}{elbo:>10.2f} nats")
    print(f"{'  = reconstruction log-likelihood':<44}{rec:>10.2f}")
    print(f"{'  - KL(q(z|x) || N(0, I))':<44}{kl:>10.2f}")
    print(f"{'independent-pixel Bernoulli log-likelihood':<44}{floor:>10.2f} (no latent: the floor)")
    print_outputs(args, ["vae_samples.png", "vae_elbo.png"], plotted)
    return 0
