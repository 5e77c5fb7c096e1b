"""Training-step time of ODEtoODE against DeepResNet, against its arithmetic floor, with and without XLA.

Width 128, N = 100 steps (h = 0.01): forward + backward of each layer on a batch, in one
`tf.function`, timed in interleaved rounds in one process (each round times every model
once) and reported as the median, so the ratios are measured side by side. For each
model it also prints

* its arithmetic floor: the matrix products of its training step (counted from the
  traced graph, in units of one d×d·d×d product) times the measured time of one such
  product, and actual / floor;
* the first training step: tracing, graph optimization and the first call;
* the same step compiled by XLA (`jit_compile=True`), beside the plain one (at batch 128
  unless `--xla-batches` says otherwise: compiling takes a while).

The plain-TF flows are the simplest competing implementation: the isospectral and the
time-gated flow written out in a few lines (degree-8 Taylor exponential in 3 products, no
check, no polar correction), exact only while every step is small. The package's flows must
come close to them while staying exact for any step. The ablation rows profile the
difference: the package's default flows built and traced with a part of that exactness
removed (the once-per-trajectory check; the per-step bound θ and its stand-in; the time
gates' exact batched exponential), at batch 128.

    python benchmarks/layer_speed.py [--rounds 7] [--batches 32 128 512 2048]
    python benchmarks/layer_speed.py --intra-op 1 --inter-op 2 --batches 128   # threading

`--intra-op/--inter-op` set TensorFlow's thread pools for this process only (the package
never changes them).
"""

import argparse
import contextlib
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_odetoode import flows, layers, manifolds  # noqa: E402

WIDTH, STEP = 128, 0.01
STEPS = round(1 / STEP)
GOALS = {  # (model, batch): (what, bound)
    ("ODEtoODE isospectral (default)", 128): ("× DeepResNet", 6.0),
    ("ODEtoODE gated, time gates", 128): ("× DeepResNet", 3.6),
}
FLOOR_GOALS = {"ODEtoODE isospectral (default)": 1.4}
FIRST_STEP_GOAL = 10.0  # seconds, every package flow at N = 100
STRETCH = ("ODEtoODE isospectral (default)", 128, 4.0)


def _taylor8(a):
    """exp(A) to float32 round-off for small A: the degree-8 Taylor polynomial in 3 products."""
    x1, x2, x3, x4, x5, x6, x7, y2 = manifolds.TAYLOR8_COEFFICIENTS
    eye = tf.eye(a.shape[-1], dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ (x1 * a + x2 * a2)
    return eye + a + y2 * a2 + (x3 * a2 + a4) @ (x4 * eye + x5 * a + x6 * a2 + x7 * a4)


class PlainIsospectral(keras.layers.Layer):
    """Eqs. 5–6 with B = [WᵀQW, N], written out: no check of the step size, no polar step."""

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
            an = tf.matmul(w, q @ w, transpose_a=True) @ n
            w = w @ _taylor8(STEP * (an - tf.transpose(an)))
            x = x + STEP * tf.abs(tf.matmul(x, w, transpose_b=True) + self.b)
        return x


class PlainGated(keras.layers.Layer):
    """The time-gated flow written out: all N generators and exponentials batched, then W products."""

    def build(self, input_shape):
        d = input_shape[-1]
        self.w0 = self.add_weight(shape=(d, d), initializer=manifolds.HaarStiefel(0))
        self.kernel = self.add_weight(
            shape=(4, d, d), initializer=keras.initializers.RandomNormal(stddev=(4 * d) ** -0.5, seed=1)
        )
        self.b = self.add_weight(shape=(d,), initializer="zeros")

    def call(self, x):
        t = np.arange(STEPS) * STEP
        phi = tf.constant(np.stack([np.ones_like(t), t, np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], 1), x.dtype)
        f = tf.einsum("nf,fij->nij", phi, self.kernel)
        steps = tf.unstack(_taylor8(STEP * (f - tf.linalg.matrix_transpose(f))))
        w = self.w0
        for e in steps:
            w = w @ e
            x = x + STEP * tf.abs(tf.matmul(x, w, transpose_b=True) + self.b)
        return x


MODELS = {
    "DeepResNet": lambda: layers.DeepResNet(STEPS, activation="relu", seed=0),
    "ODEtoODE isospectral (default)": lambda: layers.ODEtoODE(step_size=STEP, seed=0),
    "ODEtoODE isospectral, Cayley": lambda: layers.ODEtoODE(step_size=STEP, retraction="cayley", seed=0),
    "ODEtoODE gated, time gates": lambda: layers.ODEtoODE(flow="gated", step_size=STEP, seed=0),
    "ODEtoODE gated, state gates": lambda: layers.ODEtoODE(flow="gated", gate_inputs="state", step_size=STEP, seed=0),
    "plain TF isospectral (no check)": PlainIsospectral,
    "plain TF gated (no check)": PlainGated,
}
#: TensorFlow's Padé exponential, the reference: slow, so measured at batch 128 only, without XLA
REFERENCE = {
    "ODEtoODE isospectral, tf.linalg.expm": lambda: layers.ODEtoODE(
        step_size=STEP, retraction="tf.linalg.expm", seed=0
    ),
}


def _isospectral():
    return layers.ODEtoODE(step_size=STEP, seed=0)


def _no_check(fast, exceeded, exact):
    return fast


def _bare_taylor_expm(a):
    return _taylor8(a), tf.zeros(a.shape[:-2], a.dtype)


#: where the package's time goes beyond the plain flows: the default flows with a part of
#: their exactness removed while they are built and traced (batch 128, without XLA)
ABLATIONS = {
    "ODEtoODE isospectral, no check (fast path alone)": _isospectral,
    "ODEtoODE isospectral, no check, bare polynomial (no θ)": _isospectral,
    "ODEtoODE gated, time gates, bare polynomial": lambda: layers.ODEtoODE(flow="gated", step_size=STEP, seed=0),
}
PATCHES = {
    "ODEtoODE isospectral, no check (fast path alone)": {(flows, "_exact_where_needed"): _no_check},
    "ODEtoODE isospectral, no check, bare polynomial (no θ)": {
        (flows, "_exact_where_needed"): _no_check,
        (manifolds, "taylor_expm"): _bare_taylor_expm,
    },
    "ODEtoODE gated, time gates, bare polynomial": {(manifolds, "exponential_map"): lambda retraction: _taylor8},
}
#: measured at batch 128 only, without XLA
SINGLE_BATCH = {**REFERENCE, **ABLATIONS}


@contextlib.contextmanager
def patched(replacements):
    """Module attributes replaced for the duration of the block."""
    saved = {key: getattr(*key) for key in replacements}
    try:
        for (module, name), value in replacements.items():
            setattr(module, name, value)
        yield
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)


def make_step(layer, batch, jit_compile):
    """A compiled training step of `layer` on a batch, its first call's time and its products."""
    x = tf.random.normal((batch, WIDTH), seed=0)
    layer(x)

    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    start = time.perf_counter()
    step(x)[0].numpy()
    first = time.perf_counter() - start
    step(x)[0].numpy()  # warm
    products = None if jit_compile else count_products(step.get_concrete_function(x).graph)
    return (lambda: step(x)[0].numpy()), first, products


def count_products(graph):
    """Matrix products a graph runs, in units of WIDTH³ multiply-adds.

    Its top level plus, for each `While`, its body times its iterations (the flows run
    their steps in a loop over chunks). Not counted: the branches of an `If` (the exact
    path, not taken here) and the loops of `manifolds.expm` named "squarings", which run no
    iteration on the flows' small steps.
    """
    return _multiply_adds(graph) / WIDTH**3


def _multiply_adds(graph):
    total = 0
    for op in graph.get_operations():
        if op.type in ("While", "StatelessWhile") and "squarings" not in op.name:
            iterations = tf.get_static_value(op.inputs[1])  # while_v2's maximum_iterations
            if iterations is None:
                raise ValueError(f"{op.name}: unknown number of iterations, cannot count its products")
            body = graph._functions[op.get_attr("body").name].graph  # no public route to a loop's body
            total += int(iterations) * _multiply_adds(body)
            continue
        if op.type not in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
            continue
        a, out = op.inputs[0].shape, op.outputs[0].shape
        if not (a.is_fully_defined() and out.is_fully_defined()):
            raise ValueError(f"{op.name}: unknown shape, cannot count it")
        adjoint = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
        inner = a[-2] if adjoint else a[-1]
        total += int(np.prod(out.as_list())) * inner
    return total


def time_of_one_product(rounds, chain=200):
    """Median time of one WIDTH×WIDTH by WIDTH×WIDTH product, from a dependent chain in one function."""
    a = tf.constant(manifolds.random_stiefel((WIDTH, WIDTH), seed=0))

    @tf.function
    def products(w):
        for _ in range(chain):
            w = w @ a
        return w

    products(a).numpy()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        products(a).numpy()
        times.append((time.perf_counter() - start) / chain)
    return statistics.median(times)


def measure(models, batches, rounds, xla_batches):
    """{(model, batch, jit): median seconds}, first calls and products, timed in interleaved rounds."""
    medians, first, products = {}, {}, {}
    for batch in batches:
        steps = {}
        for name, make in models.items():
            if name in SINGLE_BATCH and batch != 128:
                continue
            for jit in (False, True) if batch in xla_batches and name not in SINGLE_BATCH else (False,):
                with patched(PATCHES.get(name, {})):
                    steps[name, jit], first[name, batch, jit], count = make_step(make(), batch, jit)
                if count is not None:
                    products[name, batch] = count
        times = {key: [] for key in steps}
        for _ in range(rounds):
            for key, run in steps.items():
                start = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - start)
        for (name, jit), t in times.items():
            medians[name, batch, jit] = statistics.median(t)
        print(f"  batch {batch}: measured {len(steps)} steps x {rounds} rounds", flush=True)
    return medians, first, products


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per batch (median)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512, 2048])
    parser.add_argument("--xla-batches", type=int, nargs="*", default=[128], help="batches with an XLA column")
    parser.add_argument("--no-reference", action="store_true", help="skip the tf.linalg.expm flow")
    parser.add_argument("--no-ablations", action="store_true", help="skip the rows that profile the package's gap")
    parser.add_argument("--intra-op", type=int, help="TensorFlow intra-op threads, for this run")
    parser.add_argument("--inter-op", type=int, help="TensorFlow inter-op threads, for this run")
    args = parser.parse_args()
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    threads = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, threads intra/inter = {threads} (0: TF's default), "
        f"width {WIDTH}, N = {STEPS}, h = {STEP}, float32"
    )
    models = {**MODELS, **({} if args.no_reference else REFERENCE), **({} if args.no_ablations else ABLATIONS)}
    product = time_of_one_product(max(args.rounds, 5))
    medians, first, products = measure(models, args.batches, args.rounds, args.xla_batches)
    product = statistics.median([product, time_of_one_product(max(args.rounds, 5))])  # before and after
    print(f"\none {WIDTH}×{WIDTH}·{WIDTH}×{WIDTH} product: {1e6 * product:.1f} µs (median, dependent chain)\n")

    base = "DeepResNet"
    print("forward + backward per batch: median ms (× DeepResNet), plain | XLA\n")
    print("| model | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|" + "---|" * len(args.batches))
    for name in models:
        cells = []
        for b in args.batches:
            if (name, b, False) not in medians:
                cells.append("–")
                continue
            plain = medians[name, b, False]
            cell = f"{1e3 * plain:.1f} ({plain / medians[base, b, False]:.2f}×)"
            if (name, b, True) in medians:
                xla = medians[name, b, True]
                cell += f" \\| {1e3 * xla:.1f} ({xla / medians[base, b, False]:.2f}×)"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\narithmetic floor: products per training step (units of one 128³ product) × its time; actual / floor\n")
    print("| model | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|" + "---|" * len(args.batches))
    for name in models:
        cells = []
        for b in args.batches:
            if (name, b) not in products:
                cells.append("–")
                continue
            floor = products[name, b] * product
            cells.append(f"{products[name, b]:.0f} → {1e3 * floor:.1f} ms, {medians[name, b, False] / floor:.2f}×")
        print(f"| {name} | " + " | ".join(cells) + " |")

    if 128 in args.batches:
        print("\nfirst training step at batch 128 (trace + graph optimization + first call), s: plain | XLA\n")
        for name in models:
            xla = first.get((name, 128, True))
            print(f"  {name}: {first[name, 128, False]:.1f}" + (f" | {xla:.1f}" if xla is not None else ""))

        print("\ngoals:")
        for (name, b), (unit, bound) in GOALS.items():
            ratio = medians[name, b, False] / medians[base, b, False]
            print(f"  {name}, batch {b}: {ratio:.2f}{unit} ≤ {bound}: {_verdict(ratio, bound)}")
        for name, bound in FLOOR_GOALS.items():
            ratio = medians[name, 128, False] / (products[name, 128] * product)
            print(f"  {name}, batch 128: {ratio:.2f}× its floor ≤ {bound}: {_verdict(ratio, bound)}")
        for name in models:
            if name.startswith("ODEtoODE") and name not in SINGLE_BATCH:
                seconds = first[name, 128, False]
                print(
                    f"  first step, {name}: {seconds:.1f} s ≤ {FIRST_STEP_GOAL}: {_verdict(seconds, FIRST_STEP_GOAL)}"
                )
        name, b, bound = STRETCH
        ratio = medians[name, b, False] / medians[base, b, False]
        print(f"  stretch, {name}, batch {b}, threads {threads}: {ratio:.2f}× ≤ {bound}: {_verdict(ratio, bound)}")


def _verdict(value, bound):
    return "met" if value <= bound else f"missed by {value / bound:.2f}×"


if __name__ == "__main__":
    main()
