"""Every layer and optimizer survives get_config/from_config, `.keras` files and SavedModel export.

Weights are moved away from their seeded initial values before saving: a
loader that silently re-initialised from the (saved) seed would otherwise
reproduce them and pass.
"""

import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_odetoode import layers, manifolds, optimizers

DIM = 4
W0 = manifolds.random_stiefel((DIM, DIM), seed=5, dtype="float64")

# Every layer with non-default arguments (each argument differs from its default).
LAYERS = {
    "odetoode-iso": lambda: layers.ODEtoODE(
        flow="isospectral",
        step_size=0.2,
        horizon=1.0,
        activation="tanh",
        retraction="cayley",
        integrator="rkmk4",
        solver="rk4",
        w0=W0,
        use_bias=False,
        seed=3,
        name="iso",
    ),
    "odetoode-gated": lambda: layers.ODEtoODE(
        flow="gated", num_gates=3, step_size=0.125, horizon=0.5, activation="softplus", seed=4, name="gated"
    ),
    "odetoode-gated-state": lambda: layers.ODEtoODE(
        flow="gated", gate_inputs="state", hidden_units=3, num_gates=2, step_size=0.25, seed=5, name="gated_state"
    ),
    "nanode": lambda: layers.NANODE(
        degree=2, step_size=0.25, horizon=1.5, activation="tanh", solver="rk4", use_bias=False, seed=2
    ),
    "hypernet": lambda: layers.HyperNetODE(
        num_gates=2, hidden_units=5, step_size=0.2, horizon=0.6, activation="tanh", solver="rk4", seed=1
    ),
    "neuralode-rk4": lambda: layers.NeuralODE(
        hidden_units=6, step_size=0.1, horizon=0.5, activation="softplus", solver="rk4", rtol=1e-4, atol=1e-5, seed=7
    ),
    "neuralode-dopri5": lambda: layers.NeuralODE(hidden_units=3, solver="dopri5", rtol=1e-4, atol=1e-5, seed=8),
    "stiefel-dense": lambda: layers.StiefelDense(3, use_bias=True, retraction="cayley", seed=9),
    "deepnet": lambda: layers.DeepNet(3, activation="tanh", seed=2),
    "deepresnet": lambda: layers.DeepResNet(4, activation="elu", seed=6),
}

# Every argument of these constructors must appear in get_config (Keras convention).
CONSTRUCTORS = {
    "odetoode-iso": layers.ODEtoODE,
    "odetoode-gated": layers.ODEtoODE,
    "odetoode-gated-state": layers.ODEtoODE,
    "nanode": layers.NANODE,
    "hypernet": layers.HyperNetODE,
    "neuralode-rk4": layers.NeuralODE,
    "neuralode-dopri5": layers.NeuralODE,
    "stiefel-dense": layers.StiefelDense,
    "deepnet": layers.DeepNet,
    "deepresnet": layers.DeepNet,
}

OPTIMIZERS = {
    "sgd": lambda: optimizers.RiemannianSGD(learning_rate=0.05, momentum=0.9, nesterov=True, clipnorm=2.0),
    "adam": lambda: optimizers.RiemannianAdam(learning_rate=3e-3, beta_1=0.8, beta_2=0.99, epsilon=1e-6, amsgrad=True),
}


def _json(config):
    return json.dumps(config, sort_keys=True)


def _perturb_weights(layer, rng):
    """Move every weight off its initial value; manifold weights to another point of it."""
    for variable in layer.weights:
        shape = tuple(variable.shape)
        if manifolds.manifold_of(variable) is not None or variable.name == "w0":
            value = manifolds.random_stiefel(shape, seed=int(rng.integers(1 << 30)))
        else:
            value = variable.numpy() + 0.2 * rng.standard_normal(shape)
        variable.assign(value.astype(variable.dtype))


def _model(layer, rng):
    model = keras.Sequential([keras.Input((DIM,)), layer])
    _perturb_weights(layer, rng)
    return model


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_layer_config_round_trips_through_json(case, rng):
    layer = LAYERS[case]()
    config = layer.get_config()
    arguments = set(inspect.signature(CONSTRUCTORS[case]).parameters) - {"kwargs"}
    assert arguments <= set(config), f"missing from get_config: {sorted(arguments - set(config))}"

    text = _json(config)
    clone = type(layer).from_config(json.loads(text))
    assert _json(clone.get_config()) == text

    # The clone computes the same function once given the same weights.
    x = rng.standard_normal((5, DIM)).astype("float32")
    layer.build((None, DIM))
    clone.build((None, DIM))
    _perturb_weights(layer, rng)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x), layer(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_optimizer_config_round_trips_through_json(case):
    optimizer = OPTIMIZERS[case]()
    text = _json(optimizer.get_config())
    clone = type(optimizer).from_config(json.loads(text))
    assert type(clone) is type(optimizer)
    assert _json(clone.get_config()) == text
    # Also through Keras' generic (registered-name) serialization.
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(optimizer)))
    )
    assert type(restored) is type(optimizer)
    assert _json(restored.get_config()) == text


def test_user_w0_round_trips_through_get_config():
    layer = LAYERS["odetoode-iso"]()
    config = json.loads(_json(layer.get_config()))
    np.testing.assert_array_equal(np.asarray(config["w0"]), W0)  # float64, bit for bit
    clone = layers.ODEtoODE.from_config(config)
    clone.build((None, DIM))
    np.testing.assert_array_equal(clone.flow.w0.numpy(), W0.astype("float32"))
    np.testing.assert_array_equal(np.asarray(clone.get_config()["w0"]), W0)


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_keras_file_round_trip(case, tmp_path, rng):
    layer = LAYERS[case]()
    model = _model(layer, rng)
    x = rng.standard_normal((6, DIM)).astype("float32")
    expected = model(x).numpy()
    path = tmp_path / f"{case}.keras"
    model.save(path)

    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[0]) is type(layer)
    assert _json(loaded.layers[0].get_config()) == _json(layer.get_config())
    assert len(loaded.weights) == len(model.weights) > 0
    for original, restored in zip(model.weights, loaded.weights):
        assert original.name == restored.name
        np.testing.assert_array_equal(restored.numpy(), original.numpy())
    np.testing.assert_allclose(loaded(x).numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_trained_model_keeps_its_optimizer(case, tmp_path, rng):
    """Compile, train 2 steps, save, load: same optimizer, same state, same next step."""
    model = keras.Sequential(
        [
            keras.Input((DIM,)),
            layers.ODEtoODE(step_size=0.25, seed=0),
            layers.StiefelDense(2, seed=1),
        ]
    )
    model.compile(optimizer=OPTIMIZERS[case](), loss="mse")
    x = rng.standard_normal((16, DIM)).astype("float32")
    y = rng.standard_normal((16, 2)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 2
    path = tmp_path / "trained.keras"
    model.save(path)

    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert _json(loaded.optimizer.get_config()) == _json(model.optimizer.get_config())
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for original, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())

    # The restored state drives the next step exactly as the original would.
    model.train_on_batch(x[:8], y[:8])
    loaded.train_on_batch(x[:8], y[:8])
    for original, restored in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(restored.numpy(), original.numpy(), rtol=0, atol=1e-6)
    for variable in (loaded.layers[0].flow.w0, loaded.layers[1].kernel):
        assert float(manifolds.orthogonality_error(variable)) < 1e-5


# SavedModel export, reloaded in a fresh interpreter that never imports keras_odetoode.

EXPORTED = ["odetoode-iso", "odetoode-gated", "odetoode-gated-state", "nanode", "hypernet", "neuralode-rk4",
            "neuralode-dopri5", "stiefel-dense", "deepresnet"]  # fmt: skip
# Dormand–Prince's step-size controller rounds differently in a graph than eagerly (1e-6 here,
# within its rtol of 1e-4): a SavedModel is a graph, so it is held to the traced model's outputs.
TRACED = {"neuralode-dopri5"}

_SERVE_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
names, root = json.loads(sys.argv[1]), sys.argv[2]
x = np.load(f"{root}/x.npy")
for name in names:
    loaded = tf.saved_model.load(f"{root}/{name}")
    np.save(f"{root}/{name}.y.npy", loaded.serve(x).numpy())
print(json.dumps({"imported_keras_odetoode": any(m.startswith("keras_odetoode") for m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export one model per layer, then serve them all from one fresh interpreter."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("exported")
    x = rng.standard_normal((7, DIM)).astype("float32")
    np.save(root / "x.npy", x)
    expected = {}
    for name in EXPORTED:
        model = _model(LAYERS[name](), rng)
        expected[name] = (tf.function(model) if name in TRACED else model)(x).numpy()
        if name in TRACED:
            np.testing.assert_allclose(expected[name], model(x).numpy(), rtol=0, atol=1e-5)
        model.export(str(root / name), verbose=False)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_SCRIPT, json.dumps(EXPORTED), str(root)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    served = {name: np.load(root / f"{name}.y.npy") for name in EXPORTED}
    return expected, served, report


def test_serving_does_not_import_the_package(exported):
    _, _, report = exported
    assert report == {"imported_keras_odetoode": False}


@pytest.mark.parametrize("case", EXPORTED)
def test_saved_model_export_serves_the_same_outputs(case, exported):
    expected, served, _ = exported
    assert served[case].shape == expected[case].shape
    np.testing.assert_allclose(served[case], expected[case], rtol=0, atol=1e-6)
