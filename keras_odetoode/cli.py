"""`keras-odetoode` command line: one sub-command module per job.

Each module in `COMMAND_MODULES` has `register(subparsers)`, which adds its
sub-commands with `parser.set_defaults(func=...)`; heavy imports stay inside
the command functions so `--help` is fast. The `keras-odetoode` script is `run`:
`main` with bad input reported in one line instead of a traceback.
"""

import argparse
import importlib
import os
import sys

COMMAND_MODULES = ("keras_odetoode.data.cli", "keras_odetoode.es.cli", "keras_odetoode.export_cli", "keras_odetoode.models_cli")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-odetoode",
        description="ODEtoODE for Keras: train, evaluate and export models.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = ["keras-odetoode", *argv]  # recorded with trained models
    return args.func(args)


#: Errors that report bad input (arguments, files, connections): `run` prints their
#: message. So does `es.CheckpointError` (a corrupted checkpoint).
INPUT_ERRORS = (ValueError, FileNotFoundError, ConnectionError)
#: Set (to anything) to get the full traceback of an input error instead.
TRACEBACK_VARIABLE = "KERAS_ODETOODE_TRACEBACK"


def _is_input_error(error):
    checkpoint = sys.modules.get("keras_odetoode.es.checkpoint")  # loaded if it raised
    return isinstance(error, INPUT_ERRORS + ((checkpoint.CheckpointError,) if checkpoint else ()))


def run(argv=None):
    """The console script: `main(argv)`, with input errors as one line on stderr.

    Returns `main`'s exit status; 2 after an input error (as argparse's own
    errors), 130 after Ctrl-C (an ES run has saved its checkpoint by then).
    """
    try:
        return main(argv)
    except Exception as error:
        if not _is_input_error(error) or os.environ.get(TRACEBACK_VARIABLE):
            raise
        print(f"keras-odetoode: error: {error}", file=sys.stderr)
        print(f"(set {TRACEBACK_VARIABLE}=1 to see the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-odetoode: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
