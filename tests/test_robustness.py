"""Nothing reachable from Python may crash the process.

A driver (this file, run as a script) calls every public function of
fastgrad._C - found with dir(_C), typed from its pybind11 signature - and a
list of public fg.* functions and Tensor methods with adversarial arguments:
wrong types, None, negative and huge dims, mismatched shapes, empty lists,
zero-size, 0-d, non-contiguous, broadcast and negative-stride arrays,
out-of-range indices, huge sizes, NaN/inf, every dtype. Every call must
return or raise an ordinary Python exception (ALLOWED); the pytest test runs
the driver in a subprocess, so a segfault or abort fails the test instead of
killing pytest. The driver is seeded and uses fixed lists: the same calls on
every run, in well under a minute.

Run by hand (e.g. under AddressSanitizer):
    PYTHONPATH=python python tests/test_robustness.py [--trace FILE] [-v]
(--fork runs each call in a forked child and lists every crash; use it with
FASTGRAD_NUM_THREADS=1, since worker threads do not survive a fork).
"""
import math
import os
import random
import re
import subprocess
import sys
import tempfile

ALLOWED = (ValueError, TypeError, IndexError, RuntimeError, OverflowError, MemoryError, NotImplementedError,
           BufferError)
SEED = int(os.environ.get("FG_ROBUSTNESS_SEED", "20240607"))  # override to explore other calls
CALLS_PER_C_FUNCTION = 60   # typed adversarial calls per _C function
WRONG_TYPE_CALLS = 6        # calls with one argument of the wrong type
CALLS_PER_FG_FUNCTION = 40
MEMORY_LIMIT = 6 << 30      # address space cap so "huge but valid" sizes fail fast (not under ASan)

# _C functions whose adversarial values are chosen by hand (global state).
C_SPECIAL = {
    # Creating threads is not an argument check: a valid huge n would start
    # that many threads; the checks below cover the bounds.
    "set_num_threads": [(0,), (-1,), (-(2**31),), (2**31,), (2**63,), (None,), ("2",), (1.5,)],
    "set_cpu_capability": [("",), ("avx1024",), ("AVX2",), (None,), ("auto",), ("scalar",), ("auto",)],
    "manual_seed": [(-1,), (2**70,), (-(2**70),), (0,), (None,), (1.5,), ("1",), (0,)],
    "set_rng_state": [(-1, 0), (2**64, 0), (0, -(2**63)), (None, 0), (0, 0)],
}


# Argument kinds for _C functions whose pybind11 signature says only "Array"
# where the kernel wants an index or a mask (so calls get past the dtype checks).
C_KINDS = {
    "gather": ["array", "int", "index"],
    "index_select": ["array", "int", "index"],
    "index_add": ["array", "int", "index", "array"],
    "scatter_add": ["array", "int", "index", "array"],
    "one_hot": ["index", "int"],
    "masked_fill": ["array", "mask", "float"],
    "masked_select": ["array", "mask"],
    "where": ["mask", "array", "array"],
    "index_gather": ["array", "indices"],
    "index_put": ["array", "indices", "array", "bool"],
    "sgd_step": ["params", "params", "params", "float", "float", "float", "float", "bool", "bool", "bool"],
    "adam_step": ["params", "params", "params", "params", "params", "int", "float", "float", "float", "float",
                  "float", "bool", "bool", "bool"],
    "adagrad_step": ["params", "params", "params", "int", "float", "float", "float", "float", "bool"],
    "rmsprop_step": ["params", "params", "params", "params", "params", "float", "float", "float", "float", "float",
                     "bool", "bool"],
}


# ---- the driver ----------------------------------------------------------------------------


class Driver:
    def __init__(self, trace=None, verbose=False, fork=False):
        import numpy as np

        self.np = np
        self.rng = random.Random(SEED)
        self.trace_fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if trace else None
        self.verbose = verbose
        self.calls = 0
        self.raised = {}
        self.failures = []  # (call, exception) with an exception type outside ALLOWED
        self.fork = fork
        self.crashes = []
        self.suspicious = []  # allowed exception types that still point at a bug

    # -- running one call --------------------------------------------------------------------
    def call(self, label, fn, args, kwargs=None):
        kwargs = kwargs or {}
        desc = f"{label}({', '.join([_short(a) for a in args] + [f'{k}={_short(v)}' for k, v in kwargs.items()])})"
        if self.trace_fd is not None:
            os.write(self.trace_fd, (desc + "\n").encode("utf-8", "replace"))
        self.calls += 1
        if self.fork:  # exploration: each call in a child, so one crash does not hide the next
            sys.stdout.flush()
            pid = os.fork()
            if pid:
                _, status = os.waitpid(pid, 0)
                if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
                    self.crashes.append((desc, status))
                    print(f"CRASH {desc} (status {status})", flush=True)
                return
            try:
                fn(*args, **kwargs)
            except BaseException:  # noqa: BLE001
                pass
            os._exit(0)
        try:
            out = fn(*args, **kwargs)
            _touch(out)
        except RecursionError as e:  # a RuntimeError, so allowed, but a bug: list it
            self.raised["RecursionError"] = self.raised.get("RecursionError", 0) + 1
            self.suspicious.append((desc, f"RecursionError: {str(e)[:120]}"))
        except ALLOWED as e:
            self.raised[type(e).__name__] = self.raised.get(type(e).__name__, 0) + 1
            if self.verbose:
                print(f"  {desc} -> {type(e).__name__}: {str(e)[:120]}")
        except Exception as e:  # noqa: BLE001  (the point: which types escape)
            self.failures.append((desc, f"{type(e).__name__}: {str(e)[:200]}"))
        else:
            if self.verbose:
                print(f"  {desc} -> ok")

    # -- pools of adversarial values -----------------------------------------------------------
    def build_pools(self):
        import fastgrad as fg
        from fastgrad import _C

        np = self.np
        self.fg, self.C = fg, _C
        rs = np.random.RandomState(SEED)
        dtypes = [np.bool_, np.int32, np.int64, np.float32, np.float64]
        self.dtypes = [_C.DType.bool, _C.DType.int32, _C.DType.int64, _C.DType.float32, _C.DType.float64]
        arrays = []

        def values(shape, dt):
            if dt == np.bool_:
                return np.asarray(rs.rand(*shape) > 0.5)
            if np.issubdtype(dt, np.integer):
                return np.asarray(rs.randint(-3, 6, size=shape)).astype(dt)
            return np.asarray(rs.randn(*shape)).astype(dt)

        for dt in dtypes:
            name = np.dtype(dt).name
            own = lambda a: _C.copy(_C.from_numpy(np.ascontiguousarray(a)))  # noqa: E731
            base23 = own(values((2, 3), dt))
            arrays += [
                (f"{name}[2,3]", base23),
                (f"{name}[]", own(values((), dt))),
                (f"{name}[0,3]", own(values((0, 3), dt))),
                (f"{name}[0]", own(values((0,), dt))),
                (f"{name}[1]", own(values((1,), dt))),
                (f"{name}[7]", own(values((7,), dt))),
                (f"{name}[3,3]", own(values((3, 3), dt))),
                (f"{name}[2,1,3,2]", own(values((2, 1, 3, 2), dt))),
                (f"{name}[2,3].T", _C.transpose(own(values((2, 3), dt)), 0, 1)),
                (f"{name}[4,6][::2,::2]", _C.slice(_C.slice(own(values((4, 6), dt)), 0, 0, 4, 2), 1, 0, 6, 2)),
                (f"{name}[2,3].flip", _C.flip(own(values((2, 3), dt)), [0, 1])),
                (f"{name}[1,3].expand(2,3)", _C.expand(own(values((1, 3), dt)), [2, 3])),
                (f"np.{name}[4,6][::-2,1::2]", _C.from_numpy(values((4, 6), dt)[::-2, 1::2])),
            ]
            if dt in (np.float32, np.float64):
                sp = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, np.finfo(dt).max, np.finfo(dt).tiny, 1e-45],
                              dtype=dt)
                arrays.append((f"{name}[nan,inf,...]", own(sp)))
            elif dt != np.bool_:
                info = np.iinfo(dt)
                sp = np.array([info.min, info.max, -1, 0, 1, info.max - 1, info.min + 1, 2], dtype=dt)
                arrays.append((f"{name}[min,max,...]", own(sp)))
        self.arrays = arrays
        self.index_arrays = [(n, a) for n, a in arrays if n.startswith(("int64", "int32", "np.int"))]
        self.by_dtype = {d: [(n, a) for n, a in arrays if a.dtype.name == d]
                         for d in ("bool", "int32", "int64", "float32", "float64")}
        self.theme, self.group = "float32", (1, [(2, 3)])

        self.small_ints = [0, 1, 2, 3, -1, -2, -3, 4, 5]
        self.huge_ints = [2**31 - 1, 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, -(2**62), -(2**63), 2**63, 2**64]
        self.floats = [0.0, 1.0, -1.0, 0.5, 2.0, -0.0, 1e-3, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324,
                       2.0**63, 3]
        self.shapes = [[], [0], [1], [2], [3], [6], [2, 3], [3, 2], [1, 3], [2, 1], [-1], [-1, 3], [2, -1], [0, 3],
                       [3, 0], [2, 3, 1], [1, 2, 1, 3, 1], [-1, -1], [-2, 3], [1] * 12, [0, -1]]
        self.huge_shapes = [[2**62], [2**40, 2**40], [2**31, 2**31, 2**31], [2**63 - 1], [-(2**63)], [2**62, 0],
                            [0, 2**62], [2**40], [2, 2**62], [3, 2**61]]
        self.strs = ["cpu", "cuda", "cuda:0", "cuda:1", "cuda:-1", "cuda:99999999999999999999", "cuda:x", "", "gpu",
                     "cpu:0", "cuda:", "CPU", "\x00", "avx2"]

    # -- typed argument generators --------------------------------------------------------------
    def gen(self, kind):
        r = self.rng
        if kind == "array":  # mostly the call's dtype, so binary ops get past their dtype checks
            return r.choice(self.by_dtype[self.theme] if r.random() < 0.7 else self.arrays)[1]
        if kind == "index":
            x = r.random()
            return r.choice(self.by_dtype["int64"] if x < 0.7 else self.index_arrays if x < 0.85 else self.arrays)[1]
        if kind == "mask":
            return r.choice(self.by_dtype["bool"] if r.random() < 0.8 else self.arrays)[1]
        if kind == "indices":
            return [None if r.random() < 0.2 else self.gen("index" if r.random() < 0.8 else "mask")
                    for _ in range(r.randint(0, 3))]
        if kind == "params":  # one optimizer group: same length and shapes across the lists of a call
            n, shapes = self.group
            if r.random() < 0.15:
                n = r.randint(0, 3)
            out = []
            for i in range(n):
                if r.random() < 0.1:
                    out.append(self.gen("array"))
                else:
                    out.append(self.C.copy(self.C.from_numpy(
                        self.np.ones(shapes[i % len(shapes)], dtype=self.np.float32 if self.theme != "float64"
                                     else self.np.float64))))
            return out
        if kind == "int":
            return r.choice(self.small_ints) if r.random() < 0.75 else r.choice(self.huge_ints)
        if kind == "float":
            return r.choice(self.floats)
        if kind == "number":
            return r.choice([self.gen("int"), self.gen("float")])
        if kind == "bool":
            return r.random() < 0.5
        if kind == "str":
            return r.choice(self.strs)
        if kind == "dtype":
            return r.choice(self.dtypes)
        if kind == "intlist":
            x = r.random()
            if x < 0.45:
                return list(r.choice(self.shapes))
            if x < 0.7:
                return [r.choice(self.small_ints) for _ in range(r.randint(0, 5))]
            if x < 0.85:
                return list(r.choice(self.huge_shapes))
            return [self.gen("int") for _ in range(r.randint(1, 4))]
        if kind == "arrlist":
            if r.random() < 0.5:  # same dtype family, likely compatible shapes
                pool = [a for a in self.arrays if a[0].split("[")[0] == r.choice(self.arrays)[0].split("[")[0]]
                return [r.choice(pool)[1] for _ in range(r.randint(0, 4))]
            return [self.gen("array") for _ in range(r.randint(0, 4))]
        if kind == "arrlist_opt":
            return [None if r.random() < 0.3 else r.choice(self.index_arrays + self.arrays[:5])[1]
                    for _ in range(r.randint(0, 4))]
        if kind == "ndarray":
            return self.ndarray()
        if kind == "object":
            return self.dlpack_object()
        if kind.endswith("_opt"):
            return None if r.random() < 0.3 else self.gen(kind[:-4])
        raise AssertionError(kind)

    def wrong(self):
        return self.rng.choice([None, "x", 1.5, [], [None], object(), (1, "a"), {"a": 1}, b"\x00", 2**70, -1,
                                self.np.zeros(3), [1.5, 2.5], [[1]]])

    def ndarray(self):
        np, r = self.np, self.rng
        base = np.arange(24, dtype=np.float64).reshape(4, 6)
        choices = [
            lambda: base, lambda: base[::-1, ::2], lambda: base.T, lambda: np.float32(3) * np.ones(()),
            lambda: np.zeros((0, 5), np.int32), lambda: base.astype(np.float16), lambda: base.astype(np.complex64),
            lambda: base.astype(np.uint8), lambda: base.astype(np.int8), lambda: base.astype(">f8"),
            lambda: base.astype("<i8"), lambda: np.array(["a", "b"]), lambda: np.array([object(), 1]),
            lambda: np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]),
            lambda: np.frombuffer(b"\x00" * 17, dtype=np.float64, count=2, offset=1),  # misaligned
            lambda: np.broadcast_to(np.arange(3.0), (4, 3)),  # read-only, zero strides
            lambda: np.zeros((2, 3), np.float32)[:, None, :], lambda: np.ones((2, 2), np.bool_),
            lambda: np.ndarray((2,), np.float32, buffer=np.zeros(12, np.uint8), offset=1, strides=(5,)),
            lambda: np.zeros((1,) * 32), lambda: np.datetime64("2020") * np.ones(2, "M8[s]").astype("M8[s]"),
        ]
        try:
            return r.choice(choices)()
        except Exception:  # noqa: BLE001  (an input NumPy itself refuses)
            return np.zeros(2)

    def dlpack_object(self):
        np, r, C = self.np, self.rng, self.C
        k = r.randrange(10)
        if k == 0:
            a, versioned, copy = r.choice(self.arrays)[1], r.random() < 0.5, r.random() < 0.5
            try:
                return C.to_dlpack(a, versioned, copy)
            except BufferError:  # negative strides are exported as copies only
                return C.to_dlpack(a, versioned, True)
        if k == 1:
            cap = np.arange(6.0).__dlpack__()
            C.from_dlpack(cap)
            return cap  # already consumed
        if k == 2:
            return np.arange(3).astype(np.float16).__dlpack__()
        if k == 3:
            return np.ones((2, 3), np.int32)[:, ::2].__dlpack__(max_version=(1, 0))
        if k == 4:
            return _named_capsule(b"not_a_dltensor")
        if k == 5:
            return _named_capsule(None)
        if k == 6:
            return np.zeros((0, 3)).__dlpack__(max_version=(1, 0))
        if k == 7:
            return np.array(True).__dlpack__()
        return r.choice([None, 1, "dltensor", object(), np.zeros(2), [1]])

    def typed_args(self, kinds):
        r = self.rng
        self.theme = r.choice(["bool", "int32", "int64", "float32", "float64", "float32", "float64"])
        self.group = (r.randint(0, 3), [r.choice([(), (3,), (2, 3), (0,), (1, 1)]) for _ in range(3)])
        return [self.gen(k) for k in kinds]

    # -- _C ------------------------------------------------------------------------------------
    def run_c(self):
        C = self.C
        names = sorted(n for n in dir(C) if not n.startswith("_") and callable(getattr(C, n))
                       and not isinstance(getattr(C, n), type))
        assert len(names) > 50, names
        for name in names:
            fn = getattr(C, name)
            if name in C_SPECIAL:
                for args in C_SPECIAL[name]:
                    self.call(f"_C.{name}", fn, args)
                continue
            kinds = parse_signature(fn)
            if name in C_KINDS and kinds is not None and len(C_KINDS[name]) == len(kinds):
                kinds = C_KINDS[name]  # (a changed signature falls back to the parsed kinds)
            if kinds is None:
                self.failures.append((f"_C.{name}", "could not parse the pybind11 signature"))
                continue
            n_calls = CALLS_PER_C_FUNCTION if kinds else 2
            for _ in range(n_calls):
                self.call(f"_C.{name}", fn, self.typed_args(kinds))
            for _ in range(WRONG_TYPE_CALLS if kinds else 0):
                args = self.typed_args(kinds)
                args[self.rng.randrange(len(args))] = self.wrong()
                self.call(f"_C.{name}", fn, args)
            self.call(f"_C.{name}", fn, [None] * (len(kinds) + 1))  # wrong arity
        C.set_cpu_capability("auto")

    def run_c_fixed(self):
        """Hand-picked calls that random choice may miss."""
        C, np = self.C, self.np
        f32, i64 = C.DType.float32, C.DType.int64
        a = C.copy(C.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3)))
        idx = C.copy(C.from_numpy(np.array([0, 5, -7, 2**40], dtype=np.int64)))
        fixed = [
            ("zeros", ([2**62], f32, "cpu")), ("zeros", ([2**40], f32, "cpu")), ("empty", ([2**63 - 1], f32, "cpu")),
            ("full", ([2**31, 2**31], 1.0, f32, "cpu")), ("zeros", ([-1], f32, "cpu")), ("zeros", ([2], f32, "cuda")),
            ("rand", ([2**62], f32)), ("randn", ([2**40], f32)), ("randint", (5, 2, [3], i64)),
            ("randint", (-(2**63), 2**63 - 1, [3], i64)), ("randint", (0, 2**40, [3], C.DType.int32)),
            ("randint", (0, 3, [2], C.DType.bool)), ("randint", (0, 3, [2], f32)), ("randperm", (2**62,)),
            ("randperm", (-1,)), ("normal", (0.0, -1.0, [3], f32)), ("normal", (math.nan, math.inf, [3], f32)),
            ("dropout_mask", ([3], 1.5, f32)), ("dropout_mask", ([3], -0.5, f32)), ("dropout_mask", ([3], math.nan, f32)),
            ("dropout_mask", ([3], 1.0, f32)), ("bernoulli", (a,)),
            ("as_strided", (a, [2**62], [1], 0)), ("as_strided", (a, [3], [1], 4)), ("as_strided", (a, [3], [-1], 1)),
            ("as_strided", (a, [2, 2], [2**62, 2**62], 0)), ("as_strided", (a, [6], [1], -1)),
            ("as_strided", (a, [4], [2], 0)), ("as_strided", (a, [2], [1, 1], 0)), ("as_strided", (a, [2**40], [0], 0)),
            ("slice", (a, 0, 0, 2, 0)), ("slice", (a, 1, -(2**63), 2**63 - 1, 2**62)), ("slice", (a, 5, 0, 1, 1)),
            ("select", (a, 0, 2**62)), ("select", (a, 0, -(2**63))), ("expand", (a, [-1, -1, -1])),
            ("expand", (a, [2**62, 2, 3])), ("view", (a, [4, -1])), ("reshape", (a, [-1, 0])),
            ("reshape", (a, [2**62, 0])), ("permute", (a, [0, 0])), ("permute", (a, [1, -(2**62)])),
            ("pad", (a, [2**62, 2**62])), ("pad", (a, [-5, 0])), ("pad", (a, [-2, -2])), ("pad", (a, [1, 2, 3])),
            ("pad", (a, [1] * 6)), ("pad", (a, [-(2**63), 2**63 - 1])), ("repeat", (a, [2**40, 2**40])),
            ("repeat", (a, [-1, 2])), ("repeat", (a, [2])), ("repeat", (a, [0, 2**62])),
            ("one_hot", (idx, 3)), ("one_hot", (C.copy(C.from_numpy(np.array([1, 2]))), 2**62)),
            ("one_hot", (C.copy(C.from_numpy(np.array([1, 2]))), -5)),
            ("one_hot", (C.copy(C.from_numpy(np.array([], dtype=np.int64))), -1)),
            ("gather", (a, 1, C.copy(C.from_numpy(np.array([[0, 9]]))))), ("index_select", (a, 0, idx)),
            ("index_select", (a, 5, idx)), ("index_add", (a, 0, idx, a)), ("scatter_add", (a, 1, idx, a)),
            ("index_gather", (a, [idx, None, idx])), ("index_gather", (a, [])), ("index_gather", (a, [None] * 5)),
            ("index_put", (a, [idx], a)), ("index_put", (a, [idx, idx, idx], a)),
            ("masked_fill", (a, C.copy(C.from_numpy(np.array([True, False]))), 1.0)), ("masked_select", (a, idx)),
            ("cat", ([], 0)), ("cat", ([a, idx], 0)), ("cat", ([a, a], 2**62)), ("stack", ([], 0)),
            ("stack", ([a, C.transpose(a, 0, 1)], 0)), ("matmul", (a, a)), ("matmul", (C.scalar(1.0, f32), a)),
            ("matmul", (C.from_numpy(np.zeros(0, np.float32)), C.from_numpy(np.zeros(0, np.float32)))),
            ("tril", (a, 2**63 - 1)), ("triu", (a, -(2**63))), ("cumsum", (a, 2)), ("softmax", (a, -3)),
            ("sum", (a, [0, 0], False)), ("sum", (a, [2**62], True)), ("var", (a, [1], 2**62 + 0.5, False)),
            ("norm", (a, math.nan, [], False)), ("norm", (a, -math.inf, [0], True)), ("argmax", (a, None, True)),
            ("argmax", (C.from_numpy(np.zeros((0, 3), np.float32)), 0, False)), ("max_dim", (C.scalar(1, f32), 0, True)),
            ("max_dim", (C.from_numpy(np.zeros((2, 0), np.float32)), 1, False)),
            ("pow_scalar", (C.copy(C.from_numpy(np.array([0, -1, 2], np.int64))), -1)),
            ("pow_scalar", (C.copy(C.from_numpy(np.array([0, -2, 2], np.int64))), 2**62)),
            ("floor_divide", (idx, C.copy(C.from_numpy(np.array([0, -1, 0, -1], np.int64))))),
            ("remainder", (idx, C.copy(C.from_numpy(np.array([0, -1, 0, -1], np.int64))))),
            ("floor_divide", (C.copy(C.from_numpy(np.array([-(2**63)], np.int64))), C.scalar(-1, i64))),
            ("remainder", (C.copy(C.from_numpy(np.array([-(2**31)], np.int32))), C.scalar(-1, C.DType.int32))),
            ("div", (idx, C.scalar(0, i64))), ("copy_into", (C.expand(a, [2, 2, 3]), a)),
            ("add_", (C.expand(C.slice(a, 0, 0, 1, 1), [2, 3]), a)), ("add_", (a, C.expand(a, [4, 2, 3]))),
            ("astype", (C.from_numpy(np.array([math.nan, math.inf, -math.inf, 1e30])), i64)),
            ("astype", (C.from_numpy(np.array([math.nan, 1e30], np.float32)), C.DType.int32)),
            ("from_dlpack", (C.to_dlpack(a, True, False),)), ("to_dlpack", (C.flip(a, [0]), False, False)),
            ("sgd_step", ([a], [], [], 0.1, 0.0, 0.0, 0.0, False, False, True)),
            ("sgd_step", ([a], [C.transpose(a, 0, 1)], [], 0.1, 0.9, 0.0, 0.0, False, False, True)),
            ("adam_step", ([a], [a], [a], [a], [], 0, 0.1, 0.9, 0.999, 1e-8, 0.0, True, False, False)),
            ("adam_step", ([a], [idx], [a], [a], [a], 1, 0.1, 0.9, 0.999, 1e-8, 0.0, True, False, False)),
            ("adagrad_step", ([a], [a], [], -5, 0.1, 0.0, 0.0, 1e-10, False)),
            ("rmsprop_step", ([a], [a], [a], [], [], 0.1, 0.99, 1e-8, 0.0, 0.9, True, False)),
        ]
        # Index kernels: matching ranks and dtypes, so only the index values are wrong.
        I = lambda x, dt=np.int64: C.copy(C.from_numpy(np.array(x, dtype=dt)))  # noqa: E731
        ones = lambda *shape: C.copy(C.from_numpy(np.ones(shape, np.float32)))  # noqa: E731
        mask = lambda x: C.copy(C.from_numpy(np.array(x, dtype=np.bool_)))  # noqa: E731
        big = 2**40
        fixed += [
            ("gather", (a, 1, I([[0, big]]))), ("gather", (a, 1, I([[-1, -big]]))), ("gather", (a, 0, I([[2, 0, 0]]))),
            ("gather", (a, 1, I([[0, 1, 2, 0]] * 3))), ("gather", (a, 0, I([[0]], np.int32))),
            ("gather", (C.scalar(1.0, f32), 0, I(0))), ("gather", (C.scalar(1.0, f32), 0, I(1))),
            ("scatter_add", (a, 1, I([[0, 3]]), a)), ("scatter_add", (a, 0, I([[big, 0, 0]]), a)),
            ("scatter_add", (a, 1, I([[0, 1, 2]] * 2), ones(1, 1))), ("scatter_add", (a, 1, I([[-4]]), a)),
            ("index_add", (a, 0, I([5]), ones(1, 3))), ("index_add", (a, 0, I([0, 1]), ones(1, 3))),
            ("index_add", (a, 1, I([-4]), ones(2, 1))), ("index_add", (a, 1, I([-(2**63)]), ones(2, 1))),
            ("index_select", (a, 1, I([3], np.int32))), ("index_select", (a, 0, I([[0]]))),
            ("index_select", (C.scalar(1.0, f32), 0, I([1]))),
            ("index_put", (a, [I([0]), I([big])], C.scalar(1.0, f32), False)),
            ("index_put", (a, [I([0]), I([-big])], C.scalar(1.0, f32), True)),
            ("index_put", (a, [mask([True, False, True])], C.scalar(1.0, f32), False)),
            ("index_put", (a, [mask([[True, False, True, True]])], ones(3), True)),
            ("index_put", (a, [I([0, 1]), I([0, 1, 2])], ones(2), False)),
            ("index_put", (a, [I([[0], [1]]), I([0, 2])], ones(2, 5), True)),
            ("index_gather", (a, [mask([True, False, True])])), ("index_gather", (a, [I([[0]]), I([0, 1, 2])])),
            ("index_gather", (a, [None, I([3])])), ("index_gather", (a, [I([0]), None, I([0])])),
            ("index_gather", (C.scalar(1.0, f32), [mask(True)])), ("index_gather", (C.scalar(1.0, f32), [I(0)])),
            ("one_hot", (I([-1]), 3)), ("one_hot", (I([3]), 3)), ("one_hot", (I([2**62]), -1)),
            ("one_hot", (I([2**31]), -1)), ("one_hot", (I(2), 0)), ("masked_fill", (a, mask([True, False]), 1.0)),
            ("masked_select", (a, mask([[[True]]] * 2))), ("nonzero", (C.scalar(0.0, f32),)),
            ("cumsum", (C.scalar(1.0, f32), -1)), ("cumprod", (ones(0, 3), 1)), ("softmax", (ones(0, 3), 1)),
            ("log_softmax", (ones(2, 0), 1)), ("logsumexp", (ones(0, 3), [0], False)), ("max_dim", (ones(0, 3), 0, False)),
            ("argmax", (ones(0), None, False)), ("argmin", (ones(3, 0), 1, True)), ("amax", (ones(0, 3), [], False)),
            ("amax", (ones(0, 3), [1], False)), ("prod", (ones(0), [], False)), ("var", (ones(1), [0], 1.0, False)),
            ("matmul", (ones(0, 3), ones(3, 0))), ("matmul", (ones(2, 0), ones(0, 2))), ("matmul", (ones(3), ones(4))),
            ("matmul", (ones(2, 2, 3), ones(3, 3, 2))), ("matmul", (I([[1, 2]]), I([[3], [4]]))),
            ("matmul", (mask([[True]]), mask([[True]]))), ("matmul", (ones(3), C.scalar(1.0, f32))),
            ("matmul", (C.transpose(ones(3, 2), 0, 1), C.flip(ones(3, 2), [0]))),
            ("matmul", (C.expand(ones(1, 1, 3), [4, 2, 3]), ones(3, 5))), ("pad", (C.scalar(1.0, f32), [1, 1])),
            ("pad", (a, [-3, -3])), ("pad", (ones(0, 3), [1, 1, 1, 1])), ("tril", (ones(3), 0)),
            ("triu", (C.scalar(1.0, f32), 0)), ("repeat", (a, [])), ("repeat", (C.scalar(1.0, f32), [3, 0])),
            ("stack", ([ones(0, 3), ones(0, 3)], 2)), ("stack", ([ones(2), ones(3)], 0)),
            ("cat", ([ones(0), ones(2, 3)], 0)), ("cat", ([C.scalar(1.0, f32)], 0)),
            ("squeeze", (a, [5])), ("flip", (a, [0, 0])), ("unsqueeze", (a, 4)), ("view", (C.transpose(a, 0, 1), [6])),
            ("softmax_backward", (a, ones(3, 2), 1)), ("log_softmax_backward", (a, ones(2, 3), 5)),
            ("relu_backward", (a, ones(7))), ("where", (mask([True, False]), a, a)),
            ("where", (mask([[True], [False]]), a, C.scalar(1.0, f32))), ("clamp", (a, math.nan, -math.inf)),
            ("pow", (I([2, -1, 0]), I([-1, -2, -(2**62)]))), ("pow", (I([0]), I([-1]))),
            ("remainder", (I([5], np.int32), I([0], np.int32))), ("floor_divide", (I([5], np.int32), I([0], np.int32))),
            ("div_", (I([5]), I([0]))), ("bitwise_not", (ones(2),)), ("bitwise_and", (a, a)),
        ]
        for name, args in fixed:
            self.call(f"_C.{name}", getattr(C, name), args)

    # -- fg.* ----------------------------------------------------------------------------------
    def run_fg(self):
        fg, np, r = self.fg, self.np, self.rng
        T = fg.Tensor._wrap
        tensors = [T(a) for _, a in self.arrays]
        idx_tensors = [T(a) for _, a in self.index_arrays]

        def any_arg():
            x = r.random()
            if x < 0.45:
                return r.choice(tensors)
            if x < 0.55:
                return r.choice(idx_tensors)
            if x < 0.7:
                return self.gen("int")
            if x < 0.78:
                return self.gen("float")
            if x < 0.88:
                return tuple(self.gen("intlist"))
            return r.choice([None, True, [], [r.choice(tensors)], "x", -1, (0, 1), [0, 1]])

        # Creation: fixed calls first (fg.zeros(2**62) must raise, not abort).
        creation = [
            ("zeros", (2**62,)), ("zeros", (2**40, 2**40)), ("zeros", (-1,)), ("zeros", ((2, -3),)),
            ("ones", (2**63,)), ("ones", (2**63 - 1,)), ("empty", (2**62,)), ("full", ((2**62,), 1.0)),
            ("full", ((2,), math.nan)), ("full", ((2,), 2**70)), ("full", ((2,), 1e300), {"dtype": fg.float32}),
            ("arange", (0, 1, 0)), ("arange", (0, math.inf)), ("arange", (math.nan,)), ("arange", (2**62,)),
            ("arange", (0, 10, -1)), ("arange", (-(2**63), 2**63 - 1)), ("arange", (0.0, 1.0, 1e-300)),
            ("linspace", (0, 1, -1)), ("linspace", (0, 1, 2**62)), ("linspace", (math.nan, math.inf, 3)),
            ("eye", (-1,)), ("eye", (2**40,)), ("eye", (3, -2)), ("eye", (2**31, 2**31)),
            ("rand", (-1,)), ("rand", (2**62,)), ("randn", (2**40, 2**40)), ("randint", (5, 2, (3,))),
            ("randint", (0, 2**63, (2,))), ("randint", (0, 2**70, (2,))), ("randint", (10, (2**62,))),
            ("randperm", (2**62,)), ("randperm", (-1,)), ("normal", (0.0, -1.0, (3,))),
            ("manual_seed", (-1,)), ("manual_seed", (2**70,)), ("manual_seed", (math.nan,)),
            ("tensor", ([[1, 2], [3]],)), ("tensor", ([2**70],)), ("tensor", ([-(2**70)],)), ("tensor", ("abc",)),
            ("tensor", ([[[]]],)), ("tensor", ([math.nan, math.inf],), {"dtype": fg.int64}), ("tensor", ({1: 2},)),
            ("tensor", (object(),)), ("tensor", ([1, None],)), ("tensor", (np.array(["a"]),)),
            ("tensor", (np.zeros(2, np.complex64),)), ("tensor", (np.zeros((0, 3)),)), ("tensor", ([True, 2.5],)),
            ("tensor", (1.0,), {"device": "cuda:99"}), ("tensor", (1.0,), {"device": "bogus"}),
            ("tensor", (1.0,), {"dtype": "float128"}), ("tensor", (np.float16(1),)),
            ("from_numpy", (np.zeros(2, np.float16),)), ("from_numpy", (np.zeros(2, ">f4"),)),
            ("from_numpy", (np.zeros(2, np.complex128),)), ("from_numpy", ([1, 2],)),
            ("from_numpy", (np.frombuffer(b"\x00" * 17, np.float64, 2, 1),)),
            ("from_dlpack", (None,)), ("from_dlpack", (1,)), ("from_dlpack", (np.zeros(2, np.float16),)),
            ("from_dlpack", (np.zeros((2, 3))[::-1],)), ("from_dlpack", (np.zeros((2, 3))[:, ::2],)),
            ("set_num_threads", (0,)), ("set_num_threads", ("4",)), ("set_num_threads", (True,)),
        ]
        for item in creation:
            name, args = item[0], item[1]
            kwargs = item[2] if len(item) > 2 else {}
            self.call(f"fg.{name}", getattr(fg, name), args, kwargs)
        fg.manual_seed(0)

        # Ops: random arguments of plausible kinds, arity 1 to 3.
        op_names = [
            "abs", "add", "sub", "mul", "div", "floor_divide", "remainder", "pow", "maximum", "minimum", "atan2",
            "where", "clamp", "exp", "log", "sqrt", "rsqrt", "sigmoid", "tanh", "relu", "gelu", "silu", "softplus",
            "leaky_relu", "elu", "sign", "reciprocal", "floor", "ceil", "round", "isnan", "isinf", "isfinite",
            "logical_not", "bitwise_not", "logical_and", "bitwise_and", "eq", "lt",
            "sum", "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "var", "std", "logsumexp",
            "norm", "all", "any", "cumsum", "cumprod", "softmax", "log_softmax",
            "reshape", "view", "flatten", "unsqueeze", "squeeze", "transpose", "permute", "expand", "broadcast_to",
            "contiguous", "cat", "stack", "split", "chunk", "pad", "flip", "repeat", "tril", "triu", "gather",
            "scatter_add", "index_select", "index_add", "masked_fill", "masked_select", "nonzero", "one_hot",
            "narrow", "select", "unbind", "movedim", "unflatten", "matmul", "mm", "bmm", "dot", "outer", "einsum",
            "broadcast_shapes", "broadcast_tensors",
        ]
        for name in op_names:
            fn = getattr(fg, name)
            for _ in range(CALLS_PER_FG_FUNCTION):
                args = [any_arg() for _ in range(r.randint(1, 3))]
                if name == "einsum":
                    args[0] = r.choice(["ij,jk->ik", "ii->i", "i,i->", "...,...->...", "ij->", "a->b", "", "ij,,->",
                                        "i" * 40, "->", "ij,jk"])
                elif name in ("cat", "stack", "broadcast_tensors") and r.random() < 0.6:
                    args[0] = [r.choice(tensors) for _ in range(r.randint(0, 3))]
                self.call(f"fg.{name}", fn, args)

        # Tensor methods and indexing.
        t = fg.arange(12).reshape(3, 4).float()
        keys = [2**62, -(2**62), 3, -4, (0, 0, 0), (slice(None, None, 0),), (slice(None, None, -1),),
                (None, ..., None), (..., ...), [0, 5], [[0, 1], [2**40]], [True, False], [True] * 5,
                fg.tensor([0, 3]), fg.tensor([[True, False, True]]), fg.tensor([0.5]), fg.tensor(2**40),
                fg.tensor([], dtype=fg.int64), (slice(2**62, -(2**62), 2**62), 0), "a", 1.5, None, {}, (0, "a"),
                fg.tensor([-4, 3]), (fg.tensor([0, 1]), fg.tensor([0, 1, 2])), fg.zeros(3, 4, dtype=fg.bool)]
        for k in keys:
            self.call("Tensor.__getitem__", t.__getitem__, [k])
            v = r.choice([1.0, math.nan, fg.zeros(7), fg.zeros(4), fg.zeros(3, 1), "x", None, fg.zeros(2, 3, 4),
                          fg.tensor([1, 2]), [1, 2, 3, 4]])
            self.call("Tensor.__setitem__", t.__setitem__, [k, v])
        methods = [("item", ()), ("tolist", ()), ("numpy", ()), ("reshape", (2**62, 0)), ("view", (-1, -1)),
                   ("expand", (2**62, 3, 4)), ("to", ("cuda",)), ("to", ("bogus",)), ("to", (12,)),
                   ("__dlpack__", ()), ("__dlpack__", (), {"max_version": (1, 0)}),
                   ("__dlpack__", (), {"stream": 1}), ("__dlpack__", (), {"dl_device": (2, 0)}),
                   ("__dlpack__", (), {"max_version": (0, 5)}), ("__dlpack__", (), {"copy": True}),
                   ("__len__", ()), ("__bool__", ()), ("__float__", ()), ("__index__", ()), ("__format__", (".3f",)),
                   ("__iter__", ()), ("numel", ()), ("size", (2**62,)), ("stride", (-(2**62),)),
                   ("__matmul__", (fg.zeros(5, 5),)), ("__pow__", (-(2**70),)), ("__rpow__", (math.nan,)),
                   ("__mod__", (0,)), ("__floordiv__", (0,)), ("__truediv__", (0,)), ("__lshift__", (1,)),
                   ("__and__", (1.5,)), ("__invert__", ()), ("add_", (fg.zeros(2, 3, 4),)), ("fill_", (math.inf,)),
                   ("clamp_", (math.nan, -math.inf)), ("uniform_", (1.0, 0.0)), ("normal_", (0.0, -1.0)),
                   ("copy_", (fg.zeros(5),)), ("zero_", ()), ("masked_fill", (fg.zeros(3, 4), 1.0)),
                   ("backward", ()), ("register_hook", (None,)), ("requires_grad_", ("yes",))]
        for item in methods:
            for x in (fg.arange(12).reshape(3, 4).float(), fg.tensor(2**40), fg.zeros(0, 3), fg.tensor([True])):
                name, args = item[0], item[1]
                kwargs = item[2] if len(item) > 2 else {}
                fn = getattr(x, name, None)
                if fn is not None:
                    self.call(f"Tensor.{name}", fn, args, kwargs)

    def report(self):
        print(f"robustness: {self.calls} calls, raised {dict(sorted(self.raised.items()))}, "
              f"{len(self.failures)} unexpected exception types")
        for desc, err in self.failures:
            print(f"UNEXPECTED {desc} -> {err}")
        for desc, err in self.suspicious:
            print(f"SUSPICIOUS {desc} -> {err}")
        if self.fork:
            print(f"{len(self.crashes)} crashing calls")
        return 1 if self.failures or self.crashes else 0


# ---- helpers -------------------------------------------------------------------------------------


def _short(x):
    try:
        if isinstance(x, (list, tuple)) and len(x) > 6:
            return f"{type(x).__name__}[{len(x)} items]"
        if type(x).__name__ == "Array":
            return f"Array({x.dtype.name}{list(x.shape)} strides={list(x.strides)})"
        if type(x).__name__ == "Tensor":
            return f"Tensor({x.dtype}{list(x.shape)})"
        if type(x).__name__ == "ndarray":
            return f"ndarray({x.dtype}{list(x.shape)} strides={list(x.strides)})"
        if isinstance(x, (list, tuple)):
            inner = ", ".join(_short(v) for v in x)
            return f"[{inner}]" if isinstance(x, list) else f"({inner})"
        s = repr(x)
        return s if len(s) < 60 else s[:57] + "..."
    except Exception:  # noqa: BLE001
        return f"<{type(x).__name__}>"


def _touch(out):
    """Read a result so that a bad view or a dangling pointer shows up here."""
    from fastgrad import _C

    if isinstance(out, (tuple, list)):
        for o in out:
            _touch(o)
    elif isinstance(out, _C.Array):
        if out.device == "cpu" and out.numel() <= 1 << 16:
            _C.to_numpy(out).copy()
    elif type(out).__name__ == "Tensor":
        if out.device.type == "cpu" and out.numel() <= 1 << 16:
            out.numpy(force=True).copy()


def _named_capsule(name):
    import ctypes

    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    _named_capsule.keep = getattr(_named_capsule, "keep", [])
    buf = ctypes.create_string_buffer(64)
    _named_capsule.keep.append(buf)
    return new(ctypes.addressof(buf), name, None)


_KINDS = [
    (r"Sequence\[fastgrad\._C\.Array \| None\]", "arrlist_opt"),
    (r"Sequence\[fastgrad\._C\.Array\]", "arrlist"),
    (r"Sequence\[typing\.SupportsInt", "intlist"),
    (r"^fastgrad\._C\.Array$", "array"),
    (r"^fastgrad\._C\.Array \| None$", "array_opt"),
    (r"^fastgrad\._C\.DType \| None$", "dtype_opt"),
    (r"^fastgrad\._C\.DType$", "dtype"),
    (r"SupportsInt.*SupportsFloat", "number"),
    (r"SupportsInt.*\| None$", "int_opt"),
    (r"SupportsInt|^int$", "int"),
    (r"SupportsFloat.*\| None$", "float_opt"),
    (r"SupportsFloat|^float$", "float"),
    (r"^bool$", "bool"),
    (r"^str$", "str"),
    (r"numpy\.ndarray", "ndarray"),
    (r"^object$", "object"),
]


def parse_signature(fn):
    """Argument kinds of a pybind11 function from its docstring's first line."""
    doc = (fn.__doc__ or "").strip().split("\n")[0]
    m = re.match(r"^\w+\((.*)\) -> ", doc)
    if not m:
        return None
    params, depth, cur = [], 0, ""
    for ch in m.group(1):
        if ch == "," and depth == 0:
            params.append(cur)
            cur = ""
            continue
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        cur += ch
    if cur.strip():
        params.append(cur)
    kinds = []
    for p in params:
        ann = p.split(":", 1)[1].strip() if ":" in p else "object"
        ann = ann.split(" = ")[0].strip()
        for pat, kind in _KINDS:
            if re.search(pat, ann):
                kinds.append(kind)
                break
        else:
            return None
    return kinds


def main(argv):
    import faulthandler
    import warnings

    faulthandler.enable()
    warnings.simplefilter("ignore")  # overflow/NaN casts in NumPy are expected here
    trace = argv[argv.index("--trace") + 1] if "--trace" in argv else None
    asan = "asan" in os.environ.get("LD_PRELOAD", "")
    if not asan:  # ASan reserves terabytes of address space; it caps allocations itself
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    d = Driver(trace=trace, verbose="-v" in argv, fork="--fork" in argv)
    d.build_pools()
    d.run_c_fixed()
    d.run_c()
    d.run_fg()
    return d.report()


# ---- the pytest tests ---------------------------------------------------------------------------------
# Regression tests for the crashes the driver found (each crashed or built a
# corrupt array before its fix), then the driver itself.


def _fg():
    import numpy as np
    import pytest

    fg = pytest.importorskip("fastgrad")
    return fg, fg._C, np


def test_huge_sizes_raise():
    import pytest

    fg, C, _ = _fg()
    # 2**62 float32 elements: the byte count wrapped size_t to 0, then the fill wrote past a 64-byte block.
    for shape in ([2**62], [2**31, 2**31], [2**61, 2]):
        with pytest.raises(ValueError, match="too large"):
            C.zeros(shape, C.DType.float32, "cpu")
        with pytest.raises(ValueError, match="too large"):
            C.full(shape, 1.0, C.DType.float64, "cpu")
    for make in (lambda: fg.zeros(2**62), lambda: fg.rand(2**62), lambda: fg.randperm(2**62),
                 lambda: fg.empty(2**31, 2**31), lambda: fg.randint(10, (2**62,))):
        with pytest.raises(ValueError, match="too large"):
            make()
    with pytest.raises((MemoryError, RuntimeError), match="memory|alloc"):  # 4 PiB: a clean out-of-memory error
        C.zeros([2**50], C.DType.float32, "cpu")


def test_as_strided_stays_inside_its_storage():
    import pytest

    fg, C, np = _fg()
    a = C.copy(C.from_numpy(np.arange(6, dtype=np.float32)))
    assert C.to_numpy(C.as_strided(a, [2, 2], [1, 2], 1)).tolist() == [[1, 3], [2, 4]]
    assert C.to_numpy(C.as_strided(a, [3], [-2], 5)).tolist() == [5, 3, 1]
    assert C.as_strided(a, [2**40], [0], 5).shape == (2**40,)  # broadcast: one element, many times
    for shape, strides, offset in (([7], [1], 0), ([3], [1], 4), ([3], [-1], 1), ([6], [1], -1),
                                   ([2, 2], [2**62, 2**62], 0), ([2], [1, 1], 0), ([2**62, 2**62], [0, 0], 0)):
        with pytest.raises((IndexError, ValueError), match="as_strided"):
            C.as_strided(a, shape, strides, offset)
    # views of NumPy memory know their extent too, negative strides included
    n = np.arange(12.0).reshape(3, 4)[::-1, ::2]
    b = C.from_numpy(n)
    assert C.to_numpy(C.as_strided(b, [6], [1], 0)).tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(IndexError, match="outside the storage of 11 elements"):
        C.as_strided(b, [12], [1], 0)


def test_shape_arithmetic_does_not_overflow():
    """UBSan found signed overflow here (no crash, but undefined behaviour)."""
    import pytest

    fg, C, np = _fg()
    a = C.copy(C.from_numpy(np.ones((2, 3), np.float32)))
    for shape in ([2**40, 2**40], [2**63 - 1, 5], [-1, 2**40, 2**40]):
        with pytest.raises(ValueError, match="reshape: shape .* is invalid"):
            C.reshape(a, shape)
    z = C.zeros([0, 3], C.DType.float32, "cpu")
    for op in (C.reshape, C.view):
        with pytest.raises(ValueError, match="too large"):
            op(z, [0, 2**62, 2])  # numel 0, but contiguous strides overflowed
    with pytest.raises(ValueError, match="repeat: .* too large"):
        C.repeat(a, [2**62, 2**62])
    # zero-size, but its contiguous strides would overflow (torch refuses it too)
    for shape in ([0, 2**62, 4], [0, 2**40, 2**40]):
        with pytest.raises(ValueError, match="too large"):
            C.zeros(shape, C.DType.float32, "cpu")
    assert C.zeros([0, 2**31], C.DType.float32, "cpu").strides == (2**31, 1)
    with pytest.raises(IndexError, match="as_strided: offset"):
        C.as_strided(a, [0], [1], 2**63 - 1)  # zero-size, but raw() computed offset * itemsize
    assert C.as_strided(a, [0, 2], [1, 1], 6).shape == (0, 2)
    with pytest.raises(ValueError, match="one_hot: class value 9223372036854775807 is too large"):
        C.one_hot(C.copy(C.from_numpy(np.array([2**63 - 1]))), -1)  # num_classes = max + 1 overflowed
    # a size-1 dim may carry any stride; NumPy sees a harmless one
    v = C.as_strided(a, [1, 3], [2**62, 1], 0)
    assert C.to_numpy(v).tolist() == [[1.0, 1.0, 1.0]]


def test_expand_and_slice_do_not_overflow():
    import pytest

    fg, C, np = _fg()
    a = C.copy(C.from_numpy(np.ones((2, 3), np.float32)))
    with pytest.raises(ValueError, match="expand: shape .* is too large"):
        C.expand(a, [2**62, 2, 3])  # numel would wrap int64
    r = C.slice(a, 1, 0, 3, 2**63 - 1)  # (stop - start + step - 1) overflowed here
    assert r.shape == (2, 1) and C.to_numpy(r).tolist() == [[1.0], [1.0]]
    t = fg.arange(10)
    assert t[2::2**62].tolist() == [2] and t[::2**63 - 1].tolist() == [0]




def test_nothing_reachable_from_python_crashes():
    env = dict(os.environ)
    from conftest import package_pythonpath

    env["PYTHONPATH"] = package_pythonpath()  # the fastgrad under test (installed in CI)
    env.setdefault("FASTGRAD_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "calls.txt")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--trace", trace], env=env,
                              capture_output=True, text=True, timeout=300)
        with open(trace, encoding="utf-8", errors="replace") as f:
            calls = f.read().splitlines()
    last = calls[-1] if calls else "(none)"
    msg = (f"driver exited with {proc.returncode} after {len(calls)} calls; last call: {last}\n"
           f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")
    assert proc.returncode == 0, msg


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
