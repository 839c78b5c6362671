"""What every sparkserve handler shares: JSON in and out, errors as
`{"error": CODE, "message": TEXT}`, and core calls kept off the event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from .. import shapes
from ..errors import InvalidInput, SparkserveError
from ..repository import ModelRepository
from . import bodies
from .services import Services

T = TypeVar("T")

API_PREFIX = "sparkserve/api/v1"
# jupyter_server's own providers know no names: whoever holds the token or password gets a
# made-up "Anonymous ..." user, so the one person running the server is the OS user. (Its
# legacy provider, around a custom login handler, and any other may name real users.)
NAMELESS_PROVIDERS = (IdentityProvider, PasswordIdentityProvider)


class SparkserveHTTPError(web.HTTPError):
    def __init__(self, error: SparkserveError) -> None:
        super().__init__(error.http_status, log_message=error.message.replace("%", "%%"))
        self.error = error


class SparkserveHandler(ExtensionHandlerMixin, APIHandler):
    """Base handler. Subclasses only translate: read the request, call the core, answer."""

    @property
    def services(self) -> Services:
        return self.settings["sparkserve_services"]

    async def run_core(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call off the event loop; user errors become HTTP errors."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except SparkserveError as error:
            raise SparkserveHTTPError(error) from error

    @property
    def user_name(self) -> str | None:
        """Who the request is from, as the core records it (`created_by`): the authenticated
        user's name (JupyterHub's, for one), or None for the core's own: the server's OS user
        (SPARKSERVE_USER) when the identity provider knows no names."""
        if type(self.identity_provider) in NAMELESS_PROVIDERS:
            return None
        return getattr(self.current_user, "username", None)

    async def repository(self) -> ModelRepository:
        return await self.run_core(self.services.repository)

    async def body(
        self, parser: Callable[[Any], T], *, max_bytes: int = bodies.MAX_BODY_BYTES
    ) -> T:
        """The JSON body, parsed by one of `bodies`' parsers off the event loop (a large body
        must not hold up every other request of the server); larger than `max_bytes`: 413."""
        raw = self.request.body
        try:
            bodies.check_size(raw, max_bytes)
        except SparkserveError as error:
            raise SparkserveHTTPError(error) from error
        return await self.run_core(lambda: parser(bodies.decode(raw)))

    def query_argument(self, name: str) -> str | None:
        """The one value of query parameter `name`, or None. Given twice, it is refused: which
        one counts would otherwise be a guess (and a bad first value would go unseen)."""
        values = self.get_arguments(name)
        if len(values) > 1:
            raise SparkserveHTTPError(
                InvalidInput(f"Query parameter {name} is given {len(values)} times: give it once.")
            )
        return values[0] if values else None

    def int_argument(
        self, name: str, default: int | None, *, minimum: int = 0, maximum: int | None = None
    ) -> int | None:
        text = self.query_argument(name)
        if text is None or text == "":
            return default
        value = shapes.whole_number(text)
        maximum = shapes.MAX_STORED_INTEGER if maximum is None else maximum
        if value is None or value < minimum or value > maximum:
            upper = f" and at most {maximum}"
            raise SparkserveHTTPError(
                InvalidInput(
                    f"Query parameter {name} must be a whole number of at least {minimum}{upper}, "
                    f"got {text!r}."
                )
            )
        return value

    def bool_argument(self, name: str) -> bool:
        text = (self.query_argument(name) or "").lower()
        if text not in ("", "0", "1", "false", "true"):
            raise SparkserveHTTPError(
                InvalidInput(f"Query parameter {name} must be true or false, got {text!r}.")
            )
        return text in ("1", "true")

    def reply(self, payload: dict[str, Any], status: int = 200, location: str = "") -> None:
        self.set_status(status)
        if location:
            self.set_header("Location", self.api_url(location))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    def allowed_methods(self) -> list[str]:
        return [
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower(), None) is not getattr(APIHandler, method.lower())
        ]

    def api_url(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}/{path}"

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        if status_code == 405:  # which methods this resource takes, as RFC 9110 asks
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, SparkserveHTTPError):
            payload = error.error.to_dict()  # with the remedy as data: the sidebar's button
            if error.error.field:  # where a dialog shows the message
                payload["field"] = error.error.field
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
