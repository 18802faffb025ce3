"""Parameter: a leaf tensor that a Module registers as learnable."""
from ..tensor import Tensor


class Parameter(Tensor):
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            from ..ops.creation import empty

            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: expected a Tensor, got {type(data).__name__}")
        self._data = data._data  # shares memory with `data`, like torch
        self._requires_grad = False
        self._grad = None
        self._node = None
        self._tangent = None
        self._hooks = None
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __reduce_ex__(self, protocol):
        return (Parameter, (Tensor.detach(self).clone(), self._requires_grad))


class Buffer:
    """Marker used by Module.register_buffer's callers who prefer attribute syntax."""

    def __init__(self, data, persistent=True):
        self.data, self.persistent = data, persistent
