"""fastgrad.nn.utils: gradient clipping and flat parameter vectors."""
import math

from ...autograd.grad_mode import no_grad
from ...tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scales all gradients together so their joint norm is at most max_norm.
    Returns the total norm (before clipping) as a tensor."""
    from ...ops.creation import zeros
    from ...ops.shape import stack

    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return zeros(())
    if math.isinf(norm_type):
        norms = [g.abs().max() for g in grads]
        total = stack(norms).max()
    else:
        norms = [g.norm(norm_type) for g in grads]
        total = stack(norms).norm(norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    coef = float(max_norm) / (total.item() + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return total


@no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    clip_value = float(clip_value)
    for g in _grads(parameters):
        g.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters):
    from ...ops.shape import cat

    return cat([p.reshape(-1) for p in parameters])


@no_grad()
def vector_to_parameters(vec, parameters):
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    offset = 0
    for p in parameters:
        n = p.numel()
        p.copy_(vec[offset:offset + n].reshape(p.shape))
        offset += n
    if offset != vec.numel():
        raise ValueError(f"vector_to_parameters: vector has {vec.numel()} elements but the parameters take {offset}")


from . import rnn  # noqa: E402,F401  (fg.nn.utils.rnn, as torch.nn.utils.rnn)
