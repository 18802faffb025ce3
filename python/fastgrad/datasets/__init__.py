"""fastgrad.datasets: small public data sets shipped inside the package.

`iris()`, `digits()` and `tiny_shakespeare()` read the copies in this folder through
importlib.resources, so they work from a source tree, an installed wheel or a
zip import, and never touch the network. Sources and licences: README.md here.

`iris()` and `digits()` return `(X, y)`: features as float32, integer class labels as int64;
fastgrad tensors by default, NumPy arrays with `as_numpy=True`. Every call
returns fresh arrays, so changing them in place does not change later calls.
"""
import functools
import gzip
import io
from importlib import resources

import numpy as np

__all__ = ["iris", "digits", "tiny_shakespeare", "IRIS_CLASSES", "IRIS_FEATURES"]

#: class index -> species name, the order of `iris()`'s labels (also sklearn's)
IRIS_CLASSES = ("setosa", "versicolor", "virginica")
#: column order of `iris()`'s features, in centimetres
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def _read_bytes(name):
    return resources.files(__name__).joinpath(name).read_bytes()


@functools.lru_cache(maxsize=None)
def _iris_arrays():
    lines = _read_bytes("iris.csv").decode("ascii").strip().splitlines()
    header = tuple(lines[0].split(","))
    if header != IRIS_FEATURES + ("species",):
        raise RuntimeError(f"fastgrad.datasets.iris: unexpected header {header} in the shipped iris.csv")
    code = {name: i for i, name in enumerate(IRIS_CLASSES)}
    X = np.empty((len(lines) - 1, 4), dtype=np.float32)
    y = np.empty(len(lines) - 1, dtype=np.int64)
    for r, line in enumerate(lines[1:]):
        *features, species = line.split(",")
        X[r] = [float(v) for v in features]
        y[r] = code[species]
    return X, y


@functools.lru_cache(maxsize=None)
def _digits_arrays():
    text = gzip.decompress(_read_bytes("digits.csv.gz"))
    table = np.loadtxt(io.BytesIO(text), delimiter=",", skiprows=1, dtype=np.int64)
    return table[:, :64].astype(np.float32), table[:, 64].copy()


def _out(X, y, as_numpy):
    # copies: the cached arrays must stay pristine whatever the caller does
    X, y = X.copy(), y.copy()
    if as_numpy:
        return X, y
    from .. import tensor

    return tensor(X), tensor(y)


def iris(as_numpy=False):
    """Fisher's Iris data: X float32 (150, 4) in cm (IRIS_FEATURES order), y int64 (150,).

    Labels: 0 setosa, 1 versicolor, 2 virginica (IRIS_CLASSES); 50 of each,
    in the CSV's row order (sorted by class).
    """
    return _out(*_iris_arrays(), as_numpy)


def digits(as_numpy=False):
    """8x8 hand-written digits: X float32 (1797, 64), pixel counts 0..16 row by row; y int64 (1797,) in 0..9.

    Same data as sklearn.datasets.load_digits (UCI optdigits test set).
    Divide X by 16 for [0, 1] pixels; `X.reshape(-1, 1, 8, 8)` for images.
    """
    return _out(*_digits_arrays(), as_numpy)


@functools.lru_cache(maxsize=None)
def _shakespeare_text():
    return gzip.decompress(_read_bytes("tinyshakespeare.txt.gz")).decode("ascii")


def tiny_shakespeare():
    """Plays of Shakespeare as one plain-text str (1,115,394 ASCII characters, 65 distinct).

    The text widely used for character-level language models. Build the
    vocabulary with ``sorted(set(text))``; split off the last 10% for
    validation as is customary.
    """
    return _shakespeare_text()
