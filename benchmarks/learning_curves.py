"""Learning curves over seeds from ES run directories, and a re-evaluation of each run's policy.

For a set of `keras-odetoode es` runs of one task (different seeds), plot the
centre-policy return per iteration (mean ± std over seeds, and each seed), tabulate
the return at iterations 10/25/50/final, and score each run's exported best policy
on fresh episodes to check it reproduces its training reward. std is over seeds with
ddof = 0 (numpy's default): with 3 seeds the sample std is √(3/2) ≈ 1.22× larger.

    python benchmarks/learning_curves.py runs/swimmer_s0 runs/swimmer_s1 runs/swimmer_s2 \\
        --episodes 10 --out benchmarks/results/swimmer_learning
"""

import argparse
import csv
import os
import sys

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def read_progress(run):
    with open(os.path.join(run, "progress.csv")) as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keras_odetoode.es import evaluate_policy

    os.makedirs(args.out, exist_ok=True)
    progress = [read_progress(run) for run in args.runs]
    length = min(len(p["iteration"]) for p in progress)
    centre = np.stack([p["reward_centre"][:length] for p in progress])
    iterations = np.arange(1, length + 1)

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    mean, std = centre.mean(0), centre.std(0)
    ax.plot(iterations, mean, lw=2, label=f"mean ± std over {len(progress)} seeds")
    ax.fill_between(iterations, mean - std, mean + std, alpha=0.2)
    for run, curve in zip(args.runs, centre):
        ax.plot(iterations, curve, lw=0.7, alpha=0.6, label=os.path.basename(run.rstrip("/")))
    ax.set_xlabel("ES iteration")
    ax.set_ylabel("centre-policy return")
    ax.set_title(args.title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "learning_curve.png"), dpi=100)

    checkpoints = [i for i in (1, 10, 25, 50) if i <= length] + ([length] if length not in (1, 10, 25, 50) else [])
    lines = [
        "| iteration | " + " | ".join(os.path.basename(r.rstrip("/")) for r in args.runs) + " | mean ± std |",
        "|---|" + "---|" * (len(args.runs) + 1),
    ]
    for i in checkpoints:
        values = centre[:, i - 1]
        lines.append(
            f"| {i} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {values.mean():.1f} ± {values.std():.1f} |"
        )
    lines += [
        "",
        f"Re-evaluation of each run's exported best policy ({args.episodes} fresh episodes, seeds 1000…):",
        "",
        "| run | best training return (ES updates before it) | re-evaluated mean ± std |",
        "|---|---|---|",
    ]
    for run, p in zip(args.runs, progress):
        returns = evaluate_policy(os.path.join(run, "policy"), episodes=args.episodes, seed=1000)
        best = int(np.argmax(p["reward_centre"]))  # row i evaluates the centre after i updates
        lines.append(
            f"| {os.path.basename(run.rstrip('/'))} | {p['reward_centre'].max():.1f} ({best}) | "
            f"{returns.mean():.1f} ± {returns.std():.1f} |"
        )
    text = "\n".join(lines) + f"\n\nCommand: `python {' '.join(sys.argv)}`\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
