"""Atomic writes (checkpoints, exports, generated data): all or nothing."""

import os

import numpy as np
import pytest

from keras_odetoode.atomic import write_atomic, write_text_atomic


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "test_images.npy"
    np.save(path, np.arange(3))

    def write_then_fail(file):
        np.save(file, np.arange(5))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, write_then_fail)
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["test_images.npy"]


def test_completed_writes_replace_the_file(tmp_path):
    path = tmp_path / "a.npy"
    write_atomic(path, lambda f: np.save(f, np.arange(4)))
    np.testing.assert_array_equal(np.load(path), np.arange(4))
    write_text_atomic(tmp_path / "b.txt", "ODEtoODE ✓\n")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "ODEtoODE ✓\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_usual_permissions(tmp_path, umask):
    """As a plain `open` would make them under the umask, not mkstemp's private 0600."""
    previous = os.umask(umask)
    try:
        with open(tmp_path / "reference", "w") as file:
            file.write("{}")
        write_text_atomic(tmp_path / "c.json", "{}")
        write_atomic(tmp_path / "d.npy", lambda f: np.save(f, np.arange(2)))
    finally:
        os.umask(previous)
    mode = os.stat(tmp_path / "reference").st_mode & 0o777
    assert mode == 0o666 & ~umask  # the reference is what the umask says
    assert os.stat(tmp_path / "c.json").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "d.npy").st_mode & 0o777 == mode
