"""Deep Q-learning pieces (Mnih et al. 2015): a Q-network, an experience-replay
buffer and a DQN agent with a target network and the (double) DQN loss.

The agent acts on NumPy observations with no_grad forward passes and learns
from replayed minibatches:

    loss = huber(r + gamma * (1 - terminated) * Q_target(s', a*) - Q(s, a))

with a* = argmax_a' Q_target(s', a') (plain DQN) or argmax_a' Q(s', a')
(double DQN, van Hasselt et al. 2016: the online net picks, the target net
values, which curbs the over-estimation of the max).
"""
import numpy as np

from .. import nn
from .mlp import MLP

__all__ = ["QNetwork", "ReplayBuffer", "DQNAgent"]


class QNetwork(nn.Module):
    """Q(s, .): an MLP obs_dim -> hidden... (ReLU) -> n_actions, one value per action."""

    def __init__(self, obs_dim, n_actions, hidden=(64, 64)):
        super().__init__()
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.net = MLP([self.obs_dim, *hidden, self.n_actions], activation="relu")

    def forward(self, obs):
        return self.net(obs)


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', terminated) in preallocated NumPy arrays.

    sample(batch_size) draws uniformly with replacement from what is stored,
    from its own generator (`seed`), and returns fastgrad tensors: obs and
    next_obs float32 (B, obs_dim), actions int64 (B,), rewards and
    terminated float32 (B,). Only termination stops bootstrapping: a
    time-limit truncation is not an end of the task, so such transitions are
    stored with terminated = 0.
    """

    def __init__(self, capacity, obs_dim, seed=None):
        if int(capacity) < 1:
            raise ValueError(f"ReplayBuffer: capacity must be >= 1, got {capacity}")
        self.capacity, self.obs_dim = int(capacity), int(obs_dim)
        self.obs = np.zeros((self.capacity, self.obs_dim), np.float32)
        self.next_obs = np.zeros((self.capacity, self.obs_dim), np.float32)
        self.actions = np.zeros(self.capacity, np.int64)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.terminated = np.zeros(self.capacity, np.float32)
        self.size = 0
        self._next = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        return self.size

    def push(self, obs, action, reward, next_obs, terminated):
        i = self._next
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size):
        if self.size == 0:
            raise RuntimeError("ReplayBuffer.sample: the buffer is empty (push transitions first)")
        from .. import from_numpy

        idx = self._rng.integers(0, self.size, size=int(batch_size))
        # fancy indexing copies, so the tensors own fresh contiguous arrays
        return (from_numpy(self.obs[idx]), from_numpy(self.actions[idx]), from_numpy(self.rewards[idx]),
                from_numpy(self.next_obs[idx]), from_numpy(self.terminated[idx]))


class DQNAgent:
    """A Q-network, its target copy, an Adam optimizer and the DQN update.

    act(obs, epsilon) is epsilon-greedy on one observation (random_action()
    the uniform draw it explores with); greedy(obs_batch)
    acts on a batch (for lockstep evaluation); update(batch) takes one
    gradient step on the (double) DQN loss and returns it as a float;
    sync_target() copies the online weights into the target network.
    """

    def __init__(self, obs_dim, n_actions, hidden=(64, 64), lr=1e-3, gamma=0.99, double=True, huber=True,
                 grad_clip=10.0, seed=None):
        from .. import optim

        self.n_actions = int(n_actions)
        self.gamma, self.double, self.huber, self.grad_clip = float(gamma), bool(double), bool(huber), grad_clip
        self.q = QNetwork(obs_dim, n_actions, hidden)
        self.target = QNetwork(obs_dim, n_actions, hidden)
        self.target.requires_grad_(False)
        self.sync_target()
        self.optimizer = optim.Adam(self.q.parameters(), lr=lr)
        self._rng = np.random.default_rng(seed)

    def sync_target(self):
        self.target.load_state_dict(self.q.state_dict())

    def q_values(self, obs):
        """Q(s, .) as a NumPy array (n, n_actions) for observations (n, obs_dim)."""
        import fastgrad as fg

        with fg.no_grad():
            return self.q(fg.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))).numpy()

    def greedy(self, obs):
        """argmax_a Q(s, a) for a batch of observations (n, obs_dim) -> int array (n,)."""
        return self.q_values(obs).argmax(axis=1)

    def random_action(self):
        return int(self._rng.integers(self.n_actions))

    def act(self, obs, epsilon=0.0):
        if self._rng.random() < epsilon:
            return self.random_action()
        return int(self.greedy(np.asarray(obs, dtype=np.float32)[None])[0])

    def loss(self, obs, actions, rewards, next_obs, terminated):
        """The DQN loss on one batch of tensors (as ReplayBuffer.sample returns them)."""
        import fastgrad as fg
        import fastgrad.nn.functional as F

        with fg.no_grad():
            next_target = self.target(next_obs)
            if self.double:
                best = self.q(next_obs).argmax(dim=1, keepdim=True)
                next_value = next_target.gather(1, best).squeeze(1)
            else:
                next_value = next_target.max(dim=1)[0]
            y = rewards + self.gamma * (1.0 - terminated) * next_value
        q = self.q(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        return F.smooth_l1_loss(q, y) if self.huber else F.mse_loss(q, y)

    def update(self, batch):
        from .. import nn as fnn

        loss = self.loss(*batch)
        self.optimizer.zero_grad()
        loss.backward()
        if self.grad_clip:
            fnn.utils.clip_grad_norm_(self.q.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss.item()
