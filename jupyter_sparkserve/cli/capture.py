"""`sparkserve capture DEPLOYMENT`: what a deployment's payload capture holds, exported to a
Parquet or CSV file (`--out`), purged (`--purge`)."""

from __future__ import annotations

from pathlib import Path

import click

from .output import emit, json_command, repository
from .root import main


@main.command("capture")
@click.argument("deployment_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write every captured row to FILE.parquet or FILE.csv.",
)
@click.option("--purge", is_flag=True, help="Delete the captured files (after --out, if given).")
@json_command
def capture(deployment_id: str, out: str | None, purge: bool) -> None:
    """Export or purge what deployment DEPLOYMENT_ID captured (deploy with --capture true)."""
    from ..deploy.captures import export_capture

    export = export_capture(repository(), deployment_id, Path(out) if out else None, purge=purge)

    def show() -> None:
        if export.rows:
            click.echo(
                f"{export.requests} request(s), {export.rows} row(s) from {export.first} to "
                f"{export.last}, in {export.files} file(s) ({export.bytes:,} bytes) "
                f"under {export.folder}"
            )
        else:
            click.echo(f"Nothing captured under {export.folder}.")
        if export.out:
            click.echo(f"Wrote {export.out}")
        if export.purged:
            click.echo("Purged the captured files.")

    emit(export.to_dict(), show)
