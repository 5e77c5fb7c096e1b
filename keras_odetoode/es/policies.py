"""ES policies of paper §5.1: a neural ODE (or baseline) between two Stiefel projections.

Every policy is `keras.Sequential([Input(obs_dim), StiefelDense(hidden) "omega_1",
core "core", StiefelDense(act_dim) "omega_2"])` — Eq. 5 for ODEtoODE
(a = Ω₂ x_N, x₀ = Ω₁ s) — and differs only in the core:

| name         | core                                                   |
|--------------|--------------------------------------------------------|
| `odetoode`   | `ODEtoODE(flow="isospectral" or "gated")`, h = 0.04, T = 1 |
|              | (gated: gates of the time, or of W_t with `gate_inputs="state"`) |
| `deepnet`    | `DeepNet(25)`                                          |
| `deepresnet` | `DeepResNet(25)`                                       |
| `baseode`    | `NeuralODE` (autonomous, MLP with two hidden layers)   |
| `nanode`     | `NANODE(degree=5)`                                     |
| `hypernet`   | `HyperNetODE` (hidden units 16)                        |

Layer names are fixed so that every process building the same policy names
its parameters the same way ("omega_1/kernel", "core/flow.w0", ...).
"""

import keras

from keras_odetoode import layers
from keras_odetoode.checks import check_choice, check_integer

POLICIES = ("odetoode", "deepnet", "deepresnet", "baseode", "nanode", "hypernet")


def _core(name, hidden, step_size, horizon, flow, num_gates, gate_inputs, depth, degree, seed):
    ode = dict(step_size=step_size, horizon=horizon, seed=seed, name="core")
    if name == "odetoode":
        return layers.ODEtoODE(flow=flow, num_gates=num_gates, gate_inputs=gate_inputs, **ode)
    if name == "deepnet":
        return layers.DeepNet(depth, seed=seed, name="core")
    if name == "deepresnet":
        return layers.DeepResNet(depth, seed=seed, name="core")
    if name == "baseode":
        return layers.NeuralODE(hidden_units=hidden, **ode)
    if name == "nanode":
        return layers.NANODE(degree=degree, **ode)
    return layers.HyperNetODE(num_gates=num_gates, hidden_units=16, **ode)


def build_policy(
    name,
    obs_dim,
    act_dim,
    hidden=16,
    step_size=0.04,
    horizon=1.0,
    flow="isospectral",
    num_gates=1,
    gate_inputs="time",
    depth=25,
    degree=5,
    match_params=False,
    seed=None,
):
    """The ES policy `name` as a built Keras model.

    Args:
        name: one of `POLICIES`.
        obs_dim, act_dim: observation and action sizes.
        hidden: width of the embedding (16; 64 for Humanoid in the paper).
        step_size, horizon: h and T of the ODE cores (0.04 and 1: N = 25).
        flow: "isospectral" (default) or "gated" for `odetoode`.
        num_gates: gates of the gated flow / HyperNet.
        gate_inputs: what the gated flow's networks read: "time" (default)
            or "state", W_t itself (the paper's gated-ODEtoODE, Sec. 3.1;
            see `layers.ODEtoODE`). Only with `odetoode` and flow "gated".
        depth: layers of `deepnet` / blocks of `deepresnet` (25).
        degree: trigonometric degree of `nanode` (5).
        match_params: for a baseline, use the smallest hidden width whose
            parameter count is at least ODEtoODE's at `hidden` (§5.1.1);
            HyperNet keeps hidden 16 as in the paper.
        seed: initialisation seed (None: random).

    Returns:
        A `keras.Sequential`; `model.count_params()` is its parameter count.
    """
    check_choice("policy", name, POLICIES)
    obs_dim = check_integer("obs_dim", obs_dim, 1)
    act_dim = check_integer("act_dim", act_dim, 1)
    hidden = check_integer("hidden", hidden, 1)
    if gate_inputs != "time" and (name, flow) != ("odetoode", "gated"):
        raise ValueError(
            "gate_inputs is an option of the gated ODEtoODE policy. Received: "
            f"policy={name!r}, flow={flow!r}, gate_inputs={gate_inputs!r}. "
            "Expected: policy 'odetoode' with flow 'gated', or no gate_inputs"
        )
    options = dict(
        step_size=step_size,
        horizon=horizon,
        flow=flow,
        num_gates=num_gates,
        gate_inputs=gate_inputs,
        depth=depth,
        degree=degree,
    )
    if match_params and name not in ("odetoode", "hypernet"):
        hidden = matched_hidden(name, obs_dim, act_dim, hidden, **options)
    seeds = (None, None, None) if seed is None else (seed, seed + 1, seed + 2)
    return keras.Sequential(
        [
            keras.Input((obs_dim,), name="observation"),
            layers.StiefelDense(hidden, seed=seeds[0], name="omega_1"),
            _core(name, hidden, seed=seeds[1], **options),
            layers.StiefelDense(act_dim, seed=seeds[2], name="omega_2"),
        ],
        name=f"{name}_policy",
    )


def count_params(name, obs_dim, act_dim, hidden=16, **options):
    """Number of parameters of `build_policy(name, obs_dim, act_dim, hidden, **options)`."""
    return build_policy(name, obs_dim, act_dim, hidden, seed=0, **options).count_params()


def matched_hidden(name, obs_dim, act_dim, hidden=16, **options):
    """Smallest width whose `name` policy has ≥ the parameters of ODEtoODE at `hidden`.

    `options` are `build_policy`'s; the ODEtoODE policy takes all of them, the
    `name` policy all but `gate_inputs`.
    """
    target = count_params("odetoode", obs_dim, act_dim, hidden, **options)
    options = {key: value for key, value in options.items() if key != "gate_inputs"}
    low, high = 1, max(hidden, 1)
    while count_params(name, obs_dim, act_dim, high, **options) < target:
        low, high = high + 1, 2 * high
    while low < high:  # counts grow with the width: bisect
        mid = (low + high) // 2
        if count_params(name, obs_dim, act_dim, mid, **options) >= target:
            high = mid
        else:
            low = mid + 1
    return high


#: Name of the normalization layer in front of a served policy.
OBSERVATION_NORMALIZATION = "observation_normalization"


def serving_policy(policy_fn, params, obs_mean, obs_variance):
    """The policy as it is served: raw observations → normalization → policy with `params`.

    Args:
        policy_fn: zero-argument callable building the policy (`build_policy`).
        params: the parameters to serve, by `rollouts.PopulationPolicy` name.
        obs_mean, obs_variance: the observation normalization they were evaluated with.

    Returns:
        A functional `keras.Model` "es_policy" with input "observation".
    """
    import numpy as np

    from keras_odetoode.es import rollouts

    model = policy_fn()
    population = rollouts.PopulationPolicy(model)
    population.set_params(params)
    inputs = keras.Input((population.input_dim,), name="observation")
    normalized = keras.layers.Normalization(
        mean=np.asarray(obs_mean, np.float32),
        variance=np.asarray(obs_variance, np.float32),
        name=OBSERVATION_NORMALIZATION,
    )(inputs)
    return keras.Model(inputs, model(normalized), name="es_policy")
