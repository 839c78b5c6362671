"""`sparkserve score` and `sparkserve workflows ...`: offline scoring, now or as saved
workflows run as jobs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import click

from ..warm.protocol import DEFAULT_IDLE_SECONDS
from .jobs import wait_for_job
from .output import (
    as_json,
    confirm_or_yes,
    counted,
    emit,
    fields,
    json_command,
    progress_bar,
    repository,
)
from .output import table as print_table
from .root import main

F = TypeVar("F", bound=Callable[..., Any])


def _spec_options(function: F) -> F:
    """The workflow settings `score`, `workflows create` and `workflows update` share."""
    options = [
        click.option("--input-format", help="csv, parquet or jsonl (default: by extension)."),
        click.option(
            "--format",
            "--output-format",
            "output_format",
            help="csv, parquet or jsonl (default: the output's extension, else the input's).",
        ),
        click.option(
            "--keep-columns",
            metavar="A,B",
            help="Input columns copied to the output (default all, also '*'; '' for none).",
        ),
        click.option(
            "--engine",
            help="local (default), spark, container, or another engine `status` lists.",
        ),
        click.option("--prediction-column", help="Name of the prediction column."),
        click.option(
            "--spark-config",
            metavar="'KEY=VALUE ...'",
            help="Spark settings, such as 'spark.master=local[2] spark.executor.memory=4g'.",
        ),
        click.option("--lib-jars", metavar="A.jar,B.jar", help="Jars added to the Spark session."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _email_options(function: F) -> F:
    function = click.option(
        "--email-on-failure", metavar="ADDRESSES", help="Comma-separated: told of a failure."
    )(function)
    return click.option(
        "--email-on-success", metavar="ADDRESSES", help="Comma-separated: told of a success."
    )(function)


def _spec_changes(settings: dict[str, Any]) -> dict[str, Any]:
    """WorkflowSpec settings from command-line options; options not given are left out."""
    from ..workflows import parse_lib_jars, parse_spark_config

    changes = {name: value for name, value in settings.items() if value is not None}
    if "spark_config" in changes:
        changes["spark_config"] = parse_spark_config(changes["spark_config"])
    if "lib_jars" in changes:
        changes["lib_jars"] = list(parse_lib_jars(changes["lib_jars"]))
    return changes


@main.command("score")
@click.argument("ref")
@click.argument("input")
@click.argument("output")
@_spec_options
@json_command
def score_command(ref: str, input: str, output: str, **settings: Any) -> None:
    """Score INPUT (a file, folder or glob of CSV, Parquet or JSON Lines) with model REF into
    OUTPUT (a file or folder), in the foreground with a progress bar."""
    from ..scoring.batch import use_returning_allocator
    from ..workflows import WorkflowSpec
    from ..workflows.definitions import run_spec

    use_returning_allocator()
    spec = WorkflowSpec.from_dict(
        {"model": ref, "input": input, "output": output, **_spec_changes(settings)}
    )
    quiet = as_json()
    bar = nullcontext(None) if quiet else progress_bar(f"Scoring {Path(spec.input).name}")
    with _interrupt_on_sigterm(), bar as show:
        result = run_spec(
            spec,
            repository=repository(),
            progress=None if show is None else lambda p: show(p.fraction, p.text),
        )
        if show is not None:
            show(1.0, f"{result.rows:,} rows")
    emit(
        result.to_dict(),
        lambda: click.echo(
            f"Scored {counted(result.rows, 'row')} from {counted(result.files, 'file')} into "
            f"{result.output} in {result.seconds:.1f} s "
            f"(predictions: {', '.join(result.prediction_columns)})."
        ),
    )
    _offer_warm_scorer()


@contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the engine removes its temporary output (a run in
    the warm scorer does the same)."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _offer_warm_scorer() -> None:
    """After a run in a fresh process, start a warm scorer for the next ones (mode auto)."""
    from ..warm import client

    if client.offer(idle_timeout=DEFAULT_IDLE_SECONDS):
        click.echo(
            f"Starting a warm scorer: the next runs start faster (it stops after "
            f"{DEFAULT_IDLE_SECONDS // 60:.0f} idle minutes, or with `sparkserve scorer stop`).",
            err=True,
        )


def _show_workflow(workflow: Any) -> None:
    spec = workflow.spec
    columns = "all" if spec.keep_columns is None else ", ".join(spec.keep_columns) or "none"
    fields(
        f"workflow {workflow.id}  {workflow.name or '-'}",
        [
            ("model", spec.model),
            ("input", spec.input + (f" ({spec.input_format})" if spec.input_format else "")),
            ("output", spec.output + (f" ({spec.output_format})" if spec.output_format else "")),
            ("keep columns", columns),
            ("prediction", spec.prediction_column),
            ("engine", spec.engine),
            ("spark config", " ".join(f"{k}={v}" for k, v in spec.spark_config.items()) or "-"),
            ("lib jars", ", ".join(spec.lib_jars) or "-"),
            ("email on success", ", ".join(spec.email_on_success) or "-"),
            ("email on failure", ", ".join(spec.email_on_failure) or "-"),
            ("updated", workflow.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ],
    )


@main.group("workflows")
def workflows_group() -> None:
    """Saved score workflows: create, list, show, update, delete and execute them."""


@workflows_group.command("create")
@click.argument("ref")
@click.argument("input")
@click.argument("output")
@click.option("--name", default="", help="What the workflow is for.")
@_spec_options
@_email_options
@json_command
def workflows_create(ref: str, input: str, output: str, name: str, **settings: Any) -> None:
    """Save a workflow scoring INPUT with model REF into OUTPUT; prints its id."""
    from ..workflows import Workflows

    workflow = Workflows(repository()).create(
        {"model": ref, "input": input, "output": output, **_spec_changes(settings)}, name=name
    )

    def show() -> None:
        click.echo(f"Created workflow {workflow.id}.")
        click.echo(f"  sparkserve workflows execute {workflow.id}")

    emit(workflow.to_dict(), show)


@workflows_group.command("list")
@json_command
def workflows_list() -> None:
    """Workflows, by id."""
    from ..workflows import Workflows

    found = Workflows(repository()).list()

    def show() -> None:
        if not found:
            click.echo("No workflows: sparkserve workflows create REF INPUT OUTPUT makes one.")
            return
        print_table(
            ["ID", "NAME", "MODEL", "ENGINE", "INPUT", "OUTPUT"],
            [
                [w.id, w.name or "-", w.spec.model, w.spec.engine, w.spec.input, w.spec.output]
                for w in found
            ],
        )

    emit([workflow.to_dict() for workflow in found], show)


@workflows_group.command("show")
@click.argument("workflow_id", type=int)
@json_command
def workflows_show(workflow_id: int) -> None:
    """One workflow's settings."""
    from ..workflows import Workflows

    workflow = Workflows(repository()).get(workflow_id)
    emit(workflow.to_dict(), lambda: _show_workflow(workflow))


@workflows_group.command("update")
@click.argument("workflow_id", type=int)
@click.option("--model", help="Model reference.")
@click.option("--input", "input_", help="File, folder or glob to score.")
@click.option("--output", help="File or folder to write.")
@click.option("--name", help="What the workflow is for.")
@_spec_options
@_email_options
@json_command
def workflows_update(
    workflow_id: int,
    model: str | None,
    input_: str | None,
    output: str | None,
    name: str | None,
    **settings: Any,
) -> None:
    """Change the settings given; the others stay ('' resets one to its default)."""
    from ..workflows import Workflows

    changes = _spec_changes({"model": model, "input": input_, "output": output, **settings})
    for option in ("input_format", "output_format", "engine", "prediction_column"):
        if changes.get(option) == "":
            changes[option] = None  # None resets to the default
    workflow = Workflows(repository()).update(workflow_id, changes, name=name)
    emit(workflow.to_dict(), lambda: _show_workflow(workflow))


@workflows_group.command("delete")
@click.argument("workflow_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_command
def workflows_delete(workflow_id: int, yes: bool) -> None:
    """Delete a workflow (its jobs stay)."""
    from ..workflows import Workflows

    workflows = Workflows(repository())
    workflow = workflows.get(workflow_id)
    confirm_or_yes(
        yes,
        f"workflow {workflow.id}",
        f"Delete workflow {workflow.id} ({workflow.spec.model})?",
    )
    workflows.delete(workflow.id)
    emit({"deleted": workflow.id}, lambda: click.echo(f"Deleted workflow {workflow.id}."))


@workflows_group.command("execute")
@click.argument("workflow_id", type=int)
@click.option(
    "--program-parameters",
    metavar="'--KEY VALUE ...'",
    help="Override settings for this run, such as '--input may.csv --output may.parquet'.",
)
@click.option(
    "--spark-config", metavar="'KEY=VALUE ...'", help="Spark settings added for this run."
)
@click.option("--lib-jars", metavar="A.jar,B.jar", help="Jars added for this run.")
@_email_options
@click.option("--wait", is_flag=True, help="Wait for the job to end (exit 1 unless it succeeds).")
@json_command
def workflows_execute(
    workflow_id: int,
    program_parameters: str | None,
    spark_config: str | None,
    lib_jars: str | None,
    email_on_success: str | None,
    email_on_failure: str | None,
    wait: bool,
) -> None:
    """Run a workflow as a job in the background; prints the job id."""
    from ..workflows import JobRunner, execution_request

    body = {
        "workflowId": workflow_id,
        "programParameters": program_parameters,
        "sparkConfig": spark_config,
        "libJars": lib_jars,
        "emailOnSuccess": email_on_success,
        "emailOnFailure": email_on_failure,
    }
    request = execution_request({key: value for key, value in body.items() if value is not None})
    runner = JobRunner(repository())
    job = runner.execute(request)
    if wait:
        wait_for_job(runner, job)
        return

    def show() -> None:
        click.echo(f"Job {job.id} queued (workflow {workflow_id}).")
        click.echo(f"  sparkserve jobs show {job.id}")

    emit(job.to_dict(), show)
