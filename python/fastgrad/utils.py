"""fg.utils.checkpoint: trade compute for memory by recomputing a block in backward."""
from . import _C
from .autograd.function import Function
from .autograd.grad_mode import enable_grad, no_grad, state
from .tensor import Tensor


class _Checkpoint(Function):
    """Runs fn without recording; backward re-runs it with recording and
    back-propagates through the fresh graph. The generator state is restored
    for the re-run, so dropout draws the same mask."""

    def forward(ctx, *inputs, fn, others):
        ctx.fn, ctx.others = fn, others
        ctx.rng = _C.get_rng_state()
        ctx.save_for_backward(*inputs)
        with no_grad():
            out = fn(*_merge(inputs, others))
        if not isinstance(out, Tensor):
            raise TypeError("checkpoint: fn must return a single Tensor")
        return out._data

    def vjp(ctx, g):
        from .autograd import backward

        inputs = ctx.saved_tensors
        detached = [x.detach().requires_grad_(x.requires_grad) for x in inputs]
        now = _C.get_rng_state()
        _C.set_rng_state(*ctx.rng) if isinstance(ctx.rng, tuple) else _C.set_rng_state(ctx.rng)
        try:
            with enable_grad():
                out = ctx.fn(*_merge(detached, ctx.others))
        finally:
            _C.set_rng_state(*now) if isinstance(now, tuple) else _C.set_rng_state(now)
        # A full backward through the recomputed graph: parameters that fn
        # closes over get their .grad here, as in PyTorch's checkpoint.
        backward(out, g, create_graph=state.grad_enabled)
        return tuple(d.grad if need else None for d, need in zip(detached, ctx.needs_input_grad))


def _merge(tensors, others):
    """Rebuilds the positional arguments: others holds (index, value) of non-tensors."""
    args, it = [], iter(tensors)
    n = len(tensors) + len(others)
    fixed = dict(others)
    for i in range(n):
        args.append(fixed[i] if i in fixed else next(it))
    return args


def checkpoint(fn, *args, use_reentrant=None):
    """fn(*args), without keeping fn's intermediate activations for backward:
    they are recomputed when the gradient is needed."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    others = tuple((i, a) for i, a in enumerate(args) if not isinstance(a, Tensor))
    return _Checkpoint.apply(*tensors, fn=fn, others=others)
