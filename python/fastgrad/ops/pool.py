"""Pooling and upsampling: max / average / adaptive pooling (1-d and 2-d),
interpolate (nearest, nearest-exact, linear, bilinear, area) and pixel
shuffle, with PyTorch's arguments and semantics (torch.nn.functional).

Every native kernel here is a linear map of its input (max pooling is linear
once its argmax indices are fixed), so each op is a pair of Functions, A
and its adjoint A^T: the vjp of one is the other and the jvp of each is
itself. Gradients of any order therefore come from the same two kernels.
1-d ops run the 2-d kernels on (N, C, 1, L) views.
"""
import math
import operator

from .. import _C
from ..autograd.function import Function
from ._util import Tensor, _wrap

# -- argument handling ----------------------------------------------------------------------------


def _int(v, name, op):
    try:
        if isinstance(v, bool):
            raise TypeError
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {v!r}") from None


def _ntuple(v, n, name, op):
    """An int or a sequence of 1 or n ints -> a tuple of n ints."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            raise ValueError(f"{op}: {name} must be a single int or a tuple of {n} ints, got {tuple(v)!r}")
        return tuple(_int(x, name, op) for x in v)
    return (_int(v, name, op),) * n


def _stride(stride, kernel, n, op):
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel
    return _ntuple(stride, n, "stride", op)


def _check_input(input, op, ndims, float_only=False):
    """input is a Tensor with ndim in ndims whose non-batch dims are non-zero."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    lo = min(ndims)
    if input.ndim not in ndims or 0 in input.shape[input.ndim - lo:]:
        names = " or ".join(f"{d}-D" for d in sorted(ndims))
        raise ValueError(f"{op}: expected a {names} input with non-zero sizes except the batch dim, "
                         f"got shape {list(input.shape)}")
    if float_only and not input.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a float32 or float64 input, got {input.dtype.name}")


def _check_pool1d(op, length, k, s, p, d, ceil_mode):
    """The checks the 2-d kernel makes, in 1-d terms (so the message names this op)."""
    if k <= 0:
        raise ValueError(f"{op}: kernel_size should be greater than zero, got {k}")
    if s <= 0:
        raise ValueError(f"{op}: stride should be greater than zero, got {s}")
    if d <= 0:
        raise ValueError(f"{op}: dilation should be greater than zero, got {d}")
    if p < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    if p > k // 2:
        raise ValueError(f"{op}: padding should be at most half of kernel_size, got padding {p} and kernel_size {k}")
    out = (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= length + p:
        out -= 1
    if out < 1:
        raise ValueError(f"{op}: input of length {length} gives output size {out} with kernel_size {k}, stride {s}, "
                         f"padding {p}, dilation {d}: output size is too small")


def _linear_pair(name, forward, backward):
    """Functions for a linear map A (forward(x_array, p) -> array) and its
    adjoint A^T (backward(g_array, input_shape, p) -> array)."""

    class Fwd(Function):
        def forward(ctx, x, p):
            ctx.p, ctx.in_shape = p, x._data.shape
            return forward(x._data, p)

        def vjp(ctx, g):
            return (Bwd.apply(g, p=ctx.p, in_shape=ctx.in_shape),)

        def jvp(ctx, t):
            return Fwd.apply(t, p=ctx.p)

    class Bwd(Function):
        def forward(ctx, g, p, in_shape):
            ctx.p, ctx.in_shape = p, in_shape
            return backward(g._data, in_shape, p)

        def vjp(ctx, gg):
            return (Fwd.apply(gg, p=ctx.p),)

        def jvp(ctx, t):
            return Bwd.apply(t, p=ctx.p, in_shape=ctx.in_shape)

    Fwd.__name__ = Fwd.__qualname__ = name
    Bwd.__name__ = Bwd.__qualname__ = name + "Backward"
    return Fwd, Bwd


# -- max pooling ------------------------------------------------------------------------------------


class MaxPoolScatter(Function):
    """grad_in = zeros(in_shape) with grad added at the argmax indices (the
    vjp of max pooling); linear in grad, its adjoint is MaxPoolGather."""

    def forward(ctx, g, indices, in_shape):
        ctx.indices, ctx.in_shape = indices, in_shape
        return _C.max_pool2d_backward(g._data, indices, in_shape)

    def vjp(ctx, gg):
        return (MaxPoolGather.apply(gg, indices=ctx.indices),)

    def jvp(ctx, t):
        return MaxPoolScatter.apply(t, indices=ctx.indices, in_shape=ctx.in_shape)


class MaxPoolGather(Function):
    """out = x at the argmax indices, per plane (max pooling's jvp)."""

    def forward(ctx, x, indices):
        ctx.indices, ctx.in_shape = indices, x._data.shape
        return _C.max_pool2d_gather(x._data, indices)

    def vjp(ctx, g):
        return (MaxPoolScatter.apply(g, indices=ctx.indices, in_shape=ctx.in_shape),)

    def jvp(ctx, t):
        return MaxPoolGather.apply(t, indices=ctx.indices)


class MaxPool(Function):
    """Max pooling whose kernel already ran: out and indices are its results."""

    def forward(ctx, x, out, indices):
        ctx.in_shape = x._data.shape
        ctx.save_for_backward(indices)  # the user holds them too: version-checked
        return out

    def vjp(ctx, g):
        (indices,) = ctx.saved_tensors
        return (MaxPoolScatter.apply(g, indices=indices._data, in_shape=ctx.in_shape),)

    def jvp(ctx, t):
        (indices,) = ctx.saved_tensors
        return MaxPoolGather.apply(t, indices=indices._data)


def _max_result(x, out, idx, return_indices):
    indices = _wrap(idx)
    out = MaxPool.apply(x, out=out, indices=indices) if x.dtype.is_floating_point else _wrap(out)
    return (out, indices) if return_indices else out


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    op = "max_pool2d"
    _check_input(input, op, (3, 4))
    k = _ntuple(kernel_size, 2, "kernel_size", op)
    s = _stride(stride, k, 2, op)
    p = _ntuple(padding, 2, "padding", op)
    d = _ntuple(dilation, 2, "dilation", op)
    out, idx = _C.max_pool2d(input._data, *k, *s, *p, *d, bool(ceil_mode))
    return _max_result(input, out, idx, return_indices)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    op = "max_pool1d"
    _check_input(input, op, (2, 3), float_only=True)
    (k,) = _ntuple(kernel_size, 1, "kernel_size", op)
    (s,) = _stride(stride, (k,), 1, op)
    (p,) = _ntuple(padding, 1, "padding", op)
    (d,) = _ntuple(dilation, 1, "dilation", op)
    _check_pool1d(op, input.shape[-1], k, s, p, d, ceil_mode)
    x = input.unsqueeze(-2)
    out, idx = _C.max_pool2d(x._data, 1, k, 1, s, 0, p, 1, d, bool(ceil_mode))
    out, indices = _max_result(x, out, idx, True)
    out, indices = out.squeeze(-2), indices.squeeze(-2)
    return (out, indices) if return_indices else out


def _adaptive_size(output_size, input, n, op):
    """output_size (int, or n ints/None; None keeps the input's size) -> n ints."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != n:
            raise ValueError(f"{op}: output_size must be an int or a tuple of {n} ints, got {tuple(output_size)!r}")
        sizes = output_size
    else:
        sizes = (output_size,) * n
    shape = input.shape[input.ndim - n:]
    out = tuple(shape[i] if v is None else _int(v, "output_size", op) for i, v in enumerate(sizes))
    if any(v < 0 for v in out):
        raise ValueError(f"{op}: output_size must be non-negative, got {out}")
    return out


def adaptive_max_pool2d(input, output_size, return_indices=False):
    op = "adaptive_max_pool2d"
    _check_input(input, op, (3, 4), float_only=True)
    oh, ow = _adaptive_size(output_size, input, 2, op)
    out, idx = _C.adaptive_max_pool2d(input._data, oh, ow)
    return _max_result(input, out, idx, return_indices)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    op = "adaptive_max_pool1d"
    _check_input(input, op, (2, 3), float_only=True)
    (n,) = _adaptive_size(output_size, input, 1, op)
    x = input.unsqueeze(-2)
    out, idx = _C.adaptive_max_pool2d(x._data, 1, n)
    out, indices = _max_result(x, out, idx, True)
    out, indices = out.squeeze(-2), indices.squeeze(-2)
    return (out, indices) if return_indices else out


# -- average pooling --------------------------------------------------------------------------------

AvgPool, AvgPoolBackward = _linear_pair(
    "AvgPool",
    lambda x, p: _C.avg_pool2d(x, *p),
    lambda g, shape, p: _C.avg_pool2d_backward(g, shape, *p))


def _avg_pool(input, p):
    # integer inputs (allowed by torch) have no gradient: skip the tape
    if not input.dtype.is_floating_point:
        return _wrap(_C.avg_pool2d(input._data, *p))
    return AvgPool.apply(input, p=p)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    op = "avg_pool2d"
    _check_input(input, op, (3, 4))
    k = _ntuple(kernel_size, 2, "kernel_size", op)
    s = _stride(stride, k, 2, op)
    p = _ntuple(padding, 2, "padding", op)
    div = 0
    if divisor_override is not None:
        div = _int(divisor_override, "divisor_override", op)
        if div == 0:
            raise ValueError(f"{op}: divisor_override must be non-zero")
    return _avg_pool(input, (*k, *s, *p, bool(ceil_mode), bool(count_include_pad), div))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    op = "avg_pool1d"
    _check_input(input, op, (2, 3))
    (k,) = _ntuple(kernel_size, 1, "kernel_size", op)
    (s,) = _stride(stride, (k,), 1, op)
    (p,) = _ntuple(padding, 1, "padding", op)
    _check_pool1d(op, input.shape[-1], k, s, p, 1, ceil_mode)
    out = _avg_pool(input.unsqueeze(-2), (1, k, 1, s, 0, p, bool(ceil_mode), bool(count_include_pad), 0))
    return out.squeeze(-2)


AdaptiveAvgPool, AdaptiveAvgPoolBackward = _linear_pair(
    "AdaptiveAvgPool",
    lambda x, p: _C.adaptive_avg_pool2d(x, *p),
    lambda g, shape, p: _C.adaptive_avg_pool2d_backward(g, shape))


def adaptive_avg_pool2d(input, output_size):
    op = "adaptive_avg_pool2d"
    _check_input(input, op, (3, 4), float_only=True)
    return AdaptiveAvgPool.apply(input, p=_adaptive_size(output_size, input, 2, op))


def adaptive_avg_pool1d(input, output_size):
    op = "adaptive_avg_pool1d"
    _check_input(input, op, (2, 3), float_only=True)
    (n,) = _adaptive_size(output_size, input, 1, op)
    return AdaptiveAvgPool.apply(input.unsqueeze(-2), p=(1, n)).squeeze(-2)


# -- upsampling -------------------------------------------------------------------------------------

# p = (out_h, out_w, scale_h, scale_w, exact); scales <= 0 mean "none"
UpsampleNearest, UpsampleNearestBackward = _linear_pair(
    "UpsampleNearest",
    lambda x, p: _C.upsample_nearest2d(x, *p),
    lambda g, shape, p: _C.upsample_nearest2d_backward(g, shape, *p[2:]))

# p = (out_h, out_w, align_corners, scale_h, scale_w)
UpsampleBilinear, UpsampleBilinearBackward = _linear_pair(
    "UpsampleBilinear",
    lambda x, p: _C.upsample_bilinear2d(x, *p),
    lambda g, shape, p: _C.upsample_bilinear2d_backward(g, shape, *p[2:]))

_INTERP_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "area")
_INTERP_DIMS = {"linear": 1, "bilinear": 2}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    op = "interpolate"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if mode not in _INTERP_MODES:
        raise NotImplementedError(f"{op}: mode {mode!r} is not supported (expected one of {', '.join(_INTERP_MODES)})")
    if input.ndim not in (3, 4):
        raise NotImplementedError(f"{op}: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape "
                                  f"{list(input.shape)}")
    dim = input.ndim - 2
    if mode in _INTERP_DIMS and _INTERP_DIMS[mode] != dim:
        raise NotImplementedError(f"{op}: got {input.ndim}D input, but {mode} mode needs {_INTERP_DIMS[mode] + 2}D "
                                  "input")
    if align_corners is not None and mode not in _INTERP_DIMS:
        raise ValueError(f"{op}: align_corners option can only be set with the interpolating modes: linear | "
                         "bilinear")
    if antialias:
        raise NotImplementedError(f"{op}: antialias is not supported")
    if not input.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a float32 or float64 input, got {input.dtype.name}")
    in_sizes = tuple(input.shape[2:])

    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: only one of size or scale_factor should be defined"
                         if size is not None else f"{op}: either size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size")
        if isinstance(size, (tuple, list)):
            if len(size) != dim:
                raise ValueError(f"{op}: input with spatial dims {list(in_sizes)} needs a size of {dim} ints, got "
                                 f"{tuple(size)!r}")
            out_sizes = tuple(_int(v, "size", op) for v in size)
        else:
            out_sizes = (_int(size, "size", op),) * dim
        scales = (-1.0,) * dim
    else:
        if isinstance(scale_factor, (tuple, list)):
            if len(scale_factor) != dim:
                raise ValueError(f"{op}: input with spatial dims {list(in_sizes)} needs a scale_factor of {dim} "
                                 f"floats, got {tuple(scale_factor)!r}")
            factors = tuple(float(v) for v in scale_factor)
        else:
            factors = (float(scale_factor),) * dim
        if not all(math.isfinite(f) and f > 0 for f in factors):
            raise ValueError(f"{op}: scale_factor must be positive and finite, got {scale_factor!r}")
        out_sizes = tuple(math.floor(n * f) for n, f in zip(in_sizes, factors))
        # torch hands the user's factors to the kernel unless told to recompute them
        scales = (-1.0,) * dim if recompute_scale_factor else factors
    if any(v <= 0 for v in out_sizes):
        raise ValueError(f"{op}: input and output sizes should be greater than 0, got input {list(in_sizes)} and "
                         f"output {list(out_sizes)}")

    if mode == "area":
        return adaptive_avg_pool1d(input, out_sizes) if dim == 1 else adaptive_avg_pool2d(input, out_sizes)
    x = input.unsqueeze(-2) if dim == 1 else input
    if dim == 1:
        out_sizes, scales = (1,) + out_sizes, (-1.0,) + scales
    if mode in ("nearest", "nearest-exact"):
        out = UpsampleNearest.apply(x, p=(*out_sizes, *scales, mode == "nearest-exact"))
    else:
        out = UpsampleBilinear.apply(x, p=(*out_sizes, bool(align_corners), *scales))
    return out.squeeze(-2) if dim == 1 else out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# -- pixel shuffle ----------------------------------------------------------------------------------


def _shuffle_factor(input, factor, name, op):
    """The checked factor r of pixel_(un)shuffle, whose input has at least 3 dims (*, C, H, W)."""
    r = _int(factor, name, op)
    if not isinstance(input, Tensor) or input.ndim < 3:
        raise ValueError(f"{op}: expected an input of at least 3 dims, got "
                         f"{list(input.shape) if isinstance(input, Tensor) else type(input).__name__}")
    if r <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {r}")
    return r


def pixel_shuffle(input, upscale_factor):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r): a reshape and a permute."""
    op = "pixel_shuffle"
    r = _shuffle_factor(input, upscale_factor, "upscale_factor", op)
    *batch, c, h, w = input.shape
    if c % (r * r) != 0:
        raise ValueError(f"{op}: channels ({c}) must be divisible by the square of upscale_factor ({r * r})")
    nb = len(batch)
    x = input.reshape(*batch, c // (r * r), r, r, h, w)
    x = x.permute(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)
    return x.reshape(*batch, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W), the inverse of pixel_shuffle."""
    op = "pixel_unshuffle"
    r = _shuffle_factor(input, downscale_factor, "downscale_factor", op)
    *batch, c, h, w = input.shape
    if h % r != 0 or w % r != 0:
        raise ValueError(f"{op}: height ({h}) and width ({w}) must be divisible by downscale_factor ({r})")
    nb = len(batch)
    x = input.reshape(*batch, c, h // r, r, w // r, r)
    x = x.permute(*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3)
    return x.reshape(*batch, c * r * r, h // r, w // r)
