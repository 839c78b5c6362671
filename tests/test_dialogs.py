"""Dialogs that validate before they close: the REST checks they call (`checks/deploy`,
`checks/score`, `checks/manifest-file`) refuse what the real calls refuse, name the field at
fault and leave nothing behind; in a real JupyterLab the dialog stays open with the message
and what was typed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)
from _lab import (
    SIDEBAR,
    SIDEBAR_TAB,
    open_lab,
    our_errors,
    our_tracebacks,
    screenshot,
    start_lab,
    stop_lab,
    wait_for_message,
)
from _lab import browser as browser  # the fixture, for the browser test below
from conftest import FAST_SAVE

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.offline import score

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (a real socket), for as long as the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_deploy_check_refuses_a_port_in_use_and_records_nothing(
    api: Api, repo: ModelRepository, registered: str, listening: int
) -> None:
    body = {"ref": registered, "target": "local", "options": {"port": listening}}
    answer = await api("POST", "checks/deploy", body=body)
    assert answer.status == 409, answer.body
    assert answer.body["field"] == "port"
    assert f"Port {listening}" in answer.message
    assert Deployments(repo).list() == []

    # The real deploy is refused the same way, before it records a deployment.
    refused = await api("POST", "deployments", body=body)
    assert (refused.status, refused.body) == (409, answer.body)
    assert Deployments(repo).list() == []


@pytest.mark.parametrize(("port", "says"), [(0, "at least 1"), (70000, "at most 65535")])
async def test_deploy_check_refuses_a_port_out_of_range(
    api: Api, repo: ModelRepository, registered: str, port: int, says: str
) -> None:
    body = {"ref": registered, "target": "local", "options": {"port": port}}
    answer = await api("POST", "checks/deploy", body=body)
    assert answer.status == 400, answer.body
    assert answer.body["field"] == "port"
    assert f"'port' in the deploy options must be {says}" in answer.message
    assert Deployments(repo).list() == []


async def test_deploy_check_passes_what_deploy_would_start(
    api: Api, repo: ModelRepository, registered: str
) -> None:
    answer = await api("POST", "checks/deploy", body={"ref": registered})
    assert (answer.status, answer.body) == (200, {"ok": True})
    assert Deployments(repo).list() == []


async def test_deploy_check_refuses_an_unregistered_version(
    api: Api, repo: ModelRepository, mlflow_model_dir: Path
) -> None:
    repo.import_model(mlflow_model_dir, "plain")
    answer = await api("POST", "checks/deploy", body={"ref": "plain:1"})
    assert answer.status == 409
    remedy = {"action": "deploy", "args": {"ref": "plain:1", "register": True}}
    assert answer.body["remedy"] == remedy
    # Deploying with registration would pass, and registers nothing to say so.
    passed = await api("POST", "checks/deploy", body={"ref": "plain:1", "register": True})
    assert passed.status == 200
    assert MlflowRegistry(repo).registrations("plain:1") == []


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"output": "out.xlsx"}, "output", "ends in .xlsx, which is not a format"),
        ({"input": ""}, "input", "The input is empty"),
        ({"input": "missing.csv"}, "input", "does not exist"),
        ({"keep_columns": "nope"}, "keep_columns", "Cannot keep column 'nope'"),
        ({"output": "no-such-folder/out.csv"}, "output", "does not exist"),
    ],
)
async def test_score_check_names_the_field_and_writes_nothing(
    api: Api, iris_saved: str, iris_csv: Path, tmp_path: Path, settings, field, says
) -> None:
    spec = {"model": iris_saved, "input": str(iris_csv), "output": str(tmp_path / "o.csv")}
    spec.update(
        {k: str(tmp_path / v) if k in ("input", "output") and v else v for k, v in settings.items()}
    )
    before = sorted(tmp_path.iterdir())
    answer = await api("POST", "checks/score", body={"spec": spec})
    assert answer.status == 400, answer.body
    assert answer.body["field"] == field
    assert says in answer.message
    assert "workflow" not in answer.message  # a one-off run has no workflow
    assert sorted(tmp_path.iterdir()) == before
    jobs = await api("GET", "jobs")
    assert jobs.body["items"] == []


async def test_score_check_passes_a_good_run(
    api: Api, iris_saved: str, iris_csv: Path, tmp_path: Path
) -> None:
    spec = {"model": iris_saved, "input": str(iris_csv), "output": str(tmp_path / "o.parquet")}
    answer = await api("POST", "checks/score", body={"spec": spec})
    assert (answer.status, answer.body) == (200, {"ok": True})
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    ("path", "body", "field", "says"),
    [
        ("kubernetes", {"autoscale": "ten"}, "autoscale", "'autoscale'"),
        ("kubernetes", {"autoscale": "9-1"}, "autoscale", "minimum replicas <= maximum"),
        ("kubernetes", {"replicas": 0}, "replicas", "'replicas'"),
        ("kubernetes", {"namespace": "Risk"}, "namespace", "'namespace'"),
        ("kubernetes", {"image": "Not An Image"}, "image", "'image'"),
        ("image", {"tag": "Not/A Tag"}, "tag", "'tag'"),
        ("image", {"push": True}, "tag", "Pushing needs a tag"),
        ("image", {"base_image": "x@sha256:1"}, "base_image", "'base_image'"),
    ],
)
async def test_image_and_kubernetes_refusals_name_the_field(
    api: Api, iris_saved: str, path: str, body: dict, field: str, says: str
) -> None:
    """What the Build image and Kubernetes dialogs show next to a field: the shape's errors
    and the core's own name the field at fault, as the score and deploy checks do."""
    answer = await api("POST", f"models/iris/versions/1/{path}", body=body)
    assert answer.status == 400, answer.body
    assert (answer.body.get("field"), says in answer.message) == (field, True), answer.body
    assert (await api("GET", "jobs")).body["items"] == []  # no build was started


async def test_manifest_file_check_refuses_a_bad_save_path_and_names_the_field(
    api: Api, jp_root_dir: Path, tmp_path: Path
) -> None:
    """The core's rule of where the Kubernetes dialog may save its manifests, through the
    route the dialog asks: every refusal names `path`, and nothing is written."""
    (jp_root_dir / "k8s").mkdir()
    (jp_root_dir / "k8s" / "old.yml").write_text("kept")
    (jp_root_dir / "notes.txt").write_text("a file, not a folder")
    elsewhere = tmp_path / "elsewhere"  # outside the root, though an allowed folder of jobs
    elsewhere.mkdir()
    (jp_root_dir / "out").symlink_to(elsewhere)
    refusals = [
        ("", 400, "Give the path: a file name ending in .yaml or .yml."),
        ("k8s/iris-1.yaml.txt", 400, "'iris-1.yaml.txt' does not end in .yaml or .yml"),
        ("k8s/iris-1", 400, "name the file such as iris-1.yaml"),
        ("missing/iris-1.yaml", 400, "The folder 'missing' does not exist"),
        ("notes.txt/iris-1.yaml", 400, "The folder 'notes.txt' is a file, not a folder"),
        ("k8s", 400, "'k8s' is a folder"),
        ("../iris-1.yaml", 400, "leads outside the folder the file browser shows"),
        ("out/iris-1.yaml", 400, "leads outside the folder the file browser shows"),
        (f"{'x' * 300}.yaml", 400, "cannot be written: File name too long"),
        ("/k8s/old.yml", 409, "k8s/old.yml exists already: replace it, or choose another name."),
    ]
    for path, status, says in refusals:
        answer = await api("POST", "checks/manifest-file", body={"path": path})
        assert (answer.status, answer.body.get("field")) == (status, "path"), (path, answer.body)
        assert says in answer.message, (path, answer.message)
    assert answer.error == "FILE_EXISTS"
    assert sorted(p.name for p in jp_root_dir.rglob("*")) == ["k8s", "notes.txt", "old.yml", "out"]
    assert list(elsewhere.iterdir()) == []
    assert (jp_root_dir / "k8s" / "old.yml").read_text() == "kept"


async def test_manifest_file_check_passes_a_good_path_as_the_contents_api_names_it(
    api: Api, jp_root_dir: Path
) -> None:
    (jp_root_dir / "k8s").mkdir()
    (jp_root_dir / "k8s" / "old.yml").write_text("kept")
    passes = [
        ({"path": "iris-1.yaml"}, "iris-1.yaml"),
        ({"path": " /k8s//iris-1.YML "}, "k8s/iris-1.YML"),  # as the file browser shows it
        ({"path": "k8s/old.yml", "overwrite": True}, "k8s/old.yml"),  # the user said Replace
    ]
    for body, path in passes:
        answer = await api("POST", "checks/manifest-file", body=body)
        assert (answer.status, answer.body) == (200, {"ok": True, "path": path}), body
    assert sorted(p.name for p in jp_root_dir.rglob("*")) == ["k8s", "old.yml"]  # none written


def test_an_output_with_an_unknown_extension_is_refused_not_made_a_folder(
    repo: ModelRepository, iris_saved: str, iris_csv: Path, tmp_path: Path
) -> None:
    """The core's rule, whatever the face: `out.xlsx` used to become a folder of CSV files."""
    with pytest.raises(InvalidInput, match=r"out\.xlsx ends in \.xlsx") as refused:
        score(iris_saved, iris_csv, tmp_path / "out.xlsx", repository=repo)
    assert refused.value.field == "output"
    assert not (tmp_path / "out.xlsx").exists()
    # A folder is named without an extension, and still works.
    result = score(iris_saved, iris_csv, tmp_path / "scored", repository=repo)
    assert result.output == tmp_path / "scored" and result.rows == 150


# ------------------------------------------------------------ the dialogs, in a real JupyterLab


@pytest.mark.browser
@pytest.mark.slow
def test_dialogs_keep_what_was_typed_on_a_refusal(
    browser, tmp_path: Path, home: Path, iris, iris_model, listening: int
) -> None:
    """Deploy on a port in use and Score into `out.xlsx`: each dialog stays open with the
    server's message next to the field, every value still typed; once fixed, it goes on."""
    features, _target = iris
    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE)
    MlflowRegistry(repository).register("iris:1")
    (tmp_path / "data").mkdir()
    features.to_csv(tmp_path / "data" / "iris.csv", index=False)
    (tmp_path / "scored").mkdir()

    lab = start_lab(tmp_path, home)
    try:
        page, errors = open_lab(browser, lab)
        page.locator(SIDEBAR_TAB).click()
        model = page.locator(f'{SIDEBAR} [data-testid="sparkserve-model"][data-model="iris"]')
        model.wait_for(timeout=60_000)
        model.locator('[data-testid="sparkserve-model-toggle"]').click()
        version = page.locator(f'{SIDEBAR} [data-testid="sparkserve-version"][data-ref="iris:1"]')
        menu = page.locator(".jp-SparkserveActionsMenu")

        def choose(action: str) -> Any:
            version.locator('[data-testid="sparkserve-actions"]').click()
            menu.locator(f'li[data-command="sparkserve:{action}"]').click()
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for()
            return dialog

        # Deploy on a port something listens on: refused in the dialog, next to the port.
        dialog = choose("deploy")
        port = dialog.locator('[data-testid="sparkserve-deploy-option-port"]')
        host = dialog.locator('[data-testid="sparkserve-deploy-option-host"]')
        port.fill(str(listening))
        host.fill("127.0.0.1")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        error = dialog.locator('[data-field="port"] [data-testid="sparkserve-field-error"]')
        error.wait_for()
        assert f"Port {listening} on 127.0.0.1 is already in use" in error.inner_text()
        assert port.get_attribute("aria-invalid") == "true"
        assert (port.input_value(), host.input_value()) == (str(listening), "127.0.0.1")
        assert Deployments(repository).list() == []  # nothing was started
        screenshot(page, "dialog-deploy-port-in-use.png")
        dialog.locator(".jp-Dialog-button.jp-mod-reject").click()
        dialog.wait_for(state="detached")

        # Build image with a bad tag: refused next to the tag, nothing built, all kept.
        dialog = choose("build_image")
        tag = dialog.locator('[data-testid="sparkserve-build-tag"]')
        base = dialog.locator('[data-testid="sparkserve-build-base-image"]')
        tag.fill("Not A Tag")
        base.fill("localhost/base:1")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        error = dialog.locator('[data-field="tag"] [data-testid="sparkserve-field-error"]')
        error.wait_for()
        assert "'tag'" in error.inner_text() and "got 'Not A Tag'" in error.inner_text()
        assert tag.get_attribute("aria-invalid") == "true"
        assert dialog.locator('[data-testid="sparkserve-form-problem"]').is_hidden()
        assert (tag.input_value(), base.input_value()) == ("Not A Tag", "localhost/base:1")
        assert lab.api("GET", "sparkserve/api/v1/jobs")["items"] == []
        screenshot(page, "dialog-build-bad-tag.png")
        dialog.locator(".jp-Dialog-button.jp-mod-reject").click()
        dialog.wait_for(state="detached")

        # Kubernetes manifest with a bad autoscale, then backwards: each said next to the
        # field, in the dialog, which stays open with what was typed.
        dialog = choose("kubernetes")
        image = dialog.locator('[data-testid="sparkserve-k8s-image"]')
        autoscale = dialog.locator('[data-testid="sparkserve-k8s-autoscale"]')
        image.fill("registry.example/iris:1")
        autoscale.fill("ten")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        error = dialog.locator('[data-field="autoscale"] [data-testid="sparkserve-field-error"]')
        error.wait_for()
        assert "'autoscale'" in error.inner_text() and "got 'ten'" in error.inner_text()
        assert (image.input_value(), autoscale.input_value()) == ("registry.example/iris:1", "ten")
        autoscale.fill("9-1")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        error.filter(has_text="minimum replicas <= maximum replicas").wait_for()
        assert autoscale.get_attribute("aria-invalid") == "true"
        screenshot(page, "dialog-k8s-autoscale.png")
        autoscale.fill("2-10")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        yaml = page.locator('.jp-Dialog [data-testid="sparkserve-k8s-yaml"]')
        yaml.wait_for()
        assert "registry.example/iris:1" in yaml.inner_text()
        assert "HorizontalPodAutoscaler" in yaml.inner_text()

        # Save as a bad path: the core's refusal next to the path, in the dialog, which
        # stays open with the path typed and the YAML; nothing is written.
        path = page.locator('.jp-Dialog [data-testid="sparkserve-k8s-path"]')
        assert path.input_value() == "iris-v1.yaml"
        save = page.locator(".jp-Dialog .jp-Dialog-button", has_text="Save")
        path_error = page.locator(
            '.jp-Dialog [data-field="path"] [data-testid="sparkserve-field-error"]'
        )
        for typed, says in (
            ("missing/iris.yaml", "The folder 'missing' does not exist"),
            ("iris.txt", "'iris.txt' does not end in .yaml or .yml"),
            ("../iris.yaml", "leads outside the folder the file browser shows"),
        ):
            path.fill(typed)
            save.click()
            path_error.filter(has_text=says).wait_for()
            assert path.input_value() == typed
            assert path.get_attribute("aria-invalid") == "true"
            assert yaml.is_visible()
        assert not (tmp_path / "missing").exists() and not (tmp_path / "iris.txt").exists()
        # A file that exists is not replaced unasked: said next to the path, and Save becomes
        # Replace until the path is edited.
        (tmp_path / "k8s").mkdir()
        (tmp_path / "k8s" / "iris.yaml").write_text("old")
        replace = page.locator('.jp-Dialog .jp-Dialog-button[data-replace="true"]')
        path.fill("k8s/iris.yaml")
        save.click()
        path_error.filter(has_text="k8s/iris.yaml exists already").wait_for()
        assert replace.inner_text() == "Replace"
        screenshot(page, "dialog-k8s-save-exists.png")
        path.fill("k8s/iris.yaml")  # edited: Save again, which asks again
        assert replace.count() == 0
        save.click()
        replace.wait_for()
        assert (tmp_path / "k8s" / "iris.yaml").read_text() == "old"
        replace.click()
        page.locator(".jp-Dialog").wait_for(state="detached")
        wait_for_message(page, r"Wrote the manifests of iris:1 to k8s/iris\.yaml\.")
        written = (tmp_path / "k8s" / "iris.yaml").read_text()
        assert "registry.example/iris:1" in written and "HorizontalPodAutoscaler" in written

        # Score into out.xlsx: refused in the dialog, the input and the columns kept.
        dialog = choose("score")
        source = dialog.locator('[data-testid="sparkserve-score-input"]')
        output = dialog.locator('[data-testid="sparkserve-score-output"]')
        keep = dialog.locator('[data-testid="sparkserve-score-keep-columns"]')
        dialog.locator('[data-testid="sparkserve-browse-input"]').click()
        dialog.locator('[data-testid="sparkserve-browse-item"][data-path="data"]').click()
        dialog.locator('[data-testid="sparkserve-browse-item"][data-path="data/iris.csv"]').click()
        assert source.input_value() == "data/iris.csv"  # picked, not typed
        output.fill("out.xlsx")
        keep.fill("sepal length (cm)")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        error = dialog.locator('[data-field="output"] [data-testid="sparkserve-field-error"]')
        error.wait_for()
        assert "ends in .xlsx, which is not a format" in error.inner_text()
        assert "workflow" not in dialog.inner_text().lower()
        assert (source.input_value(), output.input_value(), keep.input_value()) == (
            "data/iris.csv",
            "out.xlsx",
            "sepal length (cm)",
        )
        assert not (tmp_path / "out.xlsx").exists()
        screenshot(page, "dialog-score-out-xlsx.png")

        # Fixed through Browse (the folder, under the name typed): the job starts and ends.
        output.fill("iris-scored.csv")
        dialog.locator('[data-testid="sparkserve-browse-output"]').click()
        dialog.locator('[data-testid="sparkserve-browse-item"][data-path="scored"]').click()
        dialog.locator('[data-testid="sparkserve-browse-here"]').click()
        assert output.input_value() == "scored/iris-scored.csv"
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        dialog.wait_for(state="detached")
        job = page.locator(f'{SIDEBAR} [data-testid="sparkserve-job"]').first
        job.wait_for(timeout=60_000)
        page.wait_for_function(
            "node => ['succeeded', 'failed', 'cancelled'].includes(node.dataset.status)",
            arg=job.element_handle(),
            timeout=180_000,
        )
        assert job.get_attribute("data-status") == "succeeded", job.inner_text()
        scored = pd.read_csv(tmp_path / "scored" / "iris-scored.csv")
        assert list(scored.columns) == ["sepal length (cm)", "prediction"]
        assert len(scored) == len(features)

        assert our_errors(errors) == []
        page.close()
    finally:
        stop_lab(lab)
    assert our_tracebacks(lab) == []
