"""`%sfdeploy` in a real JupyterLab, driven through a real Chromium: the labextension renders
the cells bundle and inserts its snippet cells below the cell that ran the magic, exactly once
(not again after saving and reopening, nor after the user deleted them), and the inserted
python cell scores at the live endpoint."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _lab import (
    Lab,
    open_lab,
    our_errors,
    put_notebook,
    run_cell,
    screenshot,
    start_lab,
    stop_lab,
)
from _lab import browser as browser  # the fixture, for the test below
from conftest import FAST_SAVE

from jupyter_sparkserve.config import ENDPOINT_TOKEN_ENV as TOKEN_ENV
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.magics.monitor_widget import VIEW_SILENCE_SECONDS
from jupyter_sparkserve.repository import ModelRepository

SLOW = 180_000  # ms: MLflow's first registration, an endpoint or a kernel starting on 2 cores
NOTEBOOK = "cells.ipynb"
CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"
RENDERER = ".jp-SparkserveCells"
MAGIC = "%load_ext jupyter_sparkserve\n%sfdeploy iris --register"
LAST = "print('the cell after')"


def saved(lab: Lab) -> dict[str, Any]:
    """The notebook as saved; while a save is being written the server may answer 400
    (an unreadable notebook), which counts as nothing saved yet."""
    try:
        return lab.api("GET", f"api/contents/{NOTEBOOK}?content=1")["content"]
    except urllib.error.HTTPError as error:
        if error.code != 400:
            raise
        return {"cells": [], "metadata": {}}


def bundle_cells(notebook: dict[str, Any], bundle: str) -> list[str]:
    """The sources of the saved notebook's cells that came from `bundle`."""
    return [
        "".join(cell["source"])
        for cell in notebook["cells"]
        if cell["metadata"].get("sparkserve", {}).get("bundle") == bundle
    ]


def squeezed(source: str) -> str:
    """`source` without its blank lines (the editor's innerText doubles them)."""
    return "\n".join(line for line in source.splitlines() if line.strip())


def dom_sources(page: Any) -> list[str]:
    """The notebook's cells as the page shows them, blank lines left out."""
    editors = page.locator(f"{CELLS} .jp-InputArea-editor").all()
    return [squeezed(editor.inner_text()) for editor in editors]


def wait_for_kernel(page: Any, lab: Lab) -> None:
    """Until the notebook's kernel is up and idle (running a cell before then asks which
    kernel to start)."""
    deadline = time.monotonic() + SLOW / 1000
    while not any(
        session["path"] == NOTEBOOK and session["kernel"]["execution_state"] == "idle"
        for session in lab.api("GET", "api/sessions")
    ):
        assert time.monotonic() < deadline, "the notebook's kernel did not start"
        time.sleep(0.3)
    page.wait_for_selector(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]',
        timeout=60_000,
    )


def shown_sources(page: Any, expected: list[str], timeout: float = 30.0) -> list[str]:
    """The page's cells once it shows `expected` (or its last view after `timeout`): a
    reopened notebook renders its cells' editors a few at a time."""
    deadline = time.monotonic() + timeout
    while (found := dom_sources(page)) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    return found


def check_the_monitor_widget(page: Any, deployment: Any, features: Any) -> None:
    """`%sfmonitor` in this JupyterLab: its widget renders and its req/s moves under load;
    once its cell is deleted, the extension no longer reports it shown and the kernel's
    polling thread ends (magics/monitor_widget.py), even if that came before a first report."""
    page.locator(CELLS).last.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type(f"%sfmonitor {deployment.id} --interval 0.5 --window 0.25")
    page.keyboard.press("Shift+Enter")
    widget = page.locator(".jp-SparkserveMonitor")
    widget.wait_for(timeout=60_000)
    body = json.dumps({"dataframe_split": features.head(1).to_dict(orient="split", index=False)})
    deadline = time.monotonic() + 60
    rate = 0.0
    while rate <= 0:
        assert time.monotonic() < deadline, f"req/s never moved: {widget.inner_text()!r}"
        for _ in range(20):
            request = urllib.request.Request(
                f"{deployment.url}/invocations",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=10).read()
        found = re.search(r"req/s\s+([0-9.,]+)", widget.inner_text())
        rate = float(found.group(1).replace(",", "")) if found else 0.0
        time.sleep(0.5)
    screenshot(page, "notebook-sfmonitor.png")

    monitor_cell = page.locator(CELLS).filter(has=page.locator(".jp-SparkserveMonitor"))
    monitor_cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("d")
    page.keyboard.press("d")
    widget.wait_for(state="detached", timeout=10_000)
    time.sleep(VIEW_SILENCE_SECONDS + 3)  # the kernel idle: silence about it counts
    page.locator(CELLS).last.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Enter")
    page.keyboard.type(
        "import threading; print('polling:', "
        "[t.name for t in threading.enumerate() if t.name.startswith('sparkserve-monitor')])"
    )
    page.keyboard.press("Shift+Enter")
    output = page.locator(f"{CELLS} .jp-OutputArea-output", has_text="polling:")
    output.wait_for(timeout=90_000)
    assert "polling: []" in output.inner_text()


def reopen(page: Any, state: str) -> None:
    """Reload the page (the notebook reopens from disk); wait for the bundle's output to show
    and the renderer to have decided `state`."""
    page.reload()
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    page.wait_for_selector(f'{RENDERER}[data-state="{state}"]', timeout=60_000)


@pytest.mark.browser
@pytest.mark.slow
def test_sfdeploy_inserts_its_cells_below_once_and_they_score(
    browser, tmp_path: Path, home: Path, iris, iris_model, monkeypatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)  # the lab's kernel: an endpoint without token
    features, _target = iris
    repository = ModelRepository(Settings.from_env())
    repository.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE)
    expected = [int(p) for p in repository.load_pyfunc("iris:1").predict(features.head(3))]

    lab = start_lab(tmp_path, home)
    try:
        put_notebook(lab, NOTEBOOK, [("magic", MAGIC), ("after", LAST)])
        page, errors = open_lab(browser, lab, f"lab/tree/{NOTEBOOK}")
        page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" on a reload
        cells = page.locator(CELLS)
        cells.first.wait_for(timeout=60_000)
        wait_for_kernel(page, lab)
        run_cell(page, cells.nth(0))

        # The output shows the summary; the python and %%bash curl cells come directly below.
        renderer = page.locator(RENDERER)
        try:
            renderer.wait_for(timeout=SLOW)
        except Exception:
            screenshot(page, "notebook-sfdeploy-failure.png")
            output = cells.nth(0).locator(".jp-Cell-outputWrapper").inner_text()
            pytest.fail(f"no cells bundle rendered; the cell's output: {output!r}; {errors}")
        page.wait_for_selector(f'{RENDERER}[data-state="inserted"]', timeout=10_000)
        bundle = renderer.get_attribute("data-bundle")
        assert bundle
        (deployment,) = Deployments(repository).list(active_only=True)
        assert bundle.startswith(f"{deployment.id}-")
        assert deployment.url in renderer.inner_text()
        assert "Inserted 2 cells below." in renderer.inner_text()
        sources = dom_sources(page)
        assert len(sources) == 4, sources
        assert sources[0] == MAGIC and sources[3] == LAST
        assert "requests.post(" in sources[1] and sources[2].startswith("%%bash\n# Score ")
        assert "\ncurl -sS -X POST" in sources[2]
        screenshot(page, "notebook-sfdeploy-cells.png")

        # Saved: the cells carry the bundle id, the notebook records it as inserted.
        cells.nth(0).locator(".jp-InputArea-prompt").click()
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        while len(bundle_cells(content := saved(lab), bundle)) != 2:
            assert time.monotonic() < deadline, "the notebook was not saved with the cells"
            time.sleep(0.3)
        assert [squeezed("".join(c["source"])) for c in content["cells"]] == sources
        assert content["metadata"]["sparkserve"]["inserted_bundles"] == [bundle]
        assert content["cells"][0]["metadata"]["sparkserve"]["inserted_bundles"] == [bundle]

        # Reopened: the output renders again, nothing is inserted again.
        reopen(page, "already")
        assert shown_sources(page, sources) == sources
        assert "Cells already inserted." in page.locator(RENDERER).inner_text()
        assert len(bundle_cells(saved(lab), bundle)) == 2

        # The inserted python cell scores at the live endpoint.
        run_cell(page, cells.nth(1))
        output = cells.nth(1).locator(".jp-OutputArea-output")
        output.wait_for(timeout=SLOW)
        page.wait_for_function(
            "cell => cell.querySelector('.jp-OutputArea-output').innerText.includes(']')",
            arg=cells.nth(1).element_handle(),
            timeout=60_000,
        )
        assert str(expected) in output.inner_text()
        screenshot(page, "notebook-sfdeploy-predictions.png")

        # Deleted by the user (here: on disk) and reopened: they do not come back.
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        while True:
            content = saved(lab)
            if any(cell["outputs"] for cell in content["cells"][1:2]):
                break
            assert time.monotonic() < deadline, "the notebook was not saved with the output"
            time.sleep(0.3)
        content["cells"] = [
            cell
            for cell in content["cells"]
            if "bundle" not in cell["metadata"].get("sparkserve", {})
        ]
        lab.api("PUT", f"api/contents/{NOTEBOOK}", {"type": "notebook", "content": content})
        reopen(page, "already")
        assert shown_sources(page, [MAGIC, LAST]) == [MAGIC, LAST]
        assert bundle_cells(saved(lab), bundle) == []

        check_the_monitor_widget(page, deployment, features)

        assert our_errors(errors) == []
        page.close()
    finally:
        for running in Deployments(repository).list(active_only=True):
            Deployments(repository).undeploy(running.id)
        stop_lab(lab)
    assert [d.status for d in Deployments(repository).list()] == ["stopped"]
    # No traceback through our server extension (a page reload can make jupyter_server log
    # WebSocketClosedError tracebacks of its own: a kernel message for the closed socket).
    package = Path(__file__).parent.parent / "jupyter_sparkserve"
    assert f'File "{package}' not in lab.log.read_text()
