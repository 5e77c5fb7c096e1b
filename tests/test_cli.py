"""The `keras-odetoode` script: bad input in one line (exit 2), everything else unchanged."""

import importlib.metadata
import os
import sys

import pytest

from keras_odetoode import cli
from keras_odetoode.es import checkpoint


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


ES_ARGV = ["es", "--env", "Swimmer-v5", "--iterations", "1", "--perturbations", "2", "--episode-length", "3",
           "--no-progress"]


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
