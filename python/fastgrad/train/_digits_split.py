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

