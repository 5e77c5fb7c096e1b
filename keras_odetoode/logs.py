"""TensorFlow's log lines, hidden when the package runs as the command line.

On a machine without a GPU, importing TensorFlow prints about a dozen lines
(oneDNN, CUDA drivers, cuInit, CPU features, XLA) that say nothing about the
user's run. The `keras-odetoode` command hides them unless the user asks for
them, with `--verbose` or a `TF_CPP_MIN_LOG_LEVEL` of their own. Imported as
a library, the package leaves TensorFlow's logging alone.

TensorFlow writes part of these lines from C++ before its logging is set up,
straight to file descriptor 2, whatever `TF_CPP_MIN_LOG_LEVEL` says: they are
hidden by importing TensorFlow with that descriptor pointed at /dev/null.
Processes started by the command (ES workers) inherit `QUIET_VARIABLE` and
import TensorFlow the same way.
"""

import contextlib
import os
import sys

#: Set to "1" by the command line for itself and the processes it starts.
QUIET_VARIABLE = "KERAS_ODETOODE_QUIET_TENSORFLOW"
LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
VERBOSE_FLAG = "--verbose"
SCRIPT = "keras-odetoode"
MODULE = "keras_odetoode.cli"


def started_as_command(argv=None):
    """Whether this process is `keras-odetoode …` or `python -m keras_odetoode.cli …`."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    if any(os.path.basename(arg) == SCRIPT for arg in argv[:2]):
        return True
    return any(argv[i] == "-m" and argv[i + 1] == MODULE for i in range(len(argv) - 1))


def should_quiet(argv=None, environ=None):
    """Whether to hide TensorFlow's log lines in this process."""
    environ = os.environ if environ is None else environ
    if environ.get(QUIET_VARIABLE) == "1":
        return True
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    return started_as_command(argv) and VERBOSE_FLAG not in argv and LEVEL_VARIABLE not in environ


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """Import TensorFlow, quietly (see the module docstring) when `should_quiet()`."""
    if "tensorflow" in sys.modules or not should_quiet():
        import tensorflow  # noqa: F401

        return
    os.environ[QUIET_VARIABLE] = "1"
    os.environ.setdefault(LEVEL_VARIABLE, "3")
    with _stderr_to_devnull():
        import tensorflow  # noqa: F401
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to quiet
        pass
