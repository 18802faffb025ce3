"""Fused normalisation on CUDA (cuda/norm.cu): layer norm, batch norm, group norm.

Every norm runs on the device and on the CPU (the fused kernels of
csrc/cpu/norm.cpp) with the same inputs: values, the saved statistics and
every gradient through autograd must agree, on odd row lengths (1, 7, 33,
257, 1000, 4097: warp teams, block teams, ragged tails), batch 1,
non-contiguous inputs, with and without affine parameters, float32 and
float64. Also: double backward (the fused node's differentiable vjp under
create_graph), BatchNorm's running statistics after training steps, the same
bits on two runs (no atomics), a torch CPU cross-check and the errors.
The module skips without a CUDA device. FASTGRAD_NORM_TEST_DEVICE=cpu runs it
CPU-against-CPU, which checks the harness and the torch cross-checks only.
"""
import os

import numpy as np
import pytest
import torch

import fastgrad as fg
from fastgrad import _C
from fastgrad.ops._util import _wrap

DEV = os.environ.get("FASTGRAD_NORM_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEV == "cuda" and not fg.cuda.is_available(), reason="no CUDA device")

F = fg.nn.functional
FLOATS = (fg.float32, fg.float64)
ROWS = (1, 7, 33, 257, 1000, 4097)


def tol(dtype):
    # both devices sum in double; float32 differs by the order of those sums
    # (rarely one ulp in a statistic) and by fused multiply-adds
    return dict(rtol=1e-4, atol=1e-5) if dtype is fg.float32 else dict(rtol=1e-10, atol=1e-11)


def host(t):
    return t.detach().cpu().numpy()


def close(g, c, dtype, what=""):
    assert str(g.device).startswith(DEV), f"{what}: result on {g.device}"
    assert tuple(g.shape) == tuple(c.shape) and g.dtype == c.dtype, (what, g.shape, c.shape, g.dtype, c.dtype)
    a, b = host(g), host(c)
    scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
    t = tol(dtype)
    np.testing.assert_allclose(a, b, rtol=t["rtol"], atol=t["atol"] * scale, err_msg=what)


def rand(*shape, seed=0):
    return np.random.default_rng(seed + 7 * sum(shape)).standard_normal(shape) * 2 + 0.5


def run_both(fn, arrays, dtype, seed=0, fused=None):
    """fn on CPU tensors and on DEV tensors made from `arrays` (None passes
    through); the output and every input's gradient for one random cotangent
    must agree. fused: the Function class name the output's node must have on
    the device (the fused path was taken). Returns (outputs, grads) on DEV."""
    cpu = [None if a is None else fg.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    dev = [None if a is None else fg.tensor(a, dtype=dtype, device=DEV, requires_grad=True) for a in arrays]
    yc, yd = fn(*cpu), fn(*dev)
    if fused is not None:
        assert type(yd.grad_fn).__name__ == fused, type(yd.grad_fn)
    close(yd, yc, dtype, "output")
    ct = np.random.default_rng(seed + 1).standard_normal(tuple(yc.shape))
    yc.backward(fg.tensor(ct, dtype=dtype))
    yd.backward(fg.tensor(ct, dtype=dtype, device=DEV))
    grads = []
    for i, (c, d) in enumerate(zip(cpu, dev)):
        if c is None:
            continue
        assert d.grad is not None, f"no gradient for input {i}"
        close(d.grad, c.grad, dtype, f"grad of input {i}")
        grads.append(d.grad)
    return yd, grads


def params(n, affine, seed=3):
    if not affine:
        return None, None
    return rand(n, seed=seed), rand(n, seed=seed + 1)


# ---- layer norm -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("affine", (True, False))
@pytest.mark.parametrize("lead", ((1,), (2, 3)))
@pytest.mark.parametrize("m", ROWS)
def test_layer_norm(m, lead, affine, dtype):
    w, b = params(m, affine)
    run_both(lambda x, w, b: F.layer_norm(x, (m,), w, b), [rand(*lead, m), w, b], dtype, fused="LayerNorm")


@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_norm_saved_statistics(dtype):
    # the _C entry's mean / rstd (the saved statistics) have the CPU's meaning
    for m in (7, 4097):
        a = rand(5, m)
        w, b = rand(m, seed=1), rand(m, seed=2)
        outs = []
        for d in ("cpu", DEV):
            t = lambda v: fg.tensor(v, dtype=dtype, device=d)._data  # noqa: E731
            outs.append(_C.layer_norm_forward(t(a), m, t(w), t(b), 1e-3))
        for name, g, c in zip(("y", "mean", "rstd"), outs[1], outs[0]):
            close(_wrap(g), _wrap(c), dtype, name)


@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_norm_multi_dim_and_noncontiguous(dtype):
    w, b = rand(3, 11, seed=1), rand(3, 11, seed=2)
    run_both(lambda x, w, b: F.layer_norm(x, (3, 11), w, b, eps=1e-3), [rand(4, 3, 11), w, b], dtype)
    # a transposed view and a strided slice, normalised over their last dim
    run_both(lambda x, w, b: F.layer_norm(x.transpose(0, 1), (9,), w, b), [rand(9, 5), rand(9), rand(9)], dtype)
    run_both(lambda x: F.layer_norm(x[:, ::3], (6,)), [rand(4, 17)], dtype)
    run_both(lambda x, w: F.layer_norm(x.transpose(1, 2), (1000,), w), [rand(2, 1000, 3), rand(1000)], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_norm_module_matches_torch(dtype):
    a = rand(3, 5, 257)
    m = fg.nn.LayerNorm(257).to(dtype=dtype).to(DEV)
    tm = torch.nn.LayerNorm(257).to(getattr(torch, dtype.name))
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(rand(257, seed=1)))
        tm.bias.copy_(torch.tensor(rand(257, seed=2)))
    m.weight.data = fg.tensor(rand(257, seed=1), dtype=dtype, device=DEV)
    m.bias.data = fg.tensor(rand(257, seed=2), dtype=dtype, device=DEV)
    x = fg.tensor(a, dtype=dtype, device=DEV, requires_grad=True)
    tx = torch.tensor(a, dtype=getattr(torch, dtype.name), requires_grad=True)
    y, ty = m(x), tm(tx)
    ct = np.random.default_rng(5).standard_normal(a.shape)
    y.backward(fg.tensor(ct, dtype=dtype, device=DEV))
    ty.backward(torch.tensor(ct, dtype=ty.dtype))
    t = dict(rtol=1e-4, atol=1e-4) if dtype is fg.float32 else dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(host(y), ty.detach().numpy(), **t)
    np.testing.assert_allclose(host(x.grad), tx.grad.numpy(), **t)
    np.testing.assert_allclose(host(m.weight.grad), tm.weight.grad.numpy(), **t)
    np.testing.assert_allclose(host(m.bias.grad), tm.bias.grad.numpy(), **t)


# ---- batch norm -------------------------------------------------------------------------------------

BN_SHAPES = [(1, 3, 7), (4, 5), (2, 3, 5, 7), (3, 2, 33, 9), (2, 4, 1000), (1, 2, 4097), (5, 1, 2, 3, 4)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("affine", (True, False))
@pytest.mark.parametrize("training", (True, False))
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm(shape, training, affine, dtype):
    c = shape[1]
    w, b = params(c, affine)
    rm, rv = rand(c, seed=5), np.abs(rand(c, seed=6)) + 0.1

    def fn(x, w, b):
        d, dt = x.device, x.dtype
        return F.batch_norm(x, fg.tensor(rm, dtype=dt, device=d), fg.tensor(rv, dtype=dt, device=d), w, b,
                            training=training, eps=1e-4)

    run_both(fn, [rand(*shape), w, b], dtype, fused="BatchNorm")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("training", (True, False))
def test_batch_norm_saved_statistics(training, dtype):
    a = rand(3, 4, 33)
    w, b, rm, rv = rand(4, seed=1), rand(4, seed=2), rand(4, seed=3), np.abs(rand(4, seed=4)) + 0.5
    outs = []
    for d in ("cpu", DEV):
        t = lambda v: fg.tensor(v, dtype=dtype, device=d)._data  # noqa: E731
        outs.append(_C.batch_norm_forward(t(a), t(w), t(b), t(rm), t(rv), training, 1e-5))
    for name, g, c in zip(("y", "mean", "rstd", "var"), outs[1], outs[0]):
        close(_wrap(g), _wrap(c), dtype, name)


@pytest.mark.parametrize("dtype", FLOATS)
def test_batch_norm_noncontiguous(dtype):
    def fn(x, w, b):  # (N, H, W, C) data seen as (N, C, H, W)
        return F.batch_norm(x.permute(0, 3, 1, 2), None, None, w, b, training=True)

    run_both(fn, [rand(2, 5, 6, 3), rand(3, seed=1), rand(3, seed=2)], dtype)
    run_both(lambda x: F.batch_norm(x[:, 1::2], None, None, training=True), [rand(3, 8, 9)], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_batchnorm_module_running_stats(dtype):
    # three training steps, then eval: running mean / var, the step count and
    # the eval output agree with the CPU module and with torch
    mods = {d: fg.nn.BatchNorm2d(3, momentum=0.3).to(dtype=dtype).to(d) for d in ("cpu", DEV)}
    tm = torch.nn.BatchNorm2d(3, momentum=0.3).to(getattr(torch, dtype.name))
    for step in range(3):
        a = rand(4, 3, 5, 7, seed=10 + step) * (step + 1)
        for d, m in mods.items():
            x = fg.tensor(a, dtype=dtype, device=d, requires_grad=True)
            m(x).sum().backward()
        tm(torch.tensor(a, dtype=tm.weight.dtype))
    for name in ("running_mean", "running_var"):
        close(getattr(mods[DEV], name), getattr(mods["cpu"], name), dtype, name)
        np.testing.assert_allclose(host(getattr(mods[DEV], name)), getattr(tm, name).numpy(), rtol=1e-5, atol=1e-6)
    assert int(host(mods[DEV].num_batches_tracked)) == 3
    close(mods[DEV].weight.grad, mods["cpu"].weight.grad, dtype, "weight grad")
    a = rand(2, 3, 4, 4, seed=20)
    for m in mods.values():
        m.eval()
    close(mods[DEV](fg.tensor(a, dtype=dtype, device=DEV)), mods["cpu"](fg.tensor(a, dtype=dtype)), dtype, "eval")


# ---- group norm -----------------------------------------------------------------------------------

GN_CASES = [((2, 6, 5, 7), 3), ((1, 4, 33), 2), ((3, 8), 8), ((1, 1, 4097), 1), ((2, 4, 250), 1), ((2, 6, 7), 6)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("affine", (True, False))
@pytest.mark.parametrize("case", range(len(GN_CASES)))
def test_group_norm(case, affine, dtype):
    shape, g = GN_CASES[case]
    w, b = params(shape[1], affine)
    run_both(lambda x, w, b: F.group_norm(x, g, w, b, eps=1e-4), [rand(*shape), w, b], dtype)


def test_group_norm_module_matches_torch():
    a = rand(2, 6, 9, 5)
    m = fg.nn.GroupNorm(3, 6).to(DEV)
    tm = torch.nn.GroupNorm(3, 6)
    x = fg.tensor(a, dtype=fg.float32, device=DEV, requires_grad=True)
    tx = torch.tensor(a, dtype=torch.float32, requires_grad=True)
    y, ty = m(x), tm(tx)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(host(x.grad), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(host(m.weight.grad), tm.weight.grad.numpy(), rtol=1e-4, atol=1e-3)


# ---- double backward ----------------------------------------------------------------------------------

DOUBLE = {
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (33,), w, b), (3, 33), 33),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (4, 3, 7), 3),
    "batch_norm_eval": (lambda x, w, b: F.batch_norm(
        x, fg.ones(3, dtype=x.dtype, device=x.device) * 0.5, fg.ones(3, dtype=x.dtype, device=x.device) * 2.0,
        w, b, training=False), (4, 3, 7), 3),
    "group_norm": (lambda x, w, b: F.group_norm(x, 3, w, b), (2, 6, 5), 6),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(DOUBLE))
def test_double_backward(name, dtype):
    # d/d(x, w) of <v, d<ct, y>/dx>: the first gradient is recorded
    # (create_graph), so it runs the fused node's differentiable vjp
    fn, shape, c = DOUBLE[name]
    res = {}
    for d in ("cpu", DEV):
        x, w, b = (fg.tensor(a, dtype=dtype, device=d, requires_grad=True)
                   for a in (rand(*shape), rand(c, seed=1), rand(c, seed=2)))
        y = fn(x, w, b)
        ct = fg.tensor(rand(*shape, seed=3), dtype=dtype, device=d)
        gx, gw = fg.autograd.grad(y, (x, w), ct, create_graph=True)
        v = fg.tensor(rand(*shape, seed=4), dtype=dtype, device=d)
        ((gx * v).sum() + (gw * gw).sum()).backward()
        res[d] = (y, gx, gw, x.grad, w.grad, b.grad)
    for what, g, c_ in zip(("y", "gx", "gw", "x.grad", "w.grad", "b.grad"), res[DEV], res["cpu"]):
        if c_ is None:
            assert g is None, what
        else:
            close(g, c_, dtype, what)


# ---- determinism -----------------------------------------------------------------------------------


def _bits(fn, a, c, dtype):
    x, w, b = (fg.tensor(v, dtype=dtype, device=DEV, requires_grad=True)
               for v in (a, rand(c, seed=1), rand(c, seed=2)))
    y = fn(x, w, b)
    y.backward(fg.tensor(rand(*a.shape, seed=3), dtype=dtype, device=DEV))
    return [host(t) for t in (y, x.grad, w.grad, b.grad)]


@pytest.mark.parametrize("dtype", FLOATS)
def test_same_bits_on_two_runs(dtype):
    cases = [
        (lambda x, w, b: F.layer_norm(x, (1000,), w, b), rand(300, 1000), 1000),   # warp rows, chunked dw
        (lambda x, w, b: F.layer_norm(x, (4097,), w, b), rand(40, 4097), 4097),    # block rows
        (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), rand(16, 8, 33, 33), 8),
        (lambda x, w, b: F.group_norm(x, 4, w, b), rand(4, 8, 31, 17), 8),
    ]
    for fn, a, c in cases:
        first, second = _bits(fn, a, c, dtype), _bits(fn, a, c, dtype)
        for p, q in zip(first, second):
            assert np.array_equal(p, q)


# ---- errors -----------------------------------------------------------------------------------------


def test_errors_on_the_device():
    x = fg.tensor(rand(3, 5), dtype=fg.float32, device=DEV)._data
    w64 = fg.tensor(rand(5), dtype=fg.float64, device=DEV)._data
    with pytest.raises(TypeError, match="layer_norm"):
        _C.layer_norm_forward(x, 5, w64, None, 1e-5)
    with pytest.raises(ValueError, match="layer_norm.*6"):
        _C.layer_norm_forward(x, 6, None, None, 1e-5)
    with pytest.raises(ValueError, match="batch_norm.*running_mean"):
        _C.batch_norm_forward(x, None, None, None, None, False, 1e-5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(fg.zeros(1, 3, device=DEV), None, None, training=True)
    with pytest.raises(ValueError, match="layer_norm"):
        F.layer_norm(fg.zeros(2, 4, device=DEV), (5,))
    if DEV != "cpu":
        with pytest.raises(ValueError, match="layer_norm.*same device"):
            _C.layer_norm_forward(x, 5, fg.tensor(rand(5), dtype=fg.float32)._data, None, 1e-5)
        with pytest.raises((ValueError, RuntimeError)):  # a parameter left on the CPU
            F.layer_norm(fg.zeros(2, 5, device=DEV), (5,), fg.ones(5))
