"""Atomic writes (checkpoints, exports, generated data): all or nothing."""

import os

import numpy as np
import pytest

from keras_odetoode.atomic import default_mode, write_atomic, write_text_atomic


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


def test_written_files_get_the_usual_permissions(tmp_path):
    write_text_atomic(tmp_path / "c.json", "{}")
    assert os.stat(tmp_path / "c.json").st_mode & 0o777 == default_mode()
    assert default_mode() & 0o444 == 0o444  # readable by everyone under a usual umask
