"""MLflow kept quiet in a notebook: its INFO logs, progress bars and library warnings would
land in the cell as red standard error on every save, register and deploy.

`quiet()` holds them back for the length of a call and hands over, as one-line notes, what
is worth a user's attention (MLflow's own warnings, and `UserWarning`s such as a schema
hint), each worded once, never as a traceback. It redirects `sys.stderr` for the whole
process, so it acts only on the main thread (a server's worker threads never swap it) and
only once at a time (a quiet call inside another leaves the notes to the outer one).

`in_notebook()` is what the core's notebook-facing calls (`ModelRepository.save`) use: quiet,
and the notes printed, exactly when standard error is a notebook cell's; nothing elsewhere.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterator

NOTE_LENGTH = 160  # a note is cut to a sentence end within this many characters
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # MLflow colours some warnings for a terminal
_active = False  # a quiet call is in progress (on the main thread)


class _Collect(logging.Handler):
    """Keeps the warnings and errors MLflow logs (its own handler writes to the dropped stderr)."""

    def __init__(self, notes: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        add_note(self.notes, record.getMessage())


@contextlib.contextmanager
def quiet(loggers: tuple[str, ...] = ("mlflow", "alembic")) -> Iterator[list[str]]:
    """Run the block without standard error output; yields the list of notes, filled when
    the block ends (also when it raises, so the caller can still show them)."""
    global _active
    notes: list[str] = []
    if _active or threading.current_thread() is not threading.main_thread():
        yield notes  # the outer call collects; another thread must not swap sys.stderr
        return
    caught: list[warnings.WarningMessage] = []
    collect = _Collect(notes)
    _active = True
    try:
        for name in loggers:
            logging.getLogger(name).addHandler(collect)
        # The user's filters still apply; entering resets "once per place", so a warning
        # seen before this call is noted again.
        with warnings.catch_warnings(record=True) as recorded:
            caught = recorded
            with contextlib.redirect_stderr(io.StringIO()):
                yield notes
    finally:
        _active = False
        for name in loggers:
            logging.getLogger(name).removeHandler(collect)
        for warning in caught:
            if _matters(warning.category):
                add_note(notes, str(warning.message))


@contextlib.contextmanager
def in_notebook() -> Iterator[None]:
    """`quiet()` when standard error is a notebook cell's (ipykernel's stream), the notes
    printed after the call; elsewhere (a terminal, a server, a job) nothing changes."""
    if type(sys.stderr).__module__.split(".")[0] != "ipykernel":
        yield
        return
    notes: list[str] = []
    try:
        with quiet() as notes:
            yield
    finally:
        for note in notes:
            print(f"Note: {note}")


def _matters(category: type[Warning]) -> bool:
    """A UserWarning speaks about the user's model or data; deprecations and the like speak
    to the libraries' authors."""
    return issubclass(category, UserWarning) and category.__module__.split(".")[0] != "tqdm"


def add_note(notes: list[str], message: str) -> None:
    text = one_line(message)
    if text and text not in notes:
        notes.append(text)


def one_line(message: str) -> str:
    """The message on one line, cut after the last sentence that fits in NOTE_LENGTH."""
    text = " ".join(_COLOUR.sub("", message).split())
    if len(text) <= NOTE_LENGTH:
        return text
    ends = [match.end() for match in re.finditer(r"[.!?](?=\s)", text[: NOTE_LENGTH + 1])]
    return text[: ends[-1]] if ends else text[: NOTE_LENGTH - 1].rstrip() + "…"
