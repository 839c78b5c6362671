"""What every sparkserve magic shares: reading its line, the repository it works on, and the
core's errors worded for a notebook, their remedy as the magic (or `!` command) to run."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics

from ..config import ENDPOINT_TOKEN_ENV, Settings
from ..errors import Remedy, SparkserveError
from ..repository import ModelRepository

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
