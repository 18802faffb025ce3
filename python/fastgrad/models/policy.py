"""Policy-gradient pieces: REINFORCE with a baseline (Williams 1992).

A PolicyNetwork maps observations to action logits; the agent samples
actions from softmax(logits), rolls out whole episodes and then ascends

    sum_t log pi(a_t | s_t) * A_t,   A_t = G_t - b(s_t),   G_t = sum_k gamma^k r_{t+k}

where the baseline b is a learned value network V(s) (trained by regression
on G_t, scaled by value_scale) or, with baseline="none", only the batch mean that normalising the
advantages (zero mean, unit variance over the batch) subtracts anyway.
Subtracting a baseline leaves the gradient's expectation unchanged and cuts
its variance; normalising keeps the step size independent of the return scale.
"""
import numpy as np

from .. import nn
from .mlp import MLP

__all__ = ["PolicyNetwork", "ValueNetwork", "REINFORCEAgent", "discounted_returns"]


class PolicyNetwork(nn.Module):
    """pi(. | s): an MLP obs_dim -> hidden... (tanh) -> n_actions logits."""

    def __init__(self, obs_dim, n_actions, hidden=(64,)):
        super().__init__()
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.net = MLP([self.obs_dim, *hidden, self.n_actions], activation="tanh")

    def forward(self, obs):
        return self.net(obs)

    def probs(self, obs):
        """Action probabilities as a NumPy array (n, n_actions) for NumPy observations (n, obs_dim)."""
        import fastgrad as fg

        with fg.no_grad():
            x = fg.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
            return fg.softmax(self(x), dim=-1).numpy()

    def sample(self, obs, rng):
        """One action per row of obs, drawn from pi(. | s) with the NumPy generator rng."""
        cdf = np.cumsum(self.probs(obs), axis=1)
        u = rng.random((cdf.shape[0], 1)) * cdf[:, -1:]
        # inverse-CDF sampling; min() guards against rounding past the last bin
        return np.minimum((u >= cdf).sum(axis=1), self.n_actions - 1)

    def greedy(self, obs):
        return self.probs(obs).argmax(axis=1)

    def log_prob(self, obs, actions):
        """log pi(a | s) as a differentiable tensor (n,) for tensors obs (n, obs_dim), actions int64 (n,)."""
        import fastgrad.nn.functional as F

        return F.log_softmax(self(obs), dim=-1).gather(1, actions.unsqueeze(1)).squeeze(1)


class ValueNetwork(nn.Module):
    """V(s): an MLP obs_dim -> hidden... (tanh) -> 1, the learned baseline."""

    def __init__(self, obs_dim, hidden=(64,)):
        super().__init__()
        self.net = MLP([int(obs_dim), *hidden, 1], activation="tanh")

    def forward(self, obs):
        return self.net(obs).squeeze(-1)


def discounted_returns(rewards, gamma):
    """G_t = r_t + gamma * G_{t+1} for one episode's rewards (NumPy float64 array)."""
    out = np.empty(len(rewards), dtype=np.float64)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = float(rewards[t]) + gamma * g
        out[t] = g
    return out


class REINFORCEAgent:
    """A policy (and value baseline), their Adam optimizer and the REINFORCE update.

    update(episodes) takes a list of (obs (T, obs_dim), actions (T,), rewards
    (T,)) NumPy arrays, one per finished episode, and makes one gradient step
    on all of them at once (one forward over every state of the batch).
    Returns a dict of floats: policy_loss, value_loss, entropy.
    """

    def __init__(self, obs_dim, n_actions, hidden=(64,), lr=1e-2, gamma=0.99, baseline="value", value_lr=None,
                 normalize=True, entropy_coef=0.0, value_scale=None):
        from .. import optim

        if baseline not in ("value", "none"):
            raise ValueError(f"REINFORCEAgent: baseline must be 'value' or 'none', got {baseline!r}")
        self.gamma, self.baseline, self.normalize = float(gamma), baseline, bool(normalize)
        self.entropy_coef = float(entropy_coef)
        # 1 / (1 - gamma) bounds the return of rewards in [0, 1]
        self.value_scale = float(value_scale) if value_scale else 1.0 / (1.0 - self.gamma)
        self.policy = PolicyNetwork(obs_dim, n_actions, hidden)
        groups = [{"params": list(self.policy.parameters())}]
        self.value = None
        if baseline == "value":
            self.value = ValueNetwork(obs_dim, hidden)
            groups.append({"params": list(self.value.parameters()), "lr": value_lr or lr})
        self.optimizer = optim.Adam(groups, lr=lr)

    def act(self, obs, rng):
        return self.policy.sample(obs, rng)

    def greedy(self, obs):
        return self.policy.greedy(obs)

    def update(self, episodes):
        import fastgrad as fg
        import fastgrad.nn.functional as F

        obs = fg.from_numpy(np.concatenate([e[0] for e in episodes]).astype(np.float32))
        actions = fg.from_numpy(np.concatenate([e[1] for e in episodes]).astype(np.int64))
        returns_np = np.concatenate([discounted_returns(e[2], self.gamma) for e in episodes])
        returns = fg.from_numpy(returns_np.astype(np.float32))
        logits = self.policy(obs)
        logp_all = F.log_softmax(logits, dim=-1)
        logp = logp_all.gather(1, actions.unsqueeze(1)).squeeze(1)
        if self.value is not None:
            # V predicts G / value_scale: targets of order 1 suit its initialisation and learning rate
            v = self.value(obs)
            adv = returns_np - self.value_scale * v.detach().numpy().astype(np.float64)
            value_loss = F.mse_loss(v, returns / self.value_scale)
        else:
            adv = returns_np.copy()
            value_loss = None
        if self.normalize:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        adv_t = fg.from_numpy(adv.astype(np.float32))
        entropy = -(logp_all.exp() * logp_all).sum(dim=1).mean()
        policy_loss = -(logp * adv_t).mean()
        loss = policy_loss - self.entropy_coef * entropy
        if value_loss is not None:
            # policy and value parameters are disjoint: one backward of the sum gives each its own gradient
            loss = loss + value_loss
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item() if value_loss is not None else 0.0,
                "entropy": entropy.item()}
