"""Records written in an older format still load: one upgrade per record type, keyed on its version."""

import json

import numpy as np
import pytest

from keras_odetoode import errors, mnistc_grid, records
from keras_odetoode.es import checkpoint, trainer


def write_version_1_checkpoint(path):
    """A checkpoint as format version 1 wrote it, byte for byte the same arrays and header keys."""
    params = {"omega_1/kernel": np.eye(3, 2), "core/bias": np.arange(2.0)}
    header = {
        "format_version": 1,
        "iteration": 3,
        "seed": 7,
        "obs_count": 12.0,
        "best_reward": 4.5,
        "best_iteration": 1,  # counted from 0: the centre evaluated by the 2nd iteration (2nd row of progress.csv)
        "history": [{"iteration": i, "reward_centre": r} for i, r in ((1, 1.0), (2, 4.5), (3, 2.0))],
        "config": {
            "env_id": "Swimmer-v5",
            "policy": "odetoode",
            "iterations": 3,
            "perturbations": 4,
            "sigma": 0.1,
            "learning_rate": 0.01,
            "antithetic": True,
            "fitness_shaping": "z_score",
            "optimizer": "sgd",
            "seed": 7,
            "episode_length": 15,
            "normalize_observations": True,
            "evaluate_centre": True,
            "policy_kwargs": {"hidden": 2, "flow": "gated", "num_gates": 1, "seed": 7},  # no gate_inputs
        },
        "param_names": list(params),
    }
    arrays = {f"params:{k}": v for k, v in params.items()}
    arrays.update({f"adam_m:{k}": np.zeros_like(v) for k, v in params.items()})
    arrays.update({f"adam_v:{k}": np.zeros_like(v) for k, v in params.items()})
    arrays.update({f"best:{k}": v + 1 for k, v in params.items()})
    arrays.update(
        {
            "obs:mean": np.zeros(3),
            "obs:m2": np.ones(3),
            "best_obs:mean": np.zeros(3),
            "best_obs:variance": np.ones(3),
            "header": np.array(json.dumps(header)),
        }
    )
    np.savez(path, **arrays)


def test_a_version_1_checkpoint_loads_in_the_current_format(tmp_path):
    path = tmp_path / "ckpt-000003.npz"
    write_version_1_checkpoint(path)
    ckpt = checkpoint.load(str(path))
    assert ckpt.state.iteration == 3 and ckpt.state.seed == 7
    # The best iteration is counted from 1 now, as progress.csv's rows: the row with the best reward.
    best_row = max(ckpt.history, key=lambda row: row["reward_centre"])
    assert ckpt.best["iteration"] == best_row["iteration"] == 2 and ckpt.best["reward"] == 4.5
    np.testing.assert_array_equal(ckpt.best["params"]["core/bias"], [1.0, 2.0])
    # Its gated flow read the time, which version 1 did not record; its command was not recorded.
    assert ckpt.config["policy_kwargs"]["gate_inputs"] == "time"
    assert ckpt.commands == [None]

    # It resumes with gates of the time, given explicitly or left to the default, and not with others.
    config = trainer.ESConfig(
        **{**ckpt.config, "policy_kwargs": {"hidden": 2, "flow": "gated", "num_gates": 1, "seed": 7}}
    )
    trainer._check_resume(ckpt.config, config)
    config.policy_kwargs["gate_inputs"] = "time"
    trainer._check_resume(ckpt.config, config)
    config.policy_kwargs["gate_inputs"] = "state"
    with pytest.raises(ValueError, match=r"Mismatched.*'gate_inputs': 'time'.*'gate_inputs': 'state'"):
        trainer._check_resume(ckpt.config, config)

    # Saved again, it is a current-format checkpoint with the same content.
    again = checkpoint.load(checkpoint.save(str(tmp_path / "again"), ckpt))
    assert again.best["iteration"] == 2 and again.commands == [None]
    assert (
        json.loads(str(np.load(checkpoint.checkpoint_path(str(tmp_path / "again"), 3))["header"]))["format_version"]
        == checkpoint.FORMAT_VERSION
    )


def test_a_checkpoint_of_a_newer_format_is_refused(tmp_path):
    path = tmp_path / "ckpt-000003.npz"
    write_version_1_checkpoint(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"]))
    arrays["header"] = np.array(json.dumps({**header, "format_version": checkpoint.FORMAT_VERSION + 1}))
    np.savez(path, **arrays)
    with pytest.raises(
        checkpoint.CheckpointError,
        match=rf"Unsupported checkpoint format\. Received: "
        rf"format_version={checkpoint.FORMAT_VERSION + 1}",
    ):
        checkpoint.load(str(path))


# results.json as `keras-odetoode mnistc` wrote it before it recorded train_on, gate_inputs and trained_on.
RESULTS_VERSION_1 = """{
  "cells": {
    "identity/dense-1": {"epochs": 1, "finished": "2026-11-20T10:00:00+0000", "params": 101770,
                         "test_accuracy": 0.9, "test_loss": 0.3, "train_accuracy": 0.92, "train_loss": 0.25}
  },
  "last_invocation": {"corruptions": ["identity"], "models": ["dense-1"], "preset": null},
  "training": {"batch_size": 128, "dropout": 0.0, "epochs": 1, "learning_rate": 0.001,
               "max_train_examples": 64, "projection": "dense", "seed": 0, "source": "local",
               "step_size": 0.01, "width": 16},
  "version": 1
}
"""


def test_a_version_1_results_record_loads_in_the_current_format(tmp_path):
    (tmp_path / mnistc_grid.RESULTS_FILE).write_text(RESULTS_VERSION_1)
    record = mnistc_grid.load_results(tmp_path)
    assert record["version"] == mnistc_grid.RESULTS_VERSION
    assert record["training"]["train_on"] == "each" and record["training"]["gate_inputs"] == "time"
    assert record["cells"]["identity/dense-1"]["trained_on"] == "identity"
    assert record["cells"]["identity/dense-1"]["test_accuracy"] == 0.9


def test_upgrade_steps_run_in_order_and_refuse_unknown_versions():
    steps = {1: lambda r: {**r, "a": 1}, 2: lambda r: {**r, "b": r["a"] + 1}}
    assert records.upgrade({"x": 0}, "thing", steps, 3) == {"x": 0, "a": 1, "b": 2, "format_version": 3}
    assert records.upgrade({"format_version": 2, "a": 5}, "thing", steps, 3) == {"a": 5, "b": 6, "format_version": 3}
    for version in (0, 4, "2", True):
        with pytest.raises(errors.InputError, match=r"Unsupported thing format\. Received: format_version="):
            records.upgrade({"format_version": version}, "thing", steps, 3)


def as_older_version(path, version, later_options, history_fields=()):
    """Rewrite the checkpoint `path` as format `version` wrote it: without the config options and
    history fields that later versions added. Returns the rewritten header."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"]))
    header["config"] = {k: v for k, v in header["config"].items() if k not in later_options}
    header["history"] = [{k: v for k, v in row.items() if k not in history_fields} for row in header["history"]]
    header["format_version"] = version
    arrays["header"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    return header


def as_version_2(path):
    """Version 2: no preset, top directions, schedule, step budget, reward shift nor total_seconds."""
    options = ("preset", "top_directions", "lr_schedule", "lr_final", "lr_decay_iterations", "max_env_steps")
    return as_older_version(path, 2, (*options, "reward_shift"), ("total_seconds",))


def straight_and_stopped(tmp_path, iterations, stopped_at):
    """A short Swimmer run straight through, and the same run stopped after `stopped_at` iterations.

    Returns:
        (config, the straight run's result, the stopped run's logdir, its last checkpoint's path).
    """
    from keras_odetoode.es import backends
    from test_es_cli import env_fn, policy_fn

    config = trainer.ESConfig("Swimmer-v5", perturbations=4, episode_length=15, iterations=iterations, seed=2)
    logdir = str(tmp_path / "stopped")
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        straight = trainer.train(config, policy_fn, backend, logdir=str(tmp_path / "straight"), progress=False)
        stopped = trainer.ESConfig(**{**config.to_dict(), "iterations": stopped_at})
        trainer.train(stopped, policy_fn, backend, logdir=logdir, progress=False)
    return config, straight, logdir, checkpoint.list_checkpoints(f"{logdir}/checkpoints")[-1]


def resume_matches(config, straight, logdir):
    """The stopped run, resumed to the end, ends with the straight run's parameters and history."""
    from keras_odetoode.es import backends
    from test_es_cli import env_fn, policy_fn

    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        resumed = trainer.train(config, policy_fn, backend, logdir=logdir, resume="latest", progress=False)
    for name, value in straight.state.params.items():
        np.testing.assert_array_equal(resumed.state.params[name], value)
    assert [row["reward_mean"] for row in resumed.history] == [row["reward_mean"] for row in straight.history]


def test_a_version_2_checkpoint_resumes_with_the_papers_update(tmp_path):
    config, straight, logdir, path = straight_and_stopped(tmp_path, 3, 2)
    old = as_version_2(path)

    ckpt = checkpoint.load(path)
    assert ckpt.config["preset"] == "paper" and ckpt.config["top_directions"] is None
    assert (ckpt.config["lr_schedule"], ckpt.config["max_env_steps"]) == ("constant", None)
    seconds = [row["seconds"] for row in old["history"]]
    assert [row["total_seconds"] for row in ckpt.history] == [seconds[0], seconds[0] + seconds[1]]
    # Every pair given explicitly (k/2 = 2) is the same update; one pair is not.
    trainer._check_resume(ckpt.config, trainer.ESConfig(**{**config.to_dict(), "top_directions": 2}))
    with pytest.raises(ValueError, match=r"Mismatched.*'top_directions': \(2, 1\)"):
        trainer._check_resume(ckpt.config, trainer.ESConfig(**{**config.to_dict(), "top_directions": 1}))
    resume_matches(config, straight, logdir)


def test_a_version_3_checkpoint_resumes_without_a_reward_shift_and_refuses_one(tmp_path):
    config, straight, logdir, path = straight_and_stopped(tmp_path, 2, 1)
    assert "reward_shift" not in as_older_version(path, 3, ("reward_shift",))["config"]

    saved = checkpoint.load(path).config
    assert saved["reward_shift"] == 0.0
    with pytest.raises(ValueError, match=r"Mismatched.*'reward_shift': \(0\.0, 1\.0\)"):
        trainer._check_resume(saved, trainer.ESConfig(**{**config.to_dict(), "reward_shift": 1}))
    resume_matches(config, straight, logdir)
