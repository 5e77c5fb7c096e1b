"""ES overhead and scaling, measured side by side in one run.

1. Overhead: one ES iteration (k perturbations + the centre, `--steps` steps,
   ODEtoODE hidden 16, in-process) against stepping the same number of
   environments the same number of steps with a constant action. Goal ≤ 1.10×.
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
    print(f"{args.env}: k={args.perturbations}+1, {args.steps} steps, ODEtoODE hidden {args.hidden}")
    print(f"  overhead: ES {es_seconds:.2f}s vs env-only {env_seconds:.2f}s → ratio {es_seconds / env_seconds:.3f}× "
          f"(goal ≤ 1.10×; ES ran {steps} env steps, env-only {members * args.steps})")
    # A constant action keeps the body still, and MuJoCo steps a still body faster than a
    # swimming one; the time inside env.step during the ES iteration itself is the floor
    # for the same states and actions.
    print(f"  overhead over the simulator's own time in that iteration ({simulator_seconds:.2f}s in env.reset/step): "
          f"ratio {es_seconds / simulator_seconds:.3f}×")

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
