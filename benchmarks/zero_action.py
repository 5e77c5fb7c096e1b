"""The score of doing nothing: every action 0, on the episodes a trained policy is scored on.

A reference for the "final policy" column of the Fig. 2 tables: episode i is reset with
seed `--seed + i` and truncated at `--episode-length`, as `keras-odetoode evaluate` (and
`fig2.py`, through `es.runs.score_checkpoint`) runs a policy, so a trained policy's
returns compare with these episode by episode. Where the two agree, the policy has not
learned to do better than standing still on those episodes. Prints a markdown table.

    python benchmarks/zero_action.py --envs dm_control/swimmer-swimmer15-v0 Hopper-v5 --episodes 10
"""

import argparse
import os


def table(envs, episodes, seed, episode_length):
    """The markdown table: per task, the mean ± std (ddof = 0) of the returns and each episode's return."""
    from keras_odetoode.es.evaluation import zero_action_returns

    lines = [
        f"Every action 0, {episodes} episodes of up to {episode_length} steps, episode i reset with seed "
        f"{seed} + i; mean ± std with ddof = 0.",
        "",
        "| task | return | per episode |",
        "|---|---|---|",
    ]
    for env_id in envs:
        returns = zero_action_returns(env_id, episodes=episodes, seed=seed, episode_length=episode_length)
        per_episode = ", ".join(f"{r:.1f}" for r in returns)
        lines.append(f"| {env_id} | {returns.mean():.1f} ± {returns.std():.1f} | {per_episode} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", required=True, help="gymnasium ids")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode")
    parser.add_argument("--episode-length", type=int, default=1000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "disable")
    print(table(args.envs, args.episodes, args.seed, args.episode_length))


if __name__ == "__main__":
    main()
