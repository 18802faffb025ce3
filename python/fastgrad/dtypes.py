"""The dtype objects (fg.float32, ...) and PyTorch's type-promotion rules."""
import numpy as np

from . import _C


class dtype:
    """An element type. Compare with ``is`` or ``==``; ``repr`` is ``fastgrad.float32``."""

    __slots__ = ("name", "_c", "itemsize", "is_floating_point", "_np", "_rank")

    def __init__(self, name, c, itemsize, is_floating_point, np_type, rank):
        self.name = name
        self._c = c
        self.itemsize = itemsize
        self.is_floating_point = is_floating_point
        self._np = np.dtype(np_type)
        self._rank = rank  # 0 bool, 1 integer, 2 floating: the promotion category

    def __repr__(self):
        return "fastgrad." + self.name

    def __reduce__(self):
        return self.name  # pickles as the module-level singleton


bool_ = dtype("bool", _C.DType.bool, 1, False, np.bool_, 0)
int32 = dtype("int32", _C.DType.int32, 4, False, np.int32, 1)
int64 = dtype("int64", _C.DType.int64, 8, False, np.int64, 1)
float32 = dtype("float32", _C.DType.float32, 4, True, np.float32, 2)
float64 = dtype("float64", _C.DType.float64, 8, True, np.float64, 2)

ALL = (bool_, int32, int64, float32, float64)
_BY_C = {d._c: d for d in ALL}
_BY_ID = ALL  # indexed by _C.Array.dtype_id (the DType enum value: bool, int32, int64, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "long": int64, "int": int32, "bool_": bool_})
_BY_NP = {d._np: d for d in ALL}
_ORDER = {bool_: 0, int32: 1, int64: 2, float32: 3, float64: 4}
_BY_ORDER = {v: k for k, v in _ORDER.items()}

default_float = float32
default_int = int64


def from_c(c):
    return _BY_C[c]


def to_dtype(d, op="dtype"):
    """Accepts a fastgrad dtype, a name, a NumPy dtype or a Python type."""
    if isinstance(d, dtype):
        return d
    if d is float:
        return default_float
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d]
    try:
        return _BY_NP[np.dtype(d)]
    except (TypeError, KeyError):
        raise TypeError(f"{op}: unsupported dtype {d!r} (fastgrad has bool, int32, int64, float32, float64)") from None


def promote_types(a, b):
    return a if _ORDER[a] >= _ORDER[b] else b


def scalar_dtype(v):
    """The dtype PyTorch gives a Python scalar when it takes part in an op."""
    if isinstance(v, bool):
        return bool_
    if isinstance(v, int):
        return int64
    return default_float


def _combine_categories(higher, lower):
    # PyTorch's rule: a higher-priority operand group (dimensioned tensors >
    # 0-d tensors > Python scalars) decides, unless a lower group brings a
    # higher category (bool < int < float).
    if higher is None:
        return lower
    if lower is None or higher.is_floating_point:
        return higher
    if higher is bool_ or lower.is_floating_point:
        return promote_types(higher, lower)
    return higher


def result_type(*operands):
    """Result dtype of an op over tensors and Python scalars, PyTorch rules."""
    from .tensor import Tensor

    dim_t = zero_t = scalar_t = None
    for x in operands:
        if isinstance(x, Tensor):
            dt = x.dtype
            if x.ndim > 0:
                dim_t = dt if dim_t is None else promote_types(dim_t, dt)
            else:
                zero_t = dt if zero_t is None else promote_types(zero_t, dt)
        elif x is not None:
            dt = scalar_dtype(x)
            scalar_t = dt if scalar_t is None else promote_types(scalar_t, dt)
    return _combine_categories(dim_t, _combine_categories(zero_t, scalar_t))
