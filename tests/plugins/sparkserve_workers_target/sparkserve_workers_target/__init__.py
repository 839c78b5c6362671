"""A deployment target from another package: the model served by a local endpoint with
several worker processes, and a label shown with the deployment. It uses only what a
plug-in author gets: the target base class, its option model and the endpoint helpers."""

from __future__ import annotations

from typing import Any

from jupyter_sparkserve.deploy import local
from jupyter_sparkserve.deploy.targets import (
    Availability,
    DeploymentTarget,
    Started,
    StartRequest,
    TargetState,
)
from jupyter_sparkserve.options import Option
from jupyter_sparkserve.snippets import endpoint_curl


class WorkersTarget(DeploymentTarget):
    name = "workers"
    title = "Local endpoint with worker processes"
    options = (
        Option("workers", "integer", "Worker processes serving the port.", default=2),
        Option("label", "string", "A note shown with the deployment.", default=""),
    )

    def check(self) -> Availability:
        return Availability(True, "Serves with several processes on this machine.")

    def start(self, request: StartRequest) -> Started:
        if request.options["workers"] < 1:
            raise ValueError("workers must be 1 or more")
        endpoint = local.start_endpoint(
            request.model_dir, log_file=request.workdir / "log", workers=request.options["workers"]
        )
        details = {**endpoint.to_details(), "label": request.options["label"]}
        return Started(endpoint.url, details)

    def stop(self, details: dict[str, Any]) -> None:
        local.stop_endpoint(local.LocalEndpoint.from_details(details))

    def state(self, details: dict[str, Any]) -> TargetState:
        found = local.endpoint_state(local.LocalEndpoint.from_details(details))
        return TargetState(found.status == "running", found.message)

    def snippets(self, version: Any, url: str, details: dict[str, Any]) -> list[Any]:
        return [endpoint_curl(version, url, token_required=False)]

    def details(self, details: dict[str, Any]) -> list[tuple[str, str]]:
        return [("workers", str(details["command"][-1])), ("label", details["label"] or "-")]
