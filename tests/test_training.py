"""End to end: the Iris experiment, trajectories equal PyTorch's, flat memory,
the `fastgrad` command and the examples."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import fastgrad as fg
import fastgrad.nn as nn
import fastgrad.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def iris_standardised():
    X, y = fg.datasets.iris()
    return (X - X.mean(dim=0)) / X.std(dim=0), y


def test_iris_adam_reaches_97_percent():
    fg.manual_seed(0)
    X, y = iris_standardised()
    model = fg.models.MLP([4, 8, 3])
    opt = fg.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(500):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    with fg.no_grad():
        acc = (model(X).argmax(dim=1) == y).float().mean().item()
    assert acc >= 0.97


@pytest.mark.parametrize("opt_name,kwargs", [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                             ("Adam", dict(lr=0.01)), ("RMSprop", dict(lr=0.01)),
                                             ("Adagrad", dict(lr=0.1)), ("AdamW", dict(lr=0.01))])
def test_iris_trajectory_equals_pytorch(opt_name, kwargs):
    """The PyTorch training loop with fg in place of torch gives the same numbers."""
    X, y = iris_standardised()
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    fm = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    fm.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    topt = getattr(torch.optim, opt_name)(tm.parameters(), **kwargs)
    fopt = getattr(fg.optim, opt_name)(fm.parameters(), **kwargs)
    tX, ty = torch.from_numpy(X.numpy()), torch.from_numpy(y.numpy())
    for step in range(100):
        topt.zero_grad()
        lt = torch.nn.functional.cross_entropy(tm(tX), ty)
        lt.backward()
        topt.step()
        fopt.zero_grad()
        lf = F.cross_entropy(fm(X), y)
        lf.backward()
        fopt.step()
        np.testing.assert_allclose(lf.item(), lt.item(), rtol=2e-4, atol=1e-6, err_msg=f"step {step}")
    for (name, p), (_, q) in zip(fm.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-3, atol=1e-5, err_msg=name)


def test_memory_stays_flat_over_1000_steps():
    fg.manual_seed(0)
    X, y = iris_standardised()
    model = fg.models.MLP([4, 16, 3])
    opt = fg.optim.Adam(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()

    for _ in range(20):
        step()
    before = fg.memory.stats()["bytes_in_use"]
    for _ in range(1000):
        step()
    after = fg.memory.stats()["bytes_in_use"]
    assert after == before


def test_no_grad_keeps_no_buffers():
    model = fg.models.MLP([4, 64, 3])
    X = fg.randn(256, 4)
    base = fg.memory.stats()["bytes_in_use"]
    with fg.no_grad():
        out = model(X)
    assert out.grad_fn is None
    # only the output itself is alive
    assert fg.memory.stats()["bytes_in_use"] - base == out.numel() * 4


def test_cli_train_iris_writes_curves(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "fastgrad", "train", "iris", "--steps", "30", "--out", str(out),
                        "--optimizers", "sgd", "adam", "--lrs", "0.01", "0.1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "final loss" in r.stdout and "adam" in r.stdout
    with open(out / "iris_loss_per_optimizer.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "sgd (lr=0.1)", "adam (lr=0.01)"]
    assert len(rows) == 31
    losses = [float(r[2]) for r in rows[1:]]
    assert losses[-1] < losses[0]
    assert (out / "iris_loss_per_lr.csv").exists()
    try:
        import matplotlib  # noqa: F401

        assert (out / "iris_loss_per_optimizer.png").stat().st_size > 1000
    except ImportError:
        assert "pip install" in r.stdout


def test_cli_rejects_bad_arguments():
    r = subprocess.run([sys.executable, "-m", "fastgrad", "train", "mnist"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice: 'mnist'" in r.stderr and "iris" in r.stderr
    r = subprocess.run([sys.executable, "-m", "fastgrad", "train", "iris", "--optimizers", "lbfgs"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown optimizer" in r.stderr


def test_cli_info():
    r = subprocess.run([sys.executable, "-m", "fastgrad", "info"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "simd" in r.stdout and "threads" in r.stdout


def test_seed_example_runs_unchanged():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "autograd_tanh.py")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    deriv = float(lines[1].replace("tensor(", "").split(",")[0].rstrip(")"))
    fd = float(lines[2].replace("tensor(", "").split(",")[0].rstrip(")"))
    assert abs(deriv - (1 - np.tanh(1.0) ** 2)) < 1e-9
    assert abs(deriv - fd) < 1e-4


def test_checkpoint_matches_plain_backward():
    fg.manual_seed(0)
    x = fg.randn(3, 4, requires_grad=True)
    w = fg.randn(4, 4, requires_grad=True)

    def block(a):
        return F.dropout((a @ w).tanh(), 0.3) @ w

    fg.manual_seed(5)
    fg.utils.checkpoint(block, x).sum().backward()
    gx, gw = x.grad.numpy().copy(), w.grad.numpy().copy()
    x.grad = w.grad = None
    fg.manual_seed(5)
    block(x).sum().backward()
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gw, w.grad.numpy(), rtol=1e-6)


def test_positional_encoding_formula():
    pe = nn.SinusoidalPositionalEncoding(8, 50)
    out = pe(fg.zeros(1, 20, 8)).numpy()[0]
    pos = np.arange(20)[:, None]
    i = np.arange(0, 8, 2)
    np.testing.assert_allclose(out[:, 0::2], np.sin(pos / 10000 ** (i / 8)), atol=1e-6)
    np.testing.assert_allclose(out[:, 1::2], np.cos(pos / 10000 ** (i / 8)), atol=1e-6)
    with pytest.raises(ValueError, match="max_len"):
        pe(fg.zeros(1, 51, 8))


def test_every_example_is_documented_and_has_a_script():
    import fastgrad.train as train

    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    names = train.examples()
    assert {"iris", "mlp", "cnn", "resnet", "lstm", "autoencoder", "vae", "gan", "seq2seq", "transformer",
            "diffusion", "dqn", "policy-gradient", "contrastive"} <= set(names)
    for name, module in names.items():
        assert f"`fastgrad train {name}`" in readme, name
        assert module.DESCRIPTION and callable(module.run) and callable(module.add_arguments)
        script = "train_iris.py" if name == "iris" else name.replace("-", "_") + ".py"
        assert os.path.exists(os.path.join(root, "examples", script)), script
