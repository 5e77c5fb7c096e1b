"""ES overhead and scaling, measured side by side in one run.

1. Overhead: one ES iteration (k perturbations + the centre, `--steps` steps,
   ODEtoODE hidden 16, in-process) against stepping the same number of
   environments the same number of steps with a constant action, and against
   replaying the iteration's own actions in a plain loop (same physics), and
   against a plain-numpy ODEtoODE policy run on the same members in a plain
   loop (`numpy_policy`, the simulator floor for a hand-written policy).
   Goal ≤ 1.10×.
2. Scaling: the same ES iteration with 2 workers vs 1, for local processes and
   for Ray actors, in each of `--rounds` rounds. Goal ≥ 1.7× (needs 2 otherwise
   idle cores).
3. Pipelining in worker processes: the same ES iteration with 2 local processes,
   each splitting its members into 2 chunks whose policy calls overlap with the
   other chunk's environment steps (`RolloutWorker`'s `pipeline_chunks`) against
   1 chunk, `ProcessBackend`'s default.

    MUJOCO_GL=disable python benchmarks/es_overhead.py [--perturbations 200] [--steps 1000] [--rounds 3]

Timings exclude start-up and compilation (one warm-up iteration each). The four
overhead timings, and the 1- and 2-worker timings, are taken back to back in
each of `--rounds` rounds; each ratio is per round, and the median is printed
with every round's value (the machine's speed drifts by ±15 % over a minute).
Overhead ratios compare time per environment step: where episodes can terminate
(Hopper, Walker2d, Humanoid), the two sides take different numbers of steps.
"""

import argparse
import functools
import os
import time

os.environ.setdefault("MUJOCO_GL", "disable")
# One BLAS thread (set before numpy loads), as every ES worker has one TF thread: on a
# busy 2-core machine OpenBLAS's second thread stalls even 16×16 products (scipy's expm
# in `numpy_policy`: ~1 ms a call on average instead of 12 µs).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import scipy.linalg

from keras_odetoode import flows
from keras_odetoode.es import backends, envs, policies, rollouts, trainer
from keras_odetoode.es.normalization import EPSILON, ObsStats


def constant_action_seconds(env_fn, members, steps):
    env_list = [env_fn() for _ in range(members)]
    action = np.zeros(env_list[0].action_space.shape, env_list[0].action_space.dtype)
    for i, env in enumerate(env_list):
        env.reset(seed=i)
    start = time.perf_counter()
    done = np.zeros(members, bool)
    taken = 0
    for _ in range(steps):
        for i, env in enumerate(env_list):
            if not done[i]:
                *_, terminated, truncated, _ = env.step(action)
                done[i] = terminated or truncated
                taken += 1
    seconds = time.perf_counter() - start
    for env in env_list:
        env.close()
    return seconds, taken


class ActionRecorder(gym.Wrapper):
    """Keeps the reset seed and the actions of the env's last episode."""

    def reset(self, *, seed=None, options=None):
        self.seed, self.actions = seed, []
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.actions.append(np.array(action))
        return self.env.step(action)


def recorded_episodes(env_fn, policy_fn, config):
    """The (seed, actions) of every member's episode in the ES iteration that `es_iteration_seconds` times."""
    recorders = []

    def recording_env():
        recorders.append(ActionRecorder(env_fn()))
        return recorders[-1]

    with backends.InProcessBackend(recording_env, policy_fn) as backend:
        es_iteration_seconds(backend, config, policy_fn)
    return [(r.seed, r.actions) for r in recorders]


def replay_seconds(env_fn, episodes):
    """Step fresh environments through recorded episodes in a plain loop, members in turn each step.

    Same initial states, same actions, so the same physics as the ES iteration:
    what is left over this is the cost of our code.
    """
    env_list = [env_fn() for _ in episodes]
    for env, (seed, _) in zip(env_list, episodes):
        env.reset(seed=seed)
    pairs = list(zip(env_list, (actions for _, actions in episodes)))
    start = time.perf_counter()
    for t in range(max(len(actions) for _, actions in episodes)):
        for env, actions in pairs:
            if t < len(actions):
                env.step(actions[t])
    seconds = time.perf_counter() - start
    for env in env_list:
        env.close()
    return seconds, sum(len(actions) for _, actions in episodes)


def es_iteration_seconds(backend, config, policy_fn, repeats=1):
    policy = rollouts.PopulationPolicy(policy_fn())
    strategy = config.strategy(policy.specs)
    state = strategy.init(policy.get_params(), seed=config.seed)
    stats = ObsStats.empty(policy.input_dim)
    warm = trainer.ESConfig(**{**config.to_dict(), "episode_length": 5})
    trainer.es_iteration(strategy, state, stats, backend, warm)  # start-up, tracing, XLA compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, _, result, _ = trainer.es_iteration(strategy, state, stats, backend, config)
        times.append(time.perf_counter() - start)
    return min(times), int(result.lengths.sum())


def es_members(config, policy_fn):
    """The members and env seeds of the ES iteration that `es_iteration_seconds` times.

    As `trainer.es_iteration` builds them from the same strategy, initial state
    and seed: the k perturbations, then the centre, as {name: float64 array} each.
    """
    policy = rollouts.PopulationPolicy(policy_fn())
    strategy = config.strategy(policy.specs)
    state = strategy.init(policy.get_params(), seed=config.seed)
    population, _ = strategy.ask(state)
    k = strategy.num_perturbations
    keys = np.arange(k) // 2 if strategy.antithetic else np.arange(k)
    members = [{n: v[m] for n, v in population.items()} for m in range(k)]
    if config.evaluate_centre:
        members.append(dict(state.params))
        keys = np.append(keys, k)
    return members, rollouts.episode_seeds(state.seed, state.iteration, keys)


def numpy_policy(params, step_size=0.04, horizon=1.0):
    """The ODEtoODE policy of one member in plain numpy (float64): obs (d_obs,) → action (d_act,).

    Isospectral flow, Lie–Euler with `scipy.linalg.expm`, computed once here
    (W₀ … W_N, with the flow's faded polar corrections, which leave a perturbed W₀ off O(d)),
    then per call a = Ω₂ x_N, xᵢ = xᵢ₋₁ + h|Wᵢ xᵢ₋₁ + b|, x₀ = Ω₁ s (Eq. 5).
    Rows times kernels, as the layers: x Ω₁, x Wᵢᵀ, x Ω₂.
    """
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h, num_steps = step_size, round(horizon / step_size)
    q, n, w = p["core/flow.q_matrix"], p["core/flow.n_matrix"], p["core/flow.w0"]
    q, n = 0.5 * (q + q.T), 0.5 * (n + n.T)  # the symmetric parts, as the flow uses them
    eye = np.eye(len(w))
    kernels = []
    for i in range(num_steps):
        an = w.T @ q @ w @ n
        w = w @ scipy.linalg.expm(h * (an - an.T))  # [WᵀQW, N] = AN − NA, NA = (AN)ᵀ
        if (i + 1) % flows.POLAR_CORRECTION_INTERVAL == 0:
            defect = w.T @ w - eye
            gain = max(0.0, 1.0 - np.sum(defect**2) / flows.POLAR_CORRECTION_RADIUS**2)
            w = w @ (eye - 0.5 * gain * defect)
        kernels.append(h * w.T)  # h|Wx + b| = |hWx + hb|, h > 0
    hb = h * p.get("core/bias", 0.0)
    omega_1, omega_2 = p["omega_1/kernel"], p["omega_2/kernel"]
    b_1, b_2 = p.get("omega_1/bias", 0.0), p.get("omega_2/bias", 0.0)

    def act(obs):
        x = obs @ omega_1 + b_1
        for kernel in kernels:
            x = x + np.abs(x @ kernel + hb)
        return x @ omega_2 + b_2

    return act


def check_numpy_policy(policy_fn, members, observations=4, atol=1e-5, seed=0):
    """Assert that `numpy_policy` gives the Keras model's actions for each member (random observations)."""
    policy = rollouts.PopulationPolicy(policy_fn())
    core = policy.model.get_layer("core")
    obs = np.random.default_rng(seed).standard_normal((observations, policy.input_dim))
    for m, member in enumerate(members):
        policy.set_params(member)
        act = numpy_policy(member, core.step_size, core.horizon)
        for s in obs:
            expected = np.asarray(policy.model(s[None].astype(np.float32)))[0]
            np.testing.assert_allclose(act(s), expected, rtol=0, atol=atol, err_msg=f"member {m}")


def numpy_reference_seconds(
    env_fn, member_params, seeds, steps, obs_mean, obs_var, action_space, step_size=0.04, horizon=1.0
):
    """Run every member's episode with `numpy_policy` in a plain loop, member after member.

    Per member: build its policy (the parameter flow, as ES does per rollout),
    reset with its seed, step until terminated/truncated or `steps`, each step
    normalising and clipping as `RolloutWorker.run`. One env, made outside the
    timing. Returns (seconds, env steps).
    """
    env = env_fn()
    mean = np.asarray(obs_mean, np.float64)
    scale = np.maximum(np.sqrt(np.asarray(obs_var, np.float64)), EPSILON)
    low, high = action_space.low, action_space.high
    total = 0
    start = time.perf_counter()
    for params, seed in zip(member_params, seeds):
        act = numpy_policy(params, step_size, horizon)
        obs, _ = env.reset(seed=int(seed))
        for _ in range(steps):
            action = np.clip(act((obs - mean) / scale), low, high).astype(action_space.dtype)
            obs, _, terminated, truncated, _ = env.step(action)
            total += 1
            if terminated or truncated:
                break
    seconds = time.perf_counter() - start
    env.close()
    return seconds, total


def overhead_round(backend, env_fn, policy_fn, config, episodes, reference_args, members):
    """One round of the overhead comparison, its four timings back to back (seconds)."""
    timings = {}
    timings["es"], timings["es_steps"] = es_iteration_seconds(backend, config, policy_fn)
    timings["constant"], timings["constant_steps"] = constant_action_seconds(env_fn, members, config.episode_length)
    timings["replay"], timings["replay_steps"] = replay_seconds(env_fn, episodes)
    timings["reference"], timings["reference_steps"] = numpy_reference_seconds(env_fn, *reference_args)
    timings["simulator"] = backend.worker.simulator_seconds
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Swimmer-v5")
    parser.add_argument("--perturbations", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Rounds of the four overhead timings, back to back; ratios are per round, then the median.",
    )
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()

    info = envs.env_info(args.env)
    env_fn = envs.env_factory(args.env, args.steps)
    policy_fn = functools.partial(
        policies.build_policy, "odetoode", info.obs_dim, info.act_dim, hidden=args.hidden, seed=0
    )
    config = trainer.ESConfig(args.env, perturbations=args.perturbations, episode_length=args.steps, seed=0)
    members = args.perturbations + 1  # + the centre

    episodes = recorded_episodes(env_fn, policy_fn, config)
    # The very members and seeds of the timed ES iteration (same strategy, state and seed),
    # with its frozen normalisation: fresh statistics, mean 0 and variance 1.
    member_params, seeds = es_members(config, policy_fn)
    check_numpy_policy(policy_fn, [member_params[0], member_params[-1]])  # a perturbation and the centre
    obs_mean, obs_var = ObsStats.empty(info.obs_dim).normalizer()
    probe = env_fn()
    space = probe.action_space
    probe.close()
    reference_args = (member_params, seeds, args.steps, obs_mean, obs_var, space)
    # The machine's speed drifts by ±15 % over a minute here: each round times the four
    # back to back, so that each ratio compares timings taken close together.
    rounds = []
    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        for _ in range(args.rounds):
            rounds.append(overhead_round(backend, env_fn, policy_fn, config, episodes, reference_args, members))

    def seconds(key):
        return ", ".join(f"{r[key]:.2f}s" for r in rounds)

    def ratios(numerator, denominator):
        # Per environment step: on tasks that terminate, the two sides' episodes end at different times.
        values = [
            (r[numerator] / r[f"{numerator}_steps"]) / (r[denominator] / r[f"{denominator}_steps"]) for r in rounds
        ]
        return float(np.median(values)), " ".join(f"{v:.3f}" for v in values)

    print(
        f"{args.env}: k={args.perturbations}+1, {args.steps} steps, ODEtoODE hidden {args.hidden}, "
        f"{args.rounds} rounds (median, then each round)"
    )
    print(
        f"  ES iteration: {seconds('es')} ({rounds[0]['es_steps']} env steps; "
        f"inside env.reset/step: {seconds('simulator')})"
    )
    median, each = ratios("es", "constant")
    print(f"  overhead vs the constant action ({seconds('constant')}): ratio {median:.3f}× [{each}] (goal ≤ 1.10×)")
    # MuJoCo's cost per step depends on the motion: a constant action keeps the body still
    # or pressed against one joint limit, the policy's actions do not. Replaying the
    # iteration's own actions in a plain loop gives the simulator floor for the same physics.
    median, each = ratios("es", "replay")
    print(
        f"  overhead vs replaying the same episodes' actions in a plain loop ({seconds('replay')}): "
        f"ratio {median:.3f}× [{each}]"
    )
    # What a policy that cost nothing would measure against the constant action.
    median, each = ratios("replay", "constant")
    print(
        f"  simulator floor: the replay vs the constant action {median:.3f}× [{each}] "
        f"(a policy of zero cost would measure this)"
    )
    median, each = ratios("reference", "constant")
    per_step = np.median([1e6 * r["reference"] / r["reference_steps"] for r in rounds])
    print(
        f"  numpy reference policy, plain loop: ratio vs constant action {median:.3f}× [{each}] "
        f"({rounds[0]['reference_steps']} env steps, {per_step:.0f} µs each)"
    )
    median, each = ratios("es", "reference")
    print(f"  ES / numpy reference: {median:.3f}× [{each}]")

    if not args.no_scaling:
        kinds = [("local processes", lambda n: backends.ProcessBackend(env_fn, policy_fn, workers=n))]
        if not args.no_ray:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            kinds.append(("ray actors", lambda n: backends.RayBackend(env_fn, policy_fn, workers=n)))
        for name, make in kinds:
            speed_ups, times = [], []
            for _ in range(args.rounds):  # 1 worker then 2, back to back in each round
                seconds = {}
                for n in (1, 2):
                    with make(n) as backend:
                        seconds[n], _ = es_iteration_seconds(backend, config, policy_fn)
                speed_ups.append(seconds[1] / seconds[2])
                times.append(f"{seconds[1]:.2f}s/{seconds[2]:.2f}s")
            print(
                f"  scaling, {name}: 1 worker / 2 workers {', '.join(times)} → speed-up "
                f"{np.median(speed_ups):.2f}× [{' '.join(f'{v:.2f}' for v in speed_ups)}] (goal ≥ 1.7×)"
            )
        rounds_seconds = []
        for _ in range(args.rounds):  # 2 chunks then 1, back to back in each round
            seconds = {}
            for chunks in (2, 1):
                with backends.ProcessBackend(env_fn, policy_fn, workers=2, pipeline_chunks=chunks) as backend:
                    seconds[chunks], _ = es_iteration_seconds(backend, config, policy_fn)
            rounds_seconds.append(seconds)
        ratios_2_1 = [s[2] / s[1] for s in rounds_seconds]
        print(
            "  pipelining, 2 local processes: 2 chunks / 1 chunk each "
            f"{', '.join(f'{s[2]:.2f}s/{s[1]:.2f}s' for s in rounds_seconds)} → "
            f"{np.median(ratios_2_1):.2f}× [{' '.join(f'{v:.2f}' for v in ratios_2_1)}] (above 1: 1 chunk is faster)"
        )
    print(f"  (cores visible: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
