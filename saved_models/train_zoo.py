"""Train one of the zoo's ES policies until its learning curve plateaus, then make its entry.

The run is `keras-odetoode es` (the command its card records) for `--min-iterations`
iterations; then, while its centre return gained more than 5 % over its last fifth
(`keras_odetoode.es.runs.plateau_gain`), it is continued with `--resume` by a quarter
more iterations, up to `--max-iterations`. Everything resumes: re-run the same command
after an interruption and finished iterations are not repeated. At the end,
`make_zoo.py policy` exports the run's best centre policy, scores it on 10 episodes and
writes its card with the task's goal and published scores (`POLICIES`).

    python saved_models/train_zoo.py swimmer_odetoode --runs runs/zoo --workers 2
    python saved_models/train_zoo.py halfcheetah_odetoode --runs runs/zoo --workers 2 -- --perturbations 50

Flags after `--` go to `keras-odetoode es` (the ES options; the preset is `paper` unless
one is given there).
"""

import argparse
import csv
import math
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

_ARS = "ARS's threshold (Mania et al. 2018, Table 1, on -v1)"
_SB3 = "the SB3 RL Zoo's ARS agent on {task} (rl-baselines3-zoo benchmark.md)"

#: The zoo's ES policies: name → task, the return aimed at and published scores on the task.
POLICIES = {
    "swimmer_odetoode": {
        "env": "Swimmer-v5",
        "goal": (325.0, _ARS),
        "references": [f"355.3 ± 12.8 after 2 M steps, {_SB3.format(task='Swimmer-v3')}"],
    },
    "halfcheetah_odetoode": {
        "env": "HalfCheetah-v5",
        "goal": (3000.0, _ARS),
        "references": [f"4815.2 ± 1340.8 after 12 M steps, {_SB3.format(task='HalfCheetah-v3')}"],
    },
    "hopper_odetoode": {
        "env": "Hopper-v5",
        "goal": (3120.0, _ARS),
        "references": [f"3343.9 ± 5.7 after 7 M steps, {_SB3.format(task='Hopper-v3')}"],
    },
    "cheetah_run_odetoode": {
        "env": "dm_control/cheetah-run-v0",
        "goal": None,
        "references": ["none from ARS (Mania et al. 2018) or the SB3 RL Zoo, which report no DeepMind Control task"],
    },
}


def progress_rewards(logdir):
    """The centre rewards of the run in `logdir`, one per iteration done (empty if none)."""
    path = os.path.join(logdir, "progress.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return [float(row["reward_centre"]) for row in csv.DictReader(f)]


def es_command(env_id, logdir, iterations, workers, es_args):
    """The `keras-odetoode es` command of a zoo run, without `--resume` (run as this Python's module)."""
    return [sys.executable, "-m", "keras_odetoode.cli", "es", "--env", env_id, "--policy", "odetoode", *es_args,
            "--iterations", str(iterations), "--workers", str(workers), "--logdir", logdir]  # fmt: skip


def train(name, runs_dir, min_iterations, max_iterations, workers, es_args, log=print):
    """Train (or continue) the run of `name` to a plateau or `max_iterations`; returns its directory."""
    from keras_odetoode.es import checkpoint, runs

    logdir = os.path.join(runs_dir, name)
    env_id = POLICIES[name]["env"]
    iterations = max(min_iterations, len(progress_rewards(logdir)))
    while True:
        started = checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints")) if os.path.isdir(logdir) else []
        done = len(progress_rewards(logdir))
        if done < iterations:
            command = es_command(env_id, logdir, iterations, workers, es_args) + (["--resume"] if started else [])
            log(f"{name}: {shlex.join(['keras-odetoode', *command[3:]])}")
            if subprocess.run(command).returncode:  # Ctrl-C included: the run saved a checkpoint
                raise SystemExit(f"{name}: keras-odetoode es stopped; run this again to continue")
        rewards = progress_rewards(logdir)
        if done < iterations and len(rewards) < iterations:
            raise SystemExit(
                f"{name}: the run stopped at {len(rewards)} of {iterations} iterations (a --max-env-steps budget?); "
                "a plateau needs its iterations"
            )
        gain = runs.plateau_gain(rewards)
        log(f"{name}: {len(rewards)} iterations, gain over the last fifth {gain:+.1%}")
        if gain <= runs.PLATEAU_GAIN or len(rewards) >= max_iterations:
            return logdir
        iterations = min(max_iterations, math.ceil(1.25 * len(rewards)))


def recorded_commands(logdir):
    """The command lines that trained the run in `logdir`, as its last checkpoint recorded them."""
    from keras_odetoode.es import checkpoint

    return [command for command in checkpoint.load_latest(os.path.join(logdir, "checkpoints")).commands if command]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(POLICIES))
    parser.add_argument("--runs", required=True, help="where the ES run directory goes (<runs>/<name>)")
    parser.add_argument("--min-iterations", type=int, default=300)
    parser.add_argument("--max-iterations", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=10, help="episodes the exported policy is scored on")
    parser.add_argument("--zoo", default=HERE, help="the folder the entry goes in (default: saved_models/)")
    parser.add_argument("--note", action="append", default=[], help="a line for the card, e.g. why this seed")
    argv = sys.argv[1:] if argv is None else list(argv)
    es_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if not 21 <= args.min_iterations <= args.max_iterations:  # 21: the least plateau_gain measures
        raise SystemExit(
            f"--min-iterations must be at least 21 and at most --max-iterations. "
            f"Received {args.min_iterations} and {args.max_iterations}."
        )
    logdir = train(args.name, args.runs, args.min_iterations, args.max_iterations, args.workers, es_args)
    sys.path.insert(0, HERE)
    import make_zoo

    entry = POLICIES[args.name]
    zoo_args = ["policy", logdir, args.name, "--episodes", str(args.episodes), "--zoo", args.zoo,
                "--train-command", "\n".join(recorded_commands(logdir))]  # fmt: skip
    if entry["goal"] is not None:
        zoo_args += ["--goal", str(entry["goal"][0]), "--goal-source", entry["goal"][1]]
    for reference in entry["references"]:
        zoo_args += ["--reference", reference]
    for note in args.note:
        zoo_args += ["--note", note]
    make_zoo.main(zoo_args)


if __name__ == "__main__":
    main()
