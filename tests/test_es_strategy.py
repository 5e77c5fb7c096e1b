"""ES strategy: Riemannian update (Eq. 8 / Theorem 1), gradient estimate, fitness shaping."""

import numpy as np
import pytest
import scipy.stats

from keras_odetoode import manifolds
from keras_odetoode.es import strategy as es

SPECS = (
    es.ParamSpec("omega_1", (6, 4), "stiefel"),  # tall: ST(6, 4)
    es.ParamSpec("omega_2", (3, 5), "stiefel"),  # wide: orthonormal rows
    es.ParamSpec("w0", (4, 4), "stiefel"),  # O(4)
    es.ParamSpec("q", (4, 4), "symmetric"),
    es.ParamSpec("b", (4,), "euclidean"),
)


def initial_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "omega_1": manifolds.random_stiefel((6, 4), seed=1),
        "omega_2": manifolds.random_stiefel((3, 5), seed=2),
        "w0": manifolds.random_stiefel((4, 4), seed=3),
        "q": rng.standard_normal((4, 4)),
        "b": rng.standard_normal(4),
    }


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_riemannian_update_stays_on_manifolds_for_1000_steps(optimizer):
    strategy = es.RiemannianES(SPECS, num_perturbations=4, learning_rate=0.05, optimizer=optimizer)
    state = strategy.init(initial_params())
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(1000):
        _, noise = strategy.ask(state)
        state, _ = strategy.tell(state, noise, rng.standard_normal(4))
        for name in ("omega_1", "omega_2", "w0"):
            # float32, as the policy sees it
            worst = max(worst, float(manifolds.orthogonality_error(state.params[name].astype(np.float32))))
    assert worst < 1e-5
    np.testing.assert_array_equal(state.params["q"], state.params["q"].T)
    assert state.iteration == 1000


def test_stiefel_step_is_theorem_1_exp_map():
    """Ω ← exp(lr (GΩᵀ − ΩGᵀ)) Ω for tall Ω, and the transpose rule for wide Ω."""
    strategy = es.RiemannianES(SPECS, num_perturbations=4, learning_rate=0.01)
    state = strategy.init(initial_params())
    _, noise = strategy.ask(state)
    fitness = np.array([1.0, -2.0, 0.5, 3.0])
    g = strategy.gradient(noise, fitness)
    new, _ = strategy.tell(state, noise, fitness)
    from scipy.linalg import expm

    w, gw = state.params["omega_1"], g["omega_1"]
    np.testing.assert_allclose(new.params["omega_1"], expm(0.01 * (gw @ w.T - w @ gw.T)) @ w, atol=1e-12)
    w, gw = state.params["omega_2"].T, g["omega_2"].T
    np.testing.assert_allclose(new.params["omega_2"].T, expm(0.01 * (gw @ w.T - w @ gw.T)) @ w, atol=1e-12)
    gq = g["q"]
    np.testing.assert_allclose(new.params["q"], state.params["q"] + 0.01 * 0.5 * (gq + gq.T), atol=1e-14)
    np.testing.assert_allclose(new.params["b"], state.params["b"] + 0.01 * g["b"], atol=1e-14)


def test_riemannian_gradient_is_eq_8():
    strategy = es.RiemannianES(SPECS, num_perturbations=4)
    params = initial_params()
    rng = np.random.default_rng(1)
    grads = {s.name: rng.standard_normal(s.shape) for s in SPECS}
    r = strategy.riemannian_gradient(params, grads)
    w, g = params["w0"], grads["w0"]
    np.testing.assert_allclose(r["w0"], g @ w.T - w @ g.T, atol=1e-12)
    np.testing.assert_allclose(r["q"], 0.5 * (grads["q"] + grads["q"].T))
    np.testing.assert_array_equal(r["b"], grads["b"])


def quadratic(centre):
    return lambda theta: -0.5 * np.sum((theta - centre) ** 2, axis=-1)


def test_gradient_estimate_matches_true_gradient_within_monte_carlo_error():
    specs = (es.ParamSpec("x", (10,)),)
    centre = np.linspace(-1.0, 1.0, 10)
    objective = quadratic(centre)
    strategy = es.RiemannianES(specs, num_perturbations=4000, sigma=0.1, fitness_shaping="raw")
    state = strategy.init({"x": np.zeros(10)}, seed=3)
    population, noise = strategy.ask(state)
    fitness = objective(population["x"])
    estimate = strategy.gradient(noise, fitness)["x"]
    # One unbiased estimate per antithetic pair; their spread gives the Monte-Carlo error.
    per_pair = ((fitness[0::2] - fitness[1::2]) / (2 * strategy.sigma))[:, None] * noise
    np.testing.assert_allclose(per_pair.mean(axis=0), estimate, rtol=1e-10)
    standard_error = per_pair.std(axis=0, ddof=1) / np.sqrt(len(per_pair))
    true_gradient = centre - 0.0  # ∇F_σ = ∇F = −(θ − c) for a quadratic
    assert np.all(np.abs(estimate - true_gradient) < 5 * standard_error)
    # and the estimate is informative: relative error small at k = 4000
    assert np.linalg.norm(estimate - true_gradient) < 0.1 * np.linalg.norm(true_gradient)


@pytest.mark.parametrize(
    "shaping,optimizer,lr", [("z_score", "sgd", 0.01), ("raw", "sgd", 0.05), ("centered_ranks", "adam", 0.05)]
)
def test_es_converges_on_quadratic(shaping, optimizer, lr):
    specs = (es.ParamSpec("x", (5,)),)
    centre = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
    objective = quadratic(centre)
    strategy = es.RiemannianES(
        specs, num_perturbations=20, sigma=0.1, learning_rate=lr, fitness_shaping=shaping, optimizer=optimizer
    )
    state = strategy.init({"x": np.zeros(5)})
    for _ in range(400):
        population, noise = strategy.ask(state)
        state, _ = strategy.tell(state, noise, objective(population["x"]))
    assert np.linalg.norm(state.params["x"] - centre) < 0.1 * np.linalg.norm(centre)


def test_es_converges_on_stiefel_to_polar_factor():
    """max tr(CᵀΩ) over ST(5, 3) is attained at the polar factor of C (here `optimum`)."""
    optimum = manifolds.random_stiefel((5, 3), seed=4).astype(np.float64)
    rotation = manifolds.random_stiefel((3, 3), seed=5).astype(np.float64)
    c = optimum @ rotation @ np.diag([3.0, 2.5, 2.0]) @ rotation.T
    specs = (es.ParamSpec("omega", (5, 3), "stiefel"),)
    strategy = es.RiemannianES(specs, num_perturbations=200, sigma=0.05, learning_rate=0.02, fitness_shaping="raw")
    state = strategy.init({"omega": manifolds.random_stiefel((5, 3), seed=1)})
    start = np.abs(state.params["omega"] - optimum).max()
    for _ in range(300):
        population, noise = strategy.ask(state)
        state, _ = strategy.tell(state, noise, np.einsum("ij,kij->k", c, population["omega"]))
    # The ES noise floor at lr = 0.02, k = 200 is ≈ 0.03 (measured); the start is ≈ 1 away.
    assert start > 0.5
    assert np.abs(state.params["omega"] - optimum).max() < 0.08
    assert float(manifolds.orthogonality_error(state.params["omega"])) < 1e-10


def test_ask_is_a_function_of_seed_and_iteration_and_antithetic():
    strategy = es.RiemannianES(SPECS, num_perturbations=6, sigma=0.1)
    state = strategy.init(initial_params(), seed=7)
    a, noise_a = strategy.ask(state)
    b, noise_b = strategy.ask(state)
    np.testing.assert_array_equal(noise_a, noise_b)
    flat = es.flatten(state.params, SPECS)
    members = np.stack([es.flatten({k: v[m] for k, v in a.items()}, SPECS) for m in range(6)])
    np.testing.assert_allclose(members[0::2] + members[1::2], np.broadcast_to(2 * flat, (3, flat.size)), atol=1e-12)
    np.testing.assert_allclose(members[0::2] - flat[None], 0.1 * noise_a, atol=1e-12)
    other = strategy.init(initial_params(), seed=8)
    assert not np.array_equal(strategy.ask(other)[1], noise_a)


def test_fitness_shaping_functions():
    f = np.array([3.0, -1.0, 10.0, 0.0])
    z = es.z_score(f)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    np.testing.assert_allclose(es.centered_ranks(f), [1 / 6, -0.5, 0.5, -1 / 6])
    np.testing.assert_array_equal(es.z_score(np.ones(4)), np.zeros(4))
    assert set(es.FITNESS_SHAPINGS) >= {"raw", "z_score", "centered_ranks"}
    for fn in es.FITNESS_SHAPINGS.values():  # one signature: (k,) → (k,), order-preserving
        out = fn(f)
        assert out.shape == f.shape
        assert list(np.argsort(out)) == list(np.argsort(f))
    with pytest.raises(ValueError, match="Unknown fitness shaping"):
        es.get_fitness_shaping("nope")


def test_centered_ranks_average_ties_so_equal_returns_give_no_step():
    np.testing.assert_allclose(es.centered_ranks([2.0, 1.0, 2.0, 0.0]), [1 / 3, -1 / 6, 1 / 3, -1 / 2])
    f = np.random.default_rng(0).integers(0, 4, 9).astype(float)  # many ties
    np.testing.assert_allclose(es.centered_ranks(f), (scipy.stats.rankdata(f) - 1) / 8 - 0.5, atol=1e-15)
    strategy = es.RiemannianES(SPECS, num_perturbations=6, fitness_shaping="centered_ranks", antithetic=False)
    state = strategy.init(initial_params())
    _, noise = strategy.ask(state)
    for g in strategy.gradient(noise, np.full(6, 3.0)).values():
        np.testing.assert_array_equal(g, 0.0)
    new, _ = strategy.tell(state, noise, np.full(6, 3.0))
    np.testing.assert_array_equal(new.params["b"], state.params["b"])


@pytest.mark.parametrize("shaping", sorted(es.FITNESS_SHAPINGS))
def test_nonfinite_fitness_ranks_strictly_worst(shaping):
    fitness = np.array([1.0, np.nan, -5.0, np.inf, 2.0, -np.inf])
    clean, bad = es.sanitize_fitness(fitness)
    worst = -5.0 - np.std([1.0, -5.0, 2.0])  # the documented value: one std below the worst finite return
    np.testing.assert_array_equal(clean, [1.0, worst, -5.0, worst, 2.0, worst])
    np.testing.assert_array_equal(bad, [False, True, False, True, False, True])
    shaped = es.get_fitness_shaping(shaping)(clean)
    assert shaped[bad].max() < shaped[~bad].min() and np.ptp(shaped[bad]) == 0
    if shaping == "centered_ranks":  # NaN/inf members share ranks 0-2 (average 1), below −5 (rank 3)
        np.testing.assert_allclose(shaped, np.array([4, 1, 3, 1, 5, 1]) / 5 - 0.5)
    np.testing.assert_array_equal(es.sanitize_fitness([np.nan, 3.0, 3.0])[0], [2.0, 3.0, 3.0])  # equal: minus 1
    np.testing.assert_array_equal(es.sanitize_fitness([np.nan, np.inf])[0], [0.0, 0.0])

    # The update uses these weights: 1/(σk) Σᵢ (w₂ᵢ − w₂ᵢ₊₁) εᵢ.
    strategy = es.RiemannianES((es.ParamSpec("x", (3,)),), num_perturbations=6, fitness_shaping=shaping)
    state = strategy.init({"x": np.zeros(3)})
    _, noise = strategy.ask(state)
    expected = (shaped[0::2] - shaped[1::2]) @ noise / (strategy.sigma * 6)
    np.testing.assert_allclose(strategy.gradient(noise, fitness)["x"], expected, rtol=1e-12)
    new, info = strategy.tell(state, noise, fitness)
    assert info["num_nonfinite"] == 3
    np.testing.assert_allclose(new.params["x"], strategy.learning_rate * expected, rtol=1e-12)


def test_argument_errors_say_what_was_received():
    with pytest.raises(ValueError, match="must be even.*Received: num_perturbations=5"):
        es.RiemannianES(SPECS, num_perturbations=5)
    with pytest.raises(ValueError, match="Received: optimizer='rmsprop'"):
        es.RiemannianES(SPECS, optimizer="rmsprop")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        strategy = es.RiemannianES((es.ParamSpec("x", (3,)),), num_perturbations=4)
        strategy.gradient(np.zeros((2, 3)), np.zeros(3))


def test_specs_from_policy_variables():
    from keras_odetoode.es import policies, rollouts

    policy = rollouts.PopulationPolicy(policies.build_policy("odetoode", 8, 2, seed=0))
    kinds = {s.name: s.kind for s in policy.specs}
    assert kinds == {
        "omega_1/kernel": "stiefel",
        "core/bias": "euclidean",
        "core/flow.w0": "stiefel",
        "core/flow.q_matrix": "symmetric",
        "core/flow.n_matrix": "symmetric",
        "omega_2/kernel": "stiefel",
    }


# --------------------------------------------------------------------------- top directions (ARS V2-t)

# Five antithetic pairs (F⁺ᵢ, F⁻ᵢ). Ranked by max(F⁺, F⁻): pairs 2 (7), 1 (6), 0 (5), 4 (4), 3 (1);
# ranked by |F⁺ − F⁻| it would be 0, 2, 4, ...: the two rules keep different pairs.
PAIRED_RETURNS = np.array([5.0, -5.0, 6.0, 5.5, -1.0, 7.0, 0.0, 1.0, 2.0, 4.0])


def ars_v2t_step(returns, noise, b, sigma, lr):
    """Mania et al. 2018, Alg. 2 (V2-t), line 7, in numpy: α/(bσ_R) Σ_{top b} (r⁺ − r⁻) δ.

    ν = σ, and α = lr/(2σ) makes it the step lr·G of `RiemannianES`.
    """
    plus, minus = returns[0::2], returns[1::2]
    order = sorted(range(len(plus)), key=lambda i: -max(plus[i], minus[i]))[:b]
    sigma_r = np.std(np.concatenate([plus[order], minus[order]]))
    alpha = lr / (2 * sigma)
    return alpha / (b * sigma_r) * sum((plus[i] - minus[i]) * noise[i] for i in order)


@pytest.mark.parametrize("b", [1, 2, 3])
def test_top_directions_is_ars_v2t(b):
    strategy = es.RiemannianES(SPECS, num_perturbations=10, sigma=0.1, learning_rate=0.05, top_directions=b)
    state = strategy.init(initial_params(), seed=3)
    _, noise = strategy.ask(state)
    step = es.unflatten(ars_v2t_step(PAIRED_RETURNS, noise, b, 0.1, 0.05), SPECS)
    np.testing.assert_array_equal(strategy.top_pairs(PAIRED_RETURNS), np.sort([2, 1, 0][:b]))
    new, _ = strategy.tell(state, noise, PAIRED_RETURNS)
    # Euclidean parameters take ARS's step; symmetric ones its symmetric part.
    np.testing.assert_allclose(new.params["b"], state.params["b"] + step["b"], rtol=1e-12, atol=1e-14)
    q = step["q"]
    np.testing.assert_allclose(new.params["q"], state.params["q"] + 0.5 * (q + q.T), rtol=1e-12, atol=1e-14)
    # Stiefel parameters take the same G = step / lr along the manifold (Theorem 1).
    from scipy.linalg import expm

    w, g = state.params["omega_1"], step["omega_1"] / 0.05
    np.testing.assert_allclose(new.params["omega_1"], expm(0.05 * (g @ w.T - w @ g.T)) @ w, atol=1e-12)


@pytest.mark.parametrize("shaping", sorted(es.FITNESS_SHAPINGS))
def test_every_pair_as_top_directions_is_the_papers_update_bit_for_bit(shaping):
    fitness = np.array([3.0, -1.0, np.nan, 0.5, 2.0, 2.0, -np.inf, 4.0, 1.0, 0.0])
    kwargs = dict(num_perturbations=10, fitness_shaping=shaping, learning_rate=0.05)
    paper, every_pair = es.RiemannianES(SPECS, **kwargs), es.RiemannianES(SPECS, top_directions=5, **kwargs)
    state = paper.init(initial_params())
    _, noise = paper.ask(state)
    for name, g in paper.gradient(noise, fitness).items():
        np.testing.assert_array_equal(every_pair.gradient(noise, fitness)[name], g)
    for name, value in paper.tell(state, noise, fitness)[0].params.items():
        np.testing.assert_array_equal(every_pair.tell(state, noise, fitness)[0].params[name], value)


def test_top_directions_shape_the_selected_returns_only():
    """z-scores over the 2b kept returns (σ_R of ARS), not over all k: 1/(2bσ) Σ (z⁺ − z⁻) εᵢ."""
    strategy = es.RiemannianES((es.ParamSpec("x", (3,)),), num_perturbations=10, top_directions=2)
    noise = strategy.noise(strategy.init({"x": np.zeros(3)}))
    kept = PAIRED_RETURNS[[2, 3, 4, 5]]  # pairs 1 and 2, in index order
    z = (kept - kept.mean()) / kept.std()
    expected = (z[0::2] - z[1::2]) @ noise[[1, 2]] / (strategy.sigma * 4)
    np.testing.assert_allclose(strategy.gradient(noise, PAIRED_RETURNS)["x"], expected, rtol=1e-14)


def test_top_directions_ties_go_to_the_lower_pair_and_nonfinite_members_rank_worst():
    strategy = es.RiemannianES((es.ParamSpec("x", (2,)),), num_perturbations=8, top_directions=2)
    np.testing.assert_array_equal(strategy.top_pairs(np.array([1.0, 3.0, 3.0, 0.0, 2.0, 3.0, 0.0, 0.0])), [0, 1])
    clean, _ = es.sanitize_fitness([np.nan, np.nan, 1.0, 0.0, np.inf, 5.0, -1.0, -2.0])
    np.testing.assert_array_equal(strategy.top_pairs(clean), [1, 2])  # the pair with +inf keeps its finite 5


# --------------------------------------------------------------------------- learning-rate schedules


@pytest.mark.parametrize("t", [0, 1, 5, 9, 10, 15])
def test_learning_rate_schedules_follow_their_formulas(t):
    lr, final, horizon = 0.02, 0.002, 10
    p = min(t, horizon) / horizon
    expected = {
        "constant": lr,
        "linear": final + (lr - final) * (1 - p),
        "cosine": final + 0.5 * (lr - final) * (1 + np.cos(np.pi * p)),
    }
    for schedule, value in expected.items():
        strategy = es.RiemannianES(
            SPECS, num_perturbations=4, learning_rate=lr, lr_schedule=schedule, lr_final=final, lr_decay_iterations=10
        )
        assert strategy.learning_rate_at(t) == pytest.approx(value, rel=1e-15, abs=1e-18)
    assert es.scheduled_learning_rate("linear", 5, lr, final, horizon) == pytest.approx(0.011, rel=1e-14)
    assert es.scheduled_learning_rate("cosine", 5, lr, final, horizon) == pytest.approx(0.011, rel=1e-14)
    assert es.scheduled_learning_rate("linear", 10, lr, 0.0, horizon) == 0.0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_update_t_takes_the_scheduled_step_size(optimizer):
    from scipy.linalg import expm

    lr = 0.05
    strategy = es.RiemannianES(
        SPECS, num_perturbations=6, learning_rate=lr, optimizer=optimizer, lr_schedule="cosine", lr_decay_iterations=4
    )
    state = strategy.init(initial_params())
    rng = np.random.default_rng(2)
    m = v = np.zeros(4)
    traces = None
    for t in range(6):
        _, noise = strategy.ask(state)
        fitness = rng.standard_normal(6)
        g = strategy.gradient(noise, fitness)
        new, info = strategy.tell(state, noise, fitness)
        step = 0.5 * lr * (1 + np.cos(np.pi * min(t, 4) / 4))
        assert info["learning_rate"] == pytest.approx(step, rel=1e-15, abs=1e-18)
        direction = g["b"]
        if optimizer == "adam":
            m, v = 0.9 * m + 0.1 * direction, 0.999 * v + 0.001 * direction**2
            direction = (m / (1 - 0.9 ** (t + 1))) / (np.sqrt(v / (1 - 0.999 ** (t + 1))) + 1e-8)
        np.testing.assert_allclose(new.params["b"], state.params["b"] + step * direction, rtol=1e-13, atol=1e-16)
        if optimizer == "sgd":
            w, gw = state.params["w0"], g["w0"]
            np.testing.assert_allclose(new.params["w0"], expm(step * (gw @ w.T - w @ gw.T)) @ w, atol=1e-12)
        state = new
        # The step size is a tensor argument: a new value does not retrace the retraction.
        if t == 0:
            traces = es._retract.experimental_get_tracing_count()
    assert es._retract.experimental_get_tracing_count() == traces
    assert info["learning_rate"] == 0.0  # from t = T on: lr_final


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(top_directions=0), r"top_directions must be an integer ≥ 1 or None\. Received: top_directions=0"),
        (dict(top_directions=-3), r"top_directions must be an integer ≥ 1 or None\. Received: top_directions=-3"),
        (dict(top_directions=True), r"Received: top_directions=True"),
        (
            dict(top_directions=4),
            r"top_directions must be ≤ num_perturbations / 2 = 3, the number of antithetic pairs \(one direction εᵢ "
            r"each\)\. Received: top_directions=4, num_perturbations=6",
        ),
        (
            dict(top_directions=2, antithetic=False),
            r"needs antithetic sampling\. Received: top_directions=2, antithetic=False",
        ),
        (dict(lr_schedule="step"), r"Unknown lr_schedule\. Expected one of \('constant', 'linear', 'cosine'\)"),
        (dict(lr_schedule="cosine"), r"lr_schedule='cosine' decays over .* Received: lr_decay_iterations=None"),
        (dict(lr_schedule="linear", lr_decay_iterations=0), r"Received: lr_decay_iterations=0"),
        (dict(lr_final=-0.1), r"lr_final must be a number ≥ 0 and ≤ 0\.01\. Received: lr_final=-0\.1"),
        (dict(lr_final=0.5), r"Received: lr_final=0\.5"),
    ],
)
def test_option_errors_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        es.RiemannianES(SPECS, num_perturbations=6, **kwargs)
