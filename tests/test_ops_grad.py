"""Every op of fastgrad's op table against PyTorch: values and gradients
(float32 and float64, broadcasting, non-contiguous inputs, functions and
Tensor methods), float64 gradcheck, jvp == vjp, and derivatives on a grid of
points that includes 0 and the domain edges.

Each case is written once as fn(m, *args) where m is a namespace: fastgrad,
torch (falling back to torch.nn.functional), or a proxy that turns
m.name(x, ...) into the method call x.name(...).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastgrad as fg
from helpers import NC, TEST_DEVICE, Rand, check_op, check_raises, fg_inputs, make_arrays, to_numpy

# gradcheck and the jvp check perturb and read inputs through host memory:
# CPU only (FASTGRAD_TEST_DEVICE=cuda runs the check_op tests on the device).
host_only = pytest.mark.skipif(TEST_DEVICE != "cpu", reason="finite differences on host memory")


# -- namespaces ----------------------------------------------------------------------------------


class _TorchNS:
    """torch, then torch.nn.functional, then the Tensor method."""

    def __getattr__(self, name):
        for mod in (torch, F):
            f = getattr(mod, name, None)
            if f is not None:
                return f
        return lambda x, *a, **k: getattr(x, name)(*a, **k)


class _Methods:
    """m.name(x, *a) -> x.name(*a); for torch, names only in F go to F."""

    def __init__(self, is_torch):
        self.is_torch = is_torch

    def __getattr__(self, name):
        if self.is_torch and not hasattr(torch.Tensor, name):
            return getattr(F, name)
        return lambda x, *a, **k: getattr(x, name)(*a, **k)


TORCH_NS = _TorchNS()
NAMESPACES = {"fn": (fg, TORCH_NS), "method": (_Methods(False), _Methods(True))}


# -- the table -----------------------------------------------------------------------------------


class Case:
    def __init__(self, name, fn, inputs, tfn=None, low=-2.0, high=2.0, grad=True, gradcheck=True, jvp=True,
                 method=True, nc=True, tol=None):
        self.name, self.fn, self.inputs, self.tfn = name, fn, inputs, tfn
        self.low, self.high = low, high
        self.grad, self.gradcheck, self.jvp = grad, grad and gradcheck, grad and jvp
        self.method, self.nc, self.tol = method, nc, tol or {}

    def fns(self, form):
        fm, tm = NAMESPACES[form]
        fg_fn = lambda *a: self.fn(fm, *a)  # noqa: E731
        torch_fn = self.tfn if self.tfn is not None else (lambda *a: self.fn(tm, *a))
        return fg_fn, torch_fn

    def __repr__(self):
        return self.name


CASES = []


def case(*a, **k):
    CASES.append(Case(*a, **k))


S1 = [[(3, 4)], [()], [(2, 3, 1)]]
POS = dict(low=0.2, high=3.0)
BOOL = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, False]])
BOOL2 = np.array([[True, True, False, False], [False, True, True, False], [True, True, True, False]])
INTS = np.array([[3, -2, 0, 7], [-5, 4, 1, -1], [2, 2, -8, 6]], dtype=np.int64)
INTS2 = np.array([[1, 3, -2, 2], [4, -3, 5, 2], [7, 1, 3, -4]], dtype=np.int64)

# -- elementwise unary
for _n in ["abs", "neg", "negative", "sign", "exp", "expm1", "square", "sin", "cos", "tanh", "sigmoid", "relu", "erf",
           "floor", "ceil", "trunc", "round", "silu", "elu", "gelu", "leaky_relu", "softplus", "clone"]:
    case(_n, (lambda n: lambda m, x: getattr(m, n)(x))(_n), S1)
case("log", lambda m, x: m.log(x), S1, **POS)
case("sqrt", lambda m, x: m.sqrt(x), S1, **POS)
case("rsqrt", lambda m, x: m.rsqrt(x), S1, **POS)
case("reciprocal", lambda m, x: m.reciprocal(x), S1, **POS)
case("log1p", lambda m, x: m.log1p(x), S1, low=-0.8, high=2.0)
case("tan", lambda m, x: m.tan(x), S1, low=-1.2, high=1.2)
case("round_decimals", lambda m, x: m.round(x, decimals=1), S1)
case("gelu_tanh", lambda m, x: m.gelu(x, approximate="tanh"), S1)
case("leaky_relu_slope", lambda m, x: m.leaky_relu(x, 0.2), S1)
case("elu_alpha", lambda m, x: m.elu(x, alpha=0.5), S1)
case("softplus_beta", lambda m, x: m.softplus(x, beta=2.0, threshold=1.5), S1)
case("clamp", lambda m, x: m.clamp(x, -0.5, 0.7), S1)
case("clamp_min", lambda m, x: m.clamp(x, min=0.1), S1)
case("clamp_max", lambda m, x: m.clamp(x, max=-0.1), S1)
case("clip", lambda m, x: m.clip(x, -1.0, 1.0), S1)
case("clamp_tensor", lambda m, x, lo, hi: m.clamp(x, min=lo, max=hi), [[(3, 4), Rand((4,), -1, 0), Rand((3, 1), 0, 1)]])
for _n in ["isnan", "isinf", "isfinite"]:
    case(_n, (lambda n: lambda m, x: getattr(m, n)(x / (x - x.round())))(_n), [[(3, 4)]], grad=False)
case("logical_not", lambda m, x: m.logical_not(x), [[BOOL]], grad=False)
case("bitwise_not", lambda m, x: m.bitwise_not(x), [[BOOL], [INTS]], grad=False)
case("neg_int", lambda m, x: m.neg(x), [[INTS]], grad=False)
case("abs_int", lambda m, x: m.abs(x), [[INTS]], grad=False)

# -- elementwise binary
B2 = [[(3, 4), (3, 4)], [(3, 4), (4,)], [(2, 1, 4), (3, 1)], [(3, 4), ()], [(), ()]]
for _n in ["add", "sub", "subtract", "mul", "multiply", "maximum", "minimum", "atan2"]:
    case(_n, (lambda n: lambda m, x, y: getattr(m, n)(x, y))(_n), B2)
for _n in ["div", "divide", "true_divide"]:
    case(_n, (lambda n: lambda m, x, y: getattr(m, n)(x, y))(_n),
         [[(3, 4), Rand((4,), 0.5, 2)], [(), Rand((2, 3), 0.5, 2)]])
case("add_alpha", lambda m, x, y: m.add(x, y, alpha=2), B2[:3])
case("sub_alpha", lambda m, x, y: m.sub(x, y, alpha=-0.5), B2[:3])
case("add_scalar", lambda m, x: m.add(x, 2.5), S1)
case("mul_scalar", lambda m, x: m.mul(x, -3), S1)
case("div_floor", lambda m, x, y: m.div(x, y, rounding_mode="floor"), [[(3, 4), Rand((4,), 0.5, 2)]], grad=False)
case("div_trunc", lambda m, x, y: m.div(x, y, rounding_mode="trunc"), [[(3, 4), Rand((4,), 0.5, 2)]], grad=False)
case("floor_divide", lambda m, x, y: m.floor_divide(x, y), [[(3, 4), Rand((4,), 0.5, 2)], [INTS, INTS2]], grad=False)
case("remainder", lambda m, x, y: m.remainder(x, y),
     [[Rand((3, 4), -5, 5), Rand((4,), 0.7, 2)], [Rand((3, 4), -5, 5), -1.3]])
case("remainder_int", lambda m, x, y: m.remainder(x, y), [[INTS, INTS2]], grad=False)
case("pow", lambda m, x, y: m.pow(x, y), [[Rand((3, 4), 0.5, 2), (3, 4)], [Rand((3, 4), 0.5, 2), (4,)]])
for _e in [2, 3, 0.5, -1, 0, 1, -2.5]:
    case(f"pow_scalar_{_e}", (lambda e: lambda m, x: m.pow(x, e))(_e), [[Rand((3, 4), 0.3, 2)], [Rand((), 0.3, 2)]])
case("pow_int_tensor", lambda m, x: m.pow(x, 2), [[INTS]], grad=False)
case("rpow", lambda m, x: 2.0 ** x, S1, method=False)
case("where", lambda m, c, x, y: m.where(c, x, y), [[BOOL, (3, 4), (3, 4)], [BOOL, (4,), (3, 1)], [BOOL, (3, 4), 0.5]],
     method=False)
case("where_method", lambda m, x, c, y: x.where(c, y), [[(3, 4), BOOL, (3, 4)]], method=False)
for _n in ["eq", "ne", "lt", "le", "gt", "ge"]:
    case(_n, (lambda n: lambda m, x, y: getattr(m, n)(x.round(), y.round()))(_n), B2[:3], grad=False)
    case(_n + "_int", (lambda n: lambda m, x, y: getattr(m, n)(x, y))(_n), [[INTS, INTS2], [INTS, 2]], grad=False)
for _n in ["logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"]:
    case(_n, (lambda n: lambda m, x, y: getattr(m, n)(x, y))(_n), [[BOOL, BOOL2]], grad=False)
for _n in ["bitwise_and", "bitwise_or", "bitwise_xor"]:
    case(_n + "_int", (lambda n: lambda m, x, y: getattr(m, n)(x, y))(_n), [[INTS, INTS2]], grad=False)

# -- operators
OPS = {"op_add": lambda m, x, y: x + y, "op_sub": lambda m, x, y: x - y, "op_mul": lambda m, x, y: x * y,
       "op_pow": lambda m, x, y: abs(x) ** y}
for _n, _f in OPS.items():
    case(_n, _f, B2[:2] + [[(3, 4), 1.5], [2.5, (3, 4)]], method=False)
case("op_div", lambda m, x, y: x / y, [[(3, 4), Rand((4,), 0.5, 2)], [2.0, Rand((3,), 0.5, 2)]], method=False)
case("op_neg", lambda m, x: -x, S1, method=False)
case("op_abs", lambda m, x: abs(x), S1, method=False)
case("op_floordiv", lambda m, x, y: x // y, [[INTS, INTS2], [INTS, 3]], grad=False, method=False)
case("op_mod", lambda m, x, y: x % y, [[INTS, INTS2], [Rand((3, 4), -4, 4), 1.5]], grad=False, method=False)
case("op_cmp", lambda m, x, y: (x < y, x <= y, x > y, x >= y, x == y, x != y), [[INTS, INTS2], [INTS, 1]], grad=False,
     method=False)
case("op_bool", lambda m, x, y: (x & y, x | y, x ^ y, ~x), [[BOOL, BOOL2]], grad=False, method=False)

# -- reductions
X3 = [(2, 3, 4)]
for _n in ["sum", "mean"]:
    for _k, _kw in {"all": {}, "d1": {"dim": 1}, "d02": {"dim": (0, 2)}, "dneg_keep": {"dim": -1, "keepdim": True},
                    "d02_keep": {"dim": (0, 2), "keepdim": True}}.items():
        case(f"{_n}_{_k}", (lambda n, kw: lambda m, x: getattr(m, n)(x, **kw))(_n, _kw), [X3])
    case(f"{_n}_0d", (lambda n: lambda m, x: getattr(m, n)(x))(_n), [[()]])
case("sum_int", lambda m, x: m.sum(x, 1), [[INTS]], grad=False)
case("sum_bool", lambda m, x: m.sum(x), [[BOOL]], grad=False)
case("sum_axis_alias", lambda m, x: m.sum(x, axis=1, keepdims=True), [X3])
case("mean_axis_alias", lambda m, x: m.mean(x, axis=(0, 1)), [X3])
case("prod_all", lambda m, x: m.prod(x), [X3], low=0.5, high=1.5)
case("prod_d1", lambda m, x: m.prod(x, 1), [X3])
case("prod_keep", lambda m, x: m.prod(x, -1, keepdim=True), [X3])
for _n in ["amax", "amin"]:
    case(f"{_n}_all", (lambda n: lambda m, x: getattr(m, n)(x))(_n), [X3])
    case(f"{_n}_d02", (lambda n: lambda m, x: getattr(m, n)(x, dim=(0, 2)))(_n), [X3])
    case(f"{_n}_keep", (lambda n: lambda m, x: getattr(m, n)(x, 1, keepdim=True))(_n), [X3])
for _n in ["max", "min"]:
    case(f"{_n}_all", (lambda n: lambda m, x: getattr(m, n)(x))(_n), [X3, [()]])
    case(f"{_n}_dim", (lambda n: lambda m, x: tuple(getattr(m, n)(x, dim=1)))(_n), [X3])
    case(f"{_n}_dim_keep", (lambda n: lambda m, x: tuple(getattr(m, n)(x, -1, keepdim=True)))(_n), [X3])
    case(f"{_n}_binary", (lambda n: lambda m, x, y: getattr(m, n)(x, y))(_n), [[(3, 4), (4,)]])
for _n in ["argmax", "argmin"]:
    case(f"{_n}_all", (lambda n: lambda m, x: getattr(m, n)(x))(_n), [X3], grad=False)
    case(f"{_n}_dim", (lambda n: lambda m, x: getattr(m, n)(x, dim=1))(_n), [X3], grad=False)
    case(f"{_n}_keep", (lambda n: lambda m, x: getattr(m, n)(x, 2, keepdim=True))(_n), [X3], grad=False)
    case(f"{_n}_int", (lambda n: lambda m, x: getattr(m, n)(x, 1))(_n), [[INTS]], grad=False)
for _n in ["var", "std"]:
    case(f"{_n}_all", (lambda n: lambda m, x: getattr(m, n)(x))(_n), [X3])
    case(f"{_n}_d1", (lambda n: lambda m, x: getattr(m, n)(x, 1))(_n), [X3])
    case(f"{_n}_biased", (lambda n: lambda m, x: getattr(m, n)(x, (0, 2), unbiased=False, keepdim=True))(_n), [X3])
    case(f"{_n}_correction", (lambda n: lambda m, x: getattr(m, n)(x, dim=2, correction=2))(_n), [X3])
case("var_mean", lambda m, x: m.var_mean(x, 1), [X3], method=False)
case("std_mean", lambda m, x: m.std_mean(x, (0, 2)), [X3], method=False)
case("logsumexp", lambda m, x: m.logsumexp(x, 1), [X3, [(3, 1)]])
case("logsumexp_multi", lambda m, x: m.logsumexp(x, (0, 2), keepdim=True), [X3])
case("logsumexp_large", lambda m, x: m.logsumexp(x * 100, -1), [X3])
case("norm", lambda m, x: m.norm(x), [X3])
case("norm_p1", lambda m, x: m.norm(x, p=1, dim=1), [X3])
case("norm_p3", lambda m, x: m.norm(x, p=3, dim=(0, 2), keepdim=True), [X3])
case("norm_inf", lambda m, x: m.norm(x, p=float("inf"), dim=1), [X3])
case("norm_fro", lambda m, x: m.norm(x, p="fro"), [X3])
for _n in ["all", "any"]:
    case(_n, (lambda n: lambda m, x: getattr(m, n)(x))(_n), [[BOOL], [INTS]], grad=False)
    case(_n + "_dim", (lambda n: lambda m, x: getattr(m, n)(x, 1))(_n), [[BOOL]], grad=False)
    case(_n + "_keep", (lambda n: lambda m, x: getattr(m, n)(x, 0, keepdim=True))(_n), [[BOOL]], grad=False)
case("cumsum", lambda m, x: m.cumsum(x, 0), [X3, [(5,)]])
case("cumsum_neg", lambda m, x: m.cumsum(x, dim=-1), [X3])
case("cumprod", lambda m, x: m.cumprod(x, 0), [X3, [(5,)]])
case("cumprod_zeros", lambda m, x: m.cumprod(x, -1), [[np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 2.0, 0.0, 3.0],
                                                                [2.0, -0.5, 1.2, 0.0]])]], nc=False)
case("softmax", lambda m, x: m.softmax(x, -1), [X3, [(4,)]])
case("softmax_d0", lambda m, x: m.softmax(x, 0), [X3])
case("log_softmax", lambda m, x: m.log_softmax(x, 1), [X3, [(4, 1)]])

# -- shape
case("reshape", lambda m, x: m.reshape(x, (4, 6)), [X3])
case("reshape_neg", lambda m, x: m.reshape(x, (-1,)), [X3])
case("view", lambda m, x: x.view(6, 4), [X3], nc=False)
case("flatten", lambda m, x: m.flatten(x), [X3, [()]])
case("flatten_1", lambda m, x: m.flatten(x, 1), [X3])
case("flatten_01", lambda m, x: m.flatten(x, 0, 1), [X3])
case("unflatten", lambda m, x: m.unflatten(x, 2, (2, 2)), [X3])
case("unsqueeze", lambda m, x: m.unsqueeze(x, 1), [X3, [(3,)]])
case("unsqueeze_0d", lambda m, x: m.unsqueeze(x, 0), [[()]])
case("unsqueeze_neg", lambda m, x: m.unsqueeze(x, -1), [X3])
case("squeeze", lambda m, x: m.squeeze(x), [[(3, 1, 4, 1)], [(1,)]])
case("squeeze_dim", lambda m, x: m.squeeze(x, 1), [[(3, 1, 4)]])
case("squeeze_noop", lambda m, x: m.squeeze(x, 0), [[(3, 1, 4)]])
case("transpose", lambda m, x: m.transpose(x, 0, 2), [X3])
case("transpose_neg", lambda m, x: m.transpose(x, -1, 1), [X3])
case("swapaxes", lambda m, x: m.swapaxes(x, 0, 1), [X3])
case("t", lambda m, x: m.t(x), [[(3, 4)], [(3,)]])
case("T", lambda m, x: x.T, [[(3, 4)], [(2, 3, 4)]], method=False)
case("mT", lambda m, x: x.mT, [X3], method=False)
case("permute", lambda m, x: m.permute(x, (2, 0, 1)), [X3])
case("permute_neg", lambda m, x: x.permute(-1, 0, 1), [X3], method=False)
case("movedim", lambda m, x: m.movedim(x, 0, -1), [X3])
case("expand", lambda m, x: x.expand(2, 3, 4), [[(3, 1)], [()]], method=False)
case("expand_neg1", lambda m, x: x.expand(2, -1, 4), [[(3, 1)]], method=False)
case("expand_as", lambda m, x, y: x.expand_as(y), [[(3, 1), (2, 3, 4)]], method=False)
case("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 3, 4)), [[(3, 1)], [(4,)]])
case("broadcast_tensors", lambda m, x, y: m.broadcast_tensors(x, y), [[(3, 1), (2, 1, 4)]], method=False)
case("contiguous", lambda m, x: x.transpose(0, 1).contiguous(), [X3], method=False)
case("cat", lambda m, xs: m.cat(xs, 1), [[[(2, 3, 4), (2, 1, 4), (2, 2, 4)]]], method=False, nc=False)
case("cat_neg", lambda m, xs: m.cat(xs, dim=-1), [[[(2, 3), (2, 5)]]], method=False, nc=False)
case("concat", lambda m, xs: m.concat(xs), [[[(2, 3), (1, 3)]]], method=False, nc=False)
case("concatenate", lambda m, xs: m.concatenate(xs, 0), [[[(2, 3), (1, 3)]]], method=False, nc=False)
case("stack", lambda m, xs: m.stack(xs, 1), [[[(2, 3), (2, 3), (2, 3)]]], method=False, nc=False)
case("stack_neg", lambda m, xs: m.stack(xs, -1), [[[(2, 3), (2, 3)]]], method=False, nc=False)
case("hstack", lambda m, xs: m.hstack(xs), [[[(2, 3), (2, 1)]], [[(3,), (2,)]]], method=False, nc=False)
case("vstack", lambda m, xs: m.vstack(xs), [[[(2, 3), (1, 3)]], [[(3,), (3,)]]], method=False, nc=False)
case("split", lambda m, x: m.split(x, 2, 2), [X3])
case("split_uneven", lambda m, x: m.split(x, 3, 2), [X3])
case("split_sizes", lambda m, x: m.split(x, [1, 2], dim=1), [X3])
case("chunk", lambda m, x: m.chunk(x, 3, 2), [X3])
case("unbind", lambda m, x: m.unbind(x, 1), [X3])
case("narrow", lambda m, x: m.narrow(x, 2, 1, 2), [X3])
case("select", lambda m, x: m.select(x, 1, -1), [X3])
case("pad", lambda m, x: m.pad(x, (1, 2)), [X3], method=False)
case("pad_2d_value", lambda m, x: m.pad(x, (1, 1, 2, 0), value=-1.5), [X3], method=False)
case("pad_negative", lambda m, x: m.pad(x, (-1, 1)), [X3], method=False)
case("flip", lambda m, x: m.flip(x, (0,)), [X3])
case("flip_multi", lambda m, x: m.flip(x, (0, 2)), [X3])
case("repeat", lambda m, x: x.repeat(2, 1, 3), [[(3, 2)], [(2, 1, 2)]], method=False)
case("tril", lambda m, x: m.tril(x), [[(4, 5)], X3])
case("tril_k", lambda m, x: m.tril(x, -1), [[(4, 5)]])
case("triu", lambda m, x: m.triu(x), [[(4, 5)], X3])
case("triu_k", lambda m, x: m.triu(x, 2), [[(4, 5)]])
case("view_as", lambda m, x, y: x.view_as(y), [[(2, 6), (3, 4)]], method=False, nc=False)
case("reshape_as", lambda m, x, y: x.reshape_as(y), [[(2, 6), (3, 4)]], method=False)

# -- indexing
IDX = np.array([[0, 2, 1, 0], [2, 2, 0, 1]], dtype=np.int64)
ROWS = np.array([2, 0, 2], dtype=np.int64)
case("gather", lambda m, x, i: m.gather(x, 0, i), [[(3, 4), IDX]])
case("gather_d1", lambda m, x, i: m.gather(x, 1, i), [[(3, 4), IDX[:, :3] % 3]])
case("scatter_add", lambda m, x, i, s: m.scatter_add(x, 0, i, s), [[(3, 4), IDX, (2, 4)]])
case("index_select", lambda m, x, i: m.index_select(x, 0, i), [[(3, 4), ROWS]])
case("index_select_d1", lambda m, x, i: m.index_select(x, 1, i), [[(3, 4), ROWS]])
case("index_add", lambda m, x, i, s: m.index_add(x, 0, i, s), [[(3, 4), ROWS, (3, 4)]])
case("index_add_alpha", lambda m, x, i, s: m.index_add(x, 1, i, s, alpha=2.0), [[(3, 4), ROWS, (3, 3)]])
case("masked_fill", lambda m, x, mk: m.masked_fill(x, mk, 0.5), [[(3, 4), BOOL], [(2, 3, 4), BOOL]])
case("masked_select", lambda m, x, mk: m.masked_select(x, mk), [[(3, 4), BOOL], [(2, 3, 4), BOOL]])
case("nonzero", lambda m, x: m.nonzero(x), [[BOOL], [INTS]], grad=False)
case("argwhere", lambda m, x: m.argwhere(x), [[BOOL]], grad=False)
case("one_hot", lambda m, x: m.one_hot(x, 5), [[np.array([0, 4, 2, 2], dtype=np.int64)]], grad=False,
     method=False)
case("one_hot_infer", lambda m, x: m.one_hot(x), [[np.array([[0, 3], [1, 1]], dtype=np.int64)]], grad=False,
     method=False)
for _k, _key in {"int": 1, "neg_int": -2, "slice_step": (slice(None), slice(None, None, 2)),
                 "slice_neg": (slice(-2, None), slice(3, 0, -1) if False else slice(1, -1)),
                 "none_ellipsis": (None, Ellipsis, 1), "ellipsis_slice": (Ellipsis, slice(1, 3)),
                 "list": [2, 0, 2], "int_tensor_2d": None, "mask": "mask", "mask_row": "mask_row",
                 "adv_adjacent": (slice(None), [0, 2], [1, 3]), "adv_separate": ([0, 1], slice(None), [3, 2]),
                 "adv_int": (1, slice(None), [0, 0, 2])}.items():
    if _key is None:
        case("getitem_" + _k, lambda m, x, i: x[i], [[(3, 4), IDX % 3]], method=False)
    elif _key == "mask":
        case("getitem_" + _k, lambda m, x, mk: x[mk], [[(3, 4), BOOL]], method=False)
    elif _key == "mask_row":
        case("getitem_" + _k, lambda m, x, mk: x[mk[:, 0]], [[(3, 4), BOOL]], method=False)
    else:
        _shape = (3, 4) if _k in ("int", "neg_int", "slice_step", "slice_neg", "list") else (2, 3, 4)
        case("getitem_" + _k, (lambda key: lambda m, x: x[key])(_key), [[_shape]], method=False)


def _setitem(m, x, v):
    y = x * 1
    y[1, ::2] = v
    return y


def _setitem_adv(m, x, v):
    y = x * 1
    y[[0, 2]] = v
    return y


case("setitem", _setitem, [[(3, 4), (2,)], [(3, 4), ()]], method=False)
case("setitem_adv", _setitem_adv, [[(3, 4), (4,)]], method=False)


def _inplace(name):
    def f(m, x, y):
        z = x * 1
        getattr(z, name)(y)
        return z

    return f


for _n in ["add_", "sub_", "mul_"]:
    case(f"inplace_{_n}", _inplace(_n), [[(3, 4), (4,)], [(3, 4), 2.5]], method=False)
case("inplace_div_", _inplace("div_"), [[(3, 4), Rand((4,), 0.5, 2)]], method=False)
case("inplace_iadd", lambda m, x, y: (x * 1).__iadd__(y), [[(3, 4), (3, 4)]], method=False)
case("inplace_clamp_", lambda m, x: (x * 1).clamp_(-0.5, 0.5), S1, method=False)
case("inplace_masked_fill_", lambda m, x, mk: (x * 1).masked_fill_(mk, 0.0), [[(3, 4), BOOL]], method=False)
for _n in ["neg_", "exp_", "relu_", "sigmoid_", "tanh_"]:
    case(f"inplace_{_n}", (lambda n: lambda m, x: getattr(x * 1, n)())(_n), S1, method=False)
case("inplace_pow_", lambda m, x: (x * 1).pow_(3), S1, method=False)
case("inplace_index_put_", lambda m, x, v: (x * 1).index_put_((m.tensor([0, 2]), m.tensor([1, 3])), v),
     [[(3, 4), (2,)]], method=False)
case("sum_to_size", lambda m, x: x.sum_to_size(3, 1), [[(2, 3, 4)], [(3, 4)]], method=False)

# -- linear algebra
case("matmul", lambda m, x, y: m.matmul(x, y),
     [[(3, 4), (4, 5)], [(4,), (4,)], [(4,), (4, 5)], [(3, 4), (4,)], [(2, 3, 4), (4, 5)], [(2, 1, 3, 4), (3, 4, 2)],
      [(4,), (2, 4, 3)]])
case("matmul_op", lambda m, x, y: x @ y, [[(3, 4), (4, 5)], [(2, 3, 4), (2, 4, 2)]], method=False)
case("mm", lambda m, x, y: m.mm(x, y), [[(3, 4), (4, 5)]])
case("bmm", lambda m, x, y: m.bmm(x, y), [[(2, 3, 4), (2, 4, 5)]])
case("dot", lambda m, x, y: m.dot(x, y), [[(5,), (5,)]])
case("outer", lambda m, x, y: m.outer(x, y), [[(3,), (4,)]])
for _eq, _shapes in {"ij,jk->ik": [(3, 4), (4, 5)], "bij,bjk->bik": [(2, 3, 4), (2, 4, 5)], "i,i->": [(4,), (4,)],
                     "ij->ji": [(3, 4)], "ij,kj->ik": [(3, 4), (5, 4)], "ij->j": [(3, 4)], "i,j->ij": [(3,), (4,)],
                     "ijk,ik->j": [(2, 3, 4), (2, 4)], "ij,jk,kl->il": [(2, 3), (3, 4), (4, 2)],
                     "bhqd,bhkd->bhqk": [(2, 2, 3, 4), (2, 2, 5, 4)]}.items():
    case("einsum_" + _eq, (lambda eq: lambda m, *xs: m.einsum(eq, *xs))(_eq), [_shapes], method=False)

CASE_IDS = [c.name for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case names"
GRAD_CASES = [c for c in CASES if c.grad]


def _tols(c, dtype):
    return c.tol.get(np.dtype(dtype).name, {})


# -- parity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_op(c, dtype):
    fg_fn, torch_fn = c.fns("fn")
    for inputs in c.inputs:
        check_op(fg_fn, torch_fn, inputs, dtype=dtype, grad=c.grad, low=c.low, high=c.high, **_tols(c, dtype))


@pytest.mark.parametrize("c", [c for c in CASES if c.method], ids=[c.name for c in CASES if c.method])
def test_method(c):
    fg_fn, torch_fn = c.fns("method")
    for inputs in c.inputs:
        check_op(fg_fn, torch_fn, inputs, dtype=np.float64, grad=c.grad, low=c.low, high=c.high)


def _nc_variants(c):
    out = []
    inputs = c.inputs[0]
    for kind in NC.KINDS:
        new, changed = [], False
        for s in inputs:
            if isinstance(s, tuple) and len(s) >= 1 and all(isinstance(v, int) for v in s):
                new.append(NC(s, kind))
                changed = True
            elif isinstance(s, Rand) and len(s.shape) >= 1:
                new.append(NC(s.shape, kind, s.low, s.high))
                changed = True
            else:
                new.append(s)
        if changed:
            out.append((kind, new))
    return out


NC_PARAMS = [(c, kind, inputs) for c in CASES if c.nc for kind, inputs in _nc_variants(c)]


@pytest.mark.parametrize("c,kind,inputs", NC_PARAMS, ids=[f"{c.name}-{k}" for c, k, _ in NC_PARAMS])
def test_op_noncontiguous(c, kind, inputs):
    fg_fn, torch_fn = c.fns("fn")
    check_op(fg_fn, torch_fn, inputs, dtype=np.float64, grad=c.grad, low=c.low, high=c.high)


# -- gradcheck / jvp -----------------------------------------------------------------------------


def _float_positions(arrays):
    return [i for i, a in enumerate(arrays) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


def _differentiable_fn(c, inputs, seed=0):
    """(f(*float tensors) -> one tensor, float64 primal arrays): the case with
    its non-float arguments fixed and tuple outputs joined into one tensor."""
    arrays = make_arrays(inputs, np.float64, low=c.low, high=c.high, seed=seed)
    flat, pos = [], []
    for i, a in enumerate(arrays):
        if isinstance(a, list):
            for j, b in enumerate(a):
                flat.append(b), pos.append((i, j))
        elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
            flat.append(a), pos.append((i, None))
    fixed = fg_inputs(inputs, np.float64, low=c.low, high=c.high, seed=seed)

    def f(*xs):
        args = list(fixed)
        args = [list(a) if isinstance(a, list) else a for a in args]
        for x, (i, j) in zip(xs, pos):
            if j is None:
                args[i] = x
            else:
                args[i][j] = x
        out = c.fn(fg, *args)
        if isinstance(out, (tuple, list)):
            outs = [o.reshape(-1) for o in out if o.dtype.is_floating_point]
            out = fg.cat(outs) if len(outs) > 1 else outs[0]
        return out

    return f, flat


@pytest.mark.parametrize("c", [c for c in GRAD_CASES if c.gradcheck], ids=[c.name for c in GRAD_CASES if c.gradcheck])
@host_only
def test_gradcheck(c):
    f, flat = _differentiable_fn(c, c.inputs[0])
    xs = [fg.tensor(a, requires_grad=True) for a in flat]
    assert fg.autograd.gradcheck(f, tuple(xs), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("c", [c for c in GRAD_CASES if c.gradcheck], ids=[c.name for c in GRAD_CASES if c.gradcheck])
@host_only
def test_gradgradcheck(c):
    """The vjp rules are differentiable again: gradcheck of x -> vjp(f, x)(ct) (second order)."""
    f, flat = _differentiable_fn(c, c.inputs[0])
    xs = tuple(fg.tensor(a, requires_grad=True) for a in flat)
    ct = fg.tensor(np.random.default_rng(3).uniform(-1, 1, tuple(f(*xs).shape)))

    def vjp(*xs):
        gs = fg.autograd.grad(f(*xs), xs, grad_outputs=ct, create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    assert fg.autograd.gradcheck(vjp, xs, eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("c", [c for c in GRAD_CASES if c.jvp], ids=[c.name for c in GRAD_CASES if c.jvp])
@host_only
def test_jvp_equals_vjp(c):
    f, flat = _differentiable_fn(c, c.inputs[0])
    rng = np.random.default_rng(5)
    primals = [fg.tensor(a) for a in flat]
    tangents = [fg.tensor(rng.uniform(-1, 1, a.shape)) for a in flat]
    out, tout = fg.jvp(f, tuple(primals), tuple(tangents))
    ref = f(*primals)
    np.testing.assert_allclose(to_numpy(out), to_numpy(ref), rtol=1e-12, atol=1e-12)
    expect = np.zeros(tuple(ref.shape))
    for k, (p, t) in enumerate(zip(primals, tangents)):
        J = fg.jacobian(lambda x, k=k: f(*primals[:k], x, *primals[k + 1:]))(p)
        J = to_numpy(J).reshape(ref.numel(), p.numel())
        expect = expect + (J @ to_numpy(t).reshape(-1)).reshape(expect.shape)
    assert tuple(tout.shape) == tuple(ref.shape)
    np.testing.assert_allclose(to_numpy(tout), expect, rtol=1e-9, atol=1e-10)


# -- derivatives on a grid with edge points --------------------------------------------------------

GRID = np.array([-3.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0])
UNARY_GRID = {
    "abs": lambda m, x: m.abs(x), "relu": lambda m, x: m.relu(x), "sign": lambda m, x: m.sign(x),
    "square": lambda m, x: m.square(x), "pow2": lambda m, x: x ** 2, "pow3": lambda m, x: x ** 3,
    "pow1": lambda m, x: x ** 1, "pow0": lambda m, x: x ** 0, "pow_half": lambda m, x: x ** 0.5,
    "pow_neg1": lambda m, x: x ** -1, "pow_neg2": lambda m, x: x ** -2,
    "mul_self": lambda m, x: x * x, "sqrt": lambda m, x: m.sqrt(x),
    "rsqrt": lambda m, x: m.rsqrt(x), "log": lambda m, x: m.log(x), "log1p": lambda m, x: m.log1p(x - 1),
    "reciprocal": lambda m, x: m.reciprocal(x), "exp": lambda m, x: m.exp(x), "expm1": lambda m, x: m.expm1(x),
    "sigmoid": lambda m, x: m.sigmoid(x * 20), "tanh": lambda m, x: m.tanh(x * 20),
    "leaky_relu": lambda m, x: m.leaky_relu(x, 0.1), "elu": lambda m, x: m.elu(x, 0.7),
    "gelu": lambda m, x: m.gelu(x), "silu": lambda m, x: m.silu(x), "softplus": lambda m, x: m.softplus(x * 10),
    "softplus_thr": lambda m, x: m.softplus(x, beta=1.0, threshold=1.0), "erf": lambda m, x: m.erf(x),
    "clamp": lambda m, x: m.clamp(x, -1.0, 1.0), "clamp_0": lambda m, x: m.clamp(x, min=0.0),
    "sin": lambda m, x: m.sin(x), "cos": lambda m, x: m.cos(x), "tan": lambda m, x: m.tan(x),
    "floor": lambda m, x: m.floor(x), "round": lambda m, x: m.round(x), "div_by": lambda m, x: 1.0 / x,
    "atan2_y": lambda m, x: m.atan2(x, x * 0), "atan2_x": lambda m, x: m.atan2(x * 0, x),
    "norm": lambda m, x: m.norm(x * 0), "norm_p1": lambda m, x: m.norm(x * 0, p=1),
    "norm_vec": lambda m, x: m.norm(x), "std_const": lambda m, x: m.std(x * 0 + 1),
    "prod": lambda m, x: m.prod(x), "prod_one_zero": lambda m, x: m.prod(m.maximum(x, x * 0 + 0.5) * (x != 0)),
    "cumprod": lambda m, x: m.cumprod(x, 0), "amax": lambda m, x: m.amax(m.abs(x)),
    "max_dim": lambda m, x: m.max(m.abs(x), 0)[0], "logsumexp_inf": lambda m, x: m.logsumexp(m.log(m.relu(x)), 0),
    "softmax": lambda m, x: m.softmax(x * 100, 0), "where_nan": lambda m, x: m.where(x > 0, m.sqrt(x), x),
    "masked_fill_nan": lambda m, x: m.masked_fill(m.log(x), x <= 0, 0.0),
}
# 0 ** y and y ** 0 families, ties of maximum/minimum: (fn, a grid, b grid)
BINARY_GRID = {
    "pow_base0": (lambda m, a, b: m.pow(a, b), np.zeros(6), np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0])),
    "pow_exp0": (lambda m, a, b: m.pow(a, b), np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0]), np.zeros(6)),
    "pow_neg_base": (lambda m, a, b: m.pow(a, b), np.array([-2.0, -2.0, -1.0, -0.5]), np.array([2.0, 3.0, 0.5, 1.0])),
    "rpow0": (lambda m, a, b: 0.0 ** b + a, np.zeros(5), np.array([-1.0, 0.0, 0.5, 1.0, 2.0])),
    "maximum_ties": (lambda m, a, b: m.maximum(a, b), np.array([0.0, 1.0, -1.0, 2.0, 3.0]),
                     np.array([0.0, 1.0, 1.0, 2.0, -3.0])),
    "minimum_ties": (lambda m, a, b: m.minimum(a, b), np.array([0.0, 1.0, -1.0, 2.0, 3.0]),
                     np.array([0.0, 1.0, 1.0, 2.0, -3.0])),
    "max_binary_ties": (lambda m, a, b: m.max(a, b), np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, -2.0])),
    "clamp_tensor_ties": (lambda m, a, b: m.clamp(a, min=b), np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 3.0])),
    "div_zero": (lambda m, a, b: a / b, np.array([1.0, 0.0, -1.0, 2.0]), np.array([0.0, 0.0, 0.0, 1.0])),
    "atan2_origin": (lambda m, a, b: m.atan2(a, b), np.array([0.0, 0.0, 1.0, -1.0]), np.array([0.0, -1.0, 0.0, 0.0])),
    "remainder_edges": (lambda m, a, b: m.remainder(a, b), np.array([0.0, 1.0, -1.0, 3.0]),
                        np.array([1.0, 1.0, 2.0, -2.0])),
    "mul_zero_inf": (lambda m, a, b: a * b, np.array([0.0, 1.0]), np.array([np.inf, 0.0])),
}


def _np_grad(g):
    if isinstance(g, torch.Tensor) and g._is_zerotensor():
        return np.zeros(tuple(g.shape))
    return to_numpy(g)


def _grad_both(fn, arrays, order):
    """d^order/dx^order of sum(fn(x)) (elementwise on the diagonal for order 2) in both frameworks."""
    res = []
    for m, mk in ((fg, lambda a: fg.tensor(a, requires_grad=True)), (TORCH_NS,
                                                                      lambda a: torch.tensor(a, requires_grad=True))):
        ag = fg.autograd if m is fg else torch.autograd
        xs = [mk(a) for a in arrays]
        out = fn(m, *xs).sum()
        gs = ag.grad(out, xs, create_graph=order > 1, allow_unused=True)
        if order > 1:
            gs2 = []
            for g, x in zip(gs, xs):
                if g is None or not g.requires_grad:
                    gs2.append(None)
                else:
                    gs2.append(ag.grad(g.sum(), [x], retain_graph=True, allow_unused=True)[0])
            gs = gs2
        res.append([None if g is None else _np_grad(g) for g in gs])
    return res


def _compare_grads(got, expect, name):
    for i, (g, e) in enumerate(zip(got, expect)):
        if e is None:
            assert g is None or not np.any(g), f"{name}: input {i}: torch has no gradient, fastgrad {g}"
            continue
        if g is None:
            g = np.zeros_like(e)
        np.testing.assert_allclose(g, e, rtol=1e-7, atol=1e-12, equal_nan=True, err_msg=f"{name}: input {i}")


# The second derivative at a singular point (the origin of atan2, a zero vector's
# norm) is undefined: PyTorch returns NaN there, fastgrad 0; only order 1 is compared.
FIRST_ORDER_ONLY = {"atan2_y", "atan2_x", "norm", "atan2_origin"}
UNARY_PARAMS = [(n, o) for n in UNARY_GRID for o in (1, 2) if o == 1 or n not in FIRST_ORDER_ONLY]
BINARY_PARAMS = [(n, o) for n in BINARY_GRID for o in (1, 2) if o == 1 or n not in FIRST_ORDER_ONLY]


@pytest.mark.parametrize("name,order", UNARY_PARAMS, ids=[f"{n}-{o}" for n, o in UNARY_PARAMS])
def test_grid_unary(name, order):
    fn = UNARY_GRID[name]
    got, expect = _grad_both(fn, [GRID.copy()], order)
    _compare_grads(got, expect, name)


@pytest.mark.parametrize("name,order", BINARY_PARAMS, ids=[f"{n}-{o}" for n, o in BINARY_PARAMS])
def test_grid_binary(name, order):
    fn, a, b = BINARY_GRID[name]
    with np.errstate(all="ignore"):
        got, expect = _grad_both(fn, [a.copy(), b.copy()], order)
    _compare_grads(got, expect, name)


# -- zero-size, 0-d, NaN and extreme inputs ------------------------------------------------------------

_F = lambda m: m.nn.functional if m is torch else m  # noqa: E731
NAN = np.nan
EDGE = {
    "sum_empty": (lambda m, x: x.sum(), [(0, 3)]),
    "sum_empty_d0": (lambda m, x: x.sum(0), [(0, 3)]),
    "sum_empty_d1": (lambda m, x: x.sum(1), [(0, 3)]),
    "mean_empty_d1": (lambda m, x: x.mean(1), [(0, 3)]),
    "mean_empty": (lambda m, x: x.mean(), [(0, 3)]),
    "prod_empty": (lambda m, x: x.prod(), [(0, 3)]),
    "prod_empty_d": (lambda m, x: x.prod(0), [(0, 3)]),
    "amax_empty_d1": (lambda m, x: x.amax(1), [(0, 3)]),
    "logsumexp_empty": (lambda m, x: m.logsumexp(x, 0), [(0, 3)]),
    "softmax_empty": (lambda m, x: m.softmax(x, 0), [(0, 3)]),
    "cumsum_empty": (lambda m, x: x.cumsum(0), [(0, 3)]),
    "cumprod_empty": (lambda m, x: x.cumprod(1), [(0, 3)]),
    "norm_empty": (lambda m, x: x.norm(), [(0, 3)]),
    "add_empty": (lambda m, x, y: x + y, [(0, 3), (3,)]),
    "mul_empty_bc": (lambda m, x, y: x * y, [(0, 1), (1, 5)]),
    "matmul_k0": (lambda m, x, y: x @ y, [(3, 0), (0, 4)]),
    "matmul_m0": (lambda m, x, y: x @ y, [(0, 3), (3, 4)]),
    "matmul_1d_0": (lambda m, x, y: x @ y, [(0,), (0,)]),
    "cat_empty": (lambda m, xs: m.cat(xs, 0), [[(0, 3), (2, 3)]]),
    "stack_empty": (lambda m, xs: m.stack(xs, 0), [[(0, 3), (0, 3)]]),
    "reshape_empty": (lambda m, x: x.reshape(3, 0, 2), [(0, 6)]),
    "expand_to_empty": (lambda m, x: x.expand(0, 4), [(1, 4)]),
    "index_empty": (lambda m, x: x[m.tensor([], dtype=m.int64)], [(4, 2)]),
    "mask_none_true": (lambda m, x: x[x > 100], [(4, 2)]),
    "gather_empty": (lambda m, x, i: x.gather(0, i), [(4, 2), np.zeros((0, 2), dtype=np.int64)]),
    "pad_empty": (lambda m, x: _F(m).pad(x, (1, 1)), [(0, 2)]),
    "split_empty_part": (lambda m, x: x.split([0, 3], 1), [(2, 3)]),
    "sum_0d_dim": (lambda m, x: x.sum(0), [()]),
    "sum_0d_keep": (lambda m, x: x.sum(-1, keepdim=True), [()]),
    "mean_0d_dim": (lambda m, x: x.mean(0), [()]),
    "amax_0d_dim": (lambda m, x: x.amax(0), [()]),
    "prod_0d": (lambda m, x: x.prod(0), [()]),
    "logsumexp_0d": (lambda m, x: m.logsumexp(x, 0), [()]),
    "softmax_0d": (lambda m, x: m.softmax(x, 0), [()]),
    "max_0d_dim": (lambda m, x: tuple(x.max(0)), [()]),
    "argmax_0d": (lambda m, x: x.argmax(0), [()]),
    "cumsum_0d": (lambda m, x: x.cumsum(0), [()]),
    "var_0d": (lambda m, x: x.var(unbiased=False), [()]),
    "norm_0d": (lambda m, x: x.norm(), [()]),
    "unsqueeze_0d": (lambda m, x: x.unsqueeze(-1), [()]),
    "expand_0d": (lambda m, x: x.expand(3, 2), [()]),
    "repeat_0d": (lambda m, x: x.repeat(3, 2), [()]),
    "stack_0d": (lambda m, xs: m.stack(xs), [[(), ()]]),
    "index_0d_none": (lambda m, x: x[None, None], [()]),
    "std_one_element": (lambda m, x: x.std(0), [(1, 4)]),
    "var_one_element": (lambda m, x: x.var(), [(1,)]),
    "exp_overflow": (lambda m, x: (x * 100).exp(), [(3, 4)]),
    "log_softmax_large": (lambda m, x: m.log_softmax(x * 1e4, 1), [(3, 4)]),
    "softmax_large": (lambda m, x: m.softmax(x * 1e4, 1), [(3, 4)]),
    "sigmoid_large": (lambda m, x: (x * 1e3).sigmoid(), [(3, 4)]),
    "tanh_large": (lambda m, x: (x * 1e3).tanh(), [(3, 4)]),
    "softplus_large": (lambda m, x: _F(m).softplus(x * 1e3), [(3, 4)]),
    "logsumexp_neg_inf": (lambda m, x: m.logsumexp(x.log(), 1), [np.array([[0.0, 0.0], [1.0, 0.0]])]),
    "norm_tiny": (lambda m, x: (x * 1e-30).norm(), [(3, 4)]),
    "amax_nan": (lambda m, x: x.amax(1), [np.array([[1.0, NAN], [2.0, 3.0]])]),
    "maximum_nan": (lambda m, x, y: m.maximum(x, y), [np.array([1.0, NAN]), np.array([NAN, 2.0])]),
    "minimum_nan": (lambda m, x, y: m.minimum(x, y), [np.array([1.0, NAN]), np.array([NAN, 2.0])]),
    "argmax_nan": (lambda m, x: x.argmax(1), [np.array([[1.0, NAN, 3.0], [2.0, 3.0, 1.0]])]),
    "max_dim_nan": (lambda m, x: tuple(x.max(1)), [np.array([[1.0, NAN, 3.0], [2.0, 3.0, 1.0]])]),
    "clamp_nan": (lambda m, x: x.clamp(0, 1), [np.array([NAN, 0.5, 2.0])]),
    "sign_nan": (lambda m, x: x.sign(), [np.array([NAN, -0.0, 2.0])]),
    "round_half_even": (lambda m, x: x.round(), [np.array([0.5, 1.5, 2.5, -0.5, -1.5])]),
    "remainder_signs": (lambda m, x, y: x % y, [np.array([-3.0, 3.0, -3.0, 3.0]), np.array([2.0, -2.0, -2.0, 2.0])]),
    "remainder_int_signs": (lambda m, x, y: x % y, [np.array([-3, 3, -3, 3]), np.array([2, -2, -2, 2])]),
    "floordiv_int_signs": (lambda m, x, y: x // y, [np.array([-3, 3, -3, 3]), np.array([2, -2, -2, 2])]),
    "div_trunc_int": (lambda m, x, y: m.div(x, y, rounding_mode="trunc"),
                      [np.array([-3, 3, -7]), np.array([2, -2, 2])]),
    "div_int": (lambda m, x, y: x / y, [np.array([-3, 3, -7]), np.array([2, -2, 2])]),
    "pow_int_int": (lambda m, x, y: x ** y, [np.array([-3, 3, -7, 0]), np.array([2, 3, 0, 0])]),
    "pow_neg_base_half": (lambda m, x: x ** 0.5, [np.array([-1.0, 4.0])]),
    "clamp_int_float_bounds": (lambda m, x: x.clamp(0.5, 1.5), [np.array([0, 1, 2])]),
    "abs_int64_min": (lambda m, x: x.abs(), [np.array([-2 ** 63, 5])]),
    # argument forms
    "squeeze_tuple": (lambda m, x: x.squeeze((1, 3)), [(3, 1, 4, 1)]),
    "unflatten_neg": (lambda m, x: x.unflatten(1, (2, -1)), [(3, 4)]),
    "movedim_tuple": (lambda m, x: m.movedim(x, (0, 1), (2, 0)), [(2, 3, 4)]),
    "transpose_1d": (lambda m, x: x.transpose(0, -1), [(3,)]),
    "t_0d": (lambda m, x: x.t(), [()]),
    "index_select_0d": (lambda m, x, i: x.index_select(0, i), [(3, 4), np.array(1)]),
    "split_tuple": (lambda m, x: x.split((1, 3), dim=1), [(2, 4)]),
    "chunk_more": (lambda m, x: x.chunk(5, 0), [(3, 2)]),
    "narrow_neg": (lambda m, x: x.narrow(-1, -2, 2), [(3, 4)]),
    "select_neg_dim": (lambda m, x: x.select(-1, 0), [(3, 4)]),
    "repeat_extra": (lambda m, x: x.repeat(2, 1, 1), [(3, 4)]),
    "expand_new_dims": (lambda m, x: x.expand(2, 2, 3, 4), [(3, 4)]),
    "flip_neg": (lambda m, x: x.flip(-1), [(3, 4)]),
    "tril_batched": (lambda m, x: x.tril(1), [(2, 3, 4)]),
    "cat_neg_dim0d": (lambda m, xs: m.cat(xs, -1), [[(2,), (3,)]]),
    "stack_0d_many": (lambda m, xs: m.stack(xs, 0), [[(), (), ()]]),
    "diag_index_assign": (lambda m, x: x[[0, 1, 2], [0, 1, 2]], [(3, 3)]),
    "bool_mask_0d": (lambda m, x: x[x.sum() > 0], [(3,)]),
    "index_with_tensor_and_none": (lambda m, x, i: x[None, i], [(3, 4), np.array([0, 2])]),
    "adv_2d_idx_pair": (lambda m, x, i, j: x[i, j], [(3, 4), np.array([[0, 1], [2, 2]]), np.array([[1], [3]])]),
    "softmax_neg_dim": (lambda m, x: m.softmax(x, -2), [(2, 3, 4)]),
    "logsumexp_tuple_neg": (lambda m, x: m.logsumexp(x, (-1, 0)), [(2, 3, 4)]),
    "var_dim_list": (lambda m, x: x.var([0, 2]), [(2, 3, 4)]),
    "sum_dim_list": (lambda m, x: x.sum([0, 2]), [(2, 3, 4)]),
    "mean_neg_keep": (lambda m, x: x.mean((-1, -3), keepdim=True), [(2, 3, 4)]),
    "norm_dim_tuple_p1": (lambda m, x: x.norm(1, (0, 1)), [(2, 3, 4)]),
    "max_neg_dim": (lambda m, x: tuple(x.max(-2)), [(2, 3, 4)]),
    "argmin_neg": (lambda m, x: x.argmin(-1, keepdim=True), [(2, 3, 4)]),
    "cumsum_int32": (lambda m, x: x.cumsum(0), [np.array([1, 2, 3], dtype=np.int32)]),
    "prod_bool": (lambda m, x: x.prod(), [np.array([True, False])]),
    "mean_int_dtype": (lambda m, x: x.mean(dtype=m.float64), [np.array([1, 2, 4])]),
    "sum_int_dtype_f": (lambda m, x: x.sum(dtype=m.float32), [np.array([1, 2, 4])]),
    "where_scalar_both": (lambda m, c: m.where(c, 1.0, 0.0), [np.array([True, False])]),
    "where_int_float": (lambda m, c, x: m.where(c, x, 2.5), [np.array([True, False]), np.array([1, 2])]),
    "clamp_min_gt_max": (lambda m, x: x.clamp(1.0, -1.0), [(4,)]),
    "einsum_trace_outer_batch": (lambda m, x, y: m.einsum("bi,bj->bij", x, y), [(2, 3), (2, 4)]),
    "einsum_implicit": (lambda m, x, y: m.einsum("ij,jk", x, y), [(2, 3), (3, 4)]),
    "einsum_sum_all": (lambda m, x: m.einsum("ij->", x), [(2, 3)]),
    "einsum_broadcast_one": (lambda m, x, y: m.einsum("ij,ij->i", x, y), [(2, 3), (2, 3)]),
    "matmul_batch_bcast": (lambda m, x, y: x @ y, [(3, 1, 2, 4), (5, 4, 2)]),
    "matmul_vec_batch": (lambda m, x, y: x @ y, [(2, 3, 4), (4,)]),
    "outer_0": (lambda m, x, y: m.outer(x, y), [(0,), (3,)]),
    "masked_fill_bcast": (lambda m, x, mk: x.masked_fill(mk, -1.0), [(3, 4), np.array([True, False, True, False])]),
    "masked_fill_tensor_val": (lambda m, x, mk, v: x.masked_fill(mk, v),
                               [(3, 4), np.array([True, False, True, False]), ()]),
    "scatter_add_dup": (lambda m, x, i, s: x.scatter_add(1, i, s), [(2, 3), np.array([[0, 0, 0], [2, 2, 1]]), (2, 3)]),
    "index_add_dup": (lambda m, x, i, s: x.index_add(0, i, s), [(3, 2), np.array([0, 0, 2, 0]), (4, 2)]),
    "pad_3d_last2": (lambda m, x: _F(m).pad(x, (0, 1, 1, 0)), [(2, 3, 4)]),
    "one_hot_2d": (lambda m, x: _F(m).one_hot(x, 4), [np.array([[0, 3], [1, 2]])]),
    "pow_scalar_base_int_tensor": (lambda m, x: 2 ** x, [np.array([1, 2, 3])]),
    "pow_float_base_int_tensor": (lambda m, x: 2.5 ** x, [np.array([1, 2, 3])]),
    "pow_tensor_float_exp_int": (lambda m, x: x ** 2.0, [np.array([1, 2, 3])]),
    "rsub_scalar": (lambda m, x: 1 - x, [(3,)]),
    "rdiv_int": (lambda m, x: 1 / x, [np.array([1, 2, 4])]),
    "neg_zero_sign": (lambda m, x: m.sign(-x * 0), [(3,)]),
    "atan2_int": (lambda m, x, y: m.atan2(x, y), [np.array([1, 2]), np.array([2, 1])]),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(EDGE))
def test_edge_inputs(name, dtype):
    fn, inputs = EDGE[name]
    with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        check_op(lambda *a: fn(fg, *a), lambda *a: fn(TORCH_NS, *a), inputs, dtype=dtype)


def test_relu_backward_kernel_nan():
    x = fg.tensor([NAN, -1.0, 2.0], requires_grad=True)
    fg.relu(x).sum().backward()  # plain backward uses the fused kernel
    assert x.grad.tolist()[0] == 1.0


# -- errors ----------------------------------------------------------------------------------------

ERRORS = {
    "add_shapes": (lambda m, x, y: m.add(x, y), [(3, 4), (5,)], "add"),
    "mul_shapes": (lambda m, x, y: m.mul(x, y), [(3, 4), (2, 4)], "mul"),
    "matmul_shapes": (lambda m, x, y: m.matmul(x, y), [(3, 4), (5, 6)], "matmul"),
    "matmul_0d": (lambda m, x, y: m.matmul(x, y), [(), (3,)], "matmul"),
    "matmul_batch": (lambda m, x, y: m.matmul(x, y), [(2, 3, 4), (3, 4, 5)], "matmul"),
    "dot_shapes": (lambda m, x, y: m.dot(x, y), [(3,), (4,)], "dot"),
    "dot_2d": (lambda m, x, y: m.dot(x, y), [(3, 3), (3,)], "dot"),
    "sum_dim": (lambda m, x: m.sum(x, 3), [(3, 4)], "sum"),
    "mean_dim": (lambda m, x: m.mean(x, -3), [(3, 4)], "mean"),
    "sum_dup_dim": (lambda m, x: m.sum(x, (0, 0)), [(3, 4)], "sum"),
    "softmax_dim": (lambda m, x: m.softmax(x, 2), [(3, 4)], "softmax"),
    "cumsum_dim": (lambda m, x: m.cumsum(x, 2), [(3, 4)], "cumsum"),
    "max_dim": (lambda m, x: m.max(x, 2), [(3, 4)], "max"),
    "argmax_dim": (lambda m, x: m.argmax(x, 5), [(3, 4)], "argmax"),
    "reshape_numel": (lambda m, x: m.reshape(x, (5, 3)), [(3, 4)], "reshape"),
    "reshape_two_neg": (lambda m, x: m.reshape(x, (-1, -1)), [(3, 4)], "reshape"),
    "view_noncontig": (lambda m, x: x.t().view(12), [(3, 4)], "view"),
    "permute_len": (lambda m, x: m.permute(x, (0,)), [(3, 4)], "permute"),
    "permute_dup": (lambda m, x: m.permute(x, (0, 0)), [(3, 4)], "permute"),
    "transpose_dim": (lambda m, x: m.transpose(x, 0, 2), [(3, 4)], "transpose"),
    "unsqueeze_dim": (lambda m, x: m.unsqueeze(x, 4), [(3, 4)], "unsqueeze"),
    "squeeze_dim": (lambda m, x: m.squeeze(x, 3), [(3, 4)], "squeeze"),
    "expand_bad": (lambda m, x: x.expand(3, 5), [(3, 4)], "expand"),
    "expand_fewer": (lambda m, x: x.expand(4), [(3, 4)], "expand"),
    "cat_shapes": (lambda m, x, y: m.cat([x, y], 0), [(3, 4), (3, 5)], "cat"),
    "cat_dim": (lambda m, x, y: m.cat([x, y], 2), [(3, 4), (3, 4)], "cat"),
    "stack_shapes": (lambda m, x, y: m.stack([x, y]), [(3, 4), (4, 3)], "stack"),
    "flip_dim": (lambda m, x: m.flip(x, (2,)), [(3, 4)], "flip"),
    "split_sizes": (lambda m, x: m.split(x, [1, 1], 0), [(3, 4)], "split"),
    "gather_dim": (lambda m, x, i: m.gather(x, 2, i), [(3, 4), np.zeros((3, 4), dtype=np.int64)], "gather"),
    "gather_oob": (lambda m, x, i: m.gather(x, 0, i), [(3, 4), np.full((3, 4), 3, dtype=np.int64)], "gather"),
    "index_select_oob": (lambda m, x, i: m.index_select(x, 0, i), [(3, 4), np.array([0, 5])], "index_select"),
    "index_select_float": (lambda m, x, i: m.index_select(x, 0, i), [(3, 4), np.array([0.0, 1.0])], "index_select"),
    "scatter_add_oob": (lambda m, x, i, s: m.scatter_add(x, 0, i, s),
                        [(3, 4), np.full((2, 4), -7, dtype=np.int64), (2, 4)], "scatter_add"),
    "masked_fill_mask": (lambda m, x, mk: m.masked_fill(x, mk, 0.0), [(3, 4), np.ones((3, 4), dtype=np.int64)],
                         "masked_fill"),
    "where_cond": (lambda m, c, x, y: m.where(c, x, y), [np.ones((3, 4)), (3, 4), (3, 4)], "where"),
    "where_shapes": (lambda m, c, x, y: m.where(c, x, y), [BOOL, (3, 4), (5,)], "where"),
    "tril_1d": (lambda m, x: m.tril(x), [(3,)], "tril"),
    "pad_odd": (lambda m, x: m.pad(x, (1,)), [(3, 4)], "pad"),
    "pad_long": (lambda m, x: m.pad(x, (1, 1, 1, 1, 1, 1)), [(3, 4)], "pad"),
    "repeat_few": (lambda m, x: x.repeat(2), [(3, 4)], "repeat"),
    "bitwise_float": (lambda m, x, y: m.bitwise_and(x, y), [(3,), (3,)], "bitwise_and"),
    "one_hot_float": (lambda m, x: m.one_hot(x, 3), [(3,)], "one_hot"),
    "one_hot_range": (lambda m, x: m.one_hot(x, 3), [np.array([0, 3])], "one_hot"),
    "item_many": (lambda m, x: x.item(), [(3,)], "item"),
    "bool_many": (lambda m, x: bool(x), [(3,)], "ambiguous"),
    "index_oob": (lambda m, x: x[3], [(3, 4)], "out of"),
    "index_too_many": (lambda m, x: x[0, 0, 0], [(3, 4)], "too many indices"),
    "index_tensor_oob": (lambda m, x, i: x[i], [(3, 4), np.array([0, 3])], "index"),
    "index_float": (lambda m, x, i: x[i], [(3, 4), np.array([0.0])], "tensors used as indices"),
    "mask_shape": (lambda m, x, mk: x[mk], [(3, 4), np.ones((4, 3), dtype=bool)], "mask"),
    "log_softmax_int": (lambda m, x: m.log_softmax(x, 0), [np.array([1, 2])], "log_softmax"),
    "norm_bad_p": (lambda m, x: m.norm(x, p="nuc", dim=0), [(3,)], "norm"),
    "chunk_zero": (lambda m, x: m.chunk(x, 0), [(3, 4)], "chunk"),
    "narrow_oob": (lambda m, x: m.narrow(x, 0, 2, 3), [(3, 4)], "narrow"),
    "select_oob": (lambda m, x: m.select(x, 0, 3), [(3, 4)], "select"),
    "einsum_operands": (lambda m, x: m.einsum("ij,jk->ik", x), [(3, 4)], "einsum"),
    "einsum_shapes": (lambda m, x, y: m.einsum("ij,jk->ik", x, y), [(3, 4), (5, 6)], "einsum"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors(name):
    fn, inputs, match = ERRORS[name]
    check_raises(lambda *a: fn(fg, *a), lambda *a: fn(TORCH_NS, *a), inputs, match=match)


def test_every_export_is_covered():
    """Every op that fastgrad exports from its op table appears in some case of this file."""
    import inspect
    import sys

    src = inspect.getsource(sys.modules[__name__])
    creation = {"arange", "bernoulli", "empty", "empty_like", "eye", "full", "full_like", "get_rng_state", "linspace",
                "logspace", "manual_seed", "normal", "ones", "ones_like", "rand", "rand_like", "randint", "randn",
                "randn_like", "randperm", "seed", "set_rng_state", "zeros", "zeros_like",
                "multinomial"}  # test_tensor.py; multinomial (integer output): test_multinomial.py
    names = [n for n in dir(fg) if not n.startswith("_") and callable(getattr(fg, n)) and n not in creation
             and getattr(getattr(fg, n), "__module__", "").startswith("fastgrad.ops")]
    assert len(names) > 100
    missing = [n for n in names if n not in CASE_IDS and not any(c.startswith(n + "_") for c in CASE_IDS)
               and f".{n}(" not in src]
    assert not missing, missing


@pytest.mark.parametrize("shapes", [[(3, 1), (4,)], [(2, 1, 4), (3, 1), ()], [(0, 1), (1, 5)], [(5,)]])
def test_broadcast_shapes(shapes):
    assert fg.broadcast_shapes(*shapes) == tuple(torch.broadcast_shapes(*shapes))
