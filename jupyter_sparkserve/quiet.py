"""MLflow kept quiet in a notebook: its INFO logs, progress bars and library warnings would
land in the cell as red standard error on every save, register and deploy.

`quiet()` holds them back for the length of a call and hands over, as one-line notes, what
is worth a user's attention (MLflow's own warnings, and `UserWarning`s such as a schema
hint), each worded once, never as a traceback. Only a notebook kernel should use it: it
redirects `sys.stderr` for the whole process, which a multi-threaded server must not do.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator

NOTE_LENGTH = 160  # a note is cut to a sentence end within this many characters
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # MLflow colours some warnings for a terminal


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
    notes: list[str] = []
    caught: list[warnings.WarningMessage] = []
    collect = _Collect(notes)
    for name in loggers:
        logging.getLogger(name).addHandler(collect)
    try:
        # The user's filters still apply; entering resets "once per place", so a warning
        # seen before this call is noted again.
        with warnings.catch_warnings(record=True) as recorded:
            caught = recorded
            with contextlib.redirect_stderr(io.StringIO()):
                yield notes
    finally:
        for name in loggers:
            logging.getLogger(name).removeHandler(collect)
        for warning in caught:
            if _matters(warning.category):
                add_note(notes, str(warning.message))


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
