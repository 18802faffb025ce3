"""A small CNN (conv-ReLU-conv-ReLU-maxpool-conv-ReLU-maxpool-FC-FC) on the 8x8
digits, trained with data augmentation: every batch is zero-padded by one
pixel and randomly cropped back to 8x8 (shifts of up to one pixel each way)
and gets a little Gaussian noise, then is standardised with the training
pixels' mean and standard deviation (the test digits too: zero-mean inputs
train much faster than [0, 1] pixels). AdamW with a cosine learning-rate
decay; the bar: at least 95% accuracy on the held-out test digits."""
import time

import numpy as np

from ._common import out_path, plot_curves, print_outputs, progress, write_curves_csv, write_summary
from ._digits_split import digits_split

NAME = "cnn"
DESCRIPTION = "small CNN on 8x8 digits with random-shift + noise augmentation: test accuracy (bar 0.95)"

BAR = 0.95


def add_arguments(p):
    p.add_argument("--epochs", type=int, default=15, help="epochs over the 1500 training digits (default 15)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate, decayed by a cosine (default 3e-3)")
    p.add_argument("--channels", type=int, nargs=2, default=[32, 64], help="conv widths c0 c1 (default 32 64)")
    p.add_argument("--hidden", type=int, default=128, help="fully-connected width (default 128)")
    p.add_argument("--noise", type=float, default=0.05, help="std of the Gaussian pixel noise (default 0.05)")
    p.add_argument("--no-augment", action="store_true", help="train on the digits as they are")
    p.add_argument("--train-size", type=int, default=None, help="use only the first N training digits")


def digits_images(train_size=None):
    """The shared digits split as fastgrad image tensors (N, 1, 8, 8) in [0, 1] and int64 labels."""
    import fastgrad as fg

    Xtr, ytr, Xte, yte = digits_split()
    if train_size:
        Xtr, ytr = Xtr[:train_size], ytr[:train_size]

    def images(X):
        return fg.from_numpy(np.ascontiguousarray(X.reshape(-1, 1, 8, 8)))

    return images(Xtr), fg.from_numpy(ytr), images(Xte), fg.from_numpy(yte)


def augmentation(noise):
    """Random shifts (pad 1, random 8x8 crop) then Gaussian noise, drawn per image."""
    from ..data import transforms as T

    steps = [T.RandomCrop(8, padding=1)]
    if noise > 0:
        steps.append(T.GaussianNoise(std=noise))
    return T.Compose(steps)


def standardised(Xtr, Xte, augment=None):
    """(batch transform for training, Xtr and Xte standardised for evaluation).

    The mean and std are the training pixels'; augmentation runs before the
    standardisation, so its zero padding is the blank background."""
    from ..data import transforms as T

    norm = T.Normalize([float(Xtr.mean().item())], [float(Xtr.std().item())])
    train_transform = norm if augment is None else T.Compose([augment, norm])
    return train_transform, norm(Xtr), norm(Xte)


def accuracy(model, X, y, batch=512):
    """Fraction of X classified as y, in eval mode, in batches."""
    import fastgrad as fg

    was_training = model.training
    model.eval()
    correct = 0
    with fg.no_grad():
        for i in range(0, X.shape[0], batch):
            correct += int((model(X[i:i + batch]).argmax(dim=1) == y[i:i + batch]).sum().item())
    model.train(was_training)
    return correct / X.shape[0]


def fit(model, Xtr, ytr, Xte, yte, epochs, batch_size, lr, transform=None, desc="train", weight_decay=0.0,
        optimizer="adamw"):
    """AdamW (or SGD with momentum 0.9) + cosine decay over `epochs`; `transform` maps each training batch.

    Returns the per-step losses and, per epoch, the mean training loss and the test accuracy."""
    import fastgrad as fg
    import fastgrad.nn.functional as F

    loader = fg.data.DataLoader(fg.data.TensorDataset(Xtr, ytr), batch_size=batch_size, shuffle=True)
    if optimizer == "sgd":
        opt = fg.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        opt = fg.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    step_losses, epoch_losses, test_acc = [], [], []
    bar = progress(epochs * len(loader), desc)
    model.train()
    for _ in range(epochs):
        total, n = 0.0, 0
        for xb, yb in loader:
            if transform is not None:
                xb = transform(xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            v = loss.item()
            step_losses.append(v)
            total, n = total + v * xb.shape[0], n + xb.shape[0]
            bar.update(1)
        epoch_losses.append(total / n)
        test_acc.append(accuracy(model, Xte, yte))
        bar.set_postfix(loss=f"{epoch_losses[-1]:.3f}", test=f"{test_acc[-1]:.3f}")
    bar.close()
    return step_losses, epoch_losses, test_acc


def run(args):
    import fastgrad as fg
    from ..models import DigitsCNN

    fg.manual_seed(args.seed)
    Xtr, ytr, Xte, yte = digits_images(args.train_size)
    model = DigitsCNN(channels=tuple(args.channels), hidden=args.hidden)
    augment = None if args.no_augment else augmentation(args.noise)
    transform, Xtr_eval, Xte = standardised(Xtr, Xte, augment)
    t0 = time.perf_counter()
    step_losses, epoch_losses, test_acc = fit(model, Xtr, ytr, Xte, yte, args.epochs, args.batch_size, args.lr,
                                              transform, desc="cnn")
    seconds = time.perf_counter() - t0
    train_acc = accuracy(model, Xtr_eval, ytr)
    n_params = sum(p.numel() for p in model.parameters())

    write_curves_csv(out_path(args, "cnn_curves.csv"), {"train loss": epoch_losses, "test accuracy": test_acc},
                     index_name="epoch")
    summary = {"test_accuracy": test_acc[-1], "train_accuracy": train_acc, "final_train_loss": epoch_losses[-1],
               "best_test_accuracy": max(test_acc), "bar": BAR, "met_bar": test_acc[-1] >= BAR,
               "epochs": args.epochs, "parameters": n_params, "train_digits": Xtr.shape[0],
               "test_digits": Xte.shape[0], "augment": augment is not None, "seconds": seconds}
    write_summary(out_path(args, "cnn_summary.json"), summary)
    plotted = plot_curves(out_path(args, "cnn_loss.png"), {"training loss (augmented batches)": epoch_losses},
                          "Digits CNN: training loss", xlabel="epoch", ylabel="cross-entropy")
    plotted &= plot_curves(out_path(args, "cnn_accuracy.png"), {"test accuracy": test_acc},
                           f"Digits CNN: test accuracy (final {test_acc[-1] * 100:.1f}%)", xlabel="epoch",
                           ylabel="accuracy", logy=False)

    aug = "no augmentation"
    if augment is not None:
        aug = "random shifts of +-1 px" + (f" and noise std {args.noise:g}" if args.noise > 0 else "")
    print(f"\nDigits CNN (conv widths {args.channels[0]}, {args.channels[1]}; {n_params} parameters), {aug}, "
          f"seed {args.seed}")
    print(f"{'train / test digits':<24}{Xtr.shape[0]:>7} / {Xte.shape[0]}")
    print(f"{'final training loss':<24}{epoch_losses[-1]:>10.4f}")
    print(f"{'train accuracy':<24}{train_acc * 100:>9.1f}%")
    print(f"{'test accuracy':<24}{test_acc[-1] * 100:>9.1f}%  (bar {BAR * 100:g}%: "
          f"{'met' if test_acc[-1] >= BAR else 'NOT met'})")
    print(f"{'time':<24}{seconds:>9.1f}s  ({args.epochs} epochs)")
    print_outputs(args, ["cnn_loss.png", "cnn_accuracy.png"], plotted)
    return 0
