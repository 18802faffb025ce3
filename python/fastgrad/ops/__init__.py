"""THE table of differentiable ops: each op once, with its forward (a _C
call), its vjp and its jvp. Importing this package attaches the Tensor
methods and operators."""
from . import creation, elementwise, index, linalg, reduce, shape  # noqa: F401
