"""`benchmarks/mnistc_seeds.py` averages `mnistc` grids over seeds."""

import json

import numpy as np
import pytest


def _grid(root, seed, accuracies):
    root.mkdir()
    cells = {key: {"test_accuracy": value} for key, value in accuracies.items()}
    record = {
        "training": {"seed": seed, "width": 16},
        "cells": cells,
        "last_invocation": {"corruptions": ["stripe", "identity"], "models": ["odetoode-1", "dense-1"]},
    }
    (root / "results.json").write_text(json.dumps(record))
    return root


def _two_seeds(tmp_path):
    """Grids of ODEtoODE-1 and Dense-1 on Stripe and Identity: `a` with seed 0, `b` with seed 1."""
    a = _grid(tmp_path / "a", 0, {"identity/dense-1": 0.9, "identity/odetoode-1": 0.8,
                                   "stripe/dense-1": 0.2, "stripe/odetoode-1": 0.4})  # fmt: skip
    b = _grid(tmp_path / "b", 1, {"identity/dense-1": 0.7, "identity/odetoode-1": 0.8,
                                   "stripe/dense-1": 0.1, "stripe/odetoode-1": 0.3})  # fmt: skip
    return a, b


def _one_model_grids(tmp_path, model, rows, **training):
    """A grid of `model` alone per (directory, seed, identity, stripe) of `rows`, `training` settings changed."""
    grids = []
    for name, seed, identity, stripe in rows:
        grid = _grid(tmp_path / name, seed, {f"identity/{model}": identity, f"stripe/{model}": stripe})
        record = json.loads((grid / "results.json").read_text())
        record["training"].update(training)
        record["last_invocation"]["models"] = [model]
        (grid / "results.json").write_text(json.dumps(record))
        grids.append(grid)
    return grids


def test_mean_and_std_per_cell_in_the_grids_order(tmp_path, capsys, monkeypatch, load_benchmark):
    seeds = load_benchmark("mnistc_seeds")
    a, b = _two_seeds(tmp_path)
    accuracy, corruptions, models, used = seeds.aggregate([a, b])
    assert corruptions == ["stripe", "identity"] and models == ["odetoode-1", "dense-1"] and used == [0, 1]
    np.testing.assert_allclose(accuracy["identity"]["dense-1"], [90.0, 70.0])
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b)])
    seeds.main()
    out = capsys.readouterr().out
    assert "| Stripe | **35.00 ± 7.07** | 15.00 ± 7.07 |" in out
    assert "| Identity | **80.00 ± 0.00** | **80.00 ± 14.14** |" in out  # a tie: both best
    assert "ODEtoODE-1: best mean on 2 of 2 rows" in out
    # --model in any spelling `mnistc` accepts; one not in the runs is refused.
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b), "--model", "Dense-1"])
    seeds.main()
    assert "Dense-1: best mean on 1 of 2 rows" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b), "--model", "node"])
    with pytest.raises(SystemExit, match="--model 'node' is not in these runs. Expected one of: odetoode-1, dense-1"):
        seeds.main()


def test_one_seed_prints_its_values_without_a_std(tmp_path, capsys, monkeypatch, load_benchmark):
    seeds = load_benchmark("mnistc_seeds")
    a, _ = _two_seeds(tmp_path)
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a)])
    seeds.main()
    out = capsys.readouterr().out
    assert "| Stripe | **40.00** | 20.00 |" in out and "| Identity | 80.00 | **90.00** |" in out
    assert "one seed (0): no standard deviation" in out and "nan" not in out


def test_grids_that_differ_are_refused(tmp_path, load_benchmark):
    seeds = load_benchmark("mnistc_seeds")
    full = {"identity/dense-1": 0.9, "identity/odetoode-1": 0.8, "stripe/dense-1": 0.2, "stripe/odetoode-1": 0.4}
    a = _grid(tmp_path / "a", 0, full)
    with pytest.raises(ValueError, match="share a seed"):
        seeds.aggregate([a, _grid(tmp_path / "b", 0, full)])
    with pytest.raises(ValueError, match=r"not finished: no result for stripe/dense-1"):
        seeds.aggregate([a, _grid(tmp_path / "c", 1, {k: v for k, v in full.items() if k != "stripe/dense-1"})])


def test_add_sets_grids_of_other_settings_beside_and_summarises_the_family(tmp_path, capsys, monkeypatch,
                                                                          load_benchmark):  # fmt: skip
    seeds = load_benchmark("mnistc_seeds")
    a, b = _two_seeds(tmp_path)
    # Seeds in the other order: columns are matched by seed, not by position.
    state = _one_model_grids(
        tmp_path, "odetoode-1", (("s1", 1, 0.95, 0.05), ("s0", 0, 0.85, 0.15)), gate_inputs="state"
    )
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b), "--add", *map(str, state)])
    seeds.main()
    out = capsys.readouterr().out
    # A record without "gate_inputs" had time gates: the new column is labelled by what differs.
    assert "| Models | ODEtoODE-1 | Dense-1 | ODEtoODE-1 (gate_inputs=state) |" in out
    assert "| Stripe | **35.00 ± 7.07** | 15.00 ± 7.07 | 10.00 ± 7.07 |" in out
    assert "| Identity | 80.00 ± 0.00 | 80.00 ± 14.14 | **90.00 ± 7.07** |" in out
    # Each ODEtoODE column against Dense-1 alone, not against each other.
    assert "ODEtoODE-1: at least the best other family's mean on 2 of 2 rows; " in out
    assert "ODEtoODE-1 (gate_inputs=state): at least the best other family's mean on 1 of 2 rows; " in out
    assert "median +2.50 pp, range -5.00 to +10.00 pp" in out
    # Other seeds, or the same settings, are refused.
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b), "--add", str(state[1])])
    with pytest.raises(ValueError, match=r"other seeds. Received: \[0\], expected: \[0, 1\]"):
        seeds.main()
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b), "--add", str(b), str(a)])
    with pytest.raises(ValueError, match="same settings as the main runs"):
        seeds.main()


def test_other_models_of_the_same_settings_and_the_papers_values_beside(tmp_path, capsys, monkeypatch,
                                                                        load_benchmark):  # fmt: skip
    """--add with the same settings adds the models unlabelled; --paper sets the paper's value beside each cell."""
    seeds = load_benchmark("mnistc_seeds")
    a, b = _two_seeds(tmp_path)
    ten = [str(grid) for grid in _one_model_grids(tmp_path, "dense-10", (("t0", 0, 0.95, 0.05), ("t1", 1, 0.85, 0.15)))]
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b), "--add", *ten, "--paper", "table1"])
    seeds.main()
    out = capsys.readouterr().out
    assert "| Models | ODEtoODE-1 | Dense-1 | Dense-10 |" in out
    # The paper's Table 1: Stripe 44.51, 30.55, 20.57; Identity 97.94, 97.55, 95.73.
    assert "| Stripe | **35.00 ± 7.07** (44.51) | 15.00 ± 7.07 (30.55) | 10.00 ± 7.07 (20.57) |" in out
    assert "| Identity | 80.00 ± 0.00 (97.94) | 80.00 ± 14.14 (97.55) | **90.00 ± 7.07** (95.73) |" in out
    assert "Rows with the best mean (ties count for each), of 2: ODEtoODE-1 1, Dense-1 0, Dense-10 1." in out
    assert (
        "best means here: ODEtoODE-1 1, Dense-1 0, Dense-10 1; in the paper: ODEtoODE-1 2, Dense-1 0, Dense-10 0."
        in out
    )
    # The same models again under the same settings are refused.
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(a), str(b), "--add", *ten, "--add", *ten])
    with pytest.raises(ValueError, match="holds dense-10 again: nothing to add"):
        seeds.main()


def test_hypernet_hidden_report_reproduces_the_committed_comparison(tmp_path, capsys, load_benchmark):
    """`benchmarks/mnistc_hypernet_hidden.py --report` on the committed runs prints the committed table."""
    import pathlib

    hidden = load_benchmark("mnistc_hypernet_hidden")
    results = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mnistc_table1_clean_100ep"
    small = [results / "hypernet_hidden2" / f"seed{s}" for s in range(3)]
    table1 = [results / f"seed{s}" for s in range(3)]
    hidden.report(small, table1, 2)
    printed = capsys.readouterr().out
    assert printed == (results / "hypernet_hidden2" / "comparison.md").read_text()
    assert "| Canny Edges | 60.40 ± 0.50 | 60.15 ± 1.00 | 59.17 ± 1.45 |" in printed
    assert printed.rstrip().endswith("at least HyperNet-1, hidden 2's on 1.")
    # Runs that differ in a setting besides the model are refused, as are other seeds.
    with pytest.raises(ValueError, match="The seeds differ"):
        hidden.report(small[:2], table1, 2)
    with pytest.raises(ValueError, match=r"differ in \['width'\]"):
        hidden.report(small, [_grid_like(results / "seed0", tmp_path, width=64)] + table1[1:], 2)


def test_gates_of_the_state_table_is_reproduced_from_the_committed_runs(capsys, monkeypatch, load_benchmark):
    """The committed comparison of ODEtoODE-1's two kinds of gates is what `mnistc_seeds.py --add` prints."""
    import pathlib

    seeds = load_benchmark("mnistc_seeds")
    results = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mnistc_table1_clean_100ep"
    state = results / "gates_of_the_state"
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", *(str(results / f"seed{s}") for s in range(3)),
                                     "--add", *(str(state / f"seed{s}") for s in range(3))])  # fmt: skip
    seeds.main()
    printed = capsys.readouterr().out
    assert printed == (state / "table_3seeds.md").read_text()
    assert "| ODEtoODE-1 (gate_inputs=state) |" in printed.splitlines()[0]
    for s in range(3):
        record = json.loads((state / f"seed{s}" / "results.json").read_text())
        assert record["training"]["gate_inputs"] == "state" and record["training"]["epochs"] == 100
        # As many parameters as HyperNet-1: its hypernetwork, made skew.
        hypernet = json.loads((results / f"seed{s}" / "results.json").read_text())["cells"]["identity/hypernet-1"]
        expected = _hypernet_1_params(record["training"]["width"])
        assert record["cells"]["identity/odetoode-1"]["params"] == hypernet["params"] == expected


def _hypernet_1_params(w, hidden=16, gates=1):
    """By hand: HyperNet-K of width w, 784 → w (with bias), W₀ (w²), K gates aₖ, K MLPs
    w² → 16 → 16 → w² (with biases), b (w), and the head w → 10 (with bias)."""
    d = w * w
    mlp = d * hidden + hidden + hidden * hidden + hidden + hidden * d + d
    return (784 * w + w) + (d + gates * (1 + mlp) + w) + (10 * w + 10)


def test_ten_gate_table_is_reproduced_from_the_committed_runs(capsys, monkeypatch, load_benchmark):
    """Table 1's "-10" models beside the "-1" models, 3 seeds: the committed table is what `mnistc_seeds.py --add`
    prints, and every grid has the "-1" models' protocol."""
    import pathlib

    seeds = load_benchmark("mnistc_seeds")
    root = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    one, ten = root / "mnistc_table1_clean_100ep", root / "mnistc_table1_10"
    state = ten / "gates_of_the_state"
    grids = [folder / f"seed{s}" for folder in (ten, state) for s in range(3)]
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", *(str(one / f"seed{s}") for s in range(3)),
                                     "--add", *map(str, grids[:3]), "--add", *map(str, grids[3:]),
                                     "--paper", "table1"])  # fmt: skip
    seeds.main()
    assert capsys.readouterr().out == (ten / "table_3seeds.md").read_text()
    for grid in grids:
        record = json.loads((grid / "results.json").read_text())
        training = record["training"]
        protocol = json.loads((one / grid.name / "results.json").read_text())["training"]  # the same seed's
        assert training["gate_inputs"] == ("state" if "gates_of_the_state" in str(grid) else "time")
        for key in ("width", "epochs", "dropout", "step_size", "train_on", "learning_rate", "batch_size", "seed"):
            assert training[key] == protocol[key], key
        assert len(record["cells"]) == 16 * len(record["last_invocation"]["models"])
        assert all(cell["epochs"] == 100 for cell in record["cells"].values())
    hypernet = json.loads((ten / "seed0" / "results.json").read_text())["cells"]["identity/hypernet-10"]
    assert hypernet["params"] == _hypernet_1_params(128, gates=10)


def _grid_like(directory, copy, **training):
    """`copy`: a copy of a results directory's record with some training settings changed."""
    record = json.loads((directory / "results.json").read_text())
    record["training"].update(training)
    (copy / "results.json").write_text(json.dumps(record))
    return copy


TABLE_2_MODELS = ["dense-1", "node", "nanode-1", "hypernet-1", "odetoode-1", "odetoode-2", "odetoode-4"]


def test_table_2_grid_has_table_2s_protocol_and_writes_its_own_table(capsys, monkeypatch, load_benchmark):
    """`benchmarks/results/mnistc_table2/seed0/`: Table 2's settings; every model with results has all 16
    configurations after 100 epochs on clean digits; table.md and table.csv are what the grid writes from them."""
    import pathlib

    from keras_odetoode import mnistc_grid
    from keras_odetoode.data import CORRUPTION_NAMES
    from keras_odetoode.result_tables import cell_key, format_tables, table_caption

    folder = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mnistc_table2" / "seed0"
    record = mnistc_grid.load_results(folder)
    training, invocation = record["training"], record["last_invocation"]
    protocol = {"width": 256, "dropout": 0.1, "epochs": 100, "batch_size": 128, "learning_rate": 0.001,
                "step_size": 0.01, "train_on": "identity", "seed": 0, "max_train_examples": None}  # fmt: skip
    assert {key: training[key] for key in protocol} == protocol
    assert invocation["models"] == TABLE_2_MODELS and invocation["corruptions"] == list(CORRUPTION_NAMES)
    finished = sorted({key.split("/")[1] for key in record["cells"]}, key=TABLE_2_MODELS.index)
    assert finished[:5] == TABLE_2_MODELS[:5]  # the "-1" models and NODE are done
    for model in finished:
        cells = [record["cells"][cell_key(c, model)] for c in CORRUPTION_NAMES]
        assert all(cell["epochs"] == 100 and cell["trained_on"] == "identity" for cell in cells)
        assert len({cell["params"] for cell in cells}) == 1  # one trained model tested 16 times
    config = {**training, **invocation}
    caption = table_caption(config, record["cells"], CORRUPTION_NAMES, TABLE_2_MODELS)
    markdown, csv = format_tables(CORRUPTION_NAMES, TABLE_2_MODELS, record["cells"], caption)
    assert (folder / "table.md").read_text() == markdown and (folder / "table.csv").read_text() == csv
    # The table beside the paper's values: what `mnistc_seeds.py --paper table2` prints of the finished models.
    monkeypatch.setattr(
        "sys.argv", ["mnistc_seeds.py", str(folder), "--paper", "table2", "--models", ",".join(finished)]
    )
    load_benchmark("mnistc_seeds").main()
    assert capsys.readouterr().out == (folder.parent / "table_seed0.md").read_text()


def test_models_picks_the_finished_models_of_a_grid_still_running(tmp_path, capsys, monkeypatch, load_benchmark):
    seeds = load_benchmark("mnistc_seeds")
    # Dense-1 is finished; ODEtoODE-1 has no result on Stripe yet.
    running = _grid(tmp_path / "a", 0, {"identity/dense-1": 0.9, "identity/odetoode-1": 0.8, "stripe/dense-1": 0.2})
    with pytest.raises(ValueError, match="not finished: no result for stripe/odetoode-1"):
        seeds.aggregate([running])
    accuracy, _, models, _ = seeds.aggregate([running], only=["dense-1"])
    assert models == ["dense-1"] and list(accuracy["stripe"]) == ["dense-1"]
    monkeypatch.setattr("sys.argv", ["mnistc_seeds.py", str(running), "--models", "Dense-1", "--model", "dense-1",
                                     "--paper", "table1"])  # fmt: skip
    seeds.main()
    out = capsys.readouterr().out
    assert out.startswith("| Models | Dense-1 |\n") and "| Stripe | **20.00** (30.55) |" in out
    with pytest.raises(ValueError, match=r"--models node: not in .*a. Expected some of: odetoode-1, dense-1"):
        seeds.aggregate([running], only=["node"])
