"""The `sagemaker` target against moto's server (SageMaker, ECR, IAM) and a real registry under
ECR's host name, on a real container engine: the image is built, pushed, pulled back and run
exactly as SageMaker runs it; SageMaker's resources are created and deleted through its API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from _aws import ECR_HOST, SECRET_KEY, Aws
from _aws import aws as aws
from _aws import ecr_registry as ecr_registry
from _containers import base_image as base_image
from _containers import container_engine as container_engine
from _endpoint_helpers import free_port
from conftest import FAST_SAVE

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.containers.engine import client
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.sagemaker_target import resource_name
from jupyter_sparkserve.lifecycle import deployment_snippets
from jupyter_sparkserve.repository import ModelRepository

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory, iris, iris_model) -> ModelRepository:
    home = tmp_path_factory.mktemp("sagemaker-home")
    repository = ModelRepository(Settings.from_env(home=home))
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    return repository


@pytest.fixture(scope="module")
def role(aws: Aws) -> str:
    iam = aws.client("iam")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return iam.create_role(
        RoleName="sparkserve-tests", AssumeRolePolicyDocument=json.dumps(policy)
    )["Role"]["Arn"]


def _example(repository: ModelRepository) -> dict[str, Any]:
    example = json.loads((repository.resolve("iris:1").path / "input_example.json").read_text())
    return {"columns": example["columns"], "data": example["data"]}


def _run_as_sagemaker_does(image: str) -> tuple[Any, str]:
    """`docker run IMAGE serve` with port 8080 published and SageMaker's variables; the
    container and its URL."""
    engine = client()
    port = free_port()
    try:
        container = engine.containers.run(
            image,
            command=["serve"],
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", port)},
            environment={
                "SAGEMAKER_BIND_TO_PORT": "8080",
                "SAGEMAKER_SAFE_PORT_RANGE": "8080-8090",
            },
        )
    finally:
        engine.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).ok:
                return container, url
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, container.logs().decode()
        time.sleep(0.3)


def test_deploy_pushes_to_ecr_creates_the_endpoint_and_undeploy_leaves_nothing(
    shared_repo: ModelRepository, aws: Aws, role: str, base_image: str, ecr_registry: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    deployments = Deployments(shared_repo)
    deployment = deployments.deploy("iris:1", "sagemaker", {"role": role}, register=True)
    assert deployment.status == "running", deployment.error
    details = deployment.details
    endpoint = "sparkserve-iris-1"
    assert details["endpoint_name"] == endpoint and details["region"] == "eu-west-1"
    assert details["image"].startswith(f"{ECR_HOST}/sparkserve/iris@sha256:")
    assert details["endpoint_arn"].endswith(f":endpoint/{endpoint}")
    made = resource_name(endpoint, deployment.id)
    assert aws.sagemaker_resources() == {
        "models": [made], "configs": [made], "endpoints": [endpoint]
    }  # fmt: skip
    sagemaker = aws.client("sagemaker")
    model = sagemaker.describe_model(ModelName=made)
    assert model["PrimaryContainer"]["Image"] == details["image"]
    assert model["ExecutionRoleArn"] == role
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=made)["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    shown = dict(deployment.shown_details())
    assert shown["endpoint"] == endpoint and shown["instances"] == "1 x ml.m5.large"

    # The pushed image, pulled back by digest and run as SageMaker runs it, answers
    # SageMaker's requests: JSON and CSV on /invocations.
    engine = client()
    try:
        engine.images.remove(details["image"].split("@")[0] + ":1", force=True)
        pulled = engine.images.pull(details["image"])
    finally:
        engine.close()
    container, url = _run_as_sagemaker_does(pulled.id)
    try:
        rows = _example(shared_repo)
        expected = shared_repo.load_pyfunc("iris:1").predict(pd.DataFrame(**rows)).tolist()
        answer = requests.post(f"{url}/invocations", json={"dataframe_split": rows}, timeout=30)
        assert answer.json() == {"predictions": expected}
        csv = pd.DataFrame(**rows).to_csv(index=False)
        answer = requests.post(
            f"{url}/invocations", data=csv, headers={"Content-Type": "text/csv"}, timeout=30
        )
        assert answer.json() == {"predictions": expected}
        served = answer.text
    finally:
        container.remove(force=True)

    # The snippets run: boto3's invoke_endpoint and the AWS CLI, against moto's runtime, which
    # answers what the container answered.
    aws.answer_invocations_with(served)
    python, cli = deployment_snippets(shared_repo, deployment.id).snippets
    (tmp_path / "score.py").write_text(python.code)
    environ = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    ran = subprocess.run(
        [sys.executable, "score.py"], cwd=tmp_path, capture_output=True, text=True, env=environ
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.replace("'", '"')) == expected
    ran = subprocess.run(
        ["bash", "-c", cli.code], cwd=tmp_path, capture_output=True, text=True, env=environ
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"predictions": expected}

    # No credential anywhere: the log, the snippets, the database's details.
    log = Path(details["log_file"]).read_text()
    assert "Pushing" in log and "InService" in log
    for text in (log, python.code, cli.code, json.dumps(details)):
        assert SECRET_KEY not in text and "AKIASPARKSERVETEST" not in text

    stopped = deployments.undeploy(deployment.id)
    assert stopped.status == "stopped"
    assert aws.sagemaker_resources() == {"models": [], "configs": [], "endpoints": []}


def test_a_refused_endpoint_fails_the_deploy_saying_what_to_fix_and_deletes_what_it_made(
    shared_repo: ModelRepository, aws: Aws, role: str
) -> None:
    deployments = Deployments(shared_repo)
    aws.rules["SageMaker.CreateEndpoint"] = (
        400,
        {
            "__type": "ValidationException",
            "message": f"Could not assume role {role}. Please ensure that the role exists and "
            "allows principal 'sagemaker.amazonaws.com' to assume the role.",
        },
    )
    try:
        options = {"role": role, "image": f"{ECR_HOST}/sparkserve/iris:1"}
        with pytest.raises(Exception, match="SageMaker refused to create the endpoint"):
            deployments.deploy("iris:1", "sagemaker", options, register=True)
    finally:
        aws.rules.clear()
    failed = deployments.list()[0]
    assert failed.status == "failed"
    assert "Could not assume role" in failed.error
    assert "--role" in failed.error and "trust sagemaker.amazonaws.com" in failed.error
    assert aws.sagemaker_resources() == {"models": [], "configs": [], "endpoints": []}


def test_an_endpoint_that_fails_shows_sagemakers_reason_and_is_deleted(
    shared_repo: ModelRepository, aws: Aws, role: str
) -> None:
    def failed(reply: dict[str, Any]) -> dict[str, Any]:
        reason = (
            "The primary container for production variant AllTraffic did not pass the ping "
            "health check."
        )
        return {**reply, "EndpointStatus": "Failed", "FailureReason": reason}

    aws.rules["SageMaker.DescribeEndpoint"] = failed
    try:
        options = {"role": role, "image": f"{ECR_HOST}/sparkserve/iris:1"}
        with pytest.raises(Exception, match="did not pass the ping health check"):
            Deployments(shared_repo).deploy("iris:1", "sagemaker", options, register=True)
    finally:
        aws.rules.clear()
    assert aws.sagemaker_resources() == {"models": [], "configs": [], "endpoints": []}


def test_a_deploy_without_a_role_is_refused_saying_where_to_give_it(
    shared_repo: ModelRepository, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKSERVE_SAGEMAKER_ROLE", raising=False)
    with pytest.raises(Exception, match=r"give --role or set \$SPARKSERVE_SAGEMAKER_ROLE"):
        Deployments(shared_repo).deploy(
            "iris:1", "sagemaker", {"image": f"{ECR_HOST}/x:1"}, register=True
        )
    assert aws.sagemaker_resources() == {"models": [], "configs": [], "endpoints": []}
