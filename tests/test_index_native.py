"""Native index/join kernels (csrc/cpu/index.cpp) through fastgrad._C.

Every op is compared with NumPy or PyTorch across dtypes, non-contiguous
inputs (strided, flipped, transposed, broadcast), zero-size and 0-d arrays,
negative and duplicate indices; errors are checked for type and message
(the op name and the offending value); accumulating kernels are checked to
give bit-identical results for different thread counts.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

from fastgrad import _C  # noqa: E402

DTYPES = [np.bool_, np.int32, np.int64, np.float32, np.float64]
DTYPE_IDS = ["bool", "int32", "int64", "float32", "float64"]
FG_DTYPE = {np.dtype(np.bool_): _C.DType.bool, np.dtype(np.int32): _C.DType.int32,
            np.dtype(np.int64): _C.DType.int64, np.dtype(np.float32): _C.DType.float32,
            np.dtype(np.float64): _C.DType.float64}
RNG = np.random.default_rng(0)


# ---- helpers -------------------------------------------------------------------

def fg(x):
    """A fastgrad array viewing the NumPy array (no copy)."""
    return _C.from_numpy(np.asarray(x))


def np_(a):
    """A NumPy copy of a fastgrad array."""
    return np.array(_C.to_numpy(a))


def rand(shape, dtype, lo=-50, hi=50):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return RNG.random(shape) < 0.5
    if dtype.kind == "i":
        return RNG.integers(lo, hi, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def layouts(x):
    """Fastgrad arrays equal to x in value with different memory layouts:
    contiguous, strided (step 2 on the last dim), flipped, transposed."""
    x = np.asarray(x)
    out = [("contiguous", fg(x.copy()))]
    if x.ndim == 0:
        return out
    base = np.zeros(x.shape[:-1] + (2 * x.shape[-1] + 1,), x.dtype)
    base[..., 1::2] = x
    out.append(("strided", _C.slice(fg(base), -1, 1, 2 * x.shape[-1] + 1, 2)))
    out.append(("flipped", _C.flip(fg(np.flip(x, 0).copy()), [0])))
    if x.ndim >= 2:
        out.append(("transposed", _C.transpose(fg(np.swapaxes(x, 0, -1).copy()), 0, -1)))
    for name, a in out:
        assert a.shape == x.shape and np.array_equal(np_(a), x), name
    return out


def check(got, want, exact=True):
    got = np_(got) if not isinstance(got, np.ndarray) else got
    want = want.numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if exact or want.dtype.kind in "bi":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


class threads:
    """Runs a block with a given pool size, restoring the old one."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = _C.get_num_threads()
        _C.set_num_threads(self.n)

    def __exit__(self, *exc):
        _C.set_num_threads(self.old)


def T(x):
    return torch.from_numpy(np.asarray(x).copy())


# ---- cat / stack ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_cat_layouts(dtype, dim):
    shapes = [(3, 4, 5), (3, 4, 5)]
    shapes = [tuple(s if i != dim % 3 else n for i, s in enumerate(sh)) for sh, n in zip(shapes, (2, 7))]
    xs = [rand(s, dtype) for s in shapes]
    want = np.concatenate(xs, axis=dim)
    for (_, a), (_, b) in zip(layouts(xs[0]), layouts(xs[1])[::-1]):
        check(_C.cat([a, b], dim), want)


def test_cat_promotes_like_torch():
    for d1 in DTYPES:
        for d2 in DTYPES:
            x, y = rand((2, 3), d1), rand((1, 3), d2)
            want = torch.cat([T(x), T(y)], 0)
            check(_C.cat([fg(x), fg(y)], 0), want)


def test_cat_many_odd_sizes_and_zero_size():
    xs = [rand((n, 3), np.float32) for n in (0, 1, 5, 0, 17, 2)]
    check(_C.cat([fg(x) for x in xs], 0), np.concatenate(xs, 0))
    ys = [rand((0, n), np.int64) for n in (1, 3)]
    check(_C.cat([fg(y) for y in ys], 1), np.concatenate(ys, 1))
    one = rand((5,), np.float64)
    check(_C.cat([fg(one)], 0), one)


def test_cat_legacy_empty_is_skipped():
    e = np.zeros(0, np.float32)
    x = rand((2, 3), np.float32)
    want = torch.cat([T(e), T(x), T(e)], 1)
    check(_C.cat([fg(e), fg(x), fg(e)], 1), want)
    check(_C.cat([fg(e), fg(np.zeros(0, np.int64))], 0), torch.cat([T(e), T(np.zeros(0, np.int64))], 0))


def test_cat_broadcast_inputs_and_large_parallel():
    x = rand((1, 300), np.float32)
    a = _C.expand(fg(x), [200, 300])
    b = fg(rand((50, 300), np.float32))
    check(_C.cat([a, b], 0), np.concatenate([np.broadcast_to(x, (200, 300)), np_(b)], 0))
    big = [rand((257, 129), np.float64) for _ in range(3)]
    check(_C.cat([_C.transpose(fg(v.T.copy()), 0, 1) for v in big], 1), np.concatenate(big, 1))


def test_cat_errors():
    with pytest.raises(ValueError, match="cat.*non-empty"):
        _C.cat([], 0)
    with pytest.raises(ValueError, match=r"cat.*\[2, 3\].*\[2, 4\]"):
        _C.cat([fg(np.zeros((2, 3))), fg(np.zeros((2, 4)))], 0)
    with pytest.raises(ValueError, match=r"cat.*same number of dimensions.*\[2, 3\].*\[2, 3, 1\]"):
        _C.cat([fg(np.zeros((2, 3))), fg(np.zeros((2, 3, 1)))], 0)
    with pytest.raises(ValueError, match="cat.*zero-dimensional"):
        _C.cat([fg(np.zeros(())), fg(np.zeros(()))], 0)
    with pytest.raises(IndexError, match="cat.*dim 2"):
        _C.cat([fg(np.zeros((2, 3)))], 2)
    # shapes must match even when the other input is zero-size (only 1-d [0] is legacy)
    with pytest.raises(ValueError, match=r"cat.*\[0, 3\].*\[2, 3\]"):
        _C.cat([fg(np.zeros((0, 3))), fg(np.zeros((2, 3)))], 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack(dtype, dim):
    xs = [rand((3, 4), dtype) for _ in range(3)]
    want = np.stack(xs, axis=dim)
    for (_, a), (_, b), (_, c) in zip(layouts(xs[0]), layouts(xs[1]), layouts(xs[2])):
        check(_C.stack([a, b, c], dim), want)


def test_stack_scalars_zero_size_and_promotion():
    check(_C.stack([fg(np.array(1.0, np.float32)), fg(np.array(2))], 0),
          torch.stack([torch.tensor(1.0), torch.tensor(2)], 0))
    check(_C.stack([fg(np.zeros(0)), fg(np.zeros(0))], 1), np.zeros((0, 2)))
    check(_C.stack([fg(np.zeros((2, 0), np.int32))] * 3, 1), np.zeros((2, 3, 0), np.int32))


def test_stack_errors():
    with pytest.raises(ValueError, match=r"stack.*\[2, 3\] at entry 0 and \[2, 4\] at entry 1"):
        _C.stack([fg(np.zeros((2, 3))), fg(np.zeros((2, 4)))], 0)
    with pytest.raises(ValueError, match="stack.*non-empty"):
        _C.stack([], 0)
    with pytest.raises(IndexError, match="stack.*dim 3"):
        _C.stack([fg(np.zeros((2, 3)))], 3)


# ---- pad ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("pads", [(1, 2), (0, 0), (-1, 3), (2, -2, 1, 0), (1, 1, 1, 1, 1, 1), (-3, 0, 0, -2),
                                  (0, 0, 0, 0, 2, 0)])
def test_pad_vs_torch(dtype, pads):
    x = rand((2, 3, 4), dtype)
    value = 1.0 if dtype == np.bool_ else 7.0
    want = F.pad(T(x), pads, value=value)
    for name, a in layouts(x):
        check(_C.pad(a, list(pads), value), want)


def test_pad_value_cast_zero_size_and_scalar():
    check(_C.pad(fg(np.array([1, 2])), [1, 1], 2.7), F.pad(torch.tensor([1, 2]), (1, 1), value=2.7))
    check(_C.pad(fg(np.array([True, False])), [1, 1], 2.0), F.pad(torch.tensor([True, False]), (1, 1), value=2.0))
    check(_C.pad(fg(np.zeros((0, 2), np.float32)), [1, 1], 0.0), F.pad(torch.zeros(0, 2), (1, 1)))
    check(_C.pad(fg(np.zeros((0, 2), np.float32)), [0, 0, 2, 1], 3.0), F.pad(torch.zeros(0, 2), (0, 0, 2, 1), value=3.0))
    check(_C.pad(fg(np.array(5.0)), [], 0.0), np.array(5.0))
    check(_C.pad(fg(np.arange(3.0)), [-3, 0], 0.0), np.zeros(0))
    x = _C.expand(fg(np.arange(3.0)), [4, 3])
    check(_C.pad(x, [1, 0, 0, 1], -1.0),
          F.pad(torch.arange(3.0, dtype=torch.float64).expand(4, 3), (1, 0, 0, 1), value=-1.0))


def test_pad_errors():
    x = fg(np.arange(3.0))
    with pytest.raises(ValueError, match="pad.*divisible by 2"):
        _C.pad(x, [1], 0.0)
    with pytest.raises(ValueError, match="pad.*padding length 4"):
        _C.pad(x, [1, 1, 1, 1], 0.0)
    with pytest.raises(ValueError, match=r"pad.*\(-5, 4\).*size 3"):
        _C.pad(x, [-5, 4], 0.0)
    with pytest.raises(ValueError, match="pad.*1e\\+20|pad.*100000000000000000000.*int32"):
        _C.pad(fg(np.zeros(3, np.int32)), [1, 1], 1e20)
    with pytest.raises(ValueError, match="pad.*int64"):
        _C.pad(fg(np.zeros(3, np.int64)), [1, 1], float("nan"))


# ---- repeat ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reps", [(1, 1), (2, 3), (3, 1, 2), (0, 2), (2, 1, 1, 3)])
def test_repeat(dtype, reps):
    x = rand((3, 4), dtype)
    want = T(x).repeat(*reps)
    for name, a in layouts(x):
        check(_C.repeat(a, list(reps)), want)


def test_repeat_scalar_broadcast_and_errors():
    check(_C.repeat(fg(np.array(3.0)), []), np.array(3.0))
    check(_C.repeat(fg(np.array(3.0)), [2, 2]), np.full((2, 2), 3.0))
    x = _C.expand(fg(np.array([[1], [2]], np.int32)), [2, 3])
    check(_C.repeat(x, [2, 2]), torch.tensor([[1], [2]], dtype=torch.int32).expand(2, 3).repeat(2, 2))
    with pytest.raises(ValueError, match=r"repeat.*\(1\).*\[2, 3\]"):
        _C.repeat(fg(np.zeros((2, 3))), [2])
    with pytest.raises(ValueError, match=r"repeat.*non-negative.*\[2, -1\]"):
        _C.repeat(fg(np.zeros((2, 3))), [2, -1])


# ---- tril / triu ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3), (2, 3, 4, 5), (1, 1), (0, 3), (2, 0, 3)])
def test_tril_triu(dtype, shape):
    x = rand(shape, dtype)
    for k in (-6, -2, -1, 0, 1, 3, 7, 2**62, -2**62):
        for name, a in layouts(x):
            check(_C.tril(a, k), torch.tril(T(x), k))
            check(_C.triu(a, k), torch.triu(T(x), k))


def test_tril_large_parallel_and_errors():
    x = rand((3, 300, 200), np.float32)
    a = _C.transpose(fg(np.swapaxes(x, 1, 2).copy()), 1, 2)
    check(_C.tril(a, 5), np.tril(x, 5))
    check(_C.triu(a, -5), np.triu(x, -5))
    with pytest.raises(ValueError, match=r"tril.*at least 2 dimensions.*\[3\]"):
        _C.tril(fg(np.zeros(3)), 0)
    with pytest.raises(ValueError, match="triu.*at least 2 dimensions"):
        _C.triu(fg(np.zeros(())), 0)


# ---- gather / scatter_add ---------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_gather(dtype, dim):
    x = rand((4, 5, 6), dtype)
    ishape = [3, 4, 5]
    ishape[dim] = 7  # longer than x along dim is fine, shorter elsewhere too
    idx = RNG.integers(0, x.shape[dim], size=ishape)
    want = torch.gather(T(x), dim, T(idx))
    for (_, a), (_, i) in zip(layouts(x), layouts(idx)[::-1]):
        check(_C.gather(a, dim, i), want)


def test_gather_edge_cases():
    check(_C.gather(fg(np.array(5.0)), 0, fg(np.array(0))), np.array(5.0))
    check(_C.gather(fg(np.array(5.0)), 0, fg(np.array([0, 0]))), np.array([5.0, 5.0]))
    check(_C.gather(fg(np.arange(5)), 0, fg(np.zeros((0, 3), np.int64))), np.zeros((0, 3), np.int64))
    x = rand((3, 4), np.float64)
    idx = np.array([[0, 0, 2, 2], [1, 1, 1, 1]])
    check(_C.gather(_C.expand(fg(x[:1]), [3, 4]), 0, fg(idx)), torch.gather(T(x[:1]).expand(3, 4), 0, T(idx)))
    # a big one, to run across the pool
    x = rand((300, 500), np.float32)
    idx = RNG.integers(0, 500, size=(300, 700))
    check(_C.gather(fg(x), 1, fg(idx)), np.take_along_axis(x, idx, 1))


def test_gather_errors():
    x = fg(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="gather.*int64.*int32"):
        _C.gather(x, 1, fg(np.zeros((3, 4), np.int32)))
    with pytest.raises(IndexError, match="gather: index 7 is out of bounds for dimension 1 with size 4"):
        _C.gather(x, 1, fg(np.array([[0, 7, 9], [0, 1, 2]])))
    with pytest.raises(IndexError, match="gather: index -1 is out of bounds for dimension 0 with size 3"):
        _C.gather(x, 0, fg(np.array([[0, -1]])))
    with pytest.raises(ValueError, match=r"gather.*same number of dimensions.*\[2\].*\[3, 4\]"):
        _C.gather(x, 0, fg(np.array([0, 1])))
    with pytest.raises(ValueError, match=r"gather.*dimension 1.*\[2, 5\].*\[3, 4\]"):
        _C.gather(x, 0, fg(np.zeros((2, 5), np.int64)))
    with pytest.raises(IndexError, match="gather.*dim 2"):
        _C.gather(x, 2, fg(np.zeros((2, 2), np.int64)))
    # the first bad value in row-major order is reported, whatever the threads did
    idx = np.zeros((200, 400), np.int64)
    idx[150, 7] = 411
    idx[199, 399] = 412
    with pytest.raises(IndexError, match="index 411 is out of bounds for dimension 1 with size 400"):
        _C.gather(fg(np.zeros((200, 400))), 1, fg(idx))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_add(dtype, dim):
    x = rand((4, 5, 6), dtype)
    ishape = [3, 4, 5]
    ishape[dim] = 9  # more entries than the dim: duplicates guaranteed
    idx = RNG.integers(0, x.shape[dim], size=ishape)
    src = rand([s + 1 for s in ishape], dtype)  # src may be larger than index
    want = T(x).scatter_add(dim, T(idx), T(src))
    for (_, a), (_, i), (_, s) in zip(layouts(x), layouts(idx), layouts(src)[::-1]):
        check(_C.scatter_add(a, dim, i, s), want, exact=False)


def test_scatter_add_edge_cases_and_determinism():
    check(_C.scatter_add(fg(np.array(1.0)), 0, fg(np.array(0)), fg(np.array(2.0))), np.array(3.0))
    x = fg(np.ones(3))
    check(_C.scatter_add(x, 0, fg(np.zeros((0,), np.int64)), fg(np.ones(2))), np.ones(3))
    # input untouched (out-of-place)
    base = np.zeros(3)
    _C.scatter_add(fg(base), 0, fg(np.array([1, 1])), fg(np.ones(2)))
    assert not base.any()
    # many float32 duplicates: the sum order is fixed, so any thread count gives the same bits
    for dim, shape in ((0, (20000, 16)), (1, (16, 20000)), (0, (100000,))):
        idx = RNG.integers(0, 7, size=shape)
        src = rand(shape, np.float32)
        out_shape = list(shape)
        out_shape[dim] = 7
        outs = []
        for n in (1, 2, 5):
            with threads(n):
                outs.append(np_(_C.scatter_add(fg(np.zeros(out_shape, np.float32)), dim, fg(idx), fg(src))))
        assert all(np.array_equal(outs[0], o) for o in outs)
        ref = np.zeros(out_shape, np.float64)
        np.add.at(ref, tuple(idx if d == dim else np.indices(shape)[d] for d in range(len(shape))), src)
        np.testing.assert_allclose(outs[0], ref, rtol=1e-3, atol=1e-3)


def test_scatter_add_errors():
    x = fg(np.zeros(3))
    with pytest.raises(TypeError, match="scatter_add.*int64"):
        _C.scatter_add(x, 0, fg(np.array([1], np.int32)), fg(np.ones(1)))
    with pytest.raises(TypeError, match="scatter_add.*float64.*float32"):
        _C.scatter_add(x, 0, fg(np.array([1])), fg(np.ones(1, np.float32)))
    with pytest.raises(IndexError, match="scatter_add: index -1 is out of bounds for dimension 0 with size 3"):
        _C.scatter_add(x, 0, fg(np.array([0, -1])), fg(np.ones(2)))
    with pytest.raises(IndexError, match="scatter_add: index 3 is out of bounds"):
        _C.scatter_add(x, 0, fg(np.array([3])), fg(np.ones(2)))
    with pytest.raises(ValueError, match=r"scatter_add.*\[2\].*\[1\]"):
        _C.scatter_add(x, 0, fg(np.array([1, 2])), fg(np.ones(1)))
    with pytest.raises(ValueError, match="scatter_add.*same number of dimensions"):
        _C.scatter_add(x, 0, fg(np.array([[1]])), fg(np.ones((1, 1))))


# ---- index_select / index_add ----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("dim", [0, 1, 2, -2])
@pytest.mark.parametrize("itype", [np.int64, np.int32])
def test_index_select(dtype, dim, itype):
    x = rand((4, 5, 6), dtype)
    idx = RNG.integers(0, x.shape[dim], size=8).astype(itype)  # duplicates
    want = torch.index_select(T(x), dim, T(idx))
    for (_, a), (_, i) in zip(layouts(x), layouts(idx)):
        check(_C.index_select(a, dim, i), want)


def test_index_select_edge_cases():
    check(_C.index_select(fg(np.array(5.0)), 0, fg(np.array([0]))), np.array(5.0))
    check(_C.index_select(fg(np.arange(5)), 0, fg(np.array(2))), np.array([2]))
    check(_C.index_select(fg(np.arange(5)), 0, fg(np.zeros(0, np.int64))), np.zeros(0, np.int64))
    check(_C.index_select(fg(np.zeros((0, 3))), 1, fg(np.array([2, 0]))), np.zeros((0, 2)))
    emb = rand((1000, 64), np.float32)  # an embedding lookup, large enough to split
    idx = RNG.integers(0, 1000, size=(5000,))
    check(_C.index_select(fg(emb), 0, fg(idx)), emb[idx])


def test_index_select_errors():
    x = fg(np.arange(5))
    with pytest.raises(IndexError, match="index_select: index -1 is out of bounds for dimension 0 with size 5"):
        _C.index_select(x, 0, fg(np.array([0, -1])))
    with pytest.raises(IndexError, match="index_select: index 5 is out of bounds"):
        _C.index_select(x, 0, fg(np.array([5])))
    with pytest.raises(TypeError, match="index_select.*float32"):
        _C.index_select(x, 0, fg(np.array([1.0], np.float32)))
    with pytest.raises(IndexError, match=r"index_select.*\[1, 1\]"):
        _C.index_select(x, 0, fg(np.array([[1]])))
    with pytest.raises(IndexError, match="index_select.*only 1 value, got 2"):
        _C.index_select(fg(np.array(5.0)), 0, fg(np.array([0, 0])))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("itype", [np.int64, np.int32])
def test_index_add(dtype, dim, itype):
    x = rand((4, 5, 6), dtype)
    idx = RNG.integers(0, x.shape[dim], size=9).astype(itype)
    sshape = list(x.shape)
    sshape[dim] = 9
    src = rand(sshape, dtype)
    want = T(x).index_add(dim, T(idx), T(src))
    for (_, a), (_, i), (_, s) in zip(layouts(x), layouts(idx)[::-1], layouts(src)):
        check(_C.index_add(a, dim, i, s), want, exact=False)


def test_index_add_edge_cases_and_determinism():
    check(_C.index_add(fg(np.array(3.0)), 0, fg(np.array([0])), fg(np.array(1.0))), np.array(4.0))
    check(_C.index_add(fg(np.array(3.0)), 0, fg(np.array(0)), fg(np.array(1.0))), np.array(4.0))
    check(_C.index_add(fg(np.zeros(3)), 0, fg(np.zeros(0, np.int64)), fg(np.zeros(0))), np.zeros(3))
    base = np.zeros(3)
    _C.index_add(fg(base), 0, fg(np.array([1, 1])), fg(np.ones(2)))
    assert not base.any()
    # embedding backward: many rows into few, then all rows into one
    for nrows in (50, 1):
        idx = RNG.integers(0, nrows, size=30000)
        src = rand((30000, 33), np.float32)
        outs = []
        for n in (1, 3, 4):
            with threads(n):
                outs.append(np_(_C.index_add(fg(np.zeros((nrows, 33), np.float32)), 0, fg(idx), fg(src))))
        assert all(np.array_equal(outs[0], o) for o in outs)
        ref = np.zeros((nrows, 33))
        np.add.at(ref, idx, src.astype(np.float64))
        np.testing.assert_allclose(outs[0], ref, rtol=1e-3, atol=1e-2)


def test_index_add_errors():
    x = fg(np.zeros(3))
    with pytest.raises(IndexError, match="index_add: index -1 is out of bounds for dimension 0 with size 3"):
        _C.index_add(x, 0, fg(np.array([-1])), fg(np.ones(1)))
    with pytest.raises(IndexError, match="index_add: index 3 is out of bounds"):
        _C.index_add(x, 0, fg(np.array([0, 3])), fg(np.ones(2)))
    with pytest.raises(TypeError, match="index_add.*float64.*float32"):
        _C.index_add(x, 0, fg(np.array([1])), fg(np.ones(1, np.float32)))
    with pytest.raises(TypeError, match="index_add.*bool"):
        _C.index_add(x, 0, fg(np.array([True])), fg(np.ones(1)))
    with pytest.raises(ValueError, match=r"index_add.*\[3\].*\[3\].*2 indices"):
        _C.index_add(x, 0, fg(np.array([1, 1])), fg(np.ones(3)))


# ---- masks ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mshape", [(3, 4), (4,), (3, 1), (), (2, 3, 4)])
def test_masked_fill(dtype, mshape):
    x = rand((3, 4), dtype)
    m = rand(mshape, np.bool_)
    value = 1.0 if dtype == np.bool_ else -3.0
    want = T(x).masked_fill(T(m), value)
    for (_, a), (_, mm) in zip(layouts(x), layouts(m) * 4):
        check(_C.masked_fill(a, mm, value), want)


def test_masked_fill_cast_zero_size_and_errors():
    check(_C.masked_fill(fg(np.zeros(3, np.int32)), fg(np.ones(3, bool)), 2.7),
          torch.zeros(3, dtype=torch.int32).masked_fill(torch.ones(3, dtype=torch.bool), 2.7))
    check(_C.masked_fill(fg(np.zeros((0, 3))), fg(np.ones(3, bool)), 1.0), np.zeros((0, 3)))
    with pytest.raises(TypeError, match="masked_fill.*bool mask.*float64"):
        _C.masked_fill(fg(np.zeros(3)), fg(np.ones(3)), 1.0)
    with pytest.raises(ValueError, match=r"masked_fill.*\[3\].*\[4\]"):
        _C.masked_fill(fg(np.zeros(3)), fg(np.ones(4, bool)), 1.0)
    with pytest.raises(ValueError, match="masked_fill.*int32"):
        _C.masked_fill(fg(np.zeros(3, np.int32)), fg(np.ones(3, bool)), 1e20)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_masked_select_and_nonzero(dtype):
    for shape in [(5,), (3, 4), (2, 3, 4), (), (0, 3), (1,)]:
        x = rand(shape, dtype)
        if dtype != np.bool_:
            x[rand(shape, np.bool_)] = 0
        m = rand(shape, np.bool_)
        for (_, a), (_, mm) in zip(layouts(x), layouts(m)[::-1]):
            check(_C.masked_select(a, mm), x[m])
            check(_C.nonzero(a), torch.nonzero(T(x)))
    # broadcasting both ways
    x = rand((3, 1), dtype)
    m = rand((2, 1, 4), np.bool_)
    check(_C.masked_select(fg(x), fg(m)), torch.masked_select(T(x), T(m)))


def test_masked_select_nonzero_many_blocks():
    x = rand((700, 300), np.float32)
    x[RNG.random(x.shape) < 0.7] = 0
    a = _C.transpose(fg(x.T.copy()), 0, 1)
    check(_C.nonzero(a), np.argwhere(x))
    check(_C.masked_select(a, fg(x > 0)), x[x > 0])
    check(_C.nonzero(fg(np.zeros(200000))), np.zeros((0, 1), np.int64))


def test_masked_select_errors():
    with pytest.raises(TypeError, match="masked_select.*int64"):
        _C.masked_select(fg(np.zeros(3)), fg(np.ones(3, np.int64)))
    with pytest.raises(ValueError, match="masked_select"):
        _C.masked_select(fg(np.zeros(3)), fg(np.ones(2, bool)))


# ---- one_hot --------------------------------------------------------------------

def test_one_hot():
    for shape in [(5,), (2, 3), (), (0,)]:
        idx = RNG.integers(0, 4, size=shape)
        for (_, i) in layouts(idx):
            check(_C.one_hot(i, 6), F.one_hot(T(idx), 6))
            if idx.size:
                check(_C.one_hot(i, -1), F.one_hot(T(idx), -1))
    idx = RNG.integers(0, 1000, size=(300, 7))
    check(_C.one_hot(fg(idx), 1000), F.one_hot(T(idx), 1000))


def test_one_hot_errors():
    with pytest.raises(IndexError, match="one_hot.*non-negative.*-1"):
        _C.one_hot(fg(np.array([0, -1])), 3)
    with pytest.raises(IndexError, match="one_hot.*class value 3.*num_classes=3"):
        _C.one_hot(fg(np.array([0, 3])), 3)
    with pytest.raises(TypeError, match="one_hot.*int64.*int32"):
        _C.one_hot(fg(np.array([0], np.int32)), 3)
    with pytest.raises(ValueError, match="one_hot.*empty"):
        _C.one_hot(fg(np.zeros(0, np.int64)), -1)
    with pytest.raises(ValueError, match="one_hot.*-2"):
        _C.one_hot(fg(np.array([0])), -2)


# ---- advanced indexing: index_gather -------------------------------------------

def np_key(indices, ndim):
    return tuple(slice(None) if i is None else i for i in indices) + (slice(None),) * (ndim - len(indices))


GATHER_KEYS = [
    lambda s: [RNG.integers(-s[0], s[0], size=5)],                                   # one index, negatives
    lambda s: [None, RNG.integers(0, s[1], size=(2, 3))],                            # middle dim, 2-d index
    lambda s: [RNG.integers(0, s[0], size=(4, 1)), RNG.integers(-s[1], s[1], size=3)],  # adjacent, broadcast
    lambda s: [RNG.integers(0, s[0], size=3), None, RNG.integers(0, s[2], size=3)],  # non-adjacent: dims first
    lambda s: [None, RNG.integers(0, s[1], size=()), RNG.integers(0, s[2], size=2)],  # 0-d index
    lambda s: [np.array([1, 1, 1, 0]), None, None, np.array([2])],                   # duplicates, last dim
    lambda s: [RNG.integers(0, s[0], size=(2, 2)), RNG.integers(0, s[1], size=(2, 2)),
               RNG.integers(0, s[2], size=(2, 2)), RNG.integers(0, s[3], size=(2, 2))],  # every dim
    lambda s: [None, None, RNG.integers(0, s[2], size=0)],                           # empty index
    lambda s: [None, RNG.random(s[1]) < 0.5],                                        # 1-d bool mask
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("k", range(len(GATHER_KEYS)))
def test_index_gather(dtype, k):
    x = rand((3, 4, 5, 6), dtype)
    key = GATHER_KEYS[k](x.shape)
    want = x[np_key(key, x.ndim)]
    for name, a in layouts(x):
        for iname, fi in (("contiguous", [None if i is None else fg(np.asarray(i)) for i in key]),
                          ("strided", [None if i is None else layouts(np.asarray(i))[-1][1] for i in key])):
            check(_C.index_gather(a, fi), want)


def test_index_gather_edge_cases():
    x = rand((3, 4), np.float32)
    check(_C.index_gather(fg(x), [None]), x)
    check(_C.index_gather(fg(x), []), x)
    check(_C.index_gather(fg(x), [fg(np.array([0, 2], np.int32))]), x[[0, 2]])
    check(_C.index_gather(fg(np.zeros((0, 3))), [None, fg(np.array([2, -3]))]), np.zeros((0, 2)))
    check(_C.index_gather(_C.expand(fg(x[:1]), [5, 4]), [fg(np.array([4, 0])), fg(np.array([3]))]),
          np.broadcast_to(x[:1], (5, 4))[[4, 0], [3]])
    big = rand((2000, 128), np.float32)
    idx = RNG.integers(-2000, 2000, size=(64, 80))
    check(_C.index_gather(fg(big), [fg(idx)]), big[idx])
    check(_C.index_gather(_C.transpose(fg(big.T.copy()), 0, 1), [None, fg(idx % 128)]), big[:, idx % 128])


def test_index_gather_errors():
    x = fg(np.arange(12.0).reshape(3, 4))
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        _C.index_gather(x, [fg(np.array([0, 5]))])
    with pytest.raises(IndexError, match="index -5 is out of bounds for dimension 1 with size 4"):
        _C.index_gather(x, [None, fg(np.array([1, -5, 9]))])
    with pytest.raises(IndexError, match="index_gather.*too many indices.*dimension 2"):
        _C.index_gather(x, [None, None, fg(np.array([0]))])
    with pytest.raises(IndexError, match=r"index_gather.*shape mismatch.*\[2\], \[3\]"):
        _C.index_gather(x, [fg(np.array([0, 1])), fg(np.array([0, 1, 2]))])
    with pytest.raises(TypeError, match="index_gather.*float64"):
        _C.index_gather(x, [fg(np.array([0.0]))])
    with pytest.raises(IndexError, match=r"index_gather.*mask \[4\] at index 0"):
        _C.index_gather(x, [fg(np.ones(4, bool))])
    with pytest.raises(IndexError, match="index 0 is out of bounds for dimension 0 with size 0"):
        _C.index_gather(fg(np.zeros((0, 3))), [fg(np.array([0]))])


# ---- advanced indexing: index_put ---------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("k", range(len(GATHER_KEYS)))
@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put(dtype, k, accumulate):
    x = rand((3, 4, 5, 6), dtype)
    key = GATHER_KEYS[k](x.shape)
    npk = np_key(key, x.ndim)
    rshape = x[npk].shape
    values = rand(rshape, dtype)
    want = x.copy()
    if accumulate:
        if dtype == np.bool_:
            want = T(x).index_put_(tuple(T(np.asarray(i)) if i is not None else None for i in key), T(values),
                                   accumulate=True).numpy() if all(i is not None for i in key) else None
            if want is None:
                acc = x.astype(np.int64)
                np.add.at(acc, npk, values.astype(np.int64))
                want = acc != 0
        else:
            np.add.at(want, npk, values)
    else:
        want[npk] = values  # NumPy: the last of duplicate indices wins; so does index_put
    for name, a0 in layouts(x):
        a = _C.copy(a0) if name == "contiguous" else a0
        before = a.version
        _C.index_put(a, [None if i is None else fg(np.asarray(i)) for i in key], fg(values), accumulate)
        assert a.version == before + 1
        check(a, want, exact=dtype != np.float32 or not accumulate)


def test_index_put_writes_through_views():
    base = np.zeros((4, 6))
    view = _C.slice(_C.transpose(fg(base), 0, 1), 0, 1, 6, 2)  # base.T[1::2], shape (3, 4)
    _C.index_put(view, [fg(np.array([0, 2])), fg(np.array([3]))], fg(np.array([1.0, 2.0])), False)
    want = np.zeros((4, 6))
    want.T[1::2][[0, 2], [3]] = [1.0, 2.0]
    np.testing.assert_array_equal(base, want)


def test_index_put_values_broadcast_cast_and_alias():
    x = np.arange(12.0).reshape(3, 4)
    a = fg(x.copy())
    _C.index_put(a, [fg(np.array([0, 2]))], fg(np.array(7, np.int64)), False)
    want = x.copy()
    want[[0, 2]] = 7
    check(a, want)
    _C.index_put(a, [fg(np.array([1]))], fg(np.ones((1, 1, 4))), False)  # extra leading 1s, as t[i] = v allows
    want[[1]] = 1
    check(a, want)
    # values read from the destination itself: read before anything is written
    a = fg(x.copy())
    _C.index_put(a, [fg(np.array([1, 0]))], _C.index_gather(a, [fg(np.array([0, 1]))]), False)
    a2 = fg(x.copy())
    _C.index_put(a2, [fg(np.array([1, 0]))], _C.slice(a2, 0, 0, 2, 1), False)
    want = x.copy()
    want[[1, 0]] = x[[0, 1]]
    check(a, want)
    check(a2, want)
    # no tensor index at all: a plain assignment / addition
    a = fg(x.copy())
    _C.index_put(a, [None], fg(np.array(1.0)), True)
    check(a, x + 1)


def test_index_put_accumulate_deterministic():
    for shape, key_shape in (((100, 40), (50000,)), ((5,), (200000,)), ((3, 20000), (7,))):
        idx = RNG.integers(-shape[0], shape[0], size=key_shape)
        values = rand(key_shape + shape[1:], np.float32)
        outs = []
        for n in (1, 2, 4):
            with threads(n):
                a = fg(np.zeros(shape, np.float32))
                _C.index_put(a, [fg(idx)], fg(values), True)
                outs.append(np_(a))
        assert all(np.array_equal(outs[0], o) for o in outs)
        ref = np.zeros(shape)
        np.add.at(ref, idx, values.astype(np.float64))
        np.testing.assert_allclose(outs[0], ref, rtol=1e-3, atol=1e-2)
        # without accumulate the last duplicate wins, for any thread count
        with threads(4):
            a = fg(np.zeros(shape, np.float32))
            _C.index_put(a, [fg(idx)], fg(values), False)
        want = np.zeros(shape, np.float32)
        want[idx] = values
        check(a, want)


def test_index_put_errors_leave_destination_unchanged():
    x = np.arange(12.0).reshape(3, 4)
    a = fg(x.copy())
    with pytest.raises(IndexError, match="index_put: index 3 is out of bounds for dimension 0 with size 3"):
        _C.index_put(a, [fg(np.array([0, 3]))], fg(np.array(9.0)), False)
    with pytest.raises(IndexError, match="index -5 is out of bounds for dimension 1 with size 4"):
        _C.index_put(a, [None, fg(np.array([-5]))], fg(np.array(9.0)), True)
    with pytest.raises(ValueError, match=r"index_put.*value tensor of shape \[3\].*\[2, 4\]"):
        _C.index_put(a, [fg(np.array([0, 1]))], fg(np.ones(3)), False)
    with pytest.raises(TypeError, match="index_put.*float32"):
        _C.index_put(a, [fg(np.array([0.0], np.float32))], fg(np.ones(4)), False)
    check(a, x)
    assert a.version == 0
    with pytest.raises(RuntimeError, match="index_put.*share memory"):
        _C.index_put(_C.expand(fg(np.zeros((1, 4))), [3, 4]), [fg(np.array([0]))], fg(np.array(1.0)), False)


# ---- property tests against NumPy -------------------------------------------------

NP_DT = st.sampled_from([np.bool_, np.int32, np.int64, np.float32, np.float64])
SHAPE = st.lists(st.integers(0, 4), min_size=1, max_size=4)


def hyp_layout(x, choice):
    ls = layouts(x)
    return ls[choice % len(ls)][1]


@settings(max_examples=250, deadline=None)
@given(shape=SHAPE, dt=st.lists(NP_DT, min_size=1, max_size=4), data=st.data())
def test_prop_cat(shape, dt, data):
    dim = data.draw(st.integers(0, len(shape) - 1))
    xs = []
    for d in dt:
        s = list(shape)
        s[dim] = data.draw(st.integers(0, 4))
        xs.append(rand(s, d))
    arrs = [hyp_layout(x, data.draw(st.integers(0, 3))) for x in xs]
    want = torch.cat([T(x) for x in xs], dim).numpy()
    check(_C.cat(arrs, dim - len(shape) * data.draw(st.integers(0, 1))), want)


@settings(max_examples=200, deadline=None)
@given(shape=SHAPE, n=st.integers(1, 4), dt=NP_DT, data=st.data())
def test_prop_stack(shape, n, dt, data):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [rand(shape, dt) for _ in range(n)]
    arrs = [hyp_layout(x, data.draw(st.integers(0, 3))) for x in xs]
    check(_C.stack(arrs, dim), np.stack(xs, dim))


@settings(max_examples=250, deadline=None)
@given(shape=SHAPE, dt=NP_DT, data=st.data())
def test_prop_pad(shape, dt, data):
    npads = data.draw(st.integers(0, len(shape)))
    pads = []
    for i in range(npads):
        size = shape[len(shape) - 1 - i]
        left = data.draw(st.integers(-size, 3))
        right = data.draw(st.integers(-(size + min(left, 0)), 3))
        pads += [left, right]
    x = rand(shape, dt)
    value = float(data.draw(st.integers(-3, 3)))
    want = F.pad(T(x), pads, value=value).numpy()
    check(_C.pad(hyp_layout(x, data.draw(st.integers(0, 3))), pads, value), want)


@settings(max_examples=300, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), dt=NP_DT, data=st.data())
def test_prop_index_gather(shape, dt, data):
    nidx = data.draw(st.integers(1, len(shape)))
    bshape = data.draw(st.lists(st.integers(0, 3), min_size=0, max_size=2))
    key = []
    for d in range(nidx):
        if shape[d] == 0 or data.draw(st.booleans()):
            key.append(None)
            continue
        # a shape that broadcasts to bshape: trailing dims, some set to 1
        k = data.draw(st.integers(0, len(bshape)))
        s = [1 if data.draw(st.booleans()) else b for b in bshape[len(bshape) - k:]]
        key.append(RNG.integers(-shape[d], shape[d], size=s))
    if all(k is None for k in key):
        key[0] = None if shape[0] == 0 else RNG.integers(-shape[0], shape[0], size=bshape)
    x = rand(shape, dt)
    want = x[np_key(key, x.ndim)]
    a = hyp_layout(x, data.draw(st.integers(0, 3)))
    fi = [None if k is None else hyp_layout(np.asarray(k), data.draw(st.integers(0, 3))) for k in key]
    check(_C.index_gather(a, fi), want)
    # index_put with accumulate reproduces np.add.at on the same key
    if dt not in (np.bool_, np.float32):
        v = rand(want.shape, dt)
        dst = fg(x.copy())
        _C.index_put(dst, fi, fg(v), True)
        ref = x.copy()
        np.add.at(ref, np_key(key, x.ndim), v)
        check(dst, ref, exact=dt != np.float64)
