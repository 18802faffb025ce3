"""fastgrad: a small deep-learning framework with a native C++ tensor engine
and a PyTorch-shaped API.  `import fastgrad as fg`."""
from . import _C
from .dtypes import bool_ as bool  # noqa: A001  (fg.bool, as torch.bool)
from .dtypes import dtype, float32, float64, int32, int64, promote_types, result_type
from .dtypes import float32 as float  # noqa: A001
from .dtypes import float64 as double
from .dtypes import int64 as long
from .device import device
from .tensor import Tensor, as_tensor, from_numpy, is_tensor, tensor
from . import ops as _ops  # attaches the Tensor methods and operators
from .ops.creation import (arange, bernoulli, empty, empty_like, eye, full, full_like, get_rng_state, linspace,
                           logspace, manual_seed, multinomial, normal, ones, ones_like, rand, rand_like, randint, randn,
                           randn_like, randperm, seed, set_rng_state, zeros, zeros_like)
from .ops.elementwise import (abs, add, atan2, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, ceil, clamp, clip,
                              clone, cos, div, divide, elu, eq, erf, exp, expm1, floor, floor_divide, ge, gelu, gt,
                              isfinite, isinf, isnan, le, leaky_relu, log, log1p, logical_and, logical_not,
                              logical_or, logical_xor, lt, maximum, minimum, mul, multiply, ne, neg, negative, pow,
                              reciprocal, relu, remainder, round, rsqrt, sigmoid, sign, silu, sin, softplus, sqrt,
                              square, sub, subtract, tan, tanh, true_divide, trunc, where)
from .ops.index import (argwhere, gather, index_add, index_select, masked_fill, masked_select, nonzero, one_hot,
                        scatter_add)
from .ops.linalg import bmm, dot, einsum, matmul, mm, outer
from .ops.reduce import (all, amax, amin, any, argmax, argmin, cumprod, cumsum, log_softmax, logsumexp, max, mean,
                         min, norm, prod, softmax, std, std_mean, sum, var, var_mean)
from .ops.shape import (broadcast_shapes, broadcast_tensors, broadcast_to, cat, chunk, concat, concatenate,
                        contiguous, expand, flatten, flip, hstack, movedim, narrow, pad, permute, repeat, reshape,
                        select, split, squeeze, stack, swapaxes, t, transpose, tril, triu, unbind, unflatten,
                        unsqueeze, view, vstack)
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd.functional import grad, hessian, jacobian, jvp, value_and_grad, vjp
from . import autograd, backends, cuda, memory
from . import nn, optim, data, datasets, models, utils
from .serialization import load, save
from .runtime import config, from_dlpack, get_num_threads, set_num_threads

__version__ = "0.1.0"
