"""Measured convergence orders of the Lie-group integrators and the main-flow solvers.

Reference: a non-commuting flow with a closed form. For B(t) = e^{tC} B₀ e^{−tC}
(B₀, C ∈ Skew(d)), Ẇ = W B(t) is solved by W(t) = W₀ e^{t(B₀+C)} e^{−tC}.
The slope of log-error against log-step must equal the nominal order ± 0.3.
"""

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import tensorflow as tf

from keras_odetoode import flows, integrators, layers, manifolds

T = 1.0
STEPS = [8, 16, 32, 64]


def _skew(rng, d, scale):
    a = rng.standard_normal((d, d))
    return scale * (a - a.T) / np.sqrt(d)


class RotatingFrameFlow(flows.AbstractOrthogonalFlow):
    """Test flow with the closed-form solution above (also shows a custom flow)."""

    def __init__(self, b0, c, **kwargs):
        super().__init__(w0=manifolds.random_stiefel(b0.shape, seed=0, dtype="float64"), dtype="float64", **kwargs)
        self.b0, self.c = b0, c

    def generator(self, params, t, w):
        rotate = scipy.linalg.expm(t * self.c)
        return tf.constant(rotate @ self.b0 @ rotate.T)

    def exact(self, t):
        return self.w0_value @ scipy.linalg.expm(t * (self.b0 + self.c)) @ scipy.linalg.expm(-t * self.c)


def _slope(steps, errors):
    return np.polyfit(np.log(T / np.asarray(steps)), np.log(errors), 1)[0]


@pytest.fixture
def rotating_flow_args():
    rng = np.random.default_rng(1)
    return _skew(rng, 5, 1.0), _skew(rng, 5, 1.5)


@pytest.mark.parametrize("integrator", integrators.INTEGRATORS)
@pytest.mark.parametrize("retraction", manifolds.RETRACTIONS)
def test_parameter_flow_order(integrator, retraction, rotating_flow_args):
    flow = RotatingFrameFlow(*rotating_flow_args, integrator=integrator, retraction=retraction)
    flow.build(5)
    exact = flow.exact(T)
    errors = [np.linalg.norm(flow.trajectory(n, T / n).numpy()[-1] - exact) for n in STEPS]
    assert errors[0] > 1e-8  # the flow is not trivially integrated exactly
    order = integrators.get(integrator).order
    assert _slope(STEPS, errors) == pytest.approx(order, abs=0.3)


@pytest.mark.parametrize("integrator", integrators.INTEGRATORS)
@pytest.mark.parametrize("retraction", manifolds.RETRACTIONS)
def test_parameter_flow_order_when_the_generator_depends_on_w(integrator, retraction):
    """The isospectral flow Ẇ = W [WᵀQW, N] against DOP853: RKMK4's stages must each see their own W."""
    d = 5
    flow = flows.IsospectralFlow(integrator=integrator, retraction=retraction, seed=0, dtype="float64")
    flow.build(d)
    rng = np.random.default_rng(4)
    q, n = (0.5 * manifolds.sym(rng.standard_normal((d, d))).numpy() for _ in range(2))  # h·‖B‖ < 1 from h = 1/8
    flow.q_matrix.assign(q), flow.n_matrix.assign(n)
    w0 = flow.w0.numpy()

    def rhs(t, y):
        w = y.reshape(d, d)
        m = w.T @ q @ w
        return (w @ (m @ n - n @ m)).ravel()

    exact = scipy.integrate.solve_ivp(rhs, (0, T), w0.ravel(), method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    errors = [np.linalg.norm(flow.trajectory(s, T / s).numpy()[-1].ravel() - exact) for s in STEPS]
    assert errors[0] > 1e-8
    assert _slope(STEPS, errors) == pytest.approx(integrators.get(integrator).order, abs=0.3)


@pytest.mark.parametrize("solver,order", [("euler", 1), ("rk4", 4)])
def test_main_flow_order_against_expm(solver, order, rng):
    w = rng.standard_normal((4, 4))
    x0 = rng.standard_normal((3, 4))
    exact = x0 @ scipy.linalg.expm(T * w.T)
    errors = []
    for n in STEPS:
        layer = layers.NANODE(
            degree=0, step_size=T / n, activation="linear", solver=solver, use_bias=False, dtype="float64"
        )
        layer(x0)
        layer.flow.coefficients.assign(w[None])
        errors.append(np.linalg.norm(layer(x0).numpy() - exact))
    assert _slope(STEPS, errors) == pytest.approx(order, abs=0.3)


@pytest.mark.parametrize("solver,integrator,order", [("euler", "lie_euler", 1), ("rk4", "rkmk4", 4)])
def test_nested_flow_order_against_a_tight_reference(solver, integrator, order, rotating_flow_args):
    """Main flow ẋ = W(t) x driven by the rotating-frame parameter flow (linear f)."""
    b0, c = rotating_flow_args
    x0 = np.random.default_rng(2).standard_normal((2, 5))
    probe = RotatingFrameFlow(b0, c)

    def rhs(t, x):
        return (x.reshape(2, 5) @ probe.exact(t).T).ravel()

    exact = scipy.integrate.solve_ivp(rhs, (0, T), x0.ravel(), method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    errors = []
    for n in STEPS:
        flow = RotatingFrameFlow(b0, c, integrator=integrator)
        layer = layers.NonAutonomousODE(
            flow, step_size=T / n, activation="linear", solver=solver, use_bias=False, dtype="float64"
        )
        errors.append(np.linalg.norm(layer(x0).numpy().ravel() - exact))
    assert _slope(STEPS, errors) == pytest.approx(order, abs=0.3)


def _linear_node(solver, n, rng_seed=3):
    """NeuralODE with linear activation: g(x) = x M + c, solved exactly by an augmented expm."""
    layer = layers.NeuralODE(
        hidden_units=4, step_size=T / n, activation="linear", solver=solver, rtol=1e-10, atol=1e-10, dtype="float64"
    )
    rng = np.random.default_rng(rng_seed)
    x0 = rng.standard_normal((3, 4))
    layer(x0)
    for v in layer.weights:
        v.assign(0.6 * rng.standard_normal(v.shape))
    p = {k: v.numpy() for k, v in layer.param_dict().items()}
    m = p["kernel_1"] @ p["kernel_2"] @ p["kernel_3"]
    c = p["bias_1"] @ p["kernel_2"] @ p["kernel_3"] + p["bias_2"] @ p["kernel_3"] + p["bias_3"]
    aug = np.zeros((5, 5))
    aug[:4, :4], aug[4, :4] = m, c
    exact = (np.hstack([x0, np.ones((3, 1))]) @ scipy.linalg.expm(T * aug))[:, :4]
    return layer, x0, exact


@pytest.mark.parametrize("solver,order", [("euler", 1), ("rk4", 4)])
def test_neural_ode_fixed_step_order(solver, order):
    errors = []
    for n in STEPS:
        layer, x0, exact = _linear_node(solver, n)
        errors.append(np.linalg.norm(layer(x0).numpy() - exact))
    assert _slope(STEPS, errors) == pytest.approx(order, abs=0.3)


def test_neural_ode_dormand_prince_meets_its_tolerance():
    layer, x0, exact = _linear_node("dopri5", 4)
    np.testing.assert_allclose(layer(x0).numpy(), exact, rtol=1e-7, atol=1e-7)
    euler, _, _ = _linear_node("euler", 4)
    assert np.linalg.norm(euler(x0).numpy() - exact) > 1e-3  # the fixed step really is coarser
