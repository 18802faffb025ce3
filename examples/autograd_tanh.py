"""HIPS-autograd style: the same code as with NumPy, differentiated by fastgrad."""
import fastgrad.numpy as np
from fastgrad import grad


def tanh(x):
    y = np.exp(2.0 * x)
    return (y - 1.0) / (y + 1.0)


dtanh = grad(tanh)
print(tanh(1.0))
print(dtanh(1.0))
print((tanh(1.01) - tanh(0.99)) / 0.02)  # finite difference, for comparison
print(grad(grad(tanh))(1.0))             # second derivative
