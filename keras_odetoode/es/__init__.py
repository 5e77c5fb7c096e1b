"""Evolution strategies for ODEtoODE policies (paper §4.2, §5.1).

Ask/tell Riemannian ES (`RiemannianES`), batched population rollouts
(`RolloutWorker`), backends (in-process, local processes, Ray), the training
loop (`train`), named option sets (`PRESETS`), policies of §5.1 (`build_policy`)
and checkpoints.
"""

from keras_odetoode.es.backends import (
    AbstractBackend,
    InProcessBackend,
    ProcessBackend,
    RayBackend,
    make_backend,
    split_population,
)
from keras_odetoode.es.checkpoint import Checkpoint, CheckpointError
from keras_odetoode.es.envs import EnvInfo, check_env_id, env_factory, env_info, make_env
from keras_odetoode.es.evaluation import evaluate_policy
from keras_odetoode.es.normalization import ObsStats
from keras_odetoode.es.policies import POLICIES, build_policy, count_params, matched_hidden, serving_policy
from keras_odetoode.es.presets import PRESETS
from keras_odetoode.es.rollouts import PopulationPolicy, RolloutResult, RolloutWorker, episode_seeds
from keras_odetoode.es.strategy import (
    FITNESS_SHAPINGS,
    LR_SCHEDULES,
    ESState,
    ParamSpec,
    RiemannianES,
    centered_ranks,
    get_fitness_shaping,
    raw_fitness,
    register_fitness_shaping,
    sanitize_fitness,
    scheduled_learning_rate,
    specs_from_variables,
    z_score,
)
from keras_odetoode.es.trainer import ESConfig, es_iteration, export_policy, plot_learning_curve, train

__all__ = [
    "AbstractBackend",
    "Checkpoint",
    "CheckpointError",
    "ESConfig",
    "ESState",
    "EnvInfo",
    "FITNESS_SHAPINGS",
    "InProcessBackend",
    "LR_SCHEDULES",
    "ObsStats",
    "POLICIES",
    "PRESETS",
    "ParamSpec",
    "PopulationPolicy",
    "ProcessBackend",
    "RayBackend",
    "RiemannianES",
    "RolloutResult",
    "RolloutWorker",
    "build_policy",
    "centered_ranks",
    "check_env_id",
    "count_params",
    "env_factory",
    "env_info",
    "episode_seeds",
    "es_iteration",
    "evaluate_policy",
    "export_policy",
    "get_fitness_shaping",
    "make_backend",
    "make_env",
    "matched_hidden",
    "plot_learning_curve",
    "raw_fitness",
    "register_fitness_shaping",
    "sanitize_fitness",
    "scheduled_learning_rate",
    "serving_policy",
    "specs_from_variables",
    "split_population",
    "train",
    "z_score",
]
