"""Jobs: score runs and image builds, each in its own process, recorded in the database.

A job goes queued -> running -> succeeded | failed | cancelled. Submitting one records it and
starts `python -m jupyter_sparkserve.workflows.job_process JOB_ID` detached (its own session,
output to SPARKSERVE_HOME/jobs/ID/log), so that a crash cannot take down the process that
submitted it, such as the Jupyter server.

At most `max_jobs` (SPARKSERVE_MAX_JOBS, default 2) run at once across every process sharing
the repository: a queued job's process waits until, under the database write lock, fewer jobs
with a live process run than the bound and no older queued job waits; then it marks itself
running with its pid and the pid's start time (which tells it from a recycled pid).

Cancel marks the job, then SIGTERMs its process, which turns the signal into the engine's
cancel event (the engine drops its temporary output) and records `cancelled`; one that has
not stopped after the grace period is killed with its whole process group, its partial output
removed. A queued job cancelled before it runs never runs.

Reading a job checks its process, as reading a deployment does: a job whose process is gone
becomes `failed` with how the process ended (when this process started it) and the end of its
log, and its partial output is removed. A runner does that for every job when it is created.
Processes are recognised through `processes` (psutil); a job started on another host of a shared
PostgreSQL repository is left to that host.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from .. import processes
from ..config import max_jobs_setting
from ..containers.build_job import BuildSpec
from ..errors import Conflict, InvalidInput, NotFound, SparkserveError, remedy
from ..processes import log_tail, with_log_tail
from ..repository import ModelRef, ModelRepository
from ..repository import database as db
from ..scoring.batch import remove_partial_outputs
from ..warm import client as warm_client
from ..warm.protocol import DEFAULT_IDLE_SECONDS
from . import tables
from .definitions import Workflow, Workflows, WorkflowSpec
from .email import EmailNotSent, send_job_report
from .job_record import ACTIVE, STATUSES, Job, JobSpec, JobStillRunning, job_from_row
from .parameters import ExecutionRequest

if TYPE_CHECKING:
    from ..confinement import Confinement

CANCEL_GRACE_SECONDS = 10.0
# A queued job still without a process after this: whoever submitted it died before starting it.
SPAWN_LIMIT_SECONDS = 120.0
POLL_SECONDS = 0.25
JOB_MODULE = "jupyter_sparkserve.workflows.job_process"
HOST = processes.MACHINE
Who = str | None  # who submits a job: a Jupyter user's name, None for this process's user


class JobRunner:
    """Submit, watch, cancel and recover jobs. Creating one recovers dead jobs."""

    def __init__(
        self,
        repository: ModelRepository,
        *,
        max_jobs: int | None = None,
        python: str = sys.executable,
        warm_owner: int | None = None,
        offer_warm: bool = True,
    ) -> None:
        """`max_jobs` overrides the repository settings' bound. A job that could not fork
        from a warm scorer starts one for the next jobs (`offer_warm`, and the mode
        allowing), which lives as long as process `warm_owner` (a Jupyter server), else
        stops when idle."""
        self.repository = repository
        self.settings = repository.settings
        self.root = self.settings.home / "jobs"
        self.max_jobs = max_jobs_setting(self.settings.max_jobs if max_jobs is None else max_jobs)
        self.python = python
        self.warm_owner = warm_owner
        self.offer_warm = offer_warm
        self.recover()

    # ---------------------------------------------------------------------------- starting

    def execute(
        self, request: ExecutionRequest, *, confinement: Confinement | None = None, by: Who = None
    ) -> Job:
        """Run a saved workflow with this execution's overrides."""
        workflow = Workflows(self.repository).get(request.workflow_id)
        spec = request.apply(workflow.spec)
        return self.submit(spec, workflow=workflow, confinement=confinement, by=by)

    def submit(
        self,
        spec: JobSpec,
        *,
        workflow: Workflow | None = None,
        confinement: Confinement | None = None,
        by: Who = None,
    ) -> Job:
        """Queue a score run (or an image build) and start its process. The model reference
        is pinned now: `churn@champion` runs the version that is champion at submission.
        `confinement`: the folders a score run's paths must stay in (a server's); `by`: who
        submits it (a Jupyter user's name), else this process's user."""
        if confinement is not None and isinstance(spec, WorkflowSpec):
            spec = confinement.spec(spec)
        if isinstance(spec, BuildSpec):
            spec.preflight()
        spec = self._pinned(spec.absolute())
        j = tables.jobs
        writers = self._active_ids(j.c.output_path == spec.output)
        for job_id in writers:
            self._refresh(job_id)  # a dead writer must not block
        job_id = uuid.uuid4().hex[:12]
        log_file = self.root / job_id / "log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        now = db.utcnow()
        with db.write_transaction(self.repository.engine) as conn:
            busy = conn.execute(
                select(j.c.id).where(j.c.status.in_(ACTIVE), j.c.output_path == spec.output)
            ).scalar()
            if busy is not None:
                raise Conflict(
                    f"Job {busy} is already writing {spec.output}: wait for it, or cancel it.",
                    remedy=remedy("cancel_job", job=busy),
                )
            conn.execute(
                insert(j).values(
                    id=job_id,
                    kind=spec.kind,
                    workflow_id=None if workflow is None else workflow.id,
                    workflow_name="" if workflow is None else workflow.name,
                    spec=spec.to_dict(),
                    status="queued",
                    host=HOST,
                    cancel_requested=False,
                    rows_done=0,
                    output_path=spec.output,
                    log_file=str(log_file),
                    error="",
                    created_at=now,
                    updated_at=now,
                    created_by=db.created_by(by),
                )
            )
        try:
            self._spawn(job_id, log_file)
        except BaseException as error:  # an interrupt too: never leave a job queued for nothing
            self.finish(job_id, "failed", error=f"Could not start its process: {error}")
            raise
        return self._read(job_id)

    def _pinned(self, spec: JobSpec) -> JobSpec:
        ref = ModelRef.parse(spec.model)
        if ref.in_repository:
            return dataclasses.replace(spec, model=self.repository.resolve(ref).ref)
        if Path(str(ref.uri)).is_absolute():
            self.repository.model_path(ref)  # checks the folder is an MLflow model
        return spec

    def _spawn(self, job_id: str, log_file: Path) -> None:
        argv = [job_id, "--max-jobs", str(self.max_jobs)]
        env = self.settings.job_env()
        cwd = log_file.parent  # Spark's derby.log and the like land in the job's folder
        pid = None
        if self.python == sys.executable:  # the warm scorer runs this interpreter
            env["PYTHONUNBUFFERED"] = "1"
            note = f"{JOB_MODULE} {shlex.join(argv)}"
            pid = warm_client.run_detached(
                "job", argv, env=env, cwd=cwd, log_file=log_file, note=note
            )
        if pid is None:
            command = [self.python, "-m", JOB_MODULE, *argv]
            pid = processes.spawn_detached(command, env=env, log_file=log_file, cwd=cwd).pid
            if self.offer_warm:  # for the next jobs
                warm_client.offer(
                    idle_timeout=0 if self.warm_owner else DEFAULT_IDLE_SECONDS,
                    parent_pid=self.warm_owner,
                )
        start = processes.start_stamp(pid)
        j = tables.jobs
        with db.write_transaction(self.repository.engine) as conn:
            conn.execute(
                update(j)
                .where(j.c.id == job_id, j.c.pid.is_(None))
                .values(pid=pid, pid_start=start, updated_at=db.utcnow())
            )

    # ----------------------------------------------------------------------------- reading

    def get(self, job_id: str) -> Job:
        """The job as it is now: one whose process is gone becomes failed."""
        return self._refresh(job_id)

    def list(
        self, *, status: str | None = None, workflow_id: int | None = None, limit: int = 100
    ) -> list[Job]:
        """Jobs, newest first."""
        j = tables.jobs
        query = select(j.c.id).order_by(j.c.created_at.desc(), j.c.id).limit(limit)
        if status is not None:
            if status not in STATUSES:
                known = ", ".join(STATUSES)
                raise InvalidInput(f"Unknown job status {status!r}: use one of {known}.")
            query = query.where(j.c.status == status)
        if workflow_id is not None:
            query = query.where(j.c.workflow_id == workflow_id)
        with self.repository.engine.connect() as conn, conn.begin():
            ids = conn.execute(query).scalars().all()
        jobs = [self._refresh(job_id) for job_id in ids]
        return [job for job in jobs if status is None or job.status == status]

    def log(self, job_id: str, *, tail: int | None = None) -> str:
        """The job's log, or its last `tail` lines."""
        job = self._read(job_id)
        if tail is not None:
            return log_tail(job.log_file, tail)
        try:
            return job.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Wait until the job has ended (JobStillRunning after `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_update is not None:
                on_update(job)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobStillRunning(f"Job {job_id} is still {job.status} after {timeout:g} s.")
            time.sleep(POLL_SECONDS)

    # --------------------------------------------------------------------- stopping, recovery

    def cancel(self, job_id: str, *, timeout: float = CANCEL_GRACE_SECONDS) -> Job:
        """Stop the job: a queued one never runs; a running one gets SIGTERM, and `timeout`
        seconds later SIGKILL (its process group) with its partial output removed."""
        job = self._refresh(job_id)
        if job.finished:
            raise Conflict(f"Job {job_id} is {job.status}: there is nothing to cancel.")
        ended = self.finish(
            job_id,
            "cancelled",
            error="Cancelled before it started.",
            statuses=("queued",),
            cancel_requested=True,
        )
        if ended is not None:
            _signal_process(ended, signal.SIGTERM)  # its process, waiting for a slot, leaves
            return ended
        j = tables.jobs
        with db.write_transaction(self.repository.engine) as conn:
            asked = conn.execute(
                update(j)
                .where(j.c.id == job_id, j.c.status == "running")
                .values(cancel_requested=True, updated_at=db.utcnow())
            ).rowcount
        job = self._read(job_id)
        if not asked:
            raise Conflict(f"Job {job_id} is {job.status}: there is nothing to cancel.")
        if job.host != HOST:
            return job  # its process sees the request at its next progress report
        _signal_process(job, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self._refresh(job_id)
            if job.finished:
                return job
            time.sleep(POLL_SECONDS / 2)
        if job.pid is not None and processes.is_running(job.pid, job.pid_start):
            processes.signal_group(job.pid, signal.SIGKILL)  # with what it started (a Spark JVM)
            processes.wait_group_gone(job.pid, time.monotonic() + 10)
        ended = self.finish(
            job_id,
            "cancelled",
            error=f"It did not stop within {timeout:g} s of SIGTERM and was killed.",
            remove_partial=True,
        )
        return ended or self._read(job_id)

    def recover(self) -> list[Job]:
        """Mark every job of this host whose process is gone as failed; return them."""
        ended = [self._refresh(job_id) for job_id in self._active_ids(tables.jobs.c.host == HOST)]
        return [job for job in ended if job.finished]

    def _refresh(self, job_id: str) -> Job:
        job = self._read(job_id)
        if job.finished or job.host != HOST:
            return job
        problem = _dead_process_problem(job)
        if problem is None:
            return job
        status = "cancelled" if job.cancel_requested else "failed"
        ended = self.finish(job_id, status, error=problem, remove_partial=True)
        return ended or self._read(job_id)  # it ended on its own meanwhile

    # ---------------------------------------------------------- the job's own process side

    def claim(self, job_id: str, cancel: threading.Event) -> Job | None:
        """In the job's process: wait for a free slot, then mark the job running with this
        process. None when the job was cancelled or ended before it could run."""
        pid = os.getpid()
        start = processes.start_stamp(pid)
        j = tables.jobs
        waiting = False
        while True:
            with db.write_transaction(self.repository.engine) as conn:
                row = conn.execute(select(j).where(j.c.id == job_id)).first()
                if row is None:
                    raise NotFound(f"No job {job_id!r}.")
                if row.status != "queued":
                    return None
                free = not cancel.is_set() and _busy(conn, row) < self.max_jobs
                if free:
                    now = db.utcnow()
                    conn.execute(
                        update(j)
                        .where(j.c.id == job_id)
                        .values(
                            status="running",
                            host=HOST,
                            pid=pid,
                            pid_start=start,
                            started_at=now,
                            updated_at=now,
                        )
                    )
            if free:
                return self._read(job_id)
            if cancel.is_set():  # SIGTERM from outside a cancel: the machine is stopping
                self.finish(job_id, "failed", error="Its process was stopped before it ran.")
                return None
            if not waiting:
                waiting = True
                self._append_log(
                    self._read(job_id),
                    f"Waiting for a free slot: at most {self.max_jobs} job(s) run at once.",
                )
            cancel.wait(POLL_SECONDS)

    def report_progress(self, job_id: str, progress: dict[str, Any]) -> bool:
        """In the job's process: record the engine's progress report (its `rows_done` and
        `rows_total`, when it counts rows); True when a cancel was asked for."""
        j = tables.jobs
        with db.write_transaction(self.repository.engine) as conn:
            conn.execute(
                update(j)
                .where(j.c.id == job_id, j.c.status == "running")
                .values(
                    rows_done=progress.get("rows_done", 0),
                    rows_total=progress.get("rows_total"),
                    progress=progress,
                    updated_at=db.utcnow(),
                )
            )
            return bool(conn.execute(select(j.c.cancel_requested).where(j.c.id == job_id)).scalar())

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        error: str = "",
        statuses: tuple[str, ...] = ACTIVE,
        remove_partial: bool = False,
        **values: Any,
    ) -> Job | None:
        """Record the end of a job that is in one of `statuses`, then send its e-mail report.
        None when it was not (it ended otherwise meanwhile). `remove_partial`: its process
        died or was killed, so its engine could not remove its temporary output."""
        j = tables.jobs
        now = db.utcnow()
        with db.write_transaction(self.repository.engine) as conn:
            changed = conn.execute(
                update(j)
                .where(j.c.id == job_id, j.c.status.in_(statuses))
                .values(status=status, error=error, finished_at=now, updated_at=now, **values)
            ).rowcount
        if not changed:
            return None
        job = self._read(job_id)
        if remove_partial and isinstance(job.spec, WorkflowSpec):
            for path in remove_partial_outputs(job.spec.output, job.id):
                self._append_log(job, f"Removed the partial output {path}.")
        summary = error.splitlines()[0] if error else ""
        self._append_log(job, f"Job {job_id} {status}." + (f" {summary}" if summary else ""))
        self._notify(job)
        return job

    # ------------------------------------------------------------------------------ helpers

    def _notify(self, job: Job) -> None:
        spec = job.spec
        if not isinstance(spec, WorkflowSpec):
            return  # only score runs say whom to tell
        recipients = spec.email_on_success if job.status == "succeeded" else spec.email_on_failure
        if not recipients:
            return
        try:
            settings = self.settings.smtp()
            if settings is None:
                raise EmailNotSent("SPARKSERVE_SMTP_HOST is not set, so no mail can be sent.")
            send_job_report(job, recipients, settings)
        except SparkserveError as error:  # never changes the job's status
            self._append_log(job, f"The e-mail report was not sent: {error.message}")
        except Exception as error:  # a bug must not crash the job process after it ended
            self._append_log(
                job, f"The e-mail report was not sent: {type(error).__name__}: {error}"
            )
        else:
            self._append_log(job, f"Sent the report to {', '.join(recipients)}.")

    def _append_log(self, job: Job, message: str) -> None:
        with suppress(OSError), open(job.log_file, "a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def _active_ids(self, *conditions: Any) -> list[str]:
        j = tables.jobs
        with self.repository.engine.connect() as conn, conn.begin():
            return list(
                conn.execute(select(j.c.id).where(j.c.status.in_(ACTIVE), *conditions)).scalars()
            )

    def _read(self, job_id: str) -> Job:
        with self.repository.engine.connect() as conn, conn.begin():
            row = conn.execute(select(tables.jobs).where(tables.jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"No job {job_id!r}.", remedy=remedy("list_jobs"))
        return job_from_row(row)


def _dead_process_problem(job: Job) -> str | None:
    """Why the job cannot progress any more, None while its process lives (or may yet)."""
    if job.pid is None:
        age = (db.utcnow() - job.created_at).total_seconds()
        if job.status == "queued" and age < SPAWN_LIMIT_SECONDS:
            return None  # its process is being started
        return "Its process never started: whatever submitted it stopped first."
    if processes.is_running(job.pid, job.pid_start):
        return None
    how = processes.exit_reason(job.pid, wait=2.0)  # our child: how it ended
    # A zombie another process (the warm scorer) is about to reap and note in the log.
    zombie = processes.is_zombie(job.pid)
    how = how or processes.noted_end(job.log_file, job.pid, wait=2.0 if zombie else 0.0)
    how = how or "is gone (another process started it, so how it ended is unknown)"
    return with_log_tail(f"The job's process {job.pid} {how} before the job ended.", job.log_file)


def _busy(conn: Connection, me: Any) -> int:
    """Jobs that hold or wait ahead of `me` for a slot: running ones with a live process,
    and older queued ones."""
    j = tables.jobs
    rows = conn.execute(
        select(j.c.id, j.c.status, j.c.host, j.c.pid, j.c.pid_start, j.c.created_at).where(
            j.c.status.in_(ACTIVE), j.c.id != me.id
        )
    ).all()
    mine = (db.as_utc(me.created_at), me.id)
    count = 0
    for row in rows:
        if row.status == "queued" and (db.as_utc(row.created_at), row.id) > mine:
            continue  # behind me
        if row.host != HOST:
            count += 1  # another machine's process: assume it lives
        elif row.pid is None:
            age = (db.utcnow() - db.as_utc(row.created_at)).total_seconds()
            count += row.status == "queued" and age < SPAWN_LIMIT_SECONDS
        else:
            count += processes.is_running(row.pid, row.pid_start)
    return count


def _signal_process(job: Job, signum: signal.Signals) -> None:
    if job.host == HOST and job.pid is not None and processes.is_running(job.pid, job.pid_start):
        processes.signal_process(job.pid, signum)
