"""fastgrad.envs: reinforcement-learning environments for the model zoo.

`make("CartPole-v1")` returns gymnasium's CartPole when gymnasium is installed
(an optional extra: ``pip install 'fastgrad[examples]'``) and allowed, else
the built-in copy in cartpole.py, which has the same dynamics, constants,
seeding and API (reset(seed=None) -> (obs, info); step(action) -> (obs,
reward, terminated, truncated, info)). Set FASTGRAD_GYMNASIUM=0, or pass
gymnasium=False, to use the built-in one even when gymnasium is there.
"""
import os

import numpy as np

from .cartpole import Box, CartPoleEnv, Discrete

__all__ = ["make", "gymnasium_available", "evaluate", "CartPoleEnv", "Discrete", "Box"]

_BUILTIN = {"CartPole-v1": CartPoleEnv}


def gymnasium_available():
    """True when gymnasium imports and FASTGRAD_GYMNASIUM does not forbid it."""
    if os.environ.get("FASTGRAD_GYMNASIUM", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        return False
    return True


def make(name, gymnasium=None, **kwargs):
    """An environment by gymnasium id.

    gymnasium=None prefers gymnasium when `gymnasium_available()`, True
    requires it (ImportError without it), False always takes the built-in copy.
    """
    if name not in _BUILTIN:
        raise ValueError(f"fastgrad.envs.make: unknown environment {name!r} (built in: {', '.join(_BUILTIN)})")
    if gymnasium is None:
        gymnasium = gymnasium_available()
    if gymnasium:
        import gymnasium as gym

        return gym.make(name, **kwargs)
    return _BUILTIN[name](**kwargs)


def evaluate(act, make_env, episodes=100, seed=0):
    """Run `episodes` episodes in lockstep and return their returns (a list of floats).

    act(obs) maps a float32 array (n, obs_dim) of the still-running episodes'
    observations to n integer actions; stepping all episodes together lets a
    policy network act on one batch per time step instead of one row.
    Episode i is reset with seed `seed + i`, so evaluations are repeatable.
    """
    envs = [make_env() for _ in range(episodes)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns = [0.0] * episodes
    running = list(range(episodes))
    while running:
        actions = np.asarray(act(np.stack([obs[i] for i in running])))
        still = []
        for i, a in zip(running, actions.tolist()):
            o, r, terminated, truncated, _ = envs[i].step(int(a))
            returns[i] += float(r)
            obs[i] = o
            if not (terminated or truncated):
                still.append(i)
        running = still
    for env in envs:
        env.close()
    return returns
