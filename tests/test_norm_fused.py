"""Fused layer_norm / batch_norm / group_norm (csrc/cpu/norm.cpp, ops/norm.py):
values and gradients against torch, running statistics, eval mode, double
backward through the composite fallback, errors."""
import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import _C

TF = torch.nn.functional
DT = {np.float32: (fg.float32, torch.float32, 2e-5), np.float64: (fg.float64, torch.float64, 1e-11)}


def pair(shape, dtype, seed, scale=1.0, shift=0.0):
    a = (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)
    return fg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def close(a, b, tol, what=""):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy()
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=what)


def run_both(fg_fn, torch_fn, fg_in, torch_in, tol, seed=9):
    out_f, out_t = fg_fn(*fg_in), torch_fn(*torch_in)
    close(out_f, out_t, tol, "forward")
    g = np.random.default_rng(seed).standard_normal(tuple(out_t.shape)).astype(out_f.detach().numpy().dtype)
    out_f.backward(fg.tensor(g))
    out_t.backward(torch.tensor(g))
    for a, b in zip(fg_in, torch_in):
        if isinstance(b, torch.Tensor) and b.requires_grad:
            close(a.grad, b.grad, tol * 10, "grad")


def is_fused(t, cls):
    return type(t._node).__name__ == cls


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,norm", [((128, 256), (256,)), ((3, 5, 7), (7,)), ((2, 3, 4, 5), (4, 5)),
                                        ((4, 33), (33,)), ((1, 1), (1,)), ((6, 2, 3, 5), (2, 3, 5))])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm(dtype, shape, norm, affine):
    fdt, tdt, tol = DT[dtype]
    x, xt = pair(shape, dtype, 0, 3.0, 1.5)
    w, wt = pair(norm, dtype, 1)
    b, bt = pair(norm, dtype, 2)
    w, wt = (w, wt) if affine in ("both", "weight") else (None, None)
    b, bt = (b, bt) if affine in ("both", "bias") else (None, None)
    assert is_fused(F.layer_norm(x, norm, w, b), "LayerNorm")
    run_both(lambda *a: F.layer_norm(x, norm, w, b, eps=1e-5), lambda *a: TF.layer_norm(xt, norm, wt, bt, eps=1e-5),
             [t for t in (x, w, b) if t is not None], [t for t in (xt, wt, bt) if t is not None], tol)


def test_layer_norm_non_contiguous_and_module():
    x, xt = pair((8, 12, 6), np.float32, 3)
    ln = fg.nn.LayerNorm(8)
    lt = torch.nn.LayerNorm(8)
    run_both(lambda *a: ln(x.transpose(0, 2)), lambda *a: lt(xt.transpose(0, 2)), [x], [xt], 2e-5)
    close(ln.weight.grad, lt.weight.grad, 2e-4)
    close(ln.bias.grad, lt.bias.grad, 2e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(16, 7), (9, 5, 11), (4, 3, 6, 5), (2, 1, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training(dtype, shape, affine):
    fdt, tdt, tol = DT[dtype]
    c = shape[1]
    x, xt = pair(shape, dtype, 4, 2.0, -1.0)
    w, wt = pair((c,), dtype, 5) if affine else (None, None)
    b, bt = pair((c,), dtype, 6) if affine else (None, None)
    rm, rv = fg.zeros(c, dtype=fdt), fg.ones(c, dtype=fdt)
    rmt, rvt = torch.zeros(c, dtype=tdt), torch.ones(c, dtype=tdt)
    assert is_fused(F.batch_norm(x, None, None, w, b, training=True), "BatchNorm")
    run_both(lambda *a: F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3),
             lambda *a: TF.batch_norm(xt, rmt, rvt, wt, bt, training=True, momentum=0.3),
             [t for t in (x, w, b) if t is not None], [t for t in (xt, wt, bt) if t is not None], tol)
    close(rm, rmt, tol, "running_mean")
    close(rv, rvt, tol, "running_var")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(16, 7), (5, 4, 6, 3)])
def test_batch_norm_eval(dtype, shape):
    fdt, tdt, tol = DT[dtype]
    c = shape[1]
    x, xt = pair(shape, dtype, 7)
    w, wt = pair((c,), dtype, 8)
    b, bt = pair((c,), dtype, 9)
    rmn = np.random.default_rng(1).standard_normal(c).astype(dtype)
    rvn = np.random.default_rng(2).uniform(0.5, 2, c).astype(dtype)
    run_both(lambda *a: F.batch_norm(x, fg.tensor(rmn), fg.tensor(rvn), w, b, training=False),
             lambda *a: TF.batch_norm(xt, torch.tensor(rmn), torch.tensor(rvn), wt, bt, training=False),
             [x, w, b], [xt, wt, bt], tol)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_modules_match_torch_over_steps(momentum):
    for mod_f, mod_t, shape in [(fg.nn.BatchNorm1d(6, momentum=momentum), torch.nn.BatchNorm1d(6, momentum=momentum),
                                 (10, 6)),
                                (fg.nn.BatchNorm1d(6, momentum=momentum), torch.nn.BatchNorm1d(6, momentum=momentum),
                                 (4, 6, 9)),
                                (fg.nn.BatchNorm2d(3, momentum=momentum), torch.nn.BatchNorm2d(3, momentum=momentum),
                                 (4, 3, 5, 5))]:
        for step in range(3):
            x, xt = pair(shape, np.float32, 20 + step, 2.0, 0.5)
            run_both(lambda *a: mod_f(x), lambda *a: mod_t(xt), [x], [xt], 2e-5)
        close(mod_f.running_mean, mod_t.running_mean, 1e-5)
        close(mod_f.running_var, mod_t.running_var, 1e-5)
        close(mod_f.weight.grad, mod_t.weight.grad, 1e-4)
        mod_f.eval()
        mod_t.eval()
        x, xt = pair(shape, np.float32, 30)
        run_both(lambda *a: mod_f(x), lambda *a: mod_t(xt), [x], [xt], 2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,groups", [((4, 6, 5), 3), ((2, 8, 3, 3), 2), ((3, 4, 7), 4)])
def test_group_norm(dtype, shape, groups):
    fdt, tdt, tol = DT[dtype]
    c = shape[1]
    x, xt = pair(shape, dtype, 11, 2.0)
    w, wt = pair((c,), dtype, 12)
    b, bt = pair((c,), dtype, 13)
    run_both(lambda *a: F.group_norm(x, groups, w, b), lambda *a: TF.group_norm(xt, groups, wt, bt),
             [x, w, b], [xt, wt, bt], tol)


def _double_backward(fg_fn, torch_fn, shapes, tol=1e-9):
    ins_f, ins_t = zip(*[pair(s, np.float64, 40 + i) for i, s in enumerate(shapes)])
    out_f, out_t = fg_fn(*ins_f), torch_fn(*ins_t)
    g = np.random.default_rng(5).standard_normal(tuple(out_t.shape))
    gf = fg.autograd.grad(out_f, list(ins_f), fg.tensor(g), create_graph=True)
    gt = torch.autograd.grad(out_t, list(ins_t), torch.tensor(g), create_graph=True)
    for a, b in zip(gf, gt):
        close(a, b, tol)
    sf = sum((a * a).sum() for a in gf)
    st = sum((a * a).sum() for a in gt)
    ggf = fg.autograd.grad(sf, list(ins_f), allow_unused=True)
    ggt = torch.autograd.grad(st, list(ins_t), allow_unused=True)
    for a, b in zip(ggf, ggt):
        assert (a is None) == (b is None)
        if b is not None:
            close(a, b, tol * 10, "double backward")


def test_double_backward_uses_composite_rule():
    _double_backward(lambda x, w, b: F.layer_norm(x, (5,), w, b), lambda x, w, b: TF.layer_norm(x, (5,), w, b),
                     [(4, 5), (5,), (5,)])
    _double_backward(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                     lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True), [(6, 3, 4), (3,), (3,)])
    rm, rv = np.zeros(3), np.full(3, 1.5)
    _double_backward(lambda x, w: F.batch_norm(x, fg.tensor(rm), fg.tensor(rv), w, None, training=False),
                     lambda x, w: TF.batch_norm(x, torch.tensor(rm), torch.tensor(rv), w, None, training=False),
                     [(6, 3), (3,)])
    _double_backward(lambda x, w, b: F.group_norm(x, 2, w, b), lambda x, w, b: TF.group_norm(x, 2, w, b),
                     [(3, 4, 5), (4,), (4,)])


def test_forward_mode_jvp_matches_finite_difference():
    x = fg.randn(4, 6, dtype=fg.float64)
    w, b = fg.randn(6, dtype=fg.float64), fg.randn(6, dtype=fg.float64)
    tx, tw, tb = fg.randn(4, 6, dtype=fg.float64), fg.randn(6, dtype=fg.float64), fg.randn(6, dtype=fg.float64)
    for f in (lambda x, w, b: F.layer_norm(x, (6,), w, b),
              lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)):
        _, tan = fg.jvp(f, (x, w, b), (tx, tw, tb))
        e = 1e-6
        fd = (f(x + tx * e, w + tw * e, b + tb * e) - f(x - tx * e, w - tw * e, b - tb * e)) / (2 * e)
        np.testing.assert_allclose(tan.numpy(), fd.numpy(), rtol=1e-6, atol=1e-7)


def test_threads_give_same_bits():
    x = fg.randn(64, 512)
    w = fg.randn(512)
    prev = fg.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            fg.set_num_threads(n)
            xi = x.detach().requires_grad_()
            wi = w.detach().requires_grad_()
            y = F.layer_norm(xi, (512,), wi, None)
            (y * y).sum().backward()
            res.append((y.detach().numpy(), xi.grad.numpy(), wi.grad.numpy()))
    finally:
        fg.set_num_threads(prev)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_op():
    x = fg.randn(4, 5)
    with pytest.raises(ValueError, match="layer_norm"):
        F.layer_norm(x, (4,))
    with pytest.raises(ValueError, match="per channel"):
        F.batch_norm(fg.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="layer_norm.*weight"):
        _C.layer_norm_forward(x._data, 5, fg.randn(4)._data, None, 1e-5)
    with pytest.raises(TypeError, match="batch_norm.*weight"):
        _C.batch_norm_forward(x._data, fg.randn(5, dtype=fg.float64)._data, None, None, None, True, 1e-5)
    with pytest.raises(TypeError, match="layer_norm"):
        _C.layer_norm_forward(fg.tensor([[1, 2]])._data, 2, None, None, 1e-5)
    with pytest.raises(ValueError, match="batch_norm_backward"):
        _C.batch_norm_backward(x._data, x._data, fg.randn(3)._data, fg.randn(5)._data, None, True, True, True)
    # int input or mismatched dtypes take the composite path, which raises or promotes like before
    out = F.layer_norm(fg.randn(3, 4, dtype=fg.float64), (4,), fg.ones(4), None)
    assert out.dtype == fg.float64
