"""`python -m keras_odetoode.cli …`: the `keras-odetoode` command."""

import sys

from keras_odetoode.cli import run

sys.exit(run())
