"""Riemannian optimizers: Euclidean equivalence, exact steps, manifold invariants, training."""

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

import keras_odetoode as ko
from keras_odetoode import manifolds

SHAPES = [(6, 6), (7, 3), (3, 7)]
OPTIMIZERS = {
    "sgd": lambda: ko.RiemannianSGD(0.1),
    "sgd_momentum": lambda: ko.RiemannianSGD(0.02, momentum=0.9),
    "sgd_nesterov": lambda: ko.RiemannianSGD(0.02, momentum=0.9, nesterov=True),
    "adam": lambda: ko.RiemannianAdam(0.02),
}


def _dense_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (lambda: ko.RiemannianSGD(0.05), lambda: keras.optimizers.SGD(0.05)),
        (
            lambda: ko.RiemannianSGD(0.05, momentum=0.9, nesterov=True),
            lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        ),
        (lambda: ko.RiemannianAdam(0.01, amsgrad=True), lambda: keras.optimizers.Adam(0.01, amsgrad=True)),
        (lambda: ko.RiemannianAdam(0.01), lambda: keras.optimizers.Adam(0.01)),
    ],
)
def test_euclidean_variables_follow_the_keras_rule_exactly(ours, theirs, rng):
    x = rng.standard_normal((64, 5)).astype("float32")
    y = rng.standard_normal((64, 2)).astype("float32")
    a, b = _dense_model(1), _dense_model(1)
    a.compile(ours(), "mse")
    b.compile(theirs(), "mse")
    a.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    moved = [np.abs(w.numpy() - v).max() for w, v in zip(a.weights, _dense_model(1).get_weights())]
    assert min(moved) > 1e-3
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())


def _manifold_variable(shape, retraction="expm", seed=0):
    variable = keras.Variable(manifolds.random_stiefel(shape, seed=seed))
    variable.constraint = manifolds.Stiefel(retraction)  # what Layer.add_weight(constraint=...) does
    return variable


@pytest.mark.parametrize("retraction", manifolds.RETRACTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_plain_riemannian_sgd_step_is_the_closed_form(shape, retraction, rng):
    w = _manifold_variable(shape, retraction)
    g = rng.standard_normal(shape).astype("float32")
    w_np, g_np = w.numpy().astype(np.float64), g.astype(np.float64)
    opt = ko.RiemannianSGD(0.1)
    opt.apply([g], [w])
    tall = shape[0] >= shape[1]
    a = g_np @ w_np.T - w_np @ g_np.T if tall else g_np.T @ w_np - w_np.T @ g_np
    if retraction != "cayley":  # "expm" and "tf.linalg.expm" are both the exponential
        r = scipy.linalg.expm(-0.1 * a)
    else:
        r = np.linalg.solve(np.eye(len(a)) + 0.05 * a, np.eye(len(a)) - 0.05 * a)
    np.testing.assert_allclose(w.numpy(), r @ w_np if tall else w_np @ r.T, atol=2e-6)


def _riemannian_adam_reference(w, gradients, lr, amsgrad, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """RiemannianAdam on ST(n, p) re-derived in float64 (Bécigneul & Ganea 2019, Alg. 1 with
    a scalar second moment; RAMSGrad with `amsgrad`): ξ = P_W(G), m ← β₁m + (1 − β₁)ξ,
    v ← β₂v + (1 − β₂) mean(ξ²), v̂ = max(v̂, v), W ← expm(−(D Wᵀ − W Dᵀ)) W with
    D = α m / (√v̂ + ε), then m ← P_W(m). A wide W is the same on Wᵀ."""
    tall = w.shape[0] >= w.shape[1]
    w = w if tall else w.T
    m, v, v_hat = np.zeros_like(w), 0.0, 0.0

    def project(w, g):
        wtg = w.T @ g
        return g - w @ (wtg + wtg.T) / 2

    for t, g in enumerate(gradients, start=1):
        xi = project(w, g if tall else g.T)
        m = beta_1 * m + (1 - beta_1) * xi
        v = beta_2 * v + (1 - beta_2) * np.mean(xi**2)
        v_hat = max(v_hat, v) if amsgrad else v
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        d = alpha * m / (np.sqrt(v_hat) + epsilon)
        w = scipy.linalg.expm(-(d @ w.T - w @ d.T)) @ w
        m = project(w, m)
    return w if tall else w.T


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_riemannian_adam_steps_are_the_reference_rule(shape, amsgrad, rng):
    """Gradients that shrink 10× after 3 steps, β₂ = 0.5 so that v falls: with amsgrad the
    step keeps dividing by the larger v of the first steps, so the two rules part and each
    must match its reference."""
    w = _manifold_variable(shape, seed=2)
    start = w.numpy().astype(np.float64)
    gradients = [rng.standard_normal(shape) * (1.0 if t < 3 else 0.1) for t in range(8)]
    opt = ko.RiemannianAdam(0.05, beta_2=0.5, amsgrad=amsgrad)
    for g in gradients:
        opt.apply([tf.constant(g, tf.float32)], [w])
    expected = _riemannian_adam_reference(start, gradients, 0.05, amsgrad, beta_2=0.5)
    np.testing.assert_allclose(w.numpy(), expected, atol=2e-5)
    other = _riemannian_adam_reference(start, gradients, 0.05, not amsgrad, beta_2=0.5)
    assert np.abs(expected - other).max() > 1e-2


def _procrustes(target, start):
    """argmin of ‖W − T‖_F over the connected component of ST(n, p) holding `start`.

    The polar factor U Vᵀ of T; for square matrices a flow cannot change
    det W = ±1, so on the other component the optimum flips the smallest
    singular direction: U diag(1, …, 1, −1) Vᵀ.
    """
    u, _, vt = np.linalg.svd(target, full_matrices=False)
    if target.shape[0] == target.shape[1] and np.linalg.det(u @ vt) * np.linalg.det(start) < 0:
        u[:, -1] *= -1
    return u @ vt


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("retraction", manifolds.RETRACTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_500_steps_stay_on_the_manifold_and_solve_procrustes(shape, retraction, name, rng):
    """Without Keras' constraint pass (update_step only), the rule alone keeps W on ST(n, p)."""
    w = _manifold_variable(shape, retraction, seed=1)
    start = w.numpy()
    target = tf.constant(rng.standard_normal(shape), tf.float32)
    opt = OPTIMIZERS[name]()
    opt.build([w])

    @tf.function
    def step():
        opt.update_step(w - target, w, opt.learning_rate)  # ∇ ½‖W − T‖²
        opt.iterations.assign_add(1)
        return manifolds.orthogonality_error(w)

    errors = [float(step()) for _ in range(500)]
    assert max(errors) < 1e-5
    np.testing.assert_allclose(w.numpy(), _procrustes(target.numpy(), start), atol=2e-3)


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: ko.ODEtoODE(step_size=0.2, seed=0),
        lambda: ko.ODEtoODE(flow="gated", num_gates=2, step_size=0.2, retraction="cayley", seed=0),
        lambda: ko.NANODE(degree=1, step_size=0.2, seed=0),
        lambda: ko.HyperNetODE(step_size=0.2, seed=0),
        lambda: ko.NeuralODE(step_size=0.2, seed=0),
        lambda: ko.DeepResNet(3, seed=0),
    ],
)
def test_fit_trains_every_layer_and_keeps_the_manifold(make_layer, rng, monkeypatch):
    def constraint_that_checks(self, w):
        # Keras applies the constraint after each optimizer step: the step itself must stay on the manifold.
        error = tf.cast(manifolds.orthogonality_error(w), tf.float64)
        check = tf.debugging.assert_less(error, tf.constant(1e-5, tf.float64), "a step left the manifold")
        with tf.control_dependencies([check]):
            return manifolds.qr_orthonormalize(w)

    monkeypatch.setattr(manifolds.Stiefel, "__call__", constraint_that_checks)
    x = rng.standard_normal((128, 6)).astype("float32")
    y = np.tanh(x @ rng.standard_normal((6, 3))).astype("float32")
    model = keras.Sequential([keras.Input((6,)), ko.StiefelDense(8, seed=0), make_layer(), ko.StiefelDense(3, seed=1)])
    model.compile(ko.RiemannianAdam(0.01), "mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.8 * before
    manifold_vars = [v for v in model.weights if manifolds.manifold_of(v)]
    assert len(manifold_vars) >= 2
    for v in manifold_vars:
        assert float(manifolds.orthogonality_error(v)) < 1e-5


def test_optimizer_config_round_trip():
    for opt in (ko.RiemannianSGD(0.03, momentum=0.5, nesterov=True), ko.RiemannianAdam(0.002, beta_1=0.8)):
        clone = type(opt).from_config(opt.get_config())
        assert clone.get_config() == opt.get_config()
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
        assert type(restored) is type(opt)


@pytest.mark.parametrize(
    "make", [lambda: ko.RiemannianSGD(0.1, use_ema=True), lambda: ko.RiemannianAdam(0.02, use_ema=True)]
)
def test_ema_of_a_manifold_variable_is_the_polar_factor_of_the_mean(make, rng):
    """use_ema: average ← polar(m·average + (1 − m)·W), so EMA weights stay on the manifold."""
    w = _manifold_variable((7, 3), "expm", seed=1)
    opt = make()
    opt.build([w])
    average = opt._model_variables_moving_average[0]
    a0, w1 = manifolds.random_stiefel((7, 3), seed=2), w.numpy()
    average.assign(a0)
    opt.iterations.assign(1)
    opt._update_model_variables_moving_average([w])
    u, _, vt = np.linalg.svd(0.99 * a0 + 0.01 * w1, full_matrices=False)
    np.testing.assert_allclose(average.numpy(), u @ vt, atol=1e-6)


def test_fit_with_ema_leaves_the_manifold_variables_on_it(rng):
    x = rng.standard_normal((128, 6)).astype("float32")
    y = np.tanh(x @ rng.standard_normal((6, 3))).astype("float32")
    model = keras.Sequential([keras.Input((6,)), ko.StiefelDense(8, seed=0), ko.ODEtoODE(step_size=0.2, seed=0),
                              ko.StiefelDense(3, seed=1)])  # fmt: skip
    model.compile(ko.RiemannianAdam(0.02, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3), "mse")
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)  # overwritten every 3 steps, then finalized
    manifold_vars = [v for v in model.weights if manifolds.manifold_of(v)]
    assert len(manifold_vars) == 3
    for v in manifold_vars:
        assert float(manifolds.orthogonality_error(v)) < 1e-5


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (
            lambda **kw: ko.RiemannianSGD(0.1, momentum=0.5, **kw),
            lambda **kw: keras.optimizers.SGD(0.1, momentum=0.5, **kw),
        ),
        (lambda **kw: ko.RiemannianAdam(0.02, **kw), lambda **kw: keras.optimizers.Adam(0.02, **kw)),
    ],
)
def test_weight_decay_applies_to_euclidean_variables_only(ours, theirs, rng):
    """On ST(n, p) the decay W ← (1 − λη) W is not defined: manifold variables step as without it."""

    def run(make, **kwargs):
        w, b = _manifold_variable((7, 3), seed=1), keras.Variable(np.ones(4, np.float32))
        opt = make(**kwargs)
        for _ in range(3):
            opt.apply_gradients([(tf.constant(g_w), w), (tf.constant(g_b), b)])
        return w.numpy(), b.numpy()

    g_w, g_b = rng.standard_normal((7, 3)).astype("float32"), rng.standard_normal(4).astype("float32")
    w_decay, b_decay = run(ours, weight_decay=0.1)
    w_plain, _ = run(ours)
    np.testing.assert_array_equal(w_decay, w_plain)
    assert float(manifolds.orthogonality_error(w_decay)) < 1e-5
    np.testing.assert_allclose(b_decay, run(theirs, weight_decay=0.1)[1], rtol=1e-6)
