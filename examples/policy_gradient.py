"""REINFORCE with a learned value baseline on CartPole-v1: roll out a batch of
episodes with the stochastic policy, weight each log-probability by its
normalised advantage (return-to-go minus the baseline) and step uphill.
`fastgrad train policy-gradient` adds greedy checks, curves and a summary."""
import numpy as np

import fastgrad as fg
from fastgrad import envs
from fastgrad.models import REINFORCEAgent

fg.manual_seed(0)
rng = np.random.default_rng(0)
agent = REINFORCEAgent(obs_dim=4, n_actions=2, hidden=(64,), lr=1e-2, gamma=0.99, baseline="value")


def rollout(seed):
    """One episode with the stochastic policy -> (observations, actions, rewards)."""
    env = envs.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [], [], []
    done = False
    while not done:
        action = int(agent.act(obs[None], rng)[0])
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        done = terminated or truncated
    return np.stack(observations), np.array(actions), np.array(rewards)


for update in range(1, 61):
    episodes = [rollout(seed=update * 100 + i) for i in range(16)]
    stats = agent.update(episodes)
    if update % 5 == 0:
        greedy = envs.evaluate(agent.greedy, lambda: envs.make("CartPole-v1"), episodes=20, seed=10_000)
        print(f"update {update:3d}  mean training return {np.mean([e[2].sum() for e in episodes]):6.1f}"
              f"  greedy return {np.mean(greedy):6.1f}  entropy {stats['entropy']:.3f}")
        if np.mean(greedy) >= 475:
            break
