"""The `azureml` target through azure-ai-ml and DefaultAzureCredential against a local fake of
ARM (`_azure.py`), with the image pushed for real to a registry under the workspace
registry's name, pulled back and run as AzureML runs a custom container: the endpoint's
scoring URI reaches that container."""

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
from _azure import ACR_HOST, FakeArm
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
    start_lab,
    stop_lab,
)
from _lab import browser as browser
from conftest import FAST_SAVE
from test_magics import start_kernel

from jupyter_sparkserve.cells import CELLS_MIME_TYPE
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
    home = tmp_path_factory.mktemp("azureml-home")
    repository = ModelRepository(Settings.from_env(home=home))
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    return repository


def _forward_to(url: str):
    def score(_endpoint: str, _deployment: str, body: bytes, headers: dict[str, str]):
        answer = requests.post(
            f"{url}/invocations",
            data=body,
            headers={"Content-Type": headers.get("Content-Type", "application/json")},
            timeout=30,
        )
        return answer.status_code, answer.content, answer.headers.get("Content-Type", "")

    return score


def _key(arm: FakeArm, endpoint: str) -> str:
    return arm.keys[f"{arm.ws_id}/onlineEndpoints/{endpoint}".lower()]["primaryKey"]


def test_deploy_pushes_to_the_workspace_registry_and_serves_through_the_endpoint(
    shared_repo: ModelRepository, azure_arm: FakeArm, base_image: str,
    cloud_registry: tuple[str, ...], tmp_path: Path,
) -> None:  # fmt: skip
    deployments = Deployments(shared_repo)
    deployment = deployments.deploy("iris:1", "azureml", register=True)
    assert deployment.status == "running", deployment.error
    details = deployment.details
    endpoint = "sparkserve-iris-1"
    assert details["endpoint_name"] == endpoint and details["workspace"] == azure_arm.ws
    assert details["image"].startswith(f"{ACR_HOST}/sparkserve/iris@sha256:")
    assert deployment.url == f"{azure_arm.base_url}/online/{endpoint}/score"
    assert azure_arm.endpoints() == [endpoint]
    made = azure_arm.resources[f"{azure_arm.ws_id}/onlineEndpoints/{endpoint}".lower()]
    assert made["properties"]["traffic"] == {"sparkserve": 100}
    assert made["properties"]["authMode"] == "Key"
    shown = dict(deployment.shown_details())
    assert shown["auth"] == "key ($AZUREML_ENDPOINT_KEY)"

    # The pushed image, pulled back by digest, serves behind the endpoint's scoring URI.
    engine = client()
    try:
        engine.images.remove(details["image"].split("@")[0] + ":1", force=True)
        pulled = engine.images.pull(details["image"])
    finally:
        engine.close()
    container, url = serve_image(pulled.id)  # as AzureML runs a custom container
    try:
        azure_arm.scorer = _forward_to(url)
        rows = json.loads((shared_repo.resolve("iris:1").path / "input_example.json").read_text())
        frame = pd.DataFrame(rows["data"], columns=rows["columns"])
        expected = shared_repo.load_pyfunc("iris:1").predict(frame).tolist()
        python, curl = deployment_snippets(shared_repo, deployment.id).snippets
        environ = {**os.environ, "AZUREML_ENDPOINT_KEY": _key(azure_arm, endpoint)}
        (tmp_path / "score.py").write_text(python.code)
        ran = subprocess.run(
            [sys.executable, "score.py"], cwd=tmp_path, capture_output=True, text=True, env=environ
        )
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout.replace("'", '"')) == expected
        ran = subprocess.run(["bash", "-c", curl.code], capture_output=True, text=True, env=environ)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout) == {"predictions": expected}
    finally:
        container.remove(force=True)

    # No credential anywhere: the registry's passwords and the endpoint's keys.
    log = Path(details["log_file"]).read_text()
    assert "Pushing" in log and "All traffic" in log
    secrets = [*azure_arm.acr_passwords, _key(azure_arm, endpoint)]
    for text in (log, python.code, curl.code, json.dumps(details)):
        assert not any(secret in text for secret in secrets)

    stopped = deployments.undeploy(deployment.id)
    assert stopped.status == "stopped"
    assert azure_arm.endpoints() == []


def test_a_deployment_that_fails_to_provision_fails_the_deploy_and_deletes_the_endpoint(
    shared_repo: ModelRepository, azure_arm: FakeArm
) -> None:
    azure_arm.fail_provisioning.add("sparkserve")
    deployments = Deployments(shared_repo)
    with pytest.raises(Exception, match="readiness probe on /ping"):
        deployments.deploy(
            "iris:1", "azureml", {"image": f"{ACR_HOST}/sparkserve/iris:1"}, register=True
        )
    failed = deployments.list()[0]
    assert failed.status == "failed" and "AzureML could not create the deployment" in failed.error
    assert azure_arm.endpoints() == []


def test_sfdeploy_to_azureml_inserts_cells_and_sfundeploy_deletes_the_endpoint(
    azure_arm: FakeArm, home: Path, tmp_path: Path, iris, iris_model
) -> None:
    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    expected = repository.load_pyfunc("iris:1").predict(iris[0].head(3)).tolist()
    azure_arm.scorer = lambda *_: (
        200, json.dumps({"predictions": expected}).encode(), "application/json"
    )  # fmt: skip
    kernel = start_kernel(home, tmp_path)
    try:
        image = f"{ACR_HOST}/sparkserve/iris:1"
        deployed = kernel.ok(f"%sfdeploy iris --register --target azureml --image {image}")
        (deployment,) = Deployments(repository).list(active_only=True)
        assert deployment.target == "azureml" and deployment.status == "running"
        (data,) = [data for data in deployed["display"] if CELLS_MIME_TYPE in data]
        python_cell, curl_cell = data[CELLS_MIME_TYPE]["cells"]
        assert "AZUREML_ENDPOINT_KEY" in python_cell["source"]
        assert "$AZUREML_ENDPOINT_KEY" in curl_cell["source"]
        key = _key(azure_arm, "sparkserve-iris-1")
        kernel.ok(f"import os\nos.environ['AZUREML_ENDPOINT_KEY'] = {key!r}")
        answer = kernel.ok(python_cell["source"])
        assert json.loads("".join(answer["stdout"]).replace("'", '"')) == expected
        answer = kernel.ok(curl_cell["source"])
        assert json.loads("".join(answer["stdout"])) == {"predictions": expected}
        stopped = kernel.ok(f"%sfundeploy {deployment.id}")
        assert f"Undeployed iris:1 ({deployment.id})" in "".join(stopped["stdout"])
        assert azure_arm.endpoints() == []
    finally:
        kernel.close()


@pytest.mark.browser
def test_deploy_to_azureml_from_the_actions_menu_then_snippets_and_undeploy(
    browser, azure_arm: FakeArm, home: Path, tmp_path: Path, iris, iris_model,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from test_sidebar import SLOW, choose, deploy_to_items, model_row, version_row, wait_for_message

    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    MlflowRegistry(repository).register("iris:1")
    expected = repository.load_pyfunc("iris:1").predict(iris[0].head(3)).tolist()
    azure_arm.scorer = lambda *_: (
        200, json.dumps({"predictions": expected}).encode(), "application/json"
    )  # fmt: skip
    azure_arm.primary_key = "key-the-user-exported"
    monkeypatch.setenv("AZUREML_ENDPOINT_KEY", azure_arm.primary_key)  # as the user would
    lab = start_lab(tmp_path, home)
    try:
        put_notebook(lab, "azure.ipynb", [("first", "print('the snippets go below')")])
        page, errors = open_lab(browser, lab, "lab/tree/azure.ipynb")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        page.locator(SIDEBAR_TAB).click()
        model_row(page, "iris").locator('[data-testid="sparkserve-model-toggle"]').click()
        version_row(page, "iris:1").locator('[data-testid="sparkserve-actions"]').click()
        page.locator('.jp-SparkserveActionsMenu li[data-target="azureml"]').wait_for()
        assert deploy_to_items(page)["azureml"] == (True, "")
        page.locator('.jp-SparkserveActionsMenu li[data-target="azureml"]').click()
        dialog = page.locator(".jp-Dialog")
        assert "to Azure Machine Learning" in dialog.locator(".jp-Dialog-header").inner_text()
        assert dialog.locator('[data-testid="sparkserve-deploy-target"]').input_value() == "azureml"
        image = f"{ACR_HOST}/sparkserve/iris:1"
        dialog.locator('[data-testid="sparkserve-deploy-option-image"]').fill(image)
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"iris:1 is deployed at https://127\.0\.0\.1:\d+/online/")
        # The notification is short; the target's facts are in the Deployments section.
        said = page.locator('[data-testid="sparkserve-deployment"][data-status="running"]')
        said = said.inner_text()
        assert "endpoint sparkserve-iris-1" in said and "auth key ($AZUREML_ENDPOINT_KEY)" in said
        assert azure_arm.endpoints() == ["sparkserve-iris-1"]

        version_row(page, "iris:1").locator('[data-testid="sparkserve-actions"]').click()
        choose(page, "snippets")
        page.locator('.jp-Dialog [data-testid="sparkserve-snippet"]').first.wait_for()
        page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"Inserted 2 cells into azure\.ipynb")
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        run_cell(page, cells.nth(1))
        output = cells.nth(1).locator(".jp-OutputArea-output")
        output.wait_for(timeout=SLOW)
        page.wait_for_function(
            "cell => cell.querySelector('.jp-OutputArea-output').innerText.includes(']')",
            arg=cells.nth(1).element_handle(),
        )
        assert str(expected) in output.inner_text()
        page.keyboard.press("Shift+Enter")  # the curl cell
        output = cells.nth(2).locator(".jp-OutputArea-output")
        output.wait_for(timeout=SLOW)
        assert json.loads(output.inner_text()) == {"predictions": expected}

        version_row(page, "iris:1").locator('[data-testid="sparkserve-actions"]').click()
        choose(page, "undeploy")
        wait_for_message(page, r"iris:1 is undeployed")
        assert azure_arm.endpoints() == []
        assert our_errors(errors) == []
        page.close()
    finally:
        azure_arm.primary_key = None
        for deployment in Deployments(repository).list(active_only=True):
            Deployments(repository).undeploy(deployment.id)
        stop_lab(lab)
    assert our_tracebacks(lab) == []


def _submit(repository: ModelRepository, output: str) -> tuple[JobRunner, Any]:
    runner = JobRunner(repository)
    source = "azureml://datastores/workspaceblobstore/paths/sparkserve/in/"
    spec = WorkflowSpec(model="iris:1", input=source, output=output, engine="azureml")
    return runner, runner.submit(spec)


def _ended(runner: JobRunner, job_id: str) -> Any:
    deadline = time.monotonic() + 600
    job = runner.get(job_id)
    while job.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = runner.get(job_id)
    return job


def test_a_batch_job_runs_the_images_score_step_on_the_endpoint_and_is_followed_to_the_end(
    shared_repo: ModelRepository, azure_arm: FakeArm, base_image: str,
    cloud_registry: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, iris,
) -> None:  # fmt: skip
    monkeypatch.setenv("SPARKSERVE_AZUREML_COMPUTE", "cpu-cluster")
    output = "azureml://datastores/workspaceblobstore/paths/sparkserve/out/"
    runner, job = _submit(shared_repo, output)
    job = _ended(runner, job.id)
    assert job.status == "succeeded", job.error
    assert job.output_path == f"{output}scored/"  # where the scored files are
    (batch_job,) = azure_arm.jobs.values()
    assert batch_job["properties"]["status"] == "Completed"
    assert batch_job["deployment"].startswith("sparkserve-")
    sent = json.dumps(batch_job["request"])
    assert "sparkserve/in/" in sent and "sparkserve/out/" in sent
    specs = [r["properties"].get("componentSpec", {}) for r in azure_arm.resources.values()]
    assert any(spec.get("type") == "pipeline" for spec in specs)
    (command,) = {spec["command"] for spec in specs if "command" in spec}
    assert command.startswith("python -m jupyter_sparkserve.containers score ")
    (environment,) = [
        r
        for k, r in azure_arm.resources.items()
        if "/environments/" in k and "sparkserve/batch@" in json.dumps(r)
    ]
    image = environment["properties"]["image"]
    assert image.startswith(f"{ACR_HOST}/sparkserve/batch@sha256:")

    # The step's command, run in the pushed image as a batch job runs it (no network, the
    # input and output folders mounted), scores every file.
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir(mode=0o777)
    outputs.chmod(0o777)
    iris[0].head(10).to_csv(inputs / "part-0.csv", index=False)
    run = command.replace("${{inputs.input_data}}", "/mnt/in").replace(
        "${{outputs.output_data}}", "/mnt/out"
    )
    engine = client(timeout=300)
    try:
        engine.images.pull(image)
        engine.containers.run(
            image, entrypoint=["bash", "-c", run], network_mode="none", remove=True,
            volumes={str(inputs): {"bind": "/mnt/in", "mode": "ro"},
                     str(outputs): {"bind": "/mnt/out", "mode": "rw"}},
        )  # fmt: skip
    finally:
        engine.close()
    scored = pd.read_csv(outputs / "scored" / "part-0.csv")
    expected = shared_repo.load_pyfunc("iris:1").predict(iris[0].head(10)).tolist()
    assert scored["prediction"].tolist() == expected


def test_cancel_cancels_a_running_azureml_batch_job(
    shared_repo: ModelRepository, azure_arm: FakeArm, base_image: str,
    cloud_registry: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SPARKSERVE_AZUREML_COMPUTE", "cpu-cluster")
    azure_arm.job_polls = 10**6  # it runs until cancelled
    try:
        runner, job = _submit(shared_repo, "azureml://datastores/workspaceblobstore/paths/x/")
        wait_until(
            lambda: any(j["properties"]["status"] == "Running" for j in azure_arm.jobs.values()),
            timeout=300,
        )
        runner.cancel(job.id)
        job = _ended(runner, job.id)
    finally:
        azure_arm.job_polls = 2
    assert job.status == "cancelled", job.error
    assert [j["properties"]["status"] for j in azure_arm.jobs.values()][-1] == "Canceled"


def test_sfscore_with_the_azureml_engine_runs_a_batch_job_from_a_notebook(
    shared_repo: ModelRepository, azure_arm: FakeArm, base_image: str,
    cloud_registry: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SPARKSERVE_AZUREML_COMPUTE", "cpu-cluster")
    folder = "azureml://datastores/workspaceblobstore/paths/notebook"
    kernel = start_kernel(shared_repo.settings.home, tmp_path)
    try:
        answer = kernel.ok(f"%sfscore iris:1 {folder}/in/ {folder}/out/ --engine azureml")
        assert f"into {folder}/out/scored/" in "".join(answer["stdout"])
    finally:
        kernel.close()
    assert any("notebook/out/" in json.dumps(job["request"]) for job in azure_arm.jobs.values())
