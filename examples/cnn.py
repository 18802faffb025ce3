"""A small CNN on the 8x8 digits with data augmentation (random one-pixel
shifts by padding and cropping, plus a little noise) and standardised
pixels, trained with Adam.
`fastgrad train cnn` runs the same with learning curves and a summary."""
import numpy as np

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.data import DataLoader, TensorDataset, transforms as T
from fastgrad.models import DigitsCNN

fg.manual_seed(0)
X, y = fg.datasets.digits(as_numpy=True)
X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)  # pixels in [0, 1], images (N, 1, 8, 8)
order = np.random.default_rng(1797).permutation(len(X))  # a fixed split: 297 test digits
test, train = order[:297], order[297:]
Xtr, ytr = fg.from_numpy(X[train]), fg.from_numpy(y[train])
Xte, yte = fg.from_numpy(X[test]), fg.from_numpy(y[test])

norm = T.Normalize([Xtr.mean().item()], [Xtr.std().item()])  # zero-mean inputs train faster
augment = T.Compose([T.RandomCrop(8, padding=1), T.GaussianNoise(std=0.05), norm])
Xte = norm(Xte)

model = DigitsCNN(channels=(32, 64), hidden=128)
loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=32, shuffle=True)
opt = fg.optim.Adam(model.parameters(), lr=2e-3)

for epoch in range(1, 13):
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(augment(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with fg.no_grad():
        acc = (model(Xte).argmax(dim=1) == yte).float().mean().item()
    print(f"epoch {epoch:2d}  last batch loss {loss.item():.4f}  test accuracy {acc:.1%}")
