"""Ended deployments that need attention, and a death noticed without a read (issue 15's
leftovers): the Jupyter server's watcher marks a killed local endpoint `failed` within a few
seconds, moving the deployments' change counter; the failed one is listed (`attention`) with
Dismiss, which the core offers exactly for an ended deployment and which forgets its record
and folder, over REST and the CLI alike."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time

import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)
from click.testing import CliRunner
from sqlalchemy import select

from jupyter_sparkserve.cli import main
from jupyter_sparkserve.deploy import tables
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.targets import targets
from jupyter_sparkserve.deploy.watch import DeploymentWatcher, check_running
from jupyter_sparkserve.errors import Conflict, NotFound
from jupyter_sparkserve.lifecycle import Action, deployment_actions
from jupyter_sparkserve.repository import ModelRepository

pytestmark = pytest.mark.timeout(400)


def recorded_status(repo: ModelRepository, deployment_id: str) -> str:
    """The row's status as stored: a plain SELECT, which asks no target anything."""
    table = tables.deployments
    with repo.engine.connect() as conn:
        return conn.execute(select(table.c.status).where(table.c.id == deployment_id)).scalar_one()


def test_dismiss_is_offered_and_accepted_exactly_for_an_ended_deployment(
    repo: ModelRepository, registered: str
) -> None:
    service = Deployments(repo)
    starting = service.begin(registered)  # recorded, not launched
    assert Action.DISMISS not in starting.actions
    with pytest.raises(Conflict, match="undeploy it first") as refused:
        service.dismiss(starting.id)
    assert refused.value.remedy is not None and refused.value.remedy.action == "undeploy"
    assert service.exists(starting.id)

    stopped = service.undeploy(starting.id)
    assert stopped.actions == deployment_actions("stopped") == [Action.DISMISS]
    assert service.list(attention=True) == []  # a stopped one is history, not attention
    folder = repo.settings.home / "deployments" / stopped.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log").write_text("what it said\n")
    assert service.dismiss(stopped.id).status == "stopped"  # as it was
    assert not service.exists(stopped.id) and not folder.exists()
    assert service.list() == []
    with pytest.raises(NotFound):
        service.dismiss(stopped.id)


def test_the_cli_dismisses_a_failed_deployment(repo: ModelRepository, registered: str) -> None:
    service = Deployments(repo)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        deployment = service.begin(registered)
        with pytest.raises(Conflict):  # taken after the check: the start fails
            service.launch(deployment.id, {"port": port})
    assert [d.id for d in service.list(attention=True)] == [deployment.id]
    assert service.list(active_only=True) == []

    refused = CliRunner().invoke(main, ["deployments", "dismiss", "nope0000", "--json"])
    assert refused.exit_code == 1 and json.loads(refused.stdout)["error"] == "NOT_FOUND"
    done = CliRunner().invoke(main, ["deployments", "dismiss", deployment.id])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == f"Dismissed {deployment.id} of iris:1 (failed)."
    assert service.list() == []


async def test_the_server_notices_a_dead_endpoint_without_a_read_and_dismiss_forgets_it(
    api: Api, repo: ModelRepository, registered: str
) -> None:
    created = await api("POST", "deployments", body={"ref": registered})
    deployment_id = created.body["id"]
    deadline = time.monotonic() + 180
    while recorded_status(repo, deployment_id) == "starting":
        assert time.monotonic() < deadline, "the deployment is still starting"
        await asyncio.sleep(0.2)
    running = await api("GET", f"deployments/{deployment_id}")
    assert running.body["status"] == "running", running.body["error"]
    assert running.body["actions"] == ["undeploy", "snippets", "monitor"]
    assert [u["action"] for u in running.body["unavailable"]] == ["dismiss"]
    busy = await api("POST", f"deployments/{deployment_id}/dismiss")
    assert (busy.status, busy.error) == (409, "CONFLICT"), busy.body
    assert busy.body["remedy"] == {"action": "undeploy", "args": {"deployment": deployment_id}}

    # Killed outside sparkserve; from now on nothing reads the deployment: only the change
    # counters are polled, as the sidebar does, and the row as stored.
    before = (await api("GET", "changes")).body["deployments"]
    os.killpg(running.body["details"]["pid"], signal.SIGKILL)
    killed = time.monotonic()
    while (await api("GET", "changes")).body["deployments"] == before:
        assert time.monotonic() - killed < 3.0, "the death was not noticed within 3 s"
        await asyncio.sleep(0.1)
    noticed = time.monotonic() - killed
    assert recorded_status(repo, deployment_id) == "failed"
    print(f"the killed endpoint was marked failed {noticed:.2f} s after the kill")

    live = await api("GET", "deployments")
    assert live.body["items"] == []
    listed = await api("GET", "deployments", params={"attention": "true"})
    (failed,) = listed.body["items"]
    assert (failed["id"], failed["status"]) == (deployment_id, "failed")
    assert failed["actions"] == ["dismiss"]
    assert "is not serving" in failed["error"] and "Last lines of" in failed["error"]

    dismissed = await api("POST", f"deployments/{deployment_id}/dismiss")
    assert (dismissed.status, dismissed.body["status"]) == (200, "failed")
    gone = await api("GET", f"deployments/{deployment_id}")
    assert (gone.status, gone.error) == (404, "NOT_FOUND")
    again = await api("POST", f"deployments/{deployment_id}/dismiss")
    assert again.status == 404
    everything = await api("GET", "deployments", params={"all": "true"})
    assert everything.body["items"] == []
    assert not (repo.settings.home / "deployments" / deployment_id).exists()

    # A stopped one is history: not in the attention list, but `all` (with it or not) has it.
    stopped = Deployments(repo).undeploy(Deployments(repo).begin(registered).id)
    assert (await api("GET", "deployments", params={"attention": "true"})).body["items"] == []
    for params in ({"all": "true"}, {"all": "true", "attention": "true"}):
        listed = await api("GET", "deployments", params=params)
        assert [d["id"] for d in listed.body["items"]] == [stopped.id], params


def test_a_watch_round_costs_a_select_and_a_read_per_running_local_deployment(
    repo: ModelRepository, registered: str
) -> None:
    """What the server pays each second: with nothing running, one SELECT; with one local
    endpoint up, that and what a read of it costs (a pid check, a GET /ping)."""
    rounds = 50

    def per_round() -> float:
        started = time.perf_counter()
        for _ in range(rounds):
            assert check_running(repo) == []
        return (time.perf_counter() - started) / rounds

    idle = per_round()
    deployment = Deployments(repo).deploy(registered)
    one = per_round()
    print(f"a watch round: {idle * 1000:.2f} ms idle, {one * 1000:.2f} ms with one endpoint up")
    assert one < 0.25  # a small share of the one-second period
    os.killpg(deployment.details["pid"], signal.SIGKILL)
    (ended,) = check_running(repo)
    assert (ended.id, ended.status) == (deployment.id, "failed")
    assert check_running(repo) == []  # a failed one is no longer watched


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sparkserve-deployment-watch"]


def test_the_watcher_runs_rounds_until_it_is_stopped(repo: ModelRepository) -> None:
    rounds: list[float] = []

    def repository() -> ModelRepository:
        rounds.append(time.monotonic())
        return repo

    watcher = DeploymentWatcher(repository, interval=0.05)
    watcher.start()
    deadline = time.monotonic() + 10
    while len(rounds) < 3:
        assert time.monotonic() < deadline, "the watcher made no rounds"
        time.sleep(0.05)
    watcher.stop()
    assert watch_threads() == []
    made = len(rounds)
    time.sleep(0.3)
    assert len(rounds) == made  # stopped: no round after


async def test_the_server_starts_the_watcher_and_stops_it_with_itself(
    api: Api, jp_serverapp
) -> None:
    assert len(watch_threads()) == 1  # started with the extension
    await jp_serverapp.cleanup_extensions()  # what a stopping server does
    assert watch_threads() == []


def test_an_endpoint_of_another_machine_is_left_to_that_machine(
    repo: ModelRepository, registered: str
) -> None:
    """A shared repository holds other machines' local endpoints: their pids mean nothing
    here, so reads and watch rounds leave them as recorded, and Undeploy says where to go."""
    from jupyter_sparkserve import processes

    service = Deployments(repo)
    deployment = service.deploy(registered, "local")
    assert deployment.details["machine"] == processes.MACHINE
    shown = targets()["local"].details(deployment.details)
    assert ("machine", processes.MACHINE) in shown
    table = tables.deployments

    def recorded_on(machine: str) -> None:
        with repo.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.id == deployment.id)
                .values(details={**deployment.details, "machine": machine})
            )

    recorded_on("another-machine")
    os.kill(deployment.details["pid"], signal.SIGKILL)
    time.sleep(0.5)
    assert service.get(deployment.id).status == "running"  # not this machine's to judge
    assert check_running(repo) == []
    with pytest.raises(Conflict, match="a process on another-machine, not on this machine"):
        service.undeploy(deployment.id)
    recorded_on(processes.MACHINE)  # back on its own machine, the death is seen
    assert service.get(deployment.id).status == "failed"


def test_a_container_on_another_machines_local_engine_is_left_to_that_machine() -> None:
    """A container deployment records its engine and machine: another machine's local socket
    cannot be asked (no state, Undeploy says where), a TCP engine can from anywhere."""
    container = targets()["container"]
    elsewhere = {"container_id": "c0ffee", "engine": "unix:///run/podman/podman.sock"}
    assert container.state({**elsewhere, "machine": "another-machine"}) is None
    with pytest.raises(Conflict, match="engine of another-machine, which this machine"):
        container.stop({**elsewhere, "machine": "another-machine"})
    shown = dict(container.details({**elsewhere, "machine": "another-machine"}))
    assert shown["engine"] == "unix:///run/podman/podman.sock"
    # A TCP engine nobody listens on is asked, and says so: the record is judged from here.
    remote = {"container_id": "c0ffee", "engine": "tcp://127.0.0.1:9", "machine": "another"}
    state = container.state(remote)
    assert state is not None and not state.serving
    assert "does not answer" in state.message
