"""The first hour of a new user, for real: `make demo`'s install in a fresh virtual
environment, Binder's `postBuild` in another, and the demo notebook run top to bottom in a
kernel. The installs run in a copy of this checkout (never in its own .venv), reusing the
extension already built here, so that no test builds the frontend again.
"""

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
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from _endpoint_helpers import free_port
from nbclient import NotebookClient

from jupyter_sparkserve.demo import DEMO_MODEL, DEMO_NOTEBOOK

ROOT = Path(__file__).resolve().parent.parent
LABEXTENSION = Path("jupyter_sparkserve") / "labextension"
GENERATED = [Path("jupyter_sparkserve") / "_version.py"]  # git-ignored, written by the build
OWN_BIN = str(Path(sys.executable).parent)
PAGE_CONFIG = re.compile(
    r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.S
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # jupyter's lists colour "enabled" and "OK"

pytestmark = pytest.mark.slow


def _uv() -> str:
    found = shutil.which("uv", path=OWN_BIN) or shutil.which("uv")
    assert found, "uv is installed by `make install-test`"
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a new shell: none of this checkout's .venv, no repository
    settings; the package caches stay (uv's and pip's, so installs are quick), and so does
    the session's warm scorer setting (off: none may outlive the test in a deleted HOME)."""
    kept = ("SPARKSERVE_WARM_SCORER", "SPARKSERVE_RUN_DIR")
    env = {
        key: value
        for key, value in os.environ.items()
        if key in kept
        or not key.startswith(("SPARKSERVE_", "MLFLOW_", "VIRTUAL_ENV", "MAKE", "MFLAGS"))
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != OWN_BIN)
    cache = subprocess.run([_uv(), "cache", "dir"], capture_output=True, text=True, check=True)
    env["UV_CACHE_DIR"] = cache.stdout.strip()
    env["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")
    env.update(extra)
    return env


def _run(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float, merged: bool = False
) -> str:
    """Its standard output (with `merged`, its standard error after it); fails the test,
    showing both, unless it exits 0."""
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    print(f"$ {' '.join(command)}: {time.monotonic() - started:.1f} s")  # figures, with -s
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout + done.stderr if merged else done.stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This working tree as a fresh clone would hold it, plus the extension built here. Its
    files are made newer than src/, as after a build, so that neither make nor
    hatch-jupyter-builder builds it again (a clone's first install does, visibly: Makefile)."""
    built = ROOT / LABEXTENSION / "package.json"
    assert built.is_file(), "the extension is built by `make install-test` (or `make install`)"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    copy = tmp_path_factory.mktemp("checkout")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is still listed
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    shutil.copytree(ROOT / LABEXTENSION, copy / LABEXTENSION, symlinks=True)
    for path in GENERATED:
        if (ROOT / path).is_file():
            shutil.copy2(ROOT / path, copy / path)
    now = time.time() + 1
    for path in [copy / LABEXTENSION, *(copy / LABEXTENSION).rglob("*")]:
        os.utime(path, (now, now))
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def _assert_extension_enabled(bin_dir: Path, cwd: Path, env: dict[str, str]) -> None:
    """JupyterLab lists the sidebar as enabled and OK; the server extension is enabled and
    validates (imports and loads)."""
    jupyter = str(bin_dir / "jupyter")
    lab = ANSI.sub("", _run([jupyter, "labextension", "list"], cwd, env, 120, merged=True))
    assert re.search(r"^\s*jupyter_sparkserve v\S+ enabled OK", lab, re.MULTILINE), lab
    server = ANSI.sub(
        "", _run([jupyter, "server", "extension", "list"], cwd, env, 120, merged=True)
    )
    assert re.search(r"^\s*jupyter_sparkserve enabled$", server, re.MULTILINE), server
    assert re.search(r"^\s*jupyter_sparkserve \S+ OK$", server, re.MULTILINE), server


def _lab_serves_the_demo(bin_dir: Path, cwd: Path, env: dict[str, str], log: Path) -> None:
    """The fresh environment's `jupyter lab`, started as Binder starts it in the repository:
    the badge's start URL (the demo notebook) loads with the sidebar among the page's
    extensions, and the server extension lists the demo model."""
    port, token = free_port(), secrets.token_hex(16)
    command = [
        str(bin_dir / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    with log.open("wb") as output:
        lab = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert lab.poll() is None, log.read_text()[-3000:]
            try:
                page = _get(f"{url}lab/tree/{DEMO_NOTEBOOK}", token)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        notebook = json.loads(_get(f"{url}api/contents/{DEMO_NOTEBOOK}?content=0", token))
        assert notebook["type"] == "notebook"
        config = json.loads(PAGE_CONFIG.search(page).group(1))
        assert "jupyter_sparkserve" in [e["name"] for e in config["federated_extensions"]]
        models = json.loads(_get(f"{url}sparkserve/api/v1/models", token))
        assert [m["name"] for m in models["items"]] == [DEMO_MODEL]
    finally:
        lab.terminate()
        lab.wait(timeout=30)


def _get(url: str, token: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def test_make_demo_in_a_fresh_clone_then_its_next_commands_work(
    checkout: Path, tmp_path: Path
) -> None:
    """`make demo` as a newcomer's clone runs it: JupyterLab, a kernel, the sidebar and the
    server extension in the new .venv; then every command the demo prints under "Next:"
    works as typed in a new shell, where .venv is not activated."""
    user = tmp_path / "user"
    env = _clean_env(HOME=str(user))
    output = _run(["make", "demo"], checkout, env, 900)
    # The long steps say what they do.
    assert "==> [1/3]" in output and "==> [3/3]" in output, output
    assert "… Deploying it as a local REST endpoint" in output, output
    # The extension built here is reused: make sees it newer than src/, so does hatch.
    assert "==> [2/3]" not in output, output
    assert "is up to date" in output, output
    assert output.rstrip().splitlines()[-1].startswith("Next: make lab"), output[-2000:]

    bin_dir = checkout / ".venv" / "bin"
    for program in ("jupyter-lab", "sparkserve", "jlpm"):
        assert (bin_dir / program).is_file(), f"{program} is not in the fresh .venv"
    kernels = _run([str(bin_dir / "jupyter"), "kernelspec", "list", "--json"], checkout, env, 60)
    assert "python3" in json.loads(kernels[kernels.index("{") :])["kernelspecs"]
    _assert_extension_enabled(bin_dir, checkout, env)
    _lab_serves_the_demo(bin_dir, checkout, env, tmp_path / "jupyterlab.log")

    lines = output.splitlines()
    block = lines[lines.index("Next:") + 1 :]
    commands = [
        line.strip()
        for line in block[: next(i for i, x in enumerate(block) if not x.startswith("  "))]
    ]
    assert commands[0] == ".venv/bin/sparkserve models list", commands
    for command in commands:
        program, *arguments = command.split()
        if program.endswith("/jupyter"):  # jupyter lab NOTEBOOK: not started here
            assert arguments == ["lab", str(DEMO_NOTEBOOK)], command
            assert (checkout / program).is_file() and (checkout / arguments[1]).is_file()
            continue
        shown = _run(["bash", "-c", command], checkout, env, 120)
        assert DEMO_MODEL in shown, shown
    hint = block[len(commands)]
    assert hint == "(or `source .venv/bin/activate` first, then the short names)", hint
    listed = _run(
        ["bash", "-c", "source .venv/bin/activate && sparkserve models list --json"],
        checkout,
        env,
        120,
    )
    assert [m["name"] for m in json.loads(listed)["items"]] == [DEMO_MODEL]
    assert (user / ".sparkserve" / "repository.db").is_file()


def test_binder_post_build_enables_the_extension_and_saves_the_demo_model(
    checkout: Path, tmp_path: Path
) -> None:
    """Binder: environment.yml's packages, then `binder/postBuild` in the repository with a
    HOME of its own, as repo2docker runs it."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, _clean_env(), 120)
    # What conda installs from environment.yml (python and nodejs are already here).
    environment = yaml.safe_load((checkout / "binder" / "environment.yml").read_text())
    conda_only = ("python", "nodejs", "pip")
    packages = [d for d in environment["dependencies"] if not d.startswith(conda_only)]
    assert any(p.startswith("jupyterlab") for p in packages)
    env = _clean_env()
    _run(
        [_uv(), "pip", "install", "--python", str(venv / "bin" / "python"), *packages],
        tmp_path,
        env,
        600,
    )

    user = tmp_path / "jovyan"
    user.mkdir()
    bin_dir = venv / "bin"
    env = _clean_env(HOME=str(user), PATH=f"{bin_dir}{os.pathsep}{_clean_env()['PATH']}")
    output = _run(["bash", "binder/postBuild"], checkout, env, 1200)
    assert "==> Saving the demo model" in output

    _assert_extension_enabled(bin_dir, checkout, env)
    _lab_serves_the_demo(bin_dir, checkout, env, tmp_path / "jupyterlab.log")
    listed = _run([str(bin_dir / "sparkserve"), "models", "list", "--json"], checkout, env, 120)
    names = [model["name"] for model in json.loads(listed)["items"]]
    assert names == [DEMO_MODEL]
    assert (user / ".sparkserve" / "repository.db").is_file()
    # The badge's start URL opens the demo notebook, which postBuild's checkout holds.
    readme = (checkout / "README.md").read_text()
    assert f"urlpath=lab%2Ftree%2F{str(DEMO_NOTEBOOK).replace('/', '%2F')}" in readme
    assert (checkout / DEMO_NOTEBOOK).is_file()


def test_the_demo_notebook_runs_top_to_bottom(home: Path, tmp_path: Path) -> None:
    """Every cell of the notebook `make lab` and Binder open runs without an error on the
    embedded defaults, and it saves, scores (a frame and files), deploys and undeploys."""
    notebook = nbformat.read(ROOT / DEMO_NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), "the notebook is kept without outputs"
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    from jupyter_sparkserve.deploy.deployments import Deployments
    from jupyter_sparkserve.repository import ModelRepository
    from jupyter_sparkserve.workflows.jobs import JobRunner

    # What the notebook did, read from the repository it used (not from the magics' words).
    repo = ModelRepository()
    version = repo.resolve("iris-notebook@champion")
    assert version.ref == "iris-notebook:1" and version.metrics["accuracy"] > 0.9
    (job,) = JobRunner(repo).list()
    assert (job.status, job.rows_done) == ("succeeded", 45)
    assert len(pd.read_parquet(job.output_path)) == 45
    (deployment,) = Deployments(repo).list(active_only=False)
    assert (deployment.ref, deployment.status) == ("iris-notebook:1", "stopped")
    # The endpoint answered the notebook's own request with one prediction per row.
    (answer,) = [c for c in notebook.cells if c.source.startswith("import requests")]
    assert "'predictions': [" in answer.outputs[0]["data"]["text/plain"]
    assert str(home) in str(repo.settings.home)


def test_counts_read_as_english(repo, iris, iris_model, tmp_path: Path) -> None:
    """`sparkserve status` after the demo said "1 versions": every count the CLI prints goes
    through one wording (`cli.output.counted`)."""
    from click.testing import CliRunner
    from conftest import FAST_SAVE

    from jupyter_sparkserve.cli import main

    def status() -> str:
        result = CliRunner().invoke(main, ["status"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return next(line for line in result.output.splitlines() if line.startswith("models:"))

    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    assert status() == "models: 1 (1 version)"
    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    assert status() == "models: 1 (2 versions)"
    iris[0].head(1).to_csv(tmp_path / "one.csv", index=False)
    scored = CliRunner().invoke(
        main, ["score", "iris", str(tmp_path / "one.csv"), str(tmp_path / "out.csv")]
    )
    assert scored.exit_code == 0, scored.output
    assert "Scored 1 row from 1 file into" in scored.output
