"""Grad mode: whether ops record the tape, and the forward-mode level."""
import functools


class _State:
    __slots__ = ("grad_enabled", "forward_level")

    def __init__(self):
        self.grad_enabled = True
        self.forward_level = 0  # > 0 while fg.jvp pushes tangents through ops


state = _State()


def is_grad_enabled():
    return state.grad_enabled


class _GradModeContext:
    """Base of no_grad / enable_grad: a context manager that is also a decorator."""

    _mode = True

    def __enter__(self):
        self._prev = state.grad_enabled
        state.grad_enabled = self._mode
        return self

    def __exit__(self, *exc):
        state.grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class _BareDecorator:
    """Also usable as a bare decorator, `@no_grad` (as torch allows)."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}() takes no arguments (or a function to decorate)")
        return cls()(orig_func)


class no_grad(_BareDecorator, _GradModeContext):
    """Ops inside record nothing and keep no buffers for backward."""

    _mode = False


class enable_grad(_BareDecorator, _GradModeContext):
    _mode = True


class set_grad_enabled(_GradModeContext):
    def __init__(self, mode):
        self._mode = bool(mode)
        self._prev = state.grad_enabled
        state.grad_enabled = self._mode  # like torch: takes effect when called

    def __enter__(self):
        return self
