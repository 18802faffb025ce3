"""RMSprop, plain or centered, with optional momentum (torch.optim.RMSprop).

One fused native call (`_C.rmsprop_step`) per group: the update does not
depend on the step count (torch counts steps all the same, and so do we).
"""
from .. import _C
from .optimizer import Optimizer, _no_grad_step

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """torch.optim.RMSprop.

    `foreach` is accepted for compatibility and ignored: the update always
    runs as fastgrad's fused kernel.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 foreach=None, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, foreach=foreach, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        if not 0.0 <= group["lr"]:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        if not 0.0 <= group["eps"]:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")
        if not 0.0 <= group["momentum"]:
            raise ValueError(f"Invalid momentum value: {group['momentum']}")
        if not 0.0 <= group["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
        if not 0.0 <= group["alpha"]:
            raise ValueError(f"Invalid alpha value: {group['alpha']}")

    @_no_grad_step
    def step(self):
        """Performs a single optimization step; `closure` (optional) re-evaluates the loss."""
        for group in self.param_groups:
            params, p_arrays, g_arrays = self._with_grads(group)
            if not params:
                continue
            momentum = float(group["momentum"])
            centered = bool(group["centered"])
            square_avgs, bufs, grad_avgs = [], [], []
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = self._new_step()
                    state["square_avg"] = self._zeros_like(p)
                if momentum > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = self._zeros_like(p)
                if centered and "grad_avg" not in state:
                    state["grad_avg"] = self._zeros_like(p)
                self._increment_step(state["step"])
                square_avgs.append(state["square_avg"]._data)
                if momentum > 0:
                    bufs.append(state["momentum_buffer"]._data)
                if centered:
                    grad_avgs.append(state["grad_avg"]._data)
            _C.rmsprop_step(p_arrays, g_arrays, square_avgs, bufs, grad_avgs, float(group["lr"]),
                            float(group["alpha"]), float(group["eps"]), float(group["weight_decay"]), momentum,
                            centered, bool(group["maximize"]))
