"""The ES training loop: iterations, logging, checkpoints, resume and export.

`train(config, policy_fn, backend, logdir)` runs `config.iterations` ES
iterations, or fewer: until `config.max_env_steps` environment steps. Each
iteration evaluates the k perturbations plus the unperturbed centre (its
reward is the learning curve and selects the exported policy), updates θ
with `RiemannianES.tell`, then merges the iteration's observations into the
normalization statistics. With a `logdir` it writes progress.csv,
TensorBoard scalars (tb/), a checkpoint per iteration (checkpoints/), the
learning curve (learning_curve.png) and the best policy as a SavedModel
(policy/, with metadata.json).
"""

import csv
import dataclasses
import logging
import math
import os
import sys
import time

import numpy as np

from keras_odetoode import records
from keras_odetoode.checks import check_integer, check_real
from keras_odetoode.es import checkpoint as checkpoint_lib
from keras_odetoode.es import policies, presets, rollouts
from keras_odetoode.es.normalization import ObsStats
from keras_odetoode.es.strategy import RiemannianES

logger = logging.getLogger("keras_odetoode.es")

CSV_FIELDS = (
    "iteration",
    "reward_mean",
    "reward_std",
    "reward_min",
    "reward_max",
    "reward_centre",
    "best_reward",
    "num_nonfinite",
    "gradient_norm",
    "env_steps",
    "total_env_steps",
    "steps_per_second",
    "seconds",
    "total_seconds",
)


@dataclasses.dataclass
class ESConfig:
    """Hyper-parameters of an ES run.

    The options of the ES update (`presets.PRESET_OPTIONS`) left as None take the
    values of `preset`, by default "paper" (§5.1.1: k = 200, σ = 0.1, lr = 0.01,
    antithetic, z-score, SGD, every pair, constant lr); after construction they
    hold the resolved values.

    Attributes:
        env_id: gymnasium id.
        policy: policy name (see `policies.POLICIES`), recorded for export/resume.
        policy_kwargs: keyword arguments of `policies.build_policy`.
        iterations: ES iterations to run (in total, counting resumed ones).
        perturbations: k.
        sigma, learning_rate: σ and lr.
        antithetic, fitness_shaping, optimizer: see `RiemannianES`.
        seed: the run's seed: noise, environment seeds and policy initialisation.
        episode_length: maximum steps per episode (1000).
        normalize_observations: running mean/std normalization of observations.
        evaluate_centre: also roll out the unperturbed policy every iteration.
        preset: the name in `presets.PRESETS` the options left as None come from.
        top_directions: b, the best antithetic pairs the estimate keeps (None: all; see `RiemannianES`).
        lr_schedule, lr_final: see `RiemannianES`.
        lr_decay_iterations: T of a schedule; None: `iterations`. A resumed run must
            have the T the run started with.
        max_env_steps: also stop after the first iteration at which the run has taken
            this many environment steps (the centre's episodes included); None: no limit.
        reward_shift: subtracted from every step's reward in the returns the update
            ranks, i.e. a member's fitness is its return − shift × its episode length
            (ARS's survival-bonus shift, Mania et al. 2018: 1 for Hopper and Walker2d,
            5 for Humanoid, where standing still earns the bonus at every step). The
            logged returns, the best-policy choice and every score keep the
            environment's reward. 0 (the paper's): the return itself.
    """

    env_id: str
    policy: str = "odetoode"
    policy_kwargs: dict = dataclasses.field(default_factory=dict)
    iterations: int = 100
    perturbations: int = None
    sigma: float = None
    learning_rate: float = None
    antithetic: bool = None
    fitness_shaping: str = None
    optimizer: str = None
    seed: int = 0
    episode_length: int = 1000
    normalize_observations: bool = True
    evaluate_centre: bool = True
    preset: str = presets.DEFAULT_PRESET
    top_directions: int = None
    lr_schedule: str = None
    lr_final: float = None
    lr_decay_iterations: int = None
    max_env_steps: int = None
    reward_shift: float = 0.0

    def __post_init__(self):
        for name in ("iterations", "episode_length"):
            check_integer(name, getattr(self, name), 1)
        check_integer("max_env_steps", self.max_env_steps, 1, allow_none=True)
        if not math.isfinite(check_real("reward_shift", self.reward_shift)):
            raise ValueError(f"reward_shift must be finite. Received: reward_shift={self.reward_shift!r}")
        self.reward_shift = float(self.reward_shift)
        resolved = presets.resolve(self.preset, **{name: getattr(self, name) for name in presets.PRESET_OPTIONS})
        for name, value in resolved.items():
            setattr(self, name, value)
        if self.lr_schedule != "constant" and self.lr_decay_iterations is None:
            self.lr_decay_iterations = self.iterations

    def strategy(self, specs):
        return RiemannianES(
            specs,
            num_perturbations=self.perturbations,
            sigma=self.sigma,
            learning_rate=self.learning_rate,
            antithetic=self.antithetic,
            fitness_shaping=self.fitness_shaping,
            optimizer=self.optimizer,
            top_directions=self.top_directions,
            lr_schedule=self.lr_schedule,
            lr_final=self.lr_final,
            lr_decay_iterations=self.lr_decay_iterations,
        )

    def to_dict(self):
        return dataclasses.asdict(self)

    # Fields that must match to resume: everything that changes the trajectory.
    RESUME_FIELDS = (
        "env_id",
        "policy",
        "policy_kwargs",
        *presets.PRESET_OPTIONS,
        "seed",
        "episode_length",
        "normalize_observations",
        "evaluate_centre",
        "preset",
        "lr_decay_iterations",
        "reward_shift",
    )


def es_iteration(strategy, state, obs_stats, backend, config):
    """One ES iteration; pure given the backend (same inputs → same outputs).

    Returns:
        (new state, new obs stats, RolloutResult of the k (+1 centre) members, tell info).
    """
    k = strategy.num_perturbations
    population, noise = strategy.ask(state)
    keys = np.arange(k) // 2 if strategy.antithetic else np.arange(k)
    if config.evaluate_centre:
        population = {n: np.concatenate([v, state.params[n][None]]) for n, v in population.items()}
        keys = np.append(keys, k)
    seeds = rollouts.episode_seeds(state.seed, state.iteration, keys)
    if config.normalize_observations:
        mean, variance = obs_stats.normalizer()
    else:
        mean, variance = np.zeros_like(obs_stats.mean, np.float32), np.ones_like(obs_stats.mean, np.float32)
    result = backend.evaluate(population, seeds, mean, variance, config.episode_length)
    fitness = result.returns[:k] - config.reward_shift * result.lengths[:k]
    new_state, info = strategy.tell(state, noise, fitness)
    if config.normalize_observations:
        obs_stats = obs_stats.merge_members(result.obs_count, result.obs_sum, result.obs_sumsq)
    return new_state, obs_stats, result, info


def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    return metadata.SerializeToString()


_SCALAR_METADATA = None


class RunLogger:
    """progress.csv, TensorBoard scalars and a tqdm progress bar for one run."""

    def __init__(self, logdir, total, initial, history, progress=True):
        self.logdir = logdir
        self.bar = None
        self.writer = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="ES", unit="it", dynamic_ncols=True)
        if logdir is not None:
            import tensorflow as tf

            os.makedirs(logdir, exist_ok=True)
            self.csv_path = os.path.join(logdir, "progress.csv")
            with open(self.csv_path, "w", newline="") as f:  # rewritten from history: consistent on resume
                writer = csv.DictWriter(f, CSV_FIELDS)
                writer.writeheader()
                writer.writerows(history)
            self.writer = tf.summary.create_file_writer(os.path.join(logdir, "tb"))
            global _SCALAR_METADATA
            _SCALAR_METADATA = _SCALAR_METADATA or _scalar_metadata()

    def log(self, row):
        if self.logdir is not None:
            import tensorflow as tf

            with open(self.csv_path, "a", newline="") as f:
                csv.DictWriter(f, CSV_FIELDS).writerow(row)
            with self.writer.as_default(step=row["iteration"]):
                for name in CSV_FIELDS[1:]:
                    if row[name] is not None and np.isfinite(row[name]):
                        # What tf.summary.scalar writes, without requiring the tensorboard package.
                        tf.summary.write(name, tf.constant(row[name], tf.float32), metadata=_SCALAR_METADATA)
            self.writer.flush()
        if self.bar is not None:
            self.bar.set_postfix(
                mean=f"{row['reward_mean']:.2f}",
                max=f"{row['reward_max']:.2f}",
                steps_s=f"{row['steps_per_second']:.0f}",
                refresh=False,
            )
            self.bar.update(1)

    def write(self, message):
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _finite_stats(returns):
    finite = returns[np.isfinite(returns)]
    if finite.size == 0:
        return (float("nan"),) * 4
    return float(finite.mean()), float(finite.std()), float(finite.min()), float(finite.max())


def plot_learning_curve(history, path, title=""):
    """Mean/max perturbation reward and centre reward per iteration, as a PNG.

    Draws on its own Agg canvas, leaving pyplot's backend (e.g. a notebook's) alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    it = [row["iteration"] for row in history]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    mean = np.array([row["reward_mean"] for row in history], float)
    std = np.array([row["reward_std"] for row in history], float)
    ax.plot(it, mean, label="perturbations: mean")
    ax.fill_between(it, mean - std, mean + std, alpha=0.2)
    ax.plot(it, [row["reward_max"] for row in history], label="perturbations: max", lw=0.8)
    ax.plot(it, [row["reward_centre"] for row in history], label="centre policy", lw=1.5)
    ax.set_xlabel("ES iteration")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _policy_defaults():
    """`policies.build_policy`'s keyword arguments and their defaults."""
    import inspect

    parameters = inspect.signature(policies.build_policy).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _resume_fields(config):
    """The fields that must match to resume, with equivalent spellings made equal."""
    fields = {f: config.get(f) for f in ESConfig.RESUME_FIELDS}
    # A keyword argument left out builds the same policy as its default given explicitly.
    fields["policy_kwargs"] = {**_policy_defaults(), **(fields["policy_kwargs"] or {})}
    # Every pair is top_directions = k/2; a constant learning rate has no final value nor horizon.
    if fields["top_directions"] is None and fields["antithetic"]:
        fields["top_directions"] = fields["perturbations"] // 2
    if fields["lr_schedule"] == "constant":
        fields["lr_final"] = fields["lr_decay_iterations"] = None
    return fields


def _check_resume(saved, config):
    saved, requested = _resume_fields(saved), _resume_fields(config.to_dict())
    mismatched = {f: (saved[f], requested[f]) for f in ESConfig.RESUME_FIELDS if saved[f] != requested[f]}
    if mismatched:
        hint = ""
        if "lr_decay_iterations" in mismatched and "lr_schedule" not in mismatched:
            hint = (
                f". The learning rate decays over the {saved['lr_decay_iterations']} iterations fixed when the run "
                f"started (--lr-decay-iterations, by default --iterations): give --lr-decay-iterations "
                f"{saved['lr_decay_iterations']} to continue it"
            )
        raise ValueError(
            "Cannot resume: the checkpoint was written with a different configuration. "
            f"Mismatched (checkpoint, requested): {mismatched}{hint}"
        )


def check_logdir(logdir, resume):
    """A fresh run (`resume` None) must not share its checkpoint directory with another run.

    Its checkpoints would be pruned by iteration number against the other run's,
    and a later resume would continue whichever is newest. Raises ValueError.
    """
    if resume is None and logdir is not None:
        existing = checkpoint_lib.list_checkpoints(os.path.join(logdir, "checkpoints"))
        if existing:
            raise ValueError(
                f"The run directory logdir={logdir!r} already holds the checkpoints of a run (newest: "
                f"{existing[-1]!r}). Pass --resume (resume='latest') to continue that run, or choose "
                "another --logdir for a new one."
            )


def resume_path(logdir, resume):
    """The checkpoint file `resume` names: "latest" (the newest in `logdir`/checkpoints) or a path.

    Raises:
        CheckpointError: there is no such checkpoint.
    """
    if resume != "latest":
        if not os.path.isfile(resume):
            raise checkpoint_lib.CheckpointError(f"No checkpoint at {resume!r}.")
        return resume
    if logdir is None:
        raise ValueError("resume='latest' needs a logdir to find checkpoints in.")
    ckpt_dir = os.path.join(logdir, "checkpoints")
    paths = checkpoint_lib.list_checkpoints(ckpt_dir)
    if not paths:
        raise checkpoint_lib.CheckpointError(f"--resume: no checkpoint found in {ckpt_dir!r}.")
    return paths[-1]


def check_resume(config, resume_from):
    """Load the checkpoint `resume_from` and check that `config` may continue it.

    Returns:
        The `checkpoint.Checkpoint`.

    Raises:
        CheckpointError: the checkpoint cannot be read.
        ValueError: it was written with another configuration (`ESConfig.RESUME_FIELDS`).
    """
    ckpt = checkpoint_lib.load(resume_from)
    _check_resume(ckpt.config, config)
    return ckpt


def train(config, policy_fn, backend, logdir=None, resume=None, progress=True, keep_checkpoints=3, command=None):
    """Run ES until `config.iterations` iterations (or `config.max_env_steps` environment steps) are done.

    Args:
        config: `ESConfig`.
        policy_fn: zero-argument callable building the Keras policy (the same
            one the backend's workers use).
        backend: an `AbstractBackend`.
        logdir: run directory (logs, checkpoints) or None for none.
        resume: None, "latest" (newest checkpoint in logdir/checkpoints) or a checkpoint path.
            Without it, `logdir` must hold no checkpoints (see `check_logdir`).
        progress: show a tqdm progress bar.
        keep_checkpoints: how many checkpoint files to keep.
        command: the command line of this training (a string), recorded in
            the checkpoint's `commands` after those of the run it resumes.

    Returns:
        The final `checkpoint.Checkpoint` (state, statistics, best policy, history).

    On KeyboardInterrupt the last completed iteration is checkpointed before re-raising.
    """
    check_logdir(logdir, resume)
    policy = rollouts.PopulationPolicy(policy_fn())
    strategy = config.strategy(policy.specs)
    ckpt_dir = None if logdir is None else os.path.join(logdir, "checkpoints")
    if resume is not None:
        ckpt = check_resume(config, resume_path(logdir, resume))
        ckpt = dataclasses.replace(ckpt, commands=ckpt.commands + [command])
    else:
        state = strategy.init(policy.get_params(), seed=config.seed)
        ckpt = checkpoint_lib.Checkpoint(
            state,
            ObsStats.empty(policy.input_dim),
            {"reward": -np.inf, "iteration": None, "params": None, "obs_mean": None, "obs_variance": None},
            [],
            config.to_dict(),
            [command],
        )
    log = RunLogger(logdir, config.iterations, ckpt.state.iteration, ckpt.history, progress)
    total_steps = int(ckpt.history[-1]["total_env_steps"]) if ckpt.history else 0
    total_seconds = ckpt.history[-1]["total_seconds"] if ckpt.history else 0.0
    total_seconds = float("nan") if total_seconds is None else float(total_seconds)  # unknown in the record
    budget = np.inf if config.max_env_steps is None else config.max_env_steps
    try:
        while ckpt.state.iteration < config.iterations and total_steps < budget:
            start = time.perf_counter()
            state, obs_stats = ckpt.state, ckpt.obs_stats
            mean, variance = obs_stats.normalizer()
            new_state, new_stats, result, info = es_iteration(strategy, state, obs_stats, backend, config)
            seconds = time.perf_counter() - start
            k = strategy.num_perturbations
            steps = int(result.lengths.sum())
            total_steps += steps
            total_seconds += seconds
            r_mean, r_std, r_min, r_max = _finite_stats(result.returns[:k])
            centre = float(result.returns[k]) if config.evaluate_centre else r_mean
            best = ckpt.best
            if np.isfinite(centre) and centre > best["reward"]:
                if not config.normalize_observations:
                    mean, variance = np.zeros_like(mean), np.ones_like(variance)
                # Counted from 1 like progress.csv's rows: this iteration's row has this reward.
                best = {
                    "reward": centre,
                    "iteration": new_state.iteration,
                    "params": state.params,
                    "obs_mean": mean,
                    "obs_variance": variance,
                }
            if result.nonfinite.any():
                bad = np.flatnonzero(result.nonfinite).tolist()
                log.write(
                    f"iteration {new_state.iteration}: members {bad} produced a NaN/inf reward, observation "
                    "or action; their episodes were stopped and ranked worst."
                )
            row = {
                "iteration": new_state.iteration,
                "reward_mean": r_mean,
                "reward_std": r_std,
                "reward_min": r_min,
                "reward_max": r_max,
                "reward_centre": centre,
                "best_reward": float(best["reward"]),
                "num_nonfinite": int(result.nonfinite.sum()),
                "gradient_norm": info["gradient_norm"],
                "env_steps": steps,
                "total_env_steps": total_steps,
                "steps_per_second": steps / max(seconds, 1e-9),
                "seconds": seconds,
                "total_seconds": total_seconds,
            }
            ckpt = dataclasses.replace(
                ckpt, state=new_state, obs_stats=new_stats, best=best, history=ckpt.history + [row]
            )
            if ckpt_dir is not None:
                checkpoint_lib.save(ckpt_dir, ckpt, keep=keep_checkpoints)
            log.log(row)
    except KeyboardInterrupt:
        if ckpt_dir is not None:
            path = checkpoint_lib.save(ckpt_dir, ckpt, keep=keep_checkpoints)
            log.write(f"Interrupted: saved {path} (iteration {ckpt.state.iteration}); continue with --resume.")
        raise
    finally:
        log.close()
        if logdir is not None and ckpt.history:
            plot_learning_curve(ckpt.history, os.path.join(logdir, "learning_curve.png"), config.env_id)
    return ckpt


def export_policy(policy_fn, params, obs_mean, obs_variance, path, metadata=None):
    """Save normalization + policy with `params` as a SavedModel for serving.

    The exported function maps raw observations (batch, obs_dim) to unclipped
    actions (batch, act_dim), with the parameter flow folded into constants
    (`export.export_saved_model`); `metadata` (with the action bounds) goes to
    `path/metadata.json`.
    """
    from keras_odetoode.export import POLICY_TENSOR_NAMES, export_saved_model

    serving = policies.serving_policy(policy_fn, params, obs_mean, obs_variance)
    metadata = records.plain(metadata or {})
    reward = metadata.get("reward")
    export_saved_model(
        serving,
        path,
        input_name=POLICY_TENSOR_NAMES[0],
        output_name=POLICY_TENSOR_NAMES[1],
        metadata=metadata,
        training_command=metadata.get("command"),
        result=None if reward is None else {"reward": reward},
    )
    return serving
