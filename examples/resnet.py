"""A residual network and the plain network of the same depth on the 8x8
digits: the same layers, seed and batches, with and without shortcuts. The
plain one's training loss stays higher. `fastgrad train resnet` draws both
loss curves in one figure."""
import numpy as np

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.data import DataLoader, TensorDataset
from fastgrad.models import PlainNet, ResNet

X, y = fg.datasets.digits(as_numpy=True)
X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
order = np.random.default_rng(1797).permutation(len(X))
Xtr, ytr = fg.from_numpy(X[order[297:]]), fg.from_numpy(y[order[297:]])
Xte, yte = fg.from_numpy(X[order[:297]]), fg.from_numpy(y[order[:297]])

for Net in (ResNet, PlainNet):
    fg.manual_seed(0)  # same initial weights and batches for both
    model = Net(blocks=(5, 5, 5), widths=(16, 32, 64))  # 32 weight layers
    opt = fg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=64, shuffle=True)
    for epoch in range(1, 6):
        model.train()
        total = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        model.eval()
        with fg.no_grad():
            acc = (model(Xte).argmax(dim=1) == yte).float().mean().item()
        print(f"{Net.__name__}-{model.depth}  epoch {epoch}  training loss {total / len(Xtr):.4f}  "
              f"test accuracy {acc:.1%}")
