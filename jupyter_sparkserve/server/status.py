"""`status`: versions, the repository this server uses, and which targets and batch engines
work here."""

from __future__ import annotations

import asyncio
import platform
from importlib.metadata import version

from tornado import web

from .. import __version__
from ..deploy.targets import targets_status
from ..scoring.engines import engines_status
from .base import SparkserveHandler


class StatusHandler(SparkserveHandler):
    @web.authenticated
    async def get(self) -> None:
        repository = await self.repository()
        stats = await self.run_core(repository.stats)
        # Both probe the container engine: side by side, not one after the other.
        targets, engines = await asyncio.gather(
            self.run_core(targets_status, self.services.deploy_defaults),
            self.run_core(engines_status),
        )
        self.reply(
            {
                "version": __version__,
                "versions": {
                    "sparkserve": __version__,
                    # From the package metadata: importing mlflow here would hold the event
                    # loop (and every other request) for seconds on a cold server.
                    "mlflow": version("mlflow"),
                    "python": platform.python_version(),
                },
                "home": str(self.services.settings.home),
                "repository": stats,
                "targets": [target.to_dict() for target in targets],
                "engines": [engine.to_dict() for engine in engines],
            }
        )
