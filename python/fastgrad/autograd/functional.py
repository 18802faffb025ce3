"""Function transforms in the style of HIPS autograd and JAX: grad,
value_and_grad, vjp, jvp (true forward mode), jacobian, hessian; and
gradcheck. They take Python floats or tensors and compose freely, so
fg.grad(fg.grad(f)) is the second derivative."""
import itertools

import numpy as np

from .grad_mode import enable_grad, state

_jvp_levels = itertools.count(1)


def _as_input(x, op):
    """(tensor, was_python_number) for an argument to differentiate."""
    from ..tensor import Tensor, tensor
    from .. import dtypes

    if isinstance(x, Tensor):
        if not x.dtype.is_floating_point:
            raise TypeError(f"{op}: can only differentiate with respect to floating-point tensors, got {x.dtype.name}")
        return x, False
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{op}: cannot differentiate with respect to a bool")
    if isinstance(x, (int, float, np.floating, np.integer)):
        return tensor(float(x), dtype=dtypes.float64), True
    if isinstance(x, (list, np.ndarray)):
        return tensor(np.asarray(x, dtype=np.float64)), False
    raise TypeError(f"{op}: cannot differentiate with respect to an argument of type {type(x).__name__}")


def _track(x):
    """A fresh tensor to differentiate with respect to, still connected to x's
    own graph (so an enclosing transform can differentiate through us)."""
    if x._requires_grad:
        from ..ops.elementwise import alias

        return alias(x), True
    t = x.detach().requires_grad_(True)
    t._tangent = x._tangent  # keep a running fg.jvp's tangent (forward-over-reverse)
    return t, False


def _plain(t):
    """t off the tape, keeping the tangents of running fg.jvps (themselves off
    the tape): a result of grad inside jvp must still carry its tangent."""
    p = t.detach()
    p._tangent = _plain_chain(t._tangent)
    return p


def _plain_chain(tt):
    return None if tt is None else (tt[0], _plain(tt[1]), _plain_chain(tt[2]))


def _out(t, was_number):
    if was_number and t is not None and t.ndim == 0 and not t._requires_grad and t._tangent is None:
        return t.item()
    return t


def value_and_grad(f, argnums=0):
    """Returns g(*args) -> (f(*args), df/dargs[argnums]); f must return a scalar."""
    from .. import autograd
    from ..tensor import Tensor

    def wrapped(*args, **kwargs):
        nums = argnums if isinstance(argnums, (tuple, list)) else (argnums,)
        args = list(args)
        tracked, numbers, connected = [], [], False
        for i in nums:
            if i >= len(args):
                raise IndexError(f"grad: argnums {i} is out of range for {len(args)} positional arguments")
            x, was_number = _as_input(args[i], "grad")
            xt, conn = _track(x)
            connected |= conn
            args[i] = xt
            tracked.append(xt)
            numbers.append(was_number)
        with enable_grad():
            out = f(*args, **kwargs)
        if not isinstance(out, Tensor):
            value, grads = out, [None] * len(tracked)
        else:
            if out.numel() != 1:
                raise TypeError(f"grad: f must return a scalar, got a tensor of shape {list(out.shape)}")
            value = out
            if out._requires_grad:
                grads = list(autograd.grad(out.reshape(()), tracked, create_graph=connected or state.forward_level > 0,
                                           allow_unused=True))
            else:
                grads = [None] * len(tracked)
        from ..ops.creation import zeros_like

        grads = [zeros_like(x) if g is None else g for x, g in zip(tracked, grads)]
        grads = [_out(g if connected else _plain(g), n) for g, n in zip(grads, numbers)]
        if isinstance(value, Tensor) and all(numbers) and not connected and value._tangent is None:
            value = value.detach().item()
        result = tuple(grads) if isinstance(argnums, (tuple, list)) else grads[0]
        return value, result

    return wrapped


def grad(f, argnums=0):
    """Returns a function computing the gradient of scalar-valued f."""
    vg = value_and_grad(f, argnums)

    def gradf(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    gradf.__name__ = "grad_" + getattr(f, "__name__", "f")
    return gradf


def vjp(f, *primals):
    """(f(*primals), vjp_fn) where vjp_fn(cotangent) returns one gradient per
    primal; for a tuple of outputs the cotangent is a tuple too."""
    from .. import autograd
    from ..tensor import Tensor, tensor

    tracked, numbers, connected = [], [], False
    for p in primals:
        x, was_number = _as_input(p, "vjp")
        xt, conn = _track(x)
        connected |= conn
        tracked.append(xt)
        numbers.append(was_number)
    with enable_grad():
        out = f(*tracked)
    multi = isinstance(out, (tuple, list))
    outs = tuple(out) if multi else (out,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"vjp: f must return a Tensor or a tuple of Tensors, got {type(o).__name__}")

    def vjp_fn(cotangent):
        cts = tuple(cotangent) if multi else (cotangent,)
        if len(cts) != len(outs):
            raise ValueError(f"vjp: got {len(cts)} cotangents for {len(outs)} outputs")
        cts = [c if isinstance(c, Tensor) else tensor(c, dtype=o.dtype) for c, o in zip(cts, outs)]
        pairs = [(o, c) for o, c in zip(outs, cts) if o._requires_grad]
        if pairs:
            gs = autograd.grad([o for o, _ in pairs], tracked, grad_outputs=[c for _, c in pairs],
                               retain_graph=True, create_graph=connected or state.forward_level > 0,
                               allow_unused=True)
        else:
            gs = [None] * len(tracked)
        from ..ops.creation import zeros_like

        gs = [zeros_like(x) if g is None else g if connected else _plain(g) for x, g in zip(tracked, gs)]
        return tuple(_out(g, n) for g, n in zip(gs, numbers))

    shown = outs if connected else tuple(_plain(o) for o in outs)
    return (type(out)(shown) if multi else shown[0]), vjp_fn


def jvp(f, primals, tangents):
    """(f(*primals), J @ tangents), computed in forward mode: every op pushes
    the tangent forward with its own jvp rule; no backward pass runs. Nests
    (fg.jvp inside f, or fg.grad around or inside it): each call is a level
    of its own, see autograd.function on how levels compose."""
    from ..tensor import Tensor, tensor
    from ..ops.creation import zeros_like

    if not isinstance(primals, (tuple, list)):
        primals, tangents = (primals,), (tangents,)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents")
    from . import function as _fn

    levels = _fn.jvp_levels
    saved_level = state.forward_level
    # inside another fg.jvp: nest under the levels active now (see function.py on how levels
    # compose). A jvp called by a rule of level L (forward_level = L's enclosing level) runs
    # under the enclosing levels only: L and the levels inside it are suspended meanwhile.
    outer = _fn.active_levels(saved_level) if saved_level else []
    level = next(_jvp_levels)
    duals, numbers = [], []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        x, was_number = _as_input(p, "jvp")
        tt = t if isinstance(t, Tensor) else tensor(t, dtype=x.dtype)
        if tt.shape != x.shape:
            where = f" (argument {i}, inside an enclosing jvp)" if outer else f" (argument {i})"
            raise ValueError(f"jvp: tangent shape {list(tt.shape)} does not match primal shape "
                             f"{list(x.shape)}{where}")
        if x._requires_grad:
            from ..ops.elementwise import alias

            d = alias(x)
        else:
            d = x.detach()
            d._tangent = x._tangent  # an enclosing jvp's tangents stay
        d._tangent = (level, tt.to(x.dtype), _strip(d._tangent, level))
        duals.append(d)
        numbers.append(was_number)
    saved_levels = levels[:]
    levels[:] = outer + [level]
    state.forward_level = level
    try:
        out = f(*duals)
    finally:
        state.forward_level = saved_level
        levels[:] = saved_levels

    def split(o):
        if not isinstance(o, Tensor):
            return o, 0.0
        tangent_o = _fn.tangent_at(o, level)
        if tangent_o is None:
            tangent_o = zeros_like(o)
        rest = _strip(o._tangent, level)  # the enclosing jvps' tangents of the output stay on it
        if o._requires_grad:
            o._tangent = rest
            o_primal = o
        else:
            o_primal = o.detach()
            o_primal._tangent = rest
        if all(numbers) and o.ndim == 0:
            return _out(o_primal, True), _out(tangent_o, True)
        return o_primal, tangent_o

    if isinstance(out, (tuple, list)):  # a tuple of outputs: a tuple of tangents
        pairs = [split(o) for o in out]
        return type(out)(p for p, _ in pairs), type(out)(t for _, t in pairs)
    return split(out)


def _strip(tt, level):
    """The tangent chain tt without the entry of the given level."""
    if tt is None:
        return None
    if tt[0] == level:
        return tt[2]
    rest = _strip(tt[2], level)
    return tt if rest is tt[2] else (tt[0], tt[1], rest)


def jacobian(f, argnums=0):
    """J[i..., j...] = d f(x)[i...] / d x[j...], by one reverse pass per output
    element. A tuple argnums gives a tuple of Jacobians (one per argument), a
    tuple of outputs a tuple of those (as torch.func.jacrev)."""
    from .. import autograd
    from ..ops.creation import zeros, zeros_like
    from ..ops.shape import stack
    from ..tensor import Tensor

    def jac(*args):
        nums = tuple(argnums) if isinstance(argnums, (tuple, list)) else (argnums,)
        args = list(args)
        tracked, numbers, connected = [], [], False
        for i in nums:
            if not -len(args) <= i < len(args):
                raise IndexError(f"jacobian: argnums {i} is out of range for {len(args)} positional arguments")
            x, was_number = _as_input(args[i], "jacobian")
            xt, conn = _track(x)
            args[i] = xt
            tracked.append(xt)
            numbers.append(was_number)
            connected |= conn
        with enable_grad():
            out = f(*args)
        multi_out = isinstance(out, (tuple, list))
        results = []
        for o in (out if multi_out else (out,)):
            if not isinstance(o, Tensor):
                raise TypeError(f"jacobian: f must return Tensors, got {type(o).__name__}")
            flat = o.reshape(-1)
            rows = [[] for _ in tracked]
            for i in range(flat.shape[0]):
                if flat._requires_grad:
                    gs = autograd.grad(flat[i], tracked, retain_graph=True,
                                       create_graph=connected or state.forward_level > 0, allow_unused=True)
                else:
                    gs = [None] * len(tracked)
                for r, x, g in zip(rows, tracked, gs):
                    r.append(zeros_like(x) if g is None else g)
            js = []
            for r, x, n in zip(rows, tracked, numbers):
                shape = tuple(o.shape) + tuple(x.shape)
                J = stack(r).reshape(shape) if r else zeros(shape, dtype=x.dtype)
                js.append(_out(J if connected else _plain(J), n))
            results.append(tuple(js) if isinstance(argnums, (tuple, list)) else js[0])
        return type(out)(results) if multi_out else results[0]

    return jac


def hessian(f, argnums=0):
    """Second derivatives: the Jacobian of the gradient (reverse over reverse:
    one forward and backward pass, then a backward pass per row; forward over
    reverse, a jvp of grad per column, measured about 2x slower here)."""
    return jacobian(grad(f, argnums), argnums)


class GradcheckError(RuntimeError):
    pass


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compares analytic gradients (backward) with central finite differences.

    inputs: a tensor or tuple of tensors; those with requires_grad are checked
    (use float64). Returns True, or raises GradcheckError naming the input and
    the worst mismatch (returns False with raise_exception=False)."""
    from .. import autograd
    from ..tensor import Tensor

    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t._requires_grad]
    if not checked:
        raise ValueError("gradcheck: at least one input must require grad")

    def outputs():
        out = fn(*inputs)
        return out if isinstance(out, (tuple, list)) else (out,)

    with enable_grad():
        outs = [o for o in outputs() if isinstance(o, Tensor)]
    for k in checked:
        x = inputs[k]
        if x.dtype.name != "float64":
            import warnings

            warnings.warn("gradcheck: inputs are not float64; expect false alarms from rounding")
        xa = np.asarray(x.detach())  # shares memory: perturb in place
        if not xa.flags.writeable or not x.is_contiguous():
            raise ValueError("gradcheck: inputs must be contiguous tensors")
        for oi, out in enumerate(outs):
            n_out, n_in = out.numel(), x.numel()
            analytic = np.zeros((n_out, n_in))
            flat = out.reshape(-1)
            for r in range(n_out):
                if not flat._requires_grad:
                    break
                (g,) = autograd.grad(flat[r], [x], retain_graph=True, allow_unused=True)
                if g is not None:
                    analytic[r] = np.asarray(g.detach()).reshape(-1)
            numeric = np.zeros((n_out, n_in))
            xf = xa.reshape(-1)
            for c in range(n_in):
                orig = xf[c]
                xf[c] = orig + eps
                # copies: a view op's output shares memory with the perturbed input
                with enable_grad():
                    plus = np.array(outputs()[oi].detach(), dtype=np.float64).reshape(-1)
                xf[c] = orig - eps
                with enable_grad():
                    minus = np.array(outputs()[oi].detach(), dtype=np.float64).reshape(-1)
                xf[c] = orig
                numeric[:, c] = (plus - minus) / (2 * eps)
            bad = np.abs(analytic - numeric) > atol + rtol * np.abs(numeric)
            if bad.any():
                r, c = np.argwhere(bad)[0]
                msg = (f"gradcheck: Jacobian mismatch for output {oi} with respect to input {k}: "
                       f"analytic[{r}, {c}] = {analytic[r, c]:.8g}, numerical = {numeric[r, c]:.8g}\n"
                       f"analytic:\n{analytic}\nnumerical:\n{numeric}")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True
