"""`benchmarks/mnistc_collapse.py` records what each optimizer step did, step by step."""

import pathlib

import numpy as np

from keras_odetoode import models

DIGITS = pathlib.Path(__file__).parent / "data" / "mnist-600.npz"


def _digits(count):
    with np.load(DIGITS) as data:
        images, labels = data["images"][:count], data["labels"][:count]
    return (images.reshape(count, -1) / 255.0).astype("float32"), labels.astype("int64")


def test_recorded_batches_add_up_to_the_epoch_and_the_steps_to_the_moves(load_benchmark):
    collapse = load_benchmark("mnistc_collapse")
    x, y = _digits(160)
    model = models.compile_classifier(
        models.build_classifier("odetoode-1", width=8, dropout=0.1, step_size=0.25, seed=0), 1e-2, amsgrad=True
    )
    start = {v.path: v.numpy() for v in model.trainable_variables}
    recorder = collapse.StepRecorder([64, 64, 32])
    history = model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0, callbacks=[recorder])

    # 160 digits in batches of 64: 64, 64, 32. Keras weighs its running mean by batch size,
    # so the epoch's loss is the size-weighted mean of the recorded batch losses.
    assert len(recorder.batches) == 6 and [e["epoch"] for e in recorder.epochs] == [1, 2]
    sizes = np.array([64, 64, 32])
    for epoch in range(2):
        losses = np.array([b["loss"] for b in recorder.batches[3 * epoch : 3 * epoch + 3]])
        np.testing.assert_allclose(losses @ sizes / sizes.sum(), history.history["loss"][epoch], rtol=1e-5)
        assert recorder.epochs[epoch]["max_batch_loss"] == losses.max()

    # The steps' sizes: each no smaller than what is left of the total move by the triangle
    # inequality, and their sum at least the distance travelled; the last norm is the weight's.
    for variable in model.trainable_variables:
        steps = [b["step"][variable.path] for b in recorder.batches]
        moved = np.linalg.norm(variable.numpy() - start[variable.path])
        assert min(steps) > 0 and sum(steps) >= moved * (1 - 1e-6)
        assert recorder.batches[-1]["norm"][variable.path] == np.linalg.norm(variable.numpy())

    # W_0 stays on O(8) after every step; v is the optimizer's scalar second moment of W_0,
    # the only manifold weight here.
    w0 = "block/flow/w0"
    assert [list(b["v"]) for b in recorder.batches] == [[w0]] * 6
    assert max(b["orthogonality_error"][w0] for b in recorder.batches) < 1e-5
    optimizer = model.optimizer
    velocity = optimizer._velocities[optimizer._get_variable_index(model.get_layer("block").flow.w0)].numpy()
    np.testing.assert_array_equal(velocity, recorder.batches[-1]["v"][w0])
