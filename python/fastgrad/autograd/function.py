"""Function: one differentiable op, and its node on the tape.

An op is a subclass with three static-style methods:

    forward(ctx, *inputs, **params) -> _C.Array
        inputs are Tensors (the differentiable arguments, in order); params
        are plain Python values. Saves what backward needs on ctx:
        ctx.save_for_backward(*tensors) and/or ctx.save_output = True.
    vjp(ctx, grad) -> tuple with one gradient (Tensor or None) per input
        written in fastgrad ops, so it is differentiable again
        (create_graph=True, fg.grad(fg.grad(f))). The engine sums a gradient
        of a broadcast shape back to the input's shape and casts it to the
        input's dtype, so rules need not.
    jvp(ctx, *tangents) -> tangent of the output
        forward mode; a tangent is None where the input has none.

Each application creates one instance (the ctx) which, when the op is
recorded, is also the graph node of its output.
"""
from . import grad_mode
from .grad_mode import state

_FREED = object()


class Function:
    # Graph fields, set only when recorded:
    #   next: per input, the producing Function, the leaf Tensor, or None
    #   in_meta: per input, (shape, dtype_id) for the engine's shape/dtype fix-up
    #   _saved: tuple of (tensor, version) pairs, or _FREED after backward
    #   _out: the output Array when save_output is set (not the Tensor: no cycle)
    #   out_ref: weak reference to the output Tensor (retain_grad, hooks)
    needs_input_grad = ()
    _saved = ()  # class default: most ops save nothing (one attribute write less per op)
    tensor_hooks = None  # set per node by Tensor.register_hook / retain_grad
    retain_ref = None
    save_output = False
    differentiable = True
    # A view op's output shares its first input's memory (when the storage is
    # the same): the output remembers its root tensor and how to replay the
    # view, so an in-place write through the view updates the root's graph.
    view_op = False

    @classmethod
    def apply(cls, *inputs, **params):
        st = state
        grad_on = st.grad_enabled
        level = st.forward_level
        record = False
        if grad_on or level:
            for t in inputs:
                b = getattr(t, "_base", None)  # (a Parameter made by nn may lack the slot)
                if b is not None and (b[0]._node is not b[2] or b[0]._tangent is not b[3]):
                    refresh_view(t)  # the root was written in place since this view was made
            if grad_on and cls.differentiable:
                for t in inputs:
                    if t._requires_grad:
                        record = True
                        break
        ctx = _new(cls)
        if not record and not level:
            ctx._saved = None  # nothing will read them: save_for_backward keeps nothing
        out_arr = ctx.forward(*inputs, **params)
        # Tensor._wrap inlined: this runs once per op
        out = _new(_Tensor)
        out._data = out_arr
        out._requires_grad = False
        out._grad = out._node = out._tangent = out._hooks = out._base = None
        if cls.view_op and out_arr.storage_id == inputs[0]._data.storage_id:
            src = inputs[0]
            b = getattr(src, "_base", None)
            if b is None:
                out._base = (src, ((cls, params),), src._node, src._tangent)
            else:
                out._base = (b[0], b[1] + ((cls, params),), b[2], b[3])
        if not cls.differentiable:
            return out
        if record:
            # Loops, not comprehensions: in Python 3.11 each comprehension is a function call.
            needs, nxt, meta = [], [], []
            for t in inputs:
                d = t._data
                meta.append((d.shape, d.dtype_id))
                if t._requires_grad:
                    needs.append(True)
                    nxt.append(t._node or t)
                else:
                    needs.append(False)
                    nxt.append(None)
            ctx.needs_input_grad = tuple(needs)
            ctx.next = tuple(nxt)
            ctx.in_meta = tuple(meta)
            if cls.save_output:
                ctx._out = out_arr
                ctx._out_version = out_arr.version
            out._requires_grad = True
            out._node = ctx
        if level:
            if jvp_levels[0] == level:  # one fg.jvp running (or an outer level's rule): as before nesting
                tangents = []
                for t in inputs:
                    tt = t._tangent
                    while tt is not None and tt[0] != level:
                        tt = tt[2]
                    tangents.append(None if tt is None else tt[1])
                if any(x is not None for x in tangents):
                    if ctx.save_output:
                        ctx._out = out_arr
                        ctx._out_version = out_arr.version
                        ctx._out_tensor = out
                    st.forward_level = 0  # the tangent computation itself carries no tangents
                    try:
                        tangent = ctx.jvp(*tangents)
                    finally:
                        st.forward_level = level
                    if tangent is not None:
                        out._tangent = (level, tangent, None)
            else:
                _push_nested(ctx, inputs, out, out_arr, level)
        return out

    # -- saving ----------------------------------------------------------------
    def save_for_backward(self, *tensors):
        """Saves tensors (None: a slot the rules will not need) with their versions."""
        if self._saved is None:  # the op is not recorded (apply said so): keep no references
            return
        saved = []
        for t in tensors:
            saved.append((t, None if t is None else t._data.version))
        self._saved = tuple(saved)

    @property
    def saved_tensors(self):
        saved = self._saved
        if saved is _FREED:
            raise RuntimeError(
                f"{type(self).__name__}: trying to backward through the graph a second time (or to access "
                "saved tensors after they have been freed). Saved intermediate values of the graph are freed "
                "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
                "backward through the graph a second time."
            )
        out = []
        for t, version in saved:
            if t is not None and t._data.version != version:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: [{t.dtype.name} {list(t.shape)}], which is output of {type(self).__name__}'s "
                    f"input, is at version {t._data.version}; expected version {version} instead."
                )
            out.append(t)
        return tuple(out)

    @property
    def output(self):
        """The op's output as a Tensor that is part of the graph (for rules like exp's)."""
        if self._saved is _FREED:
            self.saved_tensors  # raises the clear error
        out_arr = getattr(self, "_out", None)
        if out_arr is not None and out_arr.version != self._out_version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{_wrap(out_arr).dtype.name} {list(out_arr.shape)}], which is output 0 of "
                f"{type(self).__name__}, is at version {out_arr.version}; expected version {self._out_version} "
                "instead."
            )
        t = getattr(self, "_out_tensor", None)
        if t is not None:
            return t
        out = _wrap(self._out)
        if hasattr(self, "next"):
            out._requires_grad = True
            out._node = self
        return out

    def release(self):
        self._saved = _FREED
        self._out = None
        self._out_tensor = None

    def vjp(self, grad):
        raise NotImplementedError(f"{type(self).__name__} has no vjp rule")

    def jvp(self, *tangents):
        raise NotImplementedError(f"{type(self).__name__} has no jvp rule (forward mode)")

    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


# Forward mode, nested (fg.jvp inside fg.jvp). A tensor's _tangent is a chain
# (level, tangent, rest), innermost level first, rest the same for the outer
# levels (None at the end). jvp_levels lists the running fg.jvp levels,
# outermost first; state.forward_level is the innermost one that ops must push.
# The rule: a tangent of level L is computed with forward_level set to the
# level enclosing L, so it carries tangents of the outer levels only (its own
# derivative along them: the mixed terms), never of L or of inner levels.
# Levels are pushed outermost first, so a rule that reads the op's output sees
# its outer-level tangents already set. Each level only ever reads its own
# entry of the chain, so levels never mix (no perturbation confusion).
jvp_levels = [0]  # [0] when no fg.jvp runs (apply's fast test reads jvp_levels[0])


def tangent_at(x, level):
    """x's tangent of the given fg.jvp level, or None."""
    tt = getattr(x, "_tangent", None)
    while tt is not None:
        if tt[0] == level:
            return tt[1]
        tt = tt[2]
    return None


def active_levels(level):
    """The running fg.jvp levels up to and including level, outermost first."""
    levels = jvp_levels
    return levels[:levels.index(level) + 1]


def _push_nested(ctx, inputs, out, out_arr, level):
    """Pushes the tangents of every active level through one op (see above)."""
    st = state
    active = active_levels(level)
    for i, lv in enumerate(active):
        tangents = [tangent_at(t, lv) for t in inputs]
        if all(x is None for x in tangents):
            continue
        if ctx.save_output:
            ctx._out = out_arr
            ctx._out_version = out_arr.version
            ctx._out_tensor = out
        st.forward_level = active[i - 1] if i else 0
        try:
            tangent = ctx.jvp(*tangents)
        finally:
            st.forward_level = level
        if tangent is not None:
            out._tangent = (lv, tangent, out._tangent)


def replay_view(t, steps):
    """Applies a view's recorded ops to t (the root, or a gradient of its shape)."""
    for cls, params in steps:
        t = cls.apply(t, **params)
    return t


def refresh_view(t):
    """Re-derives a view's graph node (and tangent) from its root's current one."""
    root, steps = t._base[0], t._base[1]
    v = replay_view(root, steps)
    t._node, t._requires_grad, t._tangent = v._node, v._requires_grad, v._tangent
    t._base = (root, steps, root._node, root._tangent)


# Set by tensor.py once Tensor exists (module globals keep apply() fast).
_wrap = None
_Tensor = None
_new = object.__new__


__all__ = ["Function", "grad_mode"]
