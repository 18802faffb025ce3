"""Encoder-decoder models on a toy translation task: reverse (or sort) a
sequence of symbols of varying length. Teacher forcing in training, greedy
decoding on held-out sources (none of them seen in training); exact-sequence
and per-token accuracy, for an LSTM with attention and for a Transformer."""
import time

from ._common import out_path, plot_curves, print_outputs, progress, write_curves_csv, write_summary

NAME = "seq2seq"
DESCRIPTION = "encoder-decoder (LSTM+attention, Transformer) reversing/sorting sequences: greedy-decoded accuracy"


def add_arguments(p):
    p.add_argument("--arch", choices=["rnn", "transformer", "both"], default="both",
                   help="LSTM encoder-decoder with attention, Transformer, or both (default)")
    p.add_argument("--task", choices=["reverse", "sort"], default="reverse", help="default reverse")
    p.add_argument("--steps", type=int, default=800, help="training steps per model (default 800)")
    p.add_argument("--seconds", type=float, default=None, help="stop each model after this many seconds as well")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--symbols", type=int, default=10, help="distinct symbols (default 10)")
    p.add_argument("--min-len", type=int, default=3, help="shortest source (default 3)")
    p.add_argument("--max-len", type=int, default=12, help="longest source (default 12)")
    p.add_argument("--train-size", type=int, default=20000, help="training pairs (default 20000)")
    p.add_argument("--test-size", type=int, default=1000, help="held-out pairs (default 1000)")
    p.add_argument("--d-model", type=int, default=None, help="width (default 128 for rnn, 64 for transformer)")
    p.add_argument("--layers", type=int, default=None, help="layers (default 1 for rnn, 2 for transformer)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 3e-3 rnn, 2e-3 transformer)")
    p.add_argument("--evals", type=int, default=8, help="held-out evaluations during training (default 8)")


DEFAULTS = {"rnn": dict(d_model=128, layers=1, lr=3e-3), "transformer": dict(d_model=64, layers=2, lr=2e-3)}


def train_one(arch, args, data):
    import fastgrad as fg
    from ..models import Seq2Seq, sequence_accuracy
    from ._charlm import cosine_lr

    src, tgt, test_src, test_tgt = data
    cfg = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in DEFAULTS[arch].items()}
    model = Seq2Seq(args.symbols + 3, arch, cfg["d_model"], num_layers=cfg["layers"], max_len=args.max_len + 1)
    opt = fg.optim.Adam(model.parameters(), lr=cfg["lr"])
    params = list(model.parameters())
    out_len = args.max_len + 1
    every = max(1, args.steps // max(1, args.evals))
    losses, evals = [], []  # evals: (step, exact, per_token)
    bar = progress(args.steps, f"seq2seq {arch}")
    train_s, step = 0.0, 0
    while step < args.steps and (args.seconds is None or train_s < args.seconds):
        step += 1
        t0 = time.perf_counter()
        frac = step / args.steps if args.seconds is None else max(step / args.steps, train_s / args.seconds)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(cfg["lr"], frac, warmup_frac=0.03 if arch == "transformer" else 0.0)
        idx = fg.randint(0, len(src), (args.batch_size,))
        opt.zero_grad()
        loss = model.loss(src[idx], tgt[idx])
        loss.backward()
        fg.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        train_s += time.perf_counter() - t0
        bar.update(1)
        if step % every == 0:
            evals.append((step,) + sequence_accuracy(model.greedy_decode(test_src, out_len), test_tgt))
            bar.set_postfix(exact=f"{evals[-1][1]:.3f}")
    bar.close()
    if not evals or evals[-1][0] != step:
        evals.append((step,) + sequence_accuracy(model.greedy_decode(test_src, out_len), test_tgt))
    # teacher-forced accuracy on the held-out set: what training optimises, for comparison with greedy
    with fg.no_grad():
        model.eval()
        from ..models.seq2seq import PAD, decoder_input

        tf_pred = model(test_src, decoder_input(test_tgt)).argmax(dim=-1)
        valid = test_tgt != PAD
        tf_token = ((tf_pred == test_tgt) & valid).sum().item() / valid.sum().item()
    examples = []
    pred = model.greedy_decode(test_src[:4], out_len)
    for i in range(4):
        examples.append((_show(test_src[i]), _show(test_tgt[i]), _show(pred[i])))
    return {"exact_match": evals[-1][1], "token_accuracy": evals[-1][2], "teacher_forced_token_accuracy": tf_token,
            "steps": step, "train_seconds": train_s, "final_train_loss": losses[-1],
            "parameters": sum(p.numel() for p in params), **cfg}, losses, evals, examples


def _show(ids):
    from ..models.seq2seq import EOS, PAD

    out = []
    for i in ids.tolist():
        if i == PAD:
            continue
        out.append("</s>" if i == EOS else str(i - 3))
    return " ".join(out)


def run(args):
    import fastgrad as fg
    from ..models import toy_translation_data

    if not 1 <= args.min_len <= args.max_len or args.symbols < 2:
        print("fastgrad train seq2seq: need 1 <= --min-len <= --max-len and --symbols >= 2")
        return 2
    fg.manual_seed(args.seed)
    t0 = time.perf_counter()
    src, tgt, seen = toy_translation_data(args.train_size, args.symbols, args.min_len, args.max_len, args.task,
                                          seed=args.seed)
    test_src, test_tgt, _ = toy_translation_data(args.test_size, args.symbols, args.min_len, args.max_len,
                                                 args.task, seed=args.seed + 1, exclude=seen)
    data = (src, tgt, test_src, test_tgt)
    archs = ["rnn", "transformer"] if args.arch == "both" else [args.arch]
    results, loss_curves, acc_curves, evals_csv, shown = {}, {}, {}, {}, {}
    for arch in archs:
        r, losses, evals, examples = train_one(arch, args, data)
        label = "LSTM+attention" if arch == "rnn" else "Transformer"
        results[arch] = r
        loss_curves[label] = losses
        acc_curves[f"{label} exact"] = [e[1] for e in evals]
        acc_curves[f"{label} per-token"] = [e[2] for e in evals]
        evals_csv.update({f"{arch}_step": [e[0] for e in evals], f"{arch}_exact": [e[1] for e in evals],
                          f"{arch}_token": [e[2] for e in evals]})
        shown[arch] = examples
    # chance: a uniform guess among the symbols and EOS per target token
    chance = 1.0 / (args.symbols + 1)
    summary = {"task": args.task, "symbols": args.symbols, "lengths": [args.min_len, args.max_len],
               "train_size": args.train_size, "test_size": args.test_size, "chance_token_accuracy": chance,
               **results, "seconds": time.perf_counter() - t0}
    write_summary(out_path(args, "seq2seq_summary.json"), summary)
    write_curves_csv(out_path(args, "seq2seq_loss.csv"), loss_curves)
    write_curves_csv(out_path(args, "seq2seq_accuracy.csv"), evals_csv, index_name="eval")
    plotted = plot_curves(out_path(args, "seq2seq_loss.png"), loss_curves,
                          f"seq2seq, {args.task} task: teacher-forced training loss", ylabel="cross-entropy (nats)")
    plotted &= plot_curves(out_path(args, "seq2seq_accuracy.png"), acc_curves,
                           f"seq2seq, {args.task} task: held-out greedy-decoding accuracy",
                           xlabel=f"evaluation (every {max(1, args.steps // max(1, args.evals))} steps)",
                           ylabel="accuracy", logy=False)

    print(f"\nseq2seq, {args.task} {args.min_len}-{args.max_len} symbols of {args.symbols}: {args.train_size} "
          f"training pairs, {args.test_size} held-out ones (greedy decoding; chance per token {chance:.3f})")
    print(f"{'model':<18}{'params':>9}{'steps':>7}{'train s':>9}{'exact':>9}{'per-token':>11}{'(teacher-forced)':>18}")
    for arch, r in results.items():
        label = "LSTM+attention" if arch == "rnn" else "Transformer"
        print(f"{label:<18}{r['parameters']:>9}{r['steps']:>7}{r['train_seconds']:>9.1f}{r['exact_match']:>9.3f}"
              f"{r['token_accuracy']:>11.3f}{r['teacher_forced_token_accuracy']:>18.3f}")
    for arch, ex in shown.items():
        print(f"\n{arch}: source -> target | greedy decoding")
        for s, t, p in ex:
            print(f"  {s:<26} -> {t:<30} | {p}")
    print_outputs(args, ["seq2seq_loss.png", "seq2seq_accuracy.png"], plotted, f"total {summary['seconds']:.1f} s; ")
    return 0
