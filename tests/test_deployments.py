"""Deploy / Undeploy as a user does it: real MLflow store, real endpoint processes, the
generated python and curl snippets executed against the live endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from _endpoint_helpers import run_endpoint_snippets
from click.testing import CliRunner

from jupyter_sparkserve.cli import main
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.errors import Conflict, NotFound
from jupyter_sparkserve.lifecycle import (
    DEPLOYMENT_STATUSES,
    Action,
    deployment_snippets,
    version_actions,
)
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.snippets import example_rows


def _refused(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname, parts.port)) != 0


def _expected(repo: ModelRepository, ref: str) -> list:
    version = repo.resolve(ref)
    rows = example_rows(version)
    import pandas as pd

    frame = pd.DataFrame(rows["data"], columns=rows["columns"])
    return repo.load_pyfunc(ref).predict(frame).tolist()


@pytest.fixture
def deployments(repo: ModelRepository) -> Deployments:
    service = Deployments(repo)
    yield service
    for deployment in service.list(active_only=True):  # never leave an endpoint behind
        service.undeploy(deployment.id)


def test_the_whole_lifecycle(repo, deployments: Deployments, mlflow_model_dir: Path, tmp_path):
    repo.import_model(mlflow_model_dir, "iris")
    assert [a.value for a in version_actions(repo, "iris")] == [
        "register",
        "score",
        "build_image",
        "kubernetes",
        "delete",
    ]
    with pytest.raises(Conflict, match="register it first"):
        deployments.deploy("iris")

    MlflowRegistry(repo).register("iris")
    assert "deploy" in [a.value for a in version_actions(repo, "iris")]
    deployment = deployments.deploy("iris")
    assert deployment.status == "running" and deployment.model_uri == "models:/iris/1"
    assert deployment.url.startswith("http://127.0.0.1:")
    assert [a.value for a in version_actions(repo, "iris")] == [
        "reregister", "undeploy", "score", "build_image", "kubernetes", "snippets",
    ]  # fmt: skip
    with pytest.raises(Conflict, match="already deployed"):
        deployments.deploy("iris:1")
    with pytest.raises(Conflict, match="undeploy first"):
        repo.delete_version("iris:1")

    expected = _expected(repo, "iris:1")
    snippets = deployment_snippets(repo, deployment.id).snippets
    python_answer, curl_answer = run_endpoint_snippets(snippets, tmp_path)
    assert python_answer == expected
    assert curl_answer["predictions"] == expected

    stopped = deployments.undeploy(deployment.id)
    assert stopped.status == "stopped" and _refused(deployment.url)
    with pytest.raises(Conflict, match="nothing to undeploy"):
        deployments.undeploy(deployment.id)
    assert "deploy" in [a.value for a in version_actions(repo, "iris")]
    repo.delete_version("iris:1")  # allowed again once nothing serves it


def test_a_killed_endpoint_shows_failed_with_its_log(repo, deployments, mlflow_model_dir):
    repo.import_model(mlflow_model_dir, "iris")
    MlflowRegistry(repo).register("iris")
    deployment = deployments.deploy("iris")
    os.killpg(deployment.details["pid"], signal.SIGKILL)
    seen = deployments.get(deployment.id)
    assert seen.status == "failed"
    assert "Serving" in seen.error  # the tail of the endpoint's log
    assert deployments.list(active_only=True) == []
    assert [a.value for a in version_actions(repo, "iris")][:2] == ["reregister", "deploy"]


def test_undeploy_of_an_unknown_id_is_not_found(deployments: Deployments) -> None:
    with pytest.raises(NotFound, match="No deployment 'nope0000'"):
        deployments.undeploy("nope0000")
    refused = CliRunner().invoke(main, ["undeploy", "nope0000", "--json"])
    assert refused.exit_code == 1, refused.output
    error = json.loads(refused.stdout)
    assert error["error"] == "NOT_FOUND" and "No deployment 'nope0000'" in error["message"]
    assert error["remedy"] == {"action": "list_deployments", "args": {}}
    assert error["hint"] == "sparkserve deployments list --all"


def test_undeploy_of_a_failed_deployment_is_refused(repo, deployments, mlflow_model_dir):
    repo.import_model(mlflow_model_dir, "iris")
    MlflowRegistry(repo).register("iris")
    deployment = deployments.deploy("iris")
    os.killpg(deployment.details["pid"], signal.SIGKILL)
    with pytest.raises(Conflict, match="is failed, not deployed: there is nothing to undeploy"):
        deployments.undeploy(deployment.id)
    assert deployments.get(deployment.id).status == "failed"  # refused, so left as it was
    refused = CliRunner().invoke(main, ["undeploy", deployment.id, "--json"])
    assert refused.exit_code == 1 and json.loads(refused.stdout)["error"] == "CONFLICT"
    # The version is free again: a new deploy of it is allowed.
    assert deployments.deploy("iris").status == "running"


def test_token_guards_the_endpoint_and_stays_out_of_snippets(
    repo, deployments, mlflow_model_dir, tmp_path
):
    repo.import_model(mlflow_model_dir, "iris")
    MlflowRegistry(repo).register("iris")
    token = "t0k3n-" + os.urandom(8).hex()
    deployment = deployments.deploy("iris", options={"token": token})
    body = {"dataframe_split": example_rows(repo.resolve("iris"))}
    assert requests.post(f"{deployment.url}/invocations", json=body, timeout=30).status_code == 401

    python, curl = deployment_snippets(repo, deployment.id).snippets
    assert token not in python.code and token not in curl.code
    assert token not in json.dumps(deployment.to_dict())
    (tmp_path / "score.py").write_text(python.code)
    env = {**os.environ, "SPARKSERVE_ENDPOINT_TOKEN": token}
    ran = subprocess.run(
        [sys.executable, str(tmp_path / "score.py")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.strip()) == _expected(repo, "iris")
    ran = subprocess.run(["bash", "-c", curl.code], capture_output=True, text=True, env=env)
    assert json.loads(ran.stdout)["predictions"] == _expected(repo, "iris")


def test_ten_deploy_undeploy_cycles_leave_nothing_behind(repo, deployments, mlflow_model_dir):
    repo.import_model(mlflow_model_dir, "iris")
    MlflowRegistry(repo).register("iris")
    urls, pids = [], []
    for _ in range(10):
        deployment = deployments.deploy("iris")
        assert requests.get(f"{deployment.url}/ping", timeout=10).status_code == 200
        deployments.undeploy(deployment.id)
        urls.append(deployment.url)
        pids.append(deployment.details["pid"])
    assert all(_refused(url) for url in urls)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert deployments.list(active_only=True) == []
    assert not any((repo.settings.home / "deployments").glob("*/model"))


def test_cli_deploy_show_snippets_undeploy(mlflow_model_dir: Path) -> None:
    def run(*args: str):
        result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    run("models", "import", str(mlflow_model_dir), "--name", "iris")
    refused = CliRunner().invoke(main, ["deploy", "iris", "--json"])
    assert refused.exit_code == 1 and "register it first" in json.loads(refused.stdout)["message"]
    run("register", "iris")
    deployment = run("deploy", "iris")
    try:
        assert run("deployments", "show", deployment["id"])["status"] == "running"
        assert [d["id"] for d in run("deployments", "list")] == [deployment["id"]]
        languages = [s["language"] for s in run("snippets", deployment["id"])]
        assert languages == ["python", "shell"]
    finally:
        assert run("undeploy", deployment["id"])["status"] == "stopped"
    assert run("deployments", "list") == []
    assert run("deployments", "list", "--all")[0]["status"] == "stopped"
    np.testing.assert_equal(_refused(deployment["url"]), True)


def test_a_deploy_that_died_while_starting_does_not_block_the_version(
    repo, deployments: Deployments, mlflow_model_dir: Path
) -> None:
    """A notebook interrupted mid-deploy leaves a 'starting' row; it must not pin the
    version as deployed forever."""
    from datetime import timedelta

    from sqlalchemy import update

    from jupyter_sparkserve.deploy import tables
    from jupyter_sparkserve.repository import database as db

    version = repo.import_model(mlflow_model_dir, "iris")
    deployments._insert("deadbeef0001", version, "local", "models:/iris/1", "log")
    with pytest.raises(Conflict, match="already deployed"):
        deployments._insert("deadbeef0002", version, "local", "models:/iris/1", "log")
    with pytest.raises(Conflict, match="undeploy first"):
        repo.delete_version("iris:1")
    with db.write_transaction(repo.engine) as conn:
        conn.execute(
            update(tables.deployments).values(updated_at=db.utcnow() - timedelta(minutes=20))
        )
    seen = deployments.get("deadbeef0001")
    assert seen.status == "failed" and "stopped before the endpoint came up" in seen.error
    assert deployments.active_for(version) is None
    repo.delete_version("iris:1")


def test_undeploy_is_offered_exactly_when_it_is_accepted(repo, deployments, mlflow_model_dir):
    """For every deployment status: the version's and the deployment's Undeploy action are
    there if and only if `undeploy` accepts it."""
    registry = MlflowRegistry(repo)
    for _ in range(4):
        registry.register(repo.import_model(mlflow_model_dir, "iris").ref)
    starting = deployments.begin("iris:1")  # recorded, its endpoint not launched yet
    running = deployments.deploy("iris:2")
    stopped = deployments.undeploy(deployments.deploy("iris:3").id)
    failed = deployments.deploy("iris:4")
    os.killpg(failed.details["pid"], signal.SIGKILL)
    cases = [starting, running, stopped, deployments.get(failed.id)]
    assert [d.status for d in cases] == list(DEPLOYMENT_STATUSES)
    for deployment in cases:
        offered = Action.UNDEPLOY in version_actions(repo, deployment.ref)
        assert offered == (Action.UNDEPLOY in deployments.get(deployment.id).actions)
        try:
            deployments.undeploy(deployment.id)
            accepted = True
        except Conflict:
            accepted = False
        assert offered == accepted, deployment.status
        assert deployments.get(deployment.id).status in ("stopped", "failed")
    # The deploy in progress of the one undeployed while starting gives up: nothing runs.
    with pytest.raises(Conflict, match="is stopped, not starting"):
        deployments.launch(starting.id)


def test_a_launch_does_not_resurrect_a_deployment_marked_failed_meanwhile(
    repo, deployments: Deployments, mlflow_model_dir: Path, monkeypatch
) -> None:
    from jupyter_sparkserve.deploy.targets import get_target

    repo.import_model(mlflow_model_dir, "iris")
    MlflowRegistry(repo).register("iris")
    deployment = deployments.begin("iris")
    target = get_target("local")
    real_start = target.start
    started = []

    def start_then_marked_failed(*args, **kwargs):
        started.append(real_start(*args, **kwargs))
        deployments._update(deployment.id, status="failed", error="given up on")
        return started[0]

    monkeypatch.setattr(target, "start", start_then_marked_failed)
    seen = deployments.launch(deployment.id)
    assert (seen.status, seen.error, seen.url) == ("failed", "given up on", "")
    assert _refused(started[0].url)  # the endpoint started for it was stopped again
    assert not (deployments.root / deployment.id / "model").exists()
