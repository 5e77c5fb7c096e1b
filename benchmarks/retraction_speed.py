"""Riemannian step on tall Stiefel matrices: the 2p×2p route of `manifolds.retract` against the n×n one.

Not a test. For each shape, times one `manifolds.retract` (polar correction
included) as the package takes it (tall W with n > 2p: `_rotate_low_rank`,
a 2p×2p exponential or Cayley map) against the same step through the n×n
generator A = G Wᵀ − W Gᵀ, both in one `tf.function`, interleaved, median of
`--repeats`, at each of `--step-sizes` with a unit-RMS direction G (1e-3 is
what `RiemannianAdam`'s default learning rate takes: its direction has unit
RMS). Also checks that the two agree. The shapes are Ω₁ of the MNIST
classifiers (784×128, Table 1; 784×256, Table 2), Ω₁ of a Humanoid policy
(348×64), and a square W₀ (128×128), which has no low-rank route.

    python benchmarks/retraction_speed.py [--repeats 9] [--step-sizes 1e-3 1e-2]
"""

import argparse
import itertools
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_odetoode import manifolds  # noqa: E402

SHAPES = [(784, 128), (784, 256), (348, 64), (128, 128)]


def n_by_n_step(w, g, step_size, retraction):
    """The step through the n×n rotation R(−η A), A = G Wᵀ − W Gᵀ."""
    exp = manifolds.exponential_map(retraction)
    return manifolds.polar_correction(tf.matmul(exp(-step_size * manifolds.skew_generator(w, g)), w))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--step-sizes", type=float, nargs="+", default=[1e-3, 1e-2])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, float32\n")
    print("| W (n × p) | retraction | step size | n×n route | package (`retract`) | speed-up | max difference |")
    print("|---|---|---|---|---|---|---|")
    for shape, retraction, eta in itertools.product(SHAPES, manifolds.RETRACTIONS, args.step_sizes):
        w = tf.constant(manifolds.random_stiefel(shape, seed=0))
        g = tf.constant(rng.standard_normal(shape), tf.float32)
        steps = {
            "n×n": tf.function(lambda w, g, r=retraction, eta=eta: n_by_n_step(w, g, eta, r)),
            "package": tf.function(lambda w, g, r=retraction, eta=eta: manifolds.retract(w, g, eta, r)),
        }
        outputs = {name: step(w, g).numpy() for name, step in steps.items()}  # trace, warm up
        times = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step(w, g).numpy()
                times[name].append(time.perf_counter() - start)
        full, package = (float(np.median(times[name])) for name in steps)
        difference = float(np.max(np.abs(outputs["n×n"] - outputs["package"])))
        print(
            f"| {shape[0]} × {shape[1]} | {retraction} | {eta:g} | {1e3 * full:.2f} ms | {1e3 * package:.2f} ms | "
            f"{full / package:.1f}× | {difference:.1e} |"
        )


if __name__ == "__main__":
    main()
