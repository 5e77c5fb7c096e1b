"""keras_odetoode: ODEtoODE (Choromanski et al., NeurIPS 2020) for Keras 3.

Neural ODEs whose weight matrix flows on the orthogonal group, every baseline
of the paper, Riemannian optimizers, ES training and Corrupted MNIST.
"""

__version__ = "0.1.0"

from keras_odetoode import logs as _logs  # noqa: E402

_logs.import_tensorflow()  # before anything imports TensorFlow: see `logs`

from keras_odetoode import flows, integrators, layers, manifolds, optimizers  # noqa: E402
from keras_odetoode.layers import (  # noqa: E402
    NANODE,
    DeepNet,
    DeepResNet,
    HyperNetODE,
    NeuralODE,
    ODEtoODE,
    StiefelDense,
)
from keras_odetoode.optimizers import RiemannianAdam, RiemannianSGD  # noqa: E402

__all__ = [
    "__version__",
    "flows",
    "integrators",
    "layers",
    "manifolds",
    "optimizers",
    "ODEtoODE",
    "StiefelDense",
    "NeuralODE",
    "NANODE",
    "HyperNetODE",
    "DeepNet",
    "DeepResNet",
    "RiemannianSGD",
    "RiemannianAdam",
]
