"""Clearing finished jobs: their records and logs go, their outputs stay."""

from __future__ import annotations

import shutil

from sqlalchemy import delete, select

from ..repository import database as db
from . import tables
from .job_record import ACTIVE
from .jobs import JobRunner


def clear_finished(runner: JobRunner) -> list[str]:
    """Delete the records of every job that has ended (succeeded, failed or cancelled) and
    their log folders; a queued or running job is kept. Returns the ids cleared."""
    j = tables.jobs
    with db.write_transaction(runner.repository.engine) as conn:
        ids = list(conn.execute(select(j.c.id).where(j.c.status.not_in(ACTIVE))).scalars())
        if ids:
            conn.execute(delete(j).where(j.c.id.in_(ids), j.c.status.not_in(ACTIVE)))
    for job_id in ids:
        # Only the folder the runner made for the job: its output is the user's file.
        shutil.rmtree(runner.root / job_id, ignore_errors=True)
    return ids
