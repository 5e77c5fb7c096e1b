"""Aggregate `keras-odetoode mnistc` grids run with different seeds: mean ± std per cell.

Each argument is an output directory of `keras-odetoode mnistc` (its
results.json). All must hold the same corruptions and models and differ at
most in the seed. Prints the markdown table (best mean of each row in bold)
and, for the model given by `--model` (ODEtoODE-1 by default), on how many rows
its mean is the best, and the median and range of its gap to the best other model.

    python benchmarks/mnistc_seeds.py out/seed0 out/seed1 out/seed2 > table.md
"""

import argparse
import json
import pathlib

import numpy as np

from keras_odetoode.models import display_name, model_name, parse_model_name
from keras_odetoode.models_cli import cell_key


def load(directory):
    record = json.loads((pathlib.Path(directory) / "results.json").read_text(encoding="utf-8"))
    models = {key.split("/", 1)[1] for key in record["cells"]}
    corruptions = {key.split("/", 1)[0] for key in record["cells"]}
    # The grid's own order (the command line's), where the record has it.
    order = record.get("last_invocation", {})
    models = list(order.get("models", [])) or sorted(models)
    corruptions = list(order.get("corruptions", [])) or sorted(corruptions)
    return record, corruptions, models


def aggregate(directories):
    """({corruption: {model: accuracies in % over the runs}}, corruptions, models, seeds)."""
    records = [load(d) for d in directories]
    _, corruptions, models = records[0]
    training = {k: v for k, v in records[0][0]["training"].items() if k != "seed"}
    for directory, (record, c, m) in zip(directories, records):
        other = {k: v for k, v in record["training"].items() if k != "seed"}
        if set(c) != set(corruptions) or set(m) != set(models) or other != training:
            raise ValueError(
                f"{directory} holds another grid: corruptions, models and every setting but the seed must match"
            )
    for directory, (record, _, _) in zip(directories, records):
        missing = [cell_key(c, m) for c in corruptions for m in models if cell_key(c, m) not in record["cells"]]
        if missing:
            raise ValueError(f"{directory} is not finished: no result for {', '.join(missing)}")
    seeds = [record["training"]["seed"] for record, _, _ in records]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"Two runs share a seed. Received seeds: {seeds}")
    accuracy = {
        c: {m: np.array([100 * r["cells"][cell_key(c, m)]["test_accuracy"] for r, _, _ in records]) for m in models}
        for c in corruptions
    }
    return accuracy, corruptions, models, seeds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=pathlib.Path)
    parser.add_argument("--model", default="odetoode-1", help="The model whose standing is summarised.")
    args = parser.parse_args()
    accuracy, corruptions, models, seeds = aggregate(args.directories)
    model = model_name(*parse_model_name(args.model))  # any spelling `mnistc` accepts: ODEtoODE-1, odetoode-1
    if model not in models:
        raise SystemExit(f"--model {args.model!r} is not in these runs. Expected one of: {', '.join(models)}")
    print("| Models | " + " | ".join(display_name(m) for m in models) + " |")
    print("|---" * (len(models) + 1) + "|")
    wins, gaps = 0, []
    for c in corruptions:
        means = {m: round(float(accuracy[c][m].mean()), 2) for m in models}  # ties as printed count as ties
        best = max(means.values())
        cells = [
            (f"**{means[m]:.2f} ± {accuracy[c][m].std(ddof=1):.2f}**" if means[m] == best else
             f"{means[m]:.2f} ± {accuracy[c][m].std(ddof=1):.2f}")
            for m in models
        ]
        print(f"| {c.replace('_', ' ').title()} | " + " | ".join(cells) + " |")
        if len(models) > 1:
            others = max(v for m, v in means.items() if m != model)
            wins += means[model] >= others
            gaps.append(means[model] - others)
    print(f"\nTest accuracy (%), mean ± standard deviation over seeds {seeds}. Best mean of each row in bold.")
    if gaps:
        overall = {m: np.mean([accuracy[c][m].mean() for c in corruptions]) for m in models}
        print(
            f"\n{display_name(model)}: best mean on {wins} of {len(corruptions)} rows; gap of its mean to the best "
            f"other model's: median {np.median(gaps):+.2f} pp, range {min(gaps):+.2f} to {max(gaps):+.2f} pp."
        )
        print("Mean over the rows: " + ", ".join(f"{display_name(m)} {v:.2f}" for m, v in
                                                 sorted(overall.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
