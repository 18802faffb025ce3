"""Elementwise ops: forward (a _C kernel), vjp and jvp, each once.

A unary elementwise op has a diagonal Jacobian, so one derivative rule
`deriv(ctx, v) = f'(x) * v` serves both the vjp (v = grad) and the jvp
(v = tangent). Rules are written in fastgrad ops so they differentiate again;
when no graph is being built (plain backward) some use fused _C kernels.
"""
import math

from .. import _C
from .. import dtypes as _dt
from ..autograd.function import Function, refresh_view
from ..autograd.grad_mode import state
from ._util import (_FLOAT_ID0, Tensor, _wrap, as_tensor_arg, binary_operands, scalar_tensor, tensor_method,
                    tsum)

# ---------------------------------------------------------------------------------------------
# identity-like ops


class Alias(Function):
    """The same data as a new graph node (used by the function transforms)."""

    def forward(ctx, x):
        return x._data

    def vjp(ctx, g):
        return (g,)

    def jvp(ctx, t):
        return t


def alias(x):
    return Alias.apply(x)


class Clone(Function):
    def forward(ctx, x):
        return _C.copy(x._data)

    def vjp(ctx, g):
        return (g,)

    def jvp(ctx, t):
        return t


@tensor_method
def clone(input):
    return Clone.apply(input)


class Cast(Function):
    def forward(ctx, x, dtype):
        ctx.dtype = dtype
        return _C.astype(x._data, dtype._c)

    def vjp(ctx, g):
        return (g,)  # the engine casts it back to the input's dtype

    def jvp(ctx, t):
        return t.to(ctx.dtype)


def cast(x, dtype):
    if dtype.is_floating_point and x.dtype.is_floating_point:
        out = Cast.apply(x, dtype=dtype)
        return out
    return _wrap(_C.astype(x._data, dtype._c))  # int/bool results carry no gradient


# ---------------------------------------------------------------------------------------------
# unary ops


def _unary(name, kernel, deriv=None, save_out=False, float_only=False):
    """Builds the Function and public function of a unary elementwise op."""

    def forward(ctx, x):
        if not save_out:
            ctx.save_for_backward(x)
        return kernel(x._data)

    attrs = {"forward": forward, "save_output": save_out, "__qualname__": name.capitalize()}
    if deriv is None:
        attrs["differentiable"] = False
    else:
        attrs["vjp"] = lambda ctx, g: (deriv(ctx, g),)
        attrs["jvp"] = lambda ctx, t: deriv(ctx, t)
    cls = type(name.capitalize(), (Function,), attrs)

    def fn(input):
        if not isinstance(input, Tensor):
            input = as_tensor_arg(input, name)
        return cls.apply(input)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}."
    tensor_method(fn)
    return fn


def _x(ctx):
    return ctx.saved_tensors[0]


def _zero(ctx, v):
    return v * 0


def _fused_or(kernel_name, composed):
    """Uses the fused backward kernel when no graph is recorded, else `composed`."""
    kernel = getattr(_C, kernel_name)

    def deriv(ctx, v):
        out = ctx.__dict__.get("_out")  # the saved output Array (when recorded, not yet released)
        if not state.grad_enabled and not state.forward_level and out is not None and v._data.dtype_id == out.dtype_id:
            if out.version != ctx._out_version:
                ctx.output  # raises the clear "modified by an inplace operation" error
            return _wrap(kernel(v._data, out))
        return composed(ctx, v)

    return deriv


neg = _unary("neg", _C.neg, lambda ctx, v: -v)
negative = neg
abs = _unary("abs", _C.abs, lambda ctx, v: v * _x(ctx).sign())
sign = _unary("sign", _C.sign, _zero)
exp = _unary("exp", _C.exp, lambda ctx, v: v * ctx.output, save_out=True)
log = _unary("log", _C.log, lambda ctx, v: v / _x(ctx))
log1p = _unary("log1p", _C.log1p, lambda ctx, v: v / (_x(ctx) + 1))
expm1 = _unary("expm1", _C.expm1, lambda ctx, v: v * (ctx.output + 1), save_out=True)
sqrt = _unary("sqrt", _C.sqrt, lambda ctx, v: v / (ctx.output * 2), save_out=True)
rsqrt = _unary("rsqrt", _C.rsqrt, lambda ctx, v: v * ctx.output.pow(3) * -0.5, save_out=True)
square = _unary("square", _C.square, lambda ctx, v: v * _x(ctx) * 2)
reciprocal = _unary("reciprocal", _C.reciprocal, lambda ctx, v: -v * ctx.output.square(), save_out=True)
sin = _unary("sin", _C.sin, lambda ctx, v: v * _x(ctx).cos())
cos = _unary("cos", _C.cos, lambda ctx, v: -v * _x(ctx).sin())
tan = _unary("tan", _C.tan, lambda ctx, v: v * (ctx.output.square() + 1), save_out=True)
tanh = _unary("tanh", _C.tanh, _fused_or("tanh_backward", lambda ctx, v: v * (1 - ctx.output.square())),
              save_out=True)
sigmoid = _unary("sigmoid", _C.sigmoid,
                 _fused_or("sigmoid_backward", lambda ctx, v: v * ctx.output * (1 - ctx.output)), save_out=True)
relu = _unary("relu", _C.relu, _fused_or("relu_backward", lambda ctx, v: v * ~(ctx.output <= 0)), save_out=True)
erf = _unary("erf", _C.erf, lambda ctx, v: v * (-_x(ctx).square()).exp() * (2 / math.sqrt(math.pi)))
floor = _unary("floor", _C.floor, _zero)
ceil = _unary("ceil", _C.ceil, _zero)
trunc = _unary("trunc", _C.trunc, _zero)
isnan = _unary("isnan", _C.isnan)
isinf = _unary("isinf", _C.isinf)
isfinite = _unary("isfinite", _C.isfinite)
logical_not = _unary("logical_not", _C.logical_not)
bitwise_not = _unary("bitwise_not", _C.bitwise_not)


def _gelu_deriv(ctx, v):
    x = _x(ctx)
    if not state.grad_enabled and not state.forward_level and v.dtype is x.dtype:
        return _wrap(_C.gelu_backward(v._data, x._data))
    cdf = (1 + (x * (1 / math.sqrt(2))).erf()) * 0.5
    pdf = (x.square() * -0.5).exp() * (1 / math.sqrt(2 * math.pi))
    return v * (cdf + x * pdf)


def _gelu_tanh_deriv(ctx, v):
    x = _x(ctx)
    if not state.grad_enabled and not state.forward_level and v.dtype is x.dtype:
        return _wrap(_C.gelu_tanh_backward(v._data, x._data))
    k = math.sqrt(2 / math.pi)
    inner = (x + x.pow(3) * 0.044715) * k
    t = inner.tanh()
    dinner = (x.square() * (3 * 0.044715) + 1) * k
    return v * (0.5 * (1 + t) + 0.5 * x * (1 - t.square()) * dinner)


def _silu_deriv(ctx, v):
    x = _x(ctx)
    if not state.grad_enabled and not state.forward_level and v.dtype is x.dtype:
        return _wrap(_C.silu_backward(v._data, x._data))
    s = x.sigmoid()
    return v * s * (1 + x * (1 - s))


_gelu_exact = _unary("gelu", _C.gelu, _gelu_deriv)
_gelu_tanh = _unary("gelu_tanh", _C.gelu_tanh, _gelu_tanh_deriv)
silu = _unary("silu", _C.silu, _silu_deriv)


@tensor_method
def gelu(input, approximate="none"):
    if approximate == "none":
        return _gelu_exact(input)
    if approximate == "tanh":
        return _gelu_tanh(input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


class Round(Function):
    def forward(ctx, x, decimals):
        if decimals == 0:
            return _C.round(x._data)
        scale = scalar_tensor(10.0 ** decimals, x.dtype)._data
        return _C.div(_C.round(_C.mul(x._data, scale)), scale)

    def vjp(ctx, g):
        return (g * 0,)

    def jvp(ctx, t):
        return t * 0


@tensor_method
def round(input, decimals=0):
    return Round.apply(input, decimals=int(decimals))


# -- parametrised unary ----------------------------------------------------------------------


class LeakyRelu(Function):
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return _C.leaky_relu(x._data, slope)

    def _d(ctx, v):
        (x,) = ctx.saved_tensors
        return where(x > 0, v, v * ctx.slope)

    def vjp(ctx, g):
        return (ctx._d(g),)

    def jvp(ctx, t):
        return ctx._d(t)


@tensor_method
def leaky_relu(input, negative_slope=0.01):
    return LeakyRelu.apply(input, slope=float(negative_slope))


class Elu(Function):
    save_output = True

    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return _C.elu(x._data, alpha)

    def _d(ctx, v):
        (x,) = ctx.saved_tensors
        # at x == 0 the slope is alpha, as a constant: PyTorch's 2nd derivative there is 0
        return where(x > 0, v, v * where(x < 0, ctx.output + ctx.alpha, scalar_tensor(ctx.alpha, x.dtype)))

    def vjp(ctx, g):
        return (ctx._d(g),)

    def jvp(ctx, t):
        return ctx._d(t)


@tensor_method
def elu(input, alpha=1.0):
    return Elu.apply(input, alpha=float(alpha))


class Softplus(Function):
    def forward(ctx, x, beta, threshold):
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        return _C.softplus(x._data, beta, threshold)

    def _d(ctx, v):
        (x,) = ctx.saved_tensors
        bx = x * ctx.beta
        s = bx.sigmoid()
        # at beta * x == threshold the slope is a constant: PyTorch's 2nd derivative there is 0
        return where(bx > ctx.threshold, v, v * where(bx < ctx.threshold, s, s.detach()))

    def vjp(ctx, g):
        return (ctx._d(g),)

    def jvp(ctx, t):
        return ctx._d(t)


@tensor_method
def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta=float(beta), threshold=float(threshold))


class Clamp(Function):
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return _C.clamp(x._data, lo, hi)

    def _d(ctx, v):
        (x,) = ctx.saved_tensors
        mask = None
        if ctx.lo is not None:
            mask = x >= ctx.lo
        if ctx.hi is not None:
            m = x <= ctx.hi
            mask = m if mask is None else mask & m
        return v * mask

    def vjp(ctx, g):
        return (ctx._d(g),)

    def jvp(ctx, t):
        return ctx._d(t)


@tensor_method
def clamp(input, min=None, max=None):
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        # where, not maximum/minimum: at a tie the input keeps the whole gradient (as PyTorch)
        out = input
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    rt = _dt.result_type(input, *[v for v in (min, max) if v is not None])
    if rt is not input.dtype:  # clamp(int_tensor, 0.5) is float, as in PyTorch
        input = input.to(rt)
    return Clamp.apply(input, lo=None if min is None else float(min), hi=None if max is None else float(max))


clip = clamp
Tensor.clip = clamp


class PowScalar(Function):
    def forward(ctx, x, exponent):
        ctx.save_for_backward(x)
        ctx.e = exponent
        return _C.pow_scalar(x._data, exponent)

    def _d(ctx, v):
        (x,) = ctx.saved_tensors
        e = ctx.e
        if e == 0:
            return v * 0
        if e == 1:
            return v
        if e == 2:
            return v * x * 2
        return v * x.pow(e - 1) * e

    def vjp(ctx, g):
        return (ctx._d(g),)

    def jvp(ctx, t):
        return ctx._d(t)


# ---------------------------------------------------------------------------------------------
# binary ops


class Add(Function):
    def forward(ctx, a, b):
        return _C.add(a._data, b._data)

    def vjp(ctx, g):
        return g, g

    def jvp(ctx, ta, tb):
        return tsum(ta, tb)


class Sub(Function):
    def forward(ctx, a, b):
        return _C.sub(a._data, b._data)

    def vjp(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)

    def jvp(ctx, ta, tb):
        return tsum(ta, None if tb is None else -tb)


def _needed(t, other):
    """t if a rule will read it: the other input needs a gradient (or a tangent is
    being pushed). x * 3 keeps no reference to x, so x may change in place later."""
    return t if (other._requires_grad or state.forward_level) else None


class Mul(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(_needed(a, b), _needed(b, a))
        return _C.mul(a._data, b._data)

    def vjp(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (g * b if na else None), (g * a if nb else None)

    def jvp(ctx, ta, tb):
        a, b = ctx.saved_tensors
        return tsum(None if ta is None else ta * b, None if tb is None else a * tb)


class Div(Function):
    def forward(ctx, a, b):
        # g / b needs b for either input; a only for b's gradient
        ctx.save_for_backward(_needed(a, b), b)
        return _C.div(a._data, b._data)

    def vjp(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        # -g * ((a / b) / b), PyTorch's order: at b = 0 the 2nd derivative is inf, not 0 * inf
        return (g / b if na else None), (-g * ((a / b) / b) if nb else None)

    def jvp(ctx, ta, tb):
        a, b = ctx.saved_tensors
        return tsum(None if ta is None else ta / b, None if tb is None else -tb * ((a / b) / b))


class Pow(Function):
    save_output = True

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _C.pow(a._data, b._data)

    def _da(ctx, v):
        a, b = ctx.saved_tensors
        # b * a**(b-1), with 0 where b == 0 (so d/da a**0 is 0 even at a = 0)
        return where(b == 0, v * 0, v * b * a.pow(b - 1))

    def _db(ctx, v):
        a, b = ctx.saved_tensors
        # out * log(a); a == 0 with b >= 0 contributes 0 (torch's convention)
        return where((a == 0) & (b >= 0), v * 0, v * ctx.output * a.log())

    def vjp(ctx, g):
        na, nb = ctx.needs_input_grad
        return (ctx._da(g) if na else None), (ctx._db(g) if nb else None)

    def jvp(ctx, ta, tb):
        return tsum(None if ta is None else ctx._da(ta), None if tb is None else ctx._db(tb))


class _MaxMin(Function):
    kernel = None

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return type(ctx).kernel(a._data, b._data)

    def _split(ctx, v):
        a, b = ctx.saved_tensors
        # the winner takes the gradient; a tie splits it in half; with a NaN
        # neither loses and both get it (PyTorch's masks)
        half = (a == b) * 0.5
        wa = where(ctx._wins(b, a), half, 1 - half)
        wb = where(ctx._wins(a, b), half, 1 - half)
        return v * wa, v * wb

    def vjp(ctx, g):
        return ctx._split(g)

    def jvp(ctx, ta, tb):
        ga, _ = ctx._split(ta) if ta is not None else (None, None)
        _, gb = ctx._split(tb) if tb is not None else (None, None)
        return tsum(ga, gb)


class Maximum(_MaxMin):
    kernel = staticmethod(_C.maximum)

    @staticmethod
    def _wins(a, b):
        return a > b


class Minimum(_MaxMin):
    kernel = staticmethod(_C.minimum)

    @staticmethod
    def _wins(a, b):
        return a < b


class Atan2(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _C.atan2(a._data, b._data)

    def _recip(ctx):
        # 1 / (a^2 + b^2), and 0 at the origin (PyTorch's convention; the
        # safe denominator keeps higher derivatives free of 0 * inf)
        a, b = ctx.saved_tensors
        den = a * a + b * b
        zero = den == 0
        return where(zero, scalar_tensor(0, den.dtype), where(zero, scalar_tensor(1, den.dtype), den).reciprocal())

    def _d(ctx, va, vb):
        a, b = ctx.saved_tensors
        r = ctx._recip()
        return tsum(None if va is None else va * b * r, None if vb is None else -vb * a * r)

    def vjp(ctx, g):
        a, b = ctx.saved_tensors
        r = ctx._recip()
        na, nb = ctx.needs_input_grad
        return (g * b * r if na else None), (-g * a * r if nb else None)

    def jvp(ctx, ta, tb):
        return ctx._d(ta, tb)


class Remainder(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _C.remainder(a._data, b._data)

    def vjp(ctx, g):
        a, b = ctx.saved_tensors
        return g, (-g * floor_divide(a, b) if ctx.needs_input_grad[1] else None)

    def jvp(ctx, ta, tb):
        a, b = ctx.saved_tensors
        return tsum(ta, None if tb is None else -tb * floor_divide(a, b))


def _nondiff_binary(name, kernel):
    cls = type(name.capitalize(), (Function,),
               {"forward": lambda ctx, a, b: kernel(a._data, b._data), "differentiable": False})

    def fn(input, other):
        a, b = binary_operands(input, other, name)
        return cls.apply(a, b)

    fn.__name__ = name
    tensor_method(fn)
    return fn


floor_divide = _nondiff_binary("floor_divide", _C.floor_divide)
eq = _nondiff_binary("eq", _C.eq)
ne = _nondiff_binary("ne", _C.ne)
lt = _nondiff_binary("lt", _C.lt)
le = _nondiff_binary("le", _C.le)
gt = _nondiff_binary("gt", _C.gt)
ge = _nondiff_binary("ge", _C.ge)
logical_and = _nondiff_binary("logical_and", _C.logical_and)
logical_or = _nondiff_binary("logical_or", _C.logical_or)
logical_xor = _nondiff_binary("logical_xor", _C.logical_xor)
bitwise_and = _nondiff_binary("bitwise_and", _C.bitwise_and)
bitwise_or = _nondiff_binary("bitwise_or", _C.bitwise_or)
bitwise_xor = _nondiff_binary("bitwise_xor", _C.bitwise_xor)
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def _binary_fn(name, cls):
    def fn(input, other):
        a, b = binary_operands(input, other, name)
        return cls.apply(a, b)

    fn.__name__ = name
    tensor_method(fn)
    return fn


# -- a float tensor with a Python number: x op s in one native call (_C.binary_scalar converts s to
# x's dtype, as the 0-d tensor of the general path would be). Per-op overhead matters here: `x * 0.5`
# and `1 - p` are everywhere in losses, layers and the rules themselves. bool scalars, integer tensors
# and NumPy numbers take the general path (their promotion differs).


class AddScalar(Function):
    def forward(ctx, x, s):
        return _C.binary_scalar(x._data, s, "+")

    def vjp(ctx, g):
        return (g,)

    def jvp(ctx, t):
        return t


class SubScalar(Function):
    """x - s, or s - x when rev."""

    def forward(ctx, x, s, rev):
        ctx.rev = rev
        return _C.binary_scalar(x._data, s, "-", rev)

    def vjp(ctx, g):
        return (-g if ctx.rev else g,)

    def jvp(ctx, t):
        return -t if ctx.rev else t


class MulScalar(Function):
    def forward(ctx, x, s):
        ctx.s = s
        return _C.binary_scalar(x._data, s, "*")

    def vjp(ctx, g):
        return (g * ctx.s,)

    def jvp(ctx, t):
        return t * ctx.s


class DivScalar(Function):
    """x / s, or s / x when rev."""

    def forward(ctx, x, s, rev):
        ctx.s, ctx.rev = s, rev
        if rev:
            ctx.save_for_backward(x)
        return _C.binary_scalar(x._data, s, "/", rev)

    def _d(ctx, v):
        if not ctx.rev:
            return v / ctx.s
        (x,) = ctx.saved_tensors
        return -v * ((ctx.s / x) / x)  # Div's rule with a = s: the same bits as the general path

    def vjp(ctx, g):
        return (ctx._d(g),)

    def jvp(ctx, t):
        return ctx._d(t)


_NUMBER = (float, int)  # exactly these types: not bool, not NumPy scalars


def _arith(name, op, scalar, rev):
    """add / mul / div: same-dtype tensors go straight to `op`; a float tensor
    and a Python number make one native call (`scalar`: a number on the left
    is swapped in where the op commutes, passed with rev=True where it does
    not); anything else is promoted first."""

    def f(input, other):
        if isinstance(other, Tensor):
            if isinstance(input, Tensor) and input._data.dtype_id == other._data.dtype_id:
                return op.apply(input, other)  # same dtypes: nothing to promote
        elif type(other) in _NUMBER and isinstance(input, Tensor) and input._data.dtype_id >= _FLOAT_ID0:
            return scalar.apply(input, s=other, rev=False) if rev else scalar.apply(input, s=other)
        if type(input) in _NUMBER and isinstance(other, Tensor) and other._data.dtype_id >= _FLOAT_ID0:
            return scalar.apply(other, s=input, rev=True) if rev else scalar.apply(other, s=input)
        a, b = binary_operands(input, other, name)
        return op.apply(a, b)

    f.__name__ = f.__qualname__ = name
    return f


_add = _arith("_add", Add, AddScalar, rev=False)
mul = _arith("mul", Mul, MulScalar, rev=False)
_div = _arith("_div", Div, DivScalar, rev=True)
tensor_method(_add)
tensor_method(mul)
tensor_method(_div)


@tensor_method
def _sub(input, other):
    if isinstance(other, Tensor):
        if isinstance(input, Tensor) and input._data.dtype_id == other._data.dtype_id >= _FLOAT_ID0:
            return Sub.apply(input, other)  # same float dtypes: nothing to promote, no bool to refuse
    elif type(other) in _NUMBER and isinstance(input, Tensor) and input._data.dtype_id >= _FLOAT_ID0:
        return SubScalar.apply(input, s=other, rev=False)
    if type(input) in _NUMBER and isinstance(other, Tensor) and other._data.dtype_id >= _FLOAT_ID0:
        return SubScalar.apply(other, s=input, rev=True)
    if any(x.dtype is _dt.bool_ if isinstance(x, Tensor) else isinstance(x, bool) for x in (input, other)):
        raise RuntimeError("sub: Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    a, b = binary_operands(input, other, "sub")
    return Sub.apply(a, b)


maximum = _binary_fn("maximum", Maximum)
minimum = _binary_fn("minimum", Minimum)
atan2 = _binary_fn("atan2", Atan2)
remainder = _binary_fn("remainder", Remainder)
multiply = mul


@tensor_method
def add(input, other, alpha=1):
    if alpha != 1:
        other = other * alpha
    return _add(input, other)


@tensor_method
def sub(input, other, alpha=1):
    if alpha != 1:
        other = other * alpha
    return _sub(input, other)


subtract = sub


@tensor_method
def div(input, other, rounding_mode=None):
    if rounding_mode is None:
        return Tensor._div(input, other)
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        a, b = binary_operands(input, other, "div")
        if not a.dtype.is_floating_point:  # integers stay integers: floor, then step towards 0
            q = floor_divide(a, b)
            return q + ((remainder(a, b) != 0) & ((a < 0) != (b < 0))).to(q.dtype)
        return Tensor._div(a, b).trunc()
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")


divide = div
true_divide = div
Tensor.negative = neg
Tensor.subtract = sub
Tensor.multiply = mul
Tensor.divide = div
Tensor.true_divide = div


@tensor_method
def pow(input, exponent):
    if isinstance(input, Tensor) and isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        if not input.dtype.is_floating_point and isinstance(exponent, float):
            input = input.to(_dt.default_float)
        return PowScalar.apply(input, exponent=exponent)
    a, b = binary_operands(input, exponent, "pow")
    return Pow.apply(a, b)



class Where(Function):
    def forward(ctx, a, b, cond):
        ctx.cond = cond
        return _C.where(cond._data, a._data, b._data)

    def vjp(ctx, g):
        na, nb = ctx.needs_input_grad
        zero = scalar_tensor(0, g.dtype)
        return (where(ctx.cond, g, zero) if na else None), (where(ctx.cond, zero, g) if nb else None)

    def jvp(ctx, ta, tb):
        zero = scalar_tensor(0, (ta if ta is not None else tb).dtype)
        return where(ctx.cond, zero if ta is None else ta, zero if tb is None else tb)


def where(condition, input=None, other=None):
    if input is None and other is None:
        from .index import nonzero

        return tuple(nonzero(condition).unbind(1))
    if not isinstance(condition, Tensor):
        condition = as_tensor_arg(condition, "where")
    if condition.dtype is not _dt.bool_:
        raise TypeError(f"where: expected condition to be a bool tensor, got {condition.dtype.name}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = as_tensor_arg(input, "where")  # where(c, 1.0, 0.0): a 0-d tensor of the scalar's dtype
    a, b = binary_operands(input, other, "where")
    return Where.apply(a, b, cond=condition)


def _where_method(self, condition, other):
    """x.where(condition, y) is where(condition, x, y), as in PyTorch."""
    return where(condition, self, other)


Tensor.where = _where_method


# ---------------------------------------------------------------------------------------------
# operators


def _rev(fn):
    def r(self, other):
        return fn(other, self)

    return r


Tensor.__add__ = _add
Tensor.__radd__ = _rev(_add)
Tensor.__sub__ = _sub
Tensor.__rsub__ = _rev(_sub)
Tensor.__mul__ = mul
Tensor.__rmul__ = _rev(mul)
Tensor.__truediv__ = Tensor._div
Tensor.__rtruediv__ = _rev(Tensor._div)
Tensor.__floordiv__ = floor_divide
Tensor.__rfloordiv__ = _rev(floor_divide)
Tensor.__mod__ = remainder
Tensor.__rmod__ = _rev(remainder)
Tensor.__pow__ = pow
Tensor.__rpow__ = _rev(pow)
Tensor.__neg__ = neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = abs
Tensor.__eq__ = eq
Tensor.__ne__ = ne
Tensor.__lt__ = lt
Tensor.__le__ = le
Tensor.__gt__ = gt
Tensor.__ge__ = ge
Tensor.__and__ = bitwise_and
Tensor.__rand__ = _rev(bitwise_and)
Tensor.__or__ = bitwise_or
Tensor.__ror__ = _rev(bitwise_or)
Tensor.__xor__ = bitwise_xor
Tensor.__rxor__ = _rev(bitwise_xor)
Tensor.__invert__ = bitwise_not


# ---------------------------------------------------------------------------------------------
# in place


def _check_inplace_leaf(t, op):
    if not state.grad_enabled:
        return
    if t._requires_grad and t._node is None:
        raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place operation.")
    b = getattr(t, "_base", None)  # (a Parameter made by nn may lack the slot)
    if b is not None and b[0]._requires_grad and b[0]._node is None:
        raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used in an in-place "
                           "operation.")


def _through_view(t):
    """t's root tensor if t is a view whose writes autograd must track, else None."""
    b = getattr(t, "_base", None)  # (a Parameter made by nn may lack the slot)
    if b is None:
        return None
    root = b[0]
    if (state.grad_enabled and root._requires_grad) or (state.forward_level and _has_tangent(root)):
        return root
    return None


def inplace(t, op, compute, native=None):
    """Runs an in-place op on t.

    compute(x) -> Tensor: the out-of-place result for the current value x.
    native(): optional fast path writing t's memory directly (no autograd).
    With autograd, the result is computed out of place from a snapshot of t
    (so rules that need the old value still have it) and written back; t then
    becomes that result's node in the graph. Either way t's version counter
    is bumped, which makes any backward that saved t's old value raise.
    """
    _check_inplace_leaf(t, op)
    b = getattr(t, "_base", None)  # (a Parameter made by nn may lack the slot)
    if b is not None and (b[0]._node is not b[2] or b[0]._tangent is not b[3]) and (
            state.grad_enabled or state.forward_level):
        refresh_view(t)  # the root was written since t was made: start from its current graph
    root = _through_view(t) if b is not None else None
    recording = state.grad_enabled and (t._requires_grad or getattr(compute, "requires_grad", False)
                                        or root is not None)
    # forward mode (fg.jvp): the tangent must be pushed through the write too
    forward = state.forward_level and (_has_tangent(t) or getattr(compute, "has_tangent", False)
                                       or root is not None)
    if not recording and not forward and native is not None:
        native()
        return t
    if state.grad_enabled or forward:
        old = t
        if recording or forward:  # the op may save its input: a snapshot, not t itself
            old = _wrap(_C.copy(t._data))
            old._node, old._requires_grad, old._tangent = t._node, t._requires_grad, t._tangent
        res = compute(old)
    else:
        res = compute(t)
    if res.shape != t.shape:
        raise RuntimeError(f"{op}: output with shape {list(t.shape)} doesn't match the broadcast shape {list(res.shape)}")
    if res.dtype is not t.dtype and res.dtype.is_floating_point and not t.dtype.is_floating_point:
        raise RuntimeError(f"{op}: result type {res.dtype.name} can't be cast to the desired output type {t.dtype.name}")
    _C.copy_into(t._data, res._data)
    if b is not None and (recording or forward):
        _write_through_view(t, res)
        return t
    if res._requires_grad:
        t._node, t._requires_grad = res._node, True
    if forward:
        t._tangent = res._tangent
    return t


def _write_through_view(t, res):
    """After writing res into view t: the root's graph gets a CopySlices node
    (root outside the view, res inside), and t becomes a view of the new root."""
    from .shape import CopySlices

    root, steps = t._base[0], t._base[1]
    old = _wrap(root._data)
    old._node, old._requires_grad, old._tangent = root._node, root._requires_grad, root._tangent
    new = CopySlices.apply(old, res, steps=steps)
    if new._requires_grad:
        root._node, root._requires_grad = new._node, True
    if state.forward_level:
        root._tangent = new._tangent
    refresh_view(t)


def _has_tangent(x):
    """Whether x carries a tangent of a running fg.jvp level (nested levels included)."""
    tt = x._tangent if isinstance(x, Tensor) else None
    if tt is None or not state.forward_level:
        return False
    from ..autograd.function import active_levels, tangent_at

    return any(tangent_at(x, lv) is not None for lv in active_levels(state.forward_level))


class _Compute:
    """compute() closure that knows whether its other operand needs grad."""

    __slots__ = ("fn", "requires_grad", "has_tangent")

    def __init__(self, fn, other):
        self.fn = fn
        self.requires_grad = isinstance(other, Tensor) and other._requires_grad
        self.has_tangent = _has_tangent(other)

    def __call__(self, x):
        return self.fn(x)


def _inplace_binary(name, fn, native_name):
    native_kernel = getattr(_C, native_name, None)

    def method(self, other, **kw):
        def native():
            o = other if isinstance(other, Tensor) else scalar_tensor(other, _dt.result_type(self, other))
            if kw.get("alpha", 1) != 1:
                o = o * kw["alpha"]
            native_kernel(self._data, o._data)

        return inplace(self, name, _Compute(lambda x: fn(x, other, **kw), other),
                       native if native_kernel is not None else None)

    method.__name__ = name
    setattr(Tensor, name, method)
    return method


_inplace_binary("add_", add, "add_")
_inplace_binary("sub_", sub, "sub_")
_inplace_binary("mul_", mul, "mul_")
_inplace_binary("div_", div, "div_")
Tensor.__iadd__ = Tensor.add_
Tensor.__isub__ = Tensor.sub_
Tensor.__imul__ = Tensor.mul_
Tensor.__itruediv__ = Tensor.div_


@tensor_method
def clamp_(self, min=None, max=None):
    def native():
        _C.clamp_(self._data, None if min is None else float(min), None if max is None else float(max))

    return inplace(self, "clamp_", _Compute(lambda x: clamp(x, min, max), None), native)


@tensor_method
def pow_(self, exponent):
    return inplace(self, "pow_", _Compute(lambda x: pow(x, exponent), exponent))


@tensor_method
def neg_(self):
    return inplace(self, "neg_", _Compute(neg, None))


@tensor_method
def exp_(self):
    return inplace(self, "exp_", _Compute(exp, None))


@tensor_method
def relu_(self):
    return inplace(self, "relu_", _Compute(relu, None))


@tensor_method
def sigmoid_(self):
    return inplace(self, "sigmoid_", _Compute(sigmoid, None))


@tensor_method
def tanh_(self):
    return inplace(self, "tanh_", _Compute(tanh, None))


def _constant_fill(self, op, value):
    """fill_/zero_ on a view of a tensor in the graph: the root learns that
    the region is now a constant."""
    from .creation import full_like

    return inplace(self, op, _Compute(lambda x: full_like(x, value), None))


@tensor_method
def zero_(self):
    _check_inplace_leaf(self, "zero_")
    if getattr(self, "_base", None) is not None and _through_view(self) is not None:
        return _constant_fill(self, "zero_", 0)
    _C.copy_into(self._data, _C.scalar(0, self._data.dtype))
    if self._node is not None:
        self._node, self._requires_grad = None, False  # the new value is a constant
    self._tangent = None
    return self


@tensor_method
def fill_(self, value):
    _check_inplace_leaf(self, "fill_")
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise RuntimeError(f"fill_: only supports 0-dimension value tensor but got tensor with {value.ndim} dimensions")
        value = value.item()
    if getattr(self, "_base", None) is not None and _through_view(self) is not None:
        return _constant_fill(self, "fill_", value)
    _C.copy_into(self._data, _C.scalar(value, self._data.dtype))
    if self._node is not None:
        self._node, self._requires_grad = None, False
    self._tangent = None
    return self


@tensor_method
def copy_(self, src):
    if not isinstance(src, Tensor):
        src = as_tensor_arg(src, "copy_")
    if (state.grad_enabled and (self._requires_grad or src._requires_grad)) or (
            state.forward_level and (_has_tangent(self) or _has_tangent(src))) or (
            getattr(self, "_base", None) is not None and _through_view(self) is not None):
        _check_inplace_leaf(self, "copy_")
        from .shape import broadcast_to

        return inplace(self, "copy_", _Compute(lambda x: broadcast_to(src.to(self.dtype), self.shape) + x * 0, src))
    _C.copy_into(self._data, src._data)
    return self
