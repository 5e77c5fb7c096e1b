"""Classifier zoo of the supervised experiments (paper §5.2, Tables 1–2).

Every classifier is the same three-part network on flattened 28×28 images,

    image (784) → projection (784 → w) → block (w → w) → [dropout] → Dense(10) logits

and only the block differs between the columns of Tables 1–2:

| name        | block on width w                                                |
|-------------|-----------------------------------------------------------------|
| dense-k     | `DeepNet(k)`: k fully connected ReLU layers (k hidden layers)   |
| node        | `NeuralODE`: autonomous ẋ = g(x), g an MLP with 2 hidden layers |
| nanode-k    | `NANODE(degree=k)`: W_t trigonometric of degree k               |
| hypernet-k  | `HyperNetODE(num_gates=k)`: W_t from a coupled neural ODE       |
| odetoode-k  | `ODEtoODE(flow="gated", num_gates=k)`: W_t on O(w) (Eqs. 5–6)   |

ODEtoODE's gate networks read the time by default; `gate_inputs="state"`
makes them the paper's hypernetwork of W_t (Sec. 1, 3.1), HyperNet's MLP
constrained to O(w), with as many parameters as HyperNet-k.

ODE blocks integrate on [0, 1] with step h = `step_size` (0.01 in the paper,
N = 100 steps). Table 1: w = 128, no dropout; Table 2: w = 256, dropout 0.1.

The projection is a plain `Dense(w)` (linear, with bias) for every model,
ODEtoODE included. The paper compares "fully-connected variants of all
models" (§5.2.2), so the projection and the head are kept identical and the
table measures the block alone. `projection="stiefel"` gives the model the
orthonormal input map Ω₁ ∈ ST(784, w) of Eq. 5 instead (`StiefelDense`), for
ablations. It is not the default because with `RiemannianAdam` every step of a tall
784×w Stiefel kernel takes the exponential of a 784×784 skew generator
(`manifolds.retract`). At w = 128 that retraction alone took 55 ms per step on 2 CPU cores.
That is about a fifth of ODEtoODE-1's training step and some 40× Dense-1's whole step
(benchmarks/mnistc_speed.py).

A Dense-1 has a linear projection followed by one ReLU layer. Two linear maps compose to
one, so it represents exactly the one-hidden-layer perceptron 784 → w → 10.
It has w² + w more parameters, and it gets the same projection as every other column.

Example:
    >>> model = compile_classifier(build_classifier("odetoode-1", width=128))
    >>> model.fit(train_dataset, epochs=100)
"""

import dataclasses
import re

import keras

from keras_odetoode import flows, layers
from keras_odetoode.checks import check_integer, check_range
from keras_odetoode.optimizers import RiemannianAdam

INPUT_DIM = 784
NUM_CLASSES = 10
PROJECTIONS = ("dense", "stiefel")


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """One column family of Tables 1–2.

    Attributes:
        name: lower-case name, the prefix of a model name ("odetoode").
        display: the paper's spelling ("ODEtoODE").
        k_meaning: what the suffix k counts, or None if the family has no k.
        k_minimum: smallest allowed k.
        block: `block(width, k, step_size, seed)` → a Keras layer (w → w).
    """

    name: str
    display: str
    k_meaning: str | None
    k_minimum: int
    block: object


def _seed(seed, offset):
    return None if seed is None else seed + offset


FAMILIES = {
    family.name: family
    for family in (
        ModelFamily(
            "dense",
            "Dense",
            "hidden layers",
            1,
            lambda width, k, step_size, seed: layers.DeepNet(k, activation="relu", seed=seed, name="block"),
        ),
        ModelFamily(
            "node",
            "NODE",
            None,
            1,
            lambda width, k, step_size, seed: layers.NeuralODE(step_size=step_size, seed=seed, name="block"),
        ),
        ModelFamily(
            "nanode",
            "NANODE",
            "trigonometric degree",
            0,
            lambda width, k, step_size, seed: layers.NANODE(degree=k, step_size=step_size, seed=seed, name="block"),
        ),
        ModelFamily(
            "hypernet",
            "HyperNet",
            "gates",
            1,
            lambda width, k, step_size, seed: layers.HyperNetODE(
                num_gates=k, step_size=step_size, seed=seed, name="block"
            ),
        ),
        ModelFamily(
            "odetoode",
            "ODEtoODE",
            "gates",
            1,
            lambda width, k, step_size, seed, gate_inputs="time": layers.ODEtoODE(
                flow="gated", num_gates=k, gate_inputs=gate_inputs, step_size=step_size, seed=seed, name="block"
            ),
        ),
    )
}

_NAME_PATTERN = re.compile(r"^([a-z]+)(?:-(\d+))?$")


def _valid_names():
    return ", ".join(f"{name}-K" if family.k_meaning else name for name, family in FAMILIES.items())


def parse_model_name(name):
    """Split a model name of Tables 1–2 into its family and k.

    Case-insensitive: "ODEtoODE-10" and "odetoode-10" are the same model. A
    family that takes k may omit it (k = 1); NODE takes none.

    Args:
        name: e.g. "dense-1", "odetoode-10", "nanode-1", "node".

    Returns:
        `(family, k)`: the family name and k, an int (None for "node").

    Raises:
        ValueError: for an unknown family, a malformed name, a k below the
            family's minimum, or a k given to NODE.
        TypeError: if `name` is not a string.

    Example:
        >>> parse_model_name("ODEtoODE-10")
        ('odetoode', 10)
    """
    if not isinstance(name, str):
        raise TypeError(f"A model name must be a string. Received: name={name!r} of type {type(name).__name__}")
    match = _NAME_PATTERN.match(name.strip().lower())
    family = FAMILIES.get(match.group(1)) if match else None
    if family is None:
        raise ValueError(
            f"Unknown model name. Received: name={name!r}. Expected one of: {_valid_names()} "
            "(K an integer, e.g. dense-1, odetoode-10)"
        )
    suffix = match.group(2)
    if family.k_meaning is None:
        if suffix is not None:
            raise ValueError(f"{family.display} takes no -K suffix. Received: name={name!r}. Expected: {family.name!r}")
        return family.name, None
    k = 1 if suffix is None else int(suffix)
    if k < family.k_minimum:
        raise ValueError(
            f"{family.display}-K needs K ≥ {family.k_minimum} ({family.k_meaning}). Received: name={name!r}"
        )
    return family.name, k


def model_name(family, k=None):
    """The canonical name of a model: `model_name("odetoode", 1)` → "odetoode-1"."""
    return family if FAMILIES[family].k_meaning is None else f"{family}-{k}"


def display_name(name):
    """The paper's column title of a model name: "odetoode-1" → "ODEtoODE-1"."""
    family, k = parse_model_name(name)
    display = FAMILIES[family].display
    return display if k is None else f"{display}-{k}"


def build_classifier(
    name, width=128, k=None, dropout=0.0, step_size=0.01, seed=None, projection="dense", gate_inputs=None
):
    """A Corrupted-MNIST classifier of Tables 1–2: 784 inputs → 10 logits.

    Args:
        name: a family ("dense", "node", "nanode", "hypernet", "odetoode") or a
            full model name with its k ("odetoode-10"; see `parse_model_name`).
        width: w, the hidden width (128 in Table 1, 256 in Table 2).
        k: hidden layers (dense), trigonometric degree (nanode) or gates
            (hypernet, odetoode). Default: the name's suffix, else 1. Not
            allowed for NODE, nor when it contradicts the name's suffix.
        dropout: rate of the dropout before the head (0.1 in Table 2).
        step_size: h of the ODE blocks on [0, 1] (0.01: N = 100 steps).
        seed: int seed of every initializer and of the dropout; None: random.
        projection: "dense" (default, every model) or "stiefel" (an
            orthonormal `StiefelDense`, Ω₁ of Eq. 5).
        gate_inputs: ODEtoODE only: what its gate networks read, "time"
            (the default) or "state" (the paper's hypernetwork of W, as
            large as HyperNet's; see `flows.GatedFlow`).

    Returns:
        An uncompiled functional `keras.Model` named after the model (e.g.
        "odetoode-1"), input (batch, 784) floats, output (batch, 10) logits;
        layers "projection", "block", ["dropout",] "logits".

    Raises:
        ValueError: for an unknown name or an argument out of range, saying
            what was received and what is allowed.

    Example:
        >>> model = build_classifier("odetoode-1", width=128)
        >>> model.output_shape
        (None, 10)
    """
    family, suffix_k = parse_model_name(name)
    meta = FAMILIES[family]
    if k is not None:
        if meta.k_meaning is None:
            raise ValueError(f"{meta.display} takes no k. Received: name={name!r}, k={k!r}. Expected: k=None")
        check_integer("k", k, meta.k_minimum)
        if "-" in name and suffix_k != k:
            raise ValueError(
                f"k contradicts the model name. Received: name={name!r}, k={k!r}. "
                "Expected: k=None or equal to the name's suffix"
            )
        suffix_k = int(k)
    width = check_integer("width", width, 1)
    check_range("dropout", dropout, 0.0, 1.0, include_maximum=False)
    if projection not in PROJECTIONS:
        raise ValueError(f"Unknown projection. Received: projection={projection!r}. Expected one of: {PROJECTIONS}")
    if seed is not None:
        seed = check_integer("seed", seed, 0)
    block_options = {}
    if gate_inputs is not None:
        if family != "odetoode":
            raise ValueError(
                f"gate_inputs is an option of ODEtoODE's gated flow only. Received: name={name!r}, "
                f"gate_inputs={gate_inputs!r}. Expected: gate_inputs=None"
            )
        block_options["gate_inputs"] = flows.check_gate_inputs(gate_inputs)

    inputs = keras.Input((INPUT_DIM,), name="image")
    if projection == "stiefel":
        project = layers.StiefelDense(width, seed=_seed(seed, 0), name="projection")
    else:
        project = keras.layers.Dense(
            width, kernel_initializer=keras.initializers.GlorotUniform(_seed(seed, 0)), name="projection"
        )
    x = project(inputs)
    x = meta.block(width, suffix_k, step_size, _seed(seed, 10), **block_options)(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, seed=_seed(seed, 20), name="dropout")(x)
    logits = keras.layers.Dense(
        NUM_CLASSES, kernel_initializer=keras.initializers.GlorotUniform(_seed(seed, 30)), name="logits"
    )(x)
    return keras.Model(inputs, logits, name=model_name(family, suffix_k))


def compile_classifier(model, learning_rate=1e-3, amsgrad=False):
    """Compile a classifier with `RiemannianAdam`, cross-entropy on logits and accuracy.

    `RiemannianAdam` moves the orthogonal W_0 of ODEtoODE (and a Stiefel
    projection) along its manifold and every other weight exactly as Adam.
    `jit_compile="auto"`: XLA where Keras picks it (a GPU), not on a CPU, where
    it made the flows slower (`benchmarks/layer_speed.py`).

    Args:
        model: a model from `build_classifier` (or any logits model).
        learning_rate: Adam's step size.
        amsgrad: divide each step by the largest second moment so far (RAMSGrad for
            the manifold weights); `benchmarks/mnistc_collapse.py` measures what it
            changes.

    Returns:
        `model`, compiled (metric "accuracy" = sparse categorical accuracy).
    """
    check_range("learning_rate", learning_rate, 0.0)
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0. Received: learning_rate={learning_rate!r}")
    model.compile(
        optimizer=RiemannianAdam(learning_rate, amsgrad=amsgrad),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile="auto",
    )
    return model
