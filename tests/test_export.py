"""SavedModel export for serving: folded parameter flows, metadata, validation and the CLI.

One model — StiefelDense, ISO and gated ODEtoODE, NANODE, HyperNetODE, Dense
head — is exported once (module fixture) and served three ways: in-process,
by a fresh interpreter that never imports keras_odetoode, and by TensorFlow's
`saved_model_cli run`. The two subprocesses run concurrently.
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_odetoode import __version__, cli, export, export_sources, layers
from keras_odetoode.es import checkpoint as checkpoint_lib
from keras_odetoode.es import policies, rollouts
from keras_odetoode.es.normalization import ObsStats
from keras_odetoode.es.strategy import ESState
from keras_odetoode.es.trainer import ESConfig

DIM = 8
STEP = 0.1
ODE_NAMES = ["iso", "gated", "nanode", "hypernet"]
# The flows' exponential (retraction "expm"): matrix products in a While over chunks of steps,
# whose bound θ is checked once per trajectory by an If, the exact path (manifolds.expm) squaring
# in a While. Retractions
# "tf.linalg.expm" (a Padé approximant) and "cayley" solve with MatrixSolve. This model has no
# other branch, loop or solve.
EXPM_OPS = {"MatrixExponential", "MatrixSolve", "If", "StatelessIf", "While", "StatelessWhile"}
TRAINING_COMMAND = ["python", "train.py", "--epochs", "3", "--note", "two words"]

_SERVE_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
root = sys.argv[1]
fn = tf.saved_model.load(f"{root}/model").signatures["serving_default"]
np.save(f"{root}/served.npy", fn(inputs=tf.constant(np.load(f"{root}/x.npy")))["outputs"].numpy())
print(json.dumps({"keras_odetoode_imported": sorted(m for m in sys.modules if m.split(".")[0] == "keras_odetoode")}))
"""


def _build_model():
    model = keras.Sequential(
        [
            keras.Input((DIM,)),
            layers.StiefelDense(6, seed=0, name="omega"),
            layers.ODEtoODE(flow="isospectral", step_size=STEP, seed=1, name="iso"),
            layers.ODEtoODE(flow="gated", num_gates=2, step_size=STEP, seed=2, name="gated"),
            layers.NANODE(degree=2, step_size=STEP, activation="tanh", seed=3, name="nanode"),
            layers.HyperNetODE(hidden_units=4, step_size=STEP, activation="tanh", seed=4, name="hypernet"),
            keras.layers.Dense(3, name="head"),
        ]
    )
    # tanh on the two baselines keeps every output O(1): 1e-5 is then ≥ 20 float32 ulps.
    # Non-zero biases: with f = |·| and b = 0 some perturbations (W → −W) would not show.
    rng = np.random.default_rng(7)
    for name in ODE_NAMES:
        bias = model.get_layer(name).bias
        bias.assign(0.3 * rng.standard_normal(bias.shape).astype("float32"))
    return model


def _ops(graph_def):
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def _saved_model_cli():
    """The saved_model_cli of this Python's environment: beside `sys.executable`, activated or not.

    Not `shutil.which`: without the venv activated, PATH finds another installation's (or none).
    """
    binary = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return [binary] if os.path.isfile(binary) else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("export")
    model = _build_model()
    x = np.random.default_rng(1).standard_normal((5, DIM)).astype("float32")
    np.save(root / "x.npy", x)
    record = export.export_saved_model(
        model,
        root / "model",
        metadata={"dataset": "unit-test"},
        training_command=TRAINING_COMMAND,
        result={"accuracy": 0.875},
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    run = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    serve = subprocess.Popen([sys.executable, "-c", _SERVE_SCRIPT, str(root)], **run)
    # np.ones((2, DIM)) as a literal: TF 2.21's saved_model_cli only accepts Python literals in
    # --input_exprs ("Expression "np.ones((2,8))" is not a valid python literal").
    ones = repr(np.ones((2, DIM)).tolist()).replace(" ", "")
    saved_model_cli = subprocess.Popen(
        _saved_model_cli()
        + [
            "run",
            "--dir",
            str(root / "model"),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            f"inputs={ones}",
        ],
        **run,
    )
    serve_out, serve_err = serve.communicate(timeout=300)
    cli_out, cli_err = saved_model_cli.communicate(timeout=300)
    assert serve.returncode == 0, serve_err[-3000:]
    assert saved_model_cli.returncode == 0, cli_err[-3000:]
    return {
        "root": root,
        "path": str(root / "model"),
        "model": model,
        "x": x,
        "expected": model(x).numpy(),
        "record": record,
        "served": np.load(root / "served.npy"),
        "serve_report": json.loads(serve_out.strip().splitlines()[-1]),
        "saved_model_cli": cli_out + cli_err,
    }


# Serving: three loaders, one answer.


def test_reloaded_saved_model_equals_the_keras_model(exported):
    loaded = tf.saved_model.load(exported["path"])
    fn = loaded.signatures["serving_default"]
    assert list(fn.structured_input_signature[1]) == ["inputs"]
    spec = fn.structured_input_signature[1]["inputs"]
    assert spec.shape.as_list() == [None, DIM] and spec.dtype == tf.float32
    assert fn.structured_outputs["outputs"].shape.as_list() == [None, 3]
    served = fn(inputs=tf.constant(exported["x"]))["outputs"].numpy()
    np.testing.assert_allclose(served, exported["expected"], rtol=0, atol=1e-5)
    # Dynamic batch: a single example and a larger batch.
    for batch in (exported["x"][:1], np.tile(exported["x"], (3, 1))):
        np.testing.assert_allclose(
            fn(inputs=tf.constant(batch))["outputs"].numpy(), exported["model"](batch).numpy(), rtol=0, atol=1e-5
        )


def test_load_serving_validates_and_serves(exported):
    serving = export.load_serving(exported["path"])
    assert (serving.input_name, serving.output_name) == ("inputs", "outputs")
    assert serving.input_shape == (None, DIM) and serving.output_shape == (None, 3)
    assert serving.metadata == export.load_metadata(exported["path"])
    np.testing.assert_allclose(serving(exported["x"]), exported["expected"], rtol=0, atol=1e-5)


def test_serves_in_an_interpreter_without_the_package(exported):
    assert exported["serve_report"] == {"keras_odetoode_imported": []}
    np.testing.assert_allclose(exported["served"], exported["expected"], rtol=0, atol=1e-5)


def test_saved_model_cli_run_prints_the_keras_outputs(exported):
    text = exported["saved_model_cli"]
    match = re.search(r"Result for output key outputs:\s*(\[.*?\]\])", text, re.S)
    assert match, text[-3000:]
    printed = np.array([float(v) for v in re.findall(r"-?\d+\.\d*(?:e[-+]?\d+)?", match.group(1))])
    expected = exported["model"](np.ones((2, DIM), "float32")).numpy()
    np.testing.assert_allclose(printed.reshape(expected.shape), expected, rtol=0, atol=1e-5)


# The folded graph: a depth-N residual network, no matrix exponential.


def test_folded_graph_has_no_matrix_exponential(exported):
    fn = tf.saved_model.load(exported["path"]).signatures["serving_default"]
    serving_ops = _ops(fn.graph.as_graph_def())
    assert "MatMul" in serving_ops and "Abs" in serving_ops  # the walk does reach the main flow
    assert not serving_ops & EXPM_OPS
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(exported["path"], "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    for meta_graph in saved.meta_graphs:  # every function stored in the file
        assert not _ops(meta_graph.graph_def) & EXPM_OPS
    # Control: the same model traced unfolded computes its flows with expm: the check and the squarings.
    spec = tf.TensorSpec((None, DIM), tf.float32)
    unfolded = _ops(tf.function(lambda x: exported["model"](x)).get_concrete_function(spec).graph.as_graph_def())
    assert {"If", "StatelessIf"} & unfolded and {"While", "StatelessWhile"} & unfolded


# metadata.json


def test_metadata_is_complete(exported):
    metadata = export.load_metadata(exported["path"])
    assert metadata == exported["record"]
    assert metadata["format"] == export.FORMAT and metadata["format_version"] == export.FORMAT_VERSION
    assert metadata["package_version"] == __version__
    assert metadata["tensorflow_version"] == tf.__version__ and metadata["keras_version"] == keras.__version__
    assert metadata["signature"] == "serving_default"
    assert metadata["inputs"] == [{"name": "inputs", "shape": [None, DIM], "dtype": "float32"}]
    assert metadata["outputs"] == [{"name": "outputs", "shape": [None, 3], "dtype": "float32"}]
    assert metadata["training_command"] == "python train.py --epochs 3 --note 'two words'"
    assert metadata["result"] == {"accuracy": 0.875}
    assert metadata["dataset"] == "unit-test"
    assert metadata["folded_parameter_flows"] == ODE_NAMES
    created = datetime.datetime.fromisoformat(metadata["created"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(hours=1)
    # The stored config rebuilds the architecture.
    assert metadata["model_class"] == "Sequential"
    rebuilt = keras.saving.deserialize_keras_object(metadata["model_config"])
    classes = lambda model: [type(layer).__name__ for layer in model.layers]  # noqa: E731
    assert classes(rebuilt) == classes(exported["model"])
    assert rebuilt.get_layer("gated").get_config() == exported["model"].get_layer("gated").get_config()
    # Written atomically: no temporary files left in the export or beside it.
    files = ["assets", "fingerprint.pb", "metadata.json", "saved_model.pb", "variables"]
    assert sorted(os.listdir(exported["path"])) == files
    assert not [name for name in os.listdir(exported["root"]) if name.startswith(".")]


# The model is left as it was.


def test_model_is_unfolded_after_export(exported):
    model = exported["model"]
    assert all(getattr(model.get_layer(name), "_folded_weights", None) is None for name in ODE_NAMES)
    w0 = model.get_layer("iso").flow.w0
    before = w0.numpy()
    c, s = np.cos(0.3), np.sin(0.3)
    rotation = np.eye(6, dtype="float32")
    rotation[:2, :2] = [[c, -s], [s, c]]
    try:
        w0.assign(before @ rotation)  # still orthogonal
        changed = model(exported["x"]).numpy()
    finally:
        w0.assign(before)
    assert np.abs(changed - exported["expected"]).max() > 1e-3
    np.testing.assert_allclose(model(exported["x"]).numpy(), exported["expected"], rtol=0, atol=1e-6)


def test_failed_export_unfolds_and_leaves_nothing(tmp_path):
    model = _build_model()
    with pytest.raises(ValueError, match="JSON-serialisable"):
        # Fails after folding and tracing: the try/finally must still unfold.
        export.export_saved_model(model, tmp_path / "out", metadata={"bad": object()})
    assert all(getattr(model.get_layer(name), "_folded_weights", None) is None for name in ODE_NAMES)
    assert os.listdir(tmp_path) == []


def test_a_layer_folded_by_the_caller_stays_folded(tmp_path):
    model = keras.Sequential([keras.Input((4,)), layers.ODEtoODE(step_size=0.5, seed=0, name="ode")])
    ode = model.get_layer("ode")
    ode.fold_parameter_flow()
    with export.folded_parameter_flows(model) as folded:
        assert folded == [ode]
    assert ode._folded_weights is not None
    ode.unfold_parameter_flow()
    with export.folded_parameter_flows(model):
        assert ode._folded_weights is not None
    assert ode._folded_weights is None


def test_nested_parameter_flows_are_found():
    inner = keras.Sequential(
        [keras.Input((4,)), layers.NANODE(degree=1, step_size=0.5, name="inner_ode")], name="inner"
    )
    outer = keras.Sequential([keras.Input((4,)), inner, layers.ODEtoODE(step_size=0.5, name="outer_ode")])
    assert [layer.name for layer in export.parameter_flow_layers(outer)] == ["inner_ode", "outer_ode"]


# The CLI.


def test_cli_exports_a_keras_file(exported, tmp_path, capsys):
    source = tmp_path / "run" / "model.keras"
    source.parent.mkdir()
    exported["model"].save(source)
    out = tmp_path / "served"
    assert (
        cli.main(["export", str(source), str(out), "--result", "accuracy=0.9", "--training-command", "python train.py"])
        == 0
    )
    assert "4 parameter flow(s) folded" in capsys.readouterr().err
    serving = export.load_serving(out)
    np.testing.assert_allclose(serving(exported["x"]), exported["expected"], rtol=0, atol=1e-5)
    assert serving.metadata["source"] == {"kind": "keras_file", "path": str(source)}
    assert serving.metadata["result"] == {"accuracy": 0.9}
    assert serving.metadata["training_command"] == "python train.py"
    assert (serving.input_name, serving.output_name) == export.MODEL_TENSOR_NAMES == ("inputs", "outputs")
    # A run directory holding one .keras file resolves to it.
    model, metadata, _, _ = export_sources.load_source(str(source.parent))
    assert metadata["source"]["path"] == str(source) and len(model.layers) == len(exported["model"].layers)


def _write_es_run(run_dir, obs_dim=5, act_dim=2):
    """A run directory as `keras-odetoode es` leaves it (checkpoint + policy metadata), no environment needed."""
    kwargs = {"hidden": 4, "flow": "isospectral", "num_gates": 1, "seed": 0}
    policy = rollouts.PopulationPolicy(policies.build_policy("odetoode", obs_dim, act_dim, **kwargs))
    rng = np.random.default_rng(3)
    centre = policy.get_params()
    best = dict(centre)
    best["core/bias"] = rng.standard_normal(centre["core/bias"].shape)
    best["core/flow.q_matrix"] = centre["core/flow.q_matrix"] + 0.5 * rng.standard_normal((4, 4))
    stats = ObsStats(10.0, rng.standard_normal(obs_dim), rng.uniform(1.0, 5.0, obs_dim))
    config = ESConfig(env_id="Swimmer-v5", policy="odetoode", policy_kwargs=kwargs, iterations=3).to_dict()
    best_record = {
        "reward": 12.5,
        "iteration": 2,
        "params": best,
        "obs_mean": rng.standard_normal(obs_dim).astype("float32"),
        "obs_variance": rng.uniform(0.5, 2.0, obs_dim).astype("float32"),
    }
    history = [{"reward_centre": 10.0}, {"reward_centre": 12.5}, {"reward_centre": 11.0}]
    ckpt = checkpoint_lib.Checkpoint(ESState(centre, 3, 0), stats, best_record, history, config)
    checkpoint_lib.save(os.path.join(run_dir, "checkpoints"), ckpt)
    os.makedirs(os.path.join(run_dir, "policy"))
    with open(os.path.join(run_dir, "policy", "metadata.json"), "w") as f:
        json.dump({"command": "keras-odetoode es --env Swimmer-v5", "action_low": [-1, -1], "action_high": [1, 1]}, f)
    return policy, best_record, stats


def test_cli_exports_an_es_run(tmp_path):
    run_dir = str(tmp_path / "run")
    policy, best, stats = _write_es_run(run_dir)
    out = str(tmp_path / "policy_served")
    obs = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")

    assert cli.main(["export", run_dir, out, "--policy", "latest"]) == 0
    mean, variance = stats.normalizer()
    latest = export.load_serving(out)
    expected = policy.model((obs - mean) / np.sqrt(variance)).numpy()  # centre params are the policy's own
    np.testing.assert_allclose(latest(obs), expected, rtol=0, atol=1e-5)
    # The run's last centre reward scored the centre before the last update: none is recorded.
    assert latest.metadata["result"] is None and latest.metadata["iteration"] == 3

    # Exporting again into the same directory replaces the previous export.
    assert cli.main(["export", run_dir, out]) == 0
    served = export.load_serving(out)
    policy.set_params(best["params"])
    expected = policy.model((obs - best["obs_mean"]) / np.sqrt(best["obs_variance"])).numpy()
    np.testing.assert_allclose(served(obs), expected, rtol=0, atol=1e-5)
    metadata = served.metadata
    assert metadata["result"] == {"reward": 12.5} and metadata["iteration"] == 2
    assert metadata["env_id"] == "Swimmer-v5" and metadata["config"]["episode_length"] == 1000
    assert metadata["training_command"] == "keras-odetoode es --env Swimmer-v5"
    assert metadata["action_low"] == [-1, -1] and metadata["folded_parameter_flows"] == ["core"]
    assert metadata["source"]["kind"] == "es_checkpoint" and metadata["source"]["policy"] == "best"
    # An ES policy is served as `keras-odetoode es` serves it (observation → action) unless names are given.
    assert (served.input_name, served.output_name) == export.POLICY_TENSOR_NAMES == ("observation", "action")
    assert cli.main(["export", run_dir, out, "--input-name", "obs", "--output-name", "act"]) == 0
    renamed = export.load_serving(out)
    assert (renamed.input_name, renamed.output_name) == ("obs", "act")
    np.testing.assert_allclose(renamed(obs), expected, rtol=0, atol=1e-5)


def test_record_result_writes_the_score_and_keeps_the_rest(exported, tmp_path):
    out = tmp_path / "served"
    export.export_saved_model(exported["model"], out, training_command="python train.py")
    before = export.load_metadata(out)
    assert before["result"] is None
    after = export.record_result(out, {"accuracy": np.float32(0.5)})
    assert after["result"] == {"accuracy": 0.5} and export.load_metadata(out) == after
    assert {k: v for k, v in after.items() if k != "result"} == {k: v for k, v in before.items() if k != "result"}
    np.testing.assert_allclose(export.load_serving(out)(exported["x"]), exported["expected"], rtol=0, atol=1e-5)
    assert export.record_result(out, None)["result"] is None
    with pytest.raises(ValueError, match="result must be finite"):
        export.record_result(out, {"accuracy": float("nan")})
    assert export.load_metadata(out)["result"] is None  # a refused result leaves the file as it was
    with pytest.raises(export.InvalidSavedModelError, match="missing metadata.json"):
        export.record_result(tmp_path, 1.0)


# Bad inputs.


def test_unbuilt_model_is_refused(tmp_path):
    model = keras.Sequential([layers.ODEtoODE(step_size=0.5)])
    with pytest.raises(ValueError, match="call the model on data or build it first"):
        export.export_saved_model(model, tmp_path / "out")
    assert not os.path.exists(tmp_path / "out")


def test_subclassed_model_needs_input_dim(tmp_path):
    class Residual(keras.Model):
        def __init__(self):
            super().__init__()
            self.ode = layers.ODEtoODE(step_size=0.5, seed=0)

        def call(self, x):
            return self.ode(x)

    model = Residual()
    x = np.ones((2, 4), "float32")
    expected = model(x).numpy()
    with pytest.raises(ValueError, match="pass input_dim=d"):
        export.export_saved_model(model, tmp_path / "out")
    record = export.export_saved_model(model, tmp_path / "out", input_dim=4)
    assert record["inputs"][0]["shape"] == [None, 4] and len(record["folded_parameter_flows"]) == 1
    np.testing.assert_allclose(export.load_serving(tmp_path / "out")(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_name": "two words"}, "input_name must be a name"),
        ({"output_name": ""}, "output_name must be a name"),
        ({"result": float("nan")}, "result must be finite"),
        ({"result": {"accuracy": "high"}}, "result must be a number"),
        ({"training_command": 3}, "training_command must be a string"),
        ({"metadata": {"package_version": "9.9"}}, "may not redefine"),
        ({"metadata": ["not", "a", "dict"]}, "metadata must be a dict"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match, tmp_path):
    model = keras.Sequential([keras.Input((4,)), layers.ODEtoODE(step_size=0.5, seed=0)])
    with pytest.raises(ValueError, match=match):
        export.export_saved_model(model, tmp_path / "out", **kwargs)


def test_foreign_directory_is_not_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    model = keras.Sequential([keras.Input((4,)), layers.ODEtoODE(step_size=0.5, seed=0)])
    with pytest.raises(ValueError, match="not a previous keras_odetoode export"):
        export.export_saved_model(model, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_load_serving_names_what_is_missing(tmp_path):
    with pytest.raises(export.InvalidSavedModelError, match="No such directory"):
        export.load_serving(tmp_path / "absent")
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"")
    with pytest.raises(export.InvalidSavedModelError, match="is a file.*keras-odetoode export"):
        export.load_serving(keras_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(export.InvalidSavedModelError, match="missing saved_model.pb and metadata.json"):
        export.load_serving(empty)
    plain = tmp_path / "plain"  # a TensorFlow SavedModel that is not ours
    plain.mkdir()
    (plain / "saved_model.pb").write_bytes(b"")
    with pytest.raises(export.InvalidSavedModelError, match=r"missing metadata\.json\. It is a TensorFlow SavedModel"):
        export.load_serving(plain)
    only_metadata = tmp_path / "only_metadata"
    only_metadata.mkdir()
    (only_metadata / "metadata.json").write_text("{}")
    with pytest.raises(export.InvalidSavedModelError, match=r"missing saved_model\.pb\."):
        export.load_serving(only_metadata)
    (plain / "metadata.json").write_text('{"env_id": "Swimmer-v5"}')
    with pytest.raises(export.InvalidSavedModelError, match="not written by keras_odetoode.*package_version"):
        export.load_serving(plain)
    (plain / "metadata.json").write_text("[1, 2")
    with pytest.raises(export.InvalidSavedModelError, match="cannot be read as JSON"):
        export.load_metadata(plain)


def test_cli_refuses_unsupported_sources(tmp_path):
    with pytest.raises(ValueError, match="neither ES checkpoints"):
        cli.main(["export", str(tmp_path), str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError):
        cli.main(["export", str(tmp_path / "absent"), str(tmp_path / "out")])
    (tmp_path / "a.keras").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.keras").write_bytes(b"")
    with pytest.raises(ValueError, match="several .keras files"):
        cli.main(["export", str(tmp_path), str(tmp_path / "out")])
    with pytest.raises(ValueError, match="NAME=NUMBER"):
        cli.main(["export", str(tmp_path / "a.keras"), str(tmp_path / "out"), "--result", "accuracy"])


def test_evaluate_refuses_a_path_that_is_not_a_policy_of_this_package(exported, tmp_path):
    with pytest.raises(export.InvalidSavedModelError, match="saved_model.pb"):
        cli.main(["evaluate", str(tmp_path), "--env", "Swimmer-v5", "--episodes", "1"])
    plain = tmp_path / "plain"
    shutil.copytree(exported["path"], plain)
    os.remove(plain / "metadata.json")
    with pytest.raises(export.InvalidSavedModelError, match="metadata.json"):
        cli.main(["evaluate", str(plain), "--env", "Swimmer-v5", "--episodes", "1"])


def test_inputs_of_another_width_are_refused(exported):
    """A (batch, 1) input would broadcast in a model that normalizes its observations."""
    serving = export.load_serving(exported["path"])
    with pytest.raises(
        ValueError, match=rf"serves inputs of shape \(batch, {DIM}\). Received: inputs of shape \(3, 1\)"
    ):
        serving(np.ones((3, 1), np.float32))
    with pytest.raises(ValueError, match=rf"Received: inputs of shape \({DIM},\)"):
        serving(np.ones(DIM, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError):  # the signature itself, for plain TensorFlow users
        serving.signature(inputs=tf.ones((3, 1)))


def test_evaluate_refuses_a_task_of_other_sizes(exported):
    with pytest.raises(ValueError, match=rf"maps {DIM} observations to 3 actions .*Swimmer-v5 has 8 and 2"):
        cli.main(["evaluate", exported["path"], "--env", "Swimmer-v5", "--episodes", "1"])
    with pytest.raises(ValueError, match="episode_length must be an integer ≥ 1 or None. Received: episode_length=0"):
        cli.main(["evaluate", exported["path"], "--env", "Swimmer-v5", "--episode-length", "0"])


def test_exporting_again_keeps_the_files_an_export_does_not_write(tmp_path):
    model = keras.Sequential([keras.Input((4,)), layers.ODEtoODE(step_size=0.5, seed=0)])
    export.export_saved_model(model, tmp_path / "entry")
    (tmp_path / "entry" / "README.md").write_text("the model card")
    (tmp_path / "entry" / "plots").mkdir()
    (tmp_path / "entry" / "plots" / "curve.txt").write_text("a plot")
    export.export_saved_model(model, tmp_path / "entry")
    assert (tmp_path / "entry" / "README.md").read_text() == "the model card"
    assert (tmp_path / "entry" / "plots" / "curve.txt").read_text() == "a plot"
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(export.load_serving(tmp_path / "entry")(x), model(x).numpy(), rtol=0, atol=1e-6)


def test_a_corrupted_saved_model_is_an_invalid_saved_model_error(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported["path"], broken)
    (broken / "saved_model.pb").write_bytes(b"\x08\x96\x01 not a protocol buffer")
    with pytest.raises(export.InvalidSavedModelError, match="cannot be loaded as a SavedModel"):
        export.load_serving(broken)
