"""The plain-numpy reference policy of `benchmarks/es_overhead.py` computes the Keras policy."""

import functools

from keras_odetoode.es import envs, policies, trainer


def test_numpy_policy_matches_keras_on_es_members(load_benchmark):
    es_overhead = load_benchmark("es_overhead")
    info = envs.env_info("Swimmer-v5")
    policy_fn = functools.partial(policies.build_policy, "odetoode", info.obs_dim, info.act_dim, hidden=4, seed=0)
    config = trainer.ESConfig("Swimmer-v5", perturbations=4, episode_length=10, seed=0)
    members, seeds = es_overhead.es_members(config, policy_fn)
    assert len(members) == len(seeds) == 5  # k perturbations + the centre
    # a perturbed member (W₀ off O(d): the polar corrections matter) and the centre
    es_overhead.check_numpy_policy(policy_fn, [members[0], members[-1]])
