"""One implementation of the argument checks, with the strict behaviour everywhere."""

import numpy as np
import pytest

from keras_odetoode import checks, errors, export
from keras_odetoode.es import backends, checkpoint, policies, strategy, trainer


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(2)])
def test_integers_are_accepted_as_python_ints(value):
    result = checks.check_integer("n", value, 1)
    assert result == value and type(result) is int


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, 0])
def test_check_integer_refuses_bools_floats_strings_and_too_small(value):
    with pytest.raises(ValueError, match=rf"^n must be an integer ≥ 1\. Received: n={value!r}$"):
        checks.check_integer("n", value, 1)


def test_check_integer_none_when_allowed():
    assert checks.check_integer("n", None, 1, allow_none=True) is None
    with pytest.raises(ValueError, match=r"^n must be an integer ≥ 1 or None\. Received: n=True$"):
        checks.check_integer("n", True, 1, allow_none=True)


def test_check_choice_real_positive_and_range():
    assert checks.check_choice("solver", "rk4", ("euler", "rk4")) == "rk4"
    with pytest.raises(ValueError, match=r"^Unknown solver\. Expected one of \('euler', 'rk4'\)\. Received: solver=1$"):
        checks.check_choice("solver", 1, ("euler", "rk4"))
    with pytest.raises(ValueError, match=r"^h must be a real number\. Received: h=True$"):
        checks.check_real("h", True)
    assert checks.check_positive("sigma", np.float32(0.5)) == 0.5
    for value, reason in ((0.0, "> 0"), (-1, "> 0"), (float("inf"), "finite")):
        with pytest.raises(ValueError, match=rf"^sigma must be {reason}\. Received: sigma="):
            checks.check_positive("sigma", value)
    with pytest.raises(ValueError, match=r"^p must be a number ≥ 0 and < 1\. Received: p=1$"):
        checks.check_range("p", 1, 0, 1, include_maximum=False)


def test_input_errors_share_one_base_class():
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(checkpoint.CheckpointError, errors.InputError)
    assert issubclass(export.InvalidSavedModelError, errors.InputError)


# Counts all over the package: True is refused as by every other integer check.
@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: policies.build_policy("odetoode", 8, 2, hidden=True), "hidden"),
        (lambda: policies.build_policy("odetoode", True, 2), "obs_dim"),
        (lambda: backends.ProcessBackend(None, None, workers=True), "workers"),
        (lambda: trainer.ESConfig("Swimmer-v5", iterations=True), "iterations"),
    ],
)
def test_true_is_not_an_integer_anywhere(call, argument):
    with pytest.raises(ValueError, match=rf"^{argument} must be an integer ≥ 1\. Received: {argument}=True$"):
        call()


def test_riemannian_es_checks_with_the_shared_checks():
    specs = strategy.specs_from_variables({"w": np.zeros((2, 2), np.float32)})
    with pytest.raises(
        ValueError, match=r"num_perturbations must be an integer ≥ 2\. Received: num_perturbations=True"
    ):
        strategy.RiemannianES(specs, num_perturbations=True)
    with pytest.raises(ValueError, match=r"sigma must be > 0\. Received: sigma=0"):
        strategy.RiemannianES(specs, num_perturbations=4, sigma=0)
    with pytest.raises(ValueError, match=r"Unknown optimizer\. Expected one of \('sgd', 'adam'\)"):
        strategy.RiemannianES(specs, num_perturbations=4, optimizer="rmsprop")
