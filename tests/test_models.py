"""The classifier zoo (`keras_odetoode.models`) and the `mnistc` command (Tables 1–2).

Models train on the 600 real digits of `tests/data/mnist-600.npz`; the ODE
blocks use h = 0.1 (N = 10) instead of the paper's 0.01 to keep the suite fast.
No timing is asserted anywhere.
"""

import csv
import json
import pathlib
from unittest import mock

import keras
import numpy as np
import pytest

from keras_odetoode import cli, layers, mnistc_grid, models
from keras_odetoode.cli import mnistc as mnistc_cli
from keras_odetoode.data import make_mnist_c
from keras_odetoode.optimizers import RiemannianAdam

DIGITS = pathlib.Path(__file__).parent / "data" / "mnist-600.npz"
FAST_STEP = 0.1
FAMILY_NAMES = ["dense-1", "node", "nanode-1", "hypernet-1", "odetoode-1"]


@pytest.fixture(scope="module")
def digits():
    with np.load(DIGITS) as data:
        return data["images"], data["labels"]


def _inputs(images):
    return (images.reshape(len(images), -1) / 255.0).astype("float32")


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dense-1", ("dense", 1)),
        ("dense-10", ("dense", 10)),
        ("ODEtoODE-10", ("odetoode", 10)),
        ("odetoode-1", ("odetoode", 1)),
        ("nanode-1", ("nanode", 1)),
        ("nanode-0", ("nanode", 0)),
        ("HyperNet-4", ("hypernet", 4)),
        ("hypernet", ("hypernet", 1)),
        ("node", ("node", None)),
        (" NODE ", ("node", None)),
    ],
)
def test_parse_model_name(name, expected):
    assert models.parse_model_name(name) == expected


@pytest.mark.parametrize("name", ["resnet-1", "odetoode-", "odetoode_1", "ode-to-ode-1", "", "dense-1-2"])
def test_unknown_model_name_lists_the_valid_ones(name):
    valid = "dense-K, node, nanode-K, hypernet-K, odetoode-K"
    with pytest.raises(ValueError, match=rf"Unknown model name.*Received: name=.*{valid}"):
        models.parse_model_name(name)


@pytest.mark.parametrize(
    "name, message",
    [("node-2", "NODE takes no -K suffix"), ("dense-0", "K ≥ 1"), ("odetoode-0", "K ≥ 1")],
)
def test_bad_k_in_name(name, message):
    with pytest.raises(ValueError, match=message):
        models.parse_model_name(name)
    with pytest.raises(TypeError, match="must be a string. Received: name=5 of type int"):
        models.parse_model_name(5)


def test_model_and_display_names_round_trip():
    for name in ["dense-1", "node", "nanode-10", "hypernet-2", "odetoode-4"]:
        assert models.model_name(*models.parse_model_name(name)) == name
    assert [models.display_name(n) for n in ["dense-1", "node", "nanode-10", "hypernet-2", "odetoode-4"]] == [
        "Dense-1",
        "NODE",
        "NANODE-10",
        "HyperNet-2",
        "ODEtoODE-4",
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="odetoode-2", k=3), "k contradicts the model name"),
        (dict(name="node", k=2), "NODE takes no k"),
        (dict(name="dense", k=0), "k"),
        (dict(name="dense-1", width=0), "width"),
        (dict(name="dense-1", dropout=1.0), r"dropout must be a number ≥ 0.0 and < 1.0. Received: dropout=1.0"),
        (dict(name="dense-1", dropout=-0.1), "dropout"),
        (dict(name="dense-1", projection="conv"), r"Unknown projection. Received: projection='conv'"),
        (dict(name="odetoode-1", step_size=0.3), "step_size must divide horizon"),
        (dict(name="dense-1", seed=-1), "seed"),
        (
            dict(name="hypernet-1", gate_inputs="state"),
            r"gate_inputs is an option of ODEtoODE's gated flow only. Received: name='hypernet-1', gate_inputs='state'",
        ),
        (dict(name="odetoode-1", gate_inputs="W"), r"Unknown gate_inputs. Expected one of \('time', 'state'\)"),
    ],
)
def test_build_classifier_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build_classifier(**kwargs)


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_every_model_builds_and_gives_10_logits(name, digits):
    model = models.build_classifier(name, width=8, step_size=FAST_STEP, seed=0)
    assert model.name == name
    assert model.input_shape == (None, models.INPUT_DIM)
    assert model.output_shape == (None, models.NUM_CLASSES)
    assert [layer.name for layer in model.layers] == ["image", "projection", "block", "logits"]
    logits = keras.ops.convert_to_numpy(model(_inputs(digits[0][:5])))
    assert logits.shape == (5, 10) and np.all(np.isfinite(logits))


def test_k_selects_the_block_and_dropout_is_added(digits):
    model = models.build_classifier("odetoode", width=8, k=3, dropout=0.1, step_size=FAST_STEP, seed=0)
    assert model.name == "odetoode-3"
    block = model.get_layer("block")
    assert isinstance(block, layers.ODEtoODE) and block.flow_name == "gated" and block.num_gates == 3
    assert block.num_steps == 10
    assert model.get_layer("dropout").rate == 0.1
    assert isinstance(models.build_classifier("nanode-4", width=8).get_layer("block"), layers.NANODE)
    assert models.build_classifier("nanode-4", width=8).get_layer("block").degree == 4
    assert models.build_classifier("hypernet-2", width=8).get_layer("block").num_gates == 2
    assert models.build_classifier("dense-3", width=8).get_layer("block").depth == 3
    # Paper settings: h = 0.01 → N = 100 steps on [0, 1].
    assert models.build_classifier("odetoode-1", width=8).get_layer("block").num_steps == 100
    assert models.build_classifier("node", width=8).get_layer("block").num_steps == 100


def _param_count(name, w, **kwargs):
    return models.build_classifier(name, width=w, step_size=FAST_STEP, **kwargs).count_params()


@pytest.mark.parametrize("w", [8, 12])
def test_parameter_counts_match_hand_formulas(w):
    projection, head = 784 * w + w, 10 * w + 10
    # Dense-k: k layers w → w with bias.
    assert _param_count("dense-1", w) == projection + (w * w + w) + head
    assert _param_count("dense-3", w) == projection + 3 * (w * w + w) + head
    # ODEtoODE-K (gated): W_0 (w×w), K gates, K·4 time-feature kernels of w×w, bias b.
    assert _param_count("odetoode-1", w) == projection + (w * w + 1 + 4 * w * w + w) + head
    assert _param_count("odetoode-3", w) == projection + (w * w + 3 + 3 * 4 * w * w + w) + head
    # NODE: g = MLP w → w → w → w.
    assert _param_count("node", w) == projection + 3 * (w * w + w) + head
    # NANODE-k: 2k+1 trigonometric coefficient matrices and b.
    assert _param_count("nanode-2", w) == projection + (5 * w * w + w) + head
    # HyperNet-K: W_0, K gates, K MLPs w² → 16 → 16 → w², and b.
    s, dd = 16, w * w
    gate = dd * s + s + s * s + s + s * dd + dd
    assert _param_count("hypernet-2", w) == projection + (dd + 2 + 2 * gate + w) + head
    # ODEtoODE-K with gates of the state: HyperNet-K's hypernetwork, made skew (Sec. 3.1).
    assert _param_count("odetoode-2", w, gate_inputs="state") == projection + (dd + 2 + 2 * gate + w) + head
    assert _param_count("odetoode-1", w, gate_inputs="time") == _param_count("odetoode-1", w)
    # The Stiefel projection Ω₁ has no bias.
    assert _param_count("odetoode-1", w, projection="stiefel") == 784 * w + (w * w + 1 + 4 * w * w + w) + head


def test_stiefel_projection_is_orthonormal():
    model = models.build_classifier("odetoode-1", width=8, step_size=FAST_STEP, seed=0, projection="stiefel")
    kernel = keras.ops.convert_to_numpy(model.get_layer("projection").kernel)
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(8), atol=1e-5)


def test_seed_fixes_the_initial_weights(digits):
    x = _inputs(digits[0][:3])
    a = models.build_classifier("nanode-1", width=8, step_size=FAST_STEP, seed=3)(x)
    b = models.build_classifier("nanode-1", width=8, step_size=FAST_STEP, seed=3)(x)
    c = models.build_classifier("nanode-1", width=8, step_size=FAST_STEP, seed=4)(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert not np.allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(c))


def test_compile_classifier_uses_riemannian_adam():
    model = models.compile_classifier(models.build_classifier("dense-1", width=8), learning_rate=2e-3)
    assert isinstance(model.optimizer, RiemannianAdam)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(2e-3)
    assert not model.optimizer.amsgrad
    amsgrad = models.compile_classifier(models.build_classifier("dense-1", width=8), amsgrad=True)
    assert amsgrad.optimizer.amsgrad
    with pytest.raises(ValueError, match="learning_rate must be > 0. Received: learning_rate=0"):
        models.compile_classifier(models.build_classifier("dense-1", width=8), learning_rate=0)


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_training_on_real_digits_lowers_the_loss(name, digits):
    x, y = _inputs(digits[0][:256]), digits[1][:256].astype("int64")
    model = models.compile_classifier(
        models.build_classifier(name, width=16, step_size=FAST_STEP, seed=0), learning_rate=3e-3
    )
    initial = model.evaluate(x, y, batch_size=256, verbose=0)[0]
    assert initial == pytest.approx(np.log(10), abs=0.8)  # an untrained 10-way classifier
    model.fit(x, y, batch_size=64, epochs=4, verbose=0)  # 16 steps
    final = model.evaluate(x, y, batch_size=256, verbose=0)[0]
    # Measured ratios 0.22–0.46 for the five models; 0.7 leaves a wide margin.
    assert final < 0.7 * initial, (name, initial, final)
    if name.startswith("odetoode"):
        w0 = keras.ops.convert_to_numpy(model.get_layer("block").flow.w0)
        np.testing.assert_allclose(w0.T @ w0, np.eye(16), atol=1e-5)


# ---------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def tiny_mnistc(tmp_path_factory, digits):
    images, labels = digits
    root = tmp_path_factory.mktemp("mnist_c")
    make_mnist_c(
        (images[:500], labels[:500]),
        (images[500:], labels[500:]),
        root,
        corruptions=["identity", "stripe"],
        seed=0,
        progress=False,
    )
    return root


def _mnistc_args(data_dir, out, *extra):
    return [
        "mnistc",
        "--corruptions",
        "identity,stripe",
        "--models",
        "dense-1,ODEtoODE-1",
        "--epochs",
        "1",
        "--width",
        "16",
        "--step-size",
        str(FAST_STEP),
        "--max-train-examples",
        "256",
        "--source",
        "local",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--verbose",
        "0",
        "--in-process",
        *extra,
    ]


def test_cli_writes_the_table_and_resumes(tiny_mnistc, tmp_path, monkeypatch, capsys):
    """--train-on each: every cell trains its model on the corruption's own train split."""
    out = tmp_path / "results"
    each = ("--train-on", "each")
    assert cli.main(_mnistc_args(tiny_mnistc, out, *each)) == 0

    with open(out / "table.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["corruption", "dense-1", "odetoode-1"]
    assert [row[0] for row in rows[1:]] == ["identity", "stripe"]
    values = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    assert values.shape == (2, 2) and np.all((values >= 0) & (values <= 100))

    markdown = (out / "table.md").read_text()
    assert markdown.splitlines()[0] == "| Models | Dense-1 | ODEtoODE-1 |"
    assert "| Identity |" in markdown and "| Stripe |" in markdown and "4/4 cells done" in markdown

    record = json.loads((out / "results.json").read_text())
    assert set(record["cells"]) == {"identity/dense-1", "identity/odetoode-1", "stripe/dense-1", "stripe/odetoode-1"}
    cell = record["cells"]["stripe/odetoode-1"]
    assert cell["epochs"] == 1 and cell["epochs_this_session"] == 1 and cell["trained_on"] == "stripe"
    assert record["cells"]["identity/odetoode-1"]["trained_on"] == "identity"
    # Each ODEtoODE-1 cell, recomputed: its own training's saved weights, tested on the corruption's test split.
    for row, corruption in enumerate(["identity", "stripe"], 1):
        weights = out / "runs" / corruption / "odetoode-1" / "last.weights.h5"
        accuracy = _evaluate_saved(weights, tiny_mnistc, corruption)
        assert record["cells"][f"{corruption}/odetoode-1"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
        assert rows[row][2] == f"{100 * accuracy:.2f}"
    assert not (out / "runs" / "stripe" / "odetoode-1" / "backup").exists()  # removed once the cell finished
    if mnistc_grid.tensorboard_available():
        assert list((out / "logs" / "stripe" / "odetoode-1" / "train").glob("events.out.tfevents.*"))
        assert list((out / "logs" / "stripe" / "odetoode-1" / "test").glob("events.out.tfevents.*"))

    # A second invocation retrains nothing and leaves the numbers as they were.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(mnistc_grid, "_train_cell", no_training)
    capsys.readouterr()
    assert cli.main(_mnistc_args(tiny_mnistc, out, *each)) == 0
    assert capsys.readouterr().out.count("skipped") == 4
    assert json.loads((out / "results.json").read_text())["cells"] == record["cells"]
    with open(out / "table.csv", newline="") as file:
        assert list(csv.reader(file)) == rows

    # Other training settings in the same directory are refused before any training,
    # the protocol among them.
    with pytest.raises(ValueError, match=r"other training settings.*width=16 → 32"):
        cli.main(_mnistc_args(tiny_mnistc, out, *each, "--width", "32"))
    with pytest.raises(ValueError, match=r"other training settings.*train_on='each' → 'identity'"):
        cli.main(_mnistc_args(tiny_mnistc, out))
    with pytest.raises(ValueError, match=r"other training settings.*gate_inputs='time' → 'state'"):
        cli.main(_mnistc_args(tiny_mnistc, out, *each, "--gate-inputs", "state"))
    other_data = tmp_path / "other"
    with pytest.raises(ValueError, match=rf"other training settings.*data_dir='{tiny_mnistc}' → '{other_data}'"):
        cli.main(_mnistc_args(other_data, out, *each))

    # A version-1 record without "train_on" was made per corruption, one without "gate_inputs"
    # had ODEtoODE's gates read the time, and its cells have no "trained_on"; a record without
    # "data_dir" is taken to be from the data given now.
    assert record["version"] == mnistc_grid.RESULTS_VERSION == 2
    record["version"] = 1
    del record["training"]["train_on"], record["training"]["data_dir"], record["training"]["gate_inputs"]
    for cell in record["cells"].values():
        del cell["trained_on"]
    (out / "results.json").write_text(json.dumps(record))
    assert cli.main(_mnistc_args(tiny_mnistc, out, *each)) == 0
    assert capsys.readouterr().out.count("skipped") == 4


def _evaluate_saved(path, data_dir, corruption, **options):
    """Test accuracy of the weights in `path` (a width-16 ODEtoODE-1 of `_mnistc_args`) on `corruption`."""
    from keras_odetoode.data import load_mnist_corrupted

    model = models.build_classifier("odetoode-1", width=16, step_size=FAST_STEP, seed=0, **options)
    models.compile_classifier(model, 1e-3)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(path))
    test = load_mnist_corrupted(corruption, "test", batch_size=128, source="local", data_dir=data_dir)
    return model.evaluate(test, verbose=0, return_dict=True)["accuracy"]


def test_cli_trains_once_on_clean_digits_and_tests_every_corruption(tiny_mnistc, tmp_path, monkeypatch, capsys):
    """The default and the paper's protocol: one training on identity, every corruption's test split."""
    out = tmp_path / "results"
    args = _mnistc_args(tiny_mnistc, out)
    args[args.index("--corruptions") + 1] = "stripe"
    args[args.index("--models") + 1] = "odetoode-1"
    assert cli.main(args) == 0
    record = json.loads((out / "results.json").read_text())
    assert record["training"]["train_on"] == "identity"
    assert list(record["cells"]) == ["stripe/odetoode-1"]
    cell = record["cells"]["stripe/odetoode-1"]
    assert cell["trained_on"] == "identity"
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["identity"]  # trained on clean digits only
    weights = out / "runs" / "identity" / "odetoode-1" / "last.weights.h5"
    assert cell["test_accuracy"] == pytest.approx(_evaluate_saved(weights, tiny_mnistc, "stripe"), abs=1e-6)
    assert "each model trained once on identity" in (out / "table.md").read_text()

    # Another corruption, asked for alone: the trained model is evaluated on it, not trained again.
    def no_fit(*args, **kwargs):
        raise AssertionError("a finished training was run again")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    capsys.readouterr()
    args[args.index("--corruptions") + 1] = "identity"
    assert cli.main(args) == 0
    assert "evaluating the trained model, testing on identity" in capsys.readouterr().out
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert cells["stripe/odetoode-1"] == cell
    assert cells["identity/odetoode-1"]["train_loss"] == cell["train_loss"]
    clean = _evaluate_saved(weights, tiny_mnistc, "identity")
    assert cells["identity/odetoode-1"]["test_accuracy"] == pytest.approx(clean, abs=1e-6)


def test_cli_gate_inputs_state_trains_the_paper_s_gated_odetoode(tiny_mnistc, tmp_path):
    out = tmp_path / "state"
    args = _mnistc_args(tiny_mnistc, out, "--gate-inputs", "state")
    args[args.index("--corruptions") + 1] = "stripe"
    assert cli.main(args) == 0
    record = json.loads((out / "results.json").read_text())
    assert record["training"]["gate_inputs"] == "state"
    assert "ODEtoODE gates reading the state W_t" in (out / "table.md").read_text()
    # ODEtoODE-1 was the state-gated model: its weights load into one and give its score;
    # they do not fit the time-gated one. Dense-1 has no gates and is as without the option.
    weights = out / "runs" / "identity" / "odetoode-1" / "last.weights.h5"
    cell = record["cells"]["stripe/odetoode-1"]
    assert cell["test_accuracy"] == pytest.approx(
        _evaluate_saved(weights, tiny_mnistc, "stripe", gate_inputs="state"), abs=1e-6
    )
    assert cell["params"] == models.build_classifier("hypernet-1", width=16, step_size=FAST_STEP).count_params()
    with pytest.raises(ValueError, match=r"Layer 'flow' expected 3 variables, but received 8"):
        _evaluate_saved(weights, tiny_mnistc, "stripe")
    time_gated = tmp_path / "time"
    args[args.index("--out") + 1] = str(time_gated)
    assert cli.main([a for a in args if a not in ("--gate-inputs", "state")]) == 0
    dense = json.loads((time_gated / "results.json").read_text())["cells"]["stripe/dense-1"]
    assert dense["test_accuracy"] == record["cells"]["stripe/dense-1"]["test_accuracy"]


def _weights(path):
    """Every array in a Keras `.weights.h5` file, in file order."""
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    assert arrays, f"no weights in {path}"
    return arrays


def test_cli_resumes_an_interrupted_cell_from_its_backup(tiny_mnistc, tmp_path, monkeypatch):
    """A cell stopped after epoch 1 of 2 trains only epoch 2 when run again."""
    out = tmp_path / "results"
    args = _mnistc_args(tiny_mnistc, out, "--epochs", "2")
    args[args.index("--corruptions") + 1] = "identity"
    args[args.index("--models") + 1] = "dense-1"

    class CheckpointThenInterrupt(keras.callbacks.ModelCheckpoint):
        """Comes after BackupAndRestore in the cell's callbacks: the backup of epoch 1 is written."""

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks, "ModelCheckpoint", CheckpointThenInterrupt)
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    monkeypatch.undo()
    assert (out / "runs" / "identity" / "dense-1" / "backup" / "latest.weights.h5").is_file()
    assert json.loads((out / "results.json").read_text())["cells"] == {}

    assert cli.main(args) == 0
    cell = json.loads((out / "results.json").read_text())["cells"]["identity/dense-1"]
    assert cell["epochs"] == 2 and cell["epochs_this_session"] == 1

    # Epoch 2 saw the order an uninterrupted training's epoch 2 sees: the same weights and scores.
    whole = tmp_path / "uninterrupted"
    args[args.index("--out") + 1] = str(whole)
    assert cli.main(args) == 0
    uninterrupted = json.loads((whole / "results.json").read_text())["cells"]["identity/dense-1"]
    assert cell["train_loss"] == pytest.approx(uninterrupted["train_loss"], rel=1e-6, abs=0)
    assert cell["test_accuracy"] == uninterrupted["test_accuracy"]
    resumed_weights = _weights(out / "runs" / "identity" / "dense-1" / "last.weights.h5")
    for resumed, expected in zip(
        resumed_weights, _weights(whole / "runs" / "identity" / "dense-1" / "last.weights.h5")
    ):
        np.testing.assert_allclose(resumed, expected, rtol=0, atol=1e-6)


def test_cli_stopped_while_evaluating_does_not_train_again(tiny_mnistc, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    args = _mnistc_args(tiny_mnistc, out)
    args[args.index("--models") + 1] = "dense-1"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    monkeypatch.undo()
    trained = json.loads((out / "runs" / "identity" / "dense-1" / mnistc_grid.TRAINED_FILE).read_text())
    assert trained["trained_on"] == "identity" and trained["epochs"] == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished training was run again")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "evaluating the trained model, testing on identity, stripe" in capsys.readouterr().out
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert {cells[f"{c}/dense-1"]["train_loss"] for c in ("identity", "stripe")} == {trained["train_loss"]}


def test_cli_trains_each_cell_in_its_own_process(tiny_mnistc, tmp_path):
    """The default: a fresh process per cell gives the same numbers as training in-process."""
    args = _mnistc_args(tiny_mnistc, tmp_path / "separate")
    args.remove("--in-process")
    args[args.index("--corruptions") + 1] = "stripe"
    args[args.index("--models") + 1] = "dense-1"
    assert cli.main(args) == 0
    separate = json.loads((tmp_path / "separate" / "results.json").read_text())["cells"]["stripe/dense-1"]
    args[args.index("--out") + 1] = str(tmp_path / "same")
    assert cli.main(args + ["--in-process"]) == 0
    same = json.loads((tmp_path / "same" / "results.json").read_text())["cells"]["stripe/dense-1"]
    assert separate["test_accuracy"] == pytest.approx(same["test_accuracy"], abs=1e-6)
    assert separate["train_loss"] == pytest.approx(same["train_loss"], rel=1e-4)


def _children(pid):
    """The pids of `pid`'s child processes (Linux /proc)."""
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _running(pid):
    """Whether `pid` runs (exists and is not a zombie)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not pathlib.Path("/proc/self/task").exists(), reason="reads child processes from Linux /proc")
def test_a_killed_grid_takes_its_training_process_with_it(tiny_mnistc, tmp_path):
    """SIGTERM, which the grid does not handle, ends the cell's training process too: no orphan goes on
    writing the backup a restarted grid would write."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = _mnistc_args(tiny_mnistc, tmp_path / "out")
    args.remove("--in-process")
    args[args.index("--epochs") + 1] = "10000"  # far longer than the test
    args[args.index("--models") + 1] = "dense-1"
    grid = subprocess.Popen(
        [sys.executable, "-m", "keras_odetoode.cli", *args], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    trainers = []
    try:
        backup = tmp_path / "out" / "runs" / "identity" / "dense-1" / "backup"
        deadline = time.monotonic() + 120
        while not backup.exists() and grid.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)  # until the training process has finished an epoch
        assert backup.exists(), "the training never started"
        trainers = [
            pid for pid in _children(grid.pid) if "spawn_main" in pathlib.Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(trainers) == 1
        grid.send_signal(signal.SIGTERM)
        assert grid.wait(timeout=30) == -signal.SIGTERM
        deadline = time.monotonic() + 15
        while _running(trainers[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(trainers[0]), "the training process outlived the grid"
    finally:
        grid.kill()
        grid.wait()
        for pid in filter(_running, trainers):  # only if the test failed
            os.kill(pid, signal.SIGKILL)


def test_presets_set_the_papers_grids():
    parser = cli.build_parser()
    table1 = mnistc_cli.config_from_args(parser.parse_args(["mnistc", "--preset", "table1", "--out", "x"]))
    assert (table1["width"], table1["dropout"], table1["epochs"]) == (128, 0.0, 100)
    assert table1["models"] == [
        "dense-1", "dense-10", "node", "nanode-1", "nanode-10",
        "hypernet-1", "hypernet-10", "odetoode-1", "odetoode-10",
    ]  # fmt: skip
    assert table1["corruptions"] == list(mnistc_grid.PAPER_CORRUPTIONS) and len(table1["corruptions"]) == 11
    assert table1["train_on"] == "identity"
    table2 = mnistc_cli.config_from_args(
        parser.parse_args(["mnistc", "--preset", "table2", "--epochs", "5", "--corruptions", "all", "--out", "x"])
    )
    assert (table2["width"], table2["dropout"], table2["epochs"]) == (256, 0.1, 5)
    assert len(table2["models"]) == 13 and len(table2["corruptions"]) == 16
    assert [m for m in table2["models"] if m.startswith("odetoode")] == ["odetoode-1", "odetoode-2", "odetoode-4"]
    # The paper's gated-ODEtoODE (gates of the state) in the presets; time gates by default; the flag wins.
    assert table1["gate_inputs"] == table2["gate_inputs"] == "state"
    assert mnistc_cli.config_from_args(parser.parse_args(["mnistc", "--out", "x"]))["gate_inputs"] == "time"
    given = parser.parse_args(["mnistc", "--preset", "table1", "--gate-inputs", "time", "--out", "x"])
    assert mnistc_cli.config_from_args(given)["gate_inputs"] == "time"


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--corruptions", "identity,fgo", r"Unknown corruption. Received: fgo. Expected 'all', 'paper' or some of: id"),
        ("--models", "dense-1,resnet", r"Unknown model name. Received: name='resnet'"),
        ("--models", "dense-1,Dense-1", "listed twice"),
        ("--epochs", "0", r"epochs must be an integer ≥ 1. Received: epochs=0"),
        ("--dropout", "1.5", r"dropout must be a number ≥ 0.0 and < 1.0. Received: dropout=1.5"),
        ("--train-on", "clean", r"Unknown training data. Received: train_on='clean'. Expected 'each' or one of: id"),
    ],
)
def test_cli_errors_say_what_was_received(flag, value, message, tmp_path):
    args = ["mnistc", "--source", "local", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), flag, value]
    with pytest.raises(ValueError, match=message):
        cli.main(args)
    assert not (tmp_path / "o").exists()  # bad input leaves no empty output folder


def test_cli_missing_data_fails_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST-C file not found"):
        cli.main(["mnistc", "--corruptions", "identity", "--source", "local", "--data-dir", str(tmp_path),
                  "--out", str(tmp_path / "o")])  # fmt: skip
    assert not (tmp_path / "o").exists()  # a failed mnistc leaves no empty output folder
    with pytest.raises(ValueError, match="--source local reads the MNIST-C layout from --data-dir"):
        cli.main(["mnistc", "--source", "local", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_cli_download_flag_lets_tfds_download(tmp_path):
    """Without --download an unprepared TFDS config fails at once; with it, TFDS is asked to download."""
    import tensorflow_datasets as tfds

    args = ["mnistc", "--corruptions", "identity", "--models", "dense-1", "--data-dir", str(tmp_path / "tfds"),
            "--out", str(tmp_path / "o")]  # fmt: skip
    with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", side_effect=AssertionError) as download:
        with pytest.raises(
            FileNotFoundError, match=r"mnist_corrupted/identity is not prepared in .*mnistc: --download"
        ):
            cli.main(args)
    download.assert_not_called()
    failure = tfds.download.DownloadError("no route to zenodo.org")
    with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", side_effect=failure) as download:
        with pytest.raises(ConnectionError, match="Could not download TFDS dataset mnist_corrupted/identity"):
            cli.main(args + ["--download"])
    download.assert_called_once()
