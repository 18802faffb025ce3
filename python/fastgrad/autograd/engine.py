"""The backward pass: walks the tape from the outputs to the leaves.

The graph is sorted with an iterative depth-first search (no recursion, so a
graph 100,000 ops deep is fine), then each node runs its vjp once, after all
of its consumers have added their gradients, in reverse topological order.
"""
import sys

from .. import _C
from .function import Function, _FREED
from .grad_mode import state
from ..dtypes import _BY_ID

_getrefcount = getattr(sys, "getrefcount", None)  # CPython; elsewhere gradients are always copied


def _refs_of_a_local():
    o = object()
    return _getrefcount(o)


# sys.getrefcount(x) of an object that only a local variable x holds, measured
# with the same code pattern as the test in run_backward (interpreters differ:
# 3.14 borrows references that 3.11 counts).
_LOCAL_REFS = _refs_of_a_local() if _getrefcount is not None else 0
_Tensor = None  # set by tensor.py once Tensor exists (an import per backward costs a microsecond)


def _topo_order(roots):
    """Nodes reachable from roots; every node comes before the nodes it feeds from."""
    # `seen` holds the nodes themselves (Functions hash by identity; leaf Tensors never enter it)
    order, seen = [], set()
    for root in roots:
        if root is None or root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root.next))]
        while stack:
            node, it = stack[-1]
            for child in it:
                if isinstance(child, Function) and child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child.next)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _fix_grad(g, shape, dtype, node, i):
    """Sums a broadcast gradient back to the input's shape and casts its dtype."""
    if g._data.shape != shape:
        g = g.sum_to_size(shape)
    if g._data.dtype_id != dtype:
        g = g.to(dtype=_BY_ID[dtype])
    return g


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, allow_unused=False):
    """Back-propagates grad_outputs from outputs.

    With inputs=None, gradients are accumulated into the leaves' .grad.
    Otherwise returns the gradients w.r.t. `inputs` (leaves or not) and
    leaves every .grad untouched (autograd.grad).
    """
    Tensor = _Tensor
    _wrap = Tensor._wrap
    grads = {}  # id(node or leaf) -> accumulated gradient Tensor
    roots = []
    for out, g in zip(outputs, grad_outputs):
        if not out._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        key = out._node if out._node is not None else out
        grads[id(key)] = g if id(key) not in grads else grads[id(key)] + g
        roots.append(out._node)

    order = _topo_order(roots)

    targets = None
    if inputs is not None:
        targets = {}
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"autograd.grad: inputs must be Tensors, got {type(t).__name__}")
            if not t._requires_grad:
                raise RuntimeError("autograd.grad: one of the differentiated Tensors does not require grad")
            targets[id(t._node if t._node is not None else t)] = None
        # Only nodes that lead to a target need their vjp run.
        useful = set()
        for node in reversed(order):
            if any((id(c) in useful or id(c) in targets) for c in node.next if c is not None):
                useful.add(id(node))
    else:
        useful = None

    leaves = []  # leaf tensors that received a gradient, in order
    prev_mode = state.grad_enabled
    state.grad_enabled = create_graph
    pop = grads.pop
    try:
        for node in order:
            g = pop(id(node), None)
            if g is None:
                continue
            hooks = node.tensor_hooks
            if hooks:
                for h in hooks:
                    r = h(g)
                    if r is not None:
                        g = r
            ref = node.retain_ref
            if ref is not None:
                t = ref()
                if t is not None:
                    gd = g if create_graph else g.detach()
                    t._grad = gd if t._grad is None else t._grad + gd
            if targets is not None and id(node) in targets:
                targets[id(node)] = g
            if node._saved is _FREED:
                node.saved_tensors  # raises the "second time" error (its edges are gone too)
            if useful is not None and id(node) not in useful:
                continue
            in_grads = node.vjp(g)
            if not retain_graph:
                node.release()
            meta = node.in_meta
            for i, (child, gi) in enumerate(zip(node.next, in_grads)):
                if child is None or gi is None:
                    continue
                shape, dtype = meta[i]
                d = gi._data
                if d.shape != shape or d.dtype_id != dtype:
                    gi = _fix_grad(gi, shape, dtype, node, i)
                k = id(child)
                prev = grads.get(k)
                if prev is not None:
                    grads[k] = prev + gi
                else:
                    grads[k] = gi
                    if not isinstance(child, Function):
                        leaves.append(child)  # a leaf: collect every contribution, then accumulate below
            if not retain_graph:
                node.next = ()
        # The loop's locals may still hold a leaf's gradient: dropped, so that the
        # reference counts below see only the engine's own reference.
        g = gi = prev = in_grads = r = d = None
        # Leaves: hooks, then accumulate into .grad (or return for autograd.grad).
        for out in outputs:  # a leaf output differentiated directly (x.backward())
            if out._node is None and id(out) in grads:
                leaves.append(out)
        result_leaves = {}
        for leaf in leaves:
            g = pop(id(leaf), None)
            if g is None:
                continue
            if leaf._hooks:
                for h in leaf._hooks:
                    r = h(g)
                    if r is not None:
                        g = r
                r = None
            if targets is not None:
                if id(leaf) in targets:
                    result_leaves[id(leaf)] = g
                continue
            if create_graph or leaf._grad is not None or _getrefcount is None:
                _accumulate(leaf, g, create_graph)
                continue
            # A leaf's first gradient becomes its .grad without a copy (as PyTorch steals
            # it) when nothing else can see its memory: only this local holds the Tensor,
            # only that Tensor the Array, only that Array the storage (no view, no NumPy
            # or DLPack export), and it is contiguous (the fused optimizers need it).
            # Otherwise it is copied: an in-place accumulation later must not write
            # into a tensor someone else holds (another leaf's gradient, a user's).
            d = g._data
            if _getrefcount(g) <= _LOCAL_REFS and _getrefcount(d) <= _LOCAL_REFS + 1 and d.storage_refs == 1 \
                    and d.is_contiguous():
                leaf._grad = _wrap(d)
            else:
                _accumulate(leaf, g, False)
            g = d = None
    finally:
        state.grad_enabled = prev_mode

    if targets is None:
        return None
    out = []
    for t in inputs:
        k = id(t._node if t._node is not None else t)
        g = result_leaves.get(k) if t._node is None else targets.get(k)
        if g is None and not allow_unused:
            raise RuntimeError(
                "autograd.grad: one of the differentiated Tensors appears to not have been used in the graph. "
                "Set allow_unused=True if this is the desired behavior."
            )
        out.append(g)
    return tuple(out)



def _accumulate(leaf, g, create_graph):
    if create_graph:
        leaf._grad = g if leaf._grad is None else leaf._grad + g
        return
    g = g.detach()
    if leaf._grad is None:
        # A fresh buffer: g may be shared with another leaf's gradient (add's
        # vjp hands the same tensor to both inputs), and .grad is written in place later.
        leaf._grad = g.clone()
    elif leaf._grad._requires_grad:
        leaf._grad = leaf._grad.detach() + g
    elif not state.grad_enabled and not state.forward_level:
        # what .add_ ends in when nothing is recorded (as inside backward): the native
        # in-place add (it bumps the version), minus the in-place op's autograd checks
        _C.add_(leaf._grad._data, g._data)
    else:
        leaf._grad.add_(g)
