"""fg.multinomial against torch.multinomial: shapes, dtypes and error
conditions like torch; the distribution by chi-square tests at fixed seeds
(the generator differs from torch's, so values cannot match; a fixed seed
makes the tests deterministic, not flaky); the documented element mapping
against the Philox stream (fg.rand float64 gives the same uniforms); CUDA
results equal to the CPU's (skipped without a GPU)."""
import math

import numpy as np
import pytest
import torch

import fastgrad as fg

HAS_GPU = fg.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA device")


def chi2_crit(df, alpha=1e-4):
    """Upper alpha quantile of chi-square(df) (Wilson-Hilferty; accurate to
    a few percent for df >= 3, plenty for a pass/fail threshold)."""
    z = {1e-4: 3.719, 1e-3: 3.090}[alpha]
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi2(counts, probs):
    probs = np.asarray(probs, np.float64)
    keep = probs > 0
    exp = counts.sum() * probs[keep] / probs[keep].sum()
    assert counts[~keep].sum() == 0  # zero weights never come out
    return ((counts[keep] - exp) ** 2 / exp).sum(), keep.sum() - 1


@pytest.mark.parametrize("dtype", [fg.float32, fg.float64])
def test_with_replacement_distribution(dtype):
    w = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 5.0, 0.5])  # unnormalised, one zero
    fg.manual_seed(2024)
    s = fg.multinomial(fg.tensor(w, dtype=dtype), 60000, replacement=True).numpy()
    stat, df = chi2(np.bincount(s, minlength=w.size), w)
    assert stat < chi2_crit(df), (stat, df)


def test_without_replacement_first_and_second_draws():
    w = np.array([5.0, 1.0, 0.0, 3.0, 1.0])
    p = w / w.sum()
    fg.manual_seed(7)
    s = fg.multinomial(fg.tensor(np.tile(w, (20000, 1))), 2).numpy()
    assert (s[:, 0] != s[:, 1]).all()
    stat, df = chi2(np.bincount(s[:, 0], minlength=5), p)
    assert stat < chi2_crit(df), stat
    # second draw: P(j) = sum_{i != j} p_i p_j / (1 - p_i)
    p2 = np.array([sum(p[i] * p[j] / (1 - p[i]) for i in range(5) if i != j) for j in range(5)])
    stat, df = chi2(np.bincount(s[:, 1], minlength=5), p2)
    assert stat < chi2_crit(df), stat


def test_without_replacement_full_draw_is_a_permutation():
    fg.manual_seed(3)
    s = fg.multinomial(fg.rand(50, 33) + 0.01, 33).numpy()
    assert (np.sort(s, axis=1) == np.arange(33)).all()


def test_shapes_dtypes_like_torch():
    r = np.random.default_rng(0)
    for shape, n, repl in (((7,), 3, False), ((7,), 20, True), ((4, 9), 9, False), ((4, 9), 1, True),
                           ((1, 1), 1, False), ((0, 5), 2, True), ((3, 2), 5, True)):
        w = r.random(shape) + 0.1
        want = torch.multinomial(torch.tensor(w), n, replacement=repl)
        got = fg.multinomial(fg.tensor(w, dtype=fg.float32), n, replacement=repl)
        assert tuple(got.shape) == tuple(want.shape)
        assert got.dtype == fg.int64 and want.dtype == torch.int64
        assert ((got.numpy() >= 0) & (got.numpy() < shape[-1])).all()
    # method form, non-contiguous input, rows sampled independently
    w = fg.tensor(r.random((6, 4)))
    fg.manual_seed(1)
    a = w.T.multinomial(3)
    fg.manual_seed(1)
    b = fg.multinomial(w.T.contiguous(), 3)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("case", [
    dict(w=[0.5, -0.1, 0.3], n=1),            # negative weight
    dict(w=[0.5, np.inf, 0.3], n=1),          # inf
    dict(w=[0.5, np.nan, 0.3], n=1),          # nan
    dict(w=[[0.5, 0.5], [0.0, 0.0]], n=1),    # an all-zero row
    dict(w=[0.2, 0.3], n=0),                  # no samples
    dict(w=[0.2, 0.3], n=-1),
    dict(w=[0.2, 0.3], n=3),                  # more than categories without replacement
    dict(w=[[[0.2, 0.3]]], n=1),              # 3-d
    dict(w=0.5, n=1),                         # 0-d
])
def test_errors_like_torch(case):
    w = np.asarray(case["w"], np.float64)
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.tensor(w), case["n"])
    with pytest.raises((ValueError, RuntimeError), match="multinomial"):
        fg.multinomial(fg.tensor(w), case["n"])


def test_zero_weights_come_last_without_replacement():
    # torch allows more samples than positive weights without replacement:
    # the zero-weight categories fill the end (ours in index order).
    fg.manual_seed(0)
    s = fg.multinomial(fg.tensor([[0.2, 0.0, 0.3, 0.0]] * 50), 4).numpy()
    assert (np.sort(s[:, :2], axis=1) == [0, 2]).all() and (s[:, 2:] == [1, 3]).all()
    assert set(s[:, 0]) == {0, 2}
    t = torch.multinomial(torch.tensor([0.2, 0.0, 0.3]), 3)
    assert t[2].item() == 1


def test_type_errors():
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.tensor([1, 2]), 1)
    with pytest.raises(TypeError, match="multinomial"):
        fg.multinomial(fg.tensor([1, 2]), 1)
    with pytest.raises(TypeError, match="multinomial"):
        fg.multinomial(fg.tensor([1.0, 2.0]), 1.5)


def test_errors_leave_the_generator_alone():
    fg.manual_seed(11)
    with pytest.raises(ValueError):
        fg.multinomial(fg.tensor([1.0, -1.0]), 1)
    assert fg.get_rng_state() == (11, 0)


def test_element_mapping_and_state():
    """The documented mapping, rebuilt from fg.rand(float64), which draws
    the same uniforms ((u64 >> 11) 2^-53 of u64 draw i)."""
    r = np.random.default_rng(5)
    w = r.random((3, 10)) * (r.random((3, 10)) > 0.2) + 1e-3 * (np.arange(10) == 0)
    R, C, S = w.shape[0], w.shape[1], 7
    fg.manual_seed(99)
    got = fg.multinomial(fg.tensor(w), S, replacement=True).numpy()
    assert fg.get_rng_state() == (99, (R * S + 1) // 2)
    fg.manual_seed(99)
    u = fg.rand(R * S, dtype=fg.float64).numpy().reshape(R, S)
    cdf = np.cumsum(w, axis=1)
    want = np.stack([np.searchsorted(cdf[i], u[i] * cdf[i, -1], side="right") for i in range(R)])
    np.testing.assert_array_equal(got, want)

    fg.manual_seed(98)
    got = fg.multinomial(fg.tensor(w), S).numpy()
    assert fg.get_rng_state() == (98, (R * C + 1) // 2)
    fg.manual_seed(98)
    u = fg.rand(R * C, dtype=fg.float64).numpy().reshape(R, C) + 2.0**-53
    with np.errstate(divide="ignore"):
        keys = np.where(w > 0, -np.log(u) / w, np.inf)
    want = np.argsort(keys, axis=1, kind="stable")[:, :S]
    np.testing.assert_array_equal(got, want)


def test_same_seed_same_samples_any_thread_count():
    w = fg.rand(300, 40) + 0.01
    outs = []
    for threads in (1, 2):
        fg.set_num_threads(threads)
        for repl in (True, False):
            fg.manual_seed(5)
            outs.append(fg.multinomial(w, 13, replacement=repl).numpy())
    fg.set_num_threads(2)
    np.testing.assert_array_equal(outs[0], outs[2])
    np.testing.assert_array_equal(outs[1], outs[3])


@gpu
@pytest.mark.parametrize("dtype", [fg.float32, fg.float64])
def test_cuda_same_samples_as_cpu(dtype):
    r = np.random.default_rng(6)
    for shape, n, repl in (((7,), 3, False), ((7,), 1000, True), ((33, 9), 9, False), ((33, 9), 17, True),
                           ((2, 1031), 100, False), ((1,), 1, True)):
        w = r.random(shape) * (r.random(shape) > 0.1) + 0.001
        res = []
        for d in ("cuda", "cpu"):
            fg.manual_seed(123)
            res.append((fg.multinomial(fg.tensor(w, dtype=dtype, device=d), n, replacement=repl), fg.get_rng_state()))
        assert res[0][0].device.type == "cuda" and res[0][1] == res[1][1]
        np.testing.assert_array_equal(res[0][0].cpu().numpy(), res[1][0].numpy())


@gpu
def test_cuda_errors_like_cpu():
    for w, n in (([0.5, -0.1], 1), ([[1.0, 1.0], [0.0, 0.0]], 1), ([1.0, np.nan], 1), ([[1.0], [np.inf]], 1)):
        msgs = []
        for d in ("cuda", "cpu"):
            fg.manual_seed(4)
            with pytest.raises((ValueError, RuntimeError), match="multinomial") as e:
                fg.multinomial(fg.tensor(w, device=d), n)
            msgs.append(str(e.value))
            assert fg.get_rng_state() == (4, 0)
        assert msgs[0] == msgs[1]
