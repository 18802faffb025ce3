"""Encoder-decoder sequence-to-sequence models and a toy translation task.

  Seq2Seq(vocab_size, arch="rnn")          LSTM encoder, LSTM decoder started
                                           from the encoder's final state, and
                                           dot-product attention over the
                                           encoder's outputs (Luong et al., 2015)
  Seq2Seq(vocab_size, arch="transformer")  nn.Transformer (encoder-decoder, causal
                                           decoder self-attention)

Both are trained with teacher forcing (loss(src, tgt): the decoder reads
BOS + tgt[:-1] and predicts tgt) and decode greedily at test time
(greedy_decode(src, max_len): the decoder reads its own previous argmax).

Token ids: PAD = 0, BOS = 1, EOS = 2, the task's symbols from 3 on.
toy_translation_data(...) makes (src, tgt) pairs for reversing or sorting
sequences of symbols of varying length; sequence_accuracy(...) scores
decoded sequences (exact match including EOS, and per target token).
"""
import math

from .. import nn
from ..nn import functional as F
from ..ops.shape import cat

__all__ = ["PAD", "BOS", "EOS", "Seq2Seq", "toy_translation_data", "sequence_accuracy", "decoder_input"]

PAD, BOS, EOS = 0, 1, 2
_SPECIAL = 3


def toy_translation_data(n, n_symbols=10, min_len=3, max_len=10, task="reverse", seed=0, exclude=None):
    """n distinct random (src, tgt) pairs as int64 tensors: src (n, max_len) padded with PAD, tgt
    (n, max_len + 1) = the answer, EOS, then PAD. task "reverse": the source backwards; "sort": its
    symbols in increasing order. Sources in `exclude` (a set of tuples) are never drawn; the set
    of drawn sources is returned as the third value (pass it as `exclude` for a held-out set)."""
    import numpy as np

    import fastgrad as fg

    if task not in ("reverse", "sort"):
        raise ValueError(f"toy_translation_data: task must be 'reverse' or 'sort', got {task!r}")
    if not 1 <= min_len <= max_len or n_symbols < 2:
        raise ValueError(f"toy_translation_data: need 1 <= min_len <= max_len and n_symbols >= 2, got "
                         f"min_len={min_len}, max_len={max_len}, n_symbols={n_symbols}")
    rng = np.random.default_rng(seed)
    exclude = exclude or set()
    seen, srcs = set(), []
    tries = 0
    while len(srcs) < n:
        tries += 1
        if tries > 20 * n + 1000:
            raise ValueError(f"toy_translation_data: cannot draw {n} distinct sequences (lengths {min_len}.."
                             f"{max_len} over {n_symbols} symbols)")
        s = tuple(rng.integers(_SPECIAL, _SPECIAL + n_symbols, rng.integers(min_len, max_len + 1)).tolist())
        if s in seen or s in exclude:
            continue
        seen.add(s)
        srcs.append(s)
    src = np.full((n, max_len), PAD, dtype=np.int64)
    tgt = np.full((n, max_len + 1), PAD, dtype=np.int64)
    for i, s in enumerate(srcs):
        ans = s[::-1] if task == "reverse" else tuple(sorted(s))
        src[i, :len(s)] = s
        tgt[i, :len(s)] = ans
        tgt[i, len(s)] = EOS
    return fg.from_numpy(src), fg.from_numpy(tgt), seen


def decoder_input(tgt):
    """Teacher forcing: BOS followed by tgt[:, :-1] (what the decoder reads to predict tgt)."""
    import fastgrad as fg

    bos = fg.full((tgt.shape[0], 1), BOS, dtype=tgt.dtype)
    return fg.cat([bos, tgt[:, :-1]], dim=1)


def sequence_accuracy(pred, tgt):
    """(exact, per_token) of decoded ids pred (B, Lp) against tgt (B, Lt) (answer, EOS, PAD...):
    exact = fraction of rows whose answer and EOS are all right; per_token = fraction of the
    non-PAD target tokens (EOS included) predicted at their position."""
    import fastgrad as fg

    L = tgt.shape[1]
    if pred.shape[1] < L:
        pred = fg.cat([pred, fg.full((pred.shape[0], L - pred.shape[1]), PAD, dtype=pred.dtype)], dim=1)
    pred = pred[:, :L]
    valid = tgt != PAD
    hit = (pred == tgt) & valid
    per_token = hit.sum().item() / valid.sum().item()
    exact = (hit.sum(dim=1) == valid.sum(dim=1)).float().mean().item()
    return exact, per_token


class Seq2Seq(nn.Module):
    """Seq2Seq(vocab_size, arch="rnn"|"transformer", d_model=128, num_layers=1, nhead=4,
    dim_feedforward=None, max_len=64, dropout=0.0).

    vocab_size counts PAD, BOS and EOS. forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V);
    loss(src, tgt) is the teacher-forced cross-entropy over non-PAD targets;
    greedy_decode(src, max_len) -> ids (B, max_len), PAD after the first EOS.
    """

    def __init__(self, vocab_size, arch="rnn", d_model=128, num_layers=1, nhead=4, dim_feedforward=None,
                 max_len=64, dropout=0.0):
        super().__init__()
        if arch not in ("rnn", "transformer"):
            raise ValueError(f"Seq2Seq: arch must be 'rnn' or 'transformer', got {arch!r}")
        if vocab_size <= _SPECIAL:
            raise ValueError(f"Seq2Seq: vocab_size must exceed the {_SPECIAL} special tokens, got {vocab_size}")
        self.arch, self.vocab_size, self.d_model = arch, vocab_size, d_model
        self.src_embed = nn.Embedding(vocab_size, d_model)
        self.tgt_embed = nn.Embedding(vocab_size, d_model)
        if arch == "rnn":
            self.encoder = nn.LSTM(d_model, d_model, num_layers=num_layers)
            self.decoder = nn.LSTM(d_model, d_model, num_layers=num_layers)
            # Luong's attentional hidden state: tanh(W [decoder output; context])
            self.combine = nn.Linear(2 * d_model, d_model)
        else:
            for emb in (self.src_embed, self.tgt_embed):
                nn.init.normal_(emb.weight, std=d_model ** -0.5)  # times sqrt(d) below: unit scale
            self.pos = nn.SinusoidalPositionalEncoding(d_model, max_len + 1)
            self.transformer = nn.Transformer(d_model, nhead, num_layers, num_layers,
                                              dim_feedforward or 4 * d_model, dropout, norm_first=True)
            self._masks = {}
        self.head = nn.Linear(d_model, vocab_size)

    # -- the two architectures, time-major inside ((T, B, ...): the recurrent layers' native layout)

    def _embed(self, emb, ids):
        h = emb(ids.t())
        if self.arch == "transformer":
            h = h * math.sqrt(self.d_model) + self.pos.pe[:ids.shape[1]].unsqueeze(1).to(h.dtype)
        return h

    def encode(self, src):
        """The encoder's memory for src (B, S): (outputs (S, B, d), final state or None, src pad mask)."""
        if src.ndim != 2:
            raise ValueError(f"Seq2Seq: expected src ids of shape (batch, length), got {list(src.shape)}")
        pad = src == PAD
        x = self._embed(self.src_embed, src)
        if self.arch == "rnn":
            out, state = self.encoder(x)
            return out, state, pad
        return self.transformer.encoder(x, src_key_padding_mask=pad), None, pad

    def _causal(self, T):
        m = self._masks.get(T)
        if m is None:
            m = self._masks[T] = nn.Transformer.generate_square_subsequent_mask(T)
        return m

    def decode(self, memory, tgt_in, state=None):
        """Logits (T, B, V) for the decoder input tgt_in (B, T) given encode()'s memory; for the RNN
        also the decoder's state after it (pass it back to continue)."""
        out, enc_state, pad = memory
        y = self._embed(self.tgt_embed, tgt_in)
        if self.arch == "rnn":
            h, state = self.decoder(y, enc_state if state is None else state)
            # dot-product attention of every decoder step over the encoder outputs, PAD excluded:
            # (B, T, d) x (B, S, d) -> (B, T, d); the bool mask says which source positions take part
            ctx = F.scaled_dot_product_attention(h.transpose(0, 1), out.transpose(0, 1), out.transpose(0, 1),
                                                 attn_mask=(~pad).unsqueeze(1))
            h = self.combine(cat([h, ctx.transpose(0, 1)], dim=2)).tanh()
            return self.head(h), state
        T = tgt_in.shape[1]
        h = self.transformer.decoder(y, out, tgt_mask=self._causal(T), tgt_is_causal=True,
                                     memory_key_padding_mask=pad)
        return self.head(h), None

    def forward(self, src, tgt_in):
        return self.decode(self.encode(src), tgt_in)[0].transpose(0, 1)

    def loss(self, src, tgt):
        """Teacher-forced mean cross-entropy (nats per target token, PAD ignored)."""
        logits, _ = self.decode(self.encode(src), decoder_input(tgt))
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), tgt.t().reshape(-1), ignore_index=PAD)

    def greedy_decode(self, src, max_len):
        """(B, max_len) ids, each step the argmax given the previous ones; PAD after the first EOS."""
        import fastgrad as fg

        was = self.training
        self.eval()
        B = src.shape[0]
        with fg.no_grad():
            memory = self.encode(src)
            prev = fg.full((B, 1), BOS, dtype=fg.int64)
            outs, state = [], None
            for _ in range(max_len):
                if self.arch == "rnn":  # one step, the state carried
                    logits, state = self.decode(memory, prev[:, -1:], state)
                else:  # the whole prefix again (no key/value cache: sequences are short)
                    logits, _ = self.decode(memory, prev)
                nxt = logits[-1].argmax(dim=-1).unsqueeze(1)
                outs.append(nxt)
                prev = fg.cat([prev, nxt], dim=1)
            pred = fg.cat(outs, dim=1)
            # everything after the first EOS is PAD: a sequence ends there
            ended = (pred == EOS).long().cumsum(dim=1) - (pred == EOS).long() > 0
            pred = pred.masked_fill(ended, PAD)
        self.train(was)
        return pred

