"""Torch-parity and exception-parity helpers for the fastgrad tests.

check_op runs the same seeded NumPy inputs through fastgrad and PyTorch and
compares output shape, dtype, values, then the gradients of a random
cotangent with respect to every floating-point input (tinygrad's
helper_test_op). check_raises checks that both frameworks reject the same
call, and that fastgrad's error is a ValueError/TypeError/IndexError/
RuntimeError whose message names the op.

Input specs (the `inputs` sequence of both helpers), one per argument:
  tuple of ints      a random float array of that shape (dtype=, low/high)
  np.ndarray         these values; floating arrays are cast to dtype= and
                     differentiated, int/bool arrays are index/mask tensors
  Rand(shape, lo, hi) a random float array with its own range
  NC(shape, kind)    a non-contiguous view with that shape: a random leaf
                     `base` viewed by kind "T" (all dims reversed), "step"
                     (every dim sliced with step 2, last one reversed) or
                     "expand" (broadcast along dim 0); gradients are
                     compared on the base
  list               a list argument (cat/stack) of specs
  anything else      passed unchanged to both (Python scalars, None, ...)
"""
import contextlib
import os

import numpy as np
import pytest
import torch

import fastgrad as fg
from fastgrad import _C

FLOAT_DTYPES = (np.float32, np.float64)

# FASTGRAD_TEST_DEVICE=cuda runs every check_op's fastgrad side on that
# device (inputs are created there; results are copied back to compare).
TEST_DEVICE = os.environ.get("FASTGRAD_TEST_DEVICE", "cpu")

_FG_DTYPE = {np.dtype(np.float32): fg.float32, np.dtype(np.float64): fg.float64, np.dtype(np.int64): fg.int64,
             np.dtype(np.int32): fg.int32, np.dtype(np.bool_): fg.bool}
_TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                np.dtype(np.int64): torch.int64, np.dtype(np.int32): torch.int32, np.dtype(np.bool_): torch.bool}
FG_TO_TORCH = {fg.float32: torch.float32, fg.float64: torch.float64, fg.int64: torch.int64, fg.int32: torch.int32,
               fg.bool: torch.bool}
TORCH_TO_FG = {v: k for k, v in FG_TO_TORCH.items()}

# (values atol, values rtol, grad atol, grad rtol) per float dtype
TOLS = {np.dtype(np.float32): (1e-5, 1e-4, 1e-4, 1e-3), np.dtype(np.float64): (1e-10, 1e-8, 1e-9, 1e-7)}

FG_ERRORS = (ValueError, TypeError, IndexError, RuntimeError)


def fg_dtype(np_dtype):
    return _FG_DTYPE[np.dtype(np_dtype)]


def torch_dtype(np_dtype):
    return _TORCH_DTYPE[np.dtype(np_dtype)]


# -- inputs --------------------------------------------------------------------------------------


class Rand:
    """Spec of a random float input of `shape` drawn from U(low, high) (its own range)."""

    def __init__(self, shape, low, high):
        self.shape, self.low, self.high = tuple(shape), low, high

    def __repr__(self):
        return f"Rand({self.shape}, {self.low}, {self.high})"


class NC:
    """Spec of a non-contiguous input: `shape` seen through a view of kind
    'T' (transposed), 'step' (sliced with steps, one dim reversed) or
    'expand' (broadcast along dim 0, stride 0)."""

    KINDS = ("T", "step", "expand")

    def __init__(self, shape, kind, low=None, high=None):
        if kind not in self.KINDS:
            raise ValueError(kind)
        self.shape, self.kind, self.low, self.high = tuple(shape), kind, low, high

    def base_shape(self):
        s = self.shape
        if self.kind == "T":
            return s[::-1]
        if self.kind == "step":
            return tuple(2 * n for n in s)
        return (1,) + s[1:] if s else s

    def view(self, t):
        """The same view in either framework (both spell it the same way)."""
        n = len(self.shape)
        if self.kind == "T":
            return t.permute(*range(n - 1, -1, -1))
        if self.kind == "step":
            if n == 0:
                return t
            v = t[tuple(slice(None, None, 2) for _ in range(n))]
            return v.flip(n - 1)
        return t.expand(*self.shape)

    def __repr__(self):
        return f"NC({self.shape}, {self.kind!r})"


def _is_shape(x):
    return isinstance(x, tuple) and all(isinstance(v, (int, np.integer)) for v in x)


def make_arrays(inputs, dtype=np.float32, low=-2.0, high=2.0, seed=0):
    """Seeded NumPy arrays for the specs (float specs in `dtype`)."""
    rng = np.random.default_rng(seed)

    def one(spec):
        if _is_shape(spec):
            return rng.uniform(low, high, size=spec).astype(dtype)
        if isinstance(spec, Rand):
            return rng.uniform(spec.low, spec.high, size=spec.shape).astype(dtype)
        if isinstance(spec, NC):
            lo = low if spec.low is None else spec.low
            hi = high if spec.high is None else spec.high
            return (spec, rng.uniform(lo, hi, size=spec.base_shape()).astype(dtype))
        if isinstance(spec, np.ndarray):
            return spec.astype(dtype) if spec.dtype.kind == "f" else spec
        if isinstance(spec, list):
            return [one(s) for s in spec]
        return spec

    return [one(s) for s in inputs]


def _build(arrays, lib, requires_grad):
    """(arguments, leaves) for lib in ('fg', 'torch'); leaves are the float
    leaf tensors that gradients are compared on."""
    leaves = []

    def mk(a, grad):
        if lib == "fg":
            t = fg.tensor(a, device=TEST_DEVICE)
        else:
            t = torch.tensor(a)
        if grad and a.dtype.kind == "f":
            t.requires_grad_(True)
            leaves.append(t)
        return t

    def one(a):
        if isinstance(a, np.ndarray):
            return mk(a, requires_grad)
        if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], NC):
            return a[0].view(mk(a[1], requires_grad))
        if isinstance(a, list):
            return [one(x) for x in a]
        return a

    return [one(a) for a in arrays], leaves


def fg_inputs(inputs, dtype=np.float32, requires_grad=False, **kw):
    """Only the fastgrad tensors for the specs."""
    return _build(make_arrays(inputs, dtype, **kw), "fg", requires_grad)[0]


def to_numpy(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    if isinstance(t, fg.Tensor):
        return np.array(t.detach().numpy())
    return np.asarray(t)


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def assert_close(actual, expected, atol, rtol, what="values"):
    """fastgrad vs torch tensor: shape, mapped dtype, values (NaN == NaN, inf == inf)."""
    assert isinstance(actual, fg.Tensor), f"{what}: expected a fastgrad Tensor, got {type(actual).__name__}"
    assert tuple(actual.shape) == tuple(expected.shape), \
        f"{what}: shape {tuple(actual.shape)} != torch's {tuple(expected.shape)}"
    assert FG_TO_TORCH[actual.dtype] == expected.dtype, f"{what}: dtype {actual.dtype} != torch's {expected.dtype}"
    a, e = to_numpy(actual), to_numpy(expected)
    if e.dtype.kind in "biu":
        np.testing.assert_array_equal(a, e, err_msg=what)
    else:
        if e.dtype == np.float32:  # a float64 test's bounds on a float32 result (int inputs): 2 ulp at least
            rtol = max(rtol, 2.5e-7)
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, equal_nan=True, err_msg=what)


def check_op(fg_fn, torch_fn, inputs, dtype=np.float32, grad=True, atol=None, rtol=None, grad_atol=None,
             grad_rtol=None, low=-2.0, high=2.0, seed=0, cotangent_seed=1):
    """Runs fg_fn and torch_fn (None: the same function, for code that reads
    the same in both) on the same seeded inputs and compares outputs, then
    the gradients of a random cotangent w.r.t. every float input.

    Returns (fastgrad outputs, torch outputs)."""
    torch_fn = torch_fn or fg_fn
    dt = np.dtype(dtype)
    tol = TOLS.get(dt, (0, 0, 0, 0))
    atol = tol[0] if atol is None else atol
    rtol = tol[1] if rtol is None else rtol
    grad_atol = tol[2] if grad_atol is None else grad_atol
    grad_rtol = tol[3] if grad_rtol is None else grad_rtol

    arrays = make_arrays(inputs, dtype, low=low, high=high, seed=seed)
    fg_args, fg_leaves = _build(arrays, "fg", grad)
    t_args, t_leaves = _build(arrays, "torch", grad)
    fo = fg_fn(*fg_args)
    to = torch_fn(*t_args)
    fouts, touts = _outputs(fo), _outputs(to)
    assert len(fouts) == len(touts), f"{len(fouts)} outputs, torch has {len(touts)}"
    for i, (a, e) in enumerate(zip(fouts, touts)):
        assert_close(a, e, atol, rtol, what=f"output {i}")
    if not grad or not t_leaves:
        return fo, to

    rng = np.random.default_rng(cotangent_seed)
    f_outs, f_cts, t_outs, t_cts = [], [], [], []
    for a, e in zip(fouts, touts):
        if e.requires_grad and e.dtype.is_floating_point:
            assert a.requires_grad, "a differentiable output of fastgrad does not require grad"
            ct = rng.uniform(-1, 1, size=tuple(e.shape)).astype(to_numpy(e).dtype)
            f_outs.append(a), f_cts.append(fg.tensor(ct, device=TEST_DEVICE))
            t_outs.append(e), t_cts.append(torch.tensor(ct))
    if not t_outs:
        return fo, to
    torch.autograd.backward(t_outs, t_cts)
    if len(f_outs) == 1:
        f_outs[0].backward(gradient=f_cts[0])
    else:
        fg.autograd.backward(f_outs, f_cts)
    for i, (a, e) in enumerate(zip(fg_leaves, t_leaves)):
        if e.grad is None:
            assert a.grad is None or not np.any(to_numpy(a.grad)), f"grad of input {i}: torch has none"
            continue
        assert a.grad is not None, f"grad of input {i} is None (torch has one)"
        assert_close(a.grad, e.grad, grad_atol, grad_rtol, what=f"grad of input {i}")
    return fo, to


def check_raises(fg_fn, torch_fn, inputs=(), match=None, dtype=np.float32, **kw):
    """Both frameworks raise on the same call; fastgrad's error is a
    ValueError/TypeError/IndexError/RuntimeError whose message contains
    `match` (the op's name; case-insensitive). Returns the fastgrad error."""
    torch_fn = torch_fn or fg_fn
    arrays = make_arrays(inputs, dtype, **kw)
    t_args, _ = _build(arrays, "torch", False)
    try:
        torch_fn(*t_args)
    except Exception:
        pass
    else:
        raise AssertionError("torch did not raise")
    fg_args, _ = _build(arrays, "fg", False)
    try:
        fg_fn(*fg_args)
    except FG_ERRORS as e:
        if match is not None:
            assert match.lower() in str(e).lower(), f"message {str(e)!r} does not name {match!r}"
        return e
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"fastgrad raised {type(e).__name__}: {e} (expected a "
                             "ValueError/TypeError/IndexError/RuntimeError)") from e
    raise AssertionError("fastgrad did not raise")


def noncontig_pair(np_array, kind):
    """(fastgrad view, torch view) holding np_array's values, non-contiguous by
    `kind` ('expand' keeps only np_array[:1], broadcast along dim 0)."""
    spec = NC(np_array.shape, kind)
    base = np.zeros(spec.base_shape(), dtype=np_array.dtype)
    n = np_array.ndim
    if kind == "T":
        base.transpose(*range(n - 1, -1, -1))[...] = np_array
    elif kind == "step":
        v = base[tuple(slice(None, None, 2) for _ in range(n))]
        if n:
            v = np.flip(v, n - 1)
        v[...] = np_array
    else:
        base[...] = np_array[:1]
    return spec.view(fg.tensor(base)), spec.view(torch.tensor(base))


# ---- CPU paths and ulp errors (the per-ISA kernel tests) --------------------------------------------

@contextlib.contextmanager
def forced_cpu_capability(cap, isa_in_use=None):
    """Runs the body on fastgrad's `cap` CPU path ('avx512', 'avx2', 'scalar',
    'auto'), restoring 'auto' after; skips when `isa_in_use()` (the kernel
    family's report of what runs) shows the CPU lacks `cap`."""
    _C.set_cpu_capability(cap)
    try:
        if isa_in_use is not None and isa_in_use() != cap:
            pytest.skip(f"this CPU has no {cap}")
        yield cap
    finally:
        _C.set_cpu_capability("auto")


def ulp_errors(got, ref, dtype, floor=True):
    """|got - ref| in ulp of ref rounded to dtype; NaN / inf must match exactly.
    ref is a long double (or float64) reference. floor: below the smallest
    normal number, in units of it (an absolute error there, not subnormal ulps)."""
    r = ref.astype(dtype)
    special = ~np.isfinite(r)
    assert np.array_equal(np.isnan(got), np.isnan(r)), "NaN positions differ"
    assert np.array_equal(got[special & ~np.isnan(r)], r[special & ~np.isnan(r)]), "inf results differ"
    ok = ~special
    den = np.spacing(np.abs(r[ok])).astype(np.longdouble)
    if floor:
        den = np.where(np.abs(r[ok]) < np.finfo(dtype).tiny, np.longdouble(np.finfo(dtype).tiny), den)
    err = np.zeros(len(r), dtype=np.longdouble)
    err[ok] = np.abs(got[ok].astype(np.longdouble) - ref[ok]) / den
    return err


# ---- layout checks of the elementwise kernels (tests/test_vecmath*.py) -----------------
# `ops` maps a name to a callable Tensor -> Tensor.

def _apply(op, x):
    return op(fg.from_numpy(x)).numpy()


def assert_tails_match_full_vectors(ops, x, n):
    """Every element gets the same bits wherever it sits: the first n elements
    alone, and at offsets that move them between lanes and vectors of a trip."""
    for name, op in ops.items():
        full = _apply(op, x)
        np.testing.assert_array_equal(_apply(op, x[:n].copy()), full[:n], err_msg=f"{name} n={n}")
        for off in (1, 5, 8, 16):
            np.testing.assert_array_equal(_apply(op, x[off:off + n].copy()), full[off:off + n],
                                          err_msg=f"{name} n={n} offset={off}")


def assert_layouts_give_same_bits(ops, x):
    """Transposed, strided and broadcast (stride 0) views of the 2-D x give the
    bits of a contiguous copy."""
    t = fg.from_numpy(x)
    for name, op in ops.items():
        np.testing.assert_array_equal(op(t.T).numpy(), _apply(op, np.ascontiguousarray(x.T)), err_msg=name)
        np.testing.assert_array_equal(op(t[:, ::3]).numpy(), _apply(op, x[:, ::3].copy()), err_msg=name)
        b = fg.from_numpy(x[:1]).expand(*x.shape)
        np.testing.assert_array_equal(op(b).numpy(), np.broadcast_to(_apply(op, x[:1]), x.shape), err_msg=name)


def assert_thread_counts_give_same_bits(ops, x):
    """One and two threads give the same bits for every op on the tensor x."""
    prev = fg.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            fg.set_num_threads(n)
            outs.append([op(x).numpy() for op in ops.values()])
    finally:
        fg.set_num_threads(prev)
    for name, a, b in zip(ops, *outs):
        np.testing.assert_array_equal(a, b, err_msg=name)
