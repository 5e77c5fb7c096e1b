"""Gymnasium environments for ES: MuJoCo v5 tasks and DeepMind Control via shimmy.

Any registered id with a Box action space and a Box (or Dict of Boxes)
observation space works; dict observations (DeepMind Control) are flattened
with `gymnasium.wrappers.FlattenObservation`.
"""

import dataclasses
import difflib
import functools

import numpy as np

from keras_odetoode.checks import check_integer

DM_CONTROL_PREFIX = "dm_control/"


class MissingDependencyError(ImportError, ValueError):
    """An optional package a chosen option needs is not installed.

    An ImportError, and a ValueError so that `keras-odetoode` reports it in one line.
    """


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """What a policy needs to know about an environment."""

    env_id: str
    obs_dim: int
    act_dim: int
    action_low: np.ndarray
    action_high: np.ndarray


def _registry():
    import gymnasium

    return gymnasium.envs.registry


def check_env_id(env_id):
    """`env_id` if it is registered, else a ValueError that says how to list the ids."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string. Received: env_id={env_id!r}")
    if env_id.startswith(DM_CONTROL_PREFIX):
        try:
            import shimmy  # noqa: F401  (registers the dm_control/ ids)
        except ImportError as error:
            raise MissingDependencyError(
                f'{env_id!r} is a DeepMind Control task, which needs shimmy: pip install "shimmy[dm-control]"'
            ) from error
    registry = _registry()
    if env_id not in registry:
        close = difflib.get_close_matches(env_id, list(registry.keys()), n=5, cutoff=0.6)
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"Unknown environment id. Received: env_id={env_id!r}.{hint} "
            'List the registered ids with `python -c "import gymnasium; gymnasium.pprint_registry()"` '
            "(or `gymnasium.envs.registry.keys()`); DeepMind Control ids look like "
            "'dm_control/swimmer-swimmer15-v0' (after `import shimmy`)."
        )
    return env_id


def _check_spaces(env, env_id):
    from gymnasium import spaces

    if not isinstance(env.action_space, spaces.Box):
        raise ValueError(
            f"ES policies output continuous actions, so the action space must be a gymnasium.spaces.Box. "
            f"Received: {env_id!r} with action_space={env.action_space}"
        )
    obs = env.observation_space
    if isinstance(obs, spaces.Dict) and all(isinstance(s, spaces.Box) for s in obs.spaces.values()):
        return
    if not isinstance(obs, spaces.Box):
        raise ValueError(
            "The observation space must be a gymnasium.spaces.Box or a Dict of Boxes (flattened). "
            f"Received: {env_id!r} with observation_space={obs}"
        )


def make_env(env_id, max_episode_steps=None):
    """`gymnasium.make(env_id)` checked for ES: Box actions, flat Box observations.

    Args:
        env_id: a registered id, e.g. "Swimmer-v5" or "dm_control/swimmer-swimmer15-v0".
        max_episode_steps: if given, episodes are truncated after this many steps.
    """
    import gymnasium
    from gymnasium import spaces

    check_env_id(env_id)
    kwargs = {"disable_env_checker": True}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = check_integer("max_episode_steps", max_episode_steps, 1)
    env = gymnasium.make(env_id, **kwargs)
    try:
        _check_spaces(env, env_id)
    except ValueError:
        env.close()
        raise
    if isinstance(env.observation_space, spaces.Dict):
        env = gymnasium.wrappers.FlattenObservation(env)
    return env


def env_factory(env_id, max_episode_steps=None):
    """A picklable zero-argument callable making the env (for worker processes and Ray)."""
    check_env_id(env_id)
    return functools.partial(make_env, env_id, max_episode_steps)


def env_info(env_id):
    """Observation/action sizes and action bounds of `env_id`."""
    env = make_env(env_id)
    try:
        return EnvInfo(
            env_id,
            int(np.prod(env.observation_space.shape)),
            int(np.prod(env.action_space.shape)),
            np.asarray(env.action_space.low, np.float64).reshape(-1),
            np.asarray(env.action_space.high, np.float64).reshape(-1),
        )
    finally:
        env.close()
