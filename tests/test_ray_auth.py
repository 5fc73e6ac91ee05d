"""A Ray cluster that requires token authentication (Ray 2.59 and later turn it on for `ray start
--head`), joined by a process without the token: one line that names token authentication and
what to set, instead of Ray's retries and "cannot join" (issue 19, row 5). A module of its own:
it stops every Ray process on the machine when it ends."""
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA, assert_clean_failure, run_cli

pytestmark = pytest.mark.ray

RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def token_cluster():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    proc = subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                           "--disable-usage-stats", "--object-store-memory=100000000"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=180)


def test_a_cluster_that_wants_a_token_is_named(token_cluster, prepared, tmp_path):
    ws = prepared(tmp_path / "ws", "yolact_edge_mobilenetv2_config")
    env = {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": ""}
    proc = run_cli("-w", ws.root, "predict", DATA / "coffee.png", "--engine", "ray", "--ray-address", token_cluster,
                   "-o", tmp_path / "out", env=env, timeout=240)
    line = assert_clean_failure(proc, "requires token authentication", "RAY_AUTH_MODE=token", code=4)
    assert token_cluster in line
    assert "InvalidAuthToken" not in proc.stderr  # Ray's retry lines went to the workspace's log
    assert "InvalidAuthToken" in (ws.root / "logs" / "ray.log").read_text()
