"""Batched rollouts, environments and local backends of the ES engine."""

import functools
import os
import signal

os.environ.setdefault("MUJOCO_GL", "disable")

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from keras_odetoode.es import backends, envs, policies, rollouts, trainer
from keras_odetoode.es import strategy as es
from keras_odetoode.es.normalization import ObsStats


class ScriptedEnv(gymnasium.Env):
    """Reward = action[0] (after clipping); episode of 1 + seed % 5 steps; NaN reward
    at step 2 when seed % 7 == 3. Observations (t, a₀, a₁)."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.limit, self.poison, self.t = 1 + seed % 5, seed % 7 == 3, 0
        return np.zeros(3), {}

    def step(self, action):
        assert np.all(np.abs(action) <= 1.0), "actions must arrive clipped"
        self.t += 1
        reward = float("nan") if self.poison and self.t == 2 else float(action[0])
        return np.array([self.t, action[0], action[1]], np.float64), reward, self.t >= self.limit, False, {}


def make_scripted(max_episode_steps=3):
    return gymnasium.wrappers.TimeLimit(ScriptedEnv(), max_episode_steps)


class CrashOnceWrapper(gymnasium.Wrapper):
    """Kills its process at step 5 — once: the first process to create `marker` dies."""

    def __init__(self, env, marker):
        super().__init__(env)
        self.marker, self.t = marker, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        self.t += 1
        if self.t == 5:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
                os._exit(3)
            except FileExistsError:
                pass
        return self.env.step(action)


def make_swimmer_crashing_once(marker, max_episode_steps=30):
    return CrashOnceWrapper(envs.make_env("Swimmer-v5", max_episode_steps), marker)


small_odetoode = functools.partial(policies.build_policy, "odetoode", 8, 2, hidden=6, seed=0)
scripted_policy = functools.partial(policies.build_policy, "odetoode", 3, 2, hidden=4, seed=1)


def member(population, m):
    return {k: v[m] for k, v in population.items()}


POLICY_VARIANTS = [(name, {}) for name in policies.POLICIES] + [
    ("odetoode", {"flow": "gated", "num_gates": 2}),
    ("odetoode", {"flow": "gated", "num_gates": 2, "gate_inputs": "state"}),
]


@pytest.mark.parametrize(
    "name, options",
    POLICY_VARIANTS,
    ids=["-".join([name, *map(str, options.values())]) for name, options in POLICY_VARIANTS],
)
def test_batched_policy_equals_each_members_keras_model(name, options):
    model = policies.build_policy(name, 5, 3, hidden=6, depth=3, seed=0, **options)
    policy = rollouts.PopulationPolicy(model)
    strategy = es.RiemannianES(policy.specs, num_perturbations=4, sigma=0.1)
    population, _ = strategy.ask(strategy.init(policy.get_params(), seed=0))
    population = {k: v.astype(np.float32) for k, v in population.items()}
    x = np.random.default_rng(0).standard_normal((4, 7, 5)).astype(np.float32)
    batched = policy.forward(population, x).numpy()
    worker = rollouts.RolloutWorker(lambda: None, lambda: model)
    params = {k: tf.constant(v) for k, v in population.items()}
    mean, variance = np.full(5, 0.3, np.float32), np.full(5, 2.0, np.float32)
    stepped = worker._act(params, worker._prepare(params), x[:, 0, :], mean, variance).numpy()
    for m in range(4):
        policy.set_params(member(population, m))
        np.testing.assert_allclose(batched[m], model(x[m]).numpy(), atol=1e-5, rtol=1e-5)
        reference = model((x[m, :1] - mean) / np.sqrt(variance)).numpy()[0]
        np.testing.assert_allclose(stepped[m], reference, atol=1e-5, rtol=1e-5)


def reference_episode(call, seed, mean, variance, max_steps):
    """One member, one Keras model, one env: (return, steps, poisoned, observations the policy saw, any |action| > 1)."""
    env = make_scripted()
    obs, _ = env.reset(seed=int(seed))
    total, steps, poisoned, seen, out_of_bounds = 0.0, 0, False, [], False
    for _ in range(max_steps):
        seen.append(obs)
        raw = call(((obs - mean) / np.sqrt(variance))[None].astype(np.float32)).numpy()[0]
        out_of_bounds |= bool(np.any(np.abs(raw) > 1.0))
        obs, reward, terminated, truncated, _ = env.step(np.clip(raw, -1.0, 1.0))
        if not np.isfinite(reward):
            poisoned = True
            break
        total, steps = total + reward, steps + 1
        if terminated or truncated:
            break
    return total, steps, poisoned, np.array(seen), out_of_bounds


def test_rollouts_stop_finished_members_clip_actions_and_flag_nonfinite():
    worker = rollouts.RolloutWorker(make_scripted, scripted_policy)
    policy = worker.policy
    strategy = es.RiemannianES(policy.specs, num_perturbations=14, sigma=0.1)
    population, _ = strategy.ask(strategy.init(policy.get_params(), seed=0))
    seeds = np.arange(14)
    # Frozen normalization statistics: every step of every member uses these.
    mean, variance = np.array([0.5, -0.2, 0.1]), np.array([2.0, 0.5, 1.5])
    result = worker.run(population, seeds, mean, variance, max_steps=10)
    call = tf.function(policy.model)  # reads the variables: one trace serves every member
    out_of_bounds = False
    for m, seed in enumerate(seeds):
        policy.set_params(member(population, m))
        total, steps, poisoned, seen, clipped = reference_episode(call, seed, mean, variance, 10)
        out_of_bounds |= clipped
        assert result.nonfinite[m] == poisoned
        assert result.lengths[m] == steps == (min(1 + seed % 5, 3) if not poisoned else 1)
        if not poisoned:
            np.testing.assert_allclose(result.returns[m], total, atol=1e-5)
        else:
            assert np.isnan(result.returns[m])
        # The statistics of the observations the policy saw, for the normalization update.
        assert result.obs_count[m] == len(seen)
        np.testing.assert_allclose(result.obs_sum[m], seen.sum(0), atol=1e-5)
        np.testing.assert_allclose(result.obs_sumsq[m], (seen**2).sum(0), atol=1e-5)
    assert result.nonfinite.sum() == 1  # seed 3; seed 10 ends at step 1, before its NaN
    assert out_of_bounds  # so clipping was exercised (ScriptedEnv.step asserts it happened)
    np.testing.assert_array_equal(result.obs_count, result.lengths + result.nonfinite)


def test_obs_stats_merge_members_equals_numpy_over_all_observations():
    rng = np.random.default_rng(0)
    prior = rng.normal(-1.0, 0.5, (7, 4))
    batches = [rng.normal(3.0, 2.0, (n, 4)) for n in (1, 5, 0, 30, 2)]  # one member saw nothing
    stats = ObsStats.empty(4).merge(len(prior), prior.sum(0), (prior**2).sum(0))
    stats = stats.merge_members(
        [len(b) for b in batches], [b.sum(0) for b in batches], [(b**2).sum(0) for b in batches]
    )
    everything = np.concatenate([prior, *batches])
    assert stats.count == len(everything) == 45
    np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.variance, everything.var(0), rtol=1e-10)
    constant = ObsStats.empty(2).merge(3, [6.0, 3.0], [12.0, 3.0 + 1e-12])  # (2, 1) three times: no spread
    np.testing.assert_array_equal(constant.variance, [1.0, 1.0])  # left unscaled
    np.testing.assert_array_equal(ObsStats.empty(2).merge(1, [2.0, 1.0], [4.0, 1.0]).variance, [1.0, 1.0])


def test_an_iteration_normalizes_with_frozen_statistics_then_merges_what_its_members_saw():
    config = trainer.ESConfig("ESTest/Scripted", perturbations=4, episode_length=3, seed=2)
    prior = np.random.default_rng(1).normal([0.5, -0.2, 0.1], [1.4, 0.7, 1.2], (9, 3))
    stats = ObsStats.empty(3).merge(len(prior), prior.sum(0), (prior**2).sum(0))
    mean, variance = stats.normalizer()
    with backends.InProcessBackend(make_scripted, scripted_policy) as backend:
        policy = rollouts.PopulationPolicy(scripted_policy())
        strategy = config.strategy(policy.specs)
        state = strategy.init(policy.get_params(), seed=config.seed)
        _, new_stats, result, _ = trainer.es_iteration(strategy, state, stats, backend, config)
    population, _ = strategy.ask(state)
    centre = {k: v[None] for k, v in state.params.items()}
    seeds = rollouts.episode_seeds(config.seed, 0, [0, 0, 1, 1, 4])
    call = tf.function(policy.model)
    seen = [prior]
    for m in range(5):
        policy.set_params(member(population, m) if m < 4 else member(centre, 0))
        total, *_, observations, _ = reference_episode(call, seeds[m], mean, variance, 3)
        np.testing.assert_allclose(np.nan_to_num(result.returns[m], nan=total), total, atol=1e-5)
        seen.append(observations)
    everything = np.concatenate(seen)
    assert new_stats.count == len(everything)
    # Observations carry float32 actions, computed by XLA here and by Keras in the reference.
    np.testing.assert_allclose(new_stats.mean, everything.mean(0), atol=1e-6)
    np.testing.assert_allclose(new_stats.m2 / new_stats.count, everything.var(0), atol=1e-6)


def test_unknown_env_id_says_how_to_list_ids():
    with pytest.raises(ValueError, match=r"Swimmer-v4x.*pprint_registry"):
        envs.make_env("Swimmer-v4x")


def test_discrete_spaces_are_rejected_clearly():
    with pytest.raises(ValueError, match=r"action space must be a gymnasium.spaces.Box.*CartPole-v1.*Discrete"):
        envs.make_env("CartPole-v1")


def test_dm_control_dict_observations_are_flattened():
    env_id = "dm_control/swimmer-swimmer6-v0"
    info = envs.env_info(env_id)
    env = envs.make_env(env_id, max_episode_steps=3)
    raw = gymnasium.make(env_id)  # shimmy's dict observations, as they are
    # the space sorts its keys; the observations come in dm_control's order: flattening the
    # values as they come would give a different vector
    assert list(raw.observation_space) == ["body_velocities", "joints", "to_target"]

    def by_hand(dict_obs):
        assert list(dict_obs) == ["joints", "to_target", "body_velocities"]
        # gymnasium's flattening order: the Dict space's keys in order, each entry raveled
        return np.concatenate([np.ravel(dict_obs[key]) for key in raw.observation_space])

    obs, _ = env.reset(seed=0)
    raw_obs, _ = raw.reset(seed=0)
    assert obs.shape == (info.obs_dim,) == (5 + 2 + 6 * 3,) and info.act_dim == 5
    np.testing.assert_array_equal(obs, by_hand(raw_obs))
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 5))
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        raw_obs, raw_reward, *_ = raw.step(action)
        np.testing.assert_array_equal(obs, by_hand(raw_obs))
        assert reward == raw_reward and not terminated
    assert truncated and np.all(raw_obs["body_velocities"] != 0)
    env.close()
    raw.close()


@pytest.mark.parametrize("chunks", [1, 2, 3])
def test_a_members_episode_does_not_depend_on_how_the_population_is_split(chunks):
    """Bitwise: the whole population in one worker call against pieces of it, a lone member included.

    The policy calls are pipelined in `pipeline_chunks` chunks (1 in worker processes);
    a worker may hold any number of members, 1 too, whose XLA program differs from a batch's.
    """
    env_fn = functools.partial(envs.make_env, "Swimmer-v5", 20)
    worker = rollouts.RolloutWorker(env_fn, small_odetoode, pipeline_chunks=chunks)
    strategy = es.RiemannianES(worker.policy.specs, num_perturbations=6, sigma=0.1)
    population, _ = strategy.ask(strategy.init(worker.policy.get_params(), seed=0))
    seeds = np.arange(6) + 11
    mean, variance = np.full(8, 0.1), np.full(8, 2.0)
    whole = worker.run(population, seeds, mean, variance, max_steps=20)
    for piece in (slice(0, 1), slice(1, 4), slice(4, 6)):
        part = worker.run({k: v[piece] for k, v in population.items()}, seeds[piece], mean, variance, 20)
        np.testing.assert_array_equal(part.returns, whole.returns[piece])
        np.testing.assert_array_equal(part.obs_sum, whole.obs_sum[piece])
    assert np.all(whole.lengths == 20) and np.all(np.isfinite(whole.returns))


def test_pipeline_chunks_must_be_a_positive_integer():
    env_fn = functools.partial(envs.make_env, "Swimmer-v5", 20)
    with pytest.raises(
        ValueError, match=r"pipeline_chunks must be an integer ≥ 1 or None. Received: pipeline_chunks=0"
    ):
        rollouts.RolloutWorker(env_fn, small_odetoode, pipeline_chunks=0)


def test_worker_processes_match_in_process_bitwise_survive_a_crash_and_drop_stale_replies(tmp_path):
    """2 local processes, one of which dies mid-episode, give the in-process results; so
    they do after an evaluate that failed in one worker or was interrupted by Ctrl-C,
    whose unread replies the next evaluate must drop."""
    marker = str(tmp_path / "crashed")
    env_fn = functools.partial(make_swimmer_crashing_once, marker)
    config = trainer.ESConfig("Swimmer-v5", perturbations=6, episode_length=30, seed=3)
    policy = rollouts.PopulationPolicy(small_odetoode())
    strategy = config.strategy(policy.specs)
    state = strategy.init(policy.get_params(), seed=config.seed)
    stats = rollouts.normalization.ObsStats.empty(8)

    with backends.ProcessBackend(env_fn, small_odetoode, workers=2) as backend:
        outputs = [trainer.es_iteration(strategy, state, stats, backend, config)]
        assert backend.restarts == 1 and os.path.exists(marker)
        population, _ = strategy.ask(state)  # the first iteration's 6 members + centre again
        population = {n: np.concatenate([v, state.params[n][None]]) for n, v in population.items()}
        seeds, (mean, variance) = np.arange(7) + 100, stats.normalizer()
        with pytest.raises(RuntimeError, match="worker process raised"):  # seed −1: worker 0 raises,
            backend.evaluate(population, np.append(-1, seeds[1:]), mean, variance, 30)  # worker 1 replies
        worker = backend.workers[0]

        def interrupt(*args):  # Ctrl-C while the parent waits for both replies
            del worker.receive
            raise KeyboardInterrupt

        worker.receive = interrupt
        with pytest.raises(KeyboardInterrupt):
            backend.evaluate(population, seeds, mean, variance, 30)
        assert backend.restarts == 1
        outputs.append(trainer.es_iteration(strategy, *outputs[0][:2], backend, config))  # frozen → updated stats
    with backends.InProcessBackend(env_fn, small_odetoode) as backend:
        reference = [trainer.es_iteration(strategy, state, stats, backend, config)]
        reference.append(trainer.es_iteration(strategy, *reference[0][:2], backend, config))
    for (s1, o1, r1, _), (s2, o2, r2, _) in zip(outputs, reference):
        np.testing.assert_array_equal(r1.returns, r2.returns)
        np.testing.assert_array_equal(r1.lengths, r2.lengths)
        np.testing.assert_array_equal(o1.mean, o2.mean)
        for name in s1.params:
            np.testing.assert_array_equal(s1.params[name], s2.params[name])
    assert np.all(r2.lengths == 30)


def test_split_population_is_contiguous_and_complete():
    assert backends.split_population(7, 3) == [(0, 2), (2, 5), (5, 7)]
    assert backends.split_population(2, 5) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="Received: backend='spark'"):
        backends.make_backend("spark", make_scripted, scripted_policy)


def test_worker_processes_leave_ctrl_c_to_the_parent():
    """SIGINT (Ctrl-C hits the whole process group) neither kills a worker process nor changes its results."""
    config = trainer.ESConfig("Swimmer-v5", perturbations=2, episode_length=10, seed=0)
    policy = rollouts.PopulationPolicy(small_odetoode())
    strategy = config.strategy(policy.specs)
    state = strategy.init(policy.get_params(), seed=config.seed)
    stats = rollouts.normalization.ObsStats.empty(8)
    env_fn = functools.partial(envs.make_env, "Swimmer-v5", 10)
    with backends.ProcessBackend(env_fn, small_odetoode, workers=1) as backend:
        assert backend.workers[0].wait_ready()
        os.kill(backend.workers[0].process.pid, signal.SIGINT)
        _, _, interrupted, _ = trainer.es_iteration(strategy, state, stats, backend, config)
        assert backend.restarts == 0 and backend.workers[0].process.is_alive()
    with backends.InProcessBackend(env_fn, small_odetoode) as backend:
        _, _, reference, _ = trainer.es_iteration(strategy, state, stats, backend, config)
    np.testing.assert_array_equal(interrupted.returns, reference.returns)


def test_a_worker_process_whose_parent_has_gone_exits_quietly(capfd):
    """A killed parent leaves its workers a closed pipe: the reply they cannot send ends them, exit code 0,
    without the traceback a BrokenPipeError would print."""
    with backends.ProcessBackend(make_scripted, scripted_policy, workers=1) as backend:
        worker = backend.workers[0]
        assert worker.wait_ready()
        population = rollouts.PopulationPolicy(scripted_policy()).get_params()
        population = {name: np.stack([value, value]) for name, value in population.items()}
        worker.request(1, (population, np.array([0, 1]), np.zeros(3), np.ones(3), 3))
        worker.conn.close()  # the parent goes before the reply
        worker.process.join(timeout=120)
        assert worker.process.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("name", ["deepnet", "deepresnet", "baseode", "nanode"])
@pytest.mark.parametrize(
    "options", [{}, {"flow": "gated", "num_gates": 2, "gate_inputs": "state"}], ids=["iso", "state"]
)
def test_matched_hidden_is_the_smallest_width_with_odetoodes_parameter_count(name, options):
    """§5.1.1: a baseline scaled to at least ODEtoODE's parameters, here the isospectral or the state-gated one."""
    target = policies.count_params("odetoode", 8, 2, 6, **options)
    width = policies.matched_hidden(name, 8, 2, 6, **options)
    assert policies.count_params(name, 8, 2, width) >= target > policies.count_params(name, 8, 2, width - 1)
    model = policies.build_policy(
        name, 8, 2, hidden=6, match_params=True, seed=0, **{k: v for k, v in options.items() if k != "gate_inputs"}
    )
    time_target = policies.count_params("odetoode", 8, 2, 6, **{k: v for k, v in options.items() if k != "gate_inputs"})
    assert model.count_params() >= time_target > policies.count_params(name, 8, 2, model.get_layer("omega_1").units - 1)
