"""AWS through boto3's own chains: credentials, region and endpoint come from where boto3
finds them (environment, profiles, SSO, `AWS_ENDPOINT_URL`), never from our settings.

`credentials` answers without the network (an instance role is not probed: that asks with
retries and can hang a status call). `client` has short timeouts, so a face that asks a
cloud about a deployment's state never waits long. `push_to_ecr` puts a local image into the
account's registry with the token ECR gives.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from ..errors import SparkserveError
from ..plugins import Availability

# Retries: boto3's "standard" mode (throttling and 5xx); a face never waits more than this.
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30


class AwsError(SparkserveError):
    """What AWS refused, in its own words, with what to fix."""

    code = "AWS_ERROR"
    http_status = 502


def credentials() -> Availability:
    """Whether boto3 finds credentials here, and the region, without the network."""
    try:
        import botocore.session
    except ImportError:
        return Availability(
            False, "boto3 is not installed (pip install 'jupyter_sparkserve[aws]')."
        )
    session = botocore.session.get_session()
    resolver = session.get_component("credential_provider")
    for provider in ("container-role", "iam-role"):  # these ask the network, with retries
        resolver.remove(provider)
    try:
        found = resolver.load_credentials()
    except Exception as error:  # a broken config file, an expired SSO token, ...
        return Availability(False, f"AWS credentials cannot be read: {error}")
    if found is None:
        return Availability(
            False,
            "No AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE.",
        )
    region = session.get_config_variable("region")
    if not region:
        return Availability(False, "AWS credentials found, but no region: set AWS_DEFAULT_REGION.")
    return Availability(True, f"AWS credentials found ({region}).")


def client(service: str, region: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return boto3.session.Session(region_name=region or None).client(service, config=config)


def error_code(error: BaseException) -> str:
    """A botocore ClientError's code ('ValidationException', ...), else ''."""
    response = getattr(error, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if response else ""


def said(error: BaseException) -> str:
    """What AWS said, without botocore's wrapping."""
    response = getattr(error, "response", None)
    if response:
        found = response.get("Error", {})
        return f"{found.get('Code', 'Error')}: {found.get('Message', '')}".rstrip(": ")
    return str(error) or type(error).__name__


def ecr_repository_name(name: str) -> str:
    """An ECR repository name for a model: `sparkserve/NAME`, NAME lower-cased with what ECR
    refuses replaced."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower())
    cleaned = re.sub(r"[._-]{2,}", "-", cleaned).strip("._-") or "model"
    return f"sparkserve/{cleaned}"


def push_to_ecr(
    local_tag: str,
    repository: str,
    version: str,
    *,
    region: str | None,
    log: Callable[[str], None],
) -> str:
    """Push the engine's image `local_tag` to ECR as REPOSITORY:VERSION (the repository made
    when missing, with ECR's push policy defaults); the pushed image as `URI@sha256:...`."""
    from ..containers import engine

    ecr = client("ecr", region)
    try:
        try:
            uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0][
                "repositoryUri"
            ]
        except Exception as error:
            if error_code(error) != "RepositoryNotFoundException":
                raise
            log(f"Creating the ECR repository {repository}")
            uri = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
        token = ecr.get_authorization_token()["authorizationData"][0]
    except Exception as error:
        raise AwsError(f"ECR refused: {said(error)}") from error
    user, _, password = base64.b64decode(token["authorizationToken"]).decode().partition(":")
    remote = f"{uri}:{version}"
    engine.tag_image(local_tag, remote)
    log(f"Pushing {remote}")
    auth = {"username": user, "password": password, "serveraddress": token["proxyEndpoint"]}
    return engine.push_image(remote, log, auth_config=auth)
