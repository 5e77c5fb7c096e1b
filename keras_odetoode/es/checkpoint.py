"""ES checkpoints: everything needed to continue a run bit-identically.

A checkpoint is one `.npz` file (numpy arrays + a JSON header, no pickle),
`ckpt-<iteration>.npz` in the run directory. Writes are atomic: the file is
written to a temporary name, fsync'ed, then `os.replace`d, so a crash mid-write
never leaves a broken checkpoint under the final name. The last `keep` files
are kept; zip CRCs detect corruption on load, and a corrupted latest checkpoint
raises `CheckpointError` naming the previous, intact one.
"""

import dataclasses
import io
import json
import os
import re

import numpy as np

from keras_odetoode import records
from keras_odetoode.atomic import write_atomic
from keras_odetoode.errors import InputError
from keras_odetoode.es.normalization import ObsStats
from keras_odetoode.es.strategy import ESState

#: Format version of the checkpoint header ("format_version"). Version 1 counted the
#: best iteration from 0, recorded no commands, and may lack policy_kwargs' gate_inputs
#: (its gated flows read the time). Version 2 had no preset, top directions, learning-rate
#: schedule nor step budget in its config (its runs were the paper's preset with every
#: pair and a constant learning rate) and no total_seconds in its history. Version 3 had no
#: reward shift (its fitness was the environment's return). `upgrade_header` reads them all
#: as version 4.
FORMAT_VERSION = 4
#: What a version-2 run was, in the options version 3 added.
_VERSION_2_OPTIONS = {
    "preset": "paper",
    "top_directions": None,
    "lr_schedule": "constant",
    "lr_final": 0.0,
    "lr_decay_iterations": None,
    "max_env_steps": None,
}
_PATTERN = re.compile(r"^ckpt-(\d+)\.npz$")


class CheckpointError(InputError):
    """A checkpoint that cannot be read, with what to do about it."""


@dataclasses.dataclass
class Checkpoint:
    """One run's state after `state.iteration` ES iterations.

    Attributes:
        state: the `ESState`.
        obs_stats: the observation normalization statistics (`ObsStats`).
        best: {"reward", "iteration", "params", "obs_mean", "obs_variance"} of the
            best evaluated centre so far (reward -inf and params None before any).
            "iteration" is the ES iteration, counted from 1 as in progress.csv,
            that evaluated it: the centre after iteration − 1 updates.
        history: one dict of logged scalars per iteration.
        config: the run's configuration (JSON-serialisable).
        commands: the command lines that trained the run, the first one and
            each resume's in order (None for one that was not recorded).
    """

    state: ESState
    obs_stats: ObsStats
    best: dict
    history: list
    config: dict
    commands: list = dataclasses.field(default_factory=list)


def _key(prefix, name):
    return f"{prefix}:{name}"


def _to_arrays(checkpoint):
    state = checkpoint.state
    arrays = {}
    for prefix, group in (("params", state.params), ("adam_m", state.adam_m), ("adam_v", state.adam_v)):
        for name, value in group.items():
            arrays[_key(prefix, name)] = np.asarray(value)
    arrays["obs:mean"] = checkpoint.obs_stats.mean
    arrays["obs:m2"] = checkpoint.obs_stats.m2
    best = checkpoint.best
    if best.get("params") is not None:
        for name, value in best["params"].items():
            arrays[_key("best", name)] = np.asarray(value)
        arrays["best_obs:mean"] = np.asarray(best["obs_mean"])
        arrays["best_obs:variance"] = np.asarray(best["obs_variance"])
    header = {
        "format_version": FORMAT_VERSION,
        "iteration": state.iteration,
        "seed": state.seed,
        "obs_count": checkpoint.obs_stats.count,
        "best_reward": float(best.get("reward", -np.inf)),
        "best_iteration": best.get("iteration"),
        "history": checkpoint.history,
        "config": checkpoint.config,
        "param_names": list(state.params),
        "commands": list(checkpoint.commands),
    }
    arrays["header"] = np.array(json.dumps(header))
    return arrays


def _group(arrays, prefix):
    start = prefix + ":"
    return {k[len(start) :]: arrays[k] for k in arrays if k.startswith(start)}


def _header_1_to_2(header):
    best_iteration = header.get("best_iteration")
    config = dict(header["config"])
    if "policy_kwargs" in config:
        config["policy_kwargs"] = {"gate_inputs": "time", **config["policy_kwargs"]}
    return {
        **header,
        "best_iteration": None if best_iteration is None else best_iteration + 1,
        "config": config,
        "commands": [None],
    }


def _header_2_to_3(header):
    history, total = [], 0.0
    for row in header["history"]:
        seconds = row.get("seconds")
        total = None if total is None or seconds is None else total + seconds  # the sum of the rows' seconds
        history.append({**row, "total_seconds": total})
    return {**header, "config": {**_VERSION_2_OPTIONS, **header["config"]}, "history": history}


def _header_3_to_4(header):
    return {**header, "config": {**header["config"], "reward_shift": 0.0}}


def upgrade_header(header):
    """A checkpoint header in the current format (`FORMAT_VERSION`), whatever its version."""
    try:
        return records.upgrade(
            header, "checkpoint", {1: _header_1_to_2, 2: _header_2_to_3, 3: _header_3_to_4}, FORMAT_VERSION
        )
    except InputError as error:
        raise CheckpointError(str(error)) from None


def _from_arrays(arrays):
    header = upgrade_header(json.loads(str(arrays["header"])))
    order = header["param_names"]
    ordered = lambda group: {name: group[name] for name in order if name in group}  # noqa: E731
    state = ESState(
        ordered(_group(arrays, "params")),
        int(header["iteration"]),
        int(header["seed"]),
        ordered(_group(arrays, "adam_m")),
        ordered(_group(arrays, "adam_v")),
    )
    obs_stats = ObsStats(float(header["obs_count"]), arrays["obs:mean"], arrays["obs:m2"])
    best_params = ordered(_group(arrays, "best"))
    best = {
        "reward": float(header["best_reward"]),
        "iteration": header["best_iteration"],
        "params": best_params or None,
        "obs_mean": arrays.get("best_obs:mean"),
        "obs_variance": arrays.get("best_obs:variance"),
    }
    return Checkpoint(state, obs_stats, best, header["history"], header["config"], header["commands"])


def checkpoint_path(directory, iteration):
    return os.path.join(directory, f"ckpt-{int(iteration):06d}.npz")


def list_checkpoints(directory):
    """Checkpoint paths in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(directory) if (m := _PATTERN.match(name))]
    return [os.path.join(directory, name) for _, name in sorted(found)]


def save(directory, checkpoint, keep=3):
    """Atomically write `checkpoint` as ckpt-<iteration>.npz and keep the last `keep`.

    Returns:
        The path written.
    """
    os.makedirs(directory, exist_ok=True)
    path = checkpoint_path(directory, checkpoint.state.iteration)
    buffer = io.BytesIO()
    np.savez(buffer, **_to_arrays(checkpoint))
    write_atomic(path, lambda f: f.write(buffer.getvalue()))
    for old in list_checkpoints(directory)[:-keep]:
        os.remove(old)
    return path


def _iteration(path):
    match = _PATTERN.match(os.path.basename(path))
    return None if match is None else int(match.group(1))


def _previous_hint(path):
    """Where to resume from when the checkpoint `path` is corrupted."""
    directory, iteration = os.path.dirname(path), _iteration(path)
    if iteration is None:
        return ""
    earlier = [p for p in list_checkpoints(directory or os.curdir) if _iteration(p) < iteration]
    if not earlier:
        return " No earlier checkpoint exists in that directory."
    previous = os.path.join(directory, os.path.basename(earlier[-1]))  # spelled like `path`
    return (
        f" The previous checkpoint {previous!r} is kept; resume from it with "
        f"`--resume {previous}` (or delete the corrupted file)."
    )


def load(path):
    """Read a checkpoint file; `CheckpointError` if it is missing or corrupted."""
    if not os.path.isfile(path):
        raise CheckpointError(f"No checkpoint at {path!r}.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return _from_arrays(arrays)
    except CheckpointError:
        raise
    except Exception as error:  # damaged bytes surface as zipfile, numpy, JSON, ... errors of many types
        raise CheckpointError(
            f"Checkpoint {path!r} is corrupted and cannot be loaded ({type(error).__name__}: {error})."
            + _previous_hint(path)
        ) from error


def load_latest(directory):
    """The newest checkpoint in `directory`, or None if there is none."""
    paths = list_checkpoints(directory)
    return load(paths[-1]) if paths else None
