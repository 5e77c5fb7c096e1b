"""benchmarks/es_budget.py: the budget rule, its table and plot on synthetic runs, and a tiny sweep."""

import csv
import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import types

import numpy as np
import pytest

from keras_odetoode import cli, es
from keras_odetoode.es import checkpoint, runs, trainer

BUDGET = 1000


def write_progress(logdir, steps_per_iteration, returns, seconds):
    os.makedirs(logdir)
    with open(os.path.join(logdir, "progress.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, trainer.CSV_FIELDS, restval=0.0)
        writer.writeheader()
        for i, (reward, s) in enumerate(zip(returns, seconds), 1):
            writer.writerow(
                {
                    "iteration": i,
                    "reward_centre": reward,
                    "env_steps": steps_per_iteration,
                    "total_env_steps": i * steps_per_iteration,
                    "seconds": s,
                    "total_seconds": sum(seconds[:i]),
                }
            )


@pytest.fixture
def synthetic(tmp_path, load_benchmark):
    """Two configurations × 3 seeds: 300 steps an iteration (the budget at the 4th, 1200 ≥ 1000, of 5
    iterations) and 120 (the 9th, 1080, of 10)."""
    es_budget = load_benchmark("es_budget")
    results = {}
    for name, steps, length in (("big", 300, 5), ("small", 120, 10)):
        progresses = []
        for seed in range(3):
            logdir = str(tmp_path / f"{name}-s{seed}")
            returns = [10.0 * seed + i * (2 if name == "small" else 1) for i in range(length)]
            write_progress(logdir, steps, returns, [1.0 + seed] * length)
            progresses.append(es_budget.read_progress(logdir))
        results[("Swimmer-v5", name)] = progresses
    return es_budget, results


def test_the_return_at_a_budget_is_that_of_the_first_iteration_reaching_it(synthetic):
    es_budget, results = synthetic
    summary = es_budget.summarize(results[("Swimmer-v5", "big")], BUDGET)
    # The 4th iteration (index 3) first reaches 1000 steps: returns 3, 13, 23 over the seeds.
    assert summary["return_at_1_mean"] == 13.0
    assert summary["return_at_1_std"] == pytest.approx(np.std([3.0, 13.0, 23.0]))  # ddof 0: 8.165
    assert summary["return_at_1_std"] == pytest.approx(8.16496580927726)
    # 250 steps: the 1st iteration (300 ≥ 250); 500 steps: the 2nd (600).
    assert (summary["return_at_0.25_mean"], summary["return_at_0.5_mean"]) == (10.0, 11.0)
    assert (summary["iterations_mean"], summary["env_steps_mean"]) == (4.0, 1200.0)
    assert summary["seconds_mean"] == pytest.approx(np.mean([4.0, 8.0, 12.0]))  # 4 iterations of 1 + seed s
    assert summary["seconds_per_m_mean"] == pytest.approx(np.mean([1.0, 2.0, 3.0]) / 300 * 1e6)  # 300 steps each
    assert (summary["seeds"], summary["reached_budget"]) == (3, 3)
    small = es_budget.summarize(results[("Swimmer-v5", "small")], BUDGET)
    assert small["return_at_1_mean"] == 10.0 + 2 * 8  # the 9th iteration, 1080 steps
    assert es_budget.summarize(results[("Swimmer-v5", "small")], 5000)["reached_budget"] == 0


def test_table_and_plot(synthetic, tmp_path):
    es_budget, results = synthetic
    markdown = es_budget.write_table(results, BUDGET, str(tmp_path))
    assert "mean ± std over seeds (ddof = 0)" in markdown
    assert "| Swimmer-v5 | big | 10.0 ± 8.2 | 11.0 ± 8.2 | 13.0 ± 8.2 | 4 | 1,200 | 8 ± 3 | 6667 | 3/3 |" in markdown
    with open(tmp_path / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["config"] for row in rows] == ["big", "small"] and float(rows[1]["return_at_1_mean"]) == 26.0
    finals = {key: [np.array([1.0, 3.0]), np.array([5.0]), np.array([9.0, 11.0])] for key in results}
    finals[("Swimmer-v5", "small")][1] = None  # a checkpoint no longer kept
    markdown = es_budget.write_table(results, BUDGET, str(tmp_path), finals, episodes=2)
    # The final policy's column: per-seed means 2, 5, 10 → 5.67 ± std([2, 5, 10]) = 3.30; NaN where one is missing.
    assert (
        "| Swimmer-v5 | big | 10.0 ± 8.2 | 11.0 ± 8.2 | 13.0 ± 8.2 | 5.7 ± 3.3 | 4 | 1,200 | 8 ± 3 | 6667 | 3/3 |"
        in markdown
    )
    assert "| Swimmer-v5 | small | 14.0 ± 8.2 | 18.0 ± 8.2 | 26.0 ± 8.2 | nan ± nan |" in markdown
    assert "final policy, 2 episodes" in markdown and "mean of 2 episodes (reset seeds 0…1)" in markdown
    es_budget.plot(results, BUDGET, str(tmp_path / "es_budget.png"))
    assert (tmp_path / "es_budget.png").stat().st_size > 10_000


def test_every_configuration_is_a_valid_es_config(load_benchmark):
    es_budget = load_benchmark("es_budget")
    for name in es_budget.CONFIGS:
        config = es_budget.make_config("Swimmer-v5", name, seed=1, budget=5_000_000, episode_length=1000)
        assert config.max_env_steps == 5_000_000 and config.policy_kwargs["flow"] == "isospectral"
    paper = es_budget.make_config("Swimmer-v5", "paper", 0, 5_000_000, 1000)
    assert (paper.perturbations, paper.sigma, paper.learning_rate, paper.top_directions) == (200, 0.1, 0.01, None)
    cosine = es_budget.make_config("Swimmer-v5", "k50-cosine", 0, 5_000_000, 1000)
    assert cosine.lr_decay_iterations == 99  # ⌈5e6 / (51 · 1000)⌉ iterations of full-length episodes


def test_a_tiny_sweep_runs_skips_finished_runs_and_continues_with_a_larger_budget(tmp_path, load_benchmark):
    es_budget = load_benchmark("es_budget")
    out = str(tmp_path / "sweep")
    argv = ["--envs", "Swimmer-v5", "--seeds", "0", "--episode-length", "5", "--out", out]
    es_budget.main(argv + ["--configs", "k16", "--budget", "100"])
    assert {"table.md", "table.csv", "es_budget.png", "command.json"} <= set(os.listdir(out))
    k16 = es_budget.run_dir(out, "Swimmer-v5", "k16", 0)
    assert [int(s) for s in es_budget.read_progress(k16)["total_env_steps"]] == [85, 170]  # 17 members × 5 steps
    checkpoints = os.path.join(k16, "checkpoints")
    written = {p: os.path.getmtime(p) for p in checkpoint.list_checkpoints(checkpoints)}
    es_budget.main(argv + ["--configs", "k16", "--budget", "100"])  # finished: not run again
    assert {p: os.path.getmtime(p) for p in checkpoint.list_checkpoints(checkpoints)} == written
    es_budget.main(argv + ["--configs", "k16", "--budget", "200"])  # resumed for one more iteration
    assert [int(s) for s in es_budget.read_progress(k16)["total_env_steps"]] == [85, 170, 255]


def test_the_final_policy_is_the_checkpoint_at_the_budget_scored_as_the_cli_scores_it(tmp_path, load_benchmark):
    from keras_odetoode.cli import main as cli

    es_budget = load_benchmark("es_budget")
    out = str(tmp_path / "sweep")
    argv = ["--envs", "Swimmer-v5", "--configs", "k16", "--seeds", "0", "--episode-length", "20", "--out", out]
    es_budget.main(argv + ["--budget", "400", "--eval-episodes", "3"])  # 2 iterations of 17 × 20 steps
    logdir = es_budget.run_dir(out, "Swimmer-v5", "k16", 0)
    es_budget.main(argv + ["--budget", "700", "--eval-episodes", "3", "--cost-iterations", "2"])  # a 3rd iteration
    [(key, cost)] = es_budget.read_costs(os.path.join(out, "costs.json")).items()
    assert key == ("Swimmer-v5", "k16") and cost > 0
    with pytest.raises(SystemExit):
        es_budget.main(argv + ["--budget", "700", "--cost-iterations", "1"])  # its only iteration would compile

    def scored_by_the_cli(iteration):
        ckpt = checkpoint.checkpoint_path(os.path.join(logdir, "checkpoints"), iteration)
        exported = str(tmp_path / f"policy-{iteration}")
        assert cli(["export", ckpt, exported, "--policy", "latest"]) == 0  # what a user would export …
        return es.evaluate_policy(exported, episodes=3, seed=0)  # … and score

    at_400, at_700 = scored_by_the_cli(2), scored_by_the_cli(3)
    assert not np.allclose(at_400, at_700)  # the two checkpoints are told apart
    cache = os.path.join(logdir, runs.SCORES_FILE)
    with open(cache) as f:  # both main() calls scored their own budget's checkpoint
        keys = sorted(json.load(f))
    assert [key.split()[0] for key in keys] == ["ckpt-000002.npz", "ckpt-000003.npz"]
    assert all(key.endswith(" episodes=3 seed=0") for key in keys)
    written = os.path.getmtime(cache)
    np.testing.assert_allclose(es_budget.evaluate_final(logdir, 400, 3), at_400, rtol=1e-6)
    np.testing.assert_allclose(es_budget.evaluate_final(logdir, 700, 3), at_700, rtol=1e-6)
    assert os.path.getmtime(cache) == written  # read, not scored again
    with open(os.path.join(out, "table.md")) as f:
        assert f"| {at_700.mean():.1f} ± 0.0 | 3 | 1,020 |" in f.read()
    # Another checkpoint under the same name (a run directory reused) is scored anew.
    ckpts = checkpoint.list_checkpoints(os.path.join(logdir, "checkpoints"))
    shutil.copyfile(ckpts[-1], ckpts[-2])  # ckpt-2 now holds ckpt-3's policy
    np.testing.assert_allclose(es_budget.evaluate_final(logdir, 400, 3), at_700, rtol=1e-6)
    os.remove(ckpts[-2])
    assert es_budget.evaluate_final(logdir, 400, 3) is None  # ckpt-2 is gone


def test_the_preset_rule_needs_a_clear_lead_on_every_task_then_takes_the_best_mean_rank(load_benchmark):
    es_budget = load_benchmark("es_budget")
    scores = {  # (task, configuration): final-policy mean, std over seeds, wall time
        ("A", "paper"): (10, 1, 50), ("A", "k50"): (20, 2, 60), ("A", "k50-cosine"): (30, 1, 60), ("A", "k16"): (12, 2, 40),
        ("B", "paper"): (100, 10, 50), ("B", "k50"): (150, 10, 60), ("B", "k50-cosine"): (115, 10, 60),
        ("B", "k16"): (300, 50, 40),
    }  # fmt: skip
    rows = [
        {"task": t, "config": c, "final_policy_mean": m, "final_policy_std": sd, "seconds_mean": w, "seeds": 3}
        for (t, c), (m, sd, w) in scores.items()
    ]
    # Ranks: A cosine 1, k50 2, k16 3, paper 4; B k16 1, k50 2, cosine 3, paper 4.
    assert es_budget.mean_ranks(rows) == {"k50-cosine": 2.0, "k50": 2.0, "k16": 2.0, "paper": 4.0}
    # k50 leads the paper by more than the two stds on both (10 > 3, 50 > 20); cosine not on B (15 < 20),
    # k16 not on A (2 < 3). Among the constant rates k50 and k16 tie on rank: k16 took less wall time.
    assert es_budget.choose(rows) == (["k50"], "k50", "k16")
    lines = es_budget.choice_lines(rows)
    assert lines[1].endswith(
        "stds): k50. The preset rule (README) chooses: **k50**; the zoo's constant learning rate: **k16**."
    )
    scores["B", "k50"] = (115, 10, 60)  # 15 < 20: no clear lead on B any more
    rows = [dict(r, final_policy_mean=scores[r["task"], r["config"]][0]) for r in rows]
    assert es_budget.choose(rows)[:2] == ([], None)
    assert "chooses: none (paper stays the only preset)" in es_budget.choice_lines([dict(r, seeds=1) for r in rows])[1]
    assert es_budget.choice_lines([dict(r, seeds=1) for r in rows])[1].endswith("(from 1 seed: the rule is for 3).")
    assert es_budget.choice_lines([r for r in rows if (r["task"], r["config"]) != ("B", "paper")]) == []


def test_costs_are_medians_of_seconds_per_step_measured_in_turns(load_benchmark, monkeypatch, tmp_path):
    from keras_odetoode.es import trainer

    es_budget = load_benchmark("es_budget")
    order = []

    def fake_train(config, policy_fn, backend, progress):
        order.append((config.env_id, config.perturbations, config.iterations, config.max_env_steps))
        # Per round: 9 s (compiling, left out), then 1 s and 2 s for 100 steps; k = 16 takes 4× as long.
        scale = 4.0 if config.perturbations == 16 else 1.0
        rows = [{"seconds": scale * t, "env_steps": 100} for t in (9.0, 1.0, 2.0)]
        return types.SimpleNamespace(history=rows)

    monkeypatch.setattr(trainer, "train", fake_train)
    costs = es_budget.measure_costs(["Swimmer-v5"], ["k50", "k16"], episode_length=5, workers=0, iterations=3)
    assert costs == {("Swimmer-v5", "k50"): 15_000.0, ("Swimmer-v5", "k16"): 60_000.0}  # median of 1, 2, 1, 2 s
    assert order == [("Swimmer-v5", 50, 3, None), ("Swimmer-v5", 16, 3, None)] * 2  # in turns, twice

    path = str(tmp_path / "costs.json")
    es_budget.write_costs(costs, path)
    es_budget.write_costs({("HalfCheetah-v5", "k50"): 7.0}, path)  # merged
    assert es_budget.read_costs(path) == {**costs, ("HalfCheetah-v5", "k50"): 7.0}
    assert es_budget.read_costs(str(tmp_path / "absent.json")) == {}


def test_the_table_gives_each_runs_steps_at_its_side_by_side_cost(synthetic, tmp_path):
    es_budget, results = synthetic
    costs = {("Swimmer-v5", "big"): 2000.0}  # none for "small"
    summary = es_budget.summarize(results[("Swimmer-v5", "big")], BUDGET, cost=2000.0)
    assert summary["seconds_side_by_side_mean"] == pytest.approx(1200 * 2000.0 / 1e6)
    markdown = es_budget.write_table(results, BUDGET, str(tmp_path), costs=costs)
    assert "| s per M steps (median iteration) | side by side: s per M steps | wall time at that cost (s) |" in markdown
    assert "| 8 ± 3 | 6667 | 2000 | 2 | 3/3 |" in markdown and "| – | – | 3/3 |" in markdown
    es_budget.plot(results, BUDGET, str(tmp_path / "es_budget.png"), costs)
    assert (tmp_path / "es_budget.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "folder, tasks", [("es_budget", ("Swimmer-v5", "HalfCheetah-v5")), ("reward_shift", ("Hopper-v5",))]
)
def test_the_committed_sweep_runs_are_the_configurations_they_are_named_after_stopped_at_the_budget(
    folder, tasks, load_benchmark
):
    """`benchmarks/results/<folder>/runs/`: each finished run of the sweep is committed with its
    curve, the checkpoint at the budget and that checkpoint's 10-episode score. (A run still in
    progress in a working tree, short of the budget, is not one of them.)"""
    es_budget = load_benchmark("es_budget")
    budget = 5_000_000
    root = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / folder / "runs"
    named = {
        os.path.basename(es_budget.run_dir("", env_id, name, seed)): (env_id, name, seed)
        for env_id in tasks
        for name in es_budget.CONFIGS
        for seed in (0, 1, 2)
    }
    logdirs = [path for path in sorted(root.iterdir()) if es_budget.finished(str(path), budget)]
    assert logdirs
    for logdir in logdirs:
        env_id, name, seed = named[logdir.name]
        [path] = map(pathlib.Path, checkpoint.list_checkpoints(logdir / "checkpoints"))
        saved = checkpoint.load(str(path))
        # The run's settings are the configuration's (the check a resumed run passes), and its last
        # iteration is the first that reached the budget.
        trainer._check_resume(saved.config, es_budget.make_config(env_id, name, seed, budget, 1000))
        progress = es_budget.read_progress(logdir)
        steps = progress["total_env_steps"]
        assert steps[-1] >= budget > steps[-2]
        for column in ("reward_centre", "total_env_steps", "seconds"):
            np.testing.assert_array_equal(progress[column], [row[column] for row in saved.history])
        with open(logdir / runs.SCORES_FILE) as f:
            [(key, returns)] = json.load(f).items()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        assert key == f"{path.name} sha256:{digest} episodes=10 seed=0" and len(returns) == 10
        # Another configuration's settings are refused (the check above can fail; the shifted runs
        # against the same configuration without the shift).
        other = {"paper": "k50", "k50-top10-shift1": "k50-top10"}.get(name, "paper")
        with pytest.raises(ValueError):
            trainer._check_resume(saved.config, es_budget.make_config(env_id, other, seed, budget, 1000))


def test_the_readme_main_job_is_the_sweeps_k50_cosine_swimmer_run_and_states_its_three_seeds(
    load_benchmark, monkeypatch
):
    """The README's first command trains what the sweep's k50-cosine Swimmer-v5 runs trained (its
    seed 0; seeds 1 and 2 differ only in the seed), and the figures the README gives for it are
    those runs' committed ones: the centre return at iteration 1 and the final policy's score."""
    es_budget = load_benchmark("es_budget")
    root = pathlib.Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    [command] = re.findall(r"^keras-odetoode es .*$", readme, re.M)
    configs = []
    monkeypatch.setattr(runs, "run", lambda config, *args, **kwargs: configs.append(config))
    cli.main(shlex.split(command)[1:])
    [config] = configs
    assert (config.env_id, config.preset, config.seed) == ("Swimmer-v5", "k50-cosine", 0)
    sweep = es_budget.make_config("Swimmer-v5", "k50-cosine", 0, 5_000_000, 1000)
    fields = [name for name in trainer.ESConfig.RESUME_FIELDS if name != "preset"]  # the sweep named no preset
    assert {name: getattr(config, name) for name in fields} == {name: getattr(sweep, name) for name in fields}

    starts, scores = [], []
    for seed in (0, 1, 2):
        logdir = root / "benchmarks" / "results" / "es_budget" / "runs" / f"Swimmer-v5-k50-cosine-s{seed}"
        progress = es_budget.read_progress(logdir)
        assert len(progress["iteration"]) == config.iterations  # the budget stopped the sweep's run there
        starts.append(progress["reward_centre"][0])
        with open(logdir / runs.SCORES_FILE) as f:
            [returns] = json.load(f).values()
        scores.append(np.mean(returns))
    flat = " ".join(readme.split())
    assert f"starts at {min(starts):.0f} to {max(starts):.0f}" in flat
    assert f"scores {min(scores):.0f} to {max(scores):.0f} (mean {np.mean(scores):.0f})" in flat


def test_the_rerun_seed_0_gives_the_lost_runs_values_to_the_last_bit(load_benchmark):
    """The seed-0 run directories were lost with a machine (README) and seed 0 was run again at the
    same commits on the same kind of CPU: every committed seed-0 run gives the values that
    `table_partial_seed0.csv` recorded from the lost run, bit for bit."""
    es_budget = load_benchmark("es_budget")
    results = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "es_budget"
    with open(results / "table_partial_seed0.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16  # 8 configurations × 2 tasks
    budget = 5_000_000
    for row in rows:
        logdir = pathlib.Path(es_budget.run_dir(str(results), row["task"], row["config"], 0))
        progress = es_budget.read_progress(logdir)
        for fraction in es_budget.FRACTIONS:
            reward = es_budget.value_at(fraction * budget, progress["total_env_steps"], progress["reward_centre"])
            assert float(row[f"return_at_{fraction:g}_mean"]) == reward, (logdir.name, fraction)
        assert float(row["iterations_mean"]) == len(progress["iteration"])
        assert float(row["env_steps_mean"]) == progress["total_env_steps"][-1]
        with open(logdir / runs.SCORES_FILE) as f:
            [returns] = json.load(f).values()
        assert float(row["final_policy_mean"]) == np.mean(returns), logdir.name
