"""`keras-odetoode export SOURCE OUT_DIR`: write a folded SavedModel for serving.

    keras-odetoode export runs/swimmer exported/swimmer
    keras-odetoode export model.keras exported/mnistc --result accuracy=0.97 \\
        --training-command "python train.py --epochs 100"

SOURCE is an ES run directory, an ES checkpoint, a .keras file or a directory
holding one (`keras_odetoode.export_sources`).
"""

import sys

from keras_odetoode.cli import add_verbose_flag
from keras_odetoode.errors import InputError


def register(subparsers):
    """Add the `export` command."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained model as a SavedModel for serving (parameter flows folded)",
        description=(
            "Write RUN_DIR (an ES run directory, an ES checkpoint .npz, a .keras file, or a directory "
            "holding one .keras file) to OUT_DIR as a TensorFlow SavedModel with a serving_default "
            "signature and metadata.json. Every parameter flow is folded into constants: the served "
            "graph contains no matrix exponential."
        ),
    )
    parser.add_argument(
        "source", metavar="RUN_DIR", help="ES run directory, ckpt-*.npz, .keras file or a directory with one"
    )
    parser.add_argument(
        "out_dir", metavar="OUT_DIR", help="SavedModel directory to write (new, empty or a previous export)"
    )
    parser.add_argument(
        "--policy",
        default="best",
        choices=("best", "latest"),
        help="ES sources: the best evaluated centre (default), or the centre after the last iteration",
    )
    parser.add_argument(
        "--input-name",
        default=None,
        help="name of the signature's input tensor (default: observation for an ES policy, "
        "as `keras-odetoode es` exports it; inputs for a .keras model)",
    )
    parser.add_argument(
        "--output-name",
        default=None,
        help="name of the signature's output tensor (default: action for an ES policy, outputs for a .keras model)",
    )
    parser.add_argument(
        "--training-command",
        default=None,
        help="command that trained the model (default: from the ES run, if recorded)",
    )
    parser.add_argument(
        "--result",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="score to record, e.g. accuracy=0.97 (repeatable; default for ES: the reward)",
    )
    add_verbose_flag(parser)
    parser.set_defaults(func=run_export)


def run_export(args):
    from keras_odetoode import export, export_sources

    result = parse_results(args.result)
    model, metadata, command, source_result = export_sources.load_source(args.source, policy=args.policy)
    input_name, output_name = export_sources.signature_names(metadata)
    record = export.export_saved_model(
        model,
        args.out_dir,
        input_name=input_name if args.input_name is None else args.input_name,
        output_name=output_name if args.output_name is None else args.output_name,
        metadata=metadata,
        training_command=args.training_command if args.training_command is not None else command,
        result=result if result is not None else source_result,
    )
    (inp,), (out,) = record["inputs"], record["outputs"]
    print(
        f"Exported {args.source} to {args.out_dir}: {export.SIGNATURE_KEY} maps {inp['name']} "
        f"{_shape(inp['shape'])} float32 to {out['name']} {_shape(out['shape'])} float32; "
        f"{len(record['folded_parameter_flows'])} parameter flow(s) folded into constants.",
        file=sys.stderr,
    )
    return 0


def parse_results(items):
    """{name: number} from `--result NAME=NUMBER` items, or None for none."""
    if not items:
        return None
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            result[name] = float(value)
        except ValueError:
            raise InputError(f"--result must be NAME=NUMBER, e.g. accuracy=0.97. Received: {item!r}") from None
    return result


def _shape(shape):
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"
