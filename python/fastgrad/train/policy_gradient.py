"""REINFORCE with a learned value baseline and normalised advantages on
CartPole-v1. Each update rolls out --batch-episodes episodes in lockstep
(one policy forward per time step for all of them), then takes one gradient
step on all their states at once. Every --eval-every updates the greedy
policy plays a few episodes and the best weights are kept; the run stops
early once that check averages --stop-at. The kept weights are evaluated
greedily over 100 episodes (the bar: an average return of at least 195)."""
import time

import numpy as np

from ._common import out_path, plot_curves, print_outputs, progress, write_curves_csv, write_summary
from .dqn import BestWeights, moving_average, print_evaluation, returns_summary, write_checks_csv

NAME = "policy-gradient"
DESCRIPTION = "REINFORCE with a value baseline on CartPole-v1: greedy return over 100 episodes"


def add_arguments(p):
    p.add_argument("--updates", type=int, default=150, help="policy updates at most (default 150)")
    p.add_argument("--batch-episodes", type=int, default=16, help="episodes per update (default 16)")
    p.add_argument("--hidden", type=int, nargs="+", default=[64], help="hidden widths (default 64)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount (default 0.99)")
    p.add_argument("--baseline", choices=["value", "none"], default="value",
                   help="learned value baseline, or none (normalising still subtracts the batch mean)")
    p.add_argument("--entropy", type=float, default=0.0, help="entropy bonus coefficient (default 0)")
    p.add_argument("--eval-every", type=int, default=5, help="updates between greedy checks (default 5)")
    p.add_argument("--eval-episodes", type=int, default=100, help="final greedy evaluation episodes (default 100)")
    p.add_argument("--stop-at", type=float, default=475.0,
                   help="stop once a greedy check averages this return (default 475; 0 never stops early)")
    p.add_argument("--builtin-env", action="store_true", help="use fastgrad's CartPole even if gymnasium is installed")


def rollout(agent, make_env, n, rng, seed):
    """n episodes in lockstep with the stochastic policy -> list of (obs, actions, rewards) arrays."""
    envs = [make_env() for _ in range(n)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    traj = [([], [], []) for _ in range(n)]
    running = list(range(n))
    while running:
        batch = np.stack([obs[i] for i in running])
        actions = agent.act(batch, rng).tolist()
        still = []
        for i, o, a in zip(running, batch, actions):
            nxt, r, terminated, truncated, _ = envs[i].step(int(a))
            traj[i][0].append(o)
            traj[i][1].append(a)
            traj[i][2].append(r)
            obs[i] = nxt
            if not (terminated or truncated):
                still.append(i)
        running = still
    return [(np.stack(o), np.asarray(a, np.int64), np.asarray(r, np.float64)) for o, a, r in traj]


def train(args, bar_desc="policy-gradient"):
    import fastgrad as fg
    from .. import envs
    from ..models import REINFORCEAgent

    fg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    use_gym = False if args.builtin_env else None

    def make_env():
        return envs.make("CartPole-v1", gymnasium=use_gym)

    probe = make_env()
    agent = REINFORCEAgent(probe.observation_space.shape[0], probe.action_space.n, hidden=tuple(args.hidden),
                           lr=args.lr, gamma=args.gamma, baseline=args.baseline, entropy_coef=args.entropy)

    def check(episodes=10, seed=10_000):
        return float(np.mean(envs.evaluate(agent.greedy, make_env, episodes, seed)))

    returns, stats = [], []
    best = BestWeights(agent.policy, check)
    bar = progress(args.updates, bar_desc)
    done = 0
    for u in range(1, args.updates + 1):
        # distinct reset seeds for every episode of the run
        episodes = rollout(agent, make_env, args.batch_episodes, rng, seed=args.seed * 1_000_003 + u * 1000)
        returns.extend(float(e[2].sum()) for e in episodes)
        stats.append(agent.update(episodes))
        done = u
        bar.update(1)
        bar.set_postfix(ret=f"{np.mean(returns[-args.batch_episodes:]):.0f}")
        if u % args.eval_every == 0:
            score = best.check_at(u)
            if args.stop_at and score >= args.stop_at:
                break
    bar.close()
    best.finish(done)
    env_name = "built-in" if args.builtin_env or not envs.gymnasium_available() else "gymnasium"
    return dict(agent=agent, returns=returns, stats=stats, checks=best.checks, updates=done, env_name=env_name,
                make_env=make_env)


def run(args):
    from .. import envs

    t0 = time.perf_counter()
    res = train(args)
    train_seconds = time.perf_counter() - t0
    eval_returns = envs.evaluate(res["agent"].greedy, res["make_env"], args.eval_episodes,
                                 seed=1_000_000 + args.seed)
    seconds = time.perf_counter() - t0
    mean = float(np.mean(eval_returns))
    returns = res["returns"]
    curves = {"episode return": returns, "mean of last 100": moving_average(returns)}
    write_curves_csv(out_path(args, "policy_gradient_returns.csv"), curves, index_name="episode")
    write_checks_csv(out_path(args, "policy_gradient_greedy_checks.csv"), res["checks"], "update")
    write_curves_csv(out_path(args, "policy_gradient_losses.csv"),
                     {k: [s[k] for s in res["stats"]] for k in ("policy_loss", "value_loss", "entropy")},
                     index_name="update")
    summary = {**returns_summary(returns, eval_returns, res, train_seconds, seconds),
               "updates": res["updates"], "train_steps": int(sum(returns))}
    write_summary(out_path(args, "policy_gradient_summary.json"), summary)
    plotted = plot_curves(out_path(args, "policy_gradient_returns.png"), curves,
                          f"REINFORCE on CartPole-v1: training return (greedy eval {mean:.1f} over "
                          f"{len(eval_returns)})", xlabel="episode", ylabel="return", logy=False)

    print(f"\nREINFORCE ({args.baseline} baseline) on CartPole-v1 ({res['env_name']}), "
          f"MLP 4-{'-'.join(map(str, args.hidden))}-2, seed {args.seed}")
    print(f"{'updates':<28}{res['updates']:>10}")
    print(f"{'train episodes':<28}{len(returns):>10}")
    print(f"{'train steps':<28}{int(sum(returns)):>10}")
    print_evaluation(summary)
    print_outputs(args, ["policy_gradient_returns.png"], plotted)
    return 0
