"""AutoEncoder: an encoder f: R^n -> R^m (m << n) and a decoder g: R^m -> R^n,
both MLPs, trained so that g(f(x)) reconstructs x."""
from .. import nn
from .mlp import MLP


class AutoEncoder(nn.Module):
    """AutoEncoder(in_features=64, latent=2, hidden=(128,)).

    encoder: MLP in -> hidden... -> latent (a linear code, no activation);
    decoder: MLP latent -> reversed hidden -> in, followed by a sigmoid when
    `sigmoid_output` (pixels in [0, 1]). forward(x) returns the reconstruction.
    """

    def __init__(self, in_features=64, latent=2, hidden=(128,), activation="relu", sigmoid_output=True):
        super().__init__()
        if not 0 < latent:
            raise ValueError(f"AutoEncoder: latent must be positive, got {latent}")
        hidden = list(hidden)
        self.in_features, self.latent = in_features, latent
        self.encoder = MLP([in_features] + hidden + [latent], activation=activation)
        self.decoder = MLP([latent] + hidden[::-1] + [in_features], activation=activation)
        self.sigmoid_output = sigmoid_output

    def encode(self, x):
        """x (N, in_features) -> code (N, latent)."""
        return self.encoder(x)

    def decode(self, z):
        """code (N, latent) -> reconstruction (N, in_features)."""
        out = self.decoder(z)
        return out.sigmoid() if self.sigmoid_output else out

    def forward(self, x):
        return self.decode(self.encode(x))
