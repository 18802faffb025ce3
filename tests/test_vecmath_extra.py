"""The vectorised kernels of csrc/cpu/vecmath_extra* (log1p, expm1, softplus,
elu, leaky_relu, erf, sin, cos, tan) on every CPU build (avx512, avx2, scalar libm): accuracy in
ulp against long double references, special values, tails and layouts,
thread counts, PyTorch parity; and the softmax family on masked (-inf /
-1e9) rows, whose exp no longer takes the underflow path."""
import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import _C
from helpers import (assert_layouts_give_same_bits, assert_tails_match_full_vectors,
                     assert_thread_counts_give_same_bits, forced_cpu_capability, ulp_errors)

CAPS = ["avx512", "avx2", "scalar"]
FLOATS = [np.float32, np.float64]
LD = np.longdouble


@pytest.fixture(params=CAPS)
def cap(request):
    with forced_cpu_capability(request.param, _C.vecmath_isa) as c:
        yield c


def _softplus_ref(x, dt, beta, threshold):
    b = LD(dt(beta))  # the kernels take their parameters in the tensor's dtype, as torch
    z = x * b
    return np.where(z > LD(dt(threshold)), x, (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / b)


_ERF_CACHE = {}


def _erf_ref(x):
    """erf in long double: mpmath (40 digits) per distinct value, cached
    across the parametrised tests (NumPy has no long double erf)."""
    import mpmath

    out = np.empty(x.shape, dtype=LD)
    with mpmath.workdps(40):
        for i, v in enumerate(x.ravel()):
            key = float(v).hex()  # tells -0 from 0
            if key not in _ERF_CACHE:
                e = LD(mpmath.erf(mpmath.mpf(float(v)))) if v == v else LD(np.nan)
                _ERF_CACHE[key] = LD(v) if v == 0 else e  # erf(+-0) = +-0 (mpmath has one zero)
            out.ravel()[i] = _ERF_CACHE[key]
    return out


# name -> (fastgrad op, long double reference (x, dtype), torch op, max ulp)
OPS = {
    "log1p": (fg.log1p, lambda x, dt: np.log1p(x), torch.log1p, 2),
    "expm1": (fg.expm1, lambda x, dt: np.expm1(x), torch.expm1, 2),
    "softplus": (F.softplus, lambda x, dt: _softplus_ref(x, dt, 1.0, 20.0), torch.nn.functional.softplus, 3),
    "softplus_b2": (lambda t: F.softplus(t, beta=2.0, threshold=5.0), lambda x, dt: _softplus_ref(x, dt, 2.0, 5.0),
                    lambda t: torch.nn.functional.softplus(t, beta=2.0, threshold=5.0), 3),
    "softplus_b03": (lambda t: F.softplus(t, beta=0.3), lambda x, dt: _softplus_ref(x, dt, 0.3, 20.0),
                     lambda t: torch.nn.functional.softplus(t, beta=0.3), 4),
    "elu": (F.elu, lambda x, dt: np.where(x > 0, x, np.expm1(x)), torch.nn.functional.elu, 2),
    "elu_a07": (lambda t: F.elu(t, alpha=0.7), lambda x, dt: np.where(x > 0, x, LD(dt(0.7)) * np.expm1(x)),
                lambda t: torch.nn.functional.elu(t, alpha=0.7), 3),
    # one rounded product: correctly rounded
    "leaky_relu": (F.leaky_relu, lambda x, dt: np.where(x > 0, x, x * LD(dt(0.01))),
                   torch.nn.functional.leaky_relu, 0.5),
    # vectorised since round 3 (|x| > 1e5 lanes of sin / cos / tan go to libm)
    # float64: 1 - erfc just above the split at 0.7 (erfc ~ 0.32): 2.0 ulp measured
    "erf": (fg.erf, lambda x, dt: _erf_ref(x), torch.erf, 2.5),
    "sin": (fg.sin, lambda x, dt: np.sin(x), torch.sin, 2),
    "cos": (fg.cos, lambda x, dt: np.cos(x), torch.cos, 2),
    # sin / cos each ~1.5 ulp, then a division (3.35 ulp measured)
    "tan": (fg.tan, lambda x, dt: np.tan(x), torch.tan, 4),
}
RANGES = {  # dense sweep per dtype
    "log1p": {np.float32: (-0.999, 60.0), np.float64: (-0.999, 60.0)},
    "expm1": {np.float32: (-25.0, 88.7), np.float64: (-50.0, 709.7)},
    "softplus": {np.float32: (-80.0, 30.0), np.float64: (-700.0, 40.0)},
    "elu": {np.float32: (-25.0, 5.0), np.float64: (-50.0, 5.0)},
    "leaky_relu": {np.float32: (-5.0, 5.0), np.float64: (-5.0, 5.0)},
    "erf": {np.float32: (-5.0, 5.0), np.float64: (-7.0, 7.0)},
    "sin": {np.float32: (-20.0, 20.0), np.float64: (-20.0, 20.0)},
    "cos": {np.float32: (-20.0, 20.0), np.float64: (-20.0, 20.0)},
    "tan": {np.float32: (-20.0, 20.0), np.float64: (-20.0, 20.0)},
}


def sweep(name, dtype, n=40000):
    rng = np.random.default_rng(0)
    lo, hi = RANGES[name.split("_")[0] if name != "leaky_relu" else name][dtype]
    parts = [np.linspace(lo, hi, n // 2), rng.uniform(lo, hi, n // 4), rng.standard_normal(n // 4)]
    if name == "log1p":  # every binade of tiny and huge arguments, both signs of the small ones
        e = rng.uniform(np.log2(float(np.finfo(dtype).smallest_normal)), np.log2(float(np.finfo(dtype).max)), n // 4)
        parts += [np.exp2(e), -np.exp2(rng.uniform(-60, -1, n // 8))]
    if name == "expm1":
        parts.append(rng.choice([-1, 1], n // 4) * np.exp2(rng.uniform(-60, 0, n // 4)))
    if name in ("sin", "cos", "tan"):  # the reduced range up to 1e5, then libm lanes mixed in
        parts += [rng.uniform(-1e5, 1e5, n // 4), rng.choice([-1, 1], n // 8) * np.exp2(rng.uniform(-40, 16.6, n // 8)),
                  rng.choice([-1, 1], n // 16) * np.exp2(rng.uniform(16.6, 100, n // 16))]
    if name == "erf":  # tiny arguments and the split points
        parts += [rng.choice([-1, 1], n // 8) * np.exp2(rng.uniform(-60, 0, n // 8)),
                  np.linspace(0.6, 1.4, n // 8)]
    return np.concatenate(parts).astype(dtype)


FG_OPS = {name: spec[0] for name, spec in OPS.items()}  # name -> the fastgrad op


def run(name, x):
    return FG_OPS[name](fg.from_numpy(x)).numpy()


def allowed_ulp(name, x, cap):
    """Per-element bound. softplus with beta 0.3: beta x is rounded before
    exp, which costs ~|beta x| / 2 ulp relative wherever e^(beta x) is small
    (the conditioning of the function, PyTorch's result has it too). libm's
    form (capability scalar) rounds exp(beta x) before log1p: ~1 ulp of e^z."""
    tol = np.full(x.shape, OPS[name][3], dtype=LD)
    if name == "softplus_b03":
        tol += np.abs(np.nan_to_num(x.astype(LD))) * LD(0.3)
    if cap == "scalar" and name.startswith("softplus"):
        tol += 64
    return tol


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_ulp(cap, name, dtype):
    x = sweep(name, dtype)
    with np.errstate(all="ignore"):
        err = ulp_errors(run(name, x), OPS[name][1](x.astype(LD), dtype), dtype)
    excess = err - allowed_ulp(name, x, cap)
    worst = int(np.argmax(excess))
    assert excess.max() <= 0, f"{name} {np.dtype(dtype).name} [{cap}]: {err[worst]:.2f} ulp at x={x[worst]!r}"


SPECIAL = {
    np.float32: [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, -0.5, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38,
                 3e-8, -3e-8, 88.37, 88.72, 88.73, 89.0, -20.0, -21.0, -87.0, -104.0, -200.0, 3e38, -3e38, 20.0,
                 20.001, 5.0, 1.0, -2.0],
    np.float64: [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, -0.5, 5e-324, -5e-324, 1e-310, -1e-310,
                 2.2250738585072014e-308, 1e-17, -1e-17, 709.0, 709.78, 709.79, 710.0, -44.0, -45.0, -708.0, -746.0,
                 -800.0, 1e308, -1e308, 20.0, 20.000001, 5.0, 1.0, -2.0],
}


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_special_values(cap, name, dtype):
    x = np.array(SPECIAL[dtype], dtype=dtype)
    got = run(name, x)
    with np.errstate(all="ignore"):
        ref = OPS[name][1](x.astype(LD), dtype)
        err = ulp_errors(got, ref, dtype)
    tol = allowed_ulp(name, x, cap)
    assert (err <= tol).all(), (x[err > tol], got[err > tol])
    zero = (got == 0) & (ref.astype(dtype) == 0)
    assert np.array_equal(np.signbit(got[zero]), np.signbit(ref.astype(dtype)[zero])), "sign of zero"


def test_special_values_spelled_out():
    f = np.float32
    lp = fg.log1p(fg.tensor([-1.0, -2.0, np.inf, -np.inf, -0.0, 1e-30], dtype=fg.float32)).numpy()
    assert lp[0] == -np.inf and np.isnan(lp[1]) and lp[2] == np.inf and np.isnan(lp[3])
    assert lp[4] == 0 and np.signbit(lp[4]) and lp[5] == f(1e-30)
    em = fg.expm1(fg.tensor([-np.inf, np.inf, -0.0, 89.0, -30.0, 1e-30], dtype=fg.float32)).numpy()
    assert em[0] == -1 and em[1] == np.inf and em[2] == 0 and np.signbit(em[2]) and em[3] == np.inf
    assert em[4] == -1 and em[5] == f(1e-30)
    sp = F.softplus(fg.tensor([np.inf, -np.inf, np.nan, 30.0, -200.0], dtype=fg.float32)).numpy()
    assert sp[0] == np.inf and sp[1] == 0 and np.isnan(sp[2]) and sp[3] == 30.0 and sp[4] == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(OPS))
def test_matches_torch(name, dtype):
    xt = torch.cat([torch.randn(3001, dtype=dtype) * 4, torch.linspace(-30, 30, 999, dtype=dtype)])
    if name == "log1p":
        xt = xt.abs() - 0.5
    got = OPS[name][0](fg.tensor(xt.numpy())).numpy()
    ref = OPS[name][2](xt).numpy()
    eps = np.finfo(ref.dtype).eps
    # near the zeros of sin / cos / tan the results are tiny and each library
    # is off by ~eps absolute there (its own range reduction): absolute eps
    atol = eps if name in ("sin", "cos", "tan") else np.finfo(ref.dtype).tiny
    np.testing.assert_allclose(got, ref, rtol=8 * eps, atol=atol, equal_nan=True)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [1, 7, 33, 257, 1000])
def test_tails_match_full_vectors(cap, dtype, n):
    x = (np.random.default_rng(n).standard_normal(2000) * 3).astype(dtype)
    assert_tails_match_full_vectors(FG_OPS, np.abs(x) - 0.9, n)  # log1p's domain too


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_non_contiguous_inputs(cap, dtype):
    x = (np.abs(np.random.default_rng(1).standard_normal((37, 53))) * 3 - 0.9).astype(dtype)
    assert_layouts_give_same_bits(FG_OPS, x)


def test_threads_give_same_bits():
    assert_thread_counts_give_same_bits(FG_OPS, fg.randn(300_001) * 3)


def test_int_inputs_and_errors():
    xi = fg.tensor([-2, -1, 0, 1, 2])
    np.testing.assert_allclose(fg.expm1(xi).numpy(), np.expm1(np.arange(-2, 3, dtype=np.float32)), rtol=1e-6)
    with pytest.raises(TypeError, match="softplus"):
        F.softplus(xi)
    with pytest.raises(TypeError, match="elu"):
        F.elu(xi)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softplus_grads_vs_torch(dtype):
    xs = torch.cat([torch.randn(200, dtype=dtype) * 5, torch.tensor([10.0, -10.0], dtype=dtype)])
    for beta, threshold in ((1.0, 20.0), (2.0, 5.0)):
        xt = xs.clone().requires_grad_()
        xf = fg.tensor(xs.numpy(), requires_grad=True)
        torch.nn.functional.softplus(xt, beta, threshold).sum().backward()
        F.softplus(xf, beta, threshold).sum().backward()
        np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-7)


# ---- the softmax family on masked rows -----------------------------------------------------

@pytest.mark.parametrize("fill", [float("-inf"), -1e9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,dim", [((3, 37, 37), -1), ((2, 37, 21), 1)])
def test_masked_softmax_family_vs_torch(cap, fill, dtype, shape, dim):
    # every capability: the softmax kernels take vecmath's span exp (avx512 /
    # avx2) or their own scalar loop (scalar)
    xt = torch.randn(*shape, dtype=dtype)
    mask = torch.ones(shape[-2], shape[-1]).triu(1).bool()
    xm = xt.masked_fill(mask, fill)
    g = torch.randn(*shape, dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    for name in ("softmax", "log_softmax", "logsumexp"):
        a = xm.clone().requires_grad_()
        b = fg.tensor(xm.numpy(), requires_grad=True)
        rt = getattr(torch, name)(a, dim)
        rf = getattr(fg, name)(b, dim)
        gg = g if name != "logsumexp" else g.sum(dim)
        fin = torch.isfinite(rt)  # log_softmax is -inf on masked entries in both
        np.testing.assert_array_equal(np.isfinite(rf.detach().numpy()), fin.numpy(), err_msg=name)
        np.testing.assert_allclose(rf.detach().numpy()[fin.numpy()], rt.detach().numpy()[fin.numpy()],
                                   rtol=tol, atol=tol, err_msg=name)
        gw = torch.where(fin, gg, torch.zeros_like(gg))  # no inf * 0 in the cotangent
        rt.backward(gw)
        rf.backward(fg.tensor(gw.numpy()))
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=tol, atol=tol, err_msg=name)


def test_masked_softmax_same_bits_for_any_thread_count():
    x = fg.randn(64, 128, 128)
    m = fg.ones(128, 128).triu(1).bool()
    xm = x.masked_fill(m, float("-inf"))
    prev = fg.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            fg.set_num_threads(n)
            outs.append([xm.softmax(-1).numpy(), xm.log_softmax(-1).numpy(), xm.logsumexp(-1).numpy(),
                         xm.softmax(1).numpy()])
    finally:
        fg.set_num_threads(prev)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_exp_around_the_zero_cut(cap, dtype):
    # exp is exactly 0 below the cut (computed from x = 0 and zeroed), right
    # (subnormal) just above it, and NaN stays NaN
    lo = -103.0 if dtype == np.float32 else -744.0
    x = np.concatenate([np.linspace(lo - 5, lo + 0.5, 20001), [-np.inf, -1e9, -1e30, np.nan]]).astype(dtype)
    got = fg.exp(fg.from_numpy(x)).numpy()
    with np.errstate(all="ignore"):
        ref = np.exp(x.astype(LD)).astype(dtype)
    assert np.isnan(got[-1])
    np.testing.assert_array_equal(got[:-1] == 0, ref[:-1] == 0)
    sub = np.abs(got[:-1] - ref[:-1]) / np.finfo(dtype).smallest_subnormal
    assert sub.max() <= 1
    # the softmax kernels' exp (the reduction build) agrees on where results vanish
    row = np.concatenate([[0.0], x[:-1]]).astype(dtype)
    sm = fg.from_numpy(row).softmax(0).numpy()
    with np.errstate(all="ignore"):
        rs = (np.exp(row.astype(LD)) / np.exp(row.astype(LD)).sum()).astype(dtype)
    np.testing.assert_array_equal(sm == 0, rs == 0)


# ---- the thread pool (csrc/parallel.cpp) under concurrent callers ------------------------------

def test_pool_concurrent_callers_and_resizes_give_same_bits():
    import threading

    x = fg.randn(300_001)
    m = fg.randn(200, 300)
    work = [lambda: x.exp(), lambda: x.sum(), lambda: F.softplus(x), lambda: m @ m.T, lambda: m.softmax(-1),
            lambda: m.sum(0)]
    prev = fg.get_num_threads()
    try:
        fg.set_num_threads(1)
        ref = [f().numpy() for f in work]
        for n in (2, 3, 2):  # resizing the pool between jobs
            fg.set_num_threads(n)
            for f, r in zip(work, ref):
                np.testing.assert_array_equal(f().numpy(), r)
        errors = []

        def hammer():  # the GIL is released in the kernels: jobs from several threads queue up
            try:
                for _ in range(15):
                    for f, r in zip(work, ref):
                        np.testing.assert_array_equal(f().numpy(), r)
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
    finally:
        fg.set_num_threads(prev)


# ---- erf / sin / cos / tan: special values and the libm lanes ----------------------------------

@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_trig_erf_special_values_spelled_out(cap, dtype):
    x = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0], dtype=dtype)
    for op in (fg.sin, fg.cos, fg.tan):
        y = op(fg.from_numpy(x)).numpy()
        assert np.isnan(y[:3]).all()
    s, t = fg.sin(fg.from_numpy(x)).numpy(), fg.tan(fg.from_numpy(x)).numpy()
    assert s[3] == 0 and np.signbit(s[3]) and t[3] == 0 and np.signbit(t[3]) and not np.signbit(s[4])
    np.testing.assert_array_equal(fg.cos(fg.from_numpy(x)).numpy()[3:], [1, 1])
    e = fg.erf(fg.from_numpy(x)).numpy()
    assert e[0] == 1 and e[1] == -1 and np.isnan(e[2]) and e[3] == 0 and np.signbit(e[3]) and not np.signbit(e[4])


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_trig_big_lanes_go_to_libm(cap, dtype):
    # one |x| > 1e5 lane among reduced ones, at every lane position of a
    # vector: it gets libm's value (within 1 ulp of long double), the others
    # keep the bits they have in a vector of small values only
    rng = np.random.default_rng(3)
    small = rng.uniform(-50, 50, 64).astype(dtype)
    for op, ref in ((fg.sin, np.sin), (fg.cos, np.cos), (fg.tan, np.tan)):
        base = op(fg.from_numpy(small)).numpy()
        for pos in range(0, 17):
            x = small.copy()
            x[pos] = dtype(1e5 + 12345.678 * (pos + 1)) * (-1) ** pos
            y = op(fg.from_numpy(x)).numpy()
            keep = np.arange(64) != pos
            np.testing.assert_array_equal(y[keep], base[keep])
            assert ulp_errors(y[pos:pos + 1], ref(x[pos:pos + 1].astype(LD)), dtype).max() <= 1
