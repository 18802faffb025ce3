"""RNN, LSTM, GRU and their cells against torch.nn (CPU): outputs, final
states and the gradients of the input, the initial states and every
parameter, with weights copied across through state_dict (both ways); both
the native whole-sequence path and the composite one (fastgrad ops); errors;
truncated BPTT; higher-order and forward-mode gradients; a tiny learning run."""
import time

import numpy as np
import pytest
import torch

import fastgrad as fg
from fastgrad.nn.modules import rnn as rnn_mod

from helpers import FG_ERRORS

TOL = {np.float32: dict(atol=2e-5, rtol=1e-4), np.float64: dict(atol=1e-10, rtol=1e-8)}
FG_DT = {np.float32: fg.float32, np.float64: fg.float64}
T_DT = {np.float32: torch.float32, np.float64: torch.float64}
MODES = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


def make_pair(mode, *args, dtype=np.float32, seed=0, **kw):
    """A torch module and a fastgrad one holding the same (torch-initialised) weights."""
    torch.manual_seed(seed)
    if mode.startswith("rnn"):
        kw = dict(kw, nonlinearity=mode[4:])
    name = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}[mode]
    if "cell" in kw:
        kw.pop("cell")
        name += "Cell"
    tm = getattr(torch.nn, name)(*args, **kw).to(T_DT[dtype])
    m = getattr(fg.nn, name)(*args, dtype=FG_DT[dtype], **kw)
    m.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, m


def close(a, b, dtype, what):
    a = a.detach().numpy() if isinstance(a, fg.Tensor) else a
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs torch {b.shape}"
    np.testing.assert_allclose(a, b, err_msg=what, **TOL[dtype])


def flat_states(st):
    return list(st) if isinstance(st, tuple) else [st]


def run_both(tm, m, x, hx, dtype, seed=1):
    """Forward both, backward a random cotangent of output and final states,
    compare everything. x, hx: NumPy arrays (hx a tuple for LSTM or None)."""
    rng = np.random.default_rng(seed)
    tx = torch.tensor(x, requires_grad=True)
    fx = fg.tensor(x, requires_grad=True)
    if hx is None:
        th = fh = None
    else:
        hs = hx if isinstance(hx, tuple) else (hx,)
        th = [torch.tensor(h, requires_grad=True) for h in hs]
        fh = [fg.tensor(h, requires_grad=True) for h in hs]
    targs = (tx,) if th is None else (tx, tuple(th) if isinstance(hx, tuple) else th[0])
    fargs = (fx,) if fh is None else (fx, tuple(fh) if isinstance(hx, tuple) else fh[0])
    tout = tm(*targs)
    fout = m(*fargs)
    touts = [tout] if isinstance(tout, torch.Tensor) else [tout[0]] + flat_states(tout[1])
    fouts = [fout] if isinstance(fout, fg.Tensor) else [fout[0]] + flat_states(fout[1])
    assert len(touts) == len(fouts)
    for i, (a, b) in enumerate(zip(fouts, touts)):
        close(a, b, dtype, f"output {i}")
    cots = [rng.standard_normal(t.shape).astype(dtype) for t in touts]
    torch.autograd.backward(touts, [torch.tensor(c) for c in cots])
    fg.autograd.backward(fouts, [fg.tensor(c) for c in cots])
    close(fx.grad, tx.grad, dtype, "grad input")
    for i, (a, b) in enumerate(zip(fh or [], th or [])):
        close(a.grad, b.grad, dtype, f"grad hx[{i}]")
    tp = dict(tm.named_parameters())
    fp = dict(m.named_parameters())
    assert list(tp) == list(fp)
    for k in tp:
        close(fp[k].grad, tp[k].grad, dtype, f"grad {k}")
    return fouts


@pytest.fixture(params=["fused", "composite"])
def path(request, monkeypatch):
    monkeypatch.setattr(rnn_mod, "use_fused", request.param == "fused")
    return request.param


# -- parity with torch -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_matches_torch(mode, num_layers, bidirectional, batch_first, dtype, path):
    if path == "composite" and dtype == np.float32:
        pytest.skip("the composite path is checked in float64 (its float32 ops are tested on their own)")
    T, B, I, H = 5, 3, 4, 6
    tm, m = make_pair(mode, I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                      dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    D = 2 if bidirectional else 1
    h0 = rng.standard_normal((num_layers * D, B, H)).astype(dtype)
    hx = (h0, rng.standard_normal(h0.shape).astype(dtype)) if mode == "lstm" else h0
    run_both(tm, m, x, hx, dtype)


@pytest.mark.parametrize("mode", MODES)
def test_no_bias_default_state_seq1(mode, path):
    tm, m = make_pair(mode, 3, 5, bias=False, num_layers=2, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((1, 4, 3))
    run_both(tm, m, x, None, np.float64)
    assert "bias_ih_l0" not in dict(m.named_parameters())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_hx", [False, True])
def test_unbatched(mode, with_hx, path):
    tm, m = make_pair(mode, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3))
    hx = None
    if with_hx:
        h0 = rng.standard_normal((4, 4))
        hx = (h0, rng.standard_normal((4, 4))) if mode == "lstm" else h0
    outs = run_both(tm, m, x, hx, np.float64)
    assert outs[0].shape == (6, 8) and outs[1].shape == (4, 4)


@pytest.mark.parametrize("mode", MODES)
def test_odd_sizes_noncontiguous_input(mode, path):
    """Odd sizes, a transposed (non-contiguous) input, batch_first."""
    tm, m = make_pair(mode, 7, 13, batch_first=True, dtype=np.float32)
    base = np.random.default_rng(4).standard_normal((7, 9, 5)).astype(np.float32)  # (I, T, B)
    tx = torch.tensor(base, requires_grad=True)
    fx = fg.tensor(base, requires_grad=True)
    to = tm(tx.permute(2, 1, 0))[0]
    fo = m(fx.permute(2, 1, 0))[0]
    close(fo, to, np.float32, "output")
    to.square().sum().backward()
    fo.square().sum().backward()
    close(fx.grad, tx.grad, np.float32, "grad input")
    close(m.weight_hh_l0.grad, tm.weight_hh_l0.grad, np.float32, "grad weight_hh_l0")


def test_fused_and_composite_agree():
    """The two paths compute the same numbers (float64), not only each close to torch."""
    m = fg.nn.LSTM(4, 5, num_layers=2, bidirectional=True, dtype=fg.float64)
    x = fg.randn(6, 3, 4, dtype=fg.float64)
    outs = []
    for fused in (True, False):
        rnn_mod.use_fused = fused
        try:
            o, (h, c) = m(x)
        finally:
            rnn_mod.use_fused = True
        outs.append([o.detach().numpy(), h.detach().numpy(), c.detach().numpy()])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, atol=1e-13)


@pytest.mark.skipif(not fg.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_cuda_matches_torch(name):
    """On a GPU the layers run the composite recurrence (fastgrad ops on CUDA)."""
    cell = name.endswith("Cell")
    kw = {} if cell else dict(num_layers=2, bidirectional=True, batch_first=True)
    m = getattr(fg.nn, name)(5, 7, dtype=fg.float64, **kw)
    tm = getattr(torch.nn, name)(5, 7, **kw).double()
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()})
    m.to("cuda")
    x = np.random.default_rng(11).standard_normal((3, 5) if cell else (3, 4, 5))
    fx, tx = fg.tensor(x, device="cuda", requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, to = m(fx), tm(tx)
    fo, to = (fo[0], to[0]) if isinstance(fo, tuple) else (fo, to)
    assert fo.device.type == "cuda"
    fo.square().sum().backward()
    to.square().sum().backward()
    close(fo.cpu(), to, np.float64, "output")
    close(fx.grad.cpu(), tx.grad, np.float64, "grad input")
    for (k, p), tp in zip(m.named_parameters(), tm.parameters()):
        close(p.grad.cpu(), tp.grad, np.float64, f"grad {k}")


# -- cells ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(mode, dtype, batched, bias, path):
    tm, m = make_pair(mode, 5, 7, cell=True, bias=bias, dtype=dtype)
    rng = np.random.default_rng(5)
    shape = (3, 5) if batched else (5,)
    hshape = (3, 7) if batched else (7,)
    x = rng.standard_normal(shape).astype(dtype)
    h = rng.standard_normal(hshape).astype(dtype)
    hx = (h, rng.standard_normal(hshape).astype(dtype)) if mode == "lstm" else h
    run_both(tm, m, x, hx, dtype)
    run_both(tm, m, x, None, dtype)


def test_cells_step_like_layer():
    """Stepping an LSTMCell with the layer's weights reproduces the LSTM layer."""
    m = fg.nn.LSTM(3, 4, dtype=fg.float64)
    cell = fg.nn.LSTMCell(3, 4, dtype=fg.float64)
    cell.load_state_dict({k[:-3]: v for k, v in m.state_dict().items()})
    x = fg.randn(5, 2, 3, dtype=fg.float64)
    out, (h, c) = m(x)
    hc = None
    for t in range(5):
        hc = cell(x[t], hc)
        np.testing.assert_allclose(hc[0].detach().numpy(), out[t].detach().numpy(), atol=1e-13)
    np.testing.assert_allclose(hc[1].detach().numpy(), c[0].detach().numpy(), atol=1e-13)


# -- state_dict, names, init ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_both_ways_and_names(mode):
    kw = dict(num_layers=2, bidirectional=True)
    if mode.startswith("rnn"):
        kw["nonlinearity"] = mode[4:]
    cls = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}[mode]
    m = getattr(fg.nn, cls)(3, 5, **kw)
    tm = getattr(torch.nn, cls)(3, 5, **kw)
    assert [(k, tuple(p.shape)) for k, p in m.named_parameters()] == \
        [(k, tuple(p.shape)) for k, p in tm.named_parameters()]
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()}, strict=True)
    x = np.random.default_rng(6).standard_normal((4, 2, 3)).astype(np.float32)
    close(m(fg.tensor(x))[0], tm(torch.tensor(x))[0], np.float32, "output after fg -> torch load")


def test_init_matches_torch_distribution():
    fg.manual_seed(0)
    m = fg.nn.LSTM(50, 64, num_layers=2)
    k = 1 / np.sqrt(64)
    vals = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert vals.min() >= -k and vals.max() <= k
    assert abs(vals.std() - k / np.sqrt(3)) < 0.02 * k
    assert abs(vals.mean()) < 0.02 * k
    m.flatten_parameters()  # a no-op kept for torch compatibility
    assert len(m.all_weights) == 2 and len(m.all_weights[0]) == 4


# -- dropout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_dropout_eval_and_zero(mode):
    tm, m = make_pair(mode, 4, 5, num_layers=3, dropout=0.4, dtype=np.float64)
    _, m0 = make_pair(mode, 4, 5, num_layers=3, dropout=0.0, dtype=np.float64)
    x = fg.randn(6, 2, 4, dtype=fg.float64)
    m.eval()
    a = m(x)[0].detach().numpy()
    np.testing.assert_array_equal(a, m0(x)[0].detach().numpy())  # eval: no dropout at all
    close(a, tm.eval()(torch.tensor(x.numpy()))[0], np.float64, "eval output")
    m0.train()
    np.testing.assert_array_equal(m0(x)[0].detach().numpy(), m0(x)[0].detach().numpy())  # p=0: deterministic


def test_dropout_only_between_layers():
    """p=1 zeroes everything between layers: the last layer then sees zeros, and
    its own output is not dropped. p=0.5 scales the kept units by 2."""
    tm, m = make_pair("lstm", 4, 5, num_layers=2, dropout=1.0, dtype=np.float64)
    x = fg.randn(6, 2, 4, dtype=fg.float64)
    out = m.train()(x)[0]
    # torch reference: layer 1 fed zeros
    t1 = torch.nn.LSTM(5, 5).double()
    t1.load_state_dict({k.replace("l1", "l0"): v for k, v in tm.state_dict().items() if "l1" in k})
    ref = t1(torch.zeros(6, 2, 5, dtype=torch.float64))[0]
    close(out, ref, np.float64, "output with p=1")
    assert np.all(out.detach().numpy() != 0)
    # one layer: dropout never applies
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        _, m1 = make_pair("gru", 4, 5, num_layers=1, dropout=0.9, dtype=np.float64)
    np.testing.assert_array_equal(m1.train()(x)[0].detach().numpy(), m1.eval()(x)[0].detach().numpy())
    # p=0.5: layer 1's input is layer 0's output with about half the units zeroed and the rest doubled
    _, m5 = make_pair("rnn_relu", 4, 50, num_layers=2, dropout=0.5, dtype=np.float64)
    m5.train()
    fg.manual_seed(1)
    xs = fg.randn(1, 400, 4, dtype=fg.float64)
    seen = []
    orig = rnn_mod.F.dropout

    def spy(inp, p, training):
        out = orig(inp, p, training)
        seen.append((inp.detach().numpy(), out.detach().numpy()))
        return out

    rnn_mod.F.dropout = spy
    try:
        m5(xs)
    finally:
        rnn_mod.F.dropout = orig
    assert len(seen) == 1  # once, between the two layers
    inp, out = seen[0]
    live = inp != 0
    kept = out[live] != 0
    assert 0.45 < kept.mean() < 0.55
    np.testing.assert_allclose(out[live][kept], 2 * inp[live][kept])


# -- truncated BPTT ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_truncated_bptt_with_detach(mode, path):
    """Chunks of 4 steps with the state detached in between: every chunk's
    backward works without retain_graph and the accumulated gradients equal
    torch's doing the same."""
    tm, m = make_pair(mode, 3, 6, num_layers=2, batch_first=True, dtype=np.float64)
    x = np.random.default_rng(7).standard_normal((2, 12, 3))
    th = fh = None
    for s in range(0, 12, 4):
        to, th = tm(torch.tensor(x[:, s:s + 4]), th)
        fo, fh = m(fg.tensor(x[:, s:s + 4]), fh)
        close(fo, to, np.float64, f"chunk {s} output")
        to.square().sum().backward()
        fo.square().sum().backward()
        th = tuple(h.detach() for h in th) if mode == "lstm" else th.detach()
        fh = tuple(h.detach() for h in fh) if mode == "lstm" else fh.detach()
    for k, p in m.named_parameters():
        close(p.grad, dict(tm.named_parameters())[k].grad, np.float64, f"accumulated grad {k}")


def test_without_detach_second_backward_fails_clearly():
    m = fg.nn.LSTM(2, 3)
    x = fg.randn(4, 1, 2)
    _, hc = m(x)
    m(x, hc)[0].sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        m(x, hc)[0].sum().backward()


def test_inplace_weight_change_before_backward_raises():
    m = fg.nn.LSTM(3, 4)
    out, _ = m(fg.randn(5, 2, 3))
    with fg.no_grad():
        m.weight_hh_l0.mul_(0.5)  # e.g. an optimizer step before backward
    with pytest.raises(RuntimeError, match="inplace"):
        out.sum().backward()


def test_workspace_freed_and_not_kept_without_grad():
    """Memory stays flat over training steps (the native workspace is freed by
    backward) and a no_grad forward keeps no workspace at all."""
    m = fg.nn.GRU(16, 64, num_layers=2)
    x = fg.randn(50, 8, 16)
    used = []
    for _ in range(4):
        m.zero_grad(set_to_none=False)
        m(x)[0].sum().backward()
        used.append(fg.memory.stats()["bytes_in_use"])
    assert used[1] == used[2] == used[3]
    with fg.no_grad():
        base = fg.memory.stats()["bytes_in_use"]
        fg.memory.reset_peak()
        out = m(x)[0]
        ws_free = fg.memory.stats()["peak_bytes"] - base
    with fg.enable_grad():
        out2 = m(x)[0]
        with_ws = fg.memory.stats()["bytes_in_use"] - base - ws_free
    del out, out2
    out_bytes = 51 * 8 * 64 * 4  # one layer's packed output (y, then h_n)
    xp_bytes = 50 * 8 * 3 * 64 * 4  # one layer's input projection
    ws_bytes = 50 * 8 * 5 * 64 * 4  # one layer's workspace
    # peak of a no_grad forward: projections, outputs and small scratch, no workspace
    assert ws_free < xp_bytes + 3 * out_bytes + 100_000 < xp_bytes + 2 * out_bytes + ws_bytes
    assert with_ws > 2 * ws_bytes  # the graph keeps both layers' workspaces until backward


# -- higher order and forward mode ------------------------------------------------------------------


def check_double_backward(tm, m, x, wrt, params):
    """The gradient of ||d tanh(output).sum() / d wrt||^2 (float64) with
    respect to the input and `params` equals torch's."""
    tx, fx = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad(tm(tx)[0].tanh().sum(), [getattr(tm, wrt)], create_graph=True)
    (fgr,) = fg.autograd.grad(m(fx)[0].tanh().sum(), [getattr(m, wrt)], create_graph=True)
    close(fgr, tg, np.float64, "first grad")
    tg.square().sum().backward()
    fgr.square().sum().backward()
    close(fx.grad, tx.grad, np.float64, "second-order grad input")
    for name in params:
        close(getattr(m, name).grad, getattr(tm, name).grad, np.float64, f"second-order grad {name}")


@pytest.mark.parametrize("mode", MODES)
def test_double_backward_matches_torch(mode):
    """create_graph through the native op (recomputed in fastgrad ops): the
    gradient of ||d loss / d W_hh||^2 equals torch's."""
    tm, m = make_pair(mode, 3, 4, bidirectional=True, dtype=np.float64)
    x = np.random.default_rng(8).standard_normal((5, 2, 3))
    check_double_backward(tm, m, x, "weight_hh_l0", ["weight_ih_l0", "weight_hh_l0"])


def check_jvp_finite_differences(m, seed):
    """fg.jvp of m's output at a random (4, 2, 3) float64 input along a random
    direction equals central differences; returns the input and the jvp's output."""
    rng = np.random.default_rng(seed)
    x = fg.tensor(rng.standard_normal((4, 2, 3)))
    v = fg.tensor(rng.standard_normal((4, 2, 3)))
    out, tan = fg.jvp(lambda a: m(a)[0], (x,), (v,))
    eps = 1e-6
    fd = (m(x + v * eps)[0] - m(x - v * eps)[0]).detach().numpy() / (2 * eps)
    np.testing.assert_allclose(tan.detach().numpy(), fd, atol=1e-7)
    return x, out


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_jvp_matches_finite_differences(mode):
    _, m = make_pair(mode, 3, 4, dtype=np.float64)
    x, out = check_jvp_finite_differences(m, 9)
    np.testing.assert_allclose(out.detach().numpy(), m(x)[0].detach().numpy(), atol=1e-13)


def test_gradcheck_fused_gru():
    m = fg.nn.GRU(2, 3, dtype=fg.float64)
    x = fg.randn(3, 2, 2, dtype=fg.float64, requires_grad=True)
    h = fg.randn(1, 2, 3, dtype=fg.float64, requires_grad=True)
    assert fg.autograd.gradcheck(lambda a, b: m(a, b)[0], (x, h))


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
def test_every_instruction_set_build(cap):
    """The row math is compiled per ISA; each build must match torch."""
    try:
        fg._C.set_cpu_capability(cap)
        if fg._C.gemm_info() != cap:
            pytest.skip(f"this CPU has no {cap}")
        for mode in MODES:
            for dtype in (np.float32, np.float64):
                tm, m = make_pair(mode, 3, 20, dtype=dtype, bidirectional=True)
                x = np.random.default_rng(10).standard_normal((4, 3, 3)).astype(dtype) * 3
                run_both(tm, m, x, None, dtype)
    finally:
        fg._C.set_cpu_capability("auto")


def test_same_bits_for_any_thread_count():
    """GEMMs split by output blocks and the cell math by batch rows: 1 and 2
    threads give bit-identical outputs and gradients."""
    m = fg.nn.GRU(8, 64, num_layers=2, bidirectional=True)
    x = fg.randn(7, 40, 8, requires_grad=True)
    res = []
    old = fg.get_num_threads()
    try:
        for n in (1, 2):
            fg.set_num_threads(n)
            m.zero_grad()
            x.grad = None
            out, h = m(x)
            (out.square().sum() + h.sum()).backward()
            res.append([out.detach().numpy(), x.grad.numpy()] + [p.grad.numpy() for p in m.parameters()])
    finally:
        fg.set_num_threads(old)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_saturation_and_extremes():
    """Huge pre-activations saturate the gates exactly like torch (no NaN/inf)."""
    tm, m = make_pair("lstm", 2, 3, dtype=np.float32)
    x = np.array([[[1e4, -1e4]], [[-1e30, 1e30]], [[0.0, 0.0]]], dtype=np.float32)
    run_both(tm, m, x, None, np.float32)


# -- errors ----------------------------------------------------------------------------------------


def err(fn, exc=FG_ERRORS, *names):
    with pytest.raises(exc) as e:
        fn()
    for n in names:
        assert n in str(e.value), f"{str(e.value)!r} does not name {n!r}"
    return e


def test_bad_inputs_raise_clear_errors():
    m = fg.nn.LSTM(4, 5, num_layers=2)
    err(lambda: m(fg.randn(3, 2, 7)), RuntimeError, "LSTM", "input_size", "4", "7")
    err(lambda: m(fg.randn(3, 2, 4, 1)), ValueError, "LSTM", "4D", "[3, 2, 4, 1]")
    err(lambda: m(fg.randn(4)), ValueError, "LSTM", "1D")
    err(lambda: m(fg.randn(3, 2, 4), (fg.randn(1, 2, 5), fg.randn(2, 2, 5))), RuntimeError, "(2, 2, 5)", "[1, 2, 5]")
    err(lambda: m(fg.randn(3, 2, 4), (fg.randn(2, 2, 5), fg.randn(2, 3, 5))), RuntimeError, "cell", "[2, 3, 5]")
    err(lambda: m(fg.randn(3, 2, 4), fg.randn(2, 2, 5)), TypeError, "LSTM", "tuple")
    err(lambda: m(fg.randn(3, 4), (fg.randn(2, 1, 5), fg.randn(2, 1, 5))), RuntimeError, "2-D", "[2, 1, 5]")
    err(lambda: m(fg.randn(3, 2, 4, dtype=fg.float64)), TypeError, "float64", "float32")
    err(lambda: m(fg.randn(0, 2, 4)), ValueError, "sequence length")
    g = fg.nn.GRU(4, 5, batch_first=True)
    err(lambda: g(fg.randn(2, 3, 4), fg.randn(1, 3, 5)), RuntimeError, "GRU", "(1, 2, 5)", "[1, 3, 5]")
    err(lambda: fg.nn.LSTM(4, 5, proj_size=5), ValueError, "proj_size", "hidden_size")
    err(lambda: fg.nn.LSTM(4, 5, proj_size=-1), ValueError, "proj_size")
    err(lambda: fg.nn.LSTM(4, 5, proj_size=2.0), TypeError, "proj_size")
    err(lambda: fg.nn.GRU(4, 5, proj_size=2), ValueError, "proj_size")
    err(lambda: fg.nn.RNN(4, 5, nonlinearity="sigmoid"), ValueError, "sigmoid")
    err(lambda: fg.nn.LSTM(4, 5, dropout=1.5), ValueError, "dropout")
    err(lambda: fg.nn.LSTM(4, 0), ValueError, "hidden_size")
    c = fg.nn.LSTMCell(4, 5)
    err(lambda: c(fg.randn(2, 3)), RuntimeError, "LSTMCell", "input_size", "3")
    err(lambda: c(fg.randn(2, 4), (fg.randn(3, 5), fg.randn(3, 5))), RuntimeError, "(2, 5)", "[3, 5]")
    err(lambda: c(fg.randn(2, 4), (fg.randn(2, 5),)), ValueError, "LSTMCell")
    err(lambda: c(fg.randn(2, 2, 4)), ValueError, "LSTMCell", "3D")
    err(lambda: fg.nn.GRUCell(4, 5)(fg.randn(4), fg.randn(2, 5)), RuntimeError, "GRUCell", "[2, 5]")


def test_native_entry_points_validate():
    C = fg._C
    x = fg.randn(3, 2, 8)._data
    h = fg.randn(2, 2)._data
    w = fg.randn(8, 2)._data
    b = fg.randn(8)._data
    err(lambda: C.rnn_forward(2, x, h, None, w, None, None, False, False), ValueError, "rnn_forward", "c0")
    err(lambda: C.rnn_forward(2, x, h, h, fg.randn(8, 3)._data, None, None, False, False), ValueError, "weight_hh",
        "[8, 3]")
    err(lambda: C.rnn_forward(2, x, fg.randn(3, 2)._data, h, w, None, None, False, False), ValueError, "h0")
    err(lambda: C.rnn_forward(2, x, h, fg.randn(2, 2, dtype=fg.float64)._data, w, None, None, False, False),
        TypeError, "c0", "float64")
    err(lambda: C.rnn_forward(2, x, h, h, w, b, None, False, False), ValueError, "bias")
    err(lambda: C.rnn_forward(2, x, h, h, w, b, fg.randn(7)._data, False, False), ValueError, "bias_hh", "[7]")
    err(lambda: C.rnn_forward(7, x, h, h, w, None, None, False, False), ValueError, "mode")
    err(lambda: C.rnn_forward(2, fg.randn(3, 2, 8, dtype=fg.int64)._data, h, h, w, None, None, False, False),
        TypeError, "int64")
    out, ws = C.rnn_forward(2, x, h, h, w, b, b, False, True)
    err(lambda: C.rnn_backward(2, ws, fg.randn(5)._data, h, h, w, True, False), ValueError, "rnn_backward", "grad")
    err(lambda: C.rnn_backward(3, ws, out, h, None, fg.randn(6, 2)._data, True, False), ValueError, "workspace")


# -- learning -------------------------------------------------------------------------------------


def test_lstm_learns_to_echo_a_bit_from_k_steps_back():
    """Target at step t is the input bit at t-3: chance is log(2) = 0.69 nats."""
    fg.manual_seed(0)
    rng = np.random.default_rng(0)
    k, T, B = 3, 12, 32
    lstm, head = fg.nn.LSTM(1, 16, batch_first=True), fg.nn.Linear(16, 2)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = fg.optim.Adam(params, lr=0.02)
    t0 = time.perf_counter()
    for step in range(300):
        bits = rng.integers(0, 2, (B, T))
        x = fg.tensor(bits[..., None].astype(np.float32) * 2 - 1)
        y = fg.tensor(bits[:, :-k].astype(np.int64))
        out, _ = lstm(x)
        logits = head(out[:, k:])
        loss = fg.nn.functional.cross_entropy(logits.reshape(-1, 2), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.1, f"loss {loss.item():.3f} after {step + 1} steps"
    assert time.perf_counter() - t0 < 10


# -- LSTM proj_size ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_proj_size_matches_torch(num_layers, bidirectional, batch_first, dtype, path):
    T, B, I, H, P = 5, 3, 4, 7, 3
    tm, m = make_pair("lstm", I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                      proj_size=P, dtype=dtype)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    D = 2 if bidirectional else 1
    hx = (rng.standard_normal((num_layers * D, B, P)).astype(dtype),
          rng.standard_normal((num_layers * D, B, H)).astype(dtype))
    out, h, c = run_both(tm, m, x, hx, dtype)
    assert out.shape[-1] == D * P and h.shape == (num_layers * D, B, P) and c.shape == (num_layers * D, B, H)


@pytest.mark.parametrize("with_hx", [False, True])
def test_lstm_proj_size_unbatched_no_bias_odd_sizes(with_hx, path):
    tm, m = make_pair("lstm", 5, 9, proj_size=4, bias=False, num_layers=2, dtype=np.float64)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((7, 5))  # unbatched (T, input_size)
    hx = (rng.standard_normal((2, 4)), rng.standard_normal((2, 9))) if with_hx else None
    run_both(tm, m, x, hx, np.float64)


def test_lstm_proj_size_state_dict_names_both_ways():
    kw = dict(num_layers=2, bidirectional=True, proj_size=2)
    m, tm = fg.nn.LSTM(3, 5, **kw), torch.nn.LSTM(3, 5, **kw)
    assert [(k, tuple(p.shape)) for k, p in m.named_parameters()] == \
        [(k, tuple(p.shape)) for k, p in tm.named_parameters()]
    assert "weight_hr_l1_reverse" in m.state_dict()
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()}, strict=True)
    x = np.random.default_rng(14).standard_normal((4, 2, 3)).astype(np.float32)
    close(m(fg.tensor(x))[0], tm(torch.tensor(x))[0], np.float32, "output after fg -> torch load")
    assert [len(w) for w in m.all_weights] == [len(w) for w in tm.all_weights] == [5, 5, 5, 5]
    assert repr(m) == repr(tm)
    nb = fg.nn.LSTM(3, 5, bias=False, proj_size=2)
    assert [len(w) for w in nb.all_weights] == [3] and repr(nb) == repr(torch.nn.LSTM(3, 5, bias=False, proj_size=2))


def test_lstm_proj_size_double_backward_matches_torch(path):
    tm, m = make_pair("lstm", 3, 5, proj_size=2, dtype=np.float64)
    x = np.random.default_rng(15).standard_normal((4, 2, 3))
    check_double_backward(tm, m, x, "weight_hr_l0", ["weight_hh_l0"])


def test_lstm_proj_size_errors():
    m = fg.nn.LSTM(4, 5, proj_size=2, num_layers=2)
    # h is (L, B, proj_size), c is (L, B, hidden_size)
    err(lambda: m(fg.randn(3, 2, 4), (fg.randn(2, 2, 5), fg.randn(2, 2, 5))), RuntimeError, "(2, 2, 2)",
        "[2, 2, 5]")
    err(lambda: m(fg.randn(3, 2, 4), (fg.randn(2, 2, 2), fg.randn(2, 2, 2))), RuntimeError, "cell", "(2, 2, 5)")
    err(lambda: fg.nn.LSTM(4, 5, proj_size=7), ValueError, "proj_size has to be smaller than hidden_size")
    err(lambda: fg.nn.RNN(4, 5, proj_size=2), ValueError, "only supported for LSTM")


def test_lstm_proj_size_jvp_matches_finite_differences(path):
    _, m = make_pair("lstm", 3, 5, proj_size=2, bidirectional=True, dtype=np.float64)
    check_jvp_finite_differences(m, 16)


@pytest.mark.skipif(not fg.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("packed", [False, True])
def test_cuda_lstm_proj_and_packed_match_torch(packed):
    """On a GPU: LSTM with projection, padded or packed (enforce_sorted=False), vs torch on the CPU."""
    import torch.nn.utils.rnn as TR

    import fastgrad.nn.utils.rnn as FR

    kw = dict(num_layers=2, bidirectional=True, proj_size=3)
    m = fg.nn.LSTM(5, 7, dtype=fg.float64, **kw)
    tm = torch.nn.LSTM(5, 7, **kw).double()
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()})
    m.to("cuda")
    x = np.random.default_rng(17).standard_normal((6, 4, 5))
    fx, tx = fg.tensor(x, device="cuda", requires_grad=True), torch.tensor(x, requires_grad=True)
    fi, ti = fx, tx
    if packed:
        lengths = [3, 6, 1, 4]
        fi = FR.pack_padded_sequence(fx, lengths, enforce_sorted=False)
        ti = TR.pack_padded_sequence(tx, lengths, enforce_sorted=False)
    (fo, (fh, fc)), (to, (th, tc)) = m(fi), tm(ti)
    if packed:
        fo, to = fo.data, to.data
    assert fo.device.type == "cuda"
    (fo.square().sum() + fh.sum() + fc.square().sum()).backward()
    (to.square().sum() + th.sum() + tc.square().sum()).backward()
    close(fo.cpu(), to, np.float64, "output")
    close(fh.cpu(), th, np.float64, "h_n")
    close(fx.grad.cpu(), tx.grad, np.float64, "grad input")
    for (k, p), tp in zip(m.named_parameters(), tm.parameters()):
        close(p.grad.cpu(), tp.grad, np.float64, f"grad {k}")
