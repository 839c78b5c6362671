"""The `sparkserve` command group; each module of this package adds its commands to it."""

from __future__ import annotations

import logging
import warnings

import click

from .. import __version__
from ..config import HOME_ENV
from .output import CliState


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sparkserve")
@click.option(
    "--home",
    envvar=HOME_ENV,
    type=click.Path(file_okay=False),
    help="Repository folder (default: $SPARKSERVE_HOME or ~/.sparkserve).",
)
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Model serving for Jupyter: a model repository you score and deploy from."""
    # MLflow's schema hints and store set-up notes are for notebook authors, noise here.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    ctx.obj = CliState(home)
