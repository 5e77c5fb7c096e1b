"""Time to a model's first training step (tracing + graph optimization), and per step after it.

`manifolds.expm` is traced once per shape into a function that the graph calls without
inlining it: an N-step parameter flow holds N calls of one function, not N copies of
`tf.linalg.expm`'s graph (its large-generator branch) and of the gradients of both
branches. This script measures what that changes, side by side in one process: each
flow's training step in a `tf.function` with `manifolds.expm` as it is, and with the
same body inlined at every step (the package before 2026-12-01). The first call is what
a user waits for before the first batch of `fit`; the steady step time shows what the
function calls cost per batch.

    python benchmarks/trace_time.py [--width 128] [--step-size 0.01] [--batch 128] [--rounds 7]
"""

import argparse
import contextlib
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_odetoode import layers, manifolds  # noqa: E402

FLOWS = {
    "isospectral": lambda h: layers.ODEtoODE(flow="isospectral", step_size=h, seed=0),
    "gated-state": lambda h: layers.ODEtoODE(flow="gated", gate_inputs="state", step_size=h, seed=0),
    "gated-time": lambda h: layers.ODEtoODE(flow="gated", step_size=h, seed=0),
}
LABELS = {
    "isospectral": "ODEtoODE, isospectral",
    "gated-state": "ODEtoODE, gated, gates of the state",
    "gated-time": "ODEtoODE, gated, gates of the time (one batched expm)",
}


@contextlib.contextmanager
def expm_inlined():
    """`manifolds.expm` with its body inlined at every call, as before it was traced once."""
    traced = manifolds._traced_expm
    manifolds._traced_expm = manifolds._expm
    try:
        yield
    finally:
        manifolds._traced_expm = traced


def training_step(core, width, batch):
    """A compiled training step (forward, loss, gradients) of Input → core → Dense(10)."""
    model = keras.Sequential([keras.Input((width,)), core, keras.layers.Dense(10)])
    x = tf.random.stateless_normal((batch, width), seed=(0, 0))
    y = tf.zeros((batch,), tf.int64)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    return step


def first_call(step, inlined):
    """Seconds of the first call: tracing, graph optimization and one step."""
    start = time.perf_counter()
    with expm_inlined() if inlined else contextlib.nullcontext():
        step()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--step-size", type=float, default=0.01)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5, help="steps per timed round")
    parser.add_argument("--flows", default=",".join(FLOWS), help=f"comma-separated, of: {', '.join(FLOWS)}")
    args = parser.parse_args()
    # Every model gets its own step function by design: no retracing warnings for them.
    tf.get_logger().setLevel("ERROR")
    names = [name.strip() for name in args.flows.split(",")]
    unknown = [name for name in names if name not in FLOWS]
    if unknown:
        parser.error(f"unknown flows {unknown}; expected some of {list(FLOWS)}")

    steps = round(1 / args.step_size)
    print(
        f"width {args.width}, N = {steps} steps (h = {args.step_size}), batch {args.batch}; "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible\n"
    )
    print("| flow | first call, expm inlined | first call, expm traced once | inlined / traced | "
          "step, inlined | step, traced | ratio (traced / inlined) |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        steps_by_mode, first = {}, {}
        for inlined in (True, False):
            steps_by_mode[inlined] = training_step(FLOWS[name](args.step_size), args.width, args.batch)
            first[inlined] = first_call(steps_by_mode[inlined], inlined)
        times = {True: [], False: []}
        for _ in range(args.rounds):  # interleaved: both see the same machine
            for inlined in (True, False):
                start = time.perf_counter()
                for _ in range(args.calls):
                    steps_by_mode[inlined]()
                times[inlined].append((time.perf_counter() - start) / args.calls)
        step_inlined, step_traced = np.median(times[True]), np.median(times[False])
        print(
            f"| {LABELS[name]} | {first[True]:.1f} s | {first[False]:.1f} s | {first[True] / first[False]:.2f} | "
            f"{1e3 * step_inlined:.1f} ms | {1e3 * step_traced:.1f} ms | {step_traced / step_inlined:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
