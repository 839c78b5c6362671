"""The built-in `local` target: a detached `sparkserve serve` process on this machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import processes
from ..config import ENDPOINT_TOKEN_ENV
from ..errors import Conflict
from ..options import Option
from ..snippets import Snippet, endpoint_curl, endpoint_python
from . import local
from .targets import Availability, DeploymentTarget, Started, StartRequest, TargetState

# Every target serving an HTTP endpoint on this machine takes these (the container target too).
ENDPOINT_OPTIONS = (
    Option("host", "string", "The address the endpoint is reached at.", default="127.0.0.1"),
    Option(
        "port", "integer", "The endpoint's port (default: a free one).", minimum=1, maximum=65535
    ),
    Option(
        "token",
        "string",
        "A bearer token the endpoint will require.",
        secret=True,
        env=ENDPOINT_TOKEN_ENV,
    ),
)


def endpoint_snippets(version: Any, url: str, details: dict[str, Any]) -> list[Snippet]:
    """python and curl scoring the version's input example at an MLflow-protocol endpoint."""
    token = bool(details.get("token_required"))
    return [endpoint_python(version, url, token), endpoint_curl(version, url, token)]


class LocalTarget(DeploymentTarget):
    name = "local"
    title = "This machine"
    options = ENDPOINT_OPTIONS
    watched = True  # state: a pid check and a GET /ping on loopback

    def check(self) -> Availability:
        return Availability(True, "Endpoints run as processes on this machine.")

    def preflight(self, options: Mapping[str, Any]) -> None:
        local.require_free_port(options["host"], options["port"] or None)

    def start(self, request: StartRequest) -> Started:
        token = request.options["token"]
        endpoint = local.start_endpoint(
            request.model_dir,
            log_file=request.workdir / "log",
            host=request.options["host"],
            port=request.options["port"],
            token=token,
        )
        details = {**endpoint.to_details(), "token_required": bool(token)}
        return Started(endpoint.url, {**details, "machine": processes.MACHINE})

    def stop(self, details: dict[str, Any]) -> None:
        machine = _machine(details)
        if machine != processes.MACHINE:
            raise Conflict(
                f"This endpoint is a process on {machine}, not on this machine "
                f"({processes.MACHINE}): stop it from a server or a notebook there."
            )
        local.stop_endpoint(local.LocalEndpoint.from_details(details))

    def state(self, details: dict[str, Any]) -> TargetState | None:
        if _machine(details) != processes.MACHINE:
            return None  # its pid means nothing here: its own machine watches it
        found = local.endpoint_state(local.LocalEndpoint.from_details(details))
        return TargetState(found.status == "running", found.message)

    def snippets(self, version: Any, url: str, details: dict[str, Any]) -> list[Snippet]:
        return endpoint_snippets(version, url, details)

    def details(self, details: dict[str, Any]) -> list[tuple[str, str]]:
        shown = [
            ("machine", _machine(details)),
            ("process", str(details.get("pid", "-"))),
            ("log", str(details.get("log_file"))),
        ]
        if details.get("token_required"):
            shown.append(("token", f"required (${ENDPOINT_TOKEN_ENV})"))
        return shown


def _machine(details: dict[str, Any]) -> str:
    # (Details recorded before machines were could only come from this one.)
    return str(details.get("machine") or processes.MACHINE)
