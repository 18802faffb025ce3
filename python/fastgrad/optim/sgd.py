"""SGD with momentum, dampening, Nesterov and weight decay (torch.optim.SGD).

One fused native call (`_C.sgd_step`) updates all params of a group that
have a gradient. torch creates a param's momentum buffer as a copy of its
(weight-decayed) gradient on the param's first step; params whose buffer is
new go in a separate call with first_step=True.
"""
from .. import _C
from ..tensor import Tensor
from .optimizer import Optimizer, _no_grad_step

__all__ = ["SGD"]


class SGD(Optimizer):
    """torch.optim.SGD.

    `foreach` and `fused` are accepted for compatibility and ignored: the
    update always runs as fastgrad's fused kernel.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, fused=fused)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if group["nesterov"] and (momentum <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    @_no_grad_step
    def step(self):
        """Performs a single optimization step; `closure` (optional) re-evaluates the loss."""
        for group in self.param_groups:
            params, p_arrays, g_arrays = self._with_grads(group)
            if not params:
                continue
            momentum = float(group["momentum"])
            args = (float(group["lr"]), momentum, float(group["dampening"]), float(group["weight_decay"]),
                    bool(group["nesterov"]), bool(group["maximize"]))
            if momentum == 0:
                _C.sgd_step(p_arrays, g_arrays, [], *args, False)
                continue
            # (params, grads, buffers) for params with a buffer / with a new one.
            old, new = ([], [], []), ([], [], [])
            for p, pa, ga in zip(params, p_arrays, g_arrays):
                state = self.state[p]
                buf = state.get("momentum_buffer")
                target = old
                if buf is None:
                    # Written, not read, by the first_step call.
                    buf = Tensor._wrap(_C.empty(pa.shape, pa.dtype, pa.device))
                    state["momentum_buffer"] = buf
                    target = new
                target[0].append(pa)
                target[1].append(ga)
                target[2].append(buf._data)
            if old[0]:
                _C.sgd_step(*old, *args, False)
            if new[0]:
                _C.sgd_step(*new, *args, True)
