"""`keras-odetoode prepare-tfds`: build TFDS's mnist_corrupted offline from a local mnist_c.zip.

Example:

    keras-odetoode prepare-tfds --archive ~/Downloads/mnist_c.zip \\
        --data-dir ~/tensorflow_datasets --corruptions identity fog

then `load_mnist_corrupted("fog", "test", data_dir="~/tensorflow_datasets")`.
"""

import pathlib

from keras_odetoode.cli import add_verbose_flag


def register(subparsers):
    """Add the `prepare-tfds` command to an argparse `subparsers` object."""
    parser = subparsers.add_parser(
        "prepare-tfds",
        help="Build TFDS's mnist_corrupted offline from a local mnist_c.zip.",
        description=(
            "Run TensorFlow Datasets' mnist_corrupted builder on a local mnist_c.zip (or its "
            "extracted folder, or a layout written by make-mnistc) instead of downloading it, and "
            'write the configs to --data-dir, where load_mnist_corrupted(..., source="tfds") '
            "and tfds.load read them. Nothing is downloaded."
        ),
    )
    parser.add_argument(
        "--archive",
        required=True,
        type=pathlib.Path,
        metavar="PATH",
        help="mnist_c.zip, or a folder of <corruption>/{train,test}_{images,labels}.npy.",
    )
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=None,
        metavar="DIR",
        help="TFDS data directory. Default: TFDS's (~/tensorflow_datasets, or $TFDS_DATA_DIR).",
    )
    parser.add_argument(
        "--corruptions",
        nargs="+",
        default=None,
        metavar="NAME",
        help="Configs to build (TFDS names, e.g. identity fog stripe); default all 16.",
    )
    add_verbose_flag(parser)
    parser.set_defaults(func=prepare_tfds_command)


def prepare_tfds_command(args):
    """Run `prepare-tfds` from parsed arguments; returns the exit status."""
    from keras_odetoode.data.mnist_corrupted import prepare_tfds

    prepared = prepare_tfds(args.archive, args.data_dir, corruptions=args.corruptions)
    root = next(iter(prepared.values())).parents[2]  # of <data_dir>/mnist_corrupted/<corruption>/<version>
    print(f"Prepared TFDS mnist_corrupted ({', '.join(prepared)}) in {root}")
    return 0
