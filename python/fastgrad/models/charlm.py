"""Character-level language models: an LSTM (CharLSTM) and a small causal
Transformer (CharTransformer), with the pieces both need:

  CharVocab          the characters of a text <-> integer ids
  split_text         the first `train_chars` for training, the last 10% held out
  StreamBatcher      contiguous streams for truncated back-propagation through
                     time: batch row b reads one long stretch of the text chunk
                     after chunk, so the LSTM state can be carried over
  random_windows     random (input, next-char target) windows, for the Transformer
  sample_next        one draw from softmax(logits / temperature)

Both models map ids (B, T) to next-character logits, have loss(...) in nats
per character, evaluate(...) over a whole held-out text, and generate(...) /
sample(...) for text.
"""
import math

from .. import nn
from ..nn import functional as F

__all__ = ["CharVocab", "split_text", "StreamBatcher", "random_windows", "sample_next", "unigram_entropy",
           "CharLSTM", "CharTransformer"]


class CharVocab:
    """The sorted distinct characters of `text`; encode(str) -> int64 ids (1-D Tensor), decode(ids) -> str."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        if not self.chars:
            raise ValueError("CharVocab: the text is empty")
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, s):
        import numpy as np

        import fastgrad as fg

        try:
            ids = np.fromiter((self.stoi[ch] for ch in s), dtype=np.int64, count=len(s))
        except KeyError as e:
            raise ValueError(f"CharVocab.encode: character {e.args[0]!r} is not in the vocabulary") from None
        return fg.from_numpy(ids)

    def decode(self, ids):
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)


def split_text(text, train_chars=None, val_fraction=0.1):
    """(train, val): val is the last `val_fraction` of the text (held out, as is customary), train the
    first `train_chars` characters of the rest (all of it when None)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"split_text: val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    train = text[:cut] if train_chars is None else text[:min(cut, train_chars)]
    return train, text[cut:]


def unigram_entropy(ids, vocab_size):
    """Entropy in nats of the character frequencies of `ids`: the loss of the best model that ignores
    context (every char-LM must get well below it)."""
    import numpy as np

    counts = np.bincount(np.asarray(ids.tolist() if hasattr(ids, "tolist") else ids), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class StreamBatcher:
    """Truncated-BPTT batches over a 1-D id tensor: the text is cut into `batch_size` equal contiguous
    streams (rows); chunk k is columns [k*bptt, (k+1)*bptt) as input and the same shifted by one as
    target, so row b of chunk k+1 continues row b of chunk k and a recurrent state carries over.

    Iterating yields (x, y, first): first is True on the first chunk of a pass (the state should be
    reset). Each pass starts at a random offset < bptt (chunk borders move between passes)."""

    def __init__(self, data, batch_size, bptt, shuffle_offset=True):
        if data.ndim != 1:
            raise ValueError(f"StreamBatcher: expected 1-D ids, got shape {list(data.shape)}")
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"StreamBatcher: batch_size and bptt must be positive, got {batch_size}, {bptt}")
        if (len(data) - bptt) // batch_size < bptt + 1:
            raise ValueError(f"StreamBatcher: {len(data)} ids are too few for {batch_size} streams of at least "
                             f"{bptt + 1} (bptt {bptt})")
        self.data, self.batch_size, self.bptt, self.shuffle_offset = data, batch_size, bptt, shuffle_offset

    def _streams(self, offset):
        n = (len(self.data) - offset) // self.batch_size
        return self.data[offset:offset + n * self.batch_size].view(self.batch_size, n)

    def __len__(self):
        """Chunks in a pass (at the largest offset)."""
        return ((len(self.data) - self.bptt) // self.batch_size - 1) // self.bptt

    def __iter__(self):
        import fastgrad as fg

        offset = int(fg.randint(0, self.bptt, (1,)).item()) if self.shuffle_offset else 0
        s = self._streams(offset)
        for k in range(len(self)):
            a = k * self.bptt
            yield s[:, a:a + self.bptt], s[:, a + 1:a + 1 + self.bptt], k == 0

    def forever(self):
        """Passes after passes, without end."""
        while True:
            yield from self


def random_windows(data, batch_size, length):
    """(x, y), each (batch_size, length): windows of `data` at random starts, y = x shifted by one."""
    import fastgrad as fg

    if len(data) < length + 2:
        raise ValueError(f"random_windows: {len(data)} ids are too few for windows of {length} + 1")
    starts = fg.randint(0, len(data) - length - 1, (batch_size, 1))
    idx = starts + fg.arange(length + 1).unsqueeze(0)
    w = data[idx]
    return w[:, :-1], w[:, 1:]


def sample_next(logits, temperature=1.0):
    """One id per row of logits (B, V) from softmax(logits / temperature); temperature 0 is argmax."""
    import fastgrad as fg

    if temperature < 0:
        raise ValueError(f"sample_next: temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    p = F.softmax(logits / temperature, dim=-1)
    # inverse CDF: the first id whose cumulative probability passes a uniform draw
    u = fg.rand(p.shape[0], 1, dtype=p.dtype)
    ids = (p.cumsum(dim=-1) < u).sum(dim=-1)
    return ids.clamp(max=p.shape[-1] - 1)


def _check_ids(name, x, vocab_size):
    if x.ndim != 2:
        raise ValueError(f"{name}: expected ids of shape (batch, time), got {list(x.shape)}")
    if x.dtype.is_floating_point:
        raise TypeError(f"{name}: expected integer ids, got {x.dtype.name}")


class _CharLM(nn.Module):
    """What both models share: the loss, held-out evaluation and text generation."""

    vocab_size = 0

    def loss(self, x, y, state=None):
        """Mean cross-entropy in nats per character of predicting y (B, T) from x (B, T); returns
        (loss, state) (state is None for the Transformer)."""
        logits, state = self._logits_time_major(x, state)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), y.t().reshape(-1)), state

    def sample(self, vocab, prompt="\n", n=500, temperature=0.8):
        """A string: `prompt` followed by n generated characters."""
        if not prompt:
            raise ValueError(f"{type(self).__name__}.sample: the prompt must hold at least one character")
        return prompt + vocab.decode(self.generate(vocab.encode(prompt), n, temperature))


class CharLSTM(_CharLM):
    """CharLSTM(vocab_size, embed=64, hidden=256, num_layers=1, dropout=0.0): Embedding -> LSTM ->
    Linear. forward(x (B, T), state=None) -> (logits (B, T, V), state) with state = (h, c), each
    (num_layers, B, hidden): pass it back in for the next chunk of a stream (detach it between
    chunks for truncated BPTT)."""

    def __init__(self, vocab_size, embed=64, hidden=256, num_layers=1, dropout=0.0):
        super().__init__()
        if vocab_size < 2 or embed < 1 or hidden < 1:
            raise ValueError(f"CharLSTM: vocab_size >= 2, embed >= 1 and hidden >= 1 needed, got "
                             f"{vocab_size}, {embed}, {hidden}")
        self.vocab_size, self.hidden, self.num_layers = vocab_size, hidden, num_layers
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def _logits_time_major(self, x, state):
        _check_ids("CharLSTM", x, self.vocab_size)
        # time-major inside: the LSTM's output is then contiguous for the head, no transposed copy
        out, state = self.lstm(self.embed(x.t()), state)
        return self.head(self.drop(out)), state

    def forward(self, x, state=None):
        logits, state = self._logits_time_major(x, state)
        return logits.transpose(0, 1), state

    @staticmethod
    def detach_state(state):
        return None if state is None else tuple(s.detach() for s in state)

    def evaluate(self, data, batch_size=16, bptt=256):
        """Mean loss in nats per character over the 1-D ids `data`: `batch_size` contiguous streams, the
        state carried through each (every character but a stream's first is predicted with all the
        context before it in the stream)."""
        import fastgrad as fg

        was = self.training
        self.eval()
        n = (len(data) - 1) // batch_size
        xs = data[:n * batch_size].view(batch_size, n)
        ys = data[1:n * batch_size + 1].view(batch_size, n)
        total, state = 0.0, None
        with fg.no_grad():
            for a in range(0, n, bptt):
                b = min(n, a + bptt)
                loss, state = self.loss(xs[:, a:b], ys[:, a:b], state)
                total += loss.item() * (b - a)
        self.train(was)
        return total / n

    def generate(self, prompt, n, temperature=0.8):
        """n ids (1-D Tensor) sampled after the 1-D ids `prompt`, one at a time with the state carried."""
        import fastgrad as fg

        was = self.training
        self.eval()
        out = []
        with fg.no_grad():
            logits, state = self._logits_time_major(prompt.view(1, -1), None)
            for _ in range(n):
                nxt = sample_next(logits[-1], temperature)
                out.append(nxt)
                logits, state = self._logits_time_major(nxt.view(1, 1), state)
        self.train(was)
        return fg.cat(out) if out else fg.zeros(0, dtype=fg.int64)


class CharTransformer(_CharLM):
    """CharTransformer(vocab_size, d_model=128, nhead=4, num_layers=3, context=128, dim_feedforward=None,
    dropout=0.0): token embedding * sqrt(d_model) + sinusoidal position code, `num_layers` pre-norm
    causal Transformer encoder layers (multi-head softmax(QK^T / sqrt(d)) V, GELU feed-forward,
    residuals), a final LayerNorm and a linear head. forward(x (B, T)) -> logits (B, T, V) for
    T <= context, position t seeing positions <= t only."""

    def __init__(self, vocab_size, d_model=128, nhead=4, num_layers=3, context=128, dim_feedforward=None,
                 dropout=0.0, activation="gelu"):
        super().__init__()
        if vocab_size < 2 or context < 1:
            raise ValueError(f"CharTransformer: vocab_size >= 2 and context >= 1 needed, got {vocab_size}, "
                             f"{context}")
        self.vocab_size, self.d_model, self.context = vocab_size, d_model, context
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=d_model ** -0.5)  # times sqrt(d): unit scale, like the code
        self.pos = nn.SinusoidalPositionalEncoding(d_model, context, dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward or 4 * d_model, dropout,
                                           activation=activation, batch_first=False, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self._masks = {}

    def _mask(self, T):
        m = self._masks.get(T)
        if m is None:
            m = self._masks[T] = nn.Transformer.generate_square_subsequent_mask(T)
        return m

    def _logits_time_major(self, x, state=None):
        _check_ids("CharTransformer", x, self.vocab_size)
        T = x.shape[1]
        if T > self.context:
            raise ValueError(f"CharTransformer: {T} positions exceed the context of {self.context}")
        # time-major (T, B, d): the position code broadcasts over the batch as (T, 1, d)
        h = self.embed(x.t()) * math.sqrt(self.d_model) + self.pos.pe[:T].unsqueeze(1).to(self.embed.weight.dtype)
        if self.pos.p > 0:
            h = F.dropout(h, self.pos.p, self.training)
        h = self.blocks(h, mask=self._mask(T), is_causal=True)
        return self.head(self.norm(h)), None

    def forward(self, x):
        return self._logits_time_major(x)[0].transpose(0, 1)

    def evaluate(self, data, batch_size=32, stride=None):
        """Mean loss in nats per character over the 1-D ids `data` with sliding windows of `context`
        characters moved by `stride` (default context // 2): each window scores only its last `stride`
        positions (the first window all of them), so every prediction but the first few sees at least
        context - stride characters."""
        import fastgrad as fg

        L = self.context
        stride = stride or max(1, L // 2)
        n = len(data) - 1
        if n < L:
            raise ValueError(f"CharTransformer.evaluate: {len(data)} ids are too few for a window of {L}")
        starts = list(range(0, n - L + 1, stride))
        if starts[-1] != n - L:
            starts.append(n - L)
        was = self.training
        self.eval()
        total, count, scored_to = 0.0, 0, 0
        with fg.no_grad():
            for i in range(0, len(starts), batch_size):
                group = starts[i:i + batch_size]
                idx = fg.tensor(group).unsqueeze(1) + fg.arange(L + 1).unsqueeze(0)
                w = data[idx]
                logits = self._logits_time_major(w[:, :-1])[0]  # (L, B, V)
                nll = F.cross_entropy(logits.reshape(-1, self.vocab_size), w[:, 1:].t().reshape(-1),
                                      reduction="none").view(L, len(group))
                # score each target once: window s scores positions from (end of the previous window) - s
                first = []
                for s in group:
                    first.append(max(scored_to, s) - s)
                    scored_to = s + L
                keep = (fg.arange(L).unsqueeze(1) >= fg.tensor(first).unsqueeze(0)).to(nll.dtype)
                total += (nll * keep).sum().item()
                count += sum(L - f for f in first)
        self.train(was)
        return total / count

    def generate(self, prompt, n, temperature=0.8):
        """n ids (1-D Tensor) sampled after the 1-D ids `prompt`, each from the last `context` ids."""
        import fastgrad as fg

        was = self.training
        self.eval()
        seq = prompt.view(-1)
        with fg.no_grad():
            for _ in range(n):
                logits = self._logits_time_major(seq[-self.context:].view(1, -1))[0]
                seq = fg.cat([seq, sample_next(logits[-1], temperature)])
        self.train(was)
        return seq[len(prompt):]
