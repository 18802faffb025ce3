"""The vision part of the model zoo: the digits CNN, residual blocks (identity
and projection shortcuts, batch norm) against the same block in PyTorch, and
short `fastgrad train cnn / resnet` runs that must learn."""
import json

import numpy as np
import pytest
import torch

import fastgrad as fg
from fastgrad import cli
from fastgrad.models import BasicBlock, DigitsCNN, PlainNet, ResNet


def torch_block(block):
    """The same BasicBlock in PyTorch, with block's weights."""
    tn = torch.nn

    class TBlock(tn.Module):
        def __init__(self, cin, cout, stride, residual, projection):
            super().__init__()
            self.conv1 = tn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tn.BatchNorm2d(cout)
            self.conv2 = tn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tn.BatchNorm2d(cout)
            self.residual = residual
            self.shortcut = (tn.Sequential(tn.Conv2d(cin, cout, 1, stride, bias=False), tn.BatchNorm2d(cout))
                             if projection else None)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.residual:
                out = out + (self.shortcut(x) if self.shortcut is not None else x)
            return torch.relu(out)

    t = TBlock(block.conv1.in_channels, block.conv1.out_channels, block.conv1.stride[0], block.residual,
               block.has_projection).double()
    t.load_state_dict({k: torch.from_numpy(v.numpy().astype(np.float64)) for k, v in block.state_dict().items()})
    return t


@pytest.mark.parametrize("cin,cout,stride,residual", [(6, 6, 1, True), (6, 10, 2, True), (6, 10, 1, True),
                                                      (6, 10, 2, False)])
def test_basic_block_matches_torch(cin, cout, stride, residual):
    fg.manual_seed(0)
    block = BasicBlock(cin, cout, stride, residual=residual).double()
    # the identity shortcut only when nothing changes; a projection when the width or size does
    assert block.has_projection == (residual and (stride != 1 or cin != cout))
    # non-trivial BN affine parameters, so they are checked too
    with fg.no_grad():
        for name, p in block.named_parameters():
            if "bn" in name or "shortcut.1" in name:
                p.copy_(fg.randn(p.shape, dtype=fg.float64) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    tb = torch_block(block)
    x = np.random.default_rng(1).normal(size=(3, cin, 7, 7))
    xf = fg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yf, yt = block(xf), tb(xt)
    side = (7 - 1) // stride + 1
    assert yf.shape == (3, cout, side, side)
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=1e-9, atol=1e-10)
    g = np.random.default_rng(2).normal(size=yf.shape)
    yf.backward(fg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    tparams = dict(tb.named_parameters())
    for name, p in block.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
    # running statistics follow torch's too (train mode)
    tbuf = dict(tb.named_buffers())
    for name, b in block.named_buffers():
        if "running" in name:
            np.testing.assert_allclose(b.numpy(), tbuf[name].numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_identity_shortcut_passes_the_input_through():
    """With the residual branch's last BN scaled to zero, an identity block is relu(x)."""
    fg.manual_seed(0)
    block = BasicBlock(4, 4)
    with fg.no_grad():
        block.bn2.weight.zero_()
    x = fg.randn((2, 4, 5, 5))
    np.testing.assert_allclose(block(x).detach().numpy(), np.maximum(x.numpy(), 0), atol=1e-6)
    plain = BasicBlock(4, 4, residual=False)
    with fg.no_grad():
        plain.bn2.weight.zero_()
    assert float(plain(x).abs().max().item()) == 0.0


def test_resnet_and_plain_net_shapes():
    fg.manual_seed(0)
    net = ResNet(blocks=(2, 1, 1), widths=(8, 12, 16))
    plain = PlainNet(blocks=(2, 1, 1), widths=(8, 12, 16))
    assert net.depth == plain.depth == 2 * 4 + 2
    x = fg.randn((5, 1, 8, 8))
    assert net(x).shape == (5, 10) and plain(x).shape == (5, 10)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert [b.has_projection for b in blocks] == [False, False, True, True]
    assert not any(m.has_projection for m in plain.modules() if isinstance(m, BasicBlock))
    n_net = sum(p.numel() for p in net.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    # the only extra parameters are the two projections (1x1 conv + BN)
    assert n_net - n_plain == (8 * 12 + 2 * 12) + (12 * 16 + 2 * 16)
    # any image size works: global average pooling before the classifier
    assert net(fg.randn((2, 1, 12, 12))).shape == (2, 10)
    with pytest.raises(ValueError, match="blocks and widths"):
        ResNet(blocks=(1, 1), widths=(8, 16, 32))
    with pytest.raises(ValueError, match="at least one block"):
        ResNet(blocks=(1, 0, 1))


def test_digits_cnn_shapes():
    fg.manual_seed(0)
    net = DigitsCNN(channels=(4, 6), hidden=16)
    assert net(fg.randn((3, 1, 8, 8))).shape == (3, 10)
    assert DigitsCNN(in_channels=3, num_classes=5, image_size=12)(fg.randn((2, 3, 12, 12))).shape == (2, 5)
    with pytest.raises(ValueError, match="channels"):
        DigitsCNN(channels=(4,))
    with pytest.raises(ValueError, match="multiple of 4"):
        DigitsCNN(image_size=10)


def run_cli(name, tmp_path, *options):
    assert cli.main(["train", name, "--out", str(tmp_path), *options]) == 0
    with open(tmp_path / f"{name}_summary.json") as f:
        return json.load(f)


def test_cnn_learns_digits(tmp_path):
    s = run_cli("cnn", tmp_path, "--seed", "0", "--epochs", "5", "--channels", "16", "32", "--hidden", "64", "--lr",
                "5e-3")
    # chance is 10%
    assert s["test_accuracy"] >= 0.90, s
    assert s["augment"] and s["test_digits"] == 297
    assert (tmp_path / "cnn_curves.csv").exists()


def test_resnet_learns_digits(tmp_path):
    s = run_cli("resnet", tmp_path, "--seed", "0", "--blocks", "1", "--widths", "8", "16", "16", "--epochs", "3",
                "--models", "resnet")
    assert s["resnet"]["test_accuracy"] >= 0.85, s
    assert s["resnet"]["depth"] == 8 and "plain" not in s
    # the loss fell far below chance's log(10) = 2.3
    assert s["resnet"]["final_train_loss"] < 0.6, s
    assert (tmp_path / "resnet_step_loss.csv").exists()


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_train_help_lists_the_options(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", name, "--help"])
    assert e.value.code == 0
    assert "--seed" in capsys.readouterr().out
