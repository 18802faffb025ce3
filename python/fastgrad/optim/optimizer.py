"""Optimizer: the base class of fastgrad's optimizers (torch.optim semantics).

An optimizer holds `param_groups` (a list of dicts: 'params' plus every
hyper-parameter, defaults filled in) and `state` (a dict keyed by param, whose
values hold the per-param buffers as fastgrad Tensors and the step count as a
0-d float32 Tensor, under torch's names). `state_dict()` / `load_state_dict()`
use torch's layout: state keyed by the param's integer index in group order,
and 'param_groups' whose 'params' are lists of those indices.

Subclasses implement `step()` by gathering, per group, the params that have a
gradient and making ONE fused native call (`_C.<name>_step`) for all of them;
the helpers below do the gathering.
"""
from collections import defaultdict
from copy import deepcopy

import numpy as np

from .. import _C
from ..autograd.grad_mode import enable_grad
from ..autograd.grad_mode import state as _grad_state
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks a hyper-parameter that has no default (torch.optim.optimizer.required)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class for all optimizers.

    Args:
        params: an iterable of Tensors, of (name, Tensor) pairs, or of dicts
            (parameter groups: a 'params' entry plus per-group options).
        defaults: the default value of every hyper-parameter.
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                "but got " + type(params).__name__
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # -- parameter groups ---------------------------------------------------------
    def add_param_group(self, param_group):
        """Adds a group (a dict with 'params' and optional per-group options)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        param_group = dict(param_group)  # never mutate the caller's dict
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)

        # (name, param) pairs, as from Module.named_parameters().
        names = None
        if params and isinstance(params[0], tuple):
            if not all(isinstance(x, tuple) and len(x) == 2 for x in params):
                raise ValueError("all optimizer params should be given with names or all without names")
            names = [n for n, _ in params]
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is " + type(p).__name__)
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if not p.is_floating_point():
                raise TypeError(f"optimizer can only optimize floating-point Tensors, got dtype {p.dtype}")
        param_group["params"] = params
        if names is not None:
            param_group["param_names"] = names
        elif "param_names" in param_group:
            del param_group["param_names"]

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)

        # The fused kernel updates all params of a group in parallel: a param
        # listed twice would be updated twice (and raced), so it is an error.
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        for group in self.param_groups:
            if any(id(p) in ids for p in group["params"]):
                raise ValueError("some parameters appear in more than one parameter group")
        self._check_group(param_group)
        self.param_groups.append(param_group)

    def _check_group(self, group):
        """Validates a group's hyper-parameters (subclasses raise torch's ValueErrors)."""

    # -- gradients --------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Resets the gradients: to None (default) or, with set_to_none=False, to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    g.detach_()
                    g.zero_()

    def step(self, closure=None):
        raise NotImplementedError

    def _eval_closure(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # -- helpers for the fused steps ------------------------------------------------------
    @staticmethod
    def _with_grads(group):
        """(params, param arrays, grad arrays) of the group's params that have a gradient.

        The kernels need contiguous grads; a strided one is copied first.
        """
        params, p_arrays, g_arrays = [], [], []
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            ga = g._data
            if not ga.is_contiguous():
                ga = _C.contiguous(ga)
            params.append(p)
            p_arrays.append(p._data)
            g_arrays.append(ga)
        return params, p_arrays, g_arrays

    @staticmethod
    def _zeros_like(p, fill=0.0):
        a = p._data
        if fill == 0.0:
            return Tensor._wrap(_C.zeros(a.shape, a.dtype, a.device))
        return Tensor._wrap(_C.full(a.shape, float(fill), a.dtype, a.device))

    @staticmethod
    def _new_step():
        # torch keeps the step count as a 0-d float32 tensor (exact to 2**24 steps).
        return Tensor._wrap(_C.scalar(0.0, _C.DType.float32))

    @staticmethod
    def _increment_step(step):
        """Adds 1 to a step Tensor in place and returns the new count as an int."""
        a = _C.to_numpy(step._data)  # shares memory: no tensor op, no allocation
        value = a.item() + 1  # item()/setitem on a 0-d array: ~4x cheaper than `a += 1; int(a)`
        a[()] = value
        return int(value)

    @staticmethod
    def _buckets_by_step(items):
        """Groups (step, entry) pairs by step, in first-seen order.

        Params of one group normally share their step count (one fused call);
        a param that got its first gradient later has a smaller count and its
        own bias corrections, so it goes in a separate call.
        """
        buckets = {}
        for step, entry in items:
            buckets.setdefault(step, []).append(entry)
        return buckets.items()

    # -- state dict -----------------------------------------------------------------------
    def state_dict(self):
        """The optimizer's state in torch's layout.

        {'state': {index: {name: value}}, 'param_groups': [{..., 'params': [index, ...]}]}
        Indices count the params across groups in order. State values are the
        live Tensors (as in torch): copy the dict (or save it) before stepping
        on if you need a snapshot.
        """
        index = {}
        packed_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            packed_groups.append(packed)
        packed_state = {(index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict):
        """Loads a state dict made by state_dict() (fastgrad's, or torch's with torch tensors).

        State tensors are copied, converted to their param's dtype (the step
        count to float32), so the loaded optimizer never shares buffers with
        the one that saved them.
        """
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's group")
        id_map = {}
        for g, s in zip(groups, saved_groups):
            id_map.update(zip(s["params"], g["params"]))

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = {name: self._cast_state(param, name, value) for name, value in v.items()}
            else:
                state[k] = v

        new_groups = []
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
            new_groups.append(s)
        self.state = state
        self.param_groups = new_groups

    @staticmethod
    def _cast_state(param, name, value):
        if value is None or (isinstance(value, (bool, int, float, str)) and name != "step"):
            return value
        if name == "step":
            return Tensor._wrap(_C.scalar(float(np.asarray(value)), _C.DType.float32))
        if isinstance(value, Tensor):
            arr = value._data
            if arr.dtype != param._data.dtype:
                return Tensor._wrap(_C.astype(arr, param._data.dtype))
            return Tensor._wrap(_C.copy(arr))  # contiguous, unshared
        if hasattr(value, "__array__"):  # NumPy arrays, and other frameworks' tensors (e.g. torch's)
            a = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
            a = np.asarray(a).astype(np.float64 if param._data.dtype == _C.DType.float64 else np.float32)
            return Tensor._wrap(_C.copy(_C.from_numpy(np.ascontiguousarray(a))))
        return value


def _no_grad_step(step):
    """Runs an optimizer's step under no_grad (torch does the same); the closure, if any, with grad."""

    def wrapper(self, closure=None):
        loss = self._eval_closure(closure) if closure is not None else None
        # no_grad, without building a context manager per step (per-step overhead on small models)
        prev = _grad_state.grad_enabled
        _grad_state.grad_enabled = False
        try:
            step(self)
        finally:
            _grad_state.grad_enabled = prev
        return loss

    wrapper.__name__ = step.__name__
    wrapper.__doc__ = step.__doc__
    return wrapper
