"""Native tests for the matrix product (csrc/cpu/gemm*.cpp) and the Philox
random numbers (csrc/cpu/random.cpp), through fastgrad._C directly.

matmul is compared with NumPy over 1-D / 2-D / batched / broadcast shapes,
strided and transposed views, odd and empty sizes, every dtype, and every
micro-kernel path (avx512 / avx2 / scalar) the CPU has. The random numbers are
checked for determinism (same seed, any thread count), a known answer of
Philox-4x32-10, and loose statistical moments.
"""
import functools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastgrad import _C
from helpers import forced_cpu_capability

DT = _C.DType
NP_OF = {DT.float32: np.float32, DT.float64: np.float64, DT.int32: np.int32, DT.int64: np.int64}
CAPS = ["avx512", "avx2", "scalar"]


def arr(x):
    return _C.from_numpy(np.ascontiguousarray(x))


def npy(a):
    return np.array(_C.to_numpy(a))  # a copy: independent of the array's lifetime


def mm(a, b):
    """matmul of two NumPy arrays (views are passed with their strides)."""
    return npy(_C.matmul(_C.from_numpy(a), _C.from_numpy(b)))


@pytest.fixture(params=CAPS)
def cap(request):
    with forced_cpu_capability(request.param, _C.gemm_info) as c:
        yield c


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    n = _C.get_num_threads()
    yield
    _C.set_num_threads(n)


def check_close(got, a, b):
    """got == a @ b up to the classic dot-product error bound
    |err| <= gamma_K * (|a| @ |b|), gamma_K ~ K * eps (with slack)."""
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert got.shape == ref.shape
    if np.issubdtype(got.dtype, np.integer):
        np.testing.assert_array_equal(got, np.matmul(a, b))
        return
    k = a.shape[-1]
    eps = np.finfo(got.dtype).eps
    bound = 2 * (k + 2) * eps * np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64)) + 1e-30
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= bound), f"max err {err.max()} (bound {bound.max()})"


def randn(rng, shape, dtype=np.float32):
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-5, 6, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# ---- matmul: values --------------------------------------------------------------

SIZES_2D = [
    (1, 1, 1), (1, 7, 1), (7, 1, 7), (2, 3, 4), (17, 33, 65), (33, 17, 7), (65, 129, 33), (64, 64, 64),
    (129, 65, 129), (100, 300, 200), (257, 129, 513),
    (400, 700, 50),    # K over the K block
    (900, 40, 70),     # M over the M block, uneven split
    (13, 50, 4500),    # N over the N block
]


@pytest.mark.parametrize("m,k,n", SIZES_2D)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_2d(cap, m, k, n, dtype):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    got = mm(a, b)
    assert got.dtype == dtype
    check_close(got, a, b)


@pytest.mark.parametrize("m,k,n", [(1, 5, 1), (7, 9, 13), (65, 33, 129), (200, 130, 70)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_matmul_int(m, k, n, dtype):
    rng = np.random.default_rng(1)
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    got = mm(a, b)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, a @ b)


def test_matmul_int_wraps_on_overflow():
    a = np.array([[2**62, 2**62]], dtype=np.int64)
    b = np.array([[4], [4]], dtype=np.int64)
    np.testing.assert_array_equal(mm(a, b), a @ b)  # NumPy wraps too


LAYOUTS = ["nn", "tn", "nt", "tt", "step", "flip"]


def make_view(x, how):
    """A view of (a copy of) x with the same values and an unusual layout."""
    if how == "t":  # transposed storage: columns contiguous
        return np.ascontiguousarray(x.T).T
    if how == "step":  # both strides non-unit
        big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
        big[::2, ::3] = x
        return big[::2, ::3]
    if how == "flip":  # negative strides
        return np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    return x


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("m,k,n", [(5, 7, 3), (40, 33, 65), (130, 70, 90), (1, 50, 40), (40, 50, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_strided(cap, layout, m, k, n, dtype):
    rng = np.random.default_rng(7)
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    if layout in ("step", "flip"):
        av, bv = make_view(a, layout), make_view(b, layout)
    else:
        av, bv = make_view(a, "t" if layout[0] == "t" else "n"), make_view(b, "t" if layout[1] == "t" else "n")
    check_close(mm(av, bv), a, b)


def test_matmul_strided_native_views(cap):
    """Views made by _C itself: transpose and stepped slices share storage."""
    rng = np.random.default_rng(3)
    a = randn(rng, (60, 90))
    b = randn(rng, (60, 70))
    at = _C.transpose(arr(a), 0, 1)                   # (90, 60), column-major
    bs = _C.slice(arr(b), 1, 0, 70, 2)                # (60, 35), column stride 2
    check_close(npy(_C.matmul(at, bs)), a.T, b[:, ::2])
    c = randn(rng, (50, 40))
    cs = _C.slice(_C.slice(arr(c), 0, 1, 50, 3), 1, 0, 40, 2)  # (17, 20), both strides non-unit
    check_close(npy(_C.matmul(cs, _C.transpose(cs, 0, 1))), c[1::3, ::2], c[1::3, ::2].T)


def test_matmul_column_major_result_path():
    """gemm is fed a transposed problem internally for matrix-vector products."""
    rng = np.random.default_rng(4)
    a = randn(rng, (300, 200))
    x = randn(rng, (200,))
    check_close(mm(a, x), a, x)
    check_close(mm(make_view(a, "t"), x), a, x)


BATCHED = [
    ((5,), (5,)),             # dot -> 0-d
    ((5,), (5, 6)),           # vector @ matrix
    ((4, 5), (5,)),           # matrix @ vector
    ((2, 3, 4, 5), (5,)),
    ((5,), (2, 5, 6)),
    ((3, 4, 5), (5, 6)),      # stack @ matrix (folded into one GEMM)
    ((4, 5), (3, 5, 6)),      # matrix @ stack
    ((2, 3, 4, 5), (2, 3, 5, 6)),
    ((3, 1, 4, 5), (2, 5, 6)),  # broadcast batch dims
    ((1, 4, 5), (3, 5, 6)),
    ((2, 1, 7, 33), (1, 3, 33, 17)),
    ((8, 64, 64), (8, 64, 64)),
    ((2, 300, 200), (2, 200, 100)),  # big enough for threaded GEMMs
]


@pytest.mark.parametrize("sa,sb", BATCHED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_matmul_batched(sa, sb, dtype):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a, b = randn(rng, sa, dtype), randn(rng, sb, dtype)
    got = mm(a, b)
    ref = np.matmul(a, b)
    assert got.shape == ref.shape and got.dtype == dtype
    if dtype == np.int64:
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.sqrt(a.shape[-1]))


def test_matmul_batched_strided():
    rng = np.random.default_rng(5)
    a = randn(rng, (4, 6, 30, 20))
    b = randn(rng, (6, 20, 25))
    av = np.transpose(np.ascontiguousarray(np.transpose(a, (1, 0, 3, 2))), (1, 0, 3, 2))  # permuted storage
    bv = np.ascontiguousarray(np.swapaxes(b, 1, 2)).swapaxes(1, 2)
    np.testing.assert_allclose(mm(av, bv), a @ b, rtol=1e-4, atol=1e-4)
    expanded = _C.expand(arr(randn(rng, (1, 30, 20))), [5, 30, 20])  # batch stride 0
    e = npy(expanded)
    np.testing.assert_allclose(npy(_C.matmul(expanded, arr(b[:1].repeat(5, 0)))), e @ b[:1].repeat(5, 0),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("view", ["rowvec", "flip_batch", "flip_both", "permuted", "step_batch"])
def test_matmul_stack_times_shared_matrix(view):
    """(..., M, K) @ (K, N): folded into one tall GEMM when the layout allows
    it, batch by batch otherwise; the same values either way."""
    rng = np.random.default_rng(11)
    b = randn(rng, (5, 40))
    if view == "rowvec":
        a = randn(rng, (6, 5))[:, None, :]          # (6, 1, 5), row stride 0
    elif view == "flip_batch":
        a = randn(rng, (4, 30, 5))[::-1]            # negative batch stride
    elif view == "flip_both":
        a = randn(rng, (4, 30, 5))[::-1, ::-1]      # folds with a negative row stride
    elif view == "permuted":
        a = randn(rng, (30, 4, 5)).transpose(1, 0, 2)
    else:
        a = randn(rng, (8, 30, 5))[::2]
    np.testing.assert_allclose(mm(a, b), np.matmul(a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sa,sb", [
    ((0, 5), (5, 3)), ((3, 0), (0, 4)), ((3, 4), (4, 0)), ((2, 0, 3, 4), (4, 5)),
    ((0,), (0,)), ((0, 2, 3), (3, 4)), ((2, 3, 0), (2, 0, 6)),
])
def test_matmul_empty(sa, sb):
    a, b = np.ones(sa, np.float32), np.ones(sb, np.float32)
    got = mm(a, b)
    ref = np.matmul(a, b)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)  # K == 0 gives zeros


def test_matmul_promotion():
    rng = np.random.default_rng(6)
    f32, f64 = randn(rng, (4, 5)), randn(rng, (5, 3), np.float64)
    i32, i64 = randn(rng, (4, 5), np.int32), randn(rng, (5, 3), np.int64)
    assert mm(f32, f64).dtype == np.float64
    assert mm(i64.T.copy(), f32.T.copy()).dtype == np.float32
    assert mm(i32, i64).dtype == np.int64
    np.testing.assert_allclose(mm(f32, f64), f32.astype(np.float64) @ f64, rtol=1e-12)
    np.testing.assert_array_equal(mm(i32, i64), i32.astype(np.int64) @ i64)


def test_matmul_scalar_result():
    a = np.arange(4, dtype=np.float64)
    r = _C.matmul(arr(a), arr(a))
    assert r.shape == () and npy(r) == 14.0


# ---- matmul: errors ------------------------------------------------------------------

@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (2,)), ((5,), (3, 5)),
                                   ((2, 3, 4), (3, 4, 5))])
def test_matmul_shape_errors(sa, sb):
    a, b = np.ones(sa, np.float32), np.ones(sb, np.float32)
    with pytest.raises(ValueError, match="matmul") as e:
        mm(a, b)
    assert str(list(sa)) in str(e.value) and str(list(sb)) in str(e.value)


def test_matmul_scalar_operand_error():
    with pytest.raises(ValueError, match="at least 1-D"):
        _C.matmul(_C.scalar(2.0, DT.float32), arr(np.ones(3, np.float32)))


def test_matmul_bool_error():
    with pytest.raises(TypeError, match="matmul"):
        mm(np.ones((2, 2), bool), np.ones((2, 2), bool))


# ---- matmul: determinism and ISA selection ------------------------------------------------

@pytest.mark.parametrize("m,k,n", [(301, 517, 263), (500, 300, 200), (1000, 40, 100)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_same_bits_any_thread_count(cap, threads, dtype, m, k, n):
    rng = np.random.default_rng(8)
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    _C.set_num_threads(1)
    one = mm(a, b)
    _C.set_num_threads(2)
    two = mm(a, b)
    _C.set_num_threads(3)
    three = mm(a, b)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, three)


# Products big enough for the packed path (over the direct path's 110^3
# multiply-adds, N > 16) whose M leaves every possible edge tile of the
# 12-row micro-kernel and whose N leaves 1..31 columns in the last 32-wide
# panel: the edge tiles run kernels with 4 / 8 rows and 1 vector.
@pytest.mark.parametrize("extra_m", range(1, 13))
@pytest.mark.parametrize("b_layout", ["rows", "transposed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_packed_edge_tiles(cap, extra_m, b_layout, dtype):
    rng = np.random.default_rng(extra_m)
    m, k, n = 120 + extra_m, 100, 256 + 2 * extra_m + 5  # n % 32 in 7..29 (odd)
    a = randn(rng, (m, k), dtype)
    b = randn(rng, (k, n), dtype) if b_layout == "rows" else randn(rng, (n, k), dtype).T
    check_close(mm(a, b), a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_tiles_same_bits_as_full_tiles(cap, dtype):
    """A row (column) of C gets the same arithmetic whether an edge tile of
    4 / 8 rows (1 vector) or a full tile computes it: bit-identical."""
    rng = np.random.default_rng(3)
    a, b = randn(rng, (24, 1300), dtype), randn(rng, (1300, 288), dtype)  # 4 rows: over the direct path
    full = mm(a, b)  # 2 x 12 rows, 9 x 32 columns: full tiles only
    for rows in (4, 8, 13, 16, 20):
        np.testing.assert_array_equal(mm(a[:rows], b), full[:rows])
    for cols in (272, 260, 257):  # last panel 16 / 4 / 1 columns
        np.testing.assert_array_equal(mm(a, b[:, :cols]), full[:, :cols])
        bt = np.ascontiguousarray(b[:, :cols].T).T  # transposed view: the other packing path
        np.testing.assert_array_equal(mm(a, bt), full[:, :cols])


@pytest.mark.parametrize("b_layout", ["rows", "transposed"])
def test_linear_layer_shapes_same_bits_any_thread_count(threads, b_layout):
    """128x256 @ 256x784 (a linear layer's dX): M is one row block, so the
    threads split the B panels; 1, 2 and 3 threads agree bit for bit."""
    rng = np.random.default_rng(4)
    a = randn(rng, (128, 256))
    b = randn(rng, (256, 784)) if b_layout == "rows" else randn(rng, (784, 256)).T
    outs = []
    for t in (1, 2, 3):
        _C.set_num_threads(t)
        outs.append(mm(a, b))
    check_close(outs[0], a, b)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_paths_agree(threads):
    """Each available ISA path computes the same product (to rounding)."""
    rng = np.random.default_rng(9)
    a, b = randn(rng, (150, 260)), randn(rng, (260, 90))
    try:
        for c in CAPS:
            _C.set_cpu_capability(c)
            check_close(mm(a, b), a, b)
    finally:
        _C.set_cpu_capability("auto")


def test_set_cpu_capability_rejects_unknown():
    with pytest.raises(ValueError, match="set_cpu_capability"):
        _C.set_cpu_capability("sse9")


def _run_child(code, **env):
    child_env = dict(os.environ, **env)
    here = os.path.dirname(os.path.abspath(__file__))
    from conftest import package_pythonpath

    child_env["PYTHONPATH"] = os.pathsep.join([package_pythonpath(), here])
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=child_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


CHILD = """
    import numpy as np
    from test_gemm_random_native import _C, mm, check_close
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((70, 90)).astype(np.float32), rng.standard_normal((90, 50)).astype(np.float32)
    check_close(mm(a, b), a, b)
    print(_C.gemm_info())
"""


@functools.lru_cache(maxsize=None)
def _best_cap():
    return _run_child("from test_gemm_random_native import _C; print(_C.gemm_info())",
                      FASTGRAD_CPU_CAPABILITY="auto")


@pytest.mark.parametrize("want", CAPS)
def test_env_var_forces_path(want):
    best = _best_cap()
    got = _run_child(CHILD, FASTGRAD_CPU_CAPABILITY=want)
    if CAPS.index(want) < CAPS.index(best):
        pytest.skip(f"CPU has no {want}")
    assert got == want


# ---- random: Philox known answer and stream layout ----------------------------------------

M32 = 0xFFFFFFFF


def philox_ref(seed, ctr):
    """Pure-Python Philox-4x32-10 with the counter/key layout of random.h."""
    c = [ctr & M32, (ctr >> 32) & M32, 0, 0]
    k = [seed & M32, (seed >> 32) & M32]
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & M32, p1 & M32, ((p0 >> 32) ^ c[3] ^ k[1]) & M32, p0 & M32]
        k = [(k[0] + 0x9E3779B9) & M32, (k[1] + 0xBB67AE85) & M32]
    return c


def test_philox_known_answer():
    # Random123's published vector for philox4x32-10, counter 0, key 0.
    assert philox_ref(0, 0) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    _C.manual_seed(0)
    got = npy(_C.rand([4], DT.float32))
    want = np.array([(w >> 8) / 2**24 for w in philox_ref(0, 0)], np.float32)
    np.testing.assert_array_equal(got, want)


def test_stream_layout_and_offsets():
    seed = 1234567890123
    _C.manual_seed(seed)
    assert _C.get_rng_state() == (seed, 0)
    f32 = npy(_C.rand([10], DT.float32))       # 3 blocks
    assert _C.get_rng_state() == (seed, 3)
    f64 = npy(_C.rand([3], DT.float64))        # 2 blocks
    assert _C.get_rng_state() == (seed, 5)
    ints = npy(_C.randint(-3, 1000, [5], DT.int64))  # 3 blocks
    assert _C.get_rng_state() == (seed, 8)
    words = [w for q in range(3) for w in philox_ref(seed, q)]
    np.testing.assert_array_equal(f32, np.array([(w >> 8) / 2**24 for w in words[:10]], np.float32))
    words = [w for q in range(3, 5) for w in philox_ref(seed, q)]
    u64 = [words[2 * i] | (words[2 * i + 1] << 32) for i in range(3)]
    np.testing.assert_array_equal(f64, np.array([(x >> 11) / 2**53 for x in u64]))
    words = [w for q in range(5, 8) for w in philox_ref(seed, q)]
    u64 = [words[2 * i] | (words[2 * i + 1] << 32) for i in range(5)]
    np.testing.assert_array_equal(ints, np.array([-3 + ((x * 1003) >> 64) for x in u64]))


@pytest.mark.parametrize("dtype", [DT.float32, DT.float64])
def test_randn_stream_layout(dtype):
    """randn is Box-Muller on the documented pairs of words (float32: fast
    polynomials, accurate to a few ulps; float64: libm)."""
    seed = 99
    _C.manual_seed(seed)
    got = npy(_C.randn([7], dtype)).astype(np.float64)
    words = [w for q in range(4) for w in philox_ref(seed, q)]
    if dtype == DT.float32:
        u1 = [((words[2 * p] >> 8) + 1) / 2**24 for p in range(4)]
        u2 = [(words[2 * p + 1] >> 8) / 2**24 for p in range(4)]
        tol = 1e-5
    else:
        u64 = [words[2 * i] | (words[2 * i + 1] << 32) for i in range(8)]
        u1 = [((u64[2 * p] >> 11) + 1) / 2**53 for p in range(4)]
        u2 = [(u64[2 * p + 1] >> 11) / 2**53 for p in range(4)]
        tol = 1e-12
    want = []
    for a, b in zip(u1, u2):
        r = np.sqrt(-2 * np.log(a))
        want += [r * np.cos(2 * np.pi * b), r * np.sin(2 * np.pi * b)]
    np.testing.assert_allclose(got, want[:7], rtol=tol, atol=tol)
    assert _C.get_rng_state() == (seed, 2 if dtype == DT.float32 else 4)


def test_seed_determinism_and_state_roundtrip():
    _C.manual_seed(42)
    a = [npy(_C.rand([7, 5], DT.float32)), npy(_C.randn([9], DT.float64)), npy(_C.randperm(50))]
    _C.manual_seed(42)
    b = [npy(_C.rand([7, 5], DT.float32)), npy(_C.randn([9], DT.float64)), npy(_C.randperm(50))]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    state = _C.get_rng_state()
    c1 = npy(_C.randn([100], DT.float32))
    c2 = npy(_C.randn([100], DT.float32))
    assert not np.array_equal(c1, c2)  # the stream moves on
    _C.set_rng_state(*state)
    np.testing.assert_array_equal(npy(_C.randn([100], DT.float32)), c1)
    _C.manual_seed(43)
    assert not np.array_equal(npy(_C.rand([7, 5], DT.float32)), a[0])


def test_negative_and_huge_seeds():
    _C.manual_seed(-1)
    assert _C.get_rng_state() == (2**64 - 1, 0)
    _C.manual_seed(2**64 - 1)
    assert _C.get_rng_state()[0] == 2**64 - 1


def _draw_all():
    """One of every sampler, big enough to be split across threads."""
    n = 1 << 17
    out = [
        npy(_C.rand([n], DT.float32)), npy(_C.rand([n], DT.float64)),
        npy(_C.randn([n + 1], DT.float32)), npy(_C.randn([n + 1], DT.float64)),
        npy(_C.normal(2.0, 3.0, [n], DT.float32)),
        npy(_C.randint(-10, 10, [n], DT.int64)), npy(_C.randint(0, 7, [n], DT.int32)),
        npy(_C.randperm(n)),
        npy(_C.bernoulli(arr(np.full(n, 0.3, np.float32)))),
        npy(_C.dropout_mask([n], 0.25, DT.float32)),
    ]
    x = _C.zeros([n], DT.float64, "cpu")
    _C.uniform_(x, -1.0, 3.0)
    out.append(npy(x))
    _C.normal_(x, 1.0, 0.5)
    out.append(npy(x))
    return out


def test_random_same_numbers_any_thread_count(threads):
    results = []
    for nt in (1, 2, 3):
        _C.set_num_threads(nt)
        _C.manual_seed(2024)
        results.append(_draw_all())
    for other in results[1:]:
        for x, y in zip(results[0], other):
            np.testing.assert_array_equal(x, y)


# ---- random: distributions ---------------------------------------------------------------

N_STAT = 1_000_000


@pytest.mark.parametrize("dtype", [DT.float32, DT.float64])
def test_rand_moments(dtype):
    _C.manual_seed(1)
    u = npy(_C.rand([1000, 1000], dtype))
    assert u.dtype == NP_OF[dtype] and u.shape == (1000, 1000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.002
    assert abs(u.var() - 1 / 12) < 0.001
    hist = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(hist - N_STAT / 10) < 2000)


@pytest.mark.parametrize("dtype", [DT.float32, DT.float64])
def test_randn_moments(dtype):
    _C.manual_seed(2)
    z = npy(_C.randn([N_STAT + 3], dtype)).astype(np.float64)  # odd size: a partial last block
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 0.005
    assert abs(z.var() - 1) < 0.01
    assert abs(np.mean(z**3)) < 0.02               # symmetric
    assert abs(np.mean(z**4) - 3) < 0.05           # normal kurtosis
    assert abs(np.mean(np.abs(z) < 1) - 0.682689) < 0.002


def test_normal_and_inplace_moments():
    _C.manual_seed(3)
    z = npy(_C.normal(3.0, 2.0, [N_STAT], DT.float64))
    assert abs(z.mean() - 3) < 0.01 and abs(z.std() - 2) < 0.01
    x = _C.empty([N_STAT], DT.float32, "cpu")
    v0 = x.version
    _C.uniform_(x, -2.0, 6.0)
    assert x.version > v0
    u = npy(x)
    assert u.min() >= -2 and u.max() <= 6 and abs(u.mean() - 2) < 0.02
    _C.normal_(x, -1.0, 0.5)
    z = npy(x)
    assert abs(z.mean() + 1) < 0.003 and abs(z.std() - 0.5) < 0.003
    assert np.all(npy(_C.normal(1.5, 0.0, [10], DT.float32)) == 1.5)


def test_inplace_on_noncontiguous_view():
    base = _C.zeros([6, 8], DT.float64, "cpu")
    view = _C.transpose(_C.slice(base, 1, 0, 8, 2), 0, 1)  # (4, 6) view, strides (2, 8)
    state = _C.get_rng_state()
    _C.uniform_(view, 1.0, 2.0)
    b = npy(base)
    assert np.all(b[:, 1::2] == 0)  # untouched
    assert np.all((b[:, ::2] >= 1) & (b[:, ::2] < 2))
    # element i of the call is element i of the view in row-major order
    _C.set_rng_state(*state)
    fresh = _C.zeros([4, 6], DT.float64, "cpu")
    _C.uniform_(fresh, 1.0, 2.0)
    np.testing.assert_array_equal(npy(view), npy(fresh))


def test_randint():
    _C.manual_seed(4)
    r = npy(_C.randint(-3, 5, [N_STAT], DT.int64))
    assert r.dtype == np.int64 and r.min() == -3 and r.max() == 4
    counts = np.bincount(r + 3)
    assert np.all(np.abs(counts - N_STAT / 8) < 1500)
    r32 = npy(_C.randint(0, 2**31 - 1, [1000], DT.int32))
    assert r32.dtype == np.int32 and r32.min() >= 0
    big = npy(_C.randint(-(2**63), 2**63 - 1, [1000], DT.int64))
    assert big.min() < -(2**60) and big.max() > 2**60
    one = npy(_C.randint(7, 8, [10], DT.int64))
    assert np.all(one == 7)
    f = npy(_C.randint(0, 10, [100], DT.float32))
    assert f.dtype == np.float32 and np.all(f == np.round(f)) and f.min() >= 0 and f.max() <= 9


def test_randperm():
    _C.manual_seed(5)
    for n in (0, 1, 2, 17, 1000, 100_003):
        p = npy(_C.randperm(n))
        assert p.dtype == np.int64 and p.shape == (n,)
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
    assert npy(_C.randperm(10, DT.int32)).dtype == np.int32
    # uniform over the 6 permutations of 3 elements
    counts = {}
    for _ in range(6000):
        key = tuple(npy(_C.randperm(3)))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6 and all(abs(c - 1000) < 150 for c in counts.values())


def test_bernoulli_and_dropout_mask():
    _C.manual_seed(6)
    p = np.tile(np.array([0.0, 1.0, 0.3, 0.9], np.float64), 250_000).reshape(1000, 1000)
    pv = np.asfortranarray(p)  # non-contiguous input
    s = npy(_C.bernoulli(_C.from_numpy(pv)))
    assert s.dtype == np.float64 and s.shape == p.shape
    assert set(np.unique(s)) <= {0.0, 1.0}
    assert np.all(s[p == 0] == 0) and np.all(s[p == 1] == 1)
    assert abs(s[p == 0.3].mean() - 0.3) < 0.004 and abs(s[p == 0.9].mean() - 0.9) < 0.003
    m = npy(_C.dropout_mask([N_STAT], 0.2, DT.float32))
    assert set(np.unique(m)) == {np.float32(0), np.float32(1 / 0.8)}
    assert abs(np.mean(m == 0) - 0.2) < 0.002
    assert abs(m.mean() - 1.0) < 0.005  # inverted dropout keeps the expectation
    assert np.all(npy(_C.dropout_mask([100], 0.0, DT.float64)) == 1)
    assert np.all(npy(_C.dropout_mask([100], 1.0, DT.float64)) == 0)


# ---- random: errors -----------------------------------------------------------------------

def test_random_errors():
    with pytest.raises(ValueError, match="randint"):
        _C.randint(5, 5, [3], DT.int64)
    with pytest.raises(ValueError, match="randint"):
        _C.randint(0, 2**40, [3], DT.int32)
    with pytest.raises(TypeError, match="randint"):
        _C.randint(0, 2, [3], DT.bool)
    with pytest.raises(TypeError, match="rand"):
        _C.rand([3], DT.int64)
    with pytest.raises(TypeError, match="normal"):
        _C.randn([3], DT.int32)
    with pytest.raises(ValueError, match="normal"):
        _C.normal(0.0, -1.0, [3], DT.float32)
    with pytest.raises(TypeError, match="uniform_"):
        _C.uniform_(_C.zeros([3], DT.int64, "cpu"), 0.0, 1.0)
    with pytest.raises(ValueError, match="uniform_"):
        _C.uniform_(_C.zeros([3], DT.float32, "cpu"), 2.0, 1.0)
    with pytest.raises(TypeError, match="normal_"):
        _C.normal_(_C.zeros([3], DT.int32, "cpu"), 0.0, 1.0)
    with pytest.raises(ValueError, match="bernoulli"):
        _C.bernoulli(arr(np.array([0.5, 1.5], np.float32)))
    with pytest.raises(ValueError, match="bernoulli"):
        _C.bernoulli(arr(np.array([np.nan], np.float32)))
    with pytest.raises(TypeError, match="bernoulli"):
        _C.bernoulli(arr(np.array([1, 0], np.int64)))
    with pytest.raises(ValueError, match="dropout_mask"):
        _C.dropout_mask([3], 1.5, DT.float32)
    with pytest.raises(ValueError, match="randperm"):
        _C.randperm(-1)
    with pytest.raises(ValueError):
        _C.rand([-1, 2], DT.float32)
