"""Riemannian optimizers: Keras SGD and Adam that keep Stiefel / O(d) weights on their manifold.

A variable whose constraint is a `manifolds.Stiefel` (W_0 of ODEtoODE, the
kernels of `StiefelDense`) is updated along the full tangent space by the
manifold's retraction (expm or Cayley; docs/design.md "tall and wide"), with the
momentum transported by projection onto the new tangent space. Every other
variable takes exactly the Euclidean rule of `keras.optimizers.SGD` / `Adam`.
Like Keras' `Muon`, one optimizer routes each variable to its rule.
`weight_decay` applies to the Euclidean variables only; with `use_ema`, the
average of a manifold variable is kept on the manifold by its polar factor.
"""

import keras
from keras import ops

from keras_odetoode import manifolds


class _ManifoldRouting:
    """Finds each variable's manifold in `update_step`, which the TensorFlow
    backend calls with the raw `tf.Variable` (without the Keras constraint)."""

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._manifolds = {}
        for variable in var_list:
            manifold = manifolds.manifold_of(variable)
            if manifold is not None:
                self._manifolds[self._var_key(variable)] = manifold

    def _manifold(self, variable):
        return self._manifolds.get(self._var_key(variable))

    def _use_weight_decay(self, variable):
        # W ← (1 − λη) W leaves ST(n, p), and the retraction from there stays off it:
        # decay is for Euclidean variables only.
        return self._manifold(variable) is None and super()._use_weight_decay(variable)

    def _update_model_variables_moving_average(self, trainable_variables):
        """`use_ema`: a weighted mean of points on ST(n, p) lies off it; the average of a
        manifold variable is kept on the manifold by its polar factor after each update."""
        super()._update_model_variables_moving_average(trainable_variables)
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None and self._manifold(variable) is not None:
                average.assign(manifolds.polar_factor(average))


@keras.saving.register_keras_serializable(package="keras_odetoode")
class RiemannianSGD(_ManifoldRouting, keras.optimizers.SGD):
    """SGD with momentum on ℝⁿ × ST(n, p) (Bonnabel 2013).

    Manifold variables: m ← β·m − η G (m kept tangent), W ← R_W(m).
    Other variables: `keras.optimizers.SGD`, identical.

    Args: as `keras.optimizers.SGD` (learning_rate, momentum, nesterov, ...).

    Example:
        >>> model.compile(optimizer=RiemannianSGD(0.01, momentum=0.9), loss="mse")
    """

    def update_step(self, gradient, variable, learning_rate):
        manifold = self._manifold(variable)
        if manifold is None:
            return super().update_step(gradient, variable, learning_rate)
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum == 0:
            self.assign(variable, manifold.retract(variable, gradient, lr))
            return
        momentum = ops.cast(self.momentum, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, momentum * m - lr * gradient)
        step = momentum * m - lr * gradient if self.nesterov else m
        self.assign(variable, manifold.retract(variable, -step, 1.0))
        self.assign(m, manifold.project(variable, m))


@keras.saving.register_keras_serializable(package="keras_odetoode")
class RiemannianAdam(_ManifoldRouting, keras.optimizers.Adam):
    """Adam on ℝⁿ × ST(n, p) (Bécigneul & Ganea 2019).

    Manifold variables: the Riemannian gradient ξ = P_W(G) drives the first
    moment m (kept tangent by projection after each step) and the second
    moment is the mean of ξ² over the matrix, a scalar, since elementwise
    scaling is not intrinsic to the manifold; W ← R_W(−α m̂ / (√v̂ + ε)).
    With `amsgrad=True` the step divides by the largest v so far instead
    (RAMSGrad, ibid.), for the manifold variables as for the others.
    Other variables: `keras.optimizers.Adam`, identical.

    Args: as `keras.optimizers.Adam`.

    Example:
        >>> model.compile(optimizer=RiemannianAdam(1e-3), loss="mse")
    """

    def update_step(self, gradient, variable, learning_rate):
        manifold = self._manifold(variable)
        if manifold is None:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        xi = manifold.project(variable, ops.cast(gradient, dtype))
        self.assign_add(m, (xi - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.mean(ops.square(xi)) - v) * (1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        direction = alpha * m / (ops.sqrt(v) + self.epsilon)
        self.assign(variable, manifold.retract(variable, direction, 1.0))
        self.assign(m, manifold.project(variable, m))
