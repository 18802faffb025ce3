"""DQN on CartPole-v1: experience replay, a target network, double-DQN targets
and the Huber loss; epsilon-greedy exploration decaying linearly. Updates
come in bursts (by default 128 minibatches every 256 environment steps, then
a target sync): the target stays fixed over each burst and the policy over
each collection phase, which is both stabler and cheaper per step than one
update per step (hyper-parameters after the RL Baselines3 Zoo's). Every
--eval-every steps the greedy policy plays a few episodes and the best
weights so far are kept; the run stops early once that check averages
--stop-at. The kept weights are then evaluated greedily over 100 episodes
(the bar: an average return of at least 195)."""
import time

import numpy as np

from ._common import out_path, plot_curves, print_outputs, progress, write_curves_csv, write_summary

NAME = "dqn"
DESCRIPTION = "DQN (replay, target net, double-DQN, Huber) on CartPole-v1: greedy return over 100 episodes"

BAR = 195.0


def add_arguments(p):
    p.add_argument("--steps", type=int, default=50000, help="environment steps at most (default 50000)")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64], help="hidden widths (default 64 64)")
    p.add_argument("--lr", type=float, default=2.3e-3, help="Adam learning rate (default 2.3e-3)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount (default 0.99)")
    p.add_argument("--batch-size", type=int, default=64, help="replayed transitions per update (default 64)")
    p.add_argument("--buffer", type=int, default=50000, help="replay capacity (default 50000)")
    p.add_argument("--learning-starts", type=int, default=1000, help="random steps before learning (default 1000)")
    p.add_argument("--train-every", type=int, default=256,
                   help="environment steps between bursts of updates (default 256)")
    p.add_argument("--gradient-steps", type=int, default=128, help="updates per burst (default 128)")
    p.add_argument("--target-every", type=int, default=256,
                   help="steps between target syncs (default 256: after every burst)")
    p.add_argument("--eps-steps", type=int, default=8000,
                   help="steps over which epsilon decays from 1 to --eps-end (default 8000)")
    p.add_argument("--eps-end", type=float, default=0.04, help="final epsilon (default 0.04)")
    p.add_argument("--eval-every", type=int, default=1000,
                   help="steps between greedy checks of 10 episodes (default 1000)")
    p.add_argument("--eval-episodes", type=int, default=100, help="final greedy evaluation episodes (default 100)")
    p.add_argument("--stop-at", type=float, default=475.0,
                   help="stop once a greedy check averages this return (default 475; 0 never stops early)")
    p.add_argument("--no-double", action="store_true", help="plain DQN targets (max over the target net)")
    p.add_argument("--mse", action="store_true", help="squared loss instead of Huber")
    p.add_argument("--builtin-env", action="store_true", help="use fastgrad's CartPole even if gymnasium is installed")


def moving_average(xs, n=100):
    """Mean of the last n values at each point (fewer at the start)."""
    c = np.cumsum(np.asarray(xs, dtype=np.float64))
    out = np.empty(len(xs))
    for i in range(len(xs)):
        lo = i - n
        out[i] = (c[i] - (c[lo] if lo >= 0 else 0.0)) / (i - max(lo, -1))
    return out.tolist()


def write_checks_csv(path, checks, when):
    """The greedy checks made during training: (when, mean greedy return over 10 episodes) rows."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([when, "greedy return (10 episodes)"])
        w.writerows([k, f"{r:.6g}"] for k, r in checks)


def returns_summary(returns, eval_returns, res, train_seconds, seconds):
    """The summary fields every CartPole agent reports: its greedy evaluation against BAR, its training
    returns, the greedy checks during training (res from train()) and the times."""
    mean = float(np.mean(eval_returns))
    return {"eval_mean_return": mean, "eval_std_return": float(np.std(eval_returns)),
            "eval_min_return": float(np.min(eval_returns)), "eval_episodes": len(eval_returns), "bar": BAR,
            "met_bar": mean >= BAR, "train_episodes": len(returns),
            "last100_train_return": float(np.mean(returns[-100:])) if returns else 0.0,
            "greedy_checks": [[at, r] for at, r in res["checks"]], "env": res["env_name"],
            "train_seconds": train_seconds, "seconds": seconds}


def print_evaluation(summary):
    """The printed summary's last lines: the greedy evaluation against the bar, and the times."""
    s = summary
    what = f"greedy return, {s['eval_episodes']} eval ep."
    print(f"{what:<28}{s['eval_mean_return']:>10.1f}  (std {s['eval_std_return']:.1f}, bar {BAR:g}: "
          f"{'met' if s['met_bar'] else 'NOT met'})")
    print(f"{'time':<28}{s['seconds']:>9.1f}s  (training {s['train_seconds']:.1f} s)")


class BestWeights:
    """Greedy checks during training (check() -> score): keeps a copy of module's weights at the best
    check so far; finish() restores it unless a final check of the last weights does at least as well."""

    def __init__(self, module, check):
        self.module, self.check = module, check
        self.checks, self.best, self.state = [], -1.0, None

    def check_at(self, at):
        """Check at step or update `at`; the score."""
        score = self.check()
        self.checks.append((at, score))
        if score >= self.best:
            self.best, self.state = score, {k: v.clone() for k, v in self.module.state_dict().items()}
        return score

    def finish(self, at):
        if self.state is not None and self.checks[-1][0] != at:
            # a final check of the last weights too, so the run never ends on a worse copy than it had
            score = self.check()
            self.checks.append((at, score))
            if score < self.best:
                self.module.load_state_dict(self.state)


def train(args, bar_desc="dqn"):
    """Train as args say; returns a dict of the agent (best weights loaded), curves and checks."""
    import fastgrad as fg
    from .. import envs
    from ..models import DQNAgent, ReplayBuffer

    fg.manual_seed(args.seed)
    use_gym = False if args.builtin_env else None
    env = envs.make("CartPole-v1", gymnasium=use_gym)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    agent = DQNAgent(obs_dim, n_actions, hidden=tuple(args.hidden), lr=args.lr, gamma=args.gamma,
                     double=not args.no_double, huber=not args.mse, seed=args.seed)
    buffer = ReplayBuffer(args.buffer, obs_dim, seed=args.seed + 1)

    def check(episodes=10, seed=10_000):
        rets = envs.evaluate(agent.greedy, lambda: envs.make("CartPole-v1", gymnasium=use_gym), episodes, seed)
        return float(np.mean(rets))

    returns, losses = [], []
    best = BestWeights(agent.q, check)
    obs, _ = env.reset(seed=args.seed)
    ep_return = 0.0
    bar = progress(args.steps, bar_desc)
    steps_done = 0
    for step in range(1, args.steps + 1):
        frac = min(1.0, step / max(1, args.eps_steps))
        epsilon = 1.0 + frac * (args.eps_end - 1.0)
        action = agent.act(obs, epsilon) if step > args.learning_starts else agent.random_action()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.push(obs, action, reward, next_obs, terminated)
        ep_return += reward
        obs = next_obs
        if terminated or truncated:
            returns.append(ep_return)
            bar.set_postfix(ret=f"{ep_return:.0f}", eps=f"{epsilon:.2f}")
            ep_return = 0.0
            obs, _ = env.reset()
        if step > args.learning_starts and step % args.train_every == 0:
            for _ in range(args.gradient_steps):
                losses.append(agent.update(buffer.sample(args.batch_size)))
        if step % args.target_every == 0:
            agent.sync_target()
        bar.update(1)
        steps_done = step
        if step > args.learning_starts and step % args.eval_every == 0:
            score = best.check_at(step)
            if args.stop_at and score >= args.stop_at:
                break
    bar.close()
    best.finish(steps_done)
    env_name = "built-in" if args.builtin_env or not envs.gymnasium_available() else "gymnasium"
    return dict(agent=agent, returns=returns, losses=losses, checks=best.checks, steps=steps_done, env_name=env_name)


def run(args):
    from .. import envs

    t0 = time.perf_counter()
    res = train(args)
    train_seconds = time.perf_counter() - t0
    agent = res["agent"]
    use_gym = False if args.builtin_env else None
    eval_returns = envs.evaluate(agent.greedy, lambda: envs.make("CartPole-v1", gymnasium=use_gym),
                                 args.eval_episodes, seed=1_000_000 + args.seed)
    seconds = time.perf_counter() - t0
    mean = float(np.mean(eval_returns))
    returns = res["returns"]
    curves = {"episode return": returns, "mean of last 100": moving_average(returns)}
    write_curves_csv(out_path(args, "dqn_returns.csv"), curves, index_name="episode")
    write_checks_csv(out_path(args, "dqn_greedy_checks.csv"), res["checks"], "env_step")
    write_curves_csv(out_path(args, "dqn_loss.csv"), {"huber loss" if not args.mse else "mse loss": res["losses"]},
                     index_name="update")
    summary = {**returns_summary(returns, eval_returns, res, train_seconds, seconds),
               "train_steps": res["steps"], "updates": len(res["losses"])}
    write_summary(out_path(args, "dqn_summary.json"), summary)
    plotted = plot_curves(out_path(args, "dqn_returns.png"), curves,
                          f"DQN on CartPole-v1: training return (greedy eval {mean:.1f} over {len(eval_returns)})",
                          xlabel="episode", ylabel="return", logy=False)

    print(f"\nDQN on CartPole-v1 ({res['env_name']}), MLP 4-{'-'.join(map(str, args.hidden))}-2, seed {args.seed}")
    print(f"{'train steps':<28}{res['steps']:>10}")
    print(f"{'train episodes':<28}{len(returns):>10}")
    print(f"{'updates':<28}{len(res['losses']):>10}")
    print_evaluation(summary)
    print_outputs(args, ["dqn_returns.png"], plotted)
    return 0
