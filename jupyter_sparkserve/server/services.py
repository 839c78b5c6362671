"""The core objects one Jupyter server shares between its handlers, opened on first use so
that a bad setting fails a request with a readable error instead of the server's start."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..config import Settings
from ..confinement import Confinement
from ..errors import SparkserveError
from ..repository import ModelRepository
from ..workflows import JobRunner

log = logging.getLogger("jupyter_sparkserve.server")

# Deploys waiting for their endpoint run here, not in the pool that serves requests' core
# calls, so that a few slow starts cannot hold up every handler.
BACKGROUND_THREADS = 4


class Services:
    def __init__(
        self,
        settings: Settings,
        *,
        confinement: Confinement,
        warm_scorer: bool = True,
        deploy_defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """`confinement`: the folders jobs and workflows submitted over REST stay in;
        `deploy_defaults`: the targets' configured option values."""
        self.settings = settings
        self.confinement = confinement
        self.deploy_defaults = dict(deploy_defaults or {})
        self.warm_scorer = warm_scorer
        self._repository: ModelRepository | None = None
        self._jobs: JobRunner | None = None
        self._lock = threading.Lock()
        self._background: set[asyncio.Future[Any]] = set()
        self._executor = ThreadPoolExecutor(BACKGROUND_THREADS, "sparkserve-background")

    def repository(self) -> ModelRepository:
        with self._lock:
            if self._repository is None:
                self._repository = ModelRepository(self.settings)
            return self._repository

    def jobs(self) -> JobRunner:
        """One runner for the server: creating it recovers jobs whose process died."""
        repository = self.repository()
        with self._lock:
            if self._jobs is None:
                self._jobs = JobRunner(
                    repository,
                    # A warm scorer it starts stops with this server.
                    warm_owner=os.getpid() if self.warm_scorer else None,
                    offer_warm=self.warm_scorer,
                )
            return self._jobs

    def in_background(self, what: str, function: Callable[..., Any], *args: Any) -> None:
        """Run a blocking core call on a worker thread after the response has gone; its
        outcome is recorded by the core (a failed deployment says why), so here it is only
        logged."""

        def done(future: asyncio.Future[Any]) -> None:
            self._background.discard(future)
            error = None if future.cancelled() else future.exception()
            if isinstance(error, SparkserveError):
                log.warning("%s failed: %s", what, error.message)
            elif error is not None:
                log.error("%s failed", what, exc_info=error)

        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        self._background.add(future)  # keeps a reference until it ends
        future.add_done_callback(done)

    async def drain(self, timeout: float) -> None:
        """Wait for background work (a deploy starting its endpoint) before closing."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=False)
        with self._lock:
            if self._repository is not None:
                self._repository.close()
            self._repository = None
            self._jobs = None
