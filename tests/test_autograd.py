"""The autograd engine and the function transforms, against PyTorch:
accumulation, retain_graph, version counters, grad modes, hooks,
autograd.grad, higher order, deep graphs, and fg.grad / value_and_grad /
vjp / jvp / jacobian / hessian against torch.func."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import fastgrad as fg
from helpers import to_numpy

# torch's own warnings about the reference computations
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pair(values, dtype=np.float64, requires_grad=True, device="cpu"):
    """fastgrad (on `device`) and torch (CPU) tensors of the same values."""
    a = np.asarray(values, dtype=dtype)
    return fg.tensor(a, requires_grad=requires_grad, device=device), torch.tensor(a, requires_grad=requires_grad)


def close(a, e, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(to_numpy(a), to_numpy(e), rtol=rtol, atol=atol)


# -- accumulation -----------------------------------------------------------------------------------


def test_fan_out_and_shared_leaves(device):
    def f(m, x, w):
        h = x * w  # w used three times, x twice
        return (h.sum() + (w * w).sum() + (x @ w.reshape(3, 1)).sum() + m.tanh(h).mean()).reshape(())

    x, tx = pair([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]], device=device)
    w, tw = pair([0.7, -0.1, 2.0], device=device)
    f(fg, x, w).backward()
    f(torch, tx, tw).backward()
    close(x.grad, tx.grad), close(w.grad, tw.grad)


def test_repeated_backward_accumulates(device):
    x, tx = pair([1.0, 2.0, 3.0], device=device)
    for _ in range(3):
        (x * x).sum().backward()
        (tx * tx).sum().backward()
    close(x.grad, tx.grad)
    close(x.grad, [6.0, 12.0, 18.0])
    g = x.grad
    (x * 2).sum().backward()
    assert x.grad is g, "accumulation replaced the .grad tensor instead of adding in place"
    x.grad = None
    (x * 2).sum().backward()
    close(x.grad, [2.0, 2.0, 2.0])


def test_grad_not_shared_between_leaves():
    a, b = pair([1.0, 2.0])[0], pair([3.0, 4.0])[0]
    (a + b).sum().backward()
    a.grad.add_(1)
    close(b.grad, [1.0, 1.0])


def test_broadcast_gradient_has_input_shape():
    x, tx = pair(np.ones((3, 1)))
    b, tb = pair(np.arange(4.0))
    s, ts = pair(2.0)
    (x * b * s).sum().backward()
    (tx * tb * ts).sum().backward()
    assert x.grad.shape == (3, 1) and b.grad.shape == (4,) and s.grad.shape == ()
    close(x.grad, tx.grad), close(b.grad, tb.grad), close(s.grad, ts.grad)


def test_mixed_dtype_gradients_keep_input_dtype():
    x = fg.tensor([1.0, 2.0], dtype=fg.float32, requires_grad=True)
    y = fg.tensor([3.0, 4.0], dtype=fg.float64, requires_grad=True)
    (x * y).sum().backward()
    assert x.grad.dtype is fg.float32 and y.grad.dtype is fg.float64
    close(x.grad, [3.0, 4.0]), close(y.grad, [1.0, 2.0])


def test_retain_graph_and_second_backward_raises():
    x, tx = pair([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    ty = (tx.exp() * tx).sum()
    ty.backward(retain_graph=True)
    ty.backward()
    close(x.grad, tx.grad)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = (x * x).sum()
    fg.autograd.grad(z, x)
    with pytest.raises(RuntimeError, match="second time"):
        fg.autograd.grad(z, x)


def test_backward_without_grad_fn_raises():
    with pytest.raises(RuntimeError):
        fg.tensor([1.0, 2.0]).sum().backward()


def test_nonscalar_backward():
    x, tx = pair([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    g = np.array([[1.0, -1.0], [0.5, 2.0]])
    y.backward(gradient=fg.tensor(g))
    (tx * tx).backward(gradient=torch.tensor(g))
    close(x.grad, tx.grad)
    with pytest.raises(RuntimeError):
        (x * 2).backward(gradient=fg.ones(3))
    x.grad = None
    (x * 3).sum().reshape(1, 1).backward()  # a one-element output needs no gradient
    close(x.grad, np.full((2, 2), 3.0))


def test_leaf_backward():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    x.backward(gradient=fg.tensor([3.0, 4.0]))
    close(x.grad, [3.0, 4.0])


def test_backward_inputs_argument():
    x, y = pair([1.0, 2.0])[0], pair([3.0, 4.0])[0]
    (x * y).sum().backward(inputs=[x])
    close(x.grad, [3.0, 4.0])
    assert y.grad is None


# -- in-place and version counters ----------------------------------------------------------------


@pytest.mark.parametrize("op", ["add_", "mul_", "sub_", "div_", "setitem", "zero_", "fill_", "clamp_", "copy_",
                                "iadd", "exp_"])
def test_inplace_on_saved_tensor_raises(op):
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()  # Mul saved h
    if op == "setitem":
        h[0] = 5.0
    elif op == "iadd":
        h += 1
    elif op in ("zero_", "exp_"):
        getattr(h, op)()
    elif op == "fill_":
        h.fill_(2.0)
    elif op == "clamp_":
        h.clamp_(0, 1)
    elif op == "copy_":
        h.copy_(fg.ones(3))
    else:
        getattr(h, op)(2.0)
    with pytest.raises(RuntimeError, match="inplace|in-place") as e:
        y.backward()
    assert "Mul" in str(e.value), str(e.value)


def test_inplace_on_saved_input_via_view_raises():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 1
    y = h.exp().sum() + (h * h).sum()
    h[1:].mul_(2)  # through a view of h
    with pytest.raises(RuntimeError, match="inplace|in-place"):
        y.backward()


def test_inplace_not_saved_is_fine_and_matches_torch():
    def f(m, x):
        h = x * 2
        h += 1  # Mul does not need h's value; the result does flow on
        h[0] = h[0] * 3  # x[0] * 3 saves nothing of h[0], so writing h is fine (as torch)
        h[1:] /= 2.0
        return (h * x).sum()

    x, tx = pair([1.0, -2.0, 3.0])
    f(fg, x).backward()
    f(torch, tx).backward()
    close(x.grad, tx.grad)


def test_inplace_on_alias_of_saved_tensor_raises_like_torch():
    for m in (fg, torch):
        x = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
        h = x * 2
        h.mul_(h.detach())  # mul_ saves `other`, which the write itself changes
        with pytest.raises(RuntimeError, match="inplace"):
            (h * x).sum().backward()


def test_exp_output_modified_raises():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # exp saves its output
    s = y.sum()
    y.add_(1)
    with pytest.raises(RuntimeError, match="inplace|in-place"):
        s.backward()


def _v_slice_mul(m, x):
    y = x * 1
    y[0:2].mul_(2)
    return (y * y).sum()


def _v_transpose_add_clamp(m, x):
    y = x.reshape(2, 3) * 1
    y.t().add_(x.reshape(2, 3).t())
    y[1:].clamp_(max=2.5)
    return (y ** 2).sum()


def _v_stale_view(m, x):
    y = x * 1
    a = y[:2]  # made before y is written
    y.mul_(3)
    return (a * a).sum() + y.sum()


def _v_view_of_view(m, x):
    y = x * 2
    v = y.view(2, 3)[1]
    v.add_(x[:3] * x[3:])
    return (y.exp() * v.sum()).sum()


def _v_zero_fill(m, x):
    y = x.reshape(2, 3) * 1
    y[1].zero_()
    y[:, 0].fill_(2.0)
    return (y * x.reshape(2, 3)).sum()


def _v_copy_into_buffer(m, x):
    buf = m.zeros(2, 3, dtype=x.dtype)  # no grad until a value that needs one is written
    buf[0].copy_(x[:3])
    buf[1].copy_(x[3:] * 2)
    return (buf * buf).sum()


def _v_setitem_on_view(m, x):
    y = x.reshape(2, 3) * 1
    row = y[1]
    row[0] = x[0] * 5
    row[1:] *= 2
    return (y * y).sum()


def _v_expand_read_after_write(m, x):
    y = x[:3] * 1
    e = y.unsqueeze(0).expand(2, 3)
    y[1:].mul_(x[3:5])
    return (e * x[:3]).sum()


def _v_flip_write(m, x):
    y = x * 1
    if m is torch:  # torch's flip copies; write the same positions through indexing
        y[[5, 4, 3]] = y[[5, 4, 3]] * 3
    else:
        y.flip(0)[:3].mul_(3)
    return (y * y).sum()


VIEW_WRITES = {"slice_mul": _v_slice_mul, "transpose_add_clamp": _v_transpose_add_clamp, "stale_view": _v_stale_view,
               "view_of_view": _v_view_of_view, "zero_fill": _v_zero_fill, "copy_into_buffer": _v_copy_into_buffer,
               "setitem_on_view": _v_setitem_on_view, "expand_read_after_write": _v_expand_read_after_write,
               "flip_write": _v_flip_write}


@pytest.mark.parametrize("name", list(VIEW_WRITES))
def test_inplace_through_views_matches_torch(name):
    """An in-place write through a view updates the base's graph (torch's CopySlices), and other views
    of the base see the new graph: never a silently wrong gradient."""
    f = VIEW_WRITES[name]
    a = np.array([0.5, -1.2, 2.0, 0.3, 1.1, -0.7])
    x, tx = pair(a)
    f(fg, x).backward()
    f(torch, tx).backward()
    close(x.grad, tx.grad)
    # forward mode through the same writes
    v = np.linspace(-1, 1, 6)
    _, t = fg.jvp(lambda z: f(fg, z), (fg.tensor(a),), (fg.tensor(v),))
    close(t, float(tx.grad.numpy() @ v), rtol=1e-9)


def test_inplace_on_view_of_leaf_raises():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf"):
        x[:2].mul_(2)
    with pytest.raises(RuntimeError, match="view of a leaf"):
        x.view(1, 3)[0][0] = 1.0
    with fg.no_grad():
        x[:2].mul_(2)
    close(x.detach(), [2.0, 4.0, 3.0])


def test_inplace_through_view_on_saved_base_raises():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    z = (y * y).sum()  # saves y
    y[1:].add_(1)
    with pytest.raises(RuntimeError, match="inplace"):
        z.backward()


@pytest.mark.parametrize("op", [lambda x: x.add_(1), lambda x: x.mul_(2), lambda x: x.zero_(),
                                lambda x: x.fill_(1.0), lambda x: x.__setitem__(0, 1.0), lambda x: x.clamp_(0, 1),
                                lambda x: x.copy_(fg.ones(3))],
                         ids=["add_", "mul_", "zero_", "fill_", "setitem", "clamp_", "copy_"])
def test_inplace_on_leaf_requiring_grad_raises(op):
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        op(x)
    with fg.no_grad():
        op(x)  # allowed without recording (optimizer updates)


# -- grad modes ------------------------------------------------------------------------------------


def test_no_grad_records_nothing():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with fg.no_grad():
        assert not fg.is_grad_enabled()
        y = (x * 2).exp().sum()
        z = x[0] + x.mean()
    assert fg.is_grad_enabled()
    for t in (y, z):
        assert not t.requires_grad and t.grad_fn is None and t.is_leaf

    @fg.no_grad()
    def f(a):
        return a * 3

    @fg.no_grad
    def g(a):
        return a * 3

    assert not f(x).requires_grad and not g(x).requires_grad and fg.is_grad_enabled()
    with fg.no_grad():
        with fg.enable_grad():
            w = x * 2
        assert w.requires_grad and w.grad_fn is not None
    with fg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    fg.set_grad_enabled(False)
    try:
        assert not fg.is_grad_enabled()
    finally:
        fg.set_grad_enabled(True)


def test_no_grad_restores_on_exception():
    with pytest.raises(ValueError):
        with fg.no_grad():
            raise ValueError("x")
    assert fg.is_grad_enabled()


def test_detach_and_requires_grad():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    d[0] = 100.0  # shares memory with y
    assert y[0].item() == 100.0
    z = (y.detach() * x).sum()
    z.backward()
    close(x.grad, [100.0, 4.0])
    w = fg.tensor([1.0]).requires_grad_()
    assert w.requires_grad and w.is_leaf
    u = y.detach_()
    assert u is y and not y.requires_grad and y.is_leaf


def test_retain_grad_and_hooks():
    def run(m, lib):
        x = (m.tensor if lib == "fg" else torch.tensor)([1.0, -2.0, 3.0], requires_grad=True)
        seen = []
        x.register_hook(lambda g: seen.append(to_numpy(g).copy()))
        h = x * x
        h.retain_grad()
        k = h.exp()
        hd = k.register_hook(lambda g: g * 2)  # modifies the gradient flowing on
        k.retain_grad()
        out = (k * 0.1).sum() + h.sum()
        out.backward()
        return x.grad, h.grad, k.grad, seen, hd

    fx, fh, fk, fseen, handle = run(fg, "fg")
    tx, th, tk, tseen, _ = run(torch, "torch")
    # float32 through exp: each side's exp is within ~1 ulp, not the same bits
    rtol = 4 * np.finfo(np.float32).eps
    close(fx, tx, rtol), close(fh, th, rtol), close(fk, tk, rtol)
    close(fseen[0], tseen[0], rtol)
    assert handle is not None


def test_hook_on_leaf_modifies_grad_and_remove():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    h = x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    close(x.grad, [20.0, 40.0])
    h.remove()
    x.grad = None
    (x * x).sum().backward()
    close(x.grad, [2.0, 4.0])
    with pytest.raises(RuntimeError):
        fg.tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad_on_leaf_and_non_leaf_default():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert not y.retains_grad
    (y * y).sum().backward()
    assert y.grad is None  # non-leaf without retain_grad
    z = x * 3
    z.retain_grad()
    assert z.retains_grad
    x.retain_grad()  # no-op on a leaf
    assert x.grad is not None


# -- autograd.grad --------------------------------------------------------------------------------


def test_autograd_grad():
    x, tx = pair([0.5, -1.0, 2.0])
    y, ty = pair([1.5, 0.25, -0.5])
    out = (x.sin() * y).sum()
    tout = (tx.sin() * ty).sum()
    gx, gy = fg.autograd.grad(out, [x, y])
    tgx, tgy = torch.autograd.grad(tout, [tx, ty])
    close(gx, tgx), close(gy, tgy)
    assert x.grad is None and y.grad is None
    (g,) = fg.autograd.grad((x * x).sum(), [x])
    close(g, 2 * to_numpy(x))
    g = fg.autograd.grad((x * x).sum(), x)
    assert isinstance(g, tuple) and len(g) == 1


def test_autograd_grad_allow_unused_and_outputs():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    z = fg.tensor([3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        fg.autograd.grad((x * 2).sum(), [x, z])
    gx, gz = fg.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None
    close(gx, [2.0, 2.0])
    gx, gz = fg.autograd.grad((x * 2).sum(), [x, z], materialize_grads=True)
    close(gz, [0.0])
    # several outputs and grad_outputs
    a, b = x * 2, x * x
    (g,) = fg.autograd.grad([a, b], [x], grad_outputs=[fg.tensor([1.0, 1.0]), fg.tensor([0.5, 2.0])])
    close(g, [2 + 0.5 * 2, 2 + 2 * 4])
    # w.r.t. a non-leaf
    h = x * 3
    (gh,) = fg.autograd.grad((h * h).sum(), [h])
    close(gh, 2 * to_numpy(h))
    with pytest.raises(RuntimeError):
        fg.autograd.grad((x * 2).sum(), [fg.tensor([1.0])])


def test_autograd_grad_create_graph(device):
    x, tx = pair([0.3, -1.2, 2.0], device=device)
    (g,) = fg.autograd.grad((x ** 3).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad((tx ** 3).sum(), [tx], create_graph=True)
    assert g.requires_grad
    (gg,) = fg.autograd.grad((g * g).sum(), [x])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [tx])
    close(gg, tgg)
    y = x.tanh().sum()
    y.backward(create_graph=True)
    assert x.grad.requires_grad
    (h,) = fg.autograd.grad(x.grad.sum(), [x])
    ty = tx.tanh().sum()
    ty.backward(create_graph=True)
    (th,) = torch.autograd.grad(tx.grad.sum(), [tx])
    close(h, th)


SCALAR_FNS = {
    "poly": lambda m, x: x ** 4 - 3 * x ** 2 + x,
    "exp_sin": lambda m, x: m.exp(m.sin(x)) * x,
    "tanh_ratio": lambda m, x: m.tanh(x) / (1 + x * x),
    "log_sigmoid": lambda m, x: m.log(m.sigmoid(x)) + m.sqrt(x * x + 1),
    "softplus_gelu": lambda m, x: m.nn.functional.softplus(x) * m.nn.functional.gelu(x)
    if m is torch else m.softplus(x) * m.gelu(x),
    "pow_tensor": lambda m, x: (x * x + 1) ** (x * 0.5),
    "reductions": lambda m, x: m.logsumexp(m.stack([x, 2 * x, x * x]), 0) + m.stack([x, -x]).amax(0),
}


@pytest.mark.parametrize("name", list(SCALAR_FNS))
def test_higher_order_vs_torch(name, device):
    f = SCALAR_FNS[name]
    pts = np.array([-1.3, -0.4, 0.2, 0.9, 1.7])
    x, tx = pair(pts, device=device)
    y, ty = f(fg, x).sum(), f(torch, tx).sum()
    g1, t1 = fg.autograd.grad(y, [x], create_graph=True)[0], torch.autograd.grad(ty, [tx], create_graph=True)[0]
    close(g1, t1, rtol=1e-9)
    g2, t2 = fg.autograd.grad(g1.sum(), [x], create_graph=True)[0], torch.autograd.grad(t1.sum(), [tx],
                                                                                        create_graph=True)[0]
    close(g2, t2, rtol=1e-9)
    g3, t3 = fg.autograd.grad(g2.sum(), [x])[0], torch.autograd.grad(t2.sum(), [tx])[0]
    close(g3, t3, rtol=1e-8, atol=1e-10)


# -- graph shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mul"])
def test_deep_graph_no_recursion_error(kind):
    x = fg.tensor(1.0, dtype=fg.float64, requires_grad=True)
    y = x
    n = 100_000
    for _ in range(n):
        y = y + 1 if kind == "add" else y * 1.0001
    y.backward()
    expect = 1.0 if kind == "add" else 1.0001 ** n
    assert abs(x.grad.item() - expect) < 1e-6 * expect


def test_diamond_with_reused_non_leaf(device):
    def f(m, x):
        a = x.sin()
        b = a * a  # a reused
        c = a.exp() + b
        d = c * a + b.sum()  # a, b, c reused at several depths
        return (d * d).sum()

    x, tx = pair([0.3, -0.8, 1.4], device=device)
    f(fg, x).backward()
    f(torch, tx).backward()
    close(x.grad, tx.grad)


def test_saved_buffers_released():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert node._out is None  # the saved output was freed
    with fg.no_grad():
        z = x.exp()
    assert z.grad_fn is None


def test_multiple_roots_shared_graph():
    x, tx = pair([1.0, 2.0])
    h, th = x * x, tx * tx
    fg.autograd.backward([h.sum(), (h * 3).sum()])
    torch.autograd.backward([th.sum(), (th * 3).sum()])
    close(x.grad, tx.grad)


def test_gradient_of_integer_and_comparison_outputs():
    x = fg.tensor([1.0, -2.0], requires_grad=True)
    assert not (x > 0).requires_grad
    assert not x.argmax().requires_grad
    assert not x.long().requires_grad
    y = (x * (x > 0)).sum()  # a mask multiplies in
    y.backward()
    close(x.grad, [1.0, 0.0])


def test_custom_function():
    class Cube(fg.autograd.Function):
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return fg._C.mul(fg._C.mul(x._data, x._data), x._data)

        def vjp(ctx, g):
            (x,) = ctx.saved_tensors
            return (g * 3 * x * x,)

        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return t * 3 * x * x

    x = fg.tensor([1.0, 2.0], dtype=fg.float64, requires_grad=True)
    y = Cube.apply(x)
    y.sum().backward()
    close(x.grad, [3.0, 12.0])
    assert fg.autograd.gradcheck(lambda t: Cube.apply(t), (fg.tensor([0.5, -1.5], dtype=fg.float64,
                                                                     requires_grad=True),))
    _, t = fg.jvp(lambda t: Cube.apply(t), (fg.tensor([2.0], dtype=fg.float64),), (fg.tensor([1.0],
                                                                                        dtype=fg.float64),))
    close(t, [12.0])


def test_gradcheck_detects_wrong_rule():
    class Bad(fg.autograd.Function):
        def forward(ctx, x):
            return fg._C.mul(x._data, x._data)

        def vjp(ctx, g):
            return (g,)

    x = fg.tensor([0.5, 1.5], dtype=fg.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="gradcheck"):
        fg.autograd.gradcheck(lambda t: Bad.apply(t), (x,))
    assert fg.autograd.gradcheck(lambda t: Bad.apply(t), (x,), raise_exception=False) is False


# -- function transforms --------------------------------------------------------------------------

TF = {
    "quad": (lambda m, x: (x * x).sum() * 0.5 + m.sin(x).sum(), [(4,)]),
    "mlp": (lambda m, x: m.tanh(x.reshape(2, 3) @ m.ones(3, 2, dtype=x.dtype) * 0.3).sum(), [(6,)]),
    "logsumexp": (lambda m, x: m.logsumexp(x, 0), [(5,)]),
    "norm": (lambda m, x: m.sqrt((x * x).sum() + 1.0), [(2, 3)]),
    "softmax_dot": (lambda m, x: (m.softmax(x, 0) * m.arange(4, dtype=x.dtype)).sum(), [(4,)]),
}


def _tf_input(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape)


@pytest.mark.parametrize("name", list(TF))
def test_grad_value_and_grad_hessian_vs_torch_func(name):
    f, (shape,) = TF[name]
    a = _tf_input(shape)
    x, tx = fg.tensor(a), torch.tensor(a)
    close(fg.grad(lambda t: f(fg, t))(x), torch.func.grad(lambda t: f(torch, t))(tx), rtol=1e-9)
    v, g = fg.value_and_grad(lambda t: f(fg, t))(x)
    close(v, f(torch, tx)), close(g, torch.func.grad(lambda t: f(torch, t))(tx), rtol=1e-9)
    H = fg.hessian(lambda t: f(fg, t))(x)
    tH = torch.func.hessian(lambda t: f(torch, t))(tx)
    assert tuple(H.shape) == tuple(tH.shape)
    close(H, tH, rtol=1e-8, atol=1e-10)
    assert not fg.grad(lambda t: f(fg, t))(x).requires_grad


VEC_FNS = {
    "elementwise": (lambda m, x: m.exp(x) * m.sin(x), [(4,)]),
    "matvec": (lambda m, x: m.tanh(m.arange(12, dtype=x.dtype).reshape(3, 4) * 0.1 @ x), [(4,)]),
    "cumsum_softmax": (lambda m, x: m.softmax(m.cumsum(x, 0), 0), [(5,)]),
    "matrix_out": (lambda m, x: x.reshape(2, 3).T @ x.reshape(2, 3), [(6,)]),
}


@pytest.mark.parametrize("name", list(VEC_FNS))
def test_jacobian_jvp_vjp_vs_torch_func(name):
    f, (shape,) = VEC_FNS[name]
    a = _tf_input(shape)
    v = _tf_input(shape, seed=1)
    x, tx = fg.tensor(a), torch.tensor(a)
    J, tJ = fg.jacobian(lambda t: f(fg, t))(x), torch.func.jacrev(lambda t: f(torch, t))(tx)
    assert tuple(J.shape) == tuple(tJ.shape)
    close(J, tJ, rtol=1e-9)
    out, tang = fg.jvp(lambda t: f(fg, t), (x,), (fg.tensor(v),))
    tout, ttang = torch.func.jvp(lambda t: f(torch, t), (tx,), (torch.tensor(v),))
    close(out, tout), close(tang, ttang, rtol=1e-9)
    out, vjp_fn = fg.vjp(lambda t: f(fg, t), x)
    ct = _tf_input(tuple(out.shape), seed=2)
    tout, tvjp = torch.func.vjp(lambda t: f(torch, t), tx)
    (g,) = vjp_fn(fg.tensor(ct))
    close(out, tout), close(g, tvjp(torch.tensor(ct))[0], rtol=1e-9)


def test_value_and_grad_argnums_tuple():
    def f(m, x, y, z):
        return (m.sin(x) * y).sum() + (y * y).sum() * z

    a, b = _tf_input((3,)), _tf_input((3,), seed=1)
    x, y = fg.tensor(a), fg.tensor(b)
    v, (gx, gz) = fg.value_and_grad(lambda x, y, z: f(fg, x, y, z), argnums=(0, 2))(x, y, 2.0)
    tg = torch.func.grad(lambda x, y, z: f(torch, x, y, z), argnums=(0, 2))(torch.tensor(a), torch.tensor(b),
                                                                              torch.tensor(2.0, dtype=torch.float64))
    close(v, f(torch, torch.tensor(a), torch.tensor(b), 2.0))
    close(gx, tg[0]), close(gz, tg[1])
    assert isinstance(gz, float)  # a Python float argument gets a Python float gradient
    gy = fg.grad(lambda x, y, z: f(fg, x, y, z), argnums=1)(x, y, 2.0)
    close(gy, torch.func.grad(lambda x, y, z: f(torch, x, y, z), argnums=1)(torch.tensor(a), torch.tensor(b), 2.0))
    with pytest.raises(IndexError):
        fg.grad(lambda x: x, argnums=3)(1.0)
    with pytest.raises(TypeError):
        fg.grad(lambda x: x * 1)(fg.ones(3))  # not a scalar


def _py(m, x):
    return m.exp(x) * m.sin(x) + x ** 3


@pytest.mark.parametrize("x0", [-1.5, 0.0, 0.7, 2.0])
def test_transforms_on_python_floats(x0):
    import fastgrad.numpy as fnp

    f = lambda x: fnp.exp(x) * fnp.sin(x) + x ** 3  # noqa: E731
    tf = lambda x: torch.exp(x) * torch.sin(x) + x ** 3  # noqa: E731
    tx = torch.tensor(x0, dtype=torch.float64)
    d1 = fg.grad(f)(x0)
    assert isinstance(d1, float)
    assert abs(d1 - torch.func.grad(tf)(tx).item()) < 1e-10
    d2 = fg.grad(fg.grad(f))(x0)
    assert isinstance(d2, float)
    assert abs(d2 - torch.func.grad(torch.func.grad(tf))(tx).item()) < 1e-9
    d3 = fg.grad(fg.grad(fg.grad(f)))(x0)
    assert abs(d3 - torch.func.grad(torch.func.grad(torch.func.grad(tf)))(tx).item()) < 1e-8
    v, g = fg.value_and_grad(f)(x0)
    assert isinstance(v, float) and abs(v - tf(tx).item()) < 1e-12
    out, t = fg.jvp(f, (x0,), (1.0,))
    assert abs(t - d1) < 1e-10 and abs(out - v) < 1e-12
    out, fn = fg.vjp(f, x0)
    assert abs(fn(1.0)[0] - d1) < 1e-10
    assert abs(float(fg.hessian(f)(x0)) - d2) < 1e-9
    assert abs(fg.grad(lambda x: 3.0)(x0)) == 0.0  # a constant function


def test_composition():
    def f(x):
        return (fg.sin(x) * x * x).sum()

    def tf(x):
        return (torch.sin(x) * x * x).sum()

    a = _tf_input((3,))
    x, tx = fg.tensor(a), torch.tensor(a)
    # grad of a scalar function of grad
    g2 = fg.grad(lambda t: fg.grad(f)(t).sum())(x)
    tg2 = torch.func.grad(lambda t: torch.func.grad(tf)(t).sum())(tx)
    close(g2, tg2, rtol=1e-9)
    # jacobian(grad) is the Hessian
    close(fg.jacobian(fg.grad(f))(x), torch.func.hessian(tf)(tx), rtol=1e-9)
    # forward over reverse: jvp of grad = Hessian-vector product
    v = _tf_input((3,), seed=3)
    _, hvp = fg.jvp(fg.grad(f), (x,), (fg.tensor(v),))
    close(hvp, torch.func.hessian(tf)(tx) @ torch.tensor(v), rtol=1e-9)
    # grad inside a function that is itself differentiated by autograd.grad
    w = fg.tensor(a, requires_grad=True)
    out = (fg.grad(f)(w) * w).sum()
    (gw,) = fg.autograd.grad(out, [w])
    tw = torch.tensor(a, requires_grad=True)
    tout = (torch.func.grad(tf)(tw) * tw).sum()
    (tgw,) = torch.autograd.grad(tout, [tw])
    close(gw, tgw, rtol=1e-9)


def test_jvp_is_forward_mode():
    calls = []

    class Spy(fg.autograd.Function):
        def forward(ctx, x):
            return fg._C.copy(x._data)

        def vjp(ctx, g):
            calls.append("vjp")
            return (g,)

        def jvp(ctx, t):
            calls.append("jvp")
            return t

    fg.jvp(lambda t: Spy.apply(t) * 2, (fg.ones(2),), (fg.ones(2),))
    assert calls == ["jvp"]


def test_jvp_tuple_outputs_and_errors():
    out, t = fg.jvp(lambda x: (x * 2, x.sum()), (fg.ones(3),), (fg.tensor([1.0, 2.0, 3.0]),))
    close(out[0], [2.0, 2.0, 2.0]), close(t[0], [2.0, 4.0, 6.0]), close(t[1], 6.0)
    with pytest.raises(ValueError):
        fg.jvp(lambda x: x, (fg.ones(3),), (fg.ones(2),))
    with pytest.raises(TypeError):
        fg.grad(lambda x: x)(fg.tensor([1, 2]))


def test_transforms_tuple_outputs_and_argnums():
    a, b = _tf_input((3,)), _tf_input((2,), seed=1)
    x, y, tx, ty = fg.tensor(a), fg.tensor(b), torch.tensor(a), torch.tensor(b)

    def f(m, p, q):
        return (m.sin(p) * 2, m.outer(p, q).sum(0) * q)

    J = fg.jacobian(lambda p, q: f(fg, p, q), argnums=(0, 1))(x, y)
    tJ = torch.func.jacrev(lambda p, q: f(torch, p, q), argnums=(0, 1))(tx, ty)
    for out_j, tout_j in zip(J, tJ):
        for Jij, tJij in zip(out_j, tout_j):
            assert tuple(Jij.shape) == tuple(tJij.shape)
            close(Jij, tJij, rtol=1e-9)
    out, fn = fg.vjp(lambda p, q: f(fg, p, q), x, y)
    tout, tfn = torch.func.vjp(lambda p, q: f(torch, p, q), tx, ty)
    cts = (_tf_input((3,), 4), _tf_input((2,), 5))
    for g, tg in zip(fn(tuple(fg.tensor(c) for c in cts)), tfn(tuple(torch.tensor(c) for c in cts))):
        close(g, tg, rtol=1e-9)
    _, tang = fg.jvp(lambda p, q: f(fg, p, q), (x, y), (fg.tensor(cts[0]), fg.tensor(cts[1])))
    _, ttang = torch.func.jvp(lambda p, q: f(torch, p, q), (tx, ty), (torch.tensor(cts[0]), torch.tensor(cts[1])))
    for t, tt in zip(tang, ttang):
        close(t, tt, rtol=1e-9)
    H = fg.hessian(lambda p, q: (p * p).sum() * (q ** 3).sum(), argnums=1)(x, y)
    tH = torch.func.hessian(lambda p, q: (p * p).sum() * (q ** 3).sum(), argnums=1)(tx, ty)
    close(H, tH, rtol=1e-9)


def test_gradcheck_on_functions():
    x = fg.tensor(_tf_input((3, 2)), requires_grad=True)
    y = fg.tensor(_tf_input((2,), 1), requires_grad=True)
    assert fg.autograd.gradcheck(lambda a, b: (a @ b).tanh(), (x, y))
    assert fg.autograd.gradcheck(lambda a, b: (a * b, a.sum()), (x, y))


FNP_CASES = {
    "exp": ("exp", [(3,)]), "log": ("log", [(3,)]), "tanh": ("tanh", [(2, 2)]), "sin": ("sin", [(3,)]),
    "cos": ("cos", [(3,)]), "sqrt": ("sqrt", [(3,)]), "abs": ("abs", [(3,)]), "square": ("square", [(3,)]),
    "sinh": ("sinh", [(3,)]), "cosh": ("cosh", [(3,)]), "sum": ("sum", [(2, 3)]), "mean": ("mean", [(2, 3)]),
    "prod": ("prod", [(4,)]), "max": ("max", [(5,)]), "min": ("min", [(5,)]), "dot": ("dot", [(3,), (3,)]),
    "dot_mat": ("dot", [(2, 3), (3,)]), "outer": ("outer", [(3,), (2,)]), "add": ("add", [(3,), (3,)]),
    "multiply": ("multiply", [(3,), (3,)]), "divide": ("divide", [(3,), (3,)]), "power": ("power", [(3,), (3,)]),
    "maximum": ("maximum", [(3,), (3,)]), "logaddexp": ("logaddexp", [(3,), (3,)]), "var": ("var", [(4,)]),
    "std": ("std", [(4,)]),
}


@pytest.mark.parametrize("name", list(FNP_CASES))
def test_fastgrad_numpy_namespace(name):
    """fastgrad.numpy matches NumPy on arrays and on plain numbers, and differentiates like torch."""
    import fastgrad.numpy as fnp

    fname, shapes = FNP_CASES[name]
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.5, 2.0, size=s) for s in shapes]
    out = getattr(fnp, fname)(*[fnp.array(a) for a in arrays])
    np.testing.assert_allclose(to_numpy(out), getattr(np, fname)(*arrays), rtol=1e-12)
    if all(a.ndim == 1 for a in arrays) and fname not in ("dot", "outer", "sum", "mean", "prod", "max", "min",
                                                           "var", "std"):
        scalars = [float(a[0]) for a in arrays]
        r = getattr(fnp, fname)(*scalars)
        assert isinstance(r, float), type(r)  # numbers in, a number out (like NumPy)
        assert abs(r - float(getattr(np, fname)(*scalars))) < 1e-12
    g = fg.grad(lambda *xs: fnp.sum(getattr(fnp, fname)(*xs)))(*[fnp.array(a) for a in arrays])
    t = torch.func.grad(lambda *xs: {"max": lambda x: x.amax(), "min": lambda x: x.amin(),
                                     "var": lambda x: x.var(unbiased=False), "std": lambda x: x.std(unbiased=False),
                                     "dot": lambda a, b: a @ b, "power": torch.pow, "logaddexp": torch.logaddexp,
                                     "multiply": torch.mul, "divide": torch.div, "outer": torch.outer,
                                     }.get(fname, getattr(torch, fname, None))(*xs).sum())(
        *[torch.tensor(a) for a in arrays])
    close(g, t, rtol=1e-10)


def test_fastgrad_numpy_hips_style():
    import fastgrad.numpy as fnp

    fnp.random.seed(0)
    inputs = fnp.random.randn(4, 3)
    targets = fnp.array([True, True, False, True])

    def predict(w, x):
        return 0.5 * (fnp.tanh(fnp.dot(x, w) / 2.0) + 1.0)

    def loss(w):
        p = predict(w, inputs)
        label_probs = p * targets + (1 - p) * (1 - targets)
        return -fnp.sum(fnp.log(label_probs))

    w = fnp.array([0.1, -0.2, 0.3])
    tw = torch.tensor(to_numpy(w), requires_grad=True)
    ti, tt = torch.tensor(to_numpy(inputs)), torch.tensor(to_numpy(targets), dtype=torch.float64)
    tp = 0.5 * (torch.tanh(ti @ tw / 2.0) + 1.0)
    (-torch.log(tp * tt + (1 - tp) * (1 - tt)).sum()).backward()
    close(fg.grad(loss)(w), tw.grad)
    assert fnp.shape(inputs) == (4, 3) and fnp.ndim(inputs) == 2 and fnp.size(inputs) == 12
    assert inputs.dtype is fg.float64


# -- the seed example -------------------------------------------------------------------------------

SEED = textwrap.dedent("""
    import fastgrad.numpy as np
    from fastgrad import grad

    def tanh(x):
        y = np.exp(2.0 * x)
        return (y - 1.0) / (y + 1.0)

    dtanh = grad(tanh)
    print(dtanh(1.0))
    print((tanh(1.01) - tanh(0.99)) / 0.02)
""")


def test_seed_example_in_process():
    import fastgrad.numpy as fnp
    from fastgrad import grad

    def tanh(x):
        y = fnp.exp(2.0 * x)
        return (y - 1.0) / (y + 1.0)

    dtanh = grad(tanh)
    d = dtanh(1.0)
    fd = (tanh(1.01) - tanh(0.99)) / 0.02
    assert isinstance(d, float)
    assert abs(d - (1 - np.tanh(1.0) ** 2)) < 1e-12
    assert abs(float(fd) - d) < 1e-4
    assert abs(float(grad(grad(tanh))(1.0)) - (-2 * np.tanh(1.0) * (1 - np.tanh(1.0) ** 2))) < 1e-10


def test_seed_example_script():
    from conftest import package_pythonpath

    env = dict(os.environ, PYTHONPATH=package_pythonpath())
    r = subprocess.run([sys.executable, "-c", SEED], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert len(lines) == 2, r.stdout
    d, fd = float(lines[0]), float(lines[1])
    assert abs(d - 0.41997434161402614) < 1e-9
    assert abs(fd - d) < 1e-4
