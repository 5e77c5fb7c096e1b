"""Score an ES policy on fresh episodes of its environment: an exported one, or a run's."""

import os

import numpy as np

from keras_odetoode.checks import check_choice, check_integer
from keras_odetoode.errors import InputError
from keras_odetoode.es import envs

#: Output names that mark an export as a classifier.
CLASSIFIER_OUTPUTS = ("logits", "probabilities")


def check_is_policy(path, metadata):
    """Raise an `InputError` if the export at `path` (with `metadata`) is not an ES policy.

    An ES policy's metadata names its environment, or its signature reads
    observations; a classifier's (or another model's) does neither.
    """
    from keras_odetoode import export

    inputs, outputs = metadata.get("inputs") or [{}], metadata.get("outputs") or [{}]
    if metadata.get("env_id") is not None or inputs[0].get("name") == export.POLICY_TENSOR_NAMES[0]:
        return
    output = outputs[0].get("name")
    kind = "a classifier" if output in CLASSIFIER_OUTPUTS else "a model trained on data"
    raise InputError(
        f"{path!r} is {kind}, not an ES policy: its {export.SIGNATURE_KEY} signature maps "
        f"{inputs[0].get('name')} {_shape(inputs[0].get('shape'))} to {output} {_shape(outputs[0].get('shape'))} "
        "and its metadata names no environment. `keras-odetoode evaluate` scores ES policies on an environment; "
        "call this model with keras_odetoode.export.load_serving(path)."
    )


def _shape(shape):
    return "(" + ", ".join("None" if s is None else str(s) for s in (shape or [])) + ")"


def env_of(path, env_id=None):
    """The environment id to evaluate `path` on: `env_id`, or the one its run or metadata names.

    Raises:
        InputError: `env_id` is None and the metadata names no environment; the
            message says whether `path` is a classifier rather than a policy.
    """
    from keras_odetoode.export import load_metadata

    if env_id is not None:
        return env_id
    if is_run(path):
        from keras_odetoode import export_sources
        from keras_odetoode.es import checkpoint

        directory = os.path.join(path, export_sources.CHECKPOINT_DIR)
        run = checkpoint.load(path) if os.path.isfile(path) else checkpoint.load_latest(directory)
        if run is not None:
            return run.config["env_id"]
    metadata = load_metadata(path)
    check_is_policy(path, metadata)
    env_id = metadata.get("env_id")
    if env_id is None:
        raise InputError(
            f"{path!r} is an ES policy whose metadata names no environment. Pass the one it was trained on: "
            "env_id (--env)."
        )
    return env_id


def evaluate_policy(path, env_id=None, episodes=10, seed=0, episode_length=None):
    """Returns of `episodes` episodes of the SavedModel policy at `path`.

    Episode i is reset with seed `seed + i`; actions are clipped to the action
    space. Raises `export.InvalidSavedModelError` (a ValueError naming what is
    missing) if `path` is not a SavedModel exported by this package.

    Args:
        path: directory written by `keras-odetoode es` / `export_saved_model`.
        env_id: gymnasium id; default: the one in the policy's metadata.
        episodes: number of episodes (≥ 1).
        seed: seed of the first episode.
        episode_length: maximum steps; default: the training run's.

    Returns:
        float64 array of shape (episodes,).
    """
    os.environ.setdefault("MUJOCO_GL", "disable")
    from keras_odetoode.export import load_serving

    episodes = check_integer("episodes", episodes, 1)
    episode_length = check_integer("episode_length", episode_length, 1, allow_none=True)
    serving = load_serving(path)
    env_id = env_of(path, env_id)
    length = episode_length or serving.metadata.get("config", {}).get("episode_length") or 1000
    env = envs.make_env(env_id, max_episode_steps=length)
    sizes = (int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)))
    if sizes != (serving.input_shape[-1], serving.output_shape[-1]):
        env.close()
        if serving.output_name in CLASSIFIER_OUTPUTS:
            check_is_policy(path, serving.metadata)  # names it a classifier
        raise InputError(
            f"The policy in {path!r} maps {serving.input_shape[-1]} observations to {serving.output_shape[-1]} "
            f"actions (trained on {serving.metadata.get('env_id', 'an unrecorded task')}); {env_id} has "
            f"{sizes[0]} and {sizes[1]}. Pass the --env it was trained on."
        )
    try:
        return episode_returns(env, lambda obs: serving(obs.reshape(1, -1))[0], episodes, seed)
    finally:
        env.close()


def episode_returns(env, act, episodes=10, seed=0):
    """Returns of `episodes` episodes of `env` acted on by `act`, episode i reset with seed `seed + i`.

    Args:
        env: a gymnasium env with a Box action space, as `envs.make_env` makes it.
        act: maps a float32 observation vector to an action vector; actions are
            clipped to the action space.

    Returns:
        float64 array of shape (episodes,).
    """
    low, high = env.action_space.low.reshape(-1), env.action_space.high.reshape(-1)
    returns = []
    for episode in range(check_integer("episodes", episodes, 1)):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = np.clip(act(np.asarray(obs, np.float32).reshape(-1)), low, high)
            obs, reward, terminated, truncated, _ = env.step(action.astype(env.action_space.dtype))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return np.asarray(returns, np.float64)


def zero_action_returns(env_id, episodes=10, seed=0, episode_length=1000):
    """Returns of the policy that does nothing (every action 0, clipped to the action space) on `env_id`.

    A reference for a trained policy's score: episodes are reset and truncated as
    `evaluate_policy` runs them, so the two compare episode by episode.
    """
    env = envs.make_env(env_id, max_episode_steps=check_integer("episode_length", episode_length, 1))
    zeros = np.zeros(int(np.prod(env.action_space.shape)))
    try:
        return episode_returns(env, lambda obs: zeros, episodes, seed)
    finally:
        env.close()


def is_run(path):
    """Whether `path` is an ES run directory (it holds `checkpoints/`) or an ES checkpoint file."""
    from keras_odetoode import export_sources

    if os.path.isfile(path):
        return path.endswith(".npz")
    return os.path.isdir(os.path.join(path, export_sources.CHECKPOINT_DIR))


def evaluate_run(source, policy="latest", env_id=None, episodes=10, seed=0, episode_length=None):
    """Returns of `episodes` episodes of a policy of the ES run `source`, as its export would score.

    The policy is exported to a temporary SavedModel exactly as
    `keras-odetoode export SOURCE --policy POLICY` writes it, and scored by
    `evaluate_policy`: the number a user gets from exporting and evaluating.

    Args:
        source: an ES run directory (its newest checkpoint) or a checkpoint (ckpt-*.npz).
        policy: "latest", the centre after the checkpoint's last iteration, or "best",
            the best evaluated centre so far (the one `keras-odetoode es` exports).
        env_id, episodes, seed, episode_length: as in `evaluate_policy`; the
            environment and episode length default to the run's.

    Returns:
        float64 array of shape (episodes,).
    """
    import tempfile

    from keras_odetoode import export, export_sources

    check_choice("policy", policy, ("latest", "best"))
    model, metadata, command, result = export_sources.load_source(source, policy=policy)
    input_name, output_name = export_sources.signature_names(metadata)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "policy")
        export.export_saved_model(
            model,
            path,
            input_name=input_name,
            output_name=output_name,
            metadata=metadata,
            training_command=command,
            result=result,
        )
        return evaluate_policy(path, env_id=env_id, episodes=episodes, seed=seed, episode_length=episode_length)
