"""Adagrad (torch.optim.Adagrad, dense gradients).

As in torch, every param's state ('step' and 'sum', the latter filled with
initial_accumulator_value) is created when the optimizer is built. One fused
native call (`_C.adagrad_step`) per group and distinct step count.
"""
from .. import _C
from .optimizer import Optimizer, _no_grad_step

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """torch.optim.Adagrad.

    `foreach` and `fused` are accepted for compatibility and ignored: the
    update always runs as fastgrad's fused kernel.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        fused=fused)
        self._check_group(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _check_group(self, group):
        if not 0.0 <= group["lr"]:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        if not 0.0 <= group["lr_decay"]:
            raise ValueError(f"Invalid lr_decay value: {group['lr_decay']}")
        if not 0.0 <= group["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
        if not 0.0 <= group["initial_accumulator_value"]:
            raise ValueError(f"Invalid initial_accumulator_value value: {group['initial_accumulator_value']}")
        if not 0.0 <= group["eps"]:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")

    def _init_state(self, p, group):
        state = self.state[p]
        state["step"] = self._new_step()
        state["sum"] = self._zeros_like(p, fill=group["initial_accumulator_value"])

    @_no_grad_step
    def step(self):
        """Performs a single optimization step; `closure` (optional) re-evaluates the loss."""
        for group in self.param_groups:
            params, p_arrays, g_arrays = self._with_grads(group)
            if not params:
                continue
            items = []
            for p, pa, ga in zip(params, p_arrays, g_arrays):
                state = self.state[p]
                if "sum" not in state:  # a param added with add_param_group
                    self._init_state(p, group)
                step = self._increment_step(state["step"])
                items.append((step, (pa, ga, state["sum"]._data)))
            for step, entries in self._buckets_by_step(items):
                ps, gs, sums = (list(x) for x in zip(*entries))
                _C.adagrad_step(ps, gs, sums, step, float(group["lr"]), float(group["lr_decay"]),
                                float(group["weight_decay"]), float(group["eps"]), bool(group["maximize"]))
