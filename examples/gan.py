"""A GAN learns a ring of 8 Gaussians: generator and discriminator trained in
alternation, the generator with the non-saturating loss -log D(G(z)).
`fastgrad train gan` also trains one on digits and draws the samples."""
import math

import fastgrad as fg
from fastgrad.models import GAN, Discriminator, Generator

fg.manual_seed(0)
angles = fg.arange(8).float() * (2 * math.pi / 8)
modes = fg.stack([angles.cos(), angles.sin()], dim=1) * 2.0     # 8 centres on a circle of radius 2


def real_batch(n, std=0.05):
    return modes[fg.randint(0, 8, (n,))] + fg.randn(n, 2) * std


gan = GAN(Generator(noise_dim=8, out_features=2), Discriminator(in_features=2), lr_g=1e-3, lr_d=1e-3)
for step in range(1, 4001):
    d_loss, g_loss = gan.step(real_batch(256))   # one D update, then one G update
    if step % 1000 == 0:
        print(f"step {step:4d}  D loss {d_loss:.3f}  G loss {g_loss:.3f}")

# which mode is each sample nearest to, and is it close (within 3 std)?
samples = gan.G.sample(2000)
dist = ((samples.reshape(-1, 1, 2) - modes.reshape(1, 8, 2)) ** 2).sum(dim=2).sqrt()
nearest, closest = dist.argmin(dim=1), dist.amin(dim=1)
good = closest < 0.15
per_mode = [int(((nearest == k) & good).sum().item()) for k in range(8)]
print(f"samples within 3 std of a mode: {good.float().mean().item():.1%}; per mode: {per_mode}")
