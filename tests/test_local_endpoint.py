"""jupyter_sparkserve.deploy.local: real endpoint processes on 127.0.0.1, no mocks.

Every start loads a real MLflow model in a fresh interpreter (~5-10 s), so each test starts as
few endpoints as it can; the `endpoints` fixture stops whatever a failing test left running.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

from jupyter_sparkserve import processes
from jupyter_sparkserve.config import ENDPOINT_TOKEN_ENV
from jupyter_sparkserve.deploy.local import (
    EndpointFailed,
    EndpointState,
    LocalEndpoint,
    endpoint_state,
    start_endpoint,
    stop_endpoint,
)
from jupyter_sparkserve.errors import Conflict
from jupyter_sparkserve.processes import log_tail

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoints() -> Iterator[list[LocalEndpoint]]:
    """Endpoints a test started: stopped at the end even when the test failed half-way."""
    started: list[LocalEndpoint] = []
    yield started
    for endpoint in started:
        stop_endpoint(endpoint)


def start(endpoints: list[LocalEndpoint], model: Path, log_file: Path, **options) -> LocalEndpoint:
    endpoint = start_endpoint(model, log_file=log_file, ready_timeout=90, **options)
    endpoints.append(endpoint)
    return endpoint


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def alive(pid: int) -> bool:
    """A zombie is not alive: an orphan's new parent may be slow (or never) to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def processes_running(text: str) -> list[int]:
    """Live processes whose command line mentions `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in command and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def assert_stopped(endpoint: LocalEndpoint) -> None:
    assert refuses(endpoint.port)
    assert not alive(endpoint.pid)
    state = endpoint_state(endpoint)
    assert state.status == "failed", state


def wait_failed(endpoint: LocalEndpoint, timeout: float = 10.0) -> EndpointState:
    deadline = time.monotonic() + timeout
    while True:
        state = endpoint_state(endpoint)
        if state.status == "failed" or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def test_serves_the_model_and_stops(
    endpoints: list[LocalEndpoint], mlflow_model_dir: Path, iris, tmp_path: Path
) -> None:
    import mlflow.pyfunc

    features, _ = iris
    rows = features.iloc[::7]  # all three classes
    log_file = tmp_path / "logs" / "endpoint.log"
    endpoint = start(endpoints, mlflow_model_dir, log_file)

    assert endpoint.host == "127.0.0.1"
    assert endpoint.url == f"http://127.0.0.1:{endpoint.port}"
    assert endpoint.log_file == log_file and log_file.is_file()
    assert endpoint.command[1:4] == ["-m", "jupyter_sparkserve", "serve"]
    assert abs(endpoint.started_at - time.time()) < 300
    assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 200

    payload = {"dataframe_split": json.loads(rows.to_json(orient="split"))}
    response = requests.post(f"{endpoint.url}/invocations", json=payload, timeout=30)
    assert response.status_code == 200, response.text
    expected = mlflow.pyfunc.load_model(str(mlflow_model_dir)).predict(rows)
    assert response.json()["predictions"] == pd.Series(expected).tolist()

    state = endpoint_state(endpoint)
    assert state.status == "running", state.message
    # The details survive a JSON round trip (they are what a caller stores).
    details = json.loads(json.dumps(endpoint.to_details()))
    assert LocalEndpoint.from_details(details) == endpoint

    stop_endpoint(endpoint)
    assert_stopped(endpoint)
    stop_endpoint(endpoint)  # idempotent
    assert processes_running(str(mlflow_model_dir)) == []


def test_a_killed_endpoint_is_failed_with_its_log(
    endpoints: list[LocalEndpoint], mlflow_model_dir: Path, tmp_path: Path
) -> None:
    endpoint = start(endpoints, mlflow_model_dir, tmp_path / "endpoint.log")
    assert endpoint_state(endpoint).status == "running"

    os.killpg(endpoint.pid, signal.SIGKILL)
    state = wait_failed(endpoint)
    assert state.status == "failed"
    assert "killed by SIGKILL" in state.message
    # The log tail: the start line written before the process, and the server's own banner.
    assert "starting:" in state.message
    assert f"Serving {mlflow_model_dir} on {endpoint.url}" in state.message
    assert log_tail(endpoint.log_file) in state.message

    stop_endpoint(endpoint)  # stopping a dead endpoint is fine
    assert_stopped(endpoint)


def test_start_stop_cycles_leave_nothing_behind(
    endpoints: list[LocalEndpoint], mlflow_model_dir: Path, tmp_path: Path
) -> None:
    # Three here; test_deployments runs the ten deploy/undeploy cycles through the service.
    log_file = tmp_path / "cycles.log"  # one log, appended to by every cycle
    started = []
    for cycle in range(3):
        endpoint = start(endpoints, mlflow_model_dir, log_file)
        started.append(endpoint.pid)
        assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 200, cycle
        stop_endpoint(endpoint)
        assert refuses(endpoint.port), cycle
        assert not alive(endpoint.pid), cycle
        assert processes_running(str(mlflow_model_dir)) == [], cycle
    assert log_file.read_text().count("starting:") == 3
    assert not any(processes.is_child(pid) for pid in started)  # every child was reaped


def test_a_token_guards_the_endpoint_and_stays_secret(
    endpoints: list[LocalEndpoint], mlflow_model_dir: Path, iris, tmp_path: Path
) -> None:
    features, _ = iris
    token = secrets.token_urlsafe(24)
    endpoint = start(endpoints, mlflow_model_dir, tmp_path / "endpoint.log", token=token)

    payload = {"dataframe_split": json.loads(features.head(2).to_json(orient="split"))}
    invocations = f"{endpoint.url}/invocations"
    assert requests.post(invocations, json=payload, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.post(invocations, json=payload, headers=wrong, timeout=30).status_code == 401
    right = {"Authorization": f"Bearer {token}"}
    assert requests.post(invocations, json=payload, headers=right, timeout=30).status_code == 200
    assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 200  # open probe

    assert token.encode() not in Path(f"/proc/{endpoint.pid}/cmdline").read_bytes()
    assert token not in json.dumps(endpoint.to_details())
    assert token not in os.environ.get(ENDPOINT_TOKEN_ENV, "")
    stop_endpoint(endpoint)
    assert token not in endpoint.log_file.read_text()
    assert "with a bearer token" in endpoint.log_file.read_text()


def test_the_smtp_credentials_stay_out_of_the_endpoint(
    endpoints: list[LocalEndpoint], mlflow_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """An endpoint runs a model's code: the SMTP login of job reports is not its business."""
    password = secrets.token_urlsafe(24)
    monkeypatch.setenv("SPARKSERVE_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SPARKSERVE_SMTP_USER", "robot")
    monkeypatch.setenv("SPARKSERVE_SMTP_PASSWORD", password)
    endpoint = start(endpoints, mlflow_model_dir, tmp_path / "endpoint.log")
    environ = Path(f"/proc/{endpoint.pid}/environ").read_bytes().split(b"\0")
    names = {item.partition(b"=")[0] for item in environ}
    assert b"SPARKSERVE_SMTP_PASSWORD" not in names and b"SPARKSERVE_SMTP_USER" not in names
    assert password.encode() not in b"\0".join(environ)
    assert b"SPARKSERVE_SMTP_HOST" in names  # only the credentials are removed


def test_a_folder_that_is_no_model_fails_with_the_log(tmp_path: Path) -> None:
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "model.pkl").write_bytes(b"not a pickle")

    began = time.monotonic()
    with pytest.raises(EndpointFailed) as raised:
        start_endpoint(not_a_model, log_file=tmp_path / "endpoint.log", ready_timeout=90)
    assert time.monotonic() - began < 90
    error = raised.value
    assert error.code == "ENDPOINT_FAILED" and error.http_status == 500
    assert "exited with code 1 before it was ready" in error.message
    assert "has no MLmodel file" in error.message  # from the log tail
    assert processes_running(str(not_a_model)) == []


def test_a_busy_port_is_a_conflict(mlflow_model_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(Conflict, match=f"Port {port} "):
            start_endpoint(mlflow_model_dir, log_file=tmp_path / "endpoint.log", port=port)
    assert not (tmp_path / "endpoint.log").exists()  # refused before anything started
    assert processes_running(str(mlflow_model_dir)) == []


STARTER = """
import json, sys
from pathlib import Path
from jupyter_sparkserve.deploy.local import start_endpoint

endpoint = start_endpoint(Path(sys.argv[1]), log_file=Path(sys.argv[2]), ready_timeout=90)
print(json.dumps(endpoint.to_details()))
"""


def test_the_endpoint_outlives_its_starter(mlflow_model_dir: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "endpoint.log"
    starter = subprocess.run(
        [sys.executable, "-c", STARTER, str(mlflow_model_dir), str(log_file)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert starter.returncode == 0, starter.stderr
    endpoint = LocalEndpoint.from_details(json.loads(starter.stdout.splitlines()[-1]))
    try:
        assert not processes.is_child(endpoint.pid)  # not ours: recognised by its command
        assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 200
        assert endpoint_state(endpoint).status == "running"
    finally:
        stop_endpoint(endpoint)
    assert_stopped(endpoint)
    assert processes_running(str(mlflow_model_dir)) == []


def test_a_log_tail_counts_lines_not_progress_bar_redraws(tmp_path: Path) -> None:
    """Spark redraws its progress bar with "\\r": those are not lines, or a job log's tail
    would lose its first lines (seen in CI: the warm scorer's fork line)."""
    log = tmp_path / "log"
    log.write_text("started\n[Stage 0:>  (0 + 1) / 1]\r[Stage 0:=> (1 + 1) / 2]\rdone\nended\n")
    assert log_tail(log, 3).split("\n") == [
        "started", "[Stage 0:>  (0 + 1) / 1]\r[Stage 0:=> (1 + 1) / 2]\rdone", "ended"
    ]  # fmt: skip
    assert log_tail(log, 1) == "ended"
