"""The `sagemaker` target: the version's image in ECR, served by a SageMaker endpoint.

Deploy builds the image (or takes one given), pushes it to ECR, then creates a SageMaker
Model, an EndpointConfig and an Endpoint, and waits for InService. The model is baked into
the image at /opt/ml/model (where SageMaker would unpack a `model.tar.gz`), not uploaded to
S3: the image already holds it, a new version pushes only its model layer (ECR keeps the
environment's layers), no bucket has to be configured, and a cold start skips the download
and unpacking. A deploy that fails deletes whatever it had created, so nothing half-made stays
in the account; Undeploy deletes the endpoint, its config and the model (the image stays in
ECR, like any pushed image).

Credentials, region and endpoint URL come from boto3's own chains (`clouds.aws`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..clouds import aws
from ..clouds.sagemaker import (
    DEFAULT_INSTANCE_TYPE,
    INSTANCE_TYPE_ENV,
    ROLE_ENV,
    ROLE_HINT,
    check_name,
    describe_endpoint,
    gone,
    refused,
    resource_name,
    role_from_env,
)
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

VARIANT = "AllTraffic"
SERVING_STATUSES = ("InService", "Updating", "SystemUpdating", "RollingBack")


class SageMakerTarget(DeploymentTarget):
    name = "sagemaker"
    title = "Amazon SageMaker"
    metrics_unreachable = (
        "a SageMaker endpoint's URL is the runtime API, which passes only /invocations to the "
        "container, so its /metrics cannot be read from here; its figures are in CloudWatch "
        "(namespace AWS/SageMaker: Invocations, ModelLatency, Invocation4XXErrors), which "
        "this monitor does not read."
    )
    menu_label = "Deploy to SageMaker…"
    start_limit_seconds = 3 * 3600.0  # an endpoint takes minutes; the wait is an option
    options = (
        Option(
            "role", "string", "The IAM role SageMaker runs the model as (an ARN).", env=ROLE_ENV
        ),
        Option(
            "region",
            "string",
            "The AWS region (default: boto3's, from AWS_DEFAULT_REGION or the profile).",
        ),
        Option(
            "instance_type",
            "string",
            "The instance type that serves it.",
            default=DEFAULT_INSTANCE_TYPE,
            env=INSTANCE_TYPE_ENV,
        ),
        Option("instance_count", "integer", "How many instances serve it.", default=1, minimum=1),
        Option(
            "endpoint_name", "string", "The endpoint's name (default: sparkserve-NAME-VERSION)."
        ),
        Option(
            "image", "string", "An image already in ECR to serve (default: build and push one)."
        ),
        BASE_IMAGE_OPTION,
        Option("wait_minutes", "integer", "How long to wait for InService.", default=30, minimum=1),
    )

    def check(self) -> Availability:
        found = aws.credentials()
        if not found.usable:
            return found
        role = (
            "" if os.environ.get(ROLE_ENV) else f" Give a role when deploying (or set ${ROLE_ENV})."
        )
        return Availability(True, f"{found.detail}{role}")

    def start(self, request: StartRequest) -> Started:
        options = request.options
        role = role_from_env(options["role"])
        if options["instance_count"] < 1:
            raise InvalidInput("instance_count must be at least 1.")
        log_file = request.workdir / "log"
        log = log_appender(log_file)
        region = options["region"] or None
        endpoint = options["endpoint_name"] or resource_name("sparkserve", request.ref)
        check_name(endpoint)
        image = options["image"] or self._push(request, log_file, region, log)
        sagemaker = aws.client("sagemaker", region)
        if describe_endpoint(sagemaker, endpoint) is not None:
            raise Conflict(
                f"A SageMaker endpoint named {endpoint} already exists: undeploy it, or choose "
                "another --endpoint-name."
            )
        created = resource_name(endpoint, request.deployment_id)
        details: dict[str, Any] = {
            "endpoint_name": endpoint,
            "region": sagemaker.meta.region_name,
            "image": image,
            "instance_type": options["instance_type"],
            "instance_count": options["instance_count"],
            "log_file": str(log_file),
        }
        try:
            self._create(sagemaker, details, created, role, log)
            described = self._wait(sagemaker, endpoint, options["wait_minutes"] * 60, log)
        except BaseException:
            undo_start(self, details, log)
            raise
        details["endpoint_arn"] = described["EndpointArn"]
        url = f"https://runtime.sagemaker.{details['region']}.amazonaws.com/endpoints/{endpoint}/invocations"
        return Started(url, details)

    def stop(self, details: dict[str, Any]) -> None:
        sagemaker = aws.client("sagemaker", details.get("region"))
        deletions = (
            ("endpoint_name", "delete_endpoint", "EndpointName"),
            ("endpoint_config_name", "delete_endpoint_config", "EndpointConfigName"),
            ("model_name", "delete_model", "ModelName"),
        )
        for key, call, parameter in deletions:
            if key not in details or (
                key == "endpoint_name" and not details.get("endpoint_created")
            ):
                continue
            try:
                getattr(sagemaker, call)(**{parameter: details[key]})
            except Exception as error:
                if not gone(error):
                    raise EndpointFailed(
                        f"SageMaker did not delete {details[key]}: {aws.said(error)}"
                    ) from error

    def state(self, details: dict[str, Any]) -> TargetState:
        try:
            described = describe_endpoint(
                aws.client("sagemaker", details.get("region")), details["endpoint_name"]
            )
        except Exception as error:
            # Not an answer about the endpoint: a network blip must not mark it failed.
            return TargetState(True, f"SageMaker could not be asked: {aws.said(error)}")
        if described is None:
            return TargetState(
                False, "Its SageMaker endpoint is gone (deleted outside sparkserve)."
            )
        status = described["EndpointStatus"]
        if status in SERVING_STATUSES:
            return TargetState(True)
        reason = described.get("FailureReason") or "no reason given"
        return TargetState(False, f"Its SageMaker endpoint is {status}: {reason}")

    def snippets(self, version: Any, url: str, details: dict[str, Any]) -> list[Snippet]:
        return [sagemaker_python(version, details), sagemaker_cli(version, details)]

    def details(self, details: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("endpoint", str(details.get("endpoint_name", ""))),
            ("ARN", str(details.get("endpoint_arn", ""))),
            ("region", str(details.get("region", ""))),
            ("instances", f"{details.get('instance_count')} x {details.get('instance_type')}"),
            ("image", str(details.get("image", ""))),
        ]

    def _push(
        self, request: StartRequest, log_file: Path, region: str | None, log: Callable[[str], None]
    ) -> str:
        local = build_deployment_image(request, log_file)
        name, _, version = request.ref.partition(":")
        return aws.push_to_ecr(
            local, aws.ecr_repository_name(name), version, region=region, log=log
        )

    def _create(
        self,
        sagemaker: Any,
        details: dict[str, Any],
        name: str,
        role: str,
        log: Callable[[str], None],
    ) -> None:
        variant = {
            "VariantName": VARIANT,
            "ModelName": name,
            "InstanceType": details["instance_type"],
            "InitialInstanceCount": details["instance_count"],
        }
        container = {"Image": details["image"], "Mode": "SingleModel"}
        steps: tuple[tuple[str, str, Callable[[], Any]], ...] = (
            ("model_name", "the model", lambda: sagemaker.create_model(
                ModelName=name, PrimaryContainer=container, ExecutionRoleArn=role
            )),
            ("endpoint_config_name", "the endpoint config", lambda: (
                sagemaker.create_endpoint_config(
                    EndpointConfigName=name, ProductionVariants=[variant]
                )
            )),
            ("endpoint_created", "the endpoint", lambda: sagemaker.create_endpoint(
                EndpointName=details["endpoint_name"], EndpointConfigName=name
            )),
        )  # fmt: skip
        for key, what, create in steps:
            log(
                f"Creating {what} {details['endpoint_name'] if key == 'endpoint_created' else name}"
            )
            try:
                create()
            except Exception as error:
                raise EndpointFailed(refused(what, error)) from error
            details[key] = name if key != "endpoint_created" else True

    def _wait(
        self, sagemaker: Any, endpoint: str, limit: float, log: Callable[[str], None]
    ) -> dict[str, Any]:
        started = time.monotonic()
        pause, last = 0.5, ""
        while True:
            described = describe_endpoint(sagemaker, endpoint)
            if described is None:
                raise EndpointFailed(
                    f"The SageMaker endpoint {endpoint} was deleted while it started."
                )
            status = described["EndpointStatus"]
            if status != last:
                log(f"Endpoint {endpoint}: {status} ({time.monotonic() - started:.0f} s)")
                last = status
            if status == "InService":
                return described
            if status not in ("Creating", "Updating", "SystemUpdating"):
                reason = described.get("FailureReason") or "SageMaker gave no reason"
                hint = f" {ROLE_HINT}" if "role" in reason.lower() else ""
                raise EndpointFailed(
                    f"The SageMaker endpoint {endpoint} is {status}: {reason}.{hint}"
                )
            if time.monotonic() - started > limit:
                raise EndpointFailed(
                    f"The SageMaker endpoint {endpoint} was not InService within "
                    f"{limit / 60:g} minutes (--wait-minutes); it is deleted."
                )
            time.sleep(pause)
            pause = min(pause * 2, 15.0)


def sagemaker_python(version: Any, details: dict[str, Any]) -> Snippet:
    """boto3 scoring the input example at the endpoint (credentials from boto3's chain)."""
    predictions = variable_name(version, "predictions")  # the one name it assigns
    code = "\n".join(
        [
            "import json",
            "",
            "import boto3",
            "",
            f"{predictions} = json.loads(",
            f'    boto3.client("sagemaker-runtime", region_name={details["region"]!r})',
            "    .invoke_endpoint(",
            f"        EndpointName={details['endpoint_name']!r},",
            '        ContentType="application/json",',
            f"        Body=json.dumps({example_payload(version)!r}),",
            '    )["Body"]',
            "    .read()",
            ')["predictions"]',
            f"print({predictions})",
        ]
    )
    return Snippet("python", f"Score {version.ref} on SageMaker ({details['endpoint_name']})", code)


def sagemaker_cli(version: Any, details: dict[str, Any]) -> Snippet:
    """The AWS CLI's invoke-endpoint on the input example (v1 and v2 alike: a fileb:// body)."""
    body = shell_quoted_json(example_payload(version))
    code = " \\\n  ".join(
        [
            f"echo {body} > sagemaker-payload.json && aws sagemaker-runtime invoke-endpoint",
            f"--region {details['region']} --endpoint-name {details['endpoint_name']}",
            "--content-type application/json --body fileb://sagemaker-payload.json",
            "sagemaker-predictions.json > /dev/null && cat sagemaker-predictions.json",
        ]
    )
    return Snippet("shell", f"Score {version.ref} with the AWS CLI", code)
