"""fastgrad.nn.utils.rnn: variable-length batches for the recurrent layers,
with torch.nn.utils.rnn's names and semantics.

A PackedSequence holds the valid time steps of B sequences, sorted by
decreasing length, time-major: data is (sum(lengths), *), batch_sizes[t] is
how many sequences are still running at step t (a CPU int64 tensor), and
sorted_indices / unsorted_indices map between the caller's batch order and
the sorted one (None when the batch came sorted). Packing and unpacking are
one index_select each (through a padded (T * B, *) view), so gradients flow
through both.
"""
from collections import namedtuple

import numpy as np

from ... import dtypes as _dt
from ...ops.creation import full
from ...ops.index import index_select
from ...ops.shape import cat, stack
from ...tensor import Tensor, tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence"]


def _int_tensor(a, device=None):
    return tensor(np.asarray(a, dtype=np.int64), device=device)


def _numpy_ints(t):
    return np.asarray(t.detach().cpu() if isinstance(t, Tensor) else t, dtype=np.int64)


def invert_permutation(permutation):
    """The inverse of a permutation tensor (None stays None)."""
    if permutation is None:
        return None
    p = _numpy_ints(permutation)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.size, dtype=np.int64)
    return _int_tensor(inv, permutation.device)


class PackedSequence(namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """The packed form of a batch of variable-length sequences (see the
    module docstring). Build one with pack_padded_sequence or pack_sequence;
    recurrent layers take it as input and return one."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            raise ValueError("PackedSequence: batch_sizes is required (build one with pack_padded_sequence or "
                             "pack_sequence)")
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = _int_tensor(batch_sizes)
        if batch_sizes.device.type != "cpu":
            raise ValueError("PackedSequence: batch_sizes should always be on CPU (instances of PackedSequence "
                             "should be created with pack_padded_sequence or pack_sequence)")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """data.to(...); the index tensors follow data's device, batch_sizes
        stays on the CPU. Returns self when data does not change."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        sorted_indices, unsorted_indices = self.sorted_indices, self.unsorted_indices
        if sorted_indices is not None:
            sorted_indices = sorted_indices.to(data.device)
            unsorted_indices = unsorted_indices.to(data.device)
        return type(self)(data, self.batch_sizes, sorted_indices, unsorted_indices)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else device)

    def double(self):
        return self.to(dtype=_dt.float64)

    def float(self):
        return self.to(dtype=_dt.float32)

    @property
    def is_cuda(self):
        return self.data.device.type == "cuda"

    def is_pinned(self):
        return False


def _lengths_array(lengths, op):
    if isinstance(lengths, Tensor):
        if lengths.device.type != "cpu" or lengths.ndim != 1 or lengths.dtype not in (_dt.int64, _dt.int32):
            raise RuntimeError(f"{op}: 'lengths' argument should be a 1D CPU int64 tensor, but got "
                               f"{lengths.ndim}D {lengths.device.type} {lengths.dtype.name} tensor")
    arr = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise RuntimeError(f"{op}: 'lengths' should be a 1D list or tensor of ints, got {lengths!r}")
    return arr.astype(np.int64)


def _batch_sizes(lengths_sorted):
    """batch_sizes[t] = how many of the (decreasingly sorted) sequences are longer than t."""
    T = int(lengths_sorted[0])
    return np.array([(lengths_sorted > t).sum() for t in range(T)], dtype=np.int64)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Packs a padded batch input (T, B, *) (or (B, T, *) with batch_first)
    whose sequence b is lengths[b] long. enforce_sorted=True requires
    lengths in decreasing order; otherwise the batch is sorted here and the
    permutation kept in sorted_indices."""
    op = "pack_padded_sequence"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dims (T, B, *), got shape {list(input.shape)}")
    lengths = _lengths_array(lengths, op)
    bdim, tdim = (0, 1) if batch_first else (1, 0)
    B, T = input.shape[bdim], input.shape[tdim]
    if lengths.size != B:
        raise RuntimeError(f"{op}: Expected `len(lengths)` to be equal to batch_size, but got {lengths.size} "
                           f"(batch_size={B}, input shape {list(input.shape)})")
    if B == 0:
        raise RuntimeError(f"{op}: cannot pack an empty batch (input shape {list(input.shape)})")
    if (lengths <= 0).any():
        raise RuntimeError(f"{op}: Length of all samples has to be greater than 0, but found an element in "
                           f"'lengths' that is <= 0 (lengths {lengths.tolist()})")
    if lengths.max() > T:
        raise ValueError(f"{op}: a length ({int(lengths.max())}) exceeds the padded sequence length T={T} (input "
                         f"shape {list(input.shape)}, batch_first={batch_first})")
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise RuntimeError(f"{op}: `lengths` array must be sorted in decreasing order when `enforce_sorted` is "
                               "True (got " + str(lengths.tolist()) + "). You can pass `enforce_sorted=False` to "
                               "pack_padded_sequence and/or pack_sequence to sidestep this requirement if you do "
                               "not need ONNX exportability.")
        order = np.arange(B, dtype=np.int64)
        sorted_indices = None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = _int_tensor(order, input.device)
    bs = _batch_sizes(lengths[order])
    # row of step t of sorted sequence s in the flat (T*B, *) or (B*T, *) input
    rows = [(order[s] * T + t) if batch_first else (t * B + order[s]) for t in range(bs.size) for s in range(bs[t])]
    flat = input.reshape(B * T, *input.shape[2:])
    data = index_select(flat, 0, _int_tensor(rows, input.device))
    return PackedSequence(data, _int_tensor(bs), sorted_indices, invert_permutation(sorted_indices))


def _check_packed(sequence, op):
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")


def packed_lengths(batch_sizes):
    """The sorted sequence lengths (decreasing) of a PackedSequence's batch_sizes."""
    bs = _numpy_ints(batch_sizes)
    return np.array([(bs > s).sum() for s in range(int(bs[0]))], dtype=np.int64) if bs.size else bs


def pad_rows(batch_sizes, unsorted_indices, total_length, batch_first):
    """For a padded (T, B) (or (B, T)) layout in the caller's batch order,
    flattened: the packed row each position reads, or N (one past the last
    packed row) for padding."""
    bs = _numpy_ints(batch_sizes)
    B, N = int(bs[0]), int(bs.sum())
    offsets = np.concatenate([[0], np.cumsum(bs)[:-1]])
    sorted_pos = (np.arange(B) if unsorted_indices is None else _numpy_ints(unsorted_indices))
    t = np.arange(total_length)[:, None]
    s = sorted_pos[None, :]
    valid = t < bs.size
    tt = np.minimum(t, bs.size - 1)
    rows = np.where(valid & (s < bs[tt]), offsets[tt] + s, N)  # (T, B)
    return (rows.T if batch_first else rows).reshape(-1)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Inverse of pack_padded_sequence: returns (padded (T, B, *) or
    (B, T, *), lengths (B,) int64), in the batch order the caller packed.
    T is the longest length, or total_length when given."""
    op = "pad_packed_sequence"
    _check_packed(sequence, op)
    data, batch_sizes = sequence.data, sequence.batch_sizes
    max_len = int(batch_sizes.shape[0])
    if total_length is None:
        total_length = max_len
    elif total_length < max_len:
        raise ValueError(f"{op}: Expected total_length to be at least the length of the longest sequence in input, "
                         f"but got total_length={total_length} and max sequence length being {max_len}")
    B = int(_numpy_ints(batch_sizes)[0])
    rows = pad_rows(batch_sizes, sequence.unsorted_indices, total_length, batch_first)
    pad_row = full((1, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    padded = index_select(cat([data, pad_row], 0), 0, _int_tensor(rows, data.device))
    shape = (B, total_length) if batch_first else (total_length, B)
    lengths = packed_lengths(batch_sizes)
    if sequence.unsorted_indices is not None:
        lengths = lengths[_numpy_ints(sequence.unsorted_indices)]
    return padded.reshape(*shape, *data.shape[1:]), _int_tensor(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stacks tensors (L_i, *) into (T, B, *) (or (B, T, *)), T = max L_i,
    filling with padding_value on padding_side ('right' or 'left')."""
    op = "pad_sequence"
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError(f"{op}: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"{op}: Expected padding_side to be one of left or right, but got {padding_side}.")
    for s in sequences:
        if not isinstance(s, Tensor):
            raise TypeError(f"{op}: expected a list of Tensors, got a {type(s).__name__}")
        if s.ndim == 0 or tuple(s.shape[1:]) != tuple(sequences[0].shape[1:]):
            raise RuntimeError(f"{op}: every sequence must be (L, *) with the same trailing dims, got shapes "
                               f"{[list(q.shape) for q in sequences]}")
    T = max(s.shape[0] for s in sequences)
    cols = []
    for s in sequences:
        n = T - s.shape[0]
        if n:
            fill = full((n, *s.shape[1:]), padding_value, dtype=s.dtype, device=s.device)
            s = cat([s, fill] if padding_side == "right" else [fill, s], 0)
        cols.append(s)
    return stack(cols, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Packs a list of tensors (L_i, *) (decreasing L_i unless enforce_sorted=False)."""
    lengths = [int(s.shape[0]) if isinstance(s, Tensor) and s.ndim else 0 for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of (L_i, *) tensors a padded batch holds."""
    lengths = _lengths_array(lengths, "unpad_sequence")
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[b, :int(n)] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences):
    """The list of (L_i, *) tensors a PackedSequence holds, in the caller's order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
