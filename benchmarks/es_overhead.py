"""ES overhead and scaling, measured side by side in one run.

1. Overhead: one ES iteration (k perturbations + the centre, `--steps` steps,
   ODEtoODE hidden 16, in-process) against stepping the same number of
   environments the same number of steps with a constant action, and against
   replaying the iteration's own actions in a plain loop (same physics).
   Goal ≤ 1.10×.
2. Scaling: the same ES iteration with 2 workers vs 1, for local processes and
   for Ray actors. Goal ≥ 1.7× (needs 2 otherwise idle cores).

    MUJOCO_GL=disable python benchmarks/es_overhead.py [--perturbations 200] [--steps 1000]

Timings exclude start-up and compilation (one warm-up iteration each).
"""

import argparse
import functools
import os
import time

os.environ.setdefault("MUJOCO_GL", "disable")

import gymnasium as gym
import numpy as np

from keras_odetoode.es import backends, envs, policies, rollouts, trainer
from keras_odetoode.es.normalization import ObsStats


def constant_action_seconds(env_fn, members, steps):
    env_list = [env_fn() for _ in range(members)]
    action = np.zeros(env_list[0].action_space.shape, env_list[0].action_space.dtype)
    for i, env in enumerate(env_list):
        env.reset(seed=i)
    start = time.perf_counter()
    done = np.zeros(members, bool)
    for _ in range(steps):
        for i, env in enumerate(env_list):
            if not done[i]:
                *_, terminated, truncated, _ = env.step(action)
                done[i] = terminated or truncated
    seconds = time.perf_counter() - start
    for env in env_list:
        env.close()
    return seconds


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
    return seconds


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Swimmer-v5")
    parser.add_argument("--perturbations", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()

    info = envs.env_info(args.env)
    env_fn = envs.env_factory(args.env, args.steps)
    policy_fn = functools.partial(policies.build_policy, "odetoode", info.obs_dim, info.act_dim, hidden=args.hidden,
                                  seed=0)
    config = trainer.ESConfig(args.env, perturbations=args.perturbations, episode_length=args.steps, seed=0)
    members = args.perturbations + 1  # + the centre

    with backends.InProcessBackend(env_fn, policy_fn) as backend:
        es_seconds, steps = es_iteration_seconds(backend, config, policy_fn)
        simulator_seconds = backend.worker.simulator_seconds
    env_seconds = constant_action_seconds(env_fn, members, args.steps)
    replay = replay_seconds(env_fn, recorded_episodes(env_fn, policy_fn, config))
    print(f"{args.env}: k={args.perturbations}+1, {args.steps} steps, ODEtoODE hidden {args.hidden}")
    print(f"  overhead: ES {es_seconds:.2f}s vs env-only {env_seconds:.2f}s → ratio {es_seconds / env_seconds:.3f}× "
          f"(goal ≤ 1.10×; ES ran {steps} env steps, env-only {members * args.steps})")
    # MuJoCo's cost per step depends on the motion: a constant action keeps the body still
    # or pressed against one joint limit, the policy's actions do not. Replaying the
    # iteration's own actions in a plain loop gives the simulator floor for the same physics.
    print(f"  overhead over replaying the same episodes' actions in a plain loop ({replay:.2f}s): "
          f"ratio {es_seconds / replay:.3f}× (goal ≤ 1.10×)")
    print(f"  (time inside env.reset/step during the ES iteration: {simulator_seconds:.2f}s)")

    if not args.no_scaling:
        kinds = [("local processes", lambda n: backends.ProcessBackend(env_fn, policy_fn, workers=n))]
        if not args.no_ray:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            kinds.append(("ray actors", lambda n: backends.RayBackend(env_fn, policy_fn, workers=n)))
        for name, make in kinds:
            seconds = {}
            for n in (1, 2):
                with make(n) as backend:
                    seconds[n], _ = es_iteration_seconds(backend, config, policy_fn)
            print(f"  scaling, {name}: 1 worker {seconds[1]:.2f}s, 2 workers {seconds[2]:.2f}s → "
                  f"speed-up {seconds[1] / seconds[2]:.2f}× (goal ≥ 1.7×)")
    print(f"  (cores visible: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
