"""Corrupted MNIST (MNIST-C) as batched `tf.data` pipelines, from TFDS or local files.

Two sources give the same examples:

* `source="tfds"`: TensorFlow Datasets' `mnist_corrupted/<corruption>`
  (train 60,000 / test 10,000 per config), once prepared in `data_dir`:
  downloaded by TFDS, or built offline by `prepare_tfds` (CLI:
  `keras-odetoode prepare-tfds`) from a local `mnist_c.zip`.
* `source="local"`: the layout of the published `mnist_c.zip` (Mu & Gilmer,
  2019), `<root>/<corruption>/{train,test}_{images,labels}.npy`, with images
  uint8 `(n, 28, 28, 1)` and labels uint8 `(n,)` — an extracted download, or a
  directory written by `make_mnist_c` / `keras-odetoode make-mnistc`.

Either way, examples are `(image, label)`: the image flattened to float32
`(784,)` in [0, 1], the label an int64 digit, as the paper's fully connected
models take them (§5.2). The split is held in memory as uint8 (~47 MB for
60,000 images) and batches are gathered from it by index, so the pipeline's
work is per batch, never per example.
"""

import functools
import json
import os
import pathlib
import shutil
import tempfile
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from keras_odetoode import __version__
from keras_odetoode.atomic import write_atomic
from keras_odetoode.checks import check_choice, check_integer
from keras_odetoode.data import corruptions as corruptions_lib
from keras_odetoode.errors import InputError

CORRUPTION_NAMES = corruptions_lib.CORRUPTION_NAMES
SPLITS = ("train", "test")
SOURCES = ("tfds", "local")
IMAGE_SHAPE = (28, 28, 1)
# Images per independently seeded generation block in `make_mnist_c`; part of
# what a seed means, so changing it changes the generated data.
GENERATION_BLOCK = 10_000
# Examples per batch when reading a TFDS split whole into memory.
_TFDS_READ_BATCH = 10_000


def local_paths(root, corruption, split):
    """Paths of the images and labels files of one split in the MNIST-C layout.

    `root` may be the directory holding the corruption folders, or its parent
    when the folders sit in `mnist_c/` (as `mnist_c.zip` extracts).

    Returns:
        `(images_path, labels_path)`, `pathlib.Path`s (they may not exist).
    """
    check_choice("corruption", corruption, CORRUPTION_NAMES)
    check_choice("split", split, SPLITS)
    root = pathlib.Path(root).expanduser()
    if not (root / corruption).is_dir() and (root / "mnist_c" / corruption).is_dir():
        root = root / "mnist_c"
    folder = root / corruption
    return folder / f"{split}_images.npy", folder / f"{split}_labels.npy"


def _check_labels(labels, count, what):
    """`labels` as uint8 if they are `count` integer digits 0–9, else a ValueError about `what`."""
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Bad {what}. Received: shape={labels.shape}, "
            f"dtype={labels.dtype}. Expected: shape=({count},), an integer dtype"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"Bad {what}. Received: values from {labels.min()} to {labels.max()}. Expected: digits 0 to 9")
    return labels.astype(np.uint8)


def read_local_split(root, corruption, split):
    """Read one split of the MNIST-C layout and check it.

    Args:
        root: directory of the layout (see `local_paths`).
        corruption: one of `CORRUPTION_NAMES`.
        split: "train" or "test".

    Returns:
        `(images, labels)`: uint8 `(n, 28, 28, 1)` and uint8 `(n,)`.

    Raises:
        FileNotFoundError: naming the expected file when it is missing.
        ValueError: when a file is not a readable `.npy` array, or shapes,
            dtypes or label values are not MNIST-C's.
    """
    images_path, labels_path = local_paths(root, corruption, split)
    for path in (images_path, labels_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"MNIST-C file not found. Expected: {path} (layout "
                "<root>/<corruption>/{train,test}_{images,labels}.npy, as in "
                "mnist_c.zip). Write it offline with `keras-odetoode make-mnistc "
                f"--mnist MNIST.npz --out {pathlib.Path(root)}`."
            )
    return _check_split(
        load_numpy(images_path, np.ndarray),
        load_numpy(labels_path, np.ndarray),
        f"in {images_path}",
        f"in {labels_path}",
    )


def load_numpy(path, kind, name=""):
    """`np.load(path)`, which must give `kind` (`np.ndarray` or `NpzFile`); a ValueError naming the file if not.

    `name` prefixes the path in messages (a command-line flag such as "--mnist").
    """
    what = f"{name} {path}".strip()
    expected = "an .npy array written by numpy.save" if kind is np.ndarray else "an .npz archive written by numpy.savez"
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise ValueError(f"Cannot read {what} ({type(error).__name__}: {error}). Expected: {expected}") from error
    if not isinstance(loaded, kind):
        raise ValueError(f"{what} is {'an .npz archive' if kind is np.ndarray else 'a single array'}. "
                         f"Expected: {expected}")  # fmt: skip
    return loaded


def _check_split(images, labels, images_origin, labels_origin):
    """`(images, uint8 labels)` of an MNIST-C split; a ValueError naming the origin if not one."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"Bad MNIST-C images {images_origin}. Received: "
            f"shape={images.shape}, dtype={images.dtype}. "
            "Expected: shape=(n, 28, 28, 1), dtype=uint8"
        )
    return images, _check_labels(labels, len(images), f"MNIST-C labels {labels_origin}")


def _offline_advice(corruption):
    return (
        "Without internet access, use the local source: "
        f'load_mnist_corrupted("{corruption}", split, source="local", '
        "data_dir=DIR) on an extracted mnist_c.zip, or generate that layout "
        "from MNIST arrays with `keras-odetoode make-mnistc --mnist MNIST.npz "
        "--out DIR`; or build the TFDS dataset from a local mnist_c.zip with "
        "`keras-odetoode prepare-tfds --archive mnist_c.zip`."
    )


def _tfds_split(corruption, split, data_dir, download):
    """`(images, labels)` of a prepared TFDS split, read whole, as numpy arrays in the order of the .npy files."""
    import tensorflow_datasets as tfds

    name = f"mnist_corrupted/{corruption}"
    builder = tfds.builder(name, data_dir=data_dir)
    # Offline, `tfds.load` retries its download for minutes before failing;
    # asking the builder first fails at once.
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(
                f"TFDS dataset {name} is not prepared in {builder.data_dir}. "
                "Pass download=True (keras-odetoode mnistc: --download) to download and prepare it "
                "(needs internet). " + _offline_advice(corruption)
            )
        import requests

        try:
            builder.download_and_prepare()
        except (
            tfds.download.DownloadError,
            ConnectionError,
            requests.exceptions.RequestException,
        ) as error:
            raise ConnectionError(
                f"Could not download TFDS dataset {name}: {error}. " + _offline_advice(corruption)
            ) from error
    # The whole split, in record order, read in a few large batches:
    # `batch_size=-1` would batch by the size recorded in the dataset info,
    # which may be missing (`tfds.testing.mock_data` has none, and TFDS then
    # asks for a batch of sys.maxsize).
    chunks = list(
        tfds.as_numpy(
            builder.as_dataset(
                split=split,
                batch_size=_TFDS_READ_BATCH,
                as_supervised=True,
                shuffle_files=False,
            )
        )
    )
    if chunks:
        images = np.concatenate([x for x, _ in chunks])
        labels = np.concatenate([y for _, y in chunks])
    else:
        images, labels = np.zeros((0,) + IMAGE_SHAPE, np.uint8), np.zeros(0, np.uint8)
    where = f"from TFDS {name} ({split})"
    images, labels = _check_split(images, labels, where, where)
    if builder.info.disable_shuffling:
        return images, labels
    # Back to the order of the .npy files, so that both sources give identical batches.
    order = _tfds_record_order(split, len(images))
    file_images, file_labels = np.empty_like(images), np.empty_like(labels)
    file_images[order], file_labels[order] = images, labels
    return file_images, file_labels


def _tfds_record_order(split, count):
    """The index in the .npy files of each record of a TFDS-prepared split, in record order.

    TFDS writes a split's examples sorted by the hash of their key salted with
    the split's name (`tensorflow_datasets.core.hashing`, fixed for a dataset
    version: TFDS's slicing, `train[:10%]`, depends on it), and the keys
    `mnist_corrupted` gives its examples are their indices in the .npy files.
    """
    from tensorflow_datasets.core import hashing

    return np.array(sorted(range(count), key=hashing.Hasher(split).hash_key), dtype=np.int64)


#: The files of each config in the MNIST-C layout.
_LAYOUT_FILES = tuple(f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels"))


def prepare_tfds(archive, data_dir=None, corruptions=None):
    """Build TFDS's `mnist_corrupted` configs offline from a local `mnist_c.zip`.

    Runs TensorFlow Datasets' own `mnist_corrupted` builder with its features,
    `_generate_examples` and writer, and one change: its split generators read
    the `.npy` files of a local archive (or its extracted folder) instead of
    downloading `mnist_c.zip`. Nothing is downloaded. Each config is written
    where TFDS writes it when it downloads (`<data_dir>/mnist_corrupted/
    <corruption>/1.0.0/`: TFRecord files and `dataset_info.json`), so
    `load_mnist_corrupted(corruption, split, source="tfds", data_dir=data_dir)`
    and `tfds.load("mnist_corrupted/<corruption>", data_dir=data_dir)` read it:
    the records TFDS writes after a download, in the same order. The archive's
    checksum is not checked, so a layout written by `make_mnist_c` (zipped or
    not) is built the same way as the published archive.

    Configs are built one after the other; bad files stop the build at the
    config they belong to, and the configs built before it stay. A zip archive
    is extracted one config at a time into a temporary folder in `data_dir`
    (about 55 MB per config for the published archive), removed afterwards.
    Configs already prepared in `data_dir` are kept as they are.

    Args:
        archive: `mnist_c.zip` (members `mnist_c/<corruption>/{train,test}_
            {images,labels}.npy`, or the same without the `mnist_c/` folder),
            or a folder in the MNIST-C layout (see `local_paths`).
        data_dir: the TFDS data directory; None for TFDS's default
            (`~/tensorflow_datasets`, or `$TFDS_DATA_DIR`).
        corruptions: configs to build (names of `CORRUPTION_NAMES`, or one
            name); None for every config.

    Returns:
        `{corruption: path}`: the folder of each prepared config.

    Raises:
        FileNotFoundError: `archive` does not exist.
        ValueError: an unknown corruption; an archive that is not a zip
            archive or folder in the MNIST-C layout, or lacks a file of a
            requested config; files whose arrays are not MNIST-C's.

    Example:

    >>> prepare_tfds("~/Downloads/mnist_c.zip", "~/tensorflow_datasets", ["fog", "stripe"])
    >>> test = load_mnist_corrupted(
    ...     "fog", "test", source="tfds", data_dir="~/tensorflow_datasets")
    """
    import tensorflow_datasets as tfds

    names = _corruption_names(corruptions)
    archive = pathlib.Path(archive).expanduser()
    if not archive.exists():
        raise FileNotFoundError(
            f"MNIST-C archive not found. Received: archive={os.fspath(archive)!r}. "
            "Expected: mnist_c.zip, or the folder it extracts to"
        )
    zipped = not archive.is_dir()
    if zipped:
        prefix = _zip_prefix(archive, names)
    else:
        paths = [path for name in names for split in SPLITS for path in local_paths(archive, name, split)]
        _check_layout(archive, names, [os.fspath(path) for path in paths if not path.is_file()])
    prepared = {}
    for name in names:
        builder = _offline_builder_class()(config=name, data_dir=data_dir)
        # TFDS's own test of a config to reuse (`is_prepared` would log a warning for each new one).
        if not builder.data_path.exists():
            root = pathlib.Path(builder.data_dir_root)
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".mnist_c-", dir=root) as scratch:
                layout = archive
                if zipped:
                    layout = pathlib.Path(scratch) / "mnist_c"
                    (layout / name).mkdir(parents=True)
                    with zipfile.ZipFile(archive) as opened:
                        for file in _LAYOUT_FILES:
                            with (
                                opened.open(f"{prefix}{name}/{file}") as packed,
                                open(layout / name / file, "wb") as out,
                            ):
                                shutil.copyfileobj(packed, out)
                for split in SPLITS:
                    read_local_split(layout, name, split)  # shapes, dtypes and labels, with clear errors
                # The folder of the corruption folders (`layout` may be its parent).
                builder.layout_dir = os.fspath(local_paths(layout, name, "train")[0].parents[1])
                builder.download_and_prepare(
                    download_dir=scratch,
                    download_config=tfds.download.DownloadConfig(try_download_gcs=False),
                )
        prepared[name] = pathlib.Path(builder.data_dir)
    return prepared


def _corruption_names(corruptions):
    """The config names of `corruptions` (None: all; one name; or names), checked, without repeats."""
    if corruptions is None:
        return CORRUPTION_NAMES
    names = (corruptions,) if isinstance(corruptions, str) else tuple(corruptions)
    for name in names:
        check_choice("corruption", name, CORRUPTION_NAMES)
    return tuple(dict.fromkeys(names))


def _check_layout(archive, names, missing):
    """An InputError naming the `missing` files (paths or zip members) of the configs `names`, if any."""
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise InputError(
            f"{archive} is not in the MNIST-C layout: {len(missing)} files of the configs "
            f"{', '.join(names)} are missing, e.g. {shown}. Expected: "
            "mnist_c/<corruption>/{train,test}_{images,labels}.npy, as in mnist_c.zip"
        )


def _zip_prefix(archive, names):
    """The folder ("mnist_c/" or "") of the MNIST-C layout in a zip archive holding every file of `names`."""
    try:
        with zipfile.ZipFile(archive) as opened:
            present = set(opened.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(
            f"Cannot read {archive} as a zip archive ({type(error).__name__}: {error}). "
            "Expected: mnist_c.zip, or the folder it extracts to"
        ) from error
    # mnist_c.zip holds the layout in a folder mnist_c/; a zip of the layout itself works too.
    prefix = "mnist_c/" if any(member.startswith("mnist_c/") for member in present) else ""
    members = [f"{prefix}{name}/{file}" for name in names for file in _LAYOUT_FILES]
    _check_layout(archive, names, [member for member in members if member not in present])
    return prefix


@functools.cache
def _offline_builder_class():
    """TFDS's `mnist_corrupted` builder, reading a local MNIST-C layout instead of downloading.

    A subclass of `tensorflow_datasets.image_classification.mnist_corrupted.
    MNISTCorrupted` under the same name, not registered with TFDS (the
    registered builder reads what it writes); only `_split_generators`
    changes, pointing the builder's own `_generate_examples` at `layout_dir`.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist_corrupted

    class OfflineMNISTCorrupted(mnist_corrupted.MNISTCorrupted, skip_registration=True):
        name = "mnist_corrupted"
        #: The folder holding `<corruption>/{train,test}_{images,labels}.npy`.
        layout_dir = None

        def _split_generators(self, dl_manager):
            del dl_manager  # nothing to download
            return [
                tfds.core.SplitGenerator(
                    name=split,
                    gen_kwargs={"data_dir": self.layout_dir, "is_train": split == "train"},
                )
                for split in SPLITS
            ]

    return OfflineMNISTCorrupted


def _local_split(corruption, split, data_dir):
    if data_dir is None:
        raise ValueError(
            'source="local" reads files from a directory. Received: data_dir=None. '
            "Expected: the directory of the MNIST-C layout "
            "(<data_dir>/<corruption>/{train,test}_{images,labels}.npy)"
        )
    return read_local_split(data_dir, corruption, split)


def _batched_dataset(images, labels, batch_size, shuffle, shuffle_seed, drop_remainder):
    """Batches of an in-memory split, each gathered by index and converted at once.

    Shuffled, every epoch (every iteration of the dataset) draws a seed from
    `tf.data.Dataset.random` and permutes all indices in one stateless op
    (`tf.random.experimental.index_shuffle`):
    each example once per epoch, a new order each epoch, and the same
    sequence of orders for the same seed. The work is per batch, none per
    example: a tf.data element per example costs more in overhead (a few µs)
    than the example itself.
    """
    count = len(images)
    full = count // batch_size
    steps = full if drop_remainder or count % batch_size == 0 else full + 1
    # uint8 rows (4x smaller than float32); int64 labels, as TFDS's ClassLabel.
    images = tf.constant(images.reshape(count, 28 * 28))
    labels = tf.constant(labels.astype(np.int64))

    def index_batches(order):
        # Rows of the reshaped order: no function call per batch.
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[: full * batch_size], (full, batch_size)))
        if drop_remainder:
            return batches
        # The last, smaller batch (if any); as with `Dataset.batch`, the batch
        # dimension is then None whatever the split's size.
        rest = tf.data.Dataset.from_tensors(order[full * batch_size :])
        return batches.concatenate(rest.take(steps - full))

    if shuffle:
        seeds = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True)
        # The int64 pair of a stateless seed, and the positions 0 … n−1 as an element, not a
        # constant of the function: each new iterator (each epoch) optimizes the dataset's
        # functions again, and the fewer and plainer they are, the sooner the epoch starts.
        # `index_shuffle` (a keyed bijection of the positions) costs less there than
        # `stateless_shuffle`: 11 against 18 ms per new iterator at 60,000 images.
        epochs = tf.data.Dataset.zip(
            seeds.batch(2, drop_remainder=True).take(1),
            tf.data.Dataset.from_tensors(tf.range(count, dtype=tf.int64)),
        )
        # `flat_map` hides the length; Keras shows it as the epoch's step total.
        indices = epochs.flat_map(
            lambda seed, positions: index_batches(tf.random.experimental.index_shuffle(positions, seed, count - 1))
        ).apply(tf.data.experimental.assert_cardinality(steps))
    else:
        indices = index_batches(tf.range(count, dtype=tf.int64))

    def gather(indices):
        rows = tf.cast(tf.gather(images, indices), tf.float32) / 255.0
        return rows, tf.gather(labels, indices)

    dataset = indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_mnist_corrupted(
    corruption,
    split,
    batch_size=128,
    data_dir=None,
    source="tfds",
    shuffle_seed=0,
    shuffle=None,
    download=False,
    drop_remainder=False,
):
    """Batched, prefetched `tf.data.Dataset` of one MNIST-C config and split.

    The supervised data of the paper (§5.2, "Corrupted MNIST"): examples are
    `(image, label)` with the image flattened to float32 `(784,)` in [0, 1] and
    an int64 label. Training data are shuffled over the whole split with
    `shuffle_seed` (each example once per epoch, a new order each epoch, the
    same sequence of orders for the same seed); unshuffled data come in file
    order. Both sources yield identical batches for identical files (TFDS
    stores a split in an order of its own, a hash of each example's index in
    the files; the loader puts it back in file order). The split
    is read whole into memory as uint8 (~47 MB for 60,000 images); each batch
    is gathered from it by index and converted at once, so the pipeline's cost
    is per batch, not per example. The number of batches is known
    (`dataset.cardinality()`), so Keras progress bars show the epoch's total.

    Args:
        corruption: a TFDS config name: one of `CORRUPTION_NAMES` (identity,
            shot_noise, impulse_noise, glass_blur, motion_blur, shear, scale,
            rotate, brightness, translate, stripe, fog, spatter, dotted_line,
            zigzag, canny_edges).
        split: "train" or "test".
        batch_size: examples per batch.
        data_dir: for "tfds", the TFDS data directory (None: TFDS's default),
            prepared by `download=True` or, offline, by `prepare_tfds`; for
            "local", the root of the MNIST-C layout (required).
        source: "tfds" or "local".
        shuffle_seed: seed of the example shuffle (None: a new order each run).
            As with tf.data's own seeded ops, the orders also depend on
            TensorFlow's global seed (`tf.random.set_seed`,
            `keras.utils.set_random_seed`) when one is set.
        shuffle: whether to shuffle; None shuffles the train split only.
        download: for "tfds", download and prepare the dataset if `data_dir`
            does not hold it (needs internet). By default a missing dataset
            raises at once instead of retrying a download for minutes.
        drop_remainder: drop the last, smaller batch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` batches, float32
        `(batch, 784)` and int64 `(batch,)`.

    Raises:
        ValueError: unknown corruption, split or source, bad batch size, bad
            local files.
        FileNotFoundError: a local file, or the prepared TFDS dataset, is missing.
        ConnectionError: `download=True` and the download failed.

    Example:

    >>> train = load_mnist_corrupted(
    ...     "shot_noise", "train", source="local", data_dir="~/data/mnist_c")
    >>> images, labels = next(iter(train))   # (128, 784) float32, (128,) int64
    """
    check_choice("corruption", corruption, CORRUPTION_NAMES)
    check_choice("split", split, SPLITS)
    check_choice("source", source, SOURCES)
    batch_size = check_integer("batch_size", batch_size, 1)
    if shuffle is None:
        shuffle = split == "train"
    if source == "tfds":
        images, labels = _tfds_split(corruption, split, data_dir, download)
    else:
        images, labels = _local_split(corruption, split, data_dir)
    return _batched_dataset(images, labels, int(batch_size), shuffle, shuffle_seed, drop_remainder)


def _check_mnist_split(name, images, labels):
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    corruptions_lib.check_images(images)
    return images, _check_labels(labels, len(images), f"MNIST {name} labels")


def block_rng(seed, corruption, split, block):
    """The random generator of one generation block of `make_mnist_c`.

    Keyed by the corruption's name (not its position in a list), the split and
    the block index, so a config comes out the same whichever others are
    generated with it.
    """
    key = (zlib.crc32(corruption.encode()), SPLITS.index(split), block)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def make_mnist_c(train, test, out_dir, corruptions=None, seed=0, progress=True):
    """Write the MNIST-C layout, generated offline from plain MNIST arrays.

    Applies each corruption of `keras_odetoode.data.corruptions` (the published
    MNIST-C recipe) to both splits and writes
    `<out_dir>/<corruption>/{train,test}_{images,labels}.npy` exactly as
    `mnist_c.zip` lays them out, plus `<out_dir>/generation.json` recording the
    seed. Splits are processed in blocks of `GENERATION_BLOCK` images, each
    with its own seeded generator (`block_rng`). Every file is written
    atomically.

    Args:
        train: `(images, labels)`, uint8 images `(n, 28, 28)` (or
            `(n, 28, 28, 1)`), integer labels 0–9.
        test: the same for the test split.
        out_dir: output directory (created if needed).
        corruptions: names to generate; None for all 16 configs.
        seed: int seed of the whole dataset.
        progress: show a tqdm progress bar (in images).

    Returns:
        The output directory, a `pathlib.Path`.

    Example:

    >>> make_mnist_c((x_train, y_train), (x_test, y_test), "mnist_c",
    ...              corruptions=["fog", "stripe"])
    """
    from tqdm.auto import tqdm

    if corruptions is None:
        names = CORRUPTION_NAMES
    elif isinstance(corruptions, str):
        names = (corruptions,)
    else:
        names = tuple(corruptions)
    for name in names:
        corruptions_lib.get_corruption(name)
    splits = {
        "train": _check_mnist_split("train", *train),
        "test": _check_mnist_split("test", *test),
    }
    out_dir = pathlib.Path(out_dir).expanduser()
    total = len(names) * sum(len(images) for images, _ in splits.values())
    with tqdm(total=total, unit="img", disable=not progress, desc="make-mnistc") as bar:
        for name in names:
            corrupt = corruptions_lib.get_corruption(name)
            folder = out_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            for split, (images, labels) in splits.items():
                bar.set_postfix_str(f"{name}/{split}")
                out = np.empty(images.shape + (1,), np.uint8)
                for block, start in enumerate(range(0, len(images), GENERATION_BLOCK)):
                    part = slice(start, start + GENERATION_BLOCK)
                    rng = block_rng(seed, name, split, block)
                    out[part, ..., 0] = corrupt(images[part], seed=rng)
                    bar.update(len(images[part]))
                write_atomic(folder / f"{split}_images.npy", lambda file: np.save(file, out))
                write_atomic(folder / f"{split}_labels.npy", lambda file: np.save(file, labels))
    record = out_dir / "generation.json"
    info = json.loads(record.read_text()) if record.is_file() else {}
    info.update(
        generator=f"keras_odetoode {__version__} (keras_odetoode.data.make_mnist_c)",
        recipe="MNIST-C (Mu & Gilmer, 2019, arXiv:1906.02337)",
        block_size=GENERATION_BLOCK,
    )
    info.setdefault("configs", {}).update({name: {"seed": seed} for name in names})
    text = json.dumps(info, indent=2, sort_keys=True) + "\n"
    write_atomic(record, lambda file: file.write(text.encode()))
    return out_dir


#: The part of an unsplit MNIST file that `read_mnist_npz` makes the test split.
DEFAULT_TEST_FRACTION = 0.2


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
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file not found. Received: --mnist {path}")
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
            raise ValueError(f"Received: test_fraction={fraction}. Expected: a number in (0, 1)")
        num_test = int(round(fraction * n))
    if not 0 < num_test < n:
        raise ValueError(
            f"The split must leave images on both sides. Received: num_test={num_test} "
            f"of {n} images. Expected: 0 < num_test < {n}"
        )
    test = np.zeros(n, bool)
    test[np.random.default_rng(seed).choice(n, size=num_test, replace=False)] = True
    return (images[~test], labels[~test]), (images[test], labels[test])
