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
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from _aws import ECR_HOST, REGION, SECRET_KEY, Aws
from _containers import base_image as base_image
from _containers import container_engine as container_engine
from _containers import serve_image
from _files import wait_until
from _lab import (
    SIDEBAR_TAB,
    open_lab,
    our_errors,
    our_tracebacks,
    put_notebook,
    run_cell,
    screenshot,
    start_lab,
    stop_lab,
)
from _lab import browser as browser
from conftest import FAST_SAVE
from test_magics import start_kernel

from jupyter_sparkserve.cells import CELLS_MIME_TYPE
from jupyter_sparkserve.clouds.sagemaker import ROLE_ENV, resource_name
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.containers.engine import client
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.lifecycle import deployment_snippets
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.workflows import JobRunner, WorkflowSpec

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


def _run_as_sagemaker_does(image: str, **environment: str) -> tuple[Any, str]:
    """`docker run IMAGE serve` with port 8080 published and SageMaker's variables (and
    `environment`, a model's or a transform job's); the container and its URL."""
    sagemaker = {"SAGEMAKER_BIND_TO_PORT": "8080", "SAGEMAKER_SAFE_PORT_RANGE": "8080-8090"}
    return serve_image(image, ["serve"], {**sagemaker, **environment})


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

    # Run as a transform job runs it: it answers /execution-parameters, and a mini-batch of
    # headerless CSV or JSON lines with one line per line, in order.
    container, url = _run_as_sagemaker_does(pulled.id, SPARKSERVE_TRANSFORM="1")
    try:
        parameters = requests.get(f"{url}/execution-parameters", timeout=10).json()
        assert parameters == {
            "MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6
        }  # fmt: skip
        lines = pd.DataFrame(**rows).to_csv(index=False, header=False)
        answer = requests.post(
            f"{url}/invocations", data=lines, headers={"Content-Type": "text/csv"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.text.splitlines() == [str(value) for value in expected]
        header_first = pd.DataFrame(**rows).to_csv(index=False)  # an object's first batch
        answer = requests.post(
            f"{url}/invocations", data=header_first, headers={"Content-Type": "text/csv"}
        )
        assert answer.text.splitlines() == [str(value) for value in expected]
        records = pd.DataFrame(**rows).to_json(orient="records", lines=True)
        answer = requests.post(
            f"{url}/invocations",
            data=records,
            headers={"Content-Type": "application/jsonlines"},
            timeout=30,
        )
        assert [json.loads(line) for line in answer.text.splitlines()] == expected
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


def _bundle(reply: dict[str, list]) -> dict[str, Any]:
    (data,) = [data for data in reply["display"] if CELLS_MIME_TYPE in data]
    return data[CELLS_MIME_TYPE]


def test_sfdeploy_to_sagemaker_inserts_cells_that_run_and_sfundeploy_deletes_it(
    aws: Aws, role: str, home: Path, tmp_path: Path, iris, iris_model,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    expected = repository.load_pyfunc("iris:1").predict(iris[0].head(3)).tolist()
    aws.answer_invocations_with(json.dumps({"predictions": expected}))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # aws
    kernel = start_kernel(home, tmp_path)
    try:
        image = f"{ECR_HOST}/sparkserve/iris:1"
        deployed = kernel.ok(
            f"%sfdeploy iris --register --target sagemaker --role {role} --image {image}"
        )
        (deployment,) = Deployments(repository).list(active_only=True)
        assert deployment.target == "sagemaker" and deployment.status == "running"
        assert aws.sagemaker_resources()["endpoints"] == ["sparkserve-iris-1"]
        (shown,) = [data["text/html"] for data in deployed["display"] if "text/html" in data]
        assert "sparkserve-iris-1" in shown and "ml.m5.large" in shown
        python_cell, cli_cell = _bundle(deployed)["cells"]
        assert "invoke_endpoint(" in python_cell["source"]
        assert cli_cell["source"].startswith("%%bash\n# Score iris:1 with the AWS CLI\necho ")
        assert "aws sagemaker-runtime invoke-endpoint" in cli_cell["source"]
        answer = kernel.ok(python_cell["source"])
        assert json.loads("".join(answer["stdout"]).replace("'", '"')) == expected
        answer = kernel.ok(cli_cell["source"])
        assert json.loads("".join(answer["stdout"])) == {"predictions": expected}
        for cell in (python_cell, cli_cell):
            assert SECRET_KEY not in cell["source"]

        stopped = kernel.ok(f"%sfundeploy {deployment.id}")
        assert f"Undeployed iris:1 ({deployment.id})" in "".join(stopped["stdout"])
        assert aws.sagemaker_resources() == {"models": [], "configs": [], "endpoints": []}
    finally:
        kernel.close()


@pytest.mark.browser
def test_deploy_to_sagemaker_from_the_actions_menu_then_snippets_undeploy_and_a_transform(
    browser, aws: Aws, role: str, home: Path, tmp_path: Path, iris, iris_model,
    monkeypatch: pytest.MonkeyPatch, s3_input: str, base_image: str, ecr_registry: str,
) -> None:  # fmt: skip
    from test_sidebar import (
        SIDEBAR,
        SLOW,
        choose,
        deploy_to_items,
        job_succeeded_with_log,
        model_row,
        version_row,
        wait_for_message,
    )

    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    MlflowRegistry(repository).register("iris:1")
    expected = repository.load_pyfunc("iris:1").predict(iris[0].head(3)).tolist()
    aws.answer_invocations_with(json.dumps({"predictions": expected}))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # aws
    monkeypatch.delenv("AZUREML_WORKSPACE_NAME", raising=False)
    monkeypatch.setenv(ROLE_ENV, role)  # what the transform jobs run as
    lab = start_lab(tmp_path, home)
    try:
        put_notebook(lab, "cloud.ipynb", [("first", "print('the snippets go below')")])
        page, errors = open_lab(browser, lab, "lab/tree/cloud.ipynb")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        page.locator(SIDEBAR_TAB).click()
        model_row(page, "iris").locator('[data-testid="sparkserve-model-toggle"]').click()
        version_row(page, "iris:1").locator('[data-testid="sparkserve-actions"]').click()
        page.locator('.jp-SparkserveActionsMenu li[data-target="azureml"]').wait_for()
        items = deploy_to_items(page)
        assert items["sagemaker"] == (True, "")
        enabled, why = items["azureml"]  # no workspace named: greyed, saying so
        assert not enabled and "No AzureML workspace configured: set " in why
        assert "AZUREML_WORKSPACE_NAME" in why
        screenshot(page, "sidebar-deploy-to-sagemaker.png")
        page.locator('.jp-SparkserveActionsMenu li[data-target="sagemaker"]').click()
        dialog = page.locator(".jp-Dialog")
        assert "to Amazon SageMaker" in dialog.locator(".jp-Dialog-header").inner_text()
        target = dialog.locator('[data-testid="sparkserve-deploy-target"]')
        assert target.input_value() == "sagemaker"
        dialog.locator('[data-testid="sparkserve-deploy-option-role"]').fill(role)
        image = f"{ECR_HOST}/sparkserve/iris:1"
        dialog.locator('[data-testid="sparkserve-deploy-option-image"]').fill(image)
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"iris:1 is deployed at https://runtime\.sagemaker\.")
        # The notification is short; the target's facts are in the Deployments section.
        said = page.locator('[data-testid="sparkserve-deployment"][data-status="running"]')
        said = said.inner_text()
        assert "endpoint sparkserve-iris-1" in said and "1 x ml.m5.large" in said
        assert aws.sagemaker_resources()["endpoints"] == ["sparkserve-iris-1"]

        version_row(page, "iris:1").locator('[data-testid="sparkserve-actions"]').click()
        choose(page, "snippets")
        snippets = page.locator('.jp-Dialog [data-testid="sparkserve-snippet"]')
        snippets.first.wait_for()
        assert "invoke_endpoint(" in snippets.first.inner_text()
        page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"Inserted 2 cells into cloud\.ipynb")
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        run_cell(page, cells.nth(1))
        output = cells.nth(1).locator(".jp-OutputArea-output")
        output.wait_for(timeout=SLOW)
        page.wait_for_function(
            "cell => cell.querySelector('.jp-OutputArea-output').innerText.includes(']')",
            arg=cells.nth(1).element_handle(),
        )
        assert str(expected) in output.inner_text()
        page.keyboard.press("Shift+Enter")  # the AWS CLI cell
        output = cells.nth(2).locator(".jp-OutputArea-output")
        output.wait_for(timeout=SLOW)
        assert json.loads(output.inner_text()) == {"predictions": expected}

        version_row(page, "iris:1").locator('[data-testid="sparkserve-actions"]').click()
        choose(page, "undeploy")
        wait_for_message(page, r"iris:1 is undeployed")
        assert aws.sagemaker_resources() == {"models": [], "configs": [], "endpoints": []}

        # Score on SageMaker: a transform job the jobs view follows to its end.
        version_row(page, "iris:1").locator('[data-testid="sparkserve-actions"]').click()
        choose(page, "score")
        dialog = page.locator(".jp-Dialog")
        dialog.locator('[data-testid="sparkserve-score-input"]').fill(s3_input)
        output = s3_input.replace("/in/", "/from-the-sidebar/")
        dialog.locator('[data-testid="sparkserve-score-output"]').fill(output)
        dialog.locator('[data-testid="sparkserve-score-engine"]').select_option("sagemaker")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"Scoring with iris:1: job \S+ is")
        job = page.locator(f'{SIDEBAR} [data-testid="sparkserve-job"]').first
        job.wait_for()
        job_succeeded_with_log(page, job, "succeeded", SLOW)
        transform_jobs = aws.client("sagemaker").list_transform_jobs()["TransformJobSummaries"]
        assert any(found["TransformJobStatus"] == "Completed" for found in transform_jobs)
        assert our_errors(errors) == []
        page.close()
    finally:
        for deployment in Deployments(repository).list(active_only=True):
            Deployments(repository).undeploy(deployment.id)
        stop_lab(lab)
    assert our_tracebacks(lab) == []


@pytest.fixture
def s3_input(aws: Aws, iris) -> str:
    """s3://BUCKET/in/ holding the iris features as headerless CSV (SageMaker's convention)."""
    s3 = aws.client("s3")
    bucket = f"sparkserve-tests-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    body = iris[0].head(20).to_csv(index=False, header=False)
    s3.put_object(Bucket=bucket, Key="in/part-0.csv", Body=body.encode())
    return f"s3://{bucket}/in/"


def _wait_for_job(runner: JobRunner, job_id: str) -> Any:
    deadline = time.monotonic() + 600
    job = runner.get(job_id)
    while job.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = runner.get(job_id)
    return job


def test_a_transform_job_scores_s3_with_sagemakers_settings_and_is_followed_to_the_end(
    shared_repo: ModelRepository, aws: Aws, role: str, base_image: str, ecr_registry: str,
    s3_input: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(ROLE_ENV, role)
    output = s3_input.replace("/in/", "/out/")
    runner = JobRunner(shared_repo)
    spec = WorkflowSpec(model="iris:1", input=s3_input, output=output, engine="sagemaker")
    job = runner.submit(spec)
    job = _wait_for_job(runner, job.id)
    assert job.status == "succeeded", job.error
    sagemaker = aws.client("sagemaker")
    jobs = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    (name,) = [found["TransformJobName"] for found in jobs if job.id in found["TransformJobName"]]
    described = sagemaker.describe_transform_job(TransformJobName=name)
    assert described["TransformJobStatus"] == "Completed"
    assert described["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": s3_input}},
        "ContentType": "text/csv",
        "SplitType": "Line",
        "CompressionType": "None",
    }
    assert described["TransformOutput"]["S3OutputPath"] == output
    assert described["TransformOutput"]["AssembleWith"] == "Line"
    assert described["TransformOutput"]["Accept"] == "text/csv"
    assert described["BatchStrategy"] == "MultiRecord"
    assert described["Environment"] == {"SPARKSERVE_TRANSFORM": "1"}
    assert described["DataProcessing"]["JoinSource"] == "Input"
    assert described["TransformResources"]["InstanceType"] == "ml.m5.large"
    # The model made for the job is gone with it; the image is in ECR.
    assert aws.sagemaker_resources()["models"] == []
    assert aws.client("ecr").describe_repositories(repositoryNames=["sparkserve/batch"])


def test_cancel_stops_a_running_transform_job(
    shared_repo: ModelRepository, aws: Aws, role: str, base_image: str, ecr_registry: str,
    s3_input: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """moto's jobs complete at once and it has no StopTransformJob: the proxy keeps the job
    InProgress and answers Stop as SageMaker does (then Stopped)."""
    monkeypatch.setenv(ROLE_ENV, role)
    stop = "SageMaker.StopTransformJob"

    def running_until_stopped(reply: dict[str, Any]) -> dict[str, Any]:
        return {**reply, "TransformJobStatus": "Stopped" if stop in aws.calls else "InProgress"}

    aws.rules["SageMaker.DescribeTransformJob"] = running_until_stopped
    aws.rules[stop] = (200, {})
    aws.calls.clear()
    try:
        runner = JobRunner(shared_repo)
        output = s3_input.replace("/in/", "/cancelled/")
        spec = WorkflowSpec(model="iris:1", input=s3_input, output=output, engine="sagemaker")
        job = runner.submit(spec)
        wait_until(lambda: runner.get(job.id).status == "running", timeout=300)
        time.sleep(1.0)  # the job exists now
        runner.cancel(job.id)
        job = _wait_for_job(runner, job.id)
    finally:
        aws.rules.clear()
    assert job.status == "cancelled", job.error
    assert aws.calls.count(stop) == 1
    assert aws.sagemaker_resources()["models"] == []


def test_a_starting_deployment_shows_the_step_it_is_at(
    shared_repo: ModelRepository, aws: Aws, role: str
) -> None:
    """An endpoint takes minutes to come up: meanwhile the deployment's progress is its
    target's last step, which the sidebar shows while it waits."""
    import threading

    aws.rules["SageMaker.DescribeEndpoint"] = lambda reply: {**reply, "EndpointStatus": "Creating"}
    deployments = Deployments(shared_repo)
    options = {"role": role, "image": f"{ECR_HOST}/sparkserve/iris:1"}
    started = deployments.begin("iris:1", "sagemaker", options, register=True)
    launch = threading.Thread(target=deployments.launch, args=(started.id, options))
    launch.start()
    try:
        waiting = "Endpoint sparkserve-iris-1: Creating ("

        def shown() -> dict[str, Any]:
            return deployments.get(started.id).to_dict()

        wait_until(lambda: shown()["progress"].startswith(waiting), timeout=60)
        assert shown()["status"] == "starting"
    finally:
        aws.rules.clear()
        launch.join(timeout=120)
    running = deployments.get(started.id)
    assert running.status == "running" and running.to_dict()["progress"] == ""
    deployments.undeploy(started.id)
    assert aws.sagemaker_resources() == {"models": [], "configs": [], "endpoints": []}


def test_sfscore_with_the_sagemaker_engine_runs_a_transform_job_from_a_notebook(
    shared_repo: ModelRepository, aws: Aws, role: str, base_image: str, ecr_registry: str,
    s3_input: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(ROLE_ENV, role)
    output = s3_input.replace("/in/", "/from-a-notebook/")
    kernel = start_kernel(shared_repo.settings.home, tmp_path)
    try:
        answer = kernel.ok(f"%sfscore iris:1 {s3_input} {output} --engine sagemaker")
        assert f"into {output}" in "".join(answer["stdout"])
    finally:
        kernel.close()
    jobs = aws.client("sagemaker").list_transform_jobs()["TransformJobSummaries"]
    described = [
        aws.client("sagemaker").describe_transform_job(TransformJobName=j["TransformJobName"])
        for j in jobs
    ]
    assert any(d["TransformOutput"]["S3OutputPath"] == output for d in described)
