"""CUDA random numbers and index ops against the CPU, bit for bit.

Random numbers: every sampler on "cuda" must give exactly the CPU's values
for the same generator state (one global Philox stream; the device kernels
use the CPU's element mapping and arithmetic) and leave the same state, so
mixed CPU/CUDA sequences match all-CPU ones. Index ops: the device kernels
must return the CPU's values, bitwise (accumulation in index order, no float
atomics), and the same values on every run. Skipped without a GPU.
"""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad import _C

pytestmark = pytest.mark.skipif(not fg.cuda.is_available(), reason="no CUDA device")

FLOATS = (fg.float32, fg.float64)
SIZES = (1, 7, 33, 1000, 1031, 4099)
F = fg.nn.functional


def bits(t):
    """The raw bytes of a tensor's values (tells -0.0 from 0.0, exact)."""
    a = np.ascontiguousarray(t.cpu().numpy() if isinstance(t, fg.Tensor) else t)
    return a.dtype, a.shape, a.view(np.uint8).tobytes()


def same(g, c):
    assert g.device.type == "cuda"
    gb, cb = bits(g), bits(c)
    assert gb[:2] == cb[:2]
    if gb[2] != cb[2]:
        gn, cn = g.cpu().numpy(), c.numpy()
        bad = np.flatnonzero((gn != cn).ravel())
        raise AssertionError(f"{bad.size} of {cn.size} differ, first at {bad[:5]}: "
                             f"cuda {gn.ravel()[bad[:5]]} cpu {cn.ravel()[bad[:5]]}")


def both(draw, seed=1234):
    """draw(device) on cuda and on cpu from the same state; also checks the
    state after the call is the same."""
    fg.manual_seed(seed)
    g = draw("cuda")
    sg = fg.get_rng_state()
    fg.manual_seed(seed)
    c = draw("cpu")
    assert sg == fg.get_rng_state()
    return g, c


def rng(seed):
    return np.random.default_rng(seed)


# ---- random numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", SIZES)
def test_factories_same_bits(dtype, n):
    draws = [
        lambda d: fg.rand(n, dtype=dtype, device=d),
        lambda d: fg.randn(n, dtype=dtype, device=d),
        lambda d: fg.normal(0.0, 1.0, (n,), dtype=dtype, device=d),
        lambda d: fg.normal(-1.5, 0.3, (n,), dtype=dtype, device=d),
        lambda d: fg.normal(2.0, 0.0, (n,), dtype=dtype, device=d),
        lambda d: fg.Tensor._wrap(_C.dropout_mask([n], 0.3, dtype._c, d)),
        lambda d: fg.Tensor._wrap(_C.dropout_mask([n], 1.0, dtype._c, d)),
        lambda d: fg.randint(-5, 17, (n,), dtype=dtype, device=d),
    ]
    for draw in draws:
        same(*both(draw))


@pytest.mark.parametrize("dtype", (fg.int64, fg.int32, fg.float32, fg.float64))
def test_randint_same_bits(dtype):
    ranges = [(0, 10), (-7, 3), (0, 1)]
    if dtype is fg.int64:
        ranges += [(-(2**62), 2**62), (-(2**63), 2**63 - 1)]
    for lo, hi in ranges:
        for n in (1, 7, 33, 1001):
            same(*both(lambda d: fg.randint(lo, hi, (n,), dtype=dtype, device=d)))


def test_multi_dim_shapes_and_empty():
    for shape in ((7, 33), (3, 1, 5), (0, 4), ()):
        same(*both(lambda d: fg.randn(*shape, device=d) if shape else fg.randn((), device=d)))
        same(*both(lambda d: fg.rand(shape, dtype=fg.float64, device=d)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_inplace_same_bits(dtype):
    for n in (1, 7, 33, 1031):
        def uni(d):
            return fg.empty(n, dtype=dtype, device=d).uniform_(-2.0, 3.0)

        def nor(d):
            return fg.empty(n, dtype=dtype, device=d).normal_(0.5, 2.0)

        same(*both(uni))
        same(*both(nor))

    # non-contiguous: element i in row-major order of the view, as on the CPU
    def view_uni(d):
        base = fg.zeros(9, 13, dtype=dtype, device=d)
        base[:, ::2].T.uniform_(-1.0, 1.0)
        return base

    def view_nor(d):
        base = fg.zeros(9, 13, dtype=dtype, device=d)
        base.T[1:, :].normal_()
        return base

    same(*both(view_uni))
    same(*both(view_nor))


@pytest.mark.parametrize("dtype", FLOATS)
def test_bernoulli_same_bits(dtype):
    r = rng(3)
    for n in (1, 7, 33, 1031):
        p = r.random(n)
        p[::5] = 0.0
        p[1::7] = 1.0
        same(*both(lambda d: fg.bernoulli(fg.tensor(p, dtype=dtype, device=d))))
        same(*both(lambda d: fg.bernoulli(fg.tensor(p, dtype=dtype, device=d)[::2])))  # non-contiguous
        same(*both(lambda d: fg.bernoulli(fg.zeros(n, dtype=dtype, device=d), 0.25)))


def test_bernoulli_bad_p_raises_like_cpu_and_keeps_state():
    p = np.array([0.5, 1.5, -1.0])
    msgs = []
    for d in ("cuda", "cpu"):
        fg.manual_seed(9)
        with pytest.raises(ValueError, match="bernoulli") as e:
            fg.bernoulli(fg.tensor(p, device=d))
        msgs.append(str(e.value))
        assert fg.get_rng_state() == (9, 0)
    assert msgs[0] == msgs[1]


def test_randperm_same_permutation():
    for n in (0, 1, 7, 33, 1000):
        same(*both(lambda d: fg.randperm(n, device=d)))
        same(*both(lambda d: fg.randperm(n, dtype=fg.int32, device=d)))


def test_mixed_device_sequence_equals_all_cpu():
    def seq(devs):
        fg.manual_seed(77)
        out = []
        for k, d in enumerate(devs):
            out.append(fg.rand(5 + k, device=d))
            out.append(fg.randn(3 + 2 * k, dtype=fg.float64, device=d))
            out.append(fg.randint(0, 100, (k + 1,), device=d))
            out.append(fg.empty(4 + k, device=d).normal_())
            out.append(fg.bernoulli(fg.full((k + 2,), 0.5, device=d)))
        return [t.cpu() for t in out], fg.get_rng_state()

    cpu, s_cpu = seq(["cpu"] * 6)
    mixed, s_mixed = seq(["cuda", "cpu", "cpu", "cuda", "cuda", "cpu"])
    assert s_cpu == s_mixed
    for a, b in zip(mixed, cpu):
        assert bits(a) == bits(b)


@pytest.mark.parametrize("dtype", FLOATS)
def test_multinomial_same_samples(dtype):
    # (also in test_multinomial.py; here so that the GPU check runs it)
    r = rng(14)
    for shape, n, repl in (((7,), 3, False), ((7,), 1000, True), ((33, 9), 9, False), ((33, 9), 17, True),
                           ((2, 1031), 100, False), ((1,), 1, True), ((4, 6), 6, False)):
        w = r.random(shape) * (r.random(shape) > 0.2) + (np.arange(shape[-1]) == 0)
        same(*both(lambda d: fg.multinomial(fg.tensor(w, dtype=dtype, device=d), n, replacement=repl)))
        same(*both(lambda d: fg.multinomial(fg.tensor(w.T.copy(), dtype=dtype, device=d).T, n, replacement=repl)
                   if w.ndim == 2 else fg.multinomial(fg.tensor(w, dtype=dtype, device=d), n, replacement=repl)))


def test_multinomial_errors_like_cpu():
    for w, n in (([0.5, -0.1], 1), ([[1.0, 1.0], [0.0, 0.0]], 1), ([1.0, np.nan], 1), ([[1.0], [np.inf]], 1)):
        msgs = []
        for d in ("cuda", "cpu"):
            fg.manual_seed(4)
            with pytest.raises(ValueError, match="multinomial") as e:
                fg.multinomial(fg.tensor(w, device=d), n)
            msgs.append(str(e.value))
            assert fg.get_rng_state() == (4, 0)
        assert msgs[0] == msgs[1]


def test_dropout_on_device_matches_cpu():
    x = rng(4).standard_normal((33, 7))
    g, c = both(lambda d: F.dropout(fg.tensor(x, device=d), 0.4, training=True))
    same(g, c)


# ---- index ops ----------------------------------------------------------------------------------


def pair(a, dtype=None):
    c = fg.tensor(a) if dtype is None else fg.tensor(a, dtype=dtype)
    return c, c.cuda()


def twice_same(fn, *args):
    """fn on cuda twice: bitwise equal runs; returns the first."""
    a, b = fn(*args), fn(*args)
    assert bits(a) == bits(b)
    return a


@pytest.mark.parametrize("dtype", (fg.float32, fg.float64, fg.int64, fg.int32))
def test_scatter_add(dtype):
    r = rng(5)
    a = r.standard_normal((7, 9, 5)) * 10
    for dim in (0, 1, 2, -1, -3):
        ishape = [7, 9, 5]
        ishape[dim] = 13  # more entries than slots: duplicates
        ishape[(dim + 1) % 3] -= 2  # index smaller than self elsewhere
        idx = r.integers(0, a.shape[dim], ishape)
        src = r.standard_normal([s + 1 for s in ishape]) * 10
        (ac, ag), (ic, ig), (sc, sg) = pair(a, dtype), pair(idx), pair(src, dtype)
        got = twice_same(fg.scatter_add, ag, dim, ig, sg)
        same(got, fg.scatter_add(ac, dim, ic, sc))
        # non-contiguous self / index / src: the same values in transposed storage
        (acn, agn), (icn, ign), (scn, sgn) = (pair(np.ascontiguousarray(v.transpose(2, 1, 0)), dt)
                                              for v, dt in ((a, dtype), (idx, None), (src, dtype)))
        args = [(x.transpose(0, 2), dim, i.transpose(0, 2), y.transpose(0, 2)) for x, i, y in
                ((agn, ign, sgn), (acn, icn, scn))]
        assert not args[0][0].is_contiguous()
        same(fg.scatter_add(*args[0]), fg.scatter_add(*args[1]))
        same(fg.scatter_add(*args[0]), fg.scatter_add(ac, dim, ic, sc))


def test_scatter_add_long_1d_sums_in_index_order():
    r = rng(6)
    src = (r.standard_normal(20000) * 1e3).astype(np.float32)
    idx = r.integers(0, 11, 20000)
    (ac, ag), (ic, ig), (sc, sg) = pair(np.zeros(11, np.float32)), pair(idx), pair(src)
    same(twice_same(fg.scatter_add, ag, 0, ig, sg), fg.scatter_add(ac, 0, ic, sc))


@pytest.mark.parametrize("dim", (0, 1, -1))
def test_scatter_add_few_long_lines(dim):
    # a few lines of many entries (the sorted path on the device): any dim,
    # non-contiguous src, duplicates, int and float
    r = rng(16)
    shape = (500, 3) if dim == 0 else (3, 500)
    size = (9, 3) if dim == 0 else (3, 9)
    idx = r.integers(0, 9, shape)
    for dtype in (fg.float32, fg.float64, fg.int64):
        src = r.standard_normal(shape[::-1]) * 100
        (ac, ag), (ic, ig), (sc, sg) = pair(r.standard_normal(size), dtype), pair(idx), pair(src, dtype)
        same(twice_same(fg.scatter_add, ag, dim, ig, sg.T), fg.scatter_add(ac, dim, ic, sc.T))
    bad = idx.copy()
    bad.flat[400] = 9
    msgs = []
    for d in ("cuda", "cpu"):
        with pytest.raises(IndexError, match="scatter_add") as e:
            fg.scatter_add(fg.zeros(size, device=d), dim, fg.tensor(bad, device=d), fg.ones(shape, device=d))
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def test_scatter_add_bad_index():
    a, ag = pair(np.zeros((3, 4)))
    idx = np.array([[0, 1], [5, 0], [0, -1]])
    with pytest.raises(IndexError, match="scatter_add") as eg:
        fg.scatter_add(ag, 1, fg.tensor(idx, device="cuda"), fg.ones(3, 2, device="cuda", dtype=fg.float64))
    with pytest.raises(IndexError, match="scatter_add") as ec:
        fg.scatter_add(a, 1, fg.tensor(idx), fg.ones(3, 2, dtype=fg.float64))
    assert str(eg.value) == str(ec.value)


@pytest.mark.parametrize("dtype", (fg.float32, fg.float64, fg.int64))
def test_index_add(dtype):
    r = rng(7)
    a = r.standard_normal((6, 5, 4)) * 10
    for dim in (0, 1, 2, -1):
        n = 11
        idx = r.integers(0, a.shape[dim], n)  # duplicates
        sshape = list(a.shape)
        sshape[dim] = n
        src = r.standard_normal(sshape) * 10
        (ac, ag), (sc, sg) = pair(a, dtype), pair(src, dtype)
        for it in (fg.int64, fg.int32):
            ic, ig = pair(idx, it)
            same(twice_same(fg.index_add, ag, dim, ig, sg), fg.index_add(ac, dim, ic, sc))
    # non-contiguous self and source
    ac, ag = pair(r.standard_normal((5, 8)), dtype)
    sc, sg = pair(r.standard_normal((9, 5)), dtype)
    ic, ig = pair(r.integers(0, 8, 9))
    same(fg.index_add(ag, 1, ig, sg.T), fg.index_add(ac, 1, ic, sc.T))


def test_index_add_many_duplicates_bitwise():
    r = rng(8)
    src = (r.standard_normal((5000, 3)) * 1e3).astype(np.float32)
    idx = r.integers(0, 4, 5000)
    (ac, ag), (ic, ig), (sc, sg) = pair(np.zeros((4, 3), np.float32)), pair(idx), pair(src)
    same(twice_same(fg.index_add, ag, 0, ig, sg), fg.index_add(ac, 0, ic, sc))


def test_index_add_bad_index():
    ag = fg.zeros(4, 3, device="cuda")
    with pytest.raises(IndexError, match="index_add"):
        fg.index_add(ag, 0, fg.tensor([0, 4], device="cuda"), fg.ones(2, 3, device="cuda"))
    with pytest.raises(IndexError, match="index_add"):
        fg.index_add(ag, 0, fg.tensor([-1], device="cuda"), fg.ones(1, 3, device="cuda"))


@pytest.mark.parametrize("dtype", (fg.float32, fg.float64, fg.int64, fg.bool))
def test_masked_select_and_nonzero(dtype):
    r = rng(9)
    for shape in ((1,), (7,), (7, 33), (3, 5, 4), (1031,)):
        x = r.integers(-2, 3, shape)
        xc, xg = pair(x, dtype)
        same(fg.nonzero(xg), fg.nonzero(xc))
        same(fg.nonzero(xg.T if xg.ndim > 1 else xg[::2]), fg.nonzero(xc.T if xc.ndim > 1 else xc[::2]))
        mc, mg = pair(r.random(shape) < 0.4)
        same(fg.masked_select(xg, mg), fg.masked_select(xc, mc))
    # broadcast mask, non-contiguous input, empty results, 0-d
    xc, xg = pair(r.standard_normal((6, 5)), dtype)
    mc, mg = pair(r.random(5) < 0.5)
    same(fg.masked_select(xg.T.T, mg), fg.masked_select(xc.T.T, mc))
    same(fg.masked_select(xg, mg & False), fg.masked_select(xc, mc & False))
    same(fg.nonzero(fg.zeros(3, 4, device="cuda")), fg.nonzero(fg.zeros(3, 4)))
    same(fg.nonzero(fg.tensor(2.0, device="cuda")), fg.nonzero(fg.tensor(2.0)))
    same(fg.nonzero(fg.zeros(0, 3, device="cuda")), fg.nonzero(fg.zeros(0, 3)))


def test_one_hot():
    r = rng(10)
    for shape in ((1,), (7,), (5, 3)):
        ic, ig = pair(r.integers(0, 6, shape))
        same(F.one_hot(ig), F.one_hot(ic))
        same(F.one_hot(ig, 9), F.one_hot(ic, 9))
        same(F.one_hot(ig.T if ig.ndim > 1 else ig.flip(0), 7), F.one_hot(ic.T if ic.ndim > 1 else ic.flip(0), 7))
    for bad, nc in (([0, 6], 5), ([-1, 2], 4)):
        with pytest.raises(IndexError, match="one_hot") as eg:
            F.one_hot(fg.tensor(bad, device="cuda"), nc)
        with pytest.raises(IndexError, match="one_hot") as ec:
            F.one_hot(fg.tensor(bad), nc)
        assert str(eg.value) == str(ec.value)


@pytest.mark.parametrize("dtype", (fg.float32, fg.float64, fg.int64))
def test_advanced_index_read(dtype):
    r = rng(11)
    xc, xg = pair(r.standard_normal((7, 6, 5)) * 10, dtype)
    i1c, i1g = pair(r.integers(-7, 7, (4,)))  # negative indices wrap
    i2c, i2g = pair(r.integers(0, 6, (3, 4)))
    mc, mg = pair(r.random(6) < 0.5)
    for key in (lambda i1, i2, m: i1, lambda i1, i2, m: (slice(None), i2), lambda i1, i2, m: (i1, i2),
                lambda i1, i2, m: (i1, slice(1, 4), i2[0] % 5), lambda i1, i2, m: (slice(None), m),
                lambda i1, i2, m: (Ellipsis, i2 % 5), lambda i1, i2, m: [0, 3, 3, -1]):
        same(xg[key(i1g, i2g, mg)], xc[key(i1c, i2c, mc)])
        same(xg.transpose(0, 2)[key(i1g % 5, i2g % 5, mg)], xc.transpose(0, 2)[key(i1c % 5, i2c % 5, mc)])
    same(fg.index_select(fg.tensor(3.0, device="cuda"), 0, fg.tensor([0], device="cuda")),
         fg.index_select(fg.tensor(3.0), 0, fg.tensor([0])))
    with pytest.raises(IndexError, match="index"):
        xg[fg.tensor([0, 7], device="cuda")]
    with pytest.raises(IndexError, match="index"):
        xg[:, fg.tensor([-7], device="cuda")]


@pytest.mark.parametrize("dtype", (fg.float32, fg.float64, fg.int64))
def test_advanced_index_write(dtype):
    r = rng(12)
    x = r.standard_normal((7, 6, 5)) * 10
    idx = np.array([1, 4, 1, 6, -1, 4])  # duplicates; -1 wraps onto 6
    vals = r.standard_normal((6, 6, 5)) * 10
    vals2 = r.standard_normal((7, 6)) * 10  # transposed: values of shape (6, 7), non-contiguous
    for accumulate in (False, True):
        outs = []
        for d in ("cuda", "cpu"):
            t = fg.tensor(x, dtype=dtype, device=d)
            _C.index_put(t._data, [fg.tensor(idx, device=d)._data], fg.tensor(vals, dtype=dtype, device=d)._data,
                         accumulate)
            outs.append(t)
        same(*outs)
        # two index arrays, a slice dim between them (broadcast dims first), non-contiguous target
        outs = []
        for d in ("cuda", "cpu"):
            t = fg.tensor(x, dtype=dtype, device=d)
            v = t.transpose(0, 1)
            _C.index_put(v._data, [fg.tensor(idx % 6, device=d)._data, None, fg.tensor([0, 2, 0, 4, 4, 0], device=d)._data],
                         fg.tensor(vals2, dtype=dtype, device=d).T._data, accumulate)
            outs.append(t)
        same(*outs)
    # Python setitem: scalars, masks, broadcast values
    xc, xg = pair(x, dtype)
    xc[[0, 2, 2]] = 3
    xg[[0, 2, 2]] = 3
    xc[xc > 5] = -1
    xg[xg > 5] = -1
    xc[:, [1, 1, 3], 2] = fg.tensor([1, 2, 3], dtype=dtype)
    xg[:, [1, 1, 3], 2] = fg.tensor([1, 2, 3], dtype=dtype, device="cuda")
    same(xg, xc)
    with pytest.raises(IndexError, match="index_put"):
        _C.index_put(xg._data, [fg.tensor([9], device="cuda")._data], fg.tensor(1.0, device="cuda")._data, False)


def test_index_gather_backward_accumulates_like_cpu():
    r = rng(13)
    w = r.standard_normal((10, 4)).astype(np.float32)
    idx = r.integers(0, 10, 300)  # an embedding-style lookup with many repeats
    grads = []
    for d in ("cuda", "cpu"):
        t = fg.tensor(w, device=d, requires_grad=True)
        (t[fg.tensor(idx, device=d)] * fg.tensor(np.arange(1200.0, dtype=np.float32).reshape(300, 4), device=d)).sum().backward()
        grads.append(t.grad)
    same(*grads)
