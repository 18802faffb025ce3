"""fastgrad.optim against torch.optim and against a plain NumPy loop.

The core helper, `check_trajectory`, builds the same params (same initial
values, same groups, same options) in fastgrad and torch, feeds both the
SAME gradient sequence for 50+ steps (seeded NumPy draws written into
`p.grad`; some params skip steps or start late, to exercise per-param step
counts and fresh momentum buffers) and compares the params and the optimizer
state after every few steps. A second family compares the fused kernels with
a reference written as a plain NumPy loop from torch's documented formulas.

Every parity test runs on both builds of the kernels (`cap`): the AVX2+FMA
one (torch's roundings; "auto" on any CPU that has it) and the scalar
baseline (forced through _C.set_cpu_capability("scalar")).
"""
import copy
import math

import numpy as np
import pytest
import torch

import fastgrad as fg
from fastgrad import _C
from fastgrad import optim
from fastgrad.optim import lr_scheduler as fg_sched

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(params=["auto", "scalar"])
def cap(request):
    _C.set_cpu_capability(request.param)
    yield request.param
    _C.set_cpu_capability("auto")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

SHAPES = [(7, 5), (33,), (), (4, 3, 2)]


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.detach().numpy()


def _groups(params, group_opts):
    """[{'params': [...], **opts}, ...] splitting params round-robin over the groups."""
    if group_opts is None:
        return params
    n = len(group_opts)
    return [dict(opts, params=[p for i, p in enumerate(params) if i % n == k]) for k, opts in enumerate(group_opts)]


def _has_grad(i, step, schedule):
    """Which params get a gradient at `step`: 'all', or 'sparse' (param 1 starts at step 5, param 2
    skips every third step) to exercise per-param step counts and new momentum buffers."""
    if schedule == "all":
        return True
    if i == 1:
        return step >= 5
    if i == 2:
        return step % 3 != 2
    return True


def check_trajectory(fg_cls, torch_cls, kwargs, dtype=np.float32, steps=60, group_opts=None, schedule="all",
                     shapes=SHAPES, seed=0, noncontig_grad=False, compare_state=True):
    rng = np.random.default_rng(seed)
    init = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in shapes]
    fps = [fg.tensor(a, requires_grad=True) for a in init]
    tps = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    fopt = fg_cls(_groups(fps, group_opts), **kwargs)
    topt = torch_cls(_groups(tps, group_opts), **kwargs)
    tol = TOL[dtype]
    for step in range(steps):
        for i, (fp, tp) in enumerate(zip(fps, tps)):
            if not _has_grad(i, step, schedule):
                fp.grad, tp.grad = None, None
                continue
            g = np.asarray(rng.standard_normal(fp.shape) * (1 + i), dtype=dtype)  # 0-d stays an array
            if noncontig_grad and g.ndim == 2:
                fp.grad = fg.tensor(np.ascontiguousarray(g.T)).T  # a transposed view
                assert not fp.grad.is_contiguous()
            else:
                fp.grad = fg.tensor(g)
            tp.grad = torch.tensor(g)
        fopt.step()
        topt.step()
        if step % 10 == 9 or step == steps - 1:
            for i, (fp, tp) in enumerate(zip(fps, tps)):
                np.testing.assert_allclose(_np(fp), _np(tp), **tol, err_msg=f"param {i} after step {step}")
    for fp, tp in zip(fps, tps):
        assert fp.dtype == (fg.float32 if dtype == np.float32 else fg.float64)
        if not compare_state:
            continue
        fs, ts = fopt.state[fp], topt.state[tp]
        assert set(fs) == set(ts), (set(fs), set(ts))
        for key in ts:
            if ts[key] is None:
                assert fs[key] is None
                continue
            np.testing.assert_allclose(np.asarray(_np(fs[key])), _np(ts[key]), **tol, err_msg=key)
    return fopt, topt


# ---------------------------------------------------------------------------------------------
# trajectories against torch.optim
# ---------------------------------------------------------------------------------------------

SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True),
    dict(lr=0.05, weight_decay=0.1, maximize=True),
]
ADAM_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=1e-2, amsgrad=True),
    dict(lr=1e-2, amsgrad=True, weight_decay=0.05, maximize=True),
    dict(lr=1e-2, betas=(0.3, 0.5)),  # 1 - beta1 >= 0.5: the other branch of torch's lerp
]
ADAGRAD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, lr_decay=0.01),
    dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5),
    dict(lr=0.1, eps=1e-6, maximize=True),
]
RMSPROP_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, alpha=0.9, eps=1e-6),
    dict(lr=1e-2, momentum=0.9),
    dict(lr=1e-2, centered=True),
    dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=0.1),
    dict(lr=1e-2, alpha=0.3, centered=True, maximize=True),  # 1 - alpha >= 0.5 in the lerp
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", SGD_CASES)
def test_sgd_matches_torch(cap, kwargs, dtype):
    check_trajectory(optim.SGD, torch.optim.SGD, kwargs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", ADAM_CASES)
def test_adam_matches_torch(cap, kwargs, dtype):
    check_trajectory(optim.Adam, torch.optim.Adam, kwargs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", ADAM_CASES + [dict(lr=1e-2)])  # AdamW's default weight_decay=1e-2
def test_adamw_matches_torch(cap, kwargs, dtype):
    check_trajectory(optim.AdamW, torch.optim.AdamW, kwargs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", ADAGRAD_CASES)
def test_adagrad_matches_torch(cap, kwargs, dtype):
    check_trajectory(optim.Adagrad, torch.optim.Adagrad, kwargs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", RMSPROP_CASES)
def test_rmsprop_matches_torch(cap, kwargs, dtype):
    check_trajectory(optim.RMSprop, torch.optim.RMSprop, kwargs, dtype)


OPTIMIZERS = {
    "sgd": (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1)),
    "adam": (optim.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    "adamw": (optim.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
    "adagrad": (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05)),
    "rmsprop": (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-2, momentum=0.5, centered=True)),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_params_without_grad_on_some_steps(cap, name):
    # Param 1 gets its first gradient at step 5 (fresh state and step count 1
    # while the others are at 6), param 2 skips every third step.
    fg_cls, torch_cls, kwargs = OPTIMIZERS[name]
    check_trajectory(fg_cls, torch_cls, kwargs, schedule="sparse")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_param_groups_with_different_options(cap, name):
    fg_cls, torch_cls, kwargs = OPTIMIZERS[name]
    group_opts = [dict(lr=kwargs["lr"] * 0.5), dict(weight_decay=0.1), {}]
    if name in ("adam", "adamw"):
        group_opts[2] = dict(betas=(0.5, 0.9), amsgrad=False)
    check_trajectory(fg_cls, torch_cls, kwargs, group_opts=group_opts, dtype=np.float64)
    check_trajectory(fg_cls, torch_cls, kwargs, group_opts=group_opts, dtype=np.float32)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_noncontiguous_grads(name):
    fg_cls, torch_cls, kwargs = OPTIMIZERS[name]
    check_trajectory(fg_cls, torch_cls, kwargs, noncontig_grad=True, steps=20)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_feedback_loop_on_quadratic(name, device):
    """Gradients computed from each framework's own current params (a real training loop):
    least squares 0.5 * |A x - b|^2, float64, 100 steps (fastgrad's on every device)."""
    fg_cls, torch_cls, kwargs = OPTIMIZERS[name]
    rng = np.random.default_rng(3)
    A = rng.standard_normal((20, 8))
    b = rng.standard_normal(20)
    x0 = rng.standard_normal(8)
    fx = fg.tensor(x0, requires_grad=True, device=device)
    tx = torch.tensor(x0.copy(), requires_grad=True)
    fopt, topt = fg_cls([fx], **kwargs), torch_cls([tx], **kwargs)
    for _ in range(100):
        fx.grad = fg.tensor(A.T @ (A @ _np(fx) - b), device=device)
        tx.grad = torch.tensor(A.T @ (A @ _np(tx) - b))
        fopt.step()
        topt.step()
    np.testing.assert_allclose(_np(fx), _np(tx), rtol=1e-10, atol=1e-12)


def test_mixed_dtypes_in_one_group():
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(5).astype(np.float32), rng.standard_normal(4)]
    fps = [fg.tensor(a, requires_grad=True) for a in init]
    tps = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    fopt, topt = optim.Adam(fps, lr=0.01), torch.optim.Adam(tps, lr=0.01)
    for _ in range(30):
        for fp, tp in zip(fps, tps):
            g = rng.standard_normal(fp.shape).astype(_np(fp).dtype)
            fp.grad, tp.grad = fg.tensor(g), torch.tensor(g)
        fopt.step()
        topt.step()
    np.testing.assert_allclose(_np(fps[0]), _np(tps[0]), **TOL[np.float32])
    np.testing.assert_allclose(_np(fps[1]), _np(tps[1]), **TOL[np.float64])


def test_sgd_is_bit_exact_with_fma():
    """SGD's update has no sqrt, so the FMA build reproduces torch bit for bit."""
    if _C.gemm_info() == "scalar":
        pytest.skip("CPU without AVX2/FMA")
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(10007).astype(np.float32)
    fp, tp = fg.tensor(p0, requires_grad=True), torch.tensor(p0.copy(), requires_grad=True)
    kw = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)
    fopt, topt = optim.SGD([fp], **kw), torch.optim.SGD([tp], **kw)
    for _ in range(50):
        g = rng.standard_normal(p0.shape).astype(np.float32)
        fp.grad, tp.grad = fg.tensor(g), torch.tensor(g)
        fopt.step()
        topt.step()
    assert np.array_equal(_np(fp), _np(tp))


# ---------------------------------------------------------------------------------------------
# fused kernels == a plain NumPy loop (torch's documented algorithms)
# ---------------------------------------------------------------------------------------------


def ref_sgd(p, g, st, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False):
    g = -g if maximize else g
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        if "buf" not in st:
            st["buf"] = g.copy()
        else:
            st["buf"] = momentum * st["buf"] + (1 - dampening) * g
        g = g + momentum * st["buf"] if nesterov else st["buf"]
    return p - lr * g


def ref_adam(p, g, st, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False,
             decoupled=False):
    b1, b2 = betas
    g = -g if maximize else g
    t = st["t"] = st.get("t", 0) + 1
    if weight_decay:
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    v = st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
    if amsgrad:
        v = st["vmax"] = np.maximum(st.get("vmax", 0), v)
    denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps
    return p - lr / (1 - b1 ** t) * m / denom


def ref_adagrad(p, g, st, lr, lr_decay=0, weight_decay=0, eps=1e-10, initial_accumulator_value=0,
                maximize=False):
    g = -g if maximize else g
    t = st["t"] = st.get("t", 0) + 1
    if weight_decay:
        g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s = st["sum"] = st.get("sum", initial_accumulator_value) + g * g
    return p - clr * g / (np.sqrt(s) + eps)


def ref_rmsprop(p, g, st, lr, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, maximize=False):
    g = -g if maximize else g
    if weight_decay:
        g = g + weight_decay * p
    sq = st["sq"] = alpha * st.get("sq", 0) + (1 - alpha) * g * g
    if centered:
        ga = st["ga"] = alpha * st.get("ga", 0) + (1 - alpha) * g
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = st["buf"] = momentum * st.get("buf", 0) + g / avg
        return p - lr * buf
    return p - lr * g / avg


REFERENCE_CASES = [
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.1)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    (optim.Adam, ref_adam, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    (optim.AdamW, lambda *a, **k: ref_adam(*a, decoupled=True, **k), dict(lr=1e-2, weight_decay=0.1)),
    (optim.Adam, ref_adam, dict(lr=1e-2, betas=(0.3, 0.6), maximize=True)),
    (optim.Adagrad, ref_adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    (optim.RMSprop, ref_rmsprop, dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1)),
    (optim.RMSprop, ref_rmsprop, dict(lr=1e-2, alpha=0.9, maximize=True)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fg_cls, ref, kwargs", REFERENCE_CASES)
def test_fused_matches_numpy_loop(cap, fg_cls, ref, kwargs, dtype):
    rng = np.random.default_rng(11)
    init = [rng.standard_normal(s).astype(dtype) for s in [(40, 3), (17,)]]
    fps = [fg.tensor(a, requires_grad=True) for a in init]
    fopt = fg_cls(fps, **kwargs)
    ref_params = [a.copy() for a in init]
    ref_states = [{} for _ in init]
    for _ in range(50):
        for i, fp in enumerate(fps):
            g = rng.standard_normal(fp.shape).astype(dtype)
            fp.grad = fg.tensor(g)
            ref_params[i] = ref(ref_params[i], g, ref_states[i], **kwargs).astype(dtype)
        fopt.step()
    # The NumPy loop rounds differently (no FMA, float32 products of Python floats
    # in float64), so float32 allows a few ulps of drift over 50 steps.
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else TOL[np.float64]
    for fp, rp in zip(fps, ref_params):
        np.testing.assert_allclose(_np(fp), rp, **tol)


# ---------------------------------------------------------------------------------------------
# determinism, versions, the Optimizer API
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_result_for_every_thread_count(name):
    fg_cls, _, kwargs = OPTIMIZERS[name]
    rng = np.random.default_rng(2)
    # Sizes that make parallel_for split inside and across params.
    init = [rng.standard_normal(s).astype(np.float32) for s in [(70001,), (3,), (40000,), (0,), (33333,)]]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in init] for _ in range(3)]
    results = []
    saved = fg.get_num_threads()
    try:
        for threads in (1, 2, 3, 5):
            fg.set_num_threads(threads)
            ps = [fg.tensor(a, requires_grad=True) for a in init]
            opt = fg_cls(ps, **kwargs)
            for gs in grads:
                for p, g in zip(ps, gs):
                    p.grad = fg.tensor(g)
                opt.step()
            results.append([_np(p).copy() for p in ps])
    finally:
        fg.set_num_threads(saved)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", [*OPTIMIZERS, "sgd_plain", "rmsprop_plain"])
def test_line_blocks_equal_element_tail(cap, name, dtype):
    """The span loops update whole cache lines (16 floats / 8 doubles, prefetching ahead) and then a
    tail element by element: 37 values in one param (lines + tail, at offsets that make both) and the
    same values as 37 one-element params (tail only) end up with the same bits."""
    plain = {"sgd_plain": (optim.SGD, dict(lr=0.05)), "rmsprop_plain": (optim.RMSprop, dict(lr=1e-2))}
    fg_cls, kwargs = plain[name] if name in plain else (OPTIMIZERS[name][0], OPTIMIZERS[name][2])
    rng = np.random.default_rng(5)
    init = rng.standard_normal(37).astype(dtype)
    grads = [rng.standard_normal(37).astype(dtype) for _ in range(4)]
    whole = fg.tensor(init, requires_grad=True)
    pieces = [fg.tensor(init[i:i + 1], requires_grad=True) for i in range(37)]
    opt_whole, opt_pieces = fg_cls([whole], **kwargs), fg_cls(pieces, **kwargs)
    for g in grads:
        whole.grad = fg.tensor(g)
        for i, p in enumerate(pieces):
            p.grad = fg.tensor(g[i:i + 1])
        opt_whole.step()
        opt_pieces.step()
    np.testing.assert_array_equal(_np(whole), np.concatenate([_np(p) for p in pieces]))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_bumps_versions(name, device):
    fg_cls, _, kwargs = OPTIMIZERS[name]
    p = fg.tensor(np.ones(4, np.float32), requires_grad=True, device=device)
    opt = fg_cls([p], **kwargs)
    p.grad = fg.ones(4, device=device)
    v0 = p._data.version
    opt.step()
    v1 = p._data.version
    assert v1 > v0
    states = [t for t in opt.state[p].values() if isinstance(t, fg.Tensor) and t.ndim > 0]
    versions = [t._data.version for t in states]
    opt.step()
    assert p._data.version > v1
    assert all(t._data.version > v for t, v in zip(states, versions))


def test_step_is_not_recorded_by_autograd(device):
    p = fg.tensor(np.ones(3, np.float32), requires_grad=True, device=device)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    (p * p).sum().backward()
    opt.step()
    assert p.is_leaf and p.requires_grad
    assert opt.state[p]["momentum_buffer"].requires_grad is False
    np.testing.assert_allclose(_np(p), 0.8)


def test_closure_runs_with_grad_and_returns_loss():
    p = fg.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with fg.no_grad():
        loss = opt.step(closure)
    assert float(loss) == pytest.approx(5.0)
    np.testing.assert_allclose(_np(p), [0.8, -1.6])


def test_zero_grad():
    p = fg.tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([p])
    p.grad = fg.ones(3)
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g
    np.testing.assert_array_equal(_np(p.grad), 0.0)
    opt.zero_grad()
    assert p.grad is None
    opt.zero_grad()  # no grads: nothing to do


def test_params_forms():
    a = fg.zeros(3, requires_grad=True)
    b = fg.zeros(2, requires_grad=True)
    assert optim.SGD((x for x in [a, b]), lr=0.1).param_groups[0]["params"] == [a, b]
    named = optim.SGD([("w", a), ("b", b)], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w", "b"]
    groups = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in groups.param_groups] == [0.1, 0.5]
    assert groups.param_groups[1]["params"] == [b]
    assert groups.param_groups[1]["momentum"] == 0.9  # defaults filled in
    c = fg.zeros(1, requires_grad=True)
    groups.add_param_group({"params": [c], "lr": 0.01})
    assert groups.param_groups[2]["lr"] == 0.01 and groups.param_groups[2]["nesterov"] is False


def test_bad_params():
    a = fg.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {a}}], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([a, 3.0], lr=0.1)
    with pytest.raises(ValueError, match="duplicate parameters"):
        optim.SGD([a, a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([a * 2], lr=0.1)


BAD_HYPERPARAMETERS = [
    (optim.SGD, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum requires"),
    (optim.Adam, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.Adam, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (optim.AdamW, dict(lr=-0.5), "Invalid learning rate: -0.5"),
    (optim.Adagrad, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.Adagrad, dict(lr_decay=-1), "Invalid lr_decay value: -1"),
    (optim.Adagrad, dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
    (optim.Adagrad, dict(eps=-1), "Invalid epsilon value: -1"),
    (optim.RMSprop, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.RMSprop, dict(alpha=-0.1), "Invalid alpha value: -0.1"),
    (optim.RMSprop, dict(momentum=-0.1), "Invalid momentum value: -0.1"),
    (optim.RMSprop, dict(eps=-0.1), "Invalid epsilon value: -0.1"),
]


@pytest.mark.parametrize("fg_cls, kwargs, message", BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_raise_like_torch(fg_cls, kwargs, message):
    torch_cls = getattr(torch.optim, fg_cls.__name__)
    with pytest.raises(ValueError) as torch_err:
        torch_cls([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as fg_err:
        fg_cls([fg.zeros(2, requires_grad=True)], **kwargs)
    assert message in str(fg_err.value)
    assert str(fg_err.value) == str(torch_err.value)


def test_bad_hyperparameters_in_a_group():
    with pytest.raises(ValueError, match="Invalid learning rate: -2"):
        optim.Adam([{"params": [fg.zeros(2, requires_grad=True)], "lr": -2}])


# ---------------------------------------------------------------------------------------------
# state_dict
# ---------------------------------------------------------------------------------------------


def _feed(params, rng):
    for p in params:
        p.grad = fg.tensor(rng.standard_normal(p.shape).astype(np.float32), device=p.device)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip(name, device):
    fg_cls, _, kwargs = OPTIMIZERS[name]
    rng = np.random.default_rng(4)
    ps = [fg.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True, device=device)
          for s in [(3, 4), (5,)]]
    groups = [{"params": [ps[0]]}, {"params": [ps[1]], "lr": kwargs["lr"] / 2}]
    opt = fg_cls(groups, **kwargs)
    for _ in range(10):
        _feed(ps, rng)
        opt.step()

    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == kwargs["lr"] / 2

    # A fresh optimizer on copies of the params, loaded from the state dict.
    ps2 = [fg.tensor(_np(p).copy(), requires_grad=True, device=device) for p in ps]
    opt2 = fg_cls([{"params": [ps2[0]]}, {"params": [ps2[1]]}], **kwargs)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == kwargs["lr"] / 2
    assert opt2.param_groups[0]["params"] == [ps2[0]]

    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in ps] for _ in range(10)]
    for gs in grads:  # continue the original...
        for p, g in zip(ps, gs):
            p.grad = fg.tensor(g, device=device)
        opt.step()
    for gs in grads:  # ...and the loaded one: same trajectory (its state was copied, not shared)
        for p, g in zip(ps2, gs):
            p.grad = fg.tensor(g, device=device)
        opt2.step()
    for a, b in zip(ps, ps2):
        assert np.array_equal(_np(a), _np(b))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_layout_matches_torch(name):
    fg_cls, torch_cls, kwargs = OPTIMIZERS[name]
    fp, tp = fg.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    fopt, topt = fg_cls([fp], **kwargs), torch_cls([tp], **kwargs)
    fp.grad, tp.grad = fg.ones(3), torch.ones(3)
    fopt.step()
    topt.step()
    fsd, tsd = fopt.state_dict(), topt.state_dict()
    assert list(fsd["state"]) == list(tsd["state"]) == [0]
    assert set(fsd["state"][0]) == set(tsd["state"][0])
    assert set(fsd["param_groups"][0]) <= set(tsd["param_groups"][0])
    for key, value in tsd["state"][0].items():
        np.testing.assert_allclose(np.asarray(fsd["state"][0][key]), value.numpy(), rtol=1e-6)
    assert fsd["state"][0]["step"].dtype == fg.float32 if "step" in tsd["state"][0] else True


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_load_torch_state_dict(name):
    """A torch optimizer's state dict (torch tensors) loads into fastgrad and continues identically."""
    fg_cls, torch_cls, kwargs = OPTIMIZERS[name]
    rng = np.random.default_rng(8)
    p0 = rng.standard_normal(6).astype(np.float32)
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch_cls([tp], **kwargs)
    for _ in range(5):
        tp.grad = torch.tensor(rng.standard_normal(6).astype(np.float32))
        topt.step()
    fp = fg.tensor(_np(tp).copy(), requires_grad=True)
    fopt = fg_cls([fp], **kwargs)
    fopt.load_state_dict(copy.deepcopy(topt.state_dict()))
    for _ in range(5):
        g = rng.standard_normal(6).astype(np.float32)
        tp.grad, fp.grad = torch.tensor(g), fg.tensor(g)
        topt.step()
        fopt.step()
    np.testing.assert_allclose(_np(fp), _np(tp), **TOL[np.float32])


def test_load_state_dict_checks_groups():
    a, b = fg.zeros(2, requires_grad=True), fg.zeros(2, requires_grad=True)
    sd = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)


# ---------------------------------------------------------------------------------------------
# learning-rate schedulers against torch.optim.lr_scheduler
# ---------------------------------------------------------------------------------------------

SCHEDULERS = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[10, 30, 30, 70], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.97)),
    ("CosineAnnealingLR", dict(T_max=25, eta_min=1e-4)),  # 100 epochs: several half-periods
    ("LambdaLR", dict(lr_lambda=lambda epoch: 1.0 / (1 + epoch) ** 0.5)),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.9, total_iters=40)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=101)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], total_steps=101, anneal_strategy="linear", three_phase=True)),
]


def _two_group_optimizers(opt_name="SGD", **kw):
    fa, fb = fg.zeros(2, requires_grad=True), fg.zeros(3, requires_grad=True)
    ta, tb = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    fopt = getattr(optim, opt_name)([{"params": [fa]}, {"params": [fb], "lr": 0.02}], lr=0.1, **kw)
    topt = getattr(torch.optim, opt_name)([{"params": [ta]}, {"params": [tb], "lr": 0.02}], lr=0.1, **kw)
    return fopt, topt


@pytest.mark.parametrize("opt_name, opt_kw", [("SGD", dict(momentum=0.9)), ("Adam", {})])
@pytest.mark.parametrize("name, kwargs", SCHEDULERS)
def test_scheduler_matches_torch(name, kwargs, opt_name, opt_kw):
    fopt, topt = _two_group_optimizers(opt_name, **opt_kw)
    fs = getattr(fg_sched, name)(fopt, **kwargs)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    assert fs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13, abs=1e-15)
    for epoch in range(100):
        topt.step()
        ts.step()
        fs.step()
        assert fs.last_epoch == ts.last_epoch == epoch + 1
        assert fs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13, abs=1e-15), epoch
        assert [g["lr"] for g in fopt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups],
                                                                      rel=1e-13, abs=1e-15)
        if name == "OneCycleLR":  # momentum / beta1 cycles too
            key = "momentum" if opt_name == "SGD" else "betas"
            for fg_group, t_group in zip(fopt.param_groups, topt.param_groups):
                assert fg_group[key] == pytest.approx(t_group[key], rel=1e-13)


@pytest.mark.parametrize("name, kwargs", [s for s in SCHEDULERS if s[0] not in ("LambdaLR", "OneCycleLR")])
def test_scheduler_closed_form_matches_torch(name, kwargs):
    fopt, topt = _two_group_optimizers()
    fs = getattr(fg_sched, name)(fopt, **kwargs)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for epoch in [3, 10, 25, 50, 99]:
        with pytest.warns(UserWarning):
            ts.step(epoch)
        with pytest.warns(UserWarning):
            fs.step(epoch)
        assert fs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("name, kwargs", SCHEDULERS)
def test_scheduler_state_dict_round_trip(name, kwargs):
    fopt, _ = _two_group_optimizers()
    sched = getattr(fg_sched, name)(fopt, **kwargs)
    for _ in range(30):
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 30
    # As in torch: build the scheduler first (its initial step rewrites the
    # lrs), then load the optimizer's and the scheduler's states.
    fopt2, _ = _two_group_optimizers()
    sched2 = getattr(fg_sched, name)(fopt2, **kwargs)
    fopt2.load_state_dict(fopt.state_dict())
    sched2.load_state_dict(copy.deepcopy(sd))
    for _ in range(20):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


def test_scheduler_errors_like_torch():
    fopt, topt = _two_group_optimizers()
    for mod, opt in ((fg_sched, fopt), (torch.optim.lr_scheduler, topt)):
        with pytest.raises(ValueError, match="Starting multiplicative factor"):
            mod.LinearLR(opt, start_factor=0)
        with pytest.raises(ValueError, match="total_steps OR"):
            mod.OneCycleLR(opt, max_lr=0.1)
        with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
            mod.LambdaLR(opt, [lambda e: 1.0])
        with pytest.raises(TypeError, match="is not an Optimizer"):
            mod.StepLR(object(), step_size=3)
        sched = mod.OneCycleLR(opt, max_lr=0.1, total_steps=2)
        opt.step()  # no grads: a no-op that keeps torch's step-order warning quiet
        sched.step()
        sched.step()
        with pytest.raises(ValueError, match="Tried to step 3 times"):
            sched.step()


# ---------------------------------------------------------------------------------------------
# the native kernels' argument checks (fastgrad._C)
# ---------------------------------------------------------------------------------------------

F32 = _C.DType.float32


def _z(*shape, dtype=F32):
    return _C.zeros(list(shape), dtype, "cpu")


def _adam(params, grads, m=None, v=None, vmax=(), step=1, amsgrad=False):
    m = [_z(*p.shape, dtype=p.dtype) for p in params] if m is None else m
    v = [_z(*p.shape, dtype=p.dtype) for p in params] if v is None else v
    _C.adam_step(params, grads, m, v, list(vmax), step, 1e-3, 0.9, 0.999, 1e-8, 0.0, amsgrad, False, False)


def test_native_shape_mismatch():
    with pytest.raises(ValueError, match=r"adam_step: grad 0 has shape \[3\] but param 0 has shape \[2, 3\]"):
        _adam([_z(2, 3)], [_z(3)])
    with pytest.raises(ValueError, match=r"sgd_step: momentum_buffer 1 has shape"):
        _C.sgd_step([_z(2), _z(3)], [_z(2), _z(3)], [_z(2), _z(2)], 0.1, 0.9, 0.0, 0.0, False, False, False)
    with pytest.raises(ValueError, match=r"rmsprop_step: square_avg 0 has shape"):
        _C.rmsprop_step([_z(2)], [_z(2)], [_z(4)], [], [], 0.1, 0.99, 1e-8, 0.0, 0.0, False, False)
    with pytest.raises(ValueError, match=r"adagrad_step: sum 0 has shape"):
        _C.adagrad_step([_z(2)], [_z(2)], [_z(1)], 1, 0.1, 0.0, 0.0, 1e-10, False)


def test_native_non_contiguous():
    p = _C.transpose(_z(3, 4), 0, 1)
    with pytest.raises(ValueError, match="adam_step: param 0 is not contiguous"):
        _adam([p], [_z(4, 3)])
    with pytest.raises(ValueError, match="sgd_step: grad 0 is not contiguous"):
        _C.sgd_step([_z(4, 3)], [p], [], 0.1, 0.0, 0.0, 0.0, False, False, False)
    with pytest.raises(ValueError, match="adam_step: exp_avg_sq 0 is not contiguous"):
        _adam([_z(4, 3)], [_z(4, 3)], v=[p])


def test_native_list_lengths_and_state_options():
    with pytest.raises(ValueError, match=r"adam_step: expected one grad per param \(2\), got 1"):
        _adam([_z(2), _z(2)], [_z(2)])
    with pytest.raises(ValueError, match="adam_step: expected one max_exp_avg_sq per param"):
        _adam([_z(2)], [_z(2)], amsgrad=True)
    with pytest.raises(ValueError, match="sgd_step: expected one momentum_buffer per param"):
        _C.sgd_step([_z(2)], [_z(2)], [], 0.1, 0.9, 0.0, 0.0, False, False, False)
    with pytest.raises(ValueError, match="rmsprop_step: expected one grad_avg per param"):
        _C.rmsprop_step([_z(2)], [_z(2)], [_z(2)], [], [], 0.1, 0.99, 1e-8, 0.0, 0.0, True, False)
    # Unused lists may be empty; empty groups and empty params are fine.
    _C.sgd_step([_z(2)], [_z(2)], [], 0.1, 0.0, 0.0, 0.0, False, False, False)
    _adam([], [])
    _adam([_z(0), _z(2, 0)], [_z(0), _z(2, 0)])


def test_native_dtype_checks():
    with pytest.raises(TypeError, match="adam_step: grad 0 has dtype float64 but param 0 has dtype float32"):
        _adam([_z(2)], [_z(2, dtype=_C.DType.float64)])
    with pytest.raises(TypeError, match="sgd_step: param 0 has dtype int64"):
        _C.sgd_step([_z(2, dtype=_C.DType.int64)], [_z(2, dtype=_C.DType.int64)], [], 0.1, 0.0, 0.0, 0.0, False,
                    False, False)


def test_native_overlapping_params_and_bad_step():
    p = _z(4)
    with pytest.raises(ValueError, match="adam_step: params 0 and 1 share memory"):
        _adam([p, p], [_z(4), _z(4)])
    base = _z(6)
    views = [_C.slice(base, 0, 0, 4, 1), _C.slice(base, 0, 2, 6, 1)]
    with pytest.raises(ValueError, match="share memory"):
        _C.sgd_step(views, [_z(4), _z(4)], [], 0.1, 0.0, 0.0, 0.0, False, False, False)
    # Adjacent, non-overlapping views of one storage are fine.
    halves = [_C.slice(base, 0, 0, 3, 1), _C.slice(base, 0, 3, 6, 1)]
    _C.sgd_step(halves, [_z(3), _z(3)], [], 0.1, 0.0, 0.0, 0.0, False, False, False)
    with pytest.raises(ValueError, match="adam_step: step counts this update and must be >= 1, got 0"):
        _adam([_z(2)], [_z(2)], step=0)
    with pytest.raises(ValueError, match="adagrad_step: step"):
        _C.adagrad_step([_z(2)], [_z(2)], [_z(2)], 0, 0.1, 0.0, 0.0, 1e-10, False)


def test_native_bumps_versions_and_updates_in_place():
    p, g, m, v = _z(5), _C.full([5], 1.0, F32, "cpu"), _z(5), _z(5)
    before = [a.version for a in (p, g, m, v)]
    ptr = p.data_ptr
    _adam([p], [g], [m], [v])
    after = [a.version for a in (p, g, m, v)]
    assert after[0] > before[0] and after[2] > before[2] and after[3] > before[3]
    assert after[1] == before[1]  # the grad is only read
    assert p.data_ptr == ptr
    np.testing.assert_allclose(_C.to_numpy(p), -1e-3, rtol=1e-5)
