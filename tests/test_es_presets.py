"""ES presets: the paper's settings by name; explicit options override them; runs record them."""

import numpy as np
import pytest

from keras_odetoode.es import presets, trainer
from keras_odetoode.es import strategy as es


def test_the_paper_preset_is_the_strategys_defaults_and_section_5_1_1():
    paper = presets.PRESETS["paper"]
    assert set(paper) == set(presets.PRESET_OPTIONS)
    assert (paper["perturbations"], paper["sigma"], paper["learning_rate"]) == (200, 0.1, 0.01)
    strategy = es.RiemannianES((es.ParamSpec("x", (2,)),))
    defaults = {**strategy.get_config(), "perturbations": strategy.num_perturbations}
    assert {name: defaults[name] for name in presets.PRESET_OPTIONS} == paper
    config = trainer.ESConfig("Swimmer-v5")
    assert config.preset == presets.DEFAULT_PRESET == "paper"
    assert {name: getattr(config, name) for name in presets.PRESET_OPTIONS} == paper


def test_every_preset_sets_every_option_with_values_the_strategy_accepts():
    for name, options in presets.PRESETS.items():
        assert set(options) == set(presets.PRESET_OPTIONS), name
        trainer.ESConfig("Swimmer-v5", preset=name).strategy((es.ParamSpec("x", (2,)),))


def test_the_k50_cosine_preset_is_the_papers_but_k_50_and_lr_0_02_decayed_to_0_over_the_iterations():
    differ = {
        name: value for name, value in presets.PRESETS["k50-cosine"].items() if value != presets.PRESETS["paper"][name]
    }
    assert differ == {"perturbations": 50, "learning_rate": 0.02, "lr_schedule": "cosine"}
    assert presets.PRESETS["k50-cosine"]["lr_final"] == 0.0
    strategy = trainer.ESConfig("Swimmer-v5", preset="k50-cosine", iterations=99).strategy((es.ParamSpec("x", (2,)),))
    rates = [
        es.scheduled_learning_rate(strategy.lr_schedule, t, strategy.learning_rate, 0.0, 99) for t in (0, 49.5, 99, 150)
    ]
    np.testing.assert_allclose(rates, [0.02, 0.01, 0.0, 0.0], atol=1e-12)


def test_explicit_options_override_the_preset_and_the_run_records_both(monkeypatch):
    monkeypatch.setitem(
        presets.PRESETS,
        "small",
        {**presets.PRESETS["paper"], "perturbations": 16, "top_directions": 4, "optimizer": "adam"},
    )
    config = trainer.ESConfig("Swimmer-v5", preset="small", perturbations=32, sigma=0.05)
    recorded = config.to_dict()
    assert recorded["preset"] == "small"
    assert (recorded["perturbations"], recorded["sigma"], recorded["top_directions"]) == (32, 0.05, 4)
    assert (recorded["optimizer"], recorded["learning_rate"]) == ("adam", 0.01)
    assert trainer.ESConfig(**recorded) == config  # the record rebuilds the configuration
    assert presets.resolve("paper", perturbations=None, sigma=0.3)["perturbations"] == 200


def test_a_schedule_decays_over_the_iterations_unless_given():
    assert trainer.ESConfig("Swimmer-v5", iterations=40, lr_schedule="linear").lr_decay_iterations == 40
    assert (
        trainer.ESConfig("Swimmer-v5", iterations=40, lr_schedule="cosine", lr_decay_iterations=7).lr_decay_iterations
        == 7
    )
    assert trainer.ESConfig("Swimmer-v5", iterations=40).lr_decay_iterations is None


def test_unknown_presets_and_options_are_refused():
    with pytest.raises(
        ValueError, match=r"^Unknown preset\. Expected one of \('paper', 'k50-cosine'\)\. Received: preset='ars'$"
    ):
        trainer.ESConfig("Swimmer-v5", preset="ars")
    with pytest.raises(ValueError, match=r"Unknown preset options\..*Received: \['hidden'\]"):
        presets.resolve("paper", hidden=3)
    with pytest.raises(ValueError, match=r"max_env_steps must be an integer ≥ 1 or None\. Received: max_env_steps=0"):
        trainer.ESConfig("Swimmer-v5", max_env_steps=0)
