"""`keras-odetoode es` (train a policy with ES) and `keras-odetoode evaluate` (score one).

    keras-odetoode es --env Swimmer-v5 --policy odetoode --iterations 100 \\
        --perturbations 200 --seed 0 --backend local --workers 2 --logdir runs/swimmer
    keras-odetoode evaluate runs/swimmer/policy --episodes 10
"""

import argparse
import os
import shlex
import sys

EXIT_INTERRUPTED = 130


def register(subparsers):
    """Add the `es` and `evaluate` sub-commands."""
    es = subparsers.add_parser(
        "es",
        help="train an RL policy with evolution strategies (paper §5.1)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    es.add_argument("--env", required=True, help="gymnasium id, e.g. Swimmer-v5 or dm_control/swimmer-swimmer15-v0")
    es.add_argument("--policy", default="odetoode",
                    choices=("odetoode", "deepnet", "deepresnet", "baseode", "nanode", "hypernet"))
    es.add_argument("--flow", default="isospectral", choices=("isospectral", "gated"), help="ODEtoODE flow")
    es.add_argument("--num-gates", type=int, default=1, help="gates of the gated flow / HyperNet")
    es.add_argument("--gate-inputs", default="time", choices=("time", "state"),
                    help="what the gated flow's gate networks read: the time, or the state W_t (the paper's "
                         "gated-ODEtoODE; see keras_odetoode.flows.GatedFlow); only with --flow gated")
    es.add_argument("--hidden", type=int, default=16, help="embedding width (64 for Humanoid in the paper)")
    es.add_argument("--match-params", action="store_true",
                    help="scale a baseline to at least ODEtoODE's parameter count")
    es.add_argument("--iterations", type=int, default=100)
    es.add_argument("--perturbations", type=int, default=200, help="k")
    es.add_argument("--sigma", type=float, default=0.1)
    es.add_argument("--lr", type=float, default=0.01)
    es.add_argument("--no-antithetic", action="store_true")
    es.add_argument("--fitness-shaping", default="z_score", choices=("z_score", "centered_ranks", "raw"))
    es.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    es.add_argument("--seed", type=int, default=0)
    es.add_argument("--episode-length", type=int, default=1000)
    es.add_argument("--no-obs-norm", action="store_true", help="disable observation normalization")
    es.add_argument("--backend", default="local", choices=("local", "ray"))
    es.add_argument("--workers", type=int, default=0,
                    help="local: worker processes (0 = in-process); ray: actors")
    es.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    es.add_argument("--no-jit", action="store_true", help="do not XLA-compile the per-step policy")
    es.add_argument("--logdir", default=None, help="run directory (default runs/<env>-<policy>-s<seed>)")
    es.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                    help="continue from the newest checkpoint in --logdir, or from CHECKPOINT")
    es.add_argument("--no-progress", action="store_true", help="no progress bar")
    es.set_defaults(func=run_es)

    ev = subparsers.add_parser(
        "evaluate",
        help="score an exported ES policy (SavedModel) on an environment",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("path", help="SavedModel directory written by `keras-odetoode es` (<logdir>/policy)")
    ev.add_argument("--env", default=None, help="gymnasium id (default: the one in metadata.json)")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    ev.add_argument("--episode-length", type=int, default=None, help="default: metadata.json, else 1000")
    ev.set_defaults(func=run_evaluate)


def _config_from_args(args, info):
    from keras_odetoode.es import policies
    from keras_odetoode.es.trainer import ESConfig

    if args.gate_inputs != "time" and (args.policy, args.flow) != ("odetoode", "gated"):
        raise ValueError(
            f"--gate-inputs is an option of --policy odetoode --flow gated. Received: --policy {args.policy} "
            f"--flow {args.flow} --gate-inputs {args.gate_inputs}. Expected: --policy odetoode --flow gated, "
            "or no --gate-inputs"
        )
    hidden = args.hidden
    if args.match_params and args.policy not in ("odetoode", "hypernet"):
        hidden = policies.matched_hidden(args.policy, info.obs_dim, info.act_dim, args.hidden, flow=args.flow,
                                         num_gates=args.num_gates)
    return ESConfig(
        env_id=args.env,
        policy=args.policy,
        policy_kwargs={"hidden": hidden, "flow": args.flow, "num_gates": args.num_gates,
                       "gate_inputs": args.gate_inputs, "seed": args.seed},
        iterations=args.iterations,
        perturbations=args.perturbations,
        sigma=args.sigma,
        learning_rate=args.lr,
        antithetic=not args.no_antithetic,
        fitness_shaping=args.fitness_shaping,
        optimizer=args.optimizer,
        seed=args.seed,
        episode_length=args.episode_length,
        normalize_observations=not args.no_obs_norm,
    )


def run_es(args):
    os.environ.setdefault("MUJOCO_GL", "disable")
    import functools

    import keras_odetoode
    from keras_odetoode.es import backends, envs, policies, trainer

    info = envs.env_info(args.env)
    config = _config_from_args(args, info)
    logdir = args.logdir or os.path.join("runs", f"{args.env.replace('/', '_')}-{args.policy}-s{args.seed}")
    trainer.check_logdir(logdir, args.resume)
    policy_fn = functools.partial(policies.build_policy, config.policy, info.obs_dim, info.act_dim,
                                  **config.policy_kwargs)
    print(
        f"ES on {args.env}: policy {config.policy} ({policy_fn().count_params()} parameters), "
        f"k={config.perturbations}, σ={config.sigma}, lr={config.learning_rate}, backend {args.backend} "
        f"(workers={args.workers}), logdir {logdir}",
        file=sys.stderr,
    )
    backend = backends.make_backend(
        args.backend, envs.env_factory(args.env, config.episode_length), policy_fn,
        workers=args.workers, address=args.address, jit_compile=not args.no_jit,
    )
    try:
        result = trainer.train(config, policy_fn, backend, logdir=logdir, resume=args.resume,
                               progress=not args.no_progress)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        backend.close()

    best = result.best
    if best["params"] is None:
        print("No finite reward was obtained: nothing to export.", file=sys.stderr)
        return 1
    export_dir = os.path.join(logdir, "policy")
    metadata = {
        "env_id": args.env,
        "policy": config.policy,
        "config": config.to_dict(),
        "package_version": keras_odetoode.__version__,
        "command": shlex.join(args.command_line),
        "arguments": {k: v for k, v in vars(args).items() if k not in ("func", "command_line")},
        "reward": best["reward"],
        "best_iteration": best["iteration"],
        "iterations": result.state.iteration,
        "obs_dim": info.obs_dim,
        "act_dim": info.act_dim,
        "action_low": info.action_low,
        "action_high": info.action_high,
    }
    trainer.export_policy(policy_fn, best["params"], best["obs_mean"], best["obs_variance"], export_dir, metadata)
    print(f"Best centre reward {best['reward']:.3f} (after {best['iteration']} updates); "
          f"policy exported to {export_dir}", file=sys.stderr)
    return 0


def run_evaluate(args):
    from keras_odetoode.es import evaluation

    returns = evaluation.evaluate_policy(
        args.path, env_id=args.env, episodes=args.episodes, seed=args.seed, episode_length=args.episode_length
    )
    print(f"{evaluation.env_of(args.path, args.env)}: {returns.mean():.3f} ± {returns.std():.3f} over "
          f"{len(returns)} episodes (min {returns.min():.3f}, max {returns.max():.3f})")
    return 0
