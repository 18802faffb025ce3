"""fg.save / fg.load: safetensors round trips, interop with the `safetensors`
package (both directions), nested optimizer-like state, atomic writes, and
clear errors (never a crash or a huge allocation) for damaged files."""
import io
import json
import math
import os
import struct
import tracemalloc

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import serialization
from fastgrad.serialization import load, save

safetensors_numpy = pytest.importorskip("safetensors.numpy")

DTYPES = [(fg.float32, np.float32), (fg.float64, np.float64), (fg.int64, np.int64), (fg.int32, np.int32),
          (fg.bool, np.bool_)]
SHAPES = [(), (0,), (3, 0, 2), (1,), (5,), (2, 3), (2, 3, 4)]


def _array(np_dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np_dtype is np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(np_dtype, np.integer):
        return rng.integers(-1000, 1000, shape).astype(np_dtype)
    return rng.standard_normal(shape).astype(np_dtype)


def _assert_tensor_equal(t, ref):
    assert isinstance(t, fg.Tensor)
    ref = np.asarray(ref)
    assert t.shape == ref.shape and t.numpy().dtype == ref.dtype
    np.testing.assert_array_equal(t.numpy(), ref)


def _assert_same_structure(got, want):
    if isinstance(want, fg.Tensor):
        _assert_tensor_equal(got, want.numpy())
        assert got.dtype == want.dtype
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)  # same keys, same key types, same order
        for k in want:
            _assert_same_structure(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same_structure(g, w)
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert type(got) is type(want) and got == want


# -- round trips --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fg_dtype, np_dtype", DTYPES, ids=[d.name for d, _ in DTYPES])
def test_round_trip_every_dtype_and_shape(tmp_path, fg_dtype, np_dtype):
    sd = {f"t{i}": fg.tensor(_array(np_dtype, s, seed=i), dtype=fg_dtype) for i, s in enumerate(SHAPES)}
    save(sd, tmp_path / "m.safetensors")
    out = load(tmp_path / "m.safetensors")
    assert list(out) == list(sd)
    for k in sd:
        _assert_tensor_equal(out[k], sd[k].numpy())
        assert out[k].dtype == fg_dtype


def test_round_trip_mixed_dtypes_non_contiguous_and_grad(tmp_path):
    base = fg.tensor(_array(np.float64, (4, 6)))
    w = fg.randn(3, 5, requires_grad=True)
    sd = {"view.T": base.T, "step": base[::2, ::3], "w": w, "i": fg.arange(7, dtype=fg.int32),
          "flag": fg.tensor([True, False])}
    path = str(tmp_path / "m.safetensors")
    save(sd, path)
    out = load(path)
    _assert_tensor_equal(out["view.T"], base.numpy().T)
    _assert_tensor_equal(out["step"], base.numpy()[::2, ::3])
    _assert_tensor_equal(out["w"], w.detach().numpy())
    assert not out["w"].requires_grad
    _assert_tensor_equal(out["i"], np.arange(7, dtype=np.int32))


def test_loaded_tensors_own_their_memory(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"a": fg.arange(6, dtype=fg.float32)}, path)
    out = load(path)
    os.remove(path)  # nothing may still refer to the file
    out["a"][0] = 100.0
    assert out["a"].tolist() == [100.0, 1, 2, 3, 4, 5]


def test_nested_optimizer_like_state(tmp_path):
    state = {
        "state": {0: {"step": 3, "exp_avg": fg.randn(2, 3), "exp_avg_sq": fg.rand(2, 3)},
                  1: {"step": 3, "exp_avg": fg.randn(4), "exp_avg_sq": fg.rand(4),
                      "max_exp_avg_sq": fg.zeros(4, dtype=fg.float64)}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
                          "params": [0, 1], "name": None, "label": "encoder", "odd": float("nan"),
                          "inf": float("inf")}],
    }
    path = tmp_path / "opt.safetensors"
    save(state, path)
    _assert_same_structure(load(path), state)
    # the tensors are real safetensors entries, under readable dotted names
    plain = safetensors_numpy.load_file(str(path))
    assert set(plain) == {"state.0.exp_avg", "state.0.exp_avg_sq", "state.1.exp_avg", "state.1.exp_avg_sq",
                          "state.1.max_exp_avg_sq"}
    np.testing.assert_array_equal(plain["state.1.exp_avg"], state["state"][1]["exp_avg"].numpy())


@pytest.mark.parametrize("obj", [
    fg.arange(5),
    [fg.ones(2), 3, "x"],
    {"model": {"w": fg.ones(2, 2)}, "epoch": 7, "history": [0.5, 0.25], "done": True},
    {},
    {"a.b": fg.zeros(1), "a": {"b": fg.ones(1)}},  # dotted names collide; the structure keeps them apart
    {"__metadata__": fg.ones(1)},
    {"arr": np.arange(4, dtype=np.int32)},
], ids=["tensor", "list", "checkpoint", "empty", "colliding-names", "reserved-name", "numpy"])
def test_round_trip_structures(tmp_path, obj):
    path = tmp_path / "x.safetensors"
    save(obj, path)
    got = load(path)
    if isinstance(obj, dict) and "arr" in obj:
        assert isinstance(got["arr"], np.ndarray)
        np.testing.assert_array_equal(got["arr"], obj["arr"])
    else:
        _assert_same_structure(got, obj)
    safetensors_numpy.load_file(str(path))  # still a valid safetensors file


def test_file_objects(tmp_path):
    buf = io.BytesIO()
    save({"w": fg.ones(3)}, buf)
    buf.seek(0)
    _assert_tensor_equal(load(buf)["w"], np.ones(3, np.float32))


def test_save_rejects_unserialisable_objects(tmp_path):
    with pytest.raises(TypeError, match="cannot save a object"):
        save({"w": fg.ones(1), "bad": object()}, tmp_path / "x")
    with pytest.raises(TypeError, match="keys must be str or int"):
        save({(1, 2): fg.ones(1)}, tmp_path / "x")
    with pytest.raises(TypeError, match="uint8"):
        save({"a": np.zeros(2, np.uint8)}, tmp_path / "x")
    assert os.listdir(tmp_path) == []


# -- interop with the safetensors package ----------------------------------------------------------------------


def test_our_files_load_in_safetensors_numpy_and_torch(tmp_path):
    sd = {"w": fg.randn(3, 4), "d": fg.tensor(_array(np.float64, (5,))), "i": fg.arange(3),
          "j": fg.arange(5, dtype=fg.int32), "m": fg.tensor([True, False, True]), "s": fg.tensor(2.5),
          "e": fg.zeros(0, 3)}
    path = str(tmp_path / "m.safetensors")
    save(sd, path)
    got = safetensors_numpy.load_file(path)
    assert set(got) == set(sd)
    for k, t in sd.items():
        assert got[k].dtype == t.numpy().dtype and got[k].shape == t.shape
        np.testing.assert_array_equal(got[k], t.numpy())
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    tt = load_file(path)
    assert tt["w"].dtype == torch.float32 and tt["m"].dtype == torch.bool and tt["j"].dtype == torch.int32
    np.testing.assert_array_equal(tt["w"].numpy(), sd["w"].numpy())
    # the reference reader also accepts the layout for zero-copy access
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        assert f.metadata()["format"] == "pt"
        np.testing.assert_array_equal(f.get_tensor("s"), np.float32(2.5))


def test_we_load_files_written_by_safetensors(tmp_path):
    arrays = {"a": _array(np.float32, (3, 4)), "b": _array(np.float64, ()), "c": _array(np.int64, (0,)),
              "d": _array(np.int32, (2, 2)), "e": _array(np.bool_, (7,))}
    path = str(tmp_path / "ref.safetensors")
    safetensors_numpy.save_file(arrays, path, metadata={"author": "someone"})
    out = load(path)
    assert set(out) == set(arrays)
    for k, a in arrays.items():
        _assert_tensor_equal(out[k], a)


def test_we_load_torch_half_precision_by_widening(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    h = torch.randn(4, 3)
    path = str(tmp_path / "half.safetensors")
    save_file({"f16": h.half(), "bf16": h.bfloat16(), "u8": torch.arange(250, 256, dtype=torch.uint8),
               "i16": torch.tensor([-3, 4], dtype=torch.int16)}, path)
    out = load(path)
    assert out["f16"].dtype == fg.float32 and out["bf16"].dtype == fg.float32
    np.testing.assert_array_equal(out["f16"].numpy(), h.half().float().numpy())
    np.testing.assert_array_equal(out["bf16"].numpy(), h.bfloat16().float().numpy())
    _assert_tensor_equal(out["u8"], np.arange(250, 256, dtype=np.int32))
    _assert_tensor_equal(out["i16"], np.array([-3, 4], np.int32))


def test_header_layout_is_aligned_and_gapless(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"z": fg.ones(3, dtype=fg.bool), "a": fg.ones(3, dtype=fg.int32), "m": fg.ones(3, dtype=fg.float64)},
         path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - n
    assert all(e == b for (_, e), (b, _) in zip(spans, spans[1:]))
    for k, v in header.items():
        if k != "__metadata__":
            itemsize = {"F64": 8, "I32": 4, "BOOL": 1}[v["dtype"]]
            assert (8 + n + v["data_offsets"][0]) % itemsize == 0


# -- atomic writes ------------------------------------------------------------------------------------------


def test_failed_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"w": fg.ones(4)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save({"w": fg.zeros(4), "oops": lambda: 0}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_crash_during_write_leaves_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"w": fg.ones(4)}, path)
    before = path.read_bytes()

    def boom(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(serialization.os, "fsync", boom)
    with pytest.raises(OSError, match="simulated"):
        save({"w": fg.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    _assert_tensor_equal(load(path)["w"], np.ones(4, np.float32))


def test_save_overwrites_and_keeps_a_normal_file_mode(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": fg.ones(2)}, path)
    save({"w": fg.zeros(2)}, path)
    _assert_tensor_equal(load(path)["w"], np.zeros(2, np.float32))
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(path).st_mode & 0o777) == (0o666 & ~umask)


# -- damaged and foreign files ------------------------------------------------------------------------------


def _valid_file(tmp_path):
    path = tmp_path / "good.safetensors"
    save({"a": fg.arange(10, dtype=fg.float32), "b": fg.ones(2, 3, dtype=fg.int64)}, path)
    return path, path.read_bytes()


def _write(tmp_path, data, name="bad.safetensors"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _with_header(header_obj, data=b"", pad=True):
    raw = json.dumps(header_obj).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("cut", [0, 3, 8, 20, -1, -8])
def test_truncated_files(tmp_path, cut):
    _, good = _valid_file(tmp_path)
    p = _write(tmp_path, good[:cut] if cut else b"")
    with pytest.raises(ValueError, match=r"bad\.safetensors.*(truncated|not a safetensors)"):
        load(p)


def _peak_bytes_of(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _expect_error(p, match):
    def run():
        with pytest.raises(ValueError, match=match):
            load(p)

    return run


def test_huge_claimed_header_length_does_not_allocate(tmp_path):
    # 1 TB header: must be rejected from the file size before any read or allocation
    p = _write(tmp_path, struct.pack("<Q", 10**12) + b"{}")
    assert _peak_bytes_of(_expect_error(p, "claims a 1000000000000-byte header")) < 1 << 20
    p = _write(tmp_path, struct.pack("<Q", 2**64 - 1) + b"{}" * 10)
    assert _peak_bytes_of(_expect_error(p, "not a safetensors file or truncated")) < 1 << 20


def test_huge_claimed_tensor_does_not_allocate(tmp_path):
    big = 10**12
    p = _write(tmp_path, _with_header({"x": {"dtype": "F32", "shape": [big // 4], "data_offsets": [0, big]}}))
    assert _peak_bytes_of(_expect_error(p, "outside the 0-byte data section")) < 1 << 20


@pytest.mark.parametrize("data, match", [
    (b"PK\x03\x04 this is a zip file, not safetensors at all....", "not a safetensors file"),
    (struct.pack("<Q", 8) + b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "not UTF-8"),
    (struct.pack("<Q", 8) + b"[1,2,3] ", "does not start with"),
    (struct.pack("<Q", 8) + b'{"a": 1 ', "invalid JSON"),
    (struct.pack("<Q", 1) + b"{", "too short"),
])
def test_garbage_files(tmp_path, data, match):
    with pytest.raises(ValueError, match=match):
        load(_write(tmp_path, data))


@pytest.mark.parametrize("header, data, match", [
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 8, "outside the 8-byte data section"),
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [4, 2]}}, b"\0" * 8, "outside"),
    ({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12 bytes"),
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "y": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "overlap"),
    ({"x": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, "cannot load"),
    ({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 8, "has shape"),
    ({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, b"\0" * 8, "data_offsets"),
    ({"x": {"dtype": "F32", "shape": [1]}}, b"\0" * 8, "needs dtype, shape and data_offsets"),
    ({"x": [1, 2]}, b"", "needs dtype"),
    ({"__metadata__": {"a": 1}}, b"", "__metadata__ must map strings to strings"),
    ({"__metadata__": {"fastgrad.structure": "{not json"}}, b"", "structure metadata"),
    ({"__metadata__": {"fastgrad.structure": '{"T": "missing"}'}}, b"", "not in the file"),
    ({"__metadata__": {"fastgrad.structure": '{"Q": 1}'}}, b"", "unknown node tag"),
])
def test_corrupted_headers(tmp_path, header, data, match):
    with pytest.raises(ValueError, match=match) as info:
        load(_write(tmp_path, _with_header(header, data)))
    assert "bad.safetensors" in str(info.value)


def test_flipped_bytes_in_the_header_are_caught(tmp_path):
    _, good = _valid_file(tmp_path)
    (n,) = struct.unpack("<Q", good[:8])
    for pos in range(8, 8 + n, 7):
        bad = bytearray(good)
        bad[pos] ^= 0x5A
        p = _write(tmp_path, bytes(bad))
        try:
            out = load(p)
        except ValueError as e:
            assert "bad.safetensors" in str(e)
        else:  # a flip inside a name or a number that still parses is a different, valid file
            assert isinstance(out, dict)


def test_missing_file_is_a_normal_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.safetensors")
