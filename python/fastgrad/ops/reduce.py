"""Reductions, cumulative ops and softmax, with their vjp and jvp rules."""
import math

from .. import _C
from .. import dtypes as _dt
from ..autograd.function import Function
from ..autograd.grad_mode import state
from ._util import Tensor, _wrap, normalize_dims, scalar_tensor, tensor_method


def _dim_args(dim, axis, keepdim, keepdims):
    if axis is not None:
        if dim is not None:
            raise TypeError("reduction: pass either dim or axis, not both")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, bool(keepdim)


def _expand_back(g, ctx):
    """A reduced gradient broadcast back over the input's shape."""
    shape = ctx.in_meta[0][0] if hasattr(ctx, "in_meta") else ctx.in_shape
    if len(shape) == 0:  # a 0-d input reduced over dim 0 / -1
        return g.reshape(())
    if not ctx.keepdim:
        dims = ctx.dims or list(range(len(shape)))
        for d in sorted(dims):
            g = g.unsqueeze(d)
    return g.expand(*shape)


def _reduce_like(t, ctx, op):
    """Applies the same reduction pattern to a tangent (for linear reductions)."""
    return op(t, dim=tuple(ctx.dims) if ctx.dims else None, keepdim=ctx.keepdim)


class Sum(Function):
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.dims, ctx.keepdim, ctx.in_shape = dims, keepdim, x._data.shape
        return _C.sum(x._data, dims, keepdim, None if dtype is None else dtype._c)

    def vjp(ctx, g):
        return (_expand_back(g, ctx),)

    def jvp(ctx, t):
        return _reduce_like(t, ctx, sum)


@tensor_method
def sum(input, dim=None, keepdim=False, dtype=None, axis=None, keepdims=None):
    dim, keepdim = _dim_args(dim, axis, keepdim, keepdims)
    dims = normalize_dims(dim, input.ndim, "sum")
    dt = _dt.to_dtype(dtype, "sum") if dtype is not None else None
    return Sum.apply(input, dims=dims, keepdim=keepdim, dtype=dt)


class Mean(Function):
    def forward(ctx, x, dims, keepdim):
        ctx.dims, ctx.keepdim, ctx.in_shape = dims, keepdim, x._data.shape
        out = _C.mean(x._data, dims, keepdim)
        n_in = x._data.numel()
        n_out = out.numel()
        ctx.count = n_in // n_out if n_out else 0
        return out

    def vjp(ctx, g):
        return (_expand_back(g / ctx.count, ctx),)

    def jvp(ctx, t):
        return _reduce_like(t, ctx, mean)


@tensor_method
def mean(input, dim=None, keepdim=False, dtype=None, axis=None, keepdims=None):
    dim, keepdim = _dim_args(dim, axis, keepdim, keepdims)
    if dtype is not None:
        input = input.to(dtype)
    return Mean.apply(input, dims=normalize_dims(dim, input.ndim, "mean"), keepdim=keepdim)


class Prod(Function):
    save_output = True

    def forward(ctx, x, dims, keepdim):
        ctx.dims, ctx.keepdim, ctx.in_shape = dims, keepdim, x._data.shape
        ctx.save_for_backward(x)
        return _C.prod(x._data, dims, keepdim)

    def _d(ctx, v):
        (x,) = ctx.saved_tensors
        out = _expand_back(ctx.output, ctx)
        zero = x == 0
        # product of the others: out / x where x != 0; with exactly one zero in
        # the slice, the zero's partner is the product of the non-zeros.
        nonzero_prod = where(zero, scalar_tensor(1, x.dtype), x)
        nonzero_prod = (nonzero_prod.prod(ctx.dims[0], keepdim=True) if ctx.dims
                        else nonzero_prod.prod().reshape([1] * x.ndim))
        zero_count = zero.sum(dim=tuple(ctx.dims) if ctx.dims else None, keepdim=True)
        at_zero = where(zero_count == 1, nonzero_prod, scalar_tensor(0, x.dtype)).expand(*x.shape)
        safe_x = where(zero, scalar_tensor(1, x.dtype), x)
        return where(zero, at_zero, out / safe_x) * v

    def vjp(ctx, g):
        return (ctx._d(_expand_back(g, ctx)),)

    def jvp(ctx, t):
        return _reduce_like(ctx._d(t), ctx, sum)


def where(c, a, b):
    from .elementwise import where as w

    return w(c, a, b)


@tensor_method
def prod(input, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if isinstance(dim, (tuple, list)):
        raise TypeError("prod: dim must be an int or None")
    return Prod.apply(input, dims=normalize_dims(dim, input.ndim, "prod"), keepdim=bool(keepdim))


class _AmaxAmin(Function):
    kernel = None
    save_output = True

    def forward(ctx, x, dims, keepdim):
        ctx.dims, ctx.keepdim, ctx.in_shape = dims, keepdim, x._data.shape
        ctx.save_for_backward(x)
        return type(ctx).kernel(x._data, dims, keepdim)

    def _mask(ctx):
        (x,) = ctx.saved_tensors
        hit = (x == _expand_back(ctx.output, ctx)).to(x.dtype)
        count = hit.sum(dim=tuple(ctx.dims) if ctx.dims else None, keepdim=True)
        return hit / count  # ties share the gradient evenly, as in PyTorch

    def vjp(ctx, g):
        return (_expand_back(g, ctx) * ctx._mask(),)

    def jvp(ctx, t):
        return _reduce_like(t * ctx._mask(), ctx, sum)


class Amax(_AmaxAmin):
    kernel = staticmethod(_C.amax)


class Amin(_AmaxAmin):
    kernel = staticmethod(_C.amin)


@tensor_method
def amax(input, dim=(), keepdim=False):
    dims = normalize_dims(None if dim == () else dim, input.ndim, "amax")
    return Amax.apply(input, dims=dims, keepdim=bool(keepdim))


@tensor_method
def amin(input, dim=(), keepdim=False):
    dims = normalize_dims(None if dim == () else dim, input.ndim, "amin")
    return Amin.apply(input, dims=dims, keepdim=bool(keepdim))


class _MaxMinDim(Function):
    """Values of max/min along one dim; indices come out of forward as ctx.indices."""

    kernel = None

    def forward(ctx, x, dim, keepdim):
        ctx.dim, ctx.keepdim, ctx.in_shape = dim, keepdim, x._data.shape
        values, indices = type(ctx).kernel(x._data, dim, keepdim)
        ctx.indices = _wrap(indices)
        return values

    def _scatter(ctx, v):
        idx = ctx.indices if ctx.keepdim or len(ctx.in_shape) == 0 else ctx.indices.unsqueeze(ctx.dim)
        vv = v if ctx.keepdim or len(ctx.in_shape) == 0 else v.unsqueeze(ctx.dim)
        from .creation import zeros
        from .index import scatter_add

        if len(ctx.in_shape) == 0:
            return vv.reshape(())
        return scatter_add(zeros(ctx.in_shape, dtype=v.dtype, device=v.device), ctx.dim, idx, vv)

    def vjp(ctx, g):
        return (ctx._scatter(g),)

    def jvp(ctx, t):
        from .index import gather

        if len(ctx.in_shape) == 0:
            return t
        idx = ctx.indices if ctx.keepdim else ctx.indices.unsqueeze(ctx.dim)
        out = gather(t, ctx.dim, idx)
        return out if ctx.keepdim else out.squeeze(ctx.dim)


class MaxDim(_MaxMinDim):
    kernel = staticmethod(_C.max_dim)


class MinDim(_MaxMinDim):
    kernel = staticmethod(_C.min_dim)


class _ValuesIndices(tuple):
    """(values, indices) with names, like torch.return_types.max."""

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def _max_min(cls, full, name, input, dim, keepdim, other):
    if isinstance(dim, Tensor) and other is None:
        other, dim = dim, None
    if other is not None:
        from .elementwise import maximum, minimum

        return maximum(input, other) if name == "max" else minimum(input, other)
    if dim is None:
        if input.numel() == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
        return full(input)
    d = normalize_dims(dim, input.ndim, name)[0]
    kernel = cls.kernel
    if (state.grad_enabled and input._requires_grad) or state.forward_level:
        values = cls.apply(input, dim=d, keepdim=bool(keepdim))
        # a recorded node kept the indices; otherwise (forward mode only) compute them again
        indices = values._node.indices if values._node is not None else _wrap(kernel(input._data, d, bool(keepdim))[1])
    else:
        v, i = kernel(input._data, d, bool(keepdim))
        values, indices = _wrap(v), _wrap(i)
    return _ValuesIndices((values, indices))


@tensor_method
def max(input, dim=None, keepdim=False, other=None):
    return _max_min(MaxDim, amax, "max", input, dim, keepdim, other)


@tensor_method
def min(input, dim=None, keepdim=False, other=None):
    return _max_min(MinDim, amin, "min", input, dim, keepdim, other)


class _ArgReduce(Function):
    differentiable = False
    kernel = None

    def forward(ctx, x, dim, keepdim):
        return type(ctx).kernel(x._data, dim, keepdim)


class Argmax(_ArgReduce):
    kernel = staticmethod(_C.argmax)


class Argmin(_ArgReduce):
    kernel = staticmethod(_C.argmin)


@tensor_method
def argmax(input, dim=None, keepdim=False):
    d = None if dim is None else normalize_dims(dim, input.ndim, "argmax")[0]
    return Argmax.apply(input, dim=d, keepdim=bool(keepdim))


@tensor_method
def argmin(input, dim=None, keepdim=False):
    d = None if dim is None else normalize_dims(dim, input.ndim, "argmin")[0]
    return Argmin.apply(input, dim=d, keepdim=bool(keepdim))


class Var(Function):
    def forward(ctx, x, dims, correction, keepdim):
        ctx.dims, ctx.keepdim, ctx.in_shape = dims, keepdim, x._data.shape
        ctx.correction = correction
        ctx.save_for_backward(x)
        out = _C.var(x._data, dims, correction, keepdim)
        ctx.count = x._data.numel() // out.numel() if out.numel() else 0
        return out

    def _centered(ctx):
        (x,) = ctx.saved_tensors
        mu = x.mean(dim=tuple(ctx.dims) if ctx.dims else None, keepdim=True)
        dof = ctx.count - ctx.correction
        # no degrees of freedom: the value is nan/inf, and so is its gradient (as PyTorch)
        return (x - mu) * (2.0 / dof if dof != 0 else math.inf)

    def vjp(ctx, g):
        return (_expand_back(g, ctx) * ctx._centered(),)

    def jvp(ctx, t):
        return _reduce_like(t * ctx._centered(), ctx, sum)


def _correction(unbiased, correction):
    if correction is not None:
        return float(correction)
    return 1.0 if unbiased is None or unbiased else 0.0


@tensor_method
def var(input, dim=None, unbiased=None, keepdim=False, correction=None, axis=None, keepdims=None):
    if isinstance(dim, bool):  # var(x, False) = unbiased=False, as torch accepts
        unbiased, dim = dim, None
    dim, keepdim = _dim_args(dim, axis, keepdim, keepdims)
    return Var.apply(input, dims=normalize_dims(dim, input.ndim, "var"),
                     correction=_correction(unbiased, correction), keepdim=keepdim)


class _StdSqrt(Function):
    """The square root that turns var into std; its derivative where std == 0
    is 0, not inf (PyTorch's std_backward), so a constant slice gets 0, not NaN."""

    save_output = True

    def forward(ctx, v):
        return _C.sqrt(v._data)

    def _d(ctx, t):
        out = ctx.output
        zero = out == 0
        return where(zero, scalar_tensor(0, t.dtype), t / (where(zero, scalar_tensor(1, out.dtype), out) * 2))

    def vjp(ctx, g):
        return (ctx._d(g),)

    def jvp(ctx, t):
        return ctx._d(t)


@tensor_method
def std(input, dim=None, unbiased=None, keepdim=False, correction=None, axis=None, keepdims=None):
    return _StdSqrt.apply(var(input, dim, unbiased, keepdim, correction, axis, keepdims))


def var_mean(input, dim=None, unbiased=None, keepdim=False, correction=None):
    return var(input, dim, unbiased, keepdim, correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, correction=None):
    return std(input, dim, unbiased, keepdim, correction), mean(input, dim, keepdim)


class Logsumexp(Function):
    save_output = True

    def forward(ctx, x, dims, keepdim):
        ctx.dims, ctx.keepdim, ctx.in_shape = dims, keepdim, x._data.shape
        ctx.save_for_backward(x)
        return _C.logsumexp(x._data, dims, keepdim)

    def _weights(ctx):
        (x,) = ctx.saved_tensors
        return (x - _expand_back(ctx.output, ctx)).exp()

    def vjp(ctx, g):
        return (_expand_back(g, ctx) * ctx._weights(),)

    def jvp(ctx, t):
        return _reduce_like(t * ctx._weights(), ctx, sum)


@tensor_method
def logsumexp(input, dim=None, keepdim=False):
    if not input.dtype.is_floating_point:
        input = input.to(_dt.default_float)
    return Logsumexp.apply(input, dims=normalize_dims(dim, input.ndim, "logsumexp"), keepdim=bool(keepdim))


class Norm(Function):
    save_output = True

    def forward(ctx, x, p, dims, keepdim):
        ctx.p, ctx.dims, ctx.keepdim, ctx.in_shape = p, dims, keepdim, x._data.shape
        ctx.save_for_backward(x)
        return _C.norm(x._data, p, dims, keepdim)

    def _d(ctx, v_full):
        (x,) = ctx.saved_tensors
        p = ctx.p
        out = _expand_back(ctx.output, ctx)
        zero = scalar_tensor(0, x.dtype)
        if p == 0:
            return v_full * 0
        if p == 1:
            return v_full * x.sign()
        if math.isinf(p):
            hit = (x.abs() == out).to(x.dtype)
            count = hit.sum(dim=tuple(ctx.dims) if ctx.dims else None, keepdim=True)
            return v_full * x.sign() * hit / count
        if p == 2:
            return where(out == 0, zero, v_full * x / where(out == 0, scalar_tensor(1, x.dtype), out))
        safe = where(out == 0, scalar_tensor(1, x.dtype), out)
        return where(out == 0, zero, v_full * x * x.abs().pow(p - 2) / safe.pow(p - 1))

    def vjp(ctx, g):
        return (ctx._d(_expand_back(g, ctx)),)

    def jvp(ctx, t):
        return _reduce_like(ctx._d(t), ctx, sum)


@tensor_method
def norm(input, p=2, dim=None, keepdim=False, dtype=None):
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm: unsupported norm type {p!r}")
    if dtype is not None:
        input = input.to(dtype)
    return Norm.apply(input, p=float(p), dims=normalize_dims(dim, input.ndim, "norm"), keepdim=bool(keepdim))


class _BoolReduce(Function):
    differentiable = False
    kernel = None

    def forward(ctx, x, dims, keepdim):
        return type(ctx).kernel(x._data, dims, keepdim)


class All(_BoolReduce):
    kernel = staticmethod(_C.all)


class Any(_BoolReduce):
    kernel = staticmethod(_C.any)


@tensor_method
def all(input, dim=None, keepdim=False):
    return All.apply(input, dims=normalize_dims(dim, input.ndim, "all"), keepdim=bool(keepdim))


@tensor_method
def any(input, dim=None, keepdim=False):
    return Any.apply(input, dims=normalize_dims(dim, input.ndim, "any"), keepdim=bool(keepdim))


class Cumsum(Function):
    def forward(ctx, x, dim):
        ctx.dim = dim
        return _C.cumsum(x._data, dim)

    def vjp(ctx, g):
        return (g.flip(ctx.dim).cumsum(ctx.dim).flip(ctx.dim),)

    def jvp(ctx, t):
        return t.cumsum(ctx.dim)


@tensor_method
def cumsum(input, dim, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    return Cumsum.apply(input, dim=normalize_dims(dim, input.ndim, "cumsum")[0])


class Cumprod(Function):
    save_output = True

    def forward(ctx, x, dim):
        ctx.dim = dim
        ctx.save_for_backward(x)
        return _C.cumprod(x._data, dim)

    def vjp(ctx, g):
        (x,) = ctx.saved_tensors
        d = ctx.dim
        if not bool((x == 0).any()):
            return ((g * ctx.output).flip(d).cumsum(d).flip(d) / x,)
        # with zeros, out / x is 0/0: use the products of the others explicitly
        others, upper = _cumprod_others(x, d)  # others[..., k, i] = prod_{j <= i, j != k} x_j
        gk = (others * g.movedim(d, -1).unsqueeze(-2) * upper).sum(-1)
        return (gk.movedim(-1, d),)

    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        d = ctx.dim
        if not bool((x == 0).any()):
            return ctx.output * (t / x).cumsum(d)
        others, upper = _cumprod_others(x, d)
        ti = (others * t.movedim(d, -1).unsqueeze(-1) * upper).sum(-2)
        return ti.movedim(-1, d)


def _cumprod_others(x, d):
    """(P, U) with P[..., k, i] = prod_{j <= i, j != k} x_j along dim d (moved
    last) and U[k, i] = (k <= i): d cumprod(x)_i / d x_k = P[k, i] * U[k, i]."""
    from .creation import eye, ones

    xm = x.movedim(d, -1)
    n = xm.shape[-1]
    rows = xm.unsqueeze(-2).expand(*xm.shape[:-1], n, n)
    others = where(eye(n, dtype=_dt.bool_, device=x.device), scalar_tensor(1, x.dtype, x), rows).cumprod(-1)
    return others, ones(n, n, dtype=x.dtype, device=x.device).triu()


@tensor_method
def cumprod(input, dim, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    return Cumprod.apply(input, dim=normalize_dims(dim, input.ndim, "cumprod")[0])


# -- softmax ---------------------------------------------------------------------------------------


class Softmax(Function):
    save_output = True

    def forward(ctx, x, dim):
        ctx.dim = dim
        return _C.softmax(x._data, dim)

    def vjp(ctx, g):
        if not state.grad_enabled and not state.forward_level and g.dtype is ctx.output.dtype:
            return (_wrap(_C.softmax_backward(g._data, ctx._out, ctx.dim)),)
        y = ctx.output
        return (y * (g - (g * y).sum(dim=ctx.dim, keepdim=True)),)

    def jvp(ctx, t):
        y = ctx.output
        return y * (t - (t * y).sum(dim=ctx.dim, keepdim=True))


class LogSoftmax(Function):
    save_output = True

    def forward(ctx, x, dim):
        ctx.dim = dim
        return _C.log_softmax(x._data, dim)

    def vjp(ctx, g):
        if not state.grad_enabled and not state.forward_level and g.dtype is ctx.output.dtype:
            return (_wrap(_C.log_softmax_backward(g._data, ctx._out, ctx.dim)),)
        return (g - ctx.output.exp() * g.sum(dim=ctx.dim, keepdim=True),)

    def jvp(ctx, t):
        return t - (ctx.output.exp() * t).sum(dim=ctx.dim, keepdim=True)


def _softmax_dim(input, dim, op):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1  # torch's legacy implicit-dim rule
    return normalize_dims(dim, input.ndim, op)[0]


@tensor_method
def softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    elif not input.dtype.is_floating_point:
        raise TypeError(f"softmax: expected a floating-point tensor, got {input.dtype.name}")
    return Softmax.apply(input, dim=_softmax_dim(input, dim, "softmax"))


@tensor_method
def log_softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    elif not input.dtype.is_floating_point:
        raise TypeError(f"log_softmax: expected a floating-point tensor, got {input.dtype.name}")
    return LogSoftmax.apply(input, dim=_softmax_dim(input, dim, "log_softmax"))
