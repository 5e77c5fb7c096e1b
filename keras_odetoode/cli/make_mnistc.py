"""`keras-odetoode make-mnistc`: write the MNIST-C dataset offline from MNIST arrays.

Example:

    keras-odetoode make-mnistc --mnist mnist.npz --out ~/data/mnist_c \\
        --corruptions fog stripe --seed 0

then `load_mnist_corrupted("fog", "train", source="local",
data_dir="~/data/mnist_c")`.
"""

import pathlib

from keras_odetoode.cli import add_verbose_flag
from keras_odetoode.data.mnist_corrupted import DEFAULT_TEST_FRACTION


def register(subparsers):
    """Add the `make-mnistc` command to an argparse `subparsers` object."""
    parser = subparsers.add_parser(
        "make-mnistc",
        help="Generate the MNIST-C corruptions offline from MNIST arrays.",
        description=(
            "Apply the published MNIST-C recipe (Mu & Gilmer, 2019) to MNIST "
            "digits and write <out>/<corruption>/{train,test}_{images,labels}.npy, "
            "the layout of mnist_c.zip, which load_mnist_corrupted(..., "
            'source="local") reads.'
        ),
    )
    parser.add_argument(
        "--mnist",
        required=True,
        type=pathlib.Path,
        metavar="FILE.npz",
        help=(
            "MNIST arrays: either `images` (n, 28, 28) uint8 and `labels` (n,), "
            "split here into train and test, or x_train/y_train/x_test/y_test."
        ),
    )
    parser.add_argument(
        "--out",
        required=True,
        type=pathlib.Path,
        metavar="DIR",
        help="Output directory.",
    )
    parser.add_argument(
        "--corruptions",
        nargs="+",
        default=None,
        metavar="NAME",
        help="Configs to write (TFDS names, e.g. identity fog stripe); default all 16.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the corruptions and the split.")
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        metavar="F",
        help=(
            "For an npz with `images`/`labels` only: the fraction, drawn at "
            "random with --seed, that becomes the test split "
            f"(default {DEFAULT_TEST_FRACTION})."
        ),
    )
    split.add_argument(
        "--num-test",
        type=int,
        default=None,
        metavar="N",
        help="Like --test-fraction, as a number of test images.",
    )
    parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")
    add_verbose_flag(parser)
    parser.set_defaults(func=make_mnistc_command)


def make_mnistc_command(args):
    """Run `make-mnistc` from parsed arguments; returns the exit status."""
    from keras_odetoode.data.mnist_corrupted import make_mnist_c, read_mnist_npz

    train, test = read_mnist_npz(
        args.mnist,
        test_fraction=args.test_fraction,
        num_test=args.num_test,
        seed=args.seed,
    )
    out = make_mnist_c(
        train,
        test,
        args.out,
        corruptions=args.corruptions,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(f"Wrote MNIST-C ({len(train[0])} train, {len(test[0])} test images) to {out}")
    return 0
