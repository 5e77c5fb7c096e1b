"""`keras-odetoode mnistc`: train the classifier zoo on Corrupted MNIST (paper Tables 1–2).

    keras-odetoode make-mnistc --mnist mnist.npz --out data/mnist_c
    keras-odetoode mnistc --preset table1 --source local --data-dir data/mnist_c \\
        --out results/table1

The grid, its output directory and how it resumes: `keras_odetoode.mnistc_grid`.
"""

import pathlib

from keras_odetoode import mnistc_grid

#: The options that take the preset's value (else `mnistc_grid.DEFAULTS`) when left out.
PRESET_OPTIONS = ("corruptions", "models", "train_on", "width", "dropout", "epochs", "gate_inputs")
OPTIONS = PRESET_OPTIONS + (
    "batch_size",
    "learning_rate",
    "step_size",
    "seed",
    "projection",
    "max_train_examples",
    "source",
    "data_dir",
    "download",
)


def register(subparsers):
    """Add the `mnistc` command."""
    parser = subparsers.add_parser(
        "mnistc",
        help="Train the classifier zoo on Corrupted MNIST (paper Tables 1-2).",
        description=(
            "Train each model on clean MNIST (or on each corruption: --train-on each), "
            "evaluate it on the test split of every MNIST-C corruption, and write the "
            "test-accuracy table laid out like the paper's Table 1 (rows corruptions, "
            "columns models) as markdown and CSV. Run it again with the same --out to resume."
        ),
        epilog=(
            "--corruptions, --models, --train-on, --epochs, --width and --dropout take the "
            "preset's value when left out."
        ),
    )
    parser.add_argument(
        "--preset",
        choices=sorted(mnistc_grid.PRESETS),
        default=None,
        help=(
            "The paper's grid: table1 = width 128, no dropout, Dense-1/10, NODE, "
            "NANODE-1/10, HyperNet-1/10, ODEtoODE-1/10; table2 = width 256, dropout "
            "0.1, k in 1/2/4; both 100 epochs on the paper's 11 corruptions."
        ),
    )
    parser.add_argument(
        "--corruptions",
        default=None,
        metavar="LIST",
        help=(
            "Comma-separated MNIST-C configs, or 'all' (the 16 configs) or 'paper' "
            f"(the 11 rows of Table 1). Default: {mnistc_grid.DEFAULTS['corruptions']}."
        ),
    )
    parser.add_argument(
        "--models",
        default=None,
        metavar="LIST",
        help=(
            "Comma-separated model names: dense-K, node, nanode-K, hypernet-K, "
            f"odetoode-K. Default: {','.join(mnistc_grid.DEFAULTS['models'])}."
        ),
    )
    parser.add_argument(
        "--train-on",
        default=None,
        metavar="CONFIG",
        help=(
            "The training data: a config name (train each model once on it, evaluate on "
            "every corruption; 'identity' is clean MNIST, the paper's protocol) or 'each' "
            f"(train every cell on its own corruption). Default: {mnistc_grid.DEFAULTS['train_on']}."
        ),
    )
    parser.add_argument("--epochs", type=int, default=None, help=f"Default: {mnistc_grid.DEFAULTS['epochs']}.")
    parser.add_argument(
        "--width", type=int, default=None, help=f"Hidden width w. Default: {mnistc_grid.DEFAULTS['width']}."
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=None,
        help=f"Dropout rate before the head. Default: {mnistc_grid.DEFAULTS['dropout']}.",
    )
    parser.add_argument("--batch-size", type=int, default=128, help="Default: 128.")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="RiemannianAdam step size. Default: 1e-3.")
    parser.add_argument("--step-size", type=float, default=0.01, help="h of the ODE blocks on [0, 1]. Default: 0.01.")
    parser.add_argument(
        "--projection",
        choices=("dense", "stiefel"),
        default="dense",
        help="Input map 784 -> w (see keras_odetoode.models). Default: dense.",
    )
    parser.add_argument(
        "--gate-inputs",
        choices=("time", "state"),
        default=None,
        help=(
            "What ODEtoODE's gate networks read: the time, or the state W_t (the paper's "
            "hypernetwork of W, as large as HyperNet's; see keras_odetoode.flows.GatedFlow). "
            f"Default: {mnistc_grid.DEFAULTS['gate_inputs']}; state with --preset table1 / table2."
        ),
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed of the initializers, dropout and shuffle. Default: 0."
    )
    parser.add_argument(
        "--max-train-examples",
        type=int,
        default=None,
        metavar="N",
        help="Train on the first N examples of each train split (default: all).",
    )
    parser.add_argument(
        "--source", choices=("tfds", "local"), default="tfds", help="Where MNIST-C comes from. Default: tfds."
    )
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=None,
        metavar="DIR",
        help="TFDS data directory, or the root of the local MNIST-C layout (make-mnistc).",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help=(
            "--source tfds: download and prepare the configs not yet in --data-dir (needs internet; "
            "offline, build them from a local mnist_c.zip with prepare-tfds)."
        ),
    )
    parser.add_argument("--out", type=pathlib.Path, required=True, metavar="DIR", help="Output directory.")
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help=(
            "Keras verbosity: 1 progress bars, 2 one line per epoch, 0 silent. Given at all, it also shows "
            "TensorFlow's log lines, which are hidden otherwise unless TF_CPP_MIN_LOG_LEVEL is set."
        ),
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help=(
            "Train every cell in this process instead of a fresh process per cell: a few "
            "seconds faster per cell, but Keras/TensorFlow keep ~75 MB per traced model."
        ),
    )
    parser.set_defaults(func=mnistc_command)


def config_from_args(args):
    """The grid configuration (`mnistc_grid.resolve_config`) of parsed `mnistc` arguments."""
    return mnistc_grid.resolve_config(args.preset, **{key: getattr(args, key) for key in OPTIONS})


def mnistc_command(args):
    """Run `mnistc` from parsed arguments; returns the exit status."""
    config = config_from_args(args)
    mnistc_grid.run_grid(config, args.out, verbose=args.verbose, new_process_per_cell=not args.in_process)
    return 0
