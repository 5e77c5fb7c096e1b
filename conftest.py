"""Settings for every test run, tutorials included: no display, quiet TensorFlow,
and the tutorials' quick budget (set KERAS_ODETOODE_QUICK=0 to run them in full)."""

import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_ODETOODE_QUICK", "1")
