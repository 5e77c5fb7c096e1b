"""Batched ES rollouts: a whole population of perturbed policies, batched TF calls per step.

`PopulationPolicy` wraps a Keras policy whose layers follow the package
contract (`layer.param_dict()`, `layer.forward(params, x)` with an optional
leading population axis P). Per rollout it computes the parameter flows of
every member once (`layer.solver_weights(params)`: W₀ … W_N of all P members in
one batched call), then per environment step runs only the main flow, batched
over the members in one compiled `tf.function`. That function is called once per
step for each of `PIPELINE_CHUNKS` (2) contiguous chunks of the population,
dispatched asynchronously so that one chunk's actions are computed on a second
core while the other chunk's environments step (`pipeline_chunks=1`: one call per
step for the whole population, what worker processes take: one core each has none to
spare). Results do not depend on the chunking.

`RolloutWorker` owns the environments (kept alive between iterations) and runs
one episode per member: environments are stepped in a loop over the members
still running, finished members stop accumulating reward, actions are clipped
to the action space, and a NaN/inf reward, observation or action ends the
member's episode and flags it (the ES update then ranks it worst).
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from keras_odetoode.checks import check_integer
from keras_odetoode.es import normalization
from keras_odetoode.es import strategy as strategy_lib

SEPARATOR = "/"
# Members per rollout are split into this many chunks, so that one chunk's policy
# call runs while another chunk's environments step (`RolloutWorker.run`).
PIPELINE_CHUNKS = 2


def episode_seeds(seed, iteration, keys):
    """Environment seeds, a pure function of (seed, iteration, key) for each key.

    Members of an antithetic pair share a key (common random numbers: both
    sides of the finite difference see the same initial state).
    """
    return np.array(
        [np.random.SeedSequence([int(seed), 1, int(iteration), int(k)]).generate_state(1)[0] for k in keys],
        dtype=np.int64,
    )


class PopulationPolicy:
    """Evaluates P parameter sets of one Keras policy in one call.

    Args:
        model: a built Keras model whose layers (in order) are package layers
            with `param_dict`/`forward`, or layers without weights (activations).

    Parameters are named "<layer name>/<param name>".
    """

    def __init__(self, model):
        if not isinstance(model, keras.Model):
            raise ValueError(f"policy must be a keras.Model. Received: {type(model).__name__}")
        if not model.built:
            raise ValueError(f"policy {model.name!r} must be built (give it a keras.Input).")
        self.model = model
        self.layers = []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if hasattr(layer, "param_dict") and hasattr(layer, "forward"):
                self.layers.append(layer)
            elif not layer.weights:
                self.layers.append(layer)
            else:
                raise ValueError(
                    f"ES evaluates a population in one call through `layer.forward(params, x)`; layer "
                    f"{layer.name!r} ({type(layer).__name__}) has weights but no param_dict/forward. "
                    "Use the keras_odetoode.layers layers (e.g. StiefelDense instead of Dense)."
                )
        self._variables = {}
        for layer in self.layers:
            if hasattr(layer, "param_dict"):
                for key, variable in layer.param_dict().items():
                    self._variables[f"{layer.name}{SEPARATOR}{key}"] = variable
        self.specs = strategy_lib.specs_from_variables(self._variables)
        self.input_dim = int(model.inputs[0].shape[-1])
        self.output_dim = int(model.outputs[0].shape[-1])

    @property
    def num_params(self):
        return sum(s.size for s in self.specs)

    def variables(self):
        """{name: keras.Variable} of the policy, in ES order."""
        return dict(self._variables)

    def get_params(self):
        """The current weights as {name: float64 array}."""
        return {name: np.asarray(v.numpy(), np.float64) for name, v in self._variables.items()}

    def set_params(self, params):
        """Assign {name: array} to the model's variables (e.g. a member, or the best centre)."""
        for name, variable in self._variables.items():
            variable.assign(np.asarray(params[name], variable.dtype))

    def _layer_params(self, layer, params):
        prefix = layer.name + SEPARATOR
        return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}

    def prepare(self, params):
        """Per-rollout precomputation: the parameter flows W₀ … W_N of every member."""
        prepared = {}
        for layer in self.layers:
            if hasattr(layer, "solver_weights"):
                prepared[layer.name] = layer.solver_weights(self._layer_params(layer, params))
        return prepared

    def apply(self, params, prepared, x):
        """The policy on x (P, B, d) or (B, d) with `prepare`d flows."""
        for layer in self.layers:
            if not hasattr(layer, "forward"):
                x = layer(x)
            elif layer.name in prepared:
                x = layer.forward(self._layer_params(layer, params), x, weights=prepared[layer.name])
            else:
                x = layer.forward(self._layer_params(layer, params), x)
        return x

    def forward(self, params, x):
        """The policy for explicit params (optionally with a population axis)."""
        return self.apply(params, self.prepare(params), x)


@dataclasses.dataclass
class RolloutResult:
    """Per-member outcome of one episode each (arrays with leading axis P).

    `returns` is NaN for members flagged `nonfinite`. `obs_count/obs_sum/obs_sumsq`
    are the observation statistics of the member's episode (for normalization).
    """

    returns: np.ndarray
    lengths: np.ndarray
    nonfinite: np.ndarray
    obs_count: np.ndarray
    obs_sum: np.ndarray
    obs_sumsq: np.ndarray

    @classmethod
    def concatenate(cls, results):
        return cls(*(np.concatenate([getattr(r, f.name) for r in results]) for f in dataclasses.fields(cls)))

    def __len__(self):
        return len(self.returns)


class RolloutWorker:
    """Environments plus a compiled population policy; runs one episode per member.

    Args:
        env_fn: zero-argument callable returning a gymnasium env (see `envs.env_factory`).
        policy_fn: zero-argument callable returning the built Keras policy.
        jit_compile: compile the per-step policy with XLA (3–5× faster for the
            25-step ODE policies: it fuses the small batched matmuls).
        pipeline_chunks: chunks of the population whose policy calls overlap with
            the other chunks' environment steps (None: `PIPELINE_CHUNKS`). It needs a
            core to spare: a worker process that has one core to itself takes 1.
    """

    def __init__(self, env_fn, policy_fn, jit_compile=True, pipeline_chunks=None):
        self.pipeline_chunks = check_integer("pipeline_chunks", pipeline_chunks, 1, allow_none=True)
        self.env_fn = env_fn
        self.policy = PopulationPolicy(policy_fn())
        self.jit_compile = bool(jit_compile)
        self.envs = []
        #: seconds spent inside `env.reset`/`env.step` by the last `run`: the simulator floor
        self.simulator_seconds = 0.0
        # One trace each, with the population axis left unknown: the same graph
        # serves every population size, so a member's actions do not depend on
        # how many other members share its worker.
        specs = {s.name: tf.TensorSpec((None,) + s.shape, tf.float32) for s in self.policy.specs}
        self._prepare = tf.function(self.policy.prepare, input_signature=[specs], autograph=False)
        prepared = self._prepare.get_concrete_function().structured_outputs
        prepared_specs = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in prepared.items()}
        dim = self.policy.input_dim
        self._act = tf.function(
            self._act_impl,
            input_signature=[
                specs,
                prepared_specs,
                tf.TensorSpec((None, dim), tf.float32),
                tf.TensorSpec((dim,), tf.float32),
                tf.TensorSpec((dim,), tf.float32),
            ],
            jit_compile=self.jit_compile,
            autograph=False,
        )

    def _act_impl(self, params, prepared, obs, mean, variance):
        x = (obs - mean) / tf.maximum(tf.sqrt(variance), normalization.EPSILON)
        return self.policy.apply(params, prepared, x[:, tf.newaxis, :])[:, 0, :]

    def _ensure_envs(self, count):
        while len(self.envs) < count:
            self.envs.append(self.env_fn())

    def close(self):
        for env in self.envs:
            env.close()
        self.envs = []

    def run(self, population, seeds, obs_mean, obs_variance, max_steps):
        """One episode for each of the P members.

        The members are split into `pipeline_chunks` contiguous chunks whose
        policy calls are dispatched asynchronously: while TensorFlow computes
        one chunk's actions (on another core), Python steps the other
        chunk's environments. Each chunk is still one call per step for all
        its members, and a member's actions do not depend on the split.

        Args:
            population: {name: (P, *shape)} parameter sets (cast to float32).
            seeds: (P,) environment reset seeds.
            obs_mean, obs_variance: frozen normalization statistics, shape (obs_dim,).
            max_steps: episode cap (the env's own time limit applies too).

        Returns:
            `RolloutResult`.
        """
        seeds = np.asarray(seeds)
        size = len(seeds)
        params = {name: tf.constant(np.asarray(population[name], np.float32)) for name in self.policy.variables()}
        mean = tf.constant(np.asarray(obs_mean, np.float32))
        variance = tf.constant(np.asarray(obs_variance, np.float32))
        if size == 1:
            # Prepared as two copies: the batched matmuls of a population of 1 take another
            # kernel on some CPUs (its last bits differ), and a member's flows must not
            # depend on how the population is split between workers.
            twice = self._prepare({k: tf.concat([v, v], axis=0) for k, v in params.items()})
            prepared = tf.nest.map_structure(lambda v: v[:1], twice)
        else:
            prepared = self._prepare(params)
        # The concrete function, called with tensors: skips `tf.function`'s
        # per-call argument binding (~250 µs here, ~3% of a k = 200 step).
        act = self._act.get_concrete_function()
        self._ensure_envs(size)
        envs = self.envs[:size]
        space = envs[0].action_space
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        # Chunks of at least 2 members, and a lone member evaluated twice: XLA compiles a
        # population of 1 differently (its last bits differ), and a member's actions
        # must not depend on how the population is split between workers and chunks.
        chunks_wanted = PIPELINE_CHUNKS if self.pipeline_chunks is None else self.pipeline_chunks
        num_chunks = max(1, min(chunks_wanted, size // 2))
        bounds = np.linspace(0, size, num_chunks + 1).astype(int)
        chunks = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        rows = [np.repeat(c, 2) if len(c) == 1 else c for c in chunks]
        chunk_params = [
            (
                {k: tf.gather(v, r) for k, v in params.items()},
                tf.nest.map_structure(lambda v, r=r: tf.gather(v, r), prepared),
            )
            for r in rows
        ]

        dim = self.policy.input_dim
        obs = np.zeros((size, dim))
        returns = np.zeros(size)
        lengths = np.zeros(size, np.int64)
        nonfinite = np.zeros(size, bool)
        active = np.ones(size, bool)
        counts = np.zeros(size)
        sums = np.zeros((size, dim))
        sumsq = np.zeros((size, dim))
        simulator_start = time.perf_counter()
        for i, env in enumerate(envs):
            o, _ = env.reset(seed=int(seeds[i]))
            o = np.asarray(o, np.float64).reshape(-1)
            if o.shape != (dim,):
                raise ValueError(
                    f"The policy expects observations of size {dim}. Received: shape {o.shape} from {env.spec.id}"
                )
            if not np.isfinite(o).all():
                nonfinite[i], active[i] = True, False
            obs[i] = o
        simulator = time.perf_counter() - simulator_start

        def dispatch(c):
            # A fresh float32 copy: TensorFlow may alias it, and `obs` changes while the call is queued.
            x = tf.constant(np.array(obs[rows[c]], np.float32))
            return act(*chunk_params[c], x, mean, variance)

        synchronous = tf.config.experimental.get_synchronous_execution()
        tf.config.experimental.set_synchronous_execution(False)
        try:
            pending = [dispatch(c) for c in range(len(chunks))]
            for _ in range(int(max_steps)):
                if not active.any():
                    break
                for c, members in enumerate(chunks):
                    running = members[active[members]]
                    if running.size == 0:
                        continue
                    counts[running] += 1
                    sums[running] += obs[running]
                    sumsq[running] += obs[running] ** 2
                    actions = pending[c].numpy()
                    finite_action = np.isfinite(actions).all(axis=1)
                    actions = actions[: len(members)]
                    actions = np.clip(actions, low, high).astype(space.dtype).reshape((len(members),) + space.shape)
                    offset = members[0]
                    stepped = running[finite_action[running - offset]]
                    ended = np.zeros(size, bool)
                    rewards = np.zeros(size)
                    simulator_start = time.perf_counter()
                    # the simulator: the only per-member Python left
                    outcomes = [envs[i].step(a) for i, a in zip(stepped, actions[stepped - offset])]
                    simulator += time.perf_counter() - simulator_start
                    if outcomes:
                        o, r, terminated, truncated, _ = zip(*outcomes)
                        obs[stepped] = np.reshape(o, (len(stepped), dim))
                        rewards[stepped] = r
                        ended[stepped] = np.logical_or(terminated, truncated)
                    # NaN/inf checks once per step for the whole chunk
                    bad = np.zeros(size, bool)
                    bad[running] = ~finite_action[running - offset]
                    bad[stepped] |= ~(np.isfinite(rewards[stepped]) & np.isfinite(obs[stepped]).all(axis=1))
                    good = stepped[~bad[stepped]]
                    returns[good] += rewards[good]
                    lengths[good] += 1
                    nonfinite |= bad
                    active &= ~(bad | ended)
                    if active[members].any():
                        pending[c] = dispatch(c)  # computed while the next chunk's envs step
        finally:
            tf.config.experimental.set_synchronous_execution(synchronous)
        returns[nonfinite] = np.nan
        self.simulator_seconds = simulator
        return RolloutResult(returns, lengths, nonfinite, counts, sums, sumsq)
