"""Every layer, loss, optimizer and autograd feature on every device.

The CUDA cases build the model on the CPU with a fixed seed, copy it to the
GPU, feed both the same inputs and compare outputs, input gradients,
parameter gradients and buffers with the CPU's (tolerances by dtype). A
layer without a CUDA path raises there, and its test fails: nothing is
skipped or caught.

Without a GPU the CUDA cases skip; the "cpu" cases run the same harness
with a float32 model on the CPU against a float64 copy of it, so the
harness itself (copying, seeding, gradient collection, comparison) is
exercised and can fail (test_harness_catches_* check that it does).
"""
import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn as nn
import fastgrad.nn.functional as F

HAS_GPU = fg.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_GPU, reason="no CUDA device")

# (device under test, its dtype): the reference is the CPU in float64 for
# the "cpu" case and the CPU in the same dtype for CUDA.
TARGETS = [pytest.param(("cpu", fg.float32), id="cpu-float32"),
           pytest.param(("cuda", fg.float32), id="cuda-float32", marks=needs_cuda),
           pytest.param(("cuda", fg.float64), id="cuda-float64", marks=needs_cuda)]
TOL = {fg.float32: 2e-4, fg.float64: 1e-10}


def reference(device, dtype):
    """(device, dtype) of the reference run for a run on (device, dtype)."""
    return ("cpu", fg.float64) if device == "cpu" else ("cpu", dtype)


def arr(t):
    return t.detach().cpu().numpy()


def assert_close(got, ref, dtype, what, factor=1.0):
    """got (any device) equals ref within the dtype's tolerance, relative to
    the element and to the array's scale (sums of many terms)."""
    g, r = arr(got), arr(ref)
    assert g.shape == r.shape, f"{what}: shape {g.shape} != reference {r.shape}"
    if not np.issubdtype(r.dtype, np.floating):
        np.testing.assert_array_equal(g, r, err_msg=what)
        return
    tol = TOL[dtype] * factor
    # floor: a gradient that is zero up to rounding (a bias before a norm) compares absolutely
    scale = max(float(np.abs(r).max()) if r.size else 0.0, 1e-2)
    np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=tol, atol=tol * scale,
                               err_msg=what, equal_nan=True)


# ---- the layer registry ----------------------------------------------------------------------------


class In:
    """An input spec: kind "f" normal floats, "fT" the same through a
    transposed view (gradient taken on the contiguous base), "p" floats in
    (0.05, 0.95), "i" int64 in [0, hi), "b" a bool mask (True with
    probability hi); grad: whether a float input is differentiated."""

    def __init__(self, kind, shape, hi=None, grad=True):
        self.kind, self.shape, self.hi, self.grad = kind, tuple(shape), hi, grad

    def array(self, r):
        if self.kind in ("f", "fT"):
            return r.standard_normal(self.shape[::-1] if self.kind == "fT" else self.shape)
        if self.kind == "p":
            return r.uniform(0.05, 0.95, self.shape)
        if self.kind == "i":
            return r.integers(0, self.hi, self.shape)
        if self.kind == "b":
            return r.random(self.shape) < self.hi
        raise ValueError(self.kind)

    def tensor(self, a, device, dtype):
        """(leaf, what the module gets)."""
        if self.kind in ("i", "b"):
            t = fg.tensor(a, device=device)
            return None, t
        leaf = fg.tensor(a, dtype=dtype, device=device).requires_grad_(self.grad)
        view = leaf.permute(*reversed(range(leaf.ndim))) if self.kind == "fT" else leaf
        return (leaf if self.grad else None), view


class Case:
    """make(): the module (built on the CPU under a fixed seed); inputs: In
    specs; call(m, xs): the forward (default m(*xs)); mode "train", "eval"
    (after one training forward, so running statistics are not the
    initial ones) or "train2" (two training forwards: state carried over);
    factor scales the tolerance (long reductions)."""

    def __init__(self, name, make, inputs, call=None, mode="train", factor=1.0, random=False):
        self.name, self.make, self.inputs, self.call, self.mode, self.factor = name, make, inputs, call, mode, factor
        # random: draws numbers (dropout) in the forward. Their values depend on
        # the dtype, so on the CPU the reference is the same dtype reseeded
        # (checks the seeding), on CUDA the CPU run as always.
        self.random = random

    def __repr__(self):
        return self.name


def causal(n):
    return fg.triu(fg.ones(n, n, dtype=fg.bool), 1)


LAYERS = [
    Case("Linear", lambda: nn.Linear(13, 7), [In("f", (5, 13))]),
    Case("Linear-3d-nobias-transposed", lambda: nn.Linear(13, 7, bias=False), [In("fT", (2, 3, 13))]),
    Case("Conv1d", lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), [In("f", (2, 3, 11))]),
    Case("Conv1d-groups-dilation", lambda: nn.Conv1d(4, 6, 3, dilation=2, groups=2), [In("f", (2, 4, 13))]),
    Case("Conv2d", lambda: nn.Conv2d(3, 5, 3, padding=1), [In("f", (2, 3, 9, 7))]),
    Case("Conv2d-stride-groups-nobias", lambda: nn.Conv2d(4, 4, (3, 2), stride=(2, 1), groups=2, bias=False),
         [In("fT", (2, 4, 8, 9))]),
    Case("ConvTranspose1d", lambda: nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1),
         [In("f", (2, 3, 7))]),
    Case("ConvTranspose2d", lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), [In("f", (2, 3, 5, 6))]),
    Case("MaxPool1d", lambda: nn.MaxPool1d(3, stride=2), [In("f", (2, 3, 11))]),
    Case("MaxPool1d-indices", lambda: nn.MaxPool1d(2, return_indices=True), [In("f", (2, 3, 10))]),
    Case("MaxPool2d", lambda: nn.MaxPool2d(2), [In("f", (2, 3, 8, 9))]),
    Case("MaxPool2d-pad-indices", lambda: nn.MaxPool2d(3, stride=2, padding=1, return_indices=True),
         [In("f", (2, 3, 7, 8))]),
    Case("AvgPool1d", lambda: nn.AvgPool1d(3, 2), [In("f", (2, 3, 11))]),
    Case("AvgPool2d", lambda: nn.AvgPool2d(2), [In("f", (2, 3, 8, 9))]),
    Case("AvgPool2d-pad-exclude", lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
         [In("f", (2, 3, 7, 8))]),
    Case("AdaptiveAvgPool1d", lambda: nn.AdaptiveAvgPool1d(4), [In("f", (2, 3, 11))]),
    Case("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((3, 2)), [In("f", (2, 3, 9, 7))]),
    Case("AdaptiveMaxPool1d", lambda: nn.AdaptiveMaxPool1d(4), [In("f", (2, 3, 11))]),
    Case("AdaptiveMaxPool2d", lambda: nn.AdaptiveMaxPool2d((3, 2)), [In("f", (2, 3, 9, 7))]),
    Case("Upsample-nearest", lambda: nn.Upsample(scale_factor=2, mode="nearest"), [In("f", (2, 3, 4, 5))]),
    Case("Upsample-bilinear", lambda: nn.Upsample(size=(7, 9), mode="bilinear", align_corners=False),
         [In("f", (2, 3, 4, 5))]),
    Case("UpsamplingNearest2d", lambda: nn.UpsamplingNearest2d(scale_factor=2), [In("f", (1, 2, 3, 4))]),
    Case("UpsamplingBilinear2d", lambda: nn.UpsamplingBilinear2d(scale_factor=2), [In("f", (1, 2, 3, 4))]),
    Case("PixelShuffle", lambda: nn.PixelShuffle(2), [In("f", (2, 8, 3, 4))]),
    Case("PixelUnshuffle", lambda: nn.PixelUnshuffle(2), [In("f", (2, 2, 6, 4))]),
    Case("BatchNorm1d-2d-input", lambda: nn.BatchNorm1d(5), [In("f", (6, 5))], mode="train2"),
    Case("BatchNorm1d-3d-input", lambda: nn.BatchNorm1d(5), [In("f", (4, 5, 7))]),
    Case("BatchNorm1d-eval", lambda: nn.BatchNorm1d(5), [In("f", (6, 5))], mode="eval"),
    Case("BatchNorm2d", lambda: nn.BatchNorm2d(3), [In("f", (4, 3, 5, 6))], mode="train2"),
    Case("BatchNorm2d-eval", lambda: nn.BatchNorm2d(3), [In("f", (4, 3, 5, 6))], mode="eval"),
    Case("LayerNorm", lambda: nn.LayerNorm(7), [In("f", (3, 5, 7))]),
    Case("LayerNorm-2d-noaffine", lambda: nn.LayerNorm((5, 7), elementwise_affine=False), [In("fT", (3, 5, 7))]),
    Case("GroupNorm", lambda: nn.GroupNorm(2, 6), [In("f", (3, 6, 5))]),
    Case("GroupNorm-4d", lambda: nn.GroupNorm(3, 6), [In("f", (2, 6, 4, 3))]),
    # Dropout in training: the same mask on every device (one Philox stream).
    Case("Dropout-train", lambda: nn.Dropout(0.3), [In("f", (7, 33))], random=True),
    Case("Dropout-eval", lambda: nn.Dropout(0.3), [In("f", (7, 33))], mode="eval"),
    Case("Embedding", lambda: nn.Embedding(11, 6), [In("i", (4, 5), 11)]),
    Case("Embedding-padding", lambda: nn.Embedding(11, 6, padding_idx=0), [In("i", (3, 7), 11)]),
    Case("RNN-2layers", lambda: nn.RNN(5, 7, num_layers=2), [In("f", (6, 3, 5))]),
    Case("RNN-relu-hx", lambda: nn.RNN(5, 7, nonlinearity="relu", batch_first=True),
         [In("f", (3, 6, 5)), In("f", (1, 3, 7))]),
    Case("LSTM-bidirectional", lambda: nn.LSTM(5, 7, batch_first=True, bidirectional=True), [In("f", (3, 6, 5))]),
    Case("LSTM-hx", lambda: nn.LSTM(5, 7, num_layers=2), [In("f", (6, 3, 5)), In("f", (2, 3, 7)), In("f", (2, 3, 7))],
         call=lambda m, xs: m(xs[0], (xs[1], xs[2]))),
    Case("GRU", lambda: nn.GRU(5, 7, num_layers=2, bidirectional=True), [In("f", (6, 3, 5))]),
    Case("RNNCell", lambda: nn.RNNCell(5, 7), [In("f", (3, 5)), In("f", (3, 7))]),
    Case("LSTMCell", lambda: nn.LSTMCell(5, 7), [In("f", (3, 5)), In("f", (3, 7)), In("f", (3, 7))],
         call=lambda m, xs: m(xs[0], (xs[1], xs[2]))),
    Case("GRUCell", lambda: nn.GRUCell(5, 7), [In("f", (3, 5)), In("f", (3, 7))]),
    Case("MultiheadAttention", lambda: nn.MultiheadAttention(8, 2),
         [In("f", (5, 3, 8)), In("f", (6, 3, 8)), In("f", (6, 3, 8))]),
    Case("MultiheadAttention-masks-batch_first", lambda: nn.MultiheadAttention(8, 2, batch_first=True),
         [In("f", (3, 5, 8)), In("b", (3, 5), 0.3)],
         call=lambda m, xs: m(xs[0], xs[0], xs[0], attn_mask=causal(5).to(xs[0].device),
                              key_padding_mask=fg.cat([fg.zeros(3, 1, dtype=fg.bool, device=xs[0].device),
                                                       xs[1][:, 1:]], 1))),
    Case("MultiheadAttention-kdim-vdim", lambda: nn.MultiheadAttention(8, 4, kdim=5, vdim=3),
         [In("f", (4, 2, 8)), In("f", (6, 2, 5)), In("f", (6, 2, 3))],
         call=lambda m, xs: m(*xs, need_weights=False)),
    Case("TransformerEncoderLayer", lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0),
         [In("f", (5, 3, 8))], factor=3),
    Case("TransformerEncoderLayer-norm_first-gelu-dropout",
         lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.2, activation="gelu",
                                            norm_first=True, batch_first=True),
         [In("f", (3, 5, 8))], call=lambda m, xs: m(xs[0], src_mask=causal(5).to(xs[0].device)), factor=3,
         random=True),
    Case("TransformerDecoderLayer", lambda: nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0),
         [In("f", (4, 3, 8)), In("f", (5, 3, 8))],
         call=lambda m, xs: m(xs[0], xs[1], tgt_mask=causal(4).to(xs[0].device)), factor=3),
    Case("TransformerEncoder", lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0), 2, norm=nn.LayerNorm(8)),
        [In("f", (5, 3, 8))], factor=5),
    Case("TransformerDecoder", lambda: nn.TransformerDecoder(
        nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0), 2),
        [In("f", (4, 3, 8)), In("f", (5, 3, 8))], factor=5),
    Case("Transformer", lambda: nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                               dim_feedforward=16, dropout=0.0),
         [In("f", (5, 3, 8)), In("f", (4, 3, 8))], factor=5),
    Case("SinusoidalPositionalEncoding", lambda: nn.SinusoidalPositionalEncoding(8, max_len=20),
         [In("f", (3, 6, 8))]),
    Case("ReLU", lambda: nn.ReLU(), [In("f", (4, 9))]),
    Case("Sigmoid", lambda: nn.Sigmoid(), [In("f", (4, 9))]),
    Case("Tanh", lambda: nn.Tanh(), [In("f", (4, 9))]),
    Case("GELU", lambda: nn.GELU(), [In("f", (4, 9))]),
    Case("GELU-tanh", lambda: nn.GELU("tanh"), [In("fT", (4, 9))]),
    Case("SiLU", lambda: nn.SiLU(), [In("f", (4, 9))]),
    Case("LeakyReLU", lambda: nn.LeakyReLU(0.1), [In("f", (4, 9))]),
    Case("ELU", lambda: nn.ELU(0.7), [In("f", (4, 9))]),
    Case("Softplus", lambda: nn.Softplus(beta=2.0, threshold=3.0), [In("f", (4, 9))]),
    Case("Softmax", lambda: nn.Softmax(dim=1), [In("f", (4, 9, 3))]),
    Case("LogSoftmax", lambda: nn.LogSoftmax(dim=-1), [In("fT", (4, 9))]),
    Case("Identity", lambda: nn.Identity(), [In("f", (4, 9))]),
    Case("Flatten", lambda: nn.Flatten(), [In("f", (2, 3, 4, 5))]),
    Case("Unflatten", lambda: nn.Unflatten(1, (2, 3)), [In("f", (4, 6, 5))]),
    Case("Sequential-MLP", lambda: nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Dropout(0.2), nn.Linear(10, 3)),
         [In("f", (8, 6))], random=True),
    Case("Sequential-CNN", lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                                 nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 4, 5)),
         [In("f", (3, 2, 6, 8))]),
    Case("ModuleList-ModuleDict-ParameterList", lambda: _Containers(), [In("f", (3, 4))]),
    Case("CosineSimilarity", lambda: nn.CosineSimilarity(dim=1), [In("f", (5, 7)), In("f", (5, 7))]),
]


class _Containers(nn.Module):
    """ModuleList, ModuleDict and ParameterList, which have no forward of their own."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Tanh()])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 2)})
        self.scales = nn.ParameterList([nn.Parameter(fg.randn(2)), nn.Parameter(fg.randn(2))])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.heads["a"](x) * self.scales[0] + self.heads["b"](x) * self.scales[1]


def _weights(n):
    # Class weights / pos_weight are buffers (as in torch): .to(device) and
    # .to(dtype) move them with the loss module.
    return fg.tensor(np.linspace(0.5, 1.5, n), dtype=fg.float32)


LOSSES = [
    Case("MSELoss", lambda: nn.MSELoss(), [In("f", (4, 5)), In("f", (4, 5))]),
    Case("MSELoss-sum", lambda: nn.MSELoss(reduction="sum"), [In("fT", (4, 5)), In("f", (4, 5), grad=False)]),
    Case("L1Loss", lambda: nn.L1Loss(), [In("f", (4, 5)), In("f", (4, 5), grad=False)]),
    Case("L1Loss-none", lambda: nn.L1Loss(reduction="none"), [In("f", (4, 5)), In("f", (4, 5))]),
    Case("SmoothL1Loss", lambda: nn.SmoothL1Loss(beta=0.5), [In("f", (4, 5)), In("f", (4, 5))]),
    Case("HuberLoss", lambda: nn.HuberLoss(delta=0.7, reduction="sum"), [In("f", (4, 5)), In("f", (4, 5))]),
    Case("CrossEntropyLoss", lambda: nn.CrossEntropyLoss(), [In("f", (6, 5)), In("i", (6,), 5)]),
    Case("CrossEntropyLoss-weight-smoothing-ignore",
         lambda: nn.CrossEntropyLoss(weight=_weights(5), label_smoothing=0.1, ignore_index=2),
         [In("f", (9, 5)), In("i", (9,), 5)]),
    Case("CrossEntropyLoss-spatial-none", lambda: nn.CrossEntropyLoss(reduction="none"),
         [In("f", (2, 4, 3, 5)), In("i", (2, 3, 5), 4)]),
    Case("CrossEntropyLoss-probabilities", lambda: nn.CrossEntropyLoss(), [In("f", (6, 5)), In("p", (6, 5))]),
    Case("NLLLoss", lambda: nn.NLLLoss(), [In("f", (6, 5)), In("i", (6,), 5)]),
    Case("NLLLoss-weight-sum", lambda: nn.NLLLoss(weight=_weights(5), reduction="sum"),
         [In("f", (6, 5)), In("i", (6,), 5)]),
    Case("BCELoss", lambda: nn.BCELoss(), [In("p", (4, 5)), In("p", (4, 5), grad=False)]),
    Case("BCELoss-weight", lambda: nn.BCELoss(weight=_weights(5)), [In("p", (4, 5)), In("p", (4, 5))]),
    Case("BCEWithLogitsLoss", lambda: nn.BCEWithLogitsLoss(), [In("f", (4, 5)), In("p", (4, 5))]),
    Case("BCEWithLogitsLoss-pos_weight", lambda: nn.BCEWithLogitsLoss(pos_weight=_weights(5), reduction="sum"),
         [In("f", (4, 5)), In("p", (4, 5), grad=False)]),
    Case("KLDivLoss-batchmean", lambda: nn.KLDivLoss(reduction="batchmean"), [In("f", (4, 5)), In("p", (4, 5))]),
    Case("KLDivLoss-log_target", lambda: nn.KLDivLoss(reduction="sum", log_target=True),
         [In("f", (4, 5)), In("f", (4, 5))]),
]

# Modules with no forward of their own, or abstract bases: covered through
# the cases above (_Containers, the RNN classes).
NOT_LAYERS = {"Module", "ModuleList", "ModuleDict", "ParameterList", "RNNBase", "RNNCellBase"}


def collect(out):
    """The tensors of a (nested) output, in order."""
    if isinstance(out, fg.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in collect(o)]
    if out is None:
        return []
    raise TypeError(f"unexpected module output {type(out).__name__}")


def run_case(case, device, dtype, build_seed=0):
    """Builds the module on the CPU, moves it to (device, dtype), runs the
    forward and a backward of a fixed random cotangent. Returns the named
    results: outputs, input gradients, parameter gradients, buffers."""
    fg.manual_seed(build_seed)
    m = case.make()
    for mod in m.modules():  # a tensor that is no parameter or buffer stays behind on .to(device)
        stray = [k for k, v in vars(mod).items() if isinstance(v, fg.Tensor)]
        assert not stray, f"{case.name}: {type(mod).__name__}.{stray} are neither parameters nor buffers"
    m = m.to(dtype).to(device)
    r = np.random.default_rng(1234)
    arrays = [spec.array(r) for spec in case.inputs]
    leaves, xs = [], []
    for spec, a in zip(case.inputs, arrays):
        leaf, x = spec.tensor(a, device, dtype)
        leaves.append(leaf)
        xs.append(x)
    call = case.call or (lambda mod, args: mod(*args))
    if case.mode == "eval":
        m.train()
        with fg.no_grad():
            fg.manual_seed(99)
            call(m, xs)
        m.eval()
    elif case.mode == "train2":
        m.train()
        fg.manual_seed(98)
        call(m, xs)
    fg.manual_seed(100)  # Dropout: the same numbers on every device
    outs = collect(call(m, xs))
    res = {}
    loss = None
    for i, o in enumerate(outs):
        assert o.device == fg.device(device), f"{case.name}: output {i} is on {o.device}, not {device}"
        res[f"output {i}"] = o
        if o.requires_grad:
            cot = fg.tensor(r.standard_normal(o.shape), dtype=o.dtype, device=device)
            term = (o * cot).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    for i, leaf in enumerate(leaves):
        if leaf is not None:
            assert leaf.grad is not None, f"{case.name}: input {i} got no gradient"
            res[f"input {i} grad"] = leaf.grad
    for name, p in m.named_parameters():
        if p.grad is not None:
            assert p.grad.device == fg.device(device), f"{case.name}: {name}.grad is on {p.grad.device}"
            res[f"{name}.grad"] = p.grad
        res[name] = p
    for name, b in m.named_buffers():
        res[f"buffer {name}"] = b
    return res


def check_case(case, device, dtype):
    got = run_case(case, device, dtype)
    ref = run_case(case, *(("cpu", dtype) if case.random else reference(device, dtype)))
    assert sorted(got) == sorted(ref), f"{case.name}: results {sorted(got)} != reference {sorted(ref)}"
    for k in ref:
        if got[k].dtype.is_floating_point:
            assert got[k].dtype == dtype, f"{case.name}: {k} has dtype {got[k].dtype}, expected {dtype}"
        assert_close(got[k], ref[k], dtype, f"{case.name} on {device} ({dtype}): {k}", case.factor)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", LAYERS, ids=repr)
def test_layer(case, target):
    check_case(case, *target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", LOSSES, ids=repr)
def test_loss(case, target):
    check_case(case, *target)


def test_layer_registry_covers_every_public_module():
    covered = set()
    for case in LAYERS + LOSSES:
        fg.manual_seed(0)
        for mod in case.make().modules():
            covered.add(type(mod).__name__)
    public = {n for n in dir(nn) if isinstance(getattr(nn, n), type) and issubclass(getattr(nn, n), nn.Module)}
    missing = sorted(public - covered - NOT_LAYERS)
    assert not missing, f"layers without a device case in tests/test_devices.py: {missing}"


# ---- the harness can fail ------------------------------------------------------------------------------


def test_harness_catches_a_wrong_parameter():
    # A case whose "device" model differs by one weight from the reference must fail.
    case = next(c for c in LAYERS if c.name == "Conv2d")
    got, ref = run_case(case, "cpu", fg.float32), run_case(case, "cpu", fg.float64)
    for k in ref:
        assert_close(got[k], ref[k], fg.float32, k)
    got_bad = run_case(case, "cpu", fg.float32, build_seed=1)  # another initialisation
    with pytest.raises(AssertionError):
        for k in ref:
            assert_close(got_bad[k], ref[k], fg.float32, k)


class _StrayTensor(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = fg.ones(3)  # neither parameter nor buffer: .to(device) would leave it behind

    def forward(self, x):
        return x * self.scale


def test_harness_catches_a_stray_tensor_attribute():
    with pytest.raises(AssertionError, match="neither parameters nor buffers"):
        run_case(Case("stray", _StrayTensor, [In("f", (2, 3))]), "cpu", fg.float32)


def test_harness_catches_a_small_error_and_a_wrong_dtype_or_shape():
    ref = fg.tensor(np.linspace(-3, 3, 50))
    assert_close(ref.float(), ref, fg.float32, "rounding to float32 passes")
    with pytest.raises(AssertionError):
        assert_close((ref * (1 + 1e-3)).float(), ref, fg.float32, "0.1% off")
    with pytest.raises(AssertionError):
        assert_close(ref[:49], ref, fg.float32, "shape")
    with pytest.raises(AssertionError):
        assert_close(fg.tensor([1, 2]), fg.tensor([1, 3]), fg.float32, "ints exactly")


def test_harness_gradients_are_collected():
    case = next(c for c in LAYERS if c.name == "LSTM-hx")
    res = run_case(case, "cpu", fg.float32)
    for k in ("input 0 grad", "input 1 grad", "input 2 grad", "weight_ih_l0.grad", "weight_hh_l1.grad",
              "output 0", "output 1", "output 2"):
        assert k in res, (k, sorted(res))
    assert float(np.abs(arr(res["weight_hh_l1.grad"])).max()) > 0


def test_dropout_mask_follows_the_seed():
    # What the random cases rely on: one stream, reseeded per run.
    x = fg.ones(1000)
    fg.manual_seed(5)
    a = F.dropout(x, 0.5, True)
    fg.manual_seed(5)
    b = F.dropout(x, 0.5, True)
    fg.manual_seed(6)
    c = F.dropout(x, 0.5, True)
    np.testing.assert_array_equal(arr(a), arr(b))
    assert (arr(a) != arr(c)).any()


# ---- optimizers -------------------------------------------------------------------------------------


OPTIMIZERS = {
    "SGD": lambda p: fg.optim.SGD(p, lr=0.1),
    "SGD-momentum": lambda p: fg.optim.SGD(p, lr=0.1, momentum=0.9),
    "SGD-nesterov-wd": lambda p: fg.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "SGD-dampening-maximize": lambda p: fg.optim.SGD(p, lr=0.05, momentum=0.5, dampening=0.3, maximize=True),
    "SGD-foreach-off": lambda p: fg.optim.SGD(p, lr=0.1, momentum=0.9, foreach=False),
    "Adam": lambda p: fg.optim.Adam(p, lr=1e-2),
    "Adam-amsgrad-wd": lambda p: fg.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-2),
    "Adam-foreach-off": lambda p: fg.optim.Adam(p, lr=1e-2, foreach=False),
    "Adam-maximize": lambda p: fg.optim.Adam(p, lr=1e-2, maximize=True),
    "AdamW": lambda p: fg.optim.AdamW(p, lr=1e-2),
    "AdamW-amsgrad": lambda p: fg.optim.AdamW(p, lr=1e-2, amsgrad=True, weight_decay=0.1),
    "Adagrad": lambda p: fg.optim.Adagrad(p, lr=0.1),
    "Adagrad-decay-wd": lambda p: fg.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=1e-2,
                                                   initial_accumulator_value=0.1),
    "RMSprop": lambda p: fg.optim.RMSprop(p, lr=1e-2),
    "RMSprop-centered-momentum": lambda p: fg.optim.RMSprop(p, lr=1e-2, centered=True, momentum=0.5,
                                                            weight_decay=1e-2),
}


def _mlp():
    return nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 3))


def _optimize(name, device, dtype, steps=5):
    fg.manual_seed(0)
    m = _mlp().to(dtype).to(device)
    opt = OPTIMIZERS[name](m.parameters())
    r = np.random.default_rng(3)
    history = []
    for _ in range(steps):
        x = fg.tensor(r.standard_normal((8, 6)), dtype=dtype, device=device)
        y = fg.tensor(r.standard_normal((8, 3)), dtype=dtype, device=device)
        opt.zero_grad()
        loss = F.mse_loss(m(x), y)
        loss.backward()
        opt.step()
        history.append([loss.detach()] + [p.detach().clone() for p in m.parameters()])
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, fg.Tensor)]
    return history, state


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_match(name, device):
    dtype = fg.float32
    got, got_state = _optimize(name, device, dtype)
    ref, ref_state = _optimize(name, *reference(device, dtype))
    for step, (g, r) in enumerate(zip(got, ref)):
        for i, (a, b) in enumerate(zip(g, r)):
            assert a.device == fg.device(device)
            # Adam-like steps divide by sqrt(v): float32 rounding grows a little per step.
            assert_close(a, b, dtype, f"{name} on {device}: step {step}, {'loss' if i == 0 else f'param {i - 1}'}",
                         factor=5)
    assert len(got_state) == len(ref_state)
    for a, b in zip(got_state, ref_state):
        assert a.device == fg.device(device) or a.ndim == 0, f"{name}: optimizer state on {a.device}"
        assert_close(a, b, dtype, f"{name} on {device}: state", factor=5)


# ---- autograd on the device ---------------------------------------------------------------------------


def both(fn, device, dtype=fg.float32, factor=1.0):
    """Runs fn(device, dtype) and fn on the reference; compares the returned tensors."""
    got, ref = fn(device, dtype), fn(*reference(device, dtype))
    assert len(got) == len(ref)
    for i, (a, b) in enumerate(zip(got, ref)):
        if isinstance(a, fg.Tensor):
            assert a.device == fg.device(device), f"result {i} on {a.device}"
            assert_close(a, b, dtype, f"result {i} on {device}", factor)
        else:
            assert a == b, (i, a, b)


def _x(device, dtype, shape=(4, 5), seed=0, grad=True):
    return fg.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype, device=device,
                     requires_grad=grad)


def test_autograd_grad_of_grad(device):
    def fn(dev, dt):
        x, w = _x(dev, dt), _x(dev, dt, (5, 3), 1)
        y = (fg.tanh(x @ w) ** 2).sum()
        gx, gw = fg.autograd.grad(y, [x, w], create_graph=True)
        ggx = fg.autograd.grad((gx * gx).sum() + gw.sum(), x)[0]
        return [y, gx, gw, ggx]

    both(fn, device)


def test_autograd_functional_transforms(device):
    def f(x):
        return fg.sin(x) * x.sum(dim=-1, keepdim=True)

    def fn(dev, dt):
        x, v = _x(dev, dt, (3, 4), grad=False), _x(dev, dt, (3, 4), 1, grad=False)
        out, jv = fg.jvp(f, (x,), (v,))
        out2, vjp_fn = fg.vjp(f, x)
        (vj,) = vjp_fn(v)
        jac = fg.jacobian(lambda z: fg.tanh(z * 2).sum(dim=0), argnums=0)(x[0:2])
        hes = fg.hessian(lambda z: (z ** 3).sum())(x[0])
        gval = fg.grad(lambda z: (z * z).sum())(x)
        return [out, jv, out2, vj, jac, hes, gval]

    both(fn, device)


def test_autograd_hooks_retain_graph_accumulation(device):
    def fn(dev, dt):
        x = _x(dev, dt)
        seen = []
        h = x.register_hook(lambda g: seen.append(g.detach().clone()) or g * 3)
        y = fg.exp(x * 0.5)
        y.retain_grad()
        z = (y * y).sum()
        z.backward(retain_graph=True)
        first = x.grad.clone()
        z.backward()  # the same graph again: gradients accumulate
        h.remove()
        (x * 2).sum().backward()  # the hook is gone
        fg.manual_seed(0)
        m = nn.Linear(5, 2).to(dt).to(dev)
        outs = []
        m.register_forward_hook(lambda mod, inp, out: outs.append(out.detach()))
        m(x.detach())
        return [first, x.grad, y.grad, seen[0], seen[1], outs[0], len(seen)]

    both(fn, device)


def test_autograd_retain_graph_required(device):
    x = _x(device, fg.float32)
    z = (fg.sigmoid(x) * x).sum()
    z.backward()
    with pytest.raises(RuntimeError):
        z.backward()


def test_autograd_no_grad_detach_and_version_checks(device):
    x = _x(device, fg.float32)
    with fg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.device == fg.device(device)
    d = x.detach()
    assert not d.requires_grad
    d.add_(1.0)  # shares x's memory, as in torch
    np.testing.assert_array_equal(arr(d), arr(x))
    s = fg.sigmoid(x)  # saves its output for the backward
    s.mul_(2)
    with pytest.raises(RuntimeError, match="modified|in-place|version"):
        s.sum().backward()
    leaf = _x(device, fg.float32)
    with pytest.raises(RuntimeError):
        leaf.add_(1.0)  # a leaf that requires grad: no in-place


def test_autograd_diamond_and_broadcast(device):
    def fn(dev, dt):
        x, b = _x(dev, dt, (4, 5)), _x(dev, dt, (5,), 2)
        h = fg.tanh(x + b)  # reused non-leaf
        y = (h * h + h.exp()).mean() + (h @ h.T).sum()
        y.backward()
        return [y, x.grad, b.grad]

    both(fn, device)


# ---- small training loops ------------------------------------------------------------------------------


def _train(kind, device, dtype, steps=4):
    fg.manual_seed(0)
    if kind == "mlp":
        m = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
        opt_f = lambda p: fg.optim.SGD(p, lr=0.05, momentum=0.9)  # noqa: E731
        xshape = (12, 10)
    else:
        # no bias before the norm: its gradient is rounding noise, which Adam would amplify to +-lr steps
        m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
        opt_f = lambda p: fg.optim.Adam(p, lr=1e-2)  # noqa: E731
        xshape = (6, 1, 8, 8)
    m = m.to(dtype).to(device)
    opt = opt_f(m.parameters())
    r = np.random.default_rng(11)
    losses = []
    for _ in range(steps):
        x = fg.tensor(r.standard_normal(xshape), dtype=dtype, device=device)
        y = fg.tensor(r.integers(0, 4, xshape[0]), device=device)
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses + [p.detach() for p in m.parameters()] + [b for b in m.buffers()]


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_training_loop_matches(kind, device):
    both(lambda dev, dt: _train(kind, dev, dt), device, factor=5)
