"""The package as Jupyter sees it: extensions discovered and enabled, wheel contents."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

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


def test_wheel_ships_the_labextension_and_enables_the_server_extension(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    (wheel,) = tmp_path.glob("jupyter_sparkserve-*.whl")
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
        "sparkserve = jupyter_sparkserve.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
