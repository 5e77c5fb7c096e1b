"""Fig. 2 of the paper: ODEtoODE against the five baselines, trained by ES on MuJoCo tasks.

Every (task, policy, seed) runs the same ES settings (same iterations, k, σ, lr,
episode length, seeds); baselines are scaled to at least ODEtoODE's parameter count
(§5.1.1, `match_params=True`). Each run is a resumable ES run directory, so an
interrupted sweep continues where it stopped and finished runs are not repeated.
Writes `table.md` / `table.csv` (mean ± std over seeds of the final and the best
centre-policy return, and of the final policy's score) and `fig2.png` (mean ± std
learning curves, like Fig. 2). std is over seeds with ddof = 0 (numpy's default): with
3 seeds the sample std is √(3/2) ≈ 1.22× larger. Each iteration's centre return is one
episode of the centre policy, run before that iteration's update: "final" is the last
of these (the centre before the last update) and "best" the highest single episode,
which overstates the policy's expected return because it is the maximum of noisy
measurements. The final policy (the centre after the last update) is scored over
`--eval-episodes` episodes (reset seeds 0, 1, …) as `keras-odetoode evaluate RUN --policy
latest` scores it (`es.runs.score_checkpoint`, kept in the run directory); the table
ranks the policies of each task by that score. Wall time is the mean over seeds of the
iterations' rollouts and updates (progress.csv's `total_seconds`; checkpoints and logs
not included), comparable only between runs that shared the machine alike.

With `--cost-iterations N`, the script trains nothing for the table: each policy instead
runs N throwaway ES iterations at the runs' settings, the policies taking turns,
`--cost-rounds` times over (`es.runs.side_by_side_costs`), and `costs.md` /
`costs.json` give each policy's seconds per million environment steps and its ratio to
ODEtoODE's: the paper's "similar running time", measured side by side.

    python benchmarks/fig2.py --envs Swimmer-v5 HalfCheetah-v5 --seeds 0 1 2 \\
        --iterations 30 --perturbations 50 --out benchmarks/results/fig2
    python benchmarks/fig2.py --envs HalfCheetah-v5 --cost-iterations 3 --out benchmarks/results/fig2_cost
"""

import argparse
import csv
import dataclasses
import functools
import json
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_odetoode import es  # noqa: E402
from keras_odetoode.es import runs, trainer  # noqa: E402

POLICY_LABELS = {
    "odetoode": "ODEtoODE",
    "deepnet": "DeepNet",
    "deepresnet": "DeepResNet",
    "baseode": "BaseODE",
    "nanode": "NANODE",
    "hypernet": "HyperNet",
}


def run_dir(out, env_id, policy, seed):
    return os.path.join(out, "runs", f"{env_id.replace('/', '_')}-{policy}-s{seed}")


def make_config(env_id, policy, seed, args):
    """The `ESConfig` of one run: the same ES settings for every policy, baselines matched to ODEtoODE's size."""
    return es.ESConfig(
        env_id=env_id,
        policy=policy,
        policy_kwargs={"hidden": args.hidden, "match_params": policy != "odetoode", "seed": seed},
        iterations=args.iterations,
        perturbations=args.perturbations,
        sigma=args.sigma,
        learning_rate=args.lr,
        seed=seed,
        episode_length=args.episode_length,
    )


def run_one(env_id, policy, seed, args):
    """Train (or resume, or skip if finished) one ES run; returns its directory and history."""
    logdir = run_dir(args.out, env_id, policy, seed)
    config = make_config(env_id, policy, seed, args)
    info = es.env_info(env_id)
    policy_fn = functools.partial(es.build_policy, policy, info.obs_dim, info.act_dim, **config.policy_kwargs)
    previous = es.checkpoint.load_latest(os.path.join(logdir, "checkpoints")) if os.path.isdir(logdir) else None
    if previous is not None and previous.state.iteration >= args.iterations:
        # A finished run is reused only if it is this one (ValueError otherwise, as for a resume).
        trainer.check_resume(config, es.checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))[-1])
        return logdir, previous.history
    backend = es.make_backend("local", es.env_factory(env_id, args.episode_length), policy_fn, workers=args.workers)
    try:
        result = es.train(
            config, policy_fn, backend, logdir=logdir, resume="latest" if previous else None, progress=False
        )
    finally:
        backend.close()
    return logdir, result.history


def summarize(histories, iterations):
    """Per policy: centre returns (seeds × iterations), final and best per seed."""
    curves = np.array([[row["reward_centre"] for row in h[:iterations]] for h in histories], float)
    return curves, curves[:, -1], np.nanmax(curves, axis=1)


def write_outputs(results, finals, args, seconds):
    """table.csv, table.md, command.json and fig2.png; `finals`: {(task, policy): [final scores per seed]}."""
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for (env_id, policy), histories in results.items():
        _, final, best = summarize(histories, args.iterations)
        scores = np.array([np.nan if f is None else f.mean() for f in finals.get((env_id, policy), [])])
        rows.append(
            {
                "task": env_id,
                "policy": POLICY_LABELS[policy],
                "final_mean": final.mean(),
                "final_std": final.std(),
                "best_mean": best.mean(),
                "best_std": best.std(),
                "final_policy_mean": scores.mean() if scores.size else np.nan,
                "final_policy_std": scores.std() if scores.size else np.nan,
                "seconds_mean": np.mean([h[args.iterations - 1]["total_seconds"] for h in histories]),
                "seeds": len(final),
            }
        )
    with open(os.path.join(args.out, "table.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    episodes = args.eval_episodes
    keys = ["final", "best"] + (["final_policy"] if episodes else [])
    headers = ["final return", "best return"] + ([f"final policy, {episodes} episodes"] if episodes else [])
    what = "Final and best return: one centre episode each" + (
        f"; final policy: the mean of {episodes} episodes (reset seeds 0, 1, …) of the policy a run ended with"
        if episodes
        else ""
    )
    lines = [
        f"{args.iterations} ES iterations, k = {args.perturbations}, mean ± std over seeds (ddof = 0). {what}.",
        "",
        f"| task | policy | {' | '.join(headers)} | wall time (s) | seeds |",
        "|---|---|" + "---|" * len(keys) + "---|---|",
    ]
    for r in rows:
        cells = " | ".join(f"{r[f'{key}_mean']:.1f} ± {r[f'{key}_std']:.1f}" for key in keys)
        lines.append(f"| {r['task']} | {r['policy']} | {cells} | {r['seconds_mean']:.0f} | {r['seeds']} |")
    if episodes:
        lines.append("")
        for env_id in dict.fromkeys(r["task"] for r in rows):
            ranked = sorted(
                (r for r in rows if r["task"] == env_id),
                key=lambda r: -np.nan_to_num(r["final_policy_mean"], nan=-np.inf),
            )
            lines.append(
                f"- {env_id}, ranked by the final policy's score: "
                + " > ".join(f"{r['policy']} ({r['final_policy_mean']:.1f})" for r in ranked)
            )
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "command.json"), "w") as f:
        json.dump({"command": "python " + " ".join(args.argv), "seconds": round(seconds, 1)}, f, indent=2)
    plot(results, args)
    print("\n".join(lines))


def measure_costs(args):
    """{(task, policy): seconds per million environment steps} of an ES iteration at the runs' settings, side by side."""
    configs = {}
    for env_id in args.envs:
        for policy in args.policies:
            config = dataclasses.replace(make_config(env_id, policy, 0, args), iterations=args.cost_iterations)
            configs[env_id, policy] = config
    return runs.side_by_side_costs(configs, workers=args.workers, rounds=args.cost_rounds)


def write_costs(costs, args, seconds):
    """costs.json (the command and a row per policy) and costs.md; returns the rows."""
    rows = []
    for (env_id, policy), cost in costs.items():
        info = es.env_info(env_id)
        reference = costs.get((env_id, "odetoode"), np.nan)
        rows.append(
            {
                "task": env_id,
                "policy": POLICY_LABELS[policy],
                "parameters": es.count_params(
                    policy, info.obs_dim, info.act_dim, args.hidden, match_params=policy != "odetoode"
                ),
                "seconds_per_m_steps": cost,
                "odetoode_ratio": cost / reference,
            }
        )
    command = "python " + " ".join(args.argv)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "costs.json"), "w") as f:
        json.dump({"command": command, "seconds": round(seconds, 1), "rows": rows}, f, indent=2)
    workers = "in-process" if not args.workers else f"{args.workers} worker processes"
    lines = [
        f"Seconds per million environment steps of an ES iteration (rollouts and update; k = {args.perturbations}, "
        f"{args.episode_length}-step episodes, {workers}): each policy {args.cost_iterations} iterations, the "
        f"policies in turns, {args.cost_rounds} round{'s' if args.cost_rounds > 1 else ''}; the median over the iterations, each round's first left out.",
        "",
        f"    {command}",
        "",
        "| task | policy | parameters | s per M steps | × ODEtoODE |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['policy']} | {r['parameters']:,} | {r['seconds_per_m_steps']:.0f} "
            f"| {r['odetoode_ratio']:.2f} |"
        )
    with open(os.path.join(args.out, "costs.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


def plot(results, args):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    envs = list(dict.fromkeys(env for env, _ in results))
    fig = Figure(figsize=(5.5 * len(envs), 4))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(envs)))
    for ax, env_id in zip(axes, envs):
        for (env, policy), histories in results.items():
            if env != env_id:
                continue
            curves, _, _ = summarize(histories, args.iterations)
            x = np.arange(1, curves.shape[1] + 1)
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(x, mean, label=POLICY_LABELS[policy], lw=2 if policy == "odetoode" else 1)
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set_title(env_id)
        ax.set_xlabel("ES iteration")
        ax.set_ylabel(f"centre-policy return (mean ± std, {len(args.seeds)} seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "fig2.png"), dpi=100)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["Swimmer-v5", "HalfCheetah-v5"])
    parser.add_argument("--policies", nargs="+", default=list(POLICY_LABELS), choices=list(POLICY_LABELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--hidden", type=int, default=16, help="ODEtoODE's width (64 for Humanoid); baselines matched to its size"
    )
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--perturbations", type=int, default=50)
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0, help="0: in-process; N: N worker processes")
    parser.add_argument("--out", default="benchmarks/results/fig2")
    parser.add_argument(
        "--eval-episodes", type=int, default=10, help="episodes scoring each run's final policy (0: none)"
    )
    parser.add_argument(
        "--cost-iterations",
        type=int,
        default=0,
        help="instead of the runs: each policy's seconds per environment step over this many throwaway "
        "iterations, the policies in turns, into OUT/costs.md and costs.json (0: the runs)",
    )
    parser.add_argument("--cost-rounds", type=int, default=2, help="rounds of --cost-iterations, in turns")
    args = parser.parse_args(argv)
    args.argv = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    if args.eval_episodes < 0:
        parser.error(f"--eval-episodes must be ≥ 0 (0: no final evaluation). Received: {args.eval_episodes}")
    if args.cost_iterations != 0 and args.cost_iterations < 2:
        parser.error(
            "--cost-iterations must be 0 or ≥ 2 (each round's first iteration compiles and is left out). "
            f"Received: {args.cost_iterations}"
        )
    if args.cost_rounds < 1:
        parser.error(f"--cost-rounds must be ≥ 1. Received: {args.cost_rounds}")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    if args.cost_iterations:
        write_costs(measure_costs(args), args, time.time() - start)
        return
    results, finals = {}, {}
    for env_id in args.envs:
        for policy in args.policies:
            histories, scores = [], []
            for seed in args.seeds:
                t = time.time()
                logdir, history = run_one(env_id, policy, seed, args)
                histories.append(history)
                line = f"{env_id} {policy} seed {seed}: final {history[args.iterations - 1]['reward_centre']:.1f}"
                if args.eval_episodes:
                    scores.append(runs.score_checkpoint(logdir, args.iterations, args.eval_episodes))
                    if scores[-1] is not None:
                        line += f", final policy {scores[-1].mean():.1f} over {args.eval_episodes} episodes"
                print(f"{line} ({time.time() - t:.0f} s)", flush=True)
            results[(env_id, policy)] = histories
            finals[(env_id, policy)] = scores
    write_outputs(results, finals, args, time.time() - start)


if __name__ == "__main__":
    main()
