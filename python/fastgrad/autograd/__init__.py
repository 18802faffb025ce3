"""Reverse- and forward-mode automatic differentiation."""
from .. import _C
from . import engine as _engine
from .engine import run_backward
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled


def _make_grads(outputs, grad_outputs, create_graph):
    grads = []
    for out, g in zip(outputs, grad_outputs):
        if g is None:
            d = out._data
            if d.numel() != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs (got shape {list(out.shape)})"
                )
            g = _engine._Tensor._wrap(_C.full(d.shape, 1.0, d.dtype, d.device))  # ones_like, minus its checks
        else:
            from ..tensor import Tensor, tensor

            if not isinstance(g, Tensor):
                g = tensor(g, dtype=out.dtype)
            if g.shape != out.shape:
                raise RuntimeError(
                    f"backward: gradient has shape {list(g.shape)} but the output has shape {list(out.shape)}"
                )
            if not create_graph:
                g = g.detach()
        grads.append(g)
    return grads


def _as_tuple(x):
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x,)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulates d(tensors)/d(leaf) into every leaf's .grad (or only `inputs`' .grad)."""
    tensors = _as_tuple(tensors)
    grad_tensors = _as_tuple(grad_tensors) if grad_tensors is not None else (None,) * len(tensors)
    if retain_graph is None:
        retain_graph = create_graph
    grads = _make_grads(tensors, grad_tensors, create_graph)
    if inputs is not None:
        inputs = _as_tuple(inputs)
        res = run_backward(tensors, grads, retain_graph, create_graph, inputs=inputs, allow_unused=True)
        from .engine import _accumulate

        for t, g in zip(inputs, res):
            if g is not None:
                _accumulate(t, g, create_graph)
        return
    run_backward(tensors, grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False,
         materialize_grads=False):
    """Gradients of outputs w.r.t. inputs, returned (not accumulated into .grad)."""
    outputs = _as_tuple(outputs)
    single = not isinstance(inputs, (list, tuple))
    inputs = _as_tuple(inputs)
    grad_outputs = _as_tuple(grad_outputs) if grad_outputs is not None else (None,) * len(outputs)
    if retain_graph is None:
        retain_graph = create_graph
    grads = _make_grads(outputs, grad_outputs, create_graph)
    res = run_backward(outputs, grads, retain_graph, create_graph, inputs=inputs,
                       allow_unused=allow_unused or materialize_grads)
    if materialize_grads:
        from ..ops.creation import zeros_like

        res = tuple(zeros_like(t) if g is None else g for t, g in zip(inputs, res))
    return res


from .functional import gradcheck  # noqa: E402

__all__ = ["Function", "backward", "grad", "gradcheck", "no_grad", "enable_grad", "is_grad_enabled",
           "set_grad_enabled"]
