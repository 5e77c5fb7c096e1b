"""ES end to end: CLI runs with export and evaluate, resume, Ctrl-C, corrupted checkpoints, NaN."""

import functools
import json
import os

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import pytest
import tensorflow as tf

from keras_odetoode import cli
from keras_odetoode.es import backends, checkpoint, envs, policies, presets, rollouts, trainer
from keras_odetoode.es import strategy as es
from keras_odetoode.es.normalization import ObsStats
from test_cli import InterruptingBackend, error_lines, es_argv


def run_cli(argv):
    return cli.main(argv)


def test_swimmer_es_end_to_end_with_export_and_evaluate(tmp_path, capsys):
    logdir = str(tmp_path / "swimmer")
    argv = es_argv(
        policy="odetoode",
        iterations=2,
        perturbations=4,
        episode_length=20,
        seed=0,
        backend="local",
        logdir=logdir,
        no_progress=True,
    )
    assert run_cli(argv) == 0
    with open(os.path.join(logdir, "progress.csv")) as f:
        rows = f.read().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("iteration,reward_mean")
    assert os.path.isfile(os.path.join(logdir, "learning_curve.png"))
    assert [os.path.basename(p) for p in checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))] == [
        "ckpt-000001.npz",
        "ckpt-000002.npz",
    ]
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

    # `keras-odetoode export` of the run serves the same policy under the same signature.
    assert list(serve.structured_input_signature[1]) == ["observation"] and list(serve.structured_outputs) == ["action"]
    again = str(tmp_path / "exported_again")
    assert run_cli(["export", logdir, again]) == 0
    serve_again = tf.saved_model.load(again).signatures["serving_default"]
    np.testing.assert_array_equal(serve_again(observation=tf.constant(obs))["action"].numpy(), exported.numpy())

    # `evaluate` prints the returns of the exported policy, rolled out here by hand on the raw
    # gymnasium env: episode i reset with seed 0 + i, truncated at the run's 20 steps, actions clipped.
    returns = _rollout_by_hand(serve_again, "Swimmer-v5", seeds=[0, 1], max_episode_steps=20)
    assert returns[0] != returns[1]
    capsys.readouterr()
    assert run_cli(["evaluate", export, "--episodes", "2"]) == 0
    assert capsys.readouterr().out == (
        f"Swimmer-v5: {returns.mean():.3f} ± {returns.std():.3f} over 2 episodes "
        f"(min {returns.min():.3f}, max {returns.max():.3f})\n"
    )


def _rollout_by_hand(serve, env_id, seeds, max_episode_steps):
    """Return of one episode per seed of a serving signature (observation → action) on gymnasium.make(env_id)."""
    import gymnasium

    env = gymnasium.make(env_id, max_episode_steps=max_episode_steps)
    low, high = env.action_space.low, env.action_space.high
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, steps, done = 0.0, 0, False
        while not done:
            action = serve(observation=tf.constant(obs[None].astype(np.float32)))["action"].numpy()[0]
            obs, reward, terminated, truncated, _ = env.step(np.clip(action, low, high))
            total, steps, done = total + float(reward), steps + 1, terminated or truncated
        assert steps == max_episode_steps  # Swimmer never terminates early
        returns.append(total)
    env.close()
    return np.asarray(returns)


def test_dm_control_es_end_to_end(tmp_path, capsys):
    import gymnasium
    import shimmy  # noqa: F401  (registers the dm_control/ ids)

    from keras_odetoode.es import evaluation

    logdir = str(tmp_path / "dmc")
    env_id = "dm_control/swimmer-swimmer15-v0"
    argv = es_argv(env_id, iterations=2, perturbations=4, episode_length=10, logdir=logdir, no_progress=True)
    assert run_cli(argv) == 0
    export = os.path.join(logdir, "policy")

    # The exported policy takes the flattened dict observation: 14 joint angles, 2 to-target, 15 × 3 velocities.
    raw = gymnasium.make(env_id)
    width = sum(int(np.prod(space.shape)) for space in raw.observation_space.values())
    raw.close()
    assert width == 61
    serve = tf.saved_model.load(export).signatures["serving_default"]
    assert [spec.shape.as_list() for spec in serve.structured_input_signature[1].values()] == [[None, width]]

    # On the episode that scored the best centre during training, it scores the same.
    best = checkpoint.load_latest(os.path.join(logdir, "checkpoints")).best
    # Iteration i (counted from 1, as progress.csv) evaluated the centre after i - 1 updates; it is member k = 4.
    seed = int(rollouts.episode_seeds(0, best["iteration"] - 1, [4])[0])
    returns = evaluation.evaluate_policy(export, episodes=1, seed=seed)
    np.testing.assert_allclose(returns, [best["reward"]], rtol=1e-4)
    capsys.readouterr()
    assert run_cli(["evaluate", export, "--env", env_id, "--episodes", "1", "--seed", str(seed)]) == 0
    assert capsys.readouterr().out.startswith(f"{env_id}: {returns[0]:.3f} ± 0.000 over 1 episodes")

    # The run itself is scored as its export: its best policy by default, its latest centre with --policy latest.
    np.testing.assert_allclose(evaluation.evaluate_run(logdir, "best", episodes=1, seed=seed), returns, rtol=1e-6)
    assert run_cli(["evaluate", logdir, "--episodes", "1", "--seed", str(seed)]) == 0
    assert capsys.readouterr().out.startswith(f"{env_id}: {returns[0]:.3f} ± 0.000 over 1 episodes")
    latest = str(tmp_path / "latest")
    assert run_cli(["export", logdir, latest, "--policy", "latest"]) == 0
    expected = evaluation.evaluate_policy(latest, episodes=2, seed=7)
    ckpt = checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))[-1]
    np.testing.assert_allclose(evaluation.evaluate_run(ckpt, "latest", episodes=2, seed=7), expected, rtol=1e-6)
    capsys.readouterr()
    assert run_cli(["evaluate", logdir, "--policy", "latest", "--episodes", "2", "--seed", "7"]) == 0
    assert capsys.readouterr().out.startswith(f"{env_id}: {expected.mean():.3f} ± {expected.std():.3f} over 2")
    with pytest.raises(ValueError, match="--policy picks a policy of an ES run directory or checkpoint"):
        cli.main(["evaluate", export, "--policy", "latest"])


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
            trainer.train(
                trainer.ESConfig(**{**CONFIG.to_dict(), "sigma": 0.2}),
                policy_fn,
                backend,
                logdir=logdir,
                resume="latest",
                progress=False,
            )

    # A corrupted latest checkpoint: clear error, the previous one is kept and loads.
    paths = checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))
    with open(paths[-1], "r+b") as f:
        f.truncate(os.path.getsize(paths[-1]) // 2)
    with pytest.raises(checkpoint.CheckpointError, match=rf"corrupted.*{os.path.basename(paths[-2])}.*kept"):
        checkpoint.load_latest(os.path.join(logdir, "checkpoints"))
    assert checkpoint.load(paths[-2]).state.iteration == 2


def small_checkpoint(iteration):
    rng = np.random.default_rng(iteration)
    params = {"omega_1/kernel": rng.standard_normal((3, 4)), "core/bias": rng.standard_normal(4)}
    return checkpoint.Checkpoint(
        es.ESState(params, iteration, 0),
        ObsStats(10.0, rng.standard_normal(3), rng.random(3)),
        {"reward": -np.inf, "iteration": None, "params": None, "obs_mean": None, "obs_variance": None},
        [],
        {"env_id": "Swimmer-v5"},
    )


def set_central_directory_byte(data, offset, value):
    """A zip central-directory entry starts with b"PK\\x01\\x02"; +6 is the version needed, +8 the flags."""
    start = data.index(b"PK\x01\x02")
    data[start + offset] = value


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: data[: len(data) // 2],  # zipfile.BadZipFile
        lambda data: set_central_directory_byte(data, 6, 0xFF) or data,  # NotImplementedError: zip version
        lambda data: set_central_directory_byte(data, 8, 0x01) or data,  # RuntimeError: encrypted
    ],
    ids=["truncated", "zip_version", "encrypted"],
)
def test_a_corrupted_checkpoint_is_a_checkpoint_error_naming_the_previous_one(corrupt, tmp_path, monkeypatch):
    directory = tmp_path / "checkpoints"
    for iteration in (1, 2, 3):
        checkpoint.save(str(directory), small_checkpoint(iteration))
    path = directory / "ckpt-000002.npz"
    path.write_bytes(bytes(corrupt(bytearray(path.read_bytes()))))
    # A bare file name: the hint must still name ckpt-000001, not ckpt-000003 nor the corrupted file.
    monkeypatch.chdir(directory)
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load("ckpt-000002.npz")
    message = str(error.value)
    assert message.startswith("Checkpoint 'ckpt-000002.npz' is corrupted")
    assert message.endswith(
        "The previous checkpoint 'ckpt-000001.npz' is kept; resume from it with "
        "`--resume ckpt-000001.npz` (or delete the corrupted file)."
    )
    assert checkpoint.load("ckpt-000001.npz").state.iteration == 1
    (directory / "ckpt-000001.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError, match=r"corrupted.*No earlier checkpoint exists"):
        checkpoint.load(str(directory / "ckpt-000001.npz"))


def test_a_fresh_run_refuses_a_logdir_with_another_runs_checkpoints(tmp_path, capsys, monkeypatch):
    """Else pruning by iteration number would delete the new run's checkpoints, and --resume load the old run."""
    logdir = str(tmp_path / "run")
    newest = checkpoint.save(os.path.join(logdir, "checkpoints"), small_checkpoint(5))
    with pytest.raises(ValueError) as error:
        trainer.train(CONFIG, policy_fn, backend=None, logdir=logdir, progress=False)
    message = str(error.value)
    assert f"logdir={logdir!r}" in message and f"newest: {newest!r}" in message
    assert "Pass --resume (resume='latest')" in message and "another --logdir" in message
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    argv = es_argv(iterations=1, perturbations=2, episode_length=3, logdir=logdir, no_progress=True)
    assert cli.run(argv) == 2
    assert error_lines(capsys) == [f"keras-odetoode: error: {message}"]
    assert checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints")) == [newest]
    assert sorted(os.listdir(logdir)) == ["checkpoints"]


class RecordingBackend(backends.InProcessBackend):
    """Keeps every `RolloutResult` it returns."""

    def evaluate(self, *args):
        self.results = getattr(self, "results", []) + [super().evaluate(*args)]
        return self.results[-1]


def test_nan_rewards_rank_worst_and_training_continues(tmp_path):
    from test_es_rollouts import make_scripted, scripted_policy

    config = trainer.ESConfig("ESTest/Scripted", perturbations=14, episode_length=3, iterations=2, seed=0)
    with RecordingBackend(make_scripted, scripted_policy) as backend:
        result = trainer.train(config, scripted_policy, backend, logdir=str(tmp_path), progress=False)
    assert result.state.iteration == 2
    assert all(np.all(np.isfinite(v)) for v in result.state.params.values())

    # Re-derive each update: z-scores with NaN members one std below the worst finite return.
    policy = rollouts.PopulationPolicy(scripted_policy())
    strategy = config.strategy(policy.specs)
    state = strategy.init(policy.get_params(), seed=config.seed)
    num_nonfinite = 0
    for row, evaluated in zip(result.history, backend.results, strict=True):
        returns = evaluated.returns[:14]
        bad = ~np.isfinite(returns)
        num_nonfinite += bad.sum()
        assert row["num_nonfinite"] == evaluated.nonfinite.sum() >= bad.sum()
        finite = returns[~bad]
        z = np.where(bad, finite.min() - finite.std(), returns)
        z = (z - z.mean()) / z.std()
        noise = strategy.noise(state)
        expected = (z[0::2] - z[1::2]) @ noise / (config.sigma * 14)
        np.testing.assert_allclose(
            es.flatten(strategy.gradient(noise, returns), strategy.specs), expected, rtol=1e-10, atol=1e-12
        )
        state, _ = strategy.tell(state, noise, returns)
    assert num_nonfinite >= 1
    for name, value in state.params.items():  # the run made exactly these updates
        np.testing.assert_array_equal(result.state.params[name], value)


def test_a_reward_shift_ranks_the_return_minus_shift_per_step_and_logs_the_return(tmp_path):
    """ARS's survival-bonus shift: the update sees F − shift × length; progress.csv and the best policy see F."""
    from test_es_rollouts import make_scripted, scripted_policy

    shift = 0.7
    config = trainer.ESConfig(
        "ESTest/Scripted",
        perturbations=14,
        antithetic=False,
        episode_length=3,
        iterations=3,
        seed=0,
        reward_shift=shift,
    )
    with RecordingBackend(make_scripted, scripted_policy) as backend:
        result = trainer.train(config, scripted_policy, backend, logdir=str(tmp_path), progress=False)
    assert result.config["reward_shift"] == shift

    policy = rollouts.PopulationPolicy(scripted_policy())
    strategy = config.strategy(policy.specs)
    state = strategy.init(policy.get_params(), seed=config.seed)
    for row, evaluated in zip(result.history, backend.results, strict=True):
        returns, lengths = evaluated.returns[:14], evaluated.lengths[:14]
        finite = np.isfinite(returns)
        # ScriptedEnv's episodes last min(1 + seed % 5, 3) steps; members are independent here, so they differ.
        assert len(set(lengths[finite])) > 1
        assert row["reward_mean"] == returns[finite].mean() and row["reward_centre"] == evaluated.returns[14]
        fitness = returns - shift * lengths
        noise = strategy.noise(state)
        shifted, plain = (es.flatten(strategy.gradient(noise, f), strategy.specs) for f in (fitness, returns))
        assert not np.allclose(shifted, plain)  # the shift changes the update
        state, _ = strategy.tell(state, noise, fitness)
    for name, value in state.params.items():  # the run made exactly these updates
        np.testing.assert_array_equal(result.state.params[name], value)
    best = max(result.history, key=lambda row: row["reward_centre"])
    assert result.best["reward"] == best["reward_centre"] and result.best["iteration"] == best["iteration"]


def test_unknown_env_from_cli_says_how_to_list_ids(tmp_path):
    with pytest.raises(ValueError, match="gymnasium.pprint_registry"):
        run_cli(["es", "--env", "NoSuchEnv-v0", "--logdir", str(tmp_path)])


def test_es_with_gates_of_the_state_trains_exports_and_resumes(tmp_path, capsys, monkeypatch):
    """`--flow gated --gate-inputs state`: the paper's gated-ODEtoODE as the ES policy, end to end."""
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    logdir = str(tmp_path / "state")
    argv = es_argv(
        flow="gated",
        num_gates=2,
        gate_inputs="state",
        hidden=4,
        perturbations=4,
        episode_length=10,
        logdir=logdir,
        no_progress=True,
    )
    assert run_cli(argv + ["--iterations", "1"]) == 0
    with open(os.path.join(logdir, "policy", "metadata.json")) as f:
        policy_kwargs = json.load(f)["config"]["policy_kwargs"]
    assert policy_kwargs == {"hidden": 4, "flow": "gated", "num_gates": 2, "gate_inputs": "state", "seed": 0}
    model = policies.build_policy("odetoode", 8, 2, **policy_kwargs)
    core = model.get_layer("core").get_config()
    assert (core["flow"], core["num_gates"], core["gate_inputs"]) == ("gated", 2, "state")

    # The exported policy is the state-gated one: its best centre's parameters, served.
    best = checkpoint.load_latest(os.path.join(logdir, "checkpoints")).best
    policy = rollouts.PopulationPolicy(model)
    policy.set_params(best["params"])
    obs = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    expected = model((obs - best["obs_mean"]) / np.sqrt(best["obs_variance"])).numpy()
    serve = tf.saved_model.load(os.path.join(logdir, "policy")).signatures["serving_default"]
    np.testing.assert_allclose(serve(observation=tf.constant(obs))["action"].numpy(), expected, atol=1e-5)

    # It resumes with the same gates, and refuses to resume with the other ones.
    assert run_cli(argv + ["--iterations", "2", "--resume"]) == 0
    assert checkpoint.load_latest(os.path.join(logdir, "checkpoints")).state.iteration == 2
    capsys.readouterr()
    time_gates = [a if a != "state" else "time" for a in argv]
    assert cli.run(time_gates + ["--iterations", "3", "--resume"]) == 2
    [line] = error_lines(capsys)
    assert "Cannot resume" in line and "'gate_inputs': 'state'" in line and "'gate_inputs': 'time'" in line


@pytest.mark.parametrize(
    "policy, flow", [("odetoode", "isospectral"), ("hypernet", "isospectral"), ("deepnet", "gated")]
)
def test_es_gate_inputs_of_the_state_need_the_gated_odetoode(policy, flow, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    argv = [
        "es",
        "--env",
        "Swimmer-v5",
        "--policy",
        policy,
        "--flow",
        flow,
        "--gate-inputs",
        "state",
        "--iterations",
        "1",
        "--logdir",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    assert cli.run(argv) == 2
    assert error_lines(capsys) == [
        "keras-odetoode: error: --gate-inputs is an option of --policy odetoode --flow gated. "
        f"Received: --policy {policy} --flow {flow} --gate-inputs state. "
        "Expected: --policy odetoode --flow gated, or no --gate-inputs"
    ]
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=rf"Received: policy='{policy}', flow='{flow}', gate_inputs='state'"):
        policies.build_policy(policy, 8, 2, flow=flow, gate_inputs="state")


# --------------------------------------------------------------------------- options beyond the paper

OPTIONS_CONFIG = trainer.ESConfig(
    "Swimmer-v5",
    perturbations=4,
    episode_length=15,
    iterations=3,
    seed=5,
    top_directions=1,
    lr_schedule="cosine",
    lr_final=0.001,
)


def test_top_directions_and_a_schedule_resume_bit_identically(tmp_path):
    """The schedule continues at the checkpoint's iteration: a resumed run ends where a straight one does."""
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        straight = trainer.train(OPTIONS_CONFIG, policy_fn, backend, logdir=str(tmp_path / "a"), progress=False)
    logdir = str(tmp_path / "b")
    with InterruptingBackend(env_fn, policy_fn, interrupt_at=3) as backend:
        with pytest.raises(KeyboardInterrupt):
            trainer.train(OPTIONS_CONFIG, policy_fn, backend, logdir=logdir, progress=False)
    assert checkpoint.load_latest(os.path.join(logdir, "checkpoints")).state.iteration == 2
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        resumed = trainer.train(OPTIONS_CONFIG, policy_fn, backend, logdir=logdir, resume="latest", progress=False)
    for name, value in straight.state.params.items():
        np.testing.assert_array_equal(resumed.state.params[name], value)
    assert resumed.config["top_directions"] == 1 and resumed.config["lr_decay_iterations"] == 3


def test_max_env_steps_stops_at_the_first_iteration_reaching_it(tmp_path):
    # k = 4 members and the centre, 15 steps each (Swimmer never terminates): 75 steps an iteration.
    config = trainer.ESConfig(
        "Swimmer-v5", perturbations=4, episode_length=15, iterations=10, seed=1, max_env_steps=100
    )
    logdir = str(tmp_path / "run")
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        result = trainer.train(config, policy_fn, backend, logdir=logdir, progress=False)
        assert result.state.iteration == 2
        more = trainer.ESConfig(**{**config.to_dict(), "max_env_steps": 151})
        result = trainer.train(more, policy_fn, backend, logdir=logdir, resume="latest", progress=False)
    assert result.state.iteration == 3
    rows = _read_progress(logdir)
    assert [int(r["total_env_steps"]) for r in rows] == [75, 150, 225]
    np.testing.assert_allclose(
        [float(r["total_seconds"]) for r in rows], np.cumsum([float(r["seconds"]) for r in rows]), rtol=1e-12
    )


def _read_progress(logdir):
    import csv

    with open(os.path.join(logdir, "progress.csv"), newline="") as f:
        return list(csv.DictReader(f))


def snapshot(directory):
    """{relative path: bytes} of every file under `directory`."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


OPTIONS_ARGV = es_argv(hidden=4, perturbations=4, episode_length=10, no_progress=True)


def test_a_resume_with_another_preset_or_option_is_refused_and_the_logdir_is_untouched(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    monkeypatch.setitem(presets.PRESETS, "paper-copy", dict(presets.PRESETS["paper"]))  # the same values
    logdir = str(tmp_path / "run")
    argv = OPTIONS_ARGV + ["--logdir", logdir, "--top-directions", "1", "--lr-schedule", "linear"]
    assert cli.run(argv + ["--iterations", "1"]) == 0
    before = snapshot(logdir)
    refused = {
        "preset": ["--preset", "paper-copy", "--iterations", "1"],
        "top_directions": ["--top-directions", "2", "--iterations", "1"],
        "lr_schedule": ["--lr-schedule", "cosine", "--iterations", "1"],
        "reward_shift": ["--reward-shift", "1", "--iterations", "1"],
        "lr_decay_iterations": ["--iterations", "2"],  # the schedule was fixed over 1 iteration (last: the hint)
    }
    for field, extra in refused.items():
        capsys.readouterr()
        assert cli.run(argv + extra + ["--resume"]) == 2, field
        [line] = error_lines(capsys)
        assert line.startswith("keras-odetoode: error: Cannot resume: the checkpoint was written with a different")
        assert f"'{field}'" in line
        assert snapshot(logdir) == before, field
    assert "give --lr-decay-iterations 1 to continue it" in line
    # Leaving --top-directions out is every pair, which is not the run's single one.
    capsys.readouterr()
    assert cli.run(OPTIONS_ARGV + ["--logdir", logdir, "--lr-schedule", "linear", "--resume"]) == 2
    assert "'top_directions': (1, 2)" in error_lines(capsys)[0]
    assert snapshot(logdir) == before
    # The same options continue it, past the schedule's horizon at its final learning rate.
    assert cli.run(argv + ["--iterations", "2", "--lr-decay-iterations", "1", "--resume"]) == 0
    assert checkpoint.load_latest(os.path.join(logdir, "checkpoints")).state.iteration == 2


def test_the_printed_command_continues_a_run_whose_learning_rate_follows_a_schedule(tmp_path, capsys):
    import shlex

    logdir = str(tmp_path / "run")
    options = ["--lr-schedule", "cosine", "--lr-final", "0.0001", "--iterations", "2"]
    assert cli.run(OPTIONS_ARGV + ["--logdir", logdir, *options]) == 0
    printed = capsys.readouterr()
    [line] = [line for line in (printed.out + printed.err).splitlines() if "to continue: " in line]
    command, note = line.split("to continue: ")[1].split(" (", 1)
    assert command.endswith("--lr-decay-iterations 2 --resume --iterations 4")  # the horizon the run started with
    assert note == "the cosine schedule ends at iteration 2: the learning rate stays at 0.0001 after it)"
    words = shlex.split(command)
    assert words[0] == "keras-odetoode" and cli.run(words[1:]) == 0
    assert checkpoint.load_latest(os.path.join(logdir, "checkpoints")).state.iteration == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--top-directions", "0"], "top_directions must be an integer ≥ 1 or None. Received: top_directions=0"),
        (["--top-directions", "-2"], "top_directions must be an integer ≥ 1 or None. Received: top_directions=-2"),
        (
            ["--top-directions", "3"],
            "top_directions must be ≤ num_perturbations / 2 = 2, the number of antithetic pairs (one direction εᵢ "
            "each). Received: top_directions=3, num_perturbations=4",
        ),
        (
            ["--top-directions", "1", "--no-antithetic"],
            "top_directions keeps the best antithetic pairs, so it needs antithetic sampling. "
            "Received: top_directions=1, antithetic=False",
        ),
        (
            ["--preset", "ars"],
            "argument --preset: invalid choice: 'ars' (choose from ",  # quoted or not, by Python version
        ),
        (
            ["--lr-schedule", "cosine", "--lr-final", "0.5"],
            "lr_final must be a number ≥ 0 and ≤ 0.01. Received: lr_final=0.5",
        ),
        (["--max-env-steps", "0"], "max_env_steps must be an integer ≥ 1 or None. Received: max_env_steps=0"),
        (["--reward-shift", "inf"], "reward_shift must be finite. Received: reward_shift=inf"),
    ],
    ids=["b=0", "b<0", "b>k/2", "b-independent", "preset", "lr-final", "max-env-steps", "reward-shift"],
)
def test_bad_es_options_are_one_line_before_anything_is_written(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    logdir = tmp_path / "run"
    assert cli.run(OPTIONS_ARGV + ["--iterations", "1", "--logdir", str(logdir)] + extra) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"keras-odetoode: error: {message}")
    assert not logdir.exists()
