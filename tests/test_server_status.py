"""`status` over REST and the target checks behind it: an engine that does not answer, AWS
credentials, an AzureML workspace (tests/test_containers.py checks a real engine)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)

from jupyter_sparkserve import __version__
from jupyter_sparkserve.clouds.azure import availability as azureml_status
from jupyter_sparkserve.deploy.sagemaker_target import SageMakerTarget
from jupyter_sparkserve.deploy.targets import targets_status
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository import database as db


async def test_status_reports_repository_versions_and_targets(
    api: Api, repo: ModelRepository, mlflow_model_dir: Path, home: Path, monkeypatch, tmp_path
) -> None:
    import mlflow

    repo.import_model(mlflow_model_dir, "iris")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(name, raising=False)
    answer = await api("GET", "status")
    assert answer.status == 200
    body = answer.body
    assert body["versions"]["sparkserve"] == body["version"] == __version__
    assert body["versions"]["mlflow"] == mlflow.__version__
    assert body["home"] == str(home)
    assert body["repository"] == {"models": 1, "versions": 1, "schema_version": db.SCHEMA_VERSION}
    targets = {t["target"]: t for t in body["targets"]}
    assert list(targets) == ["local", "azureml", "container", "sagemaker"]  # local, by name
    assert targets["local"]["usable"] is True
    assert targets["container"]["usable"] is False
    assert (
        f"No container engine answers at unix://{tmp_path}/no-engine.sock"
        in (targets["container"]["detail"])
    )
    assert targets["azureml"]["usable"] is False
    engines = {e["engine"]: e for e in body["engines"]}  # what the Score dialog offers
    assert list(engines) == ["local", "azureml", "container", "sagemaker", "spark"]
    assert engines["local"]["usable"] is True and engines["container"]["usable"] is False


def test_cloud_targets_have_their_own_menu_items(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.setenv(name, "set")
    targets = {found.target: found for found in targets_status()}
    assert targets["local"].usable and targets["local"].menu_label == ""
    assert targets["azureml"].usable and targets["azureml"].menu_label == "Deploy to AzureML…"
    assert targets["sagemaker"].menu_label == "Deploy to SageMaker…"


def test_azureml_needs_its_workspace_variables() -> None:
    missing = azureml_status({"AZURE_SUBSCRIPTION_ID": "s"})
    assert not missing.usable
    assert "set AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME" in missing.detail
    configured = azureml_status(
        {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_RESOURCE_GROUP": "g", "AZUREML_WORKSPACE_NAME": "w"}
    )
    assert configured.usable and configured.detail.startswith("AzureML workspace w ")


def test_aws_credentials_are_looked_up_without_the_network(monkeypatch, tmp_path) -> None:
    sagemaker_status = SageMakerTarget().check
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    for name in (*names, "AWS_REGION", "AWS_DEFAULT_REGION", "SPARKSERVE_SAGEMAKER_ROLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    if importlib.util.find_spec("botocore") is None:
        found = sagemaker_status()
        assert not found.usable and "boto3 is not installed" in found.detail
        return
    assert not sagemaker_status().usable  # and no instance-role probe: it answers at once
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert "no region: set AWS_DEFAULT_REGION" in sagemaker_status().detail
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    found = sagemaker_status()
    assert found.usable and "(eu-west-1)" in found.detail
    assert "Give a role when deploying (or set $SPARKSERVE_SAGEMAKER_ROLE)" in found.detail


def test_all_targets_are_checked() -> None:
    assert [t.target for t in targets_status()] == ["local", "azureml", "container", "sagemaker"]
