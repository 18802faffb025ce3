"""Shared test setup."""
import os

import fastgrad


def package_pythonpath():
    """PYTHONPATH for a subprocess that must import the same fastgrad as this
    test run: the installed package in CI, the dev build with PYTHONPATH=python."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastgrad.__file__)))
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


# The `device` fixture: a test that takes `device` runs on the CPU and, when
# a GPU is present, on CUDA (skipped, and said so, without one).
import pytest  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not fastgrad.cuda.is_available(),
                                                                 reason="no CUDA device"))]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
