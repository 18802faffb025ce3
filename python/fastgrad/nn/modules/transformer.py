"""MultiheadAttention and the Transformer layers ("Attention is all you
need", Vaswani et al., 2017) with PyTorch's names, defaults, parameter
names and mask conventions, so state_dicts load across:

  MultiheadAttention       in_proj_weight/in_proj_bias (or q/k/v_proj_weight
                           when kdim/vdim differ), out_proj (a Linear)
  TransformerEncoderLayer  self_attn, linear1, dropout, linear2, norm1, norm2,
                           dropout1, dropout2
  TransformerDecoderLayer  + multihead_attn, norm3, dropout3
  TransformerEncoder/Decoder  layers.N (deep copies of the layer), norm
  Transformer              encoder, decoder (each with a final LayerNorm)

Masks follow torch: for MultiheadAttention and the layers, a bool mask is
True where a position may NOT be attended (F.scaled_dot_product_attention's
bool mask is the opposite: True = take part); a float mask is added to the
attention scores. key_padding_mask is (batch, source) with True = padding.

Speed: self-attention projects q, k and v with one matmul; the attention
from the projections to the merged heads is one autograd node
(F._attention: heads split by views, scores masked in place of a separate
mask op, softmax, the heads' merge the only copy; its backward writes the
q/k/v gradients straight into one buffer). Two bool masks are merged as
bools, not as -inf float tensors. need_weights=True (the default, as in
torch) takes the composed path that can return the weights: the layers
call it with need_weights=False.
"""
import copy

from ... import dtypes as _dt
from ...ops.creation import empty, full, ones, zeros
from ...ops.shape import cat
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
           "TransformerEncoderLayer", "TransformerDecoderLayer", "multi_head_attention_forward"]

_NEG_INF = float("-inf")


# -- masks ------------------------------------------------------------------------------------------


def _check_mask(mask, name, dtype, op="MultiheadAttention"):
    """None, or the mask itself when it is a bool or `dtype` (the query's) tensor."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(mask).__name__}")
    if mask.dtype is not _dt.bool_:
        if not mask.dtype.is_floating_point:
            raise TypeError(f"{op}: only bool and floating types of {name} are supported, got {mask.dtype.name}")
        if mask.dtype is not dtype:
            raise TypeError(f"{op}: a float {name} must have the query's dtype {dtype.name}, got {mask.dtype.name}")
    return mask


def _to_float(mask, dtype):
    """A torch-convention mask as an additive float mask (bool True -> -inf)."""
    if mask.dtype is _dt.bool_:
        return zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, _NEG_INF)
    return mask


def _fill_or_add(attn_mask, key_padding_mask, dtype):
    """attn_mask (.., L, S) and key_padding_mask (B, 1, 1, S), torch-convention, as the fused attention's
    (fill, add): one bool mask (True = masked; two bools merged as bools) or one additive float mask."""
    if attn_mask is None and key_padding_mask is None:
        return None, None
    if attn_mask is None or key_padding_mask is None:
        m = attn_mask if key_padding_mask is None else key_padding_mask
        return (m, None) if m.dtype is _dt.bool_ else (None, m)
    if attn_mask.dtype is _dt.bool_ and key_padding_mask.dtype is _dt.bool_:
        return attn_mask | key_padding_mask, None
    return None, _to_float(attn_mask, dtype) + _to_float(key_padding_mask, dtype)


def _pad_mask_column(mask):
    """One more source column that every query may attend (add_bias_kv / add_zero_attn)."""
    return cat([mask, zeros(tuple(mask.shape[:-1]) + (1,), dtype=mask.dtype, device=mask.device)], dim=-1)


# -- the attention function -------------------------------------------------------------------------


def _split_heads(p, n, num_heads, batch_first):
    """p: the projection (L, B, n*E) or (B, L, n*E) -> n views (B, H, L, D) (no copies)."""
    d0, d1, ne = p.shape
    head_dim = ne // (n * num_heads)
    if n == 1:
        p = p.view(d0, d1, num_heads, head_dim)
        return (p.permute(0, 2, 1, 3) if batch_first else p.permute(1, 2, 0, 3),)
    p = p.view(d0, d1, n, num_heads, head_dim)
    p = p.permute(2, 0, 3, 1, 4) if batch_first else p.permute(2, 1, 3, 0, 4)
    return p.unbind(0)


def _rows(w, start, n):
    """Rows [start, start + n) of a packed weight or bias (a view), None for None."""
    return None if w is None else w.narrow(0, start, n)


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False, batch_first=False):
    """torch.nn.functional.multi_head_attention_forward: query (L, B, E), key/value (S, B, kdim/vdim), or
    unbatched (L, E) / (S, kdim); batch_first=True takes (B, L, E) (fastgrad's addition: no transposed
    copies). Returns (attn_output, attn_weights or None)."""
    op = "multi_head_attention_forward"
    if static_k is not None or static_v is not None:
        raise NotImplementedError(f"{op}: static_k / static_v are not supported")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    shapes = f"query {list(query.shape)}, key {list(key.shape)}, value {list(value.shape)}"
    if query.ndim not in (2, 3):
        raise ValueError(f"{op}: query should be unbatched 2-D or batched 3-D, got {shapes}")
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{op}: query, key and value must all be {query.ndim}-D, got {shapes}")
    batched = query.ndim == 3
    dtype = query.dtype
    key_padding_mask = _check_mask(key_padding_mask, "key_padding_mask", dtype, op)
    attn_mask = _check_mask(attn_mask, "attn_mask", dtype, op)
    if not batched:
        bdim = 0 if batch_first else 1
        query, key, value = query.unsqueeze(bdim), key.unsqueeze(bdim), value.unsqueeze(bdim)
        if key_padding_mask is not None:
            if key_padding_mask.ndim != 1:
                raise ValueError(f"{op}: for unbatched (2-D) query, key_padding_mask must be 1-D, got shape "
                                 f"{list(key_padding_mask.shape)}")
            key_padding_mask = key_padding_mask.unsqueeze(0)
        if attn_mask is not None and attn_mask.ndim == 3:
            expected = (num_heads, query.shape[0 if not batch_first else 1], key.shape[0 if not batch_first else 1])
            if tuple(attn_mask.shape) != expected:
                raise ValueError(f"{op}: for unbatched query the 3-D attn_mask must have shape {list(expected)} "
                                 f"(num_heads, L, S), got {list(attn_mask.shape)}")
    if batch_first:
        bsz, tgt_len, embed_dim = query.shape
        src_len = key.shape[1]
    else:
        tgt_len, bsz, embed_dim = query.shape
        src_len = key.shape[0]
    if embed_dim != embed_dim_to_check:
        raise ValueError(f"{op}: expected query with embedding dim {embed_dim_to_check} (last dim), got {shapes}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise ValueError(f"{op}: embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if tuple(key.shape[:2]) != tuple(value.shape[:2]) or (not use_separate_proj_weight and key.shape != value.shape):
        raise ValueError(f"{op}: key and value must have the same sequence and batch dims"
                         f"{'' if use_separate_proj_weight else ' and features'}, got {shapes}")
    if (key.shape[0] if batch_first else key.shape[1]) != bsz:
        raise ValueError(f"{op}: query and key must have the same batch size, got {shapes}")

    if is_causal and attn_mask is None:
        raise RuntimeError(f"{op}: need attn_mask if specifying the is_causal hint; you may use "
                           "Transformer.generate_square_subsequent_mask to create this mask")
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (bsz, src_len):
        raise ValueError(f"{op}: expected key_padding_mask of shape {[bsz, src_len]} (batch, source length), got "
                         f"{list(key_padding_mask.shape)}")
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise ValueError(f"{op}: the shape of the 2D attn_mask is {list(attn_mask.shape)}, but should be "
                                 f"{[tgt_len, src_len]} (target length, source length)")
        elif attn_mask.ndim == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise ValueError(f"{op}: the shape of the 3D attn_mask is {list(attn_mask.shape)}, but should be "
                                 f"{[bsz * num_heads, tgt_len, src_len]} (batch * num_heads, target length, "
                                 "source length)")
            attn_mask = attn_mask.view(bsz, num_heads, tgt_len, src_len)
        else:
            raise ValueError(f"{op}: attn_mask must be 2-D or 3-D, got shape {list(attn_mask.shape)}")
    # torch's hint: with no padding mask and no weights to return, the causal mask need not be read
    use_causal = is_causal and key_padding_mask is None and not need_weights
    if use_causal:
        attn_mask = None

    # -- projections: one matmul for self-attention, two for a shared key/value; each projection holds
    # n of q, k, v (n * E features), split into heads by views
    E = embed_dim
    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise ValueError(f"{op}: in_proj_weight is None (pass use_separate_proj_weight=True and q/k/v weights)")
        if key is value and query is key:
            projs = [(F.linear(query, in_proj_weight, in_proj_bias), 3)]
        elif key is value:
            projs = [(F.linear(query, _rows(in_proj_weight, 0, E), _rows(in_proj_bias, 0, E)), 1),
                     (F.linear(key, _rows(in_proj_weight, E, 2 * E), _rows(in_proj_bias, E, 2 * E)), 2)]
        else:
            projs = [(F.linear(x, _rows(in_proj_weight, i * E, E), _rows(in_proj_bias, i * E, E)), 1)
                     for i, x in enumerate((query, key, value))]
    else:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise ValueError(f"{op}: use_separate_proj_weight=True needs q_proj_weight, k_proj_weight and "
                             "v_proj_weight")
        ws = (q_proj_weight, k_proj_weight, v_proj_weight)
        projs = [(F.linear(x, w, _rows(in_proj_bias, i * E, E)), 1) for i, (x, w) in enumerate(zip((query, key, value),
                                                                                                 ws))]
    if (bias_k is None) != (bias_v is None):
        raise ValueError(f"{op}: bias_k and bias_v must be given together")
    if key_padding_mask is not None:
        key_padding_mask = key_padding_mask.view(bsz, 1, 1, src_len)
    if not training:
        dropout_p = 0.0
    scale = 1.0 / head_dim ** 0.5
    extra = bias_k is not None or add_zero_attn
    if use_causal:
        fill, add = ones((tgt_len, src_len), dtype=_dt.bool_, device=query.device).triu(1), None
    else:
        fill, add = _fill_or_add(attn_mask, key_padding_mask, dtype)
    if not need_weights and not extra and (add is None or not add.requires_grad):
        # one node from the projections to the merged heads (a causal mask leaves no row empty)
        out = F._attention([t for t, _ in projs], (num_heads, batch_first), fill, add, scale, dropout_p,
                           check_dead=not use_causal)
        out = F.linear(out, out_proj_weight, out_proj_bias)
        if not batched:
            out = out.squeeze(0 if batch_first else 1)
        return out, None

    q, k, v = [x for t, n in projs for x in _split_heads(t, n, num_heads, batch_first)]
    # -- extra key/value positions (a learned bias row, then a zero row), each with an unmasked column
    extras = []
    if bias_k is not None:
        extras.append((bias_k.reshape(1, num_heads, 1, head_dim).expand(bsz, num_heads, 1, head_dim),
                       bias_v.reshape(1, num_heads, 1, head_dim).expand(bsz, num_heads, 1, head_dim)))
    if add_zero_attn:
        z = zeros(bsz, num_heads, 1, head_dim, dtype=dtype, device=query.device)
        extras.append((z, z))
    for ek, ev in extras:
        k, v = cat([k, ek], dim=2), cat([v, ev], dim=2)
        attn_mask = None if attn_mask is None else _pad_mask_column(attn_mask)
        key_padding_mask = None if key_padding_mask is None else _pad_mask_column(key_padding_mask)

    fill, add = _fill_or_add(attn_mask, key_padding_mask, dtype)
    weights = None
    if need_weights:
        # explicit softmax (its weights are returned), plain softmax like torch: NaN on fully masked rows
        scores = (q * scale) @ k.mT
        if fill is not None:
            scores = scores.masked_fill(fill, _NEG_INF)
        elif add is not None:
            scores = scores + add
        weights = F.softmax(scores, dim=-1)
        attn = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
        out = attn @ v
        if average_attn_weights:
            weights = weights.mean(dim=1)
    else:  # extra key/value rows, or a float mask that needs its gradient
        out = F.scaled_dot_product_attention(q, k, v, add if fill is None else ~fill, dropout_p, is_causal=use_causal)
    # merge the heads: (B, H, L, D) -> (L, B, E) or (B, L, E), the one copy
    out = out.permute(0, 2, 1, 3) if batch_first else out.permute(2, 0, 1, 3)
    out = F.linear(out.reshape(out.shape[0], out.shape[1], E), out_proj_weight, out_proj_bias)
    if not batched:
        out = out.squeeze(0 if batch_first else 1)
        if weights is not None:
            weights = weights.squeeze(0)
    return out, weights


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False) -> (attn_output, attn_weights or None)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout probability has to be between 0 and 1, got {dropout}")
        dt = dtype or _dt.default_float
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads, self.dropout, self.batch_first = num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dt))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dt))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dt))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dt)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, dtype=dt))
            self.bias_v = Parameter(empty(1, 1, embed_dim, dtype=dt))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()
        if device is not None:
            self.to(device)

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        return multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
            batch_first=self.batch_first and query.ndim == 3)

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")


# -- Transformer layers -----------------------------------------------------------------------------


def generate_square_subsequent_mask(sz, device=None, dtype=None):
    """(sz, sz) float mask: -inf above the diagonal (a future position), 0 elsewhere."""
    return full((sz, sz), _NEG_INF, dtype=dtype or _dt.default_float, device=device).triu(1)


def _get_activation_fn(activation):
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise ValueError(f"activation should be relu/gelu, not {activation}")


def _seq_len(src, batch_first):
    return src.shape[0] if src.ndim == 2 else src.shape[1 if batch_first else 0]


def _detect_is_causal_mask(mask, is_causal=None, size=None):
    """is_causal as given, or (when None) whether `mask` is exactly the square causal mask."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    sz = size if size is not None else mask.shape[-2]
    if tuple(mask.shape) != (sz, sz):
        return False
    if mask.dtype is _dt.bool_:
        causal = ones((sz, sz), dtype=_dt.bool_, device=mask.device).triu(1)
    else:
        causal = generate_square_subsequent_mask(sz, device=mask.device, dtype=mask.dtype)
    return bool((mask == causal).all().item())


def _make_layer_parts(layer, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                      norm_first, bias, dtype, n_norms):
    name = type(layer).__name__
    if d_model <= 0 or nhead <= 0 or d_model % nhead:
        raise ValueError(f"{name}: d_model ({d_model}) must be positive and divisible by nhead ({nhead})")
    layer.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                         dtype=dtype)
    if n_norms == 3:
        layer.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                  batch_first=batch_first, dtype=dtype)
    layer.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
    layer.dropout = Dropout(dropout)
    layer.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
    layer.norm_first = norm_first
    for i in range(1, n_norms + 1):
        setattr(layer, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
    for i in range(1, n_norms + 1):
        setattr(layer, f"dropout{i}", Dropout(dropout))
    if isinstance(activation, str):
        activation = _get_activation_fn(activation)
    elif not callable(activation):
        raise TypeError(f"{name}: activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    from .activation import GELU, ReLU

    layer.activation_relu_or_gelu = (1 if activation is F.relu or isinstance(activation, ReLU) else
                                     2 if activation is F.gelu or isinstance(activation, GELU) else 0)
    layer.activation = activation


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with a residual connection and a LayerNorm (after
    the residual by default; before the block with norm_first=True)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        _make_layer_parts(self, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                          norm_first, bias, dtype, 2)
        if device is not None:
            self.to(device)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention (tgt_mask), cross-attention over the encoder's memory (memory_mask), then a
    feed-forward block; residuals and LayerNorms as in TransformerEncoderLayer."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        _make_layer_parts(self, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                          norm_first, bias, dtype, 3)
        if device is not None:
            self.to(device)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal=False):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _get_clones(module, n):
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


class TransformerEncoder(Module):
    """num_layers deep copies of encoder_layer (layers.0, layers.1, ...), then the optional norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"TransformerEncoder: num_layers must be non-negative, got {num_layers}")
        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm
        # accepted for torch's signature; fastgrad has no nested tensors
        self.enable_nested_tensor = self.use_nested_tensor = False
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        batch_first = len(self.layers) > 0 and self.layers[0].self_attn.batch_first
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, batch_first))
        output = src
        for mod in self.layers:
            output = mod(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        return self.norm(output) if self.norm is not None else output


class TransformerDecoder(Module):
    """num_layers deep copies of decoder_layer (layers.0, ...), then the optional norm."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"TransformerDecoder: num_layers must be non-negative, got {num_layers}")
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        batch_first = len(self.layers) > 0 and self.layers[0].self_attn.batch_first
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, _seq_len(tgt, batch_first))
        output = tgt
        for mod in self.layers:
            output = mod(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                         tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                         tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return self.norm(output) if self.norm is not None else output


class Transformer(Module):
    """Encoder-decoder Transformer: encoder (layers + final LayerNorm) over src, decoder (layers + final
    LayerNorm) over tgt attending to the encoder's output. Every weight matrix starts xavier-uniform."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation=F.relu, custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self._reset_parameters()
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        if device is not None:
            self.to(device)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        if src.ndim != tgt.ndim or src.ndim not in (2, 3):
            raise ValueError(f"Transformer: src and tgt must both be 3-D (batched) or 2-D (unbatched), got shapes "
                             f"{list(src.shape)} and {list(tgt.shape)}")
        b = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[b] != tgt.shape[b]:
            raise ValueError(f"Transformer: the batch number of src and tgt must be equal, got shapes "
                             f"{list(src.shape)} and {list(tgt.shape)} (batch_first={self.batch_first})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: the feature number of src and tgt must be equal to d_model "
                             f"({self.d_model}), got shapes {list(src.shape)} and {list(tgt.shape)}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
