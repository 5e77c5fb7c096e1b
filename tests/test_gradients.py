"""Gradients of every layer against central finite differences, and population batching.

Float64 throughout the finite-difference checks: with ε = 1e-6 the central
difference has truncation error O(ε²·f''') ≈ 1e-12 and round-off
O(1e-16·|f| / ε) ≈ 1e-10, so a relative error of 1e-6 between the tape
gradient and the difference quotient leaves four orders of margin and still
catches any wrong term (a missing factor, a detached polar correction, a
transposed kernel) — those give errors of order 1.

The flows take 5 steps (h = 0.2, T = 1), and the polar correction is applied
every 4 steps here (`flows.POLAR_CORRECTION_INTERVAL`, 10 by default), so it
lies inside the differentiated path.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_odetoode import flows, layers, manifolds

DIM, BATCH = 4, 3


@pytest.fixture(autouse=True)
def _polar_correction_every_4_steps(monkeypatch):
    monkeypatch.setattr(flows, "POLAR_CORRECTION_INTERVAL", 4)


EPS = 1e-6
RTOL = 1e-6

GRADIENT_CASES = {
    "iso-expm-lie_euler": lambda **kw: layers.ODEtoODE(step_size=0.2, activation="tanh", **kw),
    "iso-cayley-lie_euler": lambda **kw: layers.ODEtoODE(step_size=0.2, activation="tanh", retraction="cayley", **kw),
    "iso-expm-rkmk4": lambda **kw: layers.ODEtoODE(step_size=0.2, activation="tanh", integrator="rkmk4", **kw),
    "iso-cayley-rkmk4-rk4": lambda **kw: layers.ODEtoODE(
        step_size=0.2, activation="tanh", retraction="cayley", integrator="rkmk4", solver="rk4", **kw
    ),
    "gated2-lie_euler": lambda **kw: layers.ODEtoODE(flow="gated", num_gates=2, step_size=0.2, activation="tanh", **kw),
    "gated2-rkmk4": lambda **kw: layers.ODEtoODE(
        flow="gated", num_gates=2, step_size=0.2, activation="tanh", integrator="rkmk4", **kw
    ),
    "gated2-state-lie_euler": lambda **kw: layers.ODEtoODE(
        flow="gated", gate_inputs="state", hidden_units=3, num_gates=2, step_size=0.2, activation="tanh", **kw
    ),
    "nanode2": lambda **kw: layers.NANODE(degree=2, step_size=0.2, activation="tanh", **kw),
    "hypernet2": lambda **kw: layers.HyperNetODE(num_gates=2, hidden_units=3, step_size=0.2, activation="tanh", **kw),
    "neuralode-euler": lambda **kw: layers.NeuralODE(hidden_units=5, step_size=0.2, **kw),
    "neuralode-rk4": lambda **kw: layers.NeuralODE(hidden_units=5, step_size=0.2, solver="rk4", **kw),
    "stiefel-dense-tall": lambda **kw: layers.StiefelDense(3, use_bias=True, **kw),
    "stiefel-dense-wide": lambda **kw: layers.StiefelDense(6, use_bias=True, **kw),
    "deepnet": lambda **kw: layers.DeepNet(3, activation="tanh", **kw),
    "deepresnet": lambda **kw: layers.DeepResNet(3, activation="tanh", **kw),
}


def _generic_params(layer, rng, scale):
    """The layer's weights moved off their initial values (zero biases, equal gates).

    Stiefel-constrained weights are replaced by another Haar sample, so the
    check runs at a generic point on the manifold; everything else gets
    Gaussian noise of size `scale`.
    """
    params = {}
    for name, variable in layer.param_dict().items():
        value = np.asarray(variable.numpy(), np.float64)
        if manifolds.manifold_of(variable) is not None or name == "flow.w0":
            value = manifolds.random_stiefel(value.shape, seed=int(rng.integers(1 << 30)), dtype="float64")
        else:
            value = value + scale * rng.standard_normal(value.shape)
        params[name] = value
    return params


def _build(make, rng, dtype):
    layer = make(seed=1, dtype=dtype)
    layer.build((None, DIM))
    x = rng.standard_normal((BATCH, DIM))
    return layer, x


def _tape_gradients(layer, params, x, readout):
    """∂/∂(x, params) of L = Σ y·R by reverse-mode autodiff, one member, eagerly."""
    params = {k: tf.constant(v) for k, v in params.items()}
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch([x, params])
        loss = tf.reduce_sum(layer.forward(params, x) * readout)
    grad_x, grad_params = tape.gradient(loss, [x, params])
    return grad_x.numpy(), {k: g.numpy() for k, g in grad_params.items()}


def _central_differences(layer, params, x, readout):
    """(L(θ + εeⱼ) − L(θ − εeⱼ)) / 2ε for every entry j of x and of every weight.

    All 2·(#entries) perturbed copies are evaluated in one `forward` call on
    the population axis (a batch of independent members; that it equals
    member-by-member evaluation is `test_population_forward_equals_each_member`),
    which keeps the check to one forward pass per layer.
    """
    values = {"x": np.asarray(x, np.float64), **params}
    population = 2 * sum(v.size for v in values.values())
    stacked = {name: np.repeat(v[np.newaxis], population, axis=0) for name, v in values.items()}
    member = 0
    for name, v in values.items():
        flat = stacked[name].reshape(population, -1)  # a view: writes go to `stacked`
        for j in range(v.size):
            flat[member, j] += EPS
            flat[member + 1, j] -= EPS
            member += 2
    y = layer.forward({k: tf.constant(stacked[k]) for k in params}, tf.constant(stacked["x"]))
    losses = np.sum(y.numpy() * readout, axis=(-2, -1))
    slopes = (losses[0::2] - losses[1::2]) / (2 * EPS)
    grads, offset = {}, 0
    for name, v in values.items():
        grads[name] = slopes[offset : offset + v.size].reshape(v.shape)
        offset += v.size
    return grads


def _check_all_gradients(layer, params, x, readout):
    grad_x, grad_params = _tape_gradients(layer, params, x, readout)
    assert set(grad_params) == set(layer.param_dict())
    fd = _central_differences(layer, params, x, readout)
    _assert_gradient_matches("x", grad_x, fd["x"])
    for name in params:
        _assert_gradient_matches(name, grad_params[name], fd[name])


def _assert_gradient_matches(name, tape, fd):
    scale = np.max(np.abs(fd))
    # A weight that does not influence the output would pass vacuously (0 = 0).
    assert scale > 1e-4, f"{name}: gradient {scale:.3g} too small for a meaningful check"
    error = np.max(np.abs(tape - fd)) / scale
    assert error < RTOL, f"{name}: relative error {error:.3g} between tape and finite differences"


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradients_match_central_differences(case, rng):
    layer, x = _build(GRADIENT_CASES[case], rng, "float64")
    params = _generic_params(layer, rng, scale=0.3)
    out_dim = layer.compute_output_shape((BATCH, DIM))[-1]
    _check_all_gradients(layer, params, x, rng.standard_normal((BATCH, out_dim)))


@pytest.mark.parametrize("flow", ["isospectral", "gated"])
def test_gradients_with_the_paper_activation_abs(flow, rng):
    """f = |·| is differentiable wherever no pre-activation Wᵢxᵢ₋₁ + b is 0.

    The test first checks that every pre-activation along the Euler path is
    at least 1e-3 away from the kink, 1000× the finite-difference step.
    """
    layer, x = _build(
        lambda **kw: layers.ODEtoODE(flow=flow, num_gates=2, step_size=0.2, activation="abs", **kw),
        rng,
        "float64",
    )
    params = _generic_params(layer, rng, scale=0.3)
    tensors = {k: tf.constant(v) for k, v in params.items()}
    states = layer.forward(tensors, x, return_states=True).numpy()
    weights = layer.solver_weights(tensors).numpy()
    pre = np.stack([states[i - 1] @ weights[i].T + params["bias"] for i in range(1, layer.num_steps + 1)])
    assert np.min(np.abs(pre)) > 1e-3

    _check_all_gradients(layer, params, x, rng.standard_normal((BATCH, DIM)))


def test_polar_correction_is_inside_the_differentiated_path(monkeypatch, rng):
    """The FD cases above really differentiate through the polar correction.

    At an orthogonal W the Jacobian of W ↦ W(3I − WᵀW)/2 is the projection
    onto the tangent space, so it removes the normal part of ∂L/∂W_0: the
    gradient with the correction (N = 5 steps, one correction) must differ
    by O(1) from the gradient with the correction switched off.

    The comparison needs the polynomial path of the flow: a step past
    `manifolds.expm_threshold` sends the trajectory to the exact path, which
    corrects after every step whatever the interval. Noise of 0.1 (not 0.3)
    keeps every step within the threshold (largest θ 0.627 of 0.683 here).
    """
    layer, x = _build(GRADIENT_CASES["iso-expm-lie_euler"], rng, "float64")
    params = _generic_params(layer, rng, scale=0.1)
    readout = rng.standard_normal((BATCH, DIM))
    assert flows.POLAR_CORRECTION_INTERVAL <= layer.num_steps
    steps = flows._TaylorSteps()
    flow_params = {k.removeprefix("flow."): tf.constant(v) for k, v in params.items() if k.startswith("flow.")}
    layer.flow._stepped(layer.flow.prepare(flow_params), layer.num_steps, layer.step_size, steps)
    assert steps.within().numpy(), "the flow takes the exact path: the interval would not matter"
    _, with_correction = _tape_gradients(layer, params, x, readout)
    monkeypatch.setattr(flows, "POLAR_CORRECTION_INTERVAL", 10**6)
    _, without = _tape_gradients(layer, params, x, readout)
    g, g0 = with_correction["flow.w0"], without["flow.w0"]
    assert np.max(np.abs(g - g0)) > 1e-2 * np.max(np.abs(g0))
    # Only the w0 path changes at first order elsewhere: outputs agree to round-off.
    np.testing.assert_allclose(with_correction["bias"], without["bias"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["iso-expm-lie_euler", "gated2-lie_euler", "nanode2", "hypernet2"])
def test_dtype_argument_reaches_the_parameter_flow(case, rng):
    """`dtype=` of the layer also sets the dtype of its parameter-flow sub-layer."""
    layer = GRADIENT_CASES[case](seed=1, dtype="float64")
    y = layer(rng.standard_normal((BATCH, DIM)))
    assert y.dtype == tf.float64
    assert {v.dtype for v in layer.param_dict().values()} == {"float64"}


# Population axis: forward(stacked params, stacked x) == each member on its own.

POPULATION_CASES = {
    **GRADIENT_CASES,
    "iso-abs-euler": lambda **kw: layers.ODEtoODE(step_size=0.2, **kw),
    "nanode0-rk4": lambda **kw: layers.NANODE(degree=0, step_size=0.2, solver="rk4", **kw),
    "hypernet1-rk4": lambda **kw: layers.HyperNetODE(num_gates=1, hidden_units=4, step_size=0.2, solver="rk4", **kw),
    "deepresnet-relu": lambda **kw: layers.DeepResNet(3, **kw),
}
POPULATION = 3


@pytest.mark.parametrize("case", sorted(POPULATION_CASES))
def test_population_forward_equals_each_member(case, rng):
    layer, _ = _build(POPULATION_CASES[case], rng, "float32")
    members = [_generic_params(layer, rng, scale=0.3) for _ in range(POPULATION)]
    xs = rng.standard_normal((POPULATION, 5, DIM)).astype("float32")
    stacked = {k: tf.constant(np.stack([m[k] for m in members]), tf.float32) for k in members[0]}

    together = layer.forward(stacked, tf.constant(xs)).numpy()
    alone = np.stack(
        [
            layer.forward({k: tf.constant(v, tf.float32) for k, v in m.items()}, tf.constant(x)).numpy()
            for m, x in zip(members, xs)
        ]
    )
    # Members differ from each other by O(1): a mixed-up population axis cannot pass.
    assert np.max(np.abs(alone[0] - alone[1])) > 1e-2
    # 1e-6 relative to the output scale (outputs are O(1–5)): a few float32 ulps,
    # the most that batched and single matmuls/expms may differ by in round-off.
    scale = max(1.0, np.max(np.abs(alone)))
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6 * scale)
