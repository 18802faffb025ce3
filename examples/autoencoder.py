"""An autoencoder compresses each 8x8 digit (64 pixels) into 8 numbers and
back; its test reconstruction error is compared with predicting the mean image.
`fastgrad train autoencoder` adds a 2-D code, PCA and figures."""
import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.data import DataLoader, TensorDataset
from fastgrad.models import AutoEncoder

fg.manual_seed(0)
X, y = fg.datasets.digits()
X = X / 16.0                           # pixels in [0, 1]
perm = fg.randperm(len(X))
train, test = X[perm[:1500]], X[perm[1500:]]

model = AutoEncoder(in_features=64, latent=8, hidden=[128])
opt = fg.optim.Adam(model.parameters(), lr=2e-3)
loader = DataLoader(TensorDataset(train), batch_size=100, shuffle=True, drop_last=True)

for epoch in range(1, 101):
    for (xb,) in loader:
        opt.zero_grad()
        loss = F.mse_loss(model(xb), xb)
        loss.backward()
        opt.step()
    if epoch % 20 == 0:
        with fg.no_grad():
            test_mse = F.mse_loss(model(test), test).item()
        print(f"epoch {epoch:3d}  train mse {loss.item():.4f}  test mse {test_mse:.4f}")

mean_image_mse = ((test - train.mean(dim=0)) ** 2).mean().item()
print(f"test MSE: autoencoder (8 numbers per digit) {test_mse:.4f}, mean image {mean_image_mse:.4f}")
