"""`manifolds.expm`: the Taylor path and the `tf.linalg.expm` path against scipy."""

import math

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from keras_odetoode import manifolds

UNIT_ROUNDOFF = {np.float32: 2.0**-24, np.float64: 2.0**-53}


def _skew_with_theta(rng, d, theta):
    """A random skew matrix scaled so that √‖A²‖₁ = theta (the bound `expm` tests)."""
    g = rng.standard_normal((d, d))
    a = g - g.T
    return a * theta / math.sqrt(np.abs(a @ a).sum(axis=0).max())


def _threshold(dtype):
    return manifolds.taylor_threshold(manifolds.TAYLOR_DEGREE[tf.as_dtype(dtype)], UNIT_ROUNDOFF[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_is_where_the_taylor_tail_reaches_the_unit_roundoff(dtype):
    m, u = manifolds.TAYLOR_DEGREE[tf.as_dtype(dtype)], UNIT_ROUNDOFF[dtype]
    theta = _threshold(dtype)
    tail = lambda t: sum(t**k / math.factorial(k) for k in range(m, m + 40))  # noqa: E731
    assert tail(theta) <= u < tail(1.001 * theta)
    assert 0.5 < theta < 0.8  # both dtypes cover the flows' generators h·B


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.99, 1.5, 40.0])
def test_expm_matches_scipy_on_both_sides_of_the_threshold(dtype, fraction, rng):
    a = _skew_with_theta(rng, 64, fraction * _threshold(dtype)).astype(dtype)
    e = manifolds.expm(tf.constant(a)).numpy()
    reference = scipy.linalg.expm(a.astype(np.float64))
    tolerance = 200 * UNIT_ROUNDOFF[dtype]
    assert np.abs(e - reference).max() < tolerance
    assert np.linalg.norm(e.T.astype(np.float64) @ e - np.eye(64), 2) < tolerance
    if fraction < 1:  # Taylor path: the polynomial itself, not tf.linalg.expm
        # Checked eagerly (`_expm`, the body `expm` traces): in the traced graph the optimizer
        # may sum the polynomial's terms in another order, which moves the last bits.
        a = tf.constant(a)
        taylor = manifolds._taylor(a, a @ a, manifolds.TAYLOR_DEGREE[a.dtype]).numpy()
        np.testing.assert_array_equal(manifolds._expm(a).numpy(), taylor)
        np.testing.assert_allclose(e, taylor, rtol=0, atol=8 * UNIT_ROUNDOFF[dtype])


def test_expm_is_batched_and_handles_mixed_norms(rng):
    small = _skew_with_theta(rng, 16, 0.1)
    large = _skew_with_theta(rng, 16, 5.0)
    e = manifolds.expm(tf.constant(np.stack([small, large]))).numpy()
    for got, a in zip(e, (small, large)):
        np.testing.assert_allclose(got, scipy.linalg.expm(a), atol=1e-13)


@pytest.mark.parametrize("fraction", [0.3, 0.99, 3.0])
def test_expm_gradient_is_the_adjoint_frechet_derivative(fraction, rng):
    """d⟨G, exp(A)⟩/dA = L_exp(Aᵀ, G) (scipy.linalg.expm_frechet), float64."""
    a = _skew_with_theta(rng, 12, fraction * _threshold(np.float64))
    g = rng.standard_normal((12, 12))
    a_t = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(a_t)
        loss = tf.reduce_sum(tf.constant(g) * manifolds.expm(a_t))
    _, reference = scipy.linalg.expm_frechet(a.T, g)
    np.testing.assert_allclose(tape.gradient(loss, a_t).numpy(), reference, rtol=1e-11, atol=1e-12)


def test_many_concurrent_expm_in_one_graph(rng):
    """Regression: independent `expm`s in one `tf.function`, on both paths, run together."""
    batch = tf.constant(np.stack([_skew_with_theta(rng, 32, t) for t in [0.1, 4.0] * 8]), tf.float32)

    @tf.function
    def many(a):
        return tf.stack([manifolds.expm(a[i]) for i in range(a.shape[0])])

    np.testing.assert_allclose(many(batch).numpy(), scipy.linalg.expm(batch.numpy().astype(np.float64)), atol=5e-6)
