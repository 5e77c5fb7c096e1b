"""The end of an ES run: the learning summary and the command that continues it."""

import pytest

from keras_odetoode.es import runs


def test_the_learning_summary_gives_the_start_the_end_and_the_command_that_continues():
    history = [{"reward_centre": r} for r in (-3.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)]
    line = runs.learning_summary(history, "runs/s", "keras-odetoode es --env Swimmer-v5 --iterations 7 --logdir runs/s")
    assert line == (
        "Centre reward -3.0 at iteration 1, 40.0 over the last 5 iterations (runs/s/learning_curve.png); "
        "to continue: keras-odetoode es --env Swimmer-v5 --logdir runs/s --resume --iterations 14"
    )
    assert runs.learning_summary(history[:1], "r").endswith("-3.0 over the last 1 iteration (r/learning_curve.png).")


@pytest.mark.parametrize(
    "command, expected",
    [
        ("keras-odetoode es --env E --iterations=50", "keras-odetoode es --env E --resume --iterations 8"),
        ("keras-odetoode es --resume --env E", "keras-odetoode es --env E --resume --iterations 8"),
        ("keras-odetoode es --resume runs/c/ckpt-3 --env E", "keras-odetoode es --env E --resume --iterations 8"),
        ("keras-odetoode es --logdir 'a b' --iterations 4", "keras-odetoode es --logdir 'a b' --resume --iterations 8"),
    ],
)
def test_continue_command_replaces_iterations_and_resume(command, expected):
    assert runs.continue_command(command, 8) == expected
