"""Datasets: the map-style `Dataset` protocol and its standard pieces.

`Dataset` (anything with `__getitem__(i)` and `__len__`), `TensorDataset`
(rows of equally long tensors), `Subset` (a view through a list of indices),
`ConcatDataset` and `random_split`, with PyTorch's names and semantics
(torch.utils.data). The DataLoader recognises `TensorDataset` and `Subset`s
of it and gathers whole batches with one index op per tensor, so these
classes stay plain and simple.
"""
import bisect
import math
import numbers

import numpy as np

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split"]


class Dataset:
    """A map-style dataset: subclasses define `__getitem__(index)` and `__len__()`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Sample `i` is `tuple(t[i] for t in tensors)`; all tensors share their first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        sizes = []
        for k, t in enumerate(tensors):
            shape = getattr(t, "shape", None)
            if shape is None or not hasattr(t, "__getitem__"):
                raise TypeError(f"TensorDataset: argument {k} is a {type(t).__name__}, expected a Tensor")
            if len(shape) == 0:
                raise ValueError(f"TensorDataset: argument {k} is a 0-d tensor; every tensor needs a first "
                                 f"(sample) dimension")
            sizes.append(shape[0])
        if any(s != sizes[0] for s in sizes):
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions must be equal, "
                             f"got shapes {shapes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        # a plain list of Python ints: indices often arrive as a tensor or ndarray,
        # and indexing a tensor with a 0-d tensor element would be slow and odd
        self.indices = [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)]

    def __getitem__(self, index):
        if isinstance(index, (list, tuple)):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        n = len(self)
        if index < 0:
            if -index > n:
                raise IndexError(f"ConcatDataset: index {index} is out of range for length {n}")
            index += n
        if index >= n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for length {n}")
        d = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[d - 1] if d > 0 else 0
        return self.datasets[d][index - start]


# -- random_split ----------------------------------------------------------------------------------


def _split_lengths(n, lengths):
    """Absolute lengths from ints or fractions, with torch's rounding rule."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    total = sum(lengths)
    if math.isclose(total, 1.0) and total <= 1:  # torch's test for "fractions"
        for x in lengths:
            if not 0 <= x <= 1:
                raise ValueError(f"random_split: fraction {x} is not between 0 and 1 (lengths={lengths})")
        sizes = [int(math.floor(n * f)) for f in lengths]
        # the floors leave up to len(lengths)-1 samples over; hand them out one
        # each, round robin from the first split, as torch does
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        return sizes
    for x in lengths:
        if not isinstance(x, numbers.Integral) or x < 0:
            raise ValueError(f"random_split: lengths must be non-negative ints or fractions summing to 1, "
                             f"got {lengths}")
    if total != n:
        raise ValueError(f"random_split: sum of input lengths ({total}) does not equal the length of the input "
                         f"dataset ({n})")
    return [int(x) for x in lengths]


def permutation(n, generator=None, seed=None):
    """A random permutation of range(n) as an int64 NumPy array.

    `generator`/`seed` pick the source: a NumPy `Generator` (its own stream), an
    int seed (a fresh `np.random.default_rng(seed)`), or neither: fastgrad's
    global generator (`fg.randperm`), so `fg.manual_seed` makes it reproducible.
    """
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if seed is not None or isinstance(generator, numbers.Integral):
        generator = np.random.default_rng(int(seed if seed is not None else generator))
    if generator is None:
        from ..ops.creation import randperm

        return np.asarray(randperm(n).numpy(), dtype=np.int64)
    if isinstance(generator, np.random.Generator):
        return generator.permutation(n).astype(np.int64, copy=False)
    if hasattr(generator, "randperm"):  # a generator object with torch's method name
        return np.asarray(generator.randperm(n), dtype=np.int64)
    raise TypeError(f"generator must be None, an int seed or a numpy.random.Generator, got "
                    f"{type(generator).__name__}")


def random_split(dataset, lengths, generator=None, seed=None):
    """Splits `dataset` into non-overlapping `Subset`s of the given lengths.

    `lengths` are ints summing to `len(dataset)`, or fractions summing to 1
    (floored, then the remainder handed out round robin, as torch does). The
    subsets are adjacent slices of one random permutation; see `permutation`
    for `generator` / `seed`.
    """
    n = len(dataset)
    sizes = _split_lengths(n, lengths)
    perm = permutation(n, generator=generator, seed=seed).tolist()
    out, start = [], 0
    for size in sizes:
        out.append(Subset(dataset, perm[start:start + size]))
        start += size
    return out
