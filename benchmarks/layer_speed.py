"""Forward+backward time per batch: ODEtoODE against DeepResNet and a straightforward loop.

Width 128, N = 100 steps (h = 0.01), batches 32 … 2048. Every model runs in one
`tf.function` (no XLA: `tf.linalg.expm`, the large-generator path of `manifolds.expm`,
has a gradient that does not compile under XLA),
measured interleaved in one process so the ratios are side by side.

    python benchmarks/layer_speed.py [--repeats 7] [--batches 32 128 512 2048]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_odetoode import layers, manifolds  # noqa: E402

WIDTH, STEP = 128, 0.01
STEPS = round(1 / STEP)


class StraightforwardODEtoODE(keras.layers.Layer):
    """The reference point: a Python loop of `tf.linalg.expm` steps of Eq. 6 interleaved with Eq. 5."""

    def build(self, input_shape):
        d = input_shape[-1]
        self.w0 = self.add_weight(shape=(d, d), initializer=manifolds.HaarStiefel(0))
        normal = keras.initializers.RandomNormal(stddev=d**-0.5, seed=1)
        self.q = self.add_weight(shape=(d, d), initializer=normal)
        self.n = self.add_weight(shape=(d, d), initializer=normal)
        self.b = self.add_weight(shape=(d,), initializer="zeros")

    def call(self, x):
        q, n, w = manifolds.sym(self.q), manifolds.sym(self.n), self.w0
        for _ in range(STEPS):
            a = tf.transpose(w) @ q @ w
            w = w @ tf.linalg.expm(STEP * (a @ n - n @ a))
            x = x + STEP * tf.abs(x @ tf.transpose(w) + self.b)
        return x


def candidates():
    return {
        "DeepResNet": lambda: layers.DeepResNet(STEPS, activation="relu", seed=0),
        "ODEtoODE iso expm (default)": lambda: layers.ODEtoODE(step_size=STEP, seed=0),
        "ODEtoODE iso cayley": lambda: layers.ODEtoODE(step_size=STEP, retraction="cayley", seed=0),
        "ODEtoODE gated expm": lambda: layers.ODEtoODE(flow="gated", step_size=STEP, seed=0),
        "straightforward expm loop": StraightforwardODEtoODE,
    }


def make_step(layer, batch):
    x = tf.random.normal((batch, WIDTH), seed=0)
    layer(x)

    @tf.function(jit_compile=False)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    for _ in range(2):  # trace and warm up
        step(x)
    return lambda: step(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512, 2048])
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, width {WIDTH}, N = {STEPS}")
    names = list(candidates())
    results = {}
    for batch in args.batches:
        steps = {name: make_step(make(), batch) for name, make in candidates().items()}
        times = {name: [] for name in names}
        for _ in range(args.repeats):  # interleaved: each round times every model once
            for name in names:
                start = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - start)
        results[batch] = {name: float(np.median(t)) for name, t in times.items()}

    base = "DeepResNet"
    print("\nforward+backward, median ms per batch (ratio to DeepResNet of the same depth and width)\n")
    print("| model | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|" + "---|" * len(args.batches))
    for name in names:
        cells = [f"{1e3 * results[b][name]:.1f} ms ({results[b][name] / results[b][base]:.2f}×)" for b in args.batches]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nspeed-up over the straightforward expm loop:")
    for name in names[1:-1]:
        ups = [results[b]["straightforward expm loop"] / results[b][name] for b in args.batches]
        print(f"  {name}: " + ", ".join(f"batch {b}: {u:.2f}×" for b, u in zip(args.batches, ups)))
    print("\nextra time over DeepResNet (ms), which should not grow with the batch:")
    for name in names[1:]:
        extra = [1e3 * (results[b][name] - results[b][base]) for b in args.batches]
        print(f"  {name}: " + ", ".join(f"batch {b}: {e:.1f}" for b, e in zip(args.batches, extra)))


if __name__ == "__main__":
    main()
