"""Evolution strategies with a Riemannian update (paper §4.2, Eqs. 8–9, Theorem 1).

Ask/tell with an explicit state, as in evosax:

    strategy = RiemannianES(specs, num_perturbations=200, sigma=0.1, learning_rate=0.01)
    state = strategy.init(initial_params, seed=0)
    population, noise = strategy.ask(state)        # θ ± σεᵢ, stacked on axis 0
    fitness = evaluate(population)                  # (k,) episode returns
    state, info = strategy.tell(state, noise, fitness)

Everything is numpy in float64: the ES vector is small (hundreds to a few
thousand numbers), float64 keeps Ω₁, Ω₂, W₀ on their manifolds to ~1e-15 over
any number of updates, and results do not depend on TensorFlow's threading.
Perturbations are cast to the policy's float32 only when they are evaluated.

Noise is a pure function of (seed, iteration): `ask` and `tell` need no hidden
random state, so a run resumed from a checkpoint continues bit-identically.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_odetoode import manifolds
from keras_odetoode.checks import check_choice, check_integer, check_positive, check_range

PARAM_KINDS = ("euclidean", "symmetric", "stiefel")
OPTIMIZERS = ("sgd", "adam")


# --------------------------------------------------------------------------- fitness shaping
# Each shaping is a pure function (fitness: float64 (k,)) -> float64 (k,), larger is better.

FITNESS_SHAPINGS = {}


def register_fitness_shaping(name):
    """Decorator adding a fitness-shaping function to `FITNESS_SHAPINGS`."""

    def decorator(fn):
        FITNESS_SHAPINGS[name] = fn
        return fn

    return decorator


@register_fitness_shaping("raw")
def raw_fitness(fitness):
    """The returns themselves: the unbiased Monte-Carlo estimator of ∇F_σ (§4.2)."""
    return np.asarray(fitness, np.float64).copy()


@register_fitness_shaping("z_score")
def z_score(fitness):
    """(F − mean F) / std F; all zeros when every member scored the same."""
    fitness = np.asarray(fitness, np.float64)
    std = fitness.std()
    if not std > 0:
        return np.zeros_like(fitness)
    return (fitness - fitness.mean()) / std


@register_fitness_shaping("centered_ranks")
def centered_ranks(fitness):
    """Ranks mapped linearly onto [−0.5, 0.5] (Salimans et al. 2017).

    Tied members share their average rank (`scipy.stats.rankdata(method="average")`),
    so equal returns give equal weights and an all-equal population a zero step.
    """
    fitness = np.asarray(fitness, np.float64)
    if fitness.shape[0] < 2:
        return np.zeros_like(fitness)
    ordered = np.sort(fitness)
    # 0-based average rank: the mean of the first and last positions of the value's tie group.
    ranks = 0.5 * (np.searchsorted(ordered, fitness, "left") + np.searchsorted(ordered, fitness, "right") - 1)
    return ranks / (fitness.shape[0] - 1) - 0.5


def get_fitness_shaping(name):
    """The shaping function registered as `name`."""
    if name not in FITNESS_SHAPINGS:
        raise ValueError(
            f"Unknown fitness shaping. Expected one of {tuple(FITNESS_SHAPINGS)}. Received: fitness_shaping={name!r}"
        )
    return FITNESS_SHAPINGS[name]


# --------------------------------------------------------------------------- learning-rate schedules
# Each schedule maps the fraction p ∈ [0, 1] of the decay done to the fraction of the way
# from lr_final to lr that the step size still is: lr_t = lr_final + (lr − lr_final)·f(p).

LR_SCHEDULES = {
    "constant": lambda p: 1.0,
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + np.cos(np.pi * p)),
}


def scheduled_learning_rate(schedule, iteration, learning_rate, lr_final=0.0, decay_iterations=None):
    """The step size of update `iteration` (counted from 0) under `schedule`.

    With p = min(t, T)/T for t = `iteration` and T = `decay_iterations`:

    * "constant": lr (the paper's);
    * "linear": lr_final + (lr − lr_final)(1 − p);
    * "cosine": lr_final + ½(lr − lr_final)(1 + cos πp).

    The first update (t = 0) takes lr, update T − 1 the last decayed value above
    lr_final, and every update from t = T on takes lr_final.
    """
    check_choice("lr_schedule", schedule, tuple(LR_SCHEDULES))
    if schedule == "constant":
        return float(learning_rate)  # lr_final and T play no part
    fraction = LR_SCHEDULES[schedule](min(iteration, decay_iterations) / decay_iterations)
    return float(lr_final + (learning_rate - lr_final) * fraction)


def sanitize_fitness(fitness):
    """Replace NaN/±inf returns by a value strictly below every finite one.

    The value is the worst finite return minus the finite returns' standard
    deviation (minus 1 if they are all equal), so such members rank strictly
    worst, tied among themselves, under every shaping; all zeros if no return
    is finite.

    Returns:
        (clean fitness float64 (k,), boolean mask of the members that were replaced).
    """
    fitness = np.asarray(fitness, np.float64)
    bad = ~np.isfinite(fitness)
    if not bad.any():
        return fitness.copy(), bad
    if bad.all():
        return np.zeros_like(fitness), bad
    finite = fitness[~bad]
    worst = min(finite.min() - (finite.std() or 1.0), np.nextafter(finite.min(), -np.inf))  # strictly, if std ≪ |min|
    return np.where(bad, worst, fitness), bad


# --------------------------------------------------------------------------- parameter layout


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One policy weight in the ES vector: its name, shape and geometry."""

    name: str
    shape: tuple
    kind: str = "euclidean"

    def __post_init__(self):
        if self.kind not in PARAM_KINDS:
            raise ValueError(
                f"Unknown parameter kind. Expected one of {PARAM_KINDS}. Received: kind={self.kind!r} for {self.name!r}"
            )
        if self.kind != "euclidean" and len(self.shape) != 2:
            raise ValueError(
                f"A {self.kind} parameter must be a matrix. Received: {self.name!r} with shape {self.shape}"
            )
        if self.kind == "symmetric" and self.shape[0] != self.shape[1]:
            raise ValueError(f"A symmetric parameter must be square. Received: {self.name!r} with shape {self.shape}")

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))


def kind_of(variable):
    """ "stiefel", "symmetric" or "euclidean" from a Keras variable's constraint."""
    if manifolds.manifold_of(variable) is not None:
        return "stiefel"
    if isinstance(getattr(variable, "constraint", None), manifolds.Symmetric):
        return "symmetric"
    return "euclidean"


def specs_from_variables(variables):
    """`ParamSpec`s for a {name: keras.Variable} mapping (e.g. a layer's `param_dict()`)."""
    return tuple(ParamSpec(name, tuple(int(s) for s in v.shape), kind_of(v)) for name, v in variables.items())


def flatten(params, specs):
    """{name: array} → one float64 vector in `specs` order."""
    return np.concatenate([np.asarray(params[s.name], np.float64).reshape(-1) for s in specs])


def unflatten(vector, specs):
    """float64 (..., n) → {name: (..., *shape)}; leading axes are kept."""
    vector = np.asarray(vector)
    lead = vector.shape[:-1]
    out, offset = {}, 0
    for s in specs:
        out[s.name] = vector[..., offset : offset + s.size].reshape(lead + s.shape)
        offset += s.size
    return out


# --------------------------------------------------------------------------- state and strategy


def _check_top_directions(top_directions, num_perturbations, antithetic):
    """`top_directions` as an int (or None) if 1 ≤ b ≤ k/2 with antithetic sampling, else a ValueError."""
    top_directions = check_integer("top_directions", top_directions, 1, allow_none=True)
    if top_directions is None:
        return None
    if not antithetic:
        raise ValueError(
            "top_directions keeps the best antithetic pairs, so it needs antithetic sampling. "
            f"Received: top_directions={top_directions}, antithetic=False"
        )
    pairs = num_perturbations // 2
    if top_directions > pairs:
        raise ValueError(
            f"top_directions must be ≤ num_perturbations / 2 = {pairs}, the number of antithetic pairs "
            f"(one direction εᵢ each). Received: top_directions={top_directions}, "
            f"num_perturbations={num_perturbations}"
        )
    return top_directions


# `manifolds.retract` compiled once per (shape, retraction), the step size a tensor
# argument: eager expm costs milliseconds, the graph a few tens of microseconds.
_retract = tf.function(manifolds.retract, autograph=False)


@dataclasses.dataclass(frozen=True)
class ESState:
    """Everything that changes between ES iterations (float64 numpy arrays).

    Attributes:
        params: {name: array}, the centre θ of the search distribution.
        iteration: number of `tell`s so far; indexes the noise of the next `ask`.
        seed: the run's seed; the noise of iteration t is a function of (seed, t).
        adam_m, adam_v: Adam moments by name (empty when the optimizer is "sgd").
    """

    params: dict
    iteration: int
    seed: int
    adam_m: dict = dataclasses.field(default_factory=dict)
    adam_v: dict = dataclasses.field(default_factory=dict)


class RiemannianES:
    """Gaussian-smoothing ES (§4.2) with the Riemannian update of Eq. 8 / Theorem 1.

    The gradient of F_σ(θ) = E F(θ + σε) is estimated from k perturbations,
    then each parameter is moved according to its geometry:

    * Stiefel / O(d) (Ω₁, Ω₂, W₀): exp-map step along the skew generator
      (`manifolds.retract` with −G for ascent; tall and wide shapes, full tangent space);
    * symmetric (Q, N): Euclidean step along ½(G + Gᵀ);
    * everything else: Euclidean step θ ← θ + lr·G.

    Two options go beyond the paper; their defaults are the paper's update.

    * **Top directions** (`top_directions=b`, ARS V2-t; Mania et al. 2018, Alg. 2):
      only the b antithetic pairs with the largest max(F⁺ᵢ, F⁻ᵢ) enter the estimate
      (ties to the lower index), the fitness shaping sees only their 2b returns, and
      G = 1/(2bσ) Σ_{i∈top b} (w⁺ᵢ − w⁻ᵢ) εᵢ: the paper's estimator over the b pairs.
      With "z_score", w⁺ᵢ − w⁻ᵢ = (F⁺ᵢ − F⁻ᵢ)/σ_R, σ_R the std (ddof 0) of the 2b
      selected returns, so the Euclidean step lr·G is ARS's
      θ ← θ + α/(bσ_R) Σ (F⁺ᵢ − F⁻ᵢ) εᵢ with ν = σ and α = lr/(2σ); the manifold
      parameters take the same G along their manifolds, as above. b = k/2 (every
      pair) is the paper's estimator, bit for bit, with every shaping.
    * **A learning-rate schedule** (`lr_schedule`): update t takes the step size
      `scheduled_learning_rate(lr_schedule, t, lr, lr_final, lr_decay_iterations)`,
      for every parameter (the exp-map step of the manifold ones too) and with
      either optimizer (Adam's direction is scaled by it).

    Args:
        specs: `ParamSpec`s of the policy (see `specs_from_variables`).
        num_perturbations: k, members per iteration (200 in the paper); even when antithetic.
        sigma: σ, the standard deviation of the perturbations (0.1).
        learning_rate: lr (0.01); with a schedule, the step size of the first update.
        antithetic: evaluate θ + σε and θ − σε as a pair (members 2i and 2i+1).
        fitness_shaping: a name in `FITNESS_SHAPINGS` ("z_score", "centered_ranks", "raw").
        optimizer: "sgd" (the paper's) or "adam" applied to the ES gradient estimate.
        beta_1, beta_2, epsilon: Adam's constants.
        retraction: "expm" (the paper's exact exponential map) or "cayley".
        top_directions: b, the antithetic pairs the estimate keeps, 1 ≤ b ≤ k/2 (a pair
            is one direction εᵢ, and there are k/2 of them); None keeps all (the paper).
            Needs antithetic sampling.
        lr_schedule: a name in `LR_SCHEDULES`: "constant" (the paper's), "linear" or "cosine".
        lr_final: the step size the schedule decays to, 0 ≤ lr_final ≤ lr (0).
        lr_decay_iterations: T, the updates over which the schedule decays (required
            unless the schedule is constant).
    """

    def __init__(
        self,
        specs,
        num_perturbations=200,
        sigma=0.1,
        learning_rate=0.01,
        antithetic=True,
        fitness_shaping="z_score",
        optimizer="sgd",
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        retraction="expm",
        top_directions=None,
        lr_schedule="constant",
        lr_final=0.0,
        lr_decay_iterations=None,
    ):
        self.specs = tuple(specs)
        if not self.specs:
            raise ValueError("The policy has no parameters to optimize. Received: specs=()")
        check_integer("num_perturbations", num_perturbations, 2)
        if antithetic and num_perturbations % 2:
            raise ValueError(
                "Antithetic sampling evaluates perturbations in ± pairs, so num_perturbations "
                f"must be even. Received: num_perturbations={num_perturbations}"
            )
        check_positive("sigma", sigma)
        check_positive("learning_rate", learning_rate)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        self.top_directions = _check_top_directions(top_directions, num_perturbations, antithetic)
        check_choice("lr_schedule", lr_schedule, tuple(LR_SCHEDULES))
        check_range("lr_final", lr_final, 0, learning_rate)
        if lr_schedule != "constant" and lr_decay_iterations is None:
            raise ValueError(
                f"lr_schedule={lr_schedule!r} decays over lr_decay_iterations updates, which must be given. "
                "Received: lr_decay_iterations=None. Expected: an integer ≥ 1"
            )
        self.num_perturbations = int(num_perturbations)
        self.sigma = float(sigma)
        self.learning_rate = float(learning_rate)
        self.antithetic = bool(antithetic)
        self.fitness_shaping = fitness_shaping
        self._shape = get_fitness_shaping(fitness_shaping)
        self.optimizer = optimizer
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.retraction = manifolds.check_retraction(retraction)
        self.lr_schedule = lr_schedule
        self.lr_final = float(lr_final)
        self.lr_decay_iterations = check_integer("lr_decay_iterations", lr_decay_iterations, 1, allow_none=True)
        self.num_params = sum(s.size for s in self.specs)

    # ------------------------------------------------------------------ ask/tell

    def init(self, params, seed=0):
        """The initial state from {name: array} (e.g. the policy's initial weights)."""
        missing = [s.name for s in self.specs if s.name not in params]
        if missing:
            raise ValueError(f"Initial params lack {missing}. Expected keys: {[s.name for s in self.specs]}")
        centre = {}
        for s in self.specs:
            value = np.array(params[s.name], np.float64)
            if value.shape != s.shape:
                raise ValueError(f"Parameter {s.name!r} must have shape {s.shape}. Received: shape {value.shape}")
            if s.kind == "stiefel":
                value = manifolds.qr_orthonormalize(tf.constant(value)).numpy()  # exact start in float64
            elif s.kind == "symmetric":
                value = 0.5 * (value + value.T)
            centre[s.name] = value
        moments = {s.name: np.zeros(s.shape) for s in self.specs} if self.optimizer == "adam" else {}
        return ESState(centre, 0, int(seed), moments, {k: v.copy() for k, v in moments.items()})

    def noise(self, state):
        """ε for iteration `state.iteration`: float64 (k/2 or k, n), a function of (seed, iteration)."""
        rows = self.num_perturbations // 2 if self.antithetic else self.num_perturbations
        rng = np.random.default_rng([state.seed, 0, state.iteration])
        return rng.standard_normal((rows, self.num_params))

    def signs(self):
        """±1 of each member: members 2i, 2i+1 are θ + σεᵢ, θ − σεᵢ when antithetic."""
        if self.antithetic:
            return np.tile([1.0, -1.0], self.num_perturbations // 2)
        return np.ones(self.num_perturbations)

    def ask(self, state):
        """The k perturbed parameter sets of this iteration.

        Returns:
            (population, noise): population {name: float64 (k, *shape)} with member
            m = θ + σ·sign_m·ε_{m//2} (antithetic) or θ + σε_m; noise as `noise(state)`.
        """
        noise = self.noise(state)
        rows = np.repeat(noise, 2, axis=0) if self.antithetic else noise
        centre = flatten(state.params, self.specs)
        population = centre[None, :] + self.sigma * self.signs()[:, None] * rows
        return unflatten(population, self.specs), noise

    def top_pairs(self, fitness):
        """Indices of the antithetic pairs the estimate keeps, ascending.

        All k/2 pairs without `top_directions`; else the b pairs with the largest
        max(F⁺ᵢ, F⁻ᵢ) of the (sanitized) returns, ties going to the lower index.
        """
        best = np.maximum(fitness[0::2], fitness[1::2])
        if self.top_directions is None:
            return np.arange(best.shape[0])
        return np.sort(np.argsort(-best, kind="stable")[: self.top_directions])

    def gradient(self, noise, fitness):
        """ES estimate of ∇F_σ(θ) (§4.2) from shaped fitness, as {name: array}.

        Antithetic: 1/(σk) Σᵢ (w⁺ᵢ − w⁻ᵢ) εᵢ, or 1/(2bσ) Σ over the b top pairs
        (shaped among their 2b returns) with `top_directions`; otherwise
        1/(σk) Σ_m w_m ε_m. With `fitness_shaping="raw"` (and all pairs) both are
        unbiased for ∇F_σ.
        """
        fitness = np.asarray(fitness, np.float64)
        if fitness.shape != (self.num_perturbations,):
            raise ValueError(
                f"fitness must have shape ({self.num_perturbations},), one return per member. "
                f"Received: shape {fitness.shape}"
            )
        clean = sanitize_fitness(fitness)[0]
        if not self.antithetic:
            flat = self._shape(clean) @ noise / (self.sigma * self.num_perturbations)
            return unflatten(flat, self.specs)
        pairs = self.top_pairs(clean)
        members = np.stack([2 * pairs, 2 * pairs + 1], axis=1).reshape(-1)
        shaped = self._shape(clean[members])
        flat = (shaped[0::2] - shaped[1::2]) @ noise[pairs] / (self.sigma * members.shape[0])
        return unflatten(flat, self.specs)

    def learning_rate_at(self, iteration):
        """The step size of update `iteration` (counted from 0; `scheduled_learning_rate`)."""
        return scheduled_learning_rate(
            self.lr_schedule, iteration, self.learning_rate, self.lr_final, self.lr_decay_iterations
        )

    def riemannian_gradient(self, params, gradient):
        """Eq. 8: skew generators G Ωᵀ − Ω Gᵀ (tall; Gᵀ Ω − Ωᵀ G wide) for Stiefel
        parameters, ½(G + Gᵀ) for symmetric ones, G for the rest."""
        out = {}
        for s in self.specs:
            g = gradient[s.name]
            if s.kind == "stiefel":
                out[s.name] = manifolds.skew_generator(
                    tf.constant(params[s.name], tf.float64), tf.constant(g, tf.float64)
                ).numpy()
            elif s.kind == "symmetric":
                out[s.name] = 0.5 * (g + g.T)
            else:
                out[s.name] = g
        return out

    def tell(self, state, noise, fitness):
        """One ascent step from the members' returns.

        Non-finite returns rank below every finite one (see `sanitize_fitness`).

        Returns:
            (new state, info) with info {"gradient_norm", "num_nonfinite", "learning_rate"}.
        """
        gradient = self.gradient(noise, fitness)
        learning_rate = self.learning_rate_at(state.iteration)
        # A tensor, not a Python float: one trace of the retraction for every step size.
        step_size = tf.constant(learning_rate, tf.float64)
        t = state.iteration + 1
        params, adam_m, adam_v = {}, {}, {}
        norm2 = 0.0
        for s in self.specs:
            g = gradient[s.name]
            if s.kind == "symmetric":
                g = 0.5 * (g + g.T)
            norm2 += float(np.sum(g * g))
            if self.optimizer == "adam":
                m = self.beta_1 * state.adam_m[s.name] + (1.0 - self.beta_1) * g
                v = self.beta_2 * state.adam_v[s.name] + (1.0 - self.beta_2) * g * g
                adam_m[s.name], adam_v[s.name] = m, v
                g = (m / (1.0 - self.beta_1**t)) / (np.sqrt(v / (1.0 - self.beta_2**t)) + self.epsilon)
            w = state.params[s.name]
            if s.kind == "stiefel":
                # Theorem 1: Ω ← exp(lr (G Ωᵀ − Ω Gᵀ)) Ω, i.e. a descent step on −G.
                params[s.name] = _retract(tf.constant(w), tf.constant(-g), step_size, self.retraction).numpy()
            else:
                params[s.name] = w + learning_rate * g
        info = {
            "gradient_norm": float(np.sqrt(norm2)),
            "num_nonfinite": int(sanitize_fitness(fitness)[1].sum()),
            "learning_rate": learning_rate,
        }
        return ESState(params, t, state.seed, adam_m, adam_v), info

    def get_config(self):
        return {
            "num_perturbations": self.num_perturbations,
            "sigma": self.sigma,
            "learning_rate": self.learning_rate,
            "antithetic": self.antithetic,
            "fitness_shaping": self.fitness_shaping,
            "optimizer": self.optimizer,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "retraction": self.retraction,
            "top_directions": self.top_directions,
            "lr_schedule": self.lr_schedule,
            "lr_final": self.lr_final,
            "lr_decay_iterations": self.lr_decay_iterations,
        }
