"""The change counters every face polls (repository/changes.py, `GET changes`), and clearing
finished jobs (workflows/cleanup.py, `POST jobs/clear-finished`)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)
from conftest import FAST_SAVE
from sqlalchemy import insert

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository, changes
from jupyter_sparkserve.repository import database as db
from jupyter_sparkserve.workflows import JobRunner, WorkflowSpec
from jupyter_sparkserve.workflows.cleanup import clear_finished

pytestmark = pytest.mark.timeout(400)

SAVE_IN_ANOTHER_PROCESS = """
import sys
from sklearn.linear_model import LogisticRegression
from jupyter_sparkserve.repository import ModelRepository
model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
with ModelRepository.open() as repo:
    repo.save(model, sys.argv[1], pip_requirements=["scikit-learn"])
"""


def moved(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {topic for topic in after if after[topic] != before[topic]}


def test_a_write_from_another_process_moves_only_its_topic(
    any_database: str, home: Path, iris_model
) -> None:
    with ModelRepository(Settings.from_env()) as repo:
        start = changes.read(repo.engine)
        assert set(start) == {"models", "deployments", "workflows", "jobs"}
        repo.list_models()  # reading changes nothing
        assert changes.read(repo.engine) == start

        subprocess.run(
            [sys.executable, "-c", SAVE_IN_ANOTHER_PROCESS, "churn"], check=True, timeout=120
        )
        saved = changes.read(repo.engine)
        assert moved(start, saved) == {"models"}
        assert saved["models"] > start["models"]

        repo.set_alias("churn:1", "champion")
        aliased = changes.read(repo.engine)
        assert moved(saved, aliased) == {"models"}


def test_a_rolled_back_write_moves_nothing(repo: ModelRepository) -> None:
    before = changes.read(repo.engine)
    with pytest.raises(RuntimeError), db.write_transaction(repo.engine) as conn:
        now = db.utcnow()
        conn.execute(insert(db.models).values(name="ghost", created_at=now, updated_at=now))
        raise RuntimeError("changed my mind")
    assert changes.read(repo.engine) == before
    assert [m.name for m in repo.list_models().items] == []


def test_a_schema_3_repository_gets_its_counters_on_open(home: Path, iris_model) -> None:
    """A database from before the counters: the migration creates and seeds them."""
    with ModelRepository(Settings.from_env()) as repo:
        repo.save(iris_model, "iris", **FAST_SAVE)
    database = home / "repository.db"
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE sparkserve_changes")
        connection.execute("UPDATE sparkserve_schema SET value = '3' WHERE key = 'schema_version'")
    with ModelRepository(Settings.from_env()) as repo:
        assert repo.schema_version_found == 3
        before = changes.read(repo.engine)
        assert before == {"models": 0, "deployments": 0, "workflows": 0, "jobs": 0}
        repo.save(iris_model, "iris", **FAST_SAVE)
        assert changes.read(repo.engine)["models"] > 0


def test_clear_finished_keeps_running_jobs_and_outputs(
    repo: ModelRepository, iris_saved: str, iris_csv: Path, slow_model, csv_folder, tmp_path
) -> None:
    runner = JobRunner(repo)
    output = tmp_path / "scored.csv"
    done = runner.submit(WorkflowSpec(model=iris_saved, input=str(iris_csv), output=str(output)))
    assert runner.wait(done.id, timeout=240).status == "succeeded"
    slow = runner.submit(
        WorkflowSpec(model=slow_model(0.5), input=str(csv_folder), output=str(tmp_path / "o"))
    )
    try:
        before = changes.read(repo.engine)
        assert clear_finished(runner) == [done.id]
        assert moved(before, changes.read(repo.engine)) == {"jobs"}
        assert [job.id for job in runner.list()] == [slow.id]
        assert output.is_file()  # the user's file stays
        assert not (runner.root / done.id).exists()  # its log goes with its record
        assert (runner.root / slow.id / "log").exists()
        assert clear_finished(runner) == []
    finally:
        runner.cancel(slow.id)


async def test_changes_and_clear_finished_over_rest(
    api: Api, home: Path, iris_saved: str, iris_csv: Path, jp_root_dir: Path
) -> None:
    before = (await api("GET", "changes")).body
    output = jp_root_dir / "out" / "scored.csv"
    output.parent.mkdir()
    submitted = await api(
        "POST", "jobs", body={"spec": {"model": iris_saved, "input": str(iris_csv),
                                       "output": "out/scored.csv"}}
    )  # fmt: skip
    assert submitted.status == 202, submitted.body
    deadline = time.monotonic() + 240
    while (job := (await api("GET", f"jobs/{submitted.body['id']}")).body)["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.25)
    assert job["status"] == "succeeded", job["error"]
    assert "jobs" in moved(before, (await api("GET", "changes")).body)

    listed = (await api("GET", "jobs")).body["items"]
    assert [(item["id"], item["contents_path"]) for item in listed] == [
        (job["id"], "out/scored.csv")
    ]
    cleared = await api("POST", "jobs/clear-finished")
    assert (cleared.status, cleared.body) == (200, {"items": [job["id"]]})
    assert (await api("GET", "jobs")).body == {"items": []}
    assert output.is_file()
