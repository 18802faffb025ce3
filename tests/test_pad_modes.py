"""F.pad's reflect / replicate / circular modes and the conv layers'
padding_mode, against torch: values, gradients, forward mode, double
backward, and the errors for bad sizes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fastgrad as fg
import fastgrad.nn.functional as F
from helpers import FG_ERRORS, FLOAT_DTYPES, NC, TOLS, check_op, check_raises, fg_dtype, to_numpy, torch_dtype

MODES = ("reflect", "replicate", "circular")

# (input shape, pads): 1, 2 and 3 padded dims, batched and not, negative pads (crops) and odd sizes
CASES = [
    ((2, 3, 7), (2, 3)),
    ((3, 5), (4, 1)),
    ((2, 3, 7), (-2, 3)),
    ((2, 3, 5, 6), (1, 2, 3, 0)),
    ((3, 5, 6), (0, 5, -1, 4)),
    ((1, 2, 3, 4, 5), (1, 2, 2, 1, 0, 2)),
    ((2, 3, 4, 5), (2, 0, -1, 3, 1, 1)),
]


def _pads_fit(mode, shape, pads):
    """Whether torch accepts (and defines) these pads for this mode."""
    for j in range(len(pads) // 2):
        n, lo, hi = shape[-1 - j], pads[2 * j], pads[2 * j + 1]
        if mode == "reflect" and (lo >= n or hi >= n):
            return False
        if mode == "circular" and max(lo, 0) + max(hi, 0) and (
                max(lo, hi) > n - max(-lo, 0) - max(-hi, 0)):
            return False
    return True


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape,pads", CASES)
def test_values_and_grads_match_torch(mode, shape, pads, dtype):
    if not _pads_fit(mode, shape, pads):
        pytest.skip("pads outside this mode's domain (tested in test_errors_match_torch)")
    check_op(lambda x: F.pad(x, pads, mode=mode), lambda x: TF.pad(x, pads, mode=mode), [shape], dtype=dtype)


@pytest.mark.parametrize("kind", NC.KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_inputs(mode, kind):
    check_op(lambda x: F.pad(x, (2, 1, 1, 2), mode=mode), lambda x: TF.pad(x, (2, 1, 1, 2), mode=mode),
             [NC((2, 3, 4, 5), kind)], dtype=np.float64)


@pytest.mark.parametrize("mode", MODES)
def test_random_pads_agree_with_torch(mode):
    """Random pads (negative ones too) on every supported rank: both succeed
    with the same values, or both raise."""
    rng = np.random.default_rng(7)
    for shape, k in [((2, 3, 5), 1), ((3, 4), 1), ((2, 3, 4, 5), 2), ((3, 4, 5), 2), ((1, 2, 3, 4, 5), 3)]:
        for _ in range(25):
            pads = [int(v) for v in rng.integers(-5, 6, size=2 * k)]
            if mode == "circular" and not _pads_fit(mode, shape, pads):
                continue  # torch reads memory it has not written there
            x = rng.standard_normal(shape)
            tx, fx = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
            try:
                want = TF.pad(tx, pads, mode=mode)
            except Exception:  # noqa: BLE001
                with pytest.raises(FG_ERRORS, match="pad"):
                    F.pad(fx, pads, mode=mode)
                continue
            got = F.pad(fx, pads, mode=mode)
            assert tuple(got.shape) == tuple(want.shape), (shape, pads)
            np.testing.assert_array_equal(to_numpy(got.detach()), want.detach().numpy())
            g = rng.standard_normal(tuple(want.shape))
            want.backward(torch.tensor(g))
            got.backward(fg.tensor(g))
            np.testing.assert_allclose(to_numpy(fx.grad), tx.grad.numpy(), atol=1e-12, err_msg=str((shape, pads)))


@pytest.mark.parametrize("mode", MODES)
def test_integer_input(mode):
    x = np.arange(2 * 3 * 5, dtype=np.int64).reshape(2, 3, 5)
    got = F.pad(fg.tensor(x), (2, 3, 1, 1), mode=mode)
    want = TF.pad(torch.tensor(x), (2, 3, 1, 1), mode=mode)
    assert got.dtype is fg.int64
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("mode", MODES)
def test_forward_mode_and_double_backward(mode):
    """pad is linear: its jvp is pad(tangent); the gradient of <vjp(g), v>
    with respect to the cotangent g is pad(v). Both checked against torch."""
    rng = np.random.default_rng(3)
    pads = (2, 1, 0, 2)
    x, t, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    _, jv = fg.autograd.functional.jvp(lambda a: F.pad(a, pads, mode=mode), [fg.tensor(x)], [fg.tensor(t)])
    np.testing.assert_allclose(to_numpy(jv), TF.pad(torch.tensor(t), pads, mode=mode).numpy(), atol=1e-12)

    g = rng.standard_normal(TF.pad(torch.tensor(x), pads, mode=mode).shape)
    res = []
    for lib, pad in ((fg, F.pad), (torch, TF.pad)):
        xa = lib.tensor(x, requires_grad=True)
        ga = lib.tensor(g, requires_grad=True)
        (gx,) = lib.autograd.grad(pad(xa, pads, mode=mode), [xa], [ga], create_graph=True)
        (gx * lib.tensor(v)).sum().backward()
        res.append((to_numpy(gx.detach()), to_numpy(ga.grad)))
    np.testing.assert_allclose(res[0][0], res[1][0], atol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], atol=1e-12)


def test_constant_mode_still_works():
    check_op(lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), lambda x: TF.pad(x, (1, 2, 0, 1), value=0.5), [(2, 3, 4)])
    check_op(lambda x: F.pad(x, (1, 2), mode="constant"), lambda x: TF.pad(x, (1, 2), mode="constant"), [(3, 4)])


@pytest.mark.parametrize("fn,match", [
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (4, 0), mode="reflect"), "padding (4, 0)"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (1, 1, 3, 0), mode="reflect"), "padding (3, 0)"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (5, 0), mode="circular"), "wraps around"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (-2, -2), mode="replicate"), "too small"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (1, 1, 1, 1, 1, 1), mode="reflect"), "padding size 6"),
    (lambda p: p.pad(torch_or_fg_x(p, (4,)), (1, 1), mode="replicate"), "1D"),
    (lambda p: p.pad(torch_or_fg_x(p, (1, 2, 3, 4, 5, 6)), (1, 1), mode="circular"), "6D"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 0, 4)), (1, 1), mode="reflect"), "[2, 0, 4]"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (1, 1), mode="reflect", value=2.0), "value"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (1, 1), mode="mirror"), "mirror"),
    (lambda p: p.pad(torch_or_fg_x(p, (2, 3, 4)), (1,), mode="replicate"), "padding length"),
])
def test_errors_match_torch(fn, match):
    e = check_raises(lambda: fn(F), lambda: fn(TF), match="pad")
    assert match in str(e), f"{e} does not name {match!r}"


def torch_or_fg_x(mod, shape):
    return (torch.zeros if mod is TF else fg.zeros)(*shape)


def test_unknown_mode_is_not_implemented_like_torch():
    with pytest.raises(NotImplementedError, match="mirror"):
        F.pad(fg.zeros(2, 3, 4), (1, 1), mode="mirror")
    with pytest.raises(NotImplementedError, match="padding size 4.*2D"):
        F.pad(fg.zeros(3, 4), (1, 1, 1, 1), mode="reflect")


# -- conv layers -------------------------------------------------------------------------------------


def _conv_pair(cls, dtype, **kw):
    tm = getattr(torch.nn, cls)(3, 4, **kw).to(torch_dtype(dtype))
    m = getattr(fg.nn, cls)(3, 4, dtype=fg_dtype(dtype), **kw)
    m.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, m


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls,shape,kw", [
    ("Conv1d", (2, 3, 9), dict(kernel_size=3, padding=2, stride=2)),
    ("Conv1d", (3, 8), dict(kernel_size=4, padding="same")),
    ("Conv2d", (2, 3, 7, 6), dict(kernel_size=(3, 2), padding=(1, 2), dilation=(2, 1))),
    ("Conv2d", (3, 5, 6), dict(kernel_size=3, padding="same", groups=1, bias=False)),
    ("Conv2d", (1, 3, 5, 5), dict(kernel_size=3, padding=(0, 4), stride=(1, 2))),
])
def test_conv_padding_modes_match_torch(cls, shape, kw, mode, dtype):
    if mode == "reflect" and max(np.atleast_1d(kw["padding"] if kw["padding"] != "same" else 2)) >= min(shape[-2:]):
        pytest.skip("reflect pad must be smaller than the input")
    tm, m = _conv_pair(cls, dtype, padding_mode=mode, **kw)
    assert tuple(m._reversed_padding_repeated_twice) == tuple(tm._reversed_padding_repeated_twice)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    tx, fx = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
    to, fo = tm(tx), m(fx)
    g = rng.standard_normal(tuple(to.shape)).astype(dtype)
    to.backward(torch.tensor(g))
    fo.backward(fg.tensor(g))
    atol = TOLS[np.dtype(dtype)][2] * 10
    np.testing.assert_allclose(to_numpy(fo.detach()), to.detach().numpy(), atol=atol)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(to_numpy(getattr(m, name).grad), p.grad.numpy(), atol=atol, err_msg=name)
    np.testing.assert_allclose(to_numpy(fx.grad), tx.grad.numpy(), atol=atol)


def test_conv_padding_mode_errors():
    for mode in ("reflect", "replicate", "circular"):
        with pytest.raises(ValueError, match="zeros"):
            fg.nn.ConvTranspose2d(2, 3, 3, padding_mode=mode)
        with pytest.raises(ValueError, match="zeros"):
            fg.nn.ConvTranspose1d(2, 3, 3, padding_mode=mode)
    with pytest.raises(ValueError, match="padding_mode"):
        fg.nn.Conv1d(2, 3, 3, padding_mode="mirror")
    m = fg.nn.Conv1d(2, 3, 3, padding=4, padding_mode="reflect")
    assert "padding_mode='reflect'" in repr(m)
    with pytest.raises(RuntimeError, match="pad"):
        m(fg.zeros(1, 2, 4))  # reflect pad 4 >= length 4, as in torch


@pytest.mark.skipif(not fg.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_pad_modes_match_torch(mode):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 5, 6))
    fx, tx = fg.tensor(x, device="cuda", requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, to = F.pad(fx, (2, -1, 1, 3), mode=mode), TF.pad(tx, (2, -1, 1, 3), mode=mode)
    assert fo.device.type == "cuda"
    g = rng.standard_normal(tuple(to.shape))
    fo.backward(fg.tensor(g, device="cuda"))
    to.backward(torch.tensor(g))
    np.testing.assert_allclose(to_numpy(fo.detach().cpu()), to.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(to_numpy(fx.grad.cpu()), tx.grad.numpy(), atol=1e-12)
