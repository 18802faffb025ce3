"""LSTM trained by back-propagation through time on two tasks:

charlm  a character-level language model of tiny Shakespeare with truncated
        BPTT (--bptt K: chunks of K characters, the state carried over and
        detached between chunks); validation loss in nats and bits per
        character against training seconds, and a sample of generated text
adding  the adding problem (sum of the two marked values of a sequence):
        test MSE against the 1/6 of predicting the mean
"""
import time

from . import _charlm as C
from ._common import out_path, plot_curves, print_outputs, progress, write_curves_csv, write_summary

NAME = "lstm"
DESCRIPTION = "LSTM: char-level Shakespeare LM with truncated BPTT (samples text) and the adding problem"


def add_arguments(p):
    p.add_argument("--task", choices=["charlm", "adding", "both"], default="both", help="default both")
    g = p.add_argument_group("charlm")
    g.add_argument("--seconds", type=float, default=90.0, help="training seconds of the char LM (default 90)")
    g.add_argument("--steps", type=int, default=None, help="stop the char LM after this many steps as well")
    g.add_argument("--bptt", type=int, default=64, help="truncated BPTT chunk length K (default 64)")
    g.add_argument("--batch-size", type=int, default=32, help="parallel text streams (default 32)")
    g.add_argument("--hidden", type=int, default=256, help="LSTM hidden size (default 256)")
    g.add_argument("--embed", type=int, default=64, help="character embedding size (default 64)")
    g.add_argument("--layers", type=int, default=1, help="LSTM layers (default 1)")
    g.add_argument("--lr", type=float, default=6e-3, help="Adam learning rate, cosine-decayed (default 6e-3)")
    C.add_data_arguments(g)
    a = p.add_argument_group("adding")
    a.add_argument("--adding-length", type=int, default=50, help="sequence length T (default 50)")
    a.add_argument("--adding-steps", type=int, default=1500, help="training steps (default 1500)")
    a.add_argument("--adding-hidden", type=int, default=64, help="LSTM hidden size (default 64)")
    a.add_argument("--adding-batch", type=int, default=64, help="batch size (default 64)")
    a.add_argument("--adding-lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")


def make_charlm(vocab_size, args):
    from ..models import CharLSTM

    return CharLSTM(vocab_size, args.embed, args.hidden, args.layers)


def lstm_trainer(model, train_ids, val_ids, args, bar=None, name="LSTM"):
    import fastgrad as fg
    from ..models import StreamBatcher

    opt = fg.optim.Adam(model.parameters(), lr=args.lr)
    step = C.lstm_step_fn(model, opt, StreamBatcher(train_ids, args.batch_size, args.bptt))
    return C.SliceTrainer(name, model, opt, step, val_ids, args.seconds, args.steps, lr=args.lr,
                          eval_every=args.eval_every, bar=bar)


def run_charlm(args):
    vocab, train_ids, val_ids, unigram = C.load_split(args)
    model = make_charlm(len(vocab), args)
    bar = C.bar_for(args.seconds, "lstm charlm (s)")
    t = lstm_trainer(model, train_ids, val_ids, args, bar)
    while not t.train_for(args.seconds):
        pass
    bar.close()
    sample = model.sample(vocab, "\n", args.sample_chars, args.temperature)
    with open(out_path(args, "lstm_sample.txt"), "w") as f:
        f.write(sample)
    write_curves_csv(out_path(args, "lstm_charlm_curve.csv"), t.curves(), index_name="point")
    plotted = C.plot_val_vs_seconds(out_path(args, "lstm_charlm_loss.png"), [t],
                                    f"LSTM char LM, tiny Shakespeare ({len(train_ids)} train chars, "
                                    f"BPTT {args.bptt})", unigram)
    s = C.lm_summary(t, unigram)
    s.update(bptt=args.bptt, hidden=args.hidden, batch_size=args.batch_size, train_chars=len(train_ids),
             val_chars=len(val_ids), temperature=args.temperature)
    return s, sample, plotted


def run_adding(args):
    import fastgrad as fg
    import fastgrad.nn.functional as F
    from ..models import ADDING_BASELINE_MSE, LSTMRegressor, adding_problem

    T, steps = args.adding_length, args.adding_steps
    x_test, y_test = adding_problem(2000, T)
    model = LSTMRegressor(2, args.adding_hidden)
    opt = fg.optim.Adam(model.parameters(), lr=args.adding_lr)
    params = list(model.parameters())
    every = max(1, steps // 30)
    curve_steps, train_mse, test_mse, window = [], [], [], []

    def test():
        with fg.no_grad():
            return F.mse_loss(model(x_test), y_test).item()

    bar = progress(steps, f"lstm adding T={T}")
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = C.cosine_lr(args.adding_lr, step / steps)
        x, y = adding_problem(args.adding_batch, T)
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        fg.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        window.append(loss.item())
        bar.update(1)
        if step % every == 0 or step == steps:
            curve_steps.append(step)
            train_mse.append(sum(window) / len(window))
            window = []
            test_mse.append(test())
            bar.set_postfix(test_mse=f"{test_mse[-1]:.4f}")
    bar.close()
    seconds = time.perf_counter() - t0
    # the trivial baseline on this test set: always predict the mean sum, 1
    baseline = F.mse_loss(fg.ones_like(y_test), y_test).item()
    final = test_mse[-1]
    with fg.no_grad():
        err = (model(x_test) - y_test).abs()
    within = (err < 0.04).float().mean().item()
    write_curves_csv(out_path(args, "lstm_adding_mse.csv"),
                     {"step": curve_steps, "train_mse": train_mse, "test_mse": test_mse}, index_name="point")
    curves = {"test MSE": test_mse, "training MSE": train_mse, "predict 1 (baseline)": [baseline] * len(test_mse)}
    plotted = plot_curves(out_path(args, "lstm_adding_mse.png"), curves,
                          f"LSTM, adding problem T={T}: MSE every {every} steps", xlabel=f"x {every} steps",
                          ylabel="mean squared error")
    s = {"length": T, "steps": steps, "test_mse": final, "baseline_mse": baseline,
         "theoretical_baseline_mse": ADDING_BASELINE_MSE, "fraction_within_0.04": within, "seconds": seconds}
    return s, plotted


def run(args):
    import fastgrad as fg

    if args.bptt < 1 or args.batch_size < 1 or args.seconds <= 0:
        print("fastgrad train lstm: --bptt, --batch-size and --seconds must be positive")
        return 2
    fg.manual_seed(args.seed)
    t0 = time.perf_counter()
    summary, figures, plotted = {}, [], True
    if args.task in ("charlm", "both"):
        s, sample, ok = run_charlm(args)
        summary["charlm"] = s
        plotted &= ok
        figures.append("lstm_charlm_loss.png")
    if args.task in ("adding", "both"):
        s, ok = run_adding(args)
        summary["adding"] = s
        plotted &= ok
        figures.append("lstm_adding_mse.png")
    summary["seconds"] = time.perf_counter() - t0
    write_summary(out_path(args, "lstm_summary.json"), summary)

    if "charlm" in summary:
        s = summary["charlm"]
        print(f"\nLSTM char LM: tiny Shakespeare, {s['train_chars']} training characters, validation on "
              f"{s['val_chars']} held-out ones; hidden {s['hidden']}, BPTT {s['bptt']}, batch {s['batch_size']}")
        print(f"{'':<28}{'nats/char':>10}{'bits/char':>10}")
        u = s["unigram_entropy_nats"]
        print(f"{'unigram (no context)':<28}{u:>10.3f}{u / C.LN2:>10.3f}")
        print(f"{'LSTM validation':<28}{s['val_loss_nats']:>10.3f}{s['val_bits_per_char']:>10.3f}")
        print(f"{s['steps']} steps in {s['train_seconds']:.1f} s of training ({s['eval_seconds']:.1f} s evaluating)")
        print(f"\nsample (temperature {s['temperature']}), also in {args.out}/lstm_sample.txt:\n" + "-" * 60)
        print(sample.strip("\n"))
        print("-" * 60)
    if "adding" in summary:
        s = summary["adding"]
        print(f"\nadding problem, T={s['length']}: test MSE {s['test_mse']:.5f} vs {s['baseline_mse']:.4f} for "
              f"predicting 1 ({s['baseline_mse'] / max(s['test_mse'], 1e-12):.0f}x lower); "
              f"{100 * s['fraction_within_0.04']:.1f}% of sums within 0.04; {s['steps']} steps in "
              f"{s['seconds']:.1f} s")
    print_outputs(args, figures, plotted, f"total {summary['seconds']:.1f} s; ")
    return 0
