"""DDPM (Ho et al. 2020, "Denoising Diffusion Probabilistic Models").

Forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) with
abar_t = prod_{s<=t} (1 - beta_s) for a linear or cosine (Nichol & Dhariwal
2021) beta schedule; a denoiser eps_theta(x_t, t) (an MLP on x_t and a
sinusoidal embedding of t) learns to predict the added noise with a plain MSE;
ancestral sampling runs the learned reverse chain from x_T ~ N(0, I).
Timesteps are 0-based here: t = 0 .. T-1.
"""
import math

import numpy as np

from .. import nn
from ..nn import functional as F


def beta_schedule(T, kind="cosine"):
    """betas (T,) float64: "linear" is Ho et al.'s 1e-4 .. 0.02 rescaled by
    1000 / T (so short chains still reach noise); "cosine" is
    abar(t) = cos^2((t / T + 0.008) / 1.008 * pi / 2), betas clipped to 0.999."""
    if T < 1:
        raise ValueError(f"beta_schedule: T must be at least 1, got {T}")
    if kind == "linear":
        scale = 1000.0 / T
        return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), T)
    if kind == "cosine":
        s = 0.008
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
    raise ValueError(f"beta_schedule: kind must be 'linear' or 'cosine', got {kind!r}")


def timestep_embedding(t, dim, max_period=10000.0):
    """Sinusoidal embedding of timesteps t (N,) -> (N, dim): [cos(t w_k), sin(t w_k)]
    with w_k = max_period^(-k / (dim/2)), the Transformer's frequencies."""
    import fastgrad as fg

    if dim % 2:
        raise ValueError(f"timestep_embedding: dim must be even, got {dim}")
    half = dim // 2
    freqs = fg.tensor(np.exp(-math.log(max_period) * np.arange(half) / half).astype(np.float32))
    args = t.to(fg.float32).reshape(-1, 1) * freqs.reshape(1, -1)
    return fg.cat([args.cos(), args.sin()], dim=1)


class Denoiser(nn.Module):
    """Denoiser(data_dim, hidden=256, depth=3, time_dim=64): eps_theta(x_t, t).

    An MLP with SiLU on [x_t, emb(t)] whose hidden layers also each get a
    learned projection of the time embedding added (so t can modulate every
    layer, not only the first)."""

    def __init__(self, data_dim, hidden=256, depth=3, time_dim=64):
        super().__init__()
        if depth < 1:
            raise ValueError(f"Denoiser: depth must be at least 1, got {depth}")
        self.time_dim = time_dim
        self.inp = nn.Linear(data_dim + time_dim, hidden)
        self.hidden = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth - 1)])
        self.time_proj = nn.ModuleList([nn.Linear(time_dim, hidden) for _ in range(depth - 1)])
        self.out = nn.Linear(hidden, data_dim)

    def forward(self, x, t):
        import fastgrad as fg

        emb = timestep_embedding(t, self.time_dim).to(x.dtype)
        h = F.silu(self.inp(fg.cat([x, emb], dim=1)))
        for lin, tp in zip(self.hidden, self.time_proj):
            h = F.silu(lin(h) + tp(emb))
        return self.out(h)


class DDPM(nn.Module):
    """DDPM(denoiser, T=100, schedule="cosine"): loss(x0) to train, sample(n) to generate."""

    def __init__(self, denoiser, T=100, schedule="cosine"):
        super().__init__()
        import fastgrad as fg

        self.denoiser, self.T, self.schedule = denoiser, T, schedule
        self.betas = beta_schedule(T, schedule)
        self.alphas = 1.0 - self.betas
        self.abar = np.cumprod(self.alphas)
        # per-timestep coefficients of q(x_t | x_0), gathered by t in loss()
        self.register_buffer("sqrt_abar", fg.tensor(np.sqrt(self.abar).astype(np.float32)))
        self.register_buffer("sqrt_1m_abar", fg.tensor(np.sqrt(1.0 - self.abar).astype(np.float32)))

    def q_sample(self, x0, t, noise):
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, t (N,) int64."""
        return self.sqrt_abar[t].reshape(-1, 1) * x0 + self.sqrt_1m_abar[t].reshape(-1, 1) * noise

    def loss(self, x0):
        """E_{t, eps} || eps - eps_theta(x_t, t) ||^2 (mean over the elements), t uniform."""
        import fastgrad as fg

        n = x0.shape[0]
        t = fg.randint(0, self.T, (n,)).to(x0.device)
        noise = fg.randn(tuple(x0.shape), dtype=x0.dtype).to(x0.device)
        return F.mse_loss(self.denoiser(self.q_sample(x0, t, noise), t), noise)

    def sample(self, n, data_dim, clip=None):
        """Ancestral sampling: x_{t-1} = mean(x_t, x0_hat) + sigma_t z with the
        posterior q(x_{t-1} | x_t, x0_hat) of the forward process, where
        x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t), clipped to
        `clip` = (lo, hi) when given (the usual trick for bounded data);
        sigma_t^2 is the posterior variance beta_t (1 - abar_{t-1}) / (1 - abar_t)."""
        import fastgrad as fg

        p = next(self.parameters())
        with fg.no_grad():
            x = fg.randn(n, data_dim, dtype=p.dtype).to(p.device)
            for t in range(self.T - 1, -1, -1):
                ab, ab_prev = self.abar[t], (self.abar[t - 1] if t > 0 else 1.0)
                beta = self.betas[t]
                eps = self.denoiser(x, fg.full((n,), t, dtype=fg.int64).to(p.device))
                x0 = (x - math.sqrt(1.0 - ab) * eps) * (1.0 / math.sqrt(ab))
                if clip is not None:
                    x0 = x0.clamp(clip[0], clip[1])
                c0 = math.sqrt(ab_prev) * beta / (1.0 - ab)
                ct = math.sqrt(self.alphas[t]) * (1.0 - ab_prev) / (1.0 - ab)
                x = x0 * c0 + x * ct
                if t > 0:
                    sigma = math.sqrt(beta * (1.0 - ab_prev) / (1.0 - ab))
                    x = x + fg.randn(n, data_dim, dtype=p.dtype).to(p.device) * sigma
        return x
