"""`keras-odetoode` command line: one sub-command module per job.

Each module in `COMMAND_MODULES` has `register(subparsers)`, which adds its
sub-commands with `parser.set_defaults(func=...)`; heavy imports stay inside
the command functions so `--help` is fast.
"""

import argparse
import importlib
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


if __name__ == "__main__":
    sys.exit(main())
