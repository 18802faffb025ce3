"""Universal approximation: one hidden layer of tanh units fits sin(x) on
[-pi, pi]. `fastgrad train mlp` runs this with plots and a harder function."""
import math

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.models import MLP

fg.manual_seed(0)
x = fg.linspace(-math.pi, math.pi, 512).reshape(-1, 1)
y = x.sin()

model = MLP([1, 64, 1], activation="tanh")  # Linear(1, 64) -> Tanh -> Linear(64, 1)
opt = fg.optim.Adam(model.parameters(), lr=0.01)
sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2000, eta_min=1e-4)

for step in range(1, 2001):
    opt.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    sched.step()
    if step % 500 == 0:
        print(f"step {step:4d}  mse {loss.item():.2e}")

# the error that matters for approximation: the worst point of a dense grid
grid = fg.linspace(-math.pi, math.pi, 10001).reshape(-1, 1)
with fg.no_grad():
    err = (model(grid) - grid.sin()).abs().max().item()
print(f"max |sin(x) - mlp(x)| on 10001 points of [-pi, pi]: {err:.4f}")
