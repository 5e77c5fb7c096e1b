"""MNIST-C speed: corruption generation (images/s), the input pipeline and model training (examples/s).

Not a test. Times each of the 16 corruptions on `--num-images` digits (the
issue's figure: 10,000 images x 15 corruptions + identity), then `--epochs` epochs
of `load_mnist_corrupted(..., source="local")` over an identity layout of
MNIST-C's split sizes (60,000 / 10,000, tiled from the same digits), shuffled
(train) and in order (test), read in-graph (as Keras's
`fit` reads it) and by a Python loop. Then training examples/s of each
classifier of Table 1 (`keras_odetoode.models`, width 128, h = 0.01), measured
side by side: every round runs `fit` on the same batches for every model in
turn, and the median round counts. Ratios are to Dense-1 and to NODE, and the
input pipeline (in-graph) is compared with the fastest model (goal: at least
20x, so that the data never limit training), and so is the same loop over a
constant batch: tf.data's floor, the ceiling of that ratio. Two more
references deliver the split in order through one `map`, without shuffling:
one slices and converts each batch, one slices a float32 table; they show
what the per-epoch shuffle and the conversion cost.

    python benchmarks/mnistc_speed.py --mnist mnist-10k.npz

Without `--mnist`, the 600 test digits are tiled up to `--num-images`.
"""

import argparse
import os
import pathlib
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_odetoode.data import CORRUPTIONS, load_mnist_corrupted, make_mnist_c
from keras_odetoode.flows import GATE_INPUTS
from keras_odetoode.models import PROJECTIONS, build_classifier, compile_classifier, display_name

TEST_DIGITS = pathlib.Path(__file__).parents[1] / "tests" / "data" / "mnist-600.npz"
TABLE1_MODELS = ("dense-1", "node", "nanode-1", "hypernet-1", "odetoode-1")
PIPELINE_GOAL = 20.0


def load_digits(path, n):
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    reps = -(-n // len(images))
    return np.tile(images, (reps, 1, 1))[:n], np.tile(labels, reps)[:n]


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _epoch_reader(dataset, steps):
    """An epoch of `dataset` read as Keras's `fit` reads it: `next(iterator)` in a compiled loop.

    Returns a function that reads one epoch from a new iterator and returns
    the number of examples read.
    """

    @tf.function
    def take_all(iterator):
        count = tf.constant(0, tf.int64)
        for _ in tf.range(steps):
            images, _ = next(iterator)
            count += tf.shape(images, out_type=tf.int64)[0]
        return count

    return lambda: take_all(iter(dataset))


def _rate(count_epoch, epochs):
    """Examples/s of `count_epoch` over `epochs` epochs (each from a new iterator, as `fit` reads)."""
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        count += int(count_epoch())
    return count / (time.perf_counter() - start)


def interleaved_rates(readers, epochs, rounds):
    """Examples/s of each epoch reader, measured side by side.

    Every reader first reads one epoch (tracing, pipeline start); then each
    round times `epochs` epochs of every reader in turn. Returns, per reader,
    the median rate over rounds and the spread (max/min) as a noise figure.
    """
    for count_epoch in readers.values():
        count_epoch()
    rates = {name: [] for name in readers}
    for _ in range(rounds):
        for name, count_epoch in readers.items():
            rates[name].append(_rate(count_epoch, epochs))
    return {name: (float(np.median(r)), max(r) / min(r)) for name, r in rates.items()}


def pipeline_readers(root, split, batch_size):
    """Epoch readers of `load_mnist_corrupted(..., source="local")`: in-graph and by a Python loop.

    Keras's `fit` makes a new iterator each epoch and takes every batch with
    `next(iterator)` inside its compiled step; the in-graph reader reads the
    dataset the same way (`_epoch_reader`), so its rate is the pipeline's own
    throughput as training sees it. The Python loop adds eager iteration's
    cost to every batch and is shown for reference. Returns
    `(in_graph, python_loop)`.
    """
    dataset = load_mnist_corrupted("identity", split, batch_size=batch_size, source="local", data_dir=root)

    def count_in_python():
        count = 0
        for images, _ in dataset:
            count += int(images.shape[0])
        return count

    return _epoch_reader(dataset, int(dataset.cardinality())), count_in_python


def floor_reader(batch_size, steps):
    """The same in-graph reader over the cheapest tf.data pipeline there is.

    One constant float32 batch of the pipeline's shape, repeated and prefetched:
    no data are read, gathered or converted. What is left is tf.data's own cost
    per element plus the loop's, the ceiling for any pipeline read this way.
    """
    batch = (tf.zeros((batch_size, 28 * 28)), tf.zeros((batch_size,), tf.int64))
    dataset = tf.data.Dataset.from_tensors(batch).repeat(steps).prefetch(tf.data.AUTOTUNE)
    return _epoch_reader(dataset, steps)


def in_order_reader(root, batch_size, convert=True):
    """The same in-graph reader over a pipeline that does not shuffle: one `map` slicing each batch.

    The same train split as `pipeline_readers` reads, in memory; each element
    is a batch number, and one `map` slices that batch and, with `convert`,
    turns the uint8 rows into float32 in [0, 1] as `load_mnist_corrupted`
    does. Without `convert` the split is held as a float32 table (4x the
    memory) and the map only slices. Nothing picks the examples: no
    permutation, no index batches, no nested dataset. These two references
    split the shuffled pipeline's cost into the choice of examples and the
    conversion.
    """
    images = np.load(pathlib.Path(root) / "identity" / "train_images.npy")
    count = len(images)
    split = images.reshape(count, 28 * 28)
    split = tf.constant(split if convert else split.astype(np.float32) / 255.0)
    labels = tf.constant(np.load(pathlib.Path(root) / "identity" / "train_labels.npy").astype(np.int64))
    steps = -(-count // batch_size)

    def batch(step):
        rows = slice(step * batch_size, tf.minimum((step + 1) * batch_size, count))
        images = tf.cast(split[rows], tf.float32) / 255.0 if convert else split[rows]
        return images, labels[rows]

    dataset = tf.data.Dataset.range(steps).map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return _epoch_reader(dataset, steps)


def training_rates(images, labels, names, width, batch_size, batches, rounds, step_size, min_seconds=1.0):
    """Training examples/s of each model on the same in-memory batches, measured interleaved.

    `names` may carry an option (`_options`). Each round times one
    `fit` of every model in turn, over `batches` batches repeated until the fit
    lasts about `min_seconds` (Dense-1 needs many repeats, or `fit`'s own
    overhead dominates). Returns, per model, the median rate and the spread
    (max/min time over rounds) as a noise figure.
    """
    n = batches * batch_size
    reps = -(-n // len(images))
    x = np.tile(images.reshape(len(images), -1), (reps, 1))[:n].astype("float32") / 255.0
    y = np.tile(labels, reps)[:n].astype("int64")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache()
    for _ in dataset:  # fill the cache, so every model reads the same in-memory batches
        pass
    fitted = {}
    for name in names:
        model_name, options = _options(name)
        model = build_classifier(model_name, width=width, step_size=step_size, seed=0, **options)
        compile_classifier(model)
        model.fit(dataset, epochs=1, verbose=0)  # trace
        start = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)  # warm up, and size the timed fit
        repeats = max(1, int(np.ceil(min_seconds / (time.perf_counter() - start))))
        fitted[name] = (model, dataset.repeat(repeats), repeats * n)
    times = {name: [] for name in names}
    for _ in range(rounds):
        for name, (model, data, _) in fitted.items():
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
    return {name: (fitted[name][2] / float(np.median(t)), max(t) / min(t)) for name, t in times.items()}


def fit_from_pipeline(root, batch_size, rounds):
    """Dense-1's training examples/s fed by `load_mnist_corrupted` and by the same batches held in memory.

    The goal's purpose, measured directly: one epoch of `fit` (the 60,000-image
    train split) from the shuffled pipeline, and one from the same split's
    batches cached in memory, in turn (alternating which goes first) for
    `rounds` rounds. Dense-1 is the fastest model, so the one most exposed to
    a slow pipeline; a ratio near 1 means the pipeline does not hold its
    training back. Returns
    `(from_pipeline, from_memory, spread)`: the median rates and the larger
    max/min over rounds.
    """
    pipeline = load_mnist_corrupted("identity", "train", batch_size=batch_size, source="local", data_dir=root)
    memory = load_mnist_corrupted(
        "identity", "train", batch_size=batch_size, source="local", data_dir=root, shuffle=False
    ).cache()
    for _ in memory:  # fill the cache
        pass
    model = compile_classifier(build_classifier("dense-1", seed=0))
    count = len(np.load(pathlib.Path(root) / "identity" / "train_labels.npy"))
    times = {"pipeline": [], "memory": []}
    model.fit(pipeline, epochs=1, verbose=0)  # trace, warm up
    model.fit(memory, epochs=1, verbose=0)
    for round_ in range(rounds):
        order = (("pipeline", pipeline), ("memory", memory))
        for name, data in order if round_ % 2 == 0 else order[::-1]:  # neither always goes first
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
    spread = max(max(t) / min(t) for t in times.values())
    return count / np.median(times["pipeline"]), count / np.median(times["memory"]), spread


def _options(name):
    """`build_classifier` options of a model given as NAME or NAME:OPTION.

    OPTION "stiefel" is the Stiefel projection, "state" ODEtoODE's gates of the state.
    """
    model_name, _, option = name.partition(":")
    if not option:
        return model_name, {}
    if option in PROJECTIONS:
        return model_name, {"projection": option}
    if option in GATE_INPUTS:
        return model_name, {"gate_inputs": option}
    raise ValueError(f"Unknown option of {name!r}. Expected one of: {PROJECTIONS + GATE_INPUTS}")


def _label(name):
    model_name, options = _options(name)
    if "projection" in options:
        return f"{display_name(model_name)} ({options['projection']} projection)"
    if "gate_inputs" in options:
        return f"{display_name(model_name)} (gates of the {options['gate_inputs']})"
    return display_name(model_name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=pathlib.Path, default=TEST_DIGITS)
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--models",
        default=",".join(TABLE1_MODELS) + ",odetoode-1:state,odetoode-1:stiefel",
        help="Classifiers to train; NAME:stiefel for the Stiefel projection, "
        "NAME:state for ODEtoODE's gates of the state.",
    )
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--step-size", type=float, default=0.01)
    parser.add_argument("--train-batches", type=int, default=20, help="Batches per timed fit.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-generation", action="store_true", help="Skip timing the 16 corruptions.")
    args = parser.parse_args()

    images, labels = load_digits(args.mnist, args.num_images)
    print(f"{len(images)} digits from {args.mnist}; {os.cpu_count()} CPU cores visible")
    if not args.skip_generation:
        print(f"\n{'corruption':<14} {'seconds':>8} {'images/s':>10}")
        total = 0.0
        for name, corruption in CORRUPTIONS.items():
            seconds = best_time(lambda: corruption(images, seed=0), args.repeats)
            total += seconds
            print(f"{name:<14} {seconds:8.2f} {len(images) / seconds:10.0f}")
        print(f"{'all 16':<14} {total:8.2f} {16 * len(images) / total:10.0f}")
        full = 16 * 70_000 * total / (16 * len(images))
        print(f"(a full 16-config MNIST-C, 70,000 digits each: about {full / 60:.1f} min)")

    pipeline = {}
    with tempfile.TemporaryDirectory() as root:
        # MNIST-C's own split sizes (60,000 / 10,000), tiled from the digits: the
        # per-epoch cost of a pipeline is amortised over the batches of a real epoch.
        layout_images, layout_labels = load_digits(args.mnist, 70_000)
        make_mnist_c(
            (layout_images[:60_000], layout_labels[:60_000]),
            (layout_images[60_000:], layout_labels[60_000:]),
            root,
            corruptions=["identity"],
            progress=False,
        )
        readers = {}
        for name in ("train", "test"):
            readers[name], readers[name + ", Python loop"] = pipeline_readers(root, name, args.batch_size)
        readers["in order"] = in_order_reader(root, args.batch_size)
        readers["in order, float32"] = in_order_reader(root, args.batch_size, convert=False)
        readers["floor"] = floor_reader(args.batch_size, 60_000 // args.batch_size)
        pipeline_rates = interleaved_rates(readers, args.epochs, args.rounds)
        from_pipeline, from_memory, fit_spread = fit_from_pipeline(root, args.batch_size, args.rounds)
    pipeline = {name: rate for name, (rate, _) in pipeline_rates.items()}
    print(
        f"\ninput pipeline, batch {args.batch_size}: examples/s, median of {args.rounds} interleaved rounds "
        f"of {args.epochs} epochs each"
    )
    print(f"{'':<40} {'in-graph':>10} {'Python loop':>12} {'max/min':>8}")
    for name, label in (("train", "train, shuffled"), ("test", "test, in order")):
        python_loop = pipeline[name + ", Python loop"]
        print(f"{label:<40} {pipeline[name]:10.0f} {python_loop:12.0f} {pipeline_rates[name][1]:8.2f}")
    references = (
        ("in order", "no shuffle, one map: slice and convert"),
        ("in order, float32", "no shuffle, one map: slice a float32 table"),
        ("floor", "floor: a constant batch, no data"),
    )
    for name, label in references:
        print(f"{label:<40} {pipeline[name]:10.0f} {'':>12} {pipeline_rates[name][1]:8.2f}")

    names = [name.strip() for name in args.models.split(",") if name.strip()]
    rates = training_rates(
        images, labels, names, args.width, args.batch_size, args.train_batches, args.rounds, args.step_size
    )
    print(
        f"\ntraining (fit), width {args.width}, h = {args.step_size}, batch {args.batch_size}, "
        f"{args.train_batches} batches (repeated to >= 1 s per fit) x {args.rounds} interleaved rounds, median; "
        f"Keras {keras.__version__}, TensorFlow {tf.__version__}\n"
    )
    print("| model | examples/s | vs Dense-1 | vs NODE | input pipeline (in-graph) / model | max/min over rounds |")
    print("|---|---|---|---|---|---|")
    base = rates.get("dense-1", (float("nan"),))[0]
    node = rates.get("node", (float("nan"),))[0]
    for name, (rate, spread) in rates.items():
        print(
            f"| {_label(name)} | {rate:,.0f} | {rate / base:.3f}x | {rate / node:.2f}x | "
            f"{pipeline['train'] / rate:.1f}x | {spread:.2f} |"
        )
    fastest = max(rates, key=lambda name: rates[name][0])
    ratio = pipeline["train"] / rates[fastest][0]
    verdict = "meets" if ratio >= PIPELINE_GOAL else "MISSES"
    print(
        f"\ninput pipeline (train, shuffled, in-graph) / fastest model ({_label(fastest)}): "
        f"{pipeline['train']:,.0f} / {rates[fastest][0]:,.0f} = {ratio:.1f}x "
        f"({verdict} the goal of {PIPELINE_GOAL:.0f}x)"
    )
    print(
        f"no shuffle, one map / fastest model: {pipeline['in order'] / rates[fastest][0]:.1f}x converting each batch, "
        f"{pipeline['in order, float32'] / rates[fastest][0]:.1f}x slicing a float32 table"
    )
    print(
        f"tf.data floor (a constant batch, same loop) / fastest model: {pipeline['floor'] / rates[fastest][0]:.1f}x: "
        "no pipeline read this way can do better"
    )
    print(
        f"\nDense-1, one epoch of fit on the 60,000-image split, median of {args.rounds} interleaved rounds: "
        f"{from_pipeline:,.0f} examples/s from the pipeline, {from_memory:,.0f} from the same batches in memory: "
        f"{from_pipeline / from_memory:.3f}x (max/min over rounds {fit_spread:.2f})"
    )


if __name__ == "__main__":
    main()
