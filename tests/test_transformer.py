"""MultiheadAttention, scaled_dot_product_attention and the Transformer
layers against torch: torch's weights loaded into fastgrad's modules (and
fastgrad's into torch's), the same inputs, masks and cotangent; outputs and
the gradients of every input and parameter compared (float64 tight, float32
to ~1e-5 of the values' scale). Dropout is 0 or the modules are in eval mode.
Also: a short learning run and the errors for bad input."""
import time

import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.nn as nn
import fastgrad.nn.functional as F

TF = torch.nn.functional
DTYPES = {"float32": (np.float32, torch.float32, fg.float32), "float64": (np.float64, torch.float64, fg.float64)}
# max |fastgrad - torch| <= TOL * (1 + max |torch|), per compared tensor
TOL = {"float32": 2e-5, "float64": 1e-10}


def rng(seed=0):
    return np.random.default_rng(seed)


def to_np(t):
    return np.array(t.detach().numpy())


def close(a, b, dtype, what):
    a, b = to_np(a), to_np(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch's {b.shape}"
    scale = 1.0 + np.nanmax(np.abs(b)) if np.isfinite(b).any() else 1.0
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale, equal_nan=True, err_msg=what)


def mask_pair(arr):
    """The same mask (bool or float, in the inputs' dtype) for both frameworks."""
    return fg.tensor(arr), torch.tensor(arr)


class Pair:
    """A torch module and a fastgrad module holding the same weights (torch's, loaded across)."""

    def __init__(self, make_torch, make_fg, dtype, seed=0, from_fg=False):
        self.dtype = dtype
        _, tdt, fdt = DTYPES[dtype]
        torch.manual_seed(seed)
        self.t = make_torch().to(tdt)
        self.f = make_fg().to(fdt)
        if from_fg:  # fastgrad's own init, loaded into torch
            fg.manual_seed(seed)
            self.f = make_fg().to(fdt)
            self.t.load_state_dict({k: torch.tensor(to_np(v)) for k, v in self.f.state_dict().items()})
        else:
            self.f.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in self.t.state_dict().items()})
        assert list(self.f.state_dict()) == list(self.t.state_dict())

    def inputs(self, *shapes, seed=1):
        r = rng(seed)
        arrs = [r.standard_normal(s).astype(DTYPES[self.dtype][0]) for s in shapes]
        return ([fg.tensor(a, requires_grad=True) for a in arrs], [torch.tensor(a, requires_grad=True) for a in arrs])

    def check(self, fin, tin, call_f, call_t, seed=2):
        """Runs both, compares every output, then every input's and parameter's gradient of a random
        cotangent."""
        fo, to = call_f(self.f, *fin), call_t(self.t, *tin)
        fo = list(fo) if isinstance(fo, tuple) else [fo]
        to = list(to) if isinstance(to, tuple) else [to]
        assert len(fo) == len(to)
        r = rng(seed)
        f_loss, t_loss = 0, 0
        for i, (a, b) in enumerate(zip(fo, to)):
            if b is None:
                assert a is None, f"output {i}: torch returns None"
                continue
            close(a, b, self.dtype, f"output {i}")
            ct = r.standard_normal(tuple(b.shape)).astype(DTYPES[self.dtype][0])
            finite = np.isfinite(to_np(b))
            ct = np.where(finite, ct, 0)  # NaN rows (torch's fully masked weights) carry no gradient
            f_loss = f_loss + (fg.where(fg.tensor(finite), a, 0) * fg.tensor(ct)).sum()
            t_loss = t_loss + (torch.where(torch.tensor(finite), b, 0) * torch.tensor(ct)).sum()
        t_loss.backward()
        f_loss.backward()
        for i, (a, b) in enumerate(zip(fin, tin)):
            if b.grad is not None:
                close(a.grad, b.grad, self.dtype, f"grad of input {i}")
        tparams = dict(self.t.named_parameters())
        n = 0
        for name, p in self.f.named_parameters():
            tp = tparams[name]
            if tp.grad is None:
                assert p.grad is None or not to_np(p.grad).any(), f"grad of {name}: torch has none"
                continue
            close(p.grad, tp.grad, self.dtype, f"grad of {name}")
            n += 1
        assert n > 0
        return fo, to


# -- scaled_dot_product_attention ----------------------------------------------------------------------


def _sdpa_case(dtype, qs, ks, vs, mask=None, seed=0, **kw):
    npdt = DTYPES[dtype][0]
    r = rng(seed)
    arrs = [r.standard_normal(s).astype(npdt) for s in (qs, ks, vs)]
    fin = [fg.tensor(a, requires_grad=True) for a in arrs]
    tin = [torch.tensor(a, requires_grad=True) for a in arrs]
    fm = tm = None
    if mask is not None:
        fm, tm = mask_pair(mask if mask.dtype == bool else mask.astype(npdt))
    fo = F.scaled_dot_product_attention(*fin, attn_mask=fm, **kw)
    to = TF.scaled_dot_product_attention(*tin, attn_mask=tm, **kw)
    close(fo, to, dtype, "output")
    ct = r.standard_normal(tuple(to.shape)).astype(npdt)
    fo.backward(fg.tensor(ct))
    to.backward(torch.tensor(ct))
    for i, (a, b) in enumerate(zip(fin, tin)):
        close(a.grad, b.grad, dtype, f"grad of input {i}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sdpa_plain_causal_scale_broadcast(dtype):
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7))
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), is_causal=True)  # L < S, top-left aligned
    _sdpa_case(dtype, (2, 3, 7, 4), (2, 3, 5, 4), (2, 3, 5, 3), is_causal=True)  # L > S
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), scale=0.37)
    _sdpa_case(dtype, (2, 3, 5, 4), (1, 3, 6, 4), (1, 3, 6, 7))  # broadcast batch dims
    _sdpa_case(dtype, (2, 1, 5, 4), (3, 6, 4), (3, 6, 7))
    _sdpa_case(dtype, (5, 4), (6, 4), (6, 7))  # no batch dims
    _sdpa_case(dtype, (2, 4, 5, 4), (2, 2, 6, 4), (2, 2, 6, 7), enable_gqa=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sdpa_masks(dtype):
    r = rng(3)
    m = r.random((5, 6)) > 0.4
    m[:, 0] = True
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), mask=m)  # bool: True = take part
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), mask=r.random((2, 1, 1, 6)) > 0.3)
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), mask=r.standard_normal((3, 5, 6)))  # float: added
    fm = r.standard_normal((2, 3, 1, 6))
    fm[..., 4:] = -np.inf
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), mask=fm)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sdpa_fully_masked_rows_are_zero(dtype):
    # torch's safe softmax: a query row with no key left gives 0 output and 0 gradients, not NaN
    m = np.ones((5, 6), dtype=bool)
    m[2] = False
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), mask=m)
    fm = np.zeros((3, 5, 6))
    fm[1, 3] = -np.inf
    _sdpa_case(dtype, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), mask=fm)
    q = fg.randn(1, 5, 4, requires_grad=True)
    out = F.scaled_dot_product_attention(q, fg.randn(1, 6, 4), fg.randn(1, 6, 3), attn_mask=fg.tensor(m))
    assert not to_np(out)[0, 2].any()
    out.sum().backward()
    assert np.isfinite(to_np(q.grad)).all() and not to_np(q.grad)[0, 2].any()


@pytest.mark.parametrize("which", [0, 1, 2])
def test_sdpa_grad_of_one_input(which):
    r = rng(13)
    arrs = [r.standard_normal(s) for s in ((2, 5, 4), (2, 6, 4), (2, 6, 3))]
    fin = [fg.tensor(a, requires_grad=i == which) for i, a in enumerate(arrs)]
    tin = [torch.tensor(a, requires_grad=i == which) for i, a in enumerate(arrs)]
    ct = r.standard_normal((2, 5, 3))
    (F.scaled_dot_product_attention(*fin, is_causal=True) * fg.tensor(ct)).sum().backward()
    (TF.scaled_dot_product_attention(*tin, is_causal=True) * torch.tensor(ct)).sum().backward()
    close(fin[which].grad, tin[which].grad, "float64", "grad")
    assert all(t.grad is None for i, t in enumerate(fin) if i != which)


def test_sdpa_non_contiguous_and_gradcheck():
    q = fg.randn(2, 5, 3, 4, dtype=fg.float64).transpose(1, 2)  # (2, 3, 5, 4) view
    k = fg.randn(2, 4, 3, 6, dtype=fg.float64).permute(0, 2, 3, 1)
    v = fg.randn(6, 3, 2, 2, dtype=fg.float64).permute(2, 1, 0, 3)
    tq, tk, tv = (torch.tensor(to_np(t)) for t in (q, k, v))
    close(F.scaled_dot_product_attention(q, k, v), TF.scaled_dot_product_attention(tq, tk, tv), "float64", "out")
    m = fg.tensor(rng(4).random((5, 6)) > 0.3)
    args = [fg.randn(*s, dtype=fg.float64, requires_grad=True) for s in ((2, 5, 3), (2, 6, 3), (2, 6, 2))]
    assert fg.autograd.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=m), args)


def _second_order(fn_f, fn_t, arrs, seed=9):
    """fastgrad vs torch: the gradient of sum(grad(sum(out * c1)) * c2) over the inputs (double backward)."""
    r = rng(seed)
    fin = [fg.tensor(a, requires_grad=True) for a in arrs]
    tin = [torch.tensor(a, requires_grad=True) for a in arrs]
    fo, to = fn_f(*fin), fn_t(*tin)
    c1 = r.standard_normal(tuple(to.shape))
    fgs = fg.autograd.grad((fo * fg.tensor(c1)).sum(), fin, create_graph=True)
    tgs = torch.autograd.grad((to * torch.tensor(c1)).sum(), tin, create_graph=True)
    cs = [r.standard_normal(a.shape) for a in arrs]
    for i, (a, b) in enumerate(zip(fgs, tgs)):
        close(a, b, "float64", f"first-order grad {i}")
    sum(((a * fg.tensor(c)).sum() for a, c in zip(fgs, cs)), fg.tensor(0.0, dtype=fg.float64)).backward()
    sum((a * torch.tensor(c)).sum() for a, c in zip(tgs, cs)).backward()
    for i, (a, b) in enumerate(zip(fin, tin)):
        close(a.grad, b.grad, "float64", f"second-order grad {i}")


def _jvp_vs_finite_differences(fn, arrs, seed=10, eps=1e-6):
    r = rng(seed)
    prim = [fg.tensor(a) for a in arrs]
    tang = [fg.tensor(r.standard_normal(a.shape)) for a in arrs]
    _, tout = fg.jvp(fn, tuple(prim), tuple(tang))
    plus = fn(*[fg.tensor(a + eps * to_np(t)) for a, t in zip(arrs, tang)])
    minus = fn(*[fg.tensor(a - eps * to_np(t)) for a, t in zip(arrs, tang)])
    np.testing.assert_allclose(to_np(tout), (to_np(plus) - to_np(minus)) / (2 * eps), atol=1e-6, rtol=1e-5)


def test_sdpa_double_backward_and_jvp():
    r = rng(8)
    arrs = [r.standard_normal(s) for s in ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3))]
    m = r.random((5, 6)) > 0.3
    m[:, 0] = True
    m[4] = False  # a fully masked row
    fm, tm = fg.tensor(m), torch.tensor(m)
    _second_order(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=fm),
                  lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=tm), arrs)
    _second_order(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                  lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True), arrs)
    _jvp_vs_finite_differences(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=fm), arrs)
    # tangents on some inputs only
    q = fg.tensor(arrs[0])
    _jvp_vs_finite_differences(lambda k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3), arrs[1:])


@pytest.mark.parametrize("cross", [False, True])
def test_mha_double_backward_and_jvp(cross):
    p = mha_pair("float64", batch_first=cross)
    r = rng(11)
    x, mem = r.standard_normal((3, 4, 12) if cross else (4, 3, 12)), r.standard_normal((3, 5, 12))
    pm = np.zeros((3, 5 if cross else 4), dtype=bool)
    pm[1, -2:] = True
    fpm, tpm = fg.tensor(pm), torch.tensor(pm)
    if cross:
        ff = lambda a, b: p.f(a, b, b, key_padding_mask=fpm, need_weights=False)[0]  # noqa: E731
        ft = lambda a, b: p.t(a, b, b, key_padding_mask=tpm)[0]  # noqa: E731
        arrs = [x, mem]
    else:
        ff = lambda a: p.f(a, a, a, key_padding_mask=fpm, need_weights=False)[0]  # noqa: E731
        ft = lambda a: p.t(a, a, a, key_padding_mask=tpm)[0]  # noqa: E731
        arrs = [x]
    _second_order(ff, ft, arrs)  # torch's need_weights path: its flash kernel has no double backward
    tparams = dict(p.t.named_parameters())
    n = 0
    for name, q in p.f.named_parameters():  # the second-order gradient reaches the weights too
        tg = tparams[name].grad
        if tg is None:  # e.g. out_proj.bias: grad wrt the input does not depend on it
            assert q.grad is None or not to_np(q.grad).any(), name
            continue
        close(q.grad, tg, "float64", f"second-order grad of {name}")
        n += 1
    assert n >= 3
    _jvp_vs_finite_differences(ff, arrs)


def test_sdpa_dropout_gradients_match_its_mask():
    # the same seed draws the same keep mask: the fused node against the composite with that mask
    r = rng(12)
    arrs = [r.standard_normal(s) for s in ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3))]
    p = 0.4
    fg.manual_seed(5)
    ins = [fg.tensor(a, requires_grad=True) for a in arrs]
    out = F.scaled_dot_product_attention(*ins, dropout_p=p)
    fg.manual_seed(5)
    keep = (fg.rand(2, 3, 5, 6, dtype=fg.float64) >= p) * (1 / (1 - p))
    ref_in = [fg.tensor(a, requires_grad=True) for a in arrs]
    q, k, v = ref_in
    ref = ((q @ k.mT / 2.0).softmax(-1) * keep) @ v
    np.testing.assert_allclose(to_np(out), to_np(ref), atol=1e-12)
    ct = fg.tensor(r.standard_normal((2, 3, 5, 3)))
    (out * ct).sum().backward()
    (ref * ct).sum().backward()
    for a, b in zip(ins, ref_in):
        np.testing.assert_allclose(to_np(a.grad), to_np(b.grad), atol=1e-12)


def test_sdpa_dropout():
    # E[sum_j dropout(attn)_j] = 1: with v = 1 every output is the kept weights' sum / (1 - p)
    fg.manual_seed(0)
    q, k = fg.randn(8, 4, 32, 8), fg.randn(8, 4, 32, 8)
    v = fg.ones(8, 4, 32, 1)
    out = to_np(F.scaled_dot_product_attention(q, k, v, dropout_p=0.3))
    assert abs(out.mean() - 1.0) < 0.05 and out.std() > 0.05
    assert not to_np(F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)).any()
    np.testing.assert_allclose(to_np(F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)), 1.0, rtol=1e-5)


def test_sdpa_bad_input():
    q, k, v = fg.randn(2, 5, 4), fg.randn(2, 6, 4), fg.randn(2, 6, 3)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\[2, 6, 3\]"):
        F.scaled_dot_product_attention(q, fg.randn(2, 6, 3), v)  # key features != query features
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\[2, 5, 3\]"):
        F.scaled_dot_product_attention(q, k, fg.randn(2, 5, 3))  # value length != key length
    with pytest.raises(ValueError, match=r"attn_mask of shape \[4, 6\]"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=fg.ones(4, 6, dtype=fg.bool))
    with pytest.raises(TypeError, match="attn_mask"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=fg.zeros(5, 6, dtype=fg.int64))
    with pytest.raises(TypeError, match="float64"):
        F.scaled_dot_product_attention(q, k.double(), v)
    with pytest.raises(ValueError, match="is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=fg.ones(5, 6, dtype=fg.bool), is_causal=True)


# -- MultiheadAttention ------------------------------------------------------------------------------


def mha_pair(dtype, E=12, H=3, from_fg=False, **kw):
    return Pair(lambda: torch.nn.MultiheadAttention(E, H, **kw), lambda: nn.MultiheadAttention(E, H, **kw), dtype,
                from_fg=from_fg)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_mha_self_attention(dtype, batch_first, need_weights, average):
    p = mha_pair(dtype, batch_first=batch_first)
    (xf,), (xt,) = p.inputs((3, 5, 12) if batch_first else (5, 3, 12))
    kw = dict(need_weights=need_weights, average_attn_weights=average)
    fo, _ = p.check([xf], [xt], lambda m, x: m(x, x, x, **kw), lambda m, x: m(x, x, x, **kw))
    assert (fo[1] is None) == (not need_weights)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_cross_attention_and_separate_kv(dtype, batch_first):
    p = mha_pair(dtype, batch_first=batch_first)
    sh = (lambda L: (3, L, 12)) if batch_first else (lambda L: (L, 3, 12))
    (q, mem), (tq, tmem) = p.inputs(sh(4), sh(7))  # key is value (the decoder's cross-attention)
    p.check([q, mem], [tq, tmem], lambda m, a, b: m(a, b, b), lambda m, a, b: m(a, b, b))
    p = mha_pair(dtype, batch_first=batch_first)
    fin, tin = p.inputs(sh(4), sh(7), sh(7))  # three different tensors
    p.check(fin, tin, lambda m, a, b, c: m(a, b, c, need_weights=False), lambda m, a, b, c: m(a, b, c,
                                                                                              need_weights=False))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_kdim_vdim(dtype, batch_first):
    p = mha_pair(dtype, kdim=5, vdim=7, batch_first=batch_first)
    assert p.f.in_proj_weight is None and p.f.q_proj_weight.shape == (12, 12) and p.f.k_proj_weight.shape == (12, 5)
    shapes = [(2, 4, 12), (2, 6, 5), (2, 6, 7)] if batch_first else [(4, 2, 12), (6, 2, 5), (6, 2, 7)]
    fin, tin = p.inputs(*shapes)
    p.check(fin, tin, lambda m, a, b, c: m(a, b, c), lambda m, a, b, c: m(a, b, c))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("attn", ["none", "bool2d", "float2d", "bool3d", "float3d"])
@pytest.mark.parametrize("kpm", ["none", "bool", "float"])
def test_mha_masks(dtype, need_weights, attn, kpm):
    B, H, L, S = 2, 3, 4, 6
    p = mha_pair(dtype)
    (q, kv), (tq, tkv) = p.inputs((L, B, 12), (S, B, 12))
    r = rng(5)
    npdt = DTYPES[dtype][0]
    am = None
    if attn != "none":
        shape = (L, S) if attn.endswith("2d") else (B * H, L, S)
        am = r.random(shape) < 0.3  # True = may not attend
        am[..., 0] = False  # keep every row alive (torch's need_weights path gives NaN otherwise)
        if attn.startswith("float"):
            am = np.where(am, -np.inf, r.standard_normal(shape)).astype(npdt)
    pm = None
    if kpm != "none":
        pm = np.zeros((B, S), dtype=bool)
        pm[0, -2:] = pm[1, -1] = True  # padding at the end
        if kpm == "float":
            pm = np.where(pm, -np.inf, 0.0).astype(npdt)

    def call(lib):
        def f(m, a, b):
            t = fg.tensor if lib == "fg" else torch.tensor
            return m(a, b, b, attn_mask=None if am is None else t(am), need_weights=need_weights,
                     key_padding_mask=None if pm is None else t(pm))
        return f

    p.check([q, kv], [tq, tkv], call("fg"), call("torch"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("with_kpm", [False, True])
def test_mha_is_causal_with_mask(dtype, need_weights, with_kpm):
    p = mha_pair(dtype, batch_first=True)
    (x,), (tx,) = p.inputs((2, 5, 12))
    causal = np.triu(np.full((5, 5), -np.inf), 1).astype(DTYPES[dtype][0])
    pm = np.zeros((2, 5), dtype=bool)
    pm[1, 3:] = True

    def call(t):
        return lambda m, a: m(a, a, a, attn_mask=t(causal), is_causal=True, need_weights=need_weights,
                              key_padding_mask=t(pm) if with_kpm else None)

    p.check([x], [tx], call(fg.tensor), call(torch.tensor))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mha_unbatched(dtype):
    p = mha_pair(dtype, batch_first=True)  # batch_first does not apply to 2-D inputs
    (x, kv), (tx, tkv) = p.inputs((4, 12), (6, 12))
    am = rng(6).random((3, 4, 6)) < 0.3
    am[..., 1] = False
    pm = np.zeros(6, dtype=bool)
    pm[-1] = True
    for nw in (True, False):
        p.f.zero_grad()
        p.t.zero_grad()
        for t in (x, kv, tx, tkv):
            t.grad = None
        call = (lambda t: lambda m, a, b: m(a, b, b, attn_mask=t(am), key_padding_mask=t(pm), need_weights=nw))
        fo, _ = p.check([x, kv], [tx, tkv], call(fg.tensor), call(torch.tensor))
        assert fo[0].shape == (4, 12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mha_bias_options_and_eval_dropout(dtype):
    for kw in (dict(bias=False), dict(add_bias_kv=True), dict(add_zero_attn=True),
               dict(add_bias_kv=True, add_zero_attn=True)):
        p = mha_pair(dtype, **kw)
        (x,), (tx,) = p.inputs((4, 2, 12))
        pm = np.zeros((2, 4), dtype=bool)
        pm[1, -1] = True
        call = (lambda t: lambda m, a: m(a, a, a, key_padding_mask=t(pm)))
        p.check([x], [tx], call(fg.tensor), call(torch.tensor))
    p = mha_pair(dtype, dropout=0.5)  # eval mode: no dropout
    p.f.eval()
    p.t.eval()
    (x,), (tx,) = p.inputs((4, 2, 12))
    p.check([x], [tx], lambda m, a: m(a, a, a, need_weights=False), lambda m, a: m(a, a, a, need_weights=False))


def test_mha_non_contiguous_and_init():
    p = mha_pair("float64", from_fg=True)  # fastgrad's init loaded into torch
    w = to_np(p.f.in_proj_weight)
    bound = np.sqrt(6.0 / (12 + 36))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound  # xavier_uniform_ on (3E, E)
    assert not to_np(p.f.in_proj_bias).any() and not to_np(p.f.out_proj.bias).any()
    (base,), (tbase,) = p.inputs((3, 5, 12))
    p.check([base], [tbase], lambda m, b: m(b.transpose(0, 1), b.transpose(0, 1), b.transpose(0, 1))[0],
            lambda m, b: m(*(b.transpose(0, 1),) * 3)[0])


def test_mha_bad_input():
    with pytest.raises(ValueError, match=r"embed_dim \(10\).*num_heads \(3\)"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(12, 3)
    x = fg.randn(4, 2, 12)
    with pytest.raises(ValueError, match=r"\[4, 2, 10\]"):
        m(fg.randn(4, 2, 10), x, x)
    with pytest.raises(ValueError, match=r"2D attn_mask is \[4, 5\].*\[4, 4\]"):
        m(x, x, x, attn_mask=fg.zeros(4, 5))
    with pytest.raises(ValueError, match=r"3D attn_mask is \[3, 4, 4\].*\[6, 4, 4\]"):
        m(x, x, x, attn_mask=fg.zeros(3, 4, 4))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \[2, 4\].*\[4, 2\]"):
        m(x, x, x, key_padding_mask=fg.zeros(4, 2, dtype=fg.bool))
    with pytest.raises(TypeError, match="only bool and floating"):
        m(x, x, x, attn_mask=fg.zeros(4, 4, dtype=fg.int64))
    with pytest.raises(ValueError, match="same batch size"):
        m(x, fg.randn(4, 3, 12), fg.randn(4, 3, 12))
    with pytest.raises(ValueError, match="unbatched 2-D or batched 3-D"):
        m(fg.randn(1, 4, 2, 12), x, x)
    with pytest.raises(RuntimeError, match="is_causal"):
        m(x, x, x, is_causal=True)
    with pytest.raises(TypeError, match="dtype"):
        m(x.double(), x.double(), x.double())


# -- Transformer layers --------------------------------------------------------------------------------


def enc_layer_pair(dtype, **kw):
    kw = dict(dict(dim_feedforward=24, dropout=0.0), **kw)
    return Pair(lambda: torch.nn.TransformerEncoderLayer(12, 3, **kw),
                lambda: nn.TransformerEncoderLayer(12, 3, **{k: v for k, v in kw.items()}), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer(dtype, norm_first, activation, batch_first):
    p = enc_layer_pair(dtype, norm_first=norm_first, activation=activation, batch_first=batch_first)
    (x,), (tx,) = p.inputs((2, 5, 12) if batch_first else (5, 2, 12))
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    pm = np.zeros((2, 5), dtype=bool)
    pm[0, -1] = True
    p.check([x], [tx], lambda m, a: m(a), lambda m, a: m(a))
    for t in (x, tx):
        t.grad = None
    p.f.zero_grad()
    p.t.zero_grad()
    call = (lambda t: lambda m, a: m(a, src_mask=t(causal), src_key_padding_mask=t(pm)))
    p.check([x], [tx], call(fg.tensor), call(torch.tensor))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_encoder_layer_callable_activation_bias_false_eval(dtype):
    p = Pair(lambda: torch.nn.TransformerEncoderLayer(12, 4, 20, 0.0, activation=TF.silu, bias=False),
             lambda: nn.TransformerEncoderLayer(12, 4, 20, 0.0, activation=F.silu, bias=False), dtype)
    (x,), (tx,) = p.inputs((3, 2, 12))
    p.check([x], [tx], lambda m, a: m(a), lambda m, a: m(a))
    p = Pair(lambda: torch.nn.TransformerEncoderLayer(12, 4, 20, dropout=0.3, batch_first=True),
             lambda: nn.TransformerEncoderLayer(12, 4, 20, dropout=0.3, batch_first=True), dtype)
    p.f.eval()
    p.t.eval()
    (x,), (tx,) = p.inputs((2, 3, 12))
    p.check([x], [tx], lambda m, a: m(a), lambda m, a: m(a))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer(dtype, norm_first, batch_first):
    kw = dict(dim_feedforward=24, dropout=0.0, norm_first=norm_first, batch_first=batch_first, activation="gelu")
    p = Pair(lambda: torch.nn.TransformerDecoderLayer(12, 3, **kw), lambda: nn.TransformerDecoderLayer(12, 3, **kw),
             dtype)
    (tgt, mem), (ttgt, tmem) = p.inputs(*([(2, 4, 12), (2, 6, 12)] if batch_first else [(4, 2, 12), (6, 2, 12)]))
    causal = np.triu(np.full((4, 4), -np.inf), 1).astype(DTYPES[dtype][0])
    mm = rng(7).random((4, 6)) < 0.3
    mm[:, 0] = False
    tpm = np.zeros((2, 4), dtype=bool)
    tpm[1, -1] = True
    mpm = np.zeros((2, 6), dtype=bool)
    mpm[0, -2:] = True

    def call(t):
        return lambda m, a, b: m(a, b, tgt_mask=t(causal), memory_mask=t(mm), tgt_key_padding_mask=t(tpm),
                                 memory_key_padding_mask=t(mpm))

    p.check([tgt, mem], [ttgt, tmem], call(fg.tensor), call(torch.tensor))
    for t in (tgt, mem, ttgt, tmem):
        t.grad = None
    p.f.zero_grad()
    p.t.zero_grad()
    call2 = (lambda t: lambda m, a, b: m(a, b, tgt_mask=t(causal), tgt_is_causal=True))
    p.check([tgt, mem], [ttgt, tmem], call2(fg.tensor), call2(torch.tensor))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_encoder_and_decoder_stacks(dtype):
    def enc(lib):
        layer = lib.TransformerEncoderLayer(12, 3, 24, 0.0, batch_first=True, norm_first=True)
        return lib.TransformerEncoder(layer, 2, norm=lib.LayerNorm(12))

    with pytest.warns(UserWarning):  # torch: nested tensors off with norm_first
        p = Pair(lambda: enc(torch.nn), lambda: enc(nn), dtype)
    assert p.f.layers[0] is not p.f.layers[1]
    assert p.f.layers[0].linear1.weight is not p.f.layers[1].linear1.weight
    (x,), (tx,) = p.inputs((2, 5, 12))
    causal = np.triu(np.full((5, 5), -np.inf), 1).astype(DTYPES[dtype][0])
    pm = np.zeros((2, 5), dtype=bool)
    pm[1, -2:] = True
    call = (lambda t: lambda m, a: m(a, mask=t(causal), src_key_padding_mask=t(pm)))
    p.check([x], [tx], call(fg.tensor), call(torch.tensor))

    def dec(lib):
        return lib.TransformerDecoder(lib.TransformerDecoderLayer(12, 3, 24, 0.0), 2, norm=lib.LayerNorm(12))

    p = Pair(lambda: dec(torch.nn), lambda: dec(nn), dtype)
    (t, mem), (tt, tmem) = p.inputs((4, 2, 12), (5, 2, 12))
    causal = causal[:4, :4]
    call = (lambda lib: lambda m, a, b: m(a, b, tgt_mask=lib(causal)))  # causal detected from the mask
    p.check([t, mem], [tt, tmem], call(fg.tensor), call(torch.tensor))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_full_transformer(dtype, batch_first):
    kw = dict(d_model=12, nhead=3, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=20, dropout=0.0,
              batch_first=batch_first)
    p = Pair(lambda: torch.nn.Transformer(**kw), lambda: nn.Transformer(**kw), dtype)
    shapes = [(2, 6, 12), (2, 4, 12)] if batch_first else [(6, 2, 12), (4, 2, 12)]
    (src, tgt), (tsrc, ttgt) = p.inputs(*shapes)
    mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=DTYPES[dtype][2])
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=DTYPES[dtype][1])
    np.testing.assert_array_equal(to_np(mask), tmask.numpy())
    spm = np.zeros((2, 6), dtype=bool)
    spm[1, -2:] = True

    def call(t, m):
        return lambda mod, a, b: mod(a, b, tgt_mask=m, src_key_padding_mask=t(spm), memory_key_padding_mask=t(spm))

    p.check([src, tgt], [tsrc, ttgt], call(fg.tensor, mask), call(torch.tensor, tmask))


def test_full_transformer_from_fastgrad_init_and_eval():
    kw = dict(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16)
    p = Pair(lambda: torch.nn.Transformer(**kw), lambda: nn.Transformer(**kw), "float64", from_fg=True)
    p.f.eval()
    p.t.eval()
    (src, tgt), (tsrc, ttgt) = p.inputs((5, 3, 8), (4, 3, 8))
    p.check([src, tgt], [tsrc, ttgt], lambda m, a, b: m(a, b), lambda m, a, b: m(a, b))
    # every matrix re-initialised xavier-uniform, like torch's Transformer
    w = to_np(p.f.decoder.layers[0].linear1.weight)
    assert np.abs(w).max() <= np.sqrt(6.0 / (8 + 16))


def test_training_mode_dropout_differs_and_is_seeded():
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.2)
    x = fg.randn(6, 2, 16)
    fg.manual_seed(3)
    a = to_np(layer(x))
    fg.manual_seed(3)
    b = to_np(layer(x))
    np.testing.assert_array_equal(a, b)
    layer.eval()
    assert np.abs(to_np(layer(x)) - a).max() > 1e-3


def test_layers_bad_input():
    with pytest.raises(ValueError, match=r"d_model \(10\).*nhead \(4\)"):
        nn.TransformerEncoderLayer(10, 4)
    with pytest.raises(ValueError, match="relu/gelu"):
        nn.TransformerDecoderLayer(8, 2, activation="tanh")
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    with pytest.raises(ValueError, match=r"\[5, 2, 6\]"):
        layer(fg.randn(5, 2, 6))
    with pytest.raises(ValueError, match=r"\[5, 4\]"):
        layer(fg.randn(5, 2, 8), src_mask=fg.zeros(5, 4))
    t = nn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(ValueError, match=r"batch number.*\[5, 2, 8\] and \[4, 3, 8\]"):
        t(fg.randn(5, 2, 8), fg.randn(4, 3, 8))
    with pytest.raises(ValueError, match=r"d_model \(8\)"):
        t(fg.randn(5, 2, 8), fg.randn(4, 2, 6))


# -- learning ---------------------------------------------------------------------------------------------


def test_encoder_learns_to_reverse():
    # token i must attend to position n-1-i: impossible without attention (chance: ln 8 = 2.08)
    V, n, d = 8, 6, 32
    fg.manual_seed(0)
    r = rng(0)
    emb, pos = nn.Embedding(V, d), nn.Embedding(n, d)
    layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
    head = nn.Linear(d, V)
    params = [p for m in (emb, pos, layer, head) for p in m.parameters()]
    opt = fg.optim.Adam(params, lr=3e-3)
    positions = fg.arange(n)
    start = time.perf_counter()
    for _ in range(250):
        seq = r.integers(0, V, (64, n))
        x = fg.tensor(seq)
        y = fg.tensor(seq[:, ::-1].copy())
        logits = head(layer(emb(x) + pos(positions)))
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3, f"loss {loss.item():.3f} after 250 steps (chance 2.08)"
    assert time.perf_counter() - start < 20
