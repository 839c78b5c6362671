"""Targets this release cannot deploy to yet (SageMaker, AzureML): `status`
lists each as not usable, with what it would use on this machine, so the sidebar can say so.
When a target's plug-in is built, its `check` takes over the probe and its entry here goes.

Each probe answers in at most a few seconds and without side effects: AWS credentials are
looked up where boto3 finds them without the network (environment, config and credentials
files, SSO cache), so an instance role is not probed; an AzureML workspace counts as
configured when its variables are set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import AZUREML_ENVS
from ..plugins import Availability

NOT_BUILT = "Deploying here is not built yet."


def aws_credentials() -> Availability:
    try:
        import botocore.session
    except ImportError:
        return Availability(False, "boto3 is not installed (pip install boto3).")
    session = botocore.session.get_session()
    resolver = session.get_component("credential_provider")
    for provider in ("container-role", "iam-role"):  # these ask the network, with retries
        resolver.remove(provider)
    try:
        credentials = resolver.load_credentials()
    except Exception as error:  # a broken config file, an expired SSO token, ...
        return Availability(False, f"AWS credentials cannot be read: {error}")
    if credentials is None:
        return Availability(
            False,
            "No AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE.",
        )
    region = session.get_config_variable("region") or "no region set"
    return Availability(True, f"AWS credentials found ({region}).")


def azureml_workspace(environ: Mapping[str, str] | None = None) -> Availability:
    env = os.environ if environ is None else environ
    missing = [name for name in AZUREML_ENVS if not env.get(name, "").strip()]
    if missing:
        return Availability(False, f"No AzureML workspace configured: set {', '.join(missing)}.")
    return Availability(True, f"AzureML workspace {env['AZUREML_WORKSPACE_NAME']}.")


@dataclass(frozen=True)
class PlannedTarget:
    name: str
    title: str
    probe: Callable[[], Availability]

    def check(self) -> Availability:
        """Never usable: what the machine has, after saying it is not built yet."""
        return Availability(False, f"{NOT_BUILT} {self.probe().detail}")


PLANNED = (
    PlannedTarget("sagemaker", "Amazon SageMaker", aws_credentials),
    PlannedTarget("azureml", "Azure Machine Learning", azureml_workspace),
)
