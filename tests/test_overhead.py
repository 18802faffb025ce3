"""The per-op overhead fast paths keep PyTorch's semantics:

- a float tensor with a Python number (x + s, s - x, x * s, s / x, ...) runs
  one native call (_C.binary_scalar); values, dtypes and gradients (first and
  second order, forward mode) match torch, and other operand kinds still take
  the general promotion path;
- a leaf's first gradient is taken as its .grad without a copy only when
  nothing else can see that memory: no aliasing between two leaves' .grad,
  with a user's gradient tensor, a hook's saved tensor or a view.
"""
import numpy as np
import pytest
import torch

import fastgrad as fg
from fastgrad import _C

from helpers import FG_TO_TORCH

OPS = {
    "add": lambda x, s: x + s, "radd": lambda x, s: s + x,
    "sub": lambda x, s: x - s, "rsub": lambda x, s: s - x,
    "mul": lambda x, s: x * s, "rmul": lambda x, s: s * x,
    "div": lambda x, s: x / s, "rdiv": lambda x, s: s / x,
}


def _pair(shape, dtype, noncontig, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, shape).astype(dtype) * rng.choice([-1, 1], shape).astype(dtype)
    x, tx = fg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    if noncontig:
        return (x, x.mT), (tx, tx.mT)
    return (x, x), (tx, tx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("noncontig", [False, True], ids=["contig", "transposed"])
@pytest.mark.parametrize("s", [0.3, 3, -1e-3, 1e30], ids=["float", "int", "small", "huge"])
@pytest.mark.parametrize("op", list(OPS))
def test_scalar_operand_matches_torch(op, s, noncontig, dtype):
    fn = OPS[op]
    (leaf, x), (tleaf, tx) = _pair((3, 5), dtype, noncontig)
    y, ty = fn(x, s), fn(tx, s)
    assert y.dtype is {np.float32: fg.float32, np.float64: fg.float64}[dtype]
    assert FG_TO_TORCH[y.dtype] == ty.dtype and tuple(y.shape) == tuple(ty.shape)
    # the same bits as the general path (a 0-d tensor of x's dtype) ...
    s0 = fg.tensor(s, dtype=y.dtype)
    np.testing.assert_array_equal(y.detach().numpy(), fn(x.detach(), s0).numpy())
    # ... and as torch (s / x within an ulp: torch computes it as x.reciprocal() * s)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=0 if op != "rdiv" else 3e-7)
    w = np.random.default_rng(1).standard_normal(tuple(y.shape)).astype(dtype)
    g, = fg.autograd.grad(y, leaf, fg.tensor(w), create_graph=True)
    tg, = torch.autograd.grad(ty, tleaf, torch.tensor(w), create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-6 if dtype == np.float64 else 1e-5)
    assert g.requires_grad == tg.requires_grad
    if tg.requires_grad:  # s / x: the second derivative exists
        gg, = fg.autograd.grad((g * g).sum(), leaf)
        tgg, = torch.autograd.grad((tg * tg).sum(), tleaf)
        np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-5 if dtype == np.float64 else 1e-3)


@pytest.mark.parametrize("op", list(OPS))
def test_scalar_operand_jvp_equals_vjp(op):
    fn = OPS[op]
    x0 = fg.tensor(np.random.default_rng(2).uniform(0.5, 2.0, (4,)))  # float64
    t = fg.tensor(np.random.default_rng(3).standard_normal(4))
    _, tangent = fg.jvp(lambda x: fn(x, 1.7), (x0,), (t,))
    x = x0.clone().requires_grad_()
    y = fn(x, 1.7)
    # elementwise: the Jacobian is diagonal, so J t = (J^T 1) * t
    g, = fg.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(tangent.numpy(), (g * t).numpy(), rtol=1e-12)
    assert fg.autograd.gradcheck(lambda v: fn(v, 1.7), (x,))


@pytest.mark.parametrize("s", [2, 2.5, True], ids=["int", "float", "bool"])
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
@pytest.mark.parametrize("op", ["add", "mul", "div", "rmul"])
def test_other_operands_keep_torch_promotion(op, dtype, s):
    a = np.array([[0, 1, 3], [2, 5, 1]]).astype(dtype)
    fn = OPS[op]
    y, ty = fn(fg.tensor(a), s), fn(torch.tensor(a), s)
    assert FG_TO_TORCH[y.dtype] == ty.dtype
    np.testing.assert_allclose(y.numpy().astype(np.float64), ty.numpy().astype(np.float64))


def test_numpy_scalar_and_bool_on_float_tensor():
    x = fg.tensor([1.0, -2.0, 3.0])
    for s in (np.float64(0.5), np.float32(2.0), np.int64(3), True):
        for fn in OPS.values():
            try:
                ty = fn(torch.tensor([1.0, -2.0, 3.0]), s)
            except RuntimeError:  # x - True: both refuse
                with pytest.raises(RuntimeError, match="bool"):
                    fn(x, s)
                continue
            y = fn(x, s)
            assert FG_TO_TORCH[y.dtype] == ty.dtype
            np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-6)


def test_binary_scalar_native_errors():
    a = fg.tensor([1, 2, 3])._data  # int64
    with pytest.raises(TypeError, match="binary_scalar.*int64"):
        _C.binary_scalar(a, 2.0, "*")
    with pytest.raises(ValueError, match="binary_scalar.*unknown op"):
        _C.binary_scalar(fg.tensor([1.0])._data, 2.0, "%")
    with pytest.raises(TypeError, match="unsupported operand"):
        fg.tensor([1.0]) * "2"


def test_scalar_operand_version_counter():
    """s / x saves x: writing x in place before backward raises, as torch does."""
    leaf = fg.tensor([1.0, 2.0], requires_grad=True)
    x = leaf * 1.0
    y = 2.0 / x
    x.mul_(3.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- .grad without a copy, only when nothing else can see the memory ---------------------


def test_first_grad_is_not_aliased_between_leaves():
    """add's vjp hands the same gradient to both inputs: each .grad must be its own buffer."""
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([3.0, 4.0], requires_grad=True)
    c = fg.tensor([1.0, 2.0])
    ((a + b) * c).sum().backward()  # (not .sum() alone: its gradient is a broadcast view, always copied)
    a.grad.add_(10.0)
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 2.0])
    ((a + b) * c).sum().backward()  # accumulation: in place into each own buffer
    np.testing.assert_array_equal(a.grad.numpy(), [12.0, 14.0])
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 4.0])


def test_first_grad_is_not_aliased_with_a_view_of_another():
    """One leaf's gradient a reshape (view) of another's: still separate buffers."""
    a = fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    b = fg.tensor([1.0] * 6, requires_grad=True)
    ((a.reshape(6) + b) * fg.tensor([1.0, 2, 3, 4, 5, 6])).sum().backward()
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [1, 2, 3, 4, 5, 6])
    b.grad.zero_()
    assert a.grad.numpy().sum() == 0


def test_first_grad_is_not_a_users_tensor():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    v = fg.tensor([5.0, 6.0])
    x.clone().backward(v)  # Clone's vjp passes v itself through
    x.clone().backward(v)  # accumulates into x.grad in place: v must not change
    np.testing.assert_array_equal(v.numpy(), [5.0, 6.0])
    np.testing.assert_array_equal(x.grad.numpy(), [10.0, 12.0])
    y = fg.tensor([1.0], requires_grad=True)
    w = fg.tensor([7.0])
    y.backward(w)  # a leaf differentiated directly
    y.backward(w)
    np.testing.assert_array_equal(w.numpy(), [7.0])


def test_first_grad_is_not_a_hooks_tensor():
    seen = []
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: seen.append(g))
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(seen[0].numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    assert seen[0] is not x.grad


def test_first_grad_not_aliased_with_retained_grad():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    y.retain_grad()
    (y * 2.0).sum().backward()
    x.grad.add_(1.0)
    np.testing.assert_array_equal(y.grad.numpy(), [2.0, 2.0])


def test_fresh_first_grad_is_taken_and_accumulates():
    w = fg.tensor(np.ones((3, 4), np.float32), requires_grad=True)
    x = fg.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    (w @ x).sum().backward()
    first = w.grad
    assert not first.requires_grad and first.is_leaf and first.is_contiguous()
    (w @ x).sum().backward()
    assert w.grad is first  # later gradients add in place (PyTorch semantics)
    tw = torch.ones(3, 4, requires_grad=True)
    tx = torch.arange(12.0).reshape(4, 3)
    (tw @ tx).sum().backward()
    (tw @ tx).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_broadcast_gradient_becomes_a_dense_grad():
    """sum's vjp is a broadcast view (stride 0): .grad must be a real, writable buffer."""
    x = fg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x.sum().backward()
    assert x.grad.is_contiguous()
    x.grad[0, 0] = 5.0
    np.testing.assert_array_equal(x.grad.numpy(), [[5.0, 1.0], [1.0, 1.0]])


def test_create_graph_grad_keeps_its_graph():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    g, = fg.autograd.grad(x.grad.sum(), x)
    np.testing.assert_array_equal(g.numpy(), [2.0, 2.0])
