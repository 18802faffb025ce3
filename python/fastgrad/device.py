"""fg.device: where a tensor lives ("cpu", "cuda", "cuda:N")."""
from . import _C


class device:
    __slots__ = ("type", "index")

    def __init__(self, spec, index=None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {type(spec).__name__}")
        canon = _C.parse_device(spec if index is None else f"{spec}:{index}")  # validates
        if canon == "cpu":
            self.type, self.index = "cpu", None
        else:
            self.type, self.index = "cuda", int(canon.split(":")[1])

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
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))

    def _c_name(self):
        return "cpu" if self.type == "cpu" else f"cuda:{self.index or 0}"


CPU = device("cpu")


def to_device(d):
    if d is None:
        return CPU
    return d if isinstance(d, device) else device(d)
