"""Ray backend with `address=`: a driver joining a cluster it did not start (`ray start --head`)."""

import functools
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from keras_odetoode import cli  # noqa: E402
from keras_odetoode.es import backends, checkpoint, envs, policies  # noqa: E402
from test_cli import es_argv  # noqa: E402

POLICY_FN = functools.partial(policies.build_policy, "odetoode", 8, 2, hidden=6, seed=0)
ENV_FN = functools.partial(envs.make_env, "Swimmer-v5", 20)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head_node():
    """A Ray head in its own processes, as on a cluster's head machine: (address, its auth env).

    Ray ≥ 2.59 starts a head with token authentication; a client naming its address
    must then set RAY_AUTH_MODE=token and present the token.
    """
    # The ray command of this Python's environment (a venv run without activating it has
    # another one, or none, on PATH).
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    if not os.path.isfile(ray_cli):
        ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("no ray command beside sys.executable or on PATH")
    port = _free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **auth}
    start = [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    subprocess.run(start, check=True, capture_output=True, env=env, timeout=120)
    try:
        yield f"127.0.0.1:{port}", auth
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_es_cli_joins_a_running_cluster_by_address(head_node, tmp_path):
    # The driver is its own process, as a user's would be: Ray reads RAY_AUTH_MODE when it loads.
    address, auth = head_node
    common = es_argv(
        policy="odetoode",
        hidden=6,
        iterations=1,
        perturbations=4,
        episode_length=20,
        seed=3,
        no_progress=True,
        no_jit=True,
    )
    on_cluster, in_process = str(tmp_path / "cluster"), str(tmp_path / "local")
    command = [
        sys.executable,
        "-m",
        "keras_odetoode.cli",
        *common,
        "--backend",
        "ray",
        "--address",
        address,
        "--workers",
        "2",
        "--logdir",
        on_cluster,
    ]
    ran = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **auth}, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    port = address.rsplit(":", 1)[1]
    assert re.search(rf"Connecting to existing Ray cluster at address: [\d.]+:{port}", ran.stderr)
    assert cli.main([*common, "--backend", "local", "--logdir", in_process]) == 0

    # Given the seed, the cluster run is the in-process run, bit for bit.
    cluster_ckpt = checkpoint.load_latest(os.path.join(on_cluster, "checkpoints"))
    local_ckpt = checkpoint.load_latest(os.path.join(in_process, "checkpoints"))
    assert cluster_ckpt.state.iteration == local_ckpt.state.iteration == 1
    for name, value in local_ckpt.state.params.items():
        np.testing.assert_array_equal(cluster_ckpt.state.params[name], value)
    np.testing.assert_array_equal(
        [row["reward_mean"] for row in cluster_ckpt.history], [row["reward_mean"] for row in local_ckpt.history]
    )


def test_a_failed_connection_says_what_to_check(monkeypatch):
    def refuse(**kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs['address']}")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ConnectionError, match=r"address='10\.0\.0\.1:6379'.*RAY_AUTH_MODE=token.*ray get-auth-token"):
        backends.RayBackend(ENV_FN, POLICY_FN, workers=1, address="10.0.0.1:6379")
