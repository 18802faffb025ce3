"""fg.memory: bytes in use and peak, per device, from the native allocators."""
from . import _C


def stats(device="cpu"):
    """Memory of `device`: bytes_in_use (live tensors), peak_bytes, allocations
    (count since start), live_allocations, cached_bytes (freed blocks kept for
    reuse) and cache_hits."""
    return _C.memory_stats(_C.parse_device(str(device)))


def reset_peak(device="cpu"):
    _C.reset_peak(str(device))


def empty_cache(device="cpu"):
    """Returns the allocator's cached free blocks of `device` to the system."""
    if str(device) == "cpu":
        _C.empty_cache()
    else:
        _C.empty_device_cache(str(device))
