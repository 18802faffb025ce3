"""Contrastive learning of a joint embedding of two views (SimCLR, Chen et
al. 2020): an encoder maps each augmented view to a representation h, a
projection head maps h to z, and the NT-Xent / InfoNCE loss pulls the two
views of one example together and pushes the other 2N - 2 views away."""
import numpy as np

from .. import nn
from ..nn import functional as F
from .mlp import MLP


def info_nce(z1, z2, temperature=0.5):
    """NT-Xent loss of two views z1, z2 (N, d) of the same N examples.

    Rows are L2-normalised; each of the 2N views is classified among the
    other 2N - 1 by cosine similarity / temperature, its positive being the
    other view of its example; returns the mean cross-entropy."""
    import fastgrad as fg

    if tuple(z1.shape) != tuple(z2.shape) or z1.ndim != 2:
        raise ValueError(f"info_nce: expected two (N, d) views of the same shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"info_nce: temperature must be positive, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(fg.cat([z1, z2], dim=0), dim=1)
    sim = (z @ z.T) * (1.0 / temperature)
    # a view is never its own candidate
    sim = sim.masked_fill(fg.eye(2 * n, dtype=fg.bool).to(sim.device), float("-inf"))
    target = fg.cat([fg.arange(n, 2 * n), fg.arange(0, n)]).to(sim.device)
    return F.cross_entropy(sim, target)


class ContrastiveEncoder(nn.Module):
    """ContrastiveEncoder(in_features=64, hidden=(256,), rep_dim=64, proj_dim=32).

    encoder: MLP in -> hidden -> rep_dim (the representation used
    downstream, e.g. by kNN); head: MLP rep_dim -> rep_dim -> proj_dim (used
    only by the loss, as in SimCLR). forward(x) returns the projection z."""

    def __init__(self, in_features=64, hidden=(256,), rep_dim=64, proj_dim=32):
        super().__init__()
        self.encoder = MLP([in_features] + list(hidden) + [rep_dim], activation="relu")
        self.head = nn.Sequential(nn.ReLU(), MLP([rep_dim, rep_dim, proj_dim], activation="relu"))

    def embed(self, x):
        """The representation h (N, rep_dim)."""
        return self.encoder(x)

    def forward(self, x):
        return self.head(self.encoder(x))


def knn_accuracy(train_x, train_y, test_x, test_y, k=5):
    """Accuracy of a k-nearest-neighbour vote (cosine similarity) on NumPy arrays or tensors.

    Ties in the vote go to the label of the closest neighbour among the tied."""
    a = np.asarray(train_x, dtype=np.float64)
    b = np.asarray(test_x, dtype=np.float64)
    ya, yb = np.asarray(train_y), np.asarray(test_y)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    nearest = np.argsort(-(b @ a.T), axis=1, kind="stable")[:, :k]
    labels = ya[nearest]
    pred = np.empty(len(b), dtype=ya.dtype)
    for i, row in enumerate(labels):
        values, counts = np.unique(row, return_counts=True)
        best = values[counts == counts.max()]
        pred[i] = next(v for v in row if v in best)
    return float((pred == yb).mean())
