"""`sparkserve jobs ...` and `sparkserve scorer ...`: the jobs running workflows, and the
warm scorer they start from."""

from __future__ import annotations

from typing import Any

import click

from ..warm.protocol import DEFAULT_IDLE_SECONDS
from .output import as_json, emit, fields, json_command, progress_bar, repository, table
from .root import main


def wait_for_job(runner: Any, job: Any) -> None:
    """Wait for `job` with a progress bar, show how it ended; exit 1 unless it succeeded."""
    try:
        if as_json():
            job = runner.wait(job.id)
        else:
            with progress_bar(f"Job {job.id}") as show:
                job = runner.wait(
                    job.id,
                    on_update=lambda j: show(j.fraction, f"{j.status}, {j.progress_text}"),
                )
        emit(job.to_dict(), lambda: show_job(job))
    except KeyboardInterrupt:
        click.echo(
            f"\nJob {job.id} goes on in the background; sparkserve jobs cancel {job.id} stops it.",
            err=True,
        )
        click.get_current_context().exit(130)
    if job.status != "succeeded":
        click.get_current_context().exit(1)


def show_job(job: Any) -> None:
    what = "one-off score" if job.workflow_id is None else f"workflow {job.workflow_id}"
    rows = f"{job.rows_done:,}" + (f" of {job.rows_total:,}" if job.rows_total else "")
    shown = [
        ("what", what + (f" ({job.workflow_name})" if job.workflow_name else "")),
        ("model", job.spec.model),
        ("input", job.spec.input),
        ("output", job.output_path),
        ("engine", job.spec.engine),
        ("rows", rows + (f" ({job.fraction:.0%})" if job.fraction is not None else "")),
        ("progress", job.progress_text),
        ("created", job.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("created by", job.created_by or "-"),
        ("duration", "-" if job.seconds is None else f"{job.seconds:.1f} s"),
        ("log", str(job.log_file)),
    ]
    if job.error:
        shown.append(("error", job.error))
    fields(f"job {job.id}  {job.status}", shown)


@main.group("jobs")
def jobs_group() -> None:
    """Jobs running workflows: list, show, log and cancel them."""


@jobs_group.command("list")
@click.option("--status", help="Only jobs in this status (queued, running, succeeded, ...).")
@click.option("--workflow", "workflow_id", type=int, help="Only jobs of this workflow.")
@click.option("--limit", default=50, show_default=True, help="Jobs to show.")
@json_command
def jobs_list(status: str | None, workflow_id: int | None, limit: int) -> None:
    """Jobs, newest first."""
    from ..workflows import JobRunner

    found = JobRunner(repository()).list(status=status, workflow_id=workflow_id, limit=limit)

    def show() -> None:
        if not found:
            click.echo("No jobs.")
            return
        table(
            ["ID", "WORKFLOW", "MODEL", "STATUS", "ROWS", "PROGRESS", "CREATED", "BY"],
            [
                [
                    job.id,
                    "-" if job.workflow_id is None else job.workflow_id,
                    job.spec.model,
                    job.status,
                    f"{job.rows_done:,}",
                    "-" if job.fraction is None else f"{job.fraction:.0%}",
                    job.created_at.strftime("%Y-%m-%d %H:%M"),
                    job.created_by or "-",
                ]
                for job in found
            ],
        )

    emit([job.to_dict() for job in found], show)


@jobs_group.command("show")
@click.argument("job_id")
@json_command
def jobs_show(job_id: str) -> None:
    """One job, its process checked now."""
    from ..workflows import JobRunner

    job = JobRunner(repository()).get(job_id)
    emit(job.to_dict(), lambda: show_job(job))


@jobs_group.command("log")
@click.argument("job_id")
@click.option("--tail", type=click.IntRange(min=1), help="Only the last N lines.")
@json_command
def jobs_log(job_id: str, tail: int | None) -> None:
    """A job's log."""
    from ..workflows import JobRunner

    text = JobRunner(repository()).log(job_id, tail=tail)
    emit({"id": job_id, "log": text}, lambda: click.echo(text, nl=not text.endswith("\n")))


@jobs_group.command("cancel")
@click.argument("job_id")
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait after SIGTERM before killing it.",
)
@json_command
def jobs_cancel(job_id: str, timeout: float) -> None:
    """Cancel a job: a queued one never runs; a running one stops, leaving no output."""
    from ..workflows import JobRunner

    job = JobRunner(repository()).cancel(job_id, timeout=timeout)
    emit(job.to_dict(), lambda: click.echo(f"Job {job.id} is {job.status}."))


@main.group("scorer")
def scorer_group() -> None:
    """The warm scorer: a preloaded process that `sparkserve score` and jobs start from."""


@scorer_group.command("start")
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_IDLE_SECONDS,
    show_default=True,
    help="Stop after this many seconds without runs (0: never).",
)
@json_command
def scorer_start(idle_timeout: float) -> None:
    """Start the warm scorer (if none runs) and wait until it answers."""
    from ..warm import client

    _show_scorer(client.start(idle_timeout=idle_timeout))


@scorer_group.command("status")
@json_command
def scorer_status() -> None:
    """Whether a warm scorer runs, and its recent runs."""
    from ..warm import client, protocol

    current = client.status()
    if current is None:
        mode = protocol.mode()
        emit(
            {"running": False, "mode": mode},
            lambda: click.echo(f"No warm scorer is running (mode: {mode})."),
        )
        return
    _show_scorer(current)


@scorer_group.command("stop")
@json_command
def scorer_stop() -> None:
    """Stop your warm scorers once their runs in progress have finished."""
    from ..warm import client

    pids = client.stop()

    def show() -> None:
        if not pids:
            click.echo("No warm scorer was running.")
        else:
            click.echo(f"Stopped the warm scorer (pid {', '.join(map(str, pids))}).")

    emit({"stopped": pids}, show)


def _show_scorer(current: dict[str, Any]) -> None:
    def show() -> None:
        idle = current["idle_timeout"]
        click.echo(f"Warm scorer pid {current['pid']} on {current['socket']}")
        click.echo(
            f"  preloaded in {current['preload_seconds']:.1f} s, {current['peak_mb']:.0f} MB"
        )
        click.echo(f"  idle timeout: {f'{idle:g} s' if idle else 'none'}")
        for run in current["in_progress"]:
            command = " ".join(run["command"])
            click.echo(f"  running: pid {run['pid']} {command} ({run['seconds']} s)")
        for run in current["recent"][-5:]:
            click.echo(
                f"  ended: pid {run['pid']} {' '.join(run['command'])}: exit {run['exit_code']} "
                f"after {run['seconds']} s, peak {run['peak_mb']:.0f} MB"
            )

    emit({"running": True, **current}, show)
