"""How every `sparkserve` command answers: one JSON document with `--json`, readable text
otherwise, and the core's errors worded for a shell, their remedy as the command to type.

A command calls `emit(payload, show)`: `payload` is what `--json` prints, `show` prints the
text form. Nothing else in the CLI asks which of the two it is.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from ..config import Settings
from ..errors import Remedy, SparkserveError
from ..repository import ModelRepository

F = TypeVar("F", bound=Callable[..., Any])

# Each remedy the core can name (errors.REMEDIES), as the command that carries it out.
REMEDY_COMMANDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "register": lambda a: f"sparkserve register {a['ref']}",
    "reregister": lambda a: f"sparkserve reregister {a['ref']}",
    "deploy": lambda a: (
        f"sparkserve deploy {a['ref']}" + (" --register" if a.get("register") else "")
    ),
    "undeploy": lambda a: f"sparkserve undeploy {a['deployment']}",
    "list_deployments": lambda a: "sparkserve deployments list --all",
    "cancel_job": lambda a: f"sparkserve jobs cancel {a['job']}",
    "list_jobs": lambda a: "sparkserve jobs list",
    "list_workflows": lambda a: "sparkserve workflows list",
    "import_model": lambda a: f"sparkserve models import {a['source']} --name NAME",
}


def remedy_command(remedy: Remedy) -> str:
    return REMEDY_COMMANDS[remedy.action](remedy.args)


class CliState:
    """Opens the repository the first time a command needs it."""

    def __init__(self, home: str | None) -> None:
        self.home = home
        self._repository: ModelRepository | None = None

    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            self._repository = ModelRepository(Settings.from_env(home=self.home))
        return self._repository


def json_command(function: F) -> F:
    """Add `--json` and turn SparkserveError into a clean message (or JSON error) and exit 1."""

    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @click.pass_context
    @functools.wraps(function)
    def wrapper(ctx: click.Context, *args: Any, as_json: bool, **kwargs: Any) -> Any:
        ctx.meta["as_json"] = as_json
        try:
            return ctx.invoke(function, *args, **kwargs)
        except SparkserveError as error:
            fail(error.to_dict(), error.remedy)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:  # a failure we did not foresee: still no traceback
            fail({"error": "INTERNAL_ERROR", "message": f"{type(error).__name__}: {error}"})

    return wrapper  # type: ignore[return-value]


def fail(payload: dict[str, Any], remedy: Remedy | None = None) -> None:
    hint = None if remedy is None else remedy_command(remedy)
    if as_json():
        click.echo(dumps({**payload, **({"hint": hint} if hint else {})}))
    else:
        click.secho(f"Error: {payload['message']}", fg="red", err=True)
        if hint:
            click.echo(f"  Try: {hint}", err=True)
    click.get_current_context().exit(1)


def dumps(payload: Any) -> str:
    return json.dumps(payload, indent=2, default=str)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 version`, `2 versions`: the one place the CLI puts a count before a word."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def as_json() -> bool:
    return bool(click.get_current_context().meta.get("as_json"))


def emit(payload: Any, show: Callable[[], None]) -> None:
    """Print `payload` as JSON under `--json`, else call `show` to print the text form."""
    if as_json():
        click.echo(dumps(payload))
    else:
        show()


def state() -> CliState:
    return click.get_current_context().find_object(CliState)  # type: ignore[return-value]


def repository() -> ModelRepository:
    return state().repository


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(header) for header in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(click.style(line.rstrip(), bold=True) if index == 0 else line.rstrip())


def fields(title: str, rows: Sequence[tuple[str, Any]]) -> None:
    """A bold title, then aligned `label  value` lines."""
    click.secho(title, bold=True)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"  {label.ljust(width)}  {value}")


def confirm_or_yes(yes: bool, what: str, question: str) -> None:
    """Go on when --yes was given or the user agrees; refuse when nobody can be asked."""
    from ..errors import InvalidInput

    if yes:
        return
    if as_json() or not sys.stdin.isatty():
        raise InvalidInput(f"Deleting {what} needs --yes when nobody can be asked.")
    click.confirm(question, abort=True)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[float | None, str], None]]:
    """A progress bar on standard error; yields show(fraction or None, text). The text is
    the core's (rows, rows/s, time left): click's own estimate of the time left is off."""
    steps = 1000
    with click.progressbar(
        length=steps,
        label=label,
        file=sys.stderr,
        item_show_func=lambda text: text,
        show_eta=False,
    ) as bar:
        shown = 0

        def show(fraction: float | None, text: str) -> None:
            nonlocal shown
            target = int((fraction or 0.0) * steps)
            bar.update(max(target - shown, 0), text)
            shown = max(shown, target)

        yield show
