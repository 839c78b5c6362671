"""How the magics show things: progress bars, a status line that changes in place, small
tables. In a notebook a bar is an output updated in place (ipywidgets when installed, else
HTML), never standard error, which a notebook draws on a red background; a terminal gets a
text bar on standard error."""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from IPython.display import DisplayHandle, display

BAR_WIDTH = 30
TEXT_REFRESH_SECONDS = 0.1  # a bar redraws at most this often

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
    notebook = has_frontend(shell)
    bar = (_widget_bar(label) or _HtmlBar(label)) if notebook else _TextBar(label)
    try:
        yield bar.show
    finally:
        bar.close()


def text_line(label: str, fraction: float | None, text: str) -> str:
    """tqdm's look: `label:  45% |█████      | text`."""
    if fraction is None:
        gauge = f"{'?':>4} |{' ' * BAR_WIDTH}|"
    else:
        filled = int(BAR_WIDTH * fraction)
        gauge = f"{fraction:>4.0%} |{'█' * filled}{' ' * (BAR_WIDTH - filled)}|"
    return f"{label}: {gauge} {text}"


class _TextBar:
    """tqdm's look on standard error: one line redrawn with a carriage return."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.stream = sys.stderr  # the terminal's, even if a quiet call redirects it meanwhile
        self.drawn = 0.0
        self.line = ""
        self.shown = ""  # the line on screen

    def show(self, fraction: float | None, text: str) -> None:
        self.line = text_line(self.label, fraction, text)
        now = time.monotonic()
        if self.line != self.shown and now - self.drawn >= TEXT_REFRESH_SECONDS:
            self._draw()
            self.drawn = now

    def close(self) -> None:
        if self.line != self.shown:
            self._draw()  # the last state, which the throttle may have held back
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        # Padded so that a shorter line covers the end of a longer one.
        self.stream.write(f"\r{self.line.ljust(len(self.shown))}")
        self.stream.flush()
        self.shown = self.line


class _HtmlBar:
    """A `<progress>` element in an output updated in place (no ipywidgets needed), with the
    text bar as its plain-text form; no value makes it an indeterminate bar."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.drawn = 0.0
        self.data: dict[str, str] = {}
        self.shown: dict[str, str] = {}
        self.handle: DisplayHandle | None = None

    def show(self, fraction: float | None, text: str) -> None:
        value = "" if fraction is None else f' value="{fraction:.4f}"'
        share = "" if fraction is None else f"{fraction:.0%} "
        label = html.escape(self.label)
        self.data = {
            "text/plain": text_line(self.label, fraction, text),
            "text/html": (
                f'<div><span>{label}</span> <progress max="1"{value} aria-label="{label}"'
                ' style="vertical-align:middle"></progress> '
                f"<span>{share}{html.escape(text)}</span></div>"
            ),
        }
        now = time.monotonic()
        if self.data != self.shown and now - self.drawn >= TEXT_REFRESH_SECONDS:
            self._draw()
            self.drawn = now

    def close(self) -> None:
        if self.data != self.shown:
            self._draw()  # the last state, which the throttle may have held back

    def _draw(self) -> None:
        if self.handle is None:
            self.handle = display(self.data, raw=True, display_id=True)
        else:
            self.handle.update(self.data, raw=True)
        self.shown = self.data


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
