"""The classic first experiment: an MLP 4-8(ReLU)-3 with softmax cross-entropy
on the 150 Iris flowers, trained full batch with Adam. Read this first; the
`fastgrad train iris` command runs the same loop once per optimizer."""
import fastgrad as fg
import fastgrad.nn as nn
import fastgrad.nn.functional as F

fg.manual_seed(0)
X, y = fg.datasets.iris()
X = (X - X.mean(dim=0)) / X.std(dim=0)  # standardised features

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
opt = fg.optim.Adam(model.parameters(), lr=0.01)

for step in range(1, 501):
    opt.zero_grad()
    loss = F.cross_entropy(model(X), y)
    loss.backward()
    opt.step()
    if step % 100 == 0:
        with fg.no_grad():
            acc = (model(X).argmax(dim=1) == y).float().mean().item()
        print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {acc:.1%}")
