"""Corrupted MNIST for the supervised experiments (paper §5.2).

`load_mnist_corrupted` gives batched `tf.data` pipelines of the 16 MNIST-C
configs, from TensorFlow Datasets or from local files; `corruptions` holds the
MNIST-C recipe itself, and `make_mnist_c` (CLI: `keras-odetoode make-mnistc`)
writes the whole dataset offline from plain MNIST arrays; `prepare_tfds` (CLI:
`keras-odetoode prepare-tfds`) builds TFDS's `mnist_corrupted` offline from a
local `mnist_c.zip`.
"""

from keras_odetoode.data.corruptions import CORRUPTION_NAMES, CORRUPTIONS, corrupt, get_corruption
from keras_odetoode.data.mnist_corrupted import (
    load_mnist_corrupted,
    local_paths,
    make_mnist_c,
    prepare_tfds,
    read_local_split,
    read_mnist_npz,
)

__all__ = [
    "CORRUPTIONS",
    "CORRUPTION_NAMES",
    "corrupt",
    "get_corruption",
    "load_mnist_corrupted",
    "local_paths",
    "make_mnist_c",
    "prepare_tfds",
    "read_local_split",
    "read_mnist_npz",
]
