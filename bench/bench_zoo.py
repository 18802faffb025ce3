"""Model zoo training steps, fastgrad beside PyTorch: the same model, batch,
loss and optimizer, one training step of each `fastgrad train NAME` example
timed in both frameworks (medians over repeats, after a warm-up). The
examples' total training time is about steps x this time (plus evaluation).

Sections per zoo part; each entry builds its fastgrad and torch step
functions from the same seed. Torch is only used here, never in tests.

    PYTHONPATH=python python bench/bench_zoo.py [--threads 1] [--reps 7] [--only NAME ...]
"""
import math

import numpy as np

from _zoo_common import import_frameworks, run_steps, step_args, torch_mlp


# ---------------------------------------------------------------------------------------------------------
# zoo part A: mlp, autoencoder, vae, gan, diffusion, contrastive (architectures of python/fastgrad/train/*)
# ---------------------------------------------------------------------------------------------------------


def zoo_a_mlp(fg, torch):
    """fastgrad train mlp: MLP 1-128(tanh)-1, 512 points full batch, Adam + cosine schedule."""
    import fastgrad.nn.functional as F
    from fastgrad.models import MLP

    x = np.linspace(-math.pi, math.pi, 512, dtype=np.float32)[:, None]
    y = np.sin(x) + 0.5 * np.sin(5 * x)
    model = MLP([1, 128, 1], activation="tanh")
    opt = fg.optim.Adam(model.parameters(), lr=0.01)
    X, Y = fg.tensor(x), fg.tensor(y)

    def fg_step():
        opt.zero_grad()
        F.mse_loss(model(X), Y).backward()
        opt.step()

    tm = torch_mlp([1, 128, 1], torch.nn.Tanh)
    topt = torch.optim.Adam(tm.parameters(), lr=0.01)
    tX, tY = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.mse_loss(tm(tX), tY).backward()
        topt.step()

    return fg_step, torch_step


def _digits(fg, n):
    X, _ = fg.datasets.digits(as_numpy=True)
    return (X[:n] / 16).astype(np.float32)


def zoo_a_autoencoder(fg, torch):
    """fastgrad train autoencoder: 64-128-8-128-64 (ReLU, sigmoid out), MSE, batch 100, Adam."""
    import fastgrad.nn.functional as F
    from fastgrad.models import AutoEncoder

    x = _digits(fg, 100)
    model = AutoEncoder(64, 8, [128])
    opt = fg.optim.Adam(model.parameters(), lr=2e-3)
    X = fg.tensor(x)

    def fg_step():
        opt.zero_grad()
        F.mse_loss(model(X), X).backward()
        opt.step()

    enc = torch_mlp([64, 128, 8], torch.nn.ReLU)
    dec = torch.nn.Sequential(torch_mlp([8, 128, 64], torch.nn.ReLU), torch.nn.Sigmoid())
    topt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=2e-3)
    tX = torch.from_numpy(x)

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.mse_loss(dec(enc(tX)), tX).backward()
        topt.step()

    return fg_step, torch_step


def zoo_a_vae(fg, torch):
    """fastgrad train vae: 64-256-(mu, logvar 8)-256-64, Bernoulli ELBO, batch 100, Adam."""
    from fastgrad.models import VAE

    x = (_digits(fg, 100) > 0.5).astype(np.float32)
    model = VAE(64, 8, [256])
    opt = fg.optim.Adam(model.parameters(), lr=2e-3)
    X = fg.tensor(x)

    def fg_step():
        opt.zero_grad()
        model.loss(X).backward()
        opt.step()

    enc = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU())
    mu, logvar = torch.nn.Linear(256, 8), torch.nn.Linear(256, 8)
    dec = torch_mlp([8, 256, 64], torch.nn.ReLU)
    params = [p for m in (enc, mu, logvar, dec) for p in m.parameters()]
    topt = torch.optim.Adam(params, lr=2e-3)
    tX = torch.from_numpy(x)

    def torch_step():
        topt.zero_grad()
        h = enc(tX)
        m, lv = mu(h), logvar(h)
        z = m + torch.exp(lv * 0.5) * torch.randn_like(m)
        rec = -torch.nn.functional.binary_cross_entropy_with_logits(dec(z), tX, reduction="none").sum(1)
        kl = 0.5 * (m * m + lv.exp() - 1 - lv).sum(1)
        (-(rec - kl).mean()).backward()
        topt.step()

    return fg_step, torch_step


def zoo_a_gan(fg, torch):
    """fastgrad train gan --data ring: G 8-128-128-2, D 2-128-128-1 (LeakyReLU), batch 512, one D + one G step."""
    from fastgrad.models import GAN, Discriminator, Generator
    from fastgrad.train.gan import ring_modes

    gan = GAN(Generator(8, 2), Discriminator(2), lr_g=1e-3, lr_d=1e-3)
    modes = ring_modes()
    fmodes = fg.tensor(modes)

    def fg_step():
        gan.step(fmodes[fg.randint(0, 8, (512,))] + fg.randn(512, 2) * 0.05)

    G = torch_mlp([8, 128, 128, 2], torch.nn.ReLU)
    D = torch_mlp([2, 128, 128, 1], lambda: torch.nn.LeakyReLU(0.2))
    og = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    tmodes = torch.from_numpy(modes)
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def torch_step():
        real = tmodes[torch.randint(0, 8, (512,))] + torch.randn(512, 2) * 0.05
        fake = G(torch.randn(512, 8))
        od.zero_grad()
        r, f = D(real).reshape(-1), D(fake.detach()).reshape(-1)
        (bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))).backward()
        od.step()
        og.zero_grad()
        for p in D.parameters():
            p.requires_grad_(False)
        f = D(fake).reshape(-1)
        bce(f, torch.ones_like(f)).backward()
        for p in D.parameters():
            p.requires_grad_(True)
        og.step()

    return fg_step, torch_step


def zoo_a_diffusion(fg, torch):
    """fastgrad train diffusion --data moons: denoiser [x, emb(t) 32] -> 128 x3 (SiLU, time added per layer), T=100."""
    from fastgrad.models import DDPM, Denoiser
    from fastgrad.train.diffusion import two_moons

    data = two_moons(20000, np.random.default_rng(0))
    model = DDPM(Denoiser(2, hidden=128, depth=3, time_dim=32), T=100)
    opt = fg.optim.Adam(model.parameters(), lr=2e-3)
    fdata = fg.tensor(data)

    def fg_step():
        opt.zero_grad()
        model.loss(fdata[fg.randint(0, 20000, (256,))]).backward()
        opt.step()

    class TorchDenoiser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = torch.nn.Linear(2 + 32, 128)
            self.hidden = torch.nn.ModuleList([torch.nn.Linear(128, 128) for _ in range(2)])
            self.time_proj = torch.nn.ModuleList([torch.nn.Linear(32, 128) for _ in range(2)])
            self.out = torch.nn.Linear(128, 2)
            self.freqs = torch.exp(-math.log(10000.0) * torch.arange(16) / 16)

        def forward(self, x, t):
            a = t.float()[:, None] * self.freqs[None]
            emb = torch.cat([a.cos(), a.sin()], 1)
            h = torch.nn.functional.silu(self.inp(torch.cat([x, emb], 1)))
            for lin, tp in zip(self.hidden, self.time_proj):
                h = torch.nn.functional.silu(lin(h) + tp(emb))
            return self.out(h)

    den = TorchDenoiser()
    topt = torch.optim.Adam(den.parameters(), lr=2e-3)
    tdata = torch.from_numpy(data)
    sa = torch.from_numpy(model.sqrt_abar.numpy())
    s1 = torch.from_numpy(model.sqrt_1m_abar.numpy())

    def torch_step():
        x0 = tdata[torch.randint(0, 20000, (256,))]
        t = torch.randint(0, 100, (256,))
        noise = torch.randn_like(x0)
        xt = sa[t][:, None] * x0 + s1[t][:, None] * noise
        topt.zero_grad()
        torch.nn.functional.mse_loss(den(xt, t), noise).backward()
        topt.step()

    return fg_step, torch_step


def zoo_a_contrastive(fg, torch):
    """fastgrad train contrastive: encoder 64-256-64 + head 64-64-32, NT-Xent on 2 x 256 views (augmentation
    excluded: the views are precomputed), Adam."""
    from fastgrad.models import ContrastiveEncoder, info_nce

    rng = np.random.default_rng(0)
    x = _digits(fg, 256)
    v1, v2 = x + rng.normal(0, 0.1, x.shape).astype(np.float32), x + rng.normal(0, 0.1, x.shape).astype(np.float32)
    model = ContrastiveEncoder(64, [256], 64, 32)
    opt = fg.optim.Adam(model.parameters(), lr=1e-3)
    f1, f2 = fg.tensor(v1), fg.tensor(v2)

    def fg_step():
        opt.zero_grad()
        info_nce(model(f1), model(f2), 0.5).backward()
        opt.step()

    enc = torch_mlp([64, 256, 64], torch.nn.ReLU)
    head = torch.nn.Sequential(torch.nn.ReLU(), torch_mlp([64, 64, 32], torch.nn.ReLU))
    topt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-3)
    t1, t2 = torch.from_numpy(v1), torch.from_numpy(v2)
    target = torch.cat([torch.arange(256, 512), torch.arange(0, 256)])
    eye = torch.eye(512, dtype=torch.bool)

    def torch_step():
        topt.zero_grad()
        z = torch.nn.functional.normalize(torch.cat([head(enc(t1)), head(enc(t2))]), dim=1)
        sim = (z @ z.T / 0.5).masked_fill(eye, float("-inf"))
        torch.nn.functional.cross_entropy(sim, target).backward()
        topt.step()

    return fg_step, torch_step


ZOO_A = {"mlp": (zoo_a_mlp, 3000), "autoencoder": (zoo_a_autoencoder, 2 * 200 * 15),
         "vae": (zoo_a_vae, 150 * 15), "gan": (zoo_a_gan, 3500), "diffusion": (zoo_a_diffusion, 4000),
         "contrastive": (zoo_a_contrastive, 1000)}

# ---------------------------------------------------------------------------------------------------------

SECTIONS = {"zoo part A": ZOO_A}


def main():
    args = step_args(__doc__, steps=20)
    fg, torch = import_frameworks(args.threads)
    run_steps(SECTIONS, args, fg, torch, digits=3)


if __name__ == "__main__":
    main()
