"""The package as Jupyter sees it: extensions discovered and enabled, wheel contents."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import require_component

import jupyter_sparkserve

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _jupyter(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return ANSI.sub("", completed.stdout + completed.stderr)


def test_server_extension_is_enabled_and_loads() -> None:
    output = _jupyter("server", "extension", "list")
    assert re.search(r"jupyter_sparkserve\s+enabled", output), output
    assert re.search(rf"jupyter_sparkserve {re.escape(jupyter_sparkserve.__version__)} OK", output)


def test_labextension_is_installed_enabled_and_ok() -> None:
    output = _jupyter("labextension", "list")
    pattern = rf"jupyter_sparkserve v{re.escape(jupyter_sparkserve.__version__)} enabled\s+OK"
    assert re.search(pattern, output), output


def test_labextension_paths_point_at_a_built_extension() -> None:
    (entry,) = jupyter_sparkserve._jupyter_labextension_paths()
    built = Path(jupyter_sparkserve.__file__).parent / entry["src"]
    manifest = json.loads((built / "package.json").read_text())
    assert manifest["name"] == entry["dest"] == "jupyter_sparkserve"
    assert manifest["version"] == jupyter_sparkserve.__version__
    assert manifest["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, once for the module."""
    out = tmp_path_factory.mktemp("wheel")
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    (built,) = out.glob("jupyter_sparkserve-*.whl")
    return built


def test_wheel_ships_the_labextension_and_enables_the_server_extension(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    data = f"jupyter_sparkserve-{jupyter_sparkserve.__version__}.data/data"
    labextension = f"{data}/share/jupyter/labextensions/jupyter_sparkserve"
    assert f"{labextension}/package.json" in names
    assert f"{labextension}/install.json" in names
    assert any(n.startswith(f"{labextension}/static/remoteEntry.") for n in names)
    assert f"{data}/etc/jupyter/jupyter_server_config.d/jupyter_sparkserve.json" in names
    assert "jupyter_sparkserve/repository/repository.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "sparkserve = jupyter_sparkserve.launcher:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def _section(output: str, heading: str) -> str:
    """The lines under `heading` up to the next config or data folder heading."""
    lines = output.splitlines()
    start = lines.index(heading)
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith(("Config dir:", "/"))),
        len(lines),
    )
    return "\n".join(lines[start + 1 : end])


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_without_node_lists_both_extensions_ok(
    wheel: Path, tmp_path: Path
) -> None:
    """What a user gets from `pip install jupyter_sparkserve` next to JupyterLab: the prebuilt
    labextension and the server extension, with no node anywhere on PATH."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv, "uv is not installed next to this Python"
    # JupyterLab is the user's, not a dependency: `jupyter labextension` is its command.
    installed = subprocess.run(
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel),
         "jupyterlab>=4,<5"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]

    # A bin folder with a few basic tools but no node (this machine has node in /usr/bin).
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "env", "uname"):
        found = shutil.which(tool, path="/usr/bin:/bin")
        if found:
            (tools / tool).symlink_to(found)
    path = f"{venv / 'bin'}:{tools}"
    assert shutil.which("node", path=path) is None
    (tmp_path / "config").mkdir()
    (tmp_path / "data").mkdir()
    env = {
        "HOME": str(tmp_path),
        "PATH": path,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }  # no JUPYTER_PATH, no PYTHONPATH: only what the venv holds

    def jupyter(*args: str) -> str:
        completed = subprocess.run(
            [str(venv / "bin" / "jupyter"), *args],
            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return ANSI.sub("", completed.stdout + completed.stderr)

    version = re.escape(jupyter_sparkserve.__version__)
    # Enabled by the file the wheel put in the venv's etc/jupyter, and importable from there.
    servers = _section(jupyter("server", "extension", "list"), f"Config dir: {venv}/etc/jupyter")
    assert re.search(r"jupyter_sparkserve\s+enabled", servers), servers
    assert re.search(rf"jupyter_sparkserve {version} OK", servers), servers
    labs = _section(jupyter("labextension", "list"), f"{venv}/share/jupyter/labextensions")
    assert re.search(rf"jupyter_sparkserve v{version} enabled\s+OK", labs), labs


def test_the_typescript_types_are_generated_from_the_spec(tmp_path: Path) -> None:
    """src/schema.d.ts is what openapi-typescript makes of openapi.yaml now: the sidebar's
    types and the REST API's shapes are one declaration (`jlpm build:types` refreshes it)."""
    root = Path(__file__).parent.parent
    generator = root / "node_modules" / ".bin" / "openapi-typescript"
    require_component("openapi-typescript", generator.exists(), "jlpm install (make test does)")
    fresh = tmp_path / "schema.d.ts"
    subprocess.run(
        [str(generator), "jupyter_sparkserve/server/openapi.yaml", "--output", str(fresh)],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    committed = (root / "src" / "schema.d.ts").read_text()
    assert fresh.read_text() == committed, "run `jlpm build:types` and commit src/schema.d.ts"
