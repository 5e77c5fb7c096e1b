"""`keras-odetoode evaluate PATH`: score an ES policy on fresh episodes.

keras-odetoode evaluate runs/swimmer/policy --episodes 10
keras-odetoode evaluate runs/swimmer --policy latest   # a run's current centre, not exported yet
"""

import argparse

from keras_odetoode.cli import add_verbose_flag


def register(subparsers):
    """Add the `evaluate` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score an ES policy (an exported SavedModel, or a run's) on an environment",
        description=(
            "Roll out an ES policy and print its mean return: a SavedModel exported by `keras-odetoode es` "
            "or `export`, or a policy of an ES run directory or checkpoint, exported as `export` would."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "path",
        help="SavedModel directory written by `keras-odetoode es` (<logdir>/policy), an ES run directory "
        "(<logdir>) or an ES checkpoint (ckpt-*.npz)",
    )
    parser.add_argument(
        "--policy",
        default=None,
        choices=("best", "latest"),
        help="a run's best evaluated centre, or its centre after the last iteration; None: best. "
        "Only for a run directory or checkpoint",
    )
    parser.add_argument("--env", default=None, help="gymnasium id; None: the one in the policy's metadata.json")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    parser.add_argument(
        "--episode-length",
        type=int,
        default=None,
        help="maximum steps per episode; None: the training run's (metadata.json), else 1000",
    )
    add_verbose_flag(parser)
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args):
    from keras_odetoode.errors import InputError
    from keras_odetoode.es import evaluation

    options = dict(env_id=args.env, episodes=args.episodes, seed=args.seed, episode_length=args.episode_length)
    if evaluation.is_run(args.path):
        returns = evaluation.evaluate_run(args.path, policy=args.policy or "best", **options)
    elif args.policy is not None:
        raise InputError(
            f"--policy picks a policy of an ES run directory or checkpoint; {args.path!r} is neither "
            "(an exported policy is scored as it is). Drop --policy, or pass the run directory."
        )
    else:
        returns = evaluation.evaluate_policy(args.path, **options)
    print(
        f"{evaluation.env_of(args.path, args.env)}: {returns.mean():.3f} ± {returns.std():.3f} over "
        f"{len(returns)} episodes (min {returns.min():.3f}, max {returns.max():.3f})"
    )
    return 0
