"""ES end to end: CLI runs with export and evaluate, resume, Ctrl-C, corrupted checkpoints, NaN."""

import functools
import json
import os

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import pytest
import tensorflow as tf

from keras_odetoode import cli
from keras_odetoode.es import backends, checkpoint, envs, policies, rollouts, trainer


def run_cli(argv):
    return cli.main(argv)


def test_swimmer_es_end_to_end_with_export_and_evaluate(tmp_path, capsys):
    logdir = str(tmp_path / "swimmer")
    argv = ["es", "--env", "Swimmer-v5", "--policy", "odetoode", "--iterations", "2", "--perturbations", "4",
            "--episode-length", "20", "--seed", "0", "--backend", "local", "--logdir", logdir, "--no-progress"]
    assert run_cli(argv) == 0
    with open(os.path.join(logdir, "progress.csv")) as f:
        rows = f.read().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("iteration,reward_mean")
    assert os.path.isfile(os.path.join(logdir, "learning_curve.png"))
    assert [os.path.basename(p) for p in checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))] == [
        "ckpt-000001.npz", "ckpt-000002.npz"]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(logdir, "tb")))
    export = os.path.join(logdir, "policy")
    with open(os.path.join(export, "metadata.json")) as f:
        metadata = json.load(f)
    assert {"config", "package_version", "command", "reward"} <= set(metadata)
    assert metadata["env_id"] == "Swimmer-v5" and np.isfinite(metadata["reward"])

    # The SavedModel computes normalization + the best centre policy.
    final = checkpoint.load_latest(os.path.join(logdir, "checkpoints"))
    best = final.best
    serve = tf.saved_model.load(export).signatures["serving_default"]
    obs = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    exported = next(iter(serve(**{next(iter(serve.structured_input_signature[1])): tf.constant(obs)}).values()))
    policy = rollouts.PopulationPolicy(policies.build_policy("odetoode", 8, 2, **metadata["config"]["policy_kwargs"]))
    policy.set_params(best["params"])
    expected = policy.model((obs - best["obs_mean"]) / np.sqrt(best["obs_variance"]))
    np.testing.assert_allclose(exported.numpy(), expected.numpy(), atol=1e-5)

    capsys.readouterr()
    assert run_cli(["evaluate", export, "--episodes", "2"]) == 0
    assert "±" in capsys.readouterr().out


def test_dm_control_es_end_to_end(tmp_path, capsys):
    logdir = str(tmp_path / "dmc")
    env_id = "dm_control/swimmer-swimmer15-v0"
    argv = ["es", "--env", env_id, "--iterations", "2", "--perturbations", "4", "--episode-length", "10",
            "--logdir", logdir, "--no-progress"]
    assert run_cli(argv) == 0
    capsys.readouterr()
    assert run_cli(["evaluate", os.path.join(logdir, "policy"), "--env", env_id, "--episodes", "1"]) == 0
    assert "swimmer15" in capsys.readouterr().out


class InterruptingBackend(backends.InProcessBackend):
    """Raises KeyboardInterrupt (Ctrl-C) in its `interrupt_at`-th evaluation."""

    def __init__(self, *args, interrupt_at, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.interrupt_at = 0, interrupt_at

    def evaluate(self, *args):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return super().evaluate(*args)


policy_fn = functools.partial(policies.build_policy, "odetoode", 8, 2, hidden=4, seed=0)
env_fn = envs.env_factory("Swimmer-v5", 15)
CONFIG = trainer.ESConfig("Swimmer-v5", perturbations=4, episode_length=15, iterations=3, seed=5, optimizer="adam")


def test_ctrl_c_checkpoints_and_resume_is_bit_identical(tmp_path):
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        straight = trainer.train(CONFIG, policy_fn, backend, logdir=str(tmp_path / "a"), progress=False)
    logdir = str(tmp_path / "b")
    with InterruptingBackend(env_fn, policy_fn, interrupt_at=2) as backend:
        with pytest.raises(KeyboardInterrupt):
            trainer.train(CONFIG, policy_fn, backend, logdir=logdir, progress=False)
    saved = checkpoint.load_latest(os.path.join(logdir, "checkpoints"))
    assert saved.state.iteration == 1
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        resumed = trainer.train(CONFIG, policy_fn, backend, logdir=logdir, resume="latest", progress=False)
    assert resumed.state.iteration == straight.state.iteration == 3
    for group in ("params", "adam_m", "adam_v"):
        for name, value in getattr(straight.state, group).items():
            np.testing.assert_array_equal(getattr(resumed.state, group)[name], value)
    np.testing.assert_array_equal(resumed.obs_stats.m2, straight.obs_stats.m2)
    assert [r["reward_mean"] for r in resumed.history] == [r["reward_mean"] for r in straight.history]
    assert resumed.best["reward"] == straight.best["reward"]

    # A resumed run must use the same configuration.
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        with pytest.raises(ValueError, match="Mismatched.*sigma"):
            trainer.train(trainer.ESConfig(**{**CONFIG.to_dict(), "sigma": 0.2}), policy_fn, backend,
                          logdir=logdir, resume="latest", progress=False)

    # A corrupted latest checkpoint: clear error, the previous one is kept and loads.
    paths = checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))
    with open(paths[-1], "r+b") as f:
        f.truncate(os.path.getsize(paths[-1]) // 2)
    with pytest.raises(checkpoint.CheckpointError, match=rf"corrupted.*{os.path.basename(paths[-2])}.*kept"):
        checkpoint.load_latest(os.path.join(logdir, "checkpoints"))
    assert checkpoint.load(paths[-2]).state.iteration == 2


def test_nan_rewards_rank_worst_and_training_continues(tmp_path):
    from test_es_rollouts import make_scripted, scripted_policy

    config = trainer.ESConfig("ESTest/Scripted", perturbations=14, episode_length=3, iterations=2, seed=0)
    with backends.InProcessBackend(make_scripted, scripted_policy) as backend:
        result = trainer.train(config, scripted_policy, backend, logdir=str(tmp_path), progress=False)
    assert result.state.iteration == 2
    assert sum(row["num_nonfinite"] for row in result.history) >= 1
    assert all(np.all(np.isfinite(v)) for v in result.state.params.values())


def test_unknown_env_from_cli_says_how_to_list_ids(tmp_path):
    with pytest.raises(ValueError, match="gymnasium.pprint_registry"):
        run_cli(["es", "--env", "NoSuchEnv-v0", "--logdir", str(tmp_path)])
