"""The sidebar's model list, Actions menu, dialogs and jobs view in a real JupyterLab, driven
through a real Chromium: what it shows is what the REST API (and so the core) says."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _containers import base_image as base_image
from _containers import container_engine as container_engine
from _lab import (
    SIDEBAR,
    SIDEBAR_TAB,
    SLOW,
    model_row,
    open_lab,
    our_errors,
    our_tracebacks,
    put_notebook,
    run_cell,
    screenshot,
    start_lab,
    stop_lab,
    use_dark_theme,
    version_row,
    wait_for_message,
)
from _lab import browser as browser  # the fixture, for the tests below
from conftest import ARTIFACTS_DIR, FAST_SAVE, TESTS_DIR

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.lifecycle import (
    DEPLOYMENT_ACTIONS,
    deployment_actions,
    deployment_unavailable,
    version_actions,
)
from jupyter_sparkserve.repository import ModelRepository

ROOT = TESTS_DIR.parent
MENU = ".jp-SparkserveActionsMenu"


def open_actions(page: Any, ref: str) -> list[str]:
    """Open the Actions menu of version `ref`; the actions of its enabled items, in order
    (a target's own "Deploy to ..." item is the Deploy action: see `deploy_to_items`)."""
    version_row(page, ref).locator('[data-testid="sparkserve-actions"]').click()
    menu = page.locator(MENU)
    menu.wait_for()
    items = menu.locator("li.lm-Menu-item[data-command]")  # not the separator
    enabled = [
        item.get_attribute("data-command").removeprefix("sparkserve:")
        for item in items.all()
        if item.get_attribute("data-command")  # not a separator
        and "lm-mod-disabled" not in (item.get_attribute("class") or "")
        and not item.get_attribute("data-target")
    ]
    assert enabled, "an Actions menu without an enabled item"
    return enabled


def deploy_to_items(page: Any) -> dict[str, tuple[bool, str]]:
    """The open menu's "Deploy to ..." items: target -> (enabled, tooltip)."""
    found = {}
    for item in page.locator(f"{MENU} li.lm-Menu-item[data-target]").all():
        enabled = "lm-mod-disabled" not in (item.get_attribute("class") or "")
        found[item.get_attribute("data-target")] = (enabled, item.get_attribute("title") or "")
    return found


def choose(page: Any, action: str) -> None:
    page.locator(f'{MENU} li[data-command="sparkserve:{action}"]').click()
    page.locator(MENU).wait_for(state="detached")


def core_actions(repository: ModelRepository, ref: str) -> list[str]:
    return [action.value for action in version_actions(repository, ref)]


def job_succeeded_with_log(page: Any, job: Any, text: str, timeout: float) -> Any:
    """Wait for the job row to end, check it succeeded, open its log and wait until it holds
    `text`; the log's locator."""
    page.wait_for_function(
        "node => ['succeeded', 'failed', 'cancelled'].includes(node.dataset.status)",
        arg=job.element_handle(),
        timeout=timeout,
    )
    assert job.get_attribute("data-status") == "succeeded", job.inner_text()
    job.locator('[data-testid="sparkserve-job-log-button"]').click()
    log = job.locator('[data-testid="sparkserve-job-log"]')
    page.wait_for_function(
        "([node, text]) => node.textContent.length > 0 && node.textContent.includes(text)",
        arg=[log.element_handle(), text],
        timeout=30_000,
    )
    return log


def test_frontend_and_server_versions_are_one_release() -> None:
    """The sidebar reports a mismatched server extension by comparing its FRONTEND_VERSION with
    the server's; the constant must be package.json's version (the Python package's too)."""
    package = json.loads((ROOT / "package.json").read_text())
    api_ts = (ROOT / "src" / "api.ts").read_text()
    found = re.search(r"FRONTEND_VERSION = '([^']+)'", api_ts)
    assert found is not None
    assert found.group(1) == package["version"]


@pytest.mark.browser
@pytest.mark.slow
def test_actions_menu_register_deploy_snippets_undeploy_and_score(
    browser, tmp_path: Path, home: Path, iris, iris_model
) -> None:
    features, _target = iris
    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE)
    repository.import_model(repository.resolve("iris:1").path, "scratch")
    expected = [int(p) for p in repository.load_pyfunc("iris:1").predict(features.head(3))]
    scoring_input = tmp_path / "score-in" / "iris.csv"
    scoring_input.parent.mkdir()
    features.to_csv(scoring_input, index=False)
    scoring_output = tmp_path / "score-out" / "scored.csv"
    scoring_output.parent.mkdir()

    lab = start_lab(tmp_path, home, "--LabApp.expose_app_in_browser=True")
    try:
        put_notebook(lab, "sidebar.ipynb", [("first", "print('the snippets go below')")])
        page, errors = open_lab(browser, lab, "lab/tree/sidebar.ipynb")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)

        # The model saved through the core shows, with its latest version and flavor.
        page.locator(SIDEBAR_TAB).click()
        iris_row = model_row(page, "iris")
        iris_row.wait_for(timeout=30_000)
        assert iris_row.locator(".jp-SparkserveModel-latest").inner_text() == "v1"
        assert iris_row.locator(".jp-SparkserveModel-flavor").first.inner_text() == "sklearn"
        assert iris_row.locator("[data-badge]").count() == 0
        iris_row.locator('[data-testid="sparkserve-model-toggle"]').click()
        version_row(page, "iris:1").wait_for()
        screenshot(page, "sidebar-models.png")

        # Its Actions menu holds exactly what the core enables, nothing more.
        assert open_actions(page, "iris:1") == core_actions(repository, "iris:1")
        screenshot(page, "sidebar-actions-menu.png")
        # Its items are commands in JupyterLab's own registry, usable only with a version.
        assert page.evaluate(
            "() => [window.jupyterapp.commands.hasCommand('sparkserve:register'),"
            " window.jupyterapp.commands.isEnabled('sparkserve:register', {ref: 'iris:1'}),"
            " window.jupyterapp.commands.isEnabled('sparkserve:register', {})]"
        ) == [True, True, False]
        choose(page, "register")
        wait_for_message(page, r"iris:1 is registered as models:/")
        version_row(page, "iris:1").locator('[data-badge="registered"]').wait_for()

        assert open_actions(page, "iris:1") == core_actions(repository, "iris:1")
        choose(page, "deploy")
        dialog = page.locator(".jp-Dialog")
        assert dialog.locator('[data-testid="sparkserve-deploy-target"]').input_value() == "local"
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"iris:1 is deployed at http://127\.0\.0\.1:")
        version_row(page, "iris:1").locator('[data-badge="deployed"]').wait_for()
        # The Deployments section lists it with its target, URL and the core's actions.
        (live,) = Deployments(repository).list(active_only=True)
        listed = page.locator(f'{SIDEBAR} [data-testid="sparkserve-deployment"]')
        listed.locator('[data-testid="sparkserve-deployment-url"]', has_text=live.url).wait_for()
        assert listed.get_attribute("data-status") == "running"
        assert (
            listed.locator('[data-testid="sparkserve-deployment-target"]').inner_text() == "local"
        )
        # Every action shown; those the core does not offer now greyed, with its reason.
        buttons = listed.locator(".jp-SparkserveDeployment-action")
        assert [b.get_attribute("data-testid") for b in buttons.all()] == [
            f"sparkserve-deployment-{action.value}" for action in DEPLOYMENT_ACTIONS
        ]
        assert [b.get_attribute("data-testid") for b in buttons.all() if b.is_enabled()] == [
            f"sparkserve-deployment-{action.value}" for action in deployment_actions(live.status)
        ]
        for action, why in deployment_unavailable(live.status):
            greyed = listed.locator(f'[data-testid="sparkserve-deployment-{action.value}"]')
            assert greyed.get_attribute("title") == why
        assert iris_row.locator('.jp-SparkserveModel-row [data-badge="deployed"]').count() == 1

        # Snippets: python and curl, inserted below the notebook's active cell.
        assert open_actions(page, "iris:1") == core_actions(repository, "iris:1")
        choose(page, "snippets")
        snippets = page.locator('.jp-Dialog [data-testid="sparkserve-snippet"]')
        snippets.first.wait_for()
        languages = [s.get_attribute("data-language") for s in snippets.all()]
        assert languages == ["python", "shell"]
        screenshot(page, "sidebar-snippets.png")
        page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"Inserted 2 cells into sidebar\.ipynb")
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        page.wait_for_function(
            "document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length === 3"
        )
        assert "requests.post(" in cells.nth(1).inner_text()
        assert "%%bash" in cells.nth(2).inner_text() and "curl -sS" in cells.nth(2).inner_text()

        # The python cell scores at the endpoint; the curl cell (run next) does too.
        run_cell(page, cells.nth(1))
        python_output = cells.nth(1).locator(".jp-OutputArea-output")
        python_output.wait_for(timeout=SLOW)
        page.wait_for_function(
            "cell => cell.querySelector('.jp-OutputArea-output').innerText.includes(']')",
            arg=cells.nth(1).element_handle(),
        )
        assert str(expected) in python_output.inner_text()
        page.keyboard.press("Shift+Enter")  # the curl cell is active now
        curl_output = cells.nth(2).locator(".jp-OutputArea-output")
        curl_output.wait_for(timeout=SLOW)
        assert json.loads(curl_output.inner_text())["predictions"] == expected
        screenshot(page, "sidebar-notebook-predictions.png")

        # Undeploy from the menu: the endpoint stops and the menu changes with the core.
        assert open_actions(page, "iris:1") == core_actions(repository, "iris:1")
        choose(page, "undeploy")
        wait_for_message(page, r"iris:1 is undeployed")
        page.wait_for_function(
            "!document.querySelector('#jp-sparkserve-sidebar [data-badge=\"deployed\"]')"
        )
        assert [d.status for d in Deployments(repository).list()] == ["stopped"]
        assert open_actions(page, "iris:1") == core_actions(repository, "iris:1")
        assert "undeploy" not in core_actions(repository, "iris:1")

        # Score: a job the jobs view follows until it has succeeded.
        choose(page, "score")
        dialog = page.locator(".jp-Dialog")
        dialog.locator('[data-testid="sparkserve-score-input"]').fill(str(scoring_input))
        dialog.locator('[data-testid="sparkserve-score-output"]').fill(str(scoring_output))
        assert dialog.locator('[data-testid="sparkserve-score-engine"]').input_value() == "local"
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, r"Scoring with iris:1: job \S+ is")
        job = page.locator(f'{SIDEBAR} [data-testid="sparkserve-job"]').first
        job.wait_for()
        job_succeeded_with_log(page, job, "", SLOW)
        assert job.locator('[data-testid="sparkserve-job-rows"]').inner_text().startswith("150")
        assert not job.locator('[data-testid="sparkserve-job-cancel"]').is_visible()
        screenshot(page, "sidebar-jobs.png")
        scored = pd.read_csv(scoring_output)
        assert len(scored) == len(features)
        assert scored["prediction"].head(3).tolist() == expected

        # Delete asks first, then the version (here the whole model) is gone.
        model_row(page, "scratch").locator('[data-testid="sparkserve-model-toggle"]').click()
        assert open_actions(page, "scratch:1") == core_actions(repository, "scratch:1")
        choose(page, "delete")
        page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-warn").click()
        wait_for_message(page, r"scratch:1 is deleted")
        model_row(page, "scratch").wait_for(state="detached")
        assert [m.name for m in repository.list_models().items] == ["iris"]

        assert our_errors(errors) == []
        page.close()
    finally:
        for deployment in Deployments(repository).list(active_only=True):
            Deployments(repository).undeploy(deployment.id)
        stop_lab(lab)
    assert our_tracebacks(lab) == []


# ------------------------------------------------------------------ 2,000 models, first page

MODELS = 2000
FIRST_PAGE_LIMIT_MS = 1000
BENCHMARK_SECTION = "## Sidebar first page with 2,000 models"

# Installed before the tab is clicked: the time of the click's pointerdown, then of the first
# animation frame where the sidebar holds a full page of model rows.
TIMING_SCRIPT = """([tab, rows]) => {
  const timing = (window.__sparkserveTiming = {});
  const watch = () => {
    const found = document.querySelectorAll(rows);
    if (found.length >= 50 && found[0].offsetParent !== null) {
      timing.shown = performance.now();
      timing.first = found[0].dataset.model;
      timing.count = found.length;
    } else {
      requestAnimationFrame(watch);
    }
  };
  document.querySelector(tab).addEventListener(
    'pointerdown',
    () => { timing.clicked = performance.now(); requestAnimationFrame(watch); },
    { capture: true, once: true }
  );
}"""

NEXT_PAGE_SCRIPT = """([next, rows, first]) => new Promise(resolve => {
  const started = performance.now();
  const watch = () => {
    const found = document.querySelectorAll(rows);
    if (found.length >= 50 && found[0].dataset.model === first) {
      resolve(performance.now() - started);
    } else {
      requestAnimationFrame(watch);
    }
  };
  document.querySelector(next).click();
  requestAnimationFrame(watch);
})"""


def fill_repository(repository: ModelRepository, source: Path, monkeypatch) -> float:
    """2,000 models, each one import of the same MLflow folder; the seconds it took. The
    repository fsyncs every version folder it promotes, which is most of an import's time on
    this disk; a test repository in a temporary folder needs no durability, so fsync is off."""
    started = time.perf_counter()
    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", lambda _fd: None)
        for index in range(MODELS):
            repository.import_model(source, f"model-{index:04d}")
    return time.perf_counter() - started


def write_benchmark(lines: list[str]) -> None:
    """The measured figures as a BENCHMARKS.md section, in tests/artifacts/ (copied into
    BENCHMARKS.md by hand: a test run never rewrites a tracked file)."""
    wrapped = [
        line if line.startswith("|") else textwrap.fill(line, 92, break_on_hyphens=False)
        for line in lines
    ]
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    section = "\n".join([BENCHMARK_SECTION, "", *wrapped]) + "\n"
    (ARTIFACTS_DIR / "sidebar-first-page.md").write_text(section)
    print(section)


def test_build_image_and_kubernetes_manifest_from_the_actions_menu(
    browser, base_image: str, tmp_path: Path, home: Path, iris, iris_model
) -> None:
    """Build image… runs a build job the jobs view follows step by step to its end;
    Kubernetes manifest… shows the YAML, saves it as a file and inserts its cells."""
    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    tag = "localhost/sparkserve-tests/iris-sidebar:1"
    lab = start_lab(tmp_path, home)  # after the engine fixtures: DOCKER_HOST is set
    try:
        put_notebook(lab, "k8s.ipynb", [("first", "print('the manifest goes below')")])
        page, errors = open_lab(browser, lab, "lab/tree/k8s.ipynb")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        page.locator(SIDEBAR_TAB).click()
        model_row(page, "iris").locator('[data-testid="sparkserve-model-toggle"]').click()
        assert open_actions(page, "iris:1") == core_actions(repository, "iris:1")

        choose(page, "build_image")
        dialog = page.locator(".jp-Dialog")
        dialog.locator('[data-testid="sparkserve-build-tag"]').fill(tag)
        screenshot(page, "sidebar-build-dialog.png")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        wait_for_message(page, rf"Image {re.escape(tag)} of iris:1: job \S+ is")
        job = page.locator(f'{SIDEBAR} [data-testid="sparkserve-job"][data-kind="build"]')
        job.wait_for()
        log = job_succeeded_with_log(page, job, "Built", SLOW * 3)
        assert job.locator('[data-testid="sparkserve-job-rows"]').inner_text().startswith("built")
        assert "STEP" in log.inner_text()
        screenshot(page, "sidebar-build-job.png")

        # The manifests: shown, saved where the user says, then inserted as cells.
        def show_manifest() -> None:
            open_actions(page, "iris:1")
            choose(page, "kubernetes")
            page.locator('.jp-Dialog [data-testid="sparkserve-k8s-image"]').fill(tag)
            page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
            page.locator('.jp-Dialog [data-testid="sparkserve-k8s-yaml"]').wait_for()

        show_manifest()
        shown = page.locator('.jp-Dialog [data-testid="sparkserve-k8s-yaml"]').inner_text()
        assert "kind: Deployment" in shown and f"image: {tag}" in shown
        screenshot(page, "sidebar-k8s-manifest.png")
        (tmp_path / "deploy").mkdir()  # Save as, as JupyterLab's own, makes no folder
        page.locator('.jp-Dialog [data-testid="sparkserve-k8s-path"]').fill("deploy/iris.yaml")
        page.locator(".jp-Dialog .jp-Dialog-button", has_text="Save").click()
        wait_for_message(page, r"Wrote the manifests of iris:1 to deploy/iris\.yaml")
        assert (tmp_path / "deploy" / "iris.yaml").read_text().strip() == shown.strip()
        (tmp_path / "deploy" / "iris.yaml").write_text("kept until the user says replace\n")
        show_manifest()
        page.locator('.jp-Dialog [data-testid="sparkserve-k8s-path"]').fill("deploy/iris.yaml")
        page.locator(".jp-Dialog .jp-Dialog-button", has_text="Save").click()
        page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-warn", has_text="Replace").click()
        page.wait_for_function("() => !document.querySelector('.jp-Dialog')", timeout=30_000)
        deadline = time.monotonic() + 30
        while "kept until" in (tmp_path / "deploy" / "iris.yaml").read_text():
            assert time.monotonic() < deadline, "Replace did not write the manifests"
            time.sleep(0.2)

        show_manifest()
        page.locator(".jp-Dialog .jp-Dialog-button", has_text="Insert into notebook").click()
        wait_for_message(page, r"Inserted 2 cells into k8s\.ipynb")
        # The notebook renders only the cells in view: read the saved file instead.
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").click()
        page.keyboard.press("Control+s")
        notebook = tmp_path / "k8s.ipynb"
        deadline = time.monotonic() + 30
        while len(json.loads(notebook.read_text())["cells"]) < 3:
            assert time.monotonic() < deadline, "the notebook was not saved with its new cells"
            time.sleep(0.2)
        sources = ["".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]]
        assert sources[1] == f"%%writefile iris-v1.yaml\n{shown.strip()}\n"
        assert sources[2] == "%%bash\n# Apply it to the cluster\nkubectl apply -f iris-v1.yaml"
        assert our_errors(errors) == []
    finally:
        stop_lab(lab)
    assert our_tracebacks(lab) == []


@pytest.mark.browser
@pytest.mark.slow
def test_first_page_of_2000_models_shows_in_under_a_second(
    browser, tmp_path: Path, home: Path, mlflow_model_dir: Path, monkeypatch
) -> None:
    repository = ModelRepository(Settings.from_env())
    fill_seconds = fill_repository(repository, mlflow_model_dir, monkeypatch)
    assert repository.stats()["models"] == MODELS

    use_dark_theme(tmp_path)  # the dark theme's screenshot comes with it
    lab = start_lab(tmp_path, home)
    try:
        page, errors = open_lab(browser, lab)
        rows = f'{SIDEBAR} [data-testid="sparkserve-model"]'
        page.evaluate(TIMING_SCRIPT, [SIDEBAR_TAB, rows])
        page.locator(SIDEBAR_TAB).click()
        page.wait_for_function("window.__sparkserveTiming.shown !== undefined", timeout=30_000)
        timing = page.evaluate("window.__sparkserveTiming")
        first_page_ms = timing["shown"] - timing["clicked"]
        assert (timing["first"], timing["count"]) == ("model-0000", 50)
        info = page.locator(f'{SIDEBAR} [data-testid="sparkserve-page-info"]')
        assert info.inner_text() == f"1\N{EN DASH}50 of {MODELS}"
        assert page.locator(rows).count() == 50  # only the page is in the DOM
        screenshot(page, "sidebar-2000-models-dark.png")

        next_button = f'{SIDEBAR} [data-testid="sparkserve-next-page"]'
        next_ms = [
            page.evaluate(NEXT_PAGE_SCRIPT, [next_button, rows, f"model-{50 * page_number:04d}"])
            for page_number in range(1, 6)
        ]
        # The filter box asks the API for matching names once typing pauses.
        page.locator(f'{SIDEBAR} [data-testid="sparkserve-filter"]').fill("MODEL-19")
        page.wait_for_function(
            "([rows, first]) => document.querySelector(rows)?.dataset.model === first",
            arg=[rows, "model-1900"],
        )
        assert info.inner_text() == "1\N{EN DASH}50 of 100"
        pager = page.locator(f'{SIDEBAR} [data-testid="sparkserve-pager"]')
        assert pager.is_visible()
        page.locator(f'{SIDEBAR} [data-testid="sparkserve-filter"]').fill("MODEL-1999")
        page.wait_for_function(
            "([rows]) => document.querySelectorAll(rows).length === 1", arg=[rows]
        )
        pager.wait_for(state="hidden")  # one page: no pager, as in JupyterLab's own lists
        api_ms = []
        for _ in range(5):
            started = time.perf_counter()
            lab.api("GET", "sparkserve/api/v1/models?limit=50&offset=0")
            api_ms.append(1000 * (time.perf_counter() - started))
        chromium = browser.version
        assert our_errors(errors) == []
        page.close()
    finally:
        stop_lab(lab)

    today = datetime.date.today().isoformat()
    api_median = statistics.median(api_ms)
    write_benchmark(
        [
            f"`python -m pytest tests/test_sidebar.py -k 2000` ({today}, {os.cpu_count()} "
            f"cores, Python {platform.python_version()}, Chromium {chromium} headless, a real "
            "`jupyter lab` started by the test, SQLite repository).",
            "",
            "| measure | time |",
            "| --- | --- |",
            f"| click on the sparkserve tab -> first page of 50 model rows painted (the test "
            f"asserts under {FIRST_PAGE_LIMIT_MS:,} ms) | {first_page_ms:.0f} ms |",
            f"| Next -> the following page painted (median of 5) | "
            f"{statistics.median(next_ms):.0f} ms |",
            f"| `GET sparkserve/api/v1/models?limit=50` alone, from the test process (median "
            f"of 5) | {api_median:.1f} ms |",
            "",
            "The sidebar reads the list only when it is opened and renders only the page the "
            "API returns (`limit`/`offset`), so the DOM holds 50 rows whatever the repository "
            "size; the click-to-paint time is the page request plus one render and frame. "
            "The time is taken in the page: from the tab's `pointerdown` to the first "
            "animation frame holding the rows.",
            "",
            f"Filling the repository took {fill_seconds:.1f} s: {MODELS:,} "
            "`ModelRepository.import_model` calls of one scikit-learn MLflow folder, with "
            "`os.fsync` stubbed out for the fill (fsync of each promoted folder is most of an "
            "import's time on this disk, and a temporary test repository needs no durability).",
        ]
    )
    assert first_page_ms < FIRST_PAGE_LIMIT_MS, f"first page took {first_page_ms:.0f} ms"
