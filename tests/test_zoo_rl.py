"""The reinforcement-learning part of the model zoo: the built-in CartPole-v1
against the closed-form cart-pole equations (and gymnasium when installed),
the DQN and REINFORCE pieces, and short `fastgrad train` runs that must beat a
random policy (mean return ~22) by far."""
import json
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import cli, envs
from fastgrad.envs import CartPoleEnv
from fastgrad.models import DQNAgent, PolicyNetwork, REINFORCEAgent, ReplayBuffer, discounted_returns

# ---------------------------------------------------------------- CartPole


def reference_step(state, action):
    """One Euler step of the frictionless cart-pole (Barto, Sutton & Anderson 1983),
    written from the equations: g=9.8, m_cart=1, m_pole=0.1, half length 0.5, F=+-10 N, tau=0.02."""
    g, mc, mp, half, tau = 9.8, 1.0, 0.1, 0.5, 0.02
    x, v, th, w = (np.float64(s) for s in state)
    f = 10.0 if action == 1 else -10.0
    s, c = np.sin(th), np.cos(th)
    m = mc + mp
    # theta'' = (g sin - cos (F + m_p l w^2 sin) / m) / (l (4/3 - m_p cos^2 / m))
    th_acc = (g * s - c * (f + mp * half * w * w * s) / m) / (half * (4.0 / 3.0 - mp * c * c / m))
    # x'' = (F + m_p l (w^2 sin - theta'' cos)) / m
    x_acc = (f + mp * half * (w * w * s - th_acc * c)) / m
    return np.array([x + tau * v, v + tau * x_acc, th + tau * w, w + tau * th_acc])


def reference_done(state):
    return bool(abs(state[0]) > 2.4 or abs(state[2]) > 12 * 2 * math.pi / 360)


def balancing_action(obs):
    # a linear state feedback that keeps the pole up for the whole 500 steps
    return int(obs[2] + 0.3 * obs[3] + 0.02 * obs[0] + 0.1 * obs[1] > 0)


def other_implementations():
    """The built-in env, and gymnasium's when it is installed (the same numbers are expected from both)."""
    out = [("built-in", lambda: envs.make("CartPole-v1", gymnasium=False))]
    try:
        import gymnasium

        out.append(("gymnasium", lambda: gymnasium.make("CartPole-v1")))
    except ImportError:
        pass
    return out


def internal_state(env):
    """The float64 state an implementation keeps (gymnasium's sits under its wrappers)."""
    return np.asarray(getattr(env, "unwrapped", env).state, dtype=np.float64)


@pytest.mark.parametrize("seed", [0, 7, 123])
def test_cartpole_follows_the_closed_form_equations(seed):
    """Every transition equals one reference Euler step from the env's own state; gymnasium's
    CartPole, when installed, passes the same checks and starts from the same states."""
    trajectories = {}
    for name, make in other_implementations():
        rng = np.random.default_rng(seed)
        env = make()
        obs, info = env.reset(seed=seed)
        assert info == {}
        # the documented start: uniform in [-0.05, 0.05)^4 from numpy's default_rng(seed)
        start = np.random.default_rng(seed).uniform(-0.05, 0.05, size=4)
        np.testing.assert_array_equal(internal_state(env), start, err_msg=name)
        np.testing.assert_array_equal(obs, start.astype(np.float32), err_msg=name)
        assert obs.dtype == np.float32 and obs.shape == (4,)
        seen = [obs]
        steps = 0
        while True:
            # mix random pushes with the balancing controller: short and long episodes
            action = int(rng.integers(2)) if rng.random() < 0.3 else balancing_action(obs)
            expected = reference_step(internal_state(env), action)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            # the two formulas round differently, so equal to ~1 ulp, not bit for bit
            np.testing.assert_allclose(internal_state(env), expected, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name}, step {steps}")
            np.testing.assert_array_equal(obs, internal_state(env).astype(np.float32))
            assert reward == 1.0
            assert terminated == reference_done(expected), f"{name}, step {steps}"
            assert truncated == (steps >= 500), f"{name}, step {steps}"
            seen.append(obs)
            if terminated or truncated:
                break
        trajectories[name] = np.stack(seen)
    # the controller's actions depend on the state, so last-bit differences in sin/cos may part
    # the two trajectories late in an episode; their first 100 steps agree
    for name, traj in trajectories.items():
        n = min(100, len(traj), len(trajectories["built-in"]))
        np.testing.assert_allclose(traj[:n], trajectories["built-in"][:n], rtol=0, atol=1e-6, err_msg=name)


def test_cartpole_time_limit_and_termination():
    env = CartPoleEnv()
    obs, _ = env.reset(seed=1)
    total, steps = 0.0, 0
    terminated = truncated = False
    while not (terminated or truncated):
        obs, r, terminated, truncated, _ = env.step(balancing_action(obs))
        total += r
        steps += 1
    assert (steps, total, terminated, truncated) == (500, 500.0, False, True)
    # always pushing one way tips the pole over in a few dozen steps, every step rewarded
    obs, _ = env.reset(seed=2)
    steps = 0
    while True:
        obs, r, terminated, truncated, _ = env.step(1)
        steps += 1
        if terminated:
            break
    assert 5 < steps < 100 and not truncated
    assert abs(obs[2]) > 12 * 2 * math.pi / 360 or abs(obs[0]) > 2.4
    # a shorter limit, as gymnasium's max_episode_steps
    env = CartPoleEnv(max_episode_steps=10)
    obs, _ = env.reset(seed=1)
    for i in range(10):
        obs, r, terminated, truncated, _ = env.step(balancing_action(obs))
    assert truncated and not terminated


def test_cartpole_seeding_and_api():
    env = CartPoleEnv()
    a, _ = env.reset(seed=5)
    later, _ = env.reset()
    b, _ = env.reset(seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, later)  # an unseeded reset continues the stream
    assert env.action_space.n == 2 and env.observation_space.shape == (4,)
    assert env.action_space.contains(1) and not env.action_space.contains(2)
    assert not env.action_space.contains(True) and not env.action_space.contains(0.5)
    assert env.action_space.contains(np.int64(0))
    x, _ = env.reset(options={"low": -0.2, "high": -0.1})
    assert np.all((x >= -0.2) & (x <= -0.1))


def test_cartpole_errors():
    env = CartPoleEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (2, -1, 0.5, "left", None):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    while not env.step(1)[2]:
        pass
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)  # the episode is over
    with pytest.raises(ValueError, match="max_episode_steps"):
        CartPoleEnv(max_episode_steps=0)
    with pytest.raises(ValueError, match="unknown environment"):
        envs.make("MountainCar-v0")


def test_make_prefers_gymnasium_only_when_allowed(monkeypatch):
    assert isinstance(envs.make("CartPole-v1", gymnasium=False), CartPoleEnv)
    monkeypatch.setenv("FASTGRAD_GYMNASIUM", "0")
    assert not envs.gymnasium_available()
    assert isinstance(envs.make("CartPole-v1"), CartPoleEnv)
    monkeypatch.delenv("FASTGRAD_GYMNASIUM")
    try:
        import gymnasium  # noqa: F401
        has_gym = True
    except ImportError:
        has_gym = False
    assert envs.gymnasium_available() == has_gym
    assert isinstance(envs.make("CartPole-v1"), CartPoleEnv) != has_gym


def test_evaluate_runs_episodes_in_lockstep():
    calls = []

    def act(obs):
        calls.append(len(obs))
        return (obs[:, 2] + 0.3 * obs[:, 3] + 0.02 * obs[:, 0] + 0.1 * obs[:, 1] > 0).astype(np.int64)

    rets = envs.evaluate(act, CartPoleEnv, episodes=4, seed=3)
    assert rets == [500.0] * 4
    assert calls == [4] * 500
    rets = envs.evaluate(lambda o: np.ones(len(o), np.int64), CartPoleEnv, episodes=3, seed=3)
    assert all(5 < r < 100 for r in rets)
    # the same seeds give the same episodes
    assert rets == envs.evaluate(lambda o: np.ones(len(o), np.int64), CartPoleEnv, episodes=3, seed=3)

# ---------------------------------------------------------------- pieces


def test_replay_buffer_ring_and_sample():
    buf = ReplayBuffer(5, 4, seed=0)
    with pytest.raises(RuntimeError, match="empty"):
        buf.sample(2)
    for i in range(7):
        buf.push(np.full(4, i, np.float32), i % 2, float(i), np.full(4, i + 1, np.float32), i == 6)
    assert len(buf) == 5
    # the two oldest transitions were overwritten
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    s, a, r, s2, d = buf.sample(64)
    assert s.shape == (64, 4) and s2.shape == (64, 4) and a.dtype == fg.int64 and r.dtype == fg.float32
    s, a, r, s2, d = (t.numpy() for t in (s, a, r, s2, d))
    np.testing.assert_array_equal(s[:, 0], r)
    np.testing.assert_array_equal(s2[:, 0], r + 1)
    np.testing.assert_array_equal(a, r.astype(np.int64) % 2)
    np.testing.assert_array_equal(d, (r == 6).astype(np.float32))
    assert set(r.tolist()) == {2.0, 3.0, 4.0, 5.0, 6.0}
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, 4)


@pytest.mark.parametrize("double", [False, True])
def test_dqn_loss_matches_numpy(double):
    fg.manual_seed(0)
    agent = DQNAgent(4, 2, hidden=(8,), gamma=0.9, double=double, huber=True)
    # make the target differ from the online net
    with fg.no_grad():
        for p in agent.target.parameters():
            p.add_(0.3)
    rng = np.random.default_rng(0)
    s, s2 = rng.normal(size=(9, 4)).astype(np.float32), rng.normal(size=(9, 4)).astype(np.float32)
    a = rng.integers(0, 2, 9)
    r = rng.normal(size=9).astype(np.float32) * 3
    d = (rng.random(9) < 0.3).astype(np.float32)
    loss = agent.loss(*(fg.from_numpy(v) for v in (s, a, r, s2, d))).item()
    q, qn, qt = agent.q_values(s), agent.q_values(s2), agent.target(fg.from_numpy(s2)).detach().numpy()
    nxt = qt[np.arange(9), qn.argmax(1)] if double else qt.max(1)
    err = r + 0.9 * (1 - d) * nxt - q[np.arange(9), a]
    huber = np.where(np.abs(err) < 1, 0.5 * err ** 2, np.abs(err) - 0.5)
    np.testing.assert_allclose(loss, huber.mean(), rtol=1e-5)
    before = [p.detach().numpy().copy() for p in agent.q.parameters()]
    agent.update((fg.from_numpy(v) for v in (s, a, r, s2, d)))
    assert any(not np.array_equal(b, p.detach().numpy()) for b, p in zip(before, agent.q.parameters()))
    # the target net does not learn until synced
    assert not np.allclose(agent.target(fg.from_numpy(s2)).detach().numpy(), agent.q_values(s2))
    agent.sync_target()
    np.testing.assert_array_equal(agent.target(fg.from_numpy(s2)).detach().numpy(), agent.q_values(s2))


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns([1.0, 1.0, 1.0], 0.5), [1.75, 1.5, 1.0])
    np.testing.assert_allclose(discounted_returns([0.0, 0.0, 2.0], 0.9), [1.62, 1.8, 2.0])
    assert discounted_returns([], 0.9).shape == (0,)


def test_policy_sampling_follows_the_probabilities():
    fg.manual_seed(0)
    pol = PolicyNetwork(4, 3, hidden=(8,))
    obs = np.random.default_rng(1).normal(size=(1, 4)).astype(np.float32) * 2
    p = pol.probs(obs)[0]
    draws = pol.sample(np.repeat(obs, 20000, axis=0), np.random.default_rng(2))
    freq = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(freq, p, atol=0.015)
    np.testing.assert_allclose(pol.log_prob(fg.from_numpy(obs), fg.tensor([1])).exp().item(), p[1], rtol=1e-5)


def test_reinforce_step_raises_the_probability_of_good_actions():
    """One update on a batch where action 1 earned more must make action 1 likelier."""
    fg.manual_seed(0)
    agent = REINFORCEAgent(4, 2, hidden=(16,), lr=1e-2)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(40, 4)).astype(np.float32) * 0.05
    acts = np.tile([0, 1], 20)
    episodes = [(obs[i:i + 1], acts[i:i + 1], np.array([1.0 + 5.0 * acts[i]])) for i in range(40)]
    before = agent.policy.probs(obs)[:, 1].mean()
    for _ in range(5):
        stats = agent.update(episodes)
    assert agent.policy.probs(obs)[:, 1].mean() > before + 0.05
    assert set(stats) == {"policy_loss", "value_loss", "entropy"}
    with pytest.raises(ValueError, match="baseline"):
        REINFORCEAgent(4, 2, baseline="median")

# ---------------------------------------------------------------- short training runs


def run_cli(name, tmp_path, *options):
    assert cli.main(["train", name, "--out", str(tmp_path), *options]) == 0
    stem = name.replace("-", "_")
    with open(tmp_path / f"{stem}_summary.json") as f:
        summary = json.load(f)
    assert (tmp_path / f"{stem}_returns.csv").exists()
    return summary


def test_dqn_learns_cartpole(tmp_path):
    s = run_cli("dqn", tmp_path, "--seed", "0", "--steps", "6000", "--hidden", "64", "64", "--learning-starts", "500",
                "--eps-steps", "3000", "--eval-every", "500", "--stop-at", "200", "--eval-episodes", "20",
                "--builtin-env")
    # a random policy averages ~22
    assert s["eval_mean_return"] >= 100, s
    assert s["eval_episodes"] == 20 and s["seconds"] > 0


def test_policy_gradient_learns_cartpole(tmp_path):
    s = run_cli("policy-gradient", tmp_path, "--seed", "0", "--updates", "25", "--batch-episodes", "8",
                "--eval-every", "2", "--stop-at", "200", "--eval-episodes", "20", "--builtin-env")
    assert s["eval_mean_return"] >= 100, s
    assert s["eval_episodes"] == 20 and s["updates"] <= 25


@pytest.mark.parametrize("name", ["dqn", "policy-gradient"])
def test_train_help_lists_the_options(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", name, "--help"])
    assert e.value.code == 0
    assert "--seed" in capsys.readouterr().out
