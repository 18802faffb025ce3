"""Deep Q-learning on CartPole-v1: an epsilon-greedy agent stores transitions
in a replay buffer and learns Q(s, a) from random minibatches, against a
target network. Every 256 steps it makes 128 updates, then syncs the target.
`fastgrad train dqn` runs the same loop with greedy checks (keeping the best
weights), learning curves and a 100-episode evaluation."""
import numpy as np

import fastgrad as fg
from fastgrad import envs
from fastgrad.models import DQNAgent, ReplayBuffer

fg.manual_seed(0)
env = envs.make("CartPole-v1")  # gymnasium's when installed, else the built-in copy
agent = DQNAgent(obs_dim=4, n_actions=2, hidden=(64, 64), lr=2.3e-3, gamma=0.99, seed=0)
buffer = ReplayBuffer(capacity=50_000, obs_dim=4, seed=1)

obs, _ = env.reset(seed=0)
episode_return, returns = 0.0, []
for step in range(1, 24_001):
    epsilon = max(0.04, 1.0 - step / 8_000)  # explore a lot first, then mostly exploit
    action = agent.act(obs, epsilon)
    next_obs, reward, terminated, truncated, _ = env.step(action)
    buffer.push(obs, action, reward, next_obs, terminated)  # a time-out is not a failure
    obs, episode_return = next_obs, episode_return + reward
    if terminated or truncated:
        returns.append(episode_return)
        obs, episode_return = env.reset()[0], 0.0
    if step > 1000 and step % 256 == 0:
        for _ in range(128):
            agent.update(buffer.sample(64))
        agent.sync_target()
    if step % 2000 == 0:
        greedy = envs.evaluate(agent.greedy, lambda: envs.make("CartPole-v1"), episodes=20, seed=10_000)
        print(f"step {step:6d}  episodes {len(returns):4d}  last-20 training return {np.mean(returns[-20:]):6.1f}"
              f"  greedy return {np.mean(greedy):6.1f}")
        if np.mean(greedy) >= 475:  # DQN can forget again: stop while it is good
            break
