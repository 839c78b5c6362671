"""A deployment target from another package: `tests/plugins/sparkserve_workers_target`,
installed (pip install --target) into a folder of its own and found through the entry-point
group `jupyter_sparkserve.targets`, with no change to the product. It must show in `status`,
in `sparkserve deploy --target`, in `%sfdeploy --target` and in the sidebar's Deploy dialog,
each with its options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from _lab import SIDEBAR_TAB, open_lab, screenshot, start_lab, stop_lab
from _lab import browser as browser  # the fixture, for the tests below
from conftest import FAST_SAVE, TESTS_DIR
from test_magics import Kernel
from test_sidebar import choose, model_row, open_actions, version_row, wait_for_message

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.repository import ModelRepository

PLUGIN = TESTS_DIR / "plugins" / "sparkserve_workers_target"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in installed as a third party's package would be, in a folder of its own."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(PLUGIN)],
        check=True,
        timeout=300,
    )  # fmt: skip
    assert list(target.glob("sparkserve_workers_target-*.dist-info"))
    return target


@pytest.fixture(autouse=True)
def plugin_in_this_process(plugin_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plug-in is installed for this process too (the test reads its deployments)."""
    from jupyter_sparkserve import plugins

    monkeypatch.syspath_prepend(str(plugin_path))
    plugins._scan.cache_clear()
    yield
    plugins._scan.cache_clear()


@pytest.fixture
def plugin_env(plugin_path: Path, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]),
        "SPARKSERVE_HOME": str(home),
    }


@pytest.fixture
def registered(repo: ModelRepository, iris, iris_model) -> Iterator[str]:
    features, _ = iris
    ref = repo.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE).ref
    MlflowRegistry(repo).register(ref)
    yield ref
    deployments = Deployments(repo)
    for deployment in deployments.list(active_only=True):
        deployments.undeploy(deployment.id)


def sparkserve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_sparkserve", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_status_and_the_cli_deploy_with_the_plugins_options(
    plugin_env: dict[str, str], registered: str, repo: ModelRepository
) -> None:
    status = sparkserve(plugin_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    targets = {t["target"]: t for t in json.loads(status.stdout)["targets"]}
    assert list(targets) == ["local", "azureml", "container", "sagemaker", "workers"]
    assert targets["workers"]["usable"] is True
    assert [o["name"] for o in targets["workers"]["options"]] == ["workers", "label"]
    assert [o["name"] for o in targets["local"]["options"]] == [
        "host", "port", "token",
        "max_batch_rows", "max_wait_ms", "capture", "capture_sample", "capture_max_mb",
        "shadow", "shadow_sample",
    ]  # fmt: skip

    helped = sparkserve(plugin_env, "deploy", "--help")
    words = " ".join(helped.stdout.split())  # click wraps the help column
    assert "--workers INTEGER" in words and "(target workers)" in words
    assert "--capture-sample FLOAT" in words and "--capture BOOLEAN" in words
    assert "--shadow TEXT" in words and "--shadow-sample FLOAT" in words
    foreign = sparkserve(plugin_env, "deploy", registered, "--target", "workers", "--port", "1")
    assert foreign.returncode == 1 and "--port: not an option of target workers" in foreign.stderr

    deployed = sparkserve(
        plugin_env, "deploy", registered, "--target", "workers", "--workers", "2",
        "--label", "from the CLI", "--json",
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    deployment = json.loads(deployed.stdout)
    assert (deployment["target"], deployment["status"]) == ("workers", "running")
    assert {"label": "label", "value": "from the CLI"} in deployment["shown"]
    assert requests.get(f"{deployment['url']}/ping", timeout=10).status_code == 200
    snippets = sparkserve(plugin_env, "snippets", deployment["id"], "--json")
    assert [s["language"] for s in json.loads(snippets.stdout)] == ["shell"]
    stopped = sparkserve(plugin_env, "undeploy", deployment["id"], "--json")
    assert json.loads(stopped.stdout)["status"] == "stopped", stopped.stderr


def test_sfdeploy_takes_the_plugins_target_and_options(
    plugin_env: dict[str, str], registered: str, tmp_path: Path, repo: ModelRepository
) -> None:
    kernel = Kernel(env=plugin_env, cwd=tmp_path)
    try:
        kernel.ok("%load_ext jupyter_sparkserve")
        helped = kernel.value("get_ipython().find_line_magic('sfdeploy').__doc__")
        assert "--workers" in helped and "--label" in helped
        refused = kernel.run(f"%sfdeploy {registered} --target workers --port 1")
        assert "--port: not an option of target workers" in json.dumps(refused)
        kernel.ok(f"%sfdeploy {registered} --target workers --label notebook --no-cells")
    finally:
        kernel.close()
    (deployment,) = Deployments(repo).list(active_only=True)
    assert (deployment.target, deployment.details["label"]) == ("workers", "notebook")


@pytest.mark.browser
@pytest.mark.slow
def test_the_deploy_dialog_shows_the_plugin_and_its_options(
    browser, plugin_path: Path, tmp_path: Path, home: Path, registered: str, monkeypatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(plugin_path))  # the lab's server finds the plug-in
    lab = start_lab(tmp_path, home)
    try:
        page, errors = open_lab(browser, lab)
        page.locator(SIDEBAR_TAB).click()
        model_row(page, "iris").wait_for(timeout=30_000)
        model_row(page, "iris").locator('[data-testid="sparkserve-model-toggle"]').click()
        version_row(page, "iris:1").wait_for()
        open_actions(page, "iris:1")
        choose(page, "deploy")
        dialog = page.locator(".jp-Dialog")
        target = dialog.locator('[data-testid="sparkserve-deploy-target"]')
        options = dialog.locator('[data-testid="sparkserve-deploy-options"]')
        assert target.input_value() == "local"
        assert options.locator('[data-testid="sparkserve-deploy-option-token"]').count() == 1
        target.select_option("workers")
        options.locator('[data-testid="sparkserve-deploy-option-workers"]').fill("2")
        options.locator('[data-testid="sparkserve-deploy-option-label"]').fill("from the dialog")
        assert options.locator('[data-testid="sparkserve-deploy-option-token"]').count() == 0
        screenshot(page, "sidebar-deploy-plugin-target.png")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"iris:1 is deployed at http://127\.0\.0\.1:")
        assert errors == []
    finally:
        stop_lab(lab)
    repository = ModelRepository(Settings.from_env())
    (deployment,) = Deployments(repository).list(active_only=True)
    assert deployment.target == "workers"
    assert deployment.details["label"] == "from the dialog"
    assert deployment.details["command"][-1] == "2"  # --workers 2
