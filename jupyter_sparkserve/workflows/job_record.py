"""A job as the jobs table records it: what it runs, where it is, how it ended.

A job's `kind` says what its spec is: `score` (a WorkflowSpec) or `build` (a BuildSpec, an
image build). Its title and progress line are worded here, once, for every face.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..containers.build_job import BuildSpec
from ..errors import SparkserveError
from ..repository import database as db
from ..scoring.batch.plan import UNFINISHED_AT_MOST, BatchProgress
from .definitions import WorkflowSpec

JobSpec = WorkflowSpec | BuildSpec
SPEC_KINDS: dict[str, type[WorkflowSpec] | type[BuildSpec]] = {
    "score": WorkflowSpec,
    "build": BuildSpec,
}

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


class JobStillRunning(SparkserveError):
    code = "JOB_STILL_RUNNING"
    http_status = 504


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    workflow_id: int | None
    workflow_name: str
    spec: JobSpec
    status: str
    host: str
    pid: int | None
    pid_start: int | None
    cancel_requested: bool
    rows_done: int
    rows_total: int | None
    progress: dict[str, Any] | None  # the engine's latest BatchProgress, as a dict
    output_path: str
    log_file: Path
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    created_by: str = ""  # who submitted it ('' before schema 5)

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE

    @property
    def fraction(self) -> float | None:
        """The share done: 1.0 only for a job that succeeded; one cancelled or failed keeps
        the share it stopped at."""
        if self.status == "succeeded":
            return 1.0
        share = None if self.progress is None else self.progress.get("fraction")
        return None if share is None else min(UNFINISHED_AT_MOST, share)

    @property
    def batch_progress(self) -> BatchProgress | None:
        """A score run's latest report from its engine."""
        if self.kind != "score" or not self.progress:
            return None
        return BatchProgress.from_dict(self.progress)

    @property
    def rows_per_second(self) -> float | None:
        progress = self.batch_progress
        return None if progress is None else progress.rows_per_second

    @property
    def seconds_left(self) -> float | None:
        """While it runs: the engine's estimate, less the time since it was made."""
        progress = self.batch_progress
        left = None if progress is None or self.status != "running" else progress.seconds_left
        if left is None:
            return None
        return max(0.0, left - (db.utcnow() - self.updated_at).total_seconds())

    @property
    def seconds(self) -> float | None:
        """Time spent running (so far, while it runs)."""
        if self.started_at is None:
            return None
        return ((self.finished_at or db.utcnow()) - self.started_at).total_seconds()

    @property
    def title(self) -> str:
        """What the job does, in a few words."""
        if isinstance(self.spec, BuildSpec):
            return f"Image {self.output_path or self.spec.output} of {self.spec.model}"
        what = self.workflow_name or self.spec.model
        return f"{what} → {Path(self.output_path or self.spec.output).name}"

    @property
    def progress_text(self) -> str:
        """How far it got: rows written (with rows/s and the time left while it runs), or the
        build's phase and step, and the time spent."""
        seconds = "" if self.seconds is None else f", {self.seconds:.1f} s"
        if isinstance(self.spec, BuildSpec):
            progress = self.progress or {}
            phase = progress.get("phase")
            if self.status == "succeeded":
                where = "built" + (" and pushed" if self.spec.push else "")
            elif phase == "build":
                where = f"step {progress.get('steps_done')} of {progress.get('steps_total')}"
            elif phase == "push":
                where = "pushing"
            elif phase == "environment":
                where = "preparing the environment"
            else:
                where = self.status
            return where + seconds
        progress = self.batch_progress
        if progress is None:
            total = "" if self.rows_total is None else f" of {self.rows_total:,}"
            return f"{self.rows_done:,}{total} rows{seconds}"
        return progress.describe(
            running=self.status == "running", seconds_left=self.seconds_left, elapsed=self.seconds
        )

    def to_dict(self) -> dict[str, Any]:
        def stamp(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "kind": self.kind,
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "spec": self.spec.to_dict(),
            "title": self.title,
            "progress_text": self.progress_text,
            "status": self.status,
            "host": self.host,
            "pid": self.pid,
            "cancel_requested": self.cancel_requested,
            "rows_done": self.rows_done,
            "rows_total": self.rows_total,
            "fraction": self.fraction,
            "rows_per_second": self.rows_per_second,
            "seconds_left": self.seconds_left,
            "progress": self.progress,
            "output_path": self.output_path,
            "log_file": str(self.log_file),
            "error": self.error,
            "seconds": self.seconds,
            "created_at": stamp(self.created_at),
            "started_at": stamp(self.started_at),
            "finished_at": stamp(self.finished_at),
            "updated_at": stamp(self.updated_at),
            "created_by": self.created_by,
        }


def job_from_row(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        spec=SPEC_KINDS[row.kind].from_dict(row.spec),
        status=row.status,
        host=row.host,
        pid=row.pid,
        pid_start=row.pid_start,
        cancel_requested=bool(row.cancel_requested),
        rows_done=row.rows_done,
        rows_total=row.rows_total,
        progress=row.progress,
        output_path=row.output_path,
        log_file=Path(row.log_file),
        error=row.error,
        created_at=db.as_utc(row.created_at),
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        updated_at=db.as_utc(row.updated_at),
        created_by=row.created_by,
    )


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else db.as_utc(value)
