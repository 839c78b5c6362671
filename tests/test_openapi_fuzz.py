"""`schemathesis run` against openapi.yaml on a real `jupyter server`: no 500, every answer
as the spec says, what the spec allows is accepted and what it forbids is refused.

The repository holds a saved model and a workflow first, so that operations on existing
things get past 404. `tests/schemathesis.toml` lists the few operations whose acceptance
depends on the server's state (a source folder or an input file that must exist), where a
400 naming what is missing is the right answer to a body the spec cannot rule out.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _endpoint_helpers import free_port
from conftest import FAST_SAVE, TESTS_DIR

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.workflows.definitions import Workflows

SPEC = TESTS_DIR.parent / "jupyter_sparkserve" / "server" / "openapi.yaml"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "unsupported_method",
)


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path: Path, home: Path, iris, iris_model) -> None:
    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    features = tmp_path / "iris.csv"
    iris[0].to_csv(features, index=False)
    Workflows(repository).create(
        {"model": "iris:1", "input": str(features), "output": str(tmp_path / "scored.csv")},
        name="nightly",
    )
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyter-server.log"
    command = [
        sys.executable, "-m", "jupyter", "server", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    # No container engine and no cloud: a fuzzed image build or cloud deploy would be a real
    # one (minutes, disk, a developer's AWS or Azure account).
    clouds = ("AZURE", "AZUREML", "IDENTITY_", "MSI_")  # no AzureML workspace either
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(clouds)},
        "AZUREML_DEV_URL_MFE": "https://127.0.0.1:9",
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "none",
        "AWS_SECRET_ACCESS_KEY": "none",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path, env=env
        )
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status?token={token}", server, log)
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "--config-file", str(TESTS_DIR / "schemathesis.toml"), "--no-color",
                "run", str(SPEC),
                "--url", f"http://127.0.0.1:{port}/sparkserve/api/v1",
                "--header", f"Authorization: token {token}",
                "--checks", ",".join(CHECKS),
                "--max-examples", "25", "--seed", "20261201", "--workers", "1",
            ],
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
        assert "Traceback" not in log.read_text()
    finally:
        for deployment in Deployments(repository).list(active_only=True):
            Deployments(repository).undeploy(deployment.id)
        server.terminate()
        server.wait(timeout=30)


def _wait_for(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
