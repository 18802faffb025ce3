"""Shape ops: views (no copy) and joins, with their vjp and jvp rules."""
from .. import _C
from ..autograd.function import Function
from ._util import Tensor, _wrap, normalize_dims, tensor_method


def _shape_arg(shape, op):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        return [int(s) for s in shape]
    except TypeError:
        raise TypeError(f"{op}: shape must be a sequence of ints, got {shape!r}") from None


# -- reshape / view ----------------------------------------------------------------------------


class Reshape(Function):
    view_op = True

    def forward(ctx, x, shape, view):
        arr = _C.view(x._data, shape) if view else _C.reshape(x._data, shape)
        ctx.out_shape = arr.shape
        return arr

    def vjp(ctx, g):
        return (g.reshape(ctx.in_meta[0][0]),)

    def jvp(ctx, t):
        return t.reshape(ctx.out_shape)


def _reshape(x, shape, view):
    if list(x._data.shape) == shape:
        return x
    return Reshape.apply(x, shape=shape, view=view)


@tensor_method
def reshape(input, *shape):
    return _reshape(input, _shape_arg(shape, "reshape"), False)


@tensor_method
def view(input, *shape):
    return _reshape(input, _shape_arg(shape, "view"), True)


@tensor_method
def view_as(input, other):
    return view(input, other.shape)


@tensor_method
def reshape_as(input, other):
    return reshape(input, other.shape)


@tensor_method
def flatten(input, start_dim=0, end_dim=-1):
    nd = input.ndim
    if nd == 0:
        return input.reshape(1)
    s, e = normalize_dims((start_dim, end_dim), nd, "flatten") if start_dim != end_dim else [start_dim % nd] * 2
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} cannot come after end_dim {end_dim}")
    shape = list(input.shape)
    n = 1
    for d in shape[s:e + 1]:
        n *= d
    return input.reshape(shape[:s] + [n] + shape[e + 1:])


@tensor_method
def unflatten(input, dim, sizes):
    d = normalize_dims(dim, input.ndim, "unflatten")[0]
    shape = list(input.shape)
    return input.reshape(shape[:d] + list(sizes) + shape[d + 1:])


class Permute(Function):
    view_op = True

    def forward(ctx, x, dims):
        ctx.dims = dims
        return _C.permute(x._data, dims)

    def vjp(ctx, g):
        inv = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inv[d % len(ctx.dims)] = i
        return (g.permute(*inv),)

    def jvp(ctx, t):
        return t.permute(*ctx.dims)


@tensor_method
def permute(input, *dims):
    return Permute.apply(input, dims=_shape_arg(dims, "permute"))


class Transpose(Function):
    view_op = True

    def forward(ctx, x, d0, d1):
        ctx.d0, ctx.d1 = d0, d1
        return _C.transpose(x._data, d0, d1)

    def vjp(ctx, g):
        return (g.transpose(ctx.d0, ctx.d1),)

    def jvp(ctx, t):
        return t.transpose(ctx.d0, ctx.d1)


@tensor_method
def transpose(input, dim0, dim1):
    return Transpose.apply(input, d0=int(dim0), d1=int(dim1))


swapaxes = transpose
Tensor.swapaxes = transpose


@tensor_method
def t(input):
    if input.ndim > 2:
        raise ValueError(f"t: expects a tensor with <= 2 dimensions, but got {input.ndim}")
    return input if input.ndim < 2 else input.transpose(0, 1)


class Expand(Function):
    view_op = True

    def forward(ctx, x, shape):
        arr = _C.expand(x._data, shape)
        ctx.out_shape = arr.shape
        return arr

    def vjp(ctx, g):
        return (g.sum_to_size(ctx.in_meta[0][0]),)

    def jvp(ctx, t):
        return t.expand(*ctx.out_shape)


@tensor_method
def expand(input, *shape):
    return Expand.apply(input, shape=_shape_arg(shape, "expand"))


@tensor_method
def expand_as(input, other):
    return input.expand(*other.shape)


@tensor_method
def broadcast_to(input, shape):
    return input.expand(*shape)


def broadcast_tensors(*tensors):
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"broadcast_tensors: expected Tensors, got {type(t).__name__}")
    shape = ()
    for t in tensors:
        shape = _C.broadcast_shapes(list(shape), list(t.shape))
    return tuple(t.expand(*shape) for t in tensors)


def broadcast_shapes(*shapes):
    out = []
    for s in shapes:
        out = _C.broadcast_shapes(list(out), list(s))
    return tuple(out)


class Squeeze(Function):
    view_op = True

    def forward(ctx, x, dims):
        arr = _C.squeeze(x._data, dims)
        ctx.out_shape = arr.shape
        return arr

    def vjp(ctx, g):
        return (g.reshape(ctx.in_meta[0][0]),)

    def jvp(ctx, t):
        return t.reshape(ctx.out_shape)


@tensor_method
def squeeze(input, *dim):
    if len(dim) == 1 and isinstance(dim[0], (tuple, list)):
        dim = tuple(dim[0])
    return Squeeze.apply(input, dims=[int(d) for d in dim])


class Unsqueeze(Function):
    view_op = True

    def forward(ctx, x, dim):
        ctx.dim = dim
        return _C.unsqueeze(x._data, dim)

    def vjp(ctx, g):
        return (g.squeeze(ctx.dim),)

    def jvp(ctx, t):
        return t.unsqueeze(ctx.dim)


@tensor_method
def unsqueeze(input, dim):
    return Unsqueeze.apply(input, dim=int(dim))


class Flip(Function):
    view_op = True

    def forward(ctx, x, dims):
        ctx.dims = dims
        return _C.flip(x._data, dims)

    def vjp(ctx, g):
        return (g.flip(ctx.dims),)

    def jvp(ctx, t):
        return t.flip(ctx.dims)


@tensor_method
def flip(input, *dims):
    return Flip.apply(input, dims=_shape_arg(dims, "flip"))


class Contiguous(Function):
    def forward(ctx, x):
        return _C.contiguous(x._data)

    def vjp(ctx, g):
        return (g,)

    def jvp(ctx, t):
        return t


@tensor_method
def contiguous(input):
    if input._data.is_contiguous():
        return input
    return Contiguous.apply(input)


# -- basic indexing: ints, slices, None, Ellipsis ------------------------------------------------


def apply_steps(arr, steps):
    for kind, a, b, c, d in steps:
        if kind == 0:
            arr = _C.select(arr, a, b)
        elif kind == 1:
            arr = _C.slice(arr, a, b, c, d)
        else:
            arr = _C.unsqueeze(arr, a)
    return arr


class BasicIndex(Function):
    """x[ints, slices, None, ...] as a view; steps are (kind, dim, ...) tuples."""

    view_op = True

    def forward(ctx, x, steps):
        ctx.steps = steps
        return apply_steps(x._data, steps)

    def vjp(ctx, g):
        return (ViewScatter.apply(g, steps=((BasicIndex, {"steps": ctx.steps}),), shape=ctx.in_meta[0][0]),)

    def jvp(ctx, t):
        return BasicIndex.apply(t, steps=ctx.steps)


def _view_array(arr, steps):
    """The raw-array view that a view's recorded (op, params) steps select."""
    for cls, params in steps:
        arr = cls.forward(cls.__new__(cls), _wrap(arr), **params)
    return arr


class CopySlices(Function):
    """The root of a view after an in-place write of `value` through the view:
    root with the view's region replaced (the write has already happened, so
    forward returns the root's own memory)."""

    def forward(ctx, root, value, steps):
        ctx.steps, ctx.shape = steps, root._data.shape
        return root._data

    def vjp(ctx, g):
        from ..autograd.function import replay_view

        nr, nv = ctx.needs_input_grad
        return (ZeroView.apply(g, steps=ctx.steps) if nr else None), (replay_view(g, ctx.steps) if nv else None)

    def jvp(ctx, troot, tvalue):
        from ..ops._util import tsum

        return tsum(None if troot is None else ZeroView.apply(troot, steps=ctx.steps),
                    None if tvalue is None else ViewScatter.apply(tvalue, steps=ctx.steps, shape=ctx.shape))


class ZeroView(Function):
    """A copy of g with the view's region set to 0 (self-adjoint)."""

    def forward(ctx, g, steps):
        ctx.steps = steps
        out = _C.copy(g._data)
        _C.copy_into(_view_array(out, steps), _C.scalar(0, out.dtype))
        return out

    def vjp(ctx, gg):
        return (ZeroView.apply(gg, steps=ctx.steps),)

    def jvp(ctx, t):
        return ZeroView.apply(t, steps=ctx.steps)


class ViewScatter(Function):
    """zeros(shape) with v written into the view's region (adjoint of the view)."""

    def forward(ctx, v, steps, shape):
        ctx.steps, ctx.shape = steps, shape
        out = _C.zeros(list(shape), v._data.dtype, v._data.device)
        _C.copy_into(_view_array(out, steps), v._data)
        return out

    def vjp(ctx, gg):
        from ..autograd.function import replay_view

        return (replay_view(gg, ctx.steps),)

    def jvp(ctx, t):
        return ViewScatter.apply(t, steps=ctx.steps, shape=ctx.shape)


@tensor_method
def narrow(input, dim, start, length):
    d = normalize_dims(dim, input.ndim, "narrow")[0]
    n = input.shape[d]
    if start < 0:
        start += n
    if not (0 <= start and start + length <= n and length >= 0):
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({n})")
    return BasicIndex.apply(input, steps=((1, d, start, start + length, 1),))


@tensor_method
def select(input, dim, index):
    d = normalize_dims(dim, input.ndim, "select")[0]
    n = input.shape[d]
    if not -n <= int(index) < n:
        raise IndexError(f"select: index {index} out of range for tensor of size {list(input.shape)} at dimension {d}")
    return BasicIndex.apply(input, steps=((0, d, int(index), 0, 0),))


@tensor_method
def unbind(input, dim=0):
    d = normalize_dims(dim, input.ndim, "unbind")[0]
    return tuple(select(input, d, i) for i in range(input.shape[d]))


@tensor_method
def split(input, split_size_or_sections, dim=0):
    d = normalize_dims(dim, input.ndim, "split")[0]
    n = input.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, n - i) for i in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: split sizes {sizes} must sum to the dimension size {n}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(input, d, start, s))
        start += s
    return tuple(out)


@tensor_method
def chunk(input, chunks, dim=0):
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    d = normalize_dims(dim, input.ndim, "chunk")[0]
    n = input.shape[d]
    size = max(1, -(-n // chunks))
    return split(input, size, d)


# -- joins ---------------------------------------------------------------------------------------


class Cat(Function):
    def forward(ctx, *xs, dim):
        ctx.dim = dim
        ctx.inputs_like = [(x.shape, x.dtype) for x in xs]  # zeros for inputs without a tangent (jvp)
        return _C.cat([x._data for x in xs], dim)

    def vjp(ctx, g):
        out, start = [], 0
        d = ctx.dim % max(g.ndim, 1)
        for (shape, _), need in zip(ctx.inputs_like, ctx.needs_input_grad):
            size = shape[d] if len(shape) == g.ndim else 0  # legacy empty 1-D inputs take nothing
            out.append(narrow(g, d, start, size) if need else None)
            start += size
        return tuple(out)

    def jvp(ctx, *ts):
        from .creation import zeros

        dev = next(t for t in ts if t is not None).device
        parts = [t if t is not None else zeros(shape, dtype=dt, device=dev) for t, (shape, dt) in zip(ts, ctx.inputs_like)]
        return cat(parts, ctx.dim)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"cat: expected a sequence of Tensors, got {type(t).__name__}")
    return Cat.apply(*tensors, dim=int(dim))


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"stack: expected a sequence of Tensors, got {type(t).__name__}")
    shape0 = tensors[0].shape
    for t in tensors:
        if t.shape != shape0:
            raise ValueError(f"stack: expects each tensor to be equal size, but got {list(shape0)} and {list(t.shape)}")
    d = normalize_dims(dim, len(shape0) + 1, "stack")[0]
    return cat([t.unsqueeze(d) for t in tensors], d)


def hstack(tensors):
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([t.reshape(1, -1) if t.ndim == 1 else t for t in tensors], 0)


class Pad(Function):
    def forward(ctx, x, pads, value):
        ctx.pads = pads
        return _C.pad(x._data, pads, value)

    def vjp(ctx, g):
        return (Pad.apply(g, pads=[-p for p in ctx.pads], value=0.0),)

    def jvp(ctx, t):
        return Pad.apply(t, pads=ctx.pads, value=0.0)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_source(mode, n, lo, hi):
    """For a dim of size n padded by (lo, hi) (either may be negative: a
    crop), the input position each output position reads: reflect mirrors
    about the edge elements, replicate repeats them, circular wraps around
    what is left after the crops (as torch does)."""
    import numpy as np

    if mode == "circular":
        cl, cr = max(-lo, 0), max(-hi, 0)
        m = n - cl - cr
        i = np.arange(-max(lo, 0), m + max(hi, 0), dtype=np.int64)
        return cl + (np.mod(i, m) if m else i)
    i = np.arange(-lo, n + hi, dtype=np.int64)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    i = np.abs(i)  # reflect: -k -> k, then n-1+k -> n-1-k
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def _pad_non_constant(input, pads, mode):
    """reflect / replicate / circular padding of the last len(pads)/2 dims,
    torch's shape rules: 2 pads for a 2-D or 3-D input, 4 for 3-D or 4-D,
    6 for 4-D or 5-D (the dims before the padded ones: channels and an
    optional batch); bad sizes raise RuntimeError like torch's. One
    index_select per padded dim (PadGather)."""
    from ..tensor import tensor

    k = len(pads) // 2
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"pad: padding size {len(pads)} is not supported for {input.ndim}D input tensor (shape "
            f"{list(input.shape)}) with mode={mode!r}; supported: padding size 2 for a 2D or 3D input, 4 for 3D or "
            "4D, 6 for 4D or 5D")
    shape = list(input.shape)
    if mode != "circular":
        # torch: only the batch dim (of a batched input) may be empty
        inner = shape[1:] if input.ndim == k + 2 else shape
        if any(s == 0 for s in inner):
            raise RuntimeError(f"pad: mode={mode!r} expects the non-batch dims of the input to be non-zero, got "
                               f"shape {shape}")
    plan = []  # per padded dim: (dim, source index, n, c0, j0, length, edges), see PadGather
    for j in range(k):
        lo, hi = pads[2 * j], pads[2 * j + 1]
        d = input.ndim - 1 - j
        n = shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(f"pad: padding size should be less than the corresponding input dimension for "
                               f"mode='reflect', but got padding ({lo}, {hi}) at dimension {d} of input {shape}")
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError(f"pad: padding ({lo}, {hi}) at dimension {d} of input {shape} wraps around more than "
                               "once (mode='circular' pads at most the dimension's size)")
        size = n + lo + hi
        # torch's 1-D reflect / replicate want a non-empty output; the 2-D and 3-D ones allow an empty one
        if size < 0 or (size == 0 and k == 1 and mode != "circular"):
            raise RuntimeError(f"pad: input dimension {d} (size {n}) is too small for padding ({lo}, {hi}): the "
                               f"output size would be {size} (input shape {shape}, mode={mode!r})")
        if mode == "circular" and n - max(-lo, 0) - max(-hi, 0) <= 0 and (lo > 0 or hi > 0):
            raise RuntimeError(f"pad: padding ({lo}, {hi}) at dimension {d} of input {shape} crops away every "
                               "element, so mode='circular' has nothing to wrap around")
        if lo == 0 and hi == 0:
            continue
        src = _pad_source(mode, n, lo, hi)
        # the output's middle block [j0, j0 + length) reads input [c0, c0 + length) in order; the rest are edges
        c0, j0 = max(-lo, 0), max(lo, 0)
        length = n - c0 - max(-hi, 0)
        if length <= 0:  # the crops leave nothing in place: every output position is an edge
            length, spans = 0, [(0, size)]
        else:
            spans = [(0, j0), (j0 + length, size)]
        edges = [(a, b, tensor(src[a:b], device=input.device)) for a, b in spans if b > a]
        plan.append((d, tensor(src, device=input.device), n, c0, j0, length, edges))
    return PadGather.apply(input, plan=plan) if plan else input


class PadGather(Function):
    """reflect / replicate / circular padding: out = x gathered along each
    padded dim (index_select). The vjp is its adjoint written in ops (so
    higher orders work) and cheap: per dim, the gradient's middle block is
    the input's gradient shifted (a slice, zero-padded where the pads crop),
    plus the few edge columns index_added where they were read from."""

    def forward(ctx, x, plan):
        ctx.plan = plan
        arr = x._data
        for d, idx, *_ in plan:
            arr = _C.index_select(arr, d, idx._data)
        return arr

    def vjp(ctx, g):
        from .creation import zeros
        from .index import index_add

        for d, _, n, c0, j0, length, edges in reversed(ctx.plan):
            if length == 0:
                gx = zeros(*g.shape[:d], n, *g.shape[d + 1:], dtype=g.dtype, device=g.device)
            else:
                gx = g.narrow(d, j0, length)
                if length < n:
                    gx = pad(gx, [0, 0] * (g.ndim - 1 - d) + [c0, n - c0 - length])
            for a, b, idx in edges:
                gx = index_add(gx, d, idx, g.narrow(d, a, b - a))
            g = gx
        return (g,)

    def jvp(ctx, t):
        return PadGather.apply(t, plan=ctx.plan)


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad: pad = (left, right) for the last dim, then
    (top, bottom) for the one before, ...; negative values crop."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: expected a Tensor, got {type(input).__name__}")
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"pad: unrecognised padding mode {mode!r}, expected one of {_PAD_MODES}")
    pads = [int(p) for p in pad]
    if len(pads) % 2 or len(pads) // 2 > input.ndim:
        raise ValueError(f"pad: padding length {len(pads)} must be even and at most 2 * ndim ({2 * input.ndim})")
    if mode != "constant":
        if value is not None and value != 0:
            raise RuntimeError(f"pad: padding mode {mode!r} doesn't take in value argument (got value={value})")
        return _pad_non_constant(input, pads, mode)
    return Pad.apply(input, pads=pads, value=float(value if value is not None else 0.0))


Tensor.pad = pad


class Repeat(Function):
    def forward(ctx, x, repeats):
        ctx.repeats = repeats
        return _C.repeat(x._data, repeats)

    def vjp(ctx, g):
        shape = list(ctx.in_meta[0][0])
        reps = ctx.repeats
        lead = len(reps) - len(shape)
        shape = [1] * lead + shape
        split_shape, sum_dims = [], []
        for i, (r, s) in enumerate(zip(reps, shape)):
            split_shape += [r, s]
            sum_dims.append(2 * i)
        gs = g.reshape(split_shape).sum(dim=tuple(sum_dims))
        return (gs.reshape(ctx.in_meta[0][0]),)

    def jvp(ctx, t):
        return Repeat.apply(t, repeats=ctx.repeats)


@tensor_method
def repeat(input, *repeats):
    reps = _shape_arg(repeats, "repeat")
    if len(reps) < input.ndim:
        raise ValueError(f"repeat: number of repeat dims ({len(reps)}) can not be smaller than the tensor's dims ({input.ndim})")
    return Repeat.apply(input, repeats=reps)


class _Tri(Function):
    kernel = None

    def forward(ctx, x, k):
        ctx.k = k
        return type(ctx).kernel(x._data, k)

    def vjp(ctx, g):
        return (type(ctx).apply(g, k=ctx.k),)

    def jvp(ctx, t):
        return type(ctx).apply(t, k=ctx.k)


class Tril(_Tri):
    kernel = staticmethod(_C.tril)


class Triu(_Tri):
    kernel = staticmethod(_C.triu)


@tensor_method
def tril(input, diagonal=0):
    if input.ndim < 2:
        raise ValueError(f"tril: input tensor must have at least 2 dimensions, got {input.ndim}")
    return Tril.apply(input, k=int(diagonal))


@tensor_method
def triu(input, diagonal=0):
    if input.ndim < 2:
        raise ValueError(f"triu: input tensor must have at least 2 dimensions, got {input.ndim}")
    return Triu.apply(input, k=int(diagonal))


@tensor_method
def movedim(input, source, destination):
    nd = input.ndim
    src = normalize_dims(source, nd, "movedim")
    dst = normalize_dims(destination, nd, "movedim")
    order = [d for d in range(nd) if d not in src]
    for s, d in sorted(zip(dst, src)):
        order.insert(s, d)
    return input.permute(*order)


@tensor_method
def sum_to_size(input, *size):
    """Sums broadcast dimensions away so the result has shape `size` (the adjoint of expand)."""
    shape = tuple(_shape_arg(size, "sum_to_size"))
    if input.shape == shape:
        return input
    lead = input.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"sum_to_size: size {list(shape)} is not expandable to {list(input.shape)}")
    dims = list(range(lead))
    for i, s in enumerate(shape):
        n = input.shape[lead + i]
        if s == 1 and n != 1:
            dims.append(lead + i)
        elif s != n:
            raise ValueError(f"sum_to_size: size {list(shape)} is not expandable to {list(input.shape)}")
    out = input.sum(dim=tuple(dims), keepdim=True) if dims else input
    return out.reshape(shape)
