"""fastgrad.nn against torch.nn: layers with copied weights, every loss with
every reduction (values and gradients), Module bookkeeping, init, utils."""
import math

import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.nn as nn
import fastgrad.nn.functional as F

RNG = np.random.default_rng(1234)


def fgt(a, requires_grad=False, dtype=np.float32):
    return fg.tensor(np.asarray(a, dtype=dtype), requires_grad=requires_grad)


def tht(a, requires_grad=False, dtype=np.float32):
    return torch.tensor(np.asarray(a, dtype=dtype), requires_grad=requires_grad)


def close(a, b, rtol=1e-5, atol=1e-6):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def copy_params(fg_module, torch_module):
    """Copies torch's parameters and buffers into the fastgrad module (same names)."""
    sd = {k: fg.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()}
    fg_module.load_state_dict(sd)


# -- layers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, bias):
    tl = torch.nn.Linear(4, 3, bias=bias)
    fl = nn.Linear(4, 3, bias=bias)
    copy_params(fl, tl)
    x = RNG.standard_normal(shape)
    xf, xt = fgt(x, True), tht(x, True)
    yf, yt = fl(xf), tl(xt)
    close(yf, yt)
    g = RNG.standard_normal(yt.shape)
    yf.backward(fgt(g))
    yt.backward(tht(g))
    close(xf.grad, xt.grad)
    close(fl.weight.grad, tl.weight.grad)
    if bias:
        close(fl.bias.grad, tl.bias.grad)


def test_linear_double_backward_matches_torch():
    tl = torch.nn.Linear(3, 2).double()
    fl = nn.Linear(3, 2).double()
    copy_params(fl, tl)
    x = RNG.standard_normal((4, 3))
    xf, xt = fgt(x, True, np.float64), tht(x, True, np.float64)
    (gf,) = fg.autograd.grad(fl(xf).tanh().sum(), xf, create_graph=True)
    (gt,) = torch.autograd.grad(tl(xt).tanh().sum(), xt, create_graph=True)
    close(gf, gt, 1e-10, 1e-12)
    gf.square().sum().backward()
    gt.square().sum().backward()
    close(fl.weight.grad, tl.weight.grad, 1e-10, 1e-12)


def test_linear_default_init_is_pytorchs():
    fg.manual_seed(0)
    w = nn.Linear(100, 50).weight.detach().numpy()
    bound = 1 / math.sqrt(100)
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound  # U(-b, b) has std b/sqrt(3)


@pytest.mark.parametrize("name,args", [("ReLU", ()), ("Sigmoid", ()), ("Tanh", ()), ("GELU", ()), ("SiLU", ()),
                                       ("LeakyReLU", (0.2,)), ("ELU", (0.7,)), ("Softmax", (1,)),
                                       ("LogSoftmax", (1,)), ("Softplus", ())])
def test_activation_modules(name, args):
    x = RNG.standard_normal((4, 5)) * 3
    fm, tm = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    xf, xt = fgt(x, True), tht(x, True)
    yf, yt = fm(xf), tm(xt)
    close(yf, yt, 1e-5, 1e-6)
    g = RNG.standard_normal(x.shape)
    yf.backward(fgt(g))
    yt.backward(tht(g))
    close(xf.grad, xt.grad, 1e-4, 1e-5)


def test_gelu_tanh_approximation():
    x = RNG.standard_normal(50) * 3
    close(F.gelu(fgt(x), approximate="tanh"), torch.nn.functional.gelu(tht(x), approximate="tanh"), 1e-5, 1e-6)


@pytest.mark.parametrize("shape", [(8, 3), (6, 3, 5)])
def test_batchnorm1d_train_and_eval(shape):
    tb = torch.nn.BatchNorm1d(3)
    fb = nn.BatchNorm1d(3)
    with torch.no_grad():
        tb.weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        tb.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    copy_params(fb, tb)
    for _ in range(3):  # running statistics follow torch's over several batches
        x = RNG.standard_normal(shape) * 2 + 1
        xf, xt = fgt(x, True), tht(x, True)
        yf, yt = fb(xf), tb(xt)
        close(yf, yt, 1e-4, 1e-5)
        g = RNG.standard_normal(shape)
        yf.backward(fgt(g))
        yt.backward(tht(g))
        close(xf.grad, xt.grad, 1e-4, 1e-5)
        close(fb.weight.grad, tb.weight.grad, 1e-4, 1e-5)
    close(fb.running_mean, tb.running_mean)
    close(fb.running_var, tb.running_var)
    assert fb.num_batches_tracked.item() == tb.num_batches_tracked.item() == 3
    fb.eval()
    tb.eval()
    x = RNG.standard_normal(shape)
    close(fb(fgt(x)), tb(tht(x)), 1e-5, 1e-6)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(fg.ones(1, 3))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        nn.BatchNorm1d(3)(fg.ones(4, 5))


def test_layernorm_matches_torch():
    tl, fl = torch.nn.LayerNorm((4, 5)), nn.LayerNorm((4, 5))
    with torch.no_grad():
        tl.weight.normal_()
        tl.bias.normal_()
    copy_params(fl, tl)
    x = RNG.standard_normal((3, 4, 5))
    xf, xt = fgt(x, True), tht(x, True)
    close(fl(xf), tl(xt), 1e-5, 1e-5)
    g = RNG.standard_normal(x.shape)
    fl(xf).backward(fgt(g))
    tl(xt).backward(tht(g))
    close(xf.grad, xt.grad, 1e-4, 1e-5)
    close(fl.weight.grad, tl.weight.grad, 1e-4, 1e-5)
    close(fl.bias.grad, tl.bias.grad, 1e-4, 1e-5)


def test_groupnorm_matches_torch():
    tg, fgm = torch.nn.GroupNorm(2, 4), nn.GroupNorm(2, 4)
    x = RNG.standard_normal((3, 4, 5))
    close(fgm(fgt(x)), tg(tht(x)), 1e-5, 1e-5)


def test_embedding_matches_torch():
    te, fe = torch.nn.Embedding(10, 4, padding_idx=2), nn.Embedding(10, 4, padding_idx=2)
    copy_params(fe, te)
    idx = np.array([[1, 2, 3], [2, 9, 0]])
    yf, yt = fe(fg.tensor(idx)), te(torch.tensor(idx))
    close(yf, yt)
    g = RNG.standard_normal(yt.shape)
    yf.backward(fgt(g))
    yt.backward(tht(g))
    close(fe.weight.grad, te.weight.grad)
    assert np.all(fe.weight.grad.numpy()[2] == 0)


def test_embedding_rejects_float_indices():
    with pytest.raises(TypeError, match="embedding"):
        nn.Embedding(5, 2)(fg.tensor([1.0]))


def test_dropout_train_and_eval():
    fg.manual_seed(3)
    d = nn.Dropout(0.3)
    x = fg.ones(20000)
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    d.eval()
    assert d(x) is x
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


# -- losses ---------------------------------------------------------------------------------------

REDUCTIONS = ["mean", "sum", "none"]


def _loss_pair(fg_fn, torch_fn, inputs, kwargs, rtol=1e-5, atol=1e-6, grad_idx=(0,)):
    fi = [fgt(a, i in grad_idx) if np.asarray(a).dtype.kind == "f" else fg.tensor(a) for i, a in enumerate(inputs)]
    ti = [tht(a, i in grad_idx) if np.asarray(a).dtype.kind == "f" else torch.tensor(a) for i, a in enumerate(inputs)]
    lf, lt = fg_fn(*fi, **kwargs), torch_fn(*ti, **kwargs)
    close(lf, lt, rtol, atol)
    g = RNG.standard_normal(tuple(lt.shape))
    lf.backward(fgt(g))
    lt.backward(tht(g))
    for i in grad_idx:
        close(fi[i].grad, ti[i].grad, 1e-4, 1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_regression_losses(name, reduction):
    a, b = RNG.standard_normal((4, 5)) * 2, RNG.standard_normal((4, 5))
    _loss_pair(getattr(F, name), getattr(torch.nn.functional, name), [a, b], dict(reduction=reduction),
               grad_idx=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices(reduction, label_smoothing, weighted):
    logits = RNG.standard_normal((6, 4)) * 2
    target = np.array([0, 3, 1, -100, 2, 3])
    kw = dict(reduction=reduction, label_smoothing=label_smoothing, ignore_index=-100)
    if weighted:
        w = np.array([1.0, 2.0, 0.5, 1.5], np.float32)
        fl = lambda x, t: F.cross_entropy(x, t, weight=fg.tensor(w), **kw)  # noqa: E731
        tl = lambda x, t: torch.nn.functional.cross_entropy(x, t, weight=torch.tensor(w), **kw)  # noqa: E731
        _loss_pair(fl, tl, [logits, target], {})
    else:
        _loss_pair(F.cross_entropy, torch.nn.functional.cross_entropy, [logits, target], kw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ignore", [None, -100, 2, "all"])
def test_cross_entropy_fused_path(reduction, dtype, ignore):
    # no weights or smoothing: the one-node path (with or without ignored
    # targets); first and second derivatives and the forward-mode derivative
    # all against torch
    logits = (RNG.standard_normal((7, 5)) * 3).astype(dtype)
    target = RNG.integers(0, 5, 7)
    kw = dict(reduction=reduction)
    if ignore == "all":
        target[:] = 3
        kw["ignore_index"] = 3
    elif ignore is not None:
        target[[1, 4]] = ignore
        kw["ignore_index"] = ignore
    _loss_pair(F.cross_entropy, torch.nn.functional.cross_entropy, [logits, target], kw)
    if ignore == "all":
        return  # nan for the mean, zeros otherwise: the values above are all there is
    x, xt = fgt(logits, True), tht(logits, True)
    (gx,) = fg.autograd.grad(F.cross_entropy(x, fg.tensor(target), **kw).sum(), x, create_graph=True)
    (gt,) = torch.autograd.grad(torch.nn.functional.cross_entropy(xt, torch.tensor(target), **kw).sum(),
                                xt, create_graph=True)
    assert gx.grad_fn is not None
    w = RNG.standard_normal((7, 5)).astype(dtype)
    (hx,) = fg.autograd.grad((gx * fgt(w)).sum(), x)
    (ht,) = torch.autograd.grad((gt * tht(w)).sum(), xt)
    close(hx, ht, 1e-4, 1e-5)
    v = RNG.standard_normal((7, 5)).astype(dtype)
    _, jf = fg.jvp(lambda a: F.cross_entropy(a, fg.tensor(target), **kw), (fgt(logits),), (fgt(v),))
    _, jt = torch.func.jvp(lambda a: torch.nn.functional.cross_entropy(a, torch.tensor(target), **kw),
                           (tht(logits),), (tht(v),))
    close(jf, jt, 1e-4, 1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_probabilities(reduction, label_smoothing):
    logits = RNG.standard_normal((5, 3))
    p = RNG.random((5, 3))
    p /= p.sum(1, keepdims=True)
    _loss_pair(F.cross_entropy, torch.nn.functional.cross_entropy, [logits, p],
               dict(reduction=reduction, label_smoothing=label_smoothing), grad_idx=(0, 1))


def test_cross_entropy_spatial_targets():
    logits = RNG.standard_normal((2, 3, 4, 5))
    target = RNG.integers(0, 3, (2, 4, 5))
    _loss_pair(F.cross_entropy, torch.nn.functional.cross_entropy, [logits, target], {})


def test_cross_entropy_bad_inputs():
    x = fg.randn(4, 3)
    with pytest.raises(TypeError, match="int64"):
        F.cross_entropy(x, fg.tensor([0, 1, 2, 1], dtype=fg.int32))
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(x, fg.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match="class index"):
        F.cross_entropy(x, fg.tensor([0, 1, 2, 7]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, fg.tensor([0, 1, 2, 1]), reduction="avg")
    with pytest.raises(ValueError, match="must be the same"):
        F.mse_loss(fg.randn(3), fg.randn(4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction):
    logp = np.log(np.random.default_rng(0).dirichlet(np.ones(4), size=5))
    _loss_pair(F.nll_loss, torch.nn.functional.nll_loss, [logp, np.array([0, 1, 2, 3, 1])],
               dict(reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction):
    p = RNG.random((4, 3)) * 0.98 + 0.01
    t = (RNG.random((4, 3)) > 0.5).astype(np.float32)
    _loss_pair(F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, [p, t], dict(reduction=reduction))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(fg.tensor([1.5]), fg.tensor([1.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction):
    x = RNG.standard_normal((4, 3)) * 30  # large logits: must stay finite
    t = RNG.random((4, 3))
    pw = np.array([0.5, 1.0, 2.0], np.float32)
    _loss_pair(F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits, [x, t],
               dict(reduction=reduction), grad_idx=(0, 1))
    lf = F.binary_cross_entropy_with_logits(fgt(x), fgt(t), pos_weight=fg.tensor(pw), reduction=reduction)
    lt = torch.nn.functional.binary_cross_entropy_with_logits(tht(x), tht(t), pos_weight=torch.tensor(pw),
                                                               reduction=reduction)
    close(lf, lt, 1e-5, 1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    inp = np.log(np.random.default_rng(1).dirichlet(np.ones(4), size=3))
    tgt = np.random.default_rng(2).dirichlet(np.ones(4), size=3)
    tgt[0, 1] = 0.0
    if log_target:
        tgt = np.log(tgt + 1e-3)
    _loss_pair(F.kl_div, torch.nn.functional.kl_div, [inp, tgt], dict(reduction=reduction, log_target=log_target))


def test_cosine_similarity():
    a, b = RNG.standard_normal((4, 6)), RNG.standard_normal((4, 6))
    _loss_pair(F.cosine_similarity, torch.nn.functional.cosine_similarity, [a, b], dict(dim=1), grad_idx=(0, 1))


def test_loss_modules():
    x, t = RNG.standard_normal((4, 3)), np.array([0, 2, 1, 1])
    close(nn.CrossEntropyLoss(label_smoothing=0.1)(fgt(x), fg.tensor(t)),
          torch.nn.CrossEntropyLoss(label_smoothing=0.1)(tht(x), torch.tensor(t)))
    close(nn.MSELoss(reduction="sum")(fgt(x), fgt(x * 2)), torch.nn.MSELoss(reduction="sum")(tht(x), tht(x * 2)))


def test_scaled_dot_product_attention():
    q, k, v = (RNG.standard_normal((2, 3, 5, 4)) for _ in range(3))
    for causal in (False, True):
        qf, kf, vf = fgt(q, True), fgt(k, True), fgt(v, True)
        qt, kt, vt = tht(q, True), tht(k, True), tht(v, True)
        of = F.scaled_dot_product_attention(qf, kf, vf, is_causal=causal)
        ot = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
        close(of, ot, 1e-5, 1e-5)
        of.sum().backward()
        ot.sum().backward()
        close(qf.grad, qt.grad, 1e-4, 1e-5)
        close(vf.grad, vt.grad, 1e-4, 1e-5)


# -- Module bookkeeping -----------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self, lib):
        super().__init__()
        self.fc1 = lib.Linear(4, 8)
        self.bn = lib.BatchNorm1d(8)
        self.blocks = lib.ModuleList([lib.Linear(8, 8), lib.Linear(8, 8)])
        self.head = lib.Sequential(lib.ReLU(), lib.Linear(8, 3))

    def forward(self, x):
        x = self.bn(self.fc1(x))
        for b in self.blocks:
            x = b(x).relu()
        return self.head(x)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        lib = torch.nn
        self.fc1 = lib.Linear(4, 8)
        self.bn = lib.BatchNorm1d(8)
        self.blocks = lib.ModuleList([lib.Linear(8, 8), lib.Linear(8, 8)])
        self.head = lib.Sequential(lib.ReLU(), lib.Linear(8, 3))

    def forward(self, x):
        x = self.bn(self.fc1(x))
        for b in self.blocks:
            x = b(x).relu()
        return self.head(x)


def test_state_dict_keys_and_forward_match_torch():
    fnet, tnet = Net(nn), TorchNet()
    assert list(fnet.state_dict().keys()) == list(tnet.state_dict().keys())
    assert [n for n, _ in fnet.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    copy_params(fnet, tnet)
    x = RNG.standard_normal((5, 4))
    close(fnet(fgt(x)), tnet(tht(x)), 1e-4, 1e-5)
    fnet.eval()
    tnet.eval()
    close(fnet(fgt(x)), tnet(tht(x)), 1e-4, 1e-5)


def test_load_state_dict_errors():
    net = Net(nn)
    sd = net.state_dict()
    del sd["fc1.weight"]
    sd["extra"] = fg.zeros(1)
    with pytest.raises(RuntimeError, match='Missing key.*"fc1.weight"'):
        net.load_state_dict(sd)
    with pytest.raises(RuntimeError, match='Unexpected key.*"extra"'):
        net.load_state_dict(sd)
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc1.weight"] and res.unexpected_keys == ["extra"]
    bad = net.state_dict()
    bad["fc1.bias"] = fg.zeros(9)
    with pytest.raises(RuntimeError, match="size mismatch for fc1.bias"):
        net.load_state_dict(bad)


def test_module_api():
    net = Net(nn)
    assert len(list(net.parameters())) == 2 + 2 + 4 + 2
    assert [n for n, _ in net.named_children()] == ["fc1", "bn", "blocks", "head"]
    assert len(list(net.modules())) == 1 + 1 + 1 + 1 + 2 + 1 + 2
    assert [n for n, _ in net.named_buffers()] == ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    out = net(fg.randn(3, 4)).sum()
    out.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net"
    net.double()
    assert all(p.dtype is fg.float64 for p in net.parameters())
    assert "Linear(in_features=4, out_features=8, bias=True)" in repr(net)
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, shared)
    assert len(list(seq.parameters())) == 2  # shared parameters are listed once
    with pytest.raises(TypeError):
        net.fc1 = "not a module"  # noqa


def test_register_buffer_and_parameter():
    m = nn.Module()
    m.register_buffer("steps", fg.zeros(()))
    m.register_buffer("tmp", fg.zeros(2), persistent=False)
    m.w = nn.Parameter(fg.ones(3))
    assert list(m.state_dict()) == ["w", "steps"]
    with pytest.raises(TypeError):
        m.register_parameter("bad", fg.ones(2))


# -- init and utils ---------------------------------------------------------------------------------


def test_init_functions():
    fg.manual_seed(0)
    w = fg.empty(200, 300)
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / 500)
    assert w.abs().max().item() <= a and abs(w.numpy().std() - a / math.sqrt(3)) < 0.02 * a + 1e-3
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 300)) < 0.05 * math.sqrt(2 / 300)
    nn.init.orthogonal_(w)
    q = w.numpy().astype(np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(200), atol=1e-4)
    nn.init.constant_(w, 0.5)
    assert np.all(w.numpy() == 0.5)
    nn.init.zeros_(w)
    assert np.all(w.numpy() == 0)
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)


def test_clip_grad_norm_matches_torch():
    gs = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
    fps = [fg.zeros(g.shape, requires_grad=True) for g in gs]
    tps = [torch.zeros(g.shape, requires_grad=True) for g in gs]
    for p, g in zip(fps, gs):
        p.grad = fgt(g)
    for p, g in zip(tps, gs):
        p.grad = tht(g)
    for norm_type in (2.0, 1.0, float("inf")):
        nf = nn.utils.clip_grad_norm_(fps, 0.5, norm_type)
        nt = torch.nn.utils.clip_grad_norm_(tps, 0.5, norm_type)
        close(nf, nt, 1e-5, 1e-6)
        for a, b in zip(fps, tps):
            close(a.grad, b.grad, 1e-5, 1e-6)
    nn.utils.clip_grad_value_(fps, 0.01)
    torch.nn.utils.clip_grad_value_(tps, 0.01)
    for a, b in zip(fps, tps):
        close(a.grad, b.grad)


def test_parameters_vector_round_trip():
    m = nn.Linear(3, 2)
    v = nn.utils.parameters_to_vector(m.parameters())
    assert v.shape == (8,)
    nn.utils.vector_to_parameters(v * 0 + 1, m.parameters())
    assert np.all(m.weight.detach().numpy() == 1) and np.all(m.bias.detach().numpy() == 1)


def test_gradient_accumulation_equals_full_batch():
    fg.manual_seed(1)
    m = nn.Linear(3, 2)
    X, y = fg.randn(8, 3), fg.randn(8, 2)
    F.mse_loss(m(X), y, reduction="sum").backward()
    full = [p.grad.numpy().copy() for p in m.parameters()]
    m.zero_grad()
    for i in range(0, 8, 2):  # four micro-batches, backward each, no step in between
        F.mse_loss(m(X[i:i + 2]), y[i:i + 2], reduction="sum").backward()
    for p, g in zip(m.parameters(), full):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-5, atol=1e-6)


def test_loss_weights_are_buffers_like_torch():
    # Class weights are registered buffers in torch: module.to(device) moves them and the state_dict holds them.
    for make in (lambda m, w: m.CrossEntropyLoss(weight=w), lambda m, w: m.NLLLoss(weight=w),
                 lambda m, w: m.BCELoss(weight=w), lambda m, w: m.BCEWithLogitsLoss(weight=w, pos_weight=w * 2)):
        w = np.arange(1.0, 4.0, dtype=np.float32)
        ours, theirs = make(fg.nn, fg.tensor(w)), make(torch.nn, torch.tensor(w))
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
        for k, v in theirs.state_dict().items():
            np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())
        assert sorted(n for n, _ in ours.named_buffers()) == sorted(n for n, _ in theirs.named_buffers())
    assert fg.nn.CrossEntropyLoss().state_dict() == {} and fg.nn.CrossEntropyLoss().weight is None
