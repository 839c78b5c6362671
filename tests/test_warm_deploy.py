"""Local endpoints, Register and Deploy started from the warm scorer's preloaded interpreter,
for real: a warm scorer process, endpoints forked from it and supervised like spawned ones
(recognised across pid reuse, a session of their own, stopped as a group, a dead one failed
with how it ended and its log), and the CLI's register and deploy run in its children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from test_local_endpoint import endpoints as endpoints  # the fixture: stops what a test started

from jupyter_sparkserve import processes
from jupyter_sparkserve.deploy import mlflow as mlflow_registry
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.local import (
    LocalEndpoint,
    endpoint_state,
    start_endpoint,
    stop_endpoint,
)
from jupyter_sparkserve.processes import log_tail
from jupyter_sparkserve.warm import client, protocol

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SPARKSERVE = str(Path(sys.executable).with_name("sparkserve"))


@pytest.fixture
def warm(warm_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A running warm scorer, used and never started by the code under test."""
    monkeypatch.setenv(protocol.MODE_ENV, "use")
    return client.start(idle_timeout=600)


def forked_runs() -> list[dict[str, Any]]:
    status = client.status()
    assert status is not None
    return [*status["in_progress"], *status["recent"]]


def wait_failed(endpoint: LocalEndpoint, *saying: str, timeout: float = 10.0) -> str:
    """The endpoint's message once it is failed and says one of `saying`: a process dying
    when read is failed ("GET /ping failed") before the warm scorer has noted how it ended."""
    deadline = time.monotonic() + timeout
    while True:
        state = endpoint_state(endpoint)
        done = state.status == "failed" and any(text in state.message for text in saying)
        if done or time.monotonic() > deadline:
            return state.message
        time.sleep(0.1)


def test_an_endpoint_forked_from_the_warm_scorer_serves_and_is_supervised(
    warm, endpoints, mlflow_model_dir: Path, iris, tmp_path: Path
) -> None:
    import mlflow.pyfunc

    log_file = tmp_path / "endpoint.log"
    endpoint = start_endpoint(mlflow_model_dir, log_file=log_file, ready_timeout=60)
    endpoints.append(endpoint)

    assert endpoint.forked and endpoint.start_stamp is not None
    [run] = [run for run in forked_runs() if run["pid"] == endpoint.pid]
    assert run["detached"] and run["lasting"] and run["command"][0] == "serve"
    assert endpoint.command[1:4] == ["-m", "jupyter_sparkserve", "serve"]
    assert os.getpgid(endpoint.pid) == endpoint.pid == os.getsid(endpoint.pid)  # its own session
    assert not processes.is_child(endpoint.pid)
    assert "(forked by the warm scorer as pid" in log_tail(log_file)
    # Answers exactly as MLflow's own model does.
    rows = iris[0].iloc[::7]
    payload = {"dataframe_split": json.loads(rows.to_json(orient="split"))}
    response = requests.post(f"{endpoint.url}/invocations", json=payload, timeout=30)
    assert response.status_code == 200, response.text
    expected = mlflow.pyfunc.load_model(str(mlflow_model_dir)).predict(rows)
    assert response.json()["predictions"] == pd.Series(expected).tolist()
    # What a caller stores finds it again.
    found = LocalEndpoint.from_details(json.loads(json.dumps(endpoint.to_details())))
    assert found == endpoint and endpoint_state(found).status == "running"

    os.killpg(endpoint.pid, signal.SIGKILL)
    message = wait_failed(endpoint, "was killed by SIGKILL")
    assert "was killed by SIGKILL" in message, message  # as the warm scorer noted it
    assert f"Serving {mlflow_model_dir} on {endpoint.url}" in message  # the log's tail
    stop_endpoint(endpoint)  # stopping a dead one is fine
    assert processes.group_members(endpoint.pid) == []


def test_a_forked_endpoint_is_stopped_as_a_group_and_never_mistaken(
    warm, endpoints, mlflow_model_dir: Path, tmp_path: Path
) -> None:
    endpoint = start_endpoint(mlflow_model_dir, log_file=tmp_path / "log", ready_timeout=60)
    endpoints.append(endpoint)
    assert endpoint.forked

    # The same pid started at another time (a recycled pid) is not the endpoint: not
    # stopped, and the endpoint it stands for is not serving.
    impostor = replace(endpoint, start_stamp=endpoint.start_stamp - 100_000)
    stop_endpoint(impostor)
    assert processes.is_running(endpoint.pid, endpoint.start_stamp)
    assert endpoint_state(impostor).status == "failed"

    stop_endpoint(endpoint)
    assert processes.group_members(endpoint.pid) == []
    message = wait_failed(endpoint, "was killed by SIGTERM", "exited with code 0")
    assert "was killed by SIGTERM" in message or "exited with code 0" in message, message


def test_a_serving_endpoint_does_not_keep_an_idle_scorer_alive(
    warm_run_dir, monkeypatch, endpoints, mlflow_model_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv(protocol.MODE_ENV, "use")
    scorer = client.start(idle_timeout=3)["pid"]
    endpoint = start_endpoint(mlflow_model_dir, log_file=tmp_path / "log", ready_timeout=60)
    endpoints.append(endpoint)
    assert endpoint.forked
    # (Watched by its pid: asking the scorer for its status would be activity.)
    deadline = time.monotonic() + 30
    while processes.pid_alive(scorer) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes.pid_alive(scorer)  # the scorer stopped; the endpoint serves on
    assert endpoint_state(endpoint).status == "running"
    stop_endpoint(endpoint)
    assert processes.group_members(endpoint.pid) == []


def test_register_and_deploy_from_the_command_line_run_in_warm_children(
    warm, repo, iris_saved: str, tmp_path: Path
) -> None:
    def sparkserve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [SPARKSERVE, *args], capture_output=True, text=True, timeout=240, env=os.environ
        )

    registered = sparkserve("register", iris_saved, "--json")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["model_uri"] == "models:/iris/1"
    deployed = sparkserve("deploy", iris_saved, "--json")
    assert deployed.returncode == 0, deployed.stderr
    deployment = json.loads(deployed.stdout)
    try:
        assert deployment["status"] == "running" and deployment["details"]["forked"]
        assert requests.get(f"{deployment['url']}/ping", timeout=5).status_code == 200
        commands = [run["command"][0] for run in forked_runs()]
        assert commands.count("register") == 1 and commands.count("deploy") == 1
        assert commands.count("serve") == 1
    finally:
        stopped = Deployments(repo).undeploy(deployment["id"])
    assert stopped.status == "stopped"
    assert processes.group_members(deployment["details"]["pid"]) == []


def test_a_preloaded_process_registers_without_importing_on_its_first_call(
    monkeypatch, repo, iris_saved: str
) -> None:
    monkeypatch.setenv(protocol.MODE_ENV, "auto")
    assert mlflow_registry.preload_in_background(repo.settings)
    # A Register arriving meanwhile waits for the preload rather than racing it.
    registration = mlflow_registry.MlflowRegistry(repo).register(iris_saved)
    assert registration.model_uri == "models:/iris/1"
    monkeypatch.setenv(protocol.MODE_ENV, "off")
    assert not mlflow_registry.preload_in_background(repo.settings)
