"""Several processes on one repository, and processes that die halfway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST_SAVE

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.errors import NotFound
from jupyter_sparkserve.repository import ModelRepository

WORKER = str(Path(__file__).with_name("_worker.py"))

# Every test here runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("any_database")


def _worker(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _kill_when(worker: subprocess.Popen[str], marker: Path) -> None:
    """SIGKILL the worker as soon as it has written `marker`."""
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert worker.poll() is None, worker.communicate()[1]
        assert time.monotonic() < deadline, f"the worker never wrote {marker.name}"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def test_two_processes_saving_20_versions_each_end_with_40_distinct_versions(
    repo: ModelRepository, tmp_path: Path
) -> None:
    processes, per_process = 2, 20
    go = tmp_path / "go"
    workers = [_worker("save", "shared", str(per_process), str(go)) for _ in range(processes)]
    for worker in workers:  # all loaded and waiting, so the saves really race
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready", worker.communicate()[1]
    go.touch()
    got: list[list[int]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        assert "Traceback" not in err, err
        got.append([int(line) for line in out.split()])
    total = processes * per_process
    assert [len(versions) for versions in got] == [per_process] * processes
    assert sorted(got[0] + got[1]) == list(range(1, total + 1))  # every number once, none skipped
    assert all(versions == sorted(versions) for versions in got)
    details = repo.get_model("shared")
    assert [v.version for v in details.versions] == list(range(total, 0, -1))
    paths = {v.path for v in details.versions}
    assert len(paths) == total and all((p / "MLmodel").is_file() for p in paths)
    assert repo.collect_garbage(min_age_seconds=0) == []  # nothing half-done left over


def test_a_process_killed_mid_save_leaves_no_half_version(
    repo: ModelRepository, tmp_path: Path, mlflow_model_dir: Path
) -> None:
    marker = tmp_path / "writing"
    _kill_when(_worker("save-forever", str(marker)), marker)

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


def test_a_process_killed_between_rename_and_commit_leaves_only_an_orphan_folder(
    repo: ModelRepository, tmp_path: Path, iris_model
) -> None:
    """The narrowest window: the folder is in place under its final name, the row is not
    committed. The version must not exist, and gc must take the folder."""
    repo.save(iris_model, "late", **FAST_SAVE)
    marker = tmp_path / "promoted"
    worker = _worker(
        "save", "late", "1", str(tmp_path / "go"),
        env={"SPARKSERVE_WORKER_STALL_AFTER_PROMOTE": str(marker)},
    )  # fmt: skip
    assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    (tmp_path / "go").touch()
    _kill_when(worker, marker)

    orphan = repo.settings.artifact_root / marker.read_text()
    assert orphan.parent.name == "late" and orphan.name.startswith("v2-")
    assert (orphan / "MLmodel").is_file(), "the kill came before the rename"
    fresh = ModelRepository(Settings.from_env())
    try:
        assert [v.version for v in fresh.get_model("late").versions] == [1]
        assert fresh.list_models().items[0].latest_version == 1
        with pytest.raises(NotFound, match="has no version 2"):
            fresh.resolve("late:2")
        assert fresh.resolve("late").version == 1
        removed = fresh.collect_garbage(min_age_seconds=0)
        # The orphan, plus the (now empty) staging folder the killed save never cleaned up.
        assert orphan in removed and not orphan.exists()
        assert [p.parent.name for p in removed if p != orphan] == [".staging"]
        assert fresh.resolve("late:1").path.is_dir()  # gc left the committed version alone
        # The number was never committed, so it is handed out again, to a new folder.
        again = fresh.save(iris_model, "late", **FAST_SAVE)
        assert again.version == 2 and again.path != orphan
    finally:
        fresh.close()
