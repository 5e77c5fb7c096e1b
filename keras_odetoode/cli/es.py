"""`keras-odetoode es`: train a policy with evolution strategies (paper §5.1).

    keras-odetoode es --env Swimmer-v5 --policy odetoode --iterations 100 \\
        --perturbations 200 --seed 0 --backend local --workers 2 --logdir runs/swimmer
"""

import argparse
import os

from keras_odetoode.cli import add_verbose_flag


def register(subparsers):
    """Add the `es` command."""
    es = subparsers.add_parser(
        "es",
        help="train an RL policy with evolution strategies (paper §5.1)",
        description=(
            "Train a policy with Riemannian ES and export the best centre policy to <logdir>/policy. "
            "Ctrl-C saves a checkpoint and exports the best policy so far; --resume continues the run."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    es.add_argument("--env", required=True, help="gymnasium id, e.g. Swimmer-v5 or dm_control/swimmer-swimmer15-v0")
    es.add_argument(
        "--policy",
        default="odetoode",
        choices=("odetoode", "deepnet", "deepresnet", "baseode", "nanode", "hypernet"),
        help="policy network between the two Stiefel projections",
    )
    es.add_argument("--flow", default="isospectral", choices=("isospectral", "gated"), help="ODEtoODE's parameter flow")
    es.add_argument("--num-gates", type=int, default=1, help="gates of the gated flow / HyperNet")
    es.add_argument(
        "--gate-inputs",
        default="time",
        choices=("time", "state"),
        help="what the gated flow's gate networks read: the time, or the state W_t (the paper's "
        "gated-ODEtoODE; see keras_odetoode.flows.GatedFlow); only with --flow gated",
    )
    es.add_argument("--hidden", type=int, default=16, help="embedding width (64 for Humanoid in the paper)")
    es.add_argument(
        "--match-params", action="store_true", help="scale a baseline to at least ODEtoODE's parameter count"
    )
    es.add_argument(
        "--iterations",
        type=int,
        default=100,
        help="ES iterations in total; with --resume, counting the iterations already done",
    )
    es.add_argument("--perturbations", type=int, default=200, help="k, perturbations per iteration (even)")
    es.add_argument("--sigma", type=float, default=0.1, help="σ, standard deviation of the perturbations")
    es.add_argument("--lr", type=float, default=0.01, help="learning rate of the ES update")
    es.add_argument("--no-antithetic", action="store_true", help="independent perturbations instead of ± pairs")
    es.add_argument(
        "--fitness-shaping",
        default="z_score",
        choices=("z_score", "centered_ranks", "raw"),
        help="how returns are turned into update weights",
    )
    es.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"), help="rule applying the ES gradient")
    es.add_argument(
        "--seed", type=int, default=0, help="seed of the perturbations, the episodes and the policy's initialisation"
    )
    es.add_argument("--episode-length", type=int, default=1000, help="maximum steps per episode")
    es.add_argument("--no-obs-norm", action="store_true", help="disable observation normalization")
    es.add_argument("--backend", default="local", choices=("local", "ray"), help="where episodes run")
    es.add_argument("--workers", type=int, default=0, help="local: worker processes (0 = in-process); ray: actors")
    es.add_argument("--address", default=None, help="Ray cluster address (None: start a local Ray)")
    es.add_argument("--no-jit", action="store_true", help="do not XLA-compile the per-step policy")
    es.add_argument("--logdir", default=None, help="run directory (None: runs/<env>-<policy>-s<seed>)")
    es.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="continue from the newest checkpoint in --logdir, or from CHECKPOINT, up to --iterations in total",
    )
    es.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose_flag(es)
    es.set_defaults(func=run_es)


def run_es(args):
    os.environ.setdefault("MUJOCO_GL", "disable")
    from keras_odetoode.es import envs, runs

    info = envs.env_info(args.env)
    config = runs.make_config(
        args.env,
        info,
        policy=args.policy,
        hidden=args.hidden,
        flow=args.flow,
        num_gates=args.num_gates,
        gate_inputs=args.gate_inputs,
        match_params=args.match_params,
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
    return runs.run(
        config,
        info,
        args.logdir or runs.default_logdir(args.env, args.policy, args.seed),
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        jit_compile=not args.no_jit,
        resume=args.resume,
        progress=not args.no_progress,
        command=args.command_line,
    )
