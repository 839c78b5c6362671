"""What every sparkserve magic shares: reading its line, the repository it works on, the
core's errors worded for a notebook (their remedy as the magic or `!` command to run),
following a job, and handing snippets over as cells."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics
from IPython.display import display

from .. import cells
from ..config import ENDPOINT_TOKEN_ENV, Settings
from ..errors import Conflict, Remedy, SparkserveError
from ..repository import ModelRepository
from ..snippets import Snippet
from ..workflows import Job, JobRunner
from .output import has_frontend, progress_bar

CELLS_MODES = ("auto", "bundle", "next-input", "print")

# Each remedy the core can name (errors.REMEDIES), as what to run in a notebook cell.
REMEDY_MAGICS: dict[str, Callable[[dict[str, Any]], str]] = {
    "register": lambda a: f"%sfregister {a['ref']}",
    "reregister": lambda a: f"%sfregister {a['ref']} --again",
    "deploy": lambda a: f"%sfdeploy {a['ref']}" + (" --register" if a.get("register") else ""),
    "undeploy": lambda a: f"%sfundeploy {a['deployment']}",
    "list_deployments": lambda a: "%sfdeployments --all",
    "cancel_job": lambda a: f"%sfjobs --cancel {a['job']}",
    "list_jobs": lambda a: "%sfjobs",
    "list_workflows": lambda a: "!sparkserve workflows list",
    "import_model": lambda a: f"!sparkserve models import {a['source']} --name NAME",
}


def remedy_magic(remedy: Remedy) -> str:
    return REMEDY_MAGICS[remedy.action](remedy.args)


def parse(magic: Any, line: str) -> argparse.Namespace:
    """Arguments split as a shell would (quotes group words), parsed by the magic's parser,
    which turns a mistake into a UsageError with the usage line."""
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise UsageError(f"Could not read the arguments ({error}): check the quotes.") from None
    return magic.parser.parse_args(words)


@contextmanager
def usage_errors() -> Iterator[None]:
    """The core's messages are written for the user: shown as they are, without a traceback,
    with the magic that is the remedy."""
    try:
        yield
    except SparkserveError as error:
        message = error.message
        if error.remedy is not None:
            message += f"\n  Try: {remedy_magic(error.remedy)}"
        raise UsageError(message) from None


def token() -> str | None:
    return os.environ.get(ENDPOINT_TOKEN_ENV) or None


class RepositoryMagics(Magics):
    """The repository of the kernel's SPARKSERVE_HOME, opened on first use."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._repository: ModelRepository | None = None

    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            self._repository = ModelRepository(Settings.from_env())
        return self._repository

    def variable(self, name: str, what: str) -> Any:
        namespace = self.shell.user_ns
        if name not in namespace:
            raise UsageError(f"No variable named {name!r} in this notebook: pass the {what}.")
        return namespace[name]


def follow_job(shell: Any, runner: JobRunner, job: Job, label: str) -> Job:
    """Wait for the job with a live progress bar (the core words its progress); Ctrl-C
    cancels it."""
    try:
        with progress_bar(shell, label) as show:
            return runner.wait(job.id, on_update=lambda now: show(now.fraction, _state(now)))
    except KeyboardInterrupt:
        with suppress(Conflict):  # it ended on its own meanwhile
            runner.cancel(job.id)
        ended = runner.get(job.id)
        raise UsageError(
            f"Interrupted: job {ended.id} is {ended.status}. {ended.error}".strip()
        ) from None


def _state(job: Job) -> str:
    return job.progress_text if job.status == "running" else f"{job.progress_text} ({job.status})"


def emit_snippets(
    shell: Any, snippets: Sequence[Snippet], summary: str, *, key: str, mode: str
) -> None:
    """Hand the snippets over as `mode` says; auto: cells where a notebook can take them,
    printed in a terminal."""
    if mode == "auto":
        mode = "bundle" if has_frontend(shell) else "print"
    if mode == "bundle":
        bundle = cells.cells_bundle(snippets, summary=summary, key=key)
        display(cells.display_data(bundle), raw=True)
    elif mode == "next-input":
        shell.set_next_input(cells.combined_cell(snippets), replace=False)
    else:
        print(cells.plain_text(snippets))
