"""The deployment watcher: a long-running process (the Jupyter server) looks at the running
deployments of targets whose `state` is cheap (`DeploymentTarget.watched`: local endpoints)
every second, so an endpoint that dies on its own is marked `failed` within a second or two
instead of at the next read. Marking it is a write to the deployments table, which moves
their change counter: every face that polls `changes` (the sidebar) sees it at once.

A round costs one SELECT of the watched running deployments' ids, and for each of them what
any read costs (`Deployments.get`): its row, a pid check and a GET /ping on loopback. With
no running local deployment a round is that one SELECT.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import select

from ..errors import NotFound
from ..repository import ModelRepository
from . import tables
from .deployments import Deployment, Deployments
from .targets import targets

log = logging.getLogger("jupyter_sparkserve.watch")

WATCH_SECONDS = 1.0


def check_running(repository: ModelRepository) -> list[Deployment]:
    """One round: each watched running deployment read as it is now (one found dead is
    marked failed by the read); the ones that are no longer running."""
    watched = [name for name, target in targets().items() if target.watched]
    if not watched:
        return []
    table = tables.deployments
    query = select(table.c.id).where(table.c.status == "running", table.c.target.in_(watched))
    with repository.engine.connect() as conn, conn.begin():
        ids = conn.execute(query).scalars().all()
    service = Deployments(repository)
    ended = []
    for deployment_id in ids:
        try:
            deployment = service.get(deployment_id)
        except NotFound:  # dismissed or deleted since the SELECT
            continue
        if deployment.status != "running":
            ended.append(deployment)
    return ended


class DeploymentWatcher:
    """Runs `check_running` every `interval` seconds on a daemon thread until `stop`.
    `repository` is called each round (a server opens its repository on first use)."""

    def __init__(
        self, repository: Callable[[], ModelRepository], interval: float = WATCH_SECONDS
    ) -> None:
        self._repository = repository
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_problem = ""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="sparkserve-deployment-watch", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the round in progress (a round waits at most for one GET /ping)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                for ended in check_running(self._repository()):
                    log.info("Deployment %s of %s is %s.", ended.id, ended.ref, ended.status)
                self._last_problem = ""
            except Exception as error:  # a repository that cannot open now: said once
                problem = f"{type(error).__name__}: {error}"
                if problem != self._last_problem:
                    log.warning("Watching the deployments failed: %s", problem)
                self._last_problem = problem
