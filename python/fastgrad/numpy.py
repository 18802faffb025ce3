"""fastgrad.numpy: NumPy-named functions on fastgrad tensors, so HIPS-autograd
style code runs with only its imports changed:

    import fastgrad.numpy as np
    from fastgrad import grad
"""
import builtins as _builtins

import numpy as _np

from . import dtypes as _dt
from .ops import creation as _cr
from .ops import elementwise as _ew
from .ops import linalg as _la
from .ops import reduce as _rd
from .ops import shape as _sh
from .tensor import Tensor as _Tensor
from .tensor import tensor as _tensor

pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
newaxis = None
float32, float64, int32, int64 = _dt.float32, _dt.float64, _dt.int32, _dt.int64


def _t(x):
    if isinstance(x, _Tensor):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return _tensor(float(x), dtype=_dt.float64)
    return _tensor(_np.asarray(x, dtype=_np.float64))


def _numbers_in_numbers_out(fn):
    """Plain numbers in, a plain number out (as NumPy outside a trace, so the
    seed's `print(tanh(1.01))` prints a float); tensors in, tensors out."""

    def f(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, _Tensor) and out.ndim == 0 and not out.requires_grad and out._tangent is None and all(
                isinstance(a, (int, float, _np.number, _np.bool_)) for a in args):
            return out.item()
        return out

    f.__name__ = fn.__name__
    f.__doc__ = fn.__doc__
    return f


def _unary(fn):
    def f(x):
        return fn(_t(x))

    f.__name__ = fn.__name__
    return _numbers_in_numbers_out(f)


exp, log, log1p, expm1, sqrt = (_unary(f) for f in (_ew.exp, _ew.log, _ew.log1p, _ew.expm1, _ew.sqrt))
sin, cos, tan, tanh = (_unary(f) for f in (_ew.sin, _ew.cos, _ew.tan, _ew.tanh))
abs, sign, square, negative, reciprocal = (_unary(f) for f in (_ew.abs, _ew.sign, _ew.square, _ew.neg,
                                                                _ew.reciprocal))
absolute = abs
floor, ceil = _unary(_ew.floor), _unary(_ew.ceil)


def sinh(x):
    x = _t(x)
    return (x.exp() - (-x).exp()) * 0.5


def cosh(x):
    x = _t(x)
    return (x.exp() + (-x).exp()) * 0.5


def sigmoid(x):
    return _ew.sigmoid(_t(x))


def array(obj, dtype=None):
    return _tensor(obj, dtype=dtype if dtype is not None else (_dt.float64 if not isinstance(obj, _Tensor) else None))


asarray = array


def add(a, b):
    return _t(a) + b


def subtract(a, b):
    return _t(a) - b


def multiply(a, b):
    return _t(a) * b


def divide(a, b):
    return _t(a) / b


true_divide = divide


def power(a, b):
    return _t(a) ** b


def maximum(a, b):
    return _ew.maximum(_t(a), _t(b))


def minimum(a, b):
    return _ew.minimum(_t(a), _t(b))


def where(c, a, b):
    return _ew.where(_t(c) if isinstance(c, _Tensor) else _tensor(c), _t(a), _t(b))


def sum(a, axis=None, keepdims=False):
    return _rd.sum(_t(a), dim=axis, keepdim=keepdims)


def mean(a, axis=None, keepdims=False):
    return _rd.mean(_t(a), dim=axis, keepdim=keepdims)


def prod(a, axis=None, keepdims=False):
    return _rd.prod(_t(a), dim=axis, keepdim=keepdims)


def max(a, axis=None, keepdims=False):
    return _rd.amax(_t(a), dim=() if axis is None else axis, keepdim=keepdims)


def min(a, axis=None, keepdims=False):
    return _rd.amin(_t(a), dim=() if axis is None else axis, keepdim=keepdims)


def var(a, axis=None, ddof=0, keepdims=False):
    return _rd.var(_t(a), dim=axis, correction=ddof, keepdim=keepdims)


def std(a, axis=None, ddof=0, keepdims=False):
    return _rd.std(_t(a), dim=axis, correction=ddof, keepdim=keepdims)


def dot(a, b):
    a, b = _t(a), _t(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return _la.matmul(a, b)


matmul = dot


def outer(a, b):
    return _la.outer(_t(a).reshape(-1), _t(b).reshape(-1))


def reshape(a, shape):
    return _t(a).reshape(shape)


def transpose(a, axes=None):
    a = _t(a)
    return a.permute(*(axes if axes is not None else range(a.ndim - 1, -1, -1)))


def concatenate(arrays, axis=0):
    return _sh.cat([_t(a) for a in arrays], axis)


def stack(arrays, axis=0):
    return _sh.stack([_t(a) for a in arrays], axis)


def linspace(start, stop, num=50):
    return _cr.linspace(start, stop, num, dtype=_dt.float64)


def arange(*args):
    return _cr.arange(*args)


def zeros(shape):
    return _cr.zeros(shape, dtype=_dt.float64)


def ones(shape):
    return _cr.ones(shape, dtype=_dt.float64)


def zeros_like(a):
    return _cr.zeros_like(_t(a))


def ones_like(a):
    return _cr.ones_like(_t(a))


def logaddexp(a, b):
    a, b = _t(a), _t(b)
    m = _ew.maximum(a, b).detach()
    return m + ((a - m).exp() + (b - m).exp()).log()


def clip(a, a_min, a_max):
    return _ew.clamp(_t(a), a_min, a_max)


def allclose(a, b, rtol=1e-5, atol=1e-8):
    return _np.allclose(_np.asarray(_t(a).detach()), _np.asarray(_t(b).detach()), rtol=rtol, atol=atol)


def shape(a):
    return tuple(_t(a).shape)


def ndim(a):
    return _t(a).ndim


def size(a):
    return _t(a).numel()


class _Random:
    """np.random: normal/randn/rand drawn from fastgrad's generator (float64)."""

    @staticmethod
    def seed(s):
        _cr.manual_seed(s)

    @staticmethod
    def randn(*shape):
        return _cr.randn(*shape, dtype=_dt.float64)

    @staticmethod
    def rand(*shape):
        return _cr.rand(*shape, dtype=_dt.float64)

    @staticmethod
    def normal(loc=0.0, scale=1.0, size=None):
        size = () if size is None else size
        return _cr.normal(loc, scale, size=size if isinstance(size, tuple) else (size,), dtype=_dt.float64)


random = _Random()

for _name in ("sinh", "cosh", "sigmoid", "add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
              "where", "sum", "mean", "prod", "max", "min", "dot", "logaddexp", "clip"):
    globals()[_name] = _numbers_in_numbers_out(globals()[_name])
true_divide, matmul = divide, dot
del _builtins, _name
