"""The digits train/test split shared by the generative and contrastive
examples (autoencoder, vae, gan, diffusion, contrastive)."""
import numpy as np

TEST_SIZE = 297  # 1797 = 1500 train + 297 test


def digits_split(test_size=TEST_SIZE):
    """Pixels scaled to [0, 1] as float32 NumPy arrays: (X_train, y_train, X_test, y_test).

    The split is a fixed permutation (its own seed, not --seed), so every
    run and every example tests on the same held-out digits."""
    import fastgrad as fg

    X, y = fg.datasets.digits(as_numpy=True)
    X = X / np.float32(16.0)
    order = np.random.default_rng(1797).permutation(len(X))
    test, train = order[:test_size], order[test_size:]
    return X[train], y[train], X[test], y[test]



def digit_classifier(Xtr, ytr, steps=300, seed=0):
    """A small MLP 64-128-10 classifier trained on the training digits, used to judge generated digits.

    Returns predict(X) -> (labels, max softmax probability) on NumPy arrays."""
    import fastgrad as fg
    import fastgrad.nn.functional as F
    from ..models import MLP

    fg.manual_seed(seed)
    model = MLP([64, 128, 10])
    opt = fg.optim.Adam(model.parameters(), lr=1e-2)
    X, y = fg.tensor(Xtr), fg.tensor(ytr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()

    def predict(samples):
        with fg.no_grad():
            p = F.softmax(model(fg.tensor(np.ascontiguousarray(samples, dtype=np.float32))), dim=1).numpy()
        return p.argmax(axis=1), p.max(axis=1)

    return predict


def judge_digits(predict, samples):
    """Classifier view of generated digits: {classes present, largest class share, mean confidence}."""
    labels, conf = predict(samples)
    counts = np.bincount(labels, minlength=10)
    return {"classes_present": int((counts > 0).sum()), "largest_class_share": float(counts.max() / len(labels)),
            "mean_confidence": float(conf.mean()), "class_counts": counts.tolist()}


def print_judged_digits(r):
    """The summary lines of a digits generator's run r = {steps, seconds, metrics: judge_digits(...)}."""
    m = r["metrics"]
    print(f"digits, {r['steps']} steps, {r['seconds']:.1f} s; 500 samples judged by an MLP digit classifier:")
    print(f"  classes present {m['classes_present']}/10, largest class share {m['largest_class_share']:.1%}, "
          f"mean classifier confidence {m['mean_confidence']:.1%}")
