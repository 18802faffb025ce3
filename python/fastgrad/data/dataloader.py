"""DataLoader: batches of samples, shuffled afresh every epoch.

Semantics (API.md, PyTorch's torch.utils.data.DataLoader without workers):
an epoch starts when the loader is iterated; with `shuffle=True` it draws a
new permutation of `range(len(dataset))`, otherwise it uses the identity;
batches are then the adjacent slices `order[k*B:(k+1)*B]`, the last one
shorter unless `drop_last`. Each batch goes through `collate_fn`
(`default_collate`: stack tensors, numbers, and recurse into tuples/dicts).

Fast path: for a `TensorDataset` (or a chain of `Subset`s over one) with the
default collate, a batch is gathered with one `index_select` per tensor
instead of indexing and stacking every sample; the result is the same.
"""
import collections.abc
import math
import numbers

import numpy as np

from .dataset import Subset, TensorDataset, permutation

__all__ = ["DataLoader", "default_collate", "default_convert"]


def _fg():
    # imported lazily: fastgrad/__init__ may import this package before it is complete
    import fastgrad

    return fastgrad


def _is_tensor(x):
    from ..tensor import Tensor

    return isinstance(x, Tensor)


def _numpy_batchable(a):
    # NumPy arrays of strings or objects have no tensor dtype: torch leaves those alone too
    return a.dtype.kind in "biuf"


# -- collate ------------------------------------------------------------------------------------------


def default_collate(batch):
    """Merges a list of samples into a batch, recursively (torch's rules).

    tensors -> `stack` along a new dim 0; NumPy arrays -> one stacked tensor;
    Python floats -> float64 tensor, ints -> int64, bools -> bool; str/bytes ->
    the list as is; dicts -> dict of collated values per key; namedtuples ->
    the same namedtuple of collated fields; tuples and lists -> a list of
    collated positions (torch returns a list for tuples too).
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        raise TypeError(f"default_collate: expected a non-empty list of samples, got {batch!r:.80}")
    elem = batch[0]
    fg = _fg()
    if _is_tensor(elem):
        shapes = {tuple(x.shape) for x in batch if _is_tensor(x)}
        if len(shapes) != 1 or not all(_is_tensor(x) for x in batch):
            raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, got shapes "
                               f"{sorted(shapes)} in one batch")
        return fg.stack(list(batch), 0)
    if isinstance(elem, np.ndarray) and _numpy_batchable(elem):
        try:
            # one NumPy stack + one zero-copy wrap beats a tensor per sample
            return fg.from_numpy(np.ascontiguousarray(np.stack(batch)))
        except ValueError as e:
            raise RuntimeError(f"default_collate: cannot stack NumPy arrays of shapes "
                               f"{sorted({np.shape(x) for x in batch})}: {e}") from None
    if isinstance(elem, np.generic) and _numpy_batchable(np.asarray(elem)):
        return fg.from_numpy(np.ascontiguousarray(np.array(batch)))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, bool):
        return fg.tensor(list(batch), dtype=fg.bool)
    if isinstance(elem, numbers.Integral):
        return fg.tensor(list(batch), dtype=fg.int64)
    if isinstance(elem, numbers.Real):
        # float64 as torch does: a Python float carries double precision
        return fg.tensor(list(batch), dtype=fg.float64)
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:  # a Mapping type that cannot be built from a dict
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(x) != size for x in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal size, got "
                               f"lengths {sorted({len(x) for x in batch})}")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def default_convert(data):
    """What `batch_size=None` applies to each sample: NumPy arrays become tensors, recursively."""
    if isinstance(data, np.ndarray) and _numpy_batchable(data):
        return _fg().tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return type(data)({k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(x) for x in data))
    if isinstance(data, (list, tuple)):
        return type(data)(default_convert(x) for x in data)
    return data


# -- the fast path --------------------------------------------------------------------------------------


def _tensor_source(dataset):
    """(tensors, index map) when batches of `dataset` can be gathered directly, else None.

    Follows Subset chains down to a TensorDataset whose __getitem__ is not
    overridden (an override may transform samples, so it must be called).
    """
    index_map = None
    while isinstance(dataset, Subset):
        idx = np.asarray(dataset.indices, dtype=np.int64)
        index_map = idx if index_map is None else idx[index_map]
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset) and type(dataset).__getitem__ is TensorDataset.__getitem__:
        if all(_is_tensor(t) for t in dataset.tensors):
            return dataset.tensors, index_map
    return None


def _gather(tensors, idx):
    fg = _fg()
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size and idx.min() < 0:  # Subset indices may count from the end, as t[i] allows
        idx = np.where(idx < 0, idx + tensors[0].shape[0], idx)
    index = fg.from_numpy(np.ascontiguousarray(idx))
    on_device = {}  # one index tensor per device the dataset's tensors live on
    out = []
    for t in tensors:
        dev = str(t.device)
        if dev not in on_device:
            on_device[dev] = index if dev == "cpu" else index.to(t.device)
        out.append(t.index_select(0, on_device[dev]))
    return out


# -- the loader ------------------------------------------------------------------------------------------


class DataLoader:
    """Iterates over `dataset` in batches.

    Args:
        dataset: a map-style dataset (`__getitem__` + `__len__`).
        batch_size: samples per batch; None yields single samples, uncollated
            (NumPy arrays converted to tensors), as torch does.
        shuffle: draw a fresh permutation of the indices at the start of every
            epoch (every `iter(loader)`).
        drop_last: drop the last batch when it is shorter than `batch_size`.
        collate_fn: merges a list of samples into a batch (default_collate).
        seed: shuffle with the loader's own NumPy generator seeded once here,
            so two loaders with the same seed give the same epochs; epochs
            still differ from each other.
        generator: a `numpy.random.Generator` (or an int seed) to draw the
            permutations from. Without seed or generator, shuffling uses
            fastgrad's global generator (`fg.manual_seed` makes it repeatable).
        num_workers: loading always happens in the calling thread, so only 0
            is accepted (anything else raises rather than being ignored).
        pin_memory: accepted for PyTorch compatibility and ignored.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None, seed=None,
                 generator=None, num_workers=0, pin_memory=False):
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                       or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size should be a positive integer or None, got {batch_size!r}")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: pass either seed or generator, not both")
        if num_workers:
            raise ValueError(f"DataLoader: fastgrad loads in the calling thread; num_workers must be 0, got "
                             f"{num_workers}")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __getitem__ and __len__, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.num_workers = 0
        if seed is not None:
            generator = np.random.default_rng(int(seed))
        elif isinstance(generator, numbers.Integral):
            generator = np.random.default_rng(int(generator))
        # created once: each epoch continues the same stream, so epochs differ
        # while the whole sequence of epochs is fixed by the seed
        self.generator = generator

    def __len__(self):
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _epoch_order(self):
        n = len(self.dataset)
        if self.shuffle:
            return permutation(n, generator=self.generator)
        return np.arange(n, dtype=np.int64)

    def __iter__(self):
        # the order is drawn now, not at the first next(): iter() starts the epoch
        order = self._epoch_order()
        if self.batch_size is None:
            return self._iter_samples(order)
        bs = self.batch_size
        n = len(order)
        stop = (n // bs) * bs if self.drop_last else n
        slices = [order[i:i + bs] for i in range(0, stop, bs)]
        source = _tensor_source(self.dataset) if self.collate_fn is None else None
        if source is not None:
            return self._iter_fast(slices, *source)
        return self._iter_batches(slices)

    def _iter_samples(self, order):
        collate = self.collate_fn or default_convert
        for i in order.tolist():
            yield collate(self.dataset[i])

    def _iter_batches(self, slices):
        collate = self.collate_fn or default_collate
        for idx in slices:
            yield collate([self.dataset[i] for i in idx.tolist()])

    def _iter_fast(self, slices, tensors, index_map):
        for idx in slices:
            # list, not tuple: default_collate turns tuple samples into a list
            yield _gather(tensors, idx if index_map is None else index_map[idx])

    def __repr__(self):
        return (f"DataLoader(dataset={type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last})")
