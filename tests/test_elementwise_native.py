"""Native elementwise kernels (fastgrad._C), tested against PyTorch (CPU).

Every op goes through one parity helper: the same seeded NumPy inputs run
through _C and through torch; shape, dtype and values must agree, and where
torch refuses a dtype, _C must raise TypeError naming the op. Inputs cover all
dtypes, non-contiguous views (transposed, stepped slices, flipped, broadcast
stride 0), 0-d and zero-size arrays, sizes on both sides of the parallel grain,
and special values (nan, +-inf, -0.0, huge, tiny).
"""
import threading
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgrad import _C

DTYPES = [np.bool_, np.int32, np.int64, np.float32, np.float64]
DT_IDS = ["bool", "int32", "int64", "float32", "float64"]
FLOATS = [np.float32, np.float64]
INTS = [np.int32, np.int64]


# ---- helpers -----------------------------------------------------------------


def arr(x):
    """A _C array viewing (a private copy of) x; 0-d stays 0-d."""
    return _C.from_numpy(np.array(x, copy=True))


def npy(a):
    return np.array(_C.to_numpy(a), copy=True)


def tt(x):
    """A torch tensor holding x (contiguous copy, 0-d preserved)."""
    return torch.from_numpy(np.array(x, copy=True, order="C"))


def torch_multi(fn, *xs):
    """fn over several operands with tensor-tensor promotion for 0-d ones too.

    torch lets a 0-d tensor promote like a Python scalar (float32 vector *
    float64 0-d -> float32); fastgrad's _C promotes every array alike
    (promote(a, b)) and leaves scalar rules to the Python layer. So 0-d
    operands go to torch as shape (1,), and the result is reshaped back.
    """
    shape = np.broadcast_shapes(*[np.shape(x) for x in xs])
    r = fn(*[tt(x).reshape(1) if np.ndim(x) == 0 else tt(x) for x in xs])
    return r.reshape(shape)


def is_float(dt):
    return np.issubdtype(np.dtype(dt), np.floating)


def gen(rng, shape, dtype, low=-20, high=20, nonzero=False):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        x = rng.random(shape) < 0.5
        if nonzero:
            x = np.ones(shape, dtype=bool)
    elif np.issubdtype(dtype, np.integer):
        x = rng.integers(low, high, size=shape)
        if nonzero:
            x = np.where(x == 0, 1, x)
    else:
        x = rng.standard_normal(shape) * 3
    return np.asarray(x).astype(dtype)


def tols(dtype):
    return (1e-5, 1e-6) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)


def assert_matches(got, expect, rtol=None, atol=None, check_zero_sign=False):
    """got: a _C array; expect: a torch tensor or NumPy array."""
    # (zero-size arrays skipped: Array::is_contiguous() says False for shape
    # (0, 0) with the strides empty() gives it - an array.cpp quirk)
    assert got.numel() == 0 or got.is_contiguous(), "outputs are fresh contiguous arrays"
    g = npy(got)
    e = expect.numpy() if isinstance(expect, torch.Tensor) else np.asarray(expect)
    assert g.shape == e.shape, (g.shape, e.shape)
    assert g.dtype == e.dtype, (g.dtype, e.dtype)
    if is_float(g.dtype):
        r, a = tols(g.dtype)
        np.testing.assert_allclose(g, e, rtol=rtol or r, atol=atol or a, equal_nan=True)
        if check_zero_sign:
            zero = (g == 0) & (e == 0)
            np.testing.assert_array_equal(np.signbit(g[zero]), np.signbit(e[zero]))
    else:
        np.testing.assert_array_equal(g, e)


def layouts(rng, dtype, **kw):
    """(name, _C view, the same view in NumPy) for many memory layouts."""

    def g(shape):
        return gen(rng, shape, dtype, **kw)

    out = []
    b = g((5, 7))
    out.append(("contiguous", arr(b), b))
    b = g((7, 5))
    out.append(("transposed", _C.transpose(arr(b), 0, 1), b.T))
    b = g((10, 15))
    out.append(("stepped", _C.slice(_C.slice(arr(b), 0, 1, 10, 2), 1, 0, 15, 3), b[1:10:2, 0:15:3]))
    b = g((5, 7))
    out.append(("flipped", _C.flip(arr(b), [0, 1]), b[::-1, ::-1]))
    b = g((1, 7))
    out.append(("broadcast", _C.expand(arr(b), [5, 7]), np.broadcast_to(b, (5, 7))))
    b = g(())
    out.append(("0d", arr(b), b))
    b = g((0, 3))
    out.append(("empty", arr(b), b))
    for n in (1, 7, 33, 1000, 100003):
        b = g((n,))
        out.append((f"n{n}", arr(b), b))
    b = g((3, 70001))
    out.append(("big_stepped", _C.slice(arr(b), 1, 0, 70001, 2), b[:, ::2]))
    b = g((257, 300))
    out.append(("big_transposed", _C.transpose(arr(b), 0, 1), b.T))
    return out


LAYOUT_NAMES = [name for name, _, _ in layouts(np.random.default_rng(0), np.float32)]


# ---- unary -------------------------------------------------------------------

UNARY = {
    "neg": torch.neg,
    "abs": torch.abs,
    "sign": torch.sign,
    "exp": torch.exp,
    "log": torch.log,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "square": torch.square,
    "reciprocal": torch.reciprocal,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "silu": F.silu,
    "erf": torch.erf,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "round": torch.round,
    "trunc": torch.trunc,
    "isnan": torch.isnan,
    "isinf": torch.isinf,
    "isfinite": torch.isfinite,
    "logical_not": torch.logical_not,
    "bitwise_not": torch.bitwise_not,
}
# torch refuses integer inputs for these; fastgrad computes them in float32
# like the other float-valued math (exp, sigmoid, ...).
PROMOTE_INTS = {"gelu", "gelu_tanh", "silu"}


# torch's float32 exact GELU computes 1 + erf(x / sqrt 2), which cancels for
# x << 0 (1e-3 relative error near x = -3); fastgrad uses erfc there. Compare
# against torch in float64, rounded to float32.
FLOAT64_REFERENCE = {"gelu"}


def unary_reference(name, x):
    t = tt(x)
    if name in PROMOTE_INTS and not t.is_floating_point():
        t = t.float()
    if name in FLOAT64_REFERENCE and t.dtype == torch.float32:
        return UNARY[name](t.double()).float()
    return UNARY[name](t)


def check_unary_parity(name, a, x, **kw):
    try:
        expect = unary_reference(name, x)
    except (RuntimeError, NotImplementedError):
        with pytest.raises(TypeError, match=name):
            getattr(_C, name)(a)
        return
    assert_matches(getattr(_C, name)(a), expect, **kw)


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_unary_layouts(name, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{name}/{np.dtype(dtype).name}".encode()))
    for lname, a, x in layouts(rng, dtype):
        try:
            check_unary_parity(name, a, x)
        except AssertionError as e:
            raise AssertionError(f"{name} {np.dtype(dtype).name} layout={lname}: {e}") from None


SPECIAL32 = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-38, 3e38, -3e38, 88.8, -88.8, 0.5, 1.5,
             2.5, -0.5, -2.5, 1.0, -1.0, 3.14159, -10.0, 10.0, 1e6, -1e6]
SPECIAL64 = [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e-308, 1e308, -1e308, 710.0, -710.0, 0.5,
             1.5, 2.5, -0.5, -2.5, 1.0, -1.0, 3.14159, -40.0, 40.0, 1e15, -1e15]


def specials(dtype):
    return np.array(SPECIAL32 if np.dtype(dtype) == np.float32 else SPECIAL64, dtype=dtype)


@pytest.mark.parametrize("name", sorted(set(UNARY) - {"bitwise_not"}))
@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_unary_special_values(name, dtype):
    x = specials(dtype)
    check_unary_parity(name, arr(x), x, check_zero_sign=name not in {"sign"})


@pytest.mark.parametrize("dtype", INTS, ids=["int32", "int64"])
def test_unary_integer_extremes(dtype):
    info = np.iinfo(dtype)
    x = np.array([info.min, info.min + 1, -7, -1, 0, 1, 7, info.max], dtype=dtype)
    for name in ["neg", "abs", "sign", "square", "relu", "floor", "round", "bitwise_not", "isfinite", "logical_not"]:
        check_unary_parity(name, arr(x), x)


def test_unary_dtype_rules():
    f = _C.DType.float32
    for dt in (np.bool_, np.int32, np.int64):
        a = arr(np.array([1, 0, 1]).astype(dt))
        for name in ["exp", "sqrt", "sigmoid", "gelu", "gelu_tanh", "silu", "erf", "reciprocal", "tanh"]:
            assert getattr(_C, name)(a).dtype == f, (name, dt)
        for name in ["isnan", "isinf", "isfinite", "logical_not"]:
            assert getattr(_C, name)(a).dtype == _C.DType.bool
    a = arr(np.array([3, -4], dtype=np.int32))
    for name in ["floor", "ceil", "round", "trunc", "neg", "abs", "relu", "square", "sign"]:
        assert getattr(_C, name)(a).dtype == _C.DType.int32
    assert _C.square(arr(np.array([True, False]))).dtype == _C.DType.int64
    assert _C.sign(arr(np.array([True, False]))).dtype == _C.DType.bool


def test_unary_errors_name_the_op():
    b = arr(np.array([True, False]))
    with pytest.raises(TypeError, match="neg"):
        _C.neg(b)
    with pytest.raises(TypeError, match="relu"):
        _C.relu(b)
    with pytest.raises(TypeError, match="floor"):
        _C.floor(b)
    with pytest.raises(TypeError, match="bitwise_not"):
        _C.bitwise_not(arr(np.array([1.0])))


def test_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 1e16 + 2], dtype=np.float64)
    assert_matches(_C.round(arr(x)), torch.round(tt(x)), check_zero_sign=True)
    np.testing.assert_array_equal(npy(_C.round(arr(x))), np.round(x))


def test_sigmoid_silu_stable_for_large_magnitudes():
    for dt in FLOATS:
        x = np.array([-1e4, -1000, -800, 800, 1000, 1e4], dtype=dt)
        s = npy(_C.sigmoid(arr(x)))
        assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
        np.testing.assert_array_equal(s, [0, 0, 0, 1, 1, 1])
        si = npy(_C.silu(arr(x)))
        np.testing.assert_allclose(si, [0, 0, 0, 800, 1000, 1e4], rtol=1e-6, atol=1e-30)
        assert not np.any(np.isnan(npy(_C.gelu(arr(x)))))


def test_log1p_expm1_tiny_arguments():
    x = np.array([1e-10, -1e-12, 1e-300], dtype=np.float64)
    np.testing.assert_allclose(npy(_C.log1p(arr(x))), np.log1p(x), rtol=1e-15)
    np.testing.assert_allclose(npy(_C.expm1(arr(x))), np.expm1(x), rtol=1e-15)


# ---- parametrised unary ----------------------------------------------------------

PARAM_UNARY = [
    ("leaky_relu", (0.1,), lambda t: F.leaky_relu(t, 0.1)),
    ("leaky_relu", (0.0,), lambda t: F.leaky_relu(t, 0.0)),
    ("leaky_relu", (-0.2,), lambda t: F.leaky_relu(t, -0.2)),
    ("elu", (1.0,), lambda t: F.elu(t, 1.0)),
    ("elu", (0.5,), lambda t: F.elu(t, 0.5)),
    ("softplus", (1.0, 20.0), lambda t: F.softplus(t, 1.0, 20.0)),
    ("softplus", (2.0, 5.0), lambda t: F.softplus(t, 2.0, 5.0)),
    ("softplus", (0.5, 1.0), lambda t: F.softplus(t, 0.5, 1.0)),
]


@pytest.mark.parametrize("name,args,ref", PARAM_UNARY, ids=[f"{n}{a}" for n, a, _ in PARAM_UNARY])
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_parametrised_unary(name, args, ref, dtype):
    rng = np.random.default_rng(7)
    if not is_float(dtype):
        with pytest.raises(TypeError, match=name):
            getattr(_C, name)(arr(gen(rng, (3,), dtype)), *args)
        return
    for lname, a, x in layouts(rng, dtype) + [("special", arr(specials(dtype)), specials(dtype))]:
        try:
            assert_matches(getattr(_C, name)(a, *args), ref(tt(x)), check_zero_sign=True)
        except AssertionError as e:
            raise AssertionError(f"{name}{args} layout={lname}: {e}") from None


def test_softplus_threshold_is_on_beta_times_x():
    x = np.array([9.0, 11.0, 100.0, -100.0], dtype=np.float64)
    got = npy(_C.softplus(arr(x), 2.0, 20.0))
    assert got[1] == 11.0 and got[2] == 100.0  # 2 * 11 > 20: passes x through
    assert got[0] == pytest.approx(np.log1p(np.exp(18.0)) / 2, rel=1e-15)
    assert got[3] == pytest.approx(np.log1p(np.exp(-200.0)) / 2, rel=1e-12)


CLAMP_CASES = [(-1.0, 1.0), (None, 0.5), (0.25, None), (2.0, -2.0), (0.0, 0.0), (float("nan"), 1.0),
               (None, float("nan")), (-float("inf"), float("inf"))]


@pytest.mark.parametrize("lo,hi", CLAMP_CASES, ids=[str(c) for c in CLAMP_CASES])
@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_clamp_float(lo, hi, dtype):
    rng = np.random.default_rng(3)
    for lname, a, x in layouts(rng, dtype) + [("special", arr(specials(dtype)), specials(dtype))]:
        expect = torch.clamp(tt(x), min=lo, max=hi)
        try:
            assert_matches(_C.clamp(a, lo, hi), expect)
            assert_matches(_C.clamp(a, min=lo, max=hi), expect)
        except AssertionError as e:
            raise AssertionError(f"clamp({lo}, {hi}) layout={lname}: {e}") from None


@pytest.mark.parametrize("dtype", INTS, ids=["int32", "int64"])
def test_clamp_int_keeps_dtype(dtype):
    rng = np.random.default_rng(4)
    for lname, a, x in layouts(rng, dtype):
        for lo, hi in [(-3, 5), (None, 0), (2, None), (4, -4)]:
            expect = torch.clamp(tt(x), min=lo, max=hi)
            assert_matches(_C.clamp(a, None if lo is None else float(lo), None if hi is None else float(hi)), expect)
    info = np.iinfo(dtype)
    x = np.array([info.min, -1, 0, 1, info.max], dtype=dtype)
    # bounds beyond the dtype's range saturate
    assert_matches(_C.clamp(arr(x), -1e30, 1e30), x)
    assert_matches(_C.clamp(arr(x), None, 1e30), x)


def test_clamp_errors():
    a = arr(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="clamp"):
        _C.clamp(a, None, None)
    with pytest.raises(ValueError, match="clamp"):
        _C.clamp(arr(np.array([1, 2])), 1.5, None)
    with pytest.raises(ValueError, match="clamp"):
        _C.clamp(arr(np.array([1, 2])), float("nan"), None)
    with pytest.raises(TypeError, match="clamp"):
        _C.clamp(arr(np.array([True])), 0.0, 1.0)


POW_FLOAT_EXPONENTS = [0.0, 1.0, 2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 2.5, -1.3, 1 / 3, 4.0, 7, 2, -1, 0]


@pytest.mark.parametrize("e", POW_FLOAT_EXPONENTS, ids=[repr(e) for e in POW_FLOAT_EXPONENTS])
@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_pow_scalar_float(e, dtype):
    rng = np.random.default_rng(5)
    for lname, a, x in layouts(rng, dtype) + [("special", arr(specials(dtype)), specials(dtype))]:
        try:
            assert_matches(_C.pow_scalar(a, e), torch.pow(tt(x), e), rtol=2e-5 if dtype == np.float32 else None)
        except AssertionError as err:
            raise AssertionError(f"pow({e}) layout={lname}: {err}") from None


@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64], ids=["bool", "int32", "int64"])
def test_pow_scalar_integer_tensor(dtype):
    rng = np.random.default_rng(6)
    for lname, a, x in layouts(rng, dtype, low=-6, high=7):
        for e in [0, 1, 2, 3, 7, 40]:  # 40 overflows: wraps like torch
            assert_matches(_C.pow_scalar(a, e), torch.pow(tt(x), e))
        for e in [2.0, 0.5, -1.5]:  # a float exponent gives float32
            assert_matches(_C.pow_scalar(a, e), torch.pow(tt(x), e))
    with pytest.raises(RuntimeError, match="negative integer powers"):
        _C.pow_scalar(arr(np.array([1, 2], dtype=dtype)), -1)


# ---- binary --------------------------------------------------------------------

BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "floor_divide": torch.floor_divide,
    "remainder": torch.remainder,
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "atan2": torch.atan2,
    "eq": torch.eq,
    "ne": torch.ne,
    "lt": torch.lt,
    "le": torch.le,
    "gt": torch.gt,
    "ge": torch.ge,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
    "bitwise_and": torch.bitwise_and,
    "bitwise_or": torch.bitwise_or,
    "bitwise_xor": torch.bitwise_xor,
}
DIVISION = {"floor_divide", "remainder"}
NO_ZERO_SIGN = {"remainder", "maximum", "minimum", "floor_divide", "pow", "atan2"}


def binary_inputs(name, rng, shape_a, shape_b, da, db):
    if name == "pow":
        x = gen(rng, shape_a, da, low=-5, high=6)
        y = gen(rng, shape_b, db, low=0, high=6)
    else:
        x = gen(rng, shape_a, da)
        y = gen(rng, shape_b, db, nonzero=name in DIVISION)
    return x, y


def check_binary_parity(name, a, b, x, y, **kw):
    try:
        expect = torch_multi(BINARY[name], x, y)
    except (RuntimeError, NotImplementedError):
        with pytest.raises(TypeError, match=name):
            getattr(_C, name)(a, b)
        return
    assert_matches(getattr(_C, name)(a, b), expect, **kw)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("da", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("db", DTYPES, ids=DT_IDS)
def test_binary_dtype_pairs(name, da, db):
    """Every dtype pair, broadcasting (3, 4) with (4,) and with a 0-d array."""
    rng = np.random.default_rng(11)
    for sa, sb in [((3, 4), (4,)), ((3, 1), (1, 4)), ((), (5,)), ((2, 3), ())]:
        x, y = binary_inputs(name, rng, sa, sb, da, db)
        check_binary_parity(name, arr(x), arr(y), x, y)


def operand_kw(name):
    """gen() arguments for the second operand: non-zero divisors, small exponents."""
    if name == "pow":
        return dict(low=0, high=6)
    return dict(nonzero=name in DIVISION)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64], ids=["int32", "float32", "float64"])
def test_binary_layouts(name, dtype):
    """Both operands in every layout, the second in its own dtype or another (conversion path)."""
    rng = np.random.default_rng(12)
    other = np.int64 if dtype == np.int32 else np.float64 if dtype == np.float32 else np.int32
    la = layouts(rng, dtype, low=-5, high=6)
    for db in (dtype, other):
        lb = layouts(rng, db, **operand_kw(name))
        for (lname, a, x), (_, b, y) in zip(la, lb):
            try:
                check_binary_parity(name, a, b, x, y)  # the same layout on both sides
                if y.ndim:  # the second operand flipped instead
                    bf = _C.flip(arr(np.flip(y).copy()), list(range(y.ndim)))
                    check_binary_parity(name, a, bf, x, y)
            except AssertionError as e:
                raise AssertionError(f"{name} {np.dtype(dtype).name}/{np.dtype(db).name} layout={lname}: {e}") from None


def test_binary_broadcast_big_and_splat():
    rng = np.random.default_rng(13)
    for dt in FLOATS:
        x = gen(rng, (317, 1), dt)
        y = gen(rng, (1, 319), dt)
        for name in ["add", "mul", "maximum", "lt", "atan2", "pow"]:
            check_binary_parity(name, arr(x), arr(y), x, y)
        big = gen(rng, (100003,), dt)
        s = gen(rng, (), dt)
        for name in ["add", "sub", "mul", "div", "maximum", "ge"]:
            check_binary_parity(name, arr(big), arr(s), big, s)
            check_binary_parity(name, arr(s), arr(big), s, big)
        # mixed dtypes across the grain: the blocked conversion path, in parallel
        i = gen(rng, (100003,), np.int32)
        for name in ["add", "mul", "div", "eq", "maximum"]:
            check_binary_parity(name, arr(big), arr(i), big, i)


def special_grid(dtype):
    v = specials(dtype)
    return v[:, None], v[None, :]


@pytest.mark.parametrize("name", sorted(set(BINARY) - {n for n in BINARY if n.startswith("bitwise")}))
@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_binary_special_values(name, dtype):
    x, y = special_grid(dtype)
    if name == "remainder":
        # torch's vectorised float remainder is a - b * floor(a / b), NaN once
        # a / b overflows (1e308 % 0.5); fastgrad derives it from the exact
        # fmod, like Python and NumPy, so NumPy is the reference here.
        with np.errstate(all="ignore"):
            assert_matches(_C.remainder(arr(x), arr(y)), np.remainder(x, y))
        return
    check_binary_parity(name, arr(x), arr(y), x, y, check_zero_sign=name not in NO_ZERO_SIGN)


@pytest.mark.parametrize("dtype", INTS, ids=["int32", "int64"])
def test_binary_integer_extremes(dtype):
    info = np.iinfo(dtype)
    v = np.array([info.min, info.min + 1, -7, -3, -1, 0, 1, 3, 7, info.max], dtype=dtype)
    x, y = v[:, None], v[None, :]
    nz = v[v != 0][None, :]
    for name in ["add", "sub", "mul", "maximum", "minimum", "eq", "lt", "ge", "bitwise_and", "bitwise_xor"]:
        check_binary_parity(name, arr(x), arr(y), x, y)  # overflow wraps like torch
    for name in ["floor_divide", "remainder"]:
        check_binary_parity(name, arr(x), arr(nz), x, nz)  # includes MIN // -1: no SIGFPE
    small = np.array([-3, -2, -1, 0, 1, 2, 3], dtype=dtype)
    check_binary_parity("pow", arr(small[:, None]), arr(small[None, :]), small[:, None], small[None, :])
    e = np.array([0, 1, 2, 31, 62, 63], dtype=dtype)
    check_binary_parity("pow", arr(v[:, None]), arr(e[None, :]), v[:, None], e[None, :])


def test_floor_divide_and_remainder_signs():
    x = np.array([5, -5, 5, -5, 7, -7, 0], dtype=np.int64)
    y = np.array([3, 3, -3, -3, 7, 7, 5], dtype=np.int64)
    np.testing.assert_array_equal(npy(_C.floor_divide(arr(x), arr(y))), x // y)
    np.testing.assert_array_equal(npy(_C.remainder(arr(x), arr(y))), x % y)
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    np.testing.assert_array_equal(npy(_C.floor_divide(arr(xf), arr(yf))), xf // yf)
    np.testing.assert_array_equal(npy(_C.remainder(arr(xf), arr(yf))), xf % yf)
    # Python's float floor division: 7 // 0.1 == 69, not floor(70.0)
    assert npy(_C.floor_divide(arr(np.array(7.0)), arr(np.array(0.1)))) == 7.0 // 0.1


@pytest.mark.parametrize("dtype", INTS + [np.bool_], ids=["int32", "int64", "bool"])
def test_integer_division_by_zero_raises(dtype):
    x = arr(np.array([1, 2, 3], dtype=np.int64))
    zero = arr(np.zeros(3, dtype=dtype))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        _C.floor_divide(x, zero)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        _C.remainder(x, zero)
    # big enough to raise inside the worker threads
    big = arr(np.ones(200003, dtype=np.int64))
    bz = arr(np.concatenate([np.ones(200000), np.zeros(3)]).astype(dtype))
    with pytest.raises(RuntimeError, match="floor_divide"):
        _C.floor_divide(big, bz)
    # true division of ints by zero is float division: inf / nan, no error
    np.testing.assert_array_equal(npy(_C.div(x, zero)), [np.inf] * 3)


def test_binary_shape_errors_name_op_and_shapes():
    a, b = arr(np.zeros((2, 3))), arr(np.zeros((4,)))
    for name in BINARY:
        with pytest.raises(ValueError, match=rf"{name}.*\[2, 3\].*\[4\]"):
            getattr(_C, name)(a, b)


def test_binary_dtype_errors():
    f, i, b = arr(np.array([1.0])), arr(np.array([1])), arr(np.array([True]))
    with pytest.raises(TypeError, match="bitwise_and"):
        _C.bitwise_and(f, i)
    with pytest.raises(TypeError, match="sub"):
        _C.sub(b, b)
    with pytest.raises(TypeError, match="sub"):
        _C.sub(i, b)
    assert npy(_C.add(b, b)).dtype == np.bool_
    np.testing.assert_array_equal(npy(_C.add(arr(np.array([True, False, False])), arr(np.array([True, True, False])))),
                                  [True, True, False])


def test_comparisons_use_promoted_type():
    big = np.array([2**53 + 1], dtype=np.int64)
    f = np.array([2.0**53], dtype=np.float32)
    assert npy(_C.eq(arr(big), arr(f)))[0] == torch.eq(tt(big), tt(f)).item()
    assert not npy(_C.eq(arr(big), arr(big - 1)))[0]


def test_logical_ops_use_truthiness():
    x = np.array([np.nan, 0.0, -0.0, 2.0])
    y = np.array([1, 1, 0, 0], dtype=np.int32)
    np.testing.assert_array_equal(npy(_C.logical_and(arr(x), arr(y))), [True, False, False, False])
    np.testing.assert_array_equal(npy(_C.logical_or(arr(x), arr(y))), [True, True, False, True])
    np.testing.assert_array_equal(npy(_C.logical_xor(arr(x), arr(y))), [False, True, False, True])


# ---- where -----------------------------------------------------------------------


@pytest.mark.parametrize("da", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("db", DTYPES, ids=DT_IDS)
def test_where(da, db):
    rng = np.random.default_rng(21)
    for sc, sa, sb in [((3, 4), (3, 4), (3, 4)), ((4,), (3, 1), ()), ((), (2, 3), (3,)), ((0, 1), (1, 5), (5,)),
                       ((100003,), (1,), (100003,))]:
        c = gen(rng, sc, np.bool_)
        x, y = gen(rng, sa, da), gen(rng, sb, db)
        assert_matches(_C.where(arr(c), arr(x), arr(y)), torch_multi(torch.where, c, x, y))
    # non-contiguous operands
    c = gen(rng, (6, 5), np.bool_)
    x, y = gen(rng, (5, 6), da), gen(rng, (6, 10), db)
    got = _C.where(arr(c), _C.transpose(arr(x), 0, 1), _C.slice(_C.flip(arr(y), [1]), 1, 0, 10, 2))
    assert_matches(got, torch.where(tt(c), tt(x.T), tt(y[:, ::-1][:, ::2])))


def test_where_errors():
    with pytest.raises(TypeError, match="where"):
        _C.where(arr(np.array([1, 0])), arr(np.array([1.0, 2.0])), arr(np.array([3.0, 4.0])))
    with pytest.raises(ValueError, match=r"where.*\[2\].*\[3\].*\[4\]"):
        _C.where(arr(np.array([True, False])), arr(np.zeros(3)), arr(np.zeros(4)))


# ---- in place ----------------------------------------------------------------------

INPLACE = {"add_": np.add, "sub_": np.subtract, "mul_": np.multiply, "div_": np.true_divide}


@pytest.mark.parametrize("name", sorted(INPLACE))
@pytest.mark.parametrize("da,db", [(np.float32, np.float32), (np.float64, np.float32), (np.float32, np.float64),
                                   (np.float64, np.int32), (np.int32, np.int64), (np.int64, np.int32),
                                   (np.int64, np.bool_)])
def test_inplace_on_views(name, da, db):
    rng = np.random.default_rng(31)
    if name == "div_" and not is_float(da):
        with pytest.raises(RuntimeError, match="div_"):
            _C.div_(arr(gen(rng, (3,), da)), arr(gen(rng, (3,), db)))
        return
    if name == "sub_" and db == np.bool_:
        pytest.skip("covered by test_inplace_errors")
    base = gen(rng, (6, 9), da)
    ref = base.copy()
    store = arr(base)
    # a transposed, stepped view of the base; b broadcasts along one dim
    view = _C.transpose(_C.slice(store, 1, 1, 9, 2), 0, 1)  # (4, 6)
    y = gen(rng, (1, 6), db, nonzero=True)
    v0 = store.version
    getattr(_C, name)(view, arr(y))
    assert store.version == v0 + 1 and view.version == v0 + 1
    sub = ref[:, 1:9:2].T
    sub[...] = INPLACE[name](sub, y).astype(da) if not is_float(da) else INPLACE[name](sub, y)
    got = npy(store)
    if is_float(da):
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, ref)  # columns outside the view untouched


def test_inplace_matches_torch_dtype_semantics():
    x = np.array([1, 2, 3], dtype=np.int32)
    a = arr(x)
    _C.add_(a, arr(np.array([2**33 + 1, 1, 1], dtype=np.int64)))  # computed in int64, wrapped into int32
    t = tt(x)
    t.add_(tt(np.array([2**33 + 1, 1, 1], dtype=np.int64)))
    np.testing.assert_array_equal(npy(a), t.numpy())
    b = arr(np.array([True, False, False]))
    _C.add_(b, arr(np.array([False, False, True])))
    np.testing.assert_array_equal(npy(b), [True, False, True])
    _C.mul_(b, arr(np.array([True, False, True])))
    np.testing.assert_array_equal(npy(b), [True, False, True])


def test_inplace_errors():
    i = arr(np.array([1, 2], dtype=np.int64))
    f = arr(np.array([1.0, 2.0]))
    b = arr(np.array([True, False]))
    with pytest.raises(RuntimeError, match="add_.*float64.*int64"):
        _C.add_(i, f)
    with pytest.raises(RuntimeError, match="div_"):
        _C.div_(i, i)
    with pytest.raises(RuntimeError, match="add_"):
        _C.add_(b, i)
    with pytest.raises(TypeError, match="sub_"):
        _C.sub_(b, b)
    with pytest.raises(ValueError, match=r"add_.*\[2, 2\].*\[2\]"):
        _C.add_(f, arr(np.ones((2, 2))))
    with pytest.raises(RuntimeError, match="mul_.*single memory location"):
        _C.mul_(_C.expand(arr(np.ones((1, 3))), [2, 3]), arr(np.ones(3)))
    v = i.version
    with pytest.raises(RuntimeError):
        _C.add_(i, f)
    assert i.version == v  # a refused op writes nothing


def test_inplace_aliasing():
    x = np.arange(10, dtype=np.float64)
    a = arr(x)
    _C.add_(a, _C.flip(a, [0]))  # reads the old values, not the half-updated ones
    np.testing.assert_array_equal(npy(a), x + x[::-1])
    a = arr(x)
    _C.mul_(a, a)  # element-for-element alias needs no copy
    np.testing.assert_array_equal(npy(a), x * x)
    a = arr(x)
    _C.sub_(_C.slice(a, 0, 1, 10, 1), _C.slice(a, 0, 0, 9, 1))  # shifted overlap
    expect = x.copy()
    expect[1:] = x[1:] - x[:-1]
    np.testing.assert_array_equal(npy(a), expect)
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    a = arr(m[:3, :3].copy())
    _C.add_(a, _C.transpose(a, 0, 1))
    np.testing.assert_array_equal(npy(a), m[:3, :3] + m[:3, :3].T)
    # two _C arrays over the same NumPy memory (different storages) also count as overlap
    shared = np.arange(8, dtype=np.float64)
    a1, a2 = _C.from_numpy(shared), _C.from_numpy(shared)
    _C.add_(a1, _C.flip(a2, [0]))
    np.testing.assert_array_equal(shared, np.arange(8) + np.arange(8)[::-1])


def test_inplace_zero_size_and_0d():
    # a zero-size target writes nothing, whatever strides its view carries
    z = _C.expand(arr(np.ones((1, 3))), [0, 3])
    _C.add_(z, arr(np.ones(3)))
    _C.clamp_(z, 0.0, 1.0)
    s = arr(np.array(2.0))
    v = s.version
    _C.mul_(s, arr(np.array(3.0)))
    _C.sub_(s, s)
    assert npy(s) == 0.0 and s.version == v + 2


def test_inplace_large_parallel_noncontiguous():
    rng = np.random.default_rng(32)
    base = gen(rng, (400, 600), np.float32)
    ref = base.copy()
    a = arr(base)
    y = gen(rng, (300,), np.float64)
    _C.add_(_C.slice(a, 1, 0, 600, 2), arr(y))
    ref[:, ::2] = (ref[:, ::2].astype(np.float64) + y).astype(np.float32)
    np.testing.assert_allclose(npy(a), ref, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_clamp_inplace(dtype):
    rng = np.random.default_rng(33)
    base = gen(rng, (8, 8), dtype)
    ref = base.copy()
    a = arr(base)
    view = _C.flip(_C.slice(a, 0, 0, 8, 3), [1])
    v = a.version
    _C.clamp_(view, -2.0, 3.0)
    assert a.version == v + 1
    ref[::3, ::-1] = np.clip(ref[::3, ::-1], -2, 3)
    np.testing.assert_array_equal(npy(a), ref)
    _C.clamp_(a, min=1.0)
    np.testing.assert_array_equal(npy(a), np.maximum(ref, 1))
    with pytest.raises(ValueError, match="clamp_"):
        _C.clamp_(a)


# ---- fused backward helpers -----------------------------------------------------------


def _autograd(fn, x, g):
    t = tt(x).requires_grad_(True)
    fn(t).backward(tt(g))
    return t.grad


@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_backward_helpers(dtype):
    rng = np.random.default_rng(41)
    for shape in [(), (7,), (33, 5), (100003,)]:
        x = gen(rng, shape, dtype)
        x = np.where(np.abs(x) < 1e-3, 0.5, x).astype(dtype)  # keep relu away from its kink
        g = gen(rng, shape, dtype)
        out_relu = np.maximum(x, 0)
        out_sig = npy(_C.sigmoid(arr(x)))
        out_tanh = npy(_C.tanh(arr(x)))
        assert_matches(_C.relu_backward(arr(g), arr(out_relu)), _autograd(torch.relu, x, g))
        assert_matches(_C.sigmoid_backward(arr(g), arr(out_sig)), _autograd(torch.sigmoid, x, g))
        # g (1 - y^2) moves by 2 |g y| per unit of y, and our y and torch's
        # are each within ~1.5 ulp of tanh: a few ulp of |g| absolute, not a
        # relative bound (1 - y^2 cancels near saturation)
        tanh_atol = 8 * np.finfo(dtype).eps * max(float(np.abs(g).max()), 1.0)
        assert_matches(_C.tanh_backward(arr(g), arr(out_tanh)), _autograd(torch.tanh, x, g), atol=tanh_atol)
        assert_matches(_C.gelu_backward(arr(g), arr(x)), _autograd(F.gelu, x, g))
        assert_matches(_C.silu_backward(arr(g), arr(x)), _autograd(F.silu, x, g))
    # non-contiguous operands
    x = gen(rng, (9, 4), dtype)
    g = gen(rng, (4, 9), dtype)
    got = _C.silu_backward(_C.transpose(arr(g), 0, 1), _C.flip(arr(x), [0]))
    assert_matches(got, _autograd(F.silu, x[::-1], g.T))
    with pytest.raises(TypeError, match="relu_backward"):
        _C.relu_backward(arr(np.array([1])), arr(np.array([1])))


# ---- runtime -------------------------------------------------------------------------


def test_simd_level():
    assert _C.simd_level() in {"avx512", "avx2", "scalar", "scalar+autovec(sse2)"}


def test_results_independent_of_thread_count():
    rng = np.random.default_rng(51)
    x = gen(rng, (300007,), np.float32)
    y = gen(rng, (300007,), np.int32)
    n0 = _C.get_num_threads()
    try:
        outs = []
        for n in (1, 3):
            _C.set_num_threads(n)
            outs.append([npy(_C.exp(arr(x))), npy(_C.mul(arr(x), arr(y))), npy(_C.gelu(_C.flip(arr(x), [0])))])
    finally:
        _C.set_num_threads(n0)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_concurrent_callers():
    # the kernels release the GIL: several Python threads may run them at once
    rng = np.random.default_rng(52)
    x = gen(rng, (200003,), np.float64)
    expect = np.exp(x) * 2
    errors = []

    def work():
        try:
            for _ in range(5):
                got = npy(_C.mul(_C.exp(arr(x)), arr(np.array(2.0))))
                np.testing.assert_allclose(got, expect, rtol=1e-14)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ---- property tests: random broadcastable shapes and random strided views -------------


@st.composite
def strided_operand(draw, shape, dtype, **kw):
    """A _C view of the given shape in a random layout, and the same view in NumPy."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    nd = len(shape)
    how = draw(st.sampled_from(["contiguous", "stepped", "permuted", "flipped", "broadcast0"]))
    if how == "stepped":
        base = gen(rng, tuple(2 * d + 1 for d in shape), dtype, **kw)
        a, x = arr(base), base
        for d, n in enumerate(shape):
            a = _C.slice(a, d, 1, 2 * n + 1, 2)
        x = base[tuple(slice(1, 2 * n + 1, 2) for n in shape)]
        return a, x
    if how == "permuted" and nd >= 2:
        perm = draw(st.permutations(list(range(nd))))
        base_shape = [0] * nd
        for i, p in enumerate(perm):
            base_shape[p] = shape[i]
        base = gen(rng, tuple(base_shape), dtype, **kw)
        return _C.permute(arr(base), list(perm)), base.transpose(perm)
    if how == "flipped" and nd >= 1:
        dims = draw(st.lists(st.integers(0, nd - 1), unique=True, min_size=1))
        base = gen(rng, shape, dtype, **kw)
        return _C.flip(arr(base), dims), np.flip(base, dims)
    if how == "broadcast0" and nd >= 1:
        # size-1 dims stretched by expand(): stride 0 inside the operand itself
        small = tuple(1 if draw(st.booleans()) else n for n in shape)
        base = gen(rng, small, dtype, **kw)
        return _C.expand(arr(base), list(shape)), np.broadcast_to(base, shape)
    base = gen(rng, shape, dtype, **kw)
    return arr(base), base


@st.composite
def broadcast_case(draw, n_operands):
    nd = draw(st.integers(0, 4))
    zero_ok = draw(st.integers(0, 9)) == 0  # zero-size dims in about one case in ten
    full = draw(st.lists(st.integers(0 if zero_ok else 1, 6), min_size=nd, max_size=nd))
    shapes = []
    for _ in range(n_operands):
        drop = draw(st.integers(0, nd))
        shapes.append(tuple(1 if draw(st.booleans()) else n for n in full[drop:]))
    return shapes


PROPERTY_BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "eq", "lt", "logical_and", "bitwise_or",
                   "floor_divide", "remainder", "atan2", "pow"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_property_binary_broadcasting(data):
    shapes = data.draw(broadcast_case(2))
    name = data.draw(st.sampled_from(PROPERTY_BINARY))
    da = data.draw(st.sampled_from(DTYPES))
    db = data.draw(st.sampled_from(DTYPES))
    a, x = data.draw(strided_operand(shapes[0], da))
    b, y = data.draw(strided_operand(shapes[1], db, **operand_kw(name)))
    check_binary_parity(name, a, b, x, y)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_property_where_and_unary(data):
    shapes = data.draw(broadcast_case(3))
    dt = data.draw(st.sampled_from(DTYPES))
    c, xc = data.draw(strided_operand(shapes[0], np.bool_))
    a, x = data.draw(strided_operand(shapes[1], dt))
    b, y = data.draw(strided_operand(shapes[2], data.draw(st.sampled_from(DTYPES))))
    assert_matches(_C.where(c, a, b), torch_multi(torch.where, xc, x, y))
    name = data.draw(st.sampled_from(sorted(UNARY)))
    check_unary_parity(name, a, x)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_property_inplace(data):
    shape = data.draw(broadcast_case(1))[0]
    name = data.draw(st.sampled_from(["add_", "sub_", "mul_", "div_"]))
    da = data.draw(st.sampled_from(FLOATS + INTS))
    db = data.draw(st.sampled_from(INTS + ([np.float32, np.float64] if is_float(da) else [])))
    if name == "div_" and not is_float(da):
        return
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # target: a stepped view into a bigger base, so writes must land only in the view
    base = gen(rng, tuple(2 * n for n in shape), da)
    store = arr(base)
    a = store
    for d, n in enumerate(shape):
        a = _C.slice(a, d, 0, 2 * n, 2)
    drop = data.draw(st.integers(0, len(shape)))
    bshape = tuple(1 if data.draw(st.booleans()) else n for n in shape[drop:])
    b, y = data.draw(strided_operand(bshape, db, nonzero=True))
    ref = tt(base)
    view = ref[tuple(slice(0, 2 * n, 2) for n in shape)]
    getattr(view, name)(tt(y))
    v = store.version
    getattr(_C, name)(a, b)
    assert store.version == v + 1
    assert_matches(store, ref)
