"""The labextension in a real JupyterLab, driven through a real Chromium (Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _lab import (
    SIDEBAR,
    SIDEBAR_TAB,
    Lab,
    open_lab,
    our_tracebacks,
    screenshot,
    start_lab,
    stop_lab,
)
from _lab import browser as browser  # the fixture, for the tests below

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository

pytestmark = pytest.mark.browser


def open_sidebar(browser, lab: Lab, name: str):
    """Open JupyterLab, click the sparkserve tab; return the page and the errors it logged."""
    page, errors = open_lab(browser, lab)
    page.locator(SIDEBAR_TAB).click()
    page.wait_for_selector(
        f"{SIDEBAR} :is(.jp-SparkservePanel-count, .jp-SparkservePanel-error)", timeout=30_000
    )
    screenshot(page, name)
    return page, errors


def test_sidebar_loads_and_shows_the_repository(
    browser, tmp_path: Path, home: Path, mlflow_model_dir
):
    repository = ModelRepository(Settings.from_env())
    repository.import_model(mlflow_model_dir, "iris")
    repository.import_model(mlflow_model_dir, "iris")
    lab = start_lab(tmp_path, home)
    try:
        page, errors = open_sidebar(browser, lab, "sidebar.png")
        panel = page.locator(SIDEBAR)
        assert panel.locator(".jp-SparkservePanel-count").inner_text() == "1 model, 2 versions"
        assert str(home) in panel.locator(".jp-SparkservePanel-home").inner_text()

        # Refresh reads the repository again: a model saved meanwhile shows up.
        repository.import_model(mlflow_model_dir, "churn")
        panel.locator(".jp-SparkservePanel-refresh").click()
        page.wait_for_function(
            "document.querySelector('.jp-SparkservePanel-count').textContent"
            " === '2 models, 3 versions'"
        )
        assert errors == []  # JupyterLab and the extension loaded without a console error
        page.close()
    finally:
        stop_lab(lab)
    assert our_tracebacks(lab) == []


def test_missing_server_extension_is_reported_as_such(browser, tmp_path: Path, home: Path):
    lab = start_lab(tmp_path, home, "--ServerApp.jpserver_extensions={'jupyter_sparkserve': False}")
    try:
        page, _errors = open_sidebar(browser, lab, "sidebar-no-server-extension.png")
        message = page.locator(".jp-SparkservePanel-error").inner_text()
        assert "server extension is not installed or not enabled" in message
        page.close()
    finally:
        stop_lab(lab)


def test_mismatched_server_extension_is_reported_as_such(browser, tmp_path: Path, home: Path):
    """A server extension of another release (JupyterLab not restarted after an upgrade) is
    named in a warning; here the status answer is rewritten on its way to the page."""
    lab = start_lab(tmp_path, home)
    try:
        page, _errors = open_lab(browser, lab)

        def older_server(route):
            answer = route.fetch()
            status = answer.json()
            route.fulfill(response=answer, json={**status, "version": "0.0.1"})

        page.route("**/sparkserve/api/v1/status*", older_server)
        page.locator(SIDEBAR_TAB).click()
        warning = page.locator(f'{SIDEBAR} [data-testid="sparkserve-version-mismatch"]')
        assert "server extension is version 0.0.1 but this sidebar is" in warning.inner_text()
        page.close()
    finally:
        stop_lab(lab)
