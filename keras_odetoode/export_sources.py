"""What can be exported for serving, and how each kind is loaded: `load_source`.

A source (the `SOURCE` of `keras-odetoode export SOURCE OUT_DIR`) is one of:

* an ES run directory written by `keras-odetoode es` (it has
  `checkpoints/ckpt-*.npz`): the newest checkpoint's best centre policy
  (`--policy best`, the default, what `es` itself exports) or its current
  centre (`--policy latest`), with the observation normalization it was
  evaluated with, is rebuilt and exported; environment, ES config and reward
  go to metadata.json, and the training command is the first command the
  checkpoint records (else the one in the run's `policy/metadata.json`);
* one ES checkpoint file `ckpt-<iteration>.npz` (same, for that iteration);
* a `.keras` model file;
* a directory without checkpoints holding exactly one `.keras` file (searched
  recursively).

An ES policy's signature maps `observation` to `action`, as the export that
`keras-odetoode es` writes; a `.keras` model's maps `inputs` to `outputs`
(`signature_names`).
"""

import json
import os

from keras_odetoode.errors import InputError

CHECKPOINT_DIR = "checkpoints"
ES_EXPORT_DIR = "policy"


def signature_names(metadata):
    """The (input, output) tensor names a source's export uses by default."""
    from keras_odetoode import export

    is_policy = metadata["source"]["kind"] == "es_checkpoint"
    return export.POLICY_TENSOR_NAMES if is_policy else export.MODEL_TENSOR_NAMES


def load_source(source, policy="best"):
    """The model to export from SOURCE, with its metadata, training command and result.

    Returns:
        (built Keras model, metadata dict, training command or None, result or None).

    Raises:
        FileNotFoundError: SOURCE does not exist.
        InputError: SOURCE is none of the supported kinds, or an ES source has no best policy.
    """
    if not os.path.exists(source):
        raise FileNotFoundError(f"No such file or directory: {source!r}")
    if os.path.isfile(source):
        if source.endswith(".keras"):
            return _from_keras_file(source)
        if source.endswith(".npz"):
            return _from_es_checkpoint(source, policy)
        raise InputError(
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
        raise InputError(f"{source!r} holds several .keras files; pass one of them. Received: {found}")
    hint = (
        " It is already a SavedModel; export needs the model it came from (ES run directory or .keras file)."
        if os.path.isfile(os.path.join(source, "saved_model.pb"))
        else ""
    )
    raise InputError(
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
    import functools

    import numpy as np

    from keras_odetoode.es import checkpoint as checkpoint_lib
    from keras_odetoode.es import policies

    ckpt = checkpoint_lib.load(path)
    config = ckpt.config
    if policy == "best":
        if ckpt.best["params"] is None:
            raise InputError(
                f"{path!r} has no best policy yet (no finite centre reward was obtained); "
                "export the current centre with --policy latest."
            )
        params, mean, variance = ckpt.best["params"], ckpt.best["obs_mean"], ckpt.best["obs_variance"]
        result = {"reward": float(ckpt.best["reward"])}
        iteration = ckpt.best["iteration"]  # progress.csv's row: the centre after iteration - 1 updates
        updates = iteration - 1
    else:
        params = ckpt.state.params
        mean, variance = ckpt.obs_stats.normalizer()
        if not config.get("normalize_observations", True):
            mean, variance = np.zeros_like(mean), np.ones_like(variance)
        # The last recorded centre reward scored the centre before the last update, not this one.
        result = None
        iteration = updates = ckpt.state.iteration

    obs_dim = int(np.asarray(mean).shape[-1])
    act_dim = int(np.asarray(params["omega_2/kernel"]).shape[-1])  # layer names are fixed by `policies`
    policy_fn = functools.partial(
        policies.build_policy, config["policy"], obs_dim, act_dim, **config.get("policy_kwargs", {})
    )
    serving = policies.serving_policy(policy_fn, params, mean, variance)

    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    es_metadata = _read_es_metadata(os.path.join(run_dir, ES_EXPORT_DIR))
    metadata = {
        "source": {"kind": "es_checkpoint", "path": os.path.abspath(path), "policy": policy},
        "env_id": config.get("env_id"),
        "policy": config.get("policy"),
        "config": config,
        "iteration": iteration,
        "updates": updates,
        "commands": ckpt.commands,
        "obs_dim": obs_dim,
        "act_dim": act_dim,
    }
    for key in ("action_low", "action_high"):
        if key in es_metadata:
            metadata[key] = es_metadata[key]
    command = ckpt.commands[0] if ckpt.commands and ckpt.commands[0] else es_metadata.get("command")
    return serving, metadata, command, result


def _read_es_metadata(directory):
    try:
        with open(os.path.join(directory, "metadata.json"), encoding="utf-8") as f:
            metadata = json.load(f)
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}
