"""How the magics show things: progress bars, a status line that changes in place, small
tables. Widgets in a notebook kernel when ipywidgets is there, text everywhere else."""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from IPython.display import DisplayHandle, display

BAR_WIDTH = 30
TEXT_REFRESH_SECONDS = 0.1  # a text bar redraws at most this often

Show = Callable[[float | None, str], None]  # show(fraction done or None, what is done)


def has_frontend(shell: Any) -> bool:
    """Whether the magic runs in a kernel that a front end (a notebook) is connected to, as
    opposed to a terminal IPython, which can show neither widgets nor cells."""
    try:
        from ipykernel.zmqshell import ZMQInteractiveShell
    except ImportError:
        return False
    return isinstance(shell, ZMQInteractiveShell)


@contextmanager
def progress_bar(shell: Any, label: str) -> Iterator[Show]:
    """A progress bar for as long as the block runs; yields show(fraction, text)."""
    bar = _widget_bar(label) if has_frontend(shell) else None
    if bar is None:
        bar = _TextBar(label)
    try:
        yield bar.show
    finally:
        bar.close()


class _TextBar:
    """tqdm's look on standard error: one line redrawn with a carriage return."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.drawn = 0.0
        self.line = ""
        self.shown = ""  # the line on screen

    def show(self, fraction: float | None, text: str) -> None:
        if fraction is None:
            gauge = f"{'?':>4} |{' ' * BAR_WIDTH}|"
        else:
            filled = int(BAR_WIDTH * fraction)
            gauge = f"{fraction:>4.0%} |{'█' * filled}{' ' * (BAR_WIDTH - filled)}|"
        self.line = f"{self.label}: {gauge} {text}"
        now = time.monotonic()
        if self.line != self.shown and now - self.drawn >= TEXT_REFRESH_SECONDS:
            self._draw()
            self.drawn = now

    def close(self) -> None:
        if self.line != self.shown:
            self._draw()  # the last state, which the throttle may have held back
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def _draw(self) -> None:
        # Padded so that a shorter line covers the end of a longer one.
        sys.stderr.write(f"\r{self.line.ljust(len(self.shown))}")
        sys.stderr.flush()
        self.shown = self.line


class _WidgetBar:
    def __init__(self, widgets: Any, label: str) -> None:
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description=label)
        self.text = widgets.Label(value="")
        display(widgets.HBox([self.bar, self.text]))

    def show(self, fraction: float | None, text: str) -> None:
        # An unknown fraction keeps the bar where it was; the text still moves.
        if fraction is not None:
            self.bar.value = fraction
        self.text.value = text

    def close(self) -> None:
        self.bar.bar_style = "success" if self.bar.value >= 1.0 else "warning"


def _widget_bar(label: str) -> _WidgetBar | None:
    try:
        import ipywidgets
    except ImportError:
        return None
    return _WidgetBar(ipywidgets, label)


class StatusLine:
    """One line that says what a long call is doing: replaced in place in a notebook,
    printed line after line in a terminal."""

    def __init__(self, shell: Any) -> None:
        self.in_place = has_frontend(shell)
        self.handle: DisplayHandle | None = None

    def show(self, text: str) -> None:
        if not self.in_place:
            print(text)
        elif self.handle is None:
            self.handle = display({"text/plain": text}, raw=True, display_id=True)
        else:
            self.handle.update({"text/plain": text}, raw=True)


def show_fields(title: str, fields: Sequence[tuple[str, str]]) -> None:
    """A titled two-column table: HTML in a notebook, aligned text elsewhere."""
    width = max(len(name) for name, _ in fields)
    text = "\n".join([title, *(f"  {name.ljust(width)}  {value}" for name, value in fields)])
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
        f"<td style='text-align:left'><code>{html.escape(value)}</code></td></tr>"
        for name, value in fields
    )
    markup = f"<strong>{html.escape(title)}</strong><table>{rows}</table>"
    display({"text/plain": text, "text/html": markup}, raw=True)
