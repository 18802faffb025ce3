"""What `fastgrad train lstm` and `fastgrad train transformer` share: the
Shakespeare split, a trainer that runs a character model by slices of wall
time (so two models can be trained interleaved and see the same machine
load), and the validation-loss-against-seconds figure."""
import math
import time

from ._common import progress, pyplot, save_figure

LN2 = math.log(2.0)


def add_data_arguments(p):
    # all of the first 90%: with only the first 300K characters both models overfit within a minute
    # (training loss ~0.5 nats below validation), and more text costs nothing per step
    p.add_argument("--train-chars", type=int, default=None,
                   help="train on the first N characters of the text (default: all of the first 90%%)")
    p.add_argument("--val-chars", type=int, default=20_000,
                   help="validate on the first N characters of the held-out last 10%% (default 20000)")
    p.add_argument("--eval-every", type=float, default=10.0,
                   help="seconds of training between validation-loss points (default 10)")
    p.add_argument("--sample-chars", type=int, default=500, help="characters of sampled text (default 500)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")


def load_split(args):
    """(vocab, train ids, val ids, unigram entropy of val in nats) of tiny Shakespeare."""
    import fastgrad as fg
    from ..models.charlm import CharVocab, split_text, unigram_entropy

    text = fg.datasets.tiny_shakespeare()
    vocab = CharVocab(text)
    train, val = split_text(text, args.train_chars)
    val = val[:args.val_chars]
    val_ids = vocab.encode(val)
    return vocab, vocab.encode(train), val_ids, unigram_entropy(val_ids, len(vocab))


def cosine_lr(base, frac, warmup_frac=0.0, floor=0.05):
    """Linear warm-up over the first warmup_frac of training, then cosine decay to floor * base."""
    if warmup_frac > 0 and frac < warmup_frac:
        return base * max(frac, 1e-3) / warmup_frac
    f = (frac - warmup_frac) / (1 - warmup_frac) if warmup_frac < 1 else 1.0
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, f))))


class SliceTrainer:
    """Trains one character model for `seconds` of training time (evaluation excluded) or `max_steps`
    steps, whichever ends first, in slices: train_for(s) runs steps for about s seconds. The learning
    rate follows cosine_lr of the fraction done. Records (training seconds, step, mean training loss
    since the last point, validation loss) every `eval_every` training seconds, at the start and at
    the end.

    step_fn() does one optimisation step and returns its loss (a float)."""

    def __init__(self, name, model, optimizer, step_fn, val_ids, seconds, max_steps=None, lr=1e-3,
                 warmup_frac=0.0, eval_every=10.0, bar=None):
        self.name, self.model, self.opt, self.step_fn, self.val_ids = name, model, optimizer, step_fn, val_ids
        self.seconds, self.max_steps, self.lr, self.warmup_frac = seconds, max_steps, lr, warmup_frac
        self.eval_every, self.bar = eval_every, bar
        self.train_seconds, self.steps, self.done = 0.0, 0, False
        self.points = []  # (seconds, step, train loss, val loss)
        self._losses = []
        self.eval_seconds, self._unshown = 0.0, 0.0
        self._record()

    def _frac(self):
        f = self.train_seconds / self.seconds if self.seconds else 0.0
        if self.max_steps:
            f = max(f, self.steps / self.max_steps)
        return f

    def _record(self):
        t0 = time.perf_counter()
        val = self.model.evaluate(self.val_ids)
        self.eval_seconds += time.perf_counter() - t0
        train = sum(self._losses) / len(self._losses) if self._losses else float("nan")
        self._losses = []
        self.points.append((self.train_seconds, self.steps, train, val))
        if self.bar is not None:
            self.bar.set_postfix({f"{self.name} val": f"{val:.3f}"})

    def train_for(self, slice_seconds):
        """About slice_seconds of training (or up to the end); returns True when training is over."""
        if self.done:
            return True
        end = self.train_seconds + slice_seconds
        while self.train_seconds < end:
            frac = self._frac()
            if frac >= 1:
                break
            lr = cosine_lr(self.lr, frac, self.warmup_frac)
            for g in self.opt.param_groups:
                g["lr"] = lr
            t0 = time.perf_counter()
            loss = self.step_fn()
            dt = time.perf_counter() - t0
            self.train_seconds += dt
            self.steps += 1
            self._losses.append(loss)
            if self.bar is not None:  # whole seconds: the bar counts training seconds
                self._unshown += dt
                if self._unshown >= 1:
                    self.bar.update(int(self._unshown))
                    self._unshown -= int(self._unshown)
            if not math.isfinite(loss):
                raise RuntimeError(f"{self.name}: the training loss became {loss} at step {self.steps}")
            if self.train_seconds >= self.points[-1][0] + self.eval_every:
                self._record()
        if self._frac() >= 1:
            self.done = True
            if self.points[-1][1] != self.steps:
                self._record()
        return self.done

    @property
    def final_val(self):
        return self.points[-1][3]

    def curves(self, prefix=""):
        p = prefix
        return {f"{p}seconds": [q[0] for q in self.points], f"{p}step": [q[1] for q in self.points],
                f"{p}train_loss": [q[2] for q in self.points], f"{p}val_loss": [q[3] for q in self.points]}


def _backward_step(loss, optimizer, params, clip):
    """Backward, clip the gradients' global norm to `clip` (0: no clipping), optimizer step; the loss value."""
    from .. import nn

    loss.backward()
    if clip:
        nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    return loss.item()


def lstm_step_fn(model, optimizer, batches, clip=1.0):
    """Truncated BPTT over a StreamBatcher: the state carried from chunk to chunk, detached between
    them, reset at the start of each pass over the text."""
    it = batches.forever()
    params = list(model.parameters())
    carried = [None]

    def step():
        x, y, first = next(it)
        state = None if first else carried[0]
        optimizer.zero_grad()
        loss, state = model.loss(x, y, state)
        carried[0] = model.detach_state(state)
        return _backward_step(loss, optimizer, params, clip)

    return step


def window_step_fn(model, optimizer, train_ids, batch_size, length, clip=1.0):
    """Random windows of `length` characters (the Transformer's context)."""
    from ..models.charlm import random_windows

    params = list(model.parameters())

    def step():
        x, y = random_windows(train_ids, batch_size, length)
        optimizer.zero_grad()
        loss, _ = model.loss(x, y)
        return _backward_step(loss, optimizer, params, clip)

    return step


def run_interleaved(trainers, slice_seconds=5.0):
    """Train every trainer to its end, taking turns of slice_seconds (both see the same machine load)."""
    while not all(t.done for t in trainers):
        for t in trainers:
            t.train_for(slice_seconds)


def bar_for(seconds, desc):
    return progress(round(seconds), desc)


def plot_val_vs_seconds(path, trainers, title, unigram=None):
    """Validation (solid) and training (dashed) loss in nats/char against training seconds, one colour
    per model; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, t in enumerate(trainers):
        c = f"C{i}"
        xs = [q[0] for q in t.points]
        ax.plot(xs, [q[3] for q in t.points], "-o", color=c, markersize=3, label=f"{t.name} validation")
        tr = [(q[0], q[2]) for q in t.points if math.isfinite(q[2])]
        if tr:
            ax.plot([a for a, _ in tr], [b for _, b in tr], "--", color=c, alpha=0.6,
                    label=f"{t.name} training (mean since last point)")
    if unigram is not None:
        ax.axhline(unigram, color="gray", linestyle=":", label=f"unigram entropy {unigram:.2f}")
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("loss (nats / character)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def lm_summary(t, unigram):
    return {"val_loss_nats": t.final_val, "val_bits_per_char": t.final_val / LN2, "unigram_entropy_nats": unigram,
            "train_seconds": t.train_seconds, "eval_seconds": t.eval_seconds, "steps": t.steps,
            "parameters": sum(p.numel() for p in t.model.parameters())}
