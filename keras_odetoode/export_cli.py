"""`keras-odetoode export SOURCE OUT_DIR`: write a folded SavedModel for serving.

SOURCE is one of:

* an ES run directory written by `keras-odetoode es` (it has
  `checkpoints/ckpt-*.npz`): the newest checkpoint's best centre policy
  (`--policy best`, the default, what `es` itself exports) or its current
  centre (`--policy latest`), with the observation normalization it was
  evaluated with, is rebuilt and exported; environment, ES config and reward
  go to metadata.json, and the training command is taken from the run's
  `policy/metadata.json` when present;
* one ES checkpoint file `ckpt-<iteration>.npz` (same, for that iteration);
* a `.keras` model file;
* a directory without checkpoints holding exactly one `.keras` file (searched
  recursively).

An ES policy's signature maps `observation` to `action`, as the export that
`keras-odetoode es` writes; a `.keras` model's maps `inputs` to `outputs`.
`--input-name` / `--output-name` override either.

Examples:

    keras-odetoode export runs/swimmer exported/swimmer
    keras-odetoode export model.keras exported/mnistc --result accuracy=0.97 \\
        --training-command "python train.py --epochs 100"
"""

import os
import sys

CHECKPOINT_DIR = "checkpoints"
ES_EXPORT_DIR = "policy"
OBSERVATION_NORMALIZATION = "observation_normalization"


def register(subparsers):
    """Add the `export` sub-command."""
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
    parser.add_argument("source", metavar="RUN_DIR",
                        help="ES run directory, ckpt-*.npz, .keras file or a directory with one")
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="SavedModel directory to write (new, empty or a previous export)")
    parser.add_argument("--policy", default="best", choices=("best", "latest"),
                        help="ES sources: the best evaluated centre (default), or the centre after the last iteration")
    parser.add_argument("--input-name", default=None,
                        help="name of the signature's input tensor (default: observation for an ES policy, "
                             "as `keras-odetoode es` exports it; inputs for a .keras model)")
    parser.add_argument("--output-name", default=None,
                        help="name of the signature's output tensor (default: action for an ES policy, "
                             "outputs for a .keras model)")
    parser.add_argument("--training-command", default=None,
                        help="command that trained the model (default: from the ES run, if recorded)")
    parser.add_argument("--result", action="append", default=[], metavar="NAME=VALUE",
                        help="score to record, e.g. accuracy=0.97 (repeatable; default for ES: the reward)")
    parser.set_defaults(func=run_export)


def run_export(args):
    from keras_odetoode import export

    result = _parse_results(args.result)
    model, metadata, command, source_result = load_source(args.source, policy=args.policy)
    is_policy = metadata["source"]["kind"] == "es_checkpoint"
    input_name, output_name = export.POLICY_TENSOR_NAMES if is_policy else export.MODEL_TENSOR_NAMES
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


def load_source(source, policy="best"):
    """The model to export from SOURCE, with its metadata, training command and result.

    Returns:
        (built Keras model, metadata dict, training command or None, result or None).

    Raises:
        ValueError: SOURCE is none of the supported kinds.
    """
    if not os.path.exists(source):
        raise FileNotFoundError(f"No such file or directory: {source!r}")
    if os.path.isfile(source):
        if source.endswith(".keras"):
            return _from_keras_file(source)
        if source.endswith(".npz"):
            return _from_es_checkpoint(source, policy)
        raise ValueError(
            f"Cannot export {source!r}. Expected an ES run directory, an ES checkpoint (ckpt-*.npz), "
            "a .keras file or a directory holding one."
        )
    from keras_odetoode.es import checkpoint as checkpoint_lib

    checkpoints = checkpoint_lib.list_checkpoints(os.path.join(source, CHECKPOINT_DIR))
    if checkpoints:
        return _from_es_checkpoint(checkpoints[-1], policy)
    found = sorted(
        os.path.join(root, name) for root, _, names in os.walk(source) for name in names if name.endswith(".keras")
    )
    if len(found) == 1:
        return _from_keras_file(found[0])
    if found:
        raise ValueError(f"{source!r} holds several .keras files; pass one of them. Received: {found}")
    hint = (
        " It is already a SavedModel; export needs the model it came from (ES run directory or .keras file)."
        if os.path.isfile(os.path.join(source, "saved_model.pb"))
        else ""
    )
    raise ValueError(
        f"Cannot export {source!r}: it holds neither ES checkpoints ({CHECKPOINT_DIR}/ckpt-*.npz) "
        f"nor a .keras model file.{hint}"
    )


def _from_keras_file(path):
    import keras

    import keras_odetoode  # noqa: F401  (registers the package's layers for deserialization)

    model = keras.saving.load_model(path, compile=False)
    metadata = {"source": {"kind": "keras_file", "path": os.path.abspath(path)}}
    return model, metadata, None, None


def _from_es_checkpoint(path, policy):
    import keras
    import numpy as np

    from keras_odetoode.es import checkpoint as checkpoint_lib
    from keras_odetoode.es import policies, rollouts

    ckpt = checkpoint_lib.load(path)
    config = ckpt.config
    if policy == "best":
        if ckpt.best["params"] is None:
            raise ValueError(
                f"{path!r} has no best policy yet (no finite centre reward was obtained); "
                "export the current centre with --policy latest."
            )
        params, mean, variance = ckpt.best["params"], ckpt.best["obs_mean"], ckpt.best["obs_variance"]
        result = {"reward": float(ckpt.best["reward"])}
        iteration = ckpt.best["iteration"]
    else:
        params = ckpt.state.params
        mean, variance = ckpt.obs_stats.normalizer()
        if not config.get("normalize_observations", True):
            mean, variance = np.zeros_like(mean), np.ones_like(variance)
        # The last recorded centre reward scored the centre before the last update, not this one.
        result = None
        iteration = ckpt.state.iteration

    obs_dim = int(np.asarray(mean).shape[-1])
    act_dim = int(np.asarray(params["omega_2/kernel"]).shape[-1])  # layer names are fixed by `policies`
    model = policies.build_policy(config["policy"], obs_dim, act_dim, **config.get("policy_kwargs", {}))
    rollouts.PopulationPolicy(model).set_params(params)
    # As `keras-odetoode es` serves it: raw observations → normalization → policy.
    inputs = keras.Input((obs_dim,), name="observation")
    normalized = keras.layers.Normalization(
        mean=np.asarray(mean, np.float32), variance=np.asarray(variance, np.float32), name=OBSERVATION_NORMALIZATION
    )(inputs)
    serving = keras.Model(inputs, model(normalized), name="es_policy")

    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    es_metadata = _read_es_metadata(os.path.join(run_dir, ES_EXPORT_DIR))
    metadata = {
        "source": {"kind": "es_checkpoint", "path": os.path.abspath(path), "policy": policy},
        "env_id": config.get("env_id"),
        "policy": config.get("policy"),
        "config": config,
        "iteration": iteration,
        "obs_dim": obs_dim,
        "act_dim": act_dim,
    }
    for key in ("action_low", "action_high"):
        if key in es_metadata:
            metadata[key] = es_metadata[key]
    return serving, metadata, es_metadata.get("command"), result


def _read_es_metadata(directory):
    import json

    try:
        with open(os.path.join(directory, "metadata.json"), encoding="utf-8") as f:
            metadata = json.load(f)
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def _parse_results(items):
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
            raise ValueError(f"--result must be NAME=NUMBER, e.g. accuracy=0.97. Received: {item!r}") from None
    return result


def _shape(shape):
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"
