"""Build one entry of the `saved_models/` zoo: export, score, and write its model card.

An entry is a folder `saved_models/<name>/` holding the SavedModel (parameter flows
folded, `metadata.json` inside), `card.json` (the measured score, machine-readable:
`tests/test_saved_models.py` re-measures it) and `README.md` (the model card).

    # an ES policy: export the best policy of a run, score it on N seeded episodes
    python saved_models/make_zoo.py policy RUN_DIR NAME --episodes 10 --train-command "keras-odetoode es ..."

    # a classifier: a .keras model and the labelled digits it is scored on
    python saved_models/make_zoo.py classifier MODEL.keras NAME --digits DIGITS.npz --train-command "..." --data "..."

    # add the probe (observations and the actions served on them) to an existing policy's card
    python saved_models/make_zoo.py probe NAME

`--zoo DIR` writes the entry under DIR instead of `saved_models/`. A policy's card also
gives how long its run trained (iterations, environment steps, wall time, from the run's
progress.csv), what its learning curve was doing when the run stopped (the gain over its
last fifth, `es.runs.plateau_gain`), the command that continues it, and, with `--goal`
and `--reference`, the score it aimed at and published scores on the same task.
`saved_models/train_zoo.py` trains the zoo's policies and calls this.

A policy's card records, besides its score, a probe: observations of its task and the
actions the export serves on them. Episode returns are chaotic in MuJoCo: float rounding
that differs between CPUs (e.g. with and without AVX2) grows over 1000 steps into other
trajectories, so another machine reproduces the score in distribution, not episode by
episode. The probe's actions agree to float32 rounding on any machine.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def from_repo_root(command, repo=REPO):
    """`command` (one or more lines) with every path inside `repo` written relative to its root.

    A card's commands are run from a clone's root: a run trained under the repository (e.g.
    `benchmarks/results/zoo/runs/<name>`, committed with its last checkpoint) is continued
    there with `--resume`, wherever the clone that trained it lived.
    """
    return command.replace(os.path.join(os.path.abspath(repo), ""), "")


def folder_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def signature_of(entry):
    """The export's serving signature as the card names it: key, input and output names and shapes."""
    with open(os.path.join(entry, "metadata.json")) as f:
        metadata = json.load(f)
    (inp,), (out,) = metadata["inputs"], metadata["outputs"]
    return {
        "key": metadata["signature"],
        "input": {"name": inp["name"], "shape": inp["shape"], "dtype": inp["dtype"]},
        "output": {"name": out["name"], "shape": out["shape"], "dtype": out["dtype"]},
    }


def signature_text(signature):
    """`serving_default`: `pixels` (None, 784) float32 → `logits` (None, 10) float32."""

    def tensor(t):
        shape = ", ".join("None" if s is None else str(s) for s in t["shape"])
        return f"`{t['name']}` ({shape}) {t['dtype']}"

    return f"`{signature['key']}`: {tensor(signature['input'])} → {tensor(signature['output'])}"


def write_card(entry, card):
    with open(os.path.join(entry, "card.json"), "w") as f:
        json.dump(card, f, indent=2)
    score = card["score"]
    lines = [
        f"# {card['name']}",
        "",
        card["description"],
        "",
        "| | |",
        "|---|---|",
        f"| task | {card['task']} |",
        f"| model | {card['model']} |",
        f"| signature | {signature_text(card['signature'])} |",
        f"| score | **{score['mean']:.2f} ± {score['std']:.2f}** {score['metric']} ({score['how']}) |",
        f"| trainable parameters | {card['parameters']:,} |",
        f"| size on disk | {card['size_bytes'] / 1e6:.2f} MB |",
        f"| trained | {card['date']} |",
        f"| data | {card['data']} |",
    ]
    if "training" in card:
        lines += training_text(card["training"])
    if "goal" in card:
        goal = card["goal"]
        lines.append(
            f"| goal | {goal['return']:g} ({goal['source']}): **{'reached' if goal['reached'] else 'not reached'}** |"
        )
    if card.get("references"):
        lines.append(f"| published on this task | {'; '.join(card['references'])} |")
    lines += [f"| note | {note} |" for note in card.get("notes", [])]
    lines += ["", "## How it was trained", "", "```bash", card["train_command"], "```", ""]
    if card.get("training", {}).get("continue_command"):
        lines += [
            "To train it further (`--resume` continues the run bit-identically from its last checkpoint):",
            "",
            "```bash",
            card["training"]["continue_command"],
            "```",
            "",
        ]
    if os.path.isfile(os.path.join(entry, "learning_curve.png")):
        lines += ["![learning curve: returns per ES iteration](learning_curve.png)", ""]
    lines += ["## How it was scored", "", "```bash", card["score_command"], "```", ""]
    if card.get("probe"):
        lines += probe_text(card["probe"])
    lines += [
        "## Use it",
        "",
        "```python",
        "from keras_odetoode.export import load_serving",
        f'model = load_serving("saved_models/{card["name"]}")',
        f"outputs = model(inputs)  # {card['io']}",
        "```",
        "",
        "Plain TensorFlow works too: "
        f'`tf.saved_model.load(path).signatures["{card["signature"]["key"]}"]'
        f'({card["signature"]["input"]["name"]}=x)["{card["signature"]["output"]["name"]}"]`.',
        "",
    ]
    with open(os.path.join(entry, "README.md"), "w") as f:
        f.write("\n".join(lines))


def probe_text(probe, rows=3):
    """The card's probe section: how the observations were taken and the first `rows` actions."""
    actions = probe["actions"]
    lines = [
        "## Probe",
        "",
        f"`card.json` (`probe`) holds {len(actions)} observations of the task ({probe['how']}) and the "
        "actions this export serves on them. `tests/test_saved_models.py` checks the actions, which agree "
        f"to float32 rounding on any CPU (episode returns need not: MuJoCo rollouts are chaotic). The first {rows}:",
        "",
        "| observation | action |",
        "|---|---|",
    ]
    for observation, action in zip(probe["observations"][:rows], actions[:rows]):
        shown = ", ".join(f"{v:.3f}" for v in observation[:4]) + (", …" if len(observation) > 4 else "")
        lines.append(f"| ({shown}) | ({', '.join(f'{v:.3f}' for v in action)}) |")
    return lines + [""]


PROBE_SIZE = 12  # observations kept
PROBE_STEPS = (0, 50, 100)  # after these many uniformly random actions


def policy_probe(entry, env_id):
    """`PROBE_SIZE` observations of `env_id` under random actions, and the actions `entry` serves on them.

    Episodes are reset with seeds 0, 1, … until there are enough: one that ends early under
    random actions (Hopper falls within 50 steps) gives fewer than `len(PROBE_STEPS)`.
    """
    from keras_odetoode.es import envs
    from keras_odetoode.export import load_serving

    env = envs.make_env(env_id)
    env.action_space.seed(0)
    observations = []
    start = 0
    while len(observations) < PROBE_SIZE:
        if start == 100 * PROBE_SIZE:
            raise RuntimeError(f"{env_id}: {start} random-action episodes gave {len(observations)} observations")
        obs, _ = env.reset(seed=start)
        for step in range(max(PROBE_STEPS) + 1):
            if step in PROBE_STEPS and len(observations) < PROBE_SIZE:
                observations.append(np.asarray(obs, np.float32).reshape(-1))
            if step == max(PROBE_STEPS):
                break
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
        start += 1
    env.close()
    observations = np.stack(observations)
    actions = load_serving(entry)(observations)
    return {
        "how": f"episodes reset with seeds 0…{start - 1}, the observations after "
        f"{', '.join(map(str, PROBE_STEPS))} uniformly random actions while the episode lasts",
        "observations": _float32_lists(observations),
        "actions": _float32_lists(actions),
    }


def _float32_lists(array):
    """Nested lists of the float32 values, each in the 9 digits that give it back exactly."""
    return [[float(f"{value:.9g}") for value in row] for row in np.asarray(array, np.float32).tolist()]


def add_probe(args):
    entry = os.path.join(args.zoo, args.name)
    with open(os.path.join(entry, "card.json")) as f:
        card = json.load(f)
    card["probe"] = policy_probe(entry, card["task"])
    write_card(entry, card)


def training_of(run, metadata):
    """How long the ES run in `run` trained and where its learning curve was when it stopped."""
    import csv

    from keras_odetoode.es import runs

    with open(os.path.join(run, "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    rewards = [float(row["reward_centre"]) for row in rows]
    try:
        gain = runs.plateau_gain(rewards)
    except ValueError:  # too short a run to tell
        gain = None
    commands = metadata.get("commands") or [metadata.get("training_command")]
    command = commands[0]
    last = rewards[-runs.SUMMARY_ITERATIONS :]
    return {
        "iterations": len(rows),
        "env_steps": int(rows[-1]["total_env_steps"]),
        "wall_seconds": float(rows[-1]["total_seconds"]),
        "best_iteration": int(metadata["iteration"]),  # counted from 1, as in progress.csv
        "centre_return_first": rewards[0],
        "centre_return_last": sum(last) / len(last),
        "last_iterations": len(last),
        "gain_over_last_fifth": gain,
        "plateaued": None if gain is None else gain <= runs.PLATEAU_GAIN,
        "continue_command": command
        and from_repo_root(
            runs.continue_command(command, 2 * len(rows), runs.schedule_horizon(metadata.get("config")))
        ),
    }


def training_text(training):
    """The card's rows on how long the run trained and how its curve ended."""
    from keras_odetoode.es import runs

    gain = training["gain_over_last_fifth"]
    if gain is None:
        curve = "too short a run to measure a plateau"
    else:
        verdict = (
            "still rising" if not training["plateaued"] else "falling" if gain < -runs.PLATEAU_GAIN else "plateaued"
        )
        curve = f"{gain:+.1%} over the last fifth ({verdict}: the zoo's rule is ≤ {runs.PLATEAU_GAIN:.0%})"
    return [
        f"| trained for | {training['iterations']} ES iterations, {training['env_steps'] / 1e6:.1f} M environment "
        f"steps, {training['wall_seconds'] / 3600:.1f} h of rollouts and updates; best centre policy at iteration "
        f"{training['best_iteration']} |",
        f"| learning curve at the end | centre return {training['centre_return_first']:.1f} at iteration 1, "
        f"{training['centre_return_last']:.1f} over the last {training['last_iterations']}; {curve} |",
    ]


def make_policy(args):
    from keras_odetoode.es import evaluate_policy
    from keras_odetoode.export import load_metadata

    entry = os.path.join(args.zoo, args.name)
    subprocess.run(
        [sys.executable, "-m", "keras_odetoode.cli", "export", args.source, entry, "--policy", "best"], check=True
    )
    curve = os.path.join(args.source, "learning_curve.png")
    if os.path.isfile(curve):
        shutil.copyfile(curve, os.path.join(entry, "learning_curve.png"))
    metadata = load_metadata(entry)
    returns = evaluate_policy(entry, episodes=args.episodes, seed=args.seed)
    env_id = metadata["env_id"]
    kwargs = metadata["config"]["policy_kwargs"]
    hidden, flow = kwargs.get("hidden", 16), kwargs.get("flow", "isospectral")
    card = {
        "name": args.name,
        "kind": "policy",
        "description": args.description
        or f"ISO-ODEtoODE policy (Eq. 5: Ω₂ ∘ ODEtoODE ∘ Ω₁, hidden {hidden}, h = 0.04) for {env_id}, trained by Riemannian ES.",
        "task": env_id,
        "model": (
            f"observation normalization → StiefelDense Ω₁ ({metadata['obs_dim']}→{hidden}) → ODEtoODE "
            f"({flow}, h = 0.04, N = 25) → StiefelDense Ω₂ ({hidden}→{metadata['act_dim']}); parameter flow folded"
        ),
        "parameters": _count_parameters(metadata),
        "score": {
            "metric": "episode return",
            "how": f"mean ± std over {args.episodes} episodes, reset seeds {args.seed}…{args.seed + args.episodes - 1}",
            "mean": float(returns.mean()),
            "std": float(returns.std()),
            "per_episode": returns.tolist(),
            "seed": args.seed,
        },
        "size_bytes": 0,
        "date": datetime.date.today().isoformat(),
        "data": f"{env_id} simulator ("
        + (
            "DeepMind Control Suite through shimmy, MuJoCo)"
            if env_id.startswith("dm_control/")
            else "gymnasium, MuJoCo)"
        ),
        "train_command": from_repo_root(args.train_command),
        "score_command": f"keras-odetoode evaluate saved_models/{args.name} --episodes {args.episodes} --seed {args.seed}",
        "io": "observations (batch, obs_dim) float32 → actions (batch, act_dim), clip to the action space",
    }
    card["training"] = training_of(args.source, metadata)
    if args.goal is not None:
        card["goal"] = {"return": args.goal, "reached": bool(returns.mean() >= args.goal), "source": args.goal_source}
    card["references"] = list(args.reference)
    card["notes"] = list(args.note)
    card["signature"] = signature_of(entry)
    card["probe"] = policy_probe(entry, env_id)
    card["size_bytes"] = folder_size(entry)
    write_card(entry, card)
    print(json.dumps(card["score"], indent=1))


def _count_parameters(metadata):
    import keras

    model = keras.saving.deserialize_keras_object(metadata["model_config"])
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def make_classifier(args):
    import keras

    import keras_odetoode  # noqa: F401  (registers the layers for loading)
    from keras_odetoode.export import export_saved_model, load_serving, record_result

    entry = os.path.join(args.zoo, args.name)
    model = keras.saving.load_model(args.source)
    digits = np.load(args.digits)
    x = digits["images"].reshape(len(digits["images"]), -1).astype("float32") / 255.0
    y = digits["labels"].astype("int64")
    export_saved_model(model, entry, input_name="pixels", output_name="logits", training_command=args.train_command)
    serving = load_serving(entry)
    correct = (serving(x).argmax(1) == y).astype(float)
    accuracy = 100 * correct.mean()
    stderr = 100 * correct.std() / np.sqrt(len(correct))
    record_result(entry, {"accuracy": float(correct.mean())})
    np.savez_compressed(os.path.join(entry, "eval_digits.npz"), images=digits["images"], labels=digits["labels"])
    card = {
        "name": args.name,
        "kind": "classifier",
        "description": args.description
        or "ODEtoODE-1 classifier (gated, 1 gate reading the time, width 128, h = 0.01) of the paper's Table 1.",
        "task": "MNIST digit classification (identity config of MNIST-C)",
        "model": "Dense 784→128 → ODEtoODE (gated, 1 time gate, N = 100) → Dense 10, parameter flow folded",
        "parameters": int(model.count_params()),
        "score": {
            "metric": "% test accuracy",
            "how": f"{len(y)} held-out real digits (eval_digits.npz), ± one standard error",
            "mean": float(accuracy),
            "std": float(stderr),
            "correct": int(correct.sum()),
            "examples": int(len(y)),
        },
        "size_bytes": 0,
        "date": datetime.date.today().isoformat(),
        "data": args.data,
        "train_command": args.train_command,
        "score_command": "python -m pytest tests/test_saved_models.py",
        "io": "pixels (batch, 784) float32 in [0, 1] → logits (batch, 10)",
    }
    card["signature"] = signature_of(entry)
    card["size_bytes"] = folder_size(entry)
    write_card(entry, card)
    print(json.dumps(card["score"], indent=1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    policy = sub.add_parser("policy")
    policy.add_argument("source", help="ES run directory")
    policy.add_argument("name")
    policy.add_argument("--episodes", type=int, default=10)
    policy.add_argument("--seed", type=int, default=1000)
    policy.add_argument("--train-command", required=True)
    policy.add_argument("--description")
    policy.set_defaults(func=make_policy)
    classifier = sub.add_parser("classifier")
    classifier.add_argument("source", help=".keras model file")
    classifier.add_argument("name")
    classifier.add_argument("--digits", required=True, help="npz with the held-out images/labels it is scored on")
    classifier.add_argument("--train-command", required=True)
    classifier.add_argument("--data", required=True, help="what data it was trained on")
    classifier.add_argument("--description")
    classifier.set_defaults(func=make_classifier)
    probe = sub.add_parser("probe")
    probe.add_argument("name", help="a policy of the zoo")
    probe.set_defaults(func=add_probe)
    for command in (policy, classifier, probe):
        command.add_argument("--zoo", default=HERE, help="the folder the entry goes in (default: saved_models/)")
    policy.add_argument("--goal", type=float, help="the return this policy aimed at")
    policy.add_argument("--goal-source", default="", help="where --goal comes from")
    policy.add_argument("--reference", action="append", default=[], help="a published score on the same task")
    policy.add_argument("--note", action="append", default=[], help="a line the card adds on how the run was chosen")
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
