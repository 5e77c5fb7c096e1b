"""`keras-odetoode make-mnistc`: write the MNIST-C dataset offline from MNIST arrays.

Example:

    keras-odetoode make-mnistc --mnist mnist.npz --out ~/data/mnist_c \\
        --corruptions fog stripe --seed 0

then `load_mnist_corrupted("fog", "train", source="local",
data_dir="~/data/mnist_c")`.
"""

import pathlib

DEFAULT_TEST_FRACTION = 0.2


def register(subparsers):
    """Add the `make-mnistc` sub-command to an argparse `subparsers` object."""
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
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed of the corruptions and the split."
    )
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
    parser.add_argument(
        "--no-progress", action="store_true", help="Do not show a progress bar."
    )
    parser.set_defaults(func=make_mnistc_command)


def read_mnist_npz(path, *, test_fraction=None, num_test=None, seed=0):
    """Train and test arrays from an MNIST npz file.

    Accepts `x_train`, `y_train`, `x_test`, `y_test` (split kept as is), or
    `images` and `labels`, split here: a random subset of `num_test` images
    (or `round(test_fraction * n)`, default fraction 0.2), drawn with `seed`,
    becomes the test split and keeps its order; the rest is the train split.

    Returns:
        `((train_images, train_labels), (test_images, test_labels))`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: unknown keys, a split option for an already split file,
            or a split that leaves either side empty.
    """
    import numpy as np

    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file not found. Received: --mnist {path}")
    from keras_odetoode.data.mnist_corrupted import load_numpy

    with load_numpy(path, np.lib.npyio.NpzFile, "--mnist") as arrays:
        keys = set(arrays.files)
        if {"x_train", "y_train", "x_test", "y_test"} <= keys:
            if test_fraction is not None or num_test is not None:
                raise ValueError(
                    f"{path} already has a train/test split (x_train, x_test). "
                    f"Received: test_fraction={test_fraction}, num_test={num_test}. "
                    "Expected: no split option"
                )
            return (
                (arrays["x_train"], arrays["y_train"]),
                (arrays["x_test"], arrays["y_test"]),
            )
        if not {"images", "labels"} <= keys:
            raise ValueError(
                f"Unknown MNIST npz layout in {path}. Received: keys={sorted(keys)}. "
                "Expected: images and labels, or x_train, y_train, x_test and y_test"
            )
        images, labels = arrays["images"], arrays["labels"]
    n = len(images)
    if num_test is None:
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if not 0.0 < fraction < 1.0:
            raise ValueError(
                f"Received: test_fraction={fraction}. Expected: a number in (0, 1)"
            )
        num_test = int(round(fraction * n))
    if not 0 < num_test < n:
        raise ValueError(
            f"The split must leave images on both sides. Received: num_test={num_test} "
            f"of {n} images. Expected: 0 < num_test < {n}"
        )
    test = np.zeros(n, bool)
    test[np.random.default_rng(seed).choice(n, size=num_test, replace=False)] = True
    return (images[~test], labels[~test]), (images[test], labels[test])


def make_mnistc_command(args):
    """Run `make-mnistc` from parsed arguments; returns the exit status."""
    from keras_odetoode.data.mnist_corrupted import make_mnist_c

    try:
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
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"keras-odetoode make-mnistc: error: {error}") from error
    print(f"Wrote MNIST-C ({len(train[0])} train, {len(test[0])} test images) to {out}")
    return 0
