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


def test_a_schedule_keeps_its_horizon_in_the_command_that_continues():
    assert runs.continue_command("keras-odetoode es --env E --iterations 5", 10, 5) == (
        "keras-odetoode es --env E --lr-decay-iterations 5 --resume --iterations 10"
    )
    given = "keras-odetoode es --env E --lr-decay-iterations=7 --iterations 5"
    assert (
        runs.continue_command(given, 10, 7)
        == "keras-odetoode es --env E --lr-decay-iterations=7 --resume --iterations 10"
    )
    history = [{"reward_centre": r} for r in (1.0, 2.0, 3.0)]
    config = {"lr_schedule": "linear", "lr_decay_iterations": 3, "lr_final": 0.001}
    assert runs.learning_summary(history, "r", "keras-odetoode es --iterations 3", config).endswith(
        "to continue: keras-odetoode es --lr-decay-iterations 3 --resume --iterations 6 "
        "(the linear schedule ends at iteration 3: the learning rate stays at 0.001 after it)"
    )
    ended = dict(config, lr_final=0.0)
    assert runs.learning_summary(history, "r", "keras-odetoode es --iterations 3", ended).endswith(
        "(r/learning_curve.png); the linear schedule has decayed the learning rate to 0: to train longer, start a new "
        "run with more --iterations in another --logdir (--resume would go on at a learning rate of 0)"
    )
    assert "to continue: " in runs.learning_summary(history[:2], "r", "keras-odetoode es --iterations 3", ended)
    constant = {"lr_schedule": "constant", "lr_decay_iterations": None, "lr_final": None}
    assert runs.learning_summary(history, "r", "keras-odetoode es --iterations 3", constant).endswith(
        "to continue: keras-odetoode es --resume --iterations 6"
    )
    assert runs.schedule_horizon(None) is None and runs.schedule_horizon(config) == 3


def test_plateau_gain_compares_the_ends_of_the_last_fifth():
    # 50 iterations: the last fifth is iterations 41-50; its end (46-50) against the 5 before it (36-40).
    rising = [0.0] * 35 + [100.0] * 10 + [110.0] * 5
    assert runs.plateau_gain(rising) == pytest.approx(0.10)
    assert runs.plateau_gain(rising) > runs.PLATEAU_GAIN  # not plateaued: go on
    assert runs.plateau_gain([0.0] * 35 + [100.0] * 10 + [104.0] * 5) == pytest.approx(0.04)
    # A negative return that rises gains relative to its size; one at 0 gains without bound.
    assert runs.plateau_gain([0.0] * 35 + [-200.0] * 10 + [-100.0] * 5) == pytest.approx(0.5)
    assert runs.plateau_gain([1.0] * 35 + [0.0] * 10 + [3.0] * 5) == float("inf")
    assert runs.plateau_gain([0.0] * 50) == 0.0
    # Iterations 17-21 against 12-16 at 21 iterations (the last fifth holds 5); 20 are too few.
    assert runs.plateau_gain([1.0] * 16 + [2.0] * 5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"needs 5 iterations or more there and 5 before it. Received 20 "
                                         r"iterations \(the last 0.2: 4\)"):  # fmt: skip
        runs.plateau_gain([1.0] * 20)


def test_side_by_side_costs_are_medians_per_step_of_each_configurations_iterations_in_turns(monkeypatch):
    import types

    from keras_odetoode.es import trainer

    made, trained = [], []

    class Backend:
        def __init__(self, name, env_fn, policy_fn, workers):
            made.append((name, workers, policy_fn.args, policy_fn.keywords))

        def close(self):
            made.append("closed")

    def fake_train(config, policy_fn, backend, progress):
        trained.append((config.policy, progress))
        # Per round: 9 s (compiling, left out), then 1 s and 3 s for 200 steps; DeepNet takes half as long.
        scale = 0.5 if config.policy == "deepnet" else 1.0
        return types.SimpleNamespace(history=[{"seconds": scale * t, "env_steps": 200} for t in (9.0, 1.0, 3.0)])

    monkeypatch.setattr(runs.backends, "make_backend", Backend)
    monkeypatch.setattr(trainer, "train", fake_train)
    configs = {
        "ode": trainer.ESConfig("Swimmer-v5", policy="odetoode", iterations=3, policy_kwargs={"hidden": 4}),
        "net": trainer.ESConfig("Swimmer-v5", policy="deepnet", iterations=3, policy_kwargs={"hidden": 5}),
    }
    costs = runs.side_by_side_costs(configs, workers=2, rounds=2)
    assert costs == {"ode": 10_000.0, "net": 5_000.0}  # median of 5, 15, 5, 15 ms per 1000 steps
    assert trained == [("odetoode", False), ("deepnet", False)] * 2  # in turns, twice, no progress bar
    swimmer = (8, 2)  # Swimmer-v5: observation and action sizes
    each_round = [
        ("local", 2, ("odetoode", *swimmer), {"hidden": 4}),
        "closed",
        ("local", 2, ("deepnet", *swimmer), {"hidden": 5}),
        "closed",
    ]
    assert made == each_round * 2

    configs["net"] = trainer.ESConfig("Swimmer-v5", policy="deepnet", iterations=1)
    with pytest.raises(ValueError, match=r"Received: iterations=1 for 'net'"):
        runs.side_by_side_costs(configs)
