"""TFDS's own mnist_corrupted builder, run offline on a local archive: no mocks, no network.

`prepare_tfds` builds every config from a small archive in the layout of the published
`mnist_c.zip` (600 real digits corrupted by `make_mnist_c`), and `load_mnist_corrupted`
reads the TFRecords TFDS wrote: its batches equal the local files' exactly. A guard fails
the module if anything opens a socket or asks TFDS's download manager for a URL.
"""

import hashlib
import pathlib
import socket
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist_corrupted as tfds_mnist_corrupted

from keras_odetoode import cli
from keras_odetoode.data import mnist_corrupted as M
from keras_odetoode.errors import InputError

DIGITS_FILE = pathlib.Path(__file__).parent / "data" / "mnist-600.npz"
NUM_TRAIN = 500  # and 100 test digits


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """Every socket connection and every URL asked of TFDS's download manager fails the module."""
    attempts = []

    def refuse(what):
        def refused(*args, **kwargs):
            attempts.append((what, args))
            raise AssertionError(f"network access in an offline test: {what}{args!r}")

        return refused

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse("socket.connect"))
        patch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
        patch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
        patch.setattr(tfds.download.DownloadManager, "download", refuse("DownloadManager.download"))
        patch.setattr(
            tfds.download.DownloadManager, "download_and_extract", refuse("DownloadManager.download_and_extract")
        )
        yield
    assert not attempts, attempts  # even if something caught the AssertionError


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """`<root>/mnist_c/<corruption>/...`: every config, 500 train and 100 test digits."""
    with np.load(DIGITS_FILE) as data:
        images, labels = data["images"], data["labels"]
    root = tmp_path_factory.mktemp("layout")
    train, test = (images[:NUM_TRAIN], labels[:NUM_TRAIN]), (images[NUM_TRAIN:], labels[NUM_TRAIN:])
    M.make_mnist_c(train, test, root / "mnist_c", seed=0, progress=False)
    return root


def zip_layout(layout, path, names=M.CORRUPTION_NAMES, folder="mnist_c/"):
    """A zip archive of `layout` as mnist_c.zip holds it: `mnist_c/<corruption>/<file>.npy`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            for file in sorted((layout / "mnist_c" / name).iterdir()):
                archive.write(file, f"{folder}{name}/{file.name}")
    return path


@pytest.fixture(scope="module")
def archive(layout, tmp_path_factory):
    return zip_layout(layout, tmp_path_factory.mktemp("archive") / "mnist_c.zip")


@pytest.fixture(scope="module")
def data_dir(archive, tmp_path_factory):
    """Every config, built by TFDS's builder from the archive."""
    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    prepared = M.prepare_tfds(archive, data_dir)
    assert list(prepared) == list(M.CORRUPTION_NAMES)
    for name, path in prepared.items():
        assert path == data_dir / "mnist_corrupted" / name / "1.0.0"
    # Only the datasets are left: the extracted files went with their temporary folder.
    assert sorted(p.name for p in data_dir.iterdir()) == ["mnist_corrupted"]
    return data_dir


def record_order(split, count):
    """TFDS's record order re-derived: keys (file indices) sorted by md5(split name + str(key))."""
    digest = lambda key: hashlib.md5(f"{split}{key}".encode()).digest()  # noqa: E731
    return np.array(sorted(range(count), key=digest))


def tfds_records(data_dir, name, split):
    """The images and labels of a prepared split as TFDS stores them, read with TFDS alone."""
    builder = tfds.builder(f"mnist_corrupted/{name}", data_dir=data_dir)
    dataset = builder.as_dataset(split=split, batch_size=1000, as_supervised=True, shuffle_files=False)
    ((images, labels),) = tfds.as_numpy(dataset)
    return images, labels


def examples(path):
    """The `tf.train.Example`s of a TFRecord file, in order (compared as messages: the bytes of a
    feature map may come in another order from another process)."""
    return [tf.train.Example.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


@pytest.mark.parametrize("split", M.SPLITS)
@pytest.mark.parametrize("name", M.CORRUPTION_NAMES)
def test_tfds_batches_equal_local_batches(data_dir, layout, name, split):
    options = dict(batch_size=64, shuffle_seed=7)  # the train split shuffled, the test split in order
    from_tfds = batches(M.load_mnist_corrupted(name, split, source="tfds", data_dir=data_dir, **options))
    from_files = batches(M.load_mnist_corrupted(name, split, source="local", data_dir=layout, **options))
    assert len(from_tfds) == len(from_files) == {"train": 8, "test": 2}[split]
    for (x_tfds, y_tfds), (x_local, y_local) in zip(from_tfds, from_files):
        assert x_tfds.dtype == x_local.dtype == np.float32 and y_tfds.dtype == y_local.dtype == np.int64
        np.testing.assert_array_equal(x_tfds, x_local)
        np.testing.assert_array_equal(y_tfds, y_local)


def test_tfds_wrote_its_own_dataset(data_dir, layout):
    builder = tfds.builder("mnist_corrupted/fog", data_dir=data_dir)
    # The registered builder reads it, with the features and supervised keys of its code.
    assert type(builder) is tfds_mnist_corrupted.MNISTCorrupted and builder.is_prepared()
    assert builder.info.features.to_json() == tfds_mnist_corrupted.MNISTCorrupted(config="fog").info.features.to_json()
    assert builder.info.supervised_keys == ("image", "label")
    assert {split: info.num_examples for split, info in builder.info.splits.items()} == {"train": 500, "test": 100}
    assert builder.info.file_format.value == "tfrecord"
    # The records are in TFDS's order, a hash of the keys; the loader puts them back in file order.
    for split in M.SPLITS:
        images, labels = tfds_records(data_dir, "fog", split)
        local_images, local_labels = M.read_local_split(layout, "fog", split)
        order = record_order(split, len(local_images))
        assert not np.array_equal(order, np.arange(len(order)))
        np.testing.assert_array_equal(images, local_images[order])
        np.testing.assert_array_equal(labels, local_labels[order])


def test_a_folder_builds_the_same_records_as_the_zip(data_dir, layout, tmp_path):
    # The extracted folder, given as itself or as its parent; and a zip without the mnist_c/ folder.
    sources = {
        "folder": layout / "mnist_c",
        "parent": layout,
        "flat zip": zip_layout(layout, tmp_path / "flat.zip", ["stripe"], folder=""),
    }
    for label, source in sources.items():
        built = M.prepare_tfds(source, tmp_path / label, "stripe")["stripe"]
        for split in M.SPLITS:
            file = f"mnist_corrupted-{split}.tfrecord-00000-of-00001"
            expected = data_dir / "mnist_corrupted" / "stripe" / "1.0.0" / file
            assert examples(built / file) == examples(expected), (label, split)


def test_prepared_configs_are_kept(data_dir, archive):
    folder = data_dir / "mnist_corrupted" / "zigzag" / "1.0.0"
    written = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    assert M.prepare_tfds(archive, data_dir, ["zigzag"]) == {"zigzag": folder}
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == written


def test_prepare_tfds_cli(archive, layout, tmp_path, capsys):
    argv = ["prepare-tfds", "--archive", str(archive), "--data-dir", str(tmp_path)]
    assert cli.main(argv + ["--corruptions", "identity", "canny_edges"]) == 0
    assert f"Prepared TFDS mnist_corrupted (identity, canny_edges) in {tmp_path}" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "mnist_corrupted").iterdir() if not p.name.startswith(".")) == [
        "canny_edges",
        "identity",
    ]
    (x_tfds, y_tfds), (x_local, y_local) = (
        next(iter(M.load_mnist_corrupted("canny_edges", "test", 100, data_dir, source=source)))
        for data_dir, source in ((tmp_path, "tfds"), (layout, "local"))
    )
    np.testing.assert_array_equal(x_tfds, x_local)
    np.testing.assert_array_equal(y_tfds, y_local)


# ------------------------------------------------------------ bad input


def test_missing_archive(tmp_path):
    missing = tmp_path / "mnist_c.zip"
    with pytest.raises(FileNotFoundError, match=rf"MNIST-C archive not found. Received: archive='{missing}'"):
        M.prepare_tfds(missing, tmp_path / "tfds")
    assert not (tmp_path / "tfds").exists()


def test_unknown_corruption(archive, tmp_path):
    with pytest.raises(ValueError, match="Received: corruption='snow'") as error:
        M.prepare_tfds(archive, tmp_path, ["fog", "snow"])
    assert all(name in str(error.value) for name in M.CORRUPTION_NAMES)


def test_a_file_that_is_not_a_zip_archive(tmp_path):
    text = tmp_path / "mnist_c.zip"
    text.write_text("not a zip")
    with pytest.raises(InputError, match=rf"Cannot read {text} as a zip archive \(BadZipFile"):
        M.prepare_tfds(text, tmp_path / "tfds")


def test_a_wrong_layout_names_the_missing_files(layout, tmp_path):
    # The layout under another folder than mnist_c/, and a zip lacking a config.
    nested = zip_layout(layout, tmp_path / "nested.zip", ["fog"], folder="data/mnist_c/")
    with pytest.raises(InputError, match=r"nested.zip is not in the MNIST-C layout: 4 files .* fog/train_images.npy"):
        M.prepare_tfds(nested, tmp_path / "tfds", "fog")
    only_fog = zip_layout(layout, tmp_path / "fog.zip", ["fog"])
    with pytest.raises(InputError, match=r"4 files of the configs fog, stripe are missing, e.g. mnist_c/stripe/"):
        M.prepare_tfds(only_fog, tmp_path / "tfds", ["fog", "stripe"])
    with pytest.raises(InputError, match=rf"{tmp_path} is not in the MNIST-C layout: 64 files .* and 60 more"):
        M.prepare_tfds(tmp_path, tmp_path / "tfds")
    assert not (tmp_path / "tfds").exists()


def test_bad_arrays_are_refused_and_leave_nothing(tmp_path):
    (tmp_path / "mnist_c" / "fog").mkdir(parents=True)
    for split in M.SPLITS:
        np.save(tmp_path / "mnist_c" / "fog" / f"{split}_images.npy", np.zeros((5, 28, 28), np.uint8))
        np.save(tmp_path / "mnist_c" / "fog" / f"{split}_labels.npy", np.zeros(5, np.uint8))
    archive = zip_layout(tmp_path, tmp_path / "mnist_c.zip", ["fog"])
    with pytest.raises(
        ValueError, match=r"Bad MNIST-C images in .*fog/train_images.npy. Received: shape=\(5, 28, 28\)"
    ):
        M.prepare_tfds(archive, tmp_path / "tfds", "fog")
    assert list((tmp_path / "tfds").iterdir()) == []  # neither the dataset nor the extracted files
