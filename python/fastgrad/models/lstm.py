"""A sequence task with a known answer for recurrent networks: the adding
problem (Hochreiter & Schmidhuber, 1997). Each input step carries a value
u ~ U(0, 1) and a marker; exactly two steps are marked, one in each half of
the sequence, and the target is the sum of their two values. Predicting the
mean (1) without reading the sequence scores MSE = Var(u1 + u2) = 1/6; a
network must carry the first marked value across the rest of the sequence.

  adding_problem(n, length) -> (x (n, length, 2), y (n,))
  LSTMRegressor(input_size, hidden)   LSTM over the sequence, linear read-out
                                      of its last hidden state
"""
from .. import nn

__all__ = ["adding_problem", "LSTMRegressor", "ADDING_BASELINE_MSE"]

# MSE of the constant prediction 1: the variance of the sum of two U(0, 1) values
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(n, length, dtype=None):
    """n sequences of `length` steps: x[..., 0] values U(0, 1), x[..., 1] the markers (one in each
    half), y the sum of the two marked values."""
    import fastgrad as fg

    if length < 2 or n < 1:
        raise ValueError(f"adding_problem: need n >= 1 and length >= 2, got n={n}, length={length}")
    half = length // 2
    values = fg.rand(n, length, dtype=dtype)
    first = fg.randint(0, half, (n, 1))
    second = fg.randint(half, length, (n, 1))
    pos = fg.arange(length).unsqueeze(0)
    marks = ((pos == first) | (pos == second)).to(values.dtype)
    y = (values * marks).sum(dim=1)
    return fg.stack([values, marks], dim=2), y


class LSTMRegressor(nn.Module):
    """LSTMRegressor(input_size, hidden=64, num_layers=1, outputs=1): x (B, T, input_size) ->
    (B,) (or (B, outputs)) from the last time step's hidden state."""

    def __init__(self, input_size, hidden=64, num_layers=1, outputs=1):
        super().__init__()
        self.outputs = outputs
        self.lstm = nn.LSTM(input_size, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError(f"LSTMRegressor: expected input (batch, time, features), got {list(x.shape)}")
        _, (h, _) = self.lstm(x)
        out = self.head(h[-1])
        return out.squeeze(1) if self.outputs == 1 else out
