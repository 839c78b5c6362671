"""Several processes on one repository, and processes that die halfway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository

WORKER = str(Path(__file__).with_name("_worker.py"))

# Every test here runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("any_database")


def _worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def test_versions_are_allocated_atomically_across_processes(
    repo: ModelRepository, mlflow_model_dir: Path, tmp_path: Path
) -> None:
    processes, per_process = 4, 5
    go = tmp_path / "go"
    workers = [
        _worker("import", str(mlflow_model_dir), "shared", str(per_process), str(go))
        for _ in range(processes)
    ]
    for worker in workers:  # all loaded and waiting, so the saves really race
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    go.touch()
    got: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        got.extend(int(line) for line in out.split())
    total = processes * per_process
    assert sorted(got) == list(range(1, total + 1))  # every number once, none skipped
    details = repo.get_model("shared")
    assert [v.version for v in details.versions] == list(range(total, 0, -1))
    paths = {v.path for v in details.versions}
    assert len(paths) == total and all((p / "MLmodel").is_file() for p in paths)


def test_a_process_killed_mid_save_leaves_no_half_version(
    repo: ModelRepository, tmp_path: Path, mlflow_model_dir: Path
) -> None:
    marker = tmp_path / "writing"
    worker = _worker("save-forever", str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert worker.poll() is None, worker.communicate()[1]
        assert time.monotonic() < deadline, "the worker never started writing"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)

    staging = repo.settings.artifact_root / ".staging"
    assert any(staging.iterdir()), "the killed save left its half-written folder"
    fresh = ModelRepository(Settings.from_env())
    assert fresh.list_models().total == 0
    assert fresh.stats()["versions"] == 0
    # The leftover is swept once it is old enough to be sure nobody is still writing it.
    assert fresh.collect_garbage(min_age_seconds=0)
    assert not any(staging.iterdir())
    # The name is usable and numbering is not disturbed.
    assert fresh.import_model(mlflow_model_dir, "crashy").version == 1
