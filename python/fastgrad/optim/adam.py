"""Adam and AdamW (torch.optim.Adam / torch.optim.AdamW).

One fused native call (`_C.adam_step`) per group updates param, exp_avg,
exp_avg_sq (and max_exp_avg_sq with amsgrad) of every param that has a
gradient. The bias corrections depend on the step count, which torch keeps
per param: params of a group whose counts differ (one got its first gradient
later) are updated in one call per distinct count.
"""
from .. import _C
from .optimizer import Optimizer, _no_grad_step

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """torch.optim.Adam; decoupled_weight_decay=True makes it AdamW.

    `foreach` and `fused` are accepted for compatibility and ignored: the
    update always runs as fastgrad's fused kernel.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, fused=None, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        lr, eps, betas, weight_decay = group["lr"], group["eps"], group["betas"], group["weight_decay"]
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")

    @_no_grad_step
    def step(self):
        """Performs a single optimization step; `closure` (optional) re-evaluates the loss."""
        states = self.state
        increment = self._increment_step
        for group in self.param_groups:
            amsgrad = bool(group["amsgrad"])
            # step count -> the five lists of one fused call (one loop, no per-param tuples: this
            # is per-step Python overhead, which dominates small models)
            buckets = {}
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                ga = g._data
                if not ga.is_contiguous():
                    ga = _C.contiguous(ga)  # the kernel needs contiguous grads
                state = states[p]
                if not state:
                    state["step"] = self._new_step()
                    state["exp_avg"] = self._zeros_like(p)
                    state["exp_avg_sq"] = self._zeros_like(p)
                if amsgrad and "max_exp_avg_sq" not in state:
                    state["max_exp_avg_sq"] = self._zeros_like(p)
                step = increment(state["step"])
                lists = buckets.get(step)
                if lists is None:
                    lists = buckets[step] = ([], [], [], [], [])
                lists[0].append(p._data)
                lists[1].append(ga)
                lists[2].append(state["exp_avg"]._data)
                lists[3].append(state["exp_avg_sq"]._data)
                if amsgrad:
                    lists[4].append(state["max_exp_avg_sq"]._data)
            if not buckets:
                continue
            beta1, beta2 = group["betas"]
            args = (float(group["lr"]), float(beta1), float(beta2), float(group["eps"]),
                    float(group["weight_decay"]), amsgrad, bool(group["maximize"]),
                    bool(group["decoupled_weight_decay"]))
            for step, (ps, gs, ms, vs, vmaxs) in buckets.items():
                _C.adam_step(ps, gs, ms, vs, vmaxs, step, *args)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (p *= 1 - lr * weight_decay)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, fused=fused, decoupled_weight_decay=True)
