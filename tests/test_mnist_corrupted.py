"""MNIST-C pipelines: TFDS (mocked, never downloading) and local files agree.

No test reaches the network: the TFDS path runs under
`tfds.testing.mock_data`, or against an empty data_dir, where the loader
must fail at once. `test_tfds_offline.py` runs TFDS's real builder offline.
"""

import pathlib
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_odetoode import cli
from keras_odetoode.data import corruptions
from keras_odetoode.data import mnist_corrupted as M
from test_tfds_offline import record_order

DIGITS_FILE = pathlib.Path(__file__).parent / "data" / "mnist-600.npz"


@pytest.fixture(scope="module")
def digits():
    with np.load(DIGITS_FILE) as data:
        return data["images"], data["labels"]


@pytest.fixture(scope="module")
def layout(digits, tmp_path_factory):
    """A small MNIST-C layout: 500 train and 100 test digits, two configs."""
    images, labels = digits
    root = tmp_path_factory.mktemp("mnist_c")
    M.make_mnist_c(
        (images[:500], labels[:500]),
        (images[500:], labels[500:]),
        root,
        corruptions=["identity", "shot_noise"],
        seed=0,
        progress=False,
    )
    return root


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def stacked(dataset):
    parts = batches(dataset)
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


# ------------------------------------------------------------ local source


def test_local_test_split_is_the_files_in_order(layout, digits):
    images, labels = digits
    dataset = M.load_mnist_corrupted("identity", "test", batch_size=32, source="local", data_dir=layout)
    assert dataset.element_spec[0].shape.as_list() == [None, 784]
    assert dataset.element_spec[0].dtype == tf.float32
    assert dataset.element_spec[1].dtype == tf.int64
    parts = batches(dataset)
    assert [len(x) for x, _ in parts] == [32, 32, 32, 4]
    x, y = stacked(dataset)
    expected = images[500:].reshape(100, 784).astype(np.float32) / 255
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, labels[500:])
    assert x.min() == 0.0 and x.max() == 1.0


def test_local_train_split_is_a_seeded_permutation(layout, digits):
    images, labels = digits

    def load(seed):
        return M.load_mnist_corrupted("identity", "train", 100, layout, source="local", shuffle_seed=seed)

    x, y = stacked(load(0))
    flat = images[:500].reshape(500, 784).astype(np.float32) / 255
    # Same examples, each image still with its label, in a new order.
    index = {row.tobytes(): i for i, row in enumerate(flat)}
    order = np.array([index[row.tobytes()] for row in x])
    np.testing.assert_array_equal(np.sort(order), np.arange(500))
    np.testing.assert_array_equal(y, labels[:500][order])
    assert not np.array_equal(order, np.arange(500))
    again, _ = stacked(load(0))
    other, _ = stacked(load(1))
    np.testing.assert_array_equal(again, x)
    assert not np.array_equal(other, x)
    # A new order every epoch.
    dataset = load(0)
    first, second = stacked(dataset)[0], stacked(dataset)[0]
    assert not np.array_equal(first, second)


def test_each_epoch_is_a_new_permutation_repeated_by_the_seed(layout):
    images, labels = M.read_local_split(layout, "identity", "train")
    index = {row.tobytes(): i for i, row in enumerate(images.reshape(500, 784))}

    def epochs(dataset, count=2):
        orders = []
        for _ in range(count):
            x, y = stacked(dataset)
            rows = np.round(x * 255).astype(np.uint8)
            # Each image once, with its label, whatever the order.
            order = np.array([index[row.tobytes()] for row in rows])
            np.testing.assert_array_equal(np.sort(order), np.arange(500))
            np.testing.assert_array_equal(y, labels[order])
            orders.append(order)
        return orders

    def load(seed):
        return M.load_mnist_corrupted("identity", "train", 128, layout, source="local", shuffle_seed=seed)

    first, second = epochs(load(3))
    assert not np.array_equal(first, second)
    # Well mixed: neither order is near the file order nor near the other (rank correlation
    # of two independent permutations of 500: sd 0.045).
    for a, b in ((first, np.arange(500)), (second, np.arange(500)), (first, second)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.2
    # A fresh dataset with the same seed repeats the same sequence of orders.
    again = epochs(load(3))
    np.testing.assert_array_equal(again[0], first)
    np.testing.assert_array_equal(again[1], second)
    # Without a seed, every run has its own order.
    assert not np.array_equal(epochs(load(None), 1)[0], epochs(load(None), 1)[0])


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_remainder, steps", [(False, 4), (True, 3)])
def test_cardinality_is_the_number_of_batches(layout, shuffle, drop_remainder, steps):
    # Known, so Keras progress bars show each epoch's total.
    dataset = M.load_mnist_corrupted(
        "identity",
        "train",
        batch_size=128,
        source="local",
        data_dir=layout,
        shuffle=shuffle,
        drop_remainder=drop_remainder,
    )
    assert int(dataset.cardinality()) == steps
    sizes = [len(x) for x, _ in batches(dataset)]
    assert sizes == [128, 128, 128, 116][:steps]
    assert dataset.element_spec[0].shape.as_list() == [
        128 if drop_remainder else None,
        784,
    ]


def test_shuffle_and_drop_remainder_options(layout):
    dataset = M.load_mnist_corrupted(
        "identity",
        "train",
        batch_size=64,
        source="local",
        data_dir=layout,
        shuffle=False,
        drop_remainder=True,
    )
    x, _ = stacked(dataset)
    assert x.shape == (448, 784)
    images, _ = M.read_local_split(layout, "identity", "train")
    np.testing.assert_array_equal(x, images[:448].reshape(448, 784) / np.float32(255))


def test_local_root_may_be_the_parent_of_mnist_c(digits, tmp_path):
    images, labels = digits
    # mnist_c.zip extracts to mnist_c/<corruption>/...; either folder works.
    split = (images[:20], labels[:20])
    M.make_mnist_c(split, split, tmp_path / "mnist_c", ["stripe"], progress=False)
    load = lambda root: stacked(  # noqa: E731
        M.load_mnist_corrupted("stripe", "test", source="local", data_dir=root)
    )
    np.testing.assert_array_equal(load(tmp_path)[0], load(tmp_path / "mnist_c")[0])


# ------------------------------------------------------------ TFDS source


def test_tfds_and_local_sources_give_identical_batches(layout):
    images, labels = M.read_local_split(layout, "shot_noise", "train")

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        assert self.builder_config.name == "shot_noise" and split == "train"
        assert not shuffle_files  # the loader shuffles examples itself, seeded
        order = record_order(split, len(images))  # as TFDS writes them
        return tf.data.Dataset.from_tensor_slices({"image": images[order], "label": labels[order].astype(np.int64)})

    options = dict(batch_size=64, shuffle_seed=5)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        # Mocked TFDS has no prepared files; download=True is a mocked no-op.
        from_tfds = batches(M.load_mnist_corrupted("shot_noise", "train", download=True, **options))
    from_files = batches(M.load_mnist_corrupted("shot_noise", "train", source="local", data_dir=layout, **options))
    assert len(from_tfds) == len(from_files) == 8
    for (x_tfds, y_tfds), (x_local, y_local) in zip(from_tfds, from_files):
        assert x_tfds.dtype == x_local.dtype == np.float32
        assert y_tfds.dtype == y_local.dtype == np.int64
        np.testing.assert_array_equal(x_tfds, x_local)
        np.testing.assert_array_equal(y_tfds, y_local)


def test_tfds_mock_data_default_generator_runs_the_pipeline():
    with tfds.testing.mock_data(num_examples=10):
        x, y = stacked(M.load_mnist_corrupted("zigzag", "test", batch_size=4, download=True))
        # The same mocked split read by TFDS itself, in record order.
        reference = tfds.load("mnist_corrupted/zigzag", split="test", as_supervised=True, download=False)
        images, labels = map(np.stack, zip(*tfds.as_numpy(reference)))
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.uint8 and images.max() > 128
    assert x.dtype == np.float32 and y.dtype == np.int64
    # The loader's rows are those images, flattened, / 255, put back in the order of the
    # .npy files: record i is file row order[i].
    order = record_order("test", 10)
    assert not np.array_equal(order, np.arange(10))
    np.testing.assert_array_equal(x[order], images.reshape(-1, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(y[order], labels)
    assert len(set(y.tolist())) > 1


def test_bad_tfds_split_raises_value_error():
    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        images = np.zeros((5, 28, 28), np.uint8)  # no channel axis
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": np.zeros(5, np.int64)})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        with pytest.raises(ValueError, match=r"from TFDS.*shape=\(5, 28, 28\)"):
            M.load_mnist_corrupted("fog", "test", download=True)


def test_unprepared_tfds_fails_at_once_with_offline_advice(tmp_path):
    with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", side_effect=AssertionError) as download:
        with pytest.raises(FileNotFoundError) as error:
            M.load_mnist_corrupted("fog", "train", data_dir=tmp_path)
    download.assert_not_called()
    message = str(error.value)
    assert "not prepared" in message and str(tmp_path) in message
    assert 'source="local"' in message and "make-mnistc" in message
    assert "download=True" in message and "prepare-tfds" in message


@pytest.mark.parametrize(
    "failure",
    [
        tfds.download.DownloadError("no route to zenodo.org"),
        ConnectionError("Max retries exceeded"),
    ],
)
def test_failed_download_points_to_the_local_source(tmp_path, failure):
    with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", side_effect=failure):
        with pytest.raises(ConnectionError) as error:
            M.load_mnist_corrupted("fog", "test", data_dir=tmp_path, download=True)
    message = str(error.value)
    assert 'source="local"' in message and "make-mnistc" in message
    assert error.value.__cause__ is failure


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(corruption="snow"), "corruption='snow'"),
        (dict(split="validation"), "split='validation'"),
        (dict(source="gcs"), "source='gcs'"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(batch_size=2.5), "batch_size=2.5"),
    ],
)
def test_bad_arguments_raise_value_error(layout, kwargs, match):
    arguments = dict(corruption="identity", split="test", source="local", data_dir=layout)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match) as error:
        M.load_mnist_corrupted(**arguments)
    if "corruption" in kwargs:
        for name in corruptions.CORRUPTION_NAMES:
            assert name in str(error.value)


def test_local_source_needs_data_dir():
    with pytest.raises(ValueError, match="data_dir=None"):
        M.load_mnist_corrupted("identity", "test", source="local")


def test_missing_local_file_names_the_expected_path(layout):
    with pytest.raises(FileNotFoundError) as error:
        M.load_mnist_corrupted("fog", "test", source="local", data_dir=layout)
    assert str(layout / "fog" / "test_images.npy") in str(error.value)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8), r"shape=\(5, 28, 28\)"),
        (np.zeros((5, 28, 28, 1), np.float32), np.zeros(5, np.uint8), "dtype=float32"),
        (np.zeros((5, 28, 28, 1), np.uint8), np.zeros(4, np.uint8), r"shape=\(4,\)"),
        (np.zeros((5, 28, 28, 1), np.uint8), np.full(5, 10, np.uint8), "values from 10"),
    ],
)
def test_bad_local_files_raise_value_error(tmp_path, images, labels, match):
    (tmp_path / "stripe").mkdir()
    np.save(tmp_path / "stripe" / "test_images.npy", images)
    np.save(tmp_path / "stripe" / "test_labels.npy", labels)
    with pytest.raises(ValueError, match=match):
        M.load_mnist_corrupted("stripe", "test", source="local", data_dir=tmp_path)


def test_unreadable_local_files_raise_value_error_naming_them(tmp_path, digits):
    (tmp_path / "stripe").mkdir()
    images_path = tmp_path / "stripe" / "test_images.npy"
    np.save(tmp_path / "stripe" / "test_labels.npy", digits[1][:5])
    np.save(images_path, np.zeros((5, 28, 28, 1), np.uint8))
    images_path.write_bytes(images_path.read_bytes()[:200])  # cut short, as by an interrupted copy
    with pytest.raises(ValueError, match=rf"Cannot read {images_path} \(ValueError: .*could only read 72"):
        M.load_mnist_corrupted("stripe", "test", source="local", data_dir=tmp_path)
    images_path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"Cannot read {images_path} \(EOFError"):
        M.load_mnist_corrupted("stripe", "test", source="local", data_dir=tmp_path)
    np.save(images_path, np.array([None] * 5, dtype=object))  # pickled objects are not read
    with pytest.raises(ValueError, match=rf"Cannot read {images_path} .*allow_pickle"):
        M.load_mnist_corrupted("stripe", "test", source="local", data_dir=tmp_path)


# ------------------------------------------------------------ generation


def test_generated_layout_is_the_mnist_c_zip_layout(layout, digits):
    images, labels = digits
    for name in ("identity", "shot_noise"):
        assert sorted(p.name for p in (layout / name).iterdir()) == [
            "test_images.npy",
            "test_labels.npy",
            "train_images.npy",
            "train_labels.npy",
        ]
        train_images = np.load(layout / name / "train_images.npy")
        assert train_images.shape == (500, 28, 28, 1) and train_images.dtype == np.uint8
        train_labels = np.load(layout / name / "train_labels.npy")
        assert train_labels.dtype == np.uint8
        np.testing.assert_array_equal(train_labels, labels[:500])
    identity = np.load(layout / "identity" / "test_images.npy")[..., 0]
    np.testing.assert_array_equal(identity, images[500:])
    # Block 0 of each split uses its own seeded generator.
    rng = M.block_rng(0, "shot_noise", "test", 0)
    noisy = np.load(layout / "shot_noise" / "test_images.npy")[..., 0]
    np.testing.assert_array_equal(noisy, corruptions.shot_noise(images[500:], seed=rng))


def test_a_config_does_not_depend_on_the_others_generated(digits, tmp_path):
    images, labels = digits
    # The test split repeats the first 50 train digits.
    train, test = (images[:100], labels[:100]), (images[:50], labels[:50])
    M.make_mnist_c(train, test, tmp_path / "a", ["zigzag"], progress=False)
    M.make_mnist_c(train, test, tmp_path / "b", ["fog", "zigzag"], progress=False)

    def read(folder, split):
        return M.read_local_split(tmp_path / folder, "zigzag", split)[0]

    for split in ("train", "test"):
        np.testing.assert_array_equal(read("a", split), read("b", split))
    # Train and test blocks draw different lines on the same digits.
    assert not np.array_equal(read("a", "train")[:50], read("a", "test"))


def test_make_mnistc_cli(digits, tmp_path, capsys):
    def argv(out):
        return [
            "make-mnistc", "--mnist", str(DIGITS_FILE), "--out", str(out), "--seed", "3",
            "--corruptions", "identity", "stripe", "--no-progress",
        ]  # fmt: skip

    out = tmp_path / "out"
    assert cli.main(argv(out)) == 0
    assert "480 train, 120 test" in capsys.readouterr().out
    # No temporary files left behind by the atomic writes.
    names = sorted(p.name for p in out.iterdir())
    assert names == ["generation.json", "identity", "stripe"]
    assert len(list((out / "stripe").iterdir())) == 4
    train, _ = M.read_local_split(out, "identity", "train")
    test, test_labels = M.read_local_split(out, "identity", "test")
    images, labels = digits
    # The split is a seeded partition of the input digits, labels attached.
    rows = {image.tobytes(): label for image, label in zip(images, labels)}
    both = np.concatenate([train, test])[..., 0]
    as_bytes = lambda a: sorted(image.tobytes() for image in a)  # noqa: E731
    assert as_bytes(both) == as_bytes(images)
    assert [rows[image.tobytes()] for image in test[..., 0]] == list(test_labels)
    stripe_test, _ = M.read_local_split(out, "stripe", "test")
    np.testing.assert_array_equal(stripe_test[..., 0], corruptions.stripe(test[..., 0]))
    # Same seed, same files.
    assert cli.main(argv(tmp_path / "again")) == 0
    again, _ = M.read_local_split(tmp_path / "again", "identity", "test")
    np.testing.assert_array_equal(again, test)


def test_make_mnistc_cli_keeps_an_existing_split(digits, tmp_path):
    images, labels = digits
    npz = tmp_path / "split.npz"
    np.savez(
        npz,
        x_train=images[:50],
        y_train=labels[:50],
        x_test=images[50:60],
        y_test=labels[50:60],
    )
    argv = ["make-mnistc", "--mnist", str(npz), "--out", str(tmp_path / "o")]
    argv += ["--no-progress"]
    assert cli.main(argv + ["--corruptions", "identity"]) == 0
    test, test_labels = M.read_local_split(tmp_path / "o", "identity", "test")
    np.testing.assert_array_equal(test[..., 0], images[50:60])
    np.testing.assert_array_equal(test_labels, labels[50:60])
    with pytest.raises(ValueError, match="already has a train/test split"):
        cli.main(argv + ["--num-test", "5"])


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--corruptions", "snow"], "corruption='snow'.*canny_edges"),
        (["--test-fraction", "1.5"], "test_fraction=1.5"),
        (["--num-test", "600"], "num_test=600"),
    ],
)
def test_make_mnistc_cli_errors(tmp_path, extra, match):
    argv = ["make-mnistc", "--mnist", str(DIGITS_FILE), "--out", str(tmp_path)]
    argv += ["--no-progress"]
    with pytest.raises(ValueError, match=match):
        cli.main(argv + extra)


def test_make_mnistc_cli_files_that_are_not_an_npz_archive(tmp_path, digits):
    single = tmp_path / "images.npy"
    np.save(single, digits[0])
    with pytest.raises(ValueError, match=rf"--mnist {single} is a single array. Expected: an \.npz archive"):
        cli.main(["make-mnistc", "--mnist", str(single), "--out", str(tmp_path / "o")])
    text = tmp_path / "mnist.npz"
    text.write_text("not numpy")
    with pytest.raises(ValueError, match=rf"Cannot read --mnist {text} \(ValueError"):
        cli.main(["make-mnistc", "--mnist", str(text), "--out", str(tmp_path / "o")])


def test_make_mnistc_cli_missing_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        cli.main(["make-mnistc", "--mnist", str(missing), "--out", str(tmp_path)])
