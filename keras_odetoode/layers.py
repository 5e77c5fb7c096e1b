"""Keras layers: ODEtoODE (Eqs. 2, 5, 6) and every baseline of the paper.

All layers map (batch, d) → (batch, d) (`StiefelDense`: → (batch, units)) and
have the same two-level API:

* `layer(x)` — an ordinary Keras call (Sequential, functional, `fit`, export);
* `layer.forward(params, x)` — the same computation with explicit weights
  `params` (`layer.param_dict()` names), which may carry one leading
  population axis P, with x of shape (P, batch, d): ES evaluates a whole
  population of perturbed layers in one call.
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_odetoode import flows as flows_lib
from keras_odetoode import manifolds
from keras_odetoode.checks import check_choice as _check_choice
from keras_odetoode.checks import check_real as _check_real
from keras_odetoode.params import ParamsMixin

SOLVERS = ("euler", "rk4")


def get_activation(name):
    """`"abs"` (the paper's f = |·|, Lemma 4.1) or any Keras activation name."""
    if not isinstance(name, str):  # a function would not survive get_config
        raise ValueError(
            "Unknown activation. Expected 'abs' or a Keras activation name (a string, which "
            f"get_config can save). Received: activation={name!r}"
        )
    if name == "abs":
        return tf.abs
    try:
        return keras.activations.get(name)
    except ValueError:
        raise ValueError(
            f"Unknown activation. Expected 'abs' or a Keras activation name. Received: activation={name!r}"
        ) from None


def _auto_name(prefix):
    """Keras-style unique default name ("odetoode", "odetoode_1", ...)."""
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


def rk4_step(x, h, field_start, field_mid, field_end):
    """Classic RK4 step of ẋ = g_t(x), given g at t, t + h/2 and t + h."""
    k1 = field_start(x)
    k2 = field_mid(x + 0.5 * h * k1)
    k3 = field_mid(x + 0.5 * h * k2)
    k4 = field_end(x + h * k3)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def num_steps_of(step_size, horizon):
    """N = T / h, or a ValueError if h or T is not a number > 0 or h does not divide T."""
    for name, value in (("step_size", step_size), ("horizon", horizon)):
        _check_real(name, value)
        if not value > 0:
            raise ValueError(f"{name} must be > 0. Received: {name}={value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite. Received: {name}={value!r}")
    steps = round(horizon / step_size)
    if steps < 1 or abs(steps * step_size - horizon) > 1e-6 * horizon:
        raise ValueError(
            "step_size must divide horizon into a whole number of steps. "
            f"Received: step_size={step_size!r}, horizon={horizon!r} "
            f"(horizon / step_size = {horizon / step_size:.6g})"
        )
    return steps


class _ParamsMixin(ParamsMixin):
    """`param_dict()` over the weights the layer registers with `_add`; `call` is `forward` with them."""

    def call(self, inputs):
        return self.forward(self.param_dict(), inputs)

    def _check_input(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (batch, features). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} needs a known feature dimension. Received: input_shape={tuple(input_shape)}"
            )
        dim = int(input_shape[-1])
        self.input_spec = keras.InputSpec(ndim=2, axes={-1: dim})  # `forward` (populations) bypasses it
        return dim


def _flow_params(params):
    return {name[len("flow.") :]: value for name, value in params.items() if name.startswith("flow.")}


@keras.saving.register_keras_serializable(package="keras_odetoode")
class NonAutonomousODE(_ParamsMixin, keras.layers.Layer):
    """Main flow ẋ = f(W_t x + b) driven by a parameter flow W_0 … W_N (Eq. 2, first line).

    Euler (the paper's Eq. 5): xᵢ = xᵢ₋₁ + h f(Wᵢ xᵢ₋₁ + b). RK4 uses W at
    tᵢ₋₁, tᵢ₋½ and tᵢ (the flow is then integrated with step h/2). The flow runs
    once per call, never per example: per example this costs a depth-N ResNet.

    Args:
        flow: an `AbstractParameterFlow` layer.
        step_size: h > 0, dividing `horizon`.
        horizon: T.
        activation: f; "abs" (default) or a Keras activation name.
        solver: "euler" or "rk4" for the main flow.
        use_bias: whether to learn b.
    """

    def __init__(self, flow, step_size=0.04, horizon=1.0, activation="abs", solver="euler", use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(flow, dict):
            flow = keras.saving.deserialize_keras_object(flow)
        if not isinstance(flow, flows_lib.AbstractParameterFlow):
            raise ValueError(f"flow must be an AbstractParameterFlow. Received: flow={flow!r}")
        self.flow = flow
        self.num_steps = num_steps_of(step_size, horizon)
        self.step_size = float(step_size)
        self.horizon = float(horizon)
        self.activation = activation
        self._f = get_activation(activation)
        self.solver = _check_choice("solver", solver, SOLVERS)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        dim = self._check_input(input_shape)
        if not self.flow.built:  # a deserialized flow comes built
            self.flow.build(dim)
        if self.use_bias:
            self._add("bias", (dim,), "zeros")
        self.built = True

    def param_dict(self):
        params = super().param_dict()
        params.update({f"flow.{k}": v for k, v in self.flow.param_dict().items()})
        return params

    def call(self, inputs):
        return self.forward(self.param_dict(), inputs, weights=getattr(self, "_folded_weights", None))

    def fold_parameter_flow(self):
        """Freeze W_0 … W_N as constants: later calls skip the parameter flow.

        For inference and export (docs/design.md): a traced call then holds the
        trajectory as a constant and no `expm`, and costs a depth-N ResNet.
        Undo with `unfold_parameter_flow()` before training again.
        """
        self._folded_weights = tf.constant(self.solver_weights())

    def unfold_parameter_flow(self):
        """Compute the parameter flow from the variables again on every call."""
        self._folded_weights = None

    @property
    def is_folded(self):
        """Whether calls use constants frozen by `fold_parameter_flow`."""
        return getattr(self, "_folded_weights", None) is not None

    def solver_weights(self, params=None):
        """The W_t the solver reads: (..., N+1, d, d) (Euler) or (..., 2N+1, d, d) (RK4).

        Depends on the parameters only: compute it once and pass it to `forward`
        for many inputs (ES rollouts do, once per rollout).
        """
        if params is None and not self.built:
            raise ValueError(
                f"{self.name} has no weights yet: call it on an input, or build(input_shape), first. "
                "Received: an unbuilt layer"
            )
        params = self.param_dict() if params is None else params
        flow_params = _flow_params(params)
        if self.solver == "rk4":
            return self.flow.trajectory(2 * self.num_steps, 0.5 * self.step_size, flow_params)
        return self.flow.trajectory(self.num_steps, self.step_size, flow_params)

    def parameter_trajectory(self):
        """W_0 … W_N on the main grid tᵢ = i·h, shape (N+1, d, d)."""
        weights = self.solver_weights()
        return weights[::2] if self.solver == "rk4" else weights

    def forward(self, params, inputs, weights=None, return_states=False):
        """Main flow for explicit `params`.

        Args:
            params: as `param_dict()`, optionally with a leading population axis.
            inputs: (batch, d), or (P, batch, d) with population params.
            weights: `solver_weights(params)`, if already computed.
            return_states: if True, return x_0 … x_N stacked on axis 0.
        """
        weights = self.solver_weights(params) if weights is None else weights
        # A list of W_t: the gradient of unstack is one stack, whereas slicing
        # the stacked tensor N times would add up N dense (N+1, d, d) gradients.
        x = tf.cast(inputs, self.compute_dtype)
        weights = tf.unstack(tf.cast(weights, x.dtype), axis=-3)
        b = tf.cast(params["bias"], x.dtype)[..., tf.newaxis, :] if self.use_bias else 0.0
        h = self.step_size

        def field(w, x):
            return self._f(tf.matmul(x, w, transpose_b=True) + b)

        states = [x]
        for i in range(1, self.num_steps + 1):
            if self.solver == "euler":
                x = x + h * field(weights[i], x)
            else:
                w0, w_half, w1 = weights[2 * i - 2], weights[2 * i - 1], weights[2 * i]
                x = rk4_step(x, h, lambda y: field(w0, y), lambda y: field(w_half, y), lambda y: field(w1, y))
            states.append(x)
        return tf.stack(states) if return_states else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            flow=keras.saving.serialize_keras_object(self.flow),
            step_size=self.step_size,
            horizon=self.horizon,
            activation=self.activation,
            solver=self.solver,
            use_bias=self.use_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_odetoode")
class ODEtoODE(NonAutonomousODE):
    """ODEtoODE: a neural ODE whose weight matrix flows on O(d) (Eqs. 2, 5, 6).

        xᵢ = xᵢ₋₁ + h f(Wᵢ xᵢ₋₁ + b),     Wᵢ = Wᵢ₋₁ exp(h B(tᵢ₋₁, Wᵢ₋₁)),  W_0 ∈ O(d)

    Args:
        flow: "isospectral" (ISO-ODEtoODE, B = [WᵀQW, N]) or "gated"
            (B = Σₖ aₖ(Fₖ − Fₖᵀ)).
        num_gates: K for the gated flow.
        gate_inputs: what the gated flow's networks Fₖ read: "time" (linear
            in time features; all exponentials batched) or "state" (an MLP of
            W, HyperNet's hypernetwork constrained to O(d), as in the paper).
            See `flows.GatedFlow`.
        hidden_units: width of the "state" gate networks' hidden layers.
        step_size: h (0.04 for RL policies, 0.01 for classifiers in the paper).
        horizon: T.
        activation: f, "abs" by default (|f'| = 1, Lemma 4.1).
        retraction: the map Skew(d) → O(d) of each step: "expm" (the exact
            exponential `manifolds.expm`, fast on the flows' small steps),
            "cayley", or "tf.linalg.expm" (TensorFlow's, the reference: slower,
            and slow to trace at large N).
        integrator: "lie_euler" (the paper's) or "rkmk4" for the parameter flow.
        solver: "euler" (the paper's) or "rk4" for the main flow.
        w0: optional orthogonal (d, d) starting matrix; Haar-random otherwise.
        use_bias: whether to learn b.
        seed: seed of the initializers.

    Example:
        >>> model = keras.Sequential([keras.Input((16,)), ODEtoODE(step_size=0.04)])
        >>> model.layers[0].parameter_trajectory().shape
        TensorShape([26, 16, 16])
    """

    def __init__(
        self,
        flow="isospectral",
        num_gates=1,
        step_size=0.04,
        horizon=1.0,
        activation="abs",
        retraction="expm",
        gate_inputs="time",
        hidden_units=16,
        integrator="lie_euler",
        solver="euler",
        w0=None,
        use_bias=True,
        seed=None,
        **kwargs,
    ):
        _check_choice("flow", flow, flows_lib.ORTHOGONAL_FLOWS)
        num_steps_of(step_size, horizon)  # before the flow takes the horizon
        num_gates = manifolds.check_integer("num_gates", num_gates, 1)
        flows_lib.check_gate_inputs(gate_inputs)
        if flow != "gated" and gate_inputs != "time":
            raise ValueError(
                f"gate_inputs is an option of the gated flow. Received: flow={flow!r}, gate_inputs={gate_inputs!r}. "
                "Expected: flow='gated', or no gate_inputs"
            )
        hidden_units = manifolds.check_integer("hidden_units", hidden_units, 1)
        kwargs.setdefault("name", _auto_name("odetoode"))
        _check_choice("integrator", integrator, ("lie_euler", "rkmk4"))
        manifolds.check_retraction(retraction)
        options = dict(integrator=integrator, retraction=retraction, w0=w0, seed=seed, dtype=kwargs.get("dtype"))
        if flow == "gated":
            gates = dict(num_gates=num_gates, gate_inputs=gate_inputs, hidden_units=hidden_units)
            flow_layer = flows_lib.GatedFlow(horizon=horizon, name="flow", **gates, **options)
        else:
            flow_layer = flows_lib.IsospectralFlow(name="flow", **options)
        super().__init__(
            flow_layer,
            step_size=step_size,
            horizon=horizon,
            activation=activation,
            solver=solver,
            use_bias=use_bias,
            **kwargs,
        )
        self.flow_name = flow
        self.num_gates = num_gates
        self.gate_inputs = gate_inputs
        self.hidden_units = hidden_units
        self.retraction = retraction
        self.integrator = integrator
        self.seed = seed

    def get_config(self):
        config = super().get_config()
        config.update(
            flow=self.flow_name,
            num_gates=self.num_gates,
            gate_inputs=self.gate_inputs,
            hidden_units=self.hidden_units,
            retraction=self.retraction,
            integrator=self.integrator,
            w0=self.flow.get_config()["w0"],
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_odetoode")
class NANODE(NonAutonomousODE):
    """Non-autonomous neural ODE ẋ = f(W_t x + b), W_t trigonometric of degree k (Davis et al.).

    Args:
        degree: k, the degree of the trigonometric polynomials (5 for RL, 1–10 in Table 1).
        step_size, horizon, activation, solver, use_bias: as `NonAutonomousODE`.
        seed: seed of the initializers.
    """

    def __init__(
        self,
        degree=1,
        step_size=0.04,
        horizon=1.0,
        activation="abs",
        solver="euler",
        use_bias=True,
        seed=None,
        **kwargs,
    ):
        num_steps_of(step_size, horizon)  # before the flow takes the horizon
        flow = flows_lib.TrigonometricFlow(
            degree=degree, horizon=horizon, seed=seed, name="flow", dtype=kwargs.get("dtype")
        )
        super().__init__(
            flow,
            step_size=step_size,
            horizon=horizon,
            activation=activation,
            solver=solver,
            use_bias=use_bias,
            **kwargs,
        )
        self.degree = flow.degree  # checked: a Python int
        self.seed = seed

    def get_config(self):
        config = super().get_config()
        config.pop("flow")
        return {**config, "degree": self.degree, "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_odetoode")
class HyperNetODE(NonAutonomousODE):
    """HyperNet (ANODEV2): ẋ = f(W_t x + b), vec(W_t) the state of a second neural ODE.

    Args:
        num_gates: K gates of the coupled ODE ("HyperNet-K" in Tables 1–2).
        hidden_units: width of the two hidden layers of each gate's MLP (16).
        step_size, horizon, activation, solver, use_bias: as `NonAutonomousODE`.
        seed: seed of the initializers.
    """

    def __init__(
        self,
        num_gates=1,
        hidden_units=16,
        step_size=0.04,
        horizon=1.0,
        activation="abs",
        solver="euler",
        use_bias=True,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("name", _auto_name("hypernet_ode"))
        flow = flows_lib.HyperFlow(
            num_gates=num_gates, hidden_units=hidden_units, seed=seed, name="flow", dtype=kwargs.get("dtype")
        )
        super().__init__(
            flow,
            step_size=step_size,
            horizon=horizon,
            activation=activation,
            solver=solver,
            use_bias=use_bias,
            **kwargs,
        )
        self.num_gates = flow.num_gates  # checked: Python ints
        self.hidden_units = flow.hidden_units
        self.seed = seed

    def get_config(self):
        config = super().get_config()
        config.pop("flow")
        return {**config, "num_gates": self.num_gates, "hidden_units": self.hidden_units, "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_odetoode")
class NeuralODE(_ParamsMixin, keras.layers.Layer):
    """BaseODE / NODE (Chen et al. 2018): autonomous ẋ = g(x), g an MLP with two hidden layers.

    g(x) = W₃ σ(W₂ σ(W₁ x + b₁) + b₂) + b₃, integrated on [0, T].

    Args:
        hidden_units: width of g's hidden layers (default: the input width d).
        step_size, horizon: h and T for the fixed-step solvers.
        activation: σ, "tanh" by default.
        solver: "euler" (default, as the paper), "rk4", or "dopri5" (adaptive
            Dormand–Prince from `tfp.math.ode`, with `rtol`/`atol`; one step
            sequence for the whole batch, so an example's output depends on
            its batch, within the tolerances).
        seed: seed of the initializers.
    """

    SOLVERS = ("euler", "rk4", "dopri5")

    def __init__(
        self,
        hidden_units=None,
        step_size=0.04,
        horizon=1.0,
        activation="tanh",
        solver="euler",
        rtol=1e-5,
        atol=1e-6,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = None if hidden_units is None else manifolds.check_integer("hidden_units", hidden_units, 1)
        self.num_steps = num_steps_of(step_size, horizon)
        self.step_size = float(step_size)
        self.horizon = float(horizon)
        self.activation = activation
        self._f = get_activation(activation)
        self.solver = _check_choice("solver", solver, self.SOLVERS)
        for name, value in (("rtol", rtol), ("atol", atol)):
            _check_real(name, value)
            if not value > 0:
                raise ValueError(f"{name} must be > 0. Received: {name}={value!r}")
        self.rtol, self.atol = float(rtol), float(atol)
        self.seed = seed

    def build(self, input_shape):
        dim = self._check_input(input_shape)
        s = self.hidden_units or dim
        seed = lambda i: None if self.seed is None else self.seed + i  # noqa: E731
        glorot = lambda i: keras.initializers.GlorotUniform(seed=seed(i))  # noqa: E731
        self._add("kernel_1", (dim, s), glorot(0))
        self._add("bias_1", (s,), "zeros")
        self._add("kernel_2", (s, s), glorot(1))
        self._add("bias_2", (s,), "zeros")
        self._add("kernel_3", (s, dim), glorot(2))
        self._add("bias_3", (dim,), "zeros")
        self.built = True

    def vector_field(self, params, x):
        """g(x) for x of shape (..., batch, d)."""
        p = {k: tf.cast(v, x.dtype) for k, v in params.items()}
        h = self._f(tf.matmul(x, p["kernel_1"]) + p["bias_1"][..., tf.newaxis, :])
        h = self._f(tf.matmul(h, p["kernel_2"]) + p["bias_2"][..., tf.newaxis, :])
        return tf.matmul(h, p["kernel_3"]) + p["bias_3"][..., tf.newaxis, :]

    def forward(self, params, inputs, return_states=False):
        """x(T) for explicit `params`; with `return_states`, x_0 … x_N stacked on axis 0."""
        x = tf.cast(inputs, self.compute_dtype)
        g = lambda x: self.vector_field(params, x)  # noqa: E731
        if self.solver == "dopri5":
            solver = tfp.math.ode.DormandPrince(rtol=self.rtol, atol=self.atol)
            times = np.linspace(0.0, self.horizon, self.num_steps + 1)[1:] if return_states else [self.horizon]
            results = solver.solve(lambda t, y: g(y), 0.0, x, solution_times=times)
            return tf.concat([x[tf.newaxis], results.states], 0) if return_states else results.states[0]
        h = self.step_size
        states = [x]
        for _ in range(self.num_steps):
            if self.solver == "euler":
                x = x + h * g(x)
            else:
                x = rk4_step(x, h, g, g, g)
            states.append(x)
        return tf.stack(states) if return_states else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_units=self.hidden_units,
            step_size=self.step_size,
            horizon=self.horizon,
            activation=self.activation,
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_odetoode")
class StiefelDense(_ParamsMixin, keras.layers.Layer):
    """Linear map y = x Ω with Ω on the Stiefel manifold (Ω₁, Ω₂ of Eq. 5).

    The kernel (d_in, units) has orthonormal columns when d_in ≥ units and
    orthonormal rows otherwise (the paper's ST(d₁, d₂)). It carries the
    `Stiefel` constraint: Riemannian optimizers and ES move it along the
    manifold.

    Args:
        units: output width.
        use_bias: whether to add a bias (the paper's projections have none).
        retraction: "expm" or "cayley".
        seed: seed of the Haar initializer.
    """

    def __init__(self, units, use_bias=False, retraction="expm", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = manifolds.check_integer("units", units, 1)
        self.use_bias = bool(use_bias)
        self.retraction = manifolds.check_retraction(retraction)
        self.seed = seed

    def build(self, input_shape):
        dim = self._check_input(input_shape)
        self._add("kernel", (dim, self.units), manifolds.HaarStiefel(self.seed), manifolds.Stiefel(self.retraction))
        if self.use_bias:
            self._add("bias", (self.units,), "zeros")
        self.built = True

    def forward(self, params, inputs):
        x = tf.cast(inputs, self.compute_dtype)
        y = tf.matmul(x, tf.cast(params["kernel"], x.dtype))
        return y + tf.cast(params["bias"], x.dtype)[..., tf.newaxis, :] if self.use_bias else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, use_bias=self.use_bias, retraction=self.retraction, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="keras_odetoode")
class DeepNet(_ParamsMixin, keras.layers.Layer):
    """DeepNet / Dense-k: `depth` fully connected layers x ← f(x Kᵢ + bᵢ), width d.

    Args:
        depth: number of layers (25 for the paper's RL DeepNet).
        activation: f ("relu" by default).
        residual: if True, DeepResNet blocks x ← x + f(x Kᵢ + bᵢ).
        seed: seed of the initializers.

    Kernels start at variance 2/d (He) for DeepNet and 1/(d·depth) for
    DeepResNet, so the output scale stays O(1) at any depth.
    """

    def __init__(self, depth, activation="relu", residual=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.depth = manifolds.check_integer("depth", depth, 1)
        self.activation = activation
        self._f = get_activation(activation)
        self.residual = bool(residual)
        self.seed = seed

    def build(self, input_shape):
        dim = self._check_input(input_shape)
        scale = 1.0 / self.depth if self.residual else 2.0  # Fixup-style / He
        init = keras.initializers.RandomNormal(stddev=math.sqrt(scale / dim), seed=self.seed)
        self._add("kernels", (self.depth, dim, dim), init)
        self._add("biases", (self.depth, dim), "zeros")
        self.built = True

    def forward(self, params, inputs, return_states=False):
        """The stack for explicit `params`; with `return_states`, every layer's output."""
        x = tf.cast(inputs, self.compute_dtype)
        kernels = tf.unstack(tf.cast(params["kernels"], x.dtype), axis=-3)  # see NonAutonomousODE.forward
        biases = tf.unstack(tf.cast(params["biases"], x.dtype)[..., tf.newaxis, :], axis=-3)
        states = [x]
        for i in range(self.depth):
            y = self._f(tf.matmul(x, kernels[i]) + biases[i])
            x = x + y if self.residual else y
            states.append(x)
        return tf.stack(states) if return_states else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(depth=self.depth, activation=self.activation, residual=self.residual, seed=self.seed)
        return config


def DeepResNet(depth, activation="relu", seed=None, **kwargs):
    """DeepResNet: `depth` residual fully connected blocks (a `DeepNet` with residual=True)."""
    return DeepNet(depth, activation=activation, residual=True, seed=seed, **kwargs)
