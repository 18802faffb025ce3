"""Fused normalisation: layer norm and batch norm as one graph node each.

forward: one _C kernel (csrc/cpu/norm.cpp) makes the statistics and the
normalised, scaled output. vjp: the fused backward kernel when no graph is
being recorded (a plain backward); with create_graph the same derivative is
written in fastgrad ops, so higher-order gradients work. jvp: fastgrad ops.

The Jacobian of xhat = (x - mean) * rstd with respect to x (statistics over
`dims`) is symmetric: rstd * (v - mean(v) - xhat * mean(v * xhat)) is both
its vjp and its jvp (_norm_grad).
"""
from .. import _C
from ..autograd.function import Function
from ..autograd.grad_mode import state
from ._util import _wrap


def _stats(x, dims, eps):
    """Differentiable mean and rstd = 1 / sqrt(var + eps) of x over dims (kept)."""
    mean = x.mean(dim=dims, keepdim=True)
    return mean, (x.var(dim=dims, correction=0, keepdim=True) + eps).rsqrt()


def _norm_grad(v, xhat, rstd, dims):
    return rstd * (v - v.mean(dim=dims, keepdim=True) - xhat * (v * xhat).mean(dim=dims, keepdim=True))


def _arr(t):
    return None if t is None else _C.contiguous(t._data)


def _split(params, has_w, has_b):
    return (params[0] if has_w else None), (params[-1] if has_b else None)


def _sum_to(t, dims):
    return t.sum(dim=dims) if dims else t


def _sum(terms):
    """t0 + t1 + ... in order (the tangent terms of a norm's jvp)."""
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


class LayerNorm(Function):
    """Over the last k dims of x; weight / bias (optional) of those dims' shape."""

    def forward(ctx, x, *params, k, eps, has_w, has_b):
        w, b = _split(params, has_w, has_b)
        m = 1
        for s in x.shape[x.ndim - k:]:
            m *= s
        y, ctx.mean, ctx.rstd = _C.layer_norm_forward(_C.contiguous(x._data), m, _arr(w), _arr(b), eps)
        ctx.save_for_backward(x, w)
        ctx.k, ctx.eps, ctx.has_w, ctx.has_b = k, eps, has_w, has_b
        return y

    def _dims(ctx, x):
        return tuple(range(x.ndim - ctx.k, x.ndim)), tuple(range(x.ndim - ctx.k))

    def vjp(ctx, g):
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        nw, nb = (needs[1] if ctx.has_w else False), (needs[-1] if ctx.has_b else False)
        if not state.grad_enabled and not state.forward_level and g.dtype is x.dtype:
            dx, dw, db = _C.layer_norm_backward(_C.contiguous(g._data), _C.contiguous(x._data), ctx.mean, ctx.rstd,
                                                _arr(w), nw, nb)
            gx = _wrap(dx) if needs[0] else None
            gw = _wrap(dw).reshape(w.shape) if nw else None
            gb = _wrap(db).reshape(x.shape[x.ndim - ctx.k:]) if nb else None
        else:  # differentiable
            dims, lead = ctx._dims(x)
            mean, rstd = _stats(x, dims, ctx.eps)
            xhat = (x - mean) * rstd
            gx = _norm_grad(g if w is None else g * w, xhat, rstd, dims) if needs[0] else None
            gw = _sum_to(g * xhat, lead) if nw else None
            gb = _sum_to(g, lead) if nb else None
        return (gx,) + ((gw,) if ctx.has_w else ()) + ((gb,) if ctx.has_b else ())

    def jvp(ctx, tx, *tparams):
        x, w = ctx.saved_tensors
        tw, tb = _split(tparams, ctx.has_w, ctx.has_b)
        dims, _ = ctx._dims(x)
        mean, rstd = _stats(x, dims, ctx.eps)
        xhat = (x - mean) * rstd
        terms = []
        if tx is not None:
            d = _norm_grad(tx, xhat, rstd, dims)
            terms.append(d if w is None else d * w)
        if tw is not None:
            terms.append(xhat * tw)
        if tb is not None:
            terms.append(tb.expand(*x.shape))
        return _sum(terms)

    def release(ctx):
        super().release()
        ctx.mean = ctx.rstd = None


class BatchNorm(Function):
    """Over dims (0, 2, 3, ...) of x (N, C, *); weight / bias (optional) of shape (C,).
    `stats` (a dict) receives the batch mean and biased var for the running statistics."""

    def forward(ctx, x, *params, has_w, has_b, training, eps, running_mean, running_var, stats):
        w, b = _split(params, has_w, has_b)
        y, ctx.mean, ctx.rstd, var = _C.batch_norm_forward(_C.contiguous(x._data), _arr(w), _arr(b),
                                                           _arr(running_mean), _arr(running_var), training, eps)
        if stats is not None:
            stats["mean"], stats["var"] = _wrap(ctx.mean), _wrap(var)
        ctx.save_for_backward(x, w)
        ctx.has_w, ctx.has_b, ctx.training, ctx.eps = has_w, has_b, training, eps
        return y

    def _parts(ctx, x):
        """(dims, channel shape, differentiable xhat, rstd)."""
        dims = (0,) + tuple(range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if ctx.training:
            mean, rstd = _stats(x, dims, ctx.eps)
        else:  # the running statistics are constants
            mean, rstd = _wrap(ctx.mean).reshape(shape), _wrap(ctx.rstd).reshape(shape)
        return dims, shape, (x - mean) * rstd, rstd

    def vjp(ctx, g):
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        nw, nb = (needs[1] if ctx.has_w else False), (needs[-1] if ctx.has_b else False)
        if not state.grad_enabled and not state.forward_level and g.dtype is x.dtype:
            dx, dw, db = _C.batch_norm_backward(_C.contiguous(g._data), _C.contiguous(x._data), ctx.mean, ctx.rstd,
                                                _arr(w), ctx.training, nw, nb)
            gx = _wrap(dx) if needs[0] else None
            gw = _wrap(dw) if nw else None
            gb = _wrap(db) if nb else None
        else:  # differentiable
            dims, shape, xhat, rstd = ctx._parts(x)
            gy = g if w is None else g * w.reshape(shape)
            gx = None
            if needs[0]:
                gx = _norm_grad(gy, xhat, rstd, dims) if ctx.training else gy * rstd
            gw = (g * xhat).sum(dim=dims) if nw else None
            gb = g.sum(dim=dims) if nb else None
        return (gx,) + ((gw,) if ctx.has_w else ()) + ((gb,) if ctx.has_b else ())

    def jvp(ctx, tx, *tparams):
        x, w = ctx.saved_tensors
        tw, tb = _split(tparams, ctx.has_w, ctx.has_b)
        dims, shape, xhat, rstd = ctx._parts(x)
        terms = []
        if tx is not None:
            d = _norm_grad(tx, xhat, rstd, dims) if ctx.training else tx * rstd
            terms.append(d if w is None else d * w.reshape(shape))
        if tw is not None:
            terms.append(xhat * tw.reshape(shape))
        if tb is not None:
            terms.append(tb.reshape(shape).expand(*x.shape))
        return _sum(terms)

    def release(ctx):
        super().release()
        ctx.mean = ctx.rstd = None


def _fusable(x, *params):
    """The fused kernels (CPU: csrc/cpu/norm.cpp, CUDA: cuda/norm.cu) take float32/float64
    tensors whose params match x's dtype and device."""
    if x.dtype.name not in ("float32", "float64") or x.numel() == 0:
        return False
    d = x._data.device
    return all(p is None or (p.dtype is x.dtype and p._data.device == d) for p in params)


def layer_norm(x, k, weight, bias, eps):
    """Fused layer norm over the last k dims (shapes already checked)."""
    params = tuple(p for p in (weight, bias) if p is not None)
    return LayerNorm.apply(x, *params, k=k, eps=float(eps), has_w=weight is not None, has_b=bias is not None)


def batch_norm(x, weight, bias, training, eps, running_mean=None, running_var=None, stats=None):
    """Fused batch norm (shapes already checked). training: batch statistics,
    written into `stats` as mean / biased var; else the running ones."""
    params = tuple(p for p in (weight, bias) if p is not None)
    return BatchNorm.apply(x, *params, has_w=weight is not None, has_b=bias is not None, training=bool(training),
                           eps=float(eps), running_mean=None if training else running_mean,
                           running_var=None if training else running_var, stats=stats)
