"""benchmarks/fig2.py on a tiny sweep: its table against the runs' own records and scores."""

import csv
import dataclasses
import json
import os
import pathlib
import shlex
import shutil

import numpy as np
import pytest

from keras_odetoode.es import checkpoint, evaluation, runs, trainer


def test_a_tiny_fig2_table_holds_the_runs_returns_and_final_scores(tmp_path, load_benchmark, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "disable")
    fig2 = load_benchmark("fig2")
    out = str(tmp_path / "fig2")
    argv = ["--envs", "Swimmer-v5", "--policies", "odetoode", "deepnet", "--seeds", "0", "1", "--iterations", "3",
            "--perturbations", "2", "--episode-length", "8", "--eval-episodes", "2", "--out", out]  # fmt: skip
    fig2.main(argv)
    with open(os.path.join(out, "table.csv"), newline="") as f:
        rows = {row["policy"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"ODEtoODE", "DeepNet"} and {"fig2.png", "table.md", "command.json"} <= set(os.listdir(out))
    for policy, label in (("odetoode", "ODEtoODE"), ("deepnet", "DeepNet")):
        finals, bests, scores, seconds = [], [], [], []
        for seed in (0, 1):
            logdir = os.path.join(out, "runs", f"Swimmer-v5-{policy}-s{seed}")
            run = checkpoint.load_latest(os.path.join(logdir, "checkpoints"))
            rewards = [row["reward_centre"] for row in run.history]
            finals.append(rewards[-1])
            bests.append(max(rewards))
            seconds.append(run.history[-1]["total_seconds"])
            scores.append(evaluation.evaluate_run(logdir, "latest", episodes=2, seed=0).mean())
        row = rows[label]
        assert float(row["final_mean"]) == pytest.approx(np.mean(finals))
        assert float(row["best_std"]) == pytest.approx(np.std(bests))
        assert float(row["final_policy_mean"]) == pytest.approx(np.mean(scores), rel=1e-6)
        assert float(row["final_policy_std"]) == pytest.approx(np.std(scores), rel=1e-5, abs=1e-9)
        assert float(row["seconds_mean"]) == pytest.approx(np.mean(seconds))
    table = open(os.path.join(out, "table.md")).read()
    ranked = sorted(rows.values(), key=lambda r: -float(r["final_policy_mean"]))
    assert f"- Swimmer-v5, ranked by the final policy's score: {ranked[0]['policy']} (" in table
    assert "| task | policy | final return | best return | final policy, 2 episodes | wall time (s) | seeds |" in table

    # Run again: nothing is trained or scored again.
    written = {p: os.path.getmtime(p) for p in _files(out, (".npz", "scores.json"))}
    fig2.main(argv)
    assert {p: os.path.getmtime(p) for p in _files(out, (".npz", "scores.json"))} == written
    fig2.main(argv[:-4] + ["--eval-episodes", "0", "--out", out])
    assert "final policy" not in open(os.path.join(out, "table.md")).read()


def _files(top, endings):
    return [os.path.join(r, n) for r, _, names in os.walk(top) for n in names if n.endswith(endings)]


COMMITTED = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fig2_more"


@pytest.mark.parametrize("task", sorted(p.name for p in COMMITTED.glob("*") if (p / "command.json").exists()))
def test_the_committed_fig2_runs_are_their_commands_and_give_their_table(task, tmp_path, load_benchmark, monkeypatch):
    """`benchmarks/results/fig2_more/<task>/`: every run is the configuration its command makes, stopped
    at its iterations, its score the one kept for its checkpoint; the command run again on these runs
    (which trains and scores nothing) writes the committed table."""
    monkeypatch.setenv("MUJOCO_GL", "disable")
    fig2 = load_benchmark("fig2")
    folder = COMMITTED / task
    argv = shlex.split(json.loads((folder / "command.json").read_text())["command"])[2:]
    args = fig2.parse_args(argv)
    assert os.path.basename(args.out) == task
    out = tmp_path / task
    shutil.copytree(folder / "runs", out / "runs")
    for env_id in args.envs:
        for policy in args.policies:
            for seed in args.seeds:
                logdir = pathlib.Path(fig2.run_dir(str(out), env_id, policy, seed))
                [path] = checkpoint.list_checkpoints(str(logdir / "checkpoints"))
                saved = checkpoint.load(path)
                trainer._check_resume(saved.config, fig2.make_config(env_id, policy, seed, args))
                assert saved.state.iteration == len(saved.history) == args.iterations
                with open(logdir / "progress.csv", newline="") as f:
                    progress = list(csv.DictReader(f))
                assert [float(r["reward_centre"]) for r in progress] == [r["reward_centre"] for r in saved.history]
                with open(logdir / runs.SCORES_FILE) as f:
                    [key] = json.load(f)
                assert key.startswith(f"{os.path.basename(path)} sha256:") and key.endswith(
                    f"episodes={args.eval_episodes} seed=0"
                )
                # Another seed's configuration is refused (the check above can fail).
                with pytest.raises(ValueError):
                    trainer._check_resume(saved.config, fig2.make_config(env_id, policy, seed + 1, args))
    written = {p: os.path.getmtime(p) for p in _files(str(out), (".npz", "scores.json"))}
    fig2.main([*argv[: argv.index("--out")], "--out", str(out), *argv[argv.index("--out") + 2 :]])
    assert {p: os.path.getmtime(p) for p in _files(str(out), (".npz", "scores.json"))} == written
    assert (out / "table.md").read_text() == (folder / "table.md").read_text()
    assert (out / "table.csv").read_text() == (folder / "table.csv").read_text()


def test_cost_mode_times_each_policy_at_the_runs_settings_and_trains_no_run(tmp_path, load_benchmark, monkeypatch):
    from keras_odetoode import es

    fig2 = load_benchmark("fig2")
    out = tmp_path / "costs"
    argv = ["--envs", "Swimmer-v5", "--policies", "odetoode", "hypernet", "deepnet", "--hidden", "6",
            "--perturbations", "4", "--episode-length", "30", "--workers", "2",
            "--cost-iterations", "3", "--cost-rounds", "2", "--out", str(out)]  # fmt: skip
    args = fig2.parse_args(argv)
    asked = {}

    def fake_costs(configs, workers, rounds):
        asked.update(configs=configs, workers=workers, rounds=rounds)
        return {key: {"odetoode": 400.0, "hypernet": 1000.0, "deepnet": 300.0}[key[1]] for key in configs}

    monkeypatch.setattr(runs, "side_by_side_costs", fake_costs)
    fig2.main(argv)
    # The runs' configuration (seed 0), but for its iterations.
    for policy in ("odetoode", "hypernet", "deepnet"):
        config = asked["configs"]["Swimmer-v5", policy]
        assert config.iterations == 3
        trainer._check_resume(
            config.to_dict(), dataclasses.replace(fig2.make_config("Swimmer-v5", policy, 0, args), iterations=3)
        )
    assert (asked["workers"], asked["rounds"]) == (2, 2)
    assert sorted(os.listdir(out)) == ["costs.json", "costs.md"]  # no run, table or plot

    record = json.loads((out / "costs.json").read_text())
    assert record["command"].endswith(" ".join(argv))
    info = es.env_info("Swimmer-v5")
    for row, policy, ratio in zip(record["rows"], ("odetoode", "hypernet", "deepnet"), (1.0, 2.5, 0.75)):
        config = asked["configs"]["Swimmer-v5", policy]
        params = es.build_policy(policy, info.obs_dim, info.act_dim, **config.policy_kwargs).count_params()
        assert row == {
            "task": "Swimmer-v5",
            "policy": fig2.POLICY_LABELS[policy],
            "parameters": params,
            "seconds_per_m_steps": {"odetoode": 400.0, "hypernet": 1000.0, "deepnet": 300.0}[policy],
            "odetoode_ratio": ratio,
        }
        assert f"| Swimmer-v5 | {row['policy']} | {params:,} | {row['seconds_per_m_steps']:.0f} | {ratio:.2f} |" in (
            (out / "costs.md").read_text().splitlines()
        )


@pytest.mark.parametrize("option, value", [("--cost-iterations", "1"), ("--cost-rounds", "0")])
def test_cost_options_out_of_range_are_refused(option, value, load_benchmark, capsys):
    fig2 = load_benchmark("fig2")
    with pytest.raises(SystemExit):
        fig2.parse_args([option, value])
    error = capsys.readouterr().err
    assert f"{option} must be" in error and f"Received: {value}" in error


def test_the_committed_costs_table_is_its_measurements(tmp_path, load_benchmark):
    """`benchmarks/results/fig2_cost/`: costs.md is what the script writes from the costs in costs.json, for its
    command, with the policies' parameter counts of today's code."""
    fig2 = load_benchmark("fig2")
    folder = COMMITTED.parent / "fig2_cost"
    record = json.loads((folder / "costs.json").read_text())
    argv = shlex.split(record["command"])[2:]
    args = fig2.parse_args([*argv, "--out", str(tmp_path)])
    policy_of = {label: policy for policy, label in fig2.POLICY_LABELS.items()}
    costs = {(row["task"], policy_of[row["policy"]]): row["seconds_per_m_steps"] for row in record["rows"]}
    assert sorted(costs) == sorted((env_id, policy) for env_id in args.envs for policy in args.policies)
    args.argv = shlex.split(record["command"])[1:]  # the command as recorded, not with this test's --out
    rows = fig2.write_costs(costs, args, record["seconds"])
    assert rows == record["rows"]
    assert (tmp_path / "costs.md").read_text() == (folder / "costs.md").read_text()


def test_zero_action_reference_is_a_plain_gymnasium_loop(load_benchmark, monkeypatch, capsys):
    """`benchmarks/zero_action.py` scores doing nothing on the episodes `evaluate` runs: reset seed i, truncated."""
    import gymnasium

    monkeypatch.setenv("MUJOCO_GL", "disable")
    expected = {}
    for env_id in ("Swimmer-v5", "Hopper-v5"):
        env = gymnasium.make(env_id, max_episode_steps=60)
        expected[env_id] = []
        for seed in (3, 4):
            env.reset(seed=seed)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape))
                total, done = total + reward, terminated or truncated
            expected[env_id].append(total)
        env.close()
        returns = evaluation.zero_action_returns(env_id, episodes=2, seed=3, episode_length=60)
        np.testing.assert_allclose(returns, expected[env_id], rtol=1e-12)
    assert expected["Swimmer-v5"][0] != expected["Swimmer-v5"][1]  # the seeds reach the episodes
    load_benchmark("zero_action").main(["--envs", "Swimmer-v5", "Hopper-v5", "--episodes", "2", "--seed", "3",
                                        "--episode-length", "60"])  # fmt: skip
    printed = capsys.readouterr().out
    for env_id, values in expected.items():
        mean, std = np.mean(values), np.std(values)
        assert f"| {env_id} | {mean:.1f} ± {std:.1f} | {values[0]:.1f}, {values[1]:.1f} |" in printed
    with pytest.raises(ValueError, match="episodes"):
        evaluation.zero_action_returns("Swimmer-v5", episodes=0)
