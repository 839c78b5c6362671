"""Azure Machine Learning through azure-ai-ml, with azure-identity's DefaultAzureCredential:
credentials come from its own chain (environment, managed identity, `az login`, ...), never
from our settings. The workspace is named by the standard variables or by options.

`workspace` answers without the network. `push_to_workspace_registry` puts a local image into
the workspace's container registry with the credentials the workspace hands out (the
registry's admin user must be enabled; the token exchange of registries without one is not
supported yet).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import AZUREML_ENVS
from ..errors import InvalidInput, SparkserveError
from ..plugins import Availability

SUBSCRIPTION_ENV, RESOURCE_GROUP_ENV, WORKSPACE_ENV = AZUREML_ENVS


class AzureError(SparkserveError):
    """What Azure refused, in its own words."""

    code = "AZURE_ERROR"
    http_status = 502


@dataclass(frozen=True)
class Workspace:
    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Workspace:
        """The workspace the options name, each part else from its standard variable."""
        parts = {
            "subscription_id": options.get("subscription_id") or os.environ.get(SUBSCRIPTION_ENV),
            "resource_group": options.get("resource_group") or os.environ.get(RESOURCE_GROUP_ENV),
            "name": options.get("workspace") or os.environ.get(WORKSPACE_ENV),
        }
        missing = [name for name, value in parts.items() if not (value or "").strip()]
        if missing:
            raise InvalidInput(
                "Name the AzureML workspace: set "
                f"{', '.join(AZUREML_ENVS)} (or give --subscription-id, --resource-group "
                "and --workspace)."
            )
        return cls(**{name: str(value).strip() for name, value in parts.items()})

    def client(self) -> Any:
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        return MLClient(credential, self.subscription_id, self.resource_group, self.name)


def availability(environ: Mapping[str, str] | None = None) -> Availability:
    """Whether azure-ai-ml is installed and a workspace is named, without the network."""
    env = os.environ if environ is None else environ
    if importlib.util.find_spec("azure.ai.ml") is None:
        return Availability(
            False, "azure-ai-ml is not installed (pip install 'jupyter_sparkserve[azure]')."
        )
    missing = [name for name in AZUREML_ENVS if not env.get(name, "").strip()]
    if missing:
        return Availability(False, f"No AzureML workspace configured: set {', '.join(missing)}.")
    return Availability(
        True, f"AzureML workspace {env[WORKSPACE_ENV]} (credentials: DefaultAzureCredential)."
    )


def said(error: BaseException) -> str:
    """What Azure said, without azure-core's wrapping."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__


def not_found(error: BaseException) -> bool:
    try:
        from azure.core.exceptions import ResourceNotFoundError
    except ImportError:
        return False
    return isinstance(error, ResourceNotFoundError)


def push_to_workspace_registry(
    ml: Any,
    workspace: Workspace,
    local_tag: str,
    repository: str,
    version: str,
    log: Callable[[str], None],
) -> str:
    """Push the engine's `local_tag` to the workspace's registry as REPOSITORY:VERSION; the
    pushed image as `LOGIN_SERVER/REPOSITORY@sha256:...`."""
    from ..containers import engine

    try:
        registry_id = ml.workspaces.get(workspace.name).container_registry
        credentials = ml.workspaces.get_keys(workspace.name).container_registry_credentials
    except Exception as error:
        raise AzureError(
            f"The workspace's container registry cannot be read: {said(error)}"
        ) from error
    if not registry_id or credentials is None or not credentials.passwords:
        raise AzureError(
            f"Workspace {workspace.name} hands out no registry credentials: enable the admin user "
            "of its container registry, or give --image, an image already in it."
        )
    login_server = f"{registry_id.rstrip('/').rsplit('/', 1)[-1].lower()}.azurecr.io"
    remote = f"{login_server}/{repository}:{version}"
    engine.tag_image(local_tag, remote)
    log(f"Pushing {remote}")
    auth = {
        "username": credentials.username,
        "password": credentials.passwords[0].value,
        "serveraddress": login_server,
    }
    return engine.push_image(remote, log, auth_config=auth)
