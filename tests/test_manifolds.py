"""Manifold operations against their definitions and scipy references."""

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from keras_odetoode import manifolds

SHAPES = [(6, 6), (7, 3), (3, 7)]  # square, tall, wide


def _gram_error(w):
    w = np.asarray(w, np.float64)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    return np.linalg.norm(gram - np.eye(len(gram)), 2)


def test_skew_and_sym_split_a_matrix(rng):
    a = rng.standard_normal((5, 5))
    s, k = manifolds.sym(a).numpy(), manifolds.skew(a).numpy()
    np.testing.assert_allclose(s + k, a, atol=1e-12)
    np.testing.assert_allclose(s, s.T, atol=0)
    np.testing.assert_allclose(k, -k.T, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_orthogonality_error_is_the_spectral_gram_error(shape, rng):
    w = rng.standard_normal(shape)
    np.testing.assert_allclose(manifolds.orthogonality_error(w).numpy(), _gram_error(w), rtol=1e-10)
    # 1.1·I: singular values 1.1, so ‖WᵀW − I‖₂ = 0.21 exactly
    assert manifolds.orthogonality_error(1.1 * np.eye(4)).numpy() == pytest.approx(0.21, abs=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_haar_initializer_is_on_the_manifold_and_seeded(shape):
    init = manifolds.HaarStiefel(seed=3)
    w = init(shape).numpy()
    assert w.dtype == np.float32 and w.shape == shape
    assert _gram_error(w) < 1e-6
    np.testing.assert_array_equal(w, manifolds.HaarStiefel(seed=3)(shape).numpy())
    assert not np.allclose(w, manifolds.HaarStiefel(seed=4)(shape).numpy())


def test_haar_samples_have_haar_moments():
    # For Haar W ∈ O(n): E[W_ij] = 0 and E[W_ij²] = 1/n; and det is ±1 with
    # equal probability (plain QR without the sign fix is biased to +1 for the diagonal).
    n, samples = 4, 4000
    w = manifolds.random_stiefel((samples, n, n), seed=0, dtype="float64")
    assert abs(w.mean()) < 4 * np.sqrt(1 / n / (samples * n * n))
    assert w[:, 0, 0].var() == pytest.approx(1 / n, rel=0.1)
    assert abs(w[:, 0, 0].mean()) < 4 * np.sqrt(1 / n / samples)
    assert np.mean(np.linalg.det(w) > 0) == pytest.approx(0.5, abs=0.05)


def _signed_qr(w):
    """numpy's Q factor of W (of Wᵀ when wide) with the columns' signs flipped so that diag(R) > 0."""
    tall = w.shape[0] >= w.shape[1]
    q, r = np.linalg.qr(w if tall else w.T)
    q = q * np.sign(np.diag(r))
    return q if tall else q.T


def _assert_is_the_signed_qr_factor(q, w, atol):
    """Q is W's QR factor with diag(R) > 0: R = QᵀW (WQᵀ when wide) is upper-triangular
    with a positive diagonal, and Q equals numpy's factor after the sign fix. The polar
    factor, or any other point on the manifold, fails the triangularity."""
    q, w = np.asarray(q, np.float64), np.asarray(w, np.float64)
    tall = w.shape[0] >= w.shape[1]
    r = q.T @ w if tall else (w @ q.T).T
    np.testing.assert_allclose(np.tril(r, -1), 0, atol=atol)
    assert np.all(np.diag(r) > 0)
    np.testing.assert_allclose(q, _signed_qr(w), atol=atol)


@pytest.mark.parametrize("shape", SHAPES)
def test_qr_orthonormalize_is_the_signed_qr_factor_and_identity_on_the_manifold(shape, rng):
    w = manifolds.random_stiefel(shape, seed=1, dtype="float64")
    np.testing.assert_allclose(manifolds.qr_orthonormalize(w).numpy(), w, atol=1e-12)
    off = rng.standard_normal(shape)
    q = manifolds.qr_orthonormalize(off).numpy()
    assert _gram_error(q) < 1e-12
    _assert_is_the_signed_qr_factor(q, off, atol=1e-12)
    # the polar factor U Vᵀ is on the manifold too, but is not this map
    u, _, vt = np.linalg.svd(off, full_matrices=False)
    assert np.abs(q - u @ vt).max() > 1e-2


@pytest.mark.parametrize("shape", SHAPES)
def test_project_tangent_is_an_orthogonal_projection(shape, rng):
    w = manifolds.random_stiefel(shape, seed=2, dtype="float64")
    g = rng.standard_normal(shape)
    p = manifolds.project_tangent(w, g).numpy()
    # idempotent
    np.testing.assert_allclose(manifolds.project_tangent(w, p).numpy(), p, atol=1e-12)
    # tangent: WᵀZ + ZᵀW = 0 (tall) / WZᵀ + ZWᵀ = 0 (wide)
    sym = w.T @ p + p.T @ w if shape[0] >= shape[1] else w @ p.T + p @ w.T
    np.testing.assert_allclose(sym, 0, atol=1e-12)
    # the residual is normal: orthogonal to every tangent vector
    z = manifolds.project_tangent(w, rng.standard_normal(shape)).numpy()
    assert abs(np.sum((g - p) * z)) < 1e-10


def _closed_form_rotation(a, eta, retraction):
    """R(−ηA) for the n×n generator A: scipy's expm (for both exponentials), or the Cayley map by a solve."""
    if retraction != "cayley":
        return scipy.linalg.expm(-eta * a)
    eye = np.eye(len(a))
    return np.linalg.solve(eye + eta * a / 2, eye - eta * a / 2)


@pytest.mark.parametrize("retraction", manifolds.RETRACTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_retract_matches_the_closed_form(shape, retraction, rng):
    w = manifolds.random_stiefel(shape, seed=5, dtype="float64")
    g = rng.standard_normal(shape)
    eta = 0.1
    tall = shape[0] >= shape[1]
    a = g @ w.T - w @ g.T if tall else g.T @ w - w.T @ g
    np.testing.assert_allclose(a, -a.T, atol=1e-12)
    r = _closed_form_rotation(a, eta, retraction)
    expected = r @ w if tall else w @ r.T
    out = manifolds.retract(w, g, eta, retraction).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert _gram_error(out) < 1e-12


LOW_RANK_ROUTES = {
    # name: (function, step sizes it is tested at)
    "cayley": (manifolds._cayley_low_rank, (0.003, 0.3)),
    "expm series, else QR": (manifolds._expm_low_rank, (0.003, 0.03, 0.3)),
    "expm QR": (manifolds._expm_low_rank_qr, (0.003, 0.3)),
}


@pytest.mark.parametrize("route", sorted(LOW_RANK_ROUTES))
@pytest.mark.parametrize("rank", [0, 2, 5])
def test_low_rank_rotation_is_the_n_by_n_one_whatever_the_rank(route, rank, rng):
    """A tall W with n > 2p is rotated through 2p×2p maps: each route must equal
    R(−ηA)W with the n×n A, also when the part of G outside span(W) has rank < p
    (here 0, 2, or full), which leaves [W G] rank-deficient."""
    n, p = 40, 5
    rotate, step_sizes = LOW_RANK_ROUTES[route]
    retraction = "cayley" if route == "cayley" else "expm"
    w = manifolds.random_stiefel((n, p), seed=7, dtype="float64")
    outside = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, p)) if rank else np.zeros((n, p))
    g = w @ rng.standard_normal((p, p)) + outside
    assert np.linalg.matrix_rank(np.hstack([w, g])) == p + rank
    a = g @ w.T - w @ g.T
    for eta in step_sizes:
        expected = _closed_form_rotation(a, eta, retraction) @ w
        rotated = rotate(tf.constant(w), tf.constant(g), tf.constant(eta, tf.float64))
        np.testing.assert_allclose(rotated.numpy(), expected, atol=1e-12, err_msg=f"η = {eta}")
        np.testing.assert_allclose(manifolds.retract(w, g, eta, retraction).numpy(), expected, atol=1e-12)
        # and the wide rule, which is the tall one on the transposes
        np.testing.assert_allclose(manifolds.retract(w.T, g.T, eta, retraction).numpy(), expected.T, atol=1e-12)


def test_every_degree_of_the_expm_series_is_exact_within_its_threshold(rng):
    """Each degree m of `PHI_DEGREES` (float64) at a step whose ‖X‖₁ is just within
    `taylor_threshold(m + 1)` gives the n×n closed form; `_expm_low_rank` picks
    the series at those steps and the QR route beyond the last threshold."""
    w = manifolds.random_stiefel((40, 5), seed=7, dtype="float64")
    g = rng.standard_normal((40, 5))
    a = g @ w.T - w @ g.T
    x_unit, _, _ = manifolds._low_rank_factors(tf.constant(w), tf.constant(g), tf.constant(1.0, tf.float64))
    norm = np.abs(x_unit.numpy()).sum(axis=0).max()  # ‖X‖₁ is linear in η
    eps = np.finfo(np.float64).eps / 2
    for m in manifolds.PHI_DEGREES[tf.float64]:
        eta = 0.99 * manifolds.taylor_threshold(m + 1, eps) / norm
        expected = scipy.linalg.expm(-eta * a) @ w
        x, y, basis = manifolds._low_rank_factors(tf.constant(w), tf.constant(g), tf.constant(eta, tf.float64))
        series = w + basis.numpy() @ manifolds._phi_series(x, y, m).numpy()
        np.testing.assert_allclose(series, expected, atol=1e-12, err_msg=f"degree {m}")
        routed = manifolds._expm_low_rank(tf.constant(w), tf.constant(g), tf.constant(eta, tf.float64))
        np.testing.assert_allclose(routed.numpy(), expected, atol=1e-12, err_msg=f"degree {m}")
    taken = []
    original = manifolds._expm_low_rank_qr
    try:
        manifolds._expm_low_rank_qr = lambda *args: taken.append(args[2]) or original(*args)
        last = manifolds.taylor_threshold(manifolds.PHI_DEGREES[tf.float64][-1] + 1, eps) / norm
        for eta in (0.5 * last, 1.5 * last):
            manifolds._expm_low_rank(tf.constant(w), tf.constant(g), tf.constant(eta, tf.float64))
    finally:
        manifolds._expm_low_rank_qr = original
    assert [float(t) for t in taken] == [1.5 * last]


@pytest.mark.parametrize("retraction", manifolds.RETRACTIONS)
def test_low_rank_rotation_in_float32_at_the_mnist_projection_size(retraction, rng):
    """784×128 (Ω₁ of the MNIST classifiers): float32 result within 1e-5 of the
    float64 n×n closed form, and on the manifold to 1e-5."""
    w = manifolds.random_stiefel((784, 128), seed=8, dtype="float64")
    g = 0.01 * rng.standard_normal((784, 128))
    expected = _closed_form_rotation(g @ w.T - w @ g.T, 1.0, retraction) @ w
    out = manifolds.retract(tf.constant(w, tf.float32), tf.constant(g, tf.float32), 1.0, retraction).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert _gram_error(out) < 1e-5


def test_many_concurrent_low_rank_steps_in_one_graph(rng):
    """Regression guard, as `test_many_concurrent_expm_in_one_graph`: independent
    tall steps in one `tf.function` on every route (series degrees, QR with
    `expm` inside a branch, Cayley), which Grappler may run side by side."""
    w = manifolds.random_stiefel((30, 4), seed=9)
    gs = rng.standard_normal((8, 30, 4)).astype(np.float32)
    etas = [1e-3, 3e-2, 0.2, 5.0] * 2
    retractions = ["expm"] * 4 + ["cayley"] * 4

    @tf.function
    def many(w, gs):
        return tf.stack([manifolds.retract(w, gs[i], eta, r) for i, (eta, r) in enumerate(zip(etas, retractions))])

    out = many(tf.constant(w), tf.constant(gs)).numpy()
    for got, g, eta, r in zip(out, gs.astype(np.float64), etas, retractions):
        w64 = w.astype(np.float64)
        expected = _closed_form_rotation(g @ w64.T - w64 @ g.T, eta, r) @ w64
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=f"{r}, η = {eta}")


def test_wide_rule_reaches_the_whole_tangent_space():
    # A wide W (p×n) projects onto its row space. The paper's literal n×n...
    # generator G Wᵀ − W Gᵀ is p×p for a wide W and only rotates within that
    # row space; the transpose rule moves the row space itself.
    w = np.eye(2, 4)  # rows span e1, e2
    g = np.zeros((2, 4))
    g[0, 2] = -1.0  # descent direction: move row 1 towards e3
    out = manifolds.retract(w, g, 0.3, "expm").numpy()
    row_space = out.T @ out
    assert row_space[2, 2] > 0.05
    rotated_only = scipy.linalg.expm(-0.3 * (g @ w.T - w @ g.T)) @ w
    np.testing.assert_allclose((rotated_only.T @ rotated_only)[2, 2], 0.0, atol=1e-12)


@pytest.mark.parametrize("retraction", manifolds.RETRACTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_retract_stays_on_manifold_for_thousands_of_float32_steps(shape, retraction, rng):
    w = tf.constant(manifolds.random_stiefel(shape, seed=6))
    target = tf.constant(rng.standard_normal(shape), tf.float32)
    step = tf.function(lambda w: manifolds.retract(w, w - target, 0.05, retraction))
    worst = 0.0
    for _ in range(2000):
        w = step(w)
        worst = max(worst, float(manifolds.orthogonality_error(w)))
    assert worst < 1e-5
    # and the steps did descend ‖W − T‖²: the result beats the start by a margin
    start = manifolds.random_stiefel(shape, seed=6)
    assert np.sum((w.numpy() - target.numpy()) ** 2) < np.sum((start - target.numpy()) ** 2) - 0.5


def test_stiefel_constraint_projects_and_reports(rng):
    m = manifolds.Stiefel()
    w = rng.standard_normal((5, 3)).astype("float32")
    assert not m.contains(w)
    projected = m(w)
    assert m.contains(projected)
    # the documented projection: W's Q factor with diag(R) > 0, not just any point on ST(5, 3)
    _assert_is_the_signed_qr_factor(projected, w, atol=1e-5)
    assert m.get_config() == {"retraction": "expm"}
    with pytest.raises(ValueError, match="retraction"):
        manifolds.Stiefel("polar")


@pytest.mark.parametrize("shape", SHAPES)
def test_faded_polar_correction_is_newton_schulz_near_the_manifold_and_off_far_from_it(shape, rng):
    radius = 0.1
    w = manifolds.random_stiefel(shape, seed=7, dtype="float64")
    drifted = w + 1e-4 * rng.standard_normal(shape)
    corrected = manifolds.polar_correction(tf.constant(drifted), radius).numpy()
    # they differ by ½ (‖D‖_F / radius)² W D, ~1e-9 here
    np.testing.assert_allclose(corrected, manifolds.polar_correction(tf.constant(drifted)).numpy(), atol=1e-8)
    assert _gram_error(drifted) > 1e-5 and _gram_error(corrected) < 1e-7  # error → ~¾ε²
    # an ES member θ + σε: untouched (exactly: W · I), where Newton–Schulz would move it
    member = w + 0.1 * rng.standard_normal(shape)
    np.testing.assert_array_equal(manifolds.polar_correction(tf.constant(member), radius).numpy(), member)
    assert np.abs(manifolds.polar_correction(tf.constant(member)).numpy() - member).max() > 1e-2
    # in between, the gain fades continuously: at 0.9 × the radius a fifth of the step is left
    defect = _gram_defect(w, 0.9 * radius, rng)
    moved = manifolds.polar_correction(tf.constant(defect), radius).numpy() - defect
    full = manifolds.polar_correction(tf.constant(defect)).numpy() - defect
    np.testing.assert_allclose(moved, (1 - 0.9**2) * full, atol=1e-12)


def _gram_defect(w, distance, rng):
    """W stretched along a random symmetric S, W expm(cS) (tall) or expm(cS) W (wide),
    with c found by bisection so that ‖WᵀW − I‖_F (‖WWᵀ − I‖_F) = distance."""
    tall = w.shape[0] >= w.shape[1]
    p = min(w.shape)
    s = rng.standard_normal((p, p))
    s = s + s.T

    def stretched(c):
        m = scipy.linalg.expm(c * s)
        return w @ m if tall else m @ w

    def error(c):
        v = stretched(c)
        return np.linalg.norm((v.T @ v if tall else v @ v.T) - np.eye(p))

    low, high = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if error(mid) < distance else (low, mid)
    return stretched(low)
