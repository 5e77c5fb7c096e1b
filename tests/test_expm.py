"""The exponentials of `manifolds`: `taylor_expm`, `expm` and `linalg_expm` against scipy.

`expm` must be exp to round-off for any generator: the tests sweep ‖A‖₂ from 1e-4
to 50 across the Taylor threshold. Round-off here means the error of a backward
stable method: exp has relative condition number about ‖A‖₂ on Skew(d), so the
tolerances grow with max(1, ‖A‖₂); `tf.linalg.expm` (Padé 13) is measured beside.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from keras_odetoode import manifolds

UNIT_ROUNDOFF = {np.float32: 2.0**-24, np.float64: 2.0**-53}
NORMS = [1e-4, 1e-2, 0.3, 0.6, 1.0, 5.0, 20.0, 50.0]


def _skew(rng, d, norm2):
    """A random skew matrix with spectral norm `norm2`."""
    g = rng.standard_normal((d, d))
    a = g - g.T
    return a * norm2 / np.linalg.norm(a, 2)


def _skew_with_theta(rng, d, theta):
    """A random skew matrix scaled so that √‖A²‖₁ = theta (the bound the polynomial is checked by)."""
    a = _skew(rng, d, 1.0)
    return a * theta / math.sqrt(np.abs(a @ a).sum(axis=0).max())


def _threshold(dtype):
    return manifolds.expm_threshold(tf.as_dtype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_is_where_the_taylor_tail_reaches_the_unit_roundoff(dtype):
    m, u = manifolds.TAYLOR_DEGREE[tf.as_dtype(dtype)], UNIT_ROUNDOFF[dtype]
    theta = _threshold(dtype)
    tail = lambda t: sum(t**k / math.factorial(k) for k in range(m, m + 40))  # noqa: E731
    assert tail(theta) <= u < tail(1.001 * theta)
    assert 0.4 < theta < 0.8  # both dtypes cover the flows' generators h·B (~0.06–0.25)


def test_the_three_product_polynomial_is_the_degree_8_taylor_polynomial():
    """Expanding `_taylor8`'s evaluation scheme gives the coefficients 1/k!, k ≤ 8, and nothing beyond."""
    x1, x2, x3, x4, x5, x6, x7, y2 = manifolds.TAYLOR8_COEFFICIENTS
    p = np.polynomial.Polynomial
    a4 = p([0, 0, 0, x1, x2])
    polynomial = p([1, 1, y2]) + (p([0, 0, x3]) + a4) * (p([x4, x5, x6]) + x7 * a4)
    np.testing.assert_allclose(polynomial.coef, [1 / math.factorial(k) for k in range(9)], rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_taylor_expm_is_exp_below_its_threshold_and_reports_the_bound(dtype, rng):
    a = _skew_with_theta(rng, 48, 0.99 * _threshold(dtype)).astype(dtype)
    e, theta = manifolds.taylor_expm(tf.constant(a))
    np.testing.assert_allclose(
        e.numpy(), scipy.linalg.expm(a.astype(np.float64)), rtol=0, atol=32 * UNIT_ROUNDOFF[dtype]
    )
    np.testing.assert_allclose(theta.numpy(), math.sqrt(np.abs(a.astype(np.float64) @ a).sum(axis=0).max()), rtol=1e-5)
    # Above the threshold the polynomial alone is not exp: what the flows' check is for.
    big = _skew_with_theta(rng, 48, 16.0)
    assert np.abs(manifolds.taylor_expm(tf.constant(big, dtype))[0].numpy() - scipy.linalg.expm(big)).max() > 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm2", NORMS)
def test_expm_matches_scipy_for_any_norm(dtype, norm2, rng):
    d, u = 64, UNIT_ROUNDOFF[dtype]
    a = _skew(rng, d, norm2).astype(dtype)
    reference = scipy.linalg.expm(a.astype(np.float64))
    e = manifolds.expm(tf.constant(a)).numpy().astype(np.float64)
    scale = max(1.0, norm2)
    assert np.abs(e - reference).max() < 16 * scale * u
    assert np.linalg.norm(e.T @ e - np.eye(d), 2) < 64 * scale * u
    # Padé 13 of TensorFlow, measured beside: the same order of error.
    padé = tf.linalg.expm(tf.constant(a)).numpy().astype(np.float64)
    assert np.abs(e - reference).max() < max(8 * np.abs(padé - reference).max(), 16 * u)


def test_expm_takes_no_squaring_below_the_threshold(rng):
    """Within the threshold `expm` is the polynomial of `taylor_expm`, bit for bit (no scaling, no squaring)."""
    a = tf.constant(_skew_with_theta(rng, 32, 0.9 * _threshold(np.float32)), tf.float32)
    np.testing.assert_array_equal(manifolds.expm(a).numpy(), manifolds.taylor_expm(a)[0].numpy())


def test_expm_of_zero_and_of_non_finite_generators():
    """exp(0) = I without squarings; an infinite or NaN generator gives a non-finite result, not a hang."""
    np.testing.assert_array_equal(manifolds.expm(tf.zeros((2, 5, 5))).numpy(), np.broadcast_to(np.eye(5), (2, 5, 5)))
    bad = np.zeros((2, 4, 4), np.float32)
    bad[0, 0, 1], bad[1, 0, 1] = np.inf, np.nan
    assert (~np.isfinite(manifolds.expm(tf.constant(bad)).numpy())).any(axis=(1, 2)).all()


def test_expm_scales_each_matrix_of_a_batch_by_its_own_norm(rng):
    small, large = _skew(rng, 16, 0.1), _skew(rng, 16, 30.0)
    e = manifolds.expm(tf.constant(np.stack([small, large]))).numpy()
    for got, a in zip(e, (small, large)):
        np.testing.assert_allclose(got, scipy.linalg.expm(a), atol=1e-13)
    # The small one is not squared because the large one is.
    np.testing.assert_allclose(e[0], manifolds.taylor_expm(tf.constant(small))[0].numpy(), rtol=0, atol=1e-16)


@pytest.mark.parametrize("norm2", [0.3, 0.6, 3.0, 40.0])
def test_expm_gradient_is_the_adjoint_frechet_derivative(norm2, rng):
    """d⟨G, exp(A)⟩/dA = L_exp(Aᵀ, G) (scipy.linalg.expm_frechet), float64, and a central difference."""
    a, g = _skew(rng, 12, norm2), rng.standard_normal((12, 12))
    a_t = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(a_t)
        loss = tf.reduce_sum(tf.constant(g) * manifolds.expm(a_t))
    gradient = tape.gradient(loss, a_t).numpy()
    _, reference = scipy.linalg.expm_frechet(a.T, g)
    np.testing.assert_allclose(gradient, reference, rtol=1e-10, atol=1e-10 * max(1.0, norm2))
    direction, eps = rng.standard_normal((12, 12)), 1e-6
    f = lambda x: float(np.sum(g * manifolds.expm(tf.constant(x)).numpy()))  # noqa: E731
    difference = (f(a + eps * direction) - f(a - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(np.sum(gradient * direction), difference, rtol=1e-6)


@pytest.mark.parametrize("norm2", [0.3, 5.0, 40.0])
def test_expm_gradient_in_float32(norm2, rng):
    a, g = _skew(rng, 24, norm2), rng.standard_normal((24, 24))
    a_t = tf.constant(a, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(a_t)
        loss = tf.reduce_sum(tf.constant(g, tf.float32) * manifolds.expm(a_t))
    _, reference = scipy.linalg.expm_frechet(a.T, g)
    error = np.abs(tape.gradient(loss, a_t).numpy() - reference).max()
    assert error < 64 * max(1.0, norm2) * UNIT_ROUNDOFF[np.float32] * np.abs(reference).max()


@pytest.mark.parametrize("norm2", [0.3, 40.0])
def test_linalg_expm_is_tf_linalg_expm_with_the_exact_gradient(norm2, rng):
    a, g = _skew(rng, 10, norm2), rng.standard_normal((10, 10))
    a_t = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(a_t)
        e = manifolds.linalg_expm(a_t)
        loss = tf.reduce_sum(tf.constant(g) * e)
    np.testing.assert_array_equal(e.numpy(), tf.linalg.expm(a_t).numpy())
    _, reference = scipy.linalg.expm_frechet(a.T, g)
    np.testing.assert_allclose(tape.gradient(loss, a_t).numpy(), reference, rtol=1e-9, atol=1e-9 * norm2)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("exp", [manifolds.expm, manifolds.linalg_expm, manifolds.cayley])
def test_every_exponential_compiles_under_xla_with_its_gradient(exp, dtype, rng):
    a = tf.constant(np.stack([_skew(rng, 16, 0.05), _skew(rng, 16, 8.0)]), dtype)
    g = tf.constant(rng.standard_normal((2, 16, 16)), dtype)

    def value_and_gradient(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = tf.reduce_sum(g * exp(a))
        return exp(a), tape.gradient(loss, a)

    plain = tf.function(value_and_gradient)(a)
    xla = tf.function(value_and_gradient, jit_compile=True)(a)
    for p, x in zip(plain, xla):
        np.testing.assert_allclose(x.numpy(), p.numpy(), rtol=0, atol=2e-5 * max(1.0, float(np.abs(p).max())))


def test_many_concurrent_expm_in_one_graph(rng):
    """Regression: independent `expm`s in one `tf.function`, small and large, run together."""
    batch = tf.constant(np.stack([_skew_with_theta(rng, 32, t) for t in [0.1, 4.0] * 8]), tf.float32)

    @tf.function
    def many(a):
        return tf.stack([manifolds.expm(a[i]) for i in range(a.shape[0])])

    np.testing.assert_allclose(many(batch).numpy(), scipy.linalg.expm(batch.numpy().astype(np.float64)), atol=5e-6)
