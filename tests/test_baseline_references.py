"""The paper's baselines against numpy re-derivations of their equations (float32 layers, float64 references).

Every weight is randomised first (biases and gates included), so that no term
of an equation is checked at zero. The references use column vectors (W x),
the layers rows (x Wᵀ); they share only the layout of the weights.

* NANODE: W(t) = A₀ + Σⱼ Aⱼ cos(2πjt/T) + Bⱼ sin(2πjt/T), xᵢ = xᵢ₋₁ + h f(W(tᵢ) xᵢ₋₁ + b);
* HyperNet: vec Wᵢ₊₁ = vec Wᵢ + h Σₖ aₖ gₖ(vec Wᵢ), then the same main flow;
* DeepNet / DeepResNet: x ← f(Kᵢᵀ x + bᵢ) / x ← x + f(Kᵢᵀ x + bᵢ);
* BaseODE (NeuralODE): ẋ = W₃ σ(W₂ σ(W₁ x + b₁) + b₂) + b₃ by Euler, RK4 and Dormand–Prince.
"""

import math

import numpy as np
import pytest
import scipy.integrate

from keras_odetoode import NANODE, DeepNet, DeepResNet, HyperNetODE, NeuralODE
from test_reference import gate_mlps

D, BATCH = 4, 5
#: float32 against float64 on O(1) values after ≤ 8 steps
RTOL, ATOL = 1e-5, 1e-6

ACTIVATIONS = {
    "abs": np.abs,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}


def _randomize(weight, rng, scale):
    weight.assign((scale * rng.standard_normal(weight.shape)).astype("float32"))


def _numpy(layer):
    return {name: np.asarray(value, np.float64) for name, value in layer.param_dict().items()}


def _inputs(rng, dim=D):
    return rng.standard_normal((BATCH, dim)).astype("float32")


def main_flow(x, weight_at, b, f, h, steps, solver):
    """ẋ = f(W(t) x + b) on tᵢ = i·h: Euler as Eq. 5 (W at tᵢ), or classic RK4 (W at tᵢ₋₁, tᵢ₋½, tᵢ)."""

    def field(t, y):
        return f(np.einsum("ij,bj->bi", weight_at(t), y) + b)

    for i in range(1, steps + 1):
        t = (i - 1) * h
        if solver == "euler":
            x = x + h * field(t + h, x)
        else:
            k1 = field(t, x)
            k2 = field(t + h / 2, x + h / 2 * k1)
            k3 = field(t + h / 2, x + h / 2 * k2)
            k4 = field(t + h, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def trigonometric_weight(coefficients, degree, horizon, t):
    """W(t) = A₀ + Σⱼ Aⱼ cos(2πjt/T) + Bⱼ sin(2πjt/T), coefficients stacked as (A₀, A₁…A_k, B₁…B_k)."""
    a, b = coefficients[1 : degree + 1], coefficients[degree + 1 :]
    w = coefficients[0].copy()
    for j in range(1, degree + 1):
        w += a[j - 1] * math.cos(2 * math.pi * j * t / horizon) + b[j - 1] * math.sin(2 * math.pi * j * t / horizon)
    return w


@pytest.mark.parametrize("solver,activation", [("euler", "abs"), ("euler", "tanh"), ("rk4", "tanh")])
def test_nanode_matches_its_trigonometric_weights_and_eq_5(solver, activation, rng):
    degree, horizon, h = 2, 2.0, 0.25  # T ≠ 1: t/T, not t, sets the frequencies
    layer = NANODE(degree=degree, step_size=h, horizon=horizon, activation=activation, solver=solver, seed=1)
    x = _inputs(rng)
    layer(x)
    _randomize(layer.flow.coefficients, rng, 0.4)
    _randomize(layer.bias, rng, 0.3)
    p = _numpy(layer)
    coefficients = p["flow.coefficients"]
    assert coefficients.shape == (2 * degree + 1, D, D)
    weight_at = lambda t: trigonometric_weight(coefficients, degree, horizon, t)  # noqa: E731

    grid = h / 2 if solver == "rk4" else h  # RK4 reads W at the half steps too
    times = grid * np.arange(round(horizon / grid) + 1)
    expected = np.stack([weight_at(t) for t in times])
    # Each harmonic moves W over [0, T]: the wrong frequency (2πjt, or j dropped) would not match.
    assert np.linalg.norm(expected - expected[0], axis=(1, 2)).max() > 1.0
    np.testing.assert_allclose(layer.solver_weights().numpy(), expected, rtol=RTOL, atol=ATOL)

    y = main_flow(x.astype(np.float64), weight_at, p["bias"], ACTIVATIONS[activation], h, 8, solver)
    assert np.linalg.norm(y - x) > 0.5
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=RTOL, atol=ATOL)


def test_trigonometric_basis_is_cos_and_sin_of_2_pi_j_t_over_t(rng):
    layer = NANODE(degree=3, step_size=0.5, horizon=3.0)
    layer(_inputs(rng))
    times = rng.uniform(0.0, 3.0, 7)
    s = 2 * math.pi * times[:, None] * np.arange(1, 4)[None, :] / 3.0
    expected = np.concatenate([np.ones((7, 1)), np.cos(s), np.sin(s)], axis=1)
    np.testing.assert_allclose(layer.flow.basis(times), expected, rtol=1e-12, atol=1e-12)


def hyper_trajectory(p, h, steps):
    """Euler on vec W: vec Wᵢ₊₁ = vec Wᵢ + h Σₖ aₖ gₖ(vec Wᵢ), gₖ two tanh hidden layers; W row-major."""
    v = p["w0"].reshape(-1)
    vs = [v]
    for _ in range(steps):
        v = v + h * gate_mlps(p, v)
        vs.append(v)
    return np.stack(vs).reshape(steps + 1, *p["w0"].shape)


@pytest.mark.parametrize("solver,activation", [("euler", "abs"), ("euler", "tanh"), ("rk4", "abs")])
def test_hypernet_matches_euler_on_vec_w_and_eq_5(solver, activation, rng):
    num_gates, d, h, horizon = 2, 3, 0.125, 1.0
    layer = HyperNetODE(
        num_gates=num_gates, hidden_units=5, step_size=h, horizon=horizon, activation=activation, solver=solver, seed=3
    )
    x = _inputs(rng, d)
    layer(x)
    for name in ("bias_1", "bias_2", "bias_3"):
        _randomize(getattr(layer.flow, name), rng, 0.3)
    layer.flow.gates.assign(rng.uniform(0.5, 1.5, num_gates).astype("float32"))
    _randomize(layer.bias, rng, 0.3)
    p = _numpy(layer)
    flow = {name[len("flow.") :]: value for name, value in p.items() if name.startswith("flow.")}

    grid = h / 2 if solver == "rk4" else h  # RK4: the flow runs with step h/2
    steps = round(horizon / grid)
    ws = hyper_trajectory(flow, grid, steps)
    # W moves, and its velocity depends on W: a velocity frozen at W_0 would end elsewhere.
    frozen = flow["w0"] + horizon * gate_mlps(flow, flow["w0"].reshape(-1)).reshape(d, d)
    assert np.linalg.norm(ws[-1] - ws[0]) > 0.5 and np.linalg.norm(ws[-1] - frozen) > 1e-2
    np.testing.assert_allclose(layer.solver_weights().numpy(), ws, rtol=RTOL, atol=ATOL)

    weight_at = lambda t: ws[round(t / grid)]  # noqa: E731
    y = main_flow(x.astype(np.float64), weight_at, p["bias"], ACTIVATIONS[activation], h, 8, solver)
    assert np.linalg.norm(y - x) > 0.5
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_deepnet_and_deepresnet_match_their_layers(residual, activation, rng):
    depth = 4
    layer = (DeepResNet if residual else DeepNet)(depth, activation=activation, seed=2)
    assert layer.residual is residual
    x = _inputs(rng)
    layer(x)
    _randomize(layer.biases, rng, 0.3)
    p = _numpy(layer)
    f = ACTIVATIONS[activation]
    y = x.astype(np.float64)
    states = [y]
    for kernel, bias in zip(p["kernels"], p["biases"]):
        layer_output = f(np.einsum("ij,bi->bj", kernel, y) + bias)  # Kᵀx per example
        y = y + layer_output if residual else layer_output
        states.append(y)
    assert np.abs(y).max() > 0.1
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=RTOL, atol=ATOL)
    states_layer = layer.forward(layer.param_dict(), x, return_states=True).numpy()
    np.testing.assert_allclose(states_layer, np.stack(states), rtol=RTOL, atol=ATOL)


def node_field(p, f):
    """g(x) = W₃ σ(W₂ σ(W₁ x + b₁) + b₂) + b₃, kernels stored (inputs, outputs)."""

    def g(x):
        z = f(np.einsum("ij,bi->bj", p["kernel_1"], x) + p["bias_1"])
        z = f(np.einsum("ij,bi->bj", p["kernel_2"], z) + p["bias_2"])
        return np.einsum("ij,bi->bj", p["kernel_3"], z) + p["bias_3"]

    return g


def _node(solver, activation, rng, **kwargs):
    layer = NeuralODE(hidden_units=6, step_size=0.125, horizon=1.0, activation=activation, solver=solver, **kwargs)
    x = _inputs(rng)
    layer(x)
    for name in ("kernel_1", "kernel_2", "kernel_3"):
        _randomize(getattr(layer, name), rng, 0.6)
    for name in ("bias_1", "bias_2", "bias_3"):
        _randomize(getattr(layer, name), rng, 0.3)
    return layer, x, node_field(_numpy(layer), ACTIVATIONS[activation])


@pytest.mark.parametrize("solver", ["euler", "rk4"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_neural_ode_matches_its_fixed_step_solvers(solver, activation, rng):
    layer, x, g = _node(solver, activation, rng, seed=4)
    h, y = 0.125, x.astype(np.float64)
    states = [y]
    for _ in range(8):
        if solver == "euler":
            y = y + h * g(y)
        else:
            k1 = g(y)
            k2 = g(y + h / 2 * k1)
            k3 = g(y + h / 2 * k2)
            k4 = g(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        states.append(y)
    assert np.linalg.norm(y - x) > 0.5
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=RTOL, atol=ATOL)
    states_layer = layer.forward(layer.param_dict(), x, return_states=True).numpy()
    np.testing.assert_allclose(states_layer, np.stack(states), rtol=RTOL, atol=ATOL)


def test_neural_ode_dopri5_matches_a_tight_scipy_solution(rng):
    layer, x, g = _node("dopri5", "tanh", rng, rtol=1e-6, atol=1e-7, seed=5)
    x64 = x.astype(np.float64)
    exact = scipy.integrate.solve_ivp(
        lambda t, y: g(y.reshape(x.shape)).ravel(), (0.0, 1.0), x64.ravel(), method="DOP853", rtol=1e-12, atol=1e-12
    ).y[:, -1]
    exact = exact.reshape(x.shape)
    assert np.linalg.norm(exact - x64) > 0.5
    # The adaptive solver's tolerances, not float32, bound its error here.
    np.testing.assert_allclose(layer(x).numpy(), exact, rtol=1e-4, atol=1e-5)
