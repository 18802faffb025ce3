"""Model zoo: the GAN (`fastgrad train gan`) learns a ring of 8 Gaussians;
its losses match PyTorch's and one step updates both networks."""
import json
import math

import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.cli
from fastgrad.models import GAN, Discriminator, Generator, discriminator_loss, generator_loss
from fastgrad.train.gan import ring_metrics, ring_modes


def train(name, tmp_path, *options):
    assert fastgrad.cli.main(["train", name, "--out", str(tmp_path), *options]) == 0
    return json.loads((tmp_path / f"{name}_summary.json").read_text())


def test_gan_ring_learns(tmp_path):
    s = train("gan", tmp_path, "--data", "ring", "--steps", "1000", "--batch-size", "256", "--samples", "1000")
    m = s["ring"]["metrics"]
    # an untrained generator puts ~0% of its samples near a mode; after these 1000 steps seeds 0-2 give
    # 44-52% and 6-7 modes (the default run: ~90% and 7-8 modes)
    assert m["high_quality_fraction"] > 0.25, m
    assert m["modes_covered"] >= 4, m
    assert s["ring"]["real_data_metrics"]["modes_covered"] == 8
    assert (tmp_path / "gan_ring.png").exists()


def test_gan_losses_match_torch():
    real, fake = fg.randn(7), fg.randn(7)
    tr, tf = torch.from_numpy(real.numpy()), torch.from_numpy(fake.numpy())
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    d_t = bce(tr, torch.ones(7)) + bce(tf, torch.zeros(7))
    np.testing.assert_allclose(discriminator_loss(real, fake).item(), d_t.item(), rtol=1e-5)
    # non-saturating: -log sigmoid(D(G(z))), not log(1 - sigmoid(D(G(z))))
    np.testing.assert_allclose(generator_loss(fake).item(), -torch.nn.functional.logsigmoid(tf).mean().item(),
                               rtol=1e-5)


def test_gan_step_updates_both_and_leaves_d_trainable():
    fg.manual_seed(0)
    gan = GAN(Generator(4, 3, hidden=[8], output="tanh"), Discriminator(3, hidden=[8]))
    g0 = [p.detach().numpy().copy() for p in gan.G.parameters()]
    d0 = [p.detach().numpy().copy() for p in gan.D.parameters()]
    d_loss, g_loss = gan.step(fg.randn(16, 3))
    assert math.isfinite(d_loss) and math.isfinite(g_loss)
    assert all(not np.array_equal(a, p.detach().numpy()) for a, p in zip(g0, gan.G.parameters()))
    assert all(not np.array_equal(a, p.detach().numpy()) for a, p in zip(d0, gan.D.parameters()))
    assert all(p.requires_grad for p in gan.D.parameters())
    assert tuple(gan.G.sample(5).shape) == (5, 3)
    with pytest.raises(ValueError, match="Generator"):
        Generator(4, 3, output="softmax")


def test_ring_metrics():
    modes = ring_modes()
    on_modes = np.repeat(modes, 10, axis=0)
    m = ring_metrics(on_modes, std=0.05)
    assert m["modes_covered"] == 8 and m["high_quality_fraction"] == 1.0
    # everything on one mode: one mode covered; everything at the origin: no sample is of high quality
    assert ring_metrics(np.repeat(modes[:1], 80, axis=0), std=0.05)["modes_covered"] == 1
    assert ring_metrics(np.zeros((80, 2)), std=0.05)["high_quality_fraction"] == 0.0
