"""Atomic file writes: readers never see a partly written file.

The content goes to a temporary file in the destination's folder, is fsync'ed,
then `os.replace`d over the destination; an interruption at any point leaves
the previous file intact and no temporary file behind.
"""

import os
import tempfile


def default_mode(directory=False):
    """The permissions a plain `open`/`mkdir` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def write_atomic(path, write, binary=True):
    """Call `write(file)` on a temporary file beside `path`, then move it into place.

    Args:
        path: destination (str or os.PathLike).
        write: callable receiving the open file.
        binary: open the file in binary ("wb") or text mode ("w", UTF-8).
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, default_mode())  # mkstemp makes it private (0600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_text_atomic(path, text):
    """Atomically write `text` (UTF-8) to `path`."""
    write_atomic(path, lambda file: file.write(text), binary=False)
