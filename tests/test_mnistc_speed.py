"""`benchmarks/mnistc_speed.py` names its models as `keras-odetoode mnistc` builds them."""

import pytest

from keras_odetoode import models


def test_model_options_select_the_projection_or_the_gates(load_benchmark):
    speed = load_benchmark("mnistc_speed")
    assert speed._options("odetoode-1") == ("odetoode-1", {})
    assert speed._options("odetoode-1:stiefel") == ("odetoode-1", {"projection": "stiefel"})
    assert speed._options("odetoode-1:state") == ("odetoode-1", {"gate_inputs": "state"})
    assert speed._label("odetoode-1:state") == "ODEtoODE-1 (gates of the state)"
    assert speed._label("odetoode-1:stiefel") == "ODEtoODE-1 (stiefel projection)"
    name, options = speed._options("odetoode-1:state")
    block = models.build_classifier(name, width=4, step_size=0.25, **options).get_layer("block")
    assert block.gate_inputs == "state" and "kernel_1" in block.flow.param_dict()
    expected = r"Unknown option of 'dense-1:fast'. Expected one of: \('dense', 'stiefel', 'time', 'state'\)"
    with pytest.raises(ValueError, match=expected):
        speed._options("dense-1:fast")
