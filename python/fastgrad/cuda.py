"""fg.cuda: CUDA devices. Every query works without a GPU or a driver
(is_available() is False there); calls that need a device raise a clear
RuntimeError instead."""
from . import _C


def is_built():
    """True when this build of fastgrad has the CUDA kernels compiled in."""
    return bool(_C.cuda_is_built())


def device_count():
    """Visible CUDA devices; 0 without a driver, a GPU, or a CUDA build."""
    return int(_C.cuda_device_count())


def is_available():
    return device_count() > 0


def _require(op):
    if not is_built():
        raise RuntimeError(f"{op}: fastgrad was built without CUDA")
    if not is_available():
        raise RuntimeError(f"{op}: no CUDA device is available (no GPU or no driver)")


def _index(device, op):
    """The device index of None (current), an int, 'cuda:N' or a fg.device."""
    if device is None:
        return current_device()
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    from .device import device as _device

    d = device if isinstance(device, _device) else _device(device)
    if d.type != "cuda":
        raise ValueError(f"{op}: expected a CUDA device, got {d}")
    return d._resolved()


def current_device():
    _require("current_device")
    return int(_C.cuda_current_device())


def set_device(device):
    """Makes `device` (an index, 'cuda:N' or a fg.device) the current device:
    what a bare "cuda" means from now on in this thread."""
    _require("set_device")
    _C.cuda_set_device(_index(device, "set_device"))


class device:
    """`with fg.cuda.device(i):` makes device i current inside the block and
    restores the previous one after it (None or -1: changes nothing)."""

    def __init__(self, device):
        self.idx = -1 if device is None or (isinstance(device, int) and device == -1) else _index(device, "cuda.device")
        self.prev = -1

    def __enter__(self):
        if self.idx >= 0:
            self.prev = current_device()
            set_device(self.idx)
        return self

    def __exit__(self, *exc):
        if self.prev >= 0:
            set_device(self.prev)
        return False


class device_of(device):
    """`with fg.cuda.device_of(t):` makes t's device current (nothing for a CPU tensor)."""

    def __init__(self, t):
        super().__init__(t.device.index if t.is_cuda else None)


def synchronize(device=None):
    """Waits until every kernel queued on `device` has finished."""
    _require("synchronize")
    _C.cuda_synchronize(_index(device, "synchronize"))


def get_device_name(device=None):
    _require("get_device_name")
    return _C.cuda_device_name(_index(device, "get_device_name"))


def empty_cache():
    """Returns the cached free device blocks of every device to the driver."""
    for i in range(device_count()):
        _C.empty_device_cache(f"cuda:{i}")


def memory_allocated(device=None):
    """Bytes held by live fastgrad tensors on the device."""
    return _C.memory_stats(f"cuda:{_index(device, 'memory_allocated')}")["bytes_in_use"]


def max_memory_allocated(device=None):
    return _C.memory_stats(f"cuda:{_index(device, 'max_memory_allocated')}")["peak_bytes"]


def reset_peak_memory_stats(device=None):
    _C.reset_peak(f"cuda:{_index(device, 'reset_peak_memory_stats')}")


def manual_seed(seed):
    """Seeds the generator. fastgrad has ONE Philox stream for every device
    (a CUDA tensor gets the numbers the CPU would), so this is fg.manual_seed."""
    from .ops.creation import manual_seed as _seed

    _seed(seed)


manual_seed_all = manual_seed


def set_allow_tf32(on):
    """TF32 tensor cores for float32 matmul on sm_80+ (off by default, as in
    PyTorch: results then match the CPU to float32 rounding). With it on, a
    float32 product rounds its inputs to TF32 (10-bit mantissa) and sums in
    float32: relative error ~1e-3. Also fg.backends.cuda.matmul.allow_tf32."""
    if not is_built():
        raise RuntimeError("set_allow_tf32: fastgrad was built without CUDA")
    _C.cuda_set_allow_tf32(bool(on))


def allow_tf32():
    """Whether float32 matmul may use TF32 tensor cores (set_allow_tf32)."""
    return bool(_C.cuda_allow_tf32()) if is_built() else False


def version():
    """'runtime X.Y, driver X.Y' (or why there is no driver); None without CUDA."""
    return _C.cuda_version() if is_built() else None
