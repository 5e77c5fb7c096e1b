"""Bad arguments and inputs raise a ValueError that names what was received and what is allowed."""

import re

import keras
import numpy as np
import pytest

from keras_odetoode import integrators, layers, manifolds

DIM = 4

# One constructor per layer type, small and valid; `**kw` overrides an argument.
LAYERS = {
    "odetoode-iso": lambda **kw: layers.ODEtoODE(**{"step_size": 0.25, **kw}),
    "odetoode-gated": lambda **kw: layers.ODEtoODE(**{"flow": "gated", "num_gates": 2, "step_size": 0.25, **kw}),
    "nanode": lambda **kw: layers.NANODE(**{"degree": 2, "step_size": 0.25, **kw}),
    "hypernet": lambda **kw: layers.HyperNetODE(**{"hidden_units": 3, "step_size": 0.25, **kw}),
    "neuralode": lambda **kw: layers.NeuralODE(**{"step_size": 0.25, **kw}),
    "stiefel-dense": lambda **kw: layers.StiefelDense(**{"units": 3, **kw}),
    "deepnet": lambda **kw: layers.DeepNet(**{"depth": 2, **kw}),
    "deepresnet": lambda **kw: layers.DeepResNet(**{"depth": 2, **kw}),
}
ODE_LAYERS = ["odetoode-iso", "odetoode-gated", "nanode", "hypernet", "neuralode"]
ACTIVATION_LAYERS = ODE_LAYERS + ["deepnet", "deepresnet"]


def _received(name, value):
    """The "Received: name=value" fragment of a Keras-style message, as a regex."""
    return re.escape(f"Received: {name}={value!r}")


# Input shape.


@pytest.mark.parametrize("case", sorted(LAYERS))
@pytest.mark.parametrize("shape", [(2, 3, DIM), (DIM,)])
def test_input_that_is_not_2d_is_rejected(case, shape):
    layer = LAYERS[case]()
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, features\)") as info:
        layer(np.zeros(shape, "float32"))
    assert f"Received: input_shape={shape}" in str(info.value)


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_symbolic_input_that_is_not_2d_is_rejected(case):
    with pytest.raises(ValueError, match=re.escape("Received: input_shape=(None, 3, 4)")):
        keras.Sequential([keras.Input((3, DIM)), LAYERS[case]()])


def test_unknown_feature_dimension_is_rejected():
    with pytest.raises(
        ValueError, match=re.escape("needs a known feature dimension. Received: input_shape=(None, None)")
    ):
        keras.Sequential([keras.Input((None,)), layers.ODEtoODE(step_size=0.25)])


@pytest.mark.parametrize("case", ["odetoode-iso", "stiefel-dense"])
def test_built_layer_rejects_input_that_is_not_2d(case):
    layer = LAYERS[case]()
    layer(np.zeros((2, DIM), "float32"))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        layer(np.zeros((2, 3, DIM), "float32"))


@pytest.mark.parametrize("case", ["odetoode-iso", "stiefel-dense"])
def test_built_layer_rejects_a_different_input_width(case):
    layer = LAYERS[case]()
    layer(np.zeros((2, DIM), "float32"))
    with pytest.raises(ValueError, match=r"5"):
        layer(np.zeros((2, DIM + 1), "float32"))


# Names of flows, retractions, integrators, solvers, activations.


def test_unknown_gate_inputs_are_rejected():
    with pytest.raises(ValueError, match=r"Expected one of \('time', 'state'\)") as info:
        layers.ODEtoODE(flow="gated", gate_inputs="weights")
    assert re.search(_received("gate_inputs", "weights"), str(info.value))


def test_gate_inputs_of_the_isospectral_flow_are_rejected():
    # The isospectral flow has no gates: a state-gated model asked for without flow="gated".
    with pytest.raises(ValueError, match=r"gate_inputs is an option of the gated flow. Received: flow='isospectral'"):
        layers.ODEtoODE(gate_inputs="state")


def test_unknown_flow_is_rejected():
    with pytest.raises(ValueError, match=r"Expected one of \('isospectral', 'gated'\)") as info:
        layers.ODEtoODE(flow="iso")
    assert re.search(_received("flow", "iso"), str(info.value))


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.ODEtoODE(retraction="qr"),
        lambda: layers.ODEtoODE(flow="gated", retraction="qr"),
        lambda: layers.StiefelDense(3, retraction="qr"),
        lambda: manifolds.Stiefel(retraction="qr"),
    ],
    ids=["odetoode-iso", "odetoode-gated", "stiefel-dense", "Stiefel"],
)
def test_unknown_retraction_is_rejected(make):
    with pytest.raises(ValueError, match=r"Expected one of \('expm', 'cayley', 'tf\.linalg\.expm'\)") as info:
        make()
    assert re.search(_received("retraction", "qr"), str(info.value))


@pytest.mark.parametrize(
    "make",
    [lambda: layers.ODEtoODE(integrator="rk4"), lambda: integrators.get("rk4")],
    ids=["ODEtoODE", "integrators.get"],
)
def test_unknown_integrator_is_rejected(make):
    with pytest.raises(ValueError, match=r"Expected one of \('lie_euler', 'rkmk4'\)") as info:
        make()
    assert re.search(_received("integrator", "rk4"), str(info.value))


@pytest.mark.parametrize("case", ["odetoode-iso", "odetoode-gated", "nanode", "hypernet"])
def test_unknown_solver_is_rejected_by_the_non_autonomous_layers(case):
    # dopri5 exists for NeuralODE only: the W_t grid of these layers is fixed.
    with pytest.raises(ValueError, match=r"Expected one of \('euler', 'rk4'\)") as info:
        LAYERS[case](solver="dopri5")
    assert re.search(_received("solver", "dopri5"), str(info.value))


def test_unknown_solver_is_rejected_by_neural_ode():
    with pytest.raises(ValueError, match=r"Expected one of \('euler', 'rk4', 'dopri5'\)") as info:
        layers.NeuralODE(solver="midpoint")
    assert re.search(_received("solver", "midpoint"), str(info.value))


@pytest.mark.parametrize("case", ACTIVATION_LAYERS)
@pytest.mark.parametrize("activation", ["absolute", 5])
def test_unknown_activation_is_rejected(case, activation):
    with pytest.raises(ValueError, match="Expected 'abs' or a Keras activation name") as info:
        LAYERS[case](activation=activation)
    assert re.search(_received("activation", activation), str(info.value))


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: layers.ODEtoODE(flow=["gated"]), "flow"),
        (lambda: layers.ODEtoODE(integrator=["rkmk4"]), "integrator"),
        (lambda: integrators.get(["rkmk4"]), "integrator"),
        (lambda: layers.ODEtoODE(retraction=["cayley"]), "retraction"),
        (lambda: layers.NeuralODE(solver=["rk4"]), "solver"),
    ],
)
def test_names_that_are_not_strings_are_rejected(make, argument):
    # A list is unhashable: the lookup itself must not raise a TypeError first.
    with pytest.raises(ValueError, match=rf"Unknown {argument}\. Expected one of .*Received: {argument}=\["):
        make()


@pytest.mark.parametrize("case", ACTIVATION_LAYERS)
def test_activation_functions_are_rejected_for_their_names(case):
    # keras.activations.get would take the function, and get_config could not save it.
    with pytest.raises(ValueError, match="Expected 'abs' or a Keras activation name") as info:
        LAYERS[case](activation=np.tanh)
    assert re.search(_received("activation", np.tanh), str(info.value))


# Step size and horizon.


@pytest.mark.parametrize("case", ODE_LAYERS)
@pytest.mark.parametrize("argument, value", [("step_size", True), ("step_size", "0.25"), ("horizon", None),
                                             ("horizon", "1")])  # fmt: skip
def test_step_size_and_horizon_must_be_numbers(case, argument, value):
    with pytest.raises(
        ValueError, match=re.escape(f"{argument} must be a real number. Received: {argument}={value!r}")
    ):
        LAYERS[case](**{argument: value})


@pytest.mark.parametrize("argument, value", [("rtol", -1.0), ("atol", 0.0), ("rtol", "1e-5")])
def test_dormand_prince_tolerances_must_be_positive_numbers(argument, value):
    with pytest.raises(ValueError, match=rf"{argument} must be .*Received: {argument}={re.escape(repr(value))}"):
        layers.NeuralODE(solver="dopri5", **{argument: value})


@pytest.mark.parametrize("case", ODE_LAYERS)
@pytest.mark.parametrize("step_size", [0.0, -0.1, float("nan")])
def test_step_size_must_be_positive(case, step_size):
    with pytest.raises(ValueError, match=r"step_size must be > 0") as info:
        LAYERS[case](step_size=step_size)
    assert f"Received: step_size={step_size!r}" in str(info.value)


@pytest.mark.parametrize("case", ODE_LAYERS)
@pytest.mark.parametrize(
    "step_size, horizon, ratio",
    [(0.3, 1.0, "3.33333"), (2.0, 1.0, "0.5"), (0.15, 0.5, "3.33333")],
)
def test_step_size_must_divide_the_horizon(case, step_size, horizon, ratio):
    with pytest.raises(ValueError, match="step_size must divide horizon into a whole number of steps") as info:
        LAYERS[case](step_size=step_size, horizon=horizon)
    message = str(info.value)
    assert f"Received: step_size={step_size!r}, horizon={horizon!r}" in message
    assert f"horizon / step_size = {ratio})" in message


@pytest.mark.parametrize("case", ODE_LAYERS)
def test_step_sizes_that_divide_the_horizon_are_accepted(case):
    # The check is not over-strict in floating point: 0.1 · 10 ≠ 1.0 exactly.
    for step_size, horizon, steps in [(0.1, 1.0, 10), (0.04, 1.0, 25), (0.2, 0.6, 3)]:
        assert LAYERS[case](step_size=step_size, horizon=horizon).num_steps == steps


@pytest.mark.parametrize("case", ODE_LAYERS)
@pytest.mark.parametrize("horizon", [0.0, -1.0])
def test_horizon_must_be_positive(case, horizon):
    with pytest.raises(ValueError, match=re.escape(f"horizon must be > 0. Received: horizon={horizon!r}")):
        LAYERS[case](horizon=horizon)


def test_infinite_horizon_is_rejected():
    with pytest.raises(ValueError, match="horizon"):
        layers.ODEtoODE(step_size=0.25, horizon=float("inf"))


# Integer hyper-parameters.


@pytest.mark.parametrize(
    "make, argument, value",
    [
        (lambda v: layers.ODEtoODE(flow="gated", num_gates=v), "num_gates", 0),
        (lambda v: layers.ODEtoODE(flow="gated", num_gates=v), "num_gates", -2),
        (lambda v: layers.ODEtoODE(flow="gated", num_gates=v), "num_gates", 1.5),
        (lambda v: layers.ODEtoODE(flow="gated", num_gates=v), "num_gates", "2"),
        (lambda v: layers.HyperNetODE(num_gates=v), "num_gates", 0),
        (lambda v: layers.HyperNetODE(num_gates=v), "num_gates", 2.0),
        (lambda v: layers.HyperNetODE(hidden_units=v), "hidden_units", 0),
        (lambda v: layers.ODEtoODE(flow="gated", gate_inputs="state", hidden_units=v), "hidden_units", 0),
        (lambda v: layers.NeuralODE(hidden_units=v), "hidden_units", 0),
        (lambda v: layers.StiefelDense(v), "units", 0),
        (lambda v: layers.StiefelDense(v), "units", -3),
        (lambda v: layers.StiefelDense(v), "units", 2.5),
        (lambda v: layers.DeepNet(v), "depth", 0),
        (lambda v: layers.DeepNet(v), "depth", 3.0),
        (lambda v: layers.DeepResNet(v), "depth", 0),
        (lambda v: layers.NANODE(degree=v), "degree", -1),
        (lambda v: layers.NANODE(degree=v), "degree", 1.5),
    ],
)
def test_bad_integer_hyperparameters_are_rejected(make, argument, value):
    lower = 0 if argument == "degree" else 1
    with pytest.raises(ValueError, match=f"{argument} must be an integer ≥ {lower}") as info:
        make(value)
    assert re.search(_received(argument, value), str(info.value))


def test_smallest_valid_integer_hyperparameters_are_accepted():
    x = np.ones((2, DIM), "float32")
    assert layers.ODEtoODE(flow="gated", num_gates=1, step_size=0.5)(x).shape == (2, DIM)
    assert layers.StiefelDense(1)(x).shape == (2, 1)
    assert layers.DeepNet(1)(x).shape == (2, DIM)
    # degree 0: W_t = A₀ is constant in t.
    nanode = layers.NANODE(degree=0, step_size=0.5)
    nanode.build((None, DIM))
    weights = nanode.parameter_trajectory().numpy()
    np.testing.assert_array_equal(weights[1], weights[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.ODEtoODE(flow="gated", num_gates=True),
        lambda: layers.HyperNetODE(num_gates=True),
        lambda: layers.StiefelDense(True),
        lambda: layers.DeepNet(True),
        lambda: layers.NANODE(degree=True),
    ],
    ids=["gated-num_gates", "hypernet-num_gates", "units", "depth", "degree"],
)
def test_booleans_are_not_integer_hyperparameters(make):
    with pytest.raises(ValueError, match="True"):
        make()


@pytest.mark.parametrize(
    "make, name, value",
    [
        (lambda: layers.ODEtoODE(flow="gated", num_gates=np.int64(2)), "num_gates", 2),
        (lambda: layers.StiefelDense(np.int64(3)), "units", 3),
        (lambda: layers.DeepNet(np.int64(2)), "depth", 2),
        (lambda: layers.NANODE(degree=np.int64(1)), "degree", 1),
        (lambda: layers.HyperNetODE(num_gates=np.int64(2)), "num_gates", 2),
        (lambda: layers.HyperNetODE(hidden_units=np.int64(8)), "hidden_units", 8),
    ],
    ids=["num_gates", "units", "depth", "degree", "hypernet-num_gates", "hypernet-hidden_units"],
)
def test_numpy_integers_are_integer_hyperparameters(make, name, value):
    import json

    config = make().get_config()
    assert config[name] == value
    assert json.loads(json.dumps(config))[name] == value  # the config stays serializable (.keras files)


def test_num_gates_is_validated_for_every_flow():
    with pytest.raises(ValueError, match=_received("num_gates", 0)):
        layers.ODEtoODE(flow="isospectral", num_gates=0)


# W_0.


def test_non_orthogonal_w0_reports_the_measured_error():
    # 1.1·I has singular values 1.1: ‖W_0ᵀW_0 − I‖₂ = 1.21 − 1 = 0.21.
    with pytest.raises(ValueError, match=r"W_0 must be orthogonal") as info:
        layers.ODEtoODE(w0=1.1 * np.eye(DIM))
    message = str(info.value)
    assert "‖W_0ᵀW_0 − I‖₂ = 0.21," in message
    assert "allowed < 1e-05" in message


@pytest.mark.parametrize("flow", ["isospectral", "gated"])
def test_w0_error_is_measured_for_a_generic_matrix(flow, rng):
    w0 = rng.standard_normal((DIM, DIM))
    measured = np.linalg.norm(w0.T @ w0 - np.eye(DIM), 2)
    with pytest.raises(ValueError, match=re.escape(f"‖W_0ᵀW_0 − I‖₂ = {measured:.3g},")):
        layers.ODEtoODE(flow=flow, w0=w0)


def test_nearly_orthogonal_w0_within_tolerance_is_accepted():
    w0 = manifolds.random_stiefel((DIM, DIM), seed=0, dtype="float32")  # float32 round-off ≈ 1e-7
    layer = layers.ODEtoODE(w0=w0, step_size=0.25)
    layer.build((None, DIM))
    np.testing.assert_array_equal(layer.flow.w0.numpy(), w0)


def test_w0_that_is_not_square_is_rejected():
    with pytest.raises(ValueError, match=re.escape("W_0 must be a square matrix. Received: w0 with shape (4, 3)")):
        layers.ODEtoODE(w0=np.eye(DIM)[:, :3])


@pytest.mark.parametrize("flow", ["isospectral", "gated"])
def test_w0_of_the_wrong_size_for_the_input_is_rejected(flow):
    layer = layers.ODEtoODE(flow=flow, w0=np.eye(3), step_size=0.25)
    with pytest.raises(
        ValueError,
        match=re.escape("W_0 must be (4, 4) to match the input width 4. Received: w0 with shape (3, 3)"),
    ):
        layer(np.zeros((2, DIM), "float32"))


def test_w0_with_nan_is_rejected():
    w0 = np.eye(DIM)
    w0[0, 0] = np.nan
    with pytest.raises(ValueError, match="w0"):
        layers.ODEtoODE(w0=w0)


# Configs go through the same checks.


def test_from_config_validates_like_the_constructor():
    # Keras' Operation.from_config re-raises constructor errors as TypeError
    # ("Error when deserializing class ... Exception encountered: <message>"),
    # so the check is that our message survives, whichever of the two types arrives.
    config = layers.ODEtoODE(step_size=0.25).get_config()
    with pytest.raises((ValueError, TypeError), match=_received("integrator", "euler")):
        layers.ODEtoODE.from_config({**config, "integrator": "euler"})
    with pytest.raises((ValueError, TypeError), match="step_size must divide horizon"):
        layers.ODEtoODE.from_config({**config, "step_size": 0.3})


@pytest.mark.parametrize("case", ["odetoode-iso", "odetoode-gated", "nanode", "hypernet"])
def test_parameter_trajectory_of_an_unbuilt_layer_says_to_build_it(case):
    with pytest.raises(ValueError, match="has no weights yet: call it on an input, or build"):
        LAYERS[case]().parameter_trajectory()
