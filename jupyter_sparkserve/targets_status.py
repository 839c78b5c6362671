"""Which deployment targets are usable on this machine, checked quickly and without side
effects, for `status` (the sidebar greys out what cannot work here).

Each check answers in at most a few seconds: the container engine gets one `/_ping` with a
short timeout; AWS credentials are looked up where boto3 finds them without the network
(environment, config and credentials files, SSO cache), so an instance role is not probed;
an AzureML workspace counts as configured when its environment variables are set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

PING_TIMEOUT_SECONDS = 2.0
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
AZUREML_ENV = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")


@dataclass(frozen=True)
class TargetStatus:
    target: str
    usable: bool
    detail: str  # why not, or what it will use

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "usable": self.usable, "detail": self.detail}


def local_status() -> TargetStatus:
    return TargetStatus("local", True, "Endpoints run as processes on this machine.")


def container_status(environ: Mapping[str, str] | None = None) -> TargetStatus:
    """A Docker-API engine (Docker or Podman) at DOCKER_HOST, else the default socket."""
    env = os.environ if environ is None else environ
    where = env.get("DOCKER_HOST") or f"unix://{DEFAULT_DOCKER_SOCKET}"
    try:
        import docker
    except ImportError:
        return TargetStatus("container", False, "The docker package is not installed.")
    try:
        client = docker.DockerClient.from_env(environment=dict(env), timeout=PING_TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as error:  # docker-py raises many kinds; every one means "not reachable"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return TargetStatus("container", False, f"No container engine answers at {where}: {reason}")
    return TargetStatus("container", True, f"Container engine at {where}.")


def sagemaker_status() -> TargetStatus:
    try:
        import botocore.session
    except ImportError:
        return TargetStatus("sagemaker", False, "boto3 is not installed (pip install boto3).")
    session = botocore.session.get_session()
    resolver = session.get_component("credential_provider")
    for provider in ("container-role", "iam-role"):  # these ask the network, with retries
        resolver.remove(provider)
    try:
        credentials = resolver.load_credentials()
    except Exception as error:  # a broken config file, an expired SSO token, ...
        return TargetStatus("sagemaker", False, f"AWS credentials cannot be read: {error}")
    if credentials is None:
        return TargetStatus(
            "sagemaker",
            False,
            "No AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE.",
        )
    region = session.get_config_variable("region") or "no region set"
    return TargetStatus("sagemaker", True, f"AWS credentials found ({region}).")


def azureml_status(environ: Mapping[str, str] | None = None) -> TargetStatus:
    env = os.environ if environ is None else environ
    missing = [name for name in AZUREML_ENV if not env.get(name, "").strip()]
    if missing:
        return TargetStatus(
            "azureml", False, f"No AzureML workspace configured: set {', '.join(missing)}."
        )
    return TargetStatus("azureml", True, f"AzureML workspace {env['AZUREML_WORKSPACE_NAME']}.")


CHECKS: tuple[Callable[[], TargetStatus], ...] = (
    local_status,
    container_status,
    sagemaker_status,
    azureml_status,
)


def targets_status() -> list[TargetStatus]:
    """Every target's status, checked in parallel (the slowest check sets the time). A
    target this release cannot deploy to yet is not usable, whatever the machine has: the
    Deploy dialog offers exactly the usable ones, and Deploy accepts exactly those."""
    from .deploy.targets import TARGETS

    with ThreadPoolExecutor(max_workers=len(CHECKS)) as pool:
        found = list(pool.map(lambda check: check(), CHECKS))
    return [
        status
        if status.target in TARGETS
        else TargetStatus(status.target, False, f"Deploying here is not built yet. {status.detail}")
        for status in found
    ]
