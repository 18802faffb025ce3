"""Indexing ops: gather/scatter, index_select, masks, one_hot, and t[key]
reads and writes (basic indexing is a view, tensor indices gather)."""
import numpy as np

from .. import _C
from .. import dtypes as _dt
from ..autograd.function import Function
from ..autograd.grad_mode import state
from ._util import Tensor, _wrap, normalize_dims, scalar_tensor, tensor_method
from .shape import BasicIndex, apply_steps


def _index_tensor(idx, op):
    if not isinstance(idx, Tensor):
        raise TypeError(f"{op}: index must be a Tensor, got {type(idx).__name__}")
    if idx.dtype is not _dt.int64:
        if idx.dtype is _dt.int32:
            return idx.to(_dt.int64)
        raise TypeError(f"{op}: expected an int64 index tensor, got {idx.dtype.name}")
    return idx


class Gather(Function):
    def forward(ctx, x, dim, index):
        ctx.dim, ctx.index, ctx.in_shape = dim, index, x._data.shape
        return _C.gather(x._data, dim, index._data)

    def vjp(ctx, g):
        from .creation import zeros

        return (scatter_add(zeros(ctx.in_shape, dtype=g.dtype, device=g.device), ctx.dim, ctx.index, g),)

    def jvp(ctx, t):
        return gather(t, ctx.dim, ctx.index)


@tensor_method
def gather(input, dim, index):
    d = normalize_dims(dim, input.ndim, "gather")[0]
    return Gather.apply(input, dim=d, index=_index_tensor(index, "gather"))


class ScatterAdd(Function):
    def forward(ctx, x, src, dim, index):
        ctx.dim, ctx.index = dim, index
        return _C.scatter_add(x._data, dim, index._data, src._data)

    def vjp(ctx, g):
        nx, ns = ctx.needs_input_grad
        return (g if nx else None), (gather(g, ctx.dim, ctx.index) if ns else None)

    def jvp(ctx, tx, ts):
        from .creation import zeros

        base = tx if tx is not None else zeros(ctx.in_meta_x, dtype=(ts.dtype), device=ts.device)
        return scatter_add(base, ctx.dim, ctx.index, ts) if ts is not None else base


def _scatter_add_forward(ctx, x, src, dim, index):
    ctx.dim, ctx.index, ctx.in_meta_x = dim, index, x._data.shape
    return _C.scatter_add(x._data, dim, index._data, src._data)


ScatterAdd.forward = _scatter_add_forward


@tensor_method
def scatter_add(input, dim, index, src):
    d = normalize_dims(dim, input.ndim, "scatter_add")[0]
    if src.dtype is not input.dtype:
        src = src.to(input.dtype)
    return ScatterAdd.apply(input, src, dim=d, index=_index_tensor(index, "scatter_add"))


class IndexSelect(Function):
    def forward(ctx, x, dim, index):
        ctx.dim, ctx.index, ctx.in_shape = dim, index, x._data.shape
        return _C.index_select(x._data, dim, index._data)

    def vjp(ctx, g):
        from .creation import zeros

        return (index_add(zeros(ctx.in_shape, dtype=g.dtype, device=g.device), ctx.dim, ctx.index, g),)

    def jvp(ctx, t):
        return index_select(t, ctx.dim, ctx.index)


@tensor_method
def index_select(input, dim, index):
    d = normalize_dims(dim, input.ndim, "index_select")[0]
    index = _index_tensor(index, "index_select")
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 0-d or 1-d, got shape {list(index.shape)}")
    return IndexSelect.apply(input, dim=d, index=index)


class IndexAdd(Function):
    def forward(ctx, x, src, dim, index):
        ctx.dim, ctx.index, ctx.x_shape = dim, index, x._data.shape
        return _C.index_add(x._data, dim, index._data, src._data)

    def vjp(ctx, g):
        nx, ns = ctx.needs_input_grad
        return (g if nx else None), (index_select(g, ctx.dim, ctx.index) if ns else None)

    def jvp(ctx, tx, ts):
        from .creation import zeros

        base = tx if tx is not None else zeros(ctx.x_shape, dtype=ts.dtype, device=ts.device)
        return index_add(base, ctx.dim, ctx.index, ts) if ts is not None else base


@tensor_method
def index_add(input, dim, index, source, alpha=1):
    d = normalize_dims(dim, input.ndim, "index_add")[0]
    if alpha != 1:
        source = source * alpha
    if source.dtype is not input.dtype:
        source = source.to(input.dtype)
    return IndexAdd.apply(input, source, dim=d, index=_index_tensor(index, "index_add"))


class MaskedFill(Function):
    def forward(ctx, x, mask, value):
        ctx.mask = mask
        return _C.masked_fill(x._data, mask._data, value)

    def vjp(ctx, g):
        return (masked_fill(g, ctx.mask, 0.0),)

    def jvp(ctx, t):
        return masked_fill(t, ctx.mask, 0.0)


@tensor_method
def masked_fill(input, mask, value):
    if not isinstance(mask, Tensor) or mask.dtype is not _dt.bool_:
        raise TypeError(f"masked_fill: expected a bool mask tensor, got "
                        f"{mask.dtype.name if isinstance(mask, Tensor) else type(mask).__name__}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"masked_fill: only supports a 0-dimensional value tensor, got shape {list(value.shape)}")
        from .elementwise import _has_tangent, where

        if (state.grad_enabled and value._requires_grad) or _has_tangent(value):
            # the value is differentiable too: where() gives it the masked positions' gradient
            return where(mask, value.to(input.dtype), input)
        value = value.item()
    return MaskedFill.apply(input, mask=mask, value=float(value))


@tensor_method
def masked_fill_(input, mask, value):
    from .elementwise import _Compute, inplace

    return inplace(input, "masked_fill_", _Compute(lambda x: masked_fill(x, mask, value), None))


def one_hot(tensor, num_classes=-1):
    if not isinstance(tensor, Tensor) or tensor.dtype not in (_dt.int64, _dt.int32):
        raise TypeError("one_hot: expected an int64 tensor of class indices")
    return _wrap(_C.one_hot(tensor.to(_dt.int64)._data, int(num_classes)))


@tensor_method
def nonzero(input, as_tuple=False):
    out = _wrap(_C.nonzero(input._data))
    if as_tuple:
        return tuple(out[:, i] for i in range(input.ndim))
    return out


argwhere = nonzero
Tensor.argwhere = nonzero


# -- t[key] ---------------------------------------------------------------------------------------

_BIG = 1 << 62


def _parse_key(x, key):
    """Splits key into view steps (ints, slices, None) and tensor indices.

    Returns (steps, adv) where adv maps a dim of the view to an int64 index
    tensor; bool masks become their nonzero() index tensors."""
    if not isinstance(key, tuple):
        key = (key,)
    ndim = x.ndim
    items = []
    for k in key:
        if isinstance(k, (list, np.ndarray)) or (isinstance(k, Tensor)):
            k = k if isinstance(k, Tensor) else _from_index_data(k)
            if k.device != x.device:  # as torch: CPU indices (lists, masks) index a CUDA tensor
                k = k.to(x.device)
            if k.dtype is _dt.bool_:
                items.append(("mask", k))
            elif k.dtype in (_dt.int64, _dt.int32):
                items.append(("tensor", k.to(_dt.int64)))
            else:
                raise IndexError(f"tensors used as indices must be long, int or bool tensors, got {k.dtype.name}")
        elif isinstance(k, (bool, np.bool_)):
            items.append(("mask", _wrap(_C.scalar(bool(k), _dt.bool_._c))))
        elif isinstance(k, (int, np.integer)):
            items.append(("int", int(k)))
        elif isinstance(k, slice):
            items.append(("slice", k))
        elif k is None:
            items.append(("none", None))
        elif k is Ellipsis:
            items.append(("ellipsis", None))
        else:
            raise IndexError(f"index: unsupported index type {type(k).__name__} (use ints, slices, None, ..., "
                             "integer or bool tensors)")
    consumed = sum(1 if kind in ("int", "slice", "tensor") else k.ndim if kind == "mask" else 0 for kind, k in items)
    n_ellipsis = sum(1 for kind, _ in items if kind == "ellipsis")
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    steps, adv = [], {}
    dim = 0  # dim of the view being built
    src_dim = 0  # dim of x
    for kind, k in items:
        if kind == "none":
            steps.append((2, dim, 0, 0, 0))
            dim += 1
        elif kind == "ellipsis":
            skip = ndim - consumed
            dim += skip
            src_dim += skip
        elif kind == "int":
            size = x.shape[src_dim]
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for dimension {src_dim} with size {size}")
            steps.append((0, dim, k, 0, 0))
            src_dim += 1
        elif kind == "slice":
            step = 1 if k.step is None else int(k.step)
            if step <= 0:
                raise ValueError(f"index: slice step must be greater than zero, got {step}")
            start = 0 if k.start is None else int(k.start)
            stop = _BIG if k.stop is None else int(k.stop)
            steps.append((1, dim, start, stop, step))
            dim += 1
            src_dim += 1
        elif kind == "tensor":
            adv[dim] = k
            dim += 1
            src_dim += 1
        else:  # mask: its dims must match the indexed dims
            shape = tuple(x.shape[src_dim:src_dim + k.ndim])
            if k.ndim and tuple(k.shape) != shape:
                raise IndexError(f"The shape of the mask {list(k.shape)} at index {src_dim} does not match the shape "
                                 f"of the indexed tensor {list(shape)}")
            if k.ndim == 0:
                # x[True] adds a dim of size 1 (x[False]: size 0)
                steps.append((2, dim, 0, 0, 0))
                adv[dim] = _wrap(_C.zeros([1 if bool(k) else 0], _dt.int64._c, x._data.device))
                dim += 1
                continue
            nz = _wrap(_C.nonzero(k._data))
            for j in range(k.ndim):
                adv[dim] = _wrap(_C.contiguous(_C.select(nz._data, 1, j)))
                dim += 1
                src_dim += 1
    return tuple(steps), adv


def _from_index_data(k):
    a = np.asarray(k)
    if a.dtype == np.bool_:
        return _wrap(_C.copy(_C.from_numpy(np.ascontiguousarray(a))))
    if a.size == 0:
        a = a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise IndexError(f"tensors used as indices must be long, int or bool tensors, got {a.dtype}")
    return _wrap(_C.copy(_C.from_numpy(np.ascontiguousarray(a, dtype=np.int64))))


class IndexGather(Function):
    def forward(ctx, x, indices):
        ctx.indices, ctx.in_shape = indices, x._data.shape
        return _C.index_gather(x._data, [None if i is None else i._data for i in indices])

    def vjp(ctx, g):
        return (IndexPutZeros.apply(g, indices=ctx.indices, shape=ctx.in_shape),)

    def jvp(ctx, t):
        return IndexGather.apply(t, indices=ctx.indices)


class IndexPutZeros(Function):
    """zeros(shape) with g accumulated at indices: the adjoint of IndexGather."""

    def forward(ctx, g, indices, shape):
        ctx.indices, ctx.shape = indices, shape
        out = _C.zeros(list(shape), g._data.dtype, g._data.device)
        _C.index_put(out, [None if i is None else i._data for i in indices], g._data, True)
        return out

    def vjp(ctx, gg):
        return (IndexGather.apply(gg, indices=ctx.indices),)

    def jvp(ctx, t):
        return IndexPutZeros.apply(t, indices=ctx.indices, shape=ctx.shape)


def getitem(x, key):
    steps, adv = _parse_key(x, key)
    out = BasicIndex.apply(x, steps=steps) if steps else x
    if adv:
        indices = [adv.get(d) for d in range(out.ndim)]
        while indices and indices[-1] is None:
            indices.pop()
        out = IndexGather.apply(out, indices=indices)
    return out


class SetItem(Function):
    """Out-of-place x with x[key] = v (used when autograd records a write)."""

    def forward(ctx, x, v, steps, indices):
        ctx.steps, ctx.indices, ctx.x_shape = steps, indices, x._data.shape
        out = _C.copy(x._data)
        _write(out, steps, indices, v._data)
        return out

    def vjp(ctx, g):
        nx, nv = ctx.needs_input_grad
        gx = gv = None
        if nx:
            gx = SetItem.apply(g, scalar_tensor(0, g.dtype, g), steps=ctx.steps, indices=ctx.indices)
        if nv:
            gv = BasicIndex.apply(g, steps=ctx.steps) if ctx.steps else g
            if ctx.indices:
                gv = IndexGather.apply(gv, indices=ctx.indices)
        return gx, gv

    def jvp(ctx, tx, tv):
        from .creation import zeros

        dtype = (tx if tx is not None else tv).dtype
        base = tx if tx is not None else zeros(ctx.x_shape, dtype=dtype, device=(tx if tx is not None else tv).device)
        return SetItem.apply(base, tv if tv is not None else scalar_tensor(0, dtype, base), steps=ctx.steps,
                             indices=ctx.indices)


def _write(arr, steps, indices, value_arr):
    view = apply_steps(arr, steps) if steps else arr
    if indices:
        _C.index_put(view, [None if i is None else i._data for i in indices], value_arr, False)
    else:
        _C.copy_into(view, value_arr)


def setitem(x, key, value):
    from .elementwise import _Compute, _check_inplace_leaf, inplace

    _check_inplace_leaf(x, "setitem")
    if not isinstance(value, Tensor):
        if isinstance(value, (int, float, bool)):
            value = scalar_tensor(value, x.dtype, x)
        else:
            from ..tensor import tensor

            value = tensor(value, dtype=x.dtype, device=x.device)
    steps, adv = _parse_key(x, key)
    view_ndim = apply_steps(x._data, steps).ndim if steps else x.ndim
    indices = [adv.get(d) for d in range(view_ndim)] if adv else []
    while indices and indices[-1] is None:
        indices.pop()
    from .elementwise import _has_tangent, _through_view

    if (state.grad_enabled and (x._requires_grad or value._requires_grad)) or (
            state.forward_level and (_has_tangent(x) or _has_tangent(value))) or (
            getattr(x, "_base", None) is not None and _through_view(x) is not None):
        if value.dtype is not x.dtype:
            value = value.to(x.dtype)
        inplace(x, "setitem", _Compute(lambda old: SetItem.apply(old, value, steps=steps, indices=indices), value))
        return
    v = value._data if value.dtype is x.dtype else _C.astype(value._data, x.dtype._c)
    _write(x._data, steps, indices, v)
    x._data.bump_version()


Tensor.__getitem__ = getitem
Tensor.__setitem__ = setitem


@tensor_method
def masked_select(input, mask):
    if mask.shape != input.shape:
        from .shape import broadcast_tensors

        input, mask = broadcast_tensors(input, mask)
    return getitem(input, mask)


@tensor_method
def index_put_(input, indices, values, accumulate=False):
    if accumulate:
        raise NotImplementedError("index_put_: accumulate=True is not supported from Python yet")
    setitem(input, tuple(indices), values)
    return input
