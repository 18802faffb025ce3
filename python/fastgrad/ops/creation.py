"""Tensor creation: constants, ranges, and random numbers from the Philox
generator (same seed -> same numbers, for any thread count)."""
import numpy as np

from .. import _C
from .. import dtypes as _dt
from ..device import to_device
from ..tensor import Tensor, tensor_method

_wrap = Tensor._wrap


def _size(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        return [int(s) for s in size]
    except TypeError:
        raise TypeError(f"{op}: size must be ints or a tuple of ints, got {size!r}") from None


def _dev(device, op):
    d = to_device(device)
    if d.type != "cpu":
        from ..device import check_usable

        check_usable(d, op)
    return d._c_name()


def _on(arr, device, op):
    """arr (made on the CPU) moved to `device`: host-built ranges and random
    numbers (one Philox stream for every device, so a CUDA tensor gets the
    values the CPU would)."""
    dev = _dev(device, op)
    return arr if dev == "cpu" else _C.to_device(arr, dev)


def _finish(arr, requires_grad):
    t = _wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _dtype(dtype, default, op):
    return default if dtype is None else _dt.to_dtype(dtype, op)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    dt = _dtype(dtype, _dt.default_float, "zeros")
    return _finish(_C.zeros(_size(size, "zeros"), dt._c, _dev(device, "zeros")), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    dt = _dtype(dtype, _dt.default_float, "ones")
    return _finish(_C.full(_size(size, "ones"), 1.0, dt._c, _dev(device, "ones")), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    dt = _dtype(dtype, _dt.default_float, "empty")
    return _finish(_C.empty(_size(size, "empty"), dt._c, _dev(device, "empty")), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    dt = _dtype(dtype, _dt.scalar_dtype(fill_value), "full")
    return _finish(_C.full(_size((size,), "full"), fill_value, dt._c, _dev(device, "full")), requires_grad)


def _like(fn, input, dtype, requires_grad, *args, device=None):
    return fn(input.shape, *args, dtype=dtype if dtype is not None else input.dtype, requires_grad=requires_grad,
              device=input.device if device is None else device)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    return _like(zeros, input, dtype, requires_grad, device=device)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    return _like(ones, input, dtype, requires_grad, device=device)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    return _like(empty, input, dtype, requires_grad, device=device)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return full(input.shape, fill_value, dtype=dtype if dtype is not None else input.dtype,
                requires_grad=requires_grad, device=input.device if device is None else device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if vals[2] == 0:
        raise ValueError("arange: step must be nonzero")
    if (vals[1] - vals[0]) / vals[2] < 0:
        raise ValueError(f"arange: upper bound and larger bound inconsistent with step sign "
                         f"(start={vals[0]}, end={vals[1]}, step={vals[2]})")
    is_int = all(isinstance(v, int) for v in vals)
    dt = _dtype(dtype, _dt.int64 if is_int else _dt.default_float, "arange")
    # computed in float64 (or int64) then cast, as PyTorch does
    a = np.arange(*vals, dtype=np.int64 if is_int else np.float64)
    return _finish(_on(_C.astype(_C.from_numpy(a), dt._c), device, "arange"), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    dt = _dtype(dtype, _dt.default_float, "linspace")
    a = np.linspace(float(start), float(end), int(steps), dtype=np.float64)
    return _finish(_on(_C.astype(_C.from_numpy(a), dt._c), device, "linspace"), requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    return linspace(start, end, steps, dtype=_dt.float64).mul(np.log(base)).exp().to(
        _dtype(dtype, _dt.default_float, "logspace")).requires_grad_(requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    if n < 0 or m < 0:
        raise ValueError(f"eye: n and m must be non-negative, got {n} and {m}")
    dt = _dtype(dtype, _dt.default_float, "eye")
    return _finish(_on(_C.astype(_C.from_numpy(np.eye(n, m)), dt._c), device, "eye"), requires_grad)


# -- random ----------------------------------------------------------------------------------------


def manual_seed(seed):
    """Seeds the global generator; the same seed gives the same numbers everywhere."""
    _C.manual_seed(int(seed) & ((1 << 64) - 1))


seed = manual_seed


def get_rng_state():
    return _C.get_rng_state()


def set_rng_state(state):
    _C.set_rng_state(*state) if isinstance(state, tuple) else _C.set_rng_state(state)


def _float_dtype(dtype, op):
    dt = _dtype(dtype, _dt.default_float, op)
    if not dt.is_floating_point:
        raise TypeError(f"{op}: expected a floating-point dtype, got {dt.name}")
    return dt


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    dt = _float_dtype(dtype, "rand")
    return _finish(_C.rand(_size(size, "rand"), dt._c, _dev(device, "rand")), requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    dt = _float_dtype(dtype, "randn")
    return _finish(_C.randn(_size(size, "randn"), dt._c, _dev(device, "randn")), requires_grad)


def rand_like(input, dtype=None, device=None):
    return rand(input.shape, dtype=dtype or input.dtype, device=device or input.device)


def randn_like(input, dtype=None, device=None):
    return randn(input.shape, dtype=dtype or input.dtype, device=device or input.device)


def randint(low=0, high=None, size=None, dtype=None, device=None, generator=None, requires_grad=False):
    if size is None and isinstance(high, (tuple, list)):
        high, size = None, high  # randint(high, size), as torch
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint: missing the 'size' argument")
    dt = _dtype(dtype, _dt.int64, "randint")
    return _wrap(_C.randint(int(low), int(high), _size((size,), "randint"), dt._c, _dev(device, "randint")))


def normal(mean=0.0, std=1.0, size=None, dtype=None, device=None, generator=None, requires_grad=False):
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        m = mean if isinstance(mean, Tensor) else None
        s = std if isinstance(std, Tensor) else None
        shape = (m if m is not None else s).shape
        like = m if m is not None else s
        return randn(shape, dtype=like.dtype, device=like.device) * std + mean
    if size is None:
        raise TypeError("normal: 'size' is required when mean and std are numbers")
    if std < 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    dt = _float_dtype(dtype, "normal")
    return _finish(_C.normal(float(mean), float(std), _size((size,), "normal"), dt._c, _dev(device, "normal")),
                   requires_grad)


def randperm(n, dtype=None, device=None, generator=None):
    if n < 0:
        raise ValueError(f"randperm: n must be non-negative, got {n}")
    out = _wrap(_C.randperm(int(n), _C.DType.int64, _dev(device, "randperm")))
    return out if dtype is None else out.to(dtype)


def bernoulli(input, p=None, generator=None):
    probs = input if p is None else full_like(input, p)
    return _wrap(_C.bernoulli(probs._data))  # on probs' device, the CPU's numbers


@tensor_method
def multinomial(input, num_samples, replacement=False, generator=None):
    """torch.multinomial: int64 category indices drawn from each row of the
    non-negative weights `input` (1-d or 2-d; rows need not sum to 1), on
    input's device. Without replacement a row's samples are distinct.
    Philox stream, element mapping in csrc/cpu/random.h."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise TypeError(f"multinomial: num_samples must be an int, got {type(num_samples).__name__}")
    return _wrap(_C.multinomial(input._data, int(num_samples), bool(replacement)))


@tensor_method
def uniform_(self, a=0.0, b=1.0, generator=None):
    _C.uniform_(self._data, float(a), float(b))
    return self


@tensor_method
def normal_(self, mean=0.0, std=1.0, generator=None):
    _C.normal_(self._data, float(mean), float(std))
    return self


Tensor.new_zeros = lambda self, *size, dtype=None, device=None, **kw: zeros(
    *size, dtype=dtype or self.dtype, device=device or self.device)
Tensor.new_ones = lambda self, *size, dtype=None, device=None, **kw: ones(
    *size, dtype=dtype or self.dtype, device=device or self.device)
Tensor.new_full = lambda self, size, fill_value, dtype=None, device=None, **kw: full(
    size, fill_value, dtype=dtype or self.dtype, device=device or self.device)
Tensor.new_empty = lambda self, *size, dtype=None, device=None, **kw: empty(
    *size, dtype=dtype or self.dtype, device=device or self.device)
Tensor.new_tensor = lambda self, data, dtype=None, device=None, **kw: __import__("fastgrad").tensor(
    data, dtype=dtype or self.dtype, device=device or self.device)
