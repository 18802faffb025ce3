"""GAN (Goodfellow et al. 2014): a generator G(z) and a discriminator D(x)
(a logit) trained in alternation. D minimises the binary cross-entropy of
real -> 1, fake -> 0; G minimises the non-saturating loss -log D(G(z)),
i.e. BCE-with-logits of D(G(z)) against 1 (stronger gradients early on than
the minimax log(1 - D(G(z))))."""
from .. import nn
from ..nn import functional as F


def _mlp(sizes, act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """Generator(noise_dim, out_features, hidden=(128, 128), output="linear"|"sigmoid"|"tanh").

    An MLP with ReLU activations from noise z (N, noise_dim) to samples
    (N, out_features); `output` squashes them (sigmoid for [0, 1] pixels)."""

    def __init__(self, noise_dim, out_features, hidden=(128, 128), output="linear"):
        super().__init__()
        if output not in ("linear", "sigmoid", "tanh"):
            raise ValueError(f"Generator: output must be 'linear', 'sigmoid' or 'tanh', got {output!r}")
        self.noise_dim, self.output = noise_dim, output
        self.net = _mlp([noise_dim] + list(hidden) + [out_features], nn.ReLU)

    def forward(self, z):
        x = self.net(z)
        if self.output == "sigmoid":
            return x.sigmoid()
        if self.output == "tanh":
            return x.tanh()
        return x

    def sample(self, n):
        """n samples G(z), z ~ N(0, I), without gradient."""
        import fastgrad as fg

        with fg.no_grad():
            p = next(self.parameters())
            return self(fg.randn(n, self.noise_dim, dtype=p.dtype).to(p.device))


class Discriminator(nn.Module):
    """Discriminator(in_features, hidden=(128, 128)): an MLP with LeakyReLU(0.2) returning one logit per row."""

    def __init__(self, in_features, hidden=(128, 128), negative_slope=0.2):
        super().__init__()
        self.net = _mlp([in_features] + list(hidden) + [1], lambda: nn.LeakyReLU(negative_slope))

    def forward(self, x):
        return self.net(x).reshape(-1)


def discriminator_loss(real_logits, fake_logits):
    """BCE-with-logits of real -> 1 and fake -> 0, each averaged, summed."""
    import fastgrad as fg

    return (F.binary_cross_entropy_with_logits(real_logits, fg.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, fg.zeros_like(fake_logits)))


def generator_loss(fake_logits):
    """The non-saturating generator loss -log D(G(z)) = BCE-with-logits of D(G(z)) against 1."""
    import fastgrad as fg

    return F.binary_cross_entropy_with_logits(fake_logits, fg.ones_like(fake_logits))


class GAN:
    """Holds G, D and their optimizers; `step(real)` does one D update then one G update.

    Adam with betas (0.5, 0.999), the usual GAN setting (DCGAN paper).
    Returns (d_loss, g_loss) as Python floats."""

    def __init__(self, generator, discriminator, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)):
        from .. import optim

        self.G, self.D = generator, discriminator
        self.opt_g = optim.Adam(self.G.parameters(), lr=lr_g, betas=betas)
        self.opt_d = optim.Adam(self.D.parameters(), lr=lr_d, betas=betas)

    def step(self, real):
        import fastgrad as fg

        n = real.shape[0]
        z = fg.randn(n, self.G.noise_dim, dtype=real.dtype).to(real.device)
        fake = self.G(z)
        # D step: the fake batch is detached so G's graph is not consumed here
        self.opt_d.zero_grad()
        d_loss = discriminator_loss(self.D(real), self.D(fake.detach()))
        d_loss.backward()
        self.opt_d.step()
        # G step on the same z, through the just-updated D; D's weights are
        # frozen meanwhile so backward skips their (unused) gradients
        self.opt_g.zero_grad()
        d_params = list(self.D.parameters())
        for p in d_params:
            p.requires_grad_(False)
        try:
            g_loss = generator_loss(self.D(fake))
            g_loss.backward()
        finally:
            for p in d_params:
                p.requires_grad_(True)
        self.opt_g.step()
        return d_loss.item(), g_loss.item()
