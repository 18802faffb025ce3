"""Model zoo: contrastive learning (NT-Xent) of a digits embedding, and its
loss and kNN metric against PyTorch / NumPy references."""
import json

import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.cli
from fastgrad.models import ContrastiveEncoder, info_nce, knn_accuracy


def test_contrastive_learns(tmp_path):
    out = tmp_path
    assert fastgrad.cli.main(["train", "contrastive", "--out", str(out), "--steps", "250", "--batch-size", "128",
                              "--eval-every", "250"]) == 0
    s = json.loads((out / "contrastive_summary.json").read_text())
    # chance for NT-Xent is log(2N - 1) = 5.54 with N = 128
    assert s["initial_loss"] > 5.0 and s["final_loss"] < s["initial_loss"] - 0.6, s
    assert s["knn_accuracy"] > 0.9, s  # chance is 10%
    # invariance to the augmentations: shifted, noisy test digits are recognised far better than by the same
    # encoder at its random init (~0.48; 0.63-0.67 after these 250 steps, seeds 0-2)
    assert s["augmented_test_knn_accuracy"] > s["augmented_test_random_init_knn_accuracy"] + 0.08, s
    assert (out / "contrastive_knn.png").exists()


def nt_xent_torch(z1, z2, t):
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / t
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return torch.nn.functional.cross_entropy(sim, target)


@pytest.mark.parametrize("dtype", [fg.float32, fg.float64])
def test_info_nce_matches_torch(dtype):
    fg.manual_seed(0)
    z1 = fg.randn(5, 3, dtype=dtype, requires_grad=True)
    z2 = fg.randn(5, 3, dtype=dtype, requires_grad=True)
    loss = info_nce(z1, z2, temperature=0.3)
    loss.backward()
    t1 = torch.from_numpy(z1.detach().numpy().copy()).requires_grad_()
    t2 = torch.from_numpy(z2.detach().numpy().copy()).requires_grad_()
    ref = nt_xent_torch(t1, t2, 0.3)
    ref.backward()
    tol = 1e-5 if dtype == fg.float32 else 1e-10
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=tol)
    np.testing.assert_allclose(z1.grad.numpy(), t1.grad.numpy(), rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(z2.grad.numpy(), t2.grad.numpy(), rtol=tol * 10, atol=tol)


def test_info_nce_bad_input():
    with pytest.raises(ValueError, match="info_nce"):
        info_nce(fg.randn(4, 3), fg.randn(5, 3))
    with pytest.raises(ValueError, match="info_nce"):
        info_nce(fg.randn(4, 3), fg.randn(4, 3), temperature=0.0)


def test_knn_accuracy_brute_force():
    rng = np.random.default_rng(0)
    a, ya = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    b, yb = rng.normal(size=(25, 6)), rng.integers(0, 3, 25)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    pred = []
    for row in bn:
        order = np.argsort(-(an @ row), kind="stable")[:3]
        votes = np.bincount(ya[order], minlength=3)
        pred.append(ya[order][np.isin(ya[order], np.flatnonzero(votes == votes.max()))][0])
    assert knn_accuracy(a, ya, b, yb, k=3) == pytest.approx(np.mean(np.array(pred) == yb))
    assert knn_accuracy(a, ya, a, ya, k=1) == 1.0


def test_encoder_shapes():
    m = ContrastiveEncoder(in_features=10, hidden=[12], rep_dim=6, proj_dim=4)
    x = fg.randn(3, 10)
    assert tuple(m.embed(x).shape) == (3, 6) and tuple(m(x).shape) == (3, 4)
