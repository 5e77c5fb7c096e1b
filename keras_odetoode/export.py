"""SavedModel export for serving, with every parameter flow folded into constants.

W_1 … W_N of a `NonAutonomousODE` (ODEtoODE, NANODE, HyperNetODE) depend on
the parameters only, never on the input (docs/design.md). `export_saved_model`
therefore computes each trajectory once, at export time, and traces the model
with W_0 … W_N as constants: the served graph is a depth-N residual network,
with no matrix exponential (no `expm`, hence no `MatrixSolve`) left in it.

The export directory is a plain TensorFlow SavedModel (`saved_model.pb`,
`variables/`) with one `serving_default` signature — float32 input of shape
(None, d) under `input_name`, float32 output under `output_name` — plus
`metadata.json`: model config, versions, training command and result (a
score measured on the served model afterwards goes in with `record_result`).
Serving needs TensorFlow only; `keras_odetoode` is not imported by the graph.

Example:

    >>> export_saved_model(model, "exported/odetoode", result={"accuracy": 0.97})
    >>> serving = load_serving("exported/odetoode")      # validates the directory
    >>> y = serving(x)                                   # numpy (batch, d_out)

or, with TensorFlow alone:

    >>> fn = tf.saved_model.load("exported/odetoode").signatures["serving_default"]
    >>> y = fn(inputs=tf.constant(x))["outputs"]
"""

import contextlib
import dataclasses
import datetime
import json
import math
import os
import re
import shlex
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_odetoode.atomic import default_mode, write_text_atomic
from keras_odetoode.checks import check_integer
from keras_odetoode.errors import InputError
from keras_odetoode.records import json_default

SIGNATURE_KEY = "serving_default"
# The signature's tensor names: a model's, and an ES policy's (observation → action),
# which `keras-odetoode es` and `keras-odetoode export` of an ES run both use.
MODEL_TENSOR_NAMES = ("inputs", "outputs")
POLICY_TENSOR_NAMES = ("observation", "action")
SAVED_MODEL_FILENAME = "saved_model.pb"
METADATA_FILENAME = "metadata.json"
FORMAT = "keras_odetoode.saved_model"
FORMAT_VERSION = 1
SERVING_DTYPE = "float32"

_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
# What an export directory holds (`tf.saved_model.save` and `metadata.json`).
_EXPORT_ENTRIES = {SAVED_MODEL_FILENAME, METADATA_FILENAME, "variables", "assets", "fingerprint.pb"}


class InvalidSavedModelError(InputError):
    """A path that is not a SavedModel directory exported by this package."""


def parameter_flow_layers(model):
    """Every `NonAutonomousODE` in `model` (nested ones included), each once, in layer order."""
    from keras_odetoode.layers import NonAutonomousODE

    found = {}
    # `_flatten_layers` walks the layers Keras tracks, including layers nested
    # in custom layers and sub-models, which `model.layers` does not reach.
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, NonAutonomousODE):
            found.setdefault(id(layer), layer)
    return list(found.values())


@contextlib.contextmanager
def folded_parameter_flows(model):
    """Within the block, every parameter flow in `model` is folded into constants.

    Each `NonAutonomousODE` is folded from its current variables on entry. On
    exit — also on error — the layers that were unfolded before are unfolded
    again, so training continues from the variables; a layer the caller had
    folded stays folded.

    Yields:
        The folded layers.
    """
    ode_layers = parameter_flow_layers(model)
    was_folded = [layer.is_folded for layer in ode_layers]
    try:
        for layer in ode_layers:
            layer.fold_parameter_flow()
        yield ode_layers
    finally:
        for layer, folded in zip(ode_layers, was_folded):
            if not folded:
                layer.unfold_parameter_flow()


def export_saved_model(
    model,
    path,
    *,
    input_name=MODEL_TENSOR_NAMES[0],
    output_name=MODEL_TENSOR_NAMES[1],
    metadata=None,
    training_command=None,
    result=None,
    input_dim=None,
):
    """Write `model` as a TF SavedModel for serving, parameter flows folded into constants.

    The `serving_default` signature maps `{input_name: float32 (None, d)}` to
    `{output_name: float32 (None, ...)}` (the batch size is free). Every
    `NonAutonomousODE` in the model is folded (W_0 … W_N computed now, from the
    current variables, and held as constants), so the served graph costs a
    depth-N residual network and contains no `expm`; the model is unfolded
    again afterwards, even on error. `path/metadata.json` records the model's
    config, the package/TensorFlow/Keras versions, the training command and
    result, the input/output names and shapes and the date.

    The export is written to a temporary directory beside `path` and moved into
    place when complete. An existing `path` is replaced only if it is empty or
    a previous export of this package.

    Args:
        model: a built Keras model (or layer) with one input of shape (batch, d).
        path: the SavedModel directory to write.
        input_name: name of the signature's input tensor.
        output_name: name of the signature's output tensor.
        metadata: optional JSON-serialisable dict merged into metadata.json
            (e.g. `{"env_id": "Swimmer-v5"}`); it may not redefine the keys
            the exporter writes.
        training_command: the command that trained the model, a string or a
            list of arguments (stored as one shell-quoted string).
        result: the trained model's score: a number, or a dict of numbers such
            as `{"reward": 312.5}` or `{"accuracy": 0.97}`.
        input_dim: d, only for models that do not record their input shape
            (a subclassed `keras.Model` called on data); read from the model
            otherwise.

    Returns:
        The metadata dict written to `path/metadata.json`.

    Raises:
        ValueError: the model is not built, has not exactly one rank-2 input or
            one output tensor, a name or the metadata is invalid, or `path`
            holds something other than a previous export.
    """
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"model must be a Keras model or layer. Received: model of type {type(model).__name__}")
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} has not been built: call the model on data or build it first "
            "(e.g. give it a keras.Input, or call model.build((None, d)))."
        )
    for argument, value in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(value, str) or not _NAME_PATTERN.match(value):
            raise ValueError(
                f"{argument} must be a name matching {_NAME_PATTERN.pattern}. Received: {argument}={value!r}"
            )
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict or None. Received: metadata of type {type(metadata).__name__}")
    path = os.fspath(path)
    _check_destination(path)
    input_dim = _input_dim(model) if input_dim is None else _check_input_dim(model, input_dim)
    result = _check_result(result)
    training_command = _command_string(training_command)

    input_spec = tf.TensorSpec((None, input_dim), tf.float32, name=input_name)

    def serve(inputs):
        # The signature alone does not stop a (batch, 1) input, which the model may broadcast.
        inputs = tf.ensure_shape(inputs, (None, input_dim))
        outputs = model(inputs, training=False)
        if not tf.is_tensor(outputs):
            raise ValueError(
                "export_saved_model serves models with a single output tensor. "
                f"Received: outputs of type {type(outputs).__name__}"
            )
        return {output_name: tf.cast(outputs, tf.float32)}

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.export-", dir=parent)
    os.chmod(staging, default_mode(directory=True))  # mkdtemp makes it private (0700)
    try:
        with folded_parameter_flows(model) as folded:
            archive = keras.export.ExportArchive()
            archive.track(model)
            endpoint = archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=[input_spec])
            # Trace now, while folded: the traced graph holds W_0 … W_N as constants.
            output_spec = endpoint.get_concrete_function().structured_outputs[output_name]
            record = _metadata(
                model, folded, input_name, input_dim, output_name, output_spec.shape, training_command, result
            )
            record = _merge_metadata(record, metadata)
            text = _to_json(record)
            archive.write_out(staging, verbose=False)
        write_text_atomic(os.path.join(staging, METADATA_FILENAME), text + "\n")
        _move_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return json.loads(text)


def load_metadata(path):
    """The metadata dict of an export directory (`path/metadata.json`).

    Raises:
        InvalidSavedModelError: `path` is not a directory, or its metadata.json
            is missing or is not a JSON object.
    """
    path = os.fspath(path)
    _check_directory(path)
    meta_path = os.path.join(path, METADATA_FILENAME)
    if not os.path.isfile(meta_path):
        raise InvalidSavedModelError(
            f"{path!r} is not a SavedModel exported by keras_odetoode: missing {METADATA_FILENAME}."
        )
    try:
        with open(meta_path, encoding="utf-8") as f:
            metadata = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidSavedModelError(f"{meta_path!r} cannot be read as JSON: {error}") from error
    if not isinstance(metadata, dict):
        raise InvalidSavedModelError(f"{meta_path!r} must hold a JSON object. Received: {type(metadata).__name__}")
    return metadata


def record_result(path, result):
    """Write the exported model's measured score into its metadata.json (atomically).

    For a score measured on the served model after the export, e.g. a test
    accuracy. Every other metadata entry is kept.

    Args:
        path: an export directory of this package.
        result: a finite number, or a dict of names to finite numbers
            ({"accuracy": 0.945}); None clears it.

    Returns:
        The updated metadata dict.

    Raises:
        InvalidSavedModelError: `path` is not an export of this package.
        ValueError: `result` is not a number or a dict of names to numbers.
    """
    path = os.fspath(path)
    result = _check_result(result)
    if not is_export_directory(path):
        load_metadata(path)  # raises the specific reason when there is one
        raise InvalidSavedModelError(
            f"{path!r} is not a SavedModel exported by keras_odetoode: it lacks {SAVED_MODEL_FILENAME} "
            "or its metadata has no package_version."
        )
    metadata = load_metadata(path)
    metadata["result"] = result
    text = _to_json(metadata)
    write_text_atomic(os.path.join(path, METADATA_FILENAME), text + "\n")
    return json.loads(text)


@dataclasses.dataclass(frozen=True)
class ServingModel:
    """A loaded export: its `serving_default` function, names and metadata.

    Calling it maps a float32 array (batch, d) to the output as a numpy array:
    `serving(x)`, or `serving(**{serving.input_name: x})` with the signature's
    input name (e.g. `serving(pixels=x)` for a classifier whose signature maps
    `pixels` to `logits`).

    Attributes:
        path: the export directory.
        module: what `tf.saved_model.load` returned.
        signature: the `serving_default` concrete function.
        input_name, output_name: the signature's tensor names.
        input_shape, output_shape: their shapes, None for the batch axis.
        metadata: the contents of metadata.json.
    """

    path: str
    module: object
    signature: object
    input_name: str
    output_name: str
    input_shape: tuple
    output_shape: tuple
    metadata: dict

    def __call__(self, inputs=None, /, **named):
        if named or inputs is None:
            received = ", ".join(sorted(named)) or "nothing"
            if inputs is not None or list(named) != [self.input_name]:
                raise InputError(
                    f"{self.path!r} serves one input named {self.input_name!r} ({self.input_name} → "
                    f"{self.output_name}). Received: {'inputs and ' if inputs is not None else ''}{received}. "
                    f"Expected: serving(x) or serving({self.input_name}=x)"
                )
            inputs = named[self.input_name]
        x = np.asarray(inputs, dtype=np.float32)
        width = self.input_shape[-1]
        if x.ndim != 2 or (width is not None and x.shape[1] != width):
            raise ValueError(
                f"{self.path!r} serves inputs of shape (batch, {width}). Received: inputs of shape {x.shape}"
            )
        x = tf.convert_to_tensor(x)
        return self.signature(**{self.input_name: x})[self.output_name].numpy()


def load_serving(path):
    """Validate an export directory and load its `serving_default` signature.

    Accepts any directory with `saved_model.pb`, a `metadata.json` written by
    this package (it names `package_version`) and a `serving_default`
    signature with one input and one output.

    Returns:
        A `ServingModel`.

    Raises:
        InvalidSavedModelError: the path is missing or not a directory, or
            lacks `saved_model.pb`, `metadata.json` (each named in the
            message), or the metadata or signature is not of this package.

    Example:
        >>> serving = load_serving("runs/swimmer/policy")
        >>> action = serving(observation[None])[0]
    """
    path = os.fspath(path)
    _check_directory(path)
    required = (SAVED_MODEL_FILENAME, METADATA_FILENAME)
    missing = [name for name in required if not os.path.isfile(os.path.join(path, name))]
    if missing:
        hint = (
            " It is a TensorFlow SavedModel, but not one exported by keras_odetoode."
            if missing == [METADATA_FILENAME]
            else ""
        )
        raise InvalidSavedModelError(
            f"{path!r} is not a SavedModel exported by keras_odetoode: missing {' and '.join(missing)}.{hint} "
            "Write one with `keras-odetoode export` or keras_odetoode.export.export_saved_model."
        )
    metadata = load_metadata(path)
    if "package_version" not in metadata:
        raise InvalidSavedModelError(
            f"{os.path.join(path, METADATA_FILENAME)!r} was not written by keras_odetoode: it has no "
            f"'package_version'. Received keys: {sorted(metadata)}"
        )
    try:
        module = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise InvalidSavedModelError(
            f"{path!r} cannot be loaded as a SavedModel ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "Export it again."
        ) from error
    signatures = getattr(module, "signatures", {})
    if SIGNATURE_KEY not in signatures:
        raise InvalidSavedModelError(
            f"{path!r} has no {SIGNATURE_KEY!r} signature. Received signatures: {sorted(signatures)}"
        )
    signature = signatures[SIGNATURE_KEY]
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise InvalidSavedModelError(
            f"{path!r}: the {SIGNATURE_KEY!r} signature must have one input and one output. "
            f"Received inputs {sorted(inputs)} and outputs {sorted(outputs)}"
        )
    (input_name, input_spec), (output_name, output_spec) = next(iter(inputs.items())), next(iter(outputs.items()))
    return ServingModel(
        path=path,
        module=module,
        signature=signature,
        input_name=input_name,
        output_name=output_name,
        input_shape=tuple(input_spec.shape.as_list()),
        output_shape=tuple(output_spec.shape.as_list()),
        metadata=metadata,
    )


def is_export_directory(path):
    """Whether `path` is a directory holding a SavedModel and a metadata.json of this package."""
    try:
        metadata = load_metadata(path)
    except InvalidSavedModelError:
        return False
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILENAME)) and "package_version" in metadata


# Helpers.


def _check_directory(path):
    if not os.path.exists(path):
        raise InvalidSavedModelError(f"No such directory: {path!r}. Expected a SavedModel directory.")
    if not os.path.isdir(path):
        hint = ""
        if path.endswith(".keras"):
            hint = " Export a .keras model first with `keras-odetoode export MODEL.keras OUT_DIR`."
        raise InvalidSavedModelError(
            f"{path!r} is a file. Expected a SavedModel directory "
            f"(with {SAVED_MODEL_FILENAME} and {METADATA_FILENAME}).{hint}"
        )


def _check_destination(path):
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise ValueError(f"Cannot export to {path!r}: it is a file. Expected a new or empty directory.")
    if os.listdir(path) and not is_export_directory(path):
        raise ValueError(
            f"Cannot export to {path!r}: the directory is not empty and is not a previous keras_odetoode "
            "export, so it is not replaced. Choose a new directory."
        )


def _input_dim(model):
    try:
        inputs = model.inputs  # Functional and Sequential models
    except AttributeError:
        inputs = None
    if inputs:
        shapes = [tuple(t.shape) for t in inputs]
    else:
        # Subclassed models and layers record the shapes they were built with.
        shapes = list((getattr(model, "_build_shapes_dict", None) or {}).values())
        shapes = [tuple(s) for s in shapes if s is not None]
    if not shapes:
        raise ValueError(
            f"Cannot read the input shape of {type(model).__name__} {model.name!r} (a subclassed model "
            "records none): pass input_dim=d."
        )
    if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][-1] is None:
        raise ValueError(
            "export_saved_model serves models with one input of shape (batch, features). "
            f"Received: input shapes {shapes}"
        )
    return int(shapes[0][-1])


def _check_input_dim(model, input_dim):
    input_dim = check_integer("input_dim", input_dim, 1)
    try:
        recorded = _input_dim(model)
    except ValueError:
        return int(input_dim)
    if recorded != input_dim:
        raise ValueError(f"input_dim={input_dim} does not match the model's input width {recorded}.")
    return int(input_dim)


def _check_result(result):
    if result is None:
        return None
    values = result if isinstance(result, dict) else {"result": result}
    for key, value in values.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(
                "result must be a number or a dict of names to numbers, e.g. {'reward': 312.5}. "
                f"Received: result={result!r}"
            )
        if not math.isfinite(float(value)):
            raise ValueError(f"result must be finite. Received: result={result!r}")
    if isinstance(result, dict):
        return {key: _plain_number(value) for key, value in result.items()}
    return _plain_number(result)


def _plain_number(value):
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _command_string(command):
    if command is None or isinstance(command, str):
        return command
    if isinstance(command, (list, tuple)) and all(isinstance(arg, str) for arg in command):
        return shlex.join(command)
    raise ValueError(f"training_command must be a string or a list of strings. Received: {command!r}")


def _model_config(model):
    try:
        return keras.saving.serialize_keras_object(model), None
    except (NotImplementedError, TypeError, ValueError) as error:
        return None, f"{type(error).__name__}: {error}"


def _metadata(model, folded, input_name, input_dim, output_name, output_shape, training_command, result):
    import keras_odetoode

    config, config_error = _model_config(model)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package": "keras_odetoode",
        "package_version": keras_odetoode.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signature": SIGNATURE_KEY,
        "inputs": [{"name": input_name, "shape": [None, input_dim], "dtype": SERVING_DTYPE}],
        "outputs": [{"name": output_name, "shape": list(output_shape.as_list()), "dtype": SERVING_DTYPE}],
        "folded_parameter_flows": [layer.name for layer in folded],
        "model_class": type(model).__name__,
        "model_config": config,
        "training_command": training_command,
        "result": result,
    }
    if config_error is not None:
        record["model_config_error"] = config_error
    return record


def _merge_metadata(record, extra):
    if not extra:
        return record
    clashes = sorted(k for k in extra if k in record and _to_json(extra[k]) != _to_json(record[k]))
    if clashes:
        raise ValueError(
            f"metadata may not redefine keys the exporter writes. Received: {clashes} "
            f"(reserved: {sorted(record)}); pass training_command= and result= as arguments."
        )
    return {**record, **{k: v for k, v in extra.items() if k not in record}}


def _to_json(value):
    try:
        return json.dumps(value, indent=2, sort_keys=False, default=json_default, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata must be JSON-serialisable with finite numbers: {error}") from error


def _move_into_place(staging, path):
    """Replace `path` (absent, empty or a previous export) by the finished `staging` directory.

    Files of `path` that no export writes (a model card, a plot) are copied over first.
    """
    if not os.path.exists(path):
        os.replace(staging, path)
        return
    export_entries = _EXPORT_ENTRIES | set(os.listdir(staging))
    for name in sorted(set(os.listdir(path)) - export_entries):
        source, target = os.path.join(path, name), os.path.join(staging, name)
        (shutil.copytree if os.path.isdir(source) else shutil.copy2)(source, target)
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.old-", dir=os.path.dirname(staging))
    os.rmdir(old)
    os.replace(path, old)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
