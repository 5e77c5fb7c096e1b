"""The `keras-odetoode` command line: one module per command.

Each module in `COMMAND_MODULES` has `register(subparsers)`, which adds its
command with `parser.set_defaults(func=...)`; the command function turns the
parsed arguments into calls of library functions. Heavy imports stay inside
the command functions so that `--help` is fast.

`main(argv)` runs a command and raises what it raises; `run(argv)`, the
`keras-odetoode` script, reports bad input as one line
`keras-odetoode: error: …` on stderr with exit status 2 (argparse's own
errors included), and Ctrl-C with exit status 130.
"""

import argparse
import importlib
import os
import sys

from keras_odetoode.errors import InputError

PROG = "keras-odetoode"
COMMAND_MODULES = (
    "keras_odetoode.cli.es",
    "keras_odetoode.cli.evaluate",
    "keras_odetoode.cli.export",
    "keras_odetoode.cli.make_mnistc",
    "keras_odetoode.cli.mnistc",
    "keras_odetoode.cli.prepare_tfds",
)
#: Exceptions reported as bad input: the package's `InputError`, and the
#: `ValueError`s (Keras-style argument checks), missing files and refused
#: connections that library functions raise about their input.
INPUT_ERRORS = (InputError, ValueError, FileNotFoundError, ConnectionError)
#: Set (to anything) to get the full traceback of an input error instead.
TRACEBACK_VARIABLE = "KERAS_ODETOODE_TRACEBACK"
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(InputError):
    """A command line argparse refuses (unknown flag, missing or malformed value)."""


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are `UsageError`s, reported by `run` in one line."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser():
    """The `keras-odetoode` parser with every command registered."""
    parser = ArgumentParser(
        prog=PROG,
        description="ODEtoODE for Keras: train, evaluate and export models.",
        epilog=f"Bad input is reported in one line; set {TRACEBACK_VARIABLE}=1 to see the traceback.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def add_verbose_flag(parser):
    """`--verbose`: show TensorFlow's log lines, which the command hides (see `keras_odetoode.logs`)."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's log lines (oneDNN, CUDA, XLA), hidden otherwise unless TF_CPP_MIN_LOG_LEVEL is set",
    )


def main(argv=None):
    """Run the command of `argv` (default `sys.argv[1:]`); returns its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = [PROG, *argv]  # recorded with trained models
    return args.func(args)


def run(argv=None):
    """The console script: `main(argv)`, with bad input as one line on stderr.

    Returns `main`'s exit status; 2 after bad input (as argparse's own
    errors), 130 after Ctrl-C.
    """
    try:
        return main(argv)
    except INPUT_ERRORS as error:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        message = " ".join(str(error).split("\n")) if str(error) else type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
