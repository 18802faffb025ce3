"""Hypothesis property tests against NumPy: broadcasting of binary ops over
random broadcastable shapes, random chains of views, and reductions over
random dims with keepdim."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgrad as fg

pytestmark = pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")

SETTINGS = dict(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)

BINARY = {
    "add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.divide),
    "maximum": (fg.maximum, np.maximum), "minimum": (fg.minimum, np.minimum),
    "pow": (lambda a, b: a.abs() ** b, lambda a, b: np.abs(a) ** b), "atan2": (fg.atan2, np.arctan2),
    "lt": (lambda a, b: a < b, np.less), "eq": (lambda a, b: a == b, np.equal),
    "where": (lambda a, b: fg.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b)),
}



@st.composite
def broadcast_pair(draw, max_dims=4):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_dims, min_side=0,
                                                    max_side=4))
    a_shape, b_shape = shapes.input_shapes
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    a = rng.uniform(-3, 3, size=a_shape).round(1)  # rounding makes ties (== and maximum)
    b = rng.uniform(0.5, 3, size=b_shape) * rng.choice([-1, 1], size=b_shape)
    return a, b


@pytest.mark.parametrize("name", list(BINARY))
@settings(**{**SETTINGS, "max_examples": 40})
@given(pair=broadcast_pair(), dtype=st.sampled_from([np.float32, np.float64]))
def test_binary_broadcasting(name, pair, dtype):
    fg_fn, np_fn = BINARY[name]
    a, b = pair[0].astype(dtype), pair[1].astype(dtype)
    out = fg_fn(fg.tensor(a), fg.tensor(b))
    with np.errstate(all="ignore"):
        expect = np.asarray(np_fn(a, b))
    assert out.shape == expect.shape
    if expect.dtype != np.bool_:
        assert out.dtype is {np.dtype(np.float32): fg.float32, np.dtype(np.float64): fg.float64}[expect.dtype]
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@settings(**SETTINGS)
@given(pair=broadcast_pair(max_dims=3))
def test_broadcast_gradients_sum_back(pair):
    a, b = pair
    x = fg.tensor(a, requires_grad=True)
    y = fg.tensor(b, requires_grad=True)
    (x * y).sum().backward()
    full = np.broadcast_shapes(a.shape, b.shape)
    assert x.grad.shape == a.shape and y.grad.shape == b.shape
    gx = np.broadcast_to(b, full) * np.ones(full)
    gy = np.broadcast_to(a, full) * np.ones(full)

    def sum_to(g, shape):
        lead = g.ndim - len(shape)
        g = g.sum(axis=tuple(range(lead))) if lead else g
        return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)

    np.testing.assert_allclose(x.grad.numpy(), sum_to(gx, a.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), sum_to(gy, b.shape), rtol=1e-12, atol=1e-12)


# -- views ------------------------------------------------------------------------------------------


@st.composite
def view_chain(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    steps = []
    cur = list(shape)
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["transpose", "slice", "reshape", "expand", "permute", "unsqueeze", "flip",
                                     "index"]))
        nd = len(cur)
        if kind == "transpose" and nd >= 2:
            d0, d1 = draw(st.integers(0, nd - 1)), draw(st.integers(0, nd - 1))
            steps.append(("transpose", d0, d1))
            cur[d0], cur[d1] = cur[d1], cur[d0]
        elif kind == "permute" and nd >= 1:
            perm = draw(st.permutations(range(nd)))
            steps.append(("permute", tuple(perm)))
            cur = [cur[p] for p in perm]
        elif kind == "slice" and nd >= 1:
            d = draw(st.integers(0, nd - 1))
            start = draw(st.integers(0, cur[d] - 1)) if cur[d] else 0
            stop = draw(st.integers(start, cur[d]))
            step = draw(st.integers(1, 3))
            steps.append(("slice", d, start, stop, step))
            cur[d] = len(range(start, stop, step))
        elif kind == "reshape":
            n = int(np.prod(cur))
            divisors = [k for k in range(1, n + 1) if n % k == 0] or [1]
            k = draw(st.sampled_from(divisors))
            new = [k, n // k] if n else [0, 1]
            steps.append(("reshape", tuple(new)))
            cur = new
        elif kind == "expand" and nd >= 1:
            ones = [i for i, s in enumerate(cur) if s == 1]
            if ones:
                d = draw(st.sampled_from(ones))
                size = draw(st.integers(0, 3))
                new = list(cur)
                new[d] = size
                steps.append(("expand", tuple(new)))
                cur = new
        elif kind == "unsqueeze":
            d = draw(st.integers(0, nd))
            steps.append(("unsqueeze", d))
            cur.insert(d, 1)
        elif kind == "flip" and nd >= 1:
            d = draw(st.integers(0, nd - 1))
            steps.append(("flip", d))
        elif kind == "index" and nd >= 2 and cur[0] > 0:
            i = draw(st.integers(-cur[0], cur[0] - 1))
            steps.append(("index", i))
            cur = cur[1:]
    return shape, steps


def _apply(x, steps, lib):
    for s in steps:
        k = s[0]
        if k == "transpose":
            x = x.transpose(s[1], s[2]) if lib == "fg" else np.swapaxes(x, s[1], s[2])
        elif k == "permute":
            x = x.permute(*s[1]) if lib == "fg" else np.transpose(x, s[1])
        elif k == "slice":
            key = (slice(None),) * s[1] + (slice(s[2], s[3], s[4]),)
            x = x[key]
        elif k == "reshape":
            x = x.reshape(s[1])
        elif k == "expand":
            x = x.expand(*s[1]) if lib == "fg" else np.broadcast_to(x, s[1])
        elif k == "unsqueeze":
            x = x.unsqueeze(s[1]) if lib == "fg" else np.expand_dims(x, s[1])
        elif k == "flip":
            x = x.flip(s[1]) if lib == "fg" else np.flip(x, s[1])
        elif k == "index":
            x = x[s[1]]
    return x


@settings(**SETTINGS)
@given(chain=view_chain())
def test_view_chains(chain):
    shape, steps = chain
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    t = fg.tensor(a, requires_grad=True)
    v = _apply(t, steps, "fg")
    e = _apply(a, steps, "np")
    assert v.shape == e.shape
    np.testing.assert_array_equal(v.detach().numpy(), e)
    np.testing.assert_array_equal((v * 1).detach().numpy(), e)  # the kernels read the strided view
    # gradient of sum(view * w) is w scattered (summed) back through the chain
    w = np.random.default_rng(0).uniform(-1, 1, size=e.shape)
    (v * fg.tensor(w)).sum().backward()
    ref = np.zeros_like(a)
    idx = _apply(np.arange(a.size).reshape(shape), steps, "np")
    np.add.at(ref.reshape(-1), idx.reshape(-1), w.reshape(-1))
    np.testing.assert_allclose(t.grad.numpy(), ref, rtol=1e-12, atol=1e-12)


# -- reductions --------------------------------------------------------------------------------------

REDUCTIONS = {
    "sum": (lambda t, d, k: t.sum(dim=d, keepdim=k), lambda a, d, k: a.sum(axis=d, keepdims=k)),
    "mean": (lambda t, d, k: t.mean(dim=d, keepdim=k), lambda a, d, k: a.mean(axis=d, keepdims=k)),
    "amax": (lambda t, d, k: t.amax(dim=() if d is None else d, keepdim=k), lambda a, d, k: a.max(axis=d,
                                                                                                   keepdims=k)),
    "amin": (lambda t, d, k: t.amin(dim=() if d is None else d, keepdim=k), lambda a, d, k: a.min(axis=d,
                                                                                                   keepdims=k)),
    "var": (lambda t, d, k: t.var(dim=d, keepdim=k, unbiased=False), lambda a, d, k: a.var(axis=d, keepdims=k)),
    "std": (lambda t, d, k: t.std(dim=d, keepdim=k, correction=1), lambda a, d, k: a.std(axis=d, keepdims=k,
                                                                                         ddof=1)),
    "logsumexp": (lambda t, d, k: t.logsumexp(dim=d, keepdim=k),
                  lambda a, d, k: np.log(np.exp(a).sum(axis=d, keepdims=k))),
    "norm": (lambda t, d, k: t.norm(dim=d, keepdim=k), lambda a, d, k: np.sqrt((a * a).sum(axis=d, keepdims=k))),
    "prod": (lambda t, d, k: t.prod(dim=d if d is None else d[0], keepdim=k),
             lambda a, d, k: a.prod(axis=d, keepdims=k)),
    "all": (lambda t, d, k: (t > 0).all(dim=d, keepdim=k), lambda a, d, k: (a > 0).all(axis=d, keepdims=k)),
    "any": (lambda t, d, k: (t > 1).any(dim=d, keepdim=k), lambda a, d, k: (a > 1).any(axis=d, keepdims=k)),
    "argmax": (lambda t, d, k: t.argmax(dim=d if d is None else d[0], keepdim=k if d is not None else False),
               lambda a, d, k: np.argmax(a, axis=d if d is None else d[0], keepdims=k if d is not None else False)),
    "cumsum": (lambda t, d, k: t.cumsum(0 if d is None else d[0]), lambda a, d, k: np.cumsum(a, 0 if d is None
                                                                                           else d[0])),
}


@st.composite
def reduction_case(draw, single=False):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    nd = len(shape)
    if draw(st.booleans()) and not single:
        dims = None
    else:
        n = 1 if single else draw(st.integers(1, nd))
        dims = tuple(draw(st.permutations(range(nd)))[:n])
        dims = tuple(d - nd if draw(st.booleans()) else d for d in dims)  # negative dims too
    keep = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 32 - 1))
    a = np.random.default_rng(seed).uniform(-2, 2, size=shape)
    return a, dims, keep


@pytest.mark.parametrize("name", list(REDUCTIONS))
@settings(**{**SETTINGS, "max_examples": 30})
@given(data=st.data())
def test_reductions(name, data):
    single = name in ("prod", "argmax", "cumsum")
    a, dims, keep = data.draw(reduction_case(single=single))
    fg_fn, np_fn = REDUCTIONS[name]
    if name in ("var", "std") and a.size <= 1:
        return
    out = fg_fn(fg.tensor(a), dims, keep)
    with np.errstate(all="ignore"):
        expect = np.asarray(np_fn(a, dims, keep))
    assert out.shape == expect.shape, (out.shape, expect.shape)
    if expect.dtype == np.bool_ or expect.dtype.kind == "i":
        np.testing.assert_array_equal(out.numpy(), expect)
    else:
        np.testing.assert_allclose(out.numpy(), expect, rtol=1e-10, atol=1e-12)


@settings(**SETTINGS)
@given(data=st.data())
def test_reduction_gradients_vs_finite_structure(data):
    """d sum(x) = 1, d mean(x) = 1/n broadcast back with the input's shape, keepdim or not."""
    a, dims, keep = data.draw(reduction_case())
    x = fg.tensor(a, requires_grad=True)
    y = x.mean(dim=dims, keepdim=keep)
    g = np.random.default_rng(1).uniform(-1, 1, size=y.shape)
    y.backward(gradient=fg.tensor(g))
    n = a.size // max(y.numel(), 1)
    gk = g.reshape(a.mean(axis=dims, keepdims=True).shape) if dims is not None or not keep else g
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(gk, a.shape) / n, rtol=1e-12)
