"""CUDA reductions (cuda/reduce.cu) against the CPU, on shapes that hit each
launch plan:
  - full reductions of 1, 7, 1000, 2^20+3 and 3*10^7 elements (one block, or a
    fixed split into chunks and a second pass over the partials);
  - many rows of a short last dim (a thread per output);
  - dim 0 of (N, C) and middle dims (a thread per output, coalesced over the
    outputs; chunked with a second pass when the outputs are few);
  - non-contiguous inputs, keepdim, int and bool dtypes, NaN and ties (first
    index wins, as on the CPU), empty-reduction errors;
plus bitwise equality of two runs and the accuracy of a split float64 sum
against math.fsum.

FASTGRAD_REDUCE_TEST_DEVICE=cpu runs the same comparisons CPU against CPU
(to check the test itself on a machine without a GPU).
"""
import math
import os

import numpy as np
import pytest

import fastgrad as fg

DEV = os.environ.get("FASTGRAD_REDUCE_TEST_DEVICE", "cuda")
if DEV == "cuda" and not fg.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

FLOATS = (fg.float32, fg.float64)


def rng(seed):
    return np.random.default_rng(seed)


def host(t):
    return t.to("cpu").numpy()


def pair(a, dtype=fg.float64):
    c = fg.tensor(a, dtype=dtype)
    return c, c.to(DEV)


def close(g, c, rtol=0.0, atol=0.0):
    assert tuple(g.shape) == tuple(c.shape), (g.shape, c.shape)
    assert g.dtype == c.dtype, (g.dtype, c.dtype)
    np.testing.assert_allclose(host(g), host(c), rtol=rtol, atol=atol, equal_nan=True)


def same_bits(x, y):
    a, b = host(x), host(y)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def tol(dtype, n_red):
    # Both sides accumulate in their own order; the GPU in float64. Normal
    # data: error of a sum ~ eps * sqrt(n) * |x|; allow eps * n (loose, yet
    # far below any indexing mistake, which is O(1) per element).
    eps = 1.2e-7 if dtype is fg.float32 else 2.3e-16
    return dict(rtol=20 * eps, atol=4 * eps * max(n_red, 1))


FLOAT_OPS = [
    ("sum", lambda t, **k: fg.sum(t, **k)),
    ("mean", lambda t, **k: fg.mean(t, **k)),
    ("amax", lambda t, **k: fg.amax(t, **k)),
    ("amin", lambda t, **k: fg.amin(t, **k)),
    ("logsumexp", lambda t, **k: fg.logsumexp(t, **k)),
    ("var", lambda t, **k: fg.var(t, **k)),
    ("var0", lambda t, **k: fg.var(t, correction=0, **k)),
    ("std", lambda t, **k: fg.std(t, **k)),
    ("norm2", lambda t, **k: fg.norm(t, **k)),
    ("norm1", lambda t, **k: fg.norm(t, p=1, **k)),
    ("norm3.5", lambda t, **k: fg.norm(t, p=3.5, **k)),
    ("norminf", lambda t, **k: fg.norm(t, p=float("inf"), **k)),
    ("norm0", lambda t, **k: fg.norm(t, p=0, **k)),
]


def dims_kw(ndim, dims, keep):
    if dims is None:
        return {}, None
    return dict(dim=dims, keepdim=keep), dims


def n_reduced(shape, dims):
    if dims is None:
        return int(np.prod(shape))
    ds = dims if isinstance(dims, tuple) else (dims,)
    return int(np.prod([shape[d] for d in ds]))


def check_float_ops(a, dtype, dims, keep, ops=FLOAT_OPS, view=None):
    c, g = pair(a, dtype)
    if view is not None:
        c, g = view(c), view(g)
    kw, _ = dims_kw(c.ndim, dims, keep)
    n = n_reduced(tuple(c.shape), dims)
    for name, fn in ops:
        if dims is None and name in ("amax", "amin", "logsumexp"):
            kw2 = dict(dim=tuple(range(c.ndim)))
        else:
            kw2 = kw
        gr, cr = fn(g, **kw2), fn(c, **kw2)
        t = tol(dtype, n)
        if name.startswith("norm3.5"):
            t = dict(rtol=50 * t["rtol"], atol=t["atol"])
        try:
            close(gr, cr, **t)
        except AssertionError as e:
            raise AssertionError(f"{name} dims={dims} keepdim={keep} shape={tuple(c.shape)} {dtype}: {e}")


# ---- full reductions -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 7, 1000, 2**20 + 3])
def test_full_reductions(dtype, n):
    a = rng(n).standard_normal(n)
    check_float_ops(a, dtype, None, False)
    # prod of values near 1 (no under/overflow over a million elements)
    b = 1 + 1e-4 * rng(n + 1).standard_normal(n)
    c, g = pair(b, dtype)
    # the CPU multiplies float32 in float32 (a million roundings), the GPU in
    # float64: compare with the CPU's float64 product of the same values
    ref = fg.prod(c.to(fg.float64)).to(dtype)
    if DEV != "cpu":  # (the CPU self-check would hold the CPU's float32 product to this bound)
        close(fg.prod(g), ref, rtol=3e-7 if dtype is fg.float32 else 1e-11)


def test_full_sum_30m_float32():
    # 3*10^7 elements: the chunked plan at scale. Quarter-integers keep every
    # partial sum exact in float32 and float64 whatever the order: the results
    # must agree bit for bit.
    n = 3 * 10**7
    a = (rng(5).integers(-8, 9, n) * 0.25).astype(np.float32)
    c, g = pair(a, fg.float32)
    same_bits(g.sum(), c.sum())
    same_bits(g.amax(), c.amax())
    same_bits(g.amin(), c.amin())
    same_bits(g.argmax(), c.argmax())  # many ties: the first index wins
    same_bits(g.argmin(), c.argmin())
    close(g.mean(), c.mean(), rtol=1e-6)
    r1, r2 = g.sum(), g.sum()
    same_bits(r1, r2)
    u = rng(6).random(n).astype(np.float32)
    c, g = pair(u, fg.float32)
    exact = float(np.sum(u, dtype=np.float64))  # pairwise in float64: error ~1e-15, far below float32's
    assert abs(float(g.sum().item()) - exact) <= 2e-7 * exact


# ---- shapes for each plan --------------------------------------------------------------------------

PLAN_CASES = [
    ((100003, 4), -1),  # many rows, short dim: a thread per row
    ((5000, 33), 1),  # short-ish rows: a block per row
    ((4099, 37), 0),  # dim 0 of (N, C), few outputs: thread-chunks, block combine
    ((300, 2000), 0),  # dim 0, many outputs: thread-chunks, thread combine
    ((6, 777, 9), 1),  # middle dim
    ((3, 50000, 2), 1),  # middle dim, long, few outputs
    ((5, 6, 7, 8), (1, 2)),  # two middle dims
    ((5, 6, 7, 8), (0, 3)),  # outer and inner dims
    ((3, 200000), 1),  # few long rows: block chunks
    ((64, 70000), -1),  # block chunks, several outputs
    ((7, 3, 1), (0, 1)),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dims", PLAN_CASES)
def test_plans(dtype, shape, dims):
    a = rng(len(shape)).standard_normal(shape)
    for keep in (False, True):
        check_float_ops(a, dtype, dims, keep)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "shape,view,dims",
    [
        ((4099, 37), lambda t: t.transpose(0, 1), 1),  # reduced dim strided, outputs contiguous
        ((4099, 37), lambda t: t.transpose(0, 1), 0),
        ((70001, 6), lambda t: t[:, ::2], 0),
        ((70001, 6), lambda t: t[::3, 1:5], 1),
        ((20, 3000), lambda t: t.transpose(0, 1)[::2], None),
        ((8, 9, 10), lambda t: t.permute(2, 0, 1), (1, 2)),
    ],
)
def test_noncontiguous(dtype, shape, view, dims):
    a = rng(11).standard_normal(shape)
    for keep in (False, True):
        check_float_ops(a, dtype, dims, keep, view=view)


@pytest.mark.parametrize("dtype", [fg.int32, fg.int64, fg.bool])
@pytest.mark.parametrize("shape,dims", [((2**20 + 3,), None), ((100003, 4), 1), ((4099, 37), 0), ((3, 200000), 1),
                                        ((6, 777, 9), 1)])
def test_int_and_bool(dtype, shape, dims):
    a = rng(12).integers(-3, 4, shape)
    if dtype is fg.bool:
        a = a > 2  # mostly False: any() finds the few True, all() the many False
    c, g = pair(a, dtype)
    kw = {} if dims is None else dict(dim=dims)
    for keep in (False, True):
        kk = dict(kw, keepdim=keep) if kw else {}
        for fn in (fg.sum, fg.all, fg.any):
            close(fn(g, **kk), fn(c, **kk))
        red = kw.get("dim", tuple(range(len(shape))))
        for fn in (fg.amax, fg.amin):
            close(fn(g, dim=red, keepdim=keep), fn(c, dim=red, keepdim=keep))
        if dims is not None and dtype is not fg.bool:
            close(fg.prod(g, dim=dims, keepdim=keep), fg.prod(c, dim=dims, keepdim=keep))
    # all True: all() of the whole million
    t, tg = pair(np.ones(shape, dtype=bool), fg.bool)
    close(tg.all(), t.all())
    close(tg.any(), t.any())
    if dtype is not fg.bool:
        for fn in (lambda t: t.argmax(), lambda t: t.argmin()):
            close(fn(g), fn(c))
        if dims is not None:
            close(g.argmax(dims), c.argmax(dims))
            close(g.max(dims)[0], c.max(dims)[0])
            close(g.min(dims)[1], c.min(dims)[1])


# ---- arg-extrema and max/min with indices ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", [((2**20 + 3,), 0), ((3, 100000), 1), ((40, 5000), 0), ((7, 33), 0),
                                       ((100003, 4), 1), ((9, 50, 3000), 1), ((5, 40000, 2), 1)])
def test_arg_extrema_ties(dtype, shape, dim):
    # values from {0, 1, 2}: ties everywhere, the first index must win
    a = rng(13).integers(0, 3, shape).astype(np.float64)
    c, g = pair(a, dtype)
    for keep in (False, True):
        close(g.argmax(dim, keepdim=keep), c.argmax(dim, keepdim=keep))
        close(g.argmin(dim, keepdim=keep), c.argmin(dim, keepdim=keep))
        for fn in (fg.max, fg.min):
            gv, gi = fn(g, dim, keepdim=keep)
            cv, ci = fn(c, dim, keepdim=keep)
            close(gv, cv)
            close(gi, ci)
    close(g.argmax(), c.argmax())
    close(g.argmin(), c.argmin())
    b = rng(14).standard_normal(shape)
    c, g = pair(b, dtype)
    close(g.argmax(dim), c.argmax(dim))
    close(fg.min(g, dim)[1], fg.min(c, dim)[1])


# ---- NaN and infinities -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", [((2**20 + 3,), 0), ((3, 200000), 1), ((4099, 37), 0), ((100003, 4), 1)])
def test_nan_propagation(dtype, shape, dim):
    a = rng(15).standard_normal(shape)
    flat = a.reshape(-1)
    idx = rng(16).choice(flat.size, size=5, replace=False)
    flat[idx] = np.nan
    flat[idx[0] + 1 if idx[0] + 1 < flat.size else 0] = np.inf
    c, g = pair(a, dtype)
    all_dims = tuple(range(len(shape)))
    for d in (dim, all_dims):
        for name, fn in FLOAT_OPS:
            close(fn(g, dim=d), fn(c, dim=d), **tol(dtype, n_reduced(shape, d)))
    close(g.argmax(), c.argmax())  # the first NaN
    close(g.argmin(), c.argmin())
    close(g.argmax(dim), c.argmax(dim))
    gv, gi = fg.max(g, dim)
    cv, ci = fg.max(c, dim)
    close(gv, cv)
    close(gi, ci)


@pytest.mark.parametrize("dtype", FLOATS)
def test_infinities(dtype):
    a = np.full((5, 3000), -np.inf)
    a[1, 7] = 3.0
    a[2, :] = np.inf
    a[3, 5] = np.inf
    c, g = pair(a, dtype)
    for d in (1, (0, 1)):
        for fn in (fg.logsumexp, fg.amax, fg.amin, fg.sum):
            close(fn(g, dim=d), fn(c, dim=d))
    close(fg.norm(g, p=float("inf"), dim=1), fg.norm(c, p=float("inf"), dim=1))
    close(fg.norm(g, p=float("-inf"), dim=1), fg.norm(c, p=float("-inf"), dim=1))


# ---- empty reductions ---------------------------------------------------------------------------------


def same_error(fn, c, g):
    with pytest.raises(Exception) as ec:
        fn(c)
    with pytest.raises(type(ec.value)):
        fn(g)
    assert isinstance(ec.value, (ValueError, IndexError, RuntimeError, TypeError))


@pytest.mark.parametrize("dtype", FLOATS)
def test_empty(dtype):
    c, g = pair(np.zeros((0, 5)), dtype)
    for fn in (lambda t: t.amax(), lambda t: t.argmax(), lambda t: t.amax(0), lambda t: t.argmin(0),
               lambda t: fg.max(t, 0), lambda t: t.amin(dim=(0, 1))):
        same_error(fn, c, g)
    for fn in (lambda t: t.sum(), lambda t: t.sum(0), lambda t: t.mean(0), lambda t: t.amax(1), lambda t: t.prod(0),
               lambda t: t.argmax(1), lambda t: fg.norm(t, dim=0), lambda t: fg.logsumexp(t, dim=0),
               lambda t: t.all(0), lambda t: t.any(0)):
        close(fn(g), fn(c))


# ---- determinism and accuracy --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_bitwise_repeatable(dtype):
    cases = [((3 * 10**6 + 1,), None), ((4099, 37), 0), ((300, 2000), 0), ((3, 200000), 1), ((100003, 4), 1),
             ((3, 50000, 2), 1)]
    for shape, dims in cases:
        _, g = pair(rng(17).standard_normal(shape), dtype)
        kw = {} if dims is None else dict(dim=dims)
        red = kw.get("dim", tuple(range(len(shape))))
        for fn in (lambda t: fg.sum(t, **kw), lambda t: fg.var(t, **kw), lambda t: fg.logsumexp(t, dim=red),
                   lambda t: fg.norm(t, p=3.5, **kw)):
            same_bits(fn(g), fn(g))
        # a copy at another address: still the same bits
        same_bits(fg.sum(g, **kw), fg.sum(g.clone(), **kw))


def test_float64_split_sum_accuracy():
    # magnitudes over 12 decades and both signs: a naive float32-style sum
    # would lose digits; a float64 split sum stays within a few ulps of the
    # sum of |x|.
    n = 2**22 + 5
    r = rng(18)
    a = r.standard_normal(n) * 10.0 ** r.integers(-6, 7, n)
    _, g = pair(a, fg.float64)
    exact = math.fsum(a.tolist())
    scale = float(np.abs(a).sum())
    assert abs(float(g.sum().item()) - exact) <= 1e-13 * scale
    m = a[: (n // 1024) * 1024].reshape(-1, 1024)
    _, gm = pair(m, fg.float64)
    col = host(fg.sum(gm, dim=0))
    for j in (0, 511, 1023):
        ex = math.fsum(m[:, j].tolist())
        assert abs(col[j] - ex) <= 1e-13 * float(np.abs(m[:, j]).sum())


# ---- softmax on the shapes of the new plans (unchanged kernels, still right) ---------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", [((100003, 4), 1), ((3, 70000), 1), ((4099, 37), 0), ((5, 3000), 0),
                                       ((7, 64, 3), 1), ((7, 65, 3), 1), ((1, 1), 0)])
def test_softmax_shapes(dtype, shape, dim):
    # short lines take a thread per line, long ones a block per line
    a = rng(19).standard_normal(shape) * 3
    if a.size > 1:
        a.reshape(-1)[::97] = -np.inf  # a -inf here and there (never a whole line)
    c, g = pair(a, dtype)
    F = fg.nn.functional
    # float32: the two devices' exp/log round differently (a few ulp of the O(1-10) terms), so a
    # log-probability near 0 differs by a few 1e-7 absolute and a gradient (g - p * sum(g) over
    # lines of thousands) by a few 1e-6 (H200 run: 2.4e-7 and 5.3e-6 at most). An indexing
    # mistake is O(1).
    t = dict(rtol=1e-5, atol=1e-6) if dtype is fg.float32 else dict(rtol=1e-12, atol=1e-14)
    close(F.softmax(g, dim=dim), F.softmax(c, dim=dim), **t)
    close(F.log_softmax(g, dim=dim), F.log_softmax(c, dim=dim), **t)
    w = rng(20).standard_normal(shape)
    for fn in (F.softmax, F.log_softmax):
        cg, gg = c.clone().requires_grad_(), g.clone().requires_grad_()
        (fn(cg, dim=dim) * fg.tensor(w, dtype=dtype)).sum().backward()
        (fn(gg, dim=dim) * fg.tensor(w, dtype=dtype, device=DEV)).sum().backward()
        close(gg.grad, cg.grad, rtol=t["rtol"], atol=10 * t["atol"])
