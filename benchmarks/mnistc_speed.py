"""MNIST-C speed: corruption generation (images/s) and the input pipeline (examples/s).

Not a test. Times each of the 16 corruptions on `--num-images` digits (the
issue's figure: 10,000 images x 15 corruptions + identity), then one epoch of
`load_mnist_corrupted(..., source="local")` over a layout written from the same
digits, shuffled (train) and in order (test).

    python benchmarks/mnistc_speed.py --mnist mnist-10k.npz

Without `--mnist`, the 600 test digits are tiled up to `--num-images`.
"""

import argparse
import os
import pathlib
import tempfile
import time

import numpy as np

from keras_odetoode.data import CORRUPTIONS
from keras_odetoode.data import load_mnist_corrupted
from keras_odetoode.data import make_mnist_c

TEST_DIGITS = pathlib.Path(__file__).parents[1] / "tests" / "data" / "mnist-600.npz"


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


def pipeline_rate(root, split, batch_size, epochs):
    dataset = load_mnist_corrupted(
        "identity", split, batch_size=batch_size, source="local", data_dir=root
    )
    for _ in dataset:  # warm-up epoch: builds the pipeline, fills the shuffle buffer
        pass
    count = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for images, _ in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=pathlib.Path, default=TEST_DIGITS)
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    images, labels = load_digits(args.mnist, args.num_images)
    print(f"{len(images)} digits from {args.mnist}; {os.cpu_count()} CPU cores visible")
    print(f"\n{'corruption':<14} {'seconds':>8} {'images/s':>10}")
    total = 0.0
    for name, corruption in CORRUPTIONS.items():
        seconds = best_time(lambda: corruption(images, seed=0), args.repeats)
        total += seconds
        print(f"{name:<14} {seconds:8.2f} {len(images) / seconds:10.0f}")
    print(f"{'all 16':<14} {total:8.2f} {16 * len(images) / total:10.0f}")
    full = 16 * 70_000 * total / (16 * len(images))
    print(f"(a full 16-config MNIST-C, 70,000 digits each: about {full / 60:.1f} min)")

    with tempfile.TemporaryDirectory() as root:
        split = len(images) * 6 // 7
        make_mnist_c(
            (images[:split], labels[:split]),
            (images[split:], labels[split:]),
            root,
            corruptions=["identity"],
            progress=False,
        )
        print(f"\n{'input pipeline':<26} {'examples/s':>10}")
        for name in ("train", "test"):
            rate = pipeline_rate(root, name, args.batch_size, args.epochs)
            order = "shuffled" if name == "train" else "in order"
            label = f"{name} ({order}), batch {args.batch_size}"
            print(f"{label:<26} {rate:10.0f}")


if __name__ == "__main__":
    main()
