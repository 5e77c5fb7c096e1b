"""HyperNet-1 with a smaller hypernetwork: does its lead over ODEtoODE-1 on MNIST-C come from its size?

Not a test. Table 1's HyperNet-1 (`HyperNetODE`, hidden_units = 16) has 557,473
block parameters at width 128, ODEtoODE-1 82,049. This script trains HyperNet-1
with `--hidden-units` instead (2 gives 98,441, the smallest with at least
ODEtoODE-1's) through `keras-odetoode mnistc`, in-process, with every other
setting given after `--`. Then it sets the result beside the Table 1 runs given by
`--compare` (same settings, one directory per seed): per corruption, the mean ±
sample std over seeds (ddof = 1, as `mnistc_seeds.py`) of ODEtoODE-1, the original
HyperNet-1 and the small one, and on how many rows ODEtoODE-1's mean is at least
each HyperNet's.

    python benchmarks/mnistc_hypernet_hidden.py --hidden-units 2 --out OUT/seed0 \\
        -- --corruptions all --train-on identity --width 128 --epochs 100 --seed 0 \\
           --source local --data-dir DATA
    python benchmarks/mnistc_hypernet_hidden.py --report OUT/seed0 OUT/seed1 OUT/seed2 \\
        --compare benchmarks/results/mnistc_table1_clean_100ep/seed{0,1,2}
"""

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np

from keras_odetoode import cli, layers, models
from keras_odetoode.result_tables import cell_key

MODEL = "hypernet-1"


def train(hidden_units, out, mnistc_args):
    """`keras-odetoode mnistc --models hypernet-1` with HyperNet's hidden width set to `hidden_units`."""
    family = models.FAMILIES["hypernet"]

    def block(width, k, step_size, seed):
        return layers.HyperNetODE(num_gates=k, hidden_units=hidden_units, step_size=step_size, seed=seed, name="block")

    models.FAMILIES["hypernet"] = dataclasses.replace(family, block=block)
    try:  # in-process: a new process would build the original HyperNet
        return cli.main(["mnistc", "--models", MODEL, "--out", str(out), "--in-process", *mnistc_args])
    finally:
        models.FAMILIES["hypernet"] = family


def _runs(directories):
    records = [json.loads((pathlib.Path(d) / "results.json").read_text(encoding="utf-8")) for d in directories]
    return {record["training"]["seed"]: record for record in records}


def report(small_dirs, table1_dirs, hidden_units):
    small, table1 = _runs(small_dirs), _runs(table1_dirs)
    if sorted(small) != sorted(table1):
        raise ValueError(f"The seeds differ. Received: {sorted(small)} and {sorted(table1)}")
    for seed in small:
        mine, theirs = small[seed]["training"], table1[seed]["training"]
        differing = [k for k in theirs if k != "data_dir" and mine.get(k) != theirs[k]]
        if differing:
            raise ValueError(f"Seed {seed}: the runs differ in {differing}; they must differ only in the model")
    seeds = sorted(small)
    corruptions = list(table1[seeds[0]]["last_invocation"]["corruptions"])

    def accuracy(runs, corruption, model):
        return np.array([100 * runs[s]["cells"][cell_key(corruption, model)]["test_accuracy"] for s in seeds])

    params = {
        "ODEtoODE-1": table1[seeds[0]]["cells"][cell_key(corruptions[0], "odetoode-1")]["params"],
        "HyperNet-1": table1[seeds[0]]["cells"][cell_key(corruptions[0], MODEL)]["params"],
        "small": small[seeds[0]]["cells"][cell_key(corruptions[0], MODEL)]["params"],
    }
    small_label = f"HyperNet-1, hidden {hidden_units}"
    print(
        f"Mean ± sample std over seeds {seeds} (ddof = 1), test accuracy in %. Parameters: ODEtoODE-1 "
        f"{params['ODEtoODE-1']:,}, HyperNet-1 {params['HyperNet-1']:,}, {small_label} {params['small']:,}.\n"
    )
    print(f"| corruption | ODEtoODE-1 | HyperNet-1 | {small_label} |")
    print("|---|---|---|---|")
    at_least = {"HyperNet-1": 0, "small": 0}
    for corruption in corruptions:
        ode = accuracy(table1, corruption, "odetoode-1")
        big = accuracy(table1, corruption, MODEL)
        little = accuracy(small, corruption, MODEL)
        at_least["HyperNet-1"] += ode.mean() >= big.mean()
        at_least["small"] += ode.mean() >= little.mean()
        cells = [f"{a.mean():.2f} ± {a.std(ddof=1):.2f}" for a in (ode, big, little)]
        print(f"| {corruption.replace('_', ' ').title()} | " + " | ".join(cells) + " |")
    print(
        f"\nODEtoODE-1's mean is at least HyperNet-1's on {at_least['HyperNet-1']} of {len(corruptions)} "
        f"corruptions, and at least {small_label}'s on {at_least['small']}."
    )


def main():
    argv = sys.argv[1:]
    mnistc_args = []
    if "--" in argv:
        at = argv.index("--")
        argv, mnistc_args = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-units", type=int, default=2)
    parser.add_argument("--out", type=pathlib.Path, help="mnistc output directory of the run to train")
    parser.add_argument("--report", nargs="+", type=pathlib.Path, help="finished runs of this script, one per seed")
    parser.add_argument("--compare", nargs="+", type=pathlib.Path, help="the Table 1 runs, one per seed")
    args = parser.parse_args(argv)
    if args.report:
        if not args.compare:
            parser.error("--report needs --compare")
        report(args.report, args.compare, args.hidden_units)
        return 0
    if args.out is None:
        parser.error("give --out to train, or --report and --compare")
    return train(args.hidden_units, args.out, mnistc_args)


if __name__ == "__main__":
    sys.exit(main())
