"""`saved_models/train_zoo.py` trains a zoo policy to a plateau and writes its card from the run."""

import csv
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from keras_odetoode.es import runs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train_zoo():
    spec = importlib.util.spec_from_file_location("train_zoo", ROOT / "saved_models" / "train_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_toy_run_goes_on_until_its_plateau_and_its_card_says_how_it_trained(tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "disable")
    zoo = _train_zoo()
    tiny = ["--perturbations", "2", "--episode-length", "5", "--hidden", "4", "--seed", "3"]
    zoo.main(["swimmer_odetoode", "--runs", str(tmp_path / "runs"), "--min-iterations", "21",
              "--max-iterations", "26", "--workers", "0", "--episodes", "2", "--zoo", str(tmp_path / "zoo"),
              "--note", "seed 3, the only one tried", "--", *tiny])  # fmt: skip
    logdir = tmp_path / "runs" / "swimmer_odetoode"
    with open(logdir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rewards = [float(row["reward_centre"]) for row in rows]
    # Stopped at 21 iterations only if the curve had plateaued there; otherwise continued to the cap.
    if runs.plateau_gain(rewards[:21]) <= runs.PLATEAU_GAIN:
        assert len(rows) == 21
    else:
        assert len(rows) == 26
    card = json.loads((tmp_path / "zoo" / "swimmer_odetoode" / "card.json").read_text())
    training = card["training"]
    assert training["iterations"] == len(rows)
    assert training["env_steps"] == 3 * 5 * len(rows) == int(rows[-1]["total_env_steps"])  # k + 1 episodes of 5
    assert training["wall_seconds"] == float(rows[-1]["total_seconds"])
    assert training["gain_over_last_fifth"] == pytest.approx(runs.plateau_gain(rewards))
    assert training["last_iterations"] == runs.SUMMARY_ITERATIONS
    assert training["centre_return_last"] == pytest.approx(np.mean(rewards[-runs.SUMMARY_ITERATIONS :]))
    assert rewards[training["best_iteration"] - 1] == max(rewards)
    assert training["continue_command"].endswith(f"--resume --iterations {2 * len(rows)}")
    assert card["goal"] == {"return": 325.0, "reached": card["score"]["mean"] >= 325.0, "source": zoo._ARS}
    assert card["references"] == zoo.POLICIES["swimmer_odetoode"]["references"]
    readme = (tmp_path / "zoo" / "swimmer_odetoode" / "README.md").read_text()
    first = readme.split("```bash\n", 1)[1].split("\n", 1)[0]
    assert first.startswith("keras-odetoode es --env Swimmer-v5 --policy odetoode --perturbations 2")
    assert first.endswith("--iterations 21 --workers 0 --logdir " + str(logdir))
    assert ("--resume" in readme.split("## How it was scored")[0].split("To train it further")[0]) == (len(rows) > 21)
    assert f"| trained for | {len(rows)} ES iterations, 0.0 M environment steps" in readme
    reached = "reached" if card["goal"]["reached"] else "not reached"
    assert f"| goal | 325 ({zoo._ARS}): **{reached}** |" in readme
    assert card["notes"] == ["seed 3, the only one tried"] and "| note | seed 3, the only one tried |" in readme
    assert "## Probe" in readme and len(card["probe"]["actions"]) == 12
    # Run again, the finished run is not trained further.
    logged = []
    assert zoo.train("swimmer_odetoode", str(tmp_path / "runs"), 21, 26, 0, tiny, log=logged.append) == str(logdir)
    assert not any("keras-odetoode es" in line for line in logged) and len(logged) == 1


def test_too_few_iterations_to_measure_a_plateau_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--min-iterations must be at least 21 and at most --max-iterations. "
                                         "Received 20 and 2000."):  # fmt: skip
        _train_zoo().main(["swimmer_odetoode", "--runs", str(tmp_path), "--min-iterations", "20"])


@pytest.mark.parametrize(
    "gain, verdict",
    [(0.12, "+12.0% over the last fifth (still rising"), (0.03, "+3.0% over the last fifth (plateaued"),
     (-0.2, "-20.0% over the last fifth (falling"), (None, "too short a run to measure a plateau")],
)  # fmt: skip
def test_the_card_says_what_the_learning_curve_was_doing(gain, verdict):
    import sys

    sys.path.insert(0, str(ROOT / "saved_models"))
    import make_zoo

    training = {"iterations": 400, "env_steps": 20_400_000, "wall_seconds": 5400.0, "best_iteration": 390,
                "centre_return_first": -3.0, "centre_return_last": 300.0, "last_iterations": 5, "gain_over_last_fifth": gain,
                "plateaued": None if gain is None else gain <= runs.PLATEAU_GAIN}  # fmt: skip
    trained, curve = make_zoo.training_text(training)
    assert trained == (
        "| trained for | 400 ES iterations, 20.4 M environment steps, 1.5 h of rollouts and updates; "
        "best centre policy at iteration 390 |"
    )
    assert curve.startswith("| learning curve at the end | centre return -3.0 at iteration 1, 300.0 over the last 5; ")
    assert verdict in curve


def test_a_run_stopped_early_by_a_budget_is_reported_not_repeated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "disable")
    tiny = ["--perturbations", "2", "--episode-length", "5", "--hidden", "4", "--max-env-steps", "150"]
    with pytest.raises(SystemExit, match="the run stopped at 10 of 21 iterations"):  # 15 steps an iteration
        _train_zoo().train("swimmer_odetoode", str(tmp_path), 21, 26, 0, tiny, log=lambda line: None)


def test_a_cards_commands_name_the_paths_inside_the_repository_from_its_root():
    import sys

    sys.path.insert(0, str(ROOT / "saved_models"))
    import make_zoo

    trained = (
        f"keras-odetoode es --env Hopper-v5 --iterations 300 --logdir {ROOT}/benchmarks/results/zoo/runs/hopper\n"
        f"keras-odetoode es --env Hopper-v5 --iterations 375 --logdir {ROOT}/benchmarks/results/zoo/runs/hopper --resume"
    )
    assert make_zoo.from_repo_root(trained) == (
        "keras-odetoode es --env Hopper-v5 --iterations 300 --logdir benchmarks/results/zoo/runs/hopper\n"
        "keras-odetoode es --env Hopper-v5 --iterations 375 --logdir benchmarks/results/zoo/runs/hopper --resume"
    )
    # Paths outside it, including a sibling whose name starts like the repository's, stay as they are.
    for outside in ("--logdir /tmp/runs/hopper", f"--logdir {ROOT}-old/runs/hopper", "--logdir runs/hopper"):
        assert make_zoo.from_repo_root(outside) == outside
