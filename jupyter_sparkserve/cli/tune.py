"""`sparkserve tune REF --p99 20ms`: batching settings tuned to a latency target on this
machine, for the version's deployments (`deploy/tuning.py`)."""

from __future__ import annotations

import click

from ..scoring.load import GENERATORS
from .output import emit, json_command, repository
from .root import main


@main.command("tune")
@click.argument("ref")
@click.option(
    "--p99", required=True, metavar="DURATION", help="The latency target: 20ms, 0.02s or 20 (ms)."
)
@click.option(
    "--clients", type=click.IntRange(min=1), default=16, show_default=True,
    help="Concurrent clients, each sending its next request when answered.",
)  # fmt: skip
@click.option(
    "--seconds", type=click.FloatRange(min=0, min_open=True, max=600), default=3.0,
    show_default=True, help="Seconds measured per setting (after a warm-up).",
)  # fmt: skip
@click.option(
    "--rows", type=click.IntRange(min=1), default=1, show_default=True,
    help="Input example rows per request.",
)  # fmt: skip
@click.option(
    "--load", type=click.Choice(GENERATORS), default="auto", show_default=True,
    help="The load generator: wrk when installed (auto), else sparkserve's own (python).",
)  # fmt: skip
@json_command
def tune_command(ref: str, p99: str, clients: int, seconds: float, rows: int, load: str) -> None:
    """Sweep the endpoint's max_batch_rows and max_wait_ms for model version REF on this
    machine and save the fastest setting whose p99 latency meets the target; deployments of
    REF that set neither option then use it."""
    from ..deploy.tuning import Measurement, parse_p99, tune

    target = parse_p99(p99)
    click.echo(
        f"Tuning {ref} for p99 <= {target:g} ms with {clients} clients, "
        f"{seconds:g} s per setting (a fresh endpoint each):",
        err=True,
    )

    def show_progress(measured: Measurement) -> None:
        load = measured.load
        verdict = "meets" if measured.meets else "misses"
        errors = f", {load.errors} errors" if load.errors else ""
        click.echo(
            f"  {measured.phase:<10}  {measured.setting.label():<36}  {load.rps:>9,.0f} req/s  "
            f"p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:7.2f} ms  {verdict}{errors}",
            err=True,
        )

    result = tune(
        repository(), ref, target, clients=clients, seconds=seconds, rows=rows,
        generator=load, progress=show_progress,
    )  # fmt: skip

    def show() -> None:
        if result.chosen is None:
            click.secho(result.message, fg="red")
            return
        click.echo(f"Chosen for {result.ref} on {result.machine}: {result.message}")
        click.echo(
            f"Saved to {result.saved_to}: deployments of {result.ref} on this machine (local, "
            "container) use it unless they set max_batch_rows or max_wait_ms."
        )

    emit(result.to_dict(), show)
    if result.chosen is None:
        click.get_current_context().exit(1)
