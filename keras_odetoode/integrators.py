"""Lie-group integrators for the parameter flow Ẇ = W B(t, W), B ∈ Skew(d) (Eq. 2).

Each integrator is one `step` over an abstract generator, with an `order`
attribute that the tests measure. Both work with every map of `manifolds.RETRACTIONS`
("expm", "cayley", "tf.linalg.expm"), so every step is orthogonal to round-off.

The equation is right-trivialised: W(t) = Wₙ R(Ω(t)) with R = exp or cay, so
Ω' = R⁻¹-differential of B at Ω:

    exp:    Ω' = B + ½[Ω, B] + ¹⁄₁₂[Ω, [Ω, B]] + O(Ω³)   (truncated: enough for order 4)
    cayley: Ω' = B + ½[Ω, B] − ¼ Ω B Ω                   (exact)
"""

import abc

import tensorflow as tf

from keras_odetoode import manifolds
from keras_odetoode.checks import check_choice

INTEGRATORS = ("lie_euler", "rkmk4")


def inverse_differential(retraction, u, b):
    """R⁻¹-differential at `u` applied to `b` for R = exp ("expm", "tf.linalg.expm") or Cayley (right form)."""
    ub = manifolds.bracket(u, b)
    if retraction != "cayley":  # either exponential
        return b + 0.5 * ub + (1.0 / 12.0) * manifolds.bracket(u, ub)
    return b + 0.5 * ub - 0.25 * tf.matmul(u, tf.matmul(b, u))


class AbstractLieIntegrator(abc.ABC):
    """One step W(t) → W(t + h) of Ẇ = W B(t, W) on O(d)."""

    name: str
    order: int

    def __init__(self, retraction="expm"):
        self.retraction = manifolds.check_retraction(retraction)
        self.exp = manifolds.exponential_map(retraction)

    @abc.abstractmethod
    def step(self, generator, t, w, h, exp=None):
        """Args: generator(t, W) → B ∈ Skew(d); t: float or scalar tensor; w: (..., d, d);
        h: float; exp: the map Skew(d) → SO(d) to use instead of the retraction's."""


class LieEuler(AbstractLieIntegrator):
    """Wᵢ = Wᵢ₋₁ R(h B(tᵢ₋₁, Wᵢ₋₁)): the paper's discretisation (Eq. 6), order 1."""

    name = "lie_euler"
    order = 1

    def step(self, generator, t, w, h, exp=None):
        exp = exp or self.exp
        return tf.matmul(w, exp(h * generator(t, w)))


class RKMK4(AbstractLieIntegrator):
    """Runge–Kutta–Munthe-Kaas of order 4 (classic RK4 tableau in the Lie algebra)."""

    name = "rkmk4"
    order = 4

    def step(self, generator, t, w, h, exp=None):
        exp = exp or self.exp
        dinv = lambda u, b: inverse_differential(self.retraction, u, b)  # noqa: E731
        k1 = h * generator(t, w)
        k2 = h * dinv(0.5 * k1, generator(t + 0.5 * h, tf.matmul(w, exp(0.5 * k1))))
        k3 = h * dinv(0.5 * k2, generator(t + 0.5 * h, tf.matmul(w, exp(0.5 * k2))))
        k4 = h * dinv(k3, generator(t + h, tf.matmul(w, exp(k3))))
        return tf.matmul(w, exp((k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0))


_REGISTRY = {cls.name: cls for cls in (LieEuler, RKMK4)}


def get(name, retraction="expm"):
    """The integrator called `name` ("lie_euler" or "rkmk4") with `retraction`."""
    return _REGISTRY[check_choice("integrator", name, INTEGRATORS)](retraction)
