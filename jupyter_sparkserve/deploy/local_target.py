"""The built-in `local` target: a detached `sparkserve serve` process on this machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import processes
from ..config import ENDPOINT_TOKEN_ENV
from ..errors import Conflict
from ..options import Option
from ..scoring.endpoint_config import default
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

# The endpoint's own settings a deployment may set: each option sets the `EndpointConfig`
# field of its name (`endpoint_settings`); the endpoint process reads them from
# ENDPOINT_CONFIG_ENV. Declared once here for every target that runs `scoring.server`.
ENDPOINT_CONFIG_OPTIONS = (
    Option(
        "max_batch_rows",
        "integer",
        "Most rows the endpoint merges into one model call "
        f"(default: the settings `sparkserve tune` chose, else {default('max_batch_rows')}).",
        minimum=1,
    ),
    Option(
        "max_wait_ms",
        "number",
        "Milliseconds a request may wait for others to share its model call "
        f"(default: the settings `sparkserve tune` chose, else {default('max_wait_ms'):g}).",
        minimum=0,
    ),
    Option(
        "capture",
        "boolean",
        "Record requests and answers as Parquet in the deployment's folder "
        "(`sparkserve capture ID` exports them).",
        default=default("capture"),
    ),
    Option(
        "capture_sample",
        "number",
        "The share of requests captured, 0 to 1.",
        default=default("capture_sample"),
        minimum=0,
        maximum=1,
    ),
    Option(
        "capture_max_mb",
        "integer",
        "Megabytes of capture kept; the oldest files are removed beyond it.",
        default=default("capture_max_mb"),
        minimum=1,
    ),
)
CAPTURE_FOLDER = "capture"  # in the deployment's folder
# Shadow traffic (scoring/shadow.py), for local endpoints only (a container cannot reach a
# shadow on this machine's loopback). `deployments.py` turns a deployment id into its URL.
SHADOW_OPTIONS = (
    Option(
        "shadow",
        "string",
        "Mirror answered requests to this running deployment (its id) or endpoint URL; "
        "clients get only this deployment's answers (`sparkserve compare --shadow ID`).",
    ),
    Option(
        "shadow_sample",
        "number",
        "The share of requests mirrored to the shadow, 0 to 1.",
        default=default("shadow_sample"),
        minimum=0,
        maximum=1,
    ),
)
SHADOW_FOLDER = "shadow"  # in the deployment's folder


def endpoint_settings(
    options: Mapping[str, Any], capture_folder: str, shadow_folder: str = ""
) -> dict[str, Any]:
    """The `EndpointConfig` fields a deployment's options set (None: the endpoint's default),
    capture going to `capture_folder` (and shadow pairs to `shadow_folder`) as the endpoint
    process sees it."""
    names = [option.name for option in (*ENDPOINT_CONFIG_OPTIONS, *SHADOW_OPTIONS)]
    settings = {name: options[name] for name in names if options.get(name) is not None}
    if settings.get("capture"):
        settings["capture_folder"] = capture_folder
    if settings.get("shadow"):
        settings["shadow_folder"] = shadow_folder
    return settings


def endpoint_snippets(version: Any, url: str, details: dict[str, Any]) -> list[Snippet]:
    """python and curl scoring the version's input example at an MLflow-protocol endpoint."""
    token = bool(details.get("token_required"))
    return [endpoint_python(version, url, token), endpoint_curl(version, url, token)]


class LocalTarget(DeploymentTarget):
    name = "local"
    title = "This machine"
    options = (*ENDPOINT_OPTIONS, *ENDPOINT_CONFIG_OPTIONS, *SHADOW_OPTIONS)
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
            settings=endpoint_settings(
                request.options,
                str(request.workdir / CAPTURE_FOLDER),
                str(request.workdir / SHADOW_FOLDER),
            ),
        )
        details = {**endpoint.to_details(), "token_required": bool(token)}
        if request.options.get("shadow"):
            details.update(shadow=request.options["shadow"], shadow_sample=_sample(request))
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
        if details.get("shadow"):
            share = float(details.get("shadow_sample", 1.0))
            mirrored = f"mirrors {share:.0%} of requests to {details['shadow']}"
            if details.get("shadow_deployment"):
                mirrored += f" (deployment {details['shadow_deployment']})"
            shown.append(("shadow", mirrored))
        return shown


def _sample(request: StartRequest) -> float:
    sample = request.options.get("shadow_sample")
    return float(default("shadow_sample") if sample is None else sample)


def _machine(details: dict[str, Any]) -> str:
    # (Details recorded before machines were could only come from this one.)
    return str(details.get("machine") or processes.MACHINE)
