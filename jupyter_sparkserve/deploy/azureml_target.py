"""The `azureml` target: the version's image in the workspace's container registry, served by
a managed online endpoint of Azure Machine Learning.

Deploy builds the image (or takes one given), pushes it to the workspace's registry, creates
a managed online endpoint (key authentication) and a deployment of the image as a custom
container (its liveness and readiness routes on `/ping`, scoring on `/invocations`, port
8080; the model is in the image, so no model asset is registered), sends all traffic to it,
and waits for both to have Succeeded. A failed deploy deletes the endpoint it made (with its
deployment). Undeploy deletes the endpoint. The key is never stored: the snippets read it
from $AZUREML_ENDPOINT_KEY.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..clouds import azure
from ..containers.layout import PORT
from ..errors import Conflict, InvalidInput
from ..options import Option
from ..snippets import Snippet, example_payload, shell_quoted_json, variable_name
from .container_target import BASE_IMAGE_OPTION, build_deployment_image
from .local import EndpointFailed
from .targets import (
    Availability,
    DeploymentTarget,
    Started,
    StartRequest,
    TargetState,
    log_appender,
    undo_start,
)

KEY_ENV = "AZUREML_ENDPOINT_KEY"
INSTANCE_TYPE_ENV = "SPARKSERVE_AZUREML_INSTANCE_TYPE"
DEPLOYMENT = "sparkserve"
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]")  # AzureML's endpoint names


class AzureMLTarget(DeploymentTarget):
    name = "azureml"
    title = "Azure Machine Learning"
    metrics_unreachable = (
        "a managed online endpoint passes only scoring requests to the container, so its "
        "/metrics cannot be read from here; its figures are in Azure Monitor "
        "(RequestsPerMinute, RequestLatency), which this monitor does not read."
    )
    menu_label = "Deploy to AzureML…"
    start_limit_seconds = 3 * 3600.0
    options = (
        Option("subscription_id", "string", "The Azure subscription.", env=azure.SUBSCRIPTION_ENV),
        Option(
            "resource_group",
            "string",
            "The workspace's resource group.",
            env=azure.RESOURCE_GROUP_ENV,
        ),
        Option("workspace", "string", "The AzureML workspace.", env=azure.WORKSPACE_ENV),
        Option(
            "instance_type",
            "string",
            "The VM size that serves it.",
            default="Standard_DS3_v2",
            env=INSTANCE_TYPE_ENV,
        ),
        Option("instance_count", "integer", "How many instances serve it.", default=1, minimum=1),
        Option("endpoint_name", "string", "The endpoint (default: sparkserve-NAME-VERSION)."),
        Option("image", "string", "An image in the workspace's registry (default: build, push)."),
        BASE_IMAGE_OPTION,
    )

    def check(self) -> Availability:
        return azure.availability()

    def start(self, request: StartRequest) -> Started:
        options = request.options
        workspace = azure.Workspace.from_options(options)
        if options["instance_count"] < 1:
            raise InvalidInput("instance_count must be at least 1.")
        endpoint = options["endpoint_name"] or endpoint_name(request.ref)
        if not _NAME.fullmatch(endpoint):
            raise InvalidInput(
                f"{endpoint!r} is not an AzureML endpoint name: 3 to 32 letters, digits and "
                "hyphens, starting with a letter."
            )
        log = log_appender(request.workdir / "log")
        ml = workspace.client()
        image = options["image"] or self._push(ml, workspace, request, log)
        if _get(ml, endpoint) is not None:
            raise Conflict(
                f"An AzureML endpoint named {endpoint} already exists: undeploy it, or choose "
                "another --endpoint-name."
            )
        details: dict[str, Any] = {
            "endpoint_name": endpoint,
            "subscription_id": workspace.subscription_id,
            "resource_group": workspace.resource_group,
            "workspace": workspace.name,
            "image": image,
            "instance_type": options["instance_type"],
            "instance_count": options["instance_count"],
            "log_file": str(request.workdir / "log"),
        }
        try:
            scoring_uri, auth_mode = self._create(ml, details, log)
        except BaseException:
            undo_start(self, details, log)
            raise
        details.update(scoring_uri=scoring_uri, auth_mode=auth_mode)
        return Started(scoring_uri, details)

    def stop(self, details: dict[str, Any]) -> None:
        ml = azure.Workspace.from_options(details).client()
        try:
            ml.online_endpoints.begin_delete(name=details["endpoint_name"]).result()
        except Exception as error:
            if not azure.not_found(error):
                raise EndpointFailed(
                    f"AzureML did not delete endpoint {details['endpoint_name']}: "
                    f"{azure.said(error)}"
                ) from error

    def state(self, details: dict[str, Any]) -> TargetState:
        try:
            found = _get(azure.Workspace.from_options(details).client(), details["endpoint_name"])
        except Exception as error:  # not an answer about the endpoint: it stays as it was
            return TargetState(True, f"AzureML could not be asked: {azure.said(error)}")
        if found is None:
            return TargetState(False, "Its AzureML endpoint is gone (deleted outside sparkserve).")
        state = provisioning_state(found)
        if state.lower() in ("succeeded", "updating"):
            return TargetState(True)
        return TargetState(False, f"Its AzureML endpoint is {state or 'in an unknown state'}.")

    def snippets(self, version: Any, url: str, details: dict[str, Any]) -> list[Snippet]:
        return [azureml_python(version, url), azureml_curl(version, url)]

    def details(self, details: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("endpoint", str(details.get("endpoint_name", ""))),
            ("scoring URI", str(details.get("scoring_uri", ""))),
            ("auth", f"{details.get('auth_mode', 'key')} (${KEY_ENV})"),
            ("workspace", str(details.get("workspace", ""))),
            ("instances", f"{details.get('instance_count')} x {details.get('instance_type')}"),
            ("image", str(details.get("image", ""))),
        ]

    def _push(
        self, ml: Any, workspace: azure.Workspace, request: StartRequest, log: Callable[[str], None]
    ) -> str:
        local = build_deployment_image(request, request.workdir / "log")
        name, _, version = request.ref.partition(":")
        repository = "sparkserve/" + re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-")
        return azure.push_to_workspace_registry(ml, workspace, local, repository, version, log)

    def _create(
        self, ml: Any, details: dict[str, Any], log: Callable[[str], None]
    ) -> tuple[str, str]:
        from azure.ai.ml.entities import (
            Environment,
            ManagedOnlineDeployment,
            ManagedOnlineEndpoint,
        )

        name = details["endpoint_name"]
        route = {"port": PORT, "path": "/ping"}
        environment = Environment(
            image=details["image"],
            inference_config={
                "liveness_route": route,
                "readiness_route": route,
                "scoring_route": {"port": PORT, "path": "/invocations"},
            },
        )
        steps = (
            ("the endpoint", lambda: ml.online_endpoints.begin_create_or_update(
                ManagedOnlineEndpoint(name=name, auth_mode="key")
            ).result()),
            ("the deployment", lambda: ml.online_deployments.begin_create_or_update(
                ManagedOnlineDeployment(
                    name=DEPLOYMENT,
                    endpoint_name=name,
                    environment=environment,
                    instance_type=details["instance_type"],
                    instance_count=details["instance_count"],
                )
            ).result()),
        )  # fmt: skip
        for what, create in steps:
            log(f"Creating {what} of {name}")
            try:
                made = create()
            except Exception as error:
                raise EndpointFailed(
                    f"AzureML could not create {what}: {azure.said(error)}"
                ) from error
            state = provisioning_state(made)
            if state.lower() != "succeeded":
                raise EndpointFailed(
                    f"AzureML: {what} of {name} is {state or 'not ready'}, not Succeeded."
                )
            log(f"{what.capitalize()} of {name}: {state}")
        try:
            endpoint = ml.online_endpoints.get(name=name)
            endpoint.traffic = {DEPLOYMENT: 100}
            endpoint = ml.online_endpoints.begin_create_or_update(endpoint).result()
        except Exception as error:
            raise EndpointFailed(
                f"AzureML did not route traffic to {name}: {azure.said(error)}"
            ) from error
        log(f"All traffic of {name} goes to {DEPLOYMENT}")
        return str(endpoint.scoring_uri), str(endpoint.auth_mode or "key")


def endpoint_name(ref: str) -> str:
    """sparkserve-NAME-VERSION as an AzureML endpoint name (at most 32 characters)."""
    text = re.sub(r"[^A-Za-z0-9]+", "-", f"sparkserve-{ref.replace(':', '-')}").strip("-")
    return text[:32].rstrip("-")


def provisioning_state(entity: Any) -> str:
    """An azure-ai-ml entity's provisioning state as Azure words it ("Succeeded")."""
    state = getattr(entity, "provisioning_state", None)
    return str(getattr(state, "value", state) or "")


def _get(ml: Any, name: str) -> Any | None:
    try:
        return ml.online_endpoints.get(name=name)
    except Exception as error:
        if azure.not_found(error):
            return None
        raise


def azureml_python(version: Any, url: str) -> Snippet:
    """requests scoring the input example, the key from $AZUREML_ENDPOINT_KEY."""
    response = variable_name(version, "response")  # the one name it assigns
    code = "\n".join(
        [
            "import os",
            "",
            "import requests",
            "",
            f"# The key: az ml online-endpoint get-credentials, into ${KEY_ENV}",
            f"{response} = requests.post(",
            f"    {url!r},",
            f"    json={example_payload(version)!r},",
            f'    headers={{"Authorization": f"Bearer {{os.environ[\'{KEY_ENV}\']}}"}},',
            "    timeout=60,",
            ")",
            f"{response}.raise_for_status()",
            f'print({response}.json()["predictions"])',
        ]
    )
    return Snippet("python", f"Score {version.ref} on AzureML", code)


def azureml_curl(version: Any, url: str) -> Snippet:
    body = shell_quoted_json(example_payload(version))
    code = " \\\n  ".join(
        [
            f"curl -sS -X POST {url}",
            "-H 'Content-Type: application/json'",
            f'-H "Authorization: Bearer ${KEY_ENV}"',
            f"-d {body}",
        ]
    )
    return Snippet("shell", f"Score {version.ref} on AzureML with curl", code)
