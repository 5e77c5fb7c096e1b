"""`keras-odetoode es`: train a policy with evolution strategies (paper §5.1).

    keras-odetoode es --env Swimmer-v5 --policy odetoode --iterations 100 \\
        --perturbations 200 --seed 0 --backend local --workers 2 --logdir runs/swimmer
"""

import argparse
import os

from keras_odetoode.cli import add_verbose_flag
from keras_odetoode.es import presets

#: The flags' destinations that are `ESConfig` options of the preset (None, left out: the preset's value).
PRESET_FLAGS = {
    "perturbations": "perturbations",
    "sigma": "sigma",
    "lr": "learning_rate",
    "antithetic": "antithetic",
    "fitness_shaping": "fitness_shaping",
    "optimizer": "optimizer",
    "top_directions": "top_directions",
    "lr_schedule": "lr_schedule",
    "lr_final": "lr_final",
}


def _preset_value(name, preset="paper"):
    value = presets.PRESETS[preset][name]
    return "all" if value is None else value


def _preset_values():
    """Each preset's values, for `--preset`'s help: "paper: perturbations=200, …; k50-cosine: …"."""
    return "; ".join(
        f"{preset}: " + ", ".join(f"{name}={_preset_value(name, preset)}" for name in presets.PRESET_OPTIONS)
        for preset in presets.PRESETS
    )


def register(subparsers):
    """Add the `es` command."""
    es = subparsers.add_parser(
        "es",
        help="train an RL policy with evolution strategies (paper §5.1)",
        description=(
            "Train a policy with Riemannian ES and export the best centre policy to <logdir>/policy. "
            "Ctrl-C saves a checkpoint and exports the best policy so far; --resume continues the run."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    es.add_argument("--env", required=True, help="gymnasium id, e.g. Swimmer-v5 or dm_control/swimmer-swimmer15-v0")
    es.add_argument(
        "--policy",
        default="odetoode",
        choices=("odetoode", "deepnet", "deepresnet", "baseode", "nanode", "hypernet"),
        help="policy network between the two Stiefel projections",
    )
    es.add_argument("--flow", default="isospectral", choices=("isospectral", "gated"), help="ODEtoODE's parameter flow")
    es.add_argument("--num-gates", type=int, default=1, help="gates of the gated flow / HyperNet")
    es.add_argument(
        "--gate-inputs",
        default="time",
        choices=("time", "state"),
        help="what the gated flow's gate networks read: the time, or the state W_t (the paper's "
        "gated-ODEtoODE; see keras_odetoode.flows.GatedFlow); only with --flow gated",
    )
    es.add_argument("--hidden", type=int, default=16, help="embedding width (64 for Humanoid in the paper)")
    es.add_argument(
        "--match-params", action="store_true", help="scale a baseline to at least ODEtoODE's parameter count"
    )
    es.add_argument(
        "--iterations",
        type=int,
        default=100,
        help="ES iterations in total; with --resume, counting the iterations already done",
    )
    # The options of the ES update default to None: the preset's value.
    es.add_argument(
        "--preset",
        default=presets.DEFAULT_PRESET,
        choices=sorted(presets.PRESETS),
        help="named values of the ES update's options below, which a flag given explicitly overrides. "
        + _preset_values(),
    )
    es.add_argument(
        "--perturbations",
        type=int,
        help=f"k, perturbations per iteration, even (None: the preset's; paper: {_preset_value('perturbations')})",
    )
    es.add_argument(
        "--sigma",
        type=float,
        help=f"σ, standard deviation of the perturbations (None: the preset's; paper: {_preset_value('sigma')})",
    )
    es.add_argument(
        "--lr",
        type=float,
        help="learning rate of the ES update; with --lr-schedule, of the first update "
        f"(None: the preset's; paper: {_preset_value('learning_rate')})",
    )
    es.add_argument(
        "--no-antithetic",
        dest="antithetic",
        action="store_const",
        const=False,
        help="independent perturbations instead of ± pairs (None: the preset's; paper: pairs)",
    )
    es.add_argument(
        "--fitness-shaping",
        choices=("z_score", "centered_ranks", "raw"),
        help=f"how returns are turned into update weights (None: the preset's; paper: {_preset_value('fitness_shaping')})",
    )
    es.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        help=f"rule applying the ES gradient (None: the preset's; paper: {_preset_value('optimizer')})",
    )
    es.add_argument(
        "--top-directions",
        type=int,
        metavar="B",
        help="keep only the B antithetic pairs with the best max(F+, F-) in the update, z-scored among "
        "themselves with the z_score shaping (ARS V2-t, Mania et al. 2018); 1 <= B <= k/2 "
        f"(None: the preset's; paper: {_preset_value('top_directions')} k/2 pairs)",
    )
    es.add_argument(
        "--lr-schedule",
        choices=("constant", "linear", "cosine"),
        help="decay of the learning rate from --lr to --lr-final over --lr-decay-iterations "
        f"(None: the preset's; paper: {_preset_value('lr_schedule')})",
    )
    es.add_argument(
        "--lr-final",
        type=float,
        help="the learning rate a schedule decays to, 0 <= it <= --lr "
        f"(None: the preset's; paper: {_preset_value('lr_final')})",
    )
    es.add_argument(
        "--lr-decay-iterations",
        type=int,
        metavar="T",
        help="iterations over which a schedule decays (None: --iterations)",
    )
    es.add_argument(
        "--max-env-steps",
        type=int,
        metavar="N",
        help="also stop after the first iteration at which the run has taken N environment steps in total, "
        "the centre's episodes included (None: no limit)",
    )
    es.add_argument(
        "--reward-shift",
        type=float,
        default=0.0,
        metavar="SHIFT",
        help="subtract SHIFT from every step's reward in the returns the update ranks (ARS's survival-bonus "
        "shift: 1 for Hopper-v5 and Walker2d-v5, 5 for Humanoid-v5, whose healthy reward otherwise makes "
        "standing still a local optimum); progress.csv, the best policy and scores keep the task's reward",
    )
    es.add_argument(
        "--seed", type=int, default=0, help="seed of the perturbations, the episodes and the policy's initialisation"
    )
    es.add_argument("--episode-length", type=int, default=1000, help="maximum steps per episode")
    es.add_argument("--no-obs-norm", action="store_true", help="disable observation normalization")
    es.add_argument("--backend", default="local", choices=("local", "ray"), help="where episodes run")
    es.add_argument("--workers", type=int, default=0, help="local: worker processes (0 = in-process); ray: actors")
    es.add_argument("--address", default=None, help="Ray cluster address (None: start a local Ray)")
    es.add_argument("--no-jit", action="store_true", help="do not XLA-compile the per-step policy")
    es.add_argument("--logdir", default=None, help="run directory (None: runs/<env>-<policy>-s<seed>)")
    es.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="continue from the newest checkpoint in --logdir, or from CHECKPOINT, up to --iterations in total",
    )
    es.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose_flag(es)
    es.set_defaults(func=run_es)


def run_es(args):
    os.environ.setdefault("MUJOCO_GL", "disable")
    from keras_odetoode.es import envs, runs

    info = envs.env_info(args.env)
    config = runs.make_config(
        args.env,
        info,
        policy=args.policy,
        hidden=args.hidden,
        flow=args.flow,
        num_gates=args.num_gates,
        gate_inputs=args.gate_inputs,
        match_params=args.match_params,
        iterations=args.iterations,
        preset=args.preset,
        **{option: getattr(args, flag) for flag, option in PRESET_FLAGS.items()},
        lr_decay_iterations=args.lr_decay_iterations,
        max_env_steps=args.max_env_steps,
        reward_shift=args.reward_shift,
        seed=args.seed,
        episode_length=args.episode_length,
        normalize_observations=not args.no_obs_norm,
    )
    return runs.run(
        config,
        info,
        args.logdir or runs.default_logdir(args.env, args.policy, args.seed),
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        jit_compile=not args.no_jit,
        resume=args.resume,
        progress=not args.no_progress,
        command=args.command_line,
    )
