"""fg.Tensor itself against PyTorch: creation, dtype inference and promotion,
attributes, NumPy/DLPack sharing, indexing reads and writes, views sharing
memory, errors for bad input, and repr."""
import operator

import numpy as np
import pytest
import torch

import fastgrad as fg
from helpers import FG_ERRORS, FG_TO_TORCH, assert_close, check_raises, noncontig_pair, to_numpy

# torch's own warnings about the reference computations
pytestmark = [pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning"),
              pytest.mark.filterwarnings("ignore:The use of `x.T` on tensors:UserWarning"),
              pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")]

DTYPES = [fg.bool, fg.int32, fg.int64, fg.float32, fg.float64]
DTYPE_IDS = [d.name for d in DTYPES]


def same(a, e, atol=0.0, rtol=0.0):
    """fastgrad tensor vs torch tensor: shape, dtype and values."""
    assert_close(a, e, atol, rtol)


# -- creation --------------------------------------------------------------------------------------

CREATION = {
    "zeros": lambda m: m.zeros(2, 3),
    "zeros_tuple": lambda m: m.zeros((2, 3)),
    "zeros_list": lambda m: m.zeros([4]),
    "zeros_0d": lambda m: m.zeros(()),
    "zeros_empty": lambda m: m.zeros(0, 3),
    "zeros_int": lambda m: m.zeros(2, dtype=m.int64),
    "ones": lambda m: m.ones(3, 2),
    "ones_f64": lambda m: m.ones((2,), dtype=m.float64),
    "ones_bool": lambda m: m.ones(2, dtype=m.bool),
    "full": lambda m: m.full((2, 3), 1.5),
    "full_int": lambda m: m.full((2,), 7),
    "full_bool": lambda m: m.full((2,), True),
    "full_dtype": lambda m: m.full((2, 2), 3, dtype=m.float64),
    "arange": lambda m: m.arange(5),
    "arange_start_stop_step": lambda m: m.arange(1, 10, 3),
    "arange_neg_step": lambda m: m.arange(10, 0, -3),
    "arange_float": lambda m: m.arange(0, 1, 0.1),
    "arange_float_end": lambda m: m.arange(5.0),
    "arange_dtype": lambda m: m.arange(0, 2, 0.25, dtype=m.float64),
    "arange_int_dtype_float": lambda m: m.arange(4, dtype=m.float32),
    "arange_empty": lambda m: m.arange(3, 3),
    "linspace": lambda m: m.linspace(0, 1, 5),
    "linspace_one": lambda m: m.linspace(-1, 1, 1),
    "linspace_zero": lambda m: m.linspace(0, 1, 0),
    "linspace_f64": lambda m: m.linspace(-3, 7, 11, dtype=m.float64),
    "eye": lambda m: m.eye(3),
    "eye_rect": lambda m: m.eye(2, 4),
    "eye_int": lambda m: m.eye(3, dtype=m.int64),
    "zeros_like": lambda m: m.zeros_like(m.ones(2, 3, dtype=m.int32)),
    "ones_like": lambda m: m.ones_like(m.zeros(2, 3), dtype=m.float64),
    "full_like": lambda m: m.full_like(m.zeros(2, dtype=m.int64), 4),
    "full_like_float": lambda m: m.full_like(m.zeros(2, 2), 0.25),
    "tensor_scalar_int": lambda m: m.tensor(3),
    "tensor_scalar_float": lambda m: m.tensor(3.5),
    "tensor_scalar_bool": lambda m: m.tensor(True),
    "tensor_nested": lambda m: m.tensor([[1, 2], [3, 4]]),
    "tensor_mixed": lambda m: m.tensor([1, 2.5]),
    "tensor_bool_list": lambda m: m.tensor([True, False]),
    "tensor_empty": lambda m: m.tensor([]),
    "tensor_dtype": lambda m: m.tensor([1, 2], dtype=m.float64),
    "tensor_np_f64": lambda m: m.tensor(np.array([1.0, 2.0])),
    "tensor_np_i32": lambda m: m.tensor(np.array([1, 2], dtype=np.int32)),
    "tensor_np_0d": lambda m: m.tensor(np.float64(2.5)),
    "tensor_of_tensor": lambda m: m.tensor(m.tensor([1.0, 2.0]), dtype=m.float64),
}


@pytest.mark.parametrize("name", list(CREATION))
def test_creation(name):
    same(CREATION[name](fg), CREATION[name](torch), atol=1e-7, rtol=1e-6)


def test_empty_and_like():
    for t in (fg.empty(2, 3), fg.empty((4,), dtype=fg.int64), fg.empty_like(fg.zeros(3, 1, dtype=fg.float64))):
        assert t.shape in ((2, 3), (4,), (3, 1))
    assert fg.empty_like(fg.zeros(3, 1, dtype=fg.float64)).dtype is fg.float64
    assert fg.zeros(2, requires_grad=True).requires_grad and fg.zeros(2, requires_grad=True).is_leaf
    assert fg.ones_like(fg.zeros(2), requires_grad=True).requires_grad
    assert fg.zeros(2).requires_grad is False


def test_tensor_copies():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = fg.tensor(a)
    a[0] = 5
    assert t.tolist() == [1.0, 2.0]
    u = fg.tensor(t)
    t[1] = 9
    assert u.tolist() == [1.0, 2.0]


def test_new_methods():
    x, tx = fg.ones(2, dtype=fg.float64), torch.ones(2, dtype=torch.float64)
    same(x.new_zeros(3), tx.new_zeros(3)), same(x.new_ones((2, 1)), tx.new_ones((2, 1)))
    same(x.new_full((2,), 7), tx.new_full((2,), 7)), same(x.new_tensor([1, 2]), tx.new_tensor([1, 2]))
    assert x.new_empty(4).shape == (4,) and x.new_empty(4).dtype is fg.float64
    same(fg.ones(2, dtype=fg.int32).new_full((2,), 7), torch.ones(2, dtype=torch.int32).new_full((2,), 7))
    assert x.data_ptr() == x[0:].data_ptr() and x[1:].data_ptr() == x.data_ptr() + 8


def test_tensor_constructor_and_as_tensor():
    t = fg.Tensor([1, 2])
    assert t.dtype is fg.float32 and t.tolist() == [1.0, 2.0]
    assert fg.Tensor([[1.5]], requires_grad=True).requires_grad
    a = np.array([1.0, 2.0])
    u = fg.as_tensor(a)
    a[0] = 7.0
    assert u[0].item() == 7.0  # as_tensor shares a NumPy array of a supported dtype
    assert fg.as_tensor(u) is u
    v = fg.as_tensor(a, dtype=fg.float32)
    assert v.dtype is fg.float32
    w = fg.tensor([fg.tensor(1.5), fg.tensor(2.5)])
    assert w.tolist() == [1.5, 2.5] and w.dtype is fg.float32
    assert [x.item() for x in fg.tensor([[1, 2], [3, 4]])[1]] == [3, 4]
    assert fg.tensor([1.0], requires_grad=True).requires_grad


@pytest.mark.parametrize("fn", ["rand", "randn"])
@pytest.mark.parametrize("dtype", [fg.float32, fg.float64])
def test_rand_randn(fn, dtype):
    fg.manual_seed(0)
    t = getattr(fg, fn)(200, 50, dtype=dtype)
    assert t.shape == (200, 50) and t.dtype is dtype
    a = t.numpy()
    if fn == "rand":
        assert a.min() >= 0 and a.max() < 1
        assert abs(a.mean() - 0.5) < 0.02 and abs(a.std() - (1 / 12) ** 0.5) < 0.02
    else:
        assert abs(a.mean()) < 0.03 and abs(a.std() - 1) < 0.03
    assert getattr(fg, fn)(()).shape == ()
    assert getattr(fg, fn)(0, 3).shape == (0, 3)


def test_rand_like():
    x = fg.zeros(3, 2, dtype=fg.float64)
    for t in (fg.rand_like(x), fg.randn_like(x)):
        assert t.shape == (3, 2) and t.dtype is fg.float64


def test_randint():
    fg.manual_seed(1)
    t = fg.randint(3, 9, (4000,))
    assert t.dtype is fg.int64 and t.shape == (4000,)
    assert set(t.tolist()) == set(range(3, 9))
    t = fg.randint(5, (2, 3))  # torch's randint(high, size)
    assert t.shape == (2, 3) and t.numpy().min() >= 0 and t.numpy().max() < 5
    assert fg.randint(0, 2, (3,), dtype=fg.int32).dtype is fg.int32
    assert fg.randint(2, size=(3,)).shape == (3,)


def test_normal_randperm():
    fg.manual_seed(2)
    t = fg.normal(2.0, 3.0, size=(20000,))
    assert t.dtype is fg.float32
    assert abs(t.numpy().mean() - 2) < 0.1 and abs(t.numpy().std() - 3) < 0.1
    m = fg.full((5000,), 10.0)
    t = fg.normal(m, 0.5)
    assert t.shape == (5000,) and abs(t.numpy().mean() - 10) < 0.05
    t = fg.normal(0.0, fg.full((5000,), 2.0))
    assert abs(t.numpy().std() - 2) < 0.1
    p = fg.randperm(50)
    assert p.dtype is fg.int64 and sorted(p.tolist()) == list(range(50))
    assert fg.randperm(0).shape == (0,)


def _draws():
    return [fg.rand(7, 3).numpy().copy(), fg.randn(11).numpy().copy(), fg.randint(0, 100, (9,)).numpy().copy(),
            fg.normal(1.0, 2.0, size=(5,)).numpy().copy(), fg.randperm(13).numpy().copy(),
            fg.rand(3, dtype=fg.float64).numpy().copy(), fg.empty(1000).uniform_(-1, 1).numpy().copy(),
            fg.empty(1000).normal_(0, 1).numpy().copy()]


def test_manual_seed_determinism():
    fg.manual_seed(1234)
    a = _draws()
    fg.manual_seed(1234)
    b = _draws()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    fg.manual_seed(4321)
    c = _draws()
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_seed_same_for_every_thread_count():
    n0 = fg.get_num_threads()
    try:
        out = []
        for n in (1, 2, 3):
            fg.set_num_threads(n)
            fg.manual_seed(77)
            out.append([fg.rand(100003).numpy().copy(), fg.randn(5001, dtype=fg.float64).numpy().copy(),
                        fg.randint(0, 1000, (4097,)).numpy().copy()])
        for other in out[1:]:
            for x, y in zip(out[0], other):
                np.testing.assert_array_equal(x, y)
    finally:
        fg.set_num_threads(n0)


def test_reductions_same_for_every_thread_count():
    fg.manual_seed(9)
    x = fg.randn(1000, 1037)
    n0 = fg.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 4):
            fg.set_num_threads(n)
            outs.append([x.sum().item(), x.sum(0).numpy().copy(), x.mean(1).numpy().copy(), x.var().item(),
                         x.norm().item(), fg.logsumexp(x, 1).numpy().copy(), x.cumsum(1)[:, -1].numpy().copy()])
        for other in outs[1:]:
            for a, b in zip(outs[0], other):
                np.testing.assert_array_equal(a, b)
    finally:
        fg.set_num_threads(n0)


def test_rng_state_roundtrip():
    fg.manual_seed(5)
    st = fg.get_rng_state()
    a = fg.randn(10).numpy().copy()
    fg.set_rng_state(st)
    np.testing.assert_array_equal(a, fg.randn(10).numpy())


def test_bernoulli():
    fg.manual_seed(3)
    p = fg.full((20000,), 0.3)
    b = fg.bernoulli(p)
    assert b.shape == (20000,) and set(np.unique(b.numpy()).tolist()) <= {0.0, 1.0}
    assert abs(b.numpy().mean() - 0.3) < 0.02


@pytest.mark.parametrize("bad", [
    lambda: fg.zeros(2, dtype="float16"), lambda: fg.ones(-1), lambda: fg.arange(0, 5, 0),
    lambda: fg.arange(0, 5, -1), lambda: fg.linspace(0, 1, -2), lambda: fg.eye(-1), lambda: fg.rand(2, dtype=fg.int64),
    lambda: fg.randn(2, dtype=fg.bool), lambda: fg.randint(5, 2, (3,)), lambda: fg.randperm(-1),
    lambda: fg.normal(0.0, -1.0, size=(2,)), lambda: fg.zeros("a"), lambda: fg.full((2,), 1.0, dtype=np.uint8),
    lambda: fg.tensor(["a", "b"]), lambda: fg.tensor([[1, 2], [3]]), lambda: fg.tensor({"a": 1}),
    lambda: fg.tensor([1.0], device="tpu"), lambda: fg.tensor(np.array([1 + 2j])),
    lambda: fg.zeros(2, device="cuda:99"),
], ids=["dtype_f16", "neg_size", "arange_step0", "arange_sign", "linspace_neg", "eye_neg", "rand_int", "randn_bool",
        "randint_range", "randperm_neg", "normal_std", "zeros_str", "full_uint8", "tensor_str", "tensor_ragged",
        "tensor_dict", "bad_device", "tensor_complex", "cuda_missing"])
def test_creation_errors(bad):
    with pytest.raises(FG_ERRORS):
        bad()


# -- dtype promotion --------------------------------------------------------------------------------

BINOPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
          "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "eq": operator.eq,
          "lt": operator.lt, "ge": operator.ge}
VALUES = {fg.bool: [True, True, True], fg.int32: [1, 2, 3], fg.int64: [3, 1, 2], fg.float32: [0.5, 1.5, 2.0],
          fg.float64: [1.25, 0.75, 3.0]}
SCALARS = {"py_bool": True, "py_int": 2, "py_float": 1.5}


def _operand(kind, lib):
    if kind in SCALARS:
        return SCALARS[kind]
    name, shape = kind.split(":")
    dt = {d.name: d for d in DTYPES}[name]
    vals = VALUES[dt] if shape == "dim" else VALUES[dt][0]
    return fg.tensor(vals, dtype=dt) if lib is fg else torch.tensor(vals, dtype=FG_TO_TORCH[dt])


OPERANDS = [f"{d.name}:{s}" for d in DTYPES for s in ("dim", "0d")]
PAIRS = [(a, b) for a in OPERANDS for b in OPERANDS + list(SCALARS)] + [(s, b) for s in SCALARS for b in OPERANDS]


def _outcome(lib, op, a, b):
    try:
        return op(_operand(a, lib), _operand(b, lib)), None
    except Exception as e:  # noqa: BLE001
        return None, e


@pytest.mark.parametrize("opname", list(BINOPS))
def test_promotion_grid(opname):
    """(a op b).dtype and values against torch for every pair of operand kinds
    (5 dtypes x {dimensioned, 0-d} tensors, Python bool/int/float)."""
    op = BINOPS[opname]
    failures = []
    for a, b in PAIRS:
        if opname == "pow" and a.startswith("bool") and b == "py_bool":
            continue  # torch's pow(t, 1) shortcut copies even a bool tensor; its bool pow kernel raises
        t, terr = _outcome(torch, op, a, b)
        f, ferr = _outcome(fg, op, a, b)
        if terr is not None:
            if ferr is None or not isinstance(ferr, FG_ERRORS):
                failures.append(f"{a} {opname} {b}: torch raises {terr!r}, fastgrad gives {ferr!r} / {f!r}")
            continue
        if ferr is not None:
            failures.append(f"{a} {opname} {b}: fastgrad raised {ferr!r}")
            continue
        if FG_TO_TORCH[f.dtype] != t.dtype:
            failures.append(f"{a} {opname} {b}: dtype {f.dtype} vs torch {t.dtype}")
            continue
        if tuple(f.shape) != tuple(t.shape) or not np.allclose(to_numpy(f), to_numpy(t), rtol=1e-6, equal_nan=True):
            failures.append(f"{a} {opname} {b}: values {f.tolist()} vs torch {t.tolist()}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("d1", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("d2", DTYPES, ids=DTYPE_IDS)
def test_promote_types_and_result_type(d1, d2):
    assert FG_TO_TORCH[fg.promote_types(d1, d2)] == torch.promote_types(FG_TO_TORCH[d1], FG_TO_TORCH[d2])
    a, b = fg.zeros(2, dtype=d1), fg.zeros((), dtype=d2)
    ta, tb = torch.zeros(2, dtype=FG_TO_TORCH[d1]), torch.zeros((), dtype=FG_TO_TORCH[d2])
    assert FG_TO_TORCH[fg.result_type(a, b)] == torch.result_type(ta, tb)
    assert FG_TO_TORCH[fg.result_type(a, 1.5)] == torch.result_type(ta, 1.5)


def test_unary_and_inplace_dtypes():
    for d in DTYPES:
        t, tt = fg.tensor([1, 0, 1], dtype=d), torch.tensor([1, 0, 1], dtype=FG_TO_TORCH[d])
        for name in ["exp", "sqrt", "sigmoid", "abs", "sign", "floor", "isnan"]:
            fr, fe = _outcome(fg, lambda x, _: getattr(fg, name)(x), f"{d.name}:dim", None)
            tr, te = _outcome(torch, lambda x, _: getattr(torch, name)(x), f"{d.name}:dim", None)
            if te is not None:
                assert fe is not None, f"{name}({d}): torch raises {te!r}"
            else:
                assert fe is None, f"{name}({d}) raised {fe!r}"
                assert FG_TO_TORCH[fr.dtype] == tr.dtype, f"{name}({d}): {fr.dtype} vs {tr.dtype}"
        del t, tt
    # in place keeps the dtype, and float into int is refused like torch
    x = fg.tensor([1, 2], dtype=fg.int32)
    x += 1
    assert x.dtype is fg.int32 and x.tolist() == [2, 3]
    with pytest.raises(RuntimeError):
        x += 1.5
    with pytest.raises(RuntimeError):
        x.mul_(fg.tensor([1.5, 2.0]))
    y = fg.tensor([1.0, 2.0])
    y += fg.tensor([1, 1])
    assert y.dtype is fg.float32 and y.tolist() == [2.0, 3.0]
    y *= fg.tensor(2.0, dtype=fg.float64)
    assert y.dtype is fg.float32 and y.tolist() == [4.0, 6.0]


def test_to_and_casts():
    x = fg.tensor([1.7, -2.2, 0.0])
    tx = torch.tensor([1.7, -2.2, 0.0])
    for d in DTYPES:
        same(x.to(d), tx.to(FG_TO_TORCH[d]))
    same(x.long(), tx.long()), same(x.int(), tx.int()), same(x.bool(), tx.bool()), same(x.double(), tx.double())
    same(x.float(), tx.float())
    assert x.to("cpu") is x and x.cpu() is x
    assert x.to(fg.float32) is x
    assert x.to(x) is x
    assert x.to(fg.float64).to(fg.float32).dtype is fg.float32
    assert x.type() == "fastgrad.FloatTensor"
    if not fg.cuda.is_available():
        with pytest.raises(RuntimeError):
            x.cuda()


# -- attributes -------------------------------------------------------------------------------------


def test_attributes():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t, tt = fg.tensor(a), torch.tensor(a)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.ndim == 3 and t.dim() == 3
    assert t.dtype is fg.float32 and t.dtype == fg.float and fg.double is fg.float64 and fg.long is fg.int64
    assert t.device == "cpu" and str(t.device) == "cpu" and t.device.type == "cpu" and not t.is_cuda
    assert t.numel() == 24 and t.nelement() == 24 and len(t) == 2
    assert t.element_size() == 4 and fg.zeros(2, dtype=fg.float64).element_size() == 8
    assert t.stride() == tt.stride() and t.T.stride() == tt.permute(2, 1, 0).stride()
    same(t.T, tt.permute(2, 1, 0))
    same(fg.tensor(a[0]).T, tt[0].T)
    assert fg.tensor([1.0, 2.0]).T.shape == (2,)
    assert t.tolist() == a.tolist()
    assert fg.tensor(2.5).item() == 2.5 and isinstance(fg.tensor(2.5).item(), float)
    assert fg.tensor(3).item() == 3 and isinstance(fg.tensor(3).item(), int)
    assert fg.tensor(True).item() is True
    assert fg.tensor([[7]]).item() == 7
    assert fg.tensor(2.5).tolist() == 2.5 and fg.tensor([]).tolist() == []
    assert float(fg.tensor(2.5)) == 2.5 and int(fg.tensor(3.9)) == 3 and bool(fg.tensor([1]))
    assert [int(v) for v in fg.tensor([4, 5])] == [4, 5]
    assert [4, 5, 6][fg.tensor(1)] == 5  # __index__
    assert f"{fg.tensor(2.5):.2f}" == "2.50"
    assert t.is_contiguous() and not t.T.is_contiguous() and t.storage_offset() == 0
    assert t[1].storage_offset() == 12
    assert t.is_floating_point() and not fg.tensor([1]).is_floating_point()
    assert fg.is_tensor(t) and not fg.is_tensor(a)
    assert t.requires_grad is False and t.grad is None and t.is_leaf and t.grad_fn is None
    with pytest.raises(TypeError):
        len(fg.tensor(1.0))
    with pytest.raises(TypeError):
        iter(fg.tensor(1.0)).__next__()
    with pytest.raises(RuntimeError):
        fg.tensor([1.0, 2.0]).item()
    with pytest.raises(IndexError):
        t.size(3)
    with pytest.raises(TypeError):
        [1, 2][fg.tensor(1.0)]


def test_requires_grad_rules():
    with pytest.raises(RuntimeError, match="floating point"):
        fg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError):
        fg.tensor([1, 2]).requires_grad_()
    x = fg.tensor([1.0], requires_grad=True)
    y = x * 2
    assert not y.is_leaf and y.grad_fn is not None
    with pytest.raises(RuntimeError):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0]


# -- NumPy and DLPack --------------------------------------------------------------------------------


@pytest.mark.parametrize("np_dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_])
def test_from_numpy_shares_memory(np_dtype):
    a = np.zeros((3, 4), dtype=np_dtype)
    t = fg.from_numpy(a)
    assert t.dtype is {np.float32: fg.float32, np.float64: fg.float64, np.int32: fg.int32, np.int64: fg.int64,
                       np.bool_: fg.bool}[np_dtype]
    a[1, 2] = 1
    assert t[1, 2].item() == 1
    t[0, 0] = 1
    assert a[0, 0] == 1
    n = t.numpy()
    assert np.shares_memory(n, a)
    n[2, 3] = 1
    assert t[2, 3].item() == 1
    assert np.shares_memory(np.asarray(t), a)


def test_numpy_views_and_strides():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    for view in (a[:, ::2], a.T, a[1:3, 2:], a[::-1]):
        t = fg.from_numpy(view)
        assert t.tolist() == view.tolist()
        assert (t * 1).tolist() == view.tolist()
    t = fg.from_numpy(a)
    v = t[:, ::2].numpy()
    assert np.shares_memory(v, a) and v.tolist() == a[:, ::2].tolist()
    assert fg.from_numpy(np.array(3.0)).shape == ()
    assert np.asarray(fg.tensor([1, 2]), dtype=np.float32).dtype == np.float32
    ro = np.arange(3.0)
    ro.setflags(write=False)
    assert fg.from_numpy(ro).tolist() == [0.0, 1.0, 2.0]  # read-only arrays are readable (torch: same)


@pytest.mark.parametrize("bad", [np.zeros(2, dtype=np.float16), np.zeros(2, dtype=np.uint8),
                                 np.zeros(2, dtype=np.complex64), [1.0, 2.0]], ids=["f16", "u8", "c64", "list"])
def test_from_numpy_rejects(bad):
    with pytest.raises(TypeError):
        fg.from_numpy(bad)


def test_dlpack_export():
    t = fg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.__dlpack_device__() == (1, 0)
    tt = torch.from_dlpack(t)
    tt[0, 0] = 9
    assert t[0, 0].item() == 9
    n = np.from_dlpack(t)
    n[1, 1] = 8
    assert t[1, 1].item() == 8
    assert torch.from_dlpack(t.T).tolist() == [[9.0, 3.0], [2.0, 8.0]]
    assert torch.from_dlpack(fg.tensor([1, 2], dtype=fg.int32)).dtype == torch.int32
    with pytest.raises(RuntimeError):
        fg.tensor([1.0], requires_grad=True).__dlpack__()


def test_dlpack_import():
    src = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    u = fg.from_dlpack(src)
    assert u.dtype is fg.float64 and u.tolist() == src.tolist()
    src[0, 1] = -1
    assert u[0, 1].item() == -1
    v = fg.from_dlpack(torch.arange(12).reshape(3, 4).t())
    assert v.tolist() == torch.arange(12).reshape(3, 4).t().tolist()
    w = fg.from_dlpack(np.arange(4, dtype=np.int32))
    assert w.dtype is fg.int32 and w.tolist() == [0, 1, 2, 3]


def test_pickle_roundtrip():
    import pickle

    t = fg.tensor([[1.5, 2.0]], dtype=fg.float64)
    u = pickle.loads(pickle.dumps(t))
    assert u.dtype is fg.float64 and u.tolist() == t.tolist()
    assert pickle.loads(pickle.dumps(fg.float32)) is fg.float32


# -- indexing reads -----------------------------------------------------------------------------------

A = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
I1 = np.array([2, 0, 3])
I2 = np.array([[1, 3], [0, 2]])
M_ROWS = np.array([True, False, True, True])
M_2D = (A[..., 0] % 3 == 0)
KEYS = {
    "int": lambda i: 1, "neg_int": lambda i: -1, "int_int": lambda i: (2, -3), "int3": lambda i: (3, 4, 5),
    "slice": lambda i: slice(1, 3), "slice_step": lambda i: slice(None, None, 2), "slice_neg": lambda i: slice(-3, -1),
    "slice_oob": lambda i: slice(2, 100), "slice_empty": lambda i: slice(3, 1), "slice_step3": lambda i: (
        slice(None), slice(1, None, 3)),
    "slices": lambda i: (slice(1, None), slice(None, 4, 2), slice(None, None, 5)),
    "none": lambda i: None, "none_mid": lambda i: (slice(None), None, 1), "ellipsis": lambda i: Ellipsis,
    "ellipsis_int": lambda i: (Ellipsis, 2), "int_ellipsis": lambda i: (0, Ellipsis), "ellipsis_none": lambda i: (
        None, Ellipsis, None), "int_ellipsis_slice": lambda i: (1, Ellipsis, slice(None, 3)),
    "tensor1": lambda i: i(I1), "tensor2d": lambda i: i(I2), "neg_tensor": lambda i: i(np.array([-1, -4])),
    "list": lambda i: [3, 1], "list_dup": lambda i: [1, 1, 0], "tensor_0d": lambda i: i(np.array(2)),
    "mask_rows": lambda i: i(M_ROWS), "mask_2d": lambda i: i(M_2D), "mask_3d": lambda i: i(A % 7 == 0),
    "mask_list": lambda i: [True, False, False, True], "true": lambda i: True, "false": lambda i: False,
    "adv_adjacent": lambda i: (slice(None), i(np.array([0, 4])), i(np.array([1, 5]))),
    "adv_first_two": lambda i: (i(np.array([0, 3])), i(np.array([1, 2]))),
    "adv_separated": lambda i: (i(np.array([0, 3])), slice(None), i(np.array([1, 2]))),
    "adv_int_sep": lambda i: (1, slice(None), i(np.array([0, 2, 5]))),
    "adv_broadcast": lambda i: (i(np.array([[0], [3]])), slice(1, 3), i(np.array([1, 2, 5]))),
    "adv_slice_then": lambda i: (slice(1, 3), i(np.array([0, 4])), slice(None, None, 2)),
    "adv_mask_and_idx": lambda i: (i(M_ROWS), i(np.array([0, 1, 4]))),
    "adv_with_none": lambda i: (None, i(I1), Ellipsis, 2),
    "adv_ellipsis": lambda i: (Ellipsis, i(np.array([5, 0]))),
    "adv_mask_sep": lambda i: (i(M_ROWS), slice(None), i(np.array([0, 1, 5]))),
}


def _fg_idx(a):
    return fg.tensor(a)


def _torch_idx(a):
    return torch.tensor(a)


@pytest.mark.parametrize("name", list(KEYS))
def test_getitem(name):
    key = KEYS[name]
    t, tt = fg.tensor(A), torch.tensor(A)
    same(t[key(_fg_idx)], tt[key(_torch_idx)])
    # non-contiguous sources give the same answer
    for kind in ("T", "step"):
        fv, tv = noncontig_pair(A.transpose(2, 1, 0).copy().transpose(2, 1, 0), kind)
        same(fv[key(_fg_idx)], tv[key(_torch_idx)])


@pytest.mark.parametrize("name", ["int", "slice", "slice_step", "none_mid", "ellipsis_int", "int_ellipsis_slice",
                                  "slices"])
def test_basic_index_is_view(name):
    t = fg.tensor(A)
    v = t[KEYS[name](_fg_idx)]
    v.fill_(-1.0) if v.ndim else v.fill_(-1.0)
    e = A.copy()
    e[KEYS[name](np.asarray)] = -1.0
    np.testing.assert_array_equal(t.numpy(), e)


BAD_KEYS = {
    "oob_int": (lambda i: 4, IndexError), "oob_neg": (lambda i: -5, IndexError),
    "oob_dim2": (lambda i: (0, 5), IndexError),
    "too_many": (lambda i: (0, 0, 0, 0), IndexError),
    "oob_tensor": (lambda i: i(np.array([0, 4])), IndexError), "oob_list": (lambda i: [0, -5], IndexError),
    "float_tensor": (lambda i: i(np.array([0.0])), IndexError), "float_key": (lambda i: 1.5, (IndexError, TypeError)),
    "str_key": (lambda i: "a", (IndexError, TypeError)),
    "mask_shape": (lambda i: i(np.ones(3, dtype=bool)), IndexError),
    "neg_step": (lambda i: slice(None, None, -1), ValueError),
    "zero_step": (lambda i: slice(None, None, 0), ValueError),
    "adv_shapes": (lambda i: (i(np.array([0, 1])), i(np.array([0, 1, 2]))), IndexError),
}


@pytest.mark.parametrize("name", list(BAD_KEYS))
def test_getitem_errors(name):
    key, exc = BAD_KEYS[name]
    with pytest.raises(Exception):
        torch.tensor(A)[key(_torch_idx)]
    with pytest.raises(exc):
        fg.tensor(A)[key(_fg_idx)]


def test_getitem_0d_and_empty():
    t, tt = fg.tensor(3.0), torch.tensor(3.0)
    same(t[None], tt[None]), same(t[...], tt[...]), same(t[True], tt[True]), same(t[False], tt[False])
    with pytest.raises(IndexError):
        t[0]
    e, te = fg.zeros(0, 3), torch.zeros(0, 3)
    same(e[:, 1], te[:, 1]), same(e[fg.tensor([], dtype=fg.int64)], te[torch.tensor([], dtype=torch.int64)])
    same(fg.tensor(A)[fg.tensor([], dtype=fg.int64)], torch.tensor(A)[torch.tensor([], dtype=torch.int64)])


# -- indexing writes ---------------------------------------------------------------------------------

SET_CASES = {
    "int": (lambda i: 1, -1.0), "int_int": (lambda i: (2, 3), 7.0), "slice": (lambda i: slice(1, 3), 5.0),
    "slice_step": (lambda i: (slice(None), slice(None, None, 2)), np.arange(6, dtype=np.float32) * 10),
    "ellipsis": (lambda i: (Ellipsis, 0), np.arange(5, dtype=np.float32)),
    "none": (lambda i: (None, 1), 3.0),
    "tensor_row": (lambda i: i(np.array([0, 2])), np.ones(6, dtype=np.float32) * 4),
    "list": (lambda i: [3, 1], -2.0), "mask": (lambda i: i(A % 4 == 0), 0.0),
    "mask_rows": (lambda i: i(M_ROWS), np.arange(6, dtype=np.float32)),
    "mask_values": (lambda i: i(A % 5 == 0), np.arange(24, dtype=np.float32)),
    "adv_adjacent": (lambda i: (slice(None), i(np.array([0, 4])), i(np.array([1, 5]))), -3.0),
    "adv_separated": (lambda i: (i(np.array([0, 3])), slice(None), i(np.array([1, 2]))),
                      np.arange(10, dtype=np.float32).reshape(2, 5)),
    "adv_int_sep": (lambda i: (1, slice(1, 3), i(np.array([0, 5]))), np.array([[1, 2], [3, 4]], dtype=np.float32)),
    "int_value": (lambda i: (0, 0), 3), "bool_value": (lambda i: 1, True),
    "tensor_value_0d": (lambda i: (1, 1), np.array(9.5, dtype=np.float64)),
    "broadcast_value": (lambda i: slice(None), np.arange(6, dtype=np.float32)),
}


@pytest.mark.parametrize("name", list(SET_CASES))
def test_setitem(name):
    key, value = SET_CASES[name]
    t, tt = fg.tensor(A), torch.tensor(A)
    v0 = t._version
    fv = fg.tensor(value) if isinstance(value, np.ndarray) else value
    tv = torch.tensor(value) if isinstance(value, np.ndarray) else value
    t[key(_fg_idx)] = fv
    tt[key(_torch_idx)] = tv
    same(t, tt)
    assert t._version > v0


def test_setitem_int_tensor_and_noncontig():
    t, tt = fg.tensor(A.astype(np.int64)), torch.tensor(A.astype(np.int64))
    t[1, :, ::3] = 2.7  # float into int truncates, as torch
    tt[1, :, ::3] = 2.7
    same(t, tt)
    fv, tv = noncontig_pair(A, "T")
    fv[1:3, 0] = 0.5
    tv[1:3, 0] = 0.5
    same(fv, tv)


@pytest.mark.parametrize("bad", [
    lambda t: t.__setitem__(0, fg.ones(4)), lambda t: t.__setitem__(7, 1.0),
    lambda t: t.__setitem__(fg.tensor([0, 9]), 1.0), lambda t: t.__setitem__((slice(None), 0), fg.ones(3, 2)),
    lambda t: t.__setitem__(0, "x"),
], ids=["shape", "oob", "oob_tensor", "value_shape", "value_type"])
def test_setitem_errors(bad):
    with pytest.raises(FG_ERRORS):
        bad(fg.tensor(A))


# -- views share memory ------------------------------------------------------------------------------

VIEWS = {
    "reshape": lambda t: t.reshape(20, 6), "view": lambda t: t.view(-1), "flatten": lambda t: t.flatten(1),
    "transpose": lambda t: t.transpose(0, 2), "permute": lambda t: t.permute(1, 2, 0), "T": lambda t: t.T,
    "unsqueeze": lambda t: t.unsqueeze(1), "squeeze": lambda t: t[:, :1].squeeze(1), "flip": lambda t: t.flip(1),
    "slice": lambda t: t[1:, ::2, 3:], "select": lambda t: t[2], "narrow": lambda t: t.narrow(2, 1, 3),
    "expand": lambda t: t[:, :1].expand(4, 5, 6), "split": lambda t: t.split(2, 1)[1],
    "unbind": lambda t: t.unbind(2)[3], "diag_chain": lambda t: t.transpose(0, 1)[::2].permute(2, 0, 1)[1:],
    "detach": lambda t: t.detach(), "movedim": lambda t: t.movedim(0, 2), "mT": lambda t: t.mT,
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_views_share_memory(name):
    f = VIEWS[name]
    t = fg.tensor(A)
    v = f(t)
    expect = f(torch.tensor(A)) if name != "flip" else torch.tensor(A).flip(1)
    same(v, expect)
    # base -> view
    t.mul_(-1)
    same(v, -expect)
    # view -> base (expand has overlapping memory: write through the base only)
    if name != "expand":
        t2 = fg.tensor(A + 1)
        v2 = f(t2)
        v2.add_(1000)
        assert t2.numpy().sum() > (A + 1).sum(), f"{name}: writing the view did not change the base"
        v2[...] = 0
        assert (t2.numpy() == 0).sum() == v2.numel()


def test_contiguous_copy_does_not_share():
    t = fg.tensor(A)
    c = t.transpose(0, 1).contiguous()
    assert c.is_contiguous()
    c.add_(1)
    np.testing.assert_array_equal(t.numpy(), A)
    assert t.contiguous() is t
    r = t.transpose(0, 1).reshape(-1)  # a copy: torch copies here too
    same(r, torch.tensor(A).transpose(0, 1).reshape(-1))


# -- bad inputs --------------------------------------------------------------------------------------

ERRORS = {
    "reshape": (lambda m, x: x.reshape(7, 3), "reshape"), "view": (lambda m, x: x.view(5, 5), "view"),
    "view_transposed": (lambda m, x: x.t().view(-1), "view"),
    "transpose": (lambda m, x: x.transpose(0, 3), "transpose"),
    "permute": (lambda m, x: x.permute(0, 2), "permute"), "squeeze": (lambda m, x: x.squeeze(5), "squeeze"),
    "unsqueeze": (lambda m, x: x.unsqueeze(-4), "unsqueeze"), "expand": (lambda m, x: x.expand(2, 3), "expand"),
    "flatten": (lambda m, x: x.flatten(1, 0), "flatten"), "sum_dim": (lambda m, x: x.sum(2), "sum"),
    "matmul": (lambda m, x: x @ x, "matmul"), "add": (lambda m, x: x + x[:, :2], "add"),
    "gather_dtype": (lambda m, x: x.gather(0, x), "gather"), "where_cond": (lambda m, x: m.where(x, x, x), "where"),
    "bool_neg": (lambda m, x: -(x > 0), "neg"), "bool_sub": (lambda m, x: (x > 0) - (x > 1), "sub"),
    "bitwise_float": (lambda m, x: x & x, "bitwise_and"), "int_pow_neg": (lambda m, x: x.long() ** -1, "pow"),
    "int_floordiv_zero": (lambda m, x: x.long() // 0, "floor_divide"), "int_mod_zero": (lambda m, x: x.long() % 0,
                                                                                        "remainder"),
    "cat_dtype_dims": (lambda m, x: m.cat([x, x[0]]), "cat"), "item": (lambda m, x: x.item(), "item"),
    "requires_grad_int": (lambda m, x: x.long().requires_grad_(), "requires_grad"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors(name):
    fn, match = ERRORS[name]
    check_raises(lambda x: fn(fg, x), lambda x: fn(torch, x), [(3, 4)], match=match, low=0.5, high=3.0)


def test_device_mismatch_and_strings():
    assert fg.device("cpu") == fg.tensor([1.0]).device
    with pytest.raises(FG_ERRORS):
        fg.device("gpu")
    if not fg.cuda.is_available():
        with pytest.raises(FG_ERRORS):
            fg.tensor([1.0]).to("cuda")
    with pytest.raises(TypeError):
        fg.tensor([1.0]).to(3.5)


# -- repr ----------------------------------------------------------------------------------------------

REPR_SHAPES = [(), (0,), (3,), (2, 3), (0, 4), (2, 0, 3), (1, 1, 1, 1), (2000,), (40, 40)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", REPR_SHAPES, ids=[str(s) for s in REPR_SHAPES])
def test_repr(dtype, shape):
    t = fg.ones(shape, dtype=dtype)
    r = repr(t)
    assert r.startswith("tensor(") and r.endswith(")")
    assert str(t) == r
    if dtype not in (fg.float32, fg.int64, fg.bool):
        assert "dtype=fastgrad." + dtype.name in r
    if dtype.is_floating_point:
        g = repr(fg.ones(shape, dtype=dtype, requires_grad=True) * 2)
        assert "grad_fn" in g
        assert "requires_grad=True" in repr(fg.ones(shape, dtype=dtype, requires_grad=True))


def test_repr_values_and_special():
    assert repr(fg.tensor([1.5, 2.25])) in ("tensor([1.5000, 2.2500])", "tensor([1.50, 2.25])")
    assert repr(fg.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(fg.tensor(3)) == "tensor(3)"
    assert repr(fg.tensor([True, False])) == "tensor([ True, False])"
    r = repr(fg.tensor([float("nan"), float("inf"), -float("inf")]))
    assert "nan" in r and "inf" in r
    assert "..." in repr(fg.zeros(5000))
    assert repr(fg.tensor(A)[:, ::2].T)  # non-contiguous
    assert repr(fg.zeros(0))
    assert repr(fg.float32) == "fastgrad.float32"


@pytest.mark.parametrize("make, exc, words", [
    (lambda: fg.tensor(object()), TypeError, "type object"),
    (lambda: fg.tensor([1.0, None]), TypeError, "NoneType"),
    (lambda: fg.tensor({1: 2}), TypeError, "dict"),
    (lambda: fg.stack((0, 1)), TypeError, "stack"),
    (lambda: fg.einsum("a->b", fg.ones(3)), ValueError, "'b'"),
    (lambda: fg.einsum("a->aa", fg.ones(3)), ValueError, "repeat"),
])
def test_junk_input_raises_clear_errors(make, exc, words):
    with pytest.raises(exc, match=words):
        make()


def test_set_num_threads_bounds():
    before = fg.get_num_threads()
    for bad in (0, -3, 10**6):
        with pytest.raises(ValueError, match="set_num_threads"):
            fg.set_num_threads(bad)
    assert fg.get_num_threads() == before


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_index_add_wraps_like_torch(dtype):
    top = np.iinfo(dtype).max
    ours = fg.tensor(np.array([top, 5], dtype)).index_add(0, fg.tensor([0, 1]), fg.tensor(np.array([1, 2], dtype)))
    ref = torch.tensor(np.array([top, 5], dtype)).index_add(0, torch.tensor([0, 1]), torch.tensor(np.array([1, 2], dtype)))
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())
