"""Ray backend: same results as in-process, and a dying actor is replaced mid-iteration."""

import functools
import os
import sys

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from keras_odetoode.es import backends, rollouts, trainer  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import test_es_rollouts as helpers  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    # The helpers live in a test module the actors cannot import: ship them by value.
    ray.cloudpickle.register_pickle_by_value(helpers)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_matches_in_process_and_replaces_a_dead_actor(local_ray, tmp_path):
    marker = str(tmp_path / "crashed")
    env_fn = functools.partial(helpers.make_swimmer_crashing_once, marker, 20)
    config = trainer.ESConfig("Swimmer-v5", perturbations=6, episode_length=20, seed=11)
    policy = rollouts.PopulationPolicy(helpers.small_odetoode())
    strategy = config.strategy(policy.specs)
    state = strategy.init(policy.get_params(), seed=config.seed)
    stats = rollouts.normalization.ObsStats.empty(8)

    with backends.RayBackend(env_fn, helpers.small_odetoode, workers=2, jit_compile=False) as backend:
        new_state, _, result, _ = trainer.es_iteration(strategy, state, stats, backend, config)
        assert backend.restarts == 1 and os.path.exists(marker)
    assert ray.is_initialized()  # the backend did not start Ray, so it leaves it running
    with backends.InProcessBackend(env_fn, helpers.small_odetoode, jit_compile=False) as backend:
        ref_state, _, reference, _ = trainer.es_iteration(strategy, state, stats, backend, config)
    np.testing.assert_array_equal(result.returns, reference.returns)
    np.testing.assert_array_equal(result.lengths, reference.lengths)
    assert np.all(result.lengths == 20)
    for name, value in ref_state.params.items():
        np.testing.assert_array_equal(new_state.params[name], value)
