"""Model zoo, part C: sequence models. `fastgrad train lstm | transformer | seq2seq` each train a
reduced version and must beat a baseline computed from the data by a wide margin (char LM:
validation loss far below the unigram entropy; adding problem: MSE far below predicting the mean;
seq2seq: held-out greedy-decoded accuracy far above chance). The building blocks (batching,
sampling, causality, state carrying, evaluation) are checked against direct computations, and the
char LSTM against PyTorch with the same weights."""
import json
import math

import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.cli
import fastgrad.nn.functional as F
from fastgrad.models import (ADDING_BASELINE_MSE, CharLSTM, CharTransformer, CharVocab, LSTMRegressor, Seq2Seq,
                             StreamBatcher, adding_problem, random_windows, sample_next, sequence_accuracy,
                             split_text, toy_translation_data, unigram_entropy)
from fastgrad.models.seq2seq import BOS, EOS, PAD, decoder_input

LM_DATA = ["--train-chars", "100000", "--val-chars", "4000", "--eval-every", "1000", "--sample-chars", "40"]


def train(name, tmp_path, *options):
    assert fastgrad.cli.main(["train", name, "--out", str(tmp_path), *options]) == 0
    return json.loads((tmp_path / f"{name}_summary.json").read_text())


# -- the examples learn ------------------------------------------------------------------------------


def test_lstm_charlm_learns(tmp_path):
    # --seconds is a cap only: the run stops after 60 steps (~2 s)
    s = train("lstm", tmp_path, "--task", "charlm", "--seconds", "120", "--steps", "60", "--hidden", "128",
              "--bptt", "32", "--lr", "1e-2", *LM_DATA)["charlm"]
    # the unigram entropy (~3.3 nats) is the best a model without context can do; 60 steps reach ~2.4
    assert s["val_loss_nats"] < s["unigram_entropy_nats"] - 0.5, s
    assert s["val_bits_per_char"] == pytest.approx(s["val_loss_nats"] / math.log(2))
    assert s["steps"] == 60 and s["bptt"] == 32
    sample = (tmp_path / "lstm_sample.txt").read_text()
    assert len(sample) == 41 and set(sample) <= set(fg.datasets.tiny_shakespeare())
    rows = (tmp_path / "lstm_charlm_curve.csv").read_text().splitlines()
    assert rows[0] == "point,seconds,step,train_loss,val_loss" and len(rows) == 3  # start and end
    assert (tmp_path / "lstm_charlm_loss.png").exists()


def test_lstm_adding_learns(tmp_path):
    s = train("lstm", tmp_path, "--task", "adding", "--adding-length", "12", "--adding-steps", "500",
              "--adding-hidden", "32")["adding"]
    # predicting the mean sum scores Var(u1 + u2) = 1/6; seeds 0-5 reach 0.0035-0.0073
    assert s["baseline_mse"] == pytest.approx(ADDING_BASELINE_MSE, abs=0.02)
    assert s["test_mse"] < 0.03 < s["baseline_mse"] / 5, s
    assert (tmp_path / "lstm_adding_mse.png").exists()


def test_transformer_learns_and_is_compared_with_the_lstm(tmp_path):
    s = train("transformer", tmp_path, "--seconds", "120", "--steps", "40", "--d-model", "64", "--context", "32",
              "--batch-size", "32", "--lr", "1e-2", "--lstm-hidden", "128", *LM_DATA)
    t, lstm = s["transformer"], s["lstm"]
    # 40 steps each: both reach ~2.65 (seeds 0-2; unigram ~3.3)
    assert t["val_loss_nats"] < t["unigram_entropy_nats"] - 0.4, t
    assert lstm["val_loss_nats"] < lstm["unigram_entropy_nats"] - 0.4, lstm
    assert t["steps"] == lstm["steps"] == 40
    assert s["winner"] in ("Transformer", "LSTM")
    header = (tmp_path / "transformer_vs_lstm.csv").read_text().splitlines()[0].split(",")
    assert "transformer_val_loss" in header and "lstm_val_loss" in header and "lstm_seconds" in header
    assert (tmp_path / "transformer_vs_lstm.png").exists()
    assert len((tmp_path / "transformer_sample.txt").read_text()) == 41


def test_seq2seq_reverses(tmp_path):
    s = train("seq2seq", tmp_path, "--arch", "both", "--steps", "80", "--max-len", "5", "--symbols", "8",
              "--train-size", "3000", "--test-size", "200", "--lr", "5e-3", "--evals", "1")
    # chance per token is 1/9, an exactly right sequence of 4-6 tokens by chance < 1e-3; 80 steps
    # reach ~0.97 (LSTM) and ~0.85 (Transformer) exact
    for arch in ("rnn", "transformer"):
        r = s[arch]
        assert r["token_accuracy"] > 0.8 > 7 * s["chance_token_accuracy"], (arch, r)
        assert r["exact_match"] > 0.5, (arch, r)
    assert (tmp_path / "seq2seq_accuracy.png").exists()
    header = (tmp_path / "seq2seq_accuracy.csv").read_text().splitlines()[0]
    assert header == "eval,rnn_step,rnn_exact,rnn_token,transformer_step,transformer_exact,transformer_token"


def test_train_rejects_bad_options(tmp_path):
    assert fastgrad.cli.main(["train", "lstm", "--out", str(tmp_path), "--bptt", "0"]) == 2
    assert fastgrad.cli.main(["train", "transformer", "--out", str(tmp_path), "--d-model", "30",
                              "--heads", "4"]) == 2
    assert fastgrad.cli.main(["train", "seq2seq", "--out", str(tmp_path), "--min-len", "5", "--max-len", "3"]) == 2


# -- data helpers ------------------------------------------------------------------------------------


def test_vocab_and_split():
    text = fg.datasets.tiny_shakespeare()
    v = CharVocab(text)
    assert len(v) == 65 and v.chars == sorted(set(text))
    ids = v.encode("First Citizen:")
    assert ids.dtype is fg.int64 and v.decode(ids) == "First Citizen:"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("caf\u00e9")
    train, val = split_text(text, 1000)
    assert train == text[:1000] and val == text[int(len(text) * 0.9):]
    with pytest.raises(ValueError, match="val_fraction"):
        split_text(text, val_fraction=1.5)
    counts = np.bincount(ids.numpy(), minlength=65)
    p = counts[counts > 0] / counts.sum()
    assert unigram_entropy(ids, 65) == pytest.approx(-(p * np.log(p)).sum())


def test_stream_batcher_carries_streams():
    data = fg.arange(1000)
    b = StreamBatcher(data, batch_size=4, bptt=7, shuffle_offset=False)
    chunks = list(b)
    assert len(chunks) == len(b) and chunks[0][2] and not any(c[2] for c in chunks[1:])
    for x, y, _ in chunks:
        assert x.shape == (4, 7) and (y.numpy() == x.numpy() + 1).all()  # y is x shifted by one
    # row r of chunk k + 1 continues row r of chunk k, and rows are contiguous stretches of the text
    for (x0, _, _), (x1, _, _) in zip(chunks, chunks[1:]):
        assert (x1.numpy()[:, 0] == x0.numpy()[:, -1] + 1).all()
    assert (np.diff(chunks[0][0].numpy()[:, 0]) == 1000 // 4).all()
    with pytest.raises(ValueError, match="StreamBatcher"):
        StreamBatcher(fg.arange(20), batch_size=4, bptt=7)
    fg.manual_seed(0)
    offsets = {int(next(iter(StreamBatcher(data, 4, 7)))[0][0, 0].item()) for _ in range(20)}
    assert len(offsets) > 1 and max(offsets) < 7  # each pass starts at a random offset < bptt


def test_random_windows():
    fg.manual_seed(0)
    data = fg.arange(500) * 3
    x, y = random_windows(data, 8, 10)
    assert x.shape == y.shape == (8, 10)
    xs, ys = x.numpy(), y.numpy()
    assert (ys[:, :-1] == xs[:, 1:]).all() and (ys[:, -1] == xs[:, -1] + 3).all()
    assert (np.diff(xs, axis=1) == 3).all()


def test_sample_next_follows_the_distribution():
    fg.manual_seed(0)
    logits = fg.tensor([[2.0, 0.0, -1.0, 1.0]]).repeat(20000, 1)
    for temp in (1.0, 0.5):
        ids = sample_next(logits, temp).numpy()
        p = torch.softmax(torch.tensor([2.0, 0.0, -1.0, 1.0]) / temp, 0).numpy()
        freq = np.bincount(ids, minlength=4) / len(ids)
        assert np.abs(freq - p).max() < 0.015, (freq, p)
    assert (sample_next(fg.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]]), 0).numpy() == [1, 0]).all()
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, -1.0)


# -- the models -------------------------------------------------------------------------------------


def test_char_lstm_matches_torch():
    fg.manual_seed(0)
    m = CharLSTM(11, embed=5, hidden=7, num_layers=2)
    tm = torch.nn.ModuleDict({"embed": torch.nn.Embedding(11, 5), "lstm": torch.nn.LSTM(5, 7, num_layers=2),
                              "head": torch.nn.Linear(7, 11)})
    tm.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()})
    x = fg.randint(0, 11, (3, 9))
    logits, (h, c) = m(x)
    logits, c = logits.detach(), c.detach()
    tx = torch.from_numpy(x.numpy()).t()
    tout, (th, tc) = tm["lstm"](tm["embed"](tx))
    ref = tm["head"](tout).transpose(0, 1)
    np.testing.assert_allclose(logits.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c.numpy(), tc.detach().numpy(), rtol=1e-5, atol=1e-5)
    # the loss is the mean cross-entropy of the next character, in nats
    y = fg.randint(0, 11, (3, 9))
    loss, _ = m.loss(x, y)
    ref_loss = torch.nn.functional.cross_entropy(ref.reshape(-1, 11), torch.from_numpy(y.numpy()).reshape(-1))
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)


def test_char_lstm_state_carries_across_chunks():
    fg.manual_seed(1)
    m = CharLSTM(13, embed=4, hidden=6)
    x = fg.randint(0, 13, (2, 12))
    whole, _ = m(x)
    a, state = m(x[:, :5])
    b, _ = m(x[:, 5:], CharLSTM.detach_state(state))
    whole, a, b = whole.detach(), a.detach(), b.detach()
    np.testing.assert_allclose(fg.cat([a, b], dim=1).numpy(), whole.numpy(), rtol=1e-5, atol=1e-6)
    # evaluate() carries the state through each stream: one stream, one chunk or many, same loss
    data = fg.randint(0, 13, (200,))
    direct = m.loss(data[:-1].view(1, -1), data[1:].view(1, -1))[0].item()
    assert m.evaluate(data, batch_size=1, bptt=17) == pytest.approx(direct, rel=1e-5)


def test_char_transformer_is_causal_and_evaluates_every_target_once():
    fg.manual_seed(2)
    m = CharTransformer(9, d_model=16, nhead=2, num_layers=2, context=12)
    x = fg.randint(0, 9, (2, 12))
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 1) % 9
    with fg.no_grad():
        a, b = m(x), m(x2)
    np.testing.assert_allclose(a[:, :7].numpy(), b[:, :7].numpy(), rtol=1e-5, atol=1e-5)  # the past is blind
    assert not np.allclose(a[:, 7:].numpy(), b[:, 7:].numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="context"):
        m(fg.randint(0, 9, (1, 13)))
    # stride = context: disjoint windows, each scoring all its positions (the last one overlaps)
    data = fg.randint(0, 9, (61,))
    n = 60
    total = 0.0
    for s in range(0, n - 12 + 1, 12):
        total += m.loss(data[s:s + 12].view(1, -1), data[s + 1:s + 13].view(1, -1))[0].item() * 12
    assert m.evaluate(data, batch_size=3, stride=12) == pytest.approx(total / n, rel=1e-5)
    # overlapping windows still score each of the n targets exactly once
    last = m.loss(data[n - 12:n].view(1, -1), data[n - 11:].view(1, -1))
    assert math.isfinite(m.evaluate(data, batch_size=2, stride=5)) and math.isfinite(last[0].item())


def test_generate_and_sample():
    fg.manual_seed(3)
    v = CharVocab("abcdefgh \n")
    for m in (CharLSTM(len(v), 4, 8), CharTransformer(len(v), 8, 2, 1, context=6)):
        s = m.sample(v, "ab", n=15, temperature=0.7)
        assert s.startswith("ab") and len(s) == 17 and set(s) <= set(v.chars)
        assert m.training  # generation leaves the training mode as it was
        g = m.generate(v.encode("a"), 0)
        assert g.shape == (0,)
        with pytest.raises(ValueError, match="prompt"):
            m.sample(v, "", 3)


def test_adding_problem():
    fg.manual_seed(4)
    x, y = adding_problem(500, 16)
    assert x.shape == (500, 16, 2) and y.shape == (500,)
    v, mk = x[..., 0].numpy(), x[..., 1].numpy()
    assert (mk.sum(1) == 2).all() and (mk[:, :8].sum(1) == 1).all()  # one marker in each half
    np.testing.assert_allclose(y.numpy(), (v * mk).sum(1), rtol=1e-6)
    assert 0 <= v.min() and v.max() < 1
    assert F.mse_loss(fg.ones_like(y), y).item() == pytest.approx(ADDING_BASELINE_MSE, abs=0.03)
    with fg.no_grad():
        out = LSTMRegressor(2, 5)(x[:7])
    assert out.shape == (7,)
    with pytest.raises(ValueError, match="adding_problem"):
        adding_problem(4, 1)
    with pytest.raises(ValueError, match="LSTMRegressor"):
        LSTMRegressor(2, 5)(x[0])


def test_toy_translation_data():
    src, tgt, seen = toy_translation_data(300, n_symbols=5, min_len=2, max_len=6, task="reverse", seed=0)
    test_src, test_tgt, _ = toy_translation_data(100, 5, 2, 6, "sort", seed=1, exclude=seen)
    assert src.shape == (300, 6) and tgt.shape == (300, 7)
    for s, t in zip(src.tolist(), tgt.tolist()):
        body = [a for a in s if a != PAD]
        assert 2 <= len(body) <= 6 and min(body) >= 3 and max(body) < 8
        assert t[:len(body)] == body[::-1] and t[len(body)] == EOS and set(t[len(body) + 1:]) <= {PAD}
    for s, t in zip(test_src.tolist(), test_tgt.tolist()):
        body = tuple(a for a in s if a != PAD)
        assert body not in seen and t[:len(body)] == sorted(body)  # held out, and sorted
    assert len({tuple(s) for s in src.tolist()}) == 300  # distinct
    d = decoder_input(tgt)
    assert (d[:, 0].numpy() == BOS).all() and (d[:, 1:].numpy() == tgt[:, :-1].numpy()).all()
    with pytest.raises(ValueError, match="task"):
        toy_translation_data(10, task="shuffle")
    with pytest.raises(ValueError, match="distinct"):
        toy_translation_data(100, n_symbols=2, min_len=1, max_len=2)


def test_sequence_accuracy():
    tgt = fg.tensor([[5, 4, EOS, PAD], [3, EOS, PAD, PAD], [6, 6, 6, EOS]])
    pred = fg.tensor([[5, 4, EOS], [3, 3, PAD], [6, 7, 6]])  # shorter than tgt: padded
    exact, token = sequence_accuracy(pred, tgt)
    assert exact == pytest.approx(1 / 3)
    assert token == pytest.approx((3 + 1 + 2) / 9)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_seq2seq_greedy_decoding_agrees_with_teacher_forcing(arch):
    fg.manual_seed(5)
    m = Seq2Seq(9, arch, d_model=16, nhead=2, max_len=8)
    src = fg.tensor([[3, 4, 5, PAD, PAD], [8, 7, 6, 5, 4]])
    pred = m.greedy_decode(src, 6)
    assert pred.shape == (2, 6) and m.training
    # feeding the greedy output back with teacher forcing gives the same argmax at every step
    # before the first EOS (after it the decoder stopped)
    m.eval()
    with fg.no_grad():
        tf = m(src, decoder_input(pred)).argmax(dim=-1).numpy()
    p = pred.numpy()
    for r in range(2):
        end = list(p[r]).index(EOS) + 1 if EOS in p[r] else 6
        assert (tf[r, :end] == p[r, :end]).all()
        assert (p[r, end:] == PAD).all()
    if arch == "transformer":
        # PAD in the source is not attended: trailing padding changes nothing
        with fg.no_grad():
            short = m(src[:1, :3], decoder_input(pred[:1])).numpy()
            padded = m(src[:1], decoder_input(pred[:1])).numpy()
        np.testing.assert_allclose(padded, short, rtol=1e-5, atol=1e-5)
    m.train()
    loss = m.loss(src, fg.tensor([[5, 4, 3, EOS, PAD, PAD], [4, 5, 6, 7, 8, EOS]]))
    assert math.isfinite(loss.item())
    with pytest.raises(ValueError, match="arch"):
        Seq2Seq(9, "cnn")
    with pytest.raises(ValueError, match="src"):
        m.encode(fg.tensor([3, 4]))
