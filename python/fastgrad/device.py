"""fg.device: where a tensor lives ("cpu", "cuda", "cuda:N").

As in PyTorch, a bare "cuda" has index None and means the current CUDA
device (fg.cuda.current_device(), changed by fg.cuda.set_device(i) or
`with fg.cuda.device(i):`); it is resolved when a tensor is made or moved,
so a tensor's .device always names its index ("cuda:0")."""
from . import _C


class device:
    __slots__ = ("type", "index")

    def __init__(self, spec, index=None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {type(spec).__name__}")
        full = spec if index is None else f"{spec}:{index}"
        canon = _C.parse_device(full)  # validates
        if canon == "cpu":
            self.type, self.index = "cpu", None
        else:
            self.type, self.index = "cuda", (int(canon.split(":")[1]) if ":" in full else None)
            if self.index is not None and self.index < 0:
                raise ValueError(f"device: invalid device '{full}' (a CUDA index is >= 0)")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (ValueError, TypeError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self._resolved() == other._resolved()

    def __hash__(self):
        return hash((self.type, self._resolved()))

    def _resolved(self):
        """The index with None read as the current CUDA device (0 without one)."""
        if self.index is not None or self.type == "cpu":
            return self.index
        from . import cuda

        return cuda.current_device() if cuda.is_available() else 0

    def _c_name(self):
        return "cpu" if self.type == "cpu" else f"cuda:{self._resolved()}"


CPU = device("cpu")


def to_device(d):
    if d is None:
        return CPU
    return d if isinstance(d, device) else device(d)


def check_usable(d, op):
    """Raises a clear RuntimeError when tensors cannot live on device `d`."""
    if d.type == "cpu":
        return
    from . import cuda

    if not cuda.is_built():
        raise RuntimeError(f"{op}: fastgrad was built without CUDA; cannot use device {d}")
    n = cuda.device_count()
    if n == 0:
        raise RuntimeError(f"{op}: no CUDA device is available (no GPU or no driver); cannot use device {d}")
    if d._resolved() >= n:
        raise RuntimeError(f"{op}: invalid device {d}: only {n} CUDA device(s) visible (cuda:0 to cuda:{n - 1})")


_ToDevice = None


def move(t, d):
    """`t` copied to device `d`, differentiable (the gradient moves back)."""
    global _ToDevice
    if _ToDevice is None:
        from .autograd.function import Function

        class ToDevice(Function):
            def forward(ctx, x, dev):
                ctx.src, ctx.dev_name = x._data.device, dev
                return _C.to_device(x._data, dev)

            def vjp(ctx, g):
                return (move(g, device(ctx.src)),)

            def jvp(ctx, t):
                return move(t, device(ctx.dev_name))

        _ToDevice = ToDevice
    check_usable(d, "to")
    return _ToDevice.apply(t, dev=d._c_name())
