"""An ES run as the `keras-odetoode es` command makes it: check, train, export.

`make_config` turns the options of a run into an `ESConfig`; `run` checks
everything it can before it starts (the configuration, the run directory, the
checkpoint it resumes), trains with `trainer.train`, and exports the best
centre policy to `<logdir>/policy` for serving, also when it is interrupted.
"""

import functools
import math
import os
import shlex
import sys

import numpy as np

from keras_odetoode.es import backends, checkpoint, envs, policies, rollouts, trainer

EXPORT_DIR = "policy"
EXIT_INTERRUPTED = 130
#: where `score_checkpoint` keeps the scores of a run's checkpoints
SCORES_FILE = "scores.json"


def default_logdir(env_id, policy, seed):
    """runs/<env>-<policy>-s<seed>, the run directory when none is given."""
    return os.path.join("runs", f"{env_id.replace('/', '_')}-{policy}-s{seed}")


def make_config(
    env_id,
    info,
    policy="odetoode",
    hidden=16,
    flow="isospectral",
    num_gates=1,
    gate_inputs="time",
    match_params=False,
    **options,
):
    """The `ESConfig` of a run on `env_id` (whose `envs.EnvInfo` is `info`).

    Args:
        policy, hidden, flow, num_gates, gate_inputs: `policies.build_policy`'s.
        match_params: give a baseline policy at least ODEtoODE's parameter
            count (`policies.matched_hidden`).
        **options: the other `ESConfig` fields (iterations, preset, perturbations, ...);
            an option of the preset given as None takes the preset's value.
    """
    if gate_inputs != "time" and (policy, flow) != ("odetoode", "gated"):
        raise ValueError(
            f"--gate-inputs is an option of --policy odetoode --flow gated. Received: --policy {policy} "
            f"--flow {flow} --gate-inputs {gate_inputs}. Expected: --policy odetoode --flow gated, "
            "or no --gate-inputs"
        )
    if match_params and policy not in ("odetoode", "hypernet"):
        hidden = policies.matched_hidden(policy, info.obs_dim, info.act_dim, hidden, flow=flow, num_gates=num_gates)
    return trainer.ESConfig(
        env_id=env_id,
        policy=policy,
        policy_kwargs={
            "hidden": hidden,
            "flow": flow,
            "num_gates": num_gates,
            "gate_inputs": gate_inputs,
            "seed": options.get("seed", 0),
        },
        **options,
    )


def describe_update(config):
    """The ES update of `config` in a few words: "preset paper: k=200, σ=0.1, lr=0.01, ..."."""
    parts = [f"k={config.perturbations}", f"σ={config.sigma}", f"lr={config.learning_rate}"]
    if config.lr_schedule != "constant":
        parts[-1] += f" → {config.lr_final} ({config.lr_schedule} over {config.lr_decay_iterations} iterations)"
    if config.top_directions is not None:
        parts.append(f"top {config.top_directions} of {config.perturbations // 2} pairs")
    parts += [config.fitness_shaping, config.optimizer] + ([] if config.antithetic else ["no antithetic pairs"])
    if config.reward_shift:
        parts.append(f"fitness = return − {config.reward_shift:g} per step")
    return f"preset {config.preset}: {', '.join(parts)}"


def _print(message):
    print(message, file=sys.stderr)


def run(
    config,
    info,
    logdir,
    backend="local",
    workers=0,
    address=None,
    jit_compile=True,
    resume=None,
    progress=True,
    command=None,
    log=_print,
):
    """Train `config` into `logdir` and export its best policy; returns the exit status.

    Args:
        config: the `ESConfig`.
        info: the environment's `envs.EnvInfo`.
        logdir: the run directory.
        backend, workers, address, jit_compile: `backends.make_backend`'s.
        resume: None, "latest" or a checkpoint path (`trainer.train`).
        progress: show a progress bar.
        command: this invocation's command line (list of strings), recorded.
        log: where messages go (stderr).

    Returns:
        0 after a finished run, 130 after Ctrl-C (the checkpoint saved and the
        best policy so far exported), 1 if no finite reward was obtained.
    """
    trainer.check_logdir(logdir, resume)
    policy_fn = functools.partial(
        policies.build_policy, config.policy, info.obs_dim, info.act_dim, **config.policy_kwargs
    )
    model = policy_fn()
    config.strategy(rollouts.PopulationPolicy(model).specs)  # checks k, σ, lr, ... before anything starts
    start = "from scratch"
    if resume is not None:
        resume = trainer.resume_path(logdir, resume)
        done = trainer.check_resume(config, resume).state.iteration
        start = f"resuming from {resume} (iteration {done} of {config.iterations} done)"
    if config.max_env_steps is not None:
        start += f", until {config.max_env_steps} environment steps"
    log(
        f"ES on {config.env_id}: policy {config.policy} ({model.count_params()} parameters), "
        f"{describe_update(config)}, backend {backend} (workers={workers}), logdir {logdir}, {start}"
    )
    command = None if command is None else shlex.join(command)
    env_fn = envs.env_factory(config.env_id, config.episode_length)
    with backends.make_backend(
        backend, env_fn, policy_fn, workers=workers, address=address, jit_compile=jit_compile
    ) as pool:
        try:
            result = trainer.train(
                config, policy_fn, pool, logdir=logdir, resume=resume, progress=progress, command=command
            )
        except KeyboardInterrupt:
            result = checkpoint.load_latest(os.path.join(logdir, "checkpoints"))
            if result is not None and result.best["params"] is not None:
                export_dir = export_best(result, policy_fn, info, logdir)
                log(
                    f"Best policy so far (centre reward {result.best['reward']:.3f} at iteration "
                    f"{result.best['iteration']}) exported to {export_dir}."
                )
            return EXIT_INTERRUPTED
    if result.best["params"] is None:
        log("No finite reward was obtained: nothing to export.")
        return 1
    export_dir = export_best(result, policy_fn, info, logdir)
    log(
        f"Best centre reward {result.best['reward']:.3f} at iteration {result.best['iteration']} of "
        f"{result.state.iteration} (progress.csv); policy exported to {export_dir}"
    )
    log(learning_summary(result.history, logdir, result.commands[0] if result.commands else None, result.config))
    return 0


#: iterations averaged for the end of a learning curve in `learning_summary`
SUMMARY_ITERATIONS = 5


def learning_summary(history, logdir, command=None, config=None):
    """One line: the centre reward at the first iteration and over the last few, and how to go on.

    The centre policy's return is one episode per iteration, so the end of the curve is
    the mean of its last `SUMMARY_ITERATIONS` iterations. `config` (the run's, as its
    checkpoint records it) tells whether the learning rate follows a schedule, whose
    horizon the command that continues the run must keep; a schedule that has ended at
    a learning rate of 0 gets no such command (a longer run is a new run).
    """
    rewards = [row["reward_centre"] for row in history]
    last = rewards[-SUMMARY_ITERATIONS:]
    line = (
        f"Centre reward {rewards[0]:.1f} at iteration 1, {sum(last) / len(last):.1f} over the last "
        f"{len(last)} iteration{'s' if len(last) > 1 else ''} ({os.path.join(logdir, 'learning_curve.png')})"
    )
    if command is None:
        return line + "."
    horizon = schedule_horizon(config)
    if horizon is not None and len(history) >= horizon and config["lr_final"] == 0:
        return line + (
            f"; the {config['lr_schedule']} schedule has decayed the learning rate to 0: to train longer, start a "
            "new run with more --iterations in another --logdir (--resume would go on at a learning rate of 0)"
        )
    line += f"; to continue: {continue_command(command, 2 * len(history), horizon)}"
    if horizon is not None and 2 * len(history) > horizon:
        line += (
            f" (the {config['lr_schedule']} schedule ends at iteration {horizon}: the learning rate stays at "
            f"{config['lr_final']:g} after it)"
        )
    return line


def schedule_horizon(config):
    """The iterations a run's learning-rate schedule decays over; None for a constant rate (or no config)."""
    if not config or config.get("lr_schedule", "constant") == "constant":
        return None
    return config["lr_decay_iterations"]


#: the zoo's plateau rule: a run has plateaued when its centre return gained at most this
#: fraction over the last `PLATEAU_FRACTION` of its iterations (`plateau_gain`)
PLATEAU_GAIN = 0.05
PLATEAU_FRACTION = 0.2


def plateau_gain(rewards, fraction=PLATEAU_FRACTION, window=SUMMARY_ITERATIONS):
    """The relative gain of a learning curve over its last `fraction` of iterations.

    Each end is the mean centre reward of `window` iterations (one episode each is
    noisy): the last `window`, against the `window` that end where the last fraction
    starts. The gain is their difference over the absolute value of the earlier
    (±`math.inf` if that is 0, 0.0 if both are). A curve whose last `fraction` holds
    fewer than `window` iterations, or has fewer than `window` before it, is refused.
    """
    rewards = [float(r) for r in rewards]
    start = len(rewards) - math.ceil(fraction * len(rewards))
    if start < window or len(rewards) - start < window:
        raise ValueError(
            f"A plateau is measured over the last {fraction:g} of a run: it needs {window} iterations or more "
            f"there and {window} before it. Received {len(rewards)} iterations (the last {fraction:g}: "
            f"{len(rewards) - start})."
        )
    before = sum(rewards[start - window : start]) / window
    after = sum(rewards[-window:]) / window
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


def continue_command(command, iterations, lr_decay_iterations=None):
    """`command` (a shell string, as recorded) with `--resume` and `--iterations iterations`.

    A run whose learning rate follows a schedule resumes only with the horizon it
    started with: `--lr-decay-iterations lr_decay_iterations` is added unless the
    command gives it (by default the horizon is `--iterations`, which changes).
    """
    words = shlex.split(command)
    kept = []
    while words:
        word = words.pop(0)
        if word == "--iterations" or (word == "--resume" and words and not words[0].startswith("-")):
            words = words[1:]  # and its value
        elif not (word.startswith(("--iterations=", "--resume=")) or word == "--resume"):
            kept.append(word)
    horizon = []
    if lr_decay_iterations is not None and not any(w.split("=")[0] == "--lr-decay-iterations" for w in kept):
        horizon = ["--lr-decay-iterations", str(lr_decay_iterations)]
    return shlex.join([*kept, *horizon, "--resume", "--iterations", str(iterations)])


def export_best(result, policy_fn, info, logdir):
    """Export the best centre policy of the checkpoint `result` to `<logdir>/policy`; returns that path.

    Its metadata.json records the environment, the ES configuration, the best
    iteration (counted from 1, as in progress.csv) and the commands that
    trained the run: "command", the first, and "commands", each resume's after it.
    """
    import keras_odetoode

    best, config = result.best, result.config
    commands = list(result.commands)
    metadata = {
        "env_id": config["env_id"],
        "policy": config["policy"],
        "config": config,
        "package_version": keras_odetoode.__version__,
        "command": commands[0] if commands else None,
        "commands": commands,
        "reward": best["reward"],
        "best_iteration": best["iteration"],
        "iterations": result.state.iteration,
        "obs_dim": info.obs_dim,
        "act_dim": info.act_dim,
        "action_low": info.action_low,
        "action_high": info.action_high,
    }
    export_dir = os.path.join(logdir, EXPORT_DIR)
    trainer.export_policy(policy_fn, best["params"], best["obs_mean"], best["obs_variance"], export_dir, metadata)
    return export_dir


def score_checkpoint(logdir, iteration, episodes=10, seed=0):
    """Returns of `episodes` episodes of the centre policy after `iteration` iterations of the run in `logdir`.

    The centre of checkpoint `iteration` is scored as `keras-odetoode evaluate
    CHECKPOINT --policy latest` scores it (`evaluation.evaluate_run`), episode i reset
    with seed `seed + i`. Scores are kept in `<logdir>/scores.json` (written
    atomically) under the checkpoint's name and content hash, and read from there when
    the same checkpoint is asked for again.

    Returns:
        float64 array of shape (episodes,), or None if that checkpoint is no longer
        kept (a run keeps its newest few).
    """
    import hashlib
    import json

    from keras_odetoode.atomic import write_text_atomic
    from keras_odetoode.es import evaluation

    path = checkpoint.checkpoint_path(os.path.join(logdir, "checkpoints"), iteration)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    key = f"{os.path.basename(path)} sha256:{digest} episodes={episodes} seed={seed}"
    cache = os.path.join(logdir, SCORES_FILE)
    scores = {}
    if os.path.exists(cache):
        with open(cache) as f:
            scores = json.load(f)
    if key not in scores:
        scores[key] = evaluation.evaluate_run(path, policy="latest", episodes=episodes, seed=seed).tolist()
        write_text_atomic(cache, json.dumps(scores, indent=2))
    return np.asarray(scores[key], np.float64)


def side_by_side_costs(configs, workers=0, rounds=2):
    """{key: seconds per million environment steps} of each `ESConfig` in `configs` ({key: config}).

    Each configuration trains its `iterations` throwaway ES iterations (no run
    directory), one configuration after the other, `rounds` times over. Its cost is
    the median over its iterations, each round's first left out (it traces and
    compiles), of the iteration's seconds (rollouts and update) per environment step.
    Taking turns spreads a busy spell of a shared machine over every configuration,
    which runs made hours apart cannot do. Where episodes end early (Hopper,
    Walker2d, Humanoid), the cost per step also depends on how long they are.
    """
    for key, config in configs.items():
        if config.iterations < 2:
            raise ValueError(
                "A cost needs at least 2 iterations per round: the first traces and compiles, and is left out. "
                f"Received: iterations={config.iterations} for {key!r}"
            )
    samples = {key: [] for key in configs}
    for _ in range(rounds):
        for key, config in configs.items():
            info = envs.env_info(config.env_id)
            policy_fn = functools.partial(
                policies.build_policy, config.policy, info.obs_dim, info.act_dim, **config.policy_kwargs
            )
            env_fn = envs.env_factory(config.env_id, config.episode_length)
            backend = backends.make_backend("local", env_fn, policy_fn, workers=workers)
            try:
                history = trainer.train(config, policy_fn, backend, progress=False).history
            finally:
                backend.close()
            samples[key].extend(row["seconds"] / row["env_steps"] * 1e6 for row in history[1:])
    return {key: float(np.median(values)) for key, values in samples.items()}
