"""Convolution against PyTorch: conv1d / conv2d / conv_transpose1d / 2d
values and gradients (input, weight, bias) across stride, padding, dilation,
groups, odd sizes, strided inputs and both GEMM ISA paths; gradcheck, double
backward and forward mode; the layers; and the errors bad input raises."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fastgrad as fg
import fastgrad.nn as nn
import fastgrad.nn.functional as F
from fastgrad import _C
from helpers import NC, check_op, check_raises, forced_cpu_capability

# float32: ~1e-5 relative (the sums are up to a few hundred terms long).
TOL32 = dict(atol=2e-5, rtol=1e-5, grad_atol=5e-5, grad_rtol=1e-5)
TOL64 = dict(atol=1e-11, rtol=1e-10, grad_atol=1e-11, grad_rtol=1e-10)


def tols(dtype):
    return TOL32 if dtype == np.float32 else TOL64


@pytest.fixture(params=["avx512", "avx2", "scalar"])
def isa(request):
    """Runs the test on each GEMM micro-kernel family the CPU has (the
    request is clamped to the hardware: on an AVX2-only CPU avx512 runs AVX2).
    The forward drives the AVX micro-kernels itself and falls back to
    im2col + gemm() on the portable path, so "scalar" covers that path."""
    _C.set_cpu_capability(request.param)
    yield _C.gemm_info()
    _C.set_cpu_capability("auto")


# -- conv2d values and gradients -----------------------------------------------------------------

# (x shape, w shape, stride, padding, dilation, groups)
CONV2D_CASES = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1, 1, 1),               # the common 3x3 "same"
    ((1, 1, 1, 1), (1, 1, 1, 1), 1, 0, 1, 1),               # all ones
    ((3, 5, 33, 7), (7, 5, 3, 2), (2, 1), (1, 0), 1, 1),    # odd sizes, rectangular, stride per dim
    ((2, 6, 9, 11), (6, 2, 3, 3), 2, 2, 2, 3),              # stride + padding + dilation + groups
    ((2, 4, 8, 8), (8, 1, 3, 3), 1, 1, 1, 4),               # depthwise-like: groups == C
    ((2, 8, 5, 6), (12, 8, 1, 1), 1, 0, 1, 1),              # 1x1: GEMM reads x in place
    ((2, 8, 5, 6), (12, 4, 1, 1), 2, 0, 1, 2),              # 1x1 strided (im2col path)
    ((1, 2, 7, 33), (3, 2, 7, 7), 3, (3, 2), (1, 2), 1),    # big kernel, kernel == padded input height
    ((2, 3, 6, 6), (2, 3, 5, 4), 1, "same", (1, 2), 1),     # 'same' with an even kernel: asymmetric padding
    ((2, 3, 6, 7), (5, 3, 2, 3), 1, "valid", 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_matches_torch(case, dtype):
    xs, ws, stride, padding, dilation, groups = case
    for bias in (True, False):
        inputs = [xs, ws] + ([(ws[0],)] if bias else [None])
        check_op(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
                 lambda x, w, b: TF.conv2d(x, w, b, stride, padding, dilation, groups),
                 inputs, dtype=dtype, **tols(dtype))


@pytest.mark.parametrize("case", [CONV2D_CASES[0], CONV2D_CASES[3], CONV2D_CASES[5], CONV2D_CASES[8]])
def test_conv2d_both_isa_paths(isa, case):
    xs, ws, stride, padding, dilation, groups = case
    for dtype in (np.float32, np.float64):
        check_op(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
                 lambda x, w, b: TF.conv2d(x, w, b, stride, padding, dilation, groups),
                 [xs, ws, (ws[0],)], dtype=dtype, **tols(dtype))


def test_cpu_capability_env_var_selects_avx2(tmp_path):
    import subprocess
    import sys

    from conftest import package_pythonpath

    code = ("import numpy as np, fastgrad as fg, fastgrad.nn.functional as F; from fastgrad import _C\n"
            "x = fg.tensor(np.ones((1, 2, 5, 5), np.float32)); w = fg.tensor(np.ones((3, 2, 3, 3), np.float32))\n"
            "y = F.conv2d(x, w, padding=1).numpy()\n"
            "print(_C.gemm_info(), y[0, 0, 0, 0], y[0, 0, 2, 2])\n")
    env = {"PYTHONPATH": package_pythonpath(), "FASTGRAD_CPU_CAPABILITY": "avx2", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cap, corner, centre = out.stdout.split()
    assert cap in ("avx2", "scalar") and float(corner) == 8.0 and float(centre) == 18.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["T", "step"])
def test_conv2d_noncontiguous_inputs(kind, dtype):
    # strided x and weight are read in place (im2col reads through strides)
    check_op(lambda x, w, b: F.conv2d(x, w, b, 1, 1), lambda x, w, b: TF.conv2d(x, w, b, 1, 1),
             [NC((2, 3, 9, 7), kind), NC((4, 3, 3, 3), kind), NC((4,), kind)], dtype=dtype, **tols(dtype))
    # 1x1: the GEMM reads x in place when (H, W) fold, copies otherwise
    check_op(lambda x, w: F.conv2d(x, w), lambda x, w: TF.conv2d(x, w),
             [NC((2, 5, 4, 6), kind), NC((3, 5, 1, 1), kind)], dtype=dtype, **tols(dtype))


def test_conv2d_expanded_gradient_and_channels_last():
    # y.sum().backward() gives the backward an expanded (stride 0) gradient;
    # a channels-last input has (H, W) strides that do not fold.
    x = np.random.default_rng(3).standard_normal((2, 6, 5, 7))
    w = np.random.default_rng(4).standard_normal((4, 3, 3, 3))
    fx = fg.tensor(x.transpose(0, 2, 3, 1).copy()).permute(0, 3, 1, 2).requires_grad_()
    fw = fg.tensor(w, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    F.conv2d(fx, fw, stride=(1, 2), padding=1, groups=2).sum().backward()
    TF.conv2d(tx, tw, stride=(1, 2), padding=1, groups=2).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fw.grad.numpy(), tw.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_conv2d_large_image_uses_row_blocks():
    # Kg * OW * 8 bytes > 512 KiB: the column matrix is built a few output rows at a time
    check_op(lambda x, w, b: F.conv2d(x, w, b, 1, (1, 2), (1, 2)),
             lambda x, w, b: TF.conv2d(x, w, b, 1, (1, 2), (1, 2)),
             [(2, 16, 5, 600), (3, 16, 3, 3), (3,)], dtype=np.float64, **TOL64)
    check_op(lambda x, w: F.conv2d(x, w, None, 1), lambda x, w: TF.conv2d(x, w, None, 1),
             [(1, 300, 3, 300), (2, 300, 1, 1)], dtype=np.float64, **TOL64)


def test_conv2d_unbatched_and_empty_batch():
    check_op(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1),
             [(3, 6, 5), (2, 3, 3, 3), (2,)], dtype=np.float64, **TOL64)
    x = fg.zeros(0, 3, 5, 5, requires_grad=True)
    w = fg.ones(4, 3, 3, 3, requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (0, 4, 5, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 5, 5) and float(w.grad.abs().sum()) == 0.0


def test_conv2d_without_input_channels_gives_the_bias():
    x = fg.zeros(2, 0, 4, 4, requires_grad=True)
    w = fg.zeros(3, 0, 3, 3, requires_grad=True)
    b = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = F.conv2d(x, w, b)
    np.testing.assert_array_equal(y.detach().numpy(), np.broadcast_to(np.array([1.0, 2.0, 3.0], np.float32)
                                                                      .reshape(1, 3, 1, 1), (2, 3, 2, 2)))
    y.sum().backward()
    assert x.grad.shape == (2, 0, 4, 4) and w.grad.shape == (3, 0, 3, 3)
    np.testing.assert_array_equal(b.grad.numpy(), [8.0, 8.0, 8.0])


def assert_same_for_any_thread_count(run):
    """run() (its arrays) gives the same bits with 1, 2 and 3 threads."""
    n0 = fg.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fg.set_num_threads(n)
            results.append(run())
    finally:
        fg.set_num_threads(n0)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


def test_conv2d_same_result_for_any_thread_count():
    rng = np.random.default_rng(7)
    x = fg.tensor(rng.standard_normal((6, 8, 12, 10)).astype(np.float32), requires_grad=True)
    w = fg.tensor(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), requires_grad=True)

    def run():
        x.grad = w.grad = None
        y = F.conv2d(x, w, padding=1, stride=(2, 1))
        (y * y).sum().backward()
        return [y.detach().numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()]

    assert_same_for_any_thread_count(run)


# -- conv1d ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    ((2, 3, 33), (5, 3, 3), 1, 1, 1, 1),
    ((1, 4, 7), (4, 2, 2), 2, 0, 3, 2),
    ((3, 2, 9), (4, 2, 4), 1, "same", 2, 1),
    ((2, 6, 10), (6, 1, 5), 2, 3, 1, 6),
])
def test_conv1d_matches_torch(case, dtype):
    xs, ws, stride, padding, dilation, groups = case
    check_op(lambda x, w, b: F.conv1d(x, w, b, stride, padding, dilation, groups),
             lambda x, w, b: TF.conv1d(x, w, b, stride, padding, dilation, groups),
             [xs, ws, (ws[0],)], dtype=dtype, **tols(dtype))


# -- conv_transpose -------------------------------------------------------------------------------

# (x shape, w shape (C_in, C_out / groups, kh, kw), stride, padding, output_padding, groups, dilation)
CONVT2D_CASES = [
    ((2, 4, 5, 5), (4, 3, 3, 3), 1, 0, 0, 1, 1),
    ((2, 4, 5, 7), (4, 3, 4, 4), 2, 1, 0, 1, 1),            # the DCGAN upsampling block
    ((1, 6, 7, 3), (6, 2, 3, 2), (2, 3), (1, 0), (1, 2), 2, 1),
    ((2, 4, 4, 4), (4, 1, 3, 3), 1, 1, 1, 4, 2),            # output_padding < dilation (> stride)
    ((2, 3, 5, 5), (3, 5, 1, 1), 1, 0, 0, 1, 1),            # 1x1: one GEMM, no col2im
    ((1, 2, 1, 1), (2, 3, 5, 5), 3, 2, 2, 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONVT2D_CASES)
def test_conv_transpose2d_matches_torch(case, dtype):
    xs, ws, stride, padding, out_pad, groups, dilation = case
    for bias in (True, False):
        inputs = [xs, ws] + ([(ws[1] * groups,)] if bias else [None])
        check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation),
                 lambda x, w, b: TF.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation),
                 inputs, dtype=dtype, **tols(dtype))


def test_conv_transpose_noncontiguous_and_isa(isa):
    for dtype in (np.float32, np.float64):
        check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1),
                 lambda x, w, b: TF.conv_transpose2d(x, w, b, 2, 1, 1),
                 [NC((2, 3, 5, 4), "step"), NC((3, 4, 3, 3), "T"), (4,)], dtype=dtype, **tols(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose1d_matches_torch(dtype):
    check_op(lambda x, w, b: F.conv_transpose1d(x, w, b, 3, 1, 2, 2, 2),
             lambda x, w, b: TF.conv_transpose1d(x, w, b, 3, 1, 2, 2, 2),
             [(2, 4, 7), (4, 3, 3), (6,)], dtype=dtype, **tols(dtype))
    check_op(lambda x, w: F.conv_transpose1d(x, w), lambda x, w: TF.conv_transpose1d(x, w),
             [(4, 9), (4, 2, 5)], dtype=dtype, **tols(dtype))  # unbatched


# -- higher order, forward mode, gradcheck -------------------------------------------------------------


def test_gradcheck_float64():
    rng = np.random.default_rng(11)
    x = fg.tensor(rng.standard_normal((2, 4, 5, 4)), requires_grad=True)
    w = fg.tensor(rng.standard_normal((6, 2, 3, 2)), requires_grad=True)
    b = fg.tensor(rng.standard_normal(6), requires_grad=True)
    assert fg.autograd.gradcheck(lambda x, w, b: F.conv2d(x, w, b, (2, 1), 1, (1, 2), 2), (x, w, b))
    wt = fg.tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True)
    bt = fg.tensor(rng.standard_normal(6), requires_grad=True)
    assert fg.autograd.gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1, 2), (x, wt, bt))


@pytest.mark.parametrize("transposed", [False, True])
def test_double_backward_matches_torch(transposed):
    rng = np.random.default_rng(5)
    xs, ws = ((2, 4, 6, 5), (4, 3, 3, 3)) if transposed else ((2, 4, 7, 6), (6, 2, 3, 3))
    args = dict(stride=2, padding=1, groups=1 if transposed else 2)
    if transposed:
        args["output_padding"] = 1
    arrays = [rng.standard_normal(s) for s in (xs, ws, (ws[1] if transposed else ws[0],))]
    fns = (F.conv_transpose2d, TF.conv_transpose2d) if transposed else (F.conv2d, TF.conv2d)
    grads = []
    for lib, fn in (("fg", fns[0]), ("torch", fns[1])):
        mk = fg.tensor if lib == "fg" else torch.tensor
        x, w, b = [mk(a).requires_grad_() for a in arrays]
        y = fn(x, w, b, **args)
        loss = (y * y.tanh()).sum()
        if lib == "fg":
            gx, gw = fg.autograd.grad(loss, [x, w], create_graph=True)
            second = (gx * gx).sum() + (gw * gw.sin()).sum()
            hx, hw, hb = fg.autograd.grad(second, [x, w, b])
        else:
            gx, gw = torch.autograd.grad(loss, [x, w], create_graph=True)
            second = (gx * gx).sum() + (gw * gw.sin()).sum()
            hx, hw, hb = torch.autograd.grad(second, [x, w, b])
        grads.append([np.asarray(t.detach().numpy()) for t in (gx, gw, hx, hw, hb)])
    for a, e in zip(*grads):
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-9)


def test_jvp_matches_torch():
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal(s) for s in ((2, 4, 6, 5), (6, 2, 3, 3), (6,))]
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    f = lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=(2, 1), groups=2)  # noqa: E731
    tf = lambda x, w, b: TF.conv2d(x, w, b, stride=(1, 2), padding=(2, 1), groups=2)  # noqa: E731
    out, tan = fg.jvp(f, tuple(fg.tensor(a) for a in arrays), tuple(fg.tensor(t) for t in tangents))
    tout, ttan = torch.func.jvp(tf, tuple(torch.tensor(a) for a in arrays), tuple(torch.tensor(t) for t in tangents))
    np.testing.assert_allclose(out.numpy(), tout.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tan.numpy(), ttan.numpy(), rtol=1e-10, atol=1e-10)
    # conv_transpose: tangent of x alone, and of (w, b) alone
    g = lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1)  # noqa: E731
    tg = lambda x, w, b: TF.conv_transpose2d(x, w, b, 2, 1, 1)  # noqa: E731
    xs = [rng.standard_normal(s) for s in ((2, 3, 4, 4), (3, 5, 3, 3), (5,))]
    for mask in ((1, 0, 0), (0, 1, 1)):
        ts = [t * m for t, m in zip((rng.standard_normal(a.shape) for a in xs), mask)]
        _, tan = fg.jvp(g, tuple(fg.tensor(a) for a in xs), tuple(fg.tensor(t) for t in ts))
        _, ttan = torch.func.jvp(tg, tuple(torch.tensor(a) for a in xs), tuple(torch.tensor(t) for t in ts))
        np.testing.assert_allclose(tan.numpy(), ttan.numpy(), rtol=1e-10, atol=1e-10)


# -- layers ---------------------------------------------------------------------------------------------


def _copy_params(fm, tm):
    fm.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9, 8)),
    (lambda m: m.Conv2d(3, 5, (2, 3), padding="same", dilation=(2, 1), bias=False), (1, 3, 7, 6)),
    (lambda m: m.Conv1d(3, 4, 5, padding=2, dilation=1), (2, 3, 11)),
    (lambda m: m.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2), (2, 4, 5, 6)),
    (lambda m: m.ConvTranspose2d(3, 2, 3, stride=2, output_padding=1, dilation=2, bias=False), (1, 3, 4, 4)),
    (lambda m: m.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1), (2, 3, 7)),
])
def test_layers_match_torch(make, shape):
    tm, fm = make(torch.nn), make(nn)
    assert list(fm.state_dict().keys()) == list(tm.state_dict().keys())
    for k, v in tm.state_dict().items():
        assert fm.state_dict()[k].shape == tuple(v.shape)
    _copy_params(fm, tm)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    fx, tx = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy, ty = fm(fx), tm(tx)
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=2e-6)
    (fy * fy).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=2e-5)
    for (name, p), tp in zip(fm.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=2e-5, err_msg=name)
    assert repr(fm) == repr(tm)


def test_layer_init_bounds_like_torch():
    fg.manual_seed(0)
    for m in (nn.Conv2d(8, 16, 3), nn.ConvTranspose2d(8, 16, 3, groups=2), nn.Conv1d(4, 6, 5)):
        fan_in = m.weight.shape[1] * math.prod(m.weight.shape[2:])
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias share it
        for p in (m.weight, m.bias):
            v = p.detach().numpy()
            assert np.abs(v).max() <= bound and np.abs(v).max() > 0.5 * bound
            assert abs(v.mean()) < 4 * bound / math.sqrt(3 * v.size)  # 4 standard deviations of U(-b, b)'s mean
    assert nn.Conv2d(3, 4, 3).weight.dtype == fg.float32
    assert nn.Conv2d(3, 4, 3, dtype=fg.float64).bias.dtype == fg.float64


def test_conv_transpose_output_size_argument():
    tm, fm = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    _copy_params(fm, tm)
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 5)).astype(np.float32)
    for size in ((7, 9), (8, 10), (1, 2, 8, 9)):
        fy, ty = fm(fg.tensor(x), output_size=size), tm(torch.tensor(x), output_size=size)
        np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="output size"):
        fm(fg.tensor(x), output_size=(9, 9))


def test_layer_padding_modes():
    # reflect / replicate / circular work now: tested against torch in test_pad_modes.py
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(2, 3, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="zeros"):
        nn.ConvTranspose2d(2, 3, 3, padding_mode="circular")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")


# -- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn,inputs,match", [
    (lambda x, w: F.conv2d(x, w), [(2, 3, 5, 5), (4, 2, 3, 3)], "channels"),                 # wrong channels
    (lambda x, w: F.conv2d(x, w, groups=2), [(2, 4, 5, 5), (3, 2, 3, 3)], "groups"),        # groups vs out
    (lambda x, w: F.conv2d(x, w, groups=3), [(2, 4, 5, 5), (3, 1, 3, 3)], "groups"),        # groups vs in
    (lambda x, w: F.conv2d(x, w, padding=1), [(1, 2, 3, 3), (2, 2, 6, 3)], "larger"),       # kernel too big
    (lambda x, w: F.conv2d(x, w, dilation=3), [(1, 2, 5, 5), (2, 2, 3, 3)], "larger"),      # dilated too big
    (lambda x, w: F.conv2d(x, w), [(2, 3, 4, 5, 5), (4, 3, 3, 3)], "conv2d"),               # 5-D input
    (lambda x, w: F.conv2d(x, w), [(5, 5), (4, 3, 3, 3)], "conv2d"),                        # 2-D input
    (lambda x, w: F.conv2d(x, w), [(2, 3, 5, 5), (4, 3, 3)], "weight"),                     # 3-D weight
    (lambda x, w: F.conv2d(x, w, padding=-1), [(2, 3, 5, 5), (4, 3, 3, 3)], "padding"),
    (lambda x, w: F.conv2d(x, w, stride=0), [(2, 3, 5, 5), (4, 3, 3, 3)], "stride"),
    (lambda x, w: F.conv2d(x, w, dilation=(1, 0)), [(2, 3, 5, 5), (4, 3, 3, 3)], "dilation"),
    (lambda x, w: F.conv2d(x, w, groups=0), [(2, 3, 5, 5), (4, 3, 3, 3)], "groups"),
    (lambda x, w: F.conv2d(x, w, stride=2, padding="same"), [(2, 3, 5, 5), (4, 3, 3, 3)], "same"),
    (lambda x, w: F.conv2d(x, w, padding="full"), [(2, 3, 5, 5), (4, 3, 3, 3)], "padding"),
    (lambda x, w, b: F.conv2d(x, w, b), [(2, 3, 5, 5), (4, 3, 3, 3), (3,)], "bias"),
    (lambda x, w: F.conv1d(x, w), [(2, 3, 5), (4, 2, 3)], "conv1d"),
    (lambda x, w: F.conv1d(x, w, padding=(1, 1)), [(2, 3, 5), (4, 3, 3)], "padding"),
    (lambda x, w: F.conv_transpose2d(x, w), [(2, 3, 5, 5), (4, 2, 3, 3)], "channels"),
    (lambda x, w: F.conv_transpose2d(x, w, groups=3), [(2, 4, 5, 5), (4, 2, 3, 3)], "groups"),
    (lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=2), [(2, 4, 5, 5), (4, 2, 3, 3)],
     "output_padding"),
    (lambda x, w: F.conv_transpose2d(x, w, padding=3), [(1, 4, 2, 2), (4, 2, 3, 3)], "output size"),
    (lambda x, w: F.conv_transpose2d(x, w, padding=-1), [(1, 4, 2, 2), (4, 2, 3, 3)], "padding"),
])
def test_bad_inputs_raise(fn, inputs, match):
    check_raises(fn, None, inputs, match=match)


def test_bad_dtypes_raise_type_error():
    x32, w32 = fg.ones(1, 2, 4, 4), fg.ones(3, 2, 3, 3)
    with pytest.raises(TypeError, match="conv2d.*int64"):
        F.conv2d(fg.ones(1, 2, 4, 4, dtype=fg.int64), fg.ones(3, 2, 3, 3, dtype=fg.int64))
    with pytest.raises(TypeError, match="conv2d.*float64"):
        F.conv2d(x32, w32.double())
    with pytest.raises(TypeError, match="conv2d.*bias"):
        F.conv2d(x32, w32, fg.ones(3, dtype=fg.float64))
    with pytest.raises(TypeError, match="conv_transpose2d.*int32"):
        F.conv_transpose2d(fg.ones(1, 2, 4, 4, dtype=fg.int32), fg.ones(2, 3, 3, 3, dtype=fg.int32))
    with pytest.raises(TypeError, match="conv2d"):
        F.conv2d(np.ones((1, 2, 4, 4)), w32)
    with pytest.raises(TypeError, match="stride"):
        F.conv2d(x32, w32, stride=1.5)


def test_native_entry_points_validate():
    x, w = fg.ones(1, 2, 4, 4)._data, fg.ones(3, 2, 3, 3)._data
    with pytest.raises(ValueError, match="conv2d: expected 2 stride"):
        _C.conv_forward(x, w, None, [1], [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="larger than"):
        _C.conv_weight_grad(fg.ones(1, 3, 5, 5)._data, x, [3, 3], [1, 1], [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="larger than"):
        _C.conv_input_grad(fg.ones(1, 3, 5, 5)._data, w, None, [4, 4], [1, 1], [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="batch"):
        _C.conv_weight_grad(fg.ones(2, 3, 2, 2)._data, x, [3, 3], [1, 1], [0, 0, 0, 0], [1, 1], 1)


# -- random geometries ----------------------------------------------------------------------------------


def test_random_geometries_match_torch():
    """Seeded random shapes and parameters (large padding, strides beyond the
    kernel, dilation, groups, 1-D and 2-D, transposed): values and all
    gradients in float64 against torch."""
    rng = np.random.default_rng(2026)
    checked = 0
    while checked < 40:
        sd = int(rng.integers(1, 3))
        groups = int(rng.integers(1, 4))
        cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 5, sd))
        s = tuple(int(v) for v in rng.integers(1, 4, sd))
        d = tuple(int(v) for v in rng.integers(1, 3, sd))
        p = tuple(int(v) for v in rng.integers(0, 5, sd))
        size = tuple(int(v) for v in rng.integers(1, 12, sd))
        n = int(rng.integers(1, 3))
        transposed = bool(rng.integers(0, 2))
        if transposed:
            op = tuple(int(rng.integers(0, max(si, di))) for si, di in zip(s, d))
            if any((i - 1) * si - 2 * pi + di * (ki - 1) + oi + 1 < 1
                   for i, si, pi, di, ki, oi in zip(size, s, p, d, k, op)):
                continue
            ws = (cin, cout // groups) + k
            fgf = getattr(F, f"conv_transpose{sd}d")
            tf = getattr(TF, f"conv_transpose{sd}d")
            args = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
        else:
            if any(i + 2 * pi < di * (ki - 1) + 1 for i, pi, di, ki in zip(size, p, d, k)):
                continue
            ws = (cout, cin // groups) + k
            fgf, tf = getattr(F, f"conv{sd}d"), getattr(TF, f"conv{sd}d")
            args = dict(stride=s, padding=p, dilation=d, groups=groups)
        bias = (ws[1] * groups,) if transposed else (ws[0],)
        check_op(lambda x, w, b: fgf(x, w, b, **args), lambda x, w, b: tf(x, w, b, **args),
                 [(n, cin) + size, ws, bias], dtype=np.float64, seed=checked, **TOL64)
        checked += 1


# -- the direct path (stride 1, float32, AVX-512) against the GEMM path ---------------------------

@pytest.fixture(params=["direct", "gemm"])
def conv_path(request, monkeypatch):
    """Forces conv.cpp's direct path for every stride-1 float32 convolution
    (FASTGRAD_CONV_DIRECT=1) or turns it off (=0); on a CPU without AVX-512
    both run the GEMM path."""
    monkeypatch.setenv("FASTGRAD_CONV_DIRECT", "1" if request.param == "direct" else "0")
    return request.param


# (x shape, w shape, padding, dilation, groups): stride 1, sizes that leave
# partial vectors (P % 16), partial tiles of 8 channels, tiles that span images,
# padding beyond the kernel (the input gradient then crops g), asymmetric 'same'.
DIRECT_CASES = [
    ((3, 5, 7, 9), (11, 5, 3, 3), 1, 1, 1),
    ((32, 32, 4, 4), (64, 32, 3, 3), 1, 1, 1),              # the digits CNN's last conv
    ((5, 1, 8, 8), (32, 1, 3, 3), 1, 1, 1),
    ((2, 6, 9, 5), (10, 3, 2, 3), (0, 2), (2, 1), 2),
    ((2, 3, 5, 4), (17, 3, 3, 3), (3, 2), 1, 1),            # padding > kernel - 1
    ((1, 4, 13, 17), (8, 4, 5, 4), "same", (1, 2), 1),
    ((2, 3, 1, 20), (4, 3, 1, 5), 0, 1, 1),
    ((4, 2, 6, 6), (2, 2, 1, 1), 1, 1, 1),                  # 1x1 with padding
    # output rows as wide as input rows, 16 % width == 0: the flat row copy
    ((3, 4, 8, 8), (10, 4, 3, 3), (2, 1), (2, 1), 1),
    ((2, 3, 16, 16), (9, 3, 5, 5), 2, 1, 1),
    ((3, 2, 2, 2), (8, 2, 3, 3), 1, 1, 1),
    # more than 64 taps (the broadcast weight-gradient kernel), channels not filling its 32-wide tiles
    ((2, 9, 5, 7), (37, 9, 3, 3), 1, 1, 1),
    ((2, 16, 6, 6), (6, 8, 3, 3), (1, 0), (1, 2), 2),
]


@pytest.mark.parametrize("cap", ["avx512", "avx2"])
@pytest.mark.parametrize("case", DIRECT_CASES)
def test_conv2d_direct_and_gemm_paths_match_torch(conv_path, cap, case):
    xs, ws, padding, dilation, groups = case
    with forced_cpu_capability(cap, _C.gemm_info):
        # float64 always takes the GEMM path: once is enough
        for dtype in (np.float32, np.float64) if conv_path == "direct" and cap == "avx512" else (np.float32,):
            check_op(lambda x, w, b: F.conv2d(x, w, b, 1, padding, dilation, groups),
                     lambda x, w, b: TF.conv2d(x, w, b, 1, padding, dilation, groups),
                     [xs, ws, (ws[0],)], dtype=dtype, **tols(dtype))


def test_direct_path_strided_inputs_transposed_conv1d(conv_path):
    for kind in ("T", "step"):
        check_op(lambda x, w, b: F.conv2d(x, w, b, 1, 1), lambda x, w, b: TF.conv2d(x, w, b, 1, 1),
                 [NC((3, 4, 6, 7), kind), NC((9, 4, 3, 3), kind), NC((9,), kind)], **TOL32)
    # conv_transpose's forward is the input-gradient kernel (with its bias)
    check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, 1, 1, 0, 2, (1, 2)),
             lambda x, w, b: TF.conv_transpose2d(x, w, b, 1, 1, 0, 2, (1, 2)),
             [NC((2, 4, 5, 6), "step"), (4, 5, 3, 2), (10,)], **TOL32)
    check_op(lambda x, w, b: F.conv1d(x, w, b, 1, 2), lambda x, w, b: TF.conv1d(x, w, b, 1, 2),
             [(3, 5, 19), (12, 5, 4), (12,)], **TOL32)


def test_direct_path_expanded_gradient_and_channels_last(conv_path):
    # y.sum().backward(): a stride-0 gradient (read through its strides, or the GEMM path
    # for the weight gradient); channels-last x has rows that are not contiguous in memory
    x = np.random.default_rng(3).standard_normal((2, 6, 5, 7)).astype(np.float32)
    w = np.random.default_rng(4).standard_normal((4, 3, 3, 3)).astype(np.float32)
    for channels_last in (False, True):
        fx = fg.tensor(x.transpose(0, 2, 3, 1).copy()).permute(0, 3, 1, 2) if channels_last else fg.tensor(x)
        fx.requires_grad_()
        fw = fg.tensor(w, requires_grad=True)
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        F.conv2d(fx, fw, padding=1, groups=2).sum().backward()
        TF.conv2d(tx, tw, padding=1, groups=2).sum().backward()
        np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=2e-5)
        np.testing.assert_allclose(fw.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=5e-5)


def test_direct_path_same_result_for_any_thread_count(conv_path):
    rng = np.random.default_rng(8)
    x = fg.tensor(rng.standard_normal((7, 8, 9, 6)).astype(np.float32), requires_grad=True)
    w = fg.tensor(rng.standard_normal((12, 8, 3, 3)).astype(np.float32), requires_grad=True)
    w1 = fg.tensor(rng.standard_normal((10, 1, 3, 3)).astype(np.float32), requires_grad=True)

    def run():
        x.grad = w.grad = w1.grad = None
        y = F.conv2d(x, w, padding=1)
        z = F.conv2d(x[:, 1:2], w1, padding=(0, 1))  # 9 taps: the position-vector weight gradient
        ((y * y).sum() + (z * z).sum()).backward()
        return [y.detach().numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy(), w1.grad.numpy().copy()]

    assert_same_for_any_thread_count(run)


def test_direct_path_random_geometries_match_torch(conv_path):
    """Seeded random stride-1 geometries in float32 (the direct path's dtype):
    values and all gradients against torch."""
    rng = np.random.default_rng(11)
    checked = 0
    while checked < 12:
        groups = int(rng.integers(1, 3))
        cin, cout = groups * int(rng.integers(1, 6)), groups * int(rng.integers(1, 14))
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        p = tuple(int(v) for v in rng.integers(0, 4, 2))
        size = tuple(int(v) for v in rng.integers(1, 14, 2))
        if any(i + 2 * pi < di * (ki - 1) + 1 for i, pi, di, ki in zip(size, p, d, k)):
            continue
        n = int(rng.integers(1, 6))
        args = dict(stride=1, padding=p, dilation=d, groups=groups)
        check_op(lambda x, w, b: F.conv2d(x, w, b, **args), lambda x, w, b: TF.conv2d(x, w, b, **args),
                 [(n, cin) + size, (cout, cin // groups) + k, (cout,)], seed=checked, **TOL32)
        checked += 1
