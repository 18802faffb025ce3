"""fg.memory: bytes in use and peak, per device, from the native allocators."""
from . import _C


def stats(device="cpu"):
    """{'bytes_in_use', 'peak_bytes', 'allocations', 'live_allocations'} for `device`."""
    return _C.memory_stats(str(device))


def reset_peak(device="cpu"):
    _C.reset_peak(str(device))


def empty_cache():
    """Returns cached blocks to the system (nothing is cached yet on the CPU)."""
