"""What every sparkserve handler shares: authentication, JSON errors, the repository."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..config import Settings
from ..errors import SparkserveError
from ..repository import ModelRepository

T = TypeVar("T")

API_PREFIX = "sparkserve/api/v1"


class RepositoryProvider:
    """Opens the repository on first use, so a bad setting fails a request, not the server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._repository: ModelRepository | None = None
        self._lock = threading.Lock()

    def get(self) -> ModelRepository:
        with self._lock:
            if self._repository is None:
                self._repository = ModelRepository(self.settings)
            return self._repository

    def close(self) -> None:
        with self._lock:
            if self._repository is not None:
                self._repository.close()
                self._repository = None


class SparkserveHandler(ExtensionHandlerMixin, APIHandler):
    """Base handler: answers errors as `{"error": CODE, "message": TEXT}`."""

    @property
    def provider(self) -> RepositoryProvider:
        return self.settings["sparkserve_repository"]

    async def run_core(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call off the event loop; user errors become HTTP errors."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except SparkserveError as error:
            raise SparkserveHTTPError(error) from error

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, SparkserveHTTPError):
            payload = {"error": error.code, "message": error.message}
        elif isinstance(error, web.HTTPError):
            payload = {
                "error": f"HTTP_{status_code}",
                "message": error.log_message or self._reason,
            }
        else:
            # Details go to the server log; the client learns only that it was not its fault.
            payload = {
                "error": "INTERNAL_ERROR",
                "message": "The sparkserve extension failed; the Jupyter server log has details.",
            }
        self.finish(json.dumps(payload))


class SparkserveHTTPError(web.HTTPError):
    def __init__(self, error: SparkserveError) -> None:
        super().__init__(error.http_status, log_message=error.message.replace("%", "%%"))
        self.code = error.code
        self.message = error.message
