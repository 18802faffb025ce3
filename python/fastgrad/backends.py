"""fg.backends: PyTorch-named switches. fg.backends.cuda.matmul.allow_tf32
reads and sets the same flag as fg.cuda.set_allow_tf32 (off by default)."""


class _Matmul:
    @property
    def allow_tf32(self):
        from . import cuda as _cuda

        return _cuda.allow_tf32()

    @allow_tf32.setter
    def allow_tf32(self, on):
        from . import cuda as _cuda

        _cuda.set_allow_tf32(on)


class _Cuda:
    matmul = _Matmul()

    @staticmethod
    def is_built():
        from . import cuda as _cuda

        return _cuda.is_built()


cuda = _Cuda()
