"""Aggregate `keras-odetoode mnistc` grids run with different seeds: mean ± std per cell.

Each argument is an output directory of `keras-odetoode mnistc` (its
results.json). All must hold the same corruptions and models and differ at
most in the seed. Prints the markdown table (best mean of each row in bold)
and, for the model given by `--model` (ODEtoODE-1 by default), on how many rows
its mean is the best, and the median and range of its gap to the best model of
another family.

`--add DIR ...` sets the models of other grids beside these, one group of
directories per `--add`, with the same seeds and every setting the same but
those that make the group (e.g. `--gate-inputs state`); their columns are
labelled with those settings; a group with the same settings but other models
(e.g. the "-10" models beside the "-1") adds unlabelled columns. Every column of
`--model`'s family is then summarised against the other families, and every column's
count of rows with the best mean is printed.

`--paper table1` (or `table2`) sets the paper's value beside each cell where the paper
has one (`result_tables.PAPER_TABLES`), and counts the paper's best rows among the
same columns, on the rows it reports. `--models a,b` keeps only those models of the main
grids: the finished ones of a grid still running.

    python benchmarks/mnistc_seeds.py out/seed0 out/seed1 out/seed2 > table.md
    python benchmarks/mnistc_seeds.py out/seed{0,1,2} --add state/seed{0,1,2} > table.md
    python benchmarks/mnistc_seeds.py one/seed{0,1,2} --add ten/seed{0,1,2} --paper table1 > table.md
"""

import argparse
import json
import pathlib

import numpy as np

from keras_odetoode.mnistc_grid import upgrade_results
from keras_odetoode.models import display_name, model_name, parse_model_name
from keras_odetoode.result_tables import PAPER_TABLES, cell_key

# Where the records differ without the models differing: where the data sat, and the seed.
NOT_SETTINGS = ("data_dir", "seed")


def load(directory):
    record = upgrade_results(json.loads((pathlib.Path(directory) / "results.json").read_text(encoding="utf-8")))
    models = {key.split("/", 1)[1] for key in record["cells"]}
    corruptions = {key.split("/", 1)[0] for key in record["cells"]}
    # The grid's own order (the command line's), where the record has it.
    order = record.get("last_invocation", {})
    models = list(order.get("models", [])) or sorted(models)
    corruptions = list(order.get("corruptions", [])) or sorted(corruptions)
    return record, corruptions, models


def settings(record):
    """The training settings of a record (in the current format: `upgrade_results`)."""
    return {k: v for k, v in record["training"].items() if k not in NOT_SETTINGS}


def aggregate(directories, only=None):
    """({corruption: {model: accuracies in % over the runs}}, corruptions, models, seeds).

    `only`: these models of the grids (in the grids' order), e.g. the finished ones of a grid still running.
    """
    records = [load(d) for d in directories]
    _, corruptions, models = records[0]
    if only is not None:
        unknown = [m for m in only if m not in models]
        if unknown:
            raise ValueError(
                f"--models {', '.join(unknown)}: not in {directories[0]}. Expected some of: {', '.join(models)}"
            )
        models = [m for m in models if m in only]
    training = settings(records[0][0])
    for directory, (record, c, m) in zip(directories, records):
        if set(c) != set(corruptions) or not set(models) <= set(m) or settings(record) != training:
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


def add_group(accuracy, corruptions, seeds, base, directories, columns):
    """Columns of the grids in `directories` beside `accuracy` (whose columns are `columns`), labelled by the
    settings that differ from `base`."""
    extra, extra_corruptions, models, extra_seeds = aggregate(directories)
    if sorted(extra_seeds) != sorted(seeds):
        raise ValueError(f"{directories[0]}: other seeds. Received: {extra_seeds}, expected: {seeds}")
    missing = sorted(set(corruptions) - set(extra_corruptions))
    if missing:
        raise ValueError(f"{directories[0]} has no results for {', '.join(missing)}")
    mine = settings(load(directories[0])[0])
    differing = {k: v for k, v in mine.items() if base.get(k) != v}
    label = ", ".join(f"{k}={v}" for k, v in sorted(differing.items()))
    present = [m for m in models if (m, label) in columns or (not label and m in columns)]
    if present:
        raise ValueError(
            f"{directories[0]} was trained with the same settings as the main runs and holds "
            f"{', '.join(present)} again: nothing to add"
        )
    order = [extra_seeds.index(s) for s in seeds]  # the main runs' seed order
    added = []
    for m in models:
        column = (m, label) if label else m
        for c in corruptions:
            accuracy[c][column] = extra[c][m][order]
        added.append(column)
    return added


def paper_best_rows(paper, corruptions, columns, accuracy):
    """The sentence comparing best-row counts with the paper's, on the rows and models both have."""
    rows = [c for c in corruptions if c in paper]
    models = list(dict.fromkeys(_model(col) for col in columns if _model(col) in paper[rows[0]])) if rows else []
    if not models:
        return "The paper reports none of these rows and models."
    ours, theirs = dict.fromkeys(models, 0), dict.fromkeys(models, 0)
    for c in rows:
        mine = {m: max(round(float(accuracy[c][col].mean()), 2) for col in columns if _model(col) == m) for m in models}
        for counts, values in ((ours, mine), (theirs, {m: paper[c][m] for m in models})):
            for m in models:
                counts[m] += values[m] == max(values.values())
    return (
        f"On the paper's {len(rows)} rows, among {', '.join(display_name(m) for m in models)} "
        "(a model with two columns by its better one), best means here: "
        + ", ".join(f"{display_name(m)} {n}" for m, n in ours.items())
        + "; in the paper: "
        + ", ".join(f"{display_name(m)} {n}" for m, n in theirs.items())
        + "."
    )


def _title(column):
    model, label = column if isinstance(column, tuple) else (column, "")
    return f"{display_name(model)} ({label})" if label else display_name(model)


def _model(column):
    return column[0] if isinstance(column, tuple) else column


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=pathlib.Path)
    parser.add_argument("--model", default="odetoode-1", help="The model whose standing is summarised.")
    parser.add_argument(
        "--models",
        type=lambda text: [model_name(*parse_model_name(m)) for m in text.split(",")],
        help="Only these models of the main grids, comma-separated (e.g. the finished ones of a grid still running).",
    )
    parser.add_argument(
        "--paper", choices=sorted(PAPER_TABLES), help="Set this table of the paper's beside each cell it has."
    )
    parser.add_argument(
        "--add",
        nargs="+",
        type=pathlib.Path,
        action="append",
        default=[],
        metavar="DIR",
        help="Grids of other settings, one directory per seed, to set beside the main ones.",
    )
    args = parser.parse_args()
    accuracy, corruptions, models, seeds = aggregate(args.directories, args.models)
    base = settings(load(args.directories[0])[0])
    columns = list(models)
    for group in args.add:
        columns += add_group(accuracy, corruptions, seeds, base, group, columns)
    model = model_name(*parse_model_name(args.model))  # any spelling `mnistc` accepts: ODEtoODE-1, odetoode-1
    if model not in models:
        raise SystemExit(f"--model {args.model!r} is not in these runs. Expected one of: {', '.join(models)}")
    family = parse_model_name(model)[0]
    summarised = [col for col in columns if parse_model_name(_model(col))[0] == family]
    paper = PAPER_TABLES[args.paper] if args.paper else {}

    def beside(c, col):
        value = paper.get(c, {}).get(_model(col))
        return "" if value is None else f" ({value:g})"

    def cell(c, col):  # one seed has no standard deviation
        values = accuracy[c][col]
        return f"{values.mean():.2f}" + (f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else "")

    print("| Models | " + " | ".join(_title(col) for col in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    wins, gaps = {col: 0 for col in summarised}, {col: [] for col in summarised}
    best_rows = {col: 0 for col in columns}
    for c in corruptions:
        means = {col: round(float(accuracy[c][col].mean()), 2) for col in columns}  # ties as printed count as ties
        best = max(means.values())
        for col in columns:
            best_rows[col] += means[col] == best
        cells = [(f"**{cell(c, col)}**" if means[col] == best else cell(c, col)) + beside(c, col) for col in columns]
        print(f"| {c.replace('_', ' ').title()} | " + " | ".join(cells) + " |")
        others = [v for col, v in means.items() if col not in summarised]
        for col in summarised if others else []:
            wins[col] += means[col] >= max(others)
            gaps[col].append(means[col] - max(others))
    print(
        (
            f"\nTest accuracy (%), mean ± standard deviation over seeds {seeds}."
            if len(seeds) > 1
            else f"\nTest accuracy (%), one seed ({seeds[0]}): no standard deviation."
        )
        + " Best mean of each row in bold"
        + (f"; in brackets the paper's {args.paper.replace('table', 'Table ')} value." if paper else ".")
    )
    print(
        f"\nRows with the best mean (ties count for each), of {len(corruptions)}: "
        + ", ".join(f"{_title(col)} {n}" for col, n in best_rows.items())
        + "."
    )
    if paper:
        print(paper_best_rows(paper, corruptions, columns, accuracy))
    if len(columns) > len(summarised):
        print()
        alone = len(summarised) == 1
        for col in summarised:
            standing = "best mean" if alone else "at least the best other family's mean"
            print(
                f"{_title(col)}: {standing} on {wins[col]} of {len(corruptions)} rows; gap of its mean to the best "
                f"{'other model' if alone else 'other family'}'s: median {np.median(gaps[col]):+.2f} pp, "
                f"range {min(gaps[col]):+.2f} to {max(gaps[col]):+.2f} pp."
            )
        overall = {col: np.mean([accuracy[c][col].mean() for c in corruptions]) for col in columns}
        print(
            "Mean over the rows: "
            + ", ".join(f"{_title(col)} {v:.2f}" for col, v in sorted(overall.items(), key=lambda kv: -kv[1]))
        )


if __name__ == "__main__":
    main()
