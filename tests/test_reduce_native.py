"""Tests of the native reduction family (csrc/cpu/reduce.cpp) through fastgrad._C.

Every op is compared with NumPy (float64 references) or, where NumPy lacks the
semantics (max with indices, softmax backward, vector_norm), with PyTorch. Cases
cover all dtypes, dims None/int/tuple/negative, keepdim, non-contiguous views,
zero-size and 0-d arrays, odd sizes, NaN/inf, thread-count determinism, errors,
and hypothesis property tests over random shapes and dims.
"""
import itertools

import numpy as np
import pytest

from fastgrad import _C

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# torch warns for var with n <= correction and NumPy for means of empty slices:
# both are cases under test here.
pytestmark = pytest.mark.filterwarnings("ignore:var.*degrees of freedom:UserWarning",
                                        "ignore:Mean of empty slice:RuntimeWarning",
                                        "ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:Degrees of freedom <= 0:RuntimeWarning")

DTYPES = [np.bool_, np.int32, np.int64, np.float32, np.float64]
FLOATS = [np.float32, np.float64]
INTS = [np.bool_, np.int32, np.int64]


def C(x):
    return _C.from_numpy(np.asarray(x))


def N(a):
    return np.array(_C.to_numpy(a))  # copy: the result must not depend on the array staying alive


def rand(shape, dtype, seed=0, low=-3, high=4):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.random(shape) < 0.6
    if np.issubdtype(dtype, np.integer):
        return rng.integers(low, high, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def axis_of(dims, ndim):
    """_C takes a list (empty = all dims); NumPy takes None or a tuple (and no
    axis at all for 0-d arrays, where _C accepts dim 0 / -1 like PyTorch)."""
    return None if len(dims) == 0 or ndim == 0 else tuple(d % ndim for d in dims)


# Shapes and dim lists: every valid combination is generated from these.
SHAPES = [(), (1,), (7,), (33,), (1000,), (3, 4), (1, 5), (4, 1), (3, 4, 5), (2, 1, 7, 3), (2, 3, 2, 5)]


def dim_choices(ndim):
    out = [[]]
    if ndim == 0:
        return out + [[0], [-1]]
    for r in range(1, ndim + 1):
        for c in itertools.combinations(range(ndim), r):
            out.append(list(c))
    out.append([-1])
    if ndim >= 2:
        out.append([-2, 0] if ndim > 2 else [-1, 0])
    return out


CASES = [(s, d) for s in SHAPES for d in dim_choices(len(s))]


def tol(dtype):
    return (2e-6, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)


def assert_close(got, ref, dtype, rtol=None, atol=None, scale=None):
    """|got - ref| <= atol * max(scale, 1) + rtol * |ref|, NaNs and infs equal.
    `scale` (e.g. sum |x| over the reduced dims) makes the bound the one a
    well-conditioned summation algorithm guarantees."""
    r, a = tol(dtype)
    rtol = r if rtol is None else rtol
    atol = a if atol is None else atol
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    bound = atol * (np.maximum(np.asarray(scale, dtype=np.float64), 1.0) if scale is not None else 1.0)
    with np.errstate(invalid="ignore"):
        ok = (np.abs(got - ref) <= bound + rtol * np.abs(ref)) | (np.isnan(got) & np.isnan(ref)) | (got == ref)
    if not np.all(ok):
        bad = np.argwhere(~ok)[:5]
        raise AssertionError(f"mismatch at {bad.tolist()}: got {got[~ok][:5]} expected {ref[~ok][:5]}")


# ---- sum / mean / prod ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dims", CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum(shape, dims, keepdim, dtype):
    x = rand(shape, dtype, seed=len(shape))
    got = _C.sum(C(x), dims, keepdim, None)
    if np.issubdtype(dtype, np.floating):
        assert got.dtype == getattr(_C.DType, np.dtype(dtype).name)
        ref = x.astype(np.float64).sum(axis=axis_of(dims, x.ndim), keepdims=keepdim)
        absx = np.abs(x.astype(np.float64)).sum(axis=axis_of(dims, x.ndim), keepdims=keepdim)
        assert_close(N(got), ref, dtype, scale=absx)
    else:
        assert got.dtype == _C.DType.int64
        ref = x.astype(np.int64).sum(axis=axis_of(dims, x.ndim), keepdims=keepdim)
        np.testing.assert_array_equal(N(got), ref)
        assert N(got).shape == np.shape(ref)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dims", CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_mean(shape, dims, keepdim, dtype):
    x = rand(shape, dtype, seed=3)
    got = _C.mean(C(x), dims, keepdim)
    ref = x.astype(np.float64).mean(axis=axis_of(dims, x.ndim), keepdims=keepdim)
    assert_close(N(got), ref, dtype)
    assert got.dtype == getattr(_C.DType, np.dtype(dtype).name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dims", CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_prod(shape, dims, keepdim, dtype):
    if np.issubdtype(dtype, np.floating):
        x = (1 + 0.1 * rand(shape, dtype, seed=5)).astype(dtype)
    else:
        x = rand(shape, dtype, seed=5, low=-2, high=3)
    got = _C.prod(C(x), dims, keepdim)
    if np.issubdtype(dtype, np.floating):
        ref = x.astype(np.float64).prod(axis=axis_of(dims, x.ndim), keepdims=keepdim)
        assert_close(N(got), ref, dtype, rtol=1e-4 if dtype == np.float32 else 1e-12)
    else:
        assert got.dtype == _C.DType.int64
        ref = x.astype(np.int64).prod(axis=axis_of(dims, x.ndim), keepdims=keepdim)
        np.testing.assert_array_equal(N(got), ref)


def test_integer_sum_and_prod_wrap_like_torch():
    x = np.array([2**62, 2**62, 2**62], dtype=np.int64)
    assert N(_C.sum(C(x), [], False, None)) == torch.tensor(x).sum().item()
    y = np.array([2**40, 2**40], dtype=np.int64)
    assert N(_C.prod(C(y), [], False)) == torch.tensor(y).prod().item()
    z = np.full(5, 2**31 - 1, dtype=np.int32)  # int32 sums in int64: no wrap
    assert N(_C.sum(C(z), [], False, None)) == 5 * (2**31 - 1)


def test_sum_dtype_argument():
    x = rand((4, 5), np.int32, seed=1)
    f = _C.sum(C(x), [1], False, _C.DType.float32)
    assert f.dtype == _C.DType.float32
    np.testing.assert_array_equal(N(f), x.sum(1).astype(np.float32))
    i = _C.sum(C(x), [], False, _C.DType.int32)
    assert i.dtype == _C.DType.int32 and N(i) == x.sum()
    xf = np.array([1.7, 2.9, -0.5])
    t = torch.tensor(xf).sum(dtype=torch.int32)
    g = _C.sum(C(xf), [], False, _C.DType.int32)  # torch converts first: 1 + 2 + 0
    assert g.dtype == _C.DType.int32 and N(g) == t.item()
    b = _C.sum(C(np.array([True, True, False])), [], False, _C.DType.bool)
    assert b.dtype == _C.DType.bool and bool(N(b)) is True
    d = _C.sum(C(np.ones(3, np.float32)), [], False, _C.DType.float64)
    assert d.dtype == _C.DType.float64 and N(d) == 3.0
    assert _C.sum(C(x), [], False).dtype == _C.DType.int64  # dtype defaults to None


@pytest.mark.parametrize("n", [1, 7, 33, 1000, 100003, 1_000_003])
def test_sum_odd_sizes_full_and_accuracy(n):
    x = rand(n, np.float32, seed=n)
    got = N(_C.sum(C(x), [], False, None))
    ref = x.astype(np.float64).sum()
    bound = 4e-7 * np.abs(x.astype(np.float64)).sum() * max(1.0, np.log2(n)) / 8 + 1e-6
    assert abs(float(got) - ref) <= bound


def test_float32_sum_is_pairwise_accurate():
    # A sequential float32 sum of 10^6 copies of 0.1 is off by ~1%; pairwise /
    # blocked summation must stay within a few ulps of the float64 answer.
    x = np.full(1_000_000, 0.1, np.float32)
    ref = x.astype(np.float64).sum()
    assert abs(float(N(_C.sum(C(x), [], False, None))) - ref) / ref < 1e-6
    assert abs(float(N(_C.mean(C(x), [], False))) - ref / 1e6) / (ref / 1e6) < 1e-6
    # Same along a non-innermost dim (the row path) and along strided runs.
    m = np.full((200_000, 9), 0.1, np.float32)
    got = N(_C.sum(C(m), [0], False, None))
    assert np.all(np.abs(got - 200_000 * np.float64(np.float32(0.1))) / 20000.0 < 1e-6)
    m2 = np.full((300_000, 3), 0.1, np.float32)
    got2 = N(_C.sum(C(m2), [0], False, None))
    assert np.all(np.abs(got2 - 300_000 * np.float64(np.float32(0.1))) / 30000.0 < 1e-6)
    # Many short runs (the cascade over runs): sum over dims (0, 2) of (50000, 4, 3).
    c = np.full((50_000, 4, 3), 0.1, np.float32)
    got3 = N(_C.sum(C(c), [0, 2], False, None))
    assert np.all(np.abs(got3 - 150_000 * np.float64(np.float32(0.1))) / 15000.0 < 1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "shape,dims",
    [((1000, 64), [0]), ((64, 1000), [1]), ((5000, 7), [0]), ((33, 17, 9), [0, 2]), ((8, 3000, 16), [1]),
     ((100003,), [0]), ((3, 70000), [1]), ((70000, 3), [1]), ((2, 40000, 3), [0, 1])],
)
def test_sum_large_paths(shape, dims, dtype):
    # Exercises the row path with row blocks, the generic path with fixed blocks,
    # strided runs and cascades; compared to float64.
    x = rand(shape, dtype, seed=11)
    for keepdim in (False, True):
        got = N(_C.sum(C(x), dims, keepdim, None))
        ref = x.astype(np.float64).sum(axis=tuple(dims), keepdims=keepdim)
        absx = np.abs(x.astype(np.float64)).sum(axis=tuple(dims), keepdims=keepdim)
        assert_close(got, ref, dtype, scale=absx)
        got = N(_C.var(C(x), dims, 1.0, keepdim))
        assert_close(got, x.astype(np.float64).var(axis=tuple(dims), ddof=1, keepdims=keepdim), dtype,
                     rtol=2e-5 if dtype == np.float32 else 1e-11)


# ---- amax / amin / all / any ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dims", CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_amax_amin(shape, dims, keepdim, dtype):
    x = rand(shape, dtype, seed=7)
    for fn, ref_fn in ((_C.amax, np.max), (_C.amin, np.min)):
        got = fn(C(x), dims, keepdim)
        assert got.dtype == getattr(_C.DType, np.dtype(dtype).name)
        ref = ref_fn(x, axis=axis_of(dims, x.ndim), keepdims=keepdim)
        np.testing.assert_array_equal(N(got), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dims", CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_all_any(shape, dims, keepdim, dtype):
    x = rand(shape, dtype, seed=9, low=0, high=3)  # plenty of zeros
    for fn, ref_fn in ((_C.all, np.all), (_C.any, np.any)):
        got = fn(C(x), dims, keepdim)
        assert got.dtype == _C.DType.bool
        np.testing.assert_array_equal(N(got), ref_fn(x, axis=axis_of(dims, x.ndim), keepdims=keepdim))


def test_all_any_nan_counts_as_true():
    x = np.array([np.nan, 1.0])
    assert bool(N(_C.all(C(x), [], False))) is True
    assert bool(N(_C.any(C(np.array([np.nan, 0.0])), [], False))) is True


@pytest.mark.parametrize("dtype", FLOATS)
def test_amax_nan_and_inf(dtype):
    x = np.array([[1.0, np.nan, 3.0], [-np.inf, -1.0, np.inf], [np.nan, np.nan, 0.0]], dtype)
    t = torch.tensor(x)
    for dims in ([], [0], [1]):
        ta = t.amax(dim=tuple(dims)) if dims else t.amax()
        ti = t.amin(dim=tuple(dims)) if dims else t.amin()
        np.testing.assert_array_equal(N(_C.amax(C(x), dims, False)), ta.numpy())
        np.testing.assert_array_equal(N(_C.amin(C(x), dims, False)), ti.numpy())
    big = rand(100003, dtype, seed=2)
    big[77777] = np.nan
    assert np.isnan(N(_C.amax(C(big), [], False)))
    assert np.isnan(N(_C.amin(C(big), [], False)))
    col = rand((500, 40), dtype, seed=3)
    col[123, 17] = np.nan
    r = N(_C.amax(C(col), [0], False))
    assert np.isnan(r[17]) and not np.isnan(np.delete(r, 17)).any()


# ---- var / logsumexp / norm -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dims", CASES)
@pytest.mark.parametrize("correction", [0.0, 1.0, 2.0])
def test_var(shape, dims, correction, dtype):
    x = rand(shape, dtype, seed=13)
    for keepdim in (False, True):
        got = N(_C.var(C(x), dims, correction, keepdim))
        ref = torch.var(torch.tensor(x, dtype=torch.float64), dim=axis_of(dims, x.ndim), correction=correction,
                        keepdim=keepdim).numpy()
        assert_close(got, ref, dtype, rtol=1e-5 if dtype == np.float32 else 1e-11, atol=1e-6)


def test_var_no_catastrophic_cancellation():
    # Large mean, small spread: the naive E[x^2] - E[x]^2 loses every digit in float32.
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal(100_000)).astype(np.float32)
    ref = x.astype(np.float64).var(ddof=1)
    got = float(N(_C.var(C(x), [], 1.0, False)))
    assert abs(got - ref) / ref < 1e-4
    m = (1e4 + rng.standard_normal((20_000, 16))).astype(np.float32)
    got_c = N(_C.var(C(m), [0], 1.0, False))
    ref_c = m.astype(np.float64).var(axis=0, ddof=1)
    assert np.max(np.abs(got_c - ref_c) / ref_c) < 1e-4


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dims", CASES)
def test_logsumexp(shape, dims, dtype):
    x = (3 * rand(shape, dtype, seed=17)).astype(dtype)
    for keepdim in (False, True):
        got = N(_C.logsumexp(C(x), dims, keepdim))
        xd = torch.tensor(x, dtype=torch.float64)
        d = tuple(dims) if dims else tuple(range(x.ndim))
        ref = torch.logsumexp(xd, dim=d, keepdim=keepdim).numpy()
        assert_close(got, ref, dtype, rtol=2e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_logsumexp_extremes(dtype):
    inf, nan = np.inf, np.nan
    x = np.array([[1000.0, 1000.0], [-inf, -inf], [inf, 1.0], [nan, 1.0], [-1000.0, -1000.0], [inf, -inf]], dtype)
    got = N(_C.logsumexp(C(x), [1], False))
    ref = torch.logsumexp(torch.tensor(x), 1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)
    assert got[0] == pytest.approx(1000 + np.log(2), rel=1e-6)
    big = np.full((3, 2000), 500.0, dtype)
    np.testing.assert_allclose(N(_C.logsumexp(C(big), [0], False)), 500 + np.log(3), rtol=1e-6)


NORM_PS = [2.0, 1.0, np.inf, -np.inf, 0.0, 3.0, 0.5, -1.0, -2.5]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", NORM_PS)
@pytest.mark.parametrize("shape,dims", [c for c in CASES if 0 not in c[0]])
def test_norm(shape, dims, p, dtype):
    x = rand(shape, dtype, seed=19)
    if x.size:
        x.flat[0] = 0.0  # zeros matter for p <= 0
    for keepdim in (False, True):
        got = N(_C.norm(C(x), p, dims, keepdim))
        ref = torch.linalg.vector_norm(torch.tensor(x, dtype=torch.float64), ord=p, dim=axis_of(dims, x.ndim),
                                       keepdim=keepdim).numpy()
        assert_close(got, ref, dtype, rtol=2e-5 if dtype == np.float32 else 1e-11, atol=1e-6)


# ---- max / min with indices, argmax / argmin -------------------------------------------------------


def dim_cases():
    for s in SHAPES:
        nd = len(s)
        for d in range(-max(nd, 1), max(nd, 1)):
            yield s, d


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", list(dim_cases()))
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim_vs_torch(shape, dim, keepdim, dtype):
    x = rand(shape, dtype, seed=23, low=0, high=3)  # many ties: first occurrence must win
    t = torch.tensor(x)
    for fn, tfn in ((_C.max_dim, torch.max), (_C.min_dim, torch.min)):
        v, i = fn(C(x), dim, keepdim)
        tv, ti = tfn(t, dim, keepdim=keepdim)
        assert i.dtype == _C.DType.int64 and v.dtype == getattr(_C.DType, np.dtype(dtype).name)
        np.testing.assert_array_equal(N(v), tv.numpy())
        np.testing.assert_array_equal(N(i), ti.numpy())


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("shape,dim", list(dim_cases()))
def test_argmax_argmin(shape, dim, dtype):
    x = rand(shape, dtype, seed=29, low=-2, high=2)
    for keepdim in (False, True):
        np.testing.assert_array_equal(N(_C.argmax(C(x), dim, keepdim)),
                                      torch.tensor(x).argmax(dim, keepdim=keepdim).numpy())
        np.testing.assert_array_equal(N(_C.argmin(C(x), dim, keepdim)),
                                      torch.tensor(x).argmin(dim, keepdim=keepdim).numpy())
    np.testing.assert_array_equal(N(_C.argmax(C(x), None, False)), np.argmax(x))
    np.testing.assert_array_equal(N(_C.argmin(C(x), None, False)), np.argmin(x))
    k = _C.argmax(C(x), None, True)
    assert N(k).shape == torch.tensor(x).argmax(keepdim=True).shape


@pytest.mark.parametrize("dtype", FLOATS)
def test_max_nan_first_occurrence(dtype):
    x = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 2.0, -np.inf, np.inf], [np.inf, np.inf, 0.0, np.nan]], dtype)
    t = torch.tensor(x)
    for d in (0, 1):
        for fn, tfn in ((_C.max_dim, torch.max), (_C.min_dim, torch.min)):
            v, i = fn(C(x), d, False)
            tv, ti = tfn(t, d)
            np.testing.assert_array_equal(N(v), tv.numpy())
            np.testing.assert_array_equal(N(i), ti.numpy())
        np.testing.assert_array_equal(N(_C.argmax(C(x), d, False)), t.argmax(d).numpy())
        np.testing.assert_array_equal(N(_C.argmin(C(x), d, False)), t.argmin(d).numpy())
    assert N(_C.argmax(C(x), None, False)) == 1 and N(_C.argmin(C(x), None, False)) == 1
    big = rand(100003, dtype, seed=1)
    big[[5000, 90000]] = np.nan
    assert N(_C.argmax(C(big), None, False)) == 5000
    assert N(_C.argmax(C(big), 0, False)) == 5000


@pytest.mark.parametrize("n", [1, 7, 33, 1000, 100003])
def test_argmax_odd_sizes(n):
    x = rand(n, np.float32, seed=n)
    assert N(_C.argmax(C(x), None, False)) == np.argmax(x)
    m = rand((n, 9), np.float64, seed=n)
    np.testing.assert_array_equal(N(_C.argmax(C(m), 0, False)), m.argmax(0))
    np.testing.assert_array_equal(N(_C.max_dim(C(m), 0, False)[0]), m.max(0))


# ---- cumsum / cumprod ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", list(dim_cases()))
def test_cumsum_cumprod(shape, dim, dtype):
    x = rand(shape, dtype, seed=31, low=-2, high=3)
    t = torch.tensor(x)
    cs, cp = _C.cumsum(C(x), dim), _C.cumprod(C(x), dim)
    tcs, tcp = torch.cumsum(t, dim), torch.cumprod(t, dim)
    assert cs.dtype == getattr(_C.DType, str(tcs.dtype).split(".")[1])
    assert cp.dtype == getattr(_C.DType, str(tcp.dtype).split(".")[1])
    if np.issubdtype(dtype, np.floating):
        assert_close(N(cs), tcs.numpy(), dtype, rtol=1e-6, atol=1e-6)
        assert_close(N(cp), tcp.numpy(), dtype, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(N(cs), tcs.numpy())
        np.testing.assert_array_equal(N(cp), tcp.numpy())


@pytest.mark.parametrize("n", [7, 1000, 100003])
def test_cumsum_float32_accumulates_in_double(n):
    x = rand(n, np.float32, seed=n)
    got = N(_C.cumsum(C(x), 0))
    ref = np.cumsum(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got, torch.cumsum(torch.tensor(x), 0).numpy())
    m = rand((n, 12), np.float32, seed=1)
    np.testing.assert_allclose(N(_C.cumsum(C(m), 0)), np.cumsum(m.astype(np.float64), 0), rtol=1e-5, atol=1e-4)


# ---- softmax --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", list(dim_cases()))
def test_softmax_and_backward(shape, dim, dtype):
    x = (4 * rand(shape, dtype, seed=37)).astype(dtype)
    g = rand(shape, dtype, seed=41)
    r = (1e-6, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)
    for log in (False, True):
        fwd, bwd = (_C.log_softmax, _C.log_softmax_backward) if log else (_C.softmax, _C.softmax_backward)
        tfn = torch.log_softmax if log else torch.softmax
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        ty = tfn(tx, dim)
        (tgx,) = torch.autograd.grad(ty, tx, torch.tensor(g, dtype=torch.float64))
        y = fwd(C(x), dim)
        assert y.dtype == getattr(_C.DType, np.dtype(dtype).name)
        assert_close(N(y), ty.detach().numpy(), dtype, rtol=r[0] * 4, atol=r[1] * 4)
        gx = bwd(C(g), y, dim)
        assert_close(N(gx), tgx.numpy(), dtype, rtol=1e-5 if dtype == np.float32 else 1e-11, atol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_stability_and_specials(dtype):
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], dtype)
    np.testing.assert_allclose(N(_C.softmax(C(x), 1)), torch.softmax(torch.tensor(x), 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(N(_C.log_softmax(C(x), 1)), torch.log_softmax(torch.tensor(x), 1).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(N(_C.softmax(C(x), 0)), torch.softmax(torch.tensor(x), 0).numpy(), rtol=1e-6)
    inf, nan = np.inf, np.nan
    s = np.array([[-inf, -inf], [inf, 1.0], [nan, 1.0], [-inf, 0.0]], dtype)
    for f, tf in ((_C.softmax, torch.softmax), (_C.log_softmax, torch.log_softmax)):
        np.testing.assert_array_equal(N(f(C(s), 1)), tf(torch.tensor(s), 1).numpy())
        np.testing.assert_array_equal(N(f(C(np.array(s.T)), 0)), tf(torch.tensor(s.T), 0).numpy())


@pytest.mark.parametrize("shape,dim", [((64, 1000), 1), ((1000, 64), 0), ((8, 700, 33), 1), ((3, 100003), -1)])
def test_softmax_large(shape, dim):
    x = rand(shape, np.float32, seed=1)
    g = rand(shape, np.float32, seed=2)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch.softmax(tx, dim)
    (tg,) = torch.autograd.grad(ty, tx, torch.tensor(g, dtype=torch.float64))
    y = _C.softmax(C(x), dim)
    np.testing.assert_allclose(N(y), ty.detach().numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(N(_C.softmax_backward(C(g), y, dim)), tg.numpy(), rtol=1e-4, atol=1e-6)
    ly = _C.log_softmax(C(x), dim)
    np.testing.assert_allclose(N(ly), torch.log_softmax(torch.tensor(x, dtype=torch.float64), dim).numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_exp_accuracy(dtype):
    # softmax([0, -t]) = [1, e^-t] / (1 + e^-t): checks the vectorised exp over
    # its whole range, subnormal results included, against float64/longdouble.
    t = np.concatenate([np.linspace(0, 110, 4001), np.linspace(0, 760, 4001)]).astype(dtype)
    x = np.stack([np.zeros_like(t), -t], axis=1)
    got = N(_C.softmax(C(x), 1))
    e = np.exp(-t.astype(np.longdouble))
    ref = np.stack([1 / (1 + e), e / (1 + e)], axis=1)
    tiny = np.finfo(dtype).smallest_subnormal
    eps = np.finfo(dtype).eps
    err = np.abs(got.astype(np.longdouble) - ref)
    assert np.all(err <= 4 * eps * np.abs(ref) + tiny)
    lg = N(_C.log_softmax(C(x), 1))
    lref = np.stack([-np.log1p(e), -t.astype(np.longdouble) - np.log1p(e)], axis=1)
    assert np.all(np.abs(lg.astype(np.longdouble) - lref) <= 4 * eps * np.abs(lref) + 4 * eps)


def _softmax_cases(dtype):
    rng = np.random.default_rng(5)
    for shape, dim in (((7, 33), 1), ((33, 7), 0), ((4, 1000), 1), ((3, 50, 700), 1), ((2, 5, 3), -1)):
        yield rng.standard_normal(shape).astype(dtype) * 5, rng.standard_normal(shape).astype(dtype), dim


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_both_cpu_builds(dtype):
    # The softmax kernels exist in a baseline and an AVX2 build (chosen at run
    # time); force each in turn and compare both with torch and each other.
    if not hasattr(_C, "set_cpu_capability"):
        pytest.skip("no set_cpu_capability in this build")
    import os
    outs = {}
    try:
        for cap in ("scalar", "auto"):
            _C.set_cpu_capability(cap)
            res = []
            for x, g, dim in _softmax_cases(dtype):
                for log in (False, True):
                    fwd, bwd = (_C.log_softmax, _C.log_softmax_backward) if log else (_C.softmax, _C.softmax_backward)
                    tfn = torch.log_softmax if log else torch.softmax
                    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
                    ty = tfn(tx, dim)
                    (tg,) = torch.autograd.grad(ty, tx, torch.tensor(g, dtype=torch.float64))
                    y = fwd(C(x), dim)
                    gx = bwd(C(g), y, dim)
                    r = 2e-6 if dtype == np.float32 else 1e-13
                    assert_close(N(y), ty.detach().numpy(), dtype, rtol=r, atol=r)
                    assert_close(N(gx), tg.numpy(), dtype, rtol=50 * r, atol=50 * r)
                    res.append((N(y), N(gx)))
            outs[cap] = res
    finally:
        _C.set_cpu_capability(os.environ.get("FASTGRAD_CPU_CAPABILITY", "auto"))
    for (ya, ga), (yb, gb) in zip(outs["scalar"], outs["auto"]):
        np.testing.assert_allclose(ya, yb, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)


# ---- non-contiguous inputs -----------------------------------------------------------------------

def views(x):
    """(description, _C view, NumPy equivalent) for a 3-d array x of shape (4, 6, 5)."""
    a = C(x)
    yield "transpose", _C.transpose(a, 0, 2), np.swapaxes(x, 0, 2)
    yield "slice-step", _C.slice(a, 1, 1, 6, 2), x[:, 1:6:2]
    yield "flip", _C.flip(a, [1]), x[:, ::-1]
    yield "flip-all", _C.flip(a, [0, 1, 2]), x[::-1, ::-1, ::-1]
    yield "expand", _C.expand(_C.slice(a, 1, 0, 1, 1), [4, 7, 5]), np.broadcast_to(x[:, 0:1], (4, 7, 5))
    yield "transpose-slice", _C.slice(_C.transpose(a, 1, 2), 2, 0, 6, 3), np.swapaxes(x, 1, 2)[:, :, 0:6:3]
    yield "numpy-negative", C(x[::-1, :, ::2]), x[::-1, :, ::2]


VIEW_DIMS = [[], [0], [1], [2], [0, 1], [0, 2], [1, 2], [-1, 0]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_reductions(dtype):
    x = rand((4, 6, 5), dtype, seed=43, low=-2, high=3)
    for name, v, ref in views(x):
        assert v.shape == ref.shape, name
        for dims in VIEW_DIMS:
            ax = axis_of(dims, ref.ndim)
            for keepdim in (False, True):
                msg = f"{name} dims={dims} keepdim={keepdim}"
                if np.issubdtype(dtype, np.floating):
                    assert_close(N(_C.sum(v, dims, keepdim, None)),
                                 ref.astype(np.float64).sum(axis=ax, keepdims=keepdim), dtype, atol=1e-5)
                    assert_close(N(_C.mean(v, dims, keepdim)), ref.astype(np.float64).mean(axis=ax, keepdims=keepdim),
                                 dtype)
                    assert_close(N(_C.var(v, dims, 1.0, keepdim)),
                                 ref.astype(np.float64).var(axis=ax, ddof=1, keepdims=keepdim), dtype, rtol=1e-5,
                                 atol=1e-6)
                    lse = torch.logsumexp(torch.tensor(ref.copy()).double(), dim=ax if ax else tuple(range(3)),
                                          keepdim=keepdim)
                    assert_close(N(_C.logsumexp(v, dims, keepdim)), lse.numpy(), dtype, atol=1e-6)
                    nrm = torch.linalg.vector_norm(torch.tensor(ref.copy()).double(), 2, dim=ax, keepdim=keepdim)
                    assert_close(N(_C.norm(v, 2.0, dims, keepdim)), nrm.numpy(), dtype, atol=1e-6)
                else:
                    np.testing.assert_array_equal(N(_C.sum(v, dims, keepdim, None)),
                                                  ref.astype(np.int64).sum(axis=ax, keepdims=keepdim), err_msg=msg)
                np.testing.assert_array_equal(N(_C.amax(v, dims, keepdim)), ref.max(axis=ax, keepdims=keepdim),
                                              err_msg=msg)
                np.testing.assert_array_equal(N(_C.amin(v, dims, keepdim)), ref.min(axis=ax, keepdims=keepdim),
                                              err_msg=msg)
                np.testing.assert_array_equal(N(_C.all(v, dims, keepdim)), ref.all(axis=ax, keepdims=keepdim),
                                              err_msg=msg)
                np.testing.assert_array_equal(N(_C.any(v, dims, keepdim)), ref.any(axis=ax, keepdims=keepdim),
                                              err_msg=msg)


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_dim_ops(dtype):
    x = rand((4, 6, 5), dtype, seed=47, low=-2, high=3)
    for name, v, ref in views(x):
        t = torch.tensor(np.array(ref))
        for d in range(3):
            tv, ti = torch.max(t, d)
            vv, vi = _C.max_dim(v, d, False)
            np.testing.assert_array_equal(N(vv), tv.numpy(), err_msg=name)
            np.testing.assert_array_equal(N(vi), ti.numpy(), err_msg=name)
            np.testing.assert_array_equal(N(_C.cumsum(v, d)), torch.cumsum(t, d).numpy(), err_msg=name)
            if dtype != np.bool_:
                np.testing.assert_array_equal(N(_C.argmin(v, d, False)), t.argmin(d).numpy(), err_msg=name)
            if np.issubdtype(dtype, np.floating):
                np.testing.assert_allclose(N(_C.softmax(v, d)), torch.softmax(t, d).numpy(), rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose(N(_C.log_softmax(v, d)), torch.log_softmax(t, d).numpy(), rtol=1e-6,
                                           atol=1e-6)
                y = _C.softmax(v, d)
                # backward with a non-contiguous grad and a non-contiguous saved output
                gt = _C.transpose(C(np.array(np.swapaxes(np.ones_like(ref) * 0.5, 0, 1))), 0, 1)
                ref_gx = N(y) * (0.5 - (0.5 * N(y)).sum(d, keepdims=True))
                np.testing.assert_allclose(N(_C.softmax_backward(gt, y, d)), ref_gx, rtol=1e-5, atol=1e-6)
        if dtype != np.bool_:
            assert N(_C.argmax(v, None, False)) == np.argmax(ref), name


# ---- zero-size and 0-d ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dims", [((0,), []), ((0,), [0]), ((0, 3), [0]), ((3, 0), [1]), ((0, 3), [1]),
                                        ((2, 0, 3), [0, 2]), ((2, 0, 3), [1]), ((0, 0), [])])
@pytest.mark.parametrize("keepdim", [False, True])
def test_empty_reductions(shape, dims, keepdim, dtype):
    x = np.zeros(shape, dtype)
    t = torch.tensor(x)
    tdims = tuple(dims) if dims else tuple(range(len(shape)))
    np.testing.assert_array_equal(N(_C.sum(C(x), dims, keepdim, None)), torch.sum(t, tdims, keepdim=keepdim).numpy())
    np.testing.assert_array_equal(N(_C.prod(C(x), dims, keepdim)),
                                  torch.tensor(x.astype(np.int64) if dtype != np.float32 and dtype != np.float64
                                               else x).prod(tdims[0], keepdim=keepdim).numpy()
                                  if len(tdims) == 1 else np.ones(N(_C.sum(C(x), dims, keepdim, None)).shape))
    np.testing.assert_array_equal(N(_C.all(C(x), dims, keepdim)), np.all(x, axis=tdims, keepdims=keepdim))
    np.testing.assert_array_equal(N(_C.any(C(x), dims, keepdim)), np.any(x, axis=tdims, keepdims=keepdim))
    if np.issubdtype(dtype, np.floating):
        np.testing.assert_array_equal(N(_C.mean(C(x), dims, keepdim)), torch.mean(t, tdims, keepdim=keepdim).numpy())
        np.testing.assert_array_equal(N(_C.var(C(x), dims, 1.0, keepdim)),
                                      torch.var(t, tdims, keepdim=keepdim).numpy())
        np.testing.assert_array_equal(N(_C.logsumexp(C(x), dims, keepdim)),
                                      torch.logsumexp(t, tdims, keepdim=keepdim).numpy())
        np.testing.assert_array_equal(N(_C.norm(C(x), 2.0, dims, keepdim)),
                                      torch.linalg.vector_norm(t, 2, tdims, keepdim=keepdim).numpy())
    reduced_empty = any(shape[d] == 0 for d in tdims)
    if reduced_empty:
        with pytest.raises((IndexError, ValueError), match="amax"):
            _C.amax(C(x), dims, keepdim)
        with pytest.raises((IndexError, ValueError), match="amin"):
            _C.amin(C(x), dims, keepdim)
    else:
        assert N(_C.amax(C(x), dims, keepdim)).shape == torch.amax(t, tdims, keepdim=keepdim).shape


def test_empty_dim_ops():
    x = np.zeros((0, 3), np.float32)
    with pytest.raises(IndexError, match=r"max: expected reduction dim 0 to have non-zero size"):
        _C.max_dim(C(x), 0, False)
    with pytest.raises(IndexError, match="min"):
        _C.min_dim(C(x), -2, False)
    with pytest.raises(IndexError, match="argmax"):
        _C.argmax(C(x), 0, False)
    with pytest.raises(IndexError, match="argmax"):
        _C.argmax(C(x), None, False)
    with pytest.raises(ValueError, match="amax"):
        _C.amax(C(x), [], False)
    v, i = _C.max_dim(C(x), 1, False)
    assert N(v).shape == (0,) and N(i).shape == (0,)
    assert N(_C.argmin(C(x), 1, True)).shape == (0, 1)
    assert N(_C.cumsum(C(x), 0)).shape == (0, 3)
    assert N(_C.softmax(C(np.zeros((2, 0), np.float32)), 1)).shape == (2, 0)
    assert N(_C.log_softmax_backward(C(x), C(x), 1)).shape == (0, 3)
    with pytest.raises(ValueError, match="norm"):
        _C.norm(C(x), np.inf, [0], False)
    assert N(_C.norm(C(x), np.inf, [1], False)).shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dim(dtype):
    x = np.array(rand((), dtype, seed=3))
    t = torch.tensor(x)
    for dims in ([], [0], [-1]):
        for kd in (False, True):
            s = _C.sum(C(x), dims, kd, None)
            assert N(s).shape == () and N(s) == t.sum().item()
            assert N(_C.amax(C(x), dims, kd)) == x and N(_C.amin(C(x), dims, kd)) == x
            assert N(_C.prod(C(x), dims, kd)) == t.prod().item()
            assert N(_C.all(C(x), dims, kd)) == bool(x) and N(_C.any(C(x), dims, kd)) == bool(x)
            if np.issubdtype(dtype, np.floating):
                assert N(_C.mean(C(x), dims, kd)) == x
                assert np.isnan(N(_C.var(C(x), dims, 1.0, kd))) and N(_C.var(C(x), dims, 0.0, kd)) == 0
                assert N(_C.logsumexp(C(x), dims, kd)) == pytest.approx(float(x))
                assert N(_C.norm(C(x), 2.0, dims, kd)) == pytest.approx(abs(float(x)))
    v, i = _C.max_dim(C(x), 0, True)
    assert N(v) == x and N(i) == 0 and N(i).shape == ()
    if dtype != np.bool_:
        assert N(_C.argmax(C(x), 0, True)) == 0 and N(_C.argmin(C(x), None, False)) == 0
    assert N(_C.cumsum(C(x), 0)) == t.cumsum(0).item() and N(_C.cumsum(C(x), 0)).shape == ()
    assert N(_C.cumprod(C(x), -1)) == t.cumprod(0).item()
    if np.issubdtype(dtype, np.floating):
        assert N(_C.softmax(C(x), 0)) == 1.0 and N(_C.log_softmax(C(x), -1)) == 0.0
    with pytest.raises(IndexError, match="sum"):
        _C.sum(C(x), [1], False, None)
    with pytest.raises(ValueError, match="sum: dim 0 appears multiple times"):
        _C.sum(C(x), [0, -1], False, None)


# ---- determinism across thread counts -------------------------------------------------------------------


def _run_all(xs):
    x, m, c, w, s = xs
    out = []
    out.append(N(_C.sum(C(x), [], False, None)))
    out.append(N(_C.mean(C(x), [], False)))
    out.append(N(_C.var(C(x), [], 1.0, False)))
    out.append(N(_C.logsumexp(C(x), [], False)))
    out.append(N(_C.norm(C(x), 2.0, [], False)))
    out.append(N(_C.norm(C(x), 3.0, [], False)))
    out.append(N(_C.prod(C(1 + x * 1e-3), [], False)))
    out.append(N(_C.amax(C(x), [], False)))
    out.append(N(_C.sum(C(m), [0], False, None)))    # row path with row blocks
    out.append(N(_C.sum(C(m), [1], False, None)))
    out.append(N(_C.var(C(m), [0], 1.0, False)))
    out.append(N(_C.sum(C(c), [0], False, None)))    # tall and narrow: strided runs, fixed blocks
    out.append(N(_C.sum(C(c), [0, 1], False, None)))
    out.append(N(_C.sum(_C.transpose(C(m), 0, 1), [1], False, None)))
    out.append(N(_C.sum(C(w), [0, 2], True, None)))
    out.append(N(_C.logsumexp(C(w), [1], False)))
    out.append(N(_C.softmax(C(s), 1)))
    out.append(N(_C.softmax(C(s), 0)))
    out.append(N(_C.log_softmax(C(s), 1)))
    out.append(N(_C.softmax_backward(C(s), _C.softmax(C(s), 0), 0)))
    out.append(N(_C.cumsum(C(s), 0)))
    out.append(N(_C.max_dim(C(s), 0, False)[1]))
    out.append(N(_C.argmax(C(x), None, False)))
    return out


@pytest.mark.parametrize("dtype", FLOATS)
def test_thread_count_determinism(dtype):
    xs = (rand(1_000_003, dtype, seed=1), rand((3001, 257), dtype, seed=2), rand((200_000, 3), dtype, seed=3),
          rand((64, 500, 9), dtype, seed=4), rand((300, 1000), dtype, seed=5))
    old = _C.get_num_threads()
    try:
        results = {}
        for n in (1, 2, 3, 8):
            _C.set_num_threads(n)
            results[n] = _run_all(xs)
    finally:
        _C.set_num_threads(old)
    for n in (2, 3, 8):
        for a, b in zip(results[1], results[n]):
            assert a.tobytes() == b.tobytes()


# ---- errors -----------------------------------------------------------------------------------------------


def test_errors():
    x = C(rand((2, 3), np.float32))
    i = C(rand((2, 3), np.int64))
    with pytest.raises(ValueError, match="sum: dim 1 appears multiple times"):
        _C.sum(x, [1, -1], False, None)
    with pytest.raises(ValueError, match="amax: dim 0 appears multiple times"):
        _C.amax(x, [0, 0], False)
    for name in ("sum", "mean", "prod", "amax", "amin", "all", "any", "logsumexp"):
        fn = getattr(_C, name)
        args = (x, [2], False, None) if name == "sum" else (x, [2], False)
        with pytest.raises(IndexError, match=name):
            fn(*args)
    with pytest.raises(IndexError, match="var"):
        _C.var(x, [-3], 1.0, False)
    with pytest.raises(IndexError, match="norm"):
        _C.norm(x, 2.0, [5], False)
    for name in ("max_dim", "min_dim"):
        with pytest.raises(IndexError, match=name[:3]):
            getattr(_C, name)(x, 2, False)
    for name in ("argmax", "argmin", ):
        with pytest.raises(IndexError, match=name):
            getattr(_C, name)(x, -3, False)
    for name in ("cumsum", "cumprod", "softmax", "log_softmax"):
        with pytest.raises(IndexError, match=name):
            getattr(_C, name)(x, 2)
    with pytest.raises(TypeError, match="mean"):
        _C.mean(i, [], False)
    with pytest.raises(TypeError, match="var"):
        _C.var(i, [], 1.0, False)
    with pytest.raises(TypeError, match="logsumexp"):
        _C.logsumexp(i, [], False)
    with pytest.raises(TypeError, match="norm"):
        _C.norm(i, 2.0, [], False)
    with pytest.raises(TypeError, match="softmax"):
        _C.softmax(i, 0)
    with pytest.raises(TypeError, match="log_softmax"):
        _C.log_softmax(C(np.array([True])), 0)
    with pytest.raises(TypeError, match="argmax"):
        _C.argmax(C(np.array([True, False])), None, False)
    with pytest.raises(ValueError, match="softmax_backward: grad shape"):
        _C.softmax_backward(x, C(rand((3, 2), np.float32)), 0)
    with pytest.raises(TypeError, match="log_softmax_backward"):
        _C.log_softmax_backward(x, C(rand((2, 3), np.float64)), 0)
    with pytest.raises(TypeError):
        _C.sum(x, [0], False, "float32")  # dtype must be a DType or None


# ---- hypothesis property tests ---------------------------------------------------------------------------


@st.composite
def array_and_dims(draw, dtypes=DTYPES):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    if ndim and draw(st.booleans()):  # sometimes one long dim
        k = draw(st.integers(0, ndim - 1))
        shape = shape[:k] + (draw(st.integers(7, 300)),) + shape[k + 1:]
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**31))
    x = rand(shape, dtype, seed=seed, low=-3, high=4)
    dims = []
    if ndim:
        dims = draw(st.lists(st.integers(-ndim, ndim - 1), unique_by=lambda d: d % ndim, max_size=ndim))
    keepdim = draw(st.booleans())
    view = draw(st.sampled_from(["none", "transpose", "flip", "slice"])) if ndim >= 2 else "none"
    return x, dims, keepdim, view


def make_view(x, view):
    a = C(x)
    if view == "transpose":
        return _C.transpose(a, 0, -1), np.swapaxes(x, 0, -1)
    if view == "flip":
        return _C.flip(a, [0, -1]), x[::-1, ..., ::-1]
    if view == "slice":
        return _C.slice(a, 0, 0, x.shape[0], 2), x[0::2]
    return a, x


HSET = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HSET
@given(array_and_dims())
def test_property_sum_amax_all(case):
    x, dims, keepdim, view = case
    a, ref = make_view(x, view)
    ax = axis_of(dims, ref.ndim)
    got = N(_C.sum(a, dims, keepdim, None))
    if np.issubdtype(x.dtype, np.floating):
        r = ref.astype(np.float64).sum(axis=ax, keepdims=keepdim)
        assert_close(got, r, x.dtype, atol=1e-5, scale=np.abs(ref.astype(np.float64)).sum(axis=ax, keepdims=keepdim))
    else:
        np.testing.assert_array_equal(got, ref.astype(np.int64).sum(axis=ax, keepdims=keepdim))
        assert got.shape == ref.astype(np.int64).sum(axis=ax, keepdims=keepdim).shape
    np.testing.assert_array_equal(N(_C.all(a, dims, keepdim)), ref.all(axis=ax, keepdims=keepdim))
    np.testing.assert_array_equal(N(_C.any(a, dims, keepdim)), ref.any(axis=ax, keepdims=keepdim))
    reduced = range(ref.ndim) if ax is None else ax
    if ref.size == 0 and (not dims or any(ref.shape[d] == 0 for d in reduced)):
        with pytest.raises((IndexError, ValueError), match="amax"):
            _C.amax(a, dims, keepdim)
    else:
        np.testing.assert_array_equal(N(_C.amax(a, dims, keepdim)), ref.max(axis=ax, keepdims=keepdim))
        np.testing.assert_array_equal(N(_C.amin(a, dims, keepdim)), ref.min(axis=ax, keepdims=keepdim))


@HSET
@given(array_and_dims(dtypes=FLOATS))
def test_property_float_reductions(case):
    x, dims, keepdim, view = case
    a, ref = make_view(x, view)
    ax = axis_of(dims, ref.ndim)
    r64 = ref.astype(np.float64)
    with np.errstate(all="ignore"):
        assert_close(N(_C.mean(a, dims, keepdim)), r64.mean(axis=ax, keepdims=keepdim), x.dtype, atol=1e-6)
        tdim = ax if ax is not None else (tuple(range(ref.ndim)) if ref.ndim else None)
        tv = torch.var(torch.tensor(r64.copy()), dim=tdim, correction=1, keepdim=keepdim).numpy()
    assert_close(N(_C.var(a, dims, 1.0, keepdim)), tv, x.dtype, rtol=1e-5, atol=1e-5)
    lse = torch.logsumexp(torch.tensor(r64.copy()), dim=tdim if tdim is not None else 0, keepdim=keepdim).numpy()
    assert_close(N(_C.logsumexp(a, dims, keepdim)), lse, x.dtype, atol=1e-5)
    nrm = torch.linalg.vector_norm(torch.tensor(r64.copy()), 2, dim=ax, keepdim=keepdim).numpy()
    assert_close(N(_C.norm(a, 2.0, dims, keepdim)), nrm, x.dtype, atol=1e-5)
    pr = np.prod(1 + 0.01 * r64, axis=ax, keepdims=keepdim)
    assert_close(N(_C.prod(C(np.array(1 + 0.01 * ref)), dims, keepdim)), pr, x.dtype, rtol=1e-5)


@HSET
@given(array_and_dims())
def test_property_dim_ops(case):
    x, dims, keepdim, view = case
    a, ref = make_view(x, view)
    if ref.ndim == 0:
        d = 0
    else:
        d = dims[0] if dims else -1
    t = torch.tensor(np.array(ref))
    nonempty = ref.ndim == 0 or ref.shape[d] > 0
    if nonempty:
        tv, ti = torch.max(t, d, keepdim=keepdim)
        v, i = _C.max_dim(a, d, keepdim)
        np.testing.assert_array_equal(N(v), tv.numpy())
        np.testing.assert_array_equal(N(i), ti.numpy())
        tv, ti = torch.min(t, d, keepdim=keepdim)
        v, i = _C.min_dim(a, d, keepdim)
        np.testing.assert_array_equal(N(v), tv.numpy())
        np.testing.assert_array_equal(N(i), ti.numpy())
    else:
        with pytest.raises(IndexError, match="max"):
            _C.max_dim(a, d, keepdim)
    cs = N(_C.cumsum(a, d))
    if np.issubdtype(x.dtype, np.floating):
        np.testing.assert_allclose(cs, torch.cumsum(t.double(), d).numpy(), rtol=1e-5, atol=1e-5)
        y = _C.log_softmax(a, d)
        np.testing.assert_allclose(N(y), torch.log_softmax(t.double(), d).numpy(), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(cs, torch.cumsum(t, d).numpy())


# ---- logsumexp's row path (reduced dims trailing, input contiguous) ------------------------------

@pytest.mark.parametrize("cap", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_logsumexp_rows_fast_path(cap, dtype):
    from helpers import forced_cpu_capability

    rng = np.random.default_rng(5)
    with forced_cpu_capability(cap, _C.vecmath_isa):
        for shape, dims in (((7, 5003), [1]), ((3, 4, 33), [-1]), ((2, 3, 17), [1, 2]), ((1,), [0]),
                            ((257,), []), ((4, 1, 9), [2])):
            x = (rng.standard_normal(shape) * 4).astype(dtype)
            x.reshape(-1)[::7] = -np.inf  # masked entries
            if x.ndim >= 2 and shape[0] > 2:
                x[1] = -np.inf  # an all-masked row
                x[2].reshape(-1)[3] = np.inf
            for keepdim in (False, True):
                got = N(_C.logsumexp(C(x), dims, keepdim))
                d = tuple(dims) if dims else tuple(range(x.ndim))
                ref = torch.logsumexp(torch.tensor(x, dtype=torch.float64), dim=d, keepdim=keepdim).numpy()
                np.testing.assert_allclose(got, ref, rtol=2e-6 if dtype == np.float32 else 1e-13, atol=1e-6)
                # the generic engine (a transposed view of the same values) agrees
                if x.ndim >= 2:
                    view = _C.transpose(C(np.ascontiguousarray(np.swapaxes(x, 0, -1))), 0, x.ndim - 1)
                    gen = N(_C.logsumexp(view, dims, keepdim))
                    np.testing.assert_allclose(got, gen, rtol=4 * np.finfo(dtype).eps, atol=1e-6)
        nan_row = np.array([[1.0, np.nan, 2.0], [0.0, 0.0, 0.0]], dtype)
        got = N(_C.logsumexp(C(nan_row), [1], False))
        assert np.isnan(got[0]) and got[1] == pytest.approx(np.log(3))


def test_logsumexp_rows_same_bits_any_thread_count():
    import fastgrad as fg

    x = _C.from_numpy(np.random.default_rng(6).standard_normal((300, 700)).astype(np.float32))
    prev = fg.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            fg.set_num_threads(n)
            outs.append(N(_C.logsumexp(x, [1], False)))
    finally:
        fg.set_num_threads(prev)
    np.testing.assert_array_equal(outs[0], outs[1])
