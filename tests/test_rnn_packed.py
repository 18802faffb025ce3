"""fg.nn.utils.rnn (pad_sequence, pack_padded_sequence, pad_packed_sequence,
pack_sequence, PackedSequence) and RNN / LSTM / GRU on packed input, against
torch with the same weights: values, h_n, gradients, errors."""
import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as TR

import fastgrad as fg
import fastgrad.nn.modules.rnn as rnn_mod
import fastgrad.nn.utils.rnn as FR
from helpers import FLOAT_DTYPES, TOLS, fg_dtype, to_numpy, torch_dtype


def close(a, b, dtype, what, grad=False):
    tol = TOLS[np.dtype(dtype)]
    atol, rtol = (tol[2], tol[3]) if grad else (tol[0], tol[1])
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=atol * 10, rtol=rtol * 10, err_msg=what)


@pytest.fixture(params=["fused", "composite"])
def path(request, monkeypatch):
    monkeypatch.setattr(rnn_mod, "use_fused", request.param == "fused")
    return request.param


# -- packing utilities -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted,lengths", [(True, [7, 4, 4, 1, 1]), (False, [3, 7, 1, 5, 3])])
@pytest.mark.parametrize("total_length", [None, 9])
def test_pack_then_pad_matches_torch(dtype, batch_first, enforce_sorted, lengths, total_length):
    rng = np.random.default_rng(0)
    shape = (5, 7, 3) if batch_first else (7, 5, 3)
    x = rng.standard_normal(shape).astype(dtype)
    tx, fx = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
    tp = TR.pack_padded_sequence(tx, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    fp = FR.pack_padded_sequence(fx, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    assert isinstance(fp, FR.PackedSequence) and isinstance(fp, tuple)
    close(fp.data.detach(), tp.data.detach(), dtype, "data")
    assert fp.batch_sizes.dtype is fg.int64 and fp.batch_sizes.device.type == "cpu"
    assert fp.batch_sizes.tolist() == tp.batch_sizes.tolist()
    for a, b in ((fp.sorted_indices, tp.sorted_indices), (fp.unsorted_indices, tp.unsorted_indices)):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.tolist() == b.tolist()
    # unpack in the other layout, with a padding value
    to, tl = TR.pad_packed_sequence(tp, batch_first=not batch_first, padding_value=-2.5, total_length=total_length)
    fo, fl = FR.pad_packed_sequence(fp, batch_first=not batch_first, padding_value=-2.5, total_length=total_length)
    close(fo.detach(), to.detach(), dtype, "padded")
    assert fl.dtype is fg.int64 and fl.tolist() == tl.tolist()
    g = rng.standard_normal(tuple(to.shape)).astype(dtype)
    to.backward(torch.tensor(g))
    fo.backward(fg.tensor(g))
    close(fx.grad, tx.grad, dtype, "grad", grad=True)


def test_pack_non_contiguous_input_and_tensor_lengths():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6, 3))
    tx, fx = torch.tensor(base).transpose(0, 1), fg.tensor(base).transpose(0, 1)  # (6, 4, 3) view
    lengths = torch.tensor([2, 6, 3, 3])
    tp = TR.pack_padded_sequence(tx, lengths, enforce_sorted=False)
    fp = FR.pack_padded_sequence(fx, fg.tensor(lengths.numpy()), enforce_sorted=False)
    np.testing.assert_array_equal(fp.data.numpy(), tp.data.numpy())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, padding_side):
    rng = np.random.default_rng(2)
    seqs = [rng.standard_normal((n, 2, 3)) for n in (3, 6, 1, 6)]
    tl = [torch.tensor(s, requires_grad=True) for s in seqs]
    fl = [fg.tensor(s, requires_grad=True) for s in seqs]
    to = TR.pad_sequence(tl, batch_first=batch_first, padding_value=1.5, padding_side=padding_side)
    fo = FR.pad_sequence(fl, batch_first=batch_first, padding_value=1.5, padding_side=padding_side)
    np.testing.assert_array_equal(to_numpy(fo.detach()), to.detach().numpy())
    g = rng.standard_normal(tuple(to.shape))
    to.backward(torch.tensor(g))
    fo.backward(fg.tensor(g))
    for a, b in zip(fl, tl):
        np.testing.assert_array_equal(to_numpy(a.grad), b.grad.numpy())


def test_pack_sequence_unpack_sequence_roundtrip():
    rng = np.random.default_rng(3)
    seqs = [rng.standard_normal((n, 4)) for n in (2, 5, 3)]
    tp = TR.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    fp = FR.pack_sequence([fg.tensor(s) for s in seqs], enforce_sorted=False)
    np.testing.assert_array_equal(fp.data.numpy(), tp.data.numpy())
    assert fp.sorted_indices.tolist() == tp.sorted_indices.tolist()
    for a, s in zip(FR.unpack_sequence(fp), seqs):
        np.testing.assert_array_equal(a.numpy(), s)
    padded = FR.pad_sequence([fg.tensor(s) for s in seqs], batch_first=True)
    for a, s in zip(FR.unpad_sequence(padded, [2, 5, 3], batch_first=True), seqs):
        np.testing.assert_array_equal(a.numpy(), s)
    sorted_seqs = sorted(seqs, key=len, reverse=True)
    tp = TR.pack_sequence([torch.tensor(s) for s in sorted_seqs])
    fp = FR.pack_sequence([fg.tensor(s) for s in sorted_seqs])
    assert fp.sorted_indices is None and fp.unsorted_indices is None
    np.testing.assert_array_equal(fp.data.numpy(), tp.data.numpy())


def test_packed_sequence_to_and_fields():
    fp = FR.pack_sequence([fg.ones(3, 2), fg.ones(1, 2)], enforce_sorted=False)
    data, batch_sizes, sorted_indices, unsorted_indices = fp  # a 4-field named tuple, as torch's
    assert fp.to(fg.float32) is fp
    d = fp.to(fg.float64)
    assert d.data.dtype is fg.float64 and d.batch_sizes is fp.batch_sizes
    assert d.sorted_indices.tolist() == [0, 1] and not d.is_cuda
    assert fp.double().data.dtype is fg.float64
    p = torch.tensor([2, 0, 3, 1])
    assert FR.invert_permutation(fg.tensor(p.numpy())).tolist() == TR.invert_permutation(p).tolist()
    assert FR.PackedSequence(data, batch_sizes, sorted_indices).unsorted_indices.tolist() == unsorted_indices.tolist()


def test_packing_errors():
    x = fg.zeros(4, 3, 2)
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        FR.pack_padded_sequence(x, [2, 3, 1])
    with pytest.raises(ValueError, match="exceeds.*T=4"):
        FR.pack_padded_sequence(x, [5, 2, 1])
    with pytest.raises(RuntimeError, match="batch_size=3"):
        FR.pack_padded_sequence(x, [3, 2])
    with pytest.raises(RuntimeError, match="greater than 0"):
        FR.pack_padded_sequence(x, [3, 2, 0])
    with pytest.raises(RuntimeError, match="1D CPU int64"):
        FR.pack_padded_sequence(x, fg.tensor([[3, 2, 1]]))
    with pytest.raises(RuntimeError, match="1D CPU int64"):
        FR.pack_padded_sequence(x, fg.tensor([3.0, 2.0, 1.0]))
    with pytest.raises(TypeError, match="pack_padded_sequence"):
        FR.pack_padded_sequence(np.zeros((4, 3, 2)), [3, 2, 1])
    p = FR.pack_padded_sequence(x, [3, 2, 1])
    with pytest.raises(ValueError, match="total_length=2.*3"):
        FR.pad_packed_sequence(p, total_length=2)
    with pytest.raises(TypeError, match="PackedSequence"):
        FR.pad_packed_sequence(x)
    with pytest.raises(RuntimeError, match="empty list"):
        FR.pad_sequence([])
    with pytest.raises(RuntimeError, match=r"\[2, 3\].*\[3, 2\]"):
        FR.pad_sequence([fg.zeros(2, 3), fg.zeros(3, 2)])
    with pytest.raises(ValueError, match="padding_side"):
        FR.pad_sequence([fg.zeros(2, 3)], padding_side="middle")
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        FR.pack_sequence([fg.zeros(1, 2), fg.zeros(3, 2)])


# -- recurrent layers on packed input --------------------------------------------------------------


def make_pair(cls, dtype, **kw):
    tm = getattr(torch.nn, cls)(3, 5, **kw).to(torch_dtype(dtype))
    m = getattr(fg.nn, cls)(3, 5, dtype=fg_dtype(dtype), **kw)
    m.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, m


CONFIGS = [
    ("LSTM", {}),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=2, bidirectional=True)),
    ("GRU", dict(num_layers=2)),
    ("GRU", dict(bidirectional=True, bias=False)),
    ("RNN", dict(nonlinearity="relu", bidirectional=True)),
    ("RNN", dict(batch_first=True)),  # batch_first does not apply to packed data
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("cls,kw", CONFIGS)
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("with_hx", [False, True])
def test_rnn_on_packed_input_matches_torch(cls, kw, enforce_sorted, with_hx, dtype, path):
    rng = np.random.default_rng(4)
    tm, m = make_pair(cls, dtype, **kw)
    T, B = 6, 5
    lengths = [6, 5, 5, 2, 1] if enforce_sorted else [2, 6, 1, 5, 5]
    x = rng.standard_normal((T, B, 3)).astype(dtype)
    tx, fx = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
    tp = TR.pack_padded_sequence(tx, lengths, enforce_sorted=enforce_sorted)
    fp = FR.pack_padded_sequence(fx, lengths, enforce_sorted=enforce_sorted)
    D, L = (2 if kw.get("bidirectional") else 1), kw.get("num_layers", 1)
    t_hx = f_hx = None
    t_leaves, f_leaves = [], []
    if with_hx:
        sizes = [kw.get("proj_size") or 5] + ([5] if cls == "LSTM" else [])
        for n in sizes:
            s = rng.standard_normal((L * D, B, n)).astype(dtype)
            t_leaves.append(torch.tensor(s, requires_grad=True))
            f_leaves.append(fg.tensor(s, requires_grad=True))
        t_hx, f_hx = (tuple(t_leaves), tuple(f_leaves)) if cls == "LSTM" else (t_leaves[0], f_leaves[0])
    to, ts = tm(tp, t_hx)
    fo, fs = m(fp, f_hx)
    assert isinstance(fo, FR.PackedSequence)
    assert fo.batch_sizes.tolist() == to.batch_sizes.tolist()
    assert (fo.sorted_indices is None) == (to.sorted_indices is None)
    ts, fs = (list(ts), list(fs)) if cls == "LSTM" else ([ts], [fs])
    close(fo.data.detach(), to.data.detach(), dtype, "output")
    for a, b in zip(fs, ts):
        close(a.detach(), b.detach(), dtype, "final state")  # each sequence's last valid step, caller's order
    # a loss on the output data and the final states
    g = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in [to.data] + ts]
    sum((t * torch.tensor(c)).sum() for t, c in zip([to.data] + ts, g)).backward()
    sum((t * fg.tensor(c)).sum() for t, c in zip([fo.data] + fs, g)).backward()
    close(fx.grad, tx.grad, dtype, "input grad", grad=True)
    for a, b in zip(f_leaves, t_leaves):
        close(a.grad, b.grad, dtype, "hx grad", grad=True)
    for name, p in tm.named_parameters():
        close(getattr(m, name).grad, p.grad, dtype, name, grad=True)


def test_packed_output_padded_back_is_zero_past_each_length():
    tm, m = make_pair("GRU", np.float64, bidirectional=True)
    x = fg.randn(5, 3, 3, dtype=fg.float64)
    out, _ = m(FR.pack_padded_sequence(x, [5, 3, 2]))
    padded, lengths = FR.pad_packed_sequence(out)
    assert lengths.tolist() == [5, 3, 2] and padded.shape == (5, 3, 10)
    p = padded.detach().numpy()
    assert not p[3:, 1].any() and not p[2:, 2].any() and p[:2, 2].all()


def test_packed_double_backward_matches_torch():
    """A gradient penalty through a packed LSTM (create_graph)."""
    rng = np.random.default_rng(5)
    tm, m = make_pair("LSTM", np.float64)
    x = rng.standard_normal((4, 3, 3))
    res = []
    for lib, mod, utils in ((torch, tm, TR), (fg, m, FR)):
        xa = lib.tensor(x, requires_grad=True)
        out, _ = mod(utils.pack_padded_sequence(xa, [2, 4, 3], enforce_sorted=False))
        (gx,) = lib.autograd.grad(out.data.sum(), [xa], create_graph=True)
        (gx * gx).sum().backward()
        res.append([to_numpy(gx.detach())] + [to_numpy(p.grad) for _, p in sorted(mod.named_parameters())])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=1e-8)


def test_rnn_packed_errors():
    m = fg.nn.LSTM(3, 5)
    p = FR.pack_sequence([fg.zeros(3, 4), fg.zeros(2, 4)])
    with pytest.raises(RuntimeError, match="input_size.*Expected 3, got 4"):
        m(p)
    p = FR.pack_sequence([fg.zeros(3, 3), fg.zeros(2, 3)])
    with pytest.raises(RuntimeError, match=r"\(1, 2, 5\).*\[1, 3, 5\]"):
        m(p, (fg.zeros(1, 3, 5), fg.zeros(1, 3, 5)))
    with pytest.raises(TypeError, match="float64.*float32"):
        m(FR.pack_sequence([fg.zeros(3, 3, dtype=fg.float64)]))
    with pytest.raises(ValueError, match="batch_sizes sum"):
        m(FR.PackedSequence(fg.zeros(4, 3), fg.tensor([2, 1])))
    with pytest.raises(ValueError, match=r"non-increasing.*\[1, 2\]"):
        m(FR.PackedSequence(fg.zeros(3, 3), fg.tensor([1, 2])))


def test_typical_user_code_matches_torch():
    """The usual torch idiom: pad token ids, embed, pack with lengths.cpu()
    (batch_first, unsorted), bidirectional LSTM, unpack, classify from the
    last layer's two final states; loss, gradients of every parameter."""
    rng = np.random.default_rng(6)
    lens = [5, 2, 7, 3]
    seqs = [rng.integers(1, 11, size=n) for n in lens]
    res = []
    torch.manual_seed(0)
    t_mods = [torch.nn.Embedding(11, 4, padding_idx=0).double(),
              torch.nn.LSTM(4, 6, batch_first=True, bidirectional=True, num_layers=2).double(),
              torch.nn.Linear(12, 3).double()]
    f_mods = [fg.nn.Embedding(11, 4, padding_idx=0, dtype=fg.float64),
              fg.nn.LSTM(4, 6, batch_first=True, bidirectional=True, num_layers=2, dtype=fg.float64),
              fg.nn.Linear(12, 3, dtype=fg.float64)]
    for tmod, fmod in zip(t_mods, f_mods):
        fmod.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tmod.state_dict().items()})
    for lib, (emb, lstm, head), utils in ((torch, t_mods, TR), (fg, f_mods, FR)):
        x = utils.pad_sequence([lib.tensor(s) for s in seqs], batch_first=True)
        lengths = lib.tensor(lens)
        packed = utils.pack_padded_sequence(emb(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = lstm(packed)
        padded, out_lengths = utils.pad_packed_sequence(out, batch_first=True)
        logits = head(lib.cat([h[-2], h[-1]], 1))
        loss = lib.nn.functional.cross_entropy(logits, lib.tensor([0, 2, 1, 2])) + padded.square().mean()
        loss.backward()
        res.append([to_numpy(loss.detach()), to_numpy(padded.detach()), to_numpy(out_lengths)] +
                   [to_numpy(p.grad) for m in (emb, lstm, head) for _, p in m.named_parameters()])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=1e-8)
