"""`%sfmonitor DEPLOYMENT [--seconds N] [--window MIN] [--interval S] [--token-var NAME]`:
the endpoint's live figures (`monitor/`): a widget fed by a background thread in a notebook
(`monitor_widget.py` says when it stops), one text summary in a terminal IPython."""

from __future__ import annotations

import itertools
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..monitor import DEFAULT_INTERVAL_SECONDS, DEFAULT_WINDOW_SECONDS, Monitor, source_for
from .common import RepositoryMagics, parse, token, usage_errors

TERMINAL_SECONDS = 5.0  # a terminal's summary: the rates between two reads this far apart
_numbers = itertools.count(1)


@magics_class
class MonitorMagics(RepositoryMagics):
    @magic_arguments()
    @argument("deployment", metavar="DEPLOYMENT", help="The deployment id (%%sfdeployments).")
    @argument("--seconds", type=float, help="Stop after this many seconds (default: see help).")
    @argument(
        "--window",
        type=float,
        default=DEFAULT_WINDOW_SECONDS / 60,
        help="Minutes the figures cover (default %(default)g).",
    )
    @argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_SECONDS,
        help="Seconds between reads of /metrics (default %(default)g).",
    )
    @argument(
        "--token-var",
        metavar="NAME",
        help="A notebook variable holding the endpoint's bearer token (default: "
        "$SPARKSERVE_ENDPOINT_TOKEN), so the token is never written in the cell.",
    )
    @line_magic
    def sfmonitor(self, line: str) -> Any:
        """Watch a running deployment: req/s, p50/p99 latency, error rate and batch sizes
        over the last minutes, from its endpoint's /metrics: %sfmonitor DEPLOYMENT.

        In a notebook it polls until the widget is closed or no longer shown, no cell ran
        for 30 minutes, or --seconds are over; in a terminal it prints one summary."""
        args = parse(self.sfmonitor, line)
        if args.interval <= 0 or (args.seconds is not None and args.seconds <= 0):
            raise UsageError("--interval and --seconds must be positive.")
        given = self.variable(args.token_var, "token") if args.token_var else token()
        with usage_errors():
            source = source_for(self.repository, args.deployment, given)
            monitor = Monitor(source, args.window * 60.0)
            first = monitor.poll()  # a refusal (token, unreachable) is said now, in the cell
        if getattr(self.shell, "kernel", None) is None:
            return self._summary(monitor, first, args.seconds)
        from . import monitor_widget

        monitor_widget.install(self.shell)
        monitor_id = f"{args.deployment}-{next(_numbers)}"
        widget = monitor_widget.MonitorWidget(
            monitor_id, f"{args.deployment} at {source.url.removesuffix('/metrics')}"
        )
        widget.show(first)
        poller = monitor_widget.Poller(
            monitor, widget, monitor_id, interval=args.interval, seconds=args.seconds
        )
        poller.start()
        return widget

    def _summary(self, monitor: Monitor, first: Any, seconds: float | None) -> None:
        """A terminal has no live output: the figures between two reads, printed once."""
        time.sleep(min(seconds or TERMINAL_SECONDS, TERMINAL_SECONDS))
        with usage_errors():
            figures = monitor.poll()
        monitor.close()
        print(f"{monitor.source.label} ({monitor.source.url}):")
        for label, value in figures.shown():
            print(f"  {label:<22} {value}")
