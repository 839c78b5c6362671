"""Where a deployment runs. Each target answers four questions, and nothing else differs
between them for the rest of the product: start serving a model folder, stop, is it still
serving, and which snippets reach it. Later targets (a container engine, SageMaker, AzureML)
implement the same protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..repository import ModelVersion
from ..snippets import Snippet, endpoint_curl, endpoint_python
from . import local


@dataclass(frozen=True)
class Started:
    url: str
    details: dict[str, Any]  # what the target needs to find the endpoint again; no secrets


@dataclass(frozen=True)
class TargetState:
    serving: bool
    message: str = ""


class DeploymentTarget(Protocol):
    name: str

    def start(
        self, model_dir: Path, workdir: Path, options: dict[str, Any], token: str | None
    ) -> Started: ...

    def stop(self, details: dict[str, Any]) -> None: ...

    def state(self, details: dict[str, Any]) -> TargetState: ...

    def snippets(
        self, version: ModelVersion, url: str, details: dict[str, Any]
    ) -> list[Snippet]: ...


class LocalTarget:
    """A detached `sparkserve serve` process on this machine."""

    name = "local"

    def start(
        self, model_dir: Path, workdir: Path, options: dict[str, Any], token: str | None
    ) -> Started:
        endpoint = local.start_endpoint(
            model_dir,
            log_file=workdir / "log",
            host=options.get("host", "127.0.0.1"),
            port=options.get("port"),
            token=token,
        )
        return Started(endpoint.url, {**endpoint.to_details(), "token_required": bool(token)})

    def stop(self, details: dict[str, Any]) -> None:
        local.stop_endpoint(local.LocalEndpoint.from_details(details))

    def state(self, details: dict[str, Any]) -> TargetState:
        found = local.endpoint_state(local.LocalEndpoint.from_details(details))
        return TargetState(found.status == "running", found.message)

    def snippets(self, version: ModelVersion, url: str, details: dict[str, Any]) -> list[Snippet]:
        token = bool(details.get("token_required"))
        return [endpoint_python(version, url, token), endpoint_curl(version, url, token)]


TARGETS: dict[str, DeploymentTarget] = {"local": LocalTarget()}
