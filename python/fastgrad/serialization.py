"""fg.save / fg.load in the safetensors format, written by our own code.

File layout (https://github.com/huggingface/safetensors, little-endian):

    8 bytes   N, unsigned 64-bit: the length of the JSON header
    N bytes   JSON: {"name": {"dtype": "F32", "shape": [2, 3],
                               "data_offsets": [begin, end]}, ...,
                     "__metadata__": {"str": "str"}}   (padded with spaces)
    rest      the tensors' bytes, C order, back to back; offsets are
              relative to the start of this section

What we write is exactly what the reference implementation writes (and
accepts): the header padded to a multiple of 8 bytes, tensors sorted by
decreasing alignment so every tensor starts aligned, no gaps, no overlaps.
So `safetensors.numpy.load_file` / `safetensors.torch.load_file` read our
files, and we read theirs.

Beyond a flat {name: tensor} dict (a state_dict), `save` takes any nesting of
dicts (str or int keys), lists and tuples with tensor leaves and plain
values (numbers, str, bool, None), as optimizer state_dicts are. Tensors are
stored under dotted names ("state.0.exp_avg"), so other tools see them; the
rest of the structure goes as JSON into `__metadata__["fastgrad.structure"]`,
from which `load` rebuilds an equal object.

Safety: a save writes a temporary file next to the target, fsyncs it and
renames it over the target, so a failed save never leaves a half-written
file. A load checks everything against the real file size before it reads
or allocates anything, and reports a truncated, corrupted or foreign file
as a ValueError naming the file and the problem.
"""
import json
import math
import numbers
import os
import secrets
import struct

import numpy as np

__all__ = ["save", "load"]

# safetensors dtype code -> little-endian NumPy dtype, for the dtypes fastgrad has
_CODE_TO_NP = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "BOOL": np.dtype("bool"),
}
_NP_TO_CODE = {np.dtype(v).newbyteorder("="): k for k, v in _CODE_TO_NP.items()}

# Codes other writers (torch) commonly use, read by widening losslessly to a
# fastgrad dtype. BF16 is not a NumPy dtype: it is the top half of a float32.
_WIDEN = {
    "F16": (np.dtype("<f2"), np.float32),
    "BF16": (np.dtype("<u2"), None),
    "I8": (np.dtype("i1"), np.int32),
    "U8": (np.dtype("u1"), np.int32),
    "I16": (np.dtype("<i2"), np.int32),
    "U16": (np.dtype("<u2"), np.int32),
    "U32": (np.dtype("<u4"), np.int64),
}

_MAX_HEADER = 100_000_000  # the reference implementation's limit too: beyond it, the file is not ours
_STRUCTURE_KEY = "fastgrad.structure"
_ALIGN = 8


class _NotSerializable(TypeError):
    pass


# -- flattening an object into tensors + a JSON structure ---------------------------------------------


def _is_tensor(x):
    from .tensor import Tensor

    return isinstance(x, Tensor)


def _tensor_to_numpy(t):
    a = t.detach()
    if a.device.type != "cpu":
        a = a.cpu()
    return np.asarray(a.numpy())


class _Flattener:
    """Walks an object; collects tensor leaves under unique dotted names and
    returns a JSON-able tree that says how to put the object back together.

    Nodes: {"T": name} tensor, {"A": name} NumPy array, {"D": [[key, node], ...]}
    dict (keys keep their type: str or int), {"L": [...]} list, {"U": [...]}
    tuple, {"V": value} plain value.
    """

    def __init__(self):
        self.arrays = {}  # name -> numpy array, in visiting order

    def _name(self, path):
        base = ".".join(path) if path else "tensor"
        name, k = base, 1
        # names only have to be unique and readable; the structure points at
        # them exactly, so a collision ("a.b" key vs a -> b) just gets a suffix
        while name in self.arrays or name == "__metadata__":
            name = f"{base}#{k}"
            k += 1
        return name

    def visit(self, obj, path):
        if _is_tensor(obj):
            name = self._name(path)
            self.arrays[name] = _tensor_to_numpy(obj)
            return {"T": name}
        if isinstance(obj, np.ndarray):
            name = self._name(path)
            self.arrays[name] = obj
            return {"A": name}
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise _NotSerializable(f"dict keys must be str or int, got {key!r} at "
                                           f"{'.'.join(path) or 'the top level'}")
                items.append([key, self.visit(value, path + [str(key)])])
            return {"D": items}
        if isinstance(obj, (list, tuple)):
            nodes = [self.visit(v, path + [str(i)]) for i, v in enumerate(obj)]
            return {"U" if isinstance(obj, tuple) else "L": nodes}
        if obj is None or isinstance(obj, (bool, str)):
            return {"V": obj}
        if isinstance(obj, numbers.Integral):
            return {"V": int(obj)}
        if isinstance(obj, numbers.Real):
            return {"V": float(obj)}  # NaN/inf go through as Python's json writes them
        raise _NotSerializable(f"cannot save a {type(obj).__name__} (at {'.'.join(path) or 'the top level'}); "
                               f"save takes tensors, NumPy arrays, numbers, str, None, and dicts/lists/tuples "
                               f"of them")


def _flatten(obj):
    """(arrays by name, metadata dict) for `obj`."""
    metadata = {"format": "pt"}  # what torch-side tools (transformers, safe_open) look for
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and _is_tensor(v) for k, v in obj.items()) \
            and "__metadata__" not in obj:
        # a plain state_dict: the file is exactly {name: tensor}, nothing extra
        return {k: _tensor_to_numpy(v) for k, v in obj.items()}, metadata
    f = _Flattener()
    tree = f.visit(obj, [])
    metadata[_STRUCTURE_KEY] = json.dumps(tree, separators=(",", ":"))
    return f.arrays, metadata


def _unflatten(node, tensors, where):
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"{where}: corrupted structure metadata (bad node {node!r:.80})")
    (tag, value), = node.items()
    if tag in ("T", "A"):
        if value not in tensors:
            raise ValueError(f"{where}: structure metadata refers to tensor {value!r}, which is not in the file")
        return tensors[value] if tag == "T" else tensors[value].numpy()
    if tag == "D":
        return {k: _unflatten(v, tensors, where) for k, v in value}
    if tag == "L":
        return [_unflatten(v, tensors, where) for v in value]
    if tag == "U":
        return tuple(_unflatten(v, tensors, where) for v in value)
    if tag == "V":
        return value
    raise ValueError(f"{where}: corrupted structure metadata (unknown node tag {tag!r})")


# -- save -----------------------------------------------------------------------------------------------


def _encode(arrays, metadata):
    """(header bytes, [(array, nbytes)] in file order) for the flattened object."""
    entries = []
    for name, a in arrays.items():
        dt = a.dtype.newbyteorder("=") if a.dtype.byteorder not in ("|", "=") else a.dtype
        code = _NP_TO_CODE.get(dt)
        if code is None:
            raise TypeError(f"save: tensor {name!r} has dtype {a.dtype}, which fastgrad cannot save (it saves "
                            f"float32, float64, int64, int32 and bool)")
        # C order, little-endian: the format's layout whatever the host is
        # (np.asarray, not ascontiguousarray: that one turns 0-d into 1-d)
        entries.append((name, code, np.asarray(a, dtype=_CODE_TO_NP[code], order="C")))
    # largest element first, then by name (the reference writer's order): with
    # the header padded to 8 bytes every tensor then starts at a multiple of
    # its element size, so readers may map it without copying
    order = sorted(entries, key=lambda e: (-e[2].dtype.itemsize, e[0]))
    offsets, pos = {}, 0
    for name, _, a in order:
        offsets[name] = (pos, pos + a.nbytes)
        pos += a.nbytes
    header = {"__metadata__": metadata}
    for name, code, a in entries:  # header in the caller's order: load returns that order
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": list(offsets[name])}
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % _ALIGN)
    return raw, [a for _, _, a in order]


def _write_all(f, header, arrays):
    f.write(struct.pack("<Q", len(header)))
    f.write(header)
    for a in arrays:
        if a.nbytes:
            f.write(a.reshape(-1).view(np.uint8).data)  # the array's own memory, no bytes copy


def save(obj, path):
    """Saves `obj` (a state_dict, or nested dicts/lists of tensors and numbers) to `path` as safetensors.

    `path` may be a str / os.PathLike (written atomically: a temporary file in
    the same directory, flushed, fsynced, then renamed over `path`) or a
    binary file object with `write`.
    """
    try:
        arrays, metadata = _flatten(obj)
        header, ordered = _encode(arrays, metadata)
    except _NotSerializable as e:
        raise TypeError(f"save: {e}") from None
    if hasattr(path, "write"):
        _write_all(path, header, ordered)
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 instead of tempfile: the final file gets the usual
    # umask-derived mode, not tempfile's private 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, header, ordered)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory):
    # makes the rename itself durable; not possible on every OS / filesystem
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- load -----------------------------------------------------------------------------------------------


def _parse_header(raw, data_len, where):
    """The validated header: {name: (code, shape, begin, end)} in file order, and the metadata dict."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not a safetensors file (the header is not UTF-8 text)") from None
    if not text.startswith("{"):
        raise ValueError(f"{where}: not a safetensors file (the header does not start with '{{')")
    try:
        header = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: corrupted safetensors header (invalid JSON: {e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: corrupted safetensors header (expected a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise ValueError(f"{where}: corrupted safetensors header (__metadata__ must map strings to strings)")
    entries = {}
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise ValueError(f"{where}: corrupted safetensors header (entry {name!r} needs dtype, shape and "
                             f"data_offsets)")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code in _CODE_TO_NP:
            itemsize = _CODE_TO_NP[code].itemsize
        elif code in _WIDEN:
            itemsize = _WIDEN[code][0].itemsize
        else:
            raise ValueError(f"{where}: tensor {name!r} has dtype {code!r}, which fastgrad cannot load (it loads "
                             f"F32, F64, I64, I32, BOOL and widens F16, BF16, I8, U8, I16, U16, U32)")
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise ValueError(f"{where}: corrupted safetensors header (tensor {name!r} has shape {shape!r})")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise ValueError(f"{where}: corrupted safetensors header (tensor {name!r} has data_offsets "
                             f"{offsets!r})")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise ValueError(f"{where}: tensor {name!r} has data_offsets [{begin}, {end}] outside the "
                             f"{data_len}-byte data section (truncated or corrupted file)")
        if end - begin != math.prod(shape) * itemsize:
            raise ValueError(f"{where}: tensor {name!r} of shape {shape} and dtype {code} needs "
                             f"{math.prod(shape) * itemsize} bytes but its data_offsets span {end - begin}")
        entries[name] = (code, shape, begin, end)
    spans = sorted((b, e, n) for n, (_, _, b, e) in entries.items() if e > b)
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ValueError(f"{where}: corrupted safetensors header (tensors {n0!r} [{b0}, {e0}] and {n1!r} "
                             f"[{b1}, {e1}] overlap)")
    return entries, metadata


def _to_fastgrad_array(raw_array, code):
    """A NumPy array of a fastgrad dtype from one read out of the file."""
    if code in _CODE_TO_NP:
        return raw_array if raw_array.dtype.isnative else raw_array.astype(raw_array.dtype.newbyteorder("="))
    dst = _WIDEN[code][1]
    if code == "BF16":
        return (raw_array.astype(np.uint32) << 16).view(np.float32)
    return raw_array.astype(dst)


def _file_dtype(code):
    return _CODE_TO_NP[code] if code in _CODE_TO_NP else _WIDEN[code][0]


class _Source:
    """Reads byte ranges from a file on disk or from an in-memory buffer."""

    def __init__(self, path_or_file):
        if hasattr(path_or_file, "read"):
            # a file object: read to EOF (allocates only what is really there)
            self.buf = memoryview(path_or_file.read())
            self.f = None
            self.size = len(self.buf)
            self.where = f"load({getattr(path_or_file, 'name', type(path_or_file).__name__)!s})"
        else:
            path = os.fspath(path_or_file)
            self.where = f"load({path!r})"
            self.f = open(path, "rb")
            self.buf = None
            self.size = os.fstat(self.f.fileno()).st_size

    def read_into(self, offset, out):
        """Fills the uint8 array `out` from `offset`; False when the file ends first."""
        n = out.nbytes
        if self.f is None:
            if offset + n > self.size:
                return False
            out[...] = np.frombuffer(self.buf, dtype=np.uint8, count=n, offset=offset)
            return True
        self.f.seek(offset)
        got = 0
        view = memoryview(out)
        while got < n:
            k = self.f.readinto(view[got:])
            if not k:
                return False
            got += k
        return True

    def close(self):
        if self.f is not None:
            self.f.close()


def _read_bytes(src, offset, n):
    out = np.empty(n, dtype=np.uint8)
    if not src.read_into(offset, out):
        raise ValueError(f"{src.where}: truncated file (ended before byte {offset + n})")
    return out.tobytes()


def load(path, device=None):
    """Loads what `save` wrote (or any safetensors file) as fastgrad tensors.

    Returns a dict {name: Tensor} for a plain safetensors file, or the saved
    nested object. Tensors own their memory (read straight into fresh
    arrays, nothing maps the file), and are moved to `device` when given.
    Raises ValueError naming the file for a truncated, corrupted or
    non-safetensors file, before allocating anything the file does not hold.
    """
    from .tensor import from_numpy

    src = _Source(path)
    where = src.where
    try:
        if src.size < 8:
            raise ValueError(f"{where}: not a safetensors file or truncated: {src.size} bytes, fewer than the "
                             f"8-byte header length")
        (n,) = struct.unpack("<Q", _read_bytes(src, 0, 8))
        if n > _MAX_HEADER or n > src.size - 8:
            raise ValueError(f"{where}: not a safetensors file or truncated: it claims a {n}-byte header but "
                             f"the file has {src.size} bytes")
        if n < 2:
            raise ValueError(f"{where}: not a safetensors file (header length {n} is too short for JSON)")
        entries, metadata = _parse_header(_read_bytes(src, 8, n), src.size - 8 - n, where)
        base = 8 + n
        tensors = {}
        for name, (code, shape, begin, end) in entries.items():
            raw = np.empty(shape, dtype=_file_dtype(code))
            if end > begin and not src.read_into(base + begin, raw.reshape(-1).view(np.uint8)):
                raise ValueError(f"{where}: truncated file (tensor {name!r} ends past the end of the file)")
            t = from_numpy(_to_fastgrad_array(raw, code))
            if device is not None and str(device) != "cpu":
                t = t.to(device)
            tensors[name] = t
    finally:
        src.close()
    if _STRUCTURE_KEY not in metadata:
        return tensors
    try:
        tree = json.loads(metadata[_STRUCTURE_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: corrupted structure metadata (invalid JSON: {e})") from None
    return _unflatten(tree, tensors, where)
