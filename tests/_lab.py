"""A real `jupyter lab` and a real Chromium for the browser tests (test_ui, test_sidebar), and
what they look for in it: the sidebar's rows and the notifications."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _endpoint_helpers import free_port
from conftest import ARTIFACTS_DIR, require_component

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

SIDEBAR_TAB = 'li[data-id="jp-sparkserve-sidebar"]'
SIDEBAR = "#jp-sparkserve-sidebar"
SLOW = 180_000  # ms: MLflow's first registration, an endpoint, a kernel, a job on 2 cores

# Every notification toast: whether it is an error one, and its text (JupyterLab cuts it at 140
# characters).
TOASTS = """() => [...document.querySelectorAll('.Toastify__toast')].map(toast => ({
  error: toast.className.includes('jp-Notification-Toast-error'),
  text: (toast.querySelector('.jp-toast-message') || toast).innerText
}))"""


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the Jupyter server's REST API (`api/...`, `sparkserve/api/v1/...`)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
        return json.loads(text) if text else None


def start_lab(workdir: Path, home: Path, *extra: str, env: dict[str, str] | None = None) -> Lab:
    """`extra`: more command-line options; `env`: more environment variables."""
    port, token = free_port(), secrets.token_hex(16)
    log = workdir / f"jupyterlab-{port}.log"
    env = {
        **os.environ,
        "SPARKSERVE_HOME": str(home),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        **(env or {}),
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
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
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
    """Shut the lab's kernels down through its API, then the server: a kernel killed along
    with the server logs ZMQ tracebacks of its own that say nothing about this project."""
    try:
        for session in lab.api("GET", "api/sessions"):
            lab.api("DELETE", f"api/sessions/{session['id']}")
    except OSError:
        pass  # the server is already gone; its log says why
    lab.process.terminate()
    try:
        lab.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        lab.process.kill()


def our_tracebacks(lab: Lab) -> list[str]:
    """The tracebacks in the lab's log with a frame in this project's code. Jupyter's own (a
    websocket closed as the page went away, a kernel's ZMQ error as it shuts down) are its
    business, not a failure here."""
    tracebacks: list[list[str]] = []
    inside = False
    for line in lab.log.read_text().splitlines():
        if line.startswith("Traceback (most recent call last)"):
            if not inside:
                tracebacks.append([])
            inside = True
        elif inside and not (line.startswith(" ") or line == "" or line.startswith("During")):
            inside = False  # the exception's own line ends the traceback
            tracebacks[-1].append(line)
        if inside:
            tracebacks[-1].append(line)
    ours = [t for t in tracebacks if any("/jupyter_sparkserve/" in line for line in t)]
    return ["\n".join(t) for t in ours]


def use_dark_theme(workdir: Path) -> None:
    """Make the lab that will run in `workdir` start with JupyterLab Dark."""
    settings = workdir / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "themes.jupyterlab-settings").write_text(json.dumps({"theme": "JupyterLab Dark"}))


@pytest.fixture
def browser() -> Iterator[Any]:
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


def open_lab(browser: Any, lab: Lab, path: str = "lab") -> tuple[Any, list[str]]:
    """A page showing JupyterLab (at `path`, such as `lab/tree/x.ipynb`), and the errors it
    logs as they come."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    page.goto(f"{lab.url}{path}?token={lab.token}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    return page, errors


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    path = ARTIFACTS_DIR / name
    page.screenshot(path=str(path))
    return path


def put_notebook(lab: Lab, path: str, cells: list[tuple[str, str]]) -> None:
    """Write a Python notebook of code cells, given as (id, source), through the contents API."""
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": cell_id, "metadata": {},
             "outputs": [], "source": source}
            for cell_id, source in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    lab.api("PUT", f"api/contents/{path}", {"type": "notebook", "content": notebook})


def run_cell(page: Any, cell: Any) -> None:
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")


def our_errors(errors: list[str]) -> list[str]:
    """Console errors that come from the extension (a page error, or a message naming it)."""
    return [e for e in errors if e.startswith("page error") or "sparkserve" in e.lower()]


def model_row(page: Any, name: str) -> Any:
    return page.locator(f'{SIDEBAR} [data-testid="sparkserve-model"][data-model="{name}"]')


def version_row(page: Any, ref: str) -> Any:
    return page.locator(f'{SIDEBAR} [data-testid="sparkserve-version"][data-ref="{ref}"]')


def _matching_toast(page: Any, pattern: str, timeout: float) -> tuple[int, str]:
    """The index and text of the first notification toast whose text matches `pattern` (a
    regex), once one shows; an error toast meanwhile fails the test."""
    deadline = time.monotonic() + timeout / 1000
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = page.evaluate(TOASTS)
        for index, found in enumerate(seen):
            if found["error"]:
                pytest.fail(f"an error notification: {found['text']}")
            if re.search(pattern, found["text"]):
                return index, found["text"]
        time.sleep(0.2)
    pytest.fail(f"no notification matching {pattern!r}; seen: {seen!r}")


def toast(page: Any, pattern: str, timeout: float = SLOW) -> Any:
    """The notification toast whose text matches `pattern` (a regex), once it shows; an error
    toast meanwhile fails the test."""
    index, _ = _matching_toast(page, pattern, timeout)
    return page.locator(".Toastify__toast").nth(index)


def wait_for_message(page: Any, pattern: str, timeout: float = SLOW) -> str:
    """Wait until a notification of the sidebar says `pattern` (a regex); its text. An error
    notification fails the test."""
    return _matching_toast(page, pattern, timeout)[1]
