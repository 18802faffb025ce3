"""A residual network and the plain network of the same depth on the 8x8
digits (He et al. 2016, figure 1 and section 4.2 in miniature): the same
layers, initialisation, optimizer, seed and batches, with and without the
shortcuts. The deep plain network trains worse: its training loss stays
higher. Both training-loss curves go into one figure."""
import time

import numpy as np

from ._common import out_path, plot_curves, print_outputs, write_curves_csv, write_summary
from .cnn import accuracy, augmentation, digits_images, fit, standardised

NAME = "resnet"
DESCRIPTION = "ResNet vs same-depth plain net (BN, projection shortcuts) on digits: training-loss curves"


def add_arguments(p):
    p.add_argument("--blocks", type=int, default=5,
                   help="BasicBlocks per stage, 3 stages: depth 6*blocks+2 (default 5: 32 layers)")
    p.add_argument("--widths", type=int, nargs=3, default=[16, 32, 64], help="stage widths (default 16 32 64)")
    p.add_argument("--epochs", type=int, default=8, help="epochs over the 1500 training digits (default 8)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=0.05,
                   help="SGD (momentum 0.9) learning rate, cosine decay (default 0.05)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default 5e-4)")
    p.add_argument("--augment", action="store_true", help="random shifts and noise, as the cnn example")
    p.add_argument("--models", nargs="+", choices=["resnet", "plain"], default=["resnet", "plain"],
                   help="which networks to train (default both)")
    p.add_argument("--train-size", type=int, default=None, help="use only the first N training digits")


def smooth(xs, n):
    """Mean over windows of n steps (the curve's noise from batch to batch hides the trend)."""
    xs = np.asarray(xs, dtype=np.float64)
    m = len(xs) // n
    return xs[:m * n].reshape(m, n).mean(axis=1).tolist() if m else xs.tolist()


def run(args):
    import fastgrad as fg
    from ..models import PlainNet, ResNet

    Xtr, ytr, Xte, yte = digits_images(args.train_size)
    blocks = (args.blocks,) * 3
    results, step_curves, epoch_curves = {}, {}, {}
    t_all = time.perf_counter()
    for name in args.models:
        # same seed: same initial conv/linear weights and the same batches for both networks
        fg.manual_seed(args.seed)
        cls = ResNet if name == "resnet" else PlainNet
        model = cls(blocks=blocks, widths=tuple(args.widths))
        label = f"{'ResNet' if name == 'resnet' else 'plain'}-{model.depth}"
        transform, Xtr_eval, Xte_eval = standardised(Xtr, Xte, augmentation(0.05) if args.augment else None)
        t0 = time.perf_counter()
        steps, epoch_losses, test_acc = fit(model, Xtr, ytr, Xte_eval, yte, args.epochs, args.batch_size, args.lr,
                                            transform, desc=label, weight_decay=args.weight_decay, optimizer="sgd")
        seconds = time.perf_counter() - t0
        results[name] = {"label": label, "depth": model.depth, "final_train_loss": epoch_losses[-1],
                         "train_accuracy": accuracy(model, Xtr_eval, ytr), "test_accuracy": test_acc[-1],
                         "parameters": sum(p.numel() for p in model.parameters()), "seconds": seconds}
        step_curves[label] = steps
        epoch_curves[f"{label} train loss"] = epoch_losses
        epoch_curves[f"{label} test accuracy"] = test_acc
    seconds = time.perf_counter() - t_all

    write_curves_csv(out_path(args, "resnet_step_loss.csv"), step_curves, index_name="step")
    write_curves_csv(out_path(args, "resnet_epoch_curves.csv"), epoch_curves, index_name="epoch")
    summary = dict(results)
    if "resnet" in results and "plain" in results:
        summary["plain_minus_resnet_train_loss"] = (results["plain"]["final_train_loss"]
                                                   - results["resnet"]["final_train_loss"])
    summary["seconds"] = seconds
    write_summary(out_path(args, "resnet_summary.json"), summary)
    per_epoch = max(1, -(-Xtr.shape[0] // args.batch_size))
    window = max(1, per_epoch // 4)
    plotted = plot_curves(out_path(args, "resnet_vs_plain_loss.png"),
                          {k: smooth(v, window) for k, v in step_curves.items()},
                          f"Digits: residual vs plain network of the same depth ({args.blocks} blocks per stage)",
                          xlabel=f"training steps / {window} (each point a mean; {per_epoch} steps per epoch)",
                          ylabel="training loss (cross-entropy)")

    print(f"\nDigits, {args.epochs} epochs of SGD (momentum 0.9, lr {args.lr:g}, cosine), batch {args.batch_size}, "
          f"seed {args.seed}")
    print(f"{'network':<14}{'params':>9}{'train loss':>12}{'train acc':>11}{'test acc':>10}{'time':>9}")
    for r in results.values():
        print(f"{r['label']:<14}{r['parameters']:>9}{r['final_train_loss']:>12.4f}{r['train_accuracy'] * 100:>10.1f}%"
              f"{r['test_accuracy'] * 100:>9.1f}%{r['seconds']:>8.1f}s")
    print_outputs(args, ["resnet_vs_plain_loss.png"], plotted)
    return 0
