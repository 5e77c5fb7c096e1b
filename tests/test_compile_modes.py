"""Layers under Keras' other execution modes: mixed precision and XLA (`jit_compile`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_odetoode as ko
from keras_odetoode import manifolds

LAYERS = {
    "iso-expm": lambda: ko.ODEtoODE(step_size=0.25, seed=0),
    "iso-cayley": lambda: ko.ODEtoODE(step_size=0.25, retraction="cayley", seed=0),
    "gated-expm": lambda: ko.ODEtoODE(flow="gated", step_size=0.25, seed=0),
    "iso-rkmk4": lambda: ko.ODEtoODE(step_size=0.25, integrator="rkmk4", seed=0),
    "iso-tf.linalg.expm": lambda: ko.ODEtoODE(step_size=0.25, retraction="tf.linalg.expm", seed=0),
    "gated-state": lambda: ko.ODEtoODE(flow="gated", gate_inputs="state", hidden_units=4, step_size=0.25, seed=0),
    "gated-cayley-rkmk4": lambda: ko.ODEtoODE(
        flow="gated", step_size=0.25, retraction="cayley", integrator="rkmk4", seed=0
    ),
    "hypernet": lambda: ko.HyperNetODE(step_size=0.25, seed=0),
    "nanode": lambda: ko.NANODE(degree=2, step_size=0.25, seed=0),
    "node": lambda: ko.NeuralODE(step_size=0.25, seed=0),
}


def _model(name, policy="float32"):
    keras.mixed_precision.set_global_policy(policy)
    try:
        return keras.Sequential([keras.Input((6,)), LAYERS[name](), ko.StiefelDense(3, seed=1)])
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy, tolerance", [("mixed_float16", 1e-2), ("mixed_bfloat16", 8e-2)])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_mixed_precision_runs_the_parameter_flow_in_float32(name, policy, tolerance, rng):
    """The flow stays float32 (expm has no half kernels; W_t stays on O(d)); the main flow runs in half."""
    x = rng.standard_normal((16, 6)).astype("float32")
    half, full = _model(name, policy), _model(name)
    full.set_weights(half.get_weights())
    y = half(x)
    assert y.dtype == keras.mixed_precision.Policy(policy).compute_dtype
    np.testing.assert_allclose(np.asarray(tf.cast(y, tf.float32)), np.asarray(full(x)), atol=tolerance)
    block = half.layers[0]
    if hasattr(block, "parameter_trajectory"):
        trajectory = block.parameter_trajectory()
        assert trajectory.dtype == tf.float32
        if block.flow.orthogonal:
            assert float(tf.reduce_max(manifolds.orthogonality_error(trajectory))) < 1e-5


def test_mixed_precision_training_keeps_the_manifold(rng):
    x = rng.standard_normal((64, 6)).astype("float32")
    y = np.tanh(x @ rng.standard_normal((6, 3))).astype("float32")
    model = _model("iso-expm", "mixed_float16")
    model.compile(ko.RiemannianAdam(0.01), "mse")  # Keras wraps it in a LossScaleOptimizer
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.9 * before
    for v in (v for v in model.weights if manifolds.manifold_of(v)):
        assert float(manifolds.orthogonality_error(v)) < 1e-5


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_trains_under_xla_as_without_it(name, rng):
    """`supports_jit` everywhere: Keras's jit_compile (and "auto" on a GPU) compiles forward and
    gradient of every flow and retraction, and a step of `fit` under XLA gives the weights it
    gives without XLA."""
    x = rng.standard_normal((16, 6)).astype("float32")
    y = np.tanh(x[:, :3])
    models = {False: _model(name), True: _model(name)}
    models[True].set_weights(models[False].get_weights())
    for jit_compile, model in models.items():
        model.compile(ko.RiemannianAdam(1e-2), "mse", jit_compile=jit_compile)
        assert model.jit_compile == jit_compile
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    for plain, xla in zip(models[False].get_weights(), models[True].get_weights()):
        np.testing.assert_allclose(xla, plain, rtol=1e-4, atol=1e-5)
