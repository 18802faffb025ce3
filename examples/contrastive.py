"""Contrastive learning: an encoder is trained so that two augmented views
of the same digit (shifted by a pixel, noisy) embed close together and views of
other digits far apart (NT-Xent / InfoNCE). No labels are used in training;
a k-nearest-neighbour vote on the embedding then classifies the test digits."""
import fastgrad as fg
import fastgrad.data.transforms as T
from fastgrad.models import ContrastiveEncoder, info_nce, knn_accuracy

fg.manual_seed(0)
X, y = fg.datasets.digits()
X = X / 16.0
perm = fg.randperm(len(X))
train_x, train_y, test_x, test_y = X[perm[:1500]], y[perm[:1500]], X[perm[1500:]], y[perm[1500:]]

augment = T.Compose([T.RandomCrop(8, padding=1), T.GaussianNoise(std=0.1)])
images = train_x.reshape(-1, 1, 8, 8)
model = ContrastiveEncoder(in_features=64, hidden=[256], rep_dim=64, proj_dim=32)
opt = fg.optim.Adam(model.parameters(), lr=1e-3)


def knn():
    with fg.no_grad():
        return knn_accuracy(model.embed(train_x), train_y, model.embed(test_x), test_y, k=5)


print(f"random-init encoder: 5-NN test accuracy {knn():.1%}; "
      f"raw pixels {knn_accuracy(train_x, train_y, test_x, test_y, k=5):.1%}")
for step in range(1, 601):
    batch = images[fg.randint(0, 1500, (256,))]
    view1, view2 = augment(batch).reshape(-1, 64), augment(batch).reshape(-1, 64)
    opt.zero_grad()
    loss = info_nce(model(view1), model(view2), temperature=0.5)
    loss.backward()
    opt.step()
    if step % 200 == 0:
        print(f"step {step}  NT-Xent loss {loss.item():.3f}  5-NN test accuracy {knn():.1%}")

# what the augmentations bought: invariance to shifts and noise
noisy_test = augment(test_x.reshape(-1, 1, 8, 8)).reshape(-1, 64)
with fg.no_grad():
    acc = knn_accuracy(model.embed(train_x), train_y, model.embed(noisy_test), test_y, k=5)
print(f"shifted + noisy test digits: 5-NN on the embedding {acc:.1%}, "
      f"on raw pixels {knn_accuracy(train_x, train_y, noisy_test, test_y, k=5):.1%}")
