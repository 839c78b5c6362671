"""Deploy / Undeploy over REST with real local endpoints: the 202 answer, the deployment
followed until it runs, its snippets run against it, and every refusal."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from _api import Answer, Api, api_fixture, server_config  # noqa: F401 (fixtures)

from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.errors import Conflict
from jupyter_sparkserve.repository import ModelRepository

pytestmark = pytest.mark.timeout(400)


async def settled(api: Api, deployment_id: str, timeout: float = 180.0) -> Answer:
    """The deployment once it has left `starting`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await api("GET", f"deployments/{deployment_id}")
        if answer.body["status"] != "starting":
            return answer
        assert time.monotonic() < deadline, "the deployment is still starting"
        await asyncio.sleep(0.2)


async def test_deploy_score_and_undeploy(api: Api, registered: str, iris, iris_model) -> None:
    created = await api("POST", "deployments", body={"ref": registered})
    assert created.status == 202
    assert created.body["status"] == "starting"
    deployment_id = created.body["id"]
    assert created.headers["Location"].endswith(f"/sparkserve/api/v1/deployments/{deployment_id}")
    assert (created.body["ref"], created.body["model_uri"]) == ("iris:1", "models:/iris/1")

    running = await settled(api, deployment_id)
    assert running.body["status"] == "running", running.body["error"]
    assert running.body["url"].startswith("http://127.0.0.1:")

    version = await api("GET", "models/iris/versions/1")
    assert version.body["deployed"] is True
    assert version.body["actions"] == [
        "reregister",
        "undeploy",
        "score",
        "build_image",
        "kubernetes",
        "snippets",
    ]
    assert (await api("GET", "models")).body["items"][0]["deployed"] is True
    listed = await api("GET", "deployments")
    assert [d["id"] for d in listed.body["items"]] == [deployment_id]

    snippets = (await api("GET", f"deployments/{deployment_id}/snippets")).body["snippets"]
    assert [s["language"] for s in snippets] == ["python", "shell"]
    ran = subprocess.run(
        ["bash", "-c", snippets[1]["code"]], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    expected = iris_model.predict(iris[0].head(3)).tolist()
    assert json.loads(ran.stdout)["predictions"] == expected

    again = await api("POST", "deployments", body={"name": "iris", "version": 1})
    assert (again.status, again.error) == (409, "CONFLICT")
    assert "already deployed" in again.message
    in_use = await api("DELETE", "models/iris/versions/1")
    assert (in_use.status, in_use.error) == (409, "CONFLICT")

    stopped = await api("DELETE", f"deployments/{deployment_id}")
    assert (stopped.status, stopped.body["status"]) == (200, "stopped")
    twice = await api("DELETE", f"deployments/{deployment_id}")
    assert (twice.status, twice.error) == (409, "CONFLICT")
    assert "nothing to undeploy" in twice.message
    gone = await api("GET", f"deployments/{deployment_id}/snippets")
    assert (gone.status, gone.error) == (409, "CONFLICT")
    assert (await api("GET", "deployments")).body["items"] == []
    everything = await api("GET", "deployments", params={"all": "true"})
    assert [d["status"] for d in everything.body["items"]] == ["stopped"]
    assert "deploy" in (await api("GET", "models/iris/versions/1")).body["actions"]


async def test_a_deploy_that_fails_in_the_background_says_why(
    api: Api, repo: ModelRepository, registered: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A port in use when asked is refused at once, nothing recorded (tests/test_dialogs.py)
        body = {"ref": registered, "options": {"port": port}}
        refused = await api("POST", "deployments", body=body)
        assert (refused.status, refused.body["field"]) == (409, "port")
    # Taken between the answer and the start: the start fails, and the deployment says why.
    service = Deployments(repo)
    deployment = service.begin(registered, options={"port": port})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(Conflict):
            service.launch(deployment.id, {"port": port})
    failed = await api("GET", f"deployments/{deployment.id}")
    assert failed.body["status"] == "failed"
    assert f"Port {port} on 127.0.0.1 is already in use" in failed.body["error"]
    assert (await api("GET", "models/iris/versions/1")).body["deployed"] is False


async def test_undeploy_while_starting_stops_it(
    api: Api, repo: ModelRepository, registered: str
) -> None:
    service = Deployments(repo)
    deployment = service.begin(registered)  # recorded as starting, not launched yet
    listed = await api("GET", f"deployments/{deployment.id}")
    assert listed.body["actions"] == ["undeploy"]  # offered, and so accepted
    answer = await api("DELETE", f"deployments/{deployment.id}")
    assert (answer.status, answer.body["status"]) == (200, "stopped"), answer.body
    with pytest.raises(Conflict, match="is stopped, not starting"):
        service.launch(deployment.id)  # the deploy in progress gives up: nothing runs


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"ref": "iris:2"}, 404, "NOT_FOUND", "has no version 2"),
        ({"ref": "iris:1", "target": "moon"}, 400, "INVALID_INPUT", "Unknown target 'moon'"),
        ({}, 400, "INVALID_BODY", "either as 'ref'"),
        ({"ref": "iris:1", "name": "iris"}, 400, "INVALID_BODY", "either as 'ref'"),
        ({"name": "iris"}, 400, "INVALID_BODY", "needs both 'name' and 'version'"),
        (
            {"ref": "iris:1", "options": {"port": "80"}},
            400,
            "INVALID_BODY",
            "'port' in the deploy options must be an integer",
        ),
        (
            {"ref": "iris:1", "options": {"workers": 4}},
            400,
            "INVALID_BODY",
            "Unknown field(s) 'workers' in the deploy options",
        ),
    ],
)
async def test_deploy_refusals(
    api: Api, repo: ModelRepository, mlflow_model_dir: Path, body, status, code, message
) -> None:
    repo.import_model(mlflow_model_dir, "iris")
    answer = await api("POST", "deployments", body=body)
    assert (answer.status, answer.error) == (status, code), answer.body
    assert message in answer.message


async def test_unregistered_and_unknown(api: Api, repo: ModelRepository, mlflow_model_dir) -> None:
    repo.import_model(mlflow_model_dir, "iris")
    unregistered = await api("POST", "deployments", body={"name": "iris", "version": 1})
    assert (unregistered.status, unregistered.error) == (409, "CONFLICT")
    assert "register it first" in unregistered.message
    for method, path in [
        ("GET", "deployments/nope0000"),
        ("DELETE", "deployments/nope0000"),
        ("GET", "deployments/nope0000/snippets"),
    ]:
        answer = await api(method, path)
        assert (answer.status, answer.error) == (404, "NOT_FOUND"), path
    bad = await api("GET", "deployments", params={"all": "maybe"})
    assert (bad.status, bad.error) == (400, "INVALID_INPUT")


async def test_endpoints_the_server_started_leave_no_zombies(api: Api, registered: str) -> None:
    """This process is the Jupyter server: every endpoint it started, stopped by Undeploy or
    found dead, is reaped (no <defunct> child stays behind)."""
    import os
    import signal

    import psutil

    def zombies() -> list[int]:
        children = psutil.Process().children()
        return [child.pid for child in children if child.status() == psutil.STATUS_ZOMBIE]

    first = await settled(
        api, (await api("POST", "deployments", body={"ref": registered})).body["id"]
    )
    assert first.body["status"] == "running", first.body
    os.killpg(first.body["details"]["pid"], signal.SIGKILL)
    dead = await api("GET", f"deployments/{first.body['id']}")
    assert dead.body["status"] == "failed", dead.body
    second = await settled(
        api, (await api("POST", "deployments", body={"ref": registered})).body["id"]
    )
    assert second.body["status"] == "running"
    assert (await api("DELETE", f"deployments/{second.body['id']}")).body["status"] == "stopped"
    deadline = time.monotonic() + 10
    while zombies() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert zombies() == []
