"""A variational autoencoder on binarised 8x8 digits: Gaussian encoder,
z = mu + exp(logvar / 2) * eps, Bernoulli decoder, trained on the ELBO; then
new digits are decoded from z ~ N(0, I). `fastgrad train vae` draws them."""
import fastgrad as fg
from fastgrad.data import DataLoader, TensorDataset
from fastgrad.models import VAE

fg.manual_seed(0)
X, _ = fg.datasets.digits()
X = (X > 8).float()                    # binary pixels: the Bernoulli likelihood is exact
perm = fg.randperm(len(X))
train, test = X[perm[:1500]], X[perm[1500:]]

model = VAE(in_features=64, latent=8, hidden=[256])
opt = fg.optim.Adam(model.parameters(), lr=2e-3)
loader = DataLoader(TensorDataset(train), batch_size=100, shuffle=True, drop_last=True)

for epoch in range(1, 101):
    for (xb,) in loader:
        opt.zero_grad()
        loss = model.loss(xb)          # -ELBO per digit, averaged over the batch
        loss.backward()
        opt.step()
    if epoch % 20 == 0:
        with fg.no_grad():
            elbo, rec, kl = model.elbo(test, return_terms=True)
        print(f"epoch {epoch:3d}  test ELBO {elbo.mean().item():7.2f} nats "
              f"(reconstruction {rec.mean().item():7.2f}, KL {kl.mean().item():5.2f})")

samples = model.sample(4)              # decoded means of z ~ N(0, I)
for s in samples:
    print("\n".join("".join("#" if v > 0.5 else "." for v in row) for row in s.reshape(8, 8).tolist()) + "\n")
