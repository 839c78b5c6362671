"""The workflows subsystem's tables: saved workflows and jobs (on the repository's metadata;
`repository.database` creates and migrates them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from ..repository.database import created_by_column, metadata

# A saved score workflow: what to score with which model, run again and again as jobs.
workflows = Table(
    "workflows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, default=""),
    # The workflow's settings (model, input, output, formats, columns, engine, options),
    # validated by the workflows module: a new setting needs no schema change.
    Column("spec", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One execution of something long (a score workflow, ...) in a process of its own.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("workflow_id", Integer, nullable=True),  # no foreign key: a job outlives its workflow
    Column("workflow_name", String(128), nullable=False, default=""),  # as it was then
    Column("spec", JSON, nullable=False),  # everything the job process needs, resolved
    # queued -> running -> succeeded | failed | cancelled
    Column("status", String(16), nullable=False),
    # The job's process: a pid means something on its host only.
    Column("host", String(255), nullable=False, default=""),
    Column("pid", Integer, nullable=True),
    # The process's start time as the kernel counts it: tells our pid from a reused one.
    Column("pid_start", BigInteger, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("rows_done", BigInteger, nullable=False, default=0),
    Column("rows_total", BigInteger, nullable=True),
    Column("progress", JSON, nullable=True),  # the latest progress report, as the engine gave it
    Column("output_path", Text, nullable=False, default=""),
    Column("log_file", Text, nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    created_by_column(),
)
Index("ix_jobs_status", jobs.c.status)
