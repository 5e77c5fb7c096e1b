"""Parameter flows: the weight trajectory W_0 … W_N of a non-autonomous neural ODE.

A flow is a small Keras layer holding the parameters ψ of the second equation
of Eq. 2 and producing the whole trajectory once per call, independently of
the input batch (docs/design.md: the parameter flow once per batch). `trajectory(params)`
accepts the flow's weights with optional leading population axes, so ES can
evaluate a whole population of perturbed flows in one call.

* `IsospectralFlow` — ISO-ODEtoODE, B(W) = [WᵀQW, N]            (Sec. 3.1, Eq. 6)
* `GatedFlow`       — gated-ODEtoODE, B = Σₖ aₖ (Fₖ − Fₖᵀ), Fₖ of t or of W (Sec. 3.1)
* `TrigonometricFlow` — NANODE: entries of W(t) trigonometric polynomials in t
* `HyperFlow`       — HyperNet / ANODEV2: vec(W) follows a second neural ODE
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_odetoode import integrators, manifolds
from keras_odetoode.checks import check_choice
from keras_odetoode.params import ParamsMixin

#: every this many steps of a flow on O(d), one `manifolds.polar_correction`
#: cancels the float32 round-off of the product W_0 E_1 ⋯ E_i (the drift would
#: otherwise reach 6e-6 after 100 steps at d = 128 and 1e-5 after 500 at d = 64;
#: with it, ≤ 3e-6 at d = 256).
POLAR_CORRECTION_INTERVAL = 10
#: ... faded out by ‖WᵀW − I‖_F, to nothing at this radius: a W_0 off O(d), as
#: in an ES member θ + σε, keeps its singular values along its flow. Float32
#: round-off stays below ~1e-4.
POLAR_CORRECTION_RADIUS = 0.1


class AbstractParameterFlow(ParamsMixin, keras.layers.Layer):
    """Base class: `build(dim)` creates ψ, `trajectory(...)` returns (..., N+1, d, d).

    Subclasses create their weights with `self._add(name, shape, ...)` so that
    `param_dict()` lists them, and implement `trajectory`.
    """

    #: whether W_t stays on O(d) (ODEtoODE) or is unconstrained (NANODE, HyperNet)
    orthogonal = False

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._param_names = []

    def _initializer_seed(self, offset):
        return None if self.seed is None else self.seed + offset

    def trajectory(self, num_steps, step_size, params=None):
        """W(t_i) for t_i = i·h, i = 0…N, stacked on axis -3: shape (..., N+1, d, d).

        In the variable dtype, whatever the compute dtype: under mixed precision
        the flow stays float32 (`tf.linalg.expm` has no half-precision kernel,
        and W_t must stay on O(d)); the main flow casts W_t to its own dtype.
        """
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class AbstractOrthogonalFlow(AbstractParameterFlow):
    """A flow on O(d): W_0 ∈ O(d) learnable (Haar init), Ẇ = W B(t, W), B ∈ Skew(d).

    Subclasses implement `generator(params, t, w)`; the trajectory is integrated
    by a Lie-group method (`integrators`), so every W_i is exactly orthogonal.

    Args:
        integrator: "lie_euler" (the paper's, Eq. 6) or "rkmk4".
        retraction: "expm" (`manifolds.expm`) or "cayley".
        w0: optional (d, d) orthogonal matrix to start from instead of a Haar sample.
        seed: seed of the initializers.
    """

    orthogonal = True

    def __init__(self, integrator="lie_euler", retraction="expm", w0=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.integrator = integrator
        self.retraction = manifolds.check_retraction(retraction)
        self._integrator = integrators.get(integrator, retraction)
        self.w0_value = None if w0 is None else check_orthogonal(w0)

    def build(self, dim):
        if self.w0_value is not None and self.w0_value.shape != (dim, dim):
            raise ValueError(
                f"W_0 must be ({dim}, {dim}) to match the input width {dim}. "
                f"Received: w0 with shape {self.w0_value.shape}"
            )
        init = (
            keras.initializers.Constant(self.w0_value)
            if self.w0_value is not None
            else manifolds.HaarStiefel(self._initializer_seed(0))
        )
        self._add("w0", (dim, dim), init, manifolds.Stiefel(self.retraction))
        self.build_generator(dim)
        self.built = True

    def build_generator(self, dim):
        """Create the weights of B(t, W)."""

    def prepare(self, params):
        """Per-call preprocessing of ψ for `generator` (done once, not per step)."""
        return {name: tf.cast(value, self.variable_dtype) for name, value in params.items()}

    def generator(self, params, t, w):
        """B(t, W) ∈ Skew(d) for W of shape (..., d, d), with `params` from `prepare`; t a scalar tensor of W's dtype."""
        raise NotImplementedError

    def trajectory(self, num_steps, step_size, params=None):
        """W(t_i), i = 0…N, by N steps of the integrator (with "expm", see `_exact_where_needed`)."""
        params = self.prepare(self.param_dict() if params is None else params)
        if self.retraction == "cayley":  # exact and orthogonal to round-off for any step
            return self._stepped(params, num_steps, step_size, self._integrator.exp)[0]
        if self.retraction == "tf.linalg.expm":  # exact; its squarings double the round-off of a large step
            return self._stepped(params, num_steps, step_size, self._integrator.exp, interval=1)[0]
        fast, within = self._stepped(params, num_steps, step_size, _TaylorSteps())
        names = sorted(params)

        def exact(*values):  # one step per loop iteration, each ending with the polar correction
            return self._stepped(dict(zip(names, values)), num_steps, step_size, manifolds.expm, interval=1)[0]

        # Its gradient recomputes the loop: the check's `tf.cond` then carries no loop
        # intermediates, which XLA could not compile (FakeParam of a TensorList).
        exact = tf.recompute_grad(exact)
        return _exact_where_needed(fast, tf.logical_not(within), lambda: exact(*(params[n] for n in names)))

    def _field(self, params):
        return lambda t, w: self.generator(params, t, w)

    def _stepped(self, params, num_steps, step_size, exp, interval=None):
        """(W_0 … W_N on axis -3, within): N steps of the integrator, each exponential taken by `exp`.

        The steps run in chunks of `interval` (by default `POLAR_CORRECTION_INTERVAL`,
        read at call time), each unrolled and ending with the
        polar correction, in a `tf.while_loop` over the chunks (the last N mod
        interval steps unrolled after it): the graph holds one chunk instead of N
        steps, so the first training step traces and optimizes several times faster,
        and later ones run as fast (`benchmarks/layer_speed.py`). The exact path
        takes `interval=1`: each of `manifolds.expm`'s squarings doubles the
        round-off of a step, so every step ends with the (faded) correction.
        `within`, per trajectory (leading axes), says whether every step's
        exponential was exact: with `_TaylorSteps`, whether each θ stayed within
        `manifolds.expm_threshold`; with any other map, always.
        """
        field, w0 = self._field(params), params["w0"]
        interval = POLAR_CORRECTION_INTERVAL if interval is None else interval
        chunks, rest = divmod(num_steps, interval)
        checked = isinstance(exp, _TaylorSteps)

        def run(first, count, w):  # steps first … first + count − 1: their W and within
            since = len(exp.thetas) if checked else 0
            ws = []
            for j in range(count):
                t = tf.cast(first + j, w.dtype) * step_size  # a scalar tensor of W's dtype
                w = self._integrator.step(field, t, w, step_size, exp)
                ws.append(w)
            if count == interval:
                ws[-1] = manifolds.polar_correction(ws[-1], POLAR_CORRECTION_RADIUS)
            return ws, exp.within(since) if checked else tf.constant(True)

        def chunk(c, w, within, trajectory):
            ws, chunk_within = run(c * interval, interval, w)
            return c + 1, ws[-1], tf.logical_and(within, chunk_within), trajectory.write(c, tf.stack(ws))

        lead = w0.shape[:-2]
        within = tf.fill(_shape(w0)[:-2], True) if lead.rank else tf.constant(True)
        steps = []  # each (k, ..., d, d)
        w = w0
        if chunks:
            written = tf.TensorArray(w0.dtype, size=chunks, element_shape=[interval, *w0.shape])
            _, w, within, written = tf.while_loop(
                lambda c, *_: c < chunks, chunk, (tf.constant(0), w0, within, written), maximum_iterations=chunks
            )
            steps.append(tf.reshape(written.stack(), [chunks * interval, *_shape(w0)]))
        if rest:
            ws, rest_within = run(chunks * interval, rest, w)
            steps.append(tf.stack(ws))
            within = tf.logical_and(within, rest_within)
        trajectory = tf.concat([w0[tf.newaxis], *steps], axis=0)  # (N+1, ..., d, d)
        rank = trajectory.shape.rank
        if rank > 3:
            trajectory = tf.transpose(trajectory, [*range(1, rank - 2), 0, rank - 2, rank - 1])
        return trajectory, within

    def get_config(self):
        config = super().get_config()
        config.update(
            integrator=self.integrator,
            retraction=self.retraction,
            w0=None if self.w0_value is None else self.w0_value.tolist(),
        )
        return config


def _corrected(w, i):
    """W_i after step i (0-based): one faded polar correction every `POLAR_CORRECTION_INTERVAL` steps."""
    return manifolds.polar_correction(w, POLAR_CORRECTION_RADIUS) if (i + 1) % POLAR_CORRECTION_INTERVAL == 0 else w


class _TaylorSteps:
    """`manifolds.taylor_expm` as an integrator's exponential, keeping every step's bound θ."""

    def __init__(self):
        self.thetas = []

    def __call__(self, a):
        e, theta = manifolds.taylor_expm(a)
        self.thetas.append(theta)
        return e

    def within(self, since=0):
        """Per trajectory (leading axes): whether θ stayed within `manifolds.expm_threshold` from step `since` on.

        A NaN θ is not within.
        """
        thetas = tf.stack(self.thetas[since:], axis=-1)
        return tf.reduce_all(thetas <= manifolds.expm_threshold(thetas.dtype), axis=-1)


def _squared_steps_corrected(steps, generators, retraction):
    """`steps` = exp(`generators`), each one large enough to be squared with one polar correction.

    An exponential by scaling and squaring (`manifolds.expm`, `tf.linalg.expm`) doubles
    its round-off with each squaring: at ‖hB‖₁ ≈ 60 the products of ten steps between
    two of the flow's corrections leave ‖WᵀW − I‖ ≈ 1e-5. The bound ‖hB‖₁ ≥ θ needs no
    product; the other steps keep their bits (an ES member does not depend on its
    population), and the flows' usual small steps never take the branch.
    """
    if retraction == "cayley":
        return steps
    norms = tf.reduce_max(tf.reduce_sum(tf.abs(generators), axis=-2), axis=-1)
    bound = manifolds.expm_threshold(generators.dtype) if generators.dtype in manifolds.TAYLOR_DEGREE else 0.0
    large = (norms > bound)[..., tf.newaxis, tf.newaxis]
    return tf.cond(
        tf.reduce_any(large), lambda: tf.where(large, manifolds.polar_correction(steps), steps), lambda: steps
    )


def _exact_where_needed(fast, exceeded, exact):
    """`fast`, with the trajectories (leading axes) whose steps `exceeded` the polynomial recomputed by `exact()`.

    One check per trajectory, instead of one branch per step: the flows' steps
    are small, the polynomial is exp to round-off on them, and the graph runs
    `fast` alone. A step too large for it (a large h, or Q and N grown by
    training) sends the whole batch to `exact()`; the trajectories that did not
    need it keep their fast values bit for bit (an ES member's result does not
    depend on the rest of its population).
    """
    mask = exceeded[..., tf.newaxis, tf.newaxis, tf.newaxis]
    return tf.cond(tf.reduce_any(exceeded), lambda: tf.where(mask, exact(), fast), lambda: tf.identity(fast))


def check_orthogonal(w0, tol=1e-5):
    """`w0` as a float64 array, or a ValueError saying how far it is from O(d)."""
    w0 = np.asarray(w0, dtype=np.float64)
    if w0.ndim != 2 or w0.shape[0] != w0.shape[1]:
        raise ValueError(f"W_0 must be a square matrix. Received: w0 with shape {w0.shape}")
    if not np.all(np.isfinite(w0)):
        raise ValueError("W_0 must be a finite orthogonal matrix. Received: w0 with NaN or inf entries")
    error = float(manifolds.orthogonality_error(w0))
    if not error < tol:
        raise ValueError(
            f"W_0 must be orthogonal (W_0ᵀW_0 = I): measured ‖W_0ᵀW_0 − I‖₂ = {error:.3g}, "
            f"allowed < {tol:g}. Use keras_odetoode.manifolds.qr_orthonormalize to project it."
        )
    return w0


def _symmetric_normal(stddev, seed):
    normal = keras.initializers.RandomNormal(stddev=stddev, seed=seed)
    return lambda shape, dtype=None: manifolds.sym(normal(shape, dtype)) * math.sqrt(2.0)


@keras.saving.register_keras_serializable(package="keras_odetoode")
class IsospectralFlow(AbstractOrthogonalFlow):
    """ISO-ODEtoODE: B(t, W) = [WᵀQW, N] with Q, N ∈ Sym(d) learnable (Eq. 6).

    Double-bracket (isospectral) flow: H_t = W_tᵀ Q W_t keeps the spectrum of Q.
    Q and N are stored symmetric (the `Symmetric` constraint keeps them so under
    any optimizer) and used through their symmetric part.
    """

    def build_generator(self, dim):
        stddev = 1.0 / math.sqrt(dim)
        self._add("q_matrix", (dim, dim), _symmetric_normal(stddev, self._initializer_seed(1)), manifolds.Symmetric())
        self._add("n_matrix", (dim, dim), _symmetric_normal(stddev, self._initializer_seed(2)), manifolds.Symmetric())

    @property
    def q(self):
        """Q ∈ Sym(d)."""
        return manifolds.sym(self.q_matrix)

    @property
    def n(self):
        """N ∈ Sym(d)."""
        return manifolds.sym(self.n_matrix)

    def prepare(self, params):
        params = super().prepare(params)
        return {**params, "q_matrix": manifolds.sym(params["q_matrix"]), "n_matrix": manifolds.sym(params["n_matrix"])}

    def generator(self, params, t, w):
        q, n = params["q_matrix"], params["n_matrix"]
        a = tf.matmul(w, tf.matmul(q, w), transpose_a=True)
        an = tf.matmul(a, n)
        return an - tf.linalg.matrix_transpose(an)  # [A, N] = AN − NA, and NA = (AN)ᵀ


def time_features(t, horizon):
    """φ(t) = (1, t/T, sin 2πt/T, cos 2πt/T): inputs of the gate networks Fₖ."""
    s = 2.0 * math.pi * t / horizon
    return np.stack([np.ones_like(t), t / horizon, np.sin(s), np.cos(s)], axis=-1)


def time_features_tensor(t, horizon):
    """`time_features` of a tensor t."""
    s = 2.0 * math.pi * t / horizon
    return tf.stack([tf.ones_like(t), t / horizon, tf.sin(s), tf.cos(s)], axis=-1)


#: what the gate networks Fₖ of `GatedFlow` read: the time t, or the state W_t
GATE_INPUTS = ("time", "state")


def add_gate_networks(flow, num_gates, dim, hidden_units):
    """Create the weights of K gate networks of vec W, ℝ^(d²) → ℝ^(d²), and their gates a = (1/K, …).

    Each network is an MLP with two tanh hidden layers of `hidden_units`, as
    HyperNet's (ANODEV2); weights are named `kernel_1` … `bias_3`.
    """
    k, s, size = num_gates, hidden_units, dim * dim
    normal = lambda std, i: keras.initializers.RandomNormal(stddev=std, seed=flow._initializer_seed(i))  # noqa: E731
    flow._add("gates", (k,), keras.initializers.Constant(1.0 / k))
    flow._add("kernel_1", (k, size, s), normal(1.0 / math.sqrt(size), 1))
    flow._add("bias_1", (k, s), "zeros")
    flow._add("kernel_2", (k, s, s), normal(1.0 / math.sqrt(s), 2))
    flow._add("bias_2", (k, s), "zeros")
    flow._add("kernel_3", (k, s, size), normal(1.0 / math.sqrt(s * dim), 3))
    flow._add("bias_3", (k, size), "zeros")


#: the names of `prepare_gate_networks`' output
GATE_NETWORK_WEIGHTS = ("kernel_1", "bias_1", "kernel_2", "bias_2", "gates", "kernel_3", "bias_3")


def prepare_gate_networks(params):
    """The weights of `add_gate_networks` laid out for `gate_networks`, once per trajectory.

    The first and last layers of the K networks become one matrix each, so a step
    takes two matrix products instead of K-way contractions: vec W @ (d², K·s), and
    the gated hidden units (aₖ hₖ) @ (K·s, d²), with Σₖ aₖ b₃ₖ folded into one bias.
    Leading (population) axes are kept.
    """
    kernel_1, kernel_3 = params["kernel_1"], params["kernel_3"]
    k, size, s = kernel_1.shape[-3:]
    lead = _shape(kernel_1)[:-3]
    rank = kernel_1.shape.rank
    kernel_1 = tf.transpose(kernel_1, [*range(rank - 3), rank - 2, rank - 3, rank - 1])  # (..., d², K, s)
    return {
        "kernel_1": tf.reshape(kernel_1, lead + [size, k * s]),
        "bias_1": params["bias_1"],
        "kernel_2": params["kernel_2"],
        "bias_2": params["bias_2"],
        "gates": params["gates"][..., tf.newaxis],
        "kernel_3": tf.reshape(kernel_3, lead + [k * s, size]),
        "bias_3": tf.einsum("...k,...ki->...i", params["gates"], params["bias_3"])[..., tf.newaxis, :],
    }


def gate_networks(prepared, rows):
    """Σₖ aₖ gₖ(v) for rows v of shape (..., 1, d²), as rows, with weights from `prepare_gate_networks`."""
    k, s = prepared["bias_1"].shape[-2:]
    lead = _shape(rows)[:-2]
    h = tf.reshape(tf.matmul(rows, prepared["kernel_1"]), lead + [k, s])
    h = tf.tanh(h + prepared["bias_1"])
    h = tf.tanh(tf.einsum("...ks,...kst->...kt", h, prepared["kernel_2"]) + prepared["bias_2"])
    h = tf.reshape(prepared["gates"] * h, lead + [1, k * s])
    return tf.matmul(h, prepared["kernel_3"]) + prepared["bias_3"]


def _shape(t):
    """t's shape as a list: the static sizes where known, scalar tensors elsewhere (the population axis)."""
    dynamic = None
    shape = []
    for i, size in enumerate(t.shape):
        if size is None:
            dynamic = tf.shape(t) if dynamic is None else dynamic
            size = dynamic[i]
        shape.append(size)
    return shape


@keras.saving.register_keras_serializable(package="keras_odetoode")
class GatedFlow(AbstractOrthogonalFlow):
    """Gated-ODEtoODE: B = Σₖ aₖ (Fₖ − Fₖᵀ), k = 1…K, a ∈ ℝᴷ learnable gates (Sec. 3.1).

    Two kinds of gate networks Fₖ, both producing unstructured d×d matrices:

    * ``gate_inputs="state"`` — the paper's gated-ODEtoODE: HyperNet's
      hypernetwork (an MLP of vec W with two tanh hidden layers of
      `hidden_units`, see `HyperFlow`) constrained to Skew(d) and mapped to
      O(d) by the exponential (Sec. 2, 3.1): B(W) = Σₖ aₖ (Fₖ(W) − Fₖ(W)ᵀ).
      Each step's exponential waits for the previous W.
    * ``gate_inputs="time"`` — Fₖ(t) = reshape(φ(t) Θₖ), a linear network of
      the time features φ (see `time_features`). B does not depend on W, so
      with Lie–Euler all N exponentials are taken in one batched `expm` and
      only the products W_{i−1} Eᵢ stay sequential: several times faster, with
      far fewer parameters (4d² per gate against about 2·hidden_units·d²).

    Args:
        num_gates: K ≥ 1 ("ODEtoODE-K" in Tables 1–2).
        horizon: T, the time scale of φ.
        gate_inputs: "time" (default) or "state".
        hidden_units: width of the hidden layers of the "state" gate networks.
    """

    def __init__(self, num_gates=1, horizon=1.0, gate_inputs="time", hidden_units=16, **kwargs):
        super().__init__(**kwargs)
        self.num_gates = manifolds.check_integer("num_gates", num_gates, 1)
        self.horizon = float(horizon)
        self.gate_inputs = check_gate_inputs(gate_inputs)
        self.hidden_units = manifolds.check_integer("hidden_units", hidden_units, 1)

    def build_generator(self, dim):
        if self.gate_inputs == "state":
            add_gate_networks(self, self.num_gates, dim, self.hidden_units)
            return
        k, features = self.num_gates, 4
        self._add("gates", (k,), keras.initializers.Constant(1.0 / k))
        stddev = 1.0 / math.sqrt(features * dim)
        self._add(
            "gate_kernels",
            (k, features, dim, dim),
            keras.initializers.RandomNormal(stddev=stddev, seed=self._initializer_seed(1)),
        )

    def prepare(self, params):
        params = super().prepare(params)
        if self.gate_inputs == "state":
            networks = prepare_gate_networks(params)
            params.update({f"networks.{name}": networks[name] for name in GATE_NETWORK_WEIGHTS})
        return params

    def generators(self, params, times):
        """B(t) for every t in `times` at once: (..., len(times), d, d); time gates only."""
        dtype = self.variable_dtype
        if tf.is_tensor(times):  # the time of a `tf.while_loop` step
            phi = tf.cast(time_features_tensor(tf.cast(times, tf.float64), self.horizon), dtype)
        else:
            phi = tf.constant(time_features(np.asarray(times, np.float64), self.horizon), dtype)
        a = tf.cast(params["gates"], dtype)
        theta = tf.cast(params["gate_kernels"], dtype)
        f = tf.einsum("...k,...kfij,nf->...nij", a, theta, phi)
        return f - tf.linalg.matrix_transpose(f)

    def generator(self, params, t, w):
        if self.gate_inputs == "time":
            return self.generators(params, tf.reshape(t, [1]) if tf.is_tensor(t) else [t])[..., 0, :, :]
        shape = _shape(w)
        networks = {name: params[f"networks.{name}"] for name in GATE_NETWORK_WEIGHTS}
        f = gate_networks(networks, tf.reshape(w, shape[:-2] + [1, shape[-2] * shape[-1]]))
        f = tf.reshape(f, shape)
        return f - tf.linalg.matrix_transpose(f)

    def trajectory(self, num_steps, step_size, params=None):
        if self.gate_inputs != "time" or not isinstance(self._integrator, integrators.LieEuler):
            return super().trajectory(num_steps, step_size, params)
        params = self.param_dict() if params is None else params
        generators = step_size * self.generators(params, np.arange(num_steps) * step_size)
        steps = _squared_steps_corrected(self._integrator.exp(generators), generators, self.retraction)
        w = tf.cast(params["w0"], self.variable_dtype)
        trajectory = [w]
        # unstack, not N slices: their gradients would be N dense (..., N, d, d) tensors
        for i, step in enumerate(tf.unstack(steps, axis=-3)):
            w = _corrected(tf.matmul(w, step), i)
            trajectory.append(w)
        return tf.stack(trajectory, axis=-3)

    def get_config(self):
        return {
            **super().get_config(),
            "num_gates": self.num_gates,
            "horizon": self.horizon,
            "gate_inputs": self.gate_inputs,
            "hidden_units": self.hidden_units,
        }


def check_gate_inputs(gate_inputs):
    return check_choice("gate_inputs", gate_inputs, GATE_INPUTS)


@keras.saving.register_keras_serializable(package="keras_odetoode")
class TrigonometricFlow(AbstractParameterFlow):
    """NANODE (Davis et al. 2020): W(t) = A₀ + Σⱼ Aⱼ cos(2πjt/T) + Bⱼ sin(2πjt/T), j ≤ k.

    Args:
        degree: k ≥ 0, the degree of the trigonometric polynomials.
        horizon: T.
    """

    def __init__(self, degree=1, horizon=1.0, **kwargs):
        super().__init__(**kwargs)
        self.degree = manifolds.check_integer("degree", degree, 0)
        self.horizon = float(horizon)

    def build(self, dim):
        terms = 2 * self.degree + 1
        stddev = 1.0 / math.sqrt(dim * terms)
        self._add(
            "coefficients",
            (terms, dim, dim),
            keras.initializers.RandomNormal(stddev=stddev, seed=self._initializer_seed(0)),
        )
        self.built = True

    def basis(self, times):
        """(len(times), 2k+1): 1, cos(2πjt/T), sin(2πjt/T) for j = 1…k."""
        times = np.asarray(times, np.float64)[:, None]
        j = np.arange(1, self.degree + 1)[None, :] * 2.0 * math.pi / self.horizon
        return np.concatenate([np.ones_like(times), np.cos(j * times), np.sin(j * times)], axis=1)

    def trajectory(self, num_steps, step_size, params=None):
        params = self.param_dict() if params is None else params
        basis = tf.constant(self.basis(np.arange(num_steps + 1) * step_size), self.variable_dtype)
        coefficients = tf.cast(params["coefficients"], self.variable_dtype)
        return tf.einsum("nj,...jab->...nab", basis, coefficients)

    def get_config(self):
        return {**super().get_config(), "degree": self.degree, "horizon": self.horizon}


@keras.saving.register_keras_serializable(package="keras_odetoode")
class HyperFlow(AbstractParameterFlow):
    """HyperNet (ANODEV2, Zhang et al. 2019): d vec(W)/dt = Σₖ aₖ gₖ(vec W).

    Each gₖ is an MLP with two hidden layers of `hidden_units` (tanh), from d²
    to d². The coupled ODE is integrated by Euler with the main flow's step;
    W_t is unconstrained (not on O(d)), as in the paper.

    Args:
        num_gates: K ≥ 1.
        hidden_units: width of the two hidden layers (16 in the paper).
    """

    def __init__(self, num_gates=1, hidden_units=16, **kwargs):
        super().__init__(**kwargs)
        self.num_gates = manifolds.check_integer("num_gates", num_gates, 1)
        self.hidden_units = manifolds.check_integer("hidden_units", hidden_units, 1)

    def build(self, dim):
        self._add("w0", (dim, dim), manifolds.HaarStiefel(self._initializer_seed(0)))
        add_gate_networks(self, self.num_gates, dim, self.hidden_units)
        self.built = True

    def velocity(self, params, vec_w):
        """Σₖ aₖ gₖ(vec W) for vec_w of shape (..., d²)."""
        return gate_networks(self._networks(params), vec_w[..., tf.newaxis, :])[..., 0, :]

    def _networks(self, params):
        return prepare_gate_networks({name: tf.cast(value, self.variable_dtype) for name, value in params.items()})

    def trajectory(self, num_steps, step_size, params=None):
        params = self.param_dict() if params is None else params
        networks = self._networks(params)
        w0 = tf.cast(params["w0"], self.variable_dtype)
        shape = _shape(w0)
        v = tf.reshape(w0, shape[:-2] + [1, shape[-2] * shape[-1]])  # vec W as a row
        trajectory = [v]
        for _ in range(num_steps):
            v = v + step_size * gate_networks(networks, v)
            trajectory.append(v)
        return tf.reshape(tf.concat(trajectory, axis=-2), shape[:-2] + [num_steps + 1] + shape[-2:])

    def get_config(self):
        return {**super().get_config(), "num_gates": self.num_gates, "hidden_units": self.hidden_units}


ORTHOGONAL_FLOWS = {"isospectral": IsospectralFlow, "gated": GatedFlow}
