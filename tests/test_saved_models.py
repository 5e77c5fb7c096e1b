"""Every model in saved_models/ loads and reproduces the score its card states."""

import json
import os

import numpy as np
import pytest

from keras_odetoode.export import load_serving

ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")
ENTRIES = sorted(d for d in os.listdir(ZOO) if os.path.isfile(os.path.join(ZOO, d, "card.json")))
REQUIRED = {"swimmer_odetoode", "halfcheetah_odetoode", "hopper_odetoode", "cheetah_run_odetoode", "mnist_odetoode1"}
POLICIES = [name for name in ENTRIES if name != "mnist_odetoode1"]


def _card(name):
    with open(os.path.join(ZOO, name, "card.json")) as f:
        return json.load(f)


def test_the_zoo_has_the_promised_models_and_stays_small():
    assert REQUIRED <= set(ENTRIES)
    total = 0
    for name in ENTRIES:
        card = _card(name)
        readme = open(os.path.join(ZOO, name, "README.md")).read()
        assert f"{card['score']['mean']:.2f}" in readme and card["train_command"] in readme
        on_disk = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(os.path.join(ZOO, name)) for f in files
        )
        assert on_disk < 1.1 * card["size_bytes"]  # the card's size is the export's; the card files add a little
        total += on_disk
    assert total < 10e6


@pytest.mark.parametrize("name", ENTRIES)
def test_the_card_names_the_signature_the_export_serves(name):
    card = _card(name)
    with open(os.path.join(ZOO, name, "metadata.json")) as f:
        metadata = json.load(f)
    (inp,), (out,) = metadata["inputs"], metadata["outputs"]
    assert card["signature"] == {
        "key": "serving_default",
        "input": {"name": inp["name"], "shape": inp["shape"], "dtype": "float32"},
        "output": {"name": out["name"], "shape": out["shape"], "dtype": "float32"},
    }
    readme = open(os.path.join(ZOO, name, "README.md")).read()
    assert f"| signature | `serving_default`: `{inp['name']}` " in readme
    assert f'signatures["serving_default"]({inp["name"]}=x)["{out["name"]}"]' in readme


def test_the_classifier_serves_pixels_to_logits_and_names_them_on_a_wrong_keyword():
    path = os.path.join(ZOO, "mnist_odetoode1")
    assert _card("mnist_odetoode1")["signature"]["input"]["name"] == "pixels"
    serving = load_serving(path)
    assert (serving.input_name, serving.output_name) == ("pixels", "logits")
    x = np.zeros((2, 784), np.float32)
    np.testing.assert_array_equal(serving(pixels=x), serving(x))
    with pytest.raises(ValueError) as error:
        serving(image=x)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"{path!r} serves one input named 'pixels' (pixels → logits). Received: image. "
        "Expected: serving(x) or serving(pixels=x)"
    )


@pytest.mark.parametrize("name", ENTRIES)
def test_card_score_is_reproduced(name):
    card = _card(name)
    path = os.path.join(ZOO, name)
    if card["kind"] == "policy":
        from keras_odetoode.es import evaluate_policy

        recorded = np.array(card["score"]["per_episode"])
        assert (card["score"]["mean"], card["score"]["std"]) == pytest.approx((recorded.mean(), recorded.std()))
        # The card's episodes again. MuJoCo rollouts are chaotic: rounding that differs between
        # CPUs (with and without AVX2, say) grows over 1000 steps into other trajectories, so
        # another machine reproduces the returns in distribution, not one by one. Welch's
        # statistic of the two samples' means: |z| < 4. A policy scoring one card std lower
        # gives |z| ≈ 2.2; policies after one ES iteration gave z = −37 (Swimmer) and −18 (HalfCheetah).
        returns = evaluate_policy(path, episodes=len(recorded), seed=card["score"]["seed"])
        z = (returns.mean() - recorded.mean()) / np.sqrt((returns.var(ddof=1) + recorded.var(ddof=1)) / len(recorded))
        assert abs(z) < 4, (returns, recorded)
    else:
        digits = np.load(os.path.join(path, "eval_digits.npz"))
        x = digits["images"].reshape(len(digits["images"]), -1).astype("float32") / 255.0
        predictions = load_serving(path)(x).argmax(1)
        accuracy = 100 * np.mean(predictions == digits["labels"])
        assert accuracy == pytest.approx(card["score"]["mean"], abs=1e-9)
        # The export's own metadata carries the same score (`export.record_result`).
        assert load_serving(path).metadata["result"] == {"accuracy": pytest.approx(accuracy / 100, abs=1e-12)}


@pytest.mark.parametrize("name", [n for n in ENTRIES if _card(n)["kind"] == "policy"])
def test_policy_serves_the_actions_its_card_probed(name):
    """The function itself, which, unlike an episode's return, agrees to float32 rounding on any CPU."""
    probe = _card(name)["probe"]
    observations = np.array(probe["observations"], np.float32)
    assert len(observations) >= 8 and observations.std(axis=0).min() > 0  # distinct states, every coordinate varies
    actions = np.asarray(load_serving(os.path.join(ZOO, name))(observations))
    np.testing.assert_allclose(actions, probe["actions"], rtol=1e-4, atol=1e-4)
    assert np.ptp(actions, axis=0).min() > 0.1  # the policy responds to its input: the check can fail


@pytest.mark.parametrize("name", POLICIES)
def test_a_policy_was_trained_to_a_plateau_or_300_iterations_by_the_run_committed_beside_it(name):
    """Each policy's run is committed (`progress.csv` and its last checkpoint) where its card's
    commands put it, and the card's account of the training is that run's: iterations, steps,
    the gain over the last fifth, the best centre iteration; trained for at least 300 iterations
    or until the gain was at most 5 %."""
    import csv
    import shlex

    from keras_odetoode.es import checkpoint, runs

    card = _card(name)
    root = os.path.dirname(ZOO)
    commands = [shlex.split(line) for line in card["train_command"].splitlines()]
    [logdir] = {command[command.index("--logdir") + 1] for command in commands}
    assert not os.path.isabs(logdir)  # run from a clone's root
    with open(os.path.join(root, logdir, "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    rewards = [float(row["reward_centre"]) for row in rows]
    training = card["training"]
    assert training["iterations"] == len(rows) == int(commands[-1][commands[-1].index("--iterations") + 1])
    assert training["env_steps"] == int(rows[-1]["total_env_steps"])
    assert training["gain_over_last_fifth"] == pytest.approx(runs.plateau_gain(rewards))
    assert len(rows) >= 300 or training["gain_over_last_fifth"] <= runs.PLATEAU_GAIN
    assert rewards[training["best_iteration"] - 1] == max(rewards)
    # `--resume` in the card's continue command finds the run's last iteration.
    latest = checkpoint.load_latest(os.path.join(root, logdir, "checkpoints"))
    assert len(latest.history) == len(rows)
    assert card["training"]["continue_command"].startswith(" ".join(commands[0][:4]))
    goal = card.get("goal")
    if goal is not None:
        assert goal["reached"] == (card["score"]["mean"] >= goal["return"])
    assert card["signature"]["input"]["name"] == "observation" and card["signature"]["output"]["name"] == "action"
