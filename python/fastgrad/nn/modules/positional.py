"""SinusoidalPositionalEncoding: the fixed multi-frequency sine/cosine
position code of "Attention is all you need" (Vaswani et al., 2017):

    PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))
"""
import math

import numpy as np

from ...tensor import tensor
from .. import functional as F
from .module import Module


class SinusoidalPositionalEncoding(Module):
    """Adds PE[:seq_len] to x of shape (batch, seq_len, d_model), then dropout."""

    def __init__(self, d_model, max_len=5000, dropout=0.0):
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"SinusoidalPositionalEncoding: d_model and max_len must be positive, got "
                             f"{d_model} and {max_len}")
        self.d_model, self.max_len, self.p = d_model, max_len, dropout
        pos = np.arange(max_len, dtype=np.float64)[:, None]
        freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
        pe = np.zeros((max_len, d_model))
        pe[:, 0::2] = np.sin(pos * freq)
        pe[:, 1::2] = np.cos(pos * freq[: d_model // 2])
        self.register_buffer("pe", tensor(pe.astype(np.float32)), persistent=False)

    def forward(self, x):
        seq = x.shape[-2]
        if seq > self.max_len:
            raise ValueError(f"SinusoidalPositionalEncoding: sequence length {seq} exceeds max_len {self.max_len}")
        if x.shape[-1] != self.d_model:
            raise ValueError(f"SinusoidalPositionalEncoding: expected last dim {self.d_model}, got shape {list(x.shape)}")
        out = x + self.pe[:seq].to(x.dtype)
        return F.dropout(out, self.p, self.training) if self.p > 0 else out

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"
