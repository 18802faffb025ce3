"""VAE (Kingma & Welling, "Auto-Encoding Variational Bayes"): a Gaussian
encoder q(z|x) = N(mu(x), diag(exp(logvar(x)))), the reparameterisation
z = mu + L * eps with the diagonal L = exp(logvar / 2) and eps ~ N(0, I), a
prior p(z) = N(0, I), and a Bernoulli decoder p(x|z) on intensities in [0, 1].
"""
from .. import nn
from ..nn import functional as F
from .mlp import MLP


class VAE(nn.Module):
    """VAE(in_features=64, latent=8, hidden=(256,)).

    encode(x) -> (mu, logvar); reparameterize(mu, logvar) -> z;
    decode(z) -> pixel logits; elbo(x) -> per-example ELBO in nats;
    loss(x) = -elbo(x).mean(); sample(n) -> decoded means of z ~ N(0, I).
    """

    def __init__(self, in_features=64, latent=8, hidden=(256,), activation="relu"):
        super().__init__()
        hidden = list(hidden)
        if not hidden:
            raise ValueError("VAE: needs at least one hidden layer")
        self.in_features, self.latent = in_features, latent
        # the encoder trunk ends in an activation; two linear heads read it
        self.encoder = nn.Sequential(MLP([in_features] + hidden, activation=activation), nn.ReLU())
        self.mu = nn.Linear(hidden[-1], latent)
        self.logvar = nn.Linear(hidden[-1], latent)
        self.decoder = MLP([latent] + hidden[::-1] + [in_features], activation=activation)

    def encode(self, x):
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    @staticmethod
    def reparameterize(mu, logvar):
        """z = mu + L eps, L = diag(exp(logvar / 2)), eps ~ N(0, I): differentiable in mu and logvar."""
        import fastgrad as fg

        eps = fg.randn(tuple(mu.shape), dtype=mu.dtype).to(mu.device)
        return mu + (logvar * 0.5).exp() * eps

    def decode(self, z):
        """z (N, latent) -> Bernoulli logits (N, in_features)."""
        return self.decoder(z)

    def forward(self, x):
        """Reconstruction means (sigmoid of the logits) through one sampled z."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)).sigmoid()

    def elbo(self, x, return_terms=False):
        """Per-example ELBO (N,) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), one z sample.

        The KL between diagonal Gaussians is in closed form:
        0.5 * sum(mu^2 + exp(logvar) - 1 - logvar). With return_terms the
        reconstruction log-likelihood and the KL come back too.
        """
        mu, logvar = self.encode(x)
        logits = self.decode(self.reparameterize(mu, logvar))
        rec = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
        kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(dim=1)
        elbo = rec - kl
        return (elbo, rec, kl) if return_terms else elbo

    def loss(self, x):
        """Negative ELBO per example, averaged over the batch (what to minimise)."""
        return -self.elbo(x).mean()

    def sample(self, n):
        """n decoded means sigmoid(decode(z)) for z ~ N(0, I); no gradient."""
        import fastgrad as fg

        with fg.no_grad():
            p = next(self.parameters())
            z = fg.randn(n, self.latent, dtype=p.dtype).to(p.device)
            return self.decode(z).sigmoid()

