"""The live widget `%sfmonitor` shows in a notebook, and the thread that feeds it.

The thread reads the endpoint every `interval` seconds and stops, saying why, at the first of:
- the widget is closed (`close()`, or its comm closed by the frontend);
- its views are gone: jupyter_sparkserve's JupyterLab extension opens a `sparkserve.monitor`
  comm every few seconds with the ids of the monitors rendered in a notebook's page
  (`src/monitorView.ts`); once the extension was heard in this kernel, silence about a monitor
  for `VIEW_SILENCE_SECONDS` means its output was cleared or deleted, the notebook closed or
  the browser gone. Silence is counted only while no cell runs: a running cell holds the
  reports in the kernel's queue, so a long cell must not stop a monitor that is watched;
- no cell ran for `IDLE_SECONDS`: jupyter_server's culler counts every iopub message as the
  kernel's activity, so a monitor that polled forever would keep an idle kernel alive; this
  bound (also the only one where no view reports, as in a frontend without the extension)
  lets a culler with any `cull_idle_timeout` reach it half an hour later;
- `--seconds` elapsed.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets
from traitlets import Dict, Unicode

from ..errors import SparkserveError
from ..monitor import Figures, Monitor

COMM_TARGET = "sparkserve.monitor"
VIEW_SILENCE_SECONDS = 8.0  # the extension reports every 2 s: four missed reports
IDLE_SECONDS = 30 * 60.0

_views_seen: dict[str, float] = {}  # monitor id -> when a view last reported it shown
_extension_heard = threading.Event()  # a report came: the frontend reports its monitors


class _Cells:
    """When cells start and end in this kernel (the idle rule, and silence counted only
    while none runs)."""

    running = False
    started = time.monotonic()
    ended = time.monotonic()

    @classmethod
    def start(cls, *_: Any) -> None:
        cls.running, cls.started = True, time.monotonic()

    @classmethod
    def end(cls, *_: Any) -> None:
        cls.running, cls.ended = False, time.monotonic()


def install(shell: Any) -> None:
    """Listen for the extension's reports and for cells run (once per kernel)."""
    if getattr(shell, "_sparkserve_monitor_installed", False):
        return
    shell._sparkserve_monitor_installed = True
    shell.events.register("pre_run_cell", _Cells.start)
    shell.events.register("post_run_cell", _Cells.end)
    from comm import get_comm_manager

    get_comm_manager().register_target(COMM_TARGET, _on_report)


def _on_report(comm: Any, message: dict[str, Any]) -> None:
    """A report: `{"alive": [monitor ids shown in a page]}`, in the comm's open message."""
    shown = message.get("content", {}).get("data", {}).get("alive", [])
    now = time.monotonic()
    for monitor_id in shown if isinstance(shown, list) else []:
        if isinstance(monitor_id, str):
            _views_seen[monitor_id] = now
    _extension_heard.set()
    comm.close()


class MonitorWidget(widgets.VBox):
    """Counters, a sparkline of req/s and the batch sizes; `figures` (synced) carries the
    numbers themselves."""

    figures = Dict().tag(sync=True)
    stopped = Unicode("").tag(sync=True)  # why polling stopped; "" while it runs

    def __init__(self, monitor_id: str, title: str) -> None:
        self._title = widgets.HTML(f"<b>{html.escape(title)}</b>")
        self._counters = widgets.HTML("Reading the endpoint's metrics…")
        self._charts = widgets.HTML("")
        self._status = widgets.HTML("")
        super().__init__(
            [self._title, self._counters, self._charts, self._status],
            _dom_classes=["jp-SparkserveMonitor", f"jp-SparkserveMonitor-id-{monitor_id}"],
        )
        self.closed = threading.Event()
        self.comm.on_close(lambda _message: self.closed.set())

    def close(self) -> None:
        self.closed.set()
        super().close()

    def show(self, figures: Figures) -> None:
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{label}</th><td>{value}</td></tr>"
            for label, value in figures.shown()
        )
        self._counters.value = f"<table>{rows}</table>"
        self._charts.value = _sparkline(figures.history) + _bars(figures)
        self.figures = figures.to_dict()

    def say(self, text: str, *, stopped: bool = False) -> None:
        self._status.value = f"<i>{html.escape(text)}</i>"
        if stopped:
            self.stopped = text


def _sparkline(history: list[float], width: int = 240, height: int = 40) -> str:
    if len(history) < 2:
        return ""
    top = max(history) or 1.0
    step = width / (len(history) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - value / top * (height - 2):.1f}"
        for i, value in enumerate(history)
    )
    return (
        f"<div>req/s (max {top:,.1f})</div><svg width='{width}' height='{height}' role='img' "
        f"aria-label='requests per second'><polyline fill='none' stroke='currentColor' "
        f"points='{points}'/></svg>"
    )


def _bars(figures: Figures, width: int = 240, height: int = 40) -> str:
    bars = [bar for bar in figures.batch_rows if bar.count > 0] or []
    if not bars:
        return ""
    top = max(bar.count for bar in bars)
    step = width / len(bars)
    rects = "".join(
        f"<rect x='{i * step:.1f}' y='{height - bar.count / top * height:.1f}' "
        f"width='{step * 0.8:.1f}' height='{bar.count / top * height:.1f}' fill='currentColor'>"
        f"<title>{html.escape(bar.label)} rows: {bar.count} calls</title></rect>"
        for i, bar in enumerate(bars)
    )
    labels = " · ".join(f"{html.escape(bar.label)}: {bar.count}" for bar in bars)
    return (
        f"<div>rows per predict call</div><svg width='{width}' height='{height}' role='img' "
        f"aria-label='rows per predict call'>{rects}</svg><div>{labels}</div>"
    )


class Poller(threading.Thread):
    """Feeds one widget until one of the stop rules (module docstring) holds."""

    def __init__(
        self,
        monitor: Monitor,
        widget: MonitorWidget,
        monitor_id: str,
        *,
        interval: float,
        seconds: float | None,
    ) -> None:
        super().__init__(name=f"sparkserve-monitor-{monitor_id}", daemon=True)
        self.monitor, self.widget, self.monitor_id = monitor, widget, monitor_id
        self.interval, self.seconds = interval, seconds
        self.polls = 0
        self.reason = ""

    def run(self) -> None:
        started = time.monotonic()
        try:
            while not (reason := self._why_stop(started)):
                try:
                    self.widget.show(self.monitor.poll())
                    self.polls += 1
                    self.widget.say(f"Updated every {self.interval:g} s.")
                except SparkserveError as error:
                    self.widget.say(error.message)  # a restart may come back: keep trying
                if self.widget.closed.wait(self.interval):
                    continue
            self.reason = reason
            if not self.widget.closed.is_set():
                self.widget.say(f"Stopped: {reason}", stopped=True)
        finally:
            self.monitor.close()
            _views_seen.pop(self.monitor_id, None)

    def _why_stop(self, started: float) -> str:
        now = time.monotonic()
        if self.widget.closed.is_set():
            return "the widget was closed."
        if self.seconds is not None and now - started >= self.seconds:
            return f"{self.seconds:g} seconds are over."
        if self._unseen_for(now, started) > VIEW_SILENCE_SECONDS:
            return "no view of it is shown any more."
        if not _Cells.running and now - _Cells.started > IDLE_SECONDS:
            return f"no cell ran for {IDLE_SECONDS / 60:g} minutes (the kernel may be culled)."
        return ""

    def _unseen_for(self, now: float, started: float) -> float:
        """Seconds no view reported this monitor shown, counted while no cell runs; 0 where
        no extension reports (another frontend: only the idle rule and --seconds apply)."""
        if _Cells.running or not _extension_heard.is_set():
            return 0.0
        seen = _views_seen.get(self.monitor_id, started)  # deleted before its first report
        return now - max(seen, _Cells.ended)
