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
    """‖∂L/∂x_t‖ / ‖∂L/∂x_T‖ for t = 0…N, L = ⟨x_N, v⟩, xᵢ = step(i, xᵢ₋₁); and the chain x_0 … x_N."""
    with tf.GradientTape() as tape:
        tape.watch(x0)
        states = [x0]
        for i in range(STEPS):
            states.append(step(i, states[-1]))
        loss = tf.reduce_sum(states[-1] * v)
    norms = np.array([np.linalg.norm(g) for g in tape.gradient(loss, states)])
    return norms / norms[-1], np.stack([x.numpy() for x in states])


@pytest.fixture
def probe():
    rng = np.random.default_rng(0)
    return tf.constant(rng.standard_normal((1, D))), tf.constant(rng.standard_normal((1, D)))


def _check_chain(layer, x0, chain):
    """The layer computes the hand-built chain whose gradients the test measures: every xᵢ, and its output x_N."""
    # Not a vacuous match: the chain moves and is not zero. Every depth is checked, since the
    # Dense stack's x_N is exactly 0 (its ReLUs are all off from about layer 130 on).
    assert np.abs(chain[-1] - chain[0]).max() > 1e-2 and np.abs(chain[1:]).max() > 0.1
    states = layer.forward(layer.param_dict(), x0, return_states=True).numpy()
    np.testing.assert_allclose(states, chain, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer(x0).numpy(), chain[-1], rtol=1e-12, atol=1e-12)


def _odetoode_ratios(layer, x0, v):
    weights, bias = layer.solver_weights(), layer.bias
    # Eq. 5 with the layer's own W_1 … W_N; the layer is checked to compute this chain.
    step = lambda i, x: x + H * tf.abs(tf.matmul(x, weights[i + 1], transpose_b=True) + bias)  # noqa: E731
    ratios, chain = gradient_norm_ratios(step, x0, v)
    _check_chain(layer, x0, chain)
    return ratios


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
    step = lambda i, x: tf.nn.relu(tf.matmul(x, kernels[i]) + biases[i])  # noqa: E731
    ratios, chain = gradient_norm_ratios(step, x0, v)
    _check_chain(stack, x0, chain)
    assert ratios.min() < 1e-3


def test_node_of_the_same_depth_leaves_the_band(probe):
    x0, v = probe
    node = layers.NeuralODE(step_size=H, dtype="float64", seed=0)
    node(x0)
    for weight in node.param_dict().values():
        weight.assign(3.0 * weight)
    p = node.param_dict()

    def step(i, x):  # Euler on g(x) = W₃ tanh(W₂ tanh(W₁ x + b₁) + b₂) + b₃, written out, not `node.vector_field`
        hidden = tf.tanh(tf.matmul(tf.tanh(tf.matmul(x, p["kernel_1"]) + p["bias_1"]), p["kernel_2"]) + p["bias_2"])
        return x + H * (tf.matmul(hidden, p["kernel_3"]) + p["bias_3"])

    ratios, chain = gradient_norm_ratios(step, x0, v)
    _check_chain(node, x0, chain)
    assert ratios.max() > math.e or ratios.min() < 1 / math.e
