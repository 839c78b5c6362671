"""Jobs as they run for real: detached job processes, the concurrency bound across them,
cancel (cooperative and forced), and recovery after a job process is killed."""

from __future__ import annotations

import itertools
import os
import signal
import time

import pandas as pd
import pytest
from _files import no_partial_outputs, wait_until

from jupyter_sparkserve.config import max_jobs_setting
from jupyter_sparkserve.errors import Conflict, InvalidInput, NotFound
from jupyter_sparkserve.processes import group_members
from jupyter_sparkserve.workflows import (
    JobRunner,
    Workflows,
    WorkflowSpec,
    execution_request,
)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:Add type hints to the `predict` method:UserWarning"),
]


def test_a_workflow_runs_as_a_job(repo, iris, iris_model, iris_csv, iris_saved, tmp_path):
    workflow = Workflows(repo).create(
        {"model": "iris", "input": str(iris_csv), "output": str(tmp_path / "unused.csv")},
        name="iris daily",
    )
    runner = JobRunner(repo)
    output = tmp_path / "scored.parquet"
    job = runner.execute(
        execution_request(
            {
                "workflowId": workflow.id,
                "programParameters": f"--output {output} --keep-columns 'petal width (cm)'",
            }
        )
    )
    assert job.status == "queued" and job.pid is not None
    assert (job.workflow_id, job.workflow_name) == (workflow.id, "iris daily")
    assert job.spec.model == iris_saved  # pinned to the version at submission
    assert job.log_file == repo.settings.home / "jobs" / job.id / "log"

    done = runner.wait(job.id, timeout=240)
    assert done.status == "succeeded", done.error
    assert (done.rows_done, done.rows_total, done.fraction) == (150, 150, 1.0)
    assert done.output_path == str(output)
    assert done.started_at is not None and done.finished_at is not None
    assert done.seconds is not None and done.seconds > 0
    scored = pd.read_parquet(output)
    assert list(scored.columns) == ["petal width (cm)", "prediction"]
    assert scored["prediction"].tolist() == iris_model.predict(iris[0]).tolist()

    log = runner.log(job.id)
    assert f"Job {job.id}: scoring {iris_csv} with {iris_saved}" in log
    assert f"Job {job.id} succeeded." in log
    assert runner.log(job.id, tail=1).endswith(f"Job {job.id} succeeded.")
    assert [j.id for j in runner.list(status="succeeded")] == [job.id]
    assert runner.list(status="running") == []
    assert runner.list(workflow_id=workflow.id + 1) == []
    assert runner.get(job.id).to_dict()["status"] == "succeeded"
    with pytest.raises(Conflict, match="is succeeded: there is nothing to cancel"):
        runner.cancel(job.id)
    with pytest.raises(NotFound, match="No job 'nope'"):
        runner.get("nope")


def test_cancelling_a_running_job_leaves_no_output(repo, slow_model, csv_folder, tmp_path):
    ref = slow_model(0.5)  # 40 batches: 20 s unless cancelled
    output = tmp_path / "scored"
    runner = JobRunner(repo)
    job = runner.submit(WorkflowSpec(model=ref, input=str(csv_folder), output=str(output)))
    with pytest.raises(Conflict, match=f"Job {job.id} is already writing {output}"):
        runner.submit(WorkflowSpec(model=ref, input=str(csv_folder), output=str(output)))
    wait_until(lambda: runner.get(job.id).rows_done > 0)
    assert runner.get(job.id).status == "running"

    started = time.monotonic()
    cancelled = runner.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert time.monotonic() - started < 8  # stopped by SIGTERM, not killed after the grace
    assert cancelled.cancel_requested
    assert cancelled.error == "Cancelled while running; no output written."
    assert not output.exists()
    assert no_partial_outputs(output)
    assert f"Job {job.id} cancelled." in runner.log(job.id)
    wait_until(lambda: not group_members(job.pid), timeout=10)


def test_a_job_deaf_to_sigterm_is_killed_after_the_grace_period(
    repo, slow_model, csv_folder, tmp_path
):
    ref = slow_model(120)  # the first predict call outlasts the grace period
    output = tmp_path / "scored"
    runner = JobRunner(repo)
    job = runner.submit(WorkflowSpec(model=ref, input=str(csv_folder), output=str(output)))
    wait_until(lambda: (tmp_path / "predicting").exists())
    assert not no_partial_outputs(output)  # the engine's temporary output folder

    cancelled = runner.cancel(job.id, timeout=1.0)
    assert cancelled.status == "cancelled"
    assert "did not stop within 1 s of SIGTERM and was killed" in cancelled.error
    assert not group_members(job.pid)
    assert not output.exists()
    assert no_partial_outputs(output)
    assert "Removed the partial output" in runner.log(job.id)


def test_a_killed_job_process_is_marked_failed_by_the_next_runner(
    repo, slow_model, csv_folder, tmp_path
):
    ref = slow_model(120)
    output = tmp_path / "scored"
    runner = JobRunner(repo)
    job = runner.submit(WorkflowSpec(model=ref, input=str(csv_folder), output=str(output)))
    wait_until(lambda: (tmp_path / "predicting").exists())
    running = runner.get(job.id)
    assert running.status == "running"

    os.kill(running.pid, signal.SIGKILL)
    wait_until(lambda: not group_members(running.pid), timeout=10)
    assert runner._read(job.id).status == "running"  # as recorded: nobody looked yet
    JobRunner(repo)  # what a restarted Jupyter server does
    failed = runner._read(job.id)
    assert failed.status == "failed"
    assert f"The job's process {running.pid} was killed by SIGKILL" in failed.error
    assert f"Last lines of {failed.log_file}:" in failed.error
    assert f"Job {job.id}: scoring" in failed.error  # the log tail
    assert failed.finished_at is not None
    assert not output.exists()
    assert no_partial_outputs(output)


def test_at_most_max_jobs_run_at_once_the_rest_queue(
    repo, iris_csv, iris_saved, tmp_path, monkeypatch
):
    monkeypatch.setenv("SPARKSERVE_MAX_JOBS", "1")
    runner = JobRunner(repo)
    assert runner.max_jobs == 1
    jobs = [
        runner.submit(
            WorkflowSpec(model="iris", input=str(iris_csv), output=str(tmp_path / f"out{i}.csv"))
        )
        for i in range(4)
    ]
    never = runner.cancel(jobs[3].id)  # still queued behind the others: it never runs
    assert never.status == "cancelled"
    assert never.error == "Cancelled before it started."

    ended = [runner.wait(job.id, timeout=280) for job in jobs[:3]]
    assert [job.status for job in ended] == ["succeeded"] * 3, [job.error for job in ended]
    spans = sorted((job.started_at, job.finished_at) for job in ended)
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert first_end <= second_start, spans  # one at a time
    in_order = sorted(ended, key=lambda job: job.started_at)
    assert [job.id for job in in_order] == [job.id for job in jobs[:3]]  # first come, first run
    assert "Waiting for a free slot: at most 1 job(s) run at once." in runner.log(jobs[2].id)

    never = runner.get(jobs[3].id)
    assert never.status == "cancelled" and never.started_at is None
    assert not (tmp_path / "out3.csv").exists()
    assert "scoring" not in runner.log(never.id)


def test_max_jobs_setting(monkeypatch) -> None:
    monkeypatch.delenv("SPARKSERVE_MAX_JOBS", raising=False)
    assert max_jobs_setting() == 2
    assert max_jobs_setting(5) == 5
    monkeypatch.setenv("SPARKSERVE_MAX_JOBS", "many")
    with pytest.raises(InvalidInput, match="SPARKSERVE_MAX_JOBS must be a whole number"):
        max_jobs_setting()
    with pytest.raises(InvalidInput, match="At least one job"):
        max_jobs_setting(0)
