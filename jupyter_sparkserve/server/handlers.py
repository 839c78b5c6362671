"""REST handlers under `{base_url}sparkserve/api/v1/`."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join
from tornado import web

from .. import __version__
from .base import API_PREFIX, SparkserveHandler


class StatusHandler(SparkserveHandler):
    @web.authenticated
    async def get(self) -> None:
        repository = await self.run_core(self.provider.get)
        stats = await self.run_core(repository.stats)
        self.finish(
            {
                "version": __version__,
                "home": str(self.provider.settings.home),
                "repository": stats,
            }
        )


def handler_routes() -> list[tuple[str, Any]]:
    """Routes relative to the server's base_url (ExtensionApp prefixes it)."""
    return [(url_path_join(API_PREFIX, "status"), StatusHandler)]
