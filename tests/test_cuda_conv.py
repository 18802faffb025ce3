"""Native CUDA convolution, pooling and upsampling (cuda/conv.cu, cuda/pool.cu).

Every op runs on "cuda" and on the CPU with the same inputs; values and all
gradients (through autograd) must agree, on odd geometries: strides,
asymmetric and large padding, dilation, groups and depthwise, conv1d,
conv_transpose with output_padding, ceil_mode, count_include_pad=False,
divisor_override, adaptive sizes that do not divide, both align_corners,
non-contiguous inputs, float32 and float64 (and the integer dtypes pooling
accepts). Results must be the same bits on two runs (no atomics), bad
arguments must raise the CPU's error on CUDA too, and a small CNN's training
step must match the CPU's. The module skips without a CUDA device.
"""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import _C
from fastgrad.ops._util import _wrap

pytestmark = pytest.mark.skipif(not fg.cuda.is_available(), reason="no CUDA device")

F = fg.nn.functional
FLOATS = (fg.float32, fg.float64)


def tol(dtype):
    # float32: the GEMM sums in another order than the CPU's (tiles vs panels)
    return dict(rtol=2e-4, atol=2e-5) if dtype is fg.float32 else dict(rtol=1e-10, atol=1e-11)


def host(t):
    return t.detach().cpu().numpy()


def close(g, c, dtype):
    assert g.is_cuda, "result left the device"
    assert tuple(g.shape) == tuple(c.shape) and g.dtype == c.dtype, (g.shape, c.shape, g.dtype, c.dtype)
    a, b = host(g), host(c)
    scale = max(1.0, float(np.nanmax(np.abs(b)))) if b.size else 1.0
    t = tol(dtype)
    np.testing.assert_allclose(a, b, rtol=t["rtol"], atol=t["atol"] * scale, equal_nan=True)


def run_both(fn, arrays, dtype, seed=0, grad=True):
    """fn on CPU tensors and on CUDA tensors made from `arrays` (None passes
    through); forward values and every input's gradient for one random
    cotangent must agree. Returns the CUDA outputs and grads."""
    r = np.random.default_rng(seed)
    cpu = [None if a is None else fg.tensor(a, dtype=dtype, requires_grad=grad) for a in arrays]
    gpu = [None if a is None else fg.tensor(a, dtype=dtype, device="cuda", requires_grad=grad) for a in arrays]
    yc, yg = fn(*cpu), fn(*gpu)
    close(yg, yc, dtype)
    if not grad:
        return yg, []
    ct = r.standard_normal(tuple(yc.shape))
    yc.backward(fg.tensor(ct, dtype=dtype))
    yg.backward(fg.tensor(ct, dtype=dtype, device="cuda"))
    grads = []
    for c, g in zip(cpu, gpu):
        if c is None:
            continue
        assert g.grad is not None and g.grad.is_cuda
        close(g.grad, c.grad, dtype)
        grads.append(g.grad)
    return yg, grads


def rand(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape)


def same_error(case):
    """case(device) raises on the CPU, and on CUDA the same exception type with the same message."""
    with pytest.raises(Exception) as ec:
        case("cpu")
    with pytest.raises(type(ec.value)) as eg:
        case("cuda")
    assert str(eg.value) == str(ec.value)


# ---- convolution --------------------------------------------------------------------------------

CONV2D = [
    # x shape, w shape, bias?, kwargs
    ((2, 4, 9, 11), (6, 4, 3, 3), True, dict(stride=2, padding=1)),
    ((2, 3, 10, 9), (5, 3, 3, 2), True, dict(padding=2, dilation=2)),
    ((3, 4, 8, 7), (6, 2, 3, 3), True, dict(stride=(2, 1), padding=(1, 2), groups=2)),
    ((2, 5, 9, 9), (5, 1, 3, 3), True, dict(padding=1, groups=5)),              # depthwise
    ((2, 5, 9, 8), (10, 1, 3, 3), False, dict(stride=2, padding=1, groups=5)),  # depthwise x2
    ((2, 6, 5, 7), (4, 6, 1, 1), True, dict()),                                 # pointwise: col == x
    ((2, 6, 5, 7), (4, 3, 1, 1), False, dict(groups=2)),
    ((1, 3, 6, 6), (4, 3, 4, 4), True, dict(padding="same")),                   # asymmetric padding
    ((2, 3, 7, 7), (2, 3, 7, 7), True, dict()),                                 # 1x1 output
    ((5, 16, 20, 20), (32, 16, 3, 3), True, dict(padding=1)),                   # the float32 fast GEMM
    ((4, 3, 17, 15), (8, 3, 5, 5), True, dict(stride=3, padding=2, dilation=(1, 2))),
    # the direct depthwise kernels (one input channel per group): multiplier 3
    # with the weight gradient over two splits of N * OH * OW (4920 > 4096),
    # stride 2 + dilation + asymmetric padding, "same" with an even kernel,
    # a plain conv of a one-channel input (groups 1 == C)
    ((3, 4, 40, 41), (12, 1, 3, 3), True, dict(padding=1, groups=4)),
    ((2, 6, 13, 11), (6, 1, 5, 3), True, dict(stride=2, padding=(2, 0), dilation=(1, 2), groups=6)),
    ((2, 5, 9, 9), (5, 1, 4, 4), False, dict(padding="same", groups=5)),
    ((2, 1, 12, 10), (4, 1, 3, 3), True, dict(padding=2, dilation=2)),
    ((1, 64, 20, 20), (64, 64, 3, 3), True, dict(padding=1)),                 # M = 64: the 64x128 GEMM tile
    # float32: K = 3 * 3 * 3 = 27 padded to 28 (forward), the weight
    # gradient's N likewise, so both take the fast GEMM; with groups too
    ((2, 3, 32, 32), (64, 3, 3, 3), True, dict(padding=1)),
    ((2, 6, 32, 32), (128, 3, 3, 3), False, dict(padding=1, groups=2)),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", range(len(CONV2D)))
def test_cuda_conv2d(case, dtype):
    xs, ws, has_b, kw = CONV2D[case]
    b = rand(ws[0], seed=1) if has_b else None
    run_both(lambda x, w, b: F.conv2d(x, w, b, **kw), [rand(*xs), rand(*ws, seed=2) * 0.3, b], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cuda_conv_noncontiguous(dtype):
    # strided views read in place: x transposed in H/W, w sliced, a pointwise case on a permuted view
    xc = rand(2, 4, 11, 9)
    wc = rand(6, 4, 3, 5, seed=3)

    def fn(x, w, b):
        return F.conv2d(x.transpose(2, 3), w[:, :, :, 1:4], b, stride=2, padding=1)

    run_both(fn, [xc, wc, rand(6, seed=4)], dtype)

    def fn1(x, w):
        return F.conv2d(x.permute(0, 3, 1, 2), w)  # (N, H, W, C) data seen as NCHW: not dense

    run_both(fn1, [rand(2, 5, 6, 4), rand(3, 4, 1, 1, seed=5)], dtype)

    def fn2(x, w, b):  # depthwise on a transposed view, weight sliced
        return F.conv2d(x.transpose(2, 3), w[:, :, 1:, :], b, stride=2, padding=1, groups=4)

    run_both(fn2, [rand(2, 4, 11, 9), rand(8, 1, 4, 3, seed=6), rand(8, seed=7)], dtype)


CONV1D = [
    ((3, 4, 19), (6, 2, 5), True, dict(stride=2, padding=3, dilation=2, groups=2)),
    ((2, 3, 8), (4, 3, 1), False, dict()),
    ((2, 3, 16), (4, 3, 4), True, dict(padding="same")),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", range(len(CONV1D)))
def test_cuda_conv1d(case, dtype):
    xs, ws, has_b, kw = CONV1D[case]
    b = rand(ws[0], seed=1) if has_b else None
    run_both(lambda x, w, b: F.conv1d(x, w, b, **kw), [rand(*xs), rand(*ws, seed=2), b], dtype)


CONVT = [
    ((2, 4, 5, 6), (4, 3, 3, 3), True, dict(stride=2, padding=1, output_padding=1)),
    ((2, 4, 5, 6), (4, 2, 3, 3), True, dict(stride=2, groups=2, dilation=2)),
    ((1, 3, 4, 4), (3, 5, 2, 2), False, dict(stride=2)),
    ((2, 6, 7, 5), (6, 2, 1, 1), True, dict()),  # pointwise: no col2im
    ((2, 3, 4, 5), (3, 2, 3, 3), True, dict(stride=(3, 2), padding=(2, 1), output_padding=(2, 1), dilation=(1, 2))),
    ((2, 4, 5, 6), (4, 1, 3, 3), True, dict(stride=2, padding=1, output_padding=1, groups=4)),  # depthwise
    ((2, 6, 5, 6), (6, 1, 3, 2), True, dict(stride=(1, 2), dilation=2, groups=3)),  # its conv: depthwise x2
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", range(len(CONVT)))
def test_cuda_conv_transpose2d(case, dtype):
    xs, ws, has_b, kw = CONVT[case]
    b = rand(ws[1] * kw.get("groups", 1), seed=1) if has_b else None
    run_both(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), [rand(*xs), rand(*ws, seed=2), b], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cuda_conv_transpose1d(dtype):
    run_both(lambda x, w, b: F.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2),
             [rand(2, 4, 7), rand(4, 3, 4, seed=2), rand(3, seed=1)], dtype)


def test_cuda_conv_chunked_workspace():
    # one image's column matrix is over half the 256 MB workspace: images run
    # in chunks of one, the weight gradient sums the chunks
    x, w, b = rand(2, 64, 256, 256), rand(4, 64, 3, 3, seed=2) * 0.1, rand(4, seed=1)
    run_both(lambda x, w, b: F.conv2d(x, w, b, padding=1), [x, w, b], fg.float32)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "xs, ws, conv",
    [
        # the vjp's own vjp runs the three kernels again with swapped roles
        ((2, 3, 7, 8), (4, 3, 3, 3), dict(stride=2, padding=1)),
        # the depthwise vjp's own vjp: the direct kernels with swapped roles
        ((2, 4, 9, 8), (8, 1, 3, 3), dict(stride=2, padding=1, dilation=2, groups=4)),
    ],
    ids=["gemm", "depthwise"],
)
def test_cuda_conv_double_backward(xs, ws, conv, dtype):
    xn, wn = rand(*xs), rand(*ws, seed=2)

    def go(device):
        x = fg.tensor(xn, dtype=dtype, device=device, requires_grad=True)
        w = fg.tensor(wn, dtype=dtype, device=device, requires_grad=True)
        y = F.conv2d(x, w, **conv)
        (gx,) = fg.autograd.grad((y * y).sum(), [x], create_graph=True)
        (gx * gx).sum().backward()
        return x.grad, w.grad

    for g, c in zip(go("cuda"), go("cpu")):
        close(g, c, dtype)


@pytest.mark.parametrize(
    "xs, ws, conv, transpose, dtype",
    [
        # forward and both gradients through im2col / GEMM / col2im and the
        # transposed conv (no atomics)
        ((8, 16, 21, 19), (24, 8, 3, 3), dict(stride=2, padding=2, dilation=2, groups=2), dict(stride=2, groups=2),
         None),
        # the direct depthwise kernels: the weight gradient's two passes over
        # fixed splits (several here)
        ((4, 6, 37, 35), (12, 1, 3, 3), dict(padding=1, groups=6), None, fg.float32),
    ],
    ids=["gemm", "depthwise"],
)
def test_cuda_conv_deterministic(xs, ws, conv, transpose, dtype):
    # the same bits on two runs
    xn, wn, bn = rand(*xs), rand(*ws, seed=2), rand(ws[0], seed=3)

    def go():
        x = fg.tensor(xn, dtype=dtype, device="cuda", requires_grad=True)
        w = fg.tensor(wn, dtype=dtype, device="cuda", requires_grad=True)
        b = fg.tensor(bn, dtype=dtype, device="cuda", requires_grad=True)
        y = F.conv2d(x, w, b, **conv)
        z = F.conv_transpose2d(y, w, **transpose) if transpose else y
        (z * z).sum().backward()
        return [host(t) for t in (y, z, x.grad, w.grad, b.grad)]

    for a, b in zip(go(), go()):
        assert np.array_equal(a, b)


def test_cuda_conv_errors_match_cpu():
    # validation is shared: CUDA raises what the CPU raises
    cases = [
        lambda d: F.conv2d(fg.ones(1, 4, 8, 8, device=d), fg.ones(6, 3, 3, 3, device=d), groups=2),
        lambda d: F.conv2d(fg.ones(1, 3, 2, 2, device=d), fg.ones(4, 3, 3, 3, device=d)),
        lambda d: F.conv2d(fg.ones(1, 3, 8, 8, device=d), fg.ones(4, 3, 3, 3, device=d), fg.ones(5, device=d)),
        lambda d: F.conv2d(fg.ones(1, 3, 8, 8, device=d), fg.ones(4, 3, 3, 3, dtype=fg.float64, device=d)),
    ]
    for case in cases:
        same_error(case)
    with pytest.raises((ValueError, RuntimeError), match="device"):
        F.conv2d(fg.ones(1, 2, 8, 8, device="cuda"), fg.ones(3, 2, 3, 3))


def test_cuda_conv_empty_batch():
    x = fg.zeros(0, 3, 8, 8, device="cuda", requires_grad=True)
    w = fg.ones(4, 3, 3, 3, device="cuda", requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert tuple(y.shape) == (0, 4, 8, 8)
    y.sum().backward()
    assert np.array_equal(host(w.grad), np.zeros((4, 3, 3, 3), np.float32))


# ---- pooling --------------------------------------------------------------------------------------

POOL = [
    # name, fn, x shape
    ("max k3 s2 p1", lambda x: F.max_pool2d(x, 3, 2, 1), (2, 3, 9, 11)),
    ("max ceil", lambda x: F.max_pool2d(x, 2, 2, ceil_mode=True), (2, 3, 9, 11)),
    ("max dil", lambda x: F.max_pool2d(x, 3, 1, 1, dilation=2), (2, 2, 10, 9)),
    ("max ceil pad stride3", lambda x: F.max_pool2d(x, (3, 2), (3, 2), (1, 1), ceil_mode=True), (1, 3, 10, 11)),
    ("max 3d", lambda x: F.max_pool2d(x, 2), (3, 10, 9)),
    ("max1d", lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True), (2, 3, 16)),
    ("adaptive max", lambda x: F.adaptive_max_pool2d(x, (4, 5)), (2, 3, 9, 11)),
    ("adaptive max up", lambda x: F.adaptive_max_pool2d(x, (7, 13)), (2, 3, 5, 11)),
    ("adaptive max1d", lambda x: F.adaptive_max_pool1d(x, 6), (2, 3, 17)),
    ("avg pad", lambda x: F.avg_pool2d(x, 3, 2, 1), (2, 3, 9, 11)),
    ("avg no pad count", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (2, 3, 9, 11)),
    ("avg ceil", lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 10, 11)),
    ("avg ceil pad", lambda x: F.avg_pool2d(x, 2, 3, 1, ceil_mode=True), (2, 3, 10, 11)),
    ("avg divisor", lambda x: F.avg_pool2d(x, (2, 3), (1, 2), (1, 1), divisor_override=5), (2, 3, 9, 11)),
    ("avg1d", lambda x: F.avg_pool1d(x, 4, 3, 2, count_include_pad=False), (2, 3, 17)),
    ("adaptive avg", lambda x: F.adaptive_avg_pool2d(x, (4, 5)), (2, 3, 9, 11)),
    ("adaptive avg global", lambda x: F.adaptive_avg_pool2d(x, 1), (2, 3, 9, 11)),
    ("adaptive avg up", lambda x: F.adaptive_avg_pool2d(x, (11, 7)), (2, 3, 5, 6)),
    ("adaptive avg big global", lambda x: F.adaptive_avg_pool2d(x, 1), (2, 3, 17, 19)),  # a warp per output
    ("adaptive avg big", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (2, 3, 40, 33)),
    ("adaptive avg1d", lambda x: F.adaptive_avg_pool1d(x, 5), (2, 3, 13)),
    ("nearest size", lambda x: F.interpolate(x, size=(7, 9), mode="nearest"), (2, 3, 5, 6)),
    ("nearest x2", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), (2, 3, 5, 6)),
    ("nearest down", lambda x: F.interpolate(x, scale_factor=0.6, mode="nearest"), (2, 3, 10, 11)),
    ("nearest-exact", lambda x: F.interpolate(x, scale_factor=1.7, mode="nearest-exact"), (2, 3, 5, 6)),
    ("nearest 1d", lambda x: F.interpolate(x, size=11, mode="nearest"), (2, 3, 4)),
    ("bilinear", lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False), (2, 3, 5, 6)),
    ("bilinear ac", lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=True), (2, 3, 5, 6)),
    ("bilinear down", lambda x: F.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False), (2, 3, 7, 9)),
    ("bilinear scale", lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False),
     (2, 3, 5, 6)),
    ("bilinear ac 1", lambda x: F.interpolate(x, size=(1, 5), mode="bilinear", align_corners=True), (1, 2, 4, 3)),
    ("linear", lambda x: F.interpolate(x, size=13, mode="linear", align_corners=False), (2, 3, 6)),
    ("area", lambda x: F.interpolate(x, size=(4, 4), mode="area"), (2, 3, 9, 7)),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", [c[0] for c in POOL])
def test_conv_pool_ops(case, dtype):
    _, fn, xs = next(c for c in POOL if c[0] == case)
    run_both(fn, [rand(*xs)], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_conv_pool_noncontiguous(dtype):
    # strided inputs (transposed H/W, a channel slice): read in place
    run_both(lambda x: F.max_pool2d(x.transpose(2, 3), 3, 2, 1), [rand(2, 3, 11, 9)], dtype)
    run_both(lambda x: F.avg_pool2d(x[:, 1:3], 2, ceil_mode=True), [rand(2, 4, 9, 7)], dtype)
    run_both(lambda x: F.adaptive_avg_pool2d(x.transpose(2, 3), (3, 4)), [rand(2, 3, 11, 9)], dtype)
    run_both(lambda x: F.interpolate(x.transpose(2, 3), size=(8, 7), mode="bilinear", align_corners=True),
             [rand(2, 3, 6, 5)], dtype)
    run_both(lambda x: F.interpolate(x[..., ::2], scale_factor=3, mode="nearest"), [rand(2, 3, 4, 9)], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_conv_pool_max_indices_and_nan(dtype):
    x = rand(2, 3, 9, 11)
    x[0, 1, 2, 3] = np.nan
    x[1, 2, 4:6, 4:6] = np.nan  # several NaNs in one window: the last one is picked
    x[1, 0, :3, :3] = 1.0       # ties: the first maximum is picked
    for fn in (lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True),
               lambda t: F.max_pool2d(t, 2, 1, 0, dilation=2, ceil_mode=True, return_indices=True),
               lambda t: F.adaptive_max_pool2d(t, (4, 5), return_indices=True)):
        oc, ic = fn(fg.tensor(x, dtype=dtype))
        og, ig = fn(fg.tensor(x, dtype=dtype, device="cuda"))
        assert ig.is_cuda and ig.dtype == fg.int64
        assert np.array_equal(host(ig), host(ic))
        assert np.array_equal(host(og), host(oc), equal_nan=True)


@pytest.mark.parametrize("dtype", (fg.int32, fg.int64))
def test_conv_pool_integer_inputs(dtype):
    x = np.random.default_rng(5).integers(-50, 50, (2, 3, 9, 11))
    for fn in (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=False),
               lambda t: F.avg_pool2d(t, 2, divisor_override=3)):
        c, g = fn(fg.tensor(x, dtype=dtype)), fn(fg.tensor(x, dtype=dtype, device="cuda"))
        assert g.is_cuda and g.dtype == c.dtype
        assert np.array_equal(host(g), host(c))


@pytest.mark.parametrize("dtype", FLOATS)
def test_conv_pool_native_backward_and_gather(dtype):
    # the kernels behind max pooling's gradients, called directly with
    # overlapping windows' repeated indices and out-of-plane ones (ignored)
    r = np.random.default_rng(9)
    g = r.standard_normal((2, 3, 4, 5))
    idx = r.integers(-3, 9 * 7 + 3, (2, 3, 4, 5))
    idx[0, 0] = 10  # one input element gets every output of a plane
    for dev in ("cpu", "cuda"):
        gt, it = fg.tensor(g, dtype=dtype, device=dev), fg.tensor(idx, dtype=fg.int64, device=dev)
        out = _wrap(_C.max_pool2d_backward(gt._data, it._data, [2, 3, 9, 7]))
        if dev == "cpu":
            ref = out
        else:
            close(out, ref, dtype)
    x = r.standard_normal((2, 3, 9, 7))
    gi = np.clip(idx, 0, 62)
    ref = _wrap(_C.max_pool2d_gather(fg.tensor(x, dtype=dtype)._data, fg.tensor(gi)._data))
    out = _wrap(_C.max_pool2d_gather(fg.tensor(x, dtype=dtype, device="cuda")._data,
                                     fg.tensor(gi, device="cuda")._data))
    close(out, ref, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_conv_pool_double_backward(dtype):
    # max pooling's second derivative runs the gather kernel; avg and bilinear their own adjoints
    xn = rand(2, 3, 9, 11)
    for fn in (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: F.avg_pool2d(t, 3, 2, 1),
               lambda t: F.interpolate(t, size=(5, 13), mode="bilinear", align_corners=False)):
        res = []
        for dev in ("cpu", "cuda"):
            x = fg.tensor(xn, dtype=dtype, device=dev, requires_grad=True)
            y = fn(x * x)
            (gx,) = fg.autograd.grad((y * y).sum(), [x], create_graph=True)
            (gx * gx).sum().backward()
            res.append((gx, x.grad))
        for g, c in zip(res[1], res[0]):
            close(g, c, dtype)


def test_conv_pool_deterministic():
    xn = rand(4, 8, 33, 31)

    def go():
        x = fg.tensor(xn, device="cuda", requires_grad=True)
        y = F.max_pool2d(x, 3, 1, 1)                       # overlapping windows share inputs
        y = y + F.avg_pool2d(x, 3, 1, 1)
        y = F.interpolate(y, size=(50, 47), mode="bilinear", align_corners=False)
        y = F.adaptive_avg_pool2d(y, (7, 9)).sum() + F.interpolate(x, scale_factor=1.5).sum()
        y.backward()
        return host(x.grad)

    assert np.array_equal(go(), go())


def test_conv_pool_errors_match_cpu():
    cases = [
        lambda d: F.max_pool2d(fg.ones(1, 2, 8, 8, device=d), 3, 2, padding=2),
        lambda d: F.avg_pool2d(fg.ones(1, 2, 2, 2, device=d), 5),
        lambda d: F.adaptive_max_pool2d(fg.ones(1, 2, 8, 8, dtype=fg.int64, device=d), 3),
        lambda d: F.interpolate(fg.ones(1, 2, 4, 4, device=d), size=(0, 3)),
        lambda d: _C.max_pool2d_backward(fg.ones(1, 2, 3, 3, device=d)._data,
                                         fg.zeros(1, 2, 3, 3, dtype=fg.int32, device=d)._data, [1, 2, 6, 6]),
        lambda d: _C.max_pool2d_backward(fg.ones(1, 2, 3, 3, device=d)._data,
                                         fg.zeros(1, 2, 3, 3, dtype=fg.int64, device=d)._data, [1, 3, 6, 6]),
        lambda d: _C.avg_pool2d_backward(fg.ones(1, 2, 3, 3, device=d)._data, [1, 2, 6, 6], 2, 2, 1, 1, 0, 0,
                                         False, True, 0),
    ]
    for case in cases:
        same_error(case)


def test_conv_pool_empty_batch():
    x = fg.zeros(0, 3, 8, 8, device="cuda", requires_grad=True)
    y = F.max_pool2d(x, 2).sum() + F.avg_pool2d(x, 2).sum() + F.interpolate(x, scale_factor=2).sum()
    y.backward()
    assert tuple(x.grad.shape) == (0, 3, 8, 8) and x.grad.is_cuda


# ---- a training step ------------------------------------------------------------------------------


def _cnn():
    nn = fg.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))


def test_cuda_conv_cnn_training_step():
    fg.manual_seed(0)
    mc = _cnn()
    mg = _cnn()
    mg.load_state_dict(mc.state_dict())
    mg.cuda()
    oc = fg.optim.SGD(mc.parameters(), lr=0.1, momentum=0.9)
    og = fg.optim.SGD(mg.parameters(), lr=0.1, momentum=0.9)
    r = np.random.default_rng(0)
    for step in range(3):
        xn = r.standard_normal((8, 3, 16, 16))
        yn = r.integers(0, 5, 8)
        for m, o, dev in ((mc, oc, "cpu"), (mg, og, "cuda")):
            o.zero_grad()
            loss = F.cross_entropy(m(fg.tensor(xn, dtype=fg.float32, device=dev)), fg.tensor(yn, device=dev))
            loss.backward()
            o.step()
    for (name, pc), (_, pg) in zip(mc.named_parameters(), mg.named_parameters()):
        assert pg.is_cuda
        np.testing.assert_allclose(host(pg), host(pc), rtol=1e-5, atol=1e-5, err_msg=name)
