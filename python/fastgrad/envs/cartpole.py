"""CartPole-v1 without gymnasium: the cart-pole balancing task of Barto, Sutton
and Anderson (1983) with the constants, thresholds, reset distribution and
500-step limit of gymnasium's CartPole-v1, behind gymnasium's API.

A pole is hinged to a cart on a frictionless track; each step pushes the cart
left (action 0) or right (action 1) with a 10 N force for tau = 0.02 s, by
explicit Euler. The reward is +1 for every step, the last included; the
episode terminates when |x| > 2.4 m or |theta| > 12 degrees, and is truncated
after 500 steps. The state is kept in Python floats (float64, as gymnasium
keeps it) so a step costs a few microseconds; observations are float32
arrays, as gymnasium returns them.
"""
import math

import numpy as np

__all__ = ["CartPoleEnv", "Discrete", "Box"]


class Discrete:
    """The action space {0, ..., n-1} (gymnasium.spaces.Discrete's n, contains, sample)."""

    def __init__(self, n, seed=None):
        self.n = int(n)
        self.shape = ()
        self.dtype = np.int64
        self._rng = np.random.default_rng(seed)

    def seed(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def sample(self):
        return int(self._rng.integers(self.n))

    def contains(self, x):
        if isinstance(x, np.ndarray):
            if x.shape != () or x.dtype.kind not in "iu":
                return False
            x = int(x)
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= x < self.n

    def __repr__(self):
        return f"Discrete({self.n})"


class Box:
    """A box of float32 observations (gymnasium.spaces.Box's low, high, shape, dtype)."""

    def __init__(self, low, high):
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        self.shape = self.low.shape
        self.dtype = np.float32

    def contains(self, x):
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all(x >= self.low) and np.all(x <= self.high))

    def __repr__(self):
        return f"Box({self.low.tolist()}, {self.high.tolist()}, {self.shape}, float32)"


class CartPoleEnv:
    """CartPole-v1: reset(seed=None) -> (obs, info); step(action) -> (obs, reward, terminated, truncated, info).

    Same numbers as gymnasium.make("CartPole-v1"): the same seed gives the same
    initial state (uniform in [-0.05, 0.05)^4 from numpy's default_rng) and the
    same trajectory. Stepping before reset() or after the episode ended raises
    a RuntimeError (gymnasium only warns: its result is undefined there).
    """

    # physical constants of the original problem (SI units)
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masscart + masspole
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02  # seconds per step
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    max_episode_steps = 500
    reward_threshold = 475.0

    def __init__(self, max_episode_steps=500):
        if int(max_episode_steps) < 1:
            raise ValueError(f"CartPoleEnv: max_episode_steps must be >= 1, got {max_episode_steps}")
        self.max_episode_steps = int(max_episode_steps)
        self.action_space = Discrete(2)
        high = [self.x_threshold * 2, np.finfo(np.float32).max, self.theta_threshold_radians * 2,
                np.finfo(np.float32).max]
        self.observation_space = Box([-h for h in high], high)
        self.np_random = np.random.default_rng()
        self.state = None
        self._steps = 0
        self._done = True

    def reset(self, seed=None, options=None):
        """Start an episode; `seed` re-seeds the generator (later resets continue its stream)."""
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        low, high = -0.05, 0.05
        if options:
            low, high = float(options.get("low", low)), float(options.get("high", high))
        self.state = tuple(float(v) for v in self.np_random.uniform(low=low, high=high, size=(4,)))
        self._steps = 0
        self._done = False
        return np.array(self.state, dtype=np.float32), {}

    def step(self, action):
        if self.state is None or self._done:
            raise RuntimeError("CartPoleEnv.step: call reset() first (no episode is running)")
        if not self.action_space.contains(action):
            raise ValueError(f"CartPoleEnv.step: action must be 0 (push left) or 1 (push right), got {action!r}")
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        cos, sin = math.cos(theta), math.sin(theta)
        # equations of motion of the cart-pole (Florian 2007, eqs. 23-24 with no friction)
        temp = (force + self.polemass_length * theta_dot * theta_dot * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos * cos / self.total_mass))
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        # explicit Euler: positions move with the old velocities
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = (x, x_dot, theta, theta_dot)
        self._steps += 1
        terminated = (x < -self.x_threshold or x > self.x_threshold
                      or theta < -self.theta_threshold_radians or theta > self.theta_threshold_radians)
        # as gymnasium's TimeLimit: the 500th step is truncated even when it also terminates
        truncated = self._steps >= self.max_episode_steps
        self._done = terminated or truncated
        return np.array(self.state, dtype=np.float32), 1.0, terminated, truncated, {}

    def close(self):
        pass

    def __repr__(self):
        return f"CartPoleEnv(CartPole-v1, max_episode_steps={self.max_episode_steps})"
