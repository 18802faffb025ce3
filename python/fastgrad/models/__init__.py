"""The model zoo: reusable modules for the architectures of the course."""
from .mlp import MLP

__all__ = ["MLP"]
