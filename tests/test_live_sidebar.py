"""The live sidebar in a real JupyterLab and Chromium: what another process saves shows without
a click, a finished job raises a notification whose action opens its output, a local endpoint
that dies shows failed with its error and can be dismissed, and the panel comes back after a
reload with its commands in the palette."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
    toast,
)
from _lab import browser as browser  # the fixture, for the tests below

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.lifecycle import DEPLOYMENT_ACTIONS, deployment_actions
from jupyter_sparkserve.repository import ModelRepository

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

SAVE = """
import sys
import pandas as pd
from sklearn.linear_model import LogisticRegression
from jupyter_sparkserve.repository import ModelRepository
frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
model = LogisticRegression().fit(frame, [0, 0, 1, 1])
with ModelRepository.open() as repo:
    print(repo.save(model, sys.argv[1], input_example=frame.head(2),
                    pip_requirements=["scikit-learn", "pandas"]).ref)
"""


def test_the_sidebar_follows_other_faces_and_a_finished_job_opens_its_output(
    browser, tmp_path: Path, home: Path
) -> None:
    repository = ModelRepository(Settings.from_env())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("x\n0.0\n3.0\n")
    (tmp_path / "out").mkdir()
    lab = start_lab(tmp_path, home)
    try:
        page, errors = open_lab(browser, lab)
        page.locator(SIDEBAR_TAB).wait_for(timeout=90_000)  # 2 busy cores: a slow first load
        page.locator(SIDEBAR_TAB).click()
        page.wait_for_selector(f"{SIDEBAR} .jp-SparkservePanel-count", timeout=30_000)
        assert page.locator(f'{SIDEBAR} [data-testid="sparkserve-model"]').count() == 0

        # A model saved through the Python API by another process shows up without a click.
        saved = subprocess.run(
            [sys.executable, "-c", SAVE, "churn"],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert saved.stdout.strip() == "churn:1"
        seen_after = time.monotonic()
        model_row(page, "churn").wait_for(timeout=15_000)
        delay = time.monotonic() - seen_after
        page.wait_for_function(
            "document.querySelector('.jp-SparkservePanel-count').textContent"
            " === '1 model, 1 version'"
        )
        print(f"the saved model showed {delay:.2f} s after the save returned")

        # A job started from another face (here the REST API, as the magics' server does)
        # shows in the jobs view, and its end raises a notification.
        job = lab.api(
            "POST",
            "sparkserve/api/v1/jobs",
            {"spec": {"model": "churn:1", "input": "data/in.csv", "output": "out/scored.csv"}},
        )
        ended = toast(page, rf"job {job['id']} succeeded")
        screenshot(page, "live-job-notification.png")
        row = page.locator(f'{SIDEBAR} [data-testid="sparkserve-job"][data-job-id="{job["id"]}"]')
        assert row.get_attribute("data-status") == "succeeded"
        when = row.locator('[data-testid="sparkserve-job-when"]').inner_text()
        assert re.search(r"started .+ · \d+ s", when), when
        link = row.locator('a[data-testid="sparkserve-job-output"]')
        assert link.inner_text() == str(tmp_path / "out" / "scored.csv")

        # Its "Open output" opens the output in JupyterLab.
        ended.locator(".jp-toast-button", has_text="Open output").click()
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="scored.csv").wait_for()
        screenshot(page, "live-job-output-opened.png")

        # Clear finished removes the ended job from the list (and the core's records).
        page.locator(f'{SIDEBAR} [data-testid="sparkserve-jobs-clear"]').click()
        row.wait_for(state="detached")
        assert lab.api("GET", "sparkserve/api/v1/jobs")["items"] == []
        assert (tmp_path / "out" / "scored.csv").is_file()

        assert our_errors(errors) == []
        page.close()
    finally:
        stop_lab(lab)
        repository.close()
    assert our_tracebacks(lab) == []


def test_the_panel_is_restored_after_a_reload_and_its_commands_are_in_the_palette(
    browser, tmp_path: Path, home: Path
) -> None:
    lab = start_lab(tmp_path, home)
    try:
        page, errors = open_lab(browser, lab)
        page.locator(SIDEBAR_TAB).wait_for(timeout=90_000)  # 2 busy cores: a slow first load
        page.locator(SIDEBAR_TAB).click()
        panel = page.locator(SIDEBAR)
        panel.locator(".jp-SparkservePanel-count").wait_for(timeout=30_000)
        # JupyterLab saves the layout into the workspace shortly after it changes.
        workspace = tmp_path / "workspaces"
        deadline = time.monotonic() + 30
        while '"current":"sparkserve-sidebar"' not in "".join(
            path.read_text() for path in workspace.glob("*.jupyterlab-workspace")
        ):
            assert time.monotonic() < deadline, "the layout was not saved"
            time.sleep(0.3)

        page.reload()
        page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
        panel.locator(".jp-SparkservePanel-count").wait_for(timeout=30_000)
        assert panel.is_visible()  # open again, with no click on its tab
        screenshot(page, "live-restored.png")

        # The palette lists the sidebar's commands; "Open Model Serving Jobs" opens the
        # sidebar again once it is closed.
        page.locator(SIDEBAR_TAB).click()
        panel.wait_for(state="hidden")
        page.keyboard.press("Control+Shift+c")
        palette = page.locator("#command-palette")
        palette.locator("input").fill("Model serving")
        items = palette.locator(".lm-CommandPalette-itemLabel")
        items.filter(has_text="Open Model Serving Jobs").wait_for()
        labels = items.all_inner_texts()
        for label in (
            "Deploy a Model Version…",
            "Score Files with a Model Version…",
            "Refresh Models, Deployments and Jobs",
            "Open Model Serving Jobs",
        ):
            assert label in labels, labels
        palette.locator("input").fill("Open Model Serving Jobs")
        items.filter(has_text="Open Model Serving Jobs").wait_for()
        page.keyboard.press("Enter")
        panel.locator(".jp-SparkserveJobs").wait_for()
        assert our_errors(errors) == []
        page.close()
    finally:
        stop_lab(lab)
    assert our_tracebacks(lab) == []


# A notebook cell that saves a model through the Python API (the kernel shares the server's
# SPARKSERVE_HOME).
NOTEBOOK_SAVE = """from sklearn.linear_model import LogisticRegression
import pandas as pd
from jupyter_sparkserve.repository import ModelRepository
frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
with ModelRepository.open() as repo:
    repo.save(LogisticRegression().fit(frame, [0, 0, 1, 1]), "from_notebook",
              input_example=frame.head(2), pip_requirements=["scikit-learn", "pandas"])"""


def test_a_model_saved_in_a_notebook_shows_and_a_deploy_from_another_face_is_followed(
    browser, tmp_path: Path, home: Path
) -> None:
    repository = ModelRepository(Settings.from_env())
    subprocess.run([sys.executable, "-c", SAVE, "churn"], check=True, timeout=180)
    lab = start_lab(tmp_path, home)
    try:
        put_notebook(
            lab, "calls.ipynb", [("save", NOTEBOOK_SAVE), ("first", "print('snippets below')")]
        )
        page, errors = open_lab(browser, lab, "lab/tree/calls.ipynb")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
        page.locator(SIDEBAR_TAB).click()
        page.wait_for_selector(f"{SIDEBAR} .jp-SparkservePanel-count", timeout=30_000)
        cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")

        # A model saved by a notebook cell shows in the open sidebar without a click.
        assert model_row(page, "from_notebook").count() == 0
        run_cell(page, cells.nth(0))  # the print cell is the active one next
        model_row(page, "from_notebook").wait_for(timeout=SLOW)

        # Deployed through the REST API (as a notebook's %sfdeploy or the CLI could): its end
        # is notified with Insert snippets, and the section lists it with the core's actions.
        started = lab.api(
            "POST", "sparkserve/api/v1/deployments", {"ref": "churn:1", "register": True}
        )
        said = toast(page, r"churn:1 is deployed at http://127\.0\.0\.1:")
        (live,) = Deployments(repository).list(active_only=True)
        assert live.id == started["id"]
        row = page.locator(f'{SIDEBAR} [data-testid="sparkserve-deployment"]')
        row.locator('[data-testid="sparkserve-deployment-url"]', has_text=live.url).wait_for()
        actions = row.locator(".jp-SparkserveDeployment-action")
        assert [a.get_attribute("data-testid") for a in actions.all()] == [
            f"sparkserve-deployment-{action.value}" for action in DEPLOYMENT_ACTIONS
        ]
        enabled = [a.get_attribute("data-testid") for a in actions.all() if a.is_enabled()]
        assert enabled == [
            f"sparkserve-deployment-{action.value}" for action in deployment_actions("running")
        ]
        screenshot(page, "live-deployment.png")

        said.locator(".jp-toast-button", has_text="Insert snippets").click()
        page.wait_for_function(
            "document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length === 4"
        )
        assert live.url in cells.nth(2).inner_text()  # below the active cell

        # Undeploy from the section: the endpoint stops and the section empties.
        row.locator('[data-testid="sparkserve-deployment-undeploy"]').click()
        toast(page, r"churn:1 is undeployed")
        row.wait_for(state="detached")
        assert [d.status for d in Deployments(repository).list()] == ["stopped"]

        # Deployed again, then its endpoint killed outside sparkserve, and nothing read: the
        # server notices on its own, the row turns failed with its error (the end of its log
        # behind a disclosure) and offers Dismiss, which forgets it.
        again = lab.api("POST", "sparkserve/api/v1/deployments", {"ref": "churn:1"})
        toast(page, rf"churn:1 is deployed at .* \({again['id']}\)")
        selector = (
            f'{SIDEBAR} [data-testid="sparkserve-deployment"][data-deployment-id="{again["id"]}"]'
        )
        row = page.locator(selector)
        row.locator('[data-testid="sparkserve-deployment-url"]', has_text="http://").wait_for()
        pid = Deployments(repository).get(again["id"]).details["pid"]
        os.killpg(pid, signal.SIGKILL)
        killed = time.monotonic()
        # (Each read draws the rows anew: wait for a row, not on the node seen before.)
        page.locator(f'{selector}[data-status="failed"]').wait_for(timeout=10_000)
        print(f"the sidebar showed the killed endpoint failed {time.monotonic() - killed:.2f} s on")
        # A death nobody asked for is said as an error notification, kept until hidden.
        died = page.locator(
            ".Toastify__toast", has_text=f"churn:1's endpoint ({again['id']}) stopped serving"
        )
        died.wait_for(timeout=10_000)
        assert "jp-Notification-Toast-error" in (died.get_attribute("class") or "")
        assert f"its process {pid}" in died.inner_text()
        died.locator('[title="Hide notification"]').click()
        died.wait_for(state="detached")
        error = row.locator('[data-testid="sparkserve-deployment-error"]')
        assert f"its process {pid}" in error.inner_text() and "is not serving" in error.inner_text()
        log = row.locator('[data-testid="sparkserve-deployment-log"]')
        assert not log.locator("pre").is_visible()
        log.locator("summary").click()  # a native disclosure: keyboard and screen readers too
        assert "Last lines of" in log.locator("pre").inner_text()
        actions = row.locator(".jp-SparkserveDeployment-action")
        enabled = [a.get_attribute("data-testid") for a in actions.all() if a.is_enabled()]
        assert enabled == ["sparkserve-deployment-dismiss"]
        undeploy = row.locator('[data-testid="sparkserve-deployment-undeploy"]')
        assert undeploy.get_attribute("title") == "It is failed: there is nothing to undeploy."
        screenshot(page, "live-deployment-failed.png")
        row.locator('[data-testid="sparkserve-deployment-dismiss"]').click()
        toast(page, rf"Dismissed churn:1 \({again['id']}\)")
        row.wait_for(state="detached")
        assert [d.status for d in Deployments(repository).list()] == ["stopped"]
        assert our_errors(errors) == []
        page.close()
    finally:
        for deployment in Deployments(repository).list(active_only=True):
            Deployments(repository).undeploy(deployment.id)
        stop_lab(lab)
        repository.close()
    assert our_tracebacks(lab) == []
