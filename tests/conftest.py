"""Shared test setup."""
import os

import fastgrad


def package_pythonpath():
    """PYTHONPATH for a subprocess that must import the same fastgrad as this
    test run: the installed package in CI, the dev build with PYTHONPATH=python."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastgrad.__file__)))
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
