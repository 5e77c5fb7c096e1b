"""The `keras-odetoode` script: bad input in one line (exit 2), everything else unchanged."""

import argparse
import csv
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys

os.environ.setdefault("MUJOCO_GL", "disable")

import pytest

from keras_odetoode import cli
from keras_odetoode.es import backends, checkpoint, runs


def test_the_script_is_run():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert [ep.value for ep in scripts if ep.name == "keras-odetoode"] == ["keras_odetoode.cli:run"]


def test_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    assert cli.run(["evaluate", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-odetoode: error: No such directory: '{tmp_path / 'absent'}'")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    # the same call through `main` raises, for programs and tests
    with pytest.raises(ValueError, match="No such directory"):
        cli.main(["evaluate", str(tmp_path / "absent")])


def test_the_traceback_variable_restores_the_exception(tmp_path, monkeypatch):
    monkeypatch.setenv(cli.TRACEBACK_VARIABLE, "1")
    with pytest.raises(ValueError, match="No such directory"):
        cli.run(["evaluate", str(tmp_path / "absent")])


@pytest.mark.parametrize(
    "error, status, line",
    [
        (checkpoint.CheckpointError("corrupted"), 2, "keras-odetoode: error: corrupted"),
        (ConnectionError("no head"), 2, "keras-odetoode: error: no head"),
        (KeyboardInterrupt(), 130, "keras-odetoode: interrupted"),
    ],
)
def test_exit_status_by_error(error, status, line, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)

    def fail(argv):
        raise error

    monkeypatch.setattr(cli, "main", fail)
    assert cli.run([]) == status
    assert capsys.readouterr().err.splitlines()[0] == line


def test_a_bug_keeps_its_traceback(monkeypatch):
    def fail(argv):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "main", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.run([])


def error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("keras-odetoode: error:")]


def es_argv(env="Swimmer-v5", **options):
    """`keras-odetoode es` arguments, an option a flag: `episode_length=3` is `--episode-length 3`, `no_progress=True` `--no-progress`."""
    argv = ["es", "--env", env]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv


ES_ARGV = es_argv(iterations=1, perturbations=2, episode_length=3, no_progress=True)


@pytest.mark.parametrize("name", ["iterations", "episode_length"])
def test_es_rejects_nonpositive_counts_before_starting(name, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    argv = ES_ARGV + ["--" + name.replace("_", "-"), "0", "--logdir", str(tmp_path / "run")]
    assert cli.run(argv) == 2
    assert error_lines(capsys) == [f"keras-odetoode: error: {name} must be an integer ≥ 1. Received: {name}=0"]
    assert not os.path.exists(tmp_path / "run")


def test_ray_backend_without_ray_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert cli.run(ES_ARGV + ["--backend", "ray", "--logdir", str(tmp_path / "run")]) == 2
    assert error_lines(capsys) == [
        'keras-odetoode: error: The ray backend needs Ray, which cannot be imported: pip install "keras_odetoode[ray]"'
    ]


def test_dm_control_task_without_shimmy_says_what_to_install(capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    monkeypatch.setitem(sys.modules, "shimmy", None)  # `import shimmy` raises ImportError
    argv = ["es", "--env", "dm_control/swimmer-swimmer15-v0", "--iterations", "1"]
    assert cli.run(argv) == 2
    assert error_lines(capsys) == [
        "keras-odetoode: error: 'dm_control/swimmer-swimmer15-v0' is a DeepMind Control task, which needs shimmy: "
        'pip install "shimmy[dm-control]"'
    ]


# Every command, through the console script's function: bad input is exactly one line, exit status 2.
@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["es", "--env", "Swimmer-v5", "--perturbations", "-5", "--iterations", "1"],
            "num_perturbations must be an integer ≥ 2. Received: num_perturbations=-5",
        ),
        (
            ["es", "--env", "Swimmer-v5", "--perturbations", "many"],
            "argument --perturbations: invalid int value: 'many' (see `keras-odetoode es --help`)",
        ),
        (["evaluate", "{tmp}/absent"], "No such directory: '{tmp}/absent'"),
        (
            ["export", "{tmp}", "{tmp}/out", "--result", "accuracy"],
            "--result must be NAME=NUMBER, e.g. accuracy=0.97. Received: 'accuracy'",
        ),
        (
            ["make-mnistc", "--mnist", "{tmp}/absent.npz", "--out", "{tmp}/out"],
            "MNIST file not found. Received: --mnist {tmp}/absent.npz",
        ),
        (
            ["mnistc", "--epochs", "0", "--source", "local", "--data-dir", "{tmp}", "--out", "{tmp}/out"],
            "epochs must be an integer ≥ 1. Received: epochs=0",
        ),
        (
            ["prepare-tfds", "--archive", "{tmp}/mnist_c.zip", "--data-dir", "{tmp}/out"],
            "MNIST-C archive not found. Received: archive='{tmp}/mnist_c.zip'",
        ),
        (["no-such-command"], "argument COMMAND: invalid choice: 'no-such-command'"),
    ],
    ids=["es", "es-usage", "evaluate", "export", "make-mnistc", "mnistc", "prepare-tfds", "command"],
)
def test_every_command_reports_bad_input_in_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    assert cli.run(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err  # no banner before it, no usage, no hint after it
    assert lines[0].startswith("keras-odetoode: error: " + message.format(tmp=tmp_path))
    assert captured.out == ""
    assert not (tmp_path / "out").exists()  # a failed command leaves no output folder behind


def _without_tf_log_level():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    return env


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("command", [["-m", "keras_odetoode.cli"], ["script"]], ids=["module", "script"])
def test_bad_input_in_a_real_process_is_one_line_and_nothing_from_tensorflow(command, tmp_path):
    """The command as users run it: no TF_CPP_MIN_LOG_LEVEL of theirs, TensorFlow's import lines hidden."""
    if command == ["script"]:
        script = os.path.join(os.path.dirname(sys.executable), "keras-odetoode")
        if not os.path.isfile(script):
            pytest.skip("no keras-odetoode script beside sys.executable")
        command = [script]
    else:
        command = [sys.executable, *command]
    argv = ["make-mnistc", "--mnist", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "out")]
    done = subprocess.run(command + argv, capture_output=True, text=True, env=_without_tf_log_level(), timeout=300)
    assert done.returncode == 2
    assert done.stderr == f"keras-odetoode: error: MNIST file not found. Received: --mnist {tmp_path}/absent.npz\n"
    assert done.stdout == ""


ES_TINY = es_argv(policy="odetoode", iterations=1, perturbations=4, episode_length=20)


def _iso_odetoode_params(env_id, hidden=16):
    """By hand: Ω₁ (obs × d) and Ω₂ (d × act), Stiefel without bias; the ISO-ODEtoODE core's
    W₀, Q, N (d × d each, Eq. 6) and its bias b (d)."""
    import gymnasium

    env = gymnasium.make(env_id)
    obs, act = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    return obs * hidden + 3 * hidden * hidden + hidden + hidden * act


def test_an_es_run_prints_no_tensorflow_lines_unless_asked(tmp_path):
    env = _without_tf_log_level()
    quiet = subprocess.run(
        [sys.executable, "-m", "keras_odetoode.cli", *ES_TINY, "--logdir", str(tmp_path / "a"), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stderr.splitlines()
    assert len(lines) == 3, quiet.stderr  # the banner, the result, and the learning and how to go on
    assert lines[0].startswith(f"ES on Swimmer-v5: policy odetoode ({_iso_odetoode_params('Swimmer-v5')} parameters)")
    assert lines[1].startswith("Best centre reward") and lines[1].endswith(f"policy exported to {tmp_path}/a/policy")
    assert lines[2].startswith("Centre reward ") and " at iteration 1, " in lines[2]
    assert lines[2].endswith(f"--logdir {tmp_path}/a --no-progress --resume --iterations 2"), lines[2]
    verbose = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_odetoode.cli",
            *ES_TINY,
            "--logdir",
            str(tmp_path / "b"),
            "--no-progress",
            "--verbose",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert verbose.returncode == 0, verbose.stderr
    assert len(verbose.stderr.splitlines()) > 2 and "I0000" in verbose.stderr  # TensorFlow's own lines


def _es_parser():
    parser = cli.build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices["es"]


def test_every_es_flag_has_help_and_its_default_once():
    parser = _es_parser()
    assert parser.formatter_class is argparse.ArgumentDefaultsHelpFormatter  # the one mechanism for defaults
    formatter = parser.formatter_class(parser.prog)
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        assert "default" not in action.help.lower(), f"{action.option_strings} states its default itself"
        assert formatter._get_help_string(action).count("%(default)s") == 1, action.option_strings
    flat = " ".join(parser.format_help().split())
    for flag, default in (
        ("--iterations", "100"),
        ("--sigma", "None"),  # the preset's: its help names the paper's
        ("--lr", "None"),
        ("--seed", "0"),
        ("--policy", "odetoode"),
        ("--optimizer", "None"),
        ("--preset", "paper"),
        ("--episode-length", "1000"),
    ):
        [action] = [a for a in parser._actions if flag in a.option_strings]
        assert f"{' '.join(action.help.split())} (default: {default})" in flat, flag
    assert "ES iterations in total; with --resume, counting the iterations already done" in flat
    assert "(None: the preset's; paper: 0.1) (default: None)" in flat


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


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_es_resume_ctrl_c_and_the_best_iteration(tmp_path, capsys, monkeypatch):
    logdir = str(tmp_path / "run")
    argv = ES_TINY[:-6] + ["--perturbations", "4", "--episode-length", "20", "--logdir", logdir, "--no-progress"]

    # Ctrl-C in the 3rd iteration: checkpoint of iteration 2 saved, best policy so far exported.
    def interrupting(name, env_fn, policy_fn, **kwargs):
        return InterruptingBackend(env_fn, policy_fn, interrupt_at=3)

    monkeypatch.setattr(runs.backends, "make_backend", interrupting)
    assert cli.run(argv + ["--iterations", "5"]) == 130
    err = capsys.readouterr().err
    assert f"Interrupted: saved {logdir}/checkpoints/ckpt-000002.npz (iteration 2)" in err
    assert f"exported to {logdir}/policy." in err
    with open(os.path.join(logdir, "policy", "metadata.json")) as f:
        interrupted = json.load(f)
    assert interrupted["iterations"] == 2
    monkeypatch.undo()

    # --resume says where it resumes from, in the banner, after the arguments are checked.
    assert cli.run(argv + ["--iterations", "4", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {logdir}/checkpoints/ckpt-000002.npz (iteration 2 of 4 done)" in err.splitlines()[0]

    # metadata.json's best iteration is the progress.csv row with the best centre reward.
    with open(os.path.join(logdir, "policy", "metadata.json")) as f:
        metadata = json.load(f)
    rows = _read_csv(os.path.join(logdir, "progress.csv"))
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3, 4]
    best_row = max(rows, key=lambda row: float(row["reward_centre"]))
    assert metadata["best_iteration"] == int(best_row["iteration"])
    assert metadata["reward"] == pytest.approx(float(best_row["reward_centre"]))
    assert float(rows[-1]["best_reward"]) == pytest.approx(metadata["reward"])
    assert f"at iteration {metadata['best_iteration']} of 4" in err

    # ... and it keeps the original command and the resume's.
    first = shlex.join(["keras-odetoode", *argv, "--iterations", "5"])
    assert metadata["command"] == first and metadata["training_command"] == first
    assert metadata["commands"] == [first, shlex.join(["keras-odetoode", *argv, "--iterations", "4", "--resume"])]


def test_evaluate_on_a_classifier_says_it_is_a_classifier(capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    path = os.path.join(ROOT, "saved_models", "mnist_odetoode1")
    assert cli.run(["evaluate", path]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"keras-odetoode: error: {path!r} is a classifier, not an ES policy: its serving_default signature maps "
        "pixels (None, 784) to logits (None, 10) and its metadata names no environment. `keras-odetoode evaluate` "
        "scores ES policies on an environment; call this model with keras_odetoode.export.load_serving(path)."
    )
    # With an environment given too, it is named as a classifier rather than as a policy of other sizes.
    assert cli.run(["evaluate", path, "--env", "Swimmer-v5", "--episodes", "1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"keras-odetoode: error: {path!r} is a classifier, not an ES policy")
