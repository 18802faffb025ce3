"""Convolution (1-D and 2-D) as three ops, each linear in both of its inputs:

    Conv(x, w, b)          y  = conv(x, w) + b                 (_C.conv_forward)
    ConvInputGrad(g, w, b) dx = conv's adjoint in x, applied to g (+ b)
                           (_C.conv_input_grad; also conv_transpose's forward)
    ConvWeightGrad(g, x)   dw = conv's adjoint in w, applied to g
                           (_C.conv_weight_grad)

The vjp of each is written with the other two (the derivative of a bilinear
map is the map with one argument swapped for the cotangent), so gradients of
any order work; the jvp is the sum of the op applied to each tangent.

Parameters (one per spatial dim, as lists): stride, padding as (begin, end)
pairs flattened, dilation; groups an int; `op` names the op in errors.

The functional front ends (conv1d, conv2d, conv_transpose1d/2d with
torch.nn.functional's signatures) are at the end; fastgrad.nn.functional
re-exports them.
"""
import operator

from .. import _C
from ..autograd.function import Function
from ._util import Tensor, tsum


def _bias_dims(ndim):
    """The dims a per-channel bias is broadcast along: batch and spatial."""
    return (0,) + tuple(range(2, ndim))


def _bias_view(b, ndim):
    return b.reshape([1, -1] + [1] * (ndim - 2))


def _plus_bias_tangent(out, tb, shape):
    """A jvp's tangent `out` (None: zero) plus the bias tangent tb (None: zero) broadcast to `shape`."""
    if tb is None:
        return out
    tb = _bias_view(tb, len(shape))
    return tb + out if out is not None else tb.expand(*shape)


def _save(ctx, a, b, stride, padding, dilation, groups):
    """Save a forward's two operands and the geometry that its vjp and jvp pass on to the other ops."""
    ctx.save_for_backward(a, b)
    ctx.geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def _crop(t, shape):
    """t's leading corner of `shape` in the spatial dims (a view). The adjoint
    of a convolution whose output was given a size below the natural one
    (conv_transpose's output_padding with dilation > stride) starts at 0."""
    for d in range(2, t.ndim):
        if t.shape[d] != shape[d]:
            t = t.narrow(d, 0, shape[d])
    return t


def _args(b):
    return () if b is None else (b,)


def conv(x, w, b=None, *, stride, padding, dilation, groups, op="conv2d"):
    return Conv.apply(x, w, *_args(b), stride=stride, padding=padding, dilation=dilation, groups=groups, op=op)


def conv_input_grad(g, w, b=None, *, size, stride, padding, dilation, groups, op="conv_backward_input"):
    return ConvInputGrad.apply(g, w, *_args(b), size=list(size), stride=stride, padding=padding, dilation=dilation,
                               groups=groups, op=op)


def conv_weight_grad(g, x, *, kernel_size, stride, padding, dilation, groups, op="conv_backward_weight"):
    return ConvWeightGrad.apply(g, x, kernel_size=list(kernel_size), stride=stride, padding=padding,
                                dilation=dilation, groups=groups, op=op)


class Conv(Function):
    """y = conv(x, w) + b. x (N, C, *S), w (O, C/groups, *K), b (O,)."""

    def forward(ctx, x, w, b=None, *, stride, padding, dilation, groups, op):
        _save(ctx, x, w, stride, padding, dilation, groups)
        out = _C.conv_forward(x._data, w._data, None if b is None else b._data, stride, padding, dilation, groups,
                              op)
        ctx.out_shape = out.shape
        return out

    def vjp(ctx, g):
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        geo = ctx.geo
        gx = conv_input_grad(g, w, size=x.shape[2:], **geo) if needs[0] else None
        gw = conv_weight_grad(g, x, kernel_size=w.shape[2:], **geo) if needs[1] else None
        gb = g.sum(dim=_bias_dims(g.ndim)) if len(needs) > 2 and needs[2] else None
        return gx, gw, gb

    def jvp(ctx, tx, tw, tb=None):
        x, w = ctx.saved_tensors
        geo = ctx.geo
        out = tsum(None if tx is None else conv(tx, w, **geo), None if tw is None else conv(x, tw, **geo))
        return _plus_bias_tangent(out, tb, ctx.out_shape)


class ConvInputGrad(Function):
    """dx = conv_x^T(g, w) + b: the gradient of conv wrt x, and the transposed
    convolution. g (N, O, *S_out), w (O, C/groups, *K), b (C,), dx (N, C, *size)."""

    def forward(ctx, g, w, b=None, *, size, stride, padding, dilation, groups, op):
        _save(ctx, g, w, stride, padding, dilation, groups)
        out = _C.conv_input_grad(g._data, w._data, None if b is None else b._data, size, stride, padding, dilation,
                                 groups, op)
        ctx.out_shape = out.shape
        return out

    def vjp(ctx, gg):
        g, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        geo = ctx.geo
        d_g = _crop(conv(gg, w, **geo), g.shape) if needs[0] else None
        d_w = conv_weight_grad(g, gg, kernel_size=w.shape[2:], **geo) if needs[1] else None
        d_b = gg.sum(dim=_bias_dims(gg.ndim)) if len(needs) > 2 and needs[2] else None
        return d_g, d_w, d_b

    def jvp(ctx, tg, tw, tb=None):
        g, w = ctx.saved_tensors
        geo = ctx.geo
        size = ctx.out_shape[2:]
        out = tsum(None if tg is None else conv_input_grad(tg, w, size=size, **geo),
                   None if tw is None else conv_input_grad(g, tw, size=size, **geo))
        return _plus_bias_tangent(out, tb, ctx.out_shape)


class ConvWeightGrad(Function):
    """dw = conv_w^T(g, x): the gradient of conv wrt w. g (N, O, *S_out),
    x (N, C, *S), dw (O, C/groups, *kernel_size)."""

    def forward(ctx, g, x, *, kernel_size, stride, padding, dilation, groups, op):
        _save(ctx, g, x, stride, padding, dilation, groups)
        out = _C.conv_weight_grad(g._data, x._data, kernel_size, stride, padding, dilation, groups, op)
        ctx.out_shape = out.shape
        return out

    def vjp(ctx, gw):
        g, x = ctx.saved_tensors
        needs = ctx.needs_input_grad
        geo = ctx.geo
        d_g = _crop(conv(x, gw, **geo), g.shape) if needs[0] else None
        d_x = conv_input_grad(g, gw, size=x.shape[2:], **geo) if needs[1] else None
        return d_g, d_x

    def jvp(ctx, tg, tx):
        g, x = ctx.saved_tensors
        geo = ctx.geo
        k = ctx.out_shape[2:]
        return tsum(None if tg is None else conv_weight_grad(tg, x, kernel_size=k, **geo),
                    None if tx is None else conv_weight_grad(g, tx, kernel_size=k, **geo))


# -- the functional front ends (torch.nn.functional's signatures) ------------------------------------


def _ntuple(value, n, name, op):
    """An int or a sequence of n ints (or of 1, repeated) -> tuple of n ints."""
    try:
        if isinstance(value, (list, tuple)):
            vals = tuple(operator.index(v) for v in value)
            if len(vals) == 1:
                vals = vals * n
        else:
            vals = (operator.index(value),) * n
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(vals) != n:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return vals


def _check_tensors(op, input, weight, bias):
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"{op}: expected bias to be a Tensor or None, got {type(bias).__name__}")


def _check_ranks(op, n, input, weight):
    if input.ndim not in (n + 1, n + 2):
        raise ValueError(f"{op}: expected a {n + 1}-D (unbatched) or {n + 2}-D (batched) input, got input of shape "
                         f"{list(input.shape)}")
    if weight.ndim != n + 2:
        raise ValueError(f"{op}: expected a {n + 2}-D weight, got weight of shape {list(weight.shape)}")


def _check_groups(op, groups):
    try:
        groups = operator.index(groups)
    except TypeError:
        raise TypeError(f"{op}: groups must be an int, got {groups!r}") from None
    if groups < 1:
        raise ValueError(f"{op}: groups must be positive, got {groups}")
    return groups


def _check_non_negative(op, name, values):
    if any(v < 0 for v in values):
        raise ValueError(f"{op}: {name} must be non-negative, got {values}")


def conv_padding(padding, kernel_size, stride, dilation, op):
    """padding (int, tuple, 'same' or 'valid') -> [begin, end] per spatial dim,
    flattened. 'same' pads d * (k - 1) in total, the odd one on the end side
    (as torch does)."""
    n = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * (2 * n)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride "
                                 f"{tuple(stride)})")
            pads = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return pads
        raise ValueError(f"{op}: invalid padding string {padding!r}, expected 'same' or 'valid'")
    p = _ntuple(padding, n, "padding", op)
    _check_non_negative(op, "padding", p)
    return [v for x in p for v in (x, x)]


def _convnd(n, op, input, weight, bias, stride, padding, dilation, groups):
    _check_tensors(op, input, weight, bias)
    _check_ranks(op, n, input, weight)
    stride = _ntuple(stride, n, "stride", op)
    dilation = _ntuple(dilation, n, "dilation", op)
    groups = _check_groups(op, groups)
    pads = conv_padding(padding, weight.shape[2:], stride, dilation, op)
    batched = input.ndim == n + 2
    x = input if batched else input.unsqueeze(0)
    out = conv(x, weight, bias, stride=list(stride), padding=pads, dilation=list(dilation), groups=groups, op=op)
    return out if batched else out.squeeze(0)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C, L) or (C, L); weight (O, C/groups, k); bias (O,)."""
    return _convnd(1, "conv1d", input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C, H, W) or (C, H, W); weight (O, C/groups, kh, kw); bias (O,)."""
    return _convnd(2, "conv2d", input, weight, bias, stride, padding, dilation, groups)


def transposed_output_size(in_size, kernel_size, stride, padding, output_padding, dilation):
    """(in - 1) * s - 2 p + d (k - 1) + output_padding + 1, per spatial dim."""
    return [(i - 1) * s - 2 * p + d * (k - 1) + op + 1
            for i, k, s, p, op, d in zip(in_size, kernel_size, stride, padding, output_padding, dilation)]


def _conv_transposend(n, op, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _check_tensors(op, input, weight, bias)
    _check_ranks(op, n, input, weight)
    stride = _ntuple(stride, n, "stride", op)
    dilation = _ntuple(dilation, n, "dilation", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    padding = _ntuple(padding, n, "padding", op)
    output_padding = _ntuple(output_padding, n, "output_padding", op)
    groups = _check_groups(op, groups)
    if any(s < 1 for s in stride):
        raise ValueError(f"{op}: stride must be positive, got {stride}")
    if any(d < 1 for d in dilation):
        raise ValueError(f"{op}: dilation must be positive, got {dilation}")
    _check_non_negative(op, "padding", padding)
    _check_non_negative(op, "output_padding", output_padding)
    for o, s, d in zip(output_padding, stride, dilation):
        if o >= max(s, d):
            raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either stride {stride} or "
                             f"dilation {dilation}")
    batched = input.ndim == n + 2
    x = input if batched else input.unsqueeze(0)
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"{op}: input of shape {list(input.shape)} has {x.shape[1]} channels, but weight of shape "
                         f"{list(weight.shape)} expects {weight.shape[0]} (weight is (in_channels, "
                         "out_channels / groups, *kernel_size))")
    if weight.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the {weight.shape[0]} input channels (weight of shape "
                         f"{list(weight.shape)})")
    size = transposed_output_size(x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation)
    if any(s < 1 for s in size):
        raise ValueError(f"{op}: the output size {size} computed from input of shape {list(input.shape)}, weight of "
                         f"shape {list(weight.shape)}, stride {stride}, padding {padding}, dilation {dilation} is "
                         "too small")
    pads = [v for p in padding for v in (p, p)]
    out = conv_input_grad(x, weight, bias, size=size, stride=list(stride), padding=pads, dilation=list(dilation),
                          groups=groups, op=op)
    return out if batched else out.squeeze(0)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """input (N, C, L) or (C, L); weight (C, O/groups, k); bias (O,)."""
    return _conv_transposend(1, "conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """input (N, C, H, W) or (C, H, W); weight (C, O/groups, kh, kw); bias (O,)."""
    return _conv_transposend(2, "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                             dilation)
