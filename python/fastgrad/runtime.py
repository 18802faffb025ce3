"""Threads, build information and DLPack import."""
import os

from . import _C


def get_num_threads():
    return _C.get_num_threads()


def set_num_threads(n):
    """Threads the native kernels use (also set by FASTGRAD_NUM_THREADS)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def config():
    """Build and runtime facts: version, SIMD level in use, threads, CUDA."""
    from . import __version__, cuda

    simd = _C.simd_level() if hasattr(_C, "simd_level") else "unknown"
    gemm = _C.gemm_info() if hasattr(_C, "gemm_info") else "unknown"
    return {
        "version": __version__,
        "simd": simd,
        "gemm": gemm,
        "cpu_capability_override": os.environ.get("FASTGRAD_CPU_CAPABILITY"),
        "threads": _C.get_num_threads(),
        "cuda_built": cuda.is_built(),
        "cuda_devices": cuda.device_count(),
        "cuda_device_names": [_C.cuda_device_name(i) for i in range(cuda.device_count())],
        "cuda_version": cuda.version(),
    }


def from_dlpack(x):
    """A tensor sharing memory with any DLPack producer (NumPy, PyTorch, ...).

    `x` is an object with `__dlpack__` (asked for a versioned DLPack 1.0
    capsule, falling back to the legacy call for older producers) or a
    DLPack capsule itself; a capsule can be imported only once.
    """
    from . import cuda
    from .tensor import Tensor

    if not hasattr(_C, "from_dlpack"):
        raise RuntimeError("from_dlpack: DLPack import is not available in this build")
    if hasattr(x, "__dlpack__"):
        kwargs = {}
        if hasattr(x, "__dlpack_device__"):
            dev_type, dev_id = x.__dlpack_device__()
            if int(dev_type) == 2 and cuda.is_built():  # kDLCUDA
                if not 0 <= int(dev_id) < cuda.device_count():
                    raise RuntimeError(f"from_dlpack: cannot import a tensor on cuda:{int(dev_id)}: no such CUDA "
                                       f"device ({cuda.device_count()} visible)")
                # Our kernels run on the legacy default stream (1 in DLPack's
                # terms): the producer makes its pending work visible there.
                kwargs["stream"] = 1
            elif int(dev_type) != 1:  # kDLCPU
                raise RuntimeError(f"from_dlpack: cannot import a tensor on DLPack device ({int(dev_type)}, "
                                   f"{int(dev_id)}): fastgrad imports CPU tensors"
                                   + (" and CUDA tensors only" if cuda.is_built() else " only (built without CUDA)"))
        try:
            capsule = x.__dlpack__(max_version=(1, 0), **kwargs)
        except TypeError:
            capsule = x.__dlpack__(**kwargs)  # a producer older than DLPack 1.0
    else:
        capsule = x  # already a capsule
    return Tensor._wrap(_C.from_dlpack(capsule))
