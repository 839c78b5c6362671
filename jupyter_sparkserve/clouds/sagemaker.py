"""SageMaker's names, errors and settings, shared by the `sagemaker` deployment target and
the `sagemaker` batch engine (transform jobs)."""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import InvalidInput
from . import aws

ROLE_ENV = "SPARKSERVE_SAGEMAKER_ROLE"
INSTANCE_TYPE_ENV = "SPARKSERVE_SAGEMAKER_INSTANCE_TYPE"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
ROLE_HINT = (
    f"Check the execution role (--role, or ${ROLE_ENV}): it must exist and trust "
    "sagemaker.amazonaws.com."
)
_NAME_LIMIT = 63  # SageMaker's names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}


def role_from_env(given: str | None = None) -> str:
    """The execution role: the one given, else $SPARKSERVE_SAGEMAKER_ROLE."""
    role = (given or os.environ.get(ROLE_ENV, "")).strip()
    if not role:
        raise InvalidInput(f"SageMaker needs an execution role: give --role or set ${ROLE_ENV}.")
    return role


def refused(what: str, error: BaseException) -> str:
    """What SageMaker said when it refused to create `what`, with the fix when it is the role."""
    text = aws.said(error)
    hint = f" {ROLE_HINT}" if "role" in text.lower() else ""
    return f"SageMaker refused to create {what}: {text}.{hint}"


def resource_name(*parts: str) -> str:
    """A SageMaker name from `parts`: letters, digits and single hyphens, at most 63."""
    text = "-".join(re.sub(r"[^A-Za-z0-9]+", "-", part) for part in parts)
    text = re.sub(r"-{2,}", "-", text).strip("-")
    return text[:_NAME_LIMIT].rstrip("-") or "sparkserve"


def check_name(name: str) -> None:
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name):
        raise InvalidInput(
            f"{name!r} is not a SageMaker endpoint name: up to 63 letters, digits and hyphens, "
            "starting and ending with a letter or digit."
        )


def describe_endpoint(sagemaker: Any, endpoint: str) -> dict[str, Any] | None:
    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint)
    except Exception as error:
        if gone(error):
            return None
        raise


def gone(error: BaseException) -> bool:
    """SageMaker's "no such resource": a ValidationException saying so."""
    text = aws.said(error).lower()
    return aws.error_code(error) == "ValidationException" and (
        "could not find" in text or "does not exist" in text
    )
