"""A small causal Transformer as a character-level language model of tiny
Shakespeare, and the LSTM of `fastgrad train lstm` trained beside it for the
same wall-clock budget on the same split: the two take turns of a few seconds
(so both see the same machine load), and one figure plots both validation
curves against training seconds."""
import argparse
import time

from . import _charlm as C
from ._common import out_path, print_outputs, write_curves_csv, write_summary

NAME = "transformer"
DESCRIPTION = "causal Transformer char LM of Shakespeare vs the LSTM for the same wall-clock budget"


def add_arguments(p):
    p.add_argument("--seconds", type=float, default=60.0,
                   help="training seconds per model, evaluation excluded (default 60)")
    p.add_argument("--steps", type=int, default=None, help="stop each model after this many steps as well")
    p.add_argument("--d-model", type=int, default=128, help="model width (default 128)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--layers", type=int, default=2, help="Transformer layers (default 2)")
    p.add_argument("--context", type=int, default=64, help="context length in characters (default 64)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per batch (default 16)")
    p.add_argument("--lr", type=float, default=5e-3, help="AdamW learning rate (warm-up, cosine decay; default 5e-3)")
    p.add_argument("--activation", choices=["relu", "gelu"], default="relu", help="feed-forward activation")
    p.add_argument("--no-lstm", dest="lstm", action="store_false",
                   help="skip the LSTM trained for the same budget")
    p.add_argument("--lstm-hidden", type=int, default=None,
                   help="the LSTM's hidden size (default: fastgrad train lstm's, 256)")
    p.add_argument("--slice", type=float, default=5.0, help="seconds per turn when training both (default 5)")
    C.add_data_arguments(p)


def _lstm_args(args):
    """The LSTM's options: `fastgrad train lstm`'s defaults, with this run's budget and data."""
    from . import lstm

    p = argparse.ArgumentParser()
    lstm.add_arguments(p)
    la = p.parse_args([])
    la.seconds, la.steps, la.eval_every = args.seconds, args.steps, args.eval_every
    if args.lstm_hidden is not None:
        la.hidden = args.lstm_hidden
    return la


def run(args):
    import fastgrad as fg
    from ..models import CharTransformer
    from . import lstm

    if args.d_model % args.heads:
        print(f"fastgrad train transformer: --d-model {args.d_model} must be divisible by --heads {args.heads}")
        return 2
    fg.manual_seed(args.seed)
    t0 = time.perf_counter()
    vocab, train_ids, val_ids, unigram = C.load_split(args)
    bar = C.bar_for(args.seconds * (2 if args.lstm else 1), "training (s)")

    model = CharTransformer(len(vocab), args.d_model, args.heads, args.layers, args.context,
                            activation=args.activation)
    opt = fg.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    step = C.window_step_fn(model, opt, train_ids, args.batch_size, args.context)
    trainers = [C.SliceTrainer("Transformer", model, opt, step, val_ids, args.seconds, args.steps, lr=args.lr,
                               warmup_frac=0.05, eval_every=args.eval_every, bar=bar)]
    if args.lstm:
        la = _lstm_args(args)
        trainers.append(lstm.lstm_trainer(lstm.make_charlm(len(vocab), la), train_ids, val_ids, la, bar))
    C.run_interleaved(trainers, args.slice)
    bar.close()

    sample = model.sample(vocab, "\n", args.sample_chars, args.temperature)
    with open(out_path(args, "transformer_sample.txt"), "w") as f:
        f.write(sample)
    curves = {}
    for t in trainers:
        curves.update(t.curves(t.name.lower() + "_"))
    write_curves_csv(out_path(args, "transformer_vs_lstm.csv"), curves, index_name="point")
    title = (f"char LM, tiny Shakespeare: Transformer ({args.layers}x{args.d_model}, context {args.context})"
             + (" vs LSTM" if args.lstm else "") + f", {args.seconds:g} s each")
    plotted = C.plot_val_vs_seconds(out_path(args, "transformer_vs_lstm.png"), trainers, title, unigram)

    summary = {"transformer": C.lm_summary(trainers[0], unigram)}
    summary["transformer"].update(d_model=args.d_model, layers=args.layers, heads=args.heads, context=args.context,
                                  batch_size=args.batch_size)
    if args.lstm:
        summary["lstm"] = C.lm_summary(trainers[1], unigram)
        summary["lstm"].update(hidden=la.hidden, bptt=la.bptt, batch_size=la.batch_size)
        summary["winner"] = min(trainers, key=lambda t: t.final_val).name
    summary.update(train_chars=len(train_ids), val_chars=len(val_ids), budget_seconds=args.seconds,
                   seconds=time.perf_counter() - t0)
    write_summary(out_path(args, "transformer_summary.json"), summary)

    print(f"\nchar LM, tiny Shakespeare: {len(train_ids)} training characters, validation on {len(val_ids)} "
          f"held-out ones, {args.seconds:g} s of training per model")
    print(f"{'model':<34}{'params':>9}{'steps':>7}{'train s':>9}{'nats/char':>11}{'bits/char':>11}")
    print(f"{'unigram (no context)':<34}{'':>9}{'':>7}{'':>9}{unigram:>11.3f}{unigram / C.LN2:>11.3f}")
    for t in trainers:
        s = C.lm_summary(t, unigram)
        desc = (f"Transformer {args.layers}x{args.d_model}, ctx {args.context}" if t is trainers[0] else
                f"LSTM {la.hidden}, BPTT {la.bptt}")
        print(f"{desc:<34}{s['parameters']:>9}{s['steps']:>7}{s['train_seconds']:>9.1f}{s['val_loss_nats']:>11.3f}"
              f"{s['val_bits_per_char']:>11.3f}")
    if args.lstm:
        print(f"lower validation loss at equal training time: {summary['winner']}")
    print(f"\nTransformer sample (temperature {args.temperature}), also in {args.out}/transformer_sample.txt:\n"
          + "-" * 60)
    print(sample.strip("\n"))
    print("-" * 60)
    print_outputs(args, ["transformer_vs_lstm.png"], plotted, f"total {summary['seconds']:.1f} s; ")
    return 0
