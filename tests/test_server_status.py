"""`status` over REST and the target checks behind it: a container engine (a Docker-API
server on a unix socket that the test runs), AWS credentials, an AzureML workspace."""

from __future__ import annotations

import importlib.util
import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)

from jupyter_sparkserve import __version__
from jupyter_sparkserve.deploy.planned import aws_credentials as sagemaker_status
from jupyter_sparkserve.deploy.planned import azureml_workspace as azureml_status
from jupyter_sparkserve.deploy.planned import container_engine as container_status
from jupyter_sparkserve.deploy.targets import targets_status
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository import database as db


class FakeEngine(BaseHTTPRequestHandler):
    """The two calls a ping makes to a Docker-API engine."""

    def do_GET(self) -> None:
        if self.path.endswith("/version"):
            body, kind = json.dumps({"ApiVersion": "1.41", "Version": "fake"}), "application/json"
        elif self.path.endswith("/_ping"):
            body, kind = "OK", "text/plain"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:  # a unix socket client has no address
        pass


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "engine.sock"
    server = socketserver.ThreadingUnixStreamServer(str(path), FakeEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


async def test_status_reports_repository_versions_and_targets(
    api: Api, repo: ModelRepository, mlflow_model_dir: Path, home: Path, monkeypatch, tmp_path
) -> None:
    import mlflow

    repo.import_model(mlflow_model_dir, "iris")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(name, raising=False)
    answer = await api("GET", "status")
    assert answer.status == 200
    body = answer.body
    assert body["versions"]["sparkserve"] == body["version"] == __version__
    assert body["versions"]["mlflow"] == mlflow.__version__
    assert body["home"] == str(home)
    assert body["repository"] == {"models": 1, "versions": 1, "schema_version": db.SCHEMA_VERSION}
    targets = {t["target"]: t for t in body["targets"]}
    assert list(targets) == ["local", "container", "sagemaker", "azureml"]
    assert targets["local"]["usable"] is True
    assert targets["container"]["usable"] is False
    assert (
        f"No container engine answers at unix://{tmp_path}/no-engine.sock"
        in (targets["container"]["detail"])
    )
    assert targets["azureml"]["usable"] is False


def test_a_reachable_engine_is_usable(engine_socket: Path) -> None:
    found = container_status({"DOCKER_HOST": f"unix://{engine_socket}"})
    assert found.usable, found.detail
    assert found.detail == f"Container engine at unix://{engine_socket}."


def test_a_target_not_built_yet_is_never_usable(
    engine_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{engine_socket}")
    targets = {found.target: found for found in targets_status()}
    assert targets["local"].usable
    assert not targets["container"].usable  # the engine answers, but Deploy cannot use it
    assert targets["container"].detail.startswith("Deploying here is not built yet.")
    assert "Container engine at" in targets["container"].detail


def test_azureml_needs_its_workspace_variables() -> None:
    missing = azureml_status({"AZURE_SUBSCRIPTION_ID": "s"})
    assert not missing.usable
    assert "set AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME" in missing.detail
    configured = azureml_status(
        {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_RESOURCE_GROUP": "g", "AZUREML_WORKSPACE_NAME": "w"}
    )
    assert configured.usable and configured.detail == "AzureML workspace w."


def test_aws_credentials_are_looked_up_without_the_network(monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    if importlib.util.find_spec("botocore") is None:
        found = sagemaker_status()
        assert not found.usable and "boto3 is not installed" in found.detail
        return
    assert not sagemaker_status().usable  # and no instance-role probe: it answers at once
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert sagemaker_status().usable


def test_all_targets_are_checked() -> None:
    assert [t.target for t in targets_status()] == ["local", "container", "sagemaker", "azureml"]
