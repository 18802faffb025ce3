"""MLP: a stack of Linear layers with one activation between them."""
from .. import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Module):
    """MLP(sizes=[4, 8, 3], activation="relu"): Linear(4, 8) -> ReLU -> Linear(8, 3).

    The last layer has no activation (it returns logits), and `dropout` > 0
    adds a Dropout after each hidden activation. Parameter names follow a
    plain nn.Sequential ("net.0.weight", ...)."""

    def __init__(self, sizes, activation="relu", dropout=0.0):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
