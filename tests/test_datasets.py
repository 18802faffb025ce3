"""fastgrad.datasets: the shipped Iris, digits and Shakespeare data (shapes, dtypes, labels, known values)."""
import os

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import datasets


def test_iris_shapes_dtypes_and_classes():
    X, y = datasets.iris()
    assert isinstance(X, fg.Tensor) and isinstance(y, fg.Tensor)
    assert X.shape == (150, 4) and X.dtype == fg.float32
    assert y.shape == (150,) and y.dtype == fg.int64
    assert np.bincount(y.numpy()).tolist() == [50, 50, 50]
    assert datasets.IRIS_CLASSES == ("setosa", "versicolor", "virginica")


def test_iris_known_rows():
    X, y = datasets.iris(as_numpy=True)
    # first and last rows of iris.csv: "5.1,3.5,1.4,0.2,setosa" and "5.9,3.0,5.1,1.8,virginica"
    np.testing.assert_array_equal(X[0], np.array([5.1, 3.5, 1.4, 0.2], np.float32))
    np.testing.assert_array_equal(X[-1], np.array([5.9, 3.0, 5.1, 1.8], np.float32))
    assert y[0] == 0 and y[-1] == 2
    # row order is the CSV's: sorted by class
    assert y.tolist() == [0] * 50 + [1] * 50 + [2] * 50
    # a well-known summary: mean petal length 3.758 cm
    assert abs(float(X[:, 2].mean()) - 3.758) < 1e-3


def test_digits_shapes_dtypes_and_labels():
    X, y = datasets.digits()
    assert X.shape == (1797, 64) and X.dtype == fg.float32
    assert y.shape == (1797,) and y.dtype == fg.int64
    Xn, yn = X.numpy(), y.numpy()
    assert Xn.min() == 0 and Xn.max() == 16
    counts = np.bincount(yn)
    assert len(counts) == 10 and counts.sum() == 1797 and counts.min() >= 170
    # first row of digits.csv.gz (a zero)
    first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
             0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
    assert Xn[0].tolist() == first and yn[0] == 0


@pytest.mark.parametrize("loader", [datasets.iris, datasets.digits])
def test_calls_return_fresh_arrays(loader):
    X, _ = loader(as_numpy=True)
    X[:] = -1
    X2, _ = loader(as_numpy=True)
    assert X2.min() >= 0
    assert isinstance(X2, np.ndarray)


def test_data_files_are_package_resources():
    from importlib import resources

    root = resources.files("fastgrad.datasets")
    for name in ("iris.csv", "digits.csv.gz", "tinyshakespeare.txt.gz", "README.md"):
        assert root.joinpath(name).is_file(), name


def test_tiny_shakespeare_matches_the_shared_source():
    text = fg.datasets.tiny_shakespeare()
    assert isinstance(text, str) and len(text) == 1115394
    assert len(set(text)) == 65
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
    source = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")
    if os.path.exists(source):  # the repository's data source, beside the checkout
        with open(source) as f:
            assert f.read() == text
