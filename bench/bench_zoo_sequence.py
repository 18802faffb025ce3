"""Model zoo part C (sequence models), fastgrad beside PyTorch: one training
step of each `fastgrad train lstm | transformer | seq2seq` default model,
the same architecture, batch, loss, gradient clipping and optimizer in both
frameworks (medians over repeats, after a warm-up; the batch is fixed, so data
preparation is excluded). The examples' training time is about steps x this.

    PYTHONPATH=python python bench/bench_zoo_sequence.py [--threads 1] [--reps 7] [--only NAME ...]
"""
import math

import numpy as np

from _zoo_common import import_frameworks, run_steps, step_args


def _clip_step(framework, opt, params, loss):
    """One step as the sequence examples train: backward, gradient norm clipped to 1, optimizer step;
    framework: fastgrad or torch (the same API)."""
    opt.zero_grad()
    loss.backward()
    framework.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def _text_batch(rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 65, (rows, cols + 1))
    return ids[:, :-1].copy(), ids[:, 1:].copy()


# ---------------------------------------------------------------------------------------------------------


def lstm_charlm(fg, torch):
    """fastgrad train lstm (charlm): Embedding 65x64, LSTM 64-256, Linear 256-65; 32 streams x BPTT 64,
    the state carried and detached; Adam, clip 1."""
    from fastgrad.models import CharLSTM

    x, y = _text_batch(32, 64)
    m = CharLSTM(65, 64, 256)
    opt = fg.optim.Adam(m.parameters(), lr=6e-3)
    params = list(m.parameters())
    fx, fy = fg.tensor(x), fg.tensor(y)
    st = [None]

    def fg_step():
        loss, s = m.loss(fx, fy, st[0])
        st[0] = m.detach_state(s)
        _clip_step(fg, opt, params, loss)

    emb, lstm, head = torch.nn.Embedding(65, 64), torch.nn.LSTM(64, 256), torch.nn.Linear(256, 65)
    tparams = list(emb.parameters()) + list(lstm.parameters()) + list(head.parameters())
    topt = torch.optim.Adam(tparams, lr=6e-3)
    tx, ty = torch.from_numpy(x).t(), torch.from_numpy(y).t().reshape(-1)
    tst = [None]

    def torch_step():
        out, s = lstm(emb(tx), tst[0])
        tst[0] = tuple(t.detach() for t in s)
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, 65), ty)
        _clip_step(torch, topt, tparams, loss)

    return fg_step, torch_step


def lstm_adding(fg, torch):
    """fastgrad train lstm (adding): LSTM 2-64 over T=50, Linear 64-1 on the last state, batch 64, MSE, Adam."""
    import fastgrad.nn.functional as F
    from fastgrad.models import LSTMRegressor, adding_problem

    fg.manual_seed(0)
    x, y = adding_problem(64, 50)
    m = LSTMRegressor(2, 64)
    opt = fg.optim.Adam(m.parameters(), lr=1e-2)
    params = list(m.parameters())

    def fg_step():
        _clip_step(fg, opt, params, F.mse_loss(m(x), y))

    lstm, head = torch.nn.LSTM(2, 64, batch_first=True), torch.nn.Linear(64, 1)
    tparams = list(lstm.parameters()) + list(head.parameters())
    topt = torch.optim.Adam(tparams, lr=1e-2)
    tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())

    def torch_step():
        _, (h, _) = lstm(tx)
        _clip_step(torch, topt, tparams, torch.nn.functional.mse_loss(head(h[-1]).squeeze(1), ty))

    return fg_step, torch_step


def _torch_char_transformer(torch, V, d, nhead, layers, T, pe):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, d)
            layer = torch.nn.TransformerEncoderLayer(d, nhead, 4 * d, 0.0, activation="relu", norm_first=True)
            self.blocks = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm, self.head = torch.nn.LayerNorm(d), torch.nn.Linear(d, V)
            self.register_buffer("pe", torch.from_numpy(pe[:T]).unsqueeze(1))
            self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(T))

        def forward(self, x):  # x (T, B)
            h = self.embed(x) * math.sqrt(d) + self.pe
            return self.head(self.norm(self.blocks(h, mask=self.mask, is_causal=True)))

    return M()


def transformer_charlm(fg, torch):
    """fastgrad train transformer: 2 pre-norm layers, d 128, 4 heads, FF 512 (ReLU), context 64, batch 16,
    causal; AdamW, clip 1."""
    from fastgrad.models import CharTransformer

    x, y = _text_batch(16, 64, seed=1)
    m = CharTransformer(65, 128, 4, 2, 64, activation="relu")
    opt = fg.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
    params = list(m.parameters())
    fx, fy = fg.tensor(x), fg.tensor(y)

    def fg_step():
        _clip_step(fg, opt, params, m.loss(fx, fy)[0])

    tm = _torch_char_transformer(torch, 65, 128, 4, 2, 64, m.pos.pe.numpy())
    topt = torch.optim.AdamW(tm.parameters(), lr=1e-3, weight_decay=0.01)
    tparams = list(tm.parameters())
    tx, ty = torch.from_numpy(x).t(), torch.from_numpy(y).t().reshape(-1)

    def torch_step():
        _clip_step(torch, topt, tparams, torch.nn.functional.cross_entropy(tm(tx).reshape(-1, 65), ty))

    return fg_step, torch_step


def _s2s_batch(fg):
    from fastgrad.models import toy_translation_data
    from fastgrad.models.seq2seq import decoder_input

    src, tgt, _ = toy_translation_data(64, 10, 3, 12, "reverse", seed=0)
    return src, tgt, decoder_input(tgt)


def seq2seq_rnn(fg, torch):
    """fastgrad train seq2seq (rnn): embeddings 13x128, LSTM encoder and decoder 128, dot-product attention
    over the encoder outputs (PAD masked), tanh(W [h; context]), Linear 128-13; batch 64 of lengths 3-12."""
    from fastgrad.models import Seq2Seq

    src, tgt, tin = _s2s_batch(fg)
    m = Seq2Seq(13, "rnn", 128)
    opt = fg.optim.Adam(m.parameters(), lr=3e-3)
    params = list(m.parameters())

    def fg_step():
        _clip_step(fg, opt, params, m.loss(src, tgt))

    nn = torch.nn
    mods = nn.ModuleDict({"se": nn.Embedding(13, 128), "te": nn.Embedding(13, 128), "enc": nn.LSTM(128, 128),
                          "dec": nn.LSTM(128, 128), "comb": nn.Linear(256, 128), "head": nn.Linear(128, 13)})
    tparams = list(mods.parameters())
    topt = torch.optim.Adam(tparams, lr=3e-3)
    ts, tt, ti = (torch.from_numpy(a.numpy()) for a in (src, tgt, tin))
    keep = (ts != 0).unsqueeze(1)

    def torch_step():
        out, st = mods["enc"](mods["se"](ts.t()))
        h, _ = mods["dec"](mods["te"](ti.t()), st)
        o = out.transpose(0, 1)
        ctx = torch.nn.functional.scaled_dot_product_attention(h.transpose(0, 1), o, o, attn_mask=keep)
        logits = mods["head"](torch.tanh(mods["comb"](torch.cat([h, ctx.transpose(0, 1)], 2))))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 13), tt.t().reshape(-1), ignore_index=0)
        _clip_step(torch, topt, tparams, loss)

    return fg_step, torch_step


def seq2seq_transformer(fg, torch):
    """fastgrad train seq2seq (transformer): nn.Transformer d 64, 4 heads, 2 + 2 pre-norm layers, FF 256,
    sinusoidal positions, causal decoder, source PAD masked; batch 64 of lengths 3-12."""
    from fastgrad.models import Seq2Seq

    src, tgt, tin = _s2s_batch(fg)
    m = Seq2Seq(13, "transformer", 64, num_layers=2, max_len=13)
    opt = fg.optim.Adam(m.parameters(), lr=2e-3)
    params = list(m.parameters())

    def fg_step():
        _clip_step(fg, opt, params, m.loss(src, tgt))

    nn = torch.nn
    mods = nn.ModuleDict({"se": nn.Embedding(13, 64), "te": nn.Embedding(13, 64),
                          "tr": nn.Transformer(64, 4, 2, 2, 256, 0.0, norm_first=True), "head": nn.Linear(64, 13)})
    tparams = list(mods.parameters())
    topt = torch.optim.Adam(tparams, lr=2e-3)
    pe = torch.from_numpy(m.pos.pe.numpy())
    ts, tt, ti = (torch.from_numpy(a.numpy()) for a in (src, tgt, tin))
    pad = ts == 0
    causal = nn.Transformer.generate_square_subsequent_mask(ti.shape[1])

    def torch_step():
        s = mods["se"](ts.t()) * 8.0 + pe[:ts.shape[1]].unsqueeze(1)
        t = mods["te"](ti.t()) * 8.0 + pe[:ti.shape[1]].unsqueeze(1)
        h = mods["tr"](s, t, tgt_mask=causal, tgt_is_causal=True, src_key_padding_mask=pad,
                       memory_key_padding_mask=pad)
        loss = torch.nn.functional.cross_entropy(mods["head"](h).reshape(-1, 13), tt.t().reshape(-1), ignore_index=0)
        _clip_step(torch, topt, tparams, loss)

    return fg_step, torch_step


# name: (build, steps of the default run)
ENTRIES = {"lstm-charlm": (lstm_charlm, None), "lstm-adding": (lstm_adding, 1500),
           "transformer": (transformer_charlm, None), "seq2seq-rnn": (seq2seq_rnn, 800),
           "seq2seq-tf": (seq2seq_transformer, 800)}


def main():
    args = step_args(__doc__, steps=10)
    fg, torch = import_frameworks(args.threads)
    import warnings

    warnings.filterwarnings("ignore", message="enable_nested_tensor")  # torch's note on norm_first layers
    run_steps({None: ENTRIES}, args, fg, torch, note="; the char LMs train by time", digits=2)


if __name__ == "__main__":
    main()
