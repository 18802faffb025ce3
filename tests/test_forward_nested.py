"""Forward mode that composes: fg.jvp inside fg.jvp (forward-over-forward),
jvp of grad (forward-over-reverse, Hessian-vector products), grad of jvp
(reverse-over-forward) and hessian, against torch.func, reverse-over-reverse
and finite differences, all in float64."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch.func import grad as tgrad
from torch.func import jvp as tjvp

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.autograd import function as _function
from fastgrad.autograd.grad_mode import state
from helpers import to_numpy
from test_ops_grad import GRAD_CASES, _differentiable_fn


def T(a):
    return torch.tensor(np.asarray(a))


def close(a, b, tol=1e-10):
    np.testing.assert_allclose(to_numpy(a) if isinstance(a, fg.Tensor) else a,
                               b.detach().numpy() if isinstance(b, torch.Tensor) else b, rtol=tol, atol=tol)


@pytest.fixture(autouse=True)
def _levels_restored():
    yield
    # every test leaves no fg.jvp level running behind it
    assert _function.jvp_levels == [0] and state.forward_level == 0


def nested_fg(f, x, v, u):
    """d/de d/dt f(x + t v + e u): forward over forward."""
    return fg.jvp(lambda y: fg.jvp(f, (y,), (v,))[1], (x,), (u,))[1]


def nested_torch(f, x, v, u):
    return tjvp(lambda y: tjvp(f, (y,), (v,))[1], (x,), (u,))[1]


# -- perturbation confusion -------------------------------------------------------------------------


def test_perturbation_confusion_scalar():
    # d/dx [x * (d/dy (x + y))(y=1)] = 1: the inner derivative must not see x's outer tangent
    def outer(x):
        return x * fg.jvp(lambda y: x + y, (1.0,), (1.0,))[1]

    for x0 in (2.0, -0.3):
        value, d = fg.jvp(outer, (x0,), (1.0,))
        assert d == pytest.approx(1.0, abs=1e-15) and value == pytest.approx(x0)


def test_perturbation_confusion_tensor():
    # d/dx [x * (d/dy (x * y))(y=y0) . 1] = 2x (inner derivative is x, and it depends on x)
    rng = np.random.default_rng(0)
    x, y0, u = (fg.tensor(rng.uniform(-1, 1, 5)) for _ in range(3))

    def outer(x):
        return x * fg.jvp(lambda y: x * y, (y0,), (fg.ones_like(y0),))[1]

    _, d = fg.jvp(outer, (x,), (u,))
    close(d, 2 * to_numpy(x) * to_numpy(u), 1e-14)
    # the same through the outer jvp's own tangent of x, read inside the inner one
    _, d2 = fg.jvp(lambda x: fg.jvp(lambda y: fg.sin(x) * y, (y0,), (y0,))[1], (x,), (u,))
    close(d2, np.cos(to_numpy(x)) * to_numpy(u) * to_numpy(y0), 1e-14)


# -- scalar functions: third and mixed derivatives --------------------------------------------------

SCALAR_FNS = [
    ("sin_exp", lambda m, x: m.sin(x) * m.exp(x)),
    ("tanh_sq", lambda m, x: m.tanh(x * x) / (1 + x * x)),
    ("sigmoid_log", lambda m, x: m.sigmoid(x) * m.log(2 + m.cos(x))),
    ("pow_sqrt", lambda m, x: m.sqrt(1 + x ** 4) - x ** 3),
]


@pytest.mark.parametrize("name,fn", SCALAR_FNS, ids=[n for n, _ in SCALAR_FNS])
def test_third_derivative_scalar(name, fn):
    def d(f):
        return lambda x: fg.jvp(f, (x,), (1.0,))[1]

    def td(f):
        return lambda x: tjvp(f, (x,), (torch.ones_like(x),))[1]

    f1 = d(lambda x: fn(fg, x))
    f3 = d(d(f1))
    t3 = td(td(td(lambda x: fn(torch, x))))
    for x0 in (-0.9, 0.3, 1.4):
        got = f3(x0)
        assert isinstance(got, float)  # Python floats in, Python float out
        assert got == pytest.approx(t3(torch.tensor(x0, dtype=torch.float64)).item(), rel=1e-10, abs=1e-10)
        # finite differences of the second derivative (itself nested jvp)
        f2 = d(f1)
        h = 1e-5
        assert got == pytest.approx((f2(x0 + h) - f2(x0 - h)) / (2 * h), rel=1e-5, abs=1e-6)


def test_mixed_partials_two_arguments():
    # d2/dx dy of f(x, y) through two levels that each perturb a different argument
    def f(m, x, y):
        return m.exp(x * y) * m.sin(x + 2 * y)

    x0, y0 = 0.4, -0.7
    got = fg.jvp(lambda x: fg.jvp(lambda y: f(fg, x, y), (y0,), (1.0,))[1], (x0,), (1.0,))[1]
    tx, ty = T(x0), T(y0)
    ref = tjvp(lambda x: tjvp(lambda y: f(torch, x, y), (ty,), (torch.ones_like(ty),))[1], (tx,),
               (torch.ones_like(tx),))[1]
    assert got == pytest.approx(ref.item(), rel=1e-12)


# -- tensor functions --------------------------------------------------------------------------------


def _ln(x, w, b):
    # torch 2.13's nested forward AD through F.layer_norm disagrees with finite differences
    # (the mixed second derivative is off by O(1)); its composition from mean/var/rsqrt agrees
    mean, var = x.mean(-1, keepdim=True), x.var(-1, correction=0, keepdim=True)
    return (x - mean) * (var + 1e-5).rsqrt() * w + b


def _mlp(m, x, W1, W2):
    return (m.tanh(x @ W1) @ W2).exp().sum(-1)


TENSOR_FNS = [
    ("matmul_chain", (4, 3), lambda m, f, x, c: _mlp(m, x, c[0], c[1])),
    ("softmax", (3, 5), lambda m, f, x, c: f.softmax(x * c[2], dim=-1)),
    ("log_softmax", (3, 5), lambda m, f, x, c: f.log_softmax(x, dim=0) * c[2]),
    ("layer_norm", (3, 5), lambda m, f, x, c: f.layer_norm(x, (5,), c[3], c[4]) if m is fg else _ln(x, c[3], c[4])),
    ("conv2d", (2, 2, 5, 6), lambda m, f, x, c: m.tanh(f.conv2d(x, c[5], c[6], padding=1))),
    ("gelu_mean", (3, 5), lambda m, f, x, c: f.gelu(x).mean(0) * x.sum(0)),
    ("sigmoid_div", (7,), lambda m, f, x, c: m.sigmoid(x) / (1 + x * x)),
]


def _consts(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, s) for s in [(3, 4), (4, 2), (3, 5), (5,), (5,), (3, 2, 3, 3), (3,)]]


def _fg_fn(fn):
    c = [fg.tensor(a) for a in _consts()]
    return lambda x: fn(fg, F, x, c)


def _torch_fn(fn):
    c = [T(a) for a in _consts()]
    return lambda x: fn(torch, TF, x, c)


def _points(shape, n, seed=2):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, shape) for _ in range(n)]


def _noncontig(shape, seed=4):
    """(array, the same values as a non-contiguous fastgrad view: every other element of the last dim)."""
    big = np.random.default_rng(seed).uniform(-1, 1, tuple(shape[:-1]) + (2 * shape[-1],))
    return big[..., ::2], fg.tensor(big)[..., ::2]


@pytest.mark.parametrize("name,shape,fn", TENSOR_FNS, ids=[n for n, _, _ in TENSOR_FNS])
def test_forward_over_forward_tensor(name, shape, fn):
    x, v, u = _points(shape, 3)
    xn, fxn = _noncontig(shape)
    assert not fxn.is_contiguous()
    for xa, fx in ((x, fg.tensor(x)), (xn, fxn)):
        got = nested_fg(_fg_fn(fn), fx, fg.tensor(v), fg.tensor(u))
        ref = nested_torch(_torch_fn(fn), T(xa), T(v), T(u))
        assert not got.requires_grad
        close(got, ref)
        # and central differences of the first-order jvp along u
        h = 1e-5
        first = [to_numpy(fg.jvp(_fg_fn(fn), (fg.tensor(xa + s * h * u),), (fg.tensor(v),))[1]) for s in (1, -1)]
        close(got, (first[0] - first[1]) / (2 * h), 1e-6)


@pytest.mark.parametrize("name,shape,fn", TENSOR_FNS[:4], ids=[n for n, _, _ in TENSOR_FNS[:4]])
def test_third_order_tensor(name, shape, fn):
    # three levels, each with its own direction
    x, v, u, w = (fg.tensor(a) for a in _points(shape, 4, seed=6))
    f = _fg_fn(fn)
    got = fg.jvp(lambda z: nested_fg(f, z, v, u), (x,), (w,))[1]
    tf = _torch_fn(fn)
    tx, tv, tu, tw = (T(to_numpy(a)) for a in (x, v, u, w))
    ref = tjvp(lambda z: nested_torch(tf, z, tv, tu), (tx,), (tw,))[1]
    close(got, ref, 1e-9)


def test_inner_outputs_keep_outer_tangent():
    # the primal an inner jvp returns still carries the outer level's tangent
    x, v, u = (fg.tensor(a) for a in _points((6,), 3, seed=8))

    def outer(x):
        y, _ = fg.jvp(lambda z: fg.exp(z) * z, (x,), (v,))
        return y

    got = fg.jvp(outer, (x,), (u,))[1]
    xa = to_numpy(x)
    close(got, (np.exp(xa) * (1 + xa)) * to_numpy(u), 1e-13)


# -- every op with a jvp rule: forward over forward = reverse over reverse ---------------------------

NESTED_CASES = [c for c in GRAD_CASES if c.jvp and c.gradcheck]


@pytest.mark.parametrize("c", NESTED_CASES, ids=[c.name for c in NESTED_CASES])
def test_every_op_forward_over_forward(c):
    """ct . d2f[u, v] by nested jvp equals grad_x(grad_x(ct . f) . v) . u (reverse over reverse,
    itself checked against finite differences by test_ops_grad's gradgradcheck)."""
    f, flat = _differentiable_fn(c, c.inputs[0])
    rng = np.random.default_rng(11)
    xs = [fg.tensor(a) for a in flat]
    vs = [fg.tensor(rng.uniform(-1, 1, a.shape)) for a in flat]
    us = [fg.tensor(rng.uniform(-1, 1, a.shape)) for a in flat]
    ct = fg.tensor(rng.uniform(-1, 1, tuple(f(*xs).shape)))

    def first(*ys):
        return fg.jvp(f, tuple(ys), tuple(vs))[1]

    second = fg.jvp(first, tuple(xs), tuple(us))[1]
    got = float((second * ct).sum())

    leaves = [x.detach().requires_grad_(True) for x in xs]
    gs = fg.autograd.grad((f(*leaves) * ct).sum(), leaves, create_graph=True, allow_unused=True)
    gv = sum((g * v).sum() for g, v in zip(gs, vs) if g is not None)
    if not isinstance(gv, fg.Tensor) or not gv.requires_grad:
        expect = 0.0  # f is linear in its inputs
    else:
        hs = fg.autograd.grad(gv, leaves, allow_unused=True)
        expect = sum(float((h * u).sum()) for h, u in zip(hs, us) if h is not None)
    assert got == pytest.approx(expect, rel=1e-8, abs=1e-9)


# -- forward over reverse, reverse over forward, hessian ---------------------------------------------


@pytest.mark.parametrize("name,shape,fn", TENSOR_FNS, ids=[n for n, _, _ in TENSOR_FNS])
def test_jvp_of_grad_hvp(name, shape, fn):
    x, v = _points(shape, 2, seed=3)
    f = _fg_fn(fn)
    g, hv = fg.jvp(fg.grad(lambda x: (f(x) ** 2).sum()), (fg.tensor(x),), (fg.tensor(v),))
    tf = _torch_fn(fn)
    tg, thv = tjvp(tgrad(lambda x: (tf(x) ** 2).sum()), (T(x),), (T(v),))
    close(g, tg)
    close(hv, thv)
    assert not g.requires_grad and not hv.requires_grad  # as torch.func: results off the tape


@pytest.mark.parametrize("name,shape,fn", TENSOR_FNS, ids=[n for n, _, _ in TENSOR_FNS])
def test_grad_of_jvp(name, shape, fn):
    x, v = _points(shape, 2, seed=5)
    f = _fg_fn(fn)
    got = fg.grad(lambda x: fg.jvp(f, (x,), (fg.tensor(v),))[1].sum())(fg.tensor(x))
    tf = _torch_fn(fn)
    ref = tgrad(lambda x: tjvp(tf, (x,), (T(v),))[1].sum())(T(x))
    close(got, ref)
    assert not got.requires_grad


def test_grad_of_nested_jvp():
    # reverse over forward over forward: grad of a third derivative
    x, v, u = (fg.tensor(a) for a in _points((5,), 3, seed=9))
    f = _fg_fn(TENSOR_FNS[6][2])
    got = fg.grad(lambda z: nested_fg(f, z, v, u).sum())(x)
    tf = _torch_fn(TENSOR_FNS[6][2])
    tv, tu = T(to_numpy(v)), T(to_numpy(u))
    ref = tgrad(lambda z: nested_torch(tf, z, tv, tu).sum())(T(to_numpy(x)))
    close(got, ref)


def test_hessian_matches_torch():
    x = _points((6,), 1, seed=12)[0]
    f = _fg_fn(TENSOR_FNS[6][2])
    tf = _torch_fn(TENSOR_FNS[6][2])
    H = fg.hessian(lambda x: (f(x) ** 3).sum())(fg.tensor(x))
    tx = T(x)
    tH = torch.autograd.functional.hessian(lambda x: (tf(x) ** 3).sum(), tx)
    close(H, tH)
    assert H.requires_grad == tH.requires_grad == False  # noqa: E712 (torch's default: create_graph=False)
    # a Hessian-vector product by forward over reverse agrees with it
    v = fg.tensor(_points((6,), 1, seed=13)[0])
    _, hv = fg.jvp(fg.grad(lambda x: (f(x) ** 3).sum()), (fg.tensor(x),), (v,))
    close(hv, to_numpy(H) @ to_numpy(v))


def test_jvp_of_hessian():
    # third derivative: the tangent of the Hessian along u
    x, u = _points((4,), 2, seed=14)
    f = lambda x: (fg.sin(x) * fg.exp(x[0] * x)).sum()  # noqa: E731
    tf = lambda x: (torch.sin(x) * torch.exp(x[0] * x)).sum()  # noqa: E731
    _, dH = fg.jvp(fg.hessian(f), (fg.tensor(x),), (fg.tensor(u),))
    ref = tjvp(lambda x: torch.func.hessian(tf)(x), (T(x),), (T(u),))[1]
    close(dH, ref)


# -- errors and bookkeeping --------------------------------------------------------------------------


def test_inner_tangent_shape_mismatch():
    x = fg.tensor(np.ones((2, 3)))

    def outer(x):
        return fg.jvp(lambda y: y * x, (x,), (fg.ones(3, 2, dtype=fg.float64),))[1]

    with pytest.raises(ValueError, match=r"jvp: tangent shape \[3, 2\] does not match primal shape \[2, 3\]"
                                         r" \(argument 0, inside an enclosing jvp\)"):
        fg.jvp(outer, (x,), (x,))
    # the outer level is still usable after the inner one raised
    out, t = fg.jvp(lambda x: fg.jvp(fg.sin, (x,), (x,))[1], (x,), (x,))
    close(t, np.cos(1.0) - np.sin(1.0) * np.ones((2, 3)), 1e-15)


def test_error_inside_inner_jvp_restores_levels():
    def bad(y):
        raise KeyError("boom")

    def outer(x):
        with pytest.raises(KeyError):
            fg.jvp(bad, (x,), (x,))
        assert len(_function.jvp_levels) == 1 and state.forward_level == _function.jvp_levels[0]
        return fg.exp(x)

    _, t = fg.jvp(outer, (0.5,), (2.0,))
    assert t == pytest.approx(2 * np.exp(0.5))


def test_outer_count_mismatch_and_tangent_dtype():
    with pytest.raises(ValueError, match="jvp: got 2 primals but 1 tangents"):
        fg.jvp(lambda x: fg.jvp(lambda a, b: a * b, (x, x), (x,)), (1.0,), (1.0,))
    # a float32 inner tangent is cast to the float64 primal's dtype, outer tangent kept
    x = fg.tensor(np.array([0.5, -1.0]))
    got = fg.jvp(lambda x: fg.jvp(fg.exp, (x,), (fg.ones(2),))[1], (x,), (fg.ones(2, dtype=fg.float64),))[1]
    assert got.dtype == fg.float64
    close(got, np.exp([0.5, -1.0]), 1e-15)


VJP_FNS = [
    ("softmax", lambda m, f, x: f.softmax(x, dim=-1)),
    ("log_softmax", lambda m, f, x: f.log_softmax(x, dim=0)),
    ("layer_norm", lambda m, f, x: f.layer_norm(x, (5,)) if m is fg else _ln(x, 1.0, 0.0)),
    ("gelu", lambda m, f, x: f.gelu(x)),
    ("gelu_tanh", lambda m, f, x: f.gelu(x, approximate="tanh")),
    ("silu", lambda m, f, x: f.silu(x)),
    ("tanh_sigmoid", lambda m, f, x: m.tanh(x) * m.sigmoid(x)),
    ("relu_sq", lambda m, f, x: f.relu(x) ** 2),
]


@pytest.mark.parametrize("name,fn", VJP_FNS, ids=[n for n, _ in VJP_FNS])
def test_jvp_of_vjp(name, fn):
    """fg.vjp's backward pass inside fg.jvp: the vjp rules' native fast paths (taken when no graph
    is recorded) must not drop the running jvp's tangents."""
    x, v, ct = _points((3, 5), 3, seed=15)
    prim, tan = fg.jvp(lambda y: fg.vjp(lambda z: fn(fg, F, z), y)[1](fg.tensor(ct))[0], (fg.tensor(x),),
                       (fg.tensor(v),))
    tprim, ttan = tjvp(lambda y: torch.func.vjp(lambda z: fn(torch, TF, z), y)[1](T(ct))[0], (T(x),), (T(v),))
    close(prim, tprim)
    close(tan, ttan)
    assert not prim.requires_grad and not tan.requires_grad


def test_inplace_inside_inner_jvp_keeps_outer_tangent():
    # z = x.clone(); z.mul_(y); z.add_(x): an in-place write inside the inner jvp pushes both levels
    x, y0, u, w = (fg.tensor(a) for a in _points((4,), 4, seed=16))

    def outer(x):
        def inner(y):
            z = x.clone()
            z.mul_(y)
            z.add_(x.exp())
            return z.sin()

        return fg.jvp(inner, (y0,), (w,))[1]

    got = fg.jvp(outer, (x,), (u,))[1]
    tx, ty, tu, tw = (T(to_numpy(a)) for a in (x, y0, u, w))
    ref = tjvp(lambda x: tjvp(lambda y: (x * y + x.exp()).sin(), (ty,), (tw,))[1], (tx,), (tu,))[1]
    close(got, ref)


def _attn_torch(q, k, v, mask=None):
    # composed (torch's fused CPU attention has no forward AD)
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, -1) @ v


NN_FNS = [
    ("cross_entropy", (5, 4), lambda m, f, x, c: f.cross_entropy(x * x + x, c[0])),
    ("cross_entropy_none", (5, 4), lambda m, f, x, c: f.cross_entropy(m.tanh(x), c[0], reduction="none")),
    ("sdpa", (2, 3, 6), lambda m, f, x, c: (f.scaled_dot_product_attention(x, c[1], c[2]) if m is fg
                                            else _attn_torch(x, c[1], c[2])) ** 2),
    ("sdpa_causal_k", (2, 4, 6),
     lambda m, f, x, c: (f.scaled_dot_product_attention(c[1], x, x, attn_mask=c[3]) if m is fg
                         else _attn_torch(c[1], x, x, ~c[3])).sin()),
]


def _nn_consts(m):
    rng = np.random.default_rng(17)
    target = rng.integers(0, 4, 5)
    q, k = rng.uniform(-1, 1, (2, 4, 6)), rng.uniform(-1, 1, (2, 3, 6))
    mask = np.tril(np.ones((4, 4), dtype=bool))  # True = attend (torch's bool attn_mask)
    if m is fg:
        return [fg.tensor(target), fg.tensor(k), fg.tensor(k[:, ::-1].copy()), fg.tensor(mask), q]
    return [torch.tensor(target), T(k), T(k[:, ::-1].copy()), torch.tensor(mask), q]


@pytest.mark.parametrize("name,shape,fn", NN_FNS, ids=[n for n, _, _ in NN_FNS])
def test_nn_ops_nested(name, shape, fn):
    """Fused nn ops whose rules keep native arrays (cross_entropy's log-probabilities, attention's
    probabilities): nested jvp, grad of jvp, jvp of grad and of a plain autograd.grad."""
    cf, ct = _nn_consts(fg), _nn_consts(torch)
    if name == "sdpa_causal_k":
        cf[1], ct[1] = fg.tensor(cf[4]), T(ct[4])
    f = lambda x: fn(fg, F, x, cf)  # noqa: E731
    tf = lambda x: fn(torch, TF, x, ct)  # noqa: E731
    x, v, u = _points(shape, 3, seed=18)
    fx, fv, fu, tx, tv, tu = fg.tensor(x), fg.tensor(v), fg.tensor(u), T(x), T(v), T(u)
    close(nested_fg(f, fx, fv, fu), nested_torch(tf, tx, tv, tu))
    close(fg.grad(lambda z: fg.jvp(f, (z,), (fv,))[1].sum())(fx), tgrad(lambda z: tjvp(tf, (z,), (tv,))[1].sum())(tx))
    close(fg.jvp(fg.grad(lambda z: f(z).sum()), (fx,), (fv,))[1], tjvp(tgrad(lambda z: tf(z).sum()), (tx,), (tv,))[1])
    # autograd.grad without create_graph inside jvp: the native backward paths must not drop tangents
    zr = fx.detach().requires_grad_(True)
    _, t_plain = fg.jvp(lambda z: fg.autograd.grad(f(z).sum(), [z])[0], (zr,), (fv,))
    close(t_plain, tjvp(tgrad(lambda z: tf(z).sum()), (tx,), (tv,))[1])


def _fd_nested(f, x, v, u, h=1e-5):
    """Central differences along u of the first-order jvp."""
    return (to_numpy(fg.jvp(f, (fg.tensor(x + h * u),), (fg.tensor(v),))[1].detach())
            - to_numpy(fg.jvp(f, (fg.tensor(x - h * u),), (fg.tensor(v),))[1].detach())) / (2 * h)


MODULE_FNS = [
    # (name, input shape, module factory, call); the fused RNN's jvp rule runs a fg.jvp of its own
    ("lstm", (2, 3, 3), lambda: fg.nn.LSTM(3, 4, batch_first=True), lambda m, x: m(x)[0]),
    ("gru_2layer", (3, 2, 3), lambda: fg.nn.GRU(3, 4, num_layers=2), lambda m, x: m(x)[0].tanh()),
    ("mha", (3, 2, 6), lambda: fg.nn.MultiheadAttention(6, 2), lambda m, x: m(x, x, x)[0]),
    ("batch_norm", (4, 3, 2, 2), lambda: fg.nn.BatchNorm2d(3), lambda m, x: m(x) ** 2),
]


@pytest.mark.parametrize("name,shape,make,call", MODULE_FNS, ids=[n for n, *_ in MODULE_FNS])
def test_modules_nested_and_grad_of_jvp(name, shape, make, call):
    fg.manual_seed(0)
    mod = make().double()
    f = lambda x: call(mod, x)  # noqa: E731
    x, v, u = _points(shape, 3, seed=19)
    got = nested_fg(f, fg.tensor(x), fg.tensor(v), fg.tensor(u))
    close(got.detach(), _fd_nested(f, x, v, u), 1e-6)
    # grad of jvp = reverse over reverse: grad_x(grad_x(ct . f) . v)
    ct = fg.tensor(_points(tuple(f(fg.tensor(x)).shape), 1, seed=20)[0])
    g1 = fg.grad(lambda z: (fg.jvp(f, (z,), (fg.tensor(v),))[1] * ct).sum())(fg.tensor(x))
    xl = fg.tensor(x, requires_grad=True)
    (gx,) = fg.autograd.grad((f(xl) * ct).sum(), [xl], create_graph=True)
    (g2,) = fg.autograd.grad((gx * fg.tensor(v)).sum(), [xl])
    close(g1.detach(), to_numpy(g2), 1e-9)
    # jvp of a plain autograd.grad (no create_graph: native backward paths) = jvp of fg.grad
    _, hv_plain = fg.jvp(lambda z: fg.autograd.grad((f(z) * ct).sum(), [z])[0], (xl,), (fg.tensor(v),))
    _, hv = fg.jvp(fg.grad(lambda z: (f(z) * ct).sum()), (fg.tensor(x),), (fg.tensor(v),))
    close(hv_plain.detach(), to_numpy(hv.detach()), 1e-12)
    h = 1e-5
    gp, gm = (to_numpy(fg.grad(lambda z: (f(z) * ct).sum())(fg.tensor(x + s * h * v)).detach()) for s in (1, -1))
    close(hv.detach(), (gp - gm) / (2 * h), 1e-6)
