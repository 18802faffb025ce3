"""Tensor: a _C.Array plus the autograd fields.

The math lives in fastgrad.ops (one table of differentiable ops); each ops
module attaches its methods to Tensor with @tensor_method, so this file holds
only what is about the tensor itself: construction, attributes, conversion,
indexing and the autograd entry points.
"""
import functools
import weakref

import numpy as np

from . import _C
from . import dtypes as _dt
from .autograd import backward as _autograd_backward
from .autograd import engine as _engine
from .autograd import function as _function
from .autograd.grad_mode import state as _grad_state
from .device import CPU, device as _device_cls, to_device


class Tensor:
    # _base: None, or (root, steps, root's node, root's tangent) for a view of
    # `root` (steps replay the view ops); see autograd.function.
    # _tangent: None, or fg.jvp's chain (level, tangent, rest), innermost level
    # first (nested jvp; see autograd.function's jvp_levels).
    __slots__ = ("_data", "_requires_grad", "_grad", "_node", "_tangent", "_hooks", "_base", "__weakref__")

    # NumPy: `ndarray * tensor` must come to Tensor.__rmul__, not become an object array.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data=None, dtype=None, device=None, requires_grad=False):
        if data is None:
            data = []
        t = tensor(data, dtype=dtype if dtype is not None else None, device=device)
        if dtype is None and not t.dtype.is_floating_point:
            t = tensor(data, dtype=_dt.default_float, device=device)  # torch.Tensor(...) is float
        self._data = t._data
        self._requires_grad = False
        self._grad = None
        self._node = None
        self._tangent = None
        self._hooks = None
        self._base = None
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(arr):
        t = _new(Tensor)
        t._data = arr
        t._requires_grad = False
        t._grad = None
        t._node = None
        t._tangent = None
        t._hooks = None
        t._base = None
        return t

    # -- attributes --------------------------------------------------------------
    @property
    def shape(self):
        return self._data.shape

    def size(self, dim=None):
        shape = self._data.shape
        if dim is None:
            return shape
        return shape[_wrap_dim(dim, len(shape), "size")]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return _dt._BY_ID[self._data.dtype_id]

    @property
    def device(self):
        d = self._data.device
        return CPU if d == "cpu" else _device_cls(d)

    @property
    def is_cuda(self):
        return self._data.device != "cpu"

    def numel(self):
        return self._data.numel()

    def nelement(self):
        return self._data.numel()

    def element_size(self):
        return self._data.itemsize

    def stride(self, dim=None):
        st = self._data.strides
        return st if dim is None else st[_wrap_dim(dim, len(st), "stride")]

    def storage_offset(self):
        return self._data.offset

    def data_ptr(self):
        return self._data.data_ptr

    def is_contiguous(self):
        return self._data.is_contiguous()

    def is_floating_point(self):
        return self.dtype.is_floating_point

    @property
    def _version(self):
        return self._data.version

    @property
    def T(self):
        if self.ndim < 2:
            return self
        return self.permute(*range(self.ndim - 1, -1, -1))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def __len__(self):
        shape = self._data.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(len(self)):
            yield self[i]

    __hash__ = object.__hash__

    # -- autograd fields ------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        if self._node is not None:
            if not requires_grad:
                raise RuntimeError(
                    "requires_grad_: you can only change requires_grad flags of leaf variables. If you want to use "
                    "a computed variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
                )
            return self
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError(
                f"requires_grad_: only Tensors of floating point dtype can require gradients, got {self.dtype.name}"
            )
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has shape {list(value.shape)} but the tensor has shape {list(self.shape)}")
        self._grad = value

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data: expected a Tensor, got {type(value).__name__}")
        self._data = value._data

    def detach(self):
        return Tensor._wrap(self._data)

    def detach_(self):
        self._node = None
        self._requires_grad = False
        return self

    def retain_grad(self):
        if self._node is None:
            return
        self._node.retain_ref = weakref.ref(self)

    @property
    def retains_grad(self):
        return self._node is not None and getattr(self._node, "retain_ref", None) is not None

    def register_hook(self, hook):
        """hook(grad) -> Tensor or None, called with this tensor's gradient during backward."""
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
        if self._node is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            hooks = self._node.__dict__.setdefault("tensor_hooks", [])
        hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        _autograd_backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # -- conversion -------------------------------------------------------------------
    def numpy(self, force=False):
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return _C.to_numpy(self._data)

    def __array__(self, dtype=None, copy=None):
        a = _C.to_numpy(self._data)
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        if copy:
            a = a.copy()
        return a

    def item(self):
        n = self._data.numel()
        if n != 1:
            raise RuntimeError(f"item: a Tensor with {n} elements cannot be converted to Scalar")
        return _C.to_numpy(self._data).reshape(()).item()

    def tolist(self):
        return _C.to_numpy(self._data).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.is_floating_point or self.dtype is _dt.bool_ or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        n = self._data.numel()
        if n != 1:
            raise RuntimeError(f"Boolean value of Tensor with {n} elements is ambiguous")
        return bool(self.item())

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, _dt.dtype):
                dtype = a
            elif isinstance(a, (str, _device_cls)):
                device = a
            else:
                raise TypeError(f"to: unexpected argument {a!r}")
        out = self
        if device is not None:
            d = to_device(device)
            if d != self.device:
                from .device import move

                out = move(out, d)
        if dtype is not None:
            dtype = _dt.to_dtype(dtype, "to")
            if dtype is not self.dtype:
                from .ops.elementwise import cast

                out = cast(out, dtype)
        if copy and out is self:
            out = out.clone()
        return out

    def cpu(self):
        if self._data.device == "cpu":
            return self
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else f"cuda:{device}")

    def type(self, dtype=None):
        if dtype is None:
            return "fastgrad." + {"float32": "FloatTensor", "float64": "DoubleTensor", "int64": "LongTensor",
                                  "int32": "IntTensor", "bool": "BoolTensor"}[self.dtype.name]
        return self.to(dtype)

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool_)

    # -- DLPack -----------------------------------------------------------------------
    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule sharing this tensor's memory (a copy if `copy=True`).

        Versioned ("dltensor_versioned", DLPack 1.0) when the consumer passes
        max_version >= (1, 0), else the legacy "dltensor" capsule.
        """
        if not hasattr(_C, "to_dlpack"):
            raise RuntimeError("__dlpack__: DLPack export is not available in this build")
        if self._requires_grad:
            raise RuntimeError("Can't export a tensor that requires grad to DLPack; use tensor.detach()")
        if stream is not None and self.device.type == "cpu":
            raise ValueError(f"__dlpack__: stream must be None for a CPU tensor, got {stream!r}")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"__dlpack__: cannot export a tensor on {self.device} to DLPack device "
                              f"{tuple(dl_device)} (fastgrad does not move tensors between devices here)")
        versioned = max_version is not None and tuple(max_version)[0] >= 1
        if self.is_cuda:
            from . import cuda

            cuda.synchronize(self.device.index or 0)  # our queued kernels finish before the consumer's stream reads
        return _C.to_dlpack(self._data, versioned, bool(copy))

    def __dlpack_device__(self):
        d = self.device
        return (1, 0) if d.type == "cpu" else (2, d.index or 0)

    # -- printing ---------------------------------------------------------------------
    def __repr__(self):
        a = _C.to_numpy(self._data)
        body = np.array2string(a, separator=", ", prefix="tensor(", precision=4,
                               threshold=1000, floatmode="maxprec_equal")
        extras = []
        if self.dtype not in (_dt.float32, _dt.int64, _dt.bool_) or (a.size == 0 and self.dtype is not _dt.float32):
            extras.append(f"dtype={self.dtype!r}")
        if self.is_cuda:
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __str__(self):
        return self.__repr__()

    def __format__(self, spec):
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec) if spec else repr(self)

    def __reduce_ex__(self, protocol):
        return (_rebuild, (np.array(_C.to_numpy(self._data)), self._requires_grad))


def _rebuild(array, requires_grad):
    t = Tensor._wrap(_C.from_numpy(array))
    t._requires_grad = requires_grad
    return t


_new = object.__new__
_function._wrap = Tensor._wrap
_function._Tensor = Tensor
_engine._Tensor = Tensor


class _RemovableHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _wrap_dim(dim, ndim, op):
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim} is out of range for a {ndim}-d tensor (expected in [{-n}, {n - 1}])")
    return dim + n if dim < 0 else dim


def tensor_method(fn=None, *, name=None):
    """Decorator used by fastgrad.ops: also makes `fn` a method of Tensor.

    The method is `fn` itself; the module-level function (fg.sum(x, ...))
    turns the AttributeError that a non-tensor argument causes into a
    TypeError naming the op."""

    def attach(f):
        setattr(Tensor, name or f.__name__, f)

        @functools.wraps(f)
        def function(*args, **kwargs):
            try:
                return f(*args, **kwargs)
            except AttributeError as e:
                got = ", ".join(type(a).__name__ for a in args)
                raise TypeError(f"{f.__name__}: expected Tensor arguments, got ({got}): {e}") from e

        return function

    return attach(fn) if fn is not None else attach


# -- construction ------------------------------------------------------------------------


def _infer_from_python(data):
    """NumPy array + fastgrad dtype for nested Python data, PyTorch's defaults."""
    a = np.asarray(data)
    if a.dtype == np.bool_:
        return a, _dt.bool_
    if np.issubdtype(a.dtype, np.integer):
        return a, _dt.int64
    if np.issubdtype(a.dtype, np.floating):
        return a, _dt.default_float
    if a.dtype == object:
        # a list that mixes tensors and numbers
        flat = [x.item() if isinstance(x, Tensor) and x.numel() == 1 else x for x in np.ravel(a)]
        if any(isinstance(x, Tensor) for x in flat):
            raise TypeError("tensor: nested lists of multi-element tensors are not supported; use fg.stack")
        numbers = np.array(flat)
        if numbers.dtype == object:  # something that is neither a number nor a one-element tensor
            bad = [x for x in flat if not isinstance(x, (bool, int, float, np.generic))]
            if not bad:  # Python ints beyond 64 bits
                raise OverflowError("tensor: an integer element does not fit in int64")
            raise TypeError(f"tensor: cannot build a tensor from an element of type {type(bad[0]).__name__}")
        return _infer_from_python(numbers.reshape(a.shape))
    raise TypeError(f"tensor: cannot build a tensor from data of type {a.dtype}")


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (scalars, nested lists, NumPy arrays, tensors)."""
    dev = to_device(device)  # validates the device string
    if dev.type != "cpu":
        from .device import check_usable

        check_usable(dev, "tensor")
    want = _dt.to_dtype(dtype, "tensor") if dtype is not None else None
    if isinstance(data, Tensor):
        arr = _C.copy(data._data) if want is None or want is data.dtype else _C.astype(data._data, want._c)
    else:
        if isinstance(data, (np.ndarray, np.generic)):  # NumPy scalars keep their dtype, as in torch
            a = np.asarray(data)
            if want is None:
                if a.dtype == np.bool_ or a.dtype in (np.int32, np.int64, np.float32, np.float64):
                    want = _dt._BY_NP[a.dtype]
                else:
                    want = _infer_from_python(a)[1]
        else:
            a, inferred = _infer_from_python(data)
            want = want or inferred
        a = np.asarray(a, dtype=want._np, order="C")  # keeps 0-d arrays 0-d
        arr = _C.copy(_C.from_numpy(a))  # our allocator owns (and counts) every tensor it creates
    if dev.type != "cpu":
        arr = _C.to_device(arr, dev._c_name())
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(a):
    """A tensor sharing memory with the NumPy array `a` (no copy)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(a).__name__}")
    return Tensor._wrap(_C.from_numpy(a))


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and (dtype is None or _dt.to_dtype(dtype) is data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or _dt.to_dtype(dtype)._np == data.dtype):
        try:
            return from_numpy(data)
        except TypeError:
            pass
    return tensor(data, dtype=dtype, device=device)


def is_tensor(x):
    return isinstance(x, Tensor)
