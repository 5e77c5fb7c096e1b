"""What moves when a classifier's training accuracy collapses: per-batch step sizes of every weight.

Not a test. In Table 2's setting (width 256, dropout 0.1) each ODEtoODE model reached 100 %
training accuracy and later fell to 92-94 % (benchmarks/results/mnistc_table2/). This trains
one classifier of `keras_odetoode.models` on clean digits, as `keras-odetoode mnistc` does
(`load_mnist_corrupted(..., source="local")`, `compile_classifier`, the same seeds), and
records after every optimizer step:

* the batch's loss and accuracy (from Keras' running means of the epoch),
* ‖ΔV‖_F, the size of the step each trainable variable V took, and ‖V‖_F,
* RiemannianAdam's second moment v of each manifold variable (a scalar: optimizers.py),
* ‖W_0ᵀW_0 − I‖₂ of each manifold variable (`manifolds.orthogonality_error`, float64), to see
  whether W_0 left O(d).

It prints one line an epoch (train accuracy and the largest steps of the epoch) and writes
everything to `--out/history.json`, with the test accuracy on each of the 16 configurations at
the end. `--amsgrad` and `--learning-rate` change the optimizer; `--epochs` cuts the run short
(the Table 2 grid's ODEtoODE-1 first collapsed at epoch 38).

One difference from the grid: the script counts the training examples by reading the
shuffled split once before training, so every epoch's batches come one shuffle later than
the grid's (the same in every run of the script). Runs of the script are one another's
controls; they do not repeat the grid's training step for step.

    python benchmarks/mnistc_collapse.py --data-dir DATA --out collapse/odetoode-1 --epochs 45
"""

import argparse
import json
import pathlib

import keras
import numpy as np

from keras_odetoode import manifolds
from keras_odetoode.atomic import write_text_atomic
from keras_odetoode.data import CORRUPTION_NAMES, load_mnist_corrupted
from keras_odetoode.models import build_classifier, compile_classifier


class StepRecorder(keras.callbacks.Callback):
    """Per-batch loss, accuracy, step sizes and manifold statistics (see the module docstring).

    Args:
        batch_sizes: the examples in each batch of an epoch, in order. Keras reports the
            epoch's running means weighted by batch size; a batch's own value is told
            from the change of the running sum.
    """

    def __init__(self, batch_sizes):
        super().__init__()
        self.batch_sizes = [int(size) for size in batch_sizes]
        self.batches = []
        self.epochs = []

    def on_train_begin(self, logs=None):
        self._previous = [v.numpy() for v in self.model.trainable_variables]
        optimizer = self.model.optimizer
        optimizer.build(self.model.trainable_variables)  # fit would build it at its first step
        self._velocity = {}
        for variable in self.model.trainable_variables:
            if manifolds.manifold_of(variable) is not None:
                index = optimizer._get_variable_index(variable)
                self._velocity[variable.path] = optimizer._velocities[index]

    def on_epoch_begin(self, epoch, logs=None):
        self._sums = (0.0, 0.0)  # the epoch's loss and correct predictions so far

    def on_train_batch_end(self, batch, logs=None):
        loss_sum, accuracy_sum = self._sums
        seen = sum(self.batch_sizes[: batch + 1])
        size = self.batch_sizes[batch]
        loss = (seen * logs["loss"] - loss_sum) / size
        accuracy = (seen * logs["accuracy"] - accuracy_sum) / size
        self._sums = (loss_sum + size * loss, accuracy_sum + size * accuracy)
        record = {"loss": float(loss), "accuracy": float(accuracy), "step": {}, "norm": {}}
        current = [v.numpy() for v in self.model.trainable_variables]
        for variable, before, after in zip(self.model.trainable_variables, self._previous, current):
            record["step"][variable.path] = float(np.linalg.norm(after - before))
            record["norm"][variable.path] = float(np.linalg.norm(after))
            if variable.path in self._velocity:
                record.setdefault("v", {})[variable.path] = float(np.ravel(self._velocity[variable.path].numpy())[0])
                error = manifolds.orthogonality_error(after)
                record.setdefault("orthogonality_error", {})[variable.path] = float(error)
        self._previous = current
        self.batches.append(record)

    def on_epoch_end(self, epoch, logs=None):
        epoch_batches = self.batches[-len(self.batch_sizes) :]
        paths = list(epoch_batches[0]["step"])
        summary = {
            "epoch": epoch + 1,
            "accuracy": float(logs["accuracy"]),
            "loss": float(logs["loss"]),
            "max_batch_loss": max(b["loss"] for b in epoch_batches),
            "max_step": {p: max(b["step"][p] for b in epoch_batches) for p in paths},
            "norm": dict(epoch_batches[-1]["norm"]),
        }
        self.epochs.append(summary)
        print(_epoch_line(summary), flush=True)


SHORT = {
    "block/flow/w0": "W0",
    "block/flow/gate_kernels": "Θ",
    "block/flow/gates": "a",
    "projection/kernel": "proj",
    "logits/kernel": "head",
}


def _epoch_line(summary):
    steps = " ".join(f"{SHORT[p]} {s:.3g}" for p, s in summary["max_step"].items() if p in SHORT)
    norms = " ".join(f"{SHORT[p]} {s:.3g}" for p, s in summary["norm"].items() if p in SHORT)
    return (
        f"epoch {summary['epoch']:3d}  acc {100 * summary['accuracy']:6.2f} %  loss {summary['loss']:.2e}  "
        f"worst batch loss {summary['max_batch_loss']:.2e}  largest step: {steps}  norms: {norms}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="odetoode-1", help="A model of keras_odetoode.models. Default: odetoode-1.")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=45)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--amsgrad", action="store_true", help="RiemannianAdam(amsgrad=True): RAMSGrad, for every weight."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", required=True, help="The root of a make-mnistc layout.")
    parser.add_argument("--out", required=True, type=pathlib.Path)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    model = build_classifier(args.model, width=args.width, dropout=args.dropout, seed=args.seed)
    compile_classifier(model, args.learning_rate, amsgrad=args.amsgrad)
    train = load_mnist_corrupted(
        "identity", "train", batch_size=args.batch_size, data_dir=args.data_dir, source="local", shuffle_seed=args.seed
    )
    steps = int(train.cardinality())
    examples = int(train.unbatch().reduce(0, lambda count, _: count + 1))  # one shuffle: see the docstring
    recorder = StepRecorder([args.batch_size] * (steps - 1) + [examples - args.batch_size * (steps - 1)])
    # As the grid feeds it (mnistc_grid._train_cell): one repeated dataset, an order an epoch.
    model.fit(train.repeat(), epochs=args.epochs, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[recorder])
    test_accuracy = {}
    for corruption in CORRUPTION_NAMES:
        test = load_mnist_corrupted(
            corruption, "test", batch_size=args.batch_size, data_dir=args.data_dir, source="local"
        )
        test_accuracy[corruption] = float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])
    print("Test accuracy (%): " + ", ".join(f"{c} {100 * a:.2f}" for c, a in test_accuracy.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    command = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    history = {
        "command": command,
        "test_accuracy": test_accuracy,
        "epochs": recorder.epochs,
        "batches": recorder.batches,
    }
    write_text_atomic(args.out / "history.json", json.dumps(history))
    print(f"History: {args.out / 'history.json'} ({len(recorder.batches)} steps)")


if __name__ == "__main__":
    main()
