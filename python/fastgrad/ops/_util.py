"""Helpers shared by the op modules: argument coercion and tangent sums."""
from .. import _C
from .. import dtypes as _dt
from ..tensor import Tensor, tensor_method  # noqa: F401  (re-exported for the op modules)

_wrap = Tensor._wrap
_BY_ID = _dt._BY_ID
# dtype ids at and above this one are the float dtypes (float32, float64): with
# a Python int/float operand the tensor's dtype is the result's (PyTorch's rule)
_FLOAT_ID0 = _dt.float32._c.__int__()
assert all(d.is_floating_point == (i >= _FLOAT_ID0) for i, d in enumerate(_BY_ID))


def scalar_tensor(value, dtype, like=None):
    """A 0-d tensor of `value`, on the device of the tensor `like` (CPU when None)."""
    if like is not None:
        dev = like._data.device
        if dev != "cpu":
            return _wrap(_C.full([], value, dtype._c, dev))
    return _wrap(_C.scalar(value, dtype._c))


def binary_operands(a, b, op):
    """Two tensors whose dtypes follow PyTorch's promotion for `a op b`."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        if a._data.dtype_id == b._data.dtype_id:
            return a, b
        rt = _dt.result_type(a, b)
    elif ta:
        kb = type(b)
        if (kb is float or kb is int) and a._data.dtype_id >= _FLOAT_ID0:
            return a, scalar_tensor(b, _BY_ID[a._data.dtype_id], a)  # a float tensor's dtype wins
        if not isinstance(b, (int, float, bool)):
            b = _coerce(b, op)
            return binary_operands(a, b, op)
        rt = _dt.result_type(a, b)
        b = scalar_tensor(b, rt, a)
    elif tb:
        ka = type(a)
        if (ka is float or ka is int) and b._data.dtype_id >= _FLOAT_ID0:
            return scalar_tensor(a, _BY_ID[b._data.dtype_id], b), b
        if not isinstance(a, (int, float, bool)):
            a = _coerce(a, op)
            return binary_operands(a, b, op)
        rt = _dt.result_type(a, b)
        a = scalar_tensor(a, rt, b)
    else:
        raise TypeError(f"{op}: expected at least one tensor argument")
    if a.dtype is not rt:
        a = a.to(rt)
    if b.dtype is not rt:
        b = b.to(rt)
    return a, b


def _coerce(x, op):
    import numpy as np

    if isinstance(x, np.ndarray):
        from ..tensor import tensor

        return tensor(x)
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    raise TypeError(f"{op}: unsupported operand type {type(x).__name__}")


def as_tensor_arg(x, op, like=None):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float, bool)):
        dt = _dt.result_type(like, x) if like is not None else _dt.scalar_dtype(x)
        return scalar_tensor(x, dt, like)
    return _coerce(x, op) if not isinstance(x, (list, tuple)) else __import__("fastgrad").tensor(x)


def tsum(*terms):
    """Sum of the tangent terms that exist (None = zero tangent)."""
    out = None
    for t in terms:
        if t is not None:
            out = t if out is None else out + t
    return out


def normalize_dims(dim, ndim, op):
    """dim=None|int|tuple -> list of non-negative ints ([] means all dims)."""
    if dim is None:
        return []
    n = ndim if ndim > 1 else 1
    if type(dim) is int and -n <= dim < n:  # the common case, without the general loop
        return [dim + n if dim < 0 else dim]
    if isinstance(dim, int):
        dim = (dim,)
    out = []
    for d in dim:
        d = int(d)
        if not -n <= d < n:
            raise IndexError(f"{op}: dim {d} is out of range for a {ndim}-d tensor (expected in [{-n}, {n - 1}])")
        out.append(d + n if d < 0 else d)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {tuple(dim)} appears more than once")
    return out
