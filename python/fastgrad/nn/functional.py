"""fastgrad.nn.functional (F): layers and losses as functions, PyTorch's names
and defaults. Built from the op table, so every function here has
gradients (and higher-order gradients) for free; the hot paths (linear,
softmax, cross-entropy) go through native kernels."""
import math

from .. import _C
from .. import dtypes as _dt
from ..autograd.function import Function
from ..autograd.grad_mode import state as _grad_state
from ..ops import elementwise as _ew
from ..ops import norm as _nm
from ..ops import reduce as _rd
from ..ops.creation import ones, rand, zeros
from ..ops.index import one_hot  # noqa: F401  (re-exported, as torch.nn.functional.one_hot)
from ..ops.shape import pad  # noqa: F401
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d  # noqa: F401  (convolution section)
from ..tensor import Tensor

# -- activations ----------------------------------------------------------------------------------
relu = _ew.relu
sigmoid = _ew.sigmoid
tanh = _ew.tanh
silu = _ew.silu
softplus = _ew.softplus
elu = _ew.elu
leaky_relu = _ew.leaky_relu
softmax = _rd.softmax
log_softmax = _rd.log_softmax


def gelu(input, approximate="none"):
    return _ew.gelu(input, approximate=approximate)


def relu6(input):
    return input.clamp(0.0, 6.0)


def hardtanh(input, min_val=-1.0, max_val=1.0):
    return input.clamp(min_val, max_val)


def logsigmoid(input):
    return -softplus(-input)


def softsign(input):
    return input / (input.abs() + 1)


def mish(input):
    return input * softplus(input).tanh()


def normalize(input, p=2.0, dim=1, eps=1e-12):
    n = input.norm(p, dim=dim, keepdim=True).clamp(min=eps)
    return input / n


# -- linear ------------------------------------------------------------------------------------------


class Linear(Function):
    """y = x @ W^T + b in one node: the product reads W transposed in place
    and the bias is added into the fresh output (no extra temporaries)."""

    def forward(ctx, x, w, b=None):
        ctx.save_for_backward(x, w)
        out = _C.matmul(x._data, _C.transpose(w._data, 0, 1))
        if b is not None:
            _C.add_(out, b._data)
        ctx.out_shape = out.shape
        return out

    def vjp(ctx, g):
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx = g @ w if needs[0] else None
        gw = gb = None
        if needs[1]:
            g2 = g.reshape(-1, g.shape[-1]) if g.ndim != 2 else g
            x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
            gw = g2.mT @ x2 if g2.ndim == 2 else g2.unsqueeze(-1) @ x2.unsqueeze(0)
        if len(needs) > 2 and needs[2]:
            gb = g.sum(dim=tuple(range(g.ndim - 1))) if g.ndim > 1 else g
        return gx, gw, gb

    def jvp(ctx, tx, tw, tb=None):
        x, w = ctx.saved_tensors
        out = None
        if tx is not None:
            out = tx @ w.mT
        if tw is not None:
            t = x @ tw.mT
            out = t if out is None else out + t
        if tb is not None:
            out = tb.expand(*ctx.out_shape) if out is None else out + tb
        return out




def linear(input, weight, bias=None):
    if input.shape[-1:] != weight.shape[-1:] or weight.ndim != 2:
        raise ValueError(f"linear: input of shape {list(input.shape)} does not match weight of shape "
                         f"{list(weight.shape)} (expected input[..., {weight.shape[-1] if weight.ndim else '?'}])")
    if input.dtype is not weight.dtype:
        raise TypeError(f"linear: input dtype {input.dtype.name} does not match weight dtype {weight.dtype.name}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {list(bias.shape)} does not match weight of shape {list(weight.shape)}")
    if input.ndim == 1:
        return Linear.apply(input.unsqueeze(0), weight, *(() if bias is None else (bias,))).squeeze(0)
    return Linear.apply(input, weight, *(() if bias is None else (bias,)))


def bilinear(input1, input2, weight, bias=None):
    out = _ew.mul(input1.unsqueeze(1) @ weight.unsqueeze(0), input2.unsqueeze(1).unsqueeze(1)).sum(-1)
    out = out.squeeze(-1) if out.ndim > 2 else out
    return out if bias is None else out + bias


# -- dropout -------------------------------------------------------------------------------------------


def dropout(input, p=0.5, training=True, inplace=False):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0
    keep = rand(input.shape, dtype=input.dtype, device=input.device) >= p
    return input * keep * (1.0 / (1.0 - p))


# -- normalisation ------------------------------------------------------------------------------------


def _bn_shape(input):
    return [1, input.shape[1]] + [1] * (input.ndim - 2)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-D input (N, C, ...), got shape {list(input.shape)}")
    dims = tuple(d for d in range(input.ndim) if d != 1)
    shape = _bn_shape(input)
    c = (input.shape[1],)
    if (_nm._fusable(input, weight, bias, *(() if training else (running_mean, running_var)))
            and all(p is None or tuple(p.shape) == c for p in (weight, bias, running_mean, running_var))
            and (training or running_mean is not None and running_var is not None)):
        n = input.numel() // input.shape[1]
        if training and n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(input.shape)}")
        # one fused node (csrc/cpu/norm.cpp); the running statistics as below
        stats = {} if training else None
        out = _nm.batch_norm(input, weight, bias, training, eps, running_mean, running_var, stats)
        if training and running_mean is not None:
            from ..autograd.grad_mode import no_grad

            with no_grad():
                running_mean.mul_(1 - momentum).add_(stats["mean"] * momentum)
                running_var.mul_(1 - momentum).add_(stats["var"] * (momentum * n / (n - 1)))
        return out
    if training:
        n = input.numel() // input.shape[1]
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(input.shape)}")
        mean = input.mean(dim=dims)
        var = input.var(dim=dims, correction=0)
        if running_mean is not None:
            from ..autograd.grad_mode import no_grad

            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                running_var.mul_(1 - momentum).add_(var.detach() * (momentum * n / (n - 1)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        mean, var = running_mean, running_var
    out = (input - mean.reshape(shape)) * (var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise ValueError(f"layer_norm: expected input with shape [*, {', '.join(map(str, normalized_shape))}], "
                         f"but got input of size {list(input.shape)}")
    if _nm._fusable(input, weight, bias) and all(p is None or tuple(p.shape) == normalized_shape
                                                  for p in (weight, bias)):
        return _nm.layer_norm(input, k, weight, bias, eps)  # one fused node (csrc/cpu/norm.cpp)
    dims = tuple(range(input.ndim - k, input.ndim))
    mean = input.mean(dim=dims, keepdim=True)
    var = input.var(dim=dims, correction=0, keepdim=True)
    out = (input - mean) * (var + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm: num_channels ({c}) must be divisible by num_groups ({num_groups})")
    x = input.reshape(n, num_groups, -1)
    if _nm._fusable(x):  # the statistics part is a layer norm over each group
        out = _nm.layer_norm(x, 1, None, None, eps).reshape(input.shape)
    else:
        mean = x.mean(dim=2, keepdim=True)
        var = x.var(dim=2, correction=0, keepdim=True)
        out = ((x - mean) * (var + eps).rsqrt()).reshape(input.shape)
    shape = _bn_shape(input)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def embedding(input, weight, padding_idx=None, max_norm=None):
    if input.dtype not in (_dt.int64, _dt.int32):
        raise TypeError(f"embedding: expected int64 indices, got {input.dtype.name}")
    if max_norm is not None:
        raise NotImplementedError("embedding: max_norm is not supported yet")
    flat = input.reshape(-1).to(_dt.int64)
    rows = weight.index_select(0, flat)
    if padding_idx is not None and weight._requires_grad:
        # the padding row gets no gradient
        keep = (flat != padding_idx).unsqueeze(1)
        rows = _ew.where(keep, rows, rows.detach())
    return rows.reshape(tuple(input.shape) + (weight.shape[1],))


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    num = (x1 * x2).sum(dim=dim)
    den = (x1.square().sum(dim=dim) * x2.square().sum(dim=dim)).clamp(min=eps * eps).sqrt()
    return num / den


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    return (x1 - x2 + eps).norm(p, dim=-1, keepdim=keepdim)


# -- pooling and upsampling (ops/pool.py) -----------------------------------------------------------
from ..ops.pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d,  # noqa: E402,F401
                        adaptive_max_pool2d, avg_pool1d, avg_pool2d, interpolate, max_pool1d, max_pool2d,
                        pixel_shuffle, pixel_unshuffle, upsample, upsample_bilinear, upsample_nearest)


# -- losses -------------------------------------------------------------------------------------------


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction (expected 'mean', 'sum' or 'none')")


def _check_same_shape(input, target, op):
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    if input.shape != target.shape:
        raise ValueError(f"{op}: target size {list(target.shape)} must be the same as input size {list(input.shape)}")


def mse_loss(input, target, reduction="mean"):
    _check_same_shape(input, target, "mse_loss")
    return _reduce((input - target).square(), reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    _check_same_shape(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction, "l1_loss")


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    _check_same_shape(input, target, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = _ew.where(d < beta, d.square() * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0):
    _check_same_shape(input, target, "huber_loss")
    d = (input - target).abs()
    loss = _ew.where(d < delta, d.square() * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss, reduction, "huber_loss")


def _class_last(input):
    """(N, C, d1, ...) -> (N*d1*..., C); (C,) -> (1, C)."""
    if input.ndim == 1:
        return input.unsqueeze(0)
    if input.ndim == 2:
        return input
    perm = [0] + list(range(2, input.ndim)) + [1]
    return input.permute(*perm).reshape(-1, input.shape[1])


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    if not isinstance(target, Tensor):
        raise TypeError(f"nll_loss: target must be a Tensor, got {type(target).__name__}")
    if target.dtype is not _dt.int64:
        raise TypeError(f"nll_loss: expected target of dtype int64 (class indices), got {target.dtype.name}")
    expected = (input.shape[0],) + tuple(input.shape[2:]) if input.ndim >= 2 else ()
    if tuple(target.shape) != expected:
        raise ValueError(f"nll_loss: expected target of shape {list(expected)} for input of shape "
                         f"{list(input.shape)}, got {list(target.shape)}")
    c = input.shape[1] if input.ndim >= 2 else input.shape[0]
    logp = _class_last(input)
    t = target.reshape(-1)
    valid = t != ignore_index
    bad = (valid & ((t < 0) | (t >= c))).any().item()
    if bad:
        raise IndexError(f"nll_loss: target contains a class index outside [0, {c}) (and not ignore_index={ignore_index})")
    safe_t = _ew.where(valid, t, zeros((), dtype=_dt.int64))
    picked = logp.gather(1, safe_t.unsqueeze(1)).squeeze(1)
    w = valid.to(input.dtype)
    if weight is not None:
        if weight.shape != (c,):
            raise ValueError(f"nll_loss: weight must have shape [{c}], got {list(weight.shape)}")
        w = w * weight.index_select(0, safe_t)
    loss = -picked * w
    if reduction == "none":
        return loss.reshape(target.shape)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / w.sum()
    raise ValueError(f"nll_loss: {reduction!r} is not a valid value for reduction")


class _CrossEntropyIndices(Function):
    """cross_entropy of (N, C) logits against (N,) class indices with no class
    weights or smoothing: one node instead of a dozen (the common classifier
    case, where per-op overhead dominates small batches). Forward log_softmax,
    pick, mask the ignored rows; backward (softmax - one_hot(target)) * g on
    the kept rows."""

    def forward(ctx, x, target, reduction, ignore_index):
        n, dtype = x.shape[0], x._data.dtype
        logp = _C.log_softmax(x._data, 1)
        keep = _C.ne(target._data, _C.scalar(ignore_index, _dt.int64._c))
        safe = _C.where(keep, target._data, _C.scalar(0, _dt.int64._c))
        # gather checks every kept index; a bad one raises IndexError and the
        # caller's general path reports it
        picked = _C.reshape(_C.gather(logp, 1, _C.unsqueeze(safe, 1)), [n])
        w = _C.astype(keep, dtype)
        ctx.save_for_backward(x)
        ctx.logp, ctx.safe, ctx.w, ctx.reduction = logp, safe, w, reduction
        rows = _C.neg(_C.mul(picked, w))
        if reduction == "none":
            return rows
        total = _C.sum(rows, [0], False)
        if reduction == "sum":
            return total
        ctx.count = _C.sum(w, [0], False)  # kept rows; 0 gives nan, as torch
        return _C.div(total, ctx.count)

    def _row_scale(ctx, g):
        """d loss / d (row's loss) times the keep mask, shaped (N, 1) or broadcastable."""
        w = _C_wrap(_C.unsqueeze(ctx.w, 1))
        if ctx.reduction == "none":
            return g.unsqueeze(1) * w
        if ctx.reduction == "mean":  # every row ignored: the loss is nan, its gradient 0 (torch)
            count = ctx.count
            return w * (g / _C_wrap(_C.maximum(count, _C.scalar(1, count.dtype))))
        return w * g

    def vjp(ctx, g):
        (x,) = ctx.saved_tensors
        onehot = _C.astype(_C.one_hot(ctx.safe, x.shape[1]), x._data.dtype)
        if not _grad_state.grad_enabled and not _grad_state.forward_level and g.dtype is x.dtype:
            d = _C.sub(_C.exp(ctx.logp), onehot)
            return _C_wrap(_C.mul(d, ctx._row_scale(g)._data)), None
        return (x.softmax(1) - _C_wrap(onehot)) * ctx._row_scale(g), None

    def jvp(ctx, tx, _t=None):
        (x,) = ctx.saved_tensors
        if _grad_state.forward_level or (_grad_state.grad_enabled and x._requires_grad):
            p = x.softmax(1)  # nested fg.jvp or grad of jvp: p must carry x's tangents / graph
        else:
            p = _C_wrap(_C.exp(ctx.logp))
        dlogp = tx - (p * tx).sum(dim=1, keepdim=True)
        rows = -dlogp.gather(1, _C_wrap(_C.unsqueeze(ctx.safe, 1))).squeeze(1) * _C_wrap(ctx.w)
        if ctx.reduction == "none":
            return rows
        return rows.sum() / _C_wrap(ctx.count) if ctx.reduction == "mean" else rows.sum()

    def release(ctx):
        super().release()
        ctx.logp = ctx.safe = ctx.w = ctx.count = None


def _C_wrap(arr):
    return Tensor._wrap(arr)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if not isinstance(target, Tensor):
        raise TypeError(f"cross_entropy: target must be a Tensor, got {type(target).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: {reduction!r} is not a valid value for reduction")
    if (input.ndim == 2 and target.ndim == 1 and target.dtype is _dt.int64 and weight is None
            and label_smoothing == 0 and input.dtype.is_floating_point
            and target.shape[0] == input.shape[0] and input.shape[0] > 0):
        try:
            return _CrossEntropyIndices.apply(input, target=target, reduction=reduction, ignore_index=int(ignore_index))
        except IndexError:
            pass  # an out-of-range target: the general path reports it
    class_dim = 1 if input.ndim >= 2 else 0
    c = input.shape[class_dim]
    logp = log_softmax(input, dim=class_dim)
    if target.dtype.is_floating_point:
        # class probabilities
        if target.shape != input.shape:
            raise ValueError(f"cross_entropy: probability target of shape {list(target.shape)} must match input "
                             f"shape {list(input.shape)}")
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / c
        wshape = [1] * input.ndim
        wshape[class_dim] = c
        prod_ = logp * target if weight is None else logp * target * weight.reshape(wshape)
        loss = -prod_.sum(dim=class_dim)
        if reduction == "mean":
            return loss.sum() / (input.numel() // c)
        return _reduce(loss, reduction, "cross_entropy")
    if target.dtype is not _dt.int64:
        raise TypeError(f"cross_entropy: expected target of dtype int64 (class indices) or floating point "
                        f"(class probabilities), got {target.dtype.name}")
    nll = nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return nll
    lp = _class_last(logp)
    t = target.reshape(-1)
    valid = (t != ignore_index).to(input.dtype)
    smooth = -(lp if weight is None else lp * weight).sum(dim=1) * valid
    if reduction == "none":
        smooth = smooth.reshape(target.shape)
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        if weight is None:
            denom = valid.sum()
        else:
            safe_t = _ew.where(t != ignore_index, t, zeros((), dtype=_dt.int64))
            denom = (weight.index_select(0, safe_t) * valid).sum()
        smooth = smooth.sum() / denom
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / c)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    _check_same_shape(input, target, "binary_cross_entropy")
    bad = ((input < 0) | (input > 1)).any().item()
    if bad:
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    # torch clamps the logs at -100 so that 0 * log(0) stays finite
    log_p = input.log().clamp(min=-100.0)
    log_1mp = (1 - input).log().clamp(min=-100.0)
    loss = -(target * log_p + (1 - target) * log_1mp)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")
    # log(1 + exp(-|x|)) form: stable for large |x|
    log_sig = -softplus(-input)         # log(sigmoid(x))
    log_one_minus = -softplus(input)    # log(1 - sigmoid(x))
    if pos_weight is not None:
        loss = -(pos_weight * target * log_sig + (1 - target) * log_one_minus)
    else:
        loss = -(target * log_sig + (1 - target) * log_one_minus)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def kl_div(input, target, reduction="mean", log_target=False):
    _check_same_shape(input, target, "kl_div")
    if log_target:
        loss = target.exp() * (target - input)
    else:
        safe = _ew.where(target > 0, target, ones((), dtype=target.dtype))
        loss = _ew.where(target > 0, target * (safe.log() - input), target * 0)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction, "kl_div")


def soft_margin_loss(input, target, reduction="mean"):
    _check_same_shape(input, target, "soft_margin_loss")
    return _reduce(softplus(-input * target), reduction, "soft_margin_loss")


# -- attention ------------------------------------------------------------------------------------------


def _sdpa_check(query, key, value, attn_mask, enable_gqa):
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} must have at least 2 dims (..., seq, features), got shape {list(t.shape)}")
    if not (query.dtype is key.dtype is value.dtype) or not query.dtype.is_floating_point:
        raise TypeError(f"{op}: expected query, key and value of one floating dtype, got {query.dtype.name}, "
                        f"{key.dtype.name} and {value.dtype.name}")
    shapes = f"query {list(query.shape)}, key {list(key.shape)}, value {list(value.shape)}"
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(f"{op}: query and key must have the same last dim (features), got {shapes}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{op}: key and value must have the same sequence length (dim -2), got {shapes}")
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hk != hv or hq % hk:
            raise ValueError(f"{op}: with enable_gqa the query heads (dim -3) must be a multiple of the key/value "
                             f"heads, got {shapes}")
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype is not _dt.bool_ and attn_mask.dtype is not query.dtype:
            raise TypeError(f"{op}: expected attn_mask of dtype bool or {query.dtype.name} (the query's), got "
                            f"{attn_mask.dtype.name}")


def _repeat_heads(t, groups):
    """(..., H, S, D) -> (..., H * groups, S, D), each head repeated `groups` times in a row (torch's
    repeat_interleave on dim -3, as grouped-query attention shares a key/value head among query heads)."""
    if groups == 1:
        return t
    s = t.shape
    return t.unsqueeze(-3).expand(*s[:-2], groups, s[-2], s[-1]).reshape(*s[:-3], s[-3] * groups, s[-2], s[-1])


def _mT(a):
    return _C.transpose(a, a.ndim - 2, a.ndim - 1)


def _scalar_like(value, a):
    """A 0-d array of `value` with a's dtype, on a's device."""
    return _C.scalar(value, a.dtype) if a.device == "cpu" else _C.full([], value, a.dtype, a.device)


_NEG_INF = float("-inf")


class _Attention(Function):
    """softmax(q k^T * scale, masked) (dropout) @ v as one node: the core of scaled_dot_product_attention
    and of MultiheadAttention, without the intermediate nodes' extra passes (the mask's backward, the
    scale's, the heads' split and merge).

    heads=None: inputs q (..., L, E), k (..., S, E), v (..., S, Ev), batch dims broadcast; out (..., L, Ev).
    heads=(H, batch_first): inputs are projections (L, B, n*E), or (B, L, n*E) when batch_first, whose
      n-sized groups (n summing to 3 over the inputs) are q, k, v in order, each split into H heads by
      views; out is (L, B, E) / (B, L, E) with the heads merged (MultiheadAttention's layout).
    Params: fill (bool array broadcasting to the scores, True = masked to -inf) or add (float array added
    to the scores); dead (bool (..., L, 1): rows with no key left, given 0 output like torch); scale;
    keep (dropout's scaled keep mask, or None).
    The backward uses the saved probabilities and native kernels; under create_graph it recomputes them
    with fastgrad ops so that higher derivatives are exact.
    """

    def forward(ctx, *inputs, heads, fill, add, dead, scale, keep):
        ctx.heads, ctx.fill, ctx.add, ctx.dead, ctx.scale, ctx.keep = heads, fill, add, dead, scale, keep
        ctx.save_for_backward(*inputs)
        q, k, v = _attn_split([t._data for t in inputs], heads)
        qs = _C.mul(q, _scalar_like(scale, q))  # scaling q (L x E) is cheaper than the scores (L x S)
        s = _C.matmul(qs, _mT(k))
        if fill is not None:
            s = _C.masked_fill(s, fill, _NEG_INF)
        elif add is not None:
            s = _C.add(s, add)
        if dead is not None:
            s = _C.masked_fill(s, dead, 0.0)
        p = _C.softmax(s, s.ndim - 1)
        if dead is not None:
            p = _C.masked_fill(p, dead, 0.0)
        ctx.p, ctx.qs = p, qs
        o = _C.matmul(p if keep is None else _C.mul(p, keep), v)
        return _attn_merge(o, heads)

    def release(ctx):
        Function.release(ctx)
        ctx.p = ctx.qs = None

    def vjp(ctx, g):
        inputs = ctx.saved_tensors
        if _grad_state.grad_enabled or _grad_state.forward_level:  # (a running fg.jvp needs the tangents)
            return _attn_vjp_composite(ctx, inputs, g)
        q, k, v = _attn_split([t._data for t in inputs], ctx.heads)
        go = _attn_unmerge(g._data, ctx.heads)
        p, keep = ctx.p, ctx.keep
        # which of q, k, v need a gradient (a heads-layout input stands for all its groups)
        nq, nk, nv = (ctx.needs_input_grad if ctx.heads is None else
                      [x for t, n, need in zip(inputs, _attn_layout([t.shape for t in inputs], ctx.heads)[1],
                                               ctx.needs_input_grad) for x in [need] * n])
        dq = dk = dv = None
        if nv:
            dv = _C.matmul(_mT(p if keep is None else _C.mul(p, keep)), go)
        if nq or nk:
            dp = _C.matmul(go, _mT(v))
            if keep is not None:
                dp = _C.mul(dp, keep)
            ds = _C.softmax_backward(dp, p, p.ndim - 1)  # 0 wherever p is 0: masked keys and dead rows
            if nq:
                dq = _C.mul(_C.matmul(ds, k), _scalar_like(ctx.scale, ds))
            if nk:
                dk = _C.matmul(_mT(ds), ctx.qs)
        return tuple(None if t is None else Tensor._wrap(t)
                     for t in _attn_join_grads((dq, dk, dv), inputs, ctx.heads, ctx.needs_input_grad))

    def jvp(ctx, *tangents):
        inputs = ctx.saved_tensors
        q, k, v = _attn_split_t(inputs, ctx.heads)
        tq, tk, tv = _attn_split_tangents(inputs, tangents, ctx.heads)
        if _grad_state.forward_level or (_grad_state.grad_enabled and any(t._requires_grad for t in inputs)):
            # nested fg.jvp, or grad of jvp: p and q * scale must depend on q, k (tangents, graph)
            p, qs = _attn_probs(ctx, q, k), q * ctx.scale
        else:
            p, qs = Tensor._wrap(ctx.p), Tensor._wrap(ctx.qs)
        keep = None if ctx.keep is None else Tensor._wrap(ctx.keep)
        out = None
        if tq is not None or tk is not None:
            ds = None
            if tq is not None:
                ds = (tq * ctx.scale) @ k.mT
            if tk is not None:
                t = qs @ tk.mT
                ds = t if ds is None else ds + t
            dp = p * (ds - (ds * p).sum(dim=-1, keepdim=True))
            out = (dp if keep is None else dp * keep) @ v
        if tv is not None:
            t = (p if keep is None else p * keep) @ tv
            out = t if out is None else out + t
        return _attn_merge_t(out, ctx.heads)


def _attn_layout(shapes, heads):
    """(E, per input the number of q/k/v groups it holds) of a heads layout."""
    e = sum(s[-1] for s in shapes) // 3
    return e, [s[-1] // e for s in shapes]


def _attn_split(arrays, heads):
    """Raw q, k, v arrays: the inputs themselves, or (B, H, L, D) views of the projections."""
    if heads is None:
        return arrays
    h, bf = heads
    e, ns = _attn_layout([a.shape for a in arrays], heads)
    out = []
    for a, n in zip(arrays, ns):
        d0, d1 = a.shape[0], a.shape[1]
        a5 = _C.reshape(a, [d0, d1, n, h, e // h])
        a5 = _C.permute(a5, [2, 0, 3, 1, 4] if bf else [2, 1, 3, 0, 4])
        out.extend(_C.select(a5, 0, i) for i in range(n))
    return out


def _heads_of(t, n, heads):
    """A projection Tensor (d0, d1, n*E) -> its n groups as (B, H, L, D) views (differentiable)."""
    h, bf = heads
    d = t.shape[-1] // (n * h)
    t5 = t.reshape(t.shape[0], t.shape[1], n, h, d).permute(*([2, 0, 3, 1, 4] if bf else [2, 1, 3, 0, 4]))
    return [t5[i] for i in range(n)]


def _attn_split_t(tensors, heads):
    """As _attn_split, for Tensors."""
    if heads is None:
        return list(tensors)
    _, ns = _attn_layout([t.shape for t in tensors], heads)
    return [x for t, n in zip(tensors, ns) for x in _heads_of(t, n, heads)]


def _attn_split_tangents(inputs, tangents, heads):
    """q, k, v tangents (None where the input has none)."""
    if heads is None:
        return list(tangents)
    _, ns = _attn_layout([t.shape for t in inputs], heads)
    return [x for t, n in zip(tangents, ns) for x in ([None] * n if t is None else _heads_of(t, n, heads))]


def _attn_merge(o, heads):
    """o (B, H, L, D) -> (L, B, E) or (B, L, E), a contiguous copy (the heads layout); else o."""
    if heads is None:
        return o
    bf = heads[1]
    o = _C.contiguous(_C.permute(o, [0, 2, 1, 3] if bf else [2, 0, 1, 3]))
    return _C.reshape(o, [o.shape[0], o.shape[1], o.shape[2] * o.shape[3]])


def _attn_merge_t(o, heads):
    if heads is None or o is None:
        return o
    o = o.permute(0, 2, 1, 3) if heads[1] else o.permute(2, 0, 1, 3)
    return o.reshape(o.shape[0], o.shape[1], o.shape[2] * o.shape[3])


def _attn_unmerge(g, heads):
    """The output's gradient as (B, H, L, D) (a view when it can be)."""
    if heads is None:
        return g
    h, bf = heads
    d0, d1 = g.shape[0], g.shape[1]
    g4 = _C.reshape(g, [d0, d1, h, g.shape[2] // h])
    return _C.permute(g4, [0, 2, 1, 3] if bf else [1, 2, 0, 3])


def _attn_join_grads(grads, inputs, heads, needs):
    """Raw dq, dk, dv -> one gradient per input: each projection's groups written into one buffer."""
    if heads is None:
        return [gr if need else None for gr, need in zip(grads, needs)]
    h, bf = heads
    e, ns = _attn_layout([t.shape for t in inputs], heads)
    out, j = [], 0
    for t, n, need in zip(inputs, ns, needs):
        if need:
            d0, d1 = t.shape[0], t.shape[1]
            buf = _C.empty([d0, d1, n * e], grads[j].dtype, grads[j].device)
            b5 = _C.permute(_C.reshape(buf, [d0, d1, n, h, e // h]), [2, 0, 3, 1, 4] if bf else [2, 1, 3, 0, 4])
            for i in range(n):
                _C.copy_into(_C.select(b5, 0, i), grads[j + i])
            out.append(buf)
        else:
            out.append(None)
        j += n
    return out


def _attn_probs(ctx, q, k):
    """The attention probabilities from fastgrad ops (differentiable in q and k)."""
    s = (q * ctx.scale) @ k.mT
    if ctx.fill is not None:
        s = s.masked_fill(Tensor._wrap(ctx.fill), _NEG_INF)
    elif ctx.add is not None:
        s = s + Tensor._wrap(ctx.add)
    dead = None if ctx.dead is None else Tensor._wrap(ctx.dead)
    if dead is not None:
        s = s.masked_fill(dead, 0.0)
    p = softmax(s, dim=-1)
    return p if dead is None else p.masked_fill(dead, 0.0)


def _attn_vjp_composite(ctx, inputs, g):
    """The vjp in fastgrad ops (create_graph=True): recomputes the probabilities so that they depend on q, k."""
    q, k, v = _attn_split_t(inputs, ctx.heads)
    p = _attn_probs(ctx, q, k)
    keep = None if ctx.keep is None else Tensor._wrap(ctx.keep)
    pd = p if keep is None else p * keep
    if ctx.heads is None:
        go = g
    else:
        h, bf = ctx.heads
        g4 = g.reshape(g.shape[0], g.shape[1], h, g.shape[2] // h)
        go = g4.permute(0, 2, 1, 3) if bf else g4.permute(1, 2, 0, 3)
    dv = pd.mT @ go
    dp = go @ v.mT
    if keep is not None:
        dp = dp * keep
    ds = p * (dp - (dp * p).sum(dim=-1, keepdim=True))
    dq = (ds @ k) * ctx.scale
    dk = ds.mT @ (q * ctx.scale)
    if ctx.heads is None:
        return dq, dk, dv
    from ..ops.shape import stack

    h, bf = ctx.heads
    e, ns = _attn_layout([t.shape for t in inputs], ctx.heads)
    grads, out, j = (dq, dk, dv), [], 0
    for t, n in zip(inputs, ns):
        st = stack(list(grads[j:j + n]), 0)  # (n, B, H, L, D)
        st = st.permute(1, 3, 0, 2, 4) if bf else st.permute(3, 1, 0, 2, 4)  # (d0, d1, n, H, D)
        out.append(st.reshape(t.shape[0], t.shape[1], n * e))
        j += n
    return tuple(out)


def _attention(inputs, heads=None, fill=None, add=None, scale=1.0, dropout_p=0.0, check_dead=True):
    """Runs _Attention: fill (bool Tensor, True = masked) or add (float Tensor, constant), dead rows
    found from the mask when check_dead, a dropout keep mask drawn when dropout_p > 0."""
    dead = None
    if check_dead and (fill is not None or add is not None):
        d = fill.all(dim=-1, keepdim=True) if fill is not None else (add == _NEG_INF).all(dim=-1, keepdim=True)
        dead = d._data if d.any().item() else None
    keep = None
    if dropout_p > 0:
        q, k, v = _attn_split([t._data for t in inputs], heads)
        b = _C.broadcast_shapes(list(q.shape[:-2]), list(k.shape[:-2]))
        shape = tuple(b) + (q.shape[-2], k.shape[-2])
        dt = inputs[0].dtype
        dev = inputs[0].device
        keep = ((rand(shape, dtype=dt, device=dev) >= dropout_p) * (1.0 / (1.0 - dropout_p)) if dropout_p < 1
                else zeros(shape, dtype=dt, device=dev))._data
    return _Attention.apply(*inputs, heads=heads, fill=None if fill is None else fill._data,
                            add=None if add is None else add._data, dead=dead, scale=scale, keep=keep)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(Q K^T * scale + mask) V over the last two dims (batch dims broadcast), as torch's:
    a bool attn_mask says which positions take part (True), a float one is added to the scores;
    is_causal keeps key j <= query i (top-left aligned) and excludes attn_mask;
    a query row with no position left attends to nothing: its output and gradients are 0, not NaN."""
    _sdpa_check(query, key, value, attn_mask, enable_gqa)
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got {dropout_p}")
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3:
        g = query.shape[-3] // key.shape[-3]
        key, value = _repeat_heads(key, g), _repeat_heads(value, g)
    L, S = query.shape[-2], key.shape[-2]
    if attn_mask is not None:
        try:
            batch = tuple(_C.broadcast_shapes(query.shape[:-2], key.shape[:-2]))
            ok = tuple(_C.broadcast_shapes(batch + (L, S), attn_mask.shape)) == batch + (L, S)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {list(attn_mask.shape)} does not "
                             f"broadcast to the attention scores (..., L={L}, S={S}) of query {list(query.shape)} "
                             f"and key {list(key.shape)}")
        if is_causal:  # as torch documents it (and its float64 path does); fold the mask in yourself
            raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if attn_mask is not None and attn_mask.dtype is not _dt.bool_ and attn_mask.requires_grad:
        return _sdpa_composite(query, key, value, attn_mask, dropout_p, scale)  # a learned bias: its gradient
    fill = add = None
    if is_causal:
        fill = ones((L, S), dtype=_dt.bool_, device=query.device).triu(1)
    elif attn_mask is not None:
        if attn_mask.dtype is _dt.bool_:
            fill = ~attn_mask
        else:
            add = attn_mask
    # a causal mask alone leaves every row at least key 0
    return _attention((query, key, value), None, fill, add, scale, dropout_p, check_dead=not is_causal)


def _sdpa_composite(query, key, value, attn_mask, dropout_p, scale):
    """SDPA from fastgrad ops, for a float mask that needs its own gradient."""
    scores = (query * scale) @ key.mT + attn_mask
    dead = (attn_mask == _NEG_INF).all(dim=-1, keepdim=True)
    if dead.any().item():
        scores = scores.masked_fill(dead, 0.0)
        attn = softmax(scores, dim=-1).masked_fill(dead, 0.0)
    else:
        attn = softmax(scores, dim=-1)
    if dropout_p > 0:
        attn = dropout(attn, dropout_p)
    return attn @ value
