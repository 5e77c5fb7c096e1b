"""The Tables 1–2 grid of the paper: the classifier zoo trained and tested on Corrupted MNIST.

`resolve_config` turns options (a preset, the command line) into a grid
configuration and `run_grid` trains and evaluates it; `keras-odetoode mnistc`
is their command line.

A cell of the table is one corruption × one model: the model's test accuracy on
that corruption's test split. Which data the model learns from is `--train-on`:

- `identity` (the default, and the paper's protocol): each model is trained once
  on clean MNIST and evaluated on the test split of every corruption, so the
  table measures robustness to corruptions never seen in training. The
  paper's Table 1 is of this kind: its fully connected models score 25–30% on
  Translate and 16–45% on Stripe, which only a model that never saw those
  corruptions does.
- `each`: every cell trains its model on the corruption's own train split.
- any other config name: train on that corruption, evaluate on all.

The output directory holds:

    results.json     finished cells and their training settings (written atomically)
    table.md         test accuracy (%), rows corruptions, columns models
    table.csv        the same numbers, machine-readable
    runs/<train corruption>/<model>/last.weights.h5   weights after the last epoch
    runs/<train corruption>/<model>/backup/           state of an unfinished training
    logs/<train corruption>/<model>/                  TensorBoard (train, test)

Run the command again with the same `--out` to resume. Cells already in results.json are
skipped. An interrupted training restarts from its last finished epoch
(`keras.callbacks.BackupAndRestore`), and its data from that epoch's order, so it
ends where an uninterrupted training would. Changed training settings (width, epochs, ...) are
refused, so a table never mixes two configurations. Each cell trains in a process of its
own, so that memory is freed between cells (`--in-process` turns this off).

Example:

    keras-odetoode make-mnistc --mnist mnist.npz --out data/mnist_c
    keras-odetoode mnistc --preset table1 --source local --data-dir data/mnist_c \\
        --out results/table1
"""

import json
import os
import pathlib
import time

from keras_odetoode import records
from keras_odetoode.atomic import write_text_atomic
from keras_odetoode.checks import check_integer, check_range
from keras_odetoode.result_tables import cell_key, format_tables, table_caption

# The rows of Table 1 / Table 2 in the paper's order (its "11 variants").
PAPER_CORRUPTIONS = (
    "dotted_line",
    "spatter",
    "stripe",
    "translate",
    "rotate",
    "scale",
    "shear",
    "motion_blur",
    "glass_blur",
    "shot_noise",
    "identity",
)

DEFAULTS = dict(
    models=("dense-1", "node", "nanode-1", "hypernet-1", "odetoode-1"),
    corruptions="all",
    train_on="identity",
    width=128,
    dropout=0.0,
    epochs=100,
    gate_inputs="time",
)

# The presets train the paper's gated-ODEtoODE, whose gate networks are HyperNet's
# hypernetwork of W made skew (Sec. 1, 3.1): gate_inputs "state".
PRESETS = {
    # Table 1: width 128, no dropout, 100 epochs.
    "table1": dict(
        models=(
            "dense-1",
            "dense-10",
            "node",
            "nanode-1",
            "nanode-10",
            "hypernet-1",
            "hypernet-10",
            "odetoode-1",
            "odetoode-10",
        ),
        corruptions="paper",
        train_on="identity",
        width=128,
        dropout=0.0,
        epochs=100,
        gate_inputs="state",
    ),
    # Table 2: width 256, dropout 0.1, 100 epochs.
    "table2": dict(
        models=(
            "dense-1",
            "dense-2",
            "dense-4",
            "node",
            "nanode-1",
            "nanode-2",
            "nanode-4",
            "hypernet-1",
            "hypernet-2",
            "hypernet-4",
            "odetoode-1",
            "odetoode-2",
            "odetoode-4",
        ),
        corruptions="paper",
        train_on="identity",
        width=256,
        dropout=0.1,
        epochs=100,
        gate_inputs="state",
    ),
}

RESULTS_FILE = "results.json"
# Next to a finished training's last.weights.h5: its record (TRAINING_RECORD_KEYS).
TRAINED_FILE = "trained.json"
# Settings that change what a cell learns: a resumed run must match them all.
TRAINING_KEYS = (
    "width",
    "dropout",
    "epochs",
    "batch_size",
    "learning_rate",
    "step_size",
    "seed",
    "projection",
    "gate_inputs",
    "max_train_examples",
    "source",
    "data_dir",
    "train_on",
)
#: Format version of results.json ("version"). Version 1 records may lack "train_on"
#: (their cells were each trained on their own corruption), "gate_inputs" (their
#: ODEtoODE gates read the time) and a cell's "trained_on"; `upgrade_results` fills them in.
RESULTS_VERSION = 2


def _comma_list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def resolve_corruptions(spec):
    """Corruption names from "all", "paper" or a list/comma-separated string of config names."""
    from keras_odetoode.data import CORRUPTION_NAMES

    names = _comma_list(spec) if isinstance(spec, str) else list(spec)
    if names == ["all"]:
        return list(CORRUPTION_NAMES)
    if names == ["paper"]:
        return list(PAPER_CORRUPTIONS)
    if not names:
        raise ValueError(f"No corruption given. Received: corruptions={spec!r}. Expected: 'all', 'paper' or names")
    unknown = [name for name in names if name not in CORRUPTION_NAMES]
    if unknown:
        raise ValueError(
            f"Unknown corruption. Received: {', '.join(unknown)}. "
            f"Expected 'all', 'paper' or some of: {', '.join(CORRUPTION_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"A corruption is listed twice. Received: corruptions={spec!r}")
    return names


def resolve_train_on(name):
    """'each' or the MNIST-C config every model is trained on."""
    from keras_odetoode.data import CORRUPTION_NAMES

    if name == "each" or name in CORRUPTION_NAMES:
        return name
    raise ValueError(
        f"Unknown training data. Received: train_on={name!r}. Expected 'each' or one of: {', '.join(CORRUPTION_NAMES)}"
    )


def resolve_models(spec):
    """Canonical model names ("odetoode-1", "node", ...) from a list or comma-separated string."""
    from keras_odetoode import models

    names = _comma_list(spec) if isinstance(spec, str) else list(spec)
    if not names:
        raise ValueError(f"No model given. Received: models={spec!r}")
    canonical = [models.model_name(*models.parse_model_name(name)) for name in names]
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"A model is listed twice. Received: models={spec!r}")
    return canonical


def resolve_config(preset=None, **options):
    """The grid configuration from a preset and options; an option given as None takes the preset's value.

    Args:
        preset: None, "table1" or "table2" (`PRESETS`).
        **options: corruptions, models, train_on, width, dropout, epochs,
            gate_inputs (None: the preset's, else `DEFAULTS`), batch_size,
            learning_rate, step_size, seed, projection, max_train_examples,
            source, data_dir, download.

    Returns:
        The configuration `run_grid` takes, with corruptions and models as
        lists of canonical names and data_dir absolute.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown preset. Expected one of {tuple(PRESETS)}. Received: preset={preset!r}")
    chosen = PRESETS.get(preset, {})

    def value(key):  # the option, else the preset, else the default
        given = options.pop(key, None)
        return given if given is not None else chosen.get(key, DEFAULTS[key])

    config = dict(
        corruptions=resolve_corruptions(value("corruptions")),
        models=resolve_models(value("models")),
        train_on=resolve_train_on(value("train_on")),
        width=value("width"),
        dropout=value("dropout"),
        epochs=value("epochs"),
        gate_inputs=value("gate_inputs"),
    )
    data_dir = options.pop("data_dir", None)
    config.update(
        batch_size=options.pop("batch_size", 128),
        learning_rate=options.pop("learning_rate", 1e-3),
        step_size=options.pop("step_size", 0.01),
        seed=options.pop("seed", 0),
        projection=options.pop("projection", "dense"),
        max_train_examples=options.pop("max_train_examples", None),
        source=options.pop("source", "tfds"),
        # Absolute: the results record must name the data it was made from.
        data_dir=None if data_dir is None else str(pathlib.Path(data_dir).expanduser().resolve()),
        download=options.pop("download", False),
        preset=preset,
    )
    if options:
        raise TypeError(f"resolve_config() got unexpected options: {sorted(options)}")
    return config


def load_results(out):
    """The record in `out`/results.json, or None if there is none yet.

    Keys: "training" (the settings every cell was trained with), "cells"
    ({"corruption/model": test and train accuracy and loss, epochs, seconds,
    parameters, finish time}), "last_invocation" and "version".
    """
    path = pathlib.Path(out) / RESULTS_FILE
    if not path.is_file():
        return None
    return upgrade_results(json.loads(path.read_text(encoding="utf-8")))


def _results_1_to_2(record):
    training = {"train_on": "each", "gate_inputs": "time", **record["training"]}
    cells = {key: {"trained_on": key.split("/")[0], **cell} for key, cell in record["cells"].items()}
    return {**record, "training": training, "cells": cells}


def upgrade_results(record):
    """A results.json record in the current format (`RESULTS_VERSION`), whatever its version."""
    return records.upgrade(record, "mnistc results.json", {1: _results_1_to_2}, RESULTS_VERSION, "version")


def _gate_inputs(config, model_name):
    """`build_classifier`'s gate_inputs for `model_name`: the configured one for ODEtoODE, else None."""
    from keras_odetoode.models import parse_model_name

    return config["gate_inputs"] if parse_model_name(model_name)[0] == "odetoode" else None


def _train_dataset(config, corruption):
    import tensorflow as tf

    from keras_odetoode.data import load_mnist_corrupted

    common = dict(batch_size=config["batch_size"], **_source(config))
    limit = config["max_train_examples"]
    if limit is None:
        return load_mnist_corrupted(corruption, "train", shuffle_seed=config["seed"], **common)
    # The subset is fixed (the first N in file order); only its order changes per epoch.
    subset = load_mnist_corrupted(corruption, "train", shuffle=False, **common).unbatch().take(limit).cache()
    # `unbatch` loses the size; Keras wants it to count the steps of the first epoch.
    size = int(subset.reduce(0, lambda count, _: count + 1))
    subset = subset.apply(tf.data.experimental.assert_cardinality(size))
    subset = subset.shuffle(size, seed=config["seed"], reshuffle_each_iteration=True)
    return subset.batch(config["batch_size"]).prefetch(tf.data.AUTOTUNE)


def _test_dataset(config, corruption):
    from keras_odetoode.data import load_mnist_corrupted

    return load_mnist_corrupted(corruption, "test", batch_size=config["batch_size"], **_source(config))


def _source(config):
    """The `load_mnist_corrupted` arguments that say where the data come from."""
    download = config["download"] and config["source"] == "tfds"
    return dict(data_dir=config["data_dir"], source=config["source"], download=download)


def tensorboard_available():
    """Whether `tf.summary` can write events: it needs the `tensorboard` package, which TensorFlow ≥ 2.21 does not install."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


TRAINING_RECORD_KEYS = (
    "trained_on",
    "train_accuracy",
    "train_loss",
    "epochs",
    "epochs_this_session",
    "train_seconds_this_session",
    "params",
)


def _train_cell(config, train_corruption, model_name, test_corruptions, out, verbose, trained=None):
    """Train `model_name` on `train_corruption`, evaluate it on each of `test_corruptions`.

    `trained` is the training record of a finished earlier training of the
    same model: its `last.weights.h5` is loaded instead of training again
    (a table extended by more corruptions).

    Returns {test corruption: cell}, a cell being the test accuracy and loss,
    the training record (last train accuracy and loss, epochs, seconds),
    the parameter count and the finish time.
    """
    import keras
    import tensorflow as tf

    from keras_odetoode.models import build_classifier, compile_classifier

    run_dir = out / "runs" / train_corruption / model_name
    log_dir = out / "logs" / train_corruption / model_name
    run_dir.mkdir(parents=True, exist_ok=True)
    # Drop the graphs of earlier cells: a grid traces dozens of 100-step models in one process.
    keras.backend.clear_session()
    keras.utils.set_random_seed(config["seed"])
    model = build_classifier(
        model_name,
        width=config["width"],
        dropout=config["dropout"],
        step_size=config["step_size"],
        seed=config["seed"],
        projection=config["projection"],
        gate_inputs=_gate_inputs(config, model_name),
    )
    compile_classifier(model, config["learning_rate"])
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "last.weights.h5"), save_weights_only=True),
    ]
    tensorboard = tensorboard_available()
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(log_dir), write_graph=False))
    if trained is not None:
        model.optimizer.build(model.trainable_variables)  # the file holds the optimizer's state too
        model.load_weights(str(run_dir / "last.weights.h5"))
    else:
        train = _train_dataset(config, train_corruption)
        steps = int(train.cardinality())
        # One iterator for the whole training, each epoch a repetition with its own order; the
        # k-th repetition of a freshly built dataset has the same order in every run. BackupAndRestore
        # resumes at the epoch it recorded, and the data resume there too: a resumed training sees
        # the orders an uninterrupted one sees.
        data = train.repeat().skip(_epochs_backed_up(run_dir / "backup") * steps)
        start = time.perf_counter()
        history = model.fit(
            data,
            epochs=config["epochs"],
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )
        seconds = time.perf_counter() - start
        last = {key: float(values[-1]) for key, values in history.history.items() if values}
        trained = dict(
            trained_on=train_corruption,
            train_accuracy=last.get("accuracy"),
            train_loss=last.get("loss"),
            epochs=config["epochs"],
            epochs_this_session=len(history.history.get("loss", [])),
            train_seconds_this_session=round(seconds, 2),
            params=int(model.count_params()),
        )
        # Before any evaluation: a run stopped while evaluating does not train again.
        write_text_atomic(run_dir / TRAINED_FILE, json.dumps(trained, indent=2) + "\n")
    cells = {}
    for corruption in test_corruptions:
        metrics = model.evaluate(_test_dataset(config, corruption), verbose=0, return_dict=True)
        cells[corruption] = dict(
            test_accuracy=float(metrics["accuracy"]),
            test_loss=float(metrics["loss"]),
            **trained,
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
    if tensorboard:
        with tf.summary.create_file_writer(str(log_dir / "test")).as_default():
            for corruption, cell in cells.items():
                # One model, one test set: Keras's names; one model, many: one curve per corruption.
                prefix = "epoch_" if list(cells) == [train_corruption] else f"{corruption}/"
                tf.summary.scalar(prefix + "accuracy", cell["test_accuracy"], step=config["epochs"] - 1)
                tf.summary.scalar(prefix + "loss", cell["test_loss"], step=config["epochs"] - 1)
    return cells


def _epochs_backed_up(backup_dir):
    """The epochs that `keras.callbacks.BackupAndRestore` recorded as done in `backup_dir` (0 if none)."""
    try:
        epochs = json.loads((backup_dir / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return epochs if isinstance(epochs, int) and epochs > 0 else 0


def _exit_with(parent_pid, period=1.0):
    """End this process as soon as the process `parent_pid` is gone (its parent changes).

    A grid killed by a signal it cannot handle (SIGTERM, SIGKILL) leaves its training
    process behind, which would go on writing the epoch backup and logs that a
    restarted grid on the same --out writes too.
    """
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(period)
        os._exit(1)

    threading.Thread(target=watch, name="exit with the grid", daemon=True).start()


def _cell_worker(connection, parent_pid, config, train_corruption, model_name, test_corruptions, out, verbose, trained):
    """Body of a training's own process: train, then send ("ok", cells) or ("error", traceback).

    It ends with the grid's process `parent_pid` (`_exit_with`).
    """
    import traceback

    _exit_with(parent_pid)
    try:
        out = pathlib.Path(out)
        cells = _train_cell(config, train_corruption, model_name, test_corruptions, out, verbose, trained)
        message = ("ok", cells)
    except BaseException:  # noqa: BLE001 - the parent re-raises it
        message = ("error", traceback.format_exc())
    connection.send(message)
    connection.close()


def _train_cell_in_new_process(config, train_corruption, model_name, test_corruptions, out, verbose, trained=None):
    """`_train_cell` in a fresh process, so that its memory goes back to the system.

    Keras 3 / TensorFlow 2.21 keep about 75 MB per traced 100-step model even
    after `keras.backend.clear_session()` (measured: a loop of NODE builds and
    fits grows by that much per iteration), which over a Table 1 grid is
    several GB. A new process costs a few seconds of imports per cell.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_cell_worker,
        args=(
            send,
            os.getpid(),
            config,
            train_corruption,
            model_name,
            list(test_corruptions),
            str(out),
            verbose,
            trained,
        ),
        name=f"mnistc {cell_key(train_corruption, model_name)}",
        daemon=True,
    )
    process.start()
    send.close()
    try:
        status, payload = receive.recv()
    except EOFError:
        status, payload = "error", f"the process exited with code {process.exitcode} without a result"
    except BaseException:  # interrupted (Ctrl-C): the training stops with the grid
        process.terminate()
        raise
    finally:
        process.join()
    if status != "ok":
        raise RuntimeError(f"Training {cell_key(train_corruption, model_name)} failed:\n{payload}")
    return payload


def _check_config(config):
    for key in ("width", "epochs", "batch_size"):
        check_integer(key, config[key], 1)
    check_integer("max_train_examples", config["max_train_examples"], 1, allow_none=True)
    check_range("dropout", config["dropout"], 0.0, 1.0, include_maximum=False)
    if not config["learning_rate"] > 0:
        raise ValueError(f"learning_rate must be > 0. Received: learning_rate={config['learning_rate']!r}")
    if config["source"] == "local" and config["data_dir"] is None:
        raise ValueError("--source local reads the MNIST-C layout from --data-dir. Received: no --data-dir")
    from keras_odetoode.layers import num_steps_of

    num_steps_of(config["step_size"], 1.0)


def _preflight(config):
    """Fail before any training if a model does not build or a corruption's data are missing."""
    from keras_odetoode.models import build_classifier

    for model_name in config["models"]:
        build_classifier(
            model_name,
            width=config["width"],
            dropout=config["dropout"],
            step_size=config["step_size"],
            gate_inputs=_gate_inputs(config, model_name),
        )
    for corruption in config["corruptions"]:
        _test_dataset(config, corruption)
    if config["train_on"] != "each":
        _train_dataset(config, config["train_on"])


def trainings(config):
    """The grid as (train corruption, model, test corruptions) triples, in training order."""
    corruptions, models = config["corruptions"], config["models"]
    if config["train_on"] == "each":
        return [(c, m, [c]) for c in corruptions for m in models]
    return [(config["train_on"], m, list(corruptions)) for m in models]


def run_grid(config, out, verbose=1, log=print, new_process_per_cell=True):
    """Train and evaluate every (corruption, model) cell of `config`, resuming from `out`.

    Args:
        config: as built by the `mnistc` command: corruptions, models,
            train_on, width, dropout, epochs, batch_size, learning_rate,
            step_size, seed, projection, max_train_examples, source,
            data_dir, download, preset.
        out: output directory (see the module docstring for its layout).
        verbose: Keras `fit` verbosity.
        log: where progress lines go.
        new_process_per_cell: train each model in a fresh process (see
            `_train_cell_in_new_process`); False trains them all in this one.

    Returns:
        The results record: {"config": ..., "cells": {"corruption/model": ...}}.

    Raises:
        ValueError: for bad settings, or when `out` holds results made with
            different training settings.
    """
    _check_config(config)
    out = pathlib.Path(out).expanduser()
    training = {key: config[key] for key in TRAINING_KEYS}
    record = load_results(out) or {"version": RESULTS_VERSION, "training": training, "cells": {}}
    # A record that does not name its data directory is taken to be of this one.
    record["training"].setdefault("data_dir", training["data_dir"])
    if record["training"] != training:
        changed = {k: (record["training"].get(k), v) for k, v in training.items() if record["training"].get(k) != v}
        raise ValueError(
            f"{out / RESULTS_FILE} was made with other training settings; a resumed table must not mix them. "
            "Received (recorded → now): "
            + ", ".join(f"{k}={old!r} → {new!r}" for k, (old, new) in changed.items())
            + ". Use another --out, or the recorded settings."
        )
    record["last_invocation"] = {key: config[key] for key in ("corruptions", "models", "data_dir", "preset")}
    _preflight(config)
    out.mkdir(parents=True, exist_ok=True)  # only now: bad input leaves no empty folder behind
    settings = {k: v for k, v in config.items() if k not in ("corruptions", "models")}
    log(f"mnistc: {len(config['corruptions'])} corruptions x {len(config['models'])} models; {settings}")
    if not tensorboard_available():
        log("mnistc: TensorBoard logs need the `tensorboard` package (pip install tensorboard); training without them")
    corruptions, models = config["corruptions"], config["models"]
    cells = record["cells"]

    def save():
        write_text_atomic(out / RESULTS_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
        markdown, csv = format_tables(corruptions, models, cells, table_caption(config, cells, corruptions, models))
        write_text_atomic(out / "table.md", markdown)
        write_text_atomic(out / "table.csv", csv)

    save()
    jobs = trainings(config)
    for index, (train_on, model_name, tests) in enumerate(jobs, 1):
        key = cell_key(train_on, model_name)
        todo = [c for c in tests if cell_key(c, model_name) not in cells]
        if not todo:
            accuracies = ", ".join(f"{c} {100 * cells[cell_key(c, model_name)]['test_accuracy']:.2f}%" for c in tests)
            log(f"[{index}/{len(jobs)}] {key}: done before ({_shorten(accuracies)}), skipped")
            continue
        # Any cell of this model trained on `train_on`, in this invocation's rows or not.
        done = [cell for k, cell in cells.items() if k.split("/")[1] == model_name and cell["trained_on"] == train_on]
        run_dir = out / "runs" / train_on / model_name
        # A model trained before (for other rows, or stopped while evaluating) is only evaluated.
        trained = None
        if (run_dir / "last.weights.h5").is_file():
            if done:
                trained = {k: done[0][k] for k in TRAINING_RECORD_KEYS if k in done[0]}
            elif (run_dir / TRAINED_FILE).is_file():
                trained = json.loads((run_dir / TRAINED_FILE).read_text())
        action = "evaluating the trained model" if trained else f"training {config['epochs']} epochs"
        log(f"[{index}/{len(jobs)}] {key}: {action}, testing on {_shorten(', '.join(todo))}")
        train = _train_cell_in_new_process if new_process_per_cell else _train_cell
        new_cells = train(config, train_on, model_name, todo, out, verbose, trained)
        cells.update({cell_key(c, model_name): cell for c, cell in new_cells.items()})
        save()
        first = next(iter(new_cells.values()))
        accuracies = ", ".join(f"{c} {100 * cell['test_accuracy']:.2f}%" for c, cell in new_cells.items())
        log(
            f"[{index}/{len(jobs)}] {key}: test accuracy {_shorten(accuracies)} "
            f"({first['train_seconds_this_session']:.0f} s, {first['params']:,} parameters)"
        )
    log(f"Table: {out / 'table.md'} and {out / 'table.csv'}")
    return record


def _shorten(text, limit=160):
    return text if len(text) <= limit else text[: limit - 1] + "…"
