"""The labextension in a real JupyterLab, driven through a real Chromium (Playwright)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ARTIFACTS_DIR, require_component

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_lab(workdir: Path, home: Path, *extra: str) -> Lab:
    port, token = _free_port(), secrets.token_hex(16)
    log = workdir / f"jupyterlab-{port}.log"
    env = {
        **os.environ,
        "SPARKSERVE_HOME": str(home),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
    }
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
        f"--LabApp.user_settings_dir={workdir / 'settings'}",
        f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
        *extra,
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2):
                return Lab(url=url, token=token, process=process, log=log)
        except OSError:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)


def stop_lab(lab: Lab) -> None:
    lab.process.terminate()
    try:
        lab.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        lab.process.kill()


@pytest.fixture
def browser() -> Iterator[object]:
    # Per test, not per module: Playwright's sync API keeps its event loop running while it is
    # open, and pytest-jupyter's autouse loop fixture would try to close that loop.
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    require_component(
        "Chromium", Path(executable).exists(), "apt-get install chromium (.ci/run does)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def open_sidebar(browser, lab: Lab, screenshot: str):
    """Open JupyterLab, click the sparkserve tab; return the page and the errors it logged."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    page.goto(f"{lab.url}lab?token={lab.token}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    page.locator('li[data-id="jp-sparkserve-sidebar"]').click()
    page.wait_for_selector("#jp-sparkserve-sidebar .jp-SparkservePanel-body p", timeout=30_000)
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / screenshot))
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
        panel = page.locator("#jp-sparkserve-sidebar")
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
    assert "Traceback" not in lab.log.read_text()


def test_missing_server_extension_is_reported_as_such(browser, tmp_path: Path, home: Path):
    lab = start_lab(tmp_path, home, "--ServerApp.jpserver_extensions={'jupyter_sparkserve': False}")
    try:
        page, _errors = open_sidebar(browser, lab, "sidebar-no-server-extension.png")
        message = page.locator(".jp-SparkservePanel-error").inner_text()
        assert "server extension is not installed or not enabled" in message
        page.close()
    finally:
        stop_lab(lab)
