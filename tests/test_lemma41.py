"""Lemma 4.1: with f = |·| and W_t ∈ O(d), 1/e ≤ ‖∂L/∂x_t‖ / ‖∂L/∂x_T‖ ≤ e for every t.

N = 1000 Euler steps, float64. The bound holds whatever the flow's parameters
(here also with Q, N scaled up 4×); side by side, a 1000-layer Dense stack
vanishes, and a NODE of the same depth leaves the band once its field is not
small (weights ×3), since its bound grows like e^{Lip(g)·T}.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_odetoode import layers

D, STEPS = 8, 1000
H = 1.0 / STEPS


def gradient_norm_ratios(step, x0, v):
    """‖∂L/∂x_t‖ / ‖∂L/∂x_T‖ for t = 0…N, L = ⟨x_N, v⟩, xᵢ = step(i, xᵢ₋₁)."""
    with tf.GradientTape() as tape:
        tape.watch(x0)
        states = [x0]
        for i in range(STEPS):
            states.append(step(i, states[-1]))
        loss = tf.reduce_sum(states[-1] * v)
    norms = np.array([np.linalg.norm(g) for g in tape.gradient(loss, states)])
    return norms / norms[-1]


@pytest.fixture
def probe():
    rng = np.random.default_rng(0)
    return tf.constant(rng.standard_normal((1, D))), tf.constant(rng.standard_normal((1, D)))


def _odetoode_ratios(layer, x0, v):
    weights, bias = layer.solver_weights(), layer.bias
    # Eq. 5 with the layer's own W_1 … W_N; the layer's output is checked to be this chain.
    step = lambda i, x: x + H * tf.abs(tf.matmul(x, weights[i + 1], transpose_b=True) + bias)  # noqa: E731
    chain = x0
    for i in range(STEPS):
        chain = step(i, chain)
    np.testing.assert_allclose(layer(x0).numpy(), chain.numpy(), atol=1e-12)
    return gradient_norm_ratios(step, x0, v)


@pytest.mark.parametrize("flow,scale", [("isospectral", 1.0), ("isospectral", 4.0), ("gated", 1.0)])
def test_odetoode_gradients_neither_vanish_nor_explode(flow, scale, probe):
    x0, v = probe
    layer = layers.ODEtoODE(flow=flow, step_size=H, dtype="float64", seed=0)
    layer(x0)
    if flow == "isospectral":
        layer.flow.q_matrix.assign(scale * layer.flow.q_matrix)
        layer.flow.n_matrix.assign(scale * layer.flow.n_matrix)
    layer.bias.assign(tf.fill([D], tf.constant(0.5, tf.float64)))
    ratios = _odetoode_ratios(layer, x0, v)
    assert ratios.min() >= 1 / math.e and ratios.max() <= math.e


def test_dense_stack_of_the_same_depth_vanishes(probe):
    x0, v = probe
    stack = layers.DeepNet(STEPS, dtype="float64", seed=0)
    stack(x0)
    kernels, biases = stack.kernels, stack.biases
    ratios = gradient_norm_ratios(lambda i, x: tf.nn.relu(tf.matmul(x, kernels[i]) + biases[i]), x0, v)
    assert ratios.min() < 1e-3


def test_node_of_the_same_depth_leaves_the_band(probe):
    x0, v = probe
    node = layers.NeuralODE(step_size=H, dtype="float64", seed=0)
    node(x0)
    params = {name: 3.0 * w for name, w in node.param_dict().items()}
    ratios = gradient_norm_ratios(lambda i, x: x + H * node.vector_field(params, x), x0, v)
    assert ratios.max() > math.e or ratios.min() < 1 / math.e
