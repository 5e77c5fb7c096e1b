"""The README's Keras example runs as written, on local MNIST-C files instead of TFDS."""

import pathlib
import re

import numpy as np

from keras_odetoode.data import mnist_corrupted

ROOT = pathlib.Path(__file__).parent.parent
DIGITS_FILE = pathlib.Path(__file__).parent / "data" / "mnist-600.npz"


def readme_keras_example():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## A Keras example") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_keras_example_trains_and_keeps_every_w_orthogonal(tmp_path, capsys):
    with np.load(DIGITS_FILE) as data:
        images, labels = data["images"], data["labels"]
    mnist_corrupted.make_mnist_c(
        (images[:512], labels[:512]), (images[512:], labels[512:]), tmp_path, corruptions=["identity"], progress=False
    )
    code = readme_keras_example()
    local = f', source="local", data_dir={str(tmp_path)!r})'
    for split in ("train", "test"):
        call = f'load_mnist_corrupted("identity", "{split}")'
        assert call in code
        code = code.replace(call, call[:-1] + local)
    assert "epochs=5" in code
    namespace = {}
    exec(compile(code.replace("epochs=5", "epochs=2"), "README.md", "exec"), namespace)

    history = namespace["model"].history.history
    assert history["loss"][1] < history["loss"][0]  # real digits: the loss falls
    assert tuple(namespace["W"].shape) == (101, 128, 128)
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) < 1e-5
