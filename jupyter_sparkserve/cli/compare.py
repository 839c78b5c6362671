"""`sparkserve compare`: two versions' answers to the same rows (a file, or a deployment's
captured requests), or a deployment's shadow pairs, as a summary and an HTML report."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..config import ENDPOINT_TOKEN_ENV
from ..errors import InvalidInput
from .output import emit, json_command, repository
from .root import main


@main.command("compare")
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option(
    "--on", metavar="FILE|DEPLOYMENT", help="The rows: a file, or a deployment's capture."
)
@click.option(
    "--shadow", metavar="DEPLOYMENT", help="Compare what this deployment's shadow recorded."
)
@click.option(
    "--html", "html_path", metavar="PATH", help="The HTML report (default: ./compare-A-vs-B.html)."
)
@click.option(
    "--via",
    type=click.Choice(["auto", "process", "endpoint"]),
    default="auto",
    show_default=True,
    help="Score through a version's endpoint when deployed (auto), or always in process.",
)
@click.option("--batch-rows", type=int, default=None, help="Rows per timed batch or request (100).")
@json_command
def compare_command(
    a: str | None,
    b: str | None,
    on: str | None,
    shadow: str | None,
    html_path: str | None,
    via: str,
    batch_rows: int | None,
) -> None:
    """Score the same rows with versions A and B and report what changed: changed labels or
    the distribution of numeric differences, the rows that changed most, each one's latency,
    and the rows' drift from each version's input example (PSI per column).

    sparkserve compare iris:1 iris:2 --on data.csv; sparkserve compare --shadow DEPLOYMENT."""
    from ..compare import (
        BATCH_ROWS,
        compare_shadow,
        compare_versions,
        default_html_path,
        write_html,
    )

    if shadow is not None:
        if a or b or on or batch_rows is not None:
            raise InvalidInput(
                "--shadow compares what was recorded: give no versions, --on or --batch-rows."
            )
        report = compare_shadow(repository(), shadow)
    else:
        if not (a and b and on):
            raise InvalidInput(
                "Give two versions and the rows: sparkserve compare A B --on FILE|DEPLOYMENT "
                "(or --shadow DEPLOYMENT)."
            )
        report = compare_versions(
            repository(),
            a,
            b,
            on,
            via=via,
            batch_rows=batch_rows or BATCH_ROWS,
            token=os.environ.get(ENDPOINT_TOKEN_ENV) or None,
        )
    target = Path(html_path) if html_path else default_html_path(report, Path.cwd())
    written = write_html(report, target)
    emit(
        {**report.to_dict(), "html": str(written)},
        lambda: click.echo(f"{report.summary()}\nReport: {written}"),
    )
