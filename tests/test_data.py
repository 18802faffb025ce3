"""fastgrad.data: Dataset pieces, DataLoader batching/shuffle semantics, collate, transforms.

The DataLoader contract (API.md): every epoch is a permutation of the
indices, batches are adjacent fixed-length slices of it, shuffling redraws
at every epoch, and a seed makes the whole sequence of epochs repeatable.
Transforms are checked against NumPy references computed from the same
random draws.
"""
import collections

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.data import (ConcatDataset, DataLoader, Dataset, Subset, TensorDataset, default_collate,
                           random_split, transforms as T)


def _ids(n):
    """A TensorDataset whose samples say their own index: (float features, int label)."""
    X = fg.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    y = fg.arange(n)
    return TensorDataset(X, y)


class RangeDataset(Dataset):
    """A plain (non-tensor) dataset: sample i is the int i, so batches show their indices."""

    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return i

    def __len__(self):
        return self.n


def _epoch_indices(loader):
    return [b.tolist() for b in loader]


# -- datasets ----------------------------------------------------------------------------------------------


def test_tensor_dataset_items_and_len():
    ds = _ids(5)
    assert len(ds) == 5
    x, y = ds[2]
    assert x.tolist() == [6.0, 7.0, 8.0] and y.item() == 2


def test_tensor_dataset_size_mismatch():
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(fg.zeros(4, 2), fg.zeros(5))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(fg.tensor(1.0))
    with pytest.raises(TypeError, match="expected a Tensor"):
        TensorDataset([1, 2, 3])


def test_subset_and_concat():
    base = RangeDataset(10)
    sub = Subset(base, fg.tensor([7, 2, 5]))
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [7, 2, 5]
    cat = base + RangeDataset(3)
    assert isinstance(cat, ConcatDataset) and len(cat) == 13
    assert cat[9] == 9 and cat[10] == 0 and cat[-1] == 2
    with pytest.raises(IndexError):
        cat[13]


@pytest.mark.parametrize("lengths, sizes", [([3, 7], [3, 7]), ([0.5, 0.5], [5, 5]), ([0.3, 0.3, 0.4], [3, 3, 4]),
                                            ([0.33, 0.33, 0.34], [4, 3, 3]), ([1.0], [10])])
def test_random_split_sizes_and_disjoint(lengths, sizes):
    parts = random_split(RangeDataset(10), lengths, seed=0)
    assert [len(p) for p in parts] == sizes
    seen = [p[i] for p in parts for i in range(len(p))]
    assert sorted(seen) == list(range(10))  # disjoint and covering


def test_random_split_deterministic_and_sources():
    a = [p.indices for p in random_split(RangeDataset(20), [5, 15], seed=3)]
    b = [p.indices for p in random_split(RangeDataset(20), [5, 15], generator=np.random.default_rng(3))]
    assert a == b
    fg.manual_seed(11)
    c = [p.indices for p in random_split(RangeDataset(20), [5, 15])]
    fg.manual_seed(11)
    d = [p.indices for p in random_split(RangeDataset(20), [5, 15])]
    assert c == d and sorted(c[0] + c[1]) == list(range(20))


def test_random_split_errors():
    with pytest.raises(ValueError, match="does not equal"):
        random_split(RangeDataset(10), [3, 3])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(RangeDataset(10), [11, -1])
    with pytest.raises(ValueError, match="either"):
        random_split(RangeDataset(10), [5, 5], generator=np.random.default_rng(0), seed=1)


# -- DataLoader: batching and shuffling -------------------------------------------------------------------


@pytest.mark.parametrize("n, bs, drop_last", [(10, 3, False), (10, 3, True), (10, 5, False), (10, 5, True),
                                              (10, 1, False), (10, 20, False), (10, 20, True), (0, 4, False)])
def test_sequential_batches_are_adjacent_slices(n, bs, drop_last):
    loader = DataLoader(RangeDataset(n), batch_size=bs, drop_last=drop_last)
    expected = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    if drop_last:
        expected = [b for b in expected if len(b) == bs]
    assert _epoch_indices(loader) == expected
    assert len(loader) == len(expected)


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffle_is_a_permutation_cut_into_adjacent_slices(drop_last):
    n, bs = 23, 5
    loader = DataLoader(RangeDataset(n), batch_size=bs, shuffle=True, drop_last=drop_last, seed=0)
    for _ in range(3):
        batches = _epoch_indices(loader)
        sizes = [len(b) for b in batches]
        flat = [i for b in batches for i in b]
        if drop_last:
            assert sizes == [bs] * (n // bs)
            assert len(set(flat)) == len(flat) == n - n % bs
        else:
            assert sizes == [bs] * (n // bs) + [n % bs]
            assert sorted(flat) == list(range(n))  # every epoch visits every sample once


def test_shuffle_matches_the_seeded_generator():
    # the documented recipe: one default_rng(seed) for the loader, one permutation per epoch
    n, bs = 17, 4
    loader = DataLoader(RangeDataset(n), batch_size=bs, shuffle=True, seed=42)
    rng = np.random.default_rng(42)
    for _ in range(3):
        perm = rng.permutation(n).tolist()
        assert _epoch_indices(loader) == [perm[i:i + bs] for i in range(0, n, bs)]


def test_shuffle_reshuffles_every_epoch_and_is_deterministic_by_seed():
    mk = lambda seed: DataLoader(RangeDataset(50), batch_size=8, shuffle=True, seed=seed)  # noqa: E731
    a, b, c = mk(7), mk(7), mk(8)
    epochs_a = [_epoch_indices(a) for _ in range(3)]
    epochs_b = [_epoch_indices(b) for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert _epoch_indices(c) != epochs_a[0]


def test_shuffle_without_seed_uses_fastgrad_generator():
    loader = DataLoader(RangeDataset(30), batch_size=7, shuffle=True)
    fg.manual_seed(5)
    first = [_epoch_indices(loader) for _ in range(2)]
    fg.manual_seed(5)
    again = [_epoch_indices(loader) for _ in range(2)]
    assert first == again and first[0] != first[1]
    assert sorted(i for b in first[0] for i in b) == list(range(30))


def test_generator_argument():
    a = DataLoader(RangeDataset(12), batch_size=5, shuffle=True, generator=np.random.default_rng(1))
    b = DataLoader(RangeDataset(12), batch_size=5, shuffle=True, seed=1)
    assert _epoch_indices(a) == _epoch_indices(b)
    with pytest.raises(ValueError, match="either seed or generator"):
        DataLoader(RangeDataset(3), shuffle=True, seed=1, generator=np.random.default_rng(1))


def test_loader_argument_errors():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(RangeDataset(3), batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(RangeDataset(3), num_workers=2)
    with pytest.raises(TypeError, match="__getitem__"):
        DataLoader(42)


def test_batch_size_none_yields_samples():
    loader = DataLoader(RangeDataset(4), batch_size=None)
    assert list(loader) == [0, 1, 2, 3] and len(loader) == 4


def test_len_matches_iteration():
    for n in (0, 1, 9, 10, 11):
        for bs in (1, 3, 10):
            for dl in (False, True):
                loader = DataLoader(RangeDataset(n), batch_size=bs, drop_last=dl, shuffle=True, seed=0)
                assert len(loader) == len(list(loader))


# -- the TensorDataset fast path ------------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [False, True])
def test_tensor_dataset_fast_path_equals_per_sample_collate(shuffle):
    ds = _ids(11)
    fast = DataLoader(ds, batch_size=4, shuffle=shuffle, seed=3)
    slow = DataLoader(ds, batch_size=4, shuffle=shuffle, seed=3, collate_fn=default_collate)
    for (xf, yf), (xs, ys) in zip(fast, slow):
        assert xf.dtype == xs.dtype == fg.float32 and yf.dtype == ys.dtype == fg.int64
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())
        # the rows travel with their labels
        np.testing.assert_array_equal(xf.numpy()[:, 0], yf.numpy() * 3)


def test_fast_path_through_subsets_and_fresh_memory():
    ds = _ids(20)
    train, _ = random_split(ds, [15, 5], seed=0)
    inner = Subset(train, [-1, 0, 3])
    (x, y), = list(DataLoader(inner, batch_size=3))
    idx = [train.indices[-1], train.indices[0], train.indices[3]]
    assert y.tolist() == idx
    x[0] = fg.tensor([-1.0, -1.0, -1.0])  # a batch is a copy: the dataset must not change
    assert ds.tensors[0][idx[0]].tolist() != [-1.0, -1.0, -1.0]


def test_overridden_getitem_is_honoured():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x * 2, y

    (x, y), = list(DataLoader(Doubled(fg.ones(3, 2), fg.arange(3)), batch_size=3))
    assert x.tolist() == [[2.0, 2.0]] * 3


# -- default_collate ----------------------------------------------------------------------------------------


def test_collate_numbers_and_arrays():
    assert default_collate([1, 2, 3]).dtype == fg.int64
    f = default_collate([0.5, 1.5])
    assert f.dtype == fg.float64 and f.tolist() == [0.5, 1.5]  # Python floats are doubles, as in torch
    assert default_collate([True, False]).dtype == fg.bool
    a = default_collate([np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)])
    assert a.shape == (2, 2, 2) and a.dtype == fg.float32
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_collate_tuples_dicts_namedtuples_recursively():
    Pair = collections.namedtuple("Pair", "x y")
    samples = [{"img": fg.full((2, 3), float(i)), "meta": (i, {"name": f"s{i}"}), "p": Pair(i, 0.5 * i)}
               for i in range(4)]
    batch = default_collate(samples)
    assert set(batch) == {"img", "meta", "p"}
    assert batch["img"].shape == (4, 2, 3)
    np.testing.assert_array_equal(batch["img"].numpy()[:, 0, 0], [0, 1, 2, 3])
    ids, inner = batch["meta"]  # tuples come back as lists, as torch's default_collate does
    assert ids.tolist() == [0, 1, 2, 3] and inner == {"name": ["s0", "s1", "s2", "s3"]}
    assert isinstance(batch["p"], Pair) and batch["p"].y.tolist() == [0.0, 0.5, 1.0, 1.5]


def test_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([fg.zeros(2), fg.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])


def test_loader_with_dict_samples():
    class D(Dataset):
        def __getitem__(self, i):
            return {"x": fg.full((3,), float(i)), "y": i}

        def __len__(self):
            return 5

    batches = list(DataLoader(D(), batch_size=2))
    assert [b["y"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[0]["x"].shape == (2, 3)


# -- transforms (NumPy references) --------------------------------------------------------------------------


def _images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 3, 5, 4)])
def test_normalize(shape):
    a = _images(shape)
    mean, std = [0.1, -0.2, 0.3], [0.5, 2.0, 1.5]
    out = T.Normalize(mean, std)(fg.tensor(a))
    ref = (a - np.array(mean, np.float32).reshape(3, 1, 1)) / np.array(std, np.float32).reshape(3, 1, 1)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)


def test_normalize_errors():
    with pytest.raises(ValueError, match="division by zero"):
        T.Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match="channels"):
        T.Normalize([0, 0], [1, 1])(fg.zeros(3, 2, 2))
    with pytest.raises(TypeError, match="float"):
        T.Normalize([0], [1])(fg.zeros(1, 2, 2, dtype=fg.int64))


def test_random_horizontal_flip_batch_is_per_image():
    a = _images((64, 2, 3, 5))
    fg.manual_seed(0)
    out = T.RandomHorizontalFlip(0.5)(fg.tensor(a)).numpy()
    flipped = [np.array_equal(o, x[..., ::-1]) for o, x in zip(out, a)]
    kept = [np.array_equal(o, x) for o, x in zip(out, a)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54  # independent coins, not one for the whole batch
    # the same draws as fg.rand(n) < p: the transform uses fastgrad's generator
    fg.manual_seed(0)
    assert flipped == (fg.rand(64).numpy() < 0.5).tolist()


def test_random_horizontal_flip_p_edges():
    a = _images((3, 4, 6))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(fg.tensor(a)).numpy(), a[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(fg.tensor(a)).numpy(), a)


@pytest.mark.parametrize("padding", [None, 2, (1, 3), (1, 2, 3, 4)])
def test_random_crop_matches_numpy_windows(padding):
    a = _images((8, 3, 7, 6))
    size = (5, 4)
    fg.manual_seed(1)
    out = T.RandomCrop(size, padding=padding)(fg.tensor(a)).numpy()
    assert out.shape == (8, 3) + size
    if padding is None:
        pl = pr = pt = pb = 0
    elif isinstance(padding, int):
        pl = pr = pt = pb = padding
    elif len(padding) == 2:
        pl = pr = padding[0]
        pt = pb = padding[1]
    else:
        pl, pt, pr, pb = padding
    padded = np.pad(a, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    H, W = padded.shape[-2:]
    for k in range(8):
        # each output is one of the possible windows of its own padded image
        windows = [padded[k, :, i:i + size[0], j:j + size[1]] for i in range(H - size[0] + 1)
                   for j in range(W - size[1] + 1)]
        assert any(np.array_equal(out[k], w) for w in windows)


def test_random_crop_single_image_and_errors():
    a = _images((1, 4, 4))
    out = T.RandomCrop(4)(fg.tensor(a))
    np.testing.assert_array_equal(out.numpy(), a)  # the only window
    out = T.RandomCrop(6, pad_if_needed=True)(fg.tensor(a))
    assert out.shape == (1, 6, 6)
    with pytest.raises(ValueError, match="larger than"):
        T.RandomCrop(5)(fg.tensor(a))


def _crop_loop(x, size, padding, seed):
    """The per-image reference: the transform's draws (n tops, then n lefts) and one slice per image."""
    th, tw = size
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h, w = xp.shape[-2:]
    fg.manual_seed(seed)
    tops = fg.randint(0, h - th + 1, (len(x),)).tolist()
    lefts = fg.randint(0, w - tw + 1, (len(x),)).tolist()
    return np.stack([xp[k, :, i:i + th, j:j + tw] for k, (i, j) in enumerate(zip(tops, lefts))])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,size,padding", [((37, 3, 9, 7), (6, 5), 2), ((5, 1, 8, 8), (8, 8), 1),
                                                ((4, 2, 5, 6), (5, 6), 0)])
def test_random_crop_batch_is_the_per_image_loop(shape, size, padding, dtype):
    a = _images(shape).astype(dtype)
    fg.manual_seed(3)
    out = T.RandomCrop(size, padding=padding)(fg.tensor(a)).numpy()
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, _crop_loop(a, size, padding, 3))


def test_random_crop_batch_non_contiguous_and_differentiable():
    a = _images((9, 3, 7, 8))
    base = fg.tensor(np.ascontiguousarray(a.transpose(0, 1, 3, 2))).transpose(2, 3)  # strided view of a
    fg.manual_seed(5)
    out = T.RandomCrop((4, 5))(base).numpy()
    np.testing.assert_array_equal(out, _crop_loop(a, (4, 5), 0, 5))
    fg.manual_seed(5)
    np.testing.assert_array_equal(T.RandomCrop((4, 5))(fg.tensor(a)[:, :, :, :]).numpy(), out)
    # with requires_grad the crop stays on the tape: the gradient of the sum
    # is 1 on every pixel inside its image's window (padding cut away)
    x = fg.tensor(a, requires_grad=True)
    fg.manual_seed(5)
    y = T.RandomCrop((4, 5), padding=1)(x)
    np.testing.assert_array_equal(y.detach().numpy(), _crop_loop(a, (4, 5), 1, 5))
    y.sum().backward()
    fg.manual_seed(5)  # the same draws again: which padded pixels each window covers
    tops = fg.randint(0, 9 - 4 + 1, (9,)).tolist()
    lefts = fg.randint(0, 10 - 5 + 1, (9,)).tolist()
    g = np.zeros((9, 3, 9, 10), np.float32)
    for k, (i, j) in enumerate(zip(tops, lefts)):
        g[k, :, i:i + 4, j:j + 5] = 1
    np.testing.assert_array_equal(x.grad.numpy(), g[:, :, 1:-1, 1:-1])


def test_gaussian_noise_statistics_and_clip():
    x = fg.zeros(200, 300)
    fg.manual_seed(0)
    out = T.GaussianNoise(std=0.5, mean=0.1)(x).numpy()
    assert abs(out.mean() - 0.1) < 0.01 and abs(out.std() - 0.5) < 0.01
    fg.manual_seed(0)
    ref = fg.randn(200, 300).numpy() * 0.5 + 0.1  # exactly the draws the transform made
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    clipped = T.GaussianNoise(std=2.0, clip=True)(fg.full((3, 8, 8), 0.5)).numpy()
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0


def test_to_tensor():
    img = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    t = T.ToTensor()(img)
    assert t.shape == (3, 5, 4) and t.dtype == fg.float32
    np.testing.assert_allclose(t.numpy(), img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert T.ToTensor()(np.zeros((5, 4), np.float64)).shape == (1, 5, 4)
    assert T.ToTensor()(np.zeros((5, 4), np.float64)).dtype == fg.float64
    assert T.ToTensor()(np.zeros((2, 5, 4, 3), np.uint8)).shape == (2, 3, 5, 4)
    with pytest.raises(TypeError, match="numpy"):
        T.ToTensor()([1, 2])


def test_compose_pipeline():
    a = np.full((4, 4, 3), 255, np.uint8)
    pipe = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3), T.RandomHorizontalFlip(1.0),
                      T.Lambda(lambda x: x * 2)])
    np.testing.assert_allclose(pipe(a).numpy(), np.full((3, 4, 4), 2.0), rtol=1e-6)
    assert "Normalize" in repr(pipe)
