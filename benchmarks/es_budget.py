"""Learning per environment step: ES configurations side by side on one budget of steps.

Every (task, configuration, seed) trains ISO-ODEtoODE (hidden 16, the isospectral flow,
the paper's policy) until the first ES iteration at which the run has taken `--budget`
environment steps (the trainer's `max_env_steps`). Steps are counted as progress.csv
counts them: the k perturbations' episodes and the centre policy's one, every iteration.
So a run takes (k + 1)·1000 steps an iteration on Swimmer and HalfCheetah (no early
termination), and the centre's episodes take 1/(k + 1) of its budget: 1/17 at k = 16,
1/201 at k = 200.

Each run is a resumable ES run directory (`<out>/runs/<task>-<configuration>-s<seed>`):
an interrupted sweep continues where it stopped, and a finished run is not repeated.
Writes:

* `table.md` / `table.csv`: per task and configuration, the centre-policy return of the
  first iteration at which the run had taken ¼, ½ and all of the budget, mean ± std over
  seeds; the iterations, environment steps and wall time (the sum of the iterations'
  `seconds`: rollouts and update, not checkpoints nor logs) the runs took, and the median
  iteration's seconds per million steps (less sensitive to a busy spell on a shared
  machine than the sum). std is over seeds with ddof = 0 (numpy's default): with 3 seeds
  the sample std is √(3/2) ≈ 1.22× larger. Each centre return is one episode, run before that iteration's update: a
  noisy reading where the curve oscillates. So the table also gives the policy each run
  ended with (θ after the budget's last update), scored over `--eval-episodes` episodes
  (reset seeds 0, 1, …) as `keras-odetoode evaluate RUN --policy latest` scores it; the
  score is kept in the run directory (`scores.json`) and not recomputed.
* `es_budget.png`: centre return against environment steps (top) and against wall time
  (bottom), mean ± std over seeds; the wall-time curves end at the fastest seed's end.
* `costs.json` (with `--cost-iterations N`): each configuration's seconds per million
  environment steps, measured side by side (`measure_costs`): the sweep's own wall times
  are only as good as the machine was quiet during hours of runs. With it, the table
  gives each run's steps at that cost, and the plot's wall time is that.
* `command.json`: the command, its duration and the versions it ran with.

The configurations (`CONFIGS`, chosen with `--configs`) are the paper's settings (k = 200,
σ = 0.1, lr = 0.01, z-score, SGD, every pair), the same with k = 50 and k = 16, and at one
of these k one more option changed: top directions, Adam, or a cosine schedule; one
added after the first seed's results, top directions and the cosine schedule together; and,
for tasks that pay a healthy reward of 1 a step (Hopper, Walker2d), top directions with
ARS's survival-bonus shift (`reward_shift`).

    MUJOCO_GL=disable python benchmarks/es_budget.py --envs Swimmer-v5 HalfCheetah-v5 \\
        --seeds 0 1 2 --budget 5000000 --workers 2 --out benchmarks/results/es_budget
"""

import argparse
import csv
import functools
import json
import math
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

#: Name → `ESConfig` options on top of the paper preset, and what the configuration is.
CONFIGS = {
    "paper": ({}, "the paper: k = 200, σ = 0.1, lr = 0.01, z-score, SGD"),
    "k50": ({"perturbations": 50}, "k = 50"),
    "k16": ({"perturbations": 16}, "k = 16"),
    "k16-top4": ({"perturbations": 16, "top_directions": 4}, "k = 16, the best 4 of 8 pairs (ARS V2-t)"),
    "k50-top10": ({"perturbations": 50, "top_directions": 10}, "k = 50, the best 10 of 25 pairs (ARS V2-t)"),
    "k50-adam": ({"perturbations": 50, "optimizer": "adam"}, "k = 50, Adam (lr 0.01)"),
    "k50-cosine": (
        {"perturbations": 50, "learning_rate": 0.02, "lr_schedule": "cosine"},
        "k = 50, cosine decay from lr 0.02 to 0 over the budget (mean lr 0.01)",
    ),
    # Added after seed 0 of the sweep above, where k50-top10 led on HalfCheetah and k50-cosine on Swimmer.
    "k50-top10-cosine": (
        {"perturbations": 50, "top_directions": 10, "learning_rate": 0.02, "lr_schedule": "cosine"},
        "k = 50, the best 10 of 25 pairs, cosine decay from lr 0.02 to 0 (added after seed 0)",
    ),
    # For the tasks with a healthy reward (Hopper, Walker2d: 1 a step), beside k50-top10.
    "k50-top10-shift1": (
        {"perturbations": 50, "top_directions": 10, "reward_shift": 1.0},
        "k = 50, the best 10 of 25 pairs, fitness = return − 1 per step (ARS's survival-bonus shift)",
    ),
}
#: The fractions of the budget the table reports the return at.
FRACTIONS = (0.25, 0.5, 1.0)


def run_dir(out, env_id, name, seed):
    return os.path.join(out, "runs", f"{env_id.replace('/', '_')}-{name}-s{seed}")


def make_config(env_id, name, seed, budget, episode_length):
    """The `ESConfig` of configuration `name` on `env_id` with `seed`, stopped by `budget` steps.

    `iterations` is only a bound (every episode takes at least one step); a schedule
    decays over the iterations the budget allows when every episode is full length,
    as on Swimmer and HalfCheetah.
    """
    from keras_odetoode import es
    from keras_odetoode.es import runs

    options = dict(CONFIGS[name][0])
    members = options.get("perturbations", es.PRESETS["paper"]["perturbations"]) + 1  # and the centre
    if options.get("lr_schedule", "constant") != "constant":
        options["lr_decay_iterations"] = math.ceil(budget / (members * episode_length))
    return runs.make_config(
        env_id,
        es.env_info(env_id),
        policy="odetoode",
        flow="isospectral",
        iterations=math.ceil(budget / members),
        max_env_steps=budget,
        seed=seed,
        episode_length=episode_length,
        **options,
    )


def finished(logdir, budget):
    """Whether the run in `logdir` has taken `budget` environment steps."""
    from keras_odetoode.es import checkpoint

    latest = checkpoint.load_latest(os.path.join(logdir, "checkpoints")) if os.path.isdir(logdir) else None
    return latest is not None and bool(latest.history) and latest.history[-1]["total_env_steps"] >= budget


def run_one(env_id, name, seed, args):
    """Train (or resume, or skip if it has taken the budget) one run; returns its directory."""
    from keras_odetoode import es

    logdir = run_dir(args.out, env_id, name, seed)
    if finished(logdir, args.budget):
        return logdir
    config = make_config(env_id, name, seed, args.budget, args.episode_length)
    info = es.env_info(env_id)
    policy_fn = functools.partial(es.build_policy, config.policy, info.obs_dim, info.act_dim, **config.policy_kwargs)
    started = es.checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))
    backend = es.make_backend("local", es.env_factory(env_id, config.episode_length), policy_fn, workers=args.workers)
    try:
        es.train(config, policy_fn, backend, logdir=logdir, resume="latest" if started else None, progress=False)
    except ValueError as error:
        raise SystemExit(f"{logdir}: {error}. Choose another --out for other settings.") from None
    finally:
        backend.close()
    return logdir


def read_progress(logdir):
    """progress.csv of a run as {column: float array}."""
    with open(os.path.join(logdir, "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{logdir}/progress.csv has no iterations yet")
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}


def value_at(x, where, values):
    """values[i] of the first i with where[i] ≥ x (where ascending); NaN if none is."""
    index = np.searchsorted(where, x, side="left")
    return np.where(index < len(where), values[np.minimum(index, len(where) - 1)], np.nan)


def up_to_budget(progress, budget):
    """The rows of `progress` up to the first at which the run had taken `budget` steps."""
    last = int(np.searchsorted(progress["total_env_steps"], budget, side="left"))
    return {key: column[: last + 1] for key, column in progress.items()}


def evaluate_final(logdir, budget, episodes):
    """Returns of `episodes` episodes (reset seeds 0 … episodes − 1) of the policy the run had after `budget`.

    That policy is the centre after the iteration that reached the budget, scored as
    `keras-odetoode evaluate CHECKPOINT --policy latest` scores it (`es.runs.score_checkpoint`,
    which keeps the scores in the run directory). None if that checkpoint is no longer
    kept (the run went on past the budget).
    """
    from keras_odetoode.es import runs

    return runs.score_checkpoint(logdir, len(up_to_budget(read_progress(logdir), budget)["iteration"]), episodes)


def measure_costs(envs, configs, episode_length, workers, iterations=4, rounds=2):
    """{(task, configuration): seconds per million environment steps}, measured side by side.

    Each configuration trains `iterations` throwaway ES iterations (seed 0), in turns,
    `rounds` times over (`es.runs.side_by_side_costs`: the median over the iterations,
    each round's first left out). On Swimmer and HalfCheetah an episode always has
    1000 steps, so an iteration's cost does not change as the policy learns.
    """
    import dataclasses

    from keras_odetoode.es import runs

    measured = {}
    for env_id in envs:
        for name in configs:
            # `iterations` of the configuration, not a budget (a schedule's horizon does not change the cost)
            config = make_config(env_id, name, seed=0, budget=1, episode_length=episode_length)
            measured[env_id, name] = dataclasses.replace(config, iterations=iterations, max_env_steps=None)
    return runs.side_by_side_costs(measured, workers=workers, rounds=rounds)


def write_costs(costs, path):
    """costs.json: [{"task", "config", "seconds_per_m_steps"}], merged into what `path` holds."""
    from keras_odetoode.atomic import write_text_atomic

    merged = {**read_costs(path), **costs}
    rows = [{"task": t, "config": c, "seconds_per_m_steps": v} for (t, c), v in merged.items()]
    write_text_atomic(path, json.dumps(rows, indent=2))


def read_costs(path):
    """`write_costs`' file as {(task, configuration): seconds per million steps}; {} if there is none."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {(row["task"], row["config"]): row["seconds_per_m_steps"] for row in json.load(f)}


def summarize(progresses, budget, finals=None, cost=None):
    """Per-seed numbers of one (task, configuration) and their mean ± std (ddof 0) over seeds.

    `finals`: per seed, the final policy's evaluation returns (`evaluate_final`), or None.
    `cost`: the configuration's seconds per million steps measured side by side
    (`measure_costs`), or None.
    """
    runs = [up_to_budget(p, budget) for p in progresses]
    per_seed = {
        f"return_at_{fraction:g}": np.array(
            [value_at(fraction * budget, r["total_env_steps"], r["reward_centre"]) for r in runs]
        )
        for fraction in FRACTIONS
    }
    per_seed["iterations"] = np.array([len(r["iteration"]) for r in runs], float)
    per_seed["env_steps"] = np.array([r["total_env_steps"][-1] for r in runs])
    per_seed["seconds"] = np.array([r["total_seconds"][-1] for r in runs])
    # Robust to a busy spell on a shared machine: the median iteration's seconds per million steps.
    per_seed["seconds_per_m"] = np.array([np.median(r["seconds"] / r["env_steps"]) * 1e6 for r in runs])
    if finals is not None:
        per_seed["final_policy"] = np.array([np.nan if f is None else np.mean(f) for f in finals])
    if cost is not None:
        per_seed["seconds_side_by_side"] = np.array([r["total_env_steps"][-1] * cost / 1e6 for r in runs])
    summary = {"seeds": len(runs), "reached_budget": int(sum(r["total_env_steps"][-1] >= budget for r in runs))}
    for key, values in per_seed.items():
        summary[f"{key}_mean"], summary[f"{key}_std"] = float(np.mean(values)), float(np.std(values))
    return summary


def write_table(results, budget, out, finals=None, episodes=None, costs=None):
    """table.csv and table.md from {(task, configuration): [progress per seed]}; returns the markdown.

    `finals`: {(task, configuration): [final evaluation returns per seed]} from
    `evaluate_final` with `episodes` episodes, or None for no such column. `costs`:
    {(task, configuration): seconds per million steps} from `measure_costs`, or None.
    """
    costs = costs or {}
    rows = [
        {
            "task": key[0],
            "config": key[1],
            **summarize(progresses, budget, None if finals is None else finals[key], costs.get(key)),
        }
        for key, progresses in results.items()
    ]
    with open(os.path.join(out, "table.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    keys = [f"return_at_{f:g}" for f in FRACTIONS] + ([] if finals is None else ["final_policy"])
    headers = [f"return at {f:g} × budget" for f in FRACTIONS]
    note = ""
    if finals is not None:
        headers.append(f"final policy, {episodes} episodes")
        note = (
            f" The return at a fraction of the budget is one episode of the centre policy; the final policy's "
            f"is the mean of {episodes} episodes (reset seeds 0…{episodes - 1}) of the policy each run ended with."
        )
    side_by_side = ""
    if costs:
        note += (
            " Side by side: each configuration's seconds per million steps measured in turns on the same machine "
            "(`measure_costs`), and the run's steps at that cost."
        )
        side_by_side = " | side by side: s per M steps | wall time at that cost (s)"
    lines = [
        f"Budget {budget:,} environment steps per run; mean ± std over seeds (ddof = 0).{note}",
        "",
        f"| task | configuration | {' | '.join(headers)} | iterations | env steps | wall time (s) "
        f"| s per M steps (median iteration){side_by_side} | seeds at budget |",
        "|---|---|" + "---|" * len(keys) + "---|---|---|---|" + ("---|---|" if costs else "") + "---|",
    ]
    for r in rows:
        returns = " | ".join(f"{r[f'{key}_mean']:.1f} ± {r[f'{key}_std']:.1f}" for key in keys)
        measured = ""
        if costs:
            cost = costs.get((r["task"], r["config"]))
            measured = " | – | –" if cost is None else f" | {cost:.0f} | {r['seconds_side_by_side_mean']:.0f}"
        lines.append(
            f"| {r['task']} | {r['config']} | {returns} | {r['iterations_mean']:.0f} | "
            f"{r['env_steps_mean']:,.0f} | {r['seconds_mean']:.0f} ± {r['seconds_std']:.0f} | "
            f"{r['seconds_per_m_mean']:.0f}{measured} | {r['reached_budget']}/{r['seeds']} |"
        )
    choice = choice_lines(rows) if finals is not None else []
    if choice:
        lines += ["", *choice]
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(markdown)
    return markdown


def mean_ranks(rows):
    """{configuration: its rank by final-policy score (1 = best), averaged over the tasks}."""
    ranks = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        ranked = sorted(
            (r for r in rows if r["task"] == task), key=lambda r: -np.nan_to_num(r["final_policy_mean"], nan=-np.inf)
        )
        for rank, r in enumerate(ranked, 1):
            ranks.setdefault(r["config"], []).append(rank)
    return {config: float(np.mean(values)) for config, values in ranks.items()}


def choose(rows, baseline="paper"):
    """The preset rule fixed in benchmarks/results/es_budget/README.md, applied to `write_table`'s rows.

    A configuration learns clearly faster on a task if its mean final-policy score exceeds
    `baseline`'s by more than the sum of the two stds over seeds. Returns (qualified,
    preset, zoo): the configurations that do so on every task; among them the best mean
    rank over the tasks (ties: the less wall time, at the side-by-side cost if measured),
    or None; and the best mean rank among the constant learning rates, `baseline`
    included (the zoo's).
    """
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    by = {(r["task"], r["config"]): r for r in rows}
    ranks = mean_ranks(rows)
    clock = "seconds_side_by_side_mean" if all("seconds_side_by_side_mean" in r for r in rows) else "seconds_mean"
    seconds = {c: sum(by[t, c][clock] for t in tasks) for c in ranks}

    def clearly_faster(config, task):
        r, base = by[task, config], by[task, baseline]
        return r["final_policy_mean"] - base["final_policy_mean"] > r["final_policy_std"] + base["final_policy_std"]

    def best(configs):
        return min(configs, key=lambda c: (ranks[c], seconds[c])) if configs else None

    qualified = [c for c in ranks if c != baseline and all(clearly_faster(c, t) for t in tasks)]
    constant = [c for c in ranks if CONFIGS.get(c, ({},))[0].get("lr_schedule", "constant") == "constant"]
    return qualified, best(qualified), best(constant)


def choice_lines(rows, baseline="paper"):
    """What the preset rule chooses, as the lines under the table; none without `baseline` on every task."""
    tasks = {r["task"] for r in rows}
    if tasks != {r["task"] for r in rows if r["config"] == baseline}:
        return []
    qualified, preset, zoo = choose(rows, baseline)
    ranks = mean_ranks(rows)
    seeds = min(r["seeds"] for r in rows)
    listed = ", ".join(f"{c} ({ranks[c]:g})" for c in sorted(ranks, key=ranks.get))
    return [
        f"Mean rank by final-policy score over the tasks: {listed}.",
        "Clearly faster than the paper's settings on every task (mean above the paper's by more than the two "
        f"stds): {', '.join(qualified) or 'none'}. The preset rule (README) chooses: "
        + (f"**{preset}**" if preset else "none (paper stays the only preset)")
        + f"; the zoo's constant learning rate: **{zoo}**"
        + (f" (from {seeds} seed{'s' if seeds > 1 else ''}: the rule is for 3)." if seeds < 3 else "."),
    ]


def plot(results, budget, path, costs=None):
    """Centre return against environment steps (top row) and wall time (bottom row), one column per task.

    With `costs` (`measure_costs`), a run's wall time is its steps at its configuration's
    side-by-side cost; without, the seconds its iterations took.
    """
    costs = costs or {}
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    envs = list(dict.fromkeys(env for env, _ in results))
    fig = Figure(figsize=(5.5 * len(envs), 8))
    FigureCanvasAgg(fig)
    axes = np.array(fig.subplots(2, len(envs), squeeze=False))
    for column, env_id in enumerate(envs):
        for (env, name), progresses in results.items():
            if env != env_id:
                continue
            runs = [up_to_budget(p, budget) for p in progresses]
            if costs:
                cost = costs.get((env, name), np.nan)
                runs = [{**r, "total_seconds": r["total_env_steps"] * cost / 1e6} for r in runs]
            for ax, key, end in (
                (axes[0, column], "total_env_steps", budget),
                (axes[1, column], "total_seconds", min(r["total_seconds"][-1] for r in runs)),
            ):
                if not np.isfinite(end):
                    continue  # no side-by-side cost for this configuration
                x = np.linspace(0.0, end, 200)
                curves = np.array([value_at(x, r[key], r["reward_centre"]) for r in runs])
                mean, std = curves.mean(0), curves.std(0)
                ax.plot(x, mean, label=name, lw=2 if name == "paper" else 1)
                ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        seeds = len(next(p for (env, _), p in results.items() if env == env_id))
        clock = "wall time at the side-by-side cost (s)" if costs else "wall time (s, rollouts and updates)"
        for row, xlabel in enumerate(("environment steps", clock)):
            ax = axes[row, column]
            ax.set_title(env_id)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"centre-policy return (mean ± std, {seeds} seeds)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def versions():
    import importlib.metadata

    found = {}
    for package in ("tensorflow", "keras", "gymnasium", "mujoco"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["Swimmer-v5", "HalfCheetah-v5"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=5_000_000, help="environment steps per run")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0, help="0: in-process; N: N worker processes")
    parser.add_argument("--out", default="benchmarks/results/es_budget")
    parser.add_argument(
        "--eval-episodes", type=int, default=10, help="episodes scoring each run's final policy (0: none)"
    )
    parser.add_argument(
        "--cost-iterations",
        type=int,
        default=0,
        help="measure each configuration's seconds per step side by side over this many throwaway iterations "
        "(twice, in turns) into OUT/costs.json; 0: use what costs.json holds",
    )
    args = parser.parse_args(argv)
    if args.budget < 1:
        parser.error(f"--budget must be ≥ 1. Received: {args.budget}")
    if args.eval_episodes < 0:
        parser.error(f"--eval-episodes must be ≥ 0 (0: no final evaluation). Received: {args.eval_episodes}")
    if args.cost_iterations != 0 and args.cost_iterations < 2:
        parser.error(
            "--cost-iterations must be 0 or ≥ 2 (each round's first iteration compiles and is left out). "
            f"Received: {args.cost_iterations}"
        )

    start = time.time()
    results, finals = {}, {}
    for env_id in args.envs:
        for name in args.configs:
            progresses, evaluations = [], []
            for seed in args.seeds:
                t = time.time()
                logdir = run_one(env_id, name, seed, args)
                progresses.append(read_progress(logdir))
                reached = up_to_budget(progresses[-1], args.budget)
                line = (
                    f"{env_id} {name} seed {seed}: return {reached['reward_centre'][-1]:.1f} after "
                    f"{reached['total_env_steps'][-1]:,.0f} steps, {len(reached['iteration'])} iterations"
                )
                if args.eval_episodes:
                    evaluations.append(evaluate_final(logdir, args.budget, args.eval_episodes))
                    final = evaluations[-1]
                    line += (
                        "; its policy's checkpoint is no longer kept"
                        if final is None
                        else f"; final policy {final.mean():.1f} ± {final.std():.1f} over {final.size} episodes"
                    )
                print(f"{line} ({time.time() - t:.0f} s)", flush=True)
            results[(env_id, name)] = progresses
            finals[(env_id, name)] = evaluations
    os.makedirs(args.out, exist_ok=True)
    costs_path = os.path.join(args.out, "costs.json")
    if args.cost_iterations:
        measured = measure_costs(args.envs, args.configs, args.episode_length, args.workers, args.cost_iterations)
        write_costs(measured, costs_path)
    costs = read_costs(costs_path)
    episodes = args.eval_episodes or None
    markdown = write_table(results, args.budget, args.out, finals if episodes else None, episodes, costs)
    plot(results, args.budget, os.path.join(args.out, "es_budget.png"), costs)
    with open(os.path.join(args.out, "command.json"), "w") as f:
        record = {
            "command": "python " + " ".join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
            "seconds": round(time.time() - start, 1),
            "configs": {name: CONFIGS[name][1] for name in args.configs},
            "versions": versions(),
        }
        json.dump(record, f, indent=2)
    print(markdown)


if __name__ == "__main__":
    main()
