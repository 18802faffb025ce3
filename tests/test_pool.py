"""Pooling and upsampling (csrc/cpu/pool.cpp, ops/pool.py, nn pooling and
upsampling layers) against PyTorch: values, argmax indices and gradients
across kernel/stride/padding/dilation/ceil_mode/count_include_pad, odd
sizes, unbatched and non-contiguous (channels-last) inputs, ties, -inf and
NaN; gradcheck, double backward and forward mode; layers; bad arguments."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fastgrad as fg
import fastgrad.nn.functional as F
from helpers import FLOAT_DTYPES, NC, assert_close, check_op, check_raises, to_numpy

DT_IDS = ["f32", "f64"]


def channels_last(x, lib):
    """(N, C, H, W) view with channels innermost in memory (torch's channels_last layout)."""
    base = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    t = fg.tensor(base) if lib == "fg" else torch.tensor(base)
    return t.permute(0, 3, 1, 2)


# -- max pooling ----------------------------------------------------------------------------------

MAX2D = [  # shape, kernel_size, stride, padding, dilation, ceil_mode
    ((2, 3, 7, 9), 2, None, 0, 1, False),
    ((2, 2, 8, 8), 2, 2, 0, 1, False),
    ((2, 2, 9, 33), 2, None, 0, 1, False),
    ((2, 3, 33, 7), 3, 2, 1, 1, False),
    ((1, 2, 7, 7), (3, 2), (2, 1), (1, 1), (1, 2), True),
    ((3, 7, 7), 3, 1, 1, 2, False),
    ((2, 1, 1, 7), (1, 3), (1, 2), (0, 1), 1, True),
    ((1, 1, 5, 5), 2, 2, 0, 1, True),
    ((1, 3, 11, 10), 4, 3, 2, 1, True),
    ((2, 2, 1, 1), 1, 1, 0, 1, False),
    ((1, 2, 5, 70), 3, 1, 1, 1, False),  # long rows: the vector loop's body and tail
    ((1, 2, 6, 71), (2, 4), 2, (1, 2), (2, 3), True),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,k,s,p,d,ceil", MAX2D)
def test_max_pool2d(shape, k, s, p, d, ceil, dtype):
    check_op(lambda x: F.max_pool2d(x, k, s, p, d, ceil, return_indices=True),
             lambda x: TF.max_pool2d(x, k, s, p, d, ceil, return_indices=True), [shape], dtype=dtype)


@pytest.mark.parametrize("kind", ["T", "step"])
def test_max_pool2d_noncontiguous(kind):
    check_op(lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True),
             lambda x: TF.max_pool2d(x, 3, 2, 1, return_indices=True), [NC((2, 3, 9, 7), kind)])


@pytest.mark.parametrize("k,s", [(2, 2), (3, 1)])
def test_max_pool2d_channels_last(k, s):
    x = np.random.default_rng(3).standard_normal((2, 5, 9, 8)).astype(np.float32)
    a, b = channels_last(x, "fg").requires_grad_(), channels_last(x, "torch").requires_grad_()
    (oa, ia), (ob, ib) = F.max_pool2d(a, k, s, return_indices=True), TF.max_pool2d(b, k, s, return_indices=True)
    assert_close(oa, ob, 0, 0), assert_close(ia, ib, 0, 0)
    g = np.random.default_rng(4).standard_normal(ob.shape).astype(np.float32)
    oa.backward(fg.tensor(g)), ob.backward(torch.tensor(g))
    assert_close(a.grad, b.grad, 1e-6, 1e-6)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
def test_max_pool_ties_inf_nan(dtype):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, size=(2, 3, 9, 10)).astype(dtype)  # many ties: torch picks the first max
    check_op(lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True),
             lambda t: TF.max_pool2d(t, 3, 2, 1, return_indices=True), [x], dtype=dtype)
    check_op(lambda t: F.max_pool2d(t, 2, return_indices=True),
             lambda t: TF.max_pool2d(t, 2, return_indices=True), [x], dtype=dtype)
    y = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    y[y > 1.0] = np.nan
    y[y < -1.0] = -np.inf
    y[0, 0, :4, :4] = -np.inf  # whole windows of -inf
    y[1, 1, :2, :2] = np.nan
    for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 1, 1)):
        for fn, tfn in ((F.max_pool2d, TF.max_pool2d), (F.adaptive_max_pool2d, TF.adaptive_max_pool2d)):
            args = (k, s, p) if fn is F.max_pool2d else ((3, 5),)
            (oa, ia), (ob, ib) = fn(fg.tensor(y), *args, return_indices=True), tfn(torch.tensor(y), *args,
                                                                                 return_indices=True)
            assert_close(oa, ob, 0, 0), assert_close(ia, ib, 0, 0)
        oa, ob = F.max_pool1d(fg.tensor(y[0]), k, s, p), TF.max_pool1d(torch.tensor(y[0]), k, s, p)
        assert_close(oa, ob, 0, 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
def test_max_pool_2x2_stride2_path(dtype):
    """2x2 windows with stride 2 take a path of their own (vectors of four
    windows and a one-window tail): widths 1-9 and 18 cover both, odd sizes
    drop the last row / column, a column slice of a wider tensor has rows
    further apart than its width; ties, NaN in each tap and -inf windows."""
    rng = np.random.default_rng(9)
    for h, w in ((2, 2), (4, 4), (5, 7), (8, 8), (9, 17), (3, 36), (6, 10), (2, 6)):
        x = rng.integers(0, 3, size=(2, 3, h, w)).astype(dtype)  # many ties: the first max wins
        for tap in range(4):  # a NaN in each position of some windows (the last NaN wins)
            x[0, tap % 3, tap // 2:: 2, tap % 2:: 4] = np.nan
        x[1, 0, :2, :2] = -np.inf
        x[1, 1, :, 1::2] = np.nan
        for view in (lambda a: a, lambda a: a[..., : max(2, w - 3)]):
            fx, tx = view(fg.tensor(x)), view(torch.tensor(x))
            (oa, ia), (ob, ib) = (F.max_pool2d(fx, 2, return_indices=True),
                                  TF.max_pool2d(tx, 2, return_indices=True))
            assert_close(oa, ob, 0, 0), assert_close(ia, ib, 0, 0)
    check_op(lambda t: F.max_pool2d(t, 2, 2), lambda t: TF.max_pool2d(t, 2, 2), [(3, 4, 9, 11)], dtype=dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,k,s,p,d,ceil", [
    ((2, 3, 33), 3, 2, 1, 1, False), ((3, 7), 2, None, 0, 1, False), ((2, 2, 10), 3, 2, 1, 2, True),
    ((1, 1, 1), 1, 1, 0, 1, False), ((2, 4, 7), 4, 3, 2, 1, True)])
def test_max_pool1d(shape, k, s, p, d, ceil, dtype):
    check_op(lambda x: F.max_pool1d(x, k, s, p, d, ceil, return_indices=True),
             lambda x: TF.max_pool1d(x, k, s, p, d, ceil, return_indices=True), [shape], dtype=dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,size", [((2, 3, 7, 7), 1), ((2, 3, 7, 9), (3, 5)), ((3, 7, 9), (None, 4)),
                                        ((1, 2, 5, 6), (9, 11)), ((1, 1, 33, 7), (7, 7))])
def test_adaptive_max_pool2d(shape, size, dtype):
    check_op(lambda x: F.adaptive_max_pool2d(x, size, return_indices=True),
             lambda x: TF.adaptive_max_pool2d(x, size, return_indices=True), [shape], dtype=dtype)


def test_adaptive_max_pool1d():
    check_op(lambda x: F.adaptive_max_pool1d(x, 4, return_indices=True),
             lambda x: TF.adaptive_max_pool1d(x, 4, return_indices=True), [(2, 3, 11)], dtype=np.float64)
    check_op(lambda x: F.adaptive_max_pool1d(x, 9), lambda x: TF.adaptive_max_pool1d(x, 9), [(3, 7)])


# -- average pooling --------------------------------------------------------------------------------

AVG2D = [  # shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    ((2, 3, 7, 9), 2, None, 0, False, True, None),
    ((2, 3, 33, 7), 3, 2, 1, False, True, None),
    ((2, 3, 33, 7), 3, 2, 1, False, False, None),
    ((1, 2, 7, 7), (3, 2), (2, 1), (1, 1), True, True, None),
    ((1, 2, 7, 7), (3, 2), (2, 1), (1, 1), True, False, None),
    ((3, 7, 8), 3, 1, 1, False, True, 5),
    ((1, 3, 11, 10), 4, 3, 2, True, False, None),
    ((1, 3, 11, 10), 4, 3, 2, True, True, -3),
    ((2, 1, 1, 7), (1, 3), (1, 2), (0, 1), True, True, None),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,k,s,p,ceil,cip,div", AVG2D)
def test_avg_pool2d(shape, k, s, p, ceil, cip, div, dtype):
    check_op(lambda x: F.avg_pool2d(x, k, s, p, ceil, cip, div), lambda x: TF.avg_pool2d(x, k, s, p, ceil, cip, div),
             [shape], dtype=dtype)


@pytest.mark.parametrize("kind", ["T", "step"])
def test_avg_pool2d_noncontiguous(kind):
    check_op(lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
             lambda x: TF.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [NC((2, 3, 9, 7), kind)])
    x = np.random.default_rng(6).standard_normal((2, 4, 7, 9)).astype(np.float32)
    assert_close(F.avg_pool2d(channels_last(x, "fg"), 2), TF.avg_pool2d(channels_last(x, "torch"), 2), 1e-6, 1e-6)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,k,s,p,ceil,cip", [
    ((2, 3, 33), 3, 2, 1, False, True), ((3, 7), 2, None, 0, True, True), ((2, 2, 10), 4, 3, 2, True, False),
    ((1, 1, 1), 1, 1, 0, False, True)])
def test_avg_pool1d(shape, k, s, p, ceil, cip, dtype):
    check_op(lambda x: F.avg_pool1d(x, k, s, p, ceil, cip), lambda x: TF.avg_pool1d(x, k, s, p, ceil, cip),
             [shape], dtype=dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,size", [((2, 3, 7, 7), 1), ((2, 3, 7, 9), (3, 5)), ((3, 7, 9), (None, 4)),
                                        ((1, 2, 5, 6), (9, 11)), ((1, 1, 33, 7), (7, 7)), ((2, 2, 6, 6), 0)])
def test_adaptive_avg_pool2d(shape, size, dtype):
    # (torch's backward refuses an empty output)
    check_op(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: TF.adaptive_avg_pool2d(x, size), [shape],
             dtype=dtype, grad=size != 0)


def test_adaptive_avg_pool_noncontiguous_and_1d():
    check_op(lambda x: F.adaptive_avg_pool2d(x, (2, 3)), lambda x: TF.adaptive_avg_pool2d(x, (2, 3)),
             [NC((2, 3, 7, 7), "T")])
    check_op(lambda x: F.adaptive_avg_pool2d(x, 1), lambda x: TF.adaptive_avg_pool2d(x, 1), [NC((2, 3, 7, 7), "step")])
    check_op(lambda x: F.adaptive_avg_pool1d(x, 4), lambda x: TF.adaptive_avg_pool1d(x, 4), [(2, 3, 11)])
    check_op(lambda x: F.adaptive_avg_pool1d(x, 9), lambda x: TF.adaptive_avg_pool1d(x, 9), [(3, 7)],
             dtype=np.float64)


def test_integer_pooling_matches_torch():
    x = np.random.default_rng(7).integers(-50, 50, size=(2, 3, 7, 8))
    for fn, tfn, args in ((F.max_pool2d, TF.max_pool2d, (3, 2, 1)), (F.avg_pool2d, TF.avg_pool2d, (3, 2, 1)),
                          (F.avg_pool2d, TF.avg_pool2d, (2,)), (F.avg_pool1d, TF.avg_pool1d, (3, 2, 1))):
        xi = x[0] if fn is F.avg_pool1d else x
        assert_close(fn(fg.tensor(xi), *args), tfn(torch.tensor(xi), *args), 0, 0)


def test_empty_batch():
    x = np.zeros((0, 3, 8, 8), np.float32)
    for fn, tfn in ((lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2)),
                    (lambda t: F.avg_pool2d(t, 3, 1, 1), lambda t: TF.avg_pool2d(t, 3, 1, 1)),
                    (lambda t: F.adaptive_avg_pool2d(t, 2), lambda t: TF.adaptive_avg_pool2d(t, 2)),
                    (lambda t: F.interpolate(t, scale_factor=2), lambda t: TF.interpolate(t, scale_factor=2))):
        a = fg.tensor(x, requires_grad=True)
        out = fn(a)
        assert_close(out, tfn(torch.tensor(x)), 0, 0)
        out.sum().backward()
        assert a.grad.shape == a.shape


# -- upsampling ------------------------------------------------------------------------------------

INTERP = [  # shape, kwargs
    ((2, 3, 7, 9), dict(scale_factor=2)),
    ((2, 3, 7, 9), dict(size=(14, 18))),
    ((1, 2, 7, 9), dict(size=(13, 20))),
    ((1, 2, 7, 9), dict(size=(5, 4))),
    ((1, 2, 7, 9), dict(scale_factor=1.5)),
    ((1, 2, 7, 9), dict(scale_factor=(2.3, 0.7))),
    ((1, 2, 7, 9), dict(scale_factor=3, recompute_scale_factor=True)),
    ((1, 2, 33, 1), dict(size=(7, 3))),
    ((3, 7, 5), dict(scale_factor=2)),  # 3-D: (N, C, L)
    ((3, 7, 5), dict(size=12)),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,kw", INTERP)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear", "area"])
def test_interpolate(shape, kw, mode, dtype):
    if mode == "linear" and len(shape) == 4:
        mode = "bilinear"
    if mode == "area" and "recompute_scale_factor" in kw:
        kw = dict(kw, recompute_scale_factor=None)
    check_op(lambda x: F.interpolate(x, mode=mode, **kw), lambda x: TF.interpolate(x, mode=mode, **kw), [shape],
             dtype=dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,kw", INTERP)
def test_interpolate_align_corners(shape, kw, dtype):
    mode = "bilinear" if len(shape) == 4 else "linear"
    check_op(lambda x: F.interpolate(x, mode=mode, align_corners=True, **kw),
             lambda x: TF.interpolate(x, mode=mode, align_corners=True, **kw), [shape], dtype=dtype)


@pytest.mark.parametrize("kind", ["T", "step"])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_interpolate_noncontiguous(kind, mode):
    check_op(lambda x: F.interpolate(x, scale_factor=2, mode=mode),
             lambda x: TF.interpolate(x, scale_factor=2, mode=mode),
             [NC((2, 3, 5, 7), kind)])
    x = np.random.default_rng(8).standard_normal((2, 4, 5, 7)).astype(np.float32)
    assert_close(F.interpolate(channels_last(x, "fg"), size=(9, 11), mode=mode),
                 TF.interpolate(channels_last(x, "torch"), size=(9, 11), mode=mode), 1e-5, 1e-5)


def test_pixel_shuffle():
    check_op(lambda x: F.pixel_shuffle(x, 2), lambda x: TF.pixel_shuffle(x, 2), [(2, 12, 3, 5)])
    check_op(lambda x: F.pixel_shuffle(x, 3), lambda x: TF.pixel_shuffle(x, 3), [(9, 2, 3)])
    check_op(lambda x: F.pixel_unshuffle(x, 2), lambda x: TF.pixel_unshuffle(x, 2), [(2, 3, 6, 4)])


# -- gradients: gradcheck, double backward, forward mode -------------------------------------------

OPS = {  # name: (fastgrad fn, torch fn, input shape)
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), (2, 2, 7, 6)),
    "max_pool1d": (lambda x: F.max_pool1d(x, 3, 2, 1, 2), lambda x: TF.max_pool1d(x, 3, 2, 1, 2), (2, 3, 9)),
    "adaptive_max_pool2d": (lambda x: F.adaptive_max_pool2d(x, (2, 3)), lambda x: TF.adaptive_max_pool2d(x, (2, 3)),
                            (2, 2, 5, 7)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), lambda x: TF.avg_pool2d(x, 3, 2, 1, True, False),
                   (2, 2, 7, 6)),
    "avg_pool1d": (lambda x: F.avg_pool1d(x, 3, 2, 1), lambda x: TF.avg_pool1d(x, 3, 2, 1), (2, 3, 9)),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), lambda x: TF.adaptive_avg_pool2d(x, (2, 3)),
                            (2, 2, 5, 7)),
    "nearest": (lambda x: F.interpolate(x, size=(7, 5)), lambda x: TF.interpolate(x, size=(7, 5)), (2, 2, 3, 4)),
    "bilinear": (lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear"),
                 lambda x: TF.interpolate(x, scale_factor=1.7, mode="bilinear"), (2, 2, 3, 4)),
    "linear_ac": (lambda x: F.interpolate(x, size=7, mode="linear", align_corners=True),
                  lambda x: TF.interpolate(x, size=7, mode="linear", align_corners=True), (2, 2, 4)),
}


@pytest.mark.parametrize("name", list(OPS))
def test_gradcheck(name):
    fn, _, shape = OPS[name]
    x = fg.tensor(np.random.default_rng(9).standard_normal(shape), requires_grad=True)
    assert fg.autograd.gradcheck(fn, (x,))


@pytest.mark.parametrize("name", list(OPS))
def test_double_backward(name):
    """d/dv of <grad_x(<f(x), v>), w>: the backward kernels' own vjp, against torch."""
    fn, tfn, shape = OPS[name]
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape)
    out_shape = tfn(torch.tensor(x)).shape
    v, w = rng.standard_normal(out_shape), rng.standard_normal(shape)
    res = []
    for lib, f in (("fg", fn), ("torch", tfn)):
        mk = fg.tensor if lib == "fg" else torch.tensor
        xa, va = mk(x).requires_grad_(), mk(v).requires_grad_()
        auto = fg.autograd if lib == "fg" else torch.autograd
        (gx,) = auto.grad(f(xa), xa, grad_outputs=va, create_graph=True)
        (gv,) = auto.grad((gx * mk(w)).sum(), va)
        res.append((gx, gv))
    assert_close(res[0][0], res[1][0], 1e-10, 1e-8, "grad x")
    assert_close(res[0][1], res[1][1], 1e-10, 1e-8, "grad of grad w.r.t. v")


@pytest.mark.parametrize("name", list(OPS))
def test_jvp(name):
    fn, tfn, shape = OPS[name]
    rng = np.random.default_rng(11)
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    out, tan = fg.jvp(fn, (fg.tensor(x),), (fg.tensor(t),))
    tout, ttan = torch.func.jvp(tfn, (torch.tensor(x),), (torch.tensor(t),))
    assert_close(out, tout, 1e-12, 1e-10, "output")
    assert_close(tan, ttan, 1e-12, 1e-10, "tangent")


def test_thread_count_does_not_change_results():
    x = fg.tensor(np.random.default_rng(12).standard_normal((4, 16, 17, 19)).astype(np.float32), requires_grad=True)
    fns = [lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: F.avg_pool2d(t, 3, 1, 1),
           lambda t: F.adaptive_avg_pool2d(t, 5),
           lambda t: F.interpolate(t, scale_factor=2.5), lambda t: F.interpolate(t, scale_factor=1.5, mode="bilinear")]
    old = fg.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fg.set_num_threads(n)
            row = []
            for f in fns:
                x.grad = None
                out = f(x)
                g = fg.tensor(np.random.default_rng(13).standard_normal(out.shape).astype(np.float32))
                out.backward(g)
                row.append((to_numpy(out), to_numpy(x.grad)))
            results.append(row)
    finally:
        fg.set_num_threads(old)
    for row in results[1:]:
        for (o, gr), (o0, g0) in zip(row, results[0]):
            np.testing.assert_array_equal(o, o0)
            np.testing.assert_array_equal(gr, g0)


def test_saved_indices_are_version_checked():
    x = fg.tensor(np.random.default_rng(14).standard_normal((1, 1, 4, 4)), requires_grad=True)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    idx.zero_()
    with pytest.raises(RuntimeError, match="inplace"):
        out.sum().backward()


# -- layers ------------------------------------------------------------------------------------------

LAYERS = [  # (fastgrad layer, torch layer, input shape)
    (lambda m: m.MaxPool2d(3, 2, 1), (2, 3, 9, 8)),
    (lambda m: m.MaxPool2d(2, return_indices=True, ceil_mode=True), (2, 3, 9, 7)),
    (lambda m: m.MaxPool1d(3, 2, 1, dilation=1), (2, 3, 9)),
    (lambda m: m.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 9, 8)),
    (lambda m: m.AvgPool2d((2, 3), divisor_override=4), (2, 3, 9, 8)),
    (lambda m: m.AvgPool1d(4, 3, 2, ceil_mode=True), (2, 3, 10)),
    (lambda m: m.AdaptiveAvgPool2d((None, 3)), (2, 3, 9, 8)),
    (lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 7, 7)),
    (lambda m: m.AdaptiveAvgPool1d(4), (2, 3, 9)),
    (lambda m: m.AdaptiveMaxPool2d((2, 3), return_indices=True), (2, 3, 9, 8)),
    (lambda m: m.AdaptiveMaxPool1d(3), (2, 3, 9)),
    (lambda m: m.Upsample(scale_factor=2), (2, 3, 4, 5)),
    (lambda m: m.Upsample(size=(7, 9), mode="bilinear", align_corners=False), (2, 3, 4, 5)),
    (lambda m: m.Upsample(scale_factor=1.5, mode="linear", align_corners=True), (2, 3, 5)),
    (lambda m: m.UpsamplingNearest2d(scale_factor=3), (2, 3, 4, 5)),
    (lambda m: m.UpsamplingBilinear2d(size=(6, 7)), (2, 3, 4, 5)),
    (lambda m: m.PixelShuffle(2), (2, 8, 3, 4)),
    (lambda m: m.PixelUnshuffle(2), (2, 2, 4, 6)),
]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_layers(make, shape):
    layer, tlayer = make(fg.nn), make(torch.nn)
    assert repr(layer) == repr(tlayer)
    check_op(layer, tlayer, [shape])


def test_pooling_in_a_small_cnn_trains_like_torch():
    """Conv-free CNN-ish pipeline: pool, upsample, pool, linear; same loss and grads as torch."""
    rng = np.random.default_rng(15)
    x, w = rng.standard_normal((4, 3, 8, 8)), rng.standard_normal((3 * 2 * 2, 5))

    def run(lib):
        mk, nn = (fg.tensor, fg.nn) if lib == "fg" else (torch.tensor, torch.nn)
        W = mk(w).requires_grad_()
        seq = nn.Sequential(nn.MaxPool2d(2), nn.Upsample(scale_factor=2, mode="bilinear"), nn.AvgPool2d(3, 2, 1),
                            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        loss = (seq(mk(x)) @ W).square().mean()
        loss.backward()
        return loss, W.grad

    (l1, g1), (l2, g2) = run("fg"), run("torch")
    assert abs(l1.item() - l2.item()) < 1e-12
    assert_close(g1, g2, 1e-12, 1e-10)


# -- bad arguments ---------------------------------------------------------------------------------

BAD = [  # (name, fn(F), input shape, match); torch must reject the same call
    ("kernel larger than padded input", lambda F: lambda x: F.max_pool2d(x, 5), (1, 1, 4, 4), "max_pool2d"),
    ("kernel larger than padded input (avg)", lambda F: lambda x: F.avg_pool2d(x, (2, 6), padding=(0, 1)),
     (1, 1, 4, 3), "avg_pool2d"),
    ("kernel larger than input 1d", lambda F: lambda x: F.max_pool1d(x, 6), (1, 2, 4), "max_pool1d"),
    ("padding above half the kernel", lambda F: lambda x: F.max_pool2d(x, 3, padding=2), (1, 1, 8, 8), "max_pool2d"),
    ("padding above half the kernel (avg)", lambda F: lambda x: F.avg_pool2d(x, 2, padding=(0, 2)),
     (1, 1, 8, 8), "avg_pool2d"),
    ("padding above half the kernel 1d", lambda F: lambda x: F.avg_pool1d(x, 2, padding=2), (1, 1, 8), "avg_pool1d"),
    ("negative padding", lambda F: lambda x: F.max_pool2d(x, 2, padding=-1), (1, 1, 8, 8), "max_pool2d"),
    ("zero stride", lambda F: lambda x: F.max_pool2d(x, 2, stride=0), (1, 1, 8, 8), "max_pool2d"),
    ("zero stride (avg)", lambda F: lambda x: F.avg_pool2d(x, 2, stride=(1, 0)), (1, 1, 8, 8), "avg_pool2d"),
    ("zero stride 1d", lambda F: lambda x: F.max_pool1d(x, 2, stride=0), (1, 1, 8), "max_pool1d"),
    ("zero kernel", lambda F: lambda x: F.max_pool2d(x, 0), (1, 1, 8, 8), "max_pool2d"),
    ("zero dilation", lambda F: lambda x: F.max_pool2d(x, 2, dilation=0), (1, 1, 8, 8), "max_pool2d"),
    ("zero divisor", lambda F: lambda x: F.avg_pool2d(x, 2, divisor_override=0), (1, 1, 8, 8), "avg_pool2d"),
    ("2-D input to max_pool2d", lambda F: lambda x: F.max_pool2d(x, 2), (8, 8), "max_pool2d"),
    ("5-D input to avg_pool2d", lambda F: lambda x: F.avg_pool2d(x, 2), (1, 1, 1, 8, 8), "avg_pool2d"),
    ("4-D input to max_pool1d", lambda F: lambda x: F.max_pool1d(x, 2), (1, 1, 8, 8), "max_pool1d"),
    ("1-D input to avg_pool1d", lambda F: lambda x: F.avg_pool1d(x, 2), (8,), "avg_pool1d"),
    ("empty channels", lambda F: lambda x: F.max_pool2d(x, 2), (1, 0, 8, 8), "max_pool2d"),
    ("empty plane", lambda F: lambda x: F.adaptive_avg_pool2d(x, 2), (1, 1, 0, 8), "adaptive_avg_pool2d"),
    ("negative output size", lambda F: lambda x: F.adaptive_avg_pool2d(x, -1), (1, 1, 8, 8), "adaptive_avg_pool2d"),
    ("adaptive 2-D input", lambda F: lambda x: F.adaptive_max_pool2d(x, 2), (8, 8), "adaptive_max_pool2d"),
    ("size and scale_factor", lambda F: lambda x: F.interpolate(x, size=3, scale_factor=2), (1, 1, 4, 4),
     "interpolate"),
    ("neither size nor scale_factor", lambda F: lambda x: F.interpolate(x), (1, 1, 4, 4), "interpolate"),
    ("align_corners with nearest", lambda F: lambda x: F.interpolate(x, size=3, align_corners=True), (1, 1, 4, 4),
     "interpolate"),
    ("bilinear on 3-D", lambda F: lambda x: F.interpolate(x, size=3, mode="bilinear"), (1, 4, 4), "interpolate"),
    ("linear on 4-D", lambda F: lambda x: F.interpolate(x, size=3, mode="linear"), (1, 1, 4, 4), "interpolate"),
    ("zero output size", lambda F: lambda x: F.interpolate(x, size=0), (1, 1, 4, 4), "interpolate"),
    ("scale to zero", lambda F: lambda x: F.interpolate(x, scale_factor=0.1), (1, 1, 4, 4), "interpolate"),
    ("size of wrong length", lambda F: lambda x: F.interpolate(x, size=(2, 3, 4)), (1, 1, 4, 4), "interpolate"),
    ("pixel_shuffle channels", lambda F: lambda x: F.pixel_shuffle(x, 2), (1, 6, 4, 4), "pixel_shuffle"),
]


@pytest.mark.parametrize("name,make,shape,match", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments(name, make, shape, match):
    check_raises(make(F), make(TF), [shape], match=match)


INT_REFUSED = [  # torch refuses these for integer inputs
    ("max_pool1d", lambda F: lambda x: F.max_pool1d(x, 2), (1, 1, 8)),
    ("adaptive_avg_pool2d", lambda F: lambda x: F.adaptive_avg_pool2d(x, 2), (1, 1, 8, 8)),
    ("adaptive_max_pool2d", lambda F: lambda x: F.adaptive_max_pool2d(x, 2), (1, 1, 8, 8)),
    ("interpolate", lambda F: lambda x: F.interpolate(x, scale_factor=2), (1, 1, 4, 4)),
    ("interpolate", lambda F: lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), (1, 1, 4, 4)),
]


@pytest.mark.parametrize("match,make,shape", INT_REFUSED)
def test_integer_input_refused(match, make, shape):
    x = np.arange(int(np.prod(shape))).reshape(shape)
    e = check_raises(make(F), make(TF), [x], match=match)
    assert isinstance(e, TypeError)


def test_native_entry_points_reject_bad_arguments():
    """The _C kernels check what the Python layer would have: no crash on a direct call."""
    _C = fg._C
    x = fg.zeros((2, 3, 4, 4))._data
    g = fg.zeros((2, 3, 2, 2))._data
    idx = fg.zeros((2, 3, 2, 2), dtype=fg.int64)._data
    with pytest.raises(ValueError, match="max_pool2d_backward"):
        _C.max_pool2d_backward(g, idx, [2, 3, 4])
    with pytest.raises(ValueError, match="indices"):
        _C.max_pool2d_backward(g, fg.zeros((2, 3, 2, 3), dtype=fg.int64)._data, [2, 3, 4, 4])
    with pytest.raises(TypeError, match="int64"):
        _C.max_pool2d_backward(g, g, [2, 3, 4, 4])
    with pytest.raises(ValueError, match="avg_pool2d_backward"):
        _C.avg_pool2d_backward(g, [2, 3, 6, 6], 2, 2, 2, 2, 0, 0, False, True, 0)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d_backward"):
        _C.adaptive_avg_pool2d_backward(g, [2, 4, 4, 4])
    with pytest.raises(ValueError, match="upsample_nearest2d_backward"):
        _C.upsample_nearest2d_backward(g, [2, 3, 4], -1.0, -1.0, False)
    with pytest.raises(ValueError, match="upsample_bilinear2d"):
        _C.upsample_bilinear2d(x, 0, 3, False, -1.0, -1.0)
    # out-of-plane indices (user-made) are skipped, never written
    bad = fg.tensor(np.full((2, 3, 2, 2), 99, np.int64))._data
    assert not np.any(to_numpy(fg.Tensor._wrap(_C.max_pool2d_backward(g, bad, [2, 3, 4, 4]))))
    assert not np.any(to_numpy(fg.Tensor._wrap(_C.max_pool2d_gather(x, bad))))
