"""Train the zoo's ODEtoODE-1 digit classifier on real MNIST digits (offline).

    python saved_models/train_digits_classifier.py --mnist ../shared/data/mnist-10k.npz \\
        --epochs 10 --out /tmp/odetoode1_digits

Digits [0, 8000) train, [8000, 10000) are held out (saved beside the model as
`heldout.npz` for scoring). Model: `models.build_classifier("odetoode-1")` (width 128,
h = 0.01), RiemannianAdam(1e-3), batch 128, seed 0.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_odetoode import models  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, help="npz with images (n, 28, 28) uint8 and labels")
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    data = np.load(args.mnist)
    images, labels = data["images"], data["labels"].astype("int64")
    x = images.reshape(len(images), -1).astype("float32") / 255.0
    n = args.train_size
    model = models.build_classifier("odetoode-1", width=128, step_size=0.01, seed=0)
    models.compile_classifier(model, learning_rate=1e-3)
    model.fit(x[:n], labels[:n], validation_data=(x[n:], labels[n:]), epochs=args.epochs, batch_size=128, verbose=2)
    os.makedirs(args.out, exist_ok=True)
    model.save(os.path.join(args.out, "model.keras"))
    np.savez_compressed(os.path.join(args.out, "heldout.npz"), images=images[n:], labels=data["labels"][n:])
    print("held-out accuracy:", model.evaluate(x[n:], labels[n:], verbose=0)[1])


if __name__ == "__main__":
    main()
