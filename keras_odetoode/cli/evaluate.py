"""`keras-odetoode evaluate POLICY_DIR`: score an exported ES policy on fresh episodes.

keras-odetoode evaluate runs/swimmer/policy --episodes 10
"""

import argparse

from keras_odetoode.cli import add_verbose_flag


def register(subparsers):
    """Add the `evaluate` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score an exported ES policy (SavedModel) on an environment",
        description="Roll out an ES policy exported by `keras-odetoode es` or `export` and print its mean return.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("path", help="SavedModel directory written by `keras-odetoode es` (<logdir>/policy)")
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
    from keras_odetoode.es import evaluation

    returns = evaluation.evaluate_policy(
        args.path, env_id=args.env, episodes=args.episodes, seed=args.seed, episode_length=args.episode_length
    )
    print(
        f"{evaluation.env_of(args.path, args.env)}: {returns.mean():.3f} ± {returns.std():.3f} over "
        f"{len(returns)} episodes (min {returns.min():.3f}, max {returns.max():.3f})"
    )
    return 0
