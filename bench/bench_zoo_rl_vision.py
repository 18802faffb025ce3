"""Model zoo part B (dqn, policy-gradient, cnn, resnet): the training steps
that make up each `fastgrad train NAME` run, timed in fastgrad and in
PyTorch (the same model, loss, optimizer and batch), side by side.

Rows (median of --reps, after a warm-up; the best time is printed too, as
the machine is shared):
  dqn act        one greedy action: Q-network 4-64-64-2 forward on one
                 observation under no_grad, argmax (done once per env step)
  dqn update     one double-DQN update on 64 replayed transitions: target and
                 online forwards, Huber loss, backward, grad-norm clip, Adam
  pg act         the rollout's per-time-step policy forward on 16 observations
                 (softmax probabilities to NumPy)
  pg update      one REINFORCE update on 16 episodes (4000 states): policy and
                 value forwards, losses, backward, Adam
  cnn step       DigitsCNN (32, 64) train step on a batch of 64 8x8 digits
  cnn augment    RandomCrop(8, padding=1) + GaussianNoise on a batch of 64
                 (fastgrad's transforms; torch has no batched per-image
                 crop, so the torch column does the same per-image slicing)
  resnet step    ResNet-32 (5 blocks per stage, widths 16/32/64, BN) train
                 step on a batch of 64, SGD with momentum
  plain step     the plain 32-layer network's train step, the same way

The per-op overhead line (a 16-element add) says how much of a small step is
Python and dispatch rather than arithmetic.

    PYTHONPATH=python python bench/bench_zoo_rl_vision.py [--reps 30] [--threads 1] [--full-cnn]
"""
import argparse
import time

import numpy as np
import torch

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.models import DigitsCNN, DQNAgent, PlainNet, REINFORCEAgent, ResNet

from _zoo_common import copy_weights, time_ms, torch_mlp


# ---------------------------------------------------------------- torch twins


class TorchQ(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch_mlp([4, 64, 64, 2], torch.nn.ReLU)

    def forward(self, x):
        return self.net(x)


class TorchDigitsCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        tn = torch.nn
        self.features = tn.Sequential(tn.Conv2d(1, 32, 3, padding=1), tn.ReLU(), tn.Conv2d(32, 32, 3, padding=1),
                                      tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(32, 64, 3, padding=1), tn.ReLU(),
                                      tn.MaxPool2d(2))
        self.classifier = tn.Sequential(tn.Flatten(), tn.Linear(256, 128), tn.ReLU(), tn.Dropout(0.25),
                                        tn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class TorchBlock(torch.nn.Module):
    def __init__(self, cin, cout, stride, residual):
        super().__init__()
        tn = torch.nn
        self.residual = residual
        self.conv1 = tn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tn.BatchNorm2d(cout)
        self.conv2 = tn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tn.BatchNorm2d(cout)
        self.relu = tn.ReLU()
        self.shortcut = None
        if residual and (stride != 1 or cin != cout):
            self.shortcut = tn.Sequential(tn.Conv2d(cin, cout, 1, stride, bias=False), tn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return self.relu(out)


class TorchResNet(torch.nn.Module):
    def __init__(self, blocks, widths, residual):
        super().__init__()
        tn = torch.nn
        self.stem = tn.Sequential(tn.Conv2d(1, widths[0], 3, 1, 1, bias=False), tn.BatchNorm2d(widths[0]), tn.ReLU())
        stages, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stages.append(tn.Sequential(*[TorchBlock(cin if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1,
                                                     residual) for j in range(n)]))
            cin = w
        self.stages = tn.Sequential(*stages)
        self.pool = tn.AdaptiveAvgPool2d(1)
        self.fc = tn.Linear(cin, 10)

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


# ---------------------------------------------------------------- the rows


def classifier_steps(model, opt, X, Y, tm, topt, tX, tY):
    """The cross-entropy training step of a classifier on the batch (X, Y), in fastgrad and in torch."""
    def fg_step():
        loss = F.cross_entropy(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def torch_step():
        loss = torch.nn.functional.cross_entropy(tm(tX), tY)
        topt.zero_grad()
        loss.backward()
        topt.step()

    return fg_step, torch_step


def bench_dqn(reps, rng):
    fg.manual_seed(0)
    agent = DQNAgent(4, 2, hidden=(64, 64), lr=2.3e-3)
    tq, tt = TorchQ(), TorchQ()
    copy_weights(agent.q.net.net, tq.net)
    copy_weights(agent.target.net.net, tt.net)
    topt = torch.optim.Adam(tq.parameters(), lr=2.3e-3)
    obs1 = rng.normal(size=4).astype(np.float32)
    s, s2 = rng.normal(size=(64, 4)).astype(np.float32), rng.normal(size=(64, 4)).astype(np.float32)
    a, r = rng.integers(0, 2, 64), np.ones(64, np.float32)
    d = (rng.random(64) < 0.05).astype(np.float32)

    def fg_act():
        return agent.act(obs1, 0.0)

    def torch_act():
        with torch.no_grad():
            return int(tq(torch.from_numpy(obs1[None])).argmax(dim=1)[0])

    def fg_update():
        agent.update(tuple(fg.from_numpy(v) for v in (s, a, r, s2, d)))

    def torch_update():
        S, A, R, S2, D = (torch.from_numpy(v) for v in (s, a, r, s2, d))
        with torch.no_grad():
            best = tq(S2).argmax(dim=1, keepdim=True)
            y = R + 0.99 * (1 - D) * tt(S2).gather(1, best).squeeze(1)
        q = tq(S).gather(1, A.unsqueeze(1)).squeeze(1)
        loss = torch.nn.functional.smooth_l1_loss(q, y)
        topt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tq.parameters(), 10.0)
        topt.step()

    return [("dqn act (1 obs)", time_ms(fg_act, reps * 10), time_ms(torch_act, reps * 10)),
            ("dqn update (batch 64)", time_ms(fg_update, reps), time_ms(torch_update, reps))]


def bench_pg(reps, rng):
    fg.manual_seed(0)
    agent = REINFORCEAgent(4, 2, hidden=(64,), lr=1e-2)
    tpol, tval = torch_mlp([4, 64, 2], torch.nn.Tanh), torch_mlp([4, 64, 1], torch.nn.Tanh)
    copy_weights(agent.policy.net.net, tpol)
    copy_weights(agent.value.net.net, tval)
    topt = torch.optim.Adam([{"params": tpol.parameters()}, {"params": tval.parameters()}], lr=1e-2)
    obs16 = rng.normal(size=(16, 4)).astype(np.float32)
    lengths = [250] * 16
    episodes = [(rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 2, n), np.ones(n)) for n in lengths]
    gen = np.random.default_rng(0)

    def fg_act():
        return agent.act(obs16, gen)

    def torch_act():
        with torch.no_grad():
            p = torch.softmax(tpol(torch.from_numpy(obs16)), dim=-1).numpy()
        cdf = np.cumsum(p, axis=1)
        return np.minimum((gen.random((16, 1)) * cdf[:, -1:] >= cdf).sum(axis=1), 1)

    def fg_update():
        agent.update(episodes)

    def torch_update():
        from fastgrad.models import discounted_returns

        obs = torch.from_numpy(np.concatenate([e[0] for e in episodes]))
        act = torch.from_numpy(np.concatenate([e[1] for e in episodes]).astype(np.int64))
        ret_np = np.concatenate([discounted_returns(e[2], 0.99) for e in episodes])
        ret = torch.from_numpy(ret_np.astype(np.float32))
        logp_all = torch.log_softmax(tpol(obs), dim=-1)
        logp = logp_all.gather(1, act.unsqueeze(1)).squeeze(1)
        v = tval(obs).squeeze(-1)
        adv = ret_np - 100.0 * v.detach().numpy()
        adv = torch.from_numpy(((adv - adv.mean()) / (adv.std() + 1e-8)).astype(np.float32))
        loss = -(logp * adv).mean() + torch.nn.functional.mse_loss(v, ret / 100.0)
        (-(logp_all.exp() * logp_all).sum(dim=1).mean()).item()
        topt.zero_grad()
        loss.backward()
        topt.step()

    return [("pg act (16 obs)", time_ms(fg_act, reps * 10), time_ms(torch_act, reps * 10)),
            ("pg update (16 ep., 4000 states)", time_ms(fg_update, reps), time_ms(torch_update, reps))]


def bench_cnn(reps, rng):
    from fastgrad.data import transforms as T

    fg.manual_seed(0)
    model = DigitsCNN()
    tm = TorchDigitsCNN()
    copy_weights(model, tm)
    opt = fg.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    topt = torch.optim.AdamW(tm.parameters(), lr=1e-3, weight_decay=0.0)
    x = rng.random((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    X, Y, tX, tY = fg.from_numpy(x), fg.from_numpy(y), torch.from_numpy(x), torch.from_numpy(y)
    aug = T.Compose([T.RandomCrop(8, padding=1), T.GaussianNoise(0.05)])

    fg_step, torch_step = classifier_steps(model, opt, X, Y, tm, topt, tX, tY)

    def torch_aug():
        p = torch.nn.functional.pad(tX, (1, 1, 1, 1))
        tops, lefts = torch.randint(0, 3, (64,)).tolist(), torch.randint(0, 3, (64,)).tolist()
        out = torch.stack([p[k, :, i:i + 8, j:j + 8] for k, (i, j) in enumerate(zip(tops, lefts))])
        return out + torch.randn_like(out) * 0.05

    return [("cnn train step (batch 64)", time_ms(fg_step, reps), time_ms(torch_step, reps)),
            ("cnn augment (batch 64)", time_ms(lambda: aug(X), reps), time_ms(torch_aug, reps))]


def bench_resnet(reps, rng):
    x = rng.random((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    X, Y, tX, tY = fg.from_numpy(x), fg.from_numpy(y), torch.from_numpy(x), torch.from_numpy(y)
    rows = []
    for residual in (True, False):
        fg.manual_seed(0)
        model = (ResNet if residual else PlainNet)(blocks=(5, 5, 5), widths=(16, 32, 64))
        tm = TorchResNet((5, 5, 5), (16, 32, 64), residual)
        copy_weights(model, tm)
        opt = fg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        topt = torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        fg_step, torch_step = classifier_steps(model, opt, X, Y, tm, topt, tX, tY)

        name = "resnet-32 train step (batch 64)" if residual else "plain-32 train step (batch 64)"
        rows.append((name, time_ms(fg_step, reps), time_ms(torch_step, reps)))
    return rows


def full_cnn(epochs=15, batch=32, lr=3e-3):
    """The whole default `fastgrad train cnn` loop, and the same loop in torch: (seconds, test accuracy) each."""
    from fastgrad.train.cnn import augmentation, digits_images, fit, standardised

    fg.manual_seed(0)
    Xtr, ytr, Xte, yte = digits_images()
    transform, _, Xte_n = standardised(Xtr, Xte, augmentation(0.05))
    model = DigitsCNN()
    t0 = time.perf_counter()
    _, _, acc = fit(model, Xtr, ytr, Xte_n, yte, epochs, batch, lr, transform, desc="fastgrad")
    fg_result = (time.perf_counter() - t0, acc[-1])

    torch.manual_seed(0)
    tm = TorchDigitsCNN()
    xtr, ttr = torch.from_numpy(Xtr.numpy()), torch.from_numpy(ytr.numpy())
    mean, std = xtr.mean(), xtr.std()
    xte = (torch.from_numpy(Xte.numpy()) - mean) / std
    tte = torch.from_numpy(yte.numpy())
    opt = torch.optim.AdamW(tm.parameters(), lr=lr, weight_decay=0.0)
    steps = epochs * -(-len(xtr) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    t0 = time.perf_counter()
    for _ in range(epochs):
        tm.train()
        for idx in torch.randperm(len(xtr)).split(batch):
            xb = torch.nn.functional.pad(xtr[idx], (1, 1, 1, 1))
            tops, lefts = torch.randint(0, 3, (len(idx),)).tolist(), torch.randint(0, 3, (len(idx),)).tolist()
            xb = torch.stack([xb[k, :, i:i + 8, j:j + 8] for k, (i, j) in enumerate(zip(tops, lefts))])
            xb = (xb + torch.randn_like(xb) * 0.05 - mean) / std
            loss = torch.nn.functional.cross_entropy(tm(xb), ttr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        tm.eval()
        with torch.no_grad():
            tacc = (tm(xte).argmax(dim=1) == tte).float().mean().item()
    return fg_result, (time.perf_counter() - t0, tacc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="threads for fastgrad and torch (0: their defaults)")
    ap.add_argument("--only", nargs="+", choices=["dqn", "pg", "cnn", "resnet"], default=["dqn", "pg", "cnn", "resnet"])
    ap.add_argument("--full-cnn", action="store_true",
                    help="also time the whole default cnn training (15 epochs) in both frameworks")
    args = ap.parse_args()
    if args.threads:
        fg.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    print(f"fastgrad threads: {fg.get_num_threads()}, torch threads: {torch.get_num_threads()}")
    a, b = fg.ones(16), fg.ones(16)
    ta, tb = torch.ones(16), torch.ones(16)
    o_fg, o_t = time_ms(lambda: a + b, 2000), time_ms(lambda: ta + tb, 2000)
    print(f"per-op overhead (16-element add): fastgrad {o_fg[0] * 1e3:.1f} us, torch {o_t[0] * 1e3:.1f} us\n")
    rng = np.random.default_rng(0)
    rows = []
    for part in args.only:
        rows += {"dqn": bench_dqn, "pg": bench_pg, "cnn": bench_cnn, "resnet": bench_resnet}[part](args.reps, rng)
    print(f"{'step':<34}{'fastgrad ms':>12}{'(best)':>9}{'torch ms':>10}{'(best)':>9}{'torch/fastgrad':>16}")
    for name, (f_med, f_best), (t_med, t_best) in rows:
        print(f"{name:<34}{f_med:>12.3f}{f_best:>9.3f}{t_med:>10.3f}{t_best:>9.3f}{t_med / f_med:>15.2f}x")
    if args.full_cnn:
        (fs, fa), (ts, ta) = full_cnn()
        print(f"\nwhole cnn training, 15 epochs: fastgrad {fs:.1f} s (test accuracy {fa:.1%}), "
              f"torch {ts:.1f} s (test accuracy {ta:.1%}), torch/fastgrad {ts / fs:.2f}x")


if __name__ == "__main__":
    main()
