"""keras_odetoode: ODEtoODE (Choromanski et al., NeurIPS 2020) for Keras 3."""

__version__ = "0.1.0"
