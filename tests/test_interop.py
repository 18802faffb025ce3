"""Zero-copy exchange with NumPy and DLPack (csrc/interop.cpp).

Both directions share memory (a write on one side is seen on the other) for
every dtype, 0-d, zero-size and non-contiguous tensors; lifetimes hold (the
producer may die first; the consumer's release frees the memory, checked
with fg.memory.stats and weakref finalizers); errors are Python exceptions.
A small ctypes DLPack producer/consumer, written from the DLPack spec, checks
the protocol itself: capsule names, the versioned header, the deleter called
exactly once, NULL strides, byte_offset, bad devices, dtypes and versions.
"""
import ctypes
import gc
import sys
import weakref

import numpy as np
import pytest

import fastgrad as fg

torch = pytest.importorskip("torch")

DTYPES = [  # fastgrad, NumPy, PyTorch
    (fg.bool, np.bool_, torch.bool),
    (fg.int32, np.int32, torch.int32),
    (fg.int64, np.int64, torch.int64),
    (fg.float32, np.float32, torch.float32),
    (fg.float64, np.float64, torch.float64),
]
DTYPE_IDS = ["bool", "int32", "int64", "float32", "float64"]


def values(shape, np_dtype, seed=0):
    rs = np.random.RandomState(seed)
    a = np.asarray(rs.randint(-5, 6, size=shape))
    return np.asarray(a > 0) if np_dtype == np.bool_ else a.astype(np_dtype)


def other_value(x):
    """A value different from x of the same kind (for write-through checks)."""
    return (not x) if isinstance(x, (bool, np.bool_)) else x + 7


def bytes_in_use():
    gc.collect()
    return fg.memory.stats()["bytes_in_use"]


# Views of a contiguous base: (name, shape of the base, view function on NumPy / torch / fastgrad)
VIEWS = {
    "contiguous": ((2, 3), lambda x: x),
    "0d": ((), lambda x: x),
    "zero_size": ((0, 3), lambda x: x),
    "transposed": ((3, 4), lambda x: x.T if not isinstance(x, torch.Tensor) else x.t()),
    "sliced_steps": ((4, 6), lambda x: x[1::2, ::3]),
    "column": ((3, 4), lambda x: x[:, 1]),
}


# ---- NumPy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fg_dtype,np_dtype,_", DTYPES, ids=DTYPE_IDS)
def test_from_numpy_and_numpy_share_memory(fg_dtype, np_dtype, _):
    a = values((3, 4), np_dtype)
    t = fg.from_numpy(a)
    assert t.dtype is fg_dtype and t.shape == (3, 4) and t.tolist() == a.tolist()
    a[1, 2] = other_value(a[1, 2])
    assert t[1, 2].item() == a[1, 2]
    t[0, 0] = other_value(a[0, 0].item())
    assert a[0, 0] == t[0, 0].item()
    n = t.numpy()
    assert np.shares_memory(n, a) and n.dtype == np_dtype
    n[2, 3] = other_value(n[2, 3])
    assert t[2, 3].item() == n[2, 3]
    assert np.shares_memory(np.asarray(t), a)


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
@pytest.mark.parametrize("fg_dtype,np_dtype,_", DTYPES, ids=DTYPE_IDS)
def test_from_numpy_views(view, fg_dtype, np_dtype, _):
    shape, fn = VIEWS[view]
    base = values(shape, np_dtype)
    v = fn(base)
    t = fg.from_numpy(v)
    assert t.shape == v.shape and t.dtype is fg_dtype and t.tolist() == v.tolist()
    assert np.shares_memory(t.numpy(), base) or v.size == 0
    if v.size:
        idx = (0,) * v.ndim
        v[idx] = other_value(v[idx])
        assert t[idx].item() == v[idx]


def test_from_numpy_negative_strides_and_broadcast():
    a = np.arange(12.0).reshape(3, 4)
    for v in (a[::-1], a[:, ::-2], a[::-1, ::-1].T):
        t = fg.from_numpy(v)
        assert t.tolist() == v.tolist() and (t + 1).tolist() == (v + 1).tolist()
        assert np.shares_memory(t.numpy(), a)
    b = np.broadcast_to(np.arange(3.0), (4, 3))  # zero strides, read-only
    assert fg.from_numpy(b).tolist() == b.tolist()


def test_tensor_numpy_views_share_memory():
    t = fg.arange(24, dtype=fg.float64).reshape(4, 6)
    for v in (t.T, t[:, ::2], t[1:3], t[2], t.flip(0)):
        n = v.numpy()
        assert n.tolist() == v.tolist()
        assert np.shares_memory(n, t.numpy())
    z = fg.zeros(0, 5)
    assert z.numpy().shape == (0, 5)
    s = fg.tensor(2.5)
    assert s.numpy().shape == () and np.asarray(s) == 2.5


@pytest.mark.parametrize("dtype", [np.float16, np.uint8, np.int8, np.int16, np.uint16, np.uint32, np.uint64,
                                   np.complex64, np.complex128, object, "U3", "M8[s]", [("a", "f4"), ("b", "i4")]],
                         ids=["f16", "u8", "i8", "i16", "u16", "u32", "u64", "c64", "c128", "object", "str",
                              "datetime", "struct"])
def test_from_numpy_unsupported_dtype(dtype):
    a = np.zeros(3, dtype=dtype)
    with pytest.raises(TypeError, match="from_numpy"):
        fg.from_numpy(a)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4", ">i8"] if sys.byteorder == "little" else
                         ["<f4", "<f8", "<i4", "<i8"])
def test_from_numpy_non_native_byte_order(dtype):
    with pytest.raises(TypeError, match="endian"):
        fg.from_numpy(np.arange(3).astype(dtype))


def test_from_numpy_not_an_array():
    with pytest.raises(TypeError):
        fg.from_numpy([1.0, 2.0])


def test_from_numpy_lifetime():
    a = np.arange(5.0)
    alive = weakref.ref(a)
    t = fg.from_numpy(a)
    del a
    gc.collect()
    assert alive() is not None  # the tensor keeps the array alive
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    del t
    gc.collect()
    assert alive() is None  # and lets it go with the last view


def test_numpy_of_tensor_lifetime():
    base = bytes_in_use()
    t = fg.arange(1000, dtype=fg.float64)
    n = t.numpy()
    del t
    assert bytes_in_use() >= base + 8000
    assert n[999] == 999.0  # the array keeps the storage alive
    del n
    assert bytes_in_use() == base


# ---- DLPack: fastgrad -> torch / NumPy ----------------------------------------------------------------------


def fg_view(view, fg_dtype, np_dtype):
    shape, fn = VIEWS[view]
    base = fg.tensor(values(shape, np_dtype), dtype=fg_dtype)
    return base, fn(base)


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
@pytest.mark.parametrize("fg_dtype,np_dtype,torch_dtype", DTYPES, ids=DTYPE_IDS)
def test_torch_from_fastgrad(view, fg_dtype, np_dtype, torch_dtype):
    base, v = fg_view(view, fg_dtype, np_dtype)
    tt = torch.from_dlpack(v)
    assert tt.dtype == torch_dtype and tuple(tt.shape) == v.shape and tt.tolist() == v.tolist()
    assert tuple(tt.stride()) == v.stride() or v.numel() == 0
    if v.numel():
        idx = (0,) * v.ndim
        tt[idx] = other_value(tt[idx].item())  # torch writes, fastgrad sees
        assert v[idx].item() == tt[idx].item()
        v[idx] = other_value(v[idx].item())  # fastgrad writes, torch sees
        assert tt[idx].item() == v[idx].item()
        assert tt.data_ptr() == v.data_ptr()


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
@pytest.mark.parametrize("fg_dtype,np_dtype,_", DTYPES, ids=DTYPE_IDS)
def test_numpy_from_fastgrad(view, fg_dtype, np_dtype, _):
    base, v = fg_view(view, fg_dtype, np_dtype)
    n = np.from_dlpack(v)
    assert n.dtype == np_dtype and n.shape == v.shape and n.tolist() == v.tolist()
    if v.numel():
        idx = (0,) * v.ndim
        n[idx] = other_value(n[idx])
        assert v[idx].item() == n[idx]
        v[idx] = other_value(v[idx].item())
        assert n[idx] == v[idx].item()
        assert np.shares_memory(n, base.numpy())


def test_fastgrad_from_fastgrad_dlpack():
    t = fg.arange(6.0).reshape(2, 3)
    u = fg.from_dlpack(t.T)
    u[0, 1] = 42
    assert t[1, 0].item() == 42 and u.shape == (3, 2)


def test_export_broadcast_view():
    t = fg.arange(3.0).reshape(1, 3).expand(4, 3)
    assert torch.from_dlpack(t).tolist() == t.tolist()
    assert np.from_dlpack(t).tolist() == t.tolist()


def test_export_negative_strides():
    t = fg.arange(6.0).reshape(2, 3).flip(1)
    # PyTorch aborts the process on negative DLPack strides, so they are refused...
    for consumer in (torch.from_dlpack, np.from_dlpack, fg.from_dlpack):
        with pytest.raises(BufferError, match="negative strides"):
            consumer(t)
    # ...unless the consumer allows a copy, and size-1 dims' strides do not matter.
    assert torch.from_dlpack(t, copy=True).tolist() == t.tolist()
    assert np.from_dlpack(t, copy=True).tolist() == t.tolist()
    one = fg.arange(3.0).reshape(1, 3).flip(0)
    assert torch.from_dlpack(one).tolist() == [[0.0, 1.0, 2.0]]


def test_export_copy():
    t = fg.arange(4.0)
    n = np.from_dlpack(t, copy=True)
    n[0] = 9
    assert t[0].item() == 0.0
    tt = torch.from_dlpack(t, copy=True)
    tt[1] = 9
    assert t[1].item() == 1.0


def test_dlpack_device_and_arguments():
    t = fg.ones(2)
    assert t.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(2, 0))
    t.__dlpack__(dl_device=(1, 0))
    with pytest.raises(ValueError, match="stream"):
        t.__dlpack__(stream=1)
    with pytest.raises(RuntimeError, match="requires grad"):
        fg.ones(2, requires_grad=True).__dlpack__()
    assert torch.from_dlpack(fg.ones(2, requires_grad=True).detach()).tolist() == [1.0, 1.0]


def capsule_name(cap):
    get = ctypes.pythonapi.PyCapsule_GetName
    get.restype, get.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return get(cap).decode()


@pytest.mark.parametrize("kwargs,name", [
    ({}, "dltensor"),
    ({"max_version": None}, "dltensor"),
    ({"max_version": (0, 8)}, "dltensor"),
    ({"max_version": (1, 0)}, "dltensor_versioned"),
    ({"max_version": (1, 3)}, "dltensor_versioned"),
    ({"max_version": (2, 0)}, "dltensor_versioned"),
])
def test_capsule_names(kwargs, name):
    assert capsule_name(fg.ones(2).__dlpack__(**kwargs)) == name


# ---- the DLPack ABI, from the spec (for a ctypes producer and consumer) ----------------------------------


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32), ("dtype", DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    pass


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
DELETER_V = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", DELETER)]
DLManagedTensorVersioned._fields_ = [("version", DLPackVersion), ("manager_ctx", ctypes.c_void_p),
                                     ("deleter", DELETER_V), ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor)]
FLAG_READ_ONLY, FLAG_IS_COPIED = 1, 2
kDLInt, kDLUInt, kDLFloat, kDLBfloat, kDLComplex, kDLBool = 0, 1, 2, 4, 5, 6

_api = ctypes.pythonapi
_api.PyCapsule_GetPointer.restype, _api.PyCapsule_GetPointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                                          ctypes.c_char_p]
_api.PyCapsule_SetName.restype, _api.PyCapsule_SetName.argtypes = ctypes.c_int, [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_IsValid.restype, _api.PyCapsule_IsValid.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class Producer:
    """A DLPack producer in ctypes: owns a buffer, counts deleter calls.

    The capsule's destructor calls the deleter only while the capsule is
    unconsumed (still named "dltensor[_versioned]"), as the protocol says.
    """

    def __init__(self, array, versioned=True, code=None, bits=None, lanes=1, device=(1, 0), major=1,
                 strides="array", byte_offset=0, data="array", flags=0, ndim=None, shape="array"):
        self.buf = array  # a NumPy array: the memory we lend
        self.deleted = 0
        self.versioned = versioned
        self.name = b"dltensor_versioned" if versioned else b"dltensor"
        nd = array.ndim if ndim is None else ndim
        self.shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        self.strides = (ctypes.c_int64 * max(array.ndim, 1))(*[s // array.itemsize for s in array.strides])
        m = DLManagedTensorVersioned() if versioned else DLManagedTensor()
        if versioned:
            m.version = DLPackVersion(major, 0)
            m.flags = flags
        t = m.dl_tensor
        t.data = array.ctypes.data - byte_offset if data == "array" else data
        t.byte_offset = byte_offset
        t.device = DLDevice(*device)
        t.ndim = nd
        kind = {"b": kDLBool, "i": kDLInt, "u": kDLUInt, "f": kDLFloat, "c": kDLComplex}[array.dtype.kind]
        t.dtype = DLDataType(kind if code is None else code, array.itemsize * 8 if bits is None else bits, lanes)
        t.shape = self.shape if shape == "array" else shape
        t.strides = self.strides if strides == "array" else strides
        self.deleter = (DELETER_V if versioned else DELETER)(self._delete)
        m.deleter = self.deleter
        self.managed = m
        self.destructor = _CAPSULE_DESTRUCTOR(self._capsule_destructor)

    def _delete(self, ptr):
        self.deleted += 1

    def _capsule_destructor(self, cap):
        if _api.PyCapsule_IsValid(cap, self.name):
            self._delete(None)

    def capsule(self):
        return _api.PyCapsule_New(ctypes.addressof(self.managed), self.name,
                                  ctypes.cast(self.destructor, ctypes.c_void_p).value)


def read_managed(cap, name):
    ptr = _api.PyCapsule_GetPointer(cap, name.encode())
    kind = DLManagedTensorVersioned if name.endswith("versioned") else DLManagedTensor
    return ctypes.cast(ptr, ctypes.POINTER(kind))


# ---- our capsules, read as a consumer would ----------------------------------------------------------


@pytest.mark.parametrize("fg_dtype,code,bits", [(fg.bool, kDLBool, 8), (fg.int32, kDLInt, 32),
                                                (fg.int64, kDLInt, 64), (fg.float32, kDLFloat, 32),
                                                (fg.float64, kDLFloat, 64)], ids=DTYPE_IDS)
def test_exported_versioned_header(fg_dtype, code, bits):
    t = fg.zeros(4, 6, dtype=fg_dtype)[1:, ::2]
    cap = t.__dlpack__(max_version=(1, 0))
    m = read_managed(cap, "dltensor_versioned").contents
    assert (m.version.major, m.version.minor) == (1, 0)
    assert m.flags == 0  # writable, shared
    dl = m.dl_tensor
    assert (dl.device.device_type, dl.device.device_id) == (1, 0)
    assert (dl.dtype.code, dl.dtype.bits, dl.dtype.lanes) == (code, bits, 1)
    assert dl.ndim == 2 and [dl.shape[i] for i in range(2)] == [3, 3] and [dl.strides[i] for i in range(2)] == [6, 2]
    assert dl.data + dl.byte_offset == t.data_ptr()
    copied = read_managed(t.__dlpack__(max_version=(1, 0), copy=True), "dltensor_versioned").contents
    assert copied.flags & FLAG_IS_COPIED
    assert copied.dl_tensor.data + copied.dl_tensor.byte_offset != t.data_ptr()


def test_exported_0d_header():
    cap = fg.tensor(3.0).__dlpack__()
    dl = read_managed(cap, "dltensor").contents.dl_tensor
    assert dl.ndim == 0 and ctypes.cast(dl.data, ctypes.POINTER(ctypes.c_float))[0] == 3.0


def test_consumer_deleter_frees_the_storage():
    """A consumer renames the capsule, drops it, then calls the deleter itself."""
    for versioned in (False, True):
        base = bytes_in_use()
        t = fg.arange(1000, dtype=fg.float64)
        cap = t.__dlpack__(max_version=(1, 0) if versioned else None)
        name = "dltensor_versioned" if versioned else "dltensor"
        m = read_managed(cap, name)
        assert _api.PyCapsule_SetName(cap, ("used_" + name).encode()) == 0
        del cap, t  # consumed: the capsule does not free, the consumer owns the memory now
        assert bytes_in_use() >= base + 8000
        data = ctypes.cast(m.contents.dl_tensor.data, ctypes.POINTER(ctypes.c_double))
        assert data[999] == 999.0
        m.contents.deleter(m)
        assert bytes_in_use() == base


def test_unconsumed_capsule_frees_the_storage():
    base = bytes_in_use()
    t = fg.arange(1000, dtype=fg.float64)
    caps = [t.__dlpack__(), t.__dlpack__(max_version=(1, 0)), t.__dlpack__(copy=True)]
    del t
    assert bytes_in_use() >= base + 8000
    del caps
    assert bytes_in_use() == base


@pytest.mark.parametrize("consumer", ["torch", "numpy"])
def test_export_lifetime(consumer):
    base = bytes_in_use()
    t = fg.arange(1000, dtype=fg.float64)
    x = torch.from_dlpack(t) if consumer == "torch" else np.from_dlpack(t)
    del t  # the producer dies first
    assert bytes_in_use() >= base + 8000
    assert x[999] == 999.0 and float(x.sum()) == 999 * 1000 / 2
    del x  # the consumer calls our deleter
    assert bytes_in_use() == base


# ---- DLPack: torch / NumPy -> fastgrad ----------------------------------------------------------------------


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
@pytest.mark.parametrize("fg_dtype,np_dtype,torch_dtype", DTYPES, ids=DTYPE_IDS)
def test_fastgrad_from_torch(view, fg_dtype, np_dtype, torch_dtype):
    shape, fn = VIEWS[view]
    base = torch.from_numpy(values(shape, np_dtype).copy())
    src = fn(base)
    t = fg.from_dlpack(src)
    assert t.dtype is fg_dtype and t.shape == tuple(src.shape) and t.tolist() == src.tolist()
    assert t.stride() == tuple(src.stride()) or src.numel() == 0
    if src.numel():
        idx = (0,) * src.ndim
        src[idx] = other_value(src[idx].item())
        assert t[idx].item() == src[idx].item()
        t[idx] = other_value(t[idx].item())
        assert src[idx].item() == t[idx].item()
        assert t.data_ptr() == src.data_ptr()


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
@pytest.mark.parametrize("fg_dtype,np_dtype,_", DTYPES, ids=DTYPE_IDS)
def test_fastgrad_from_numpy_dlpack(view, fg_dtype, np_dtype, _):
    shape, fn = VIEWS[view]
    base = values(shape, np_dtype)
    src = fn(base)
    t = fg.from_dlpack(src)
    assert t.dtype is fg_dtype and t.shape == src.shape and t.tolist() == src.tolist()
    if src.size:
        idx = (0,) * src.ndim
        src[idx] = other_value(src[idx])
        assert t[idx].item() == src[idx]
        t[idx] = other_value(t[idx].item())
        assert src[idx] == t[idx].item()
        assert np.shares_memory(t.numpy(), base)


def test_import_negative_and_zero_strides():
    a = np.arange(12.0).reshape(3, 4)
    t = fg.from_dlpack(a[::-1, ::2])
    assert t.tolist() == a[::-1, ::2].tolist() and (t * 2).tolist() == (a[::-1, ::2] * 2).tolist()
    a[2, 0] = -1
    assert t[0, 0].item() == -1
    e = torch.arange(3.0).expand(4, 3)
    assert fg.from_dlpack(e).tolist() == e.tolist() and fg.from_dlpack(e).stride() == (0, 1)


def test_import_lifetime_numpy():
    a = np.arange(1000.0)
    freed = []
    weakref.finalize(a, freed.append, True)
    t = fg.from_dlpack(a)
    del a  # the producer's object dies first: the capsule's owner keeps the memory
    gc.collect()
    assert not freed and t[999].item() == 999.0
    u = t[10:20]  # a view keeps it alive too
    del t
    gc.collect()
    assert not freed and u[0].item() == 10.0
    del u  # the last view: our storage calls NumPy's deleter
    gc.collect()
    assert freed == [True]


def test_import_lifetime_torch():
    src = torch.arange(1000, dtype=torch.float64)
    refs = src._use_count()
    t = fg.from_dlpack(src)
    assert src._use_count() == refs + 1  # the capsule's tensor, owned by our storage now
    u = t[500:]
    del t
    gc.collect()
    assert src._use_count() == refs + 1 and u[499].item() == 999.0
    del u  # the last view: our storage calls torch's deleter
    gc.collect()
    assert src._use_count() == refs
    src2 = torch.arange(1000, dtype=torch.float64)
    t2 = fg.from_dlpack(src2)
    del src2  # the producer's object dies first
    gc.collect()
    assert t2[999].item() == 999.0 and t2.sum().item() == 999 * 1000 / 2


@pytest.mark.parametrize("torch_dtype", [torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
                                         torch.uint8, torch.int8, torch.int16])
def test_import_unsupported_torch_dtype(torch_dtype):
    name = str(torch_dtype).replace("torch.", "")
    with pytest.raises(TypeError, match=f"unsupported dtype {name}"):
        fg.from_dlpack(torch.zeros(3, dtype=torch_dtype))


@pytest.mark.parametrize("np_dtype", [np.float16, np.uint8, np.complex64])
def test_import_unsupported_numpy_dtype(np_dtype):
    with pytest.raises(TypeError, match="unsupported dtype"):
        fg.from_dlpack(np.zeros(3, dtype=np_dtype))


def test_import_used_capsule_twice():
    for cap in (torch.utils.dlpack.to_dlpack(torch.ones(3)), np.ones(3).__dlpack__(max_version=(1, 0)),
                fg.ones(3).__dlpack__()):
        t = fg.from_dlpack(cap)
        assert t.tolist() == [1.0, 1.0, 1.0]
        assert capsule_name(cap).startswith("used_")
        with pytest.raises(RuntimeError, match="already consumed"):
            fg.from_dlpack(cap)
        assert t.tolist() == [1.0, 1.0, 1.0]


def test_import_not_a_capsule():
    for bad in (None, 3, "dltensor", [1, 2], object()):
        with pytest.raises(TypeError):
            fg.from_dlpack(bad)
    cap = _api.PyCapsule_New(ctypes.addressof(ctypes.c_int(0)), b"something_else", None)
    with pytest.raises(TypeError, match="something_else"):
        fg.from_dlpack(cap)


def test_import_from_old_producer_without_max_version():
    class Old:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, stream=None):  # a pre-DLPack-1.0 producer
            return self.a.__dlpack__()

        def __dlpack_device__(self):
            return (1, 0)

    a = np.arange(4.0)
    t = fg.from_dlpack(Old(a))
    a[0] = 7
    assert t[0].item() == 7


def test_import_from_gpu_producer_is_refused():
    class OnGpu:
        called = False

        def __dlpack__(self, **kwargs):
            OnGpu.called = True
            raise AssertionError("must not export")

        def __dlpack_device__(self):
            return (2, 0)

    # without CUDA in the build: CPU only; with it but no such device: says so
    with pytest.raises(RuntimeError, match="CPU tensors only" if not fg.cuda.is_built() else "no such CUDA device"):
        fg.from_dlpack(OnGpu())
    assert not OnGpu.called


# ---- the protocol, with the ctypes producer ---------------------------------------------------------------


@pytest.mark.parametrize("versioned", [False, True], ids=["legacy", "versioned"])
def test_producer_deleter_runs_once(versioned):
    a = np.arange(6.0).reshape(2, 3)
    p = Producer(a, versioned=versioned)
    cap = p.capsule()
    t = fg.from_dlpack(cap)
    assert capsule_name(cap) == ("used_dltensor_versioned" if versioned else "used_dltensor")
    del cap
    gc.collect()
    assert p.deleted == 0  # consumed: the capsule must not call it
    a[1, 2] = -5
    assert t[1, 2].item() == -5 and t.tolist() == a.tolist()
    v = t.T
    del t
    gc.collect()
    assert p.deleted == 0
    del v
    gc.collect()
    assert p.deleted == 1


def test_producer_null_strides_byte_offset_and_empty():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    p = Producer(a, strides=None, byte_offset=16)  # NULL strides: C-contiguous; data + 16 bytes is element 0
    t = fg.from_dlpack(p.capsule())
    assert t.tolist() == a.tolist() and t.stride() == (4, 1)
    a[0, 0] = 100
    assert t[0, 0].item() == 100
    s = Producer(np.array(2.5), ndim=0, shape=None, strides=None)  # 0-d: NULL shape is fine
    assert fg.from_dlpack(s.capsule()).item() == 2.5
    e = Producer(np.zeros((0, 3)), data=None)  # zero-size with a NULL data pointer
    z = fg.from_dlpack(e.capsule())
    assert z.shape == (0, 3) and (z + 1).shape == (0, 3) and z.sum().item() == 0
    del t, z
    gc.collect()
    assert p.deleted == 1 and e.deleted == 1


@pytest.mark.parametrize("case,exc,match", [
    ({"device": (2, 0)}, RuntimeError, "cuda:0"),
    ({"device": (13, 1)}, RuntimeError, "device"),
    ({"code": kDLFloat, "bits": 16}, TypeError, "float16"),
    ({"code": kDLBfloat, "bits": 16}, TypeError, "bfloat16"),
    ({"code": kDLComplex, "bits": 64}, TypeError, "complex64"),
    ({"code": kDLUInt, "bits": 8}, TypeError, "uint8"),
    ({"lanes": 4}, TypeError, "lanes"),
    ({"code": 99}, TypeError, "type code 99"),
    ({"major": 2}, BufferError, "version 2"),
    ({"ndim": -1}, ValueError, "ndim"),
    ({"shape": None}, ValueError, "shape is NULL"),
    ({"data": None}, ValueError, "data is NULL"),
])
def test_producer_rejected_capsule_stays_unconsumed(case, exc, match):
    if case.get("device") == (2, 0) and fg.cuda.is_available():
        pytest.skip("cuda:0 exists here, so a CUDA capsule is importable")
    a = np.arange(6.0).reshape(2, 3)
    p = Producer(a, **case)
    cap = p.capsule()
    with pytest.raises(exc, match=match):
        fg.from_dlpack(cap)
    assert capsule_name(cap) == "dltensor_versioned"  # still the producer's
    assert p.deleted == 0
    del cap  # the producer's capsule destructor frees it, exactly once
    gc.collect()
    assert p.deleted == 1


def test_producer_negative_shape_rejected():
    a = np.arange(6.0)
    p = Producer(a)
    p.shape[0] = -6
    with pytest.raises(ValueError, match="negative dimension"):
        fg.from_dlpack(p.capsule())
    gc.collect()
    assert p.deleted == 1


def test_producer_read_only_flag_is_accepted():
    a = np.arange(3.0)
    p = Producer(a, flags=FLAG_READ_ONLY)
    assert fg.from_dlpack(p.capsule()).tolist() == [0.0, 1.0, 2.0]
