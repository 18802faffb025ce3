"""A denoising diffusion model (DDPM) learns the 2-D two-moons distribution:
noise is added along a cosine beta schedule, an MLP with a sinusoidal time
embedding learns to predict it, and ancestral sampling turns N(0, I) into moons.
`fastgrad train diffusion` also trains one on digits and plots the samples."""
import math

import fastgrad as fg
from fastgrad.models import DDPM, Denoiser


def two_moons(n, noise=0.05):
    a = fg.rand(n) * math.pi
    upper = fg.stack([a.cos(), a.sin()], dim=1)
    lower = fg.stack([1 - a.cos(), 0.5 - a.sin()], dim=1)
    pick = (fg.rand(n, 1) < 0.5)
    x = fg.where(pick, upper, lower) + fg.randn(n, 2) * noise
    return (x - fg.tensor([0.5, 0.25])) * 1.5


fg.manual_seed(0)
model = DDPM(Denoiser(data_dim=2, hidden=128, depth=3, time_dim=32), T=100, schedule="cosine")
opt = fg.optim.Adam(model.parameters(), lr=2e-3)

for step in range(1, 3001):
    opt.zero_grad()
    loss = model.loss(two_moons(256))    # MSE between the added and the predicted noise
    loss.backward()
    opt.step()
    if step % 500 == 0:
        print(f"step {step:4d}  loss {loss.item():.4f}")

samples = model.sample(1000, data_dim=2)  # 100 denoising steps from N(0, I)
real = two_moons(1000)
# how far is each sample from the nearest real point (the noise std is 0.075)?
dist = ((samples.reshape(-1, 1, 2) - real.reshape(1, -1, 2)) ** 2).sum(dim=2).amin(dim=1).sqrt()
gauss = fg.randn(1000, 2) * real.std(dim=0) + real.mean(dim=0)
dist_gauss = ((gauss.reshape(-1, 1, 2) - real.reshape(1, -1, 2)) ** 2).sum(dim=2).amin(dim=1).sqrt()
print(f"mean distance to the nearest real point: DDPM {dist.mean().item():.3f}, "
      f"Gaussian with the data's mean and std {dist_gauss.mean().item():.3f}")
