"""`%sfcompare`: two versions' answers to the same rows, shown as the report's HTML in the
notebook.

    %sfcompare A B --on FILE|DEPLOYMENT|DF [--html PATH] [--via process] [-o NAME]
    %sfcompare --shadow DEPLOYMENT [--html PATH] [-o NAME]

The report object goes into a variable only when `-o NAME` asks for it.
"""

from __future__ import annotations

import argparse

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import HTML, display

from ..compare import (
    BATCH_ROWS,
    VIA,
    CompareReport,
    Rows,
    body,
    compare_shadow,
    compare_versions,
    write_html,
)
from ..quiet import in_notebook
from .common import RepositoryMagics, parse, token, usage_errors

USAGE = "%sfcompare A B --on FILE|DEPLOYMENT|DF, or %sfcompare --shadow DEPLOYMENT"


@magics_class
class CompareMagics(RepositoryMagics):
    @magic_arguments()
    @argument("a", metavar="A", nargs="?", help="The first version: NAME:VERSION, NAME@ALIAS.")
    @argument("b", metavar="B", nargs="?", help="The second version.")
    @argument("--on", metavar="X", help="The rows: a file, a deployment's capture, a DataFrame.")
    @argument("--shadow", metavar="DEPLOYMENT", help="Compare what its shadow recorded.")
    @argument("--html", metavar="PATH", help="Also write the report to this HTML file.")
    @argument("--via", choices=VIA, default="auto", help="auto: a deployed version's endpoint.")
    @argument("--batch-rows", type=int, default=BATCH_ROWS, help="Rows per timed batch.")
    @argument("-o", dest="variable", metavar="NAME", help="Store the report object here.")
    @line_magic
    def sfcompare(self, line: str) -> None:
        """Compare two versions on the same rows (changed labels or numeric differences,
        latency, input drift): %sfcompare iris:1 iris:2 --on data.csv."""
        args = parse(self.sfcompare, line)
        if args.variable is not None and not args.variable.isidentifier():
            raise UsageError(f"-o takes a variable name such as report, not {args.variable!r}.")
        with usage_errors(), in_notebook():
            report = self._report(args)
            if args.html:
                print(f"Report written to {write_html(report, args.html)}")
        display(HTML(body(report)))
        if args.variable is not None:
            self.shell.user_ns[args.variable] = report

    def _report(self, args: argparse.Namespace) -> CompareReport:
        if args.shadow is not None:
            if args.a or args.b or args.on:
                raise UsageError(f"--shadow compares what was recorded: {USAGE}.")
            return compare_shadow(self.repository, args.shadow)
        if not (args.a and args.b and args.on):
            raise UsageError(f"Give two versions and the rows: {USAGE}.")
        on: str | Rows = args.on
        value = self.shell.user_ns.get(args.on)
        if isinstance(value, pd.DataFrame):
            on = Rows(value, f"the DataFrame {args.on}")
        return compare_versions(
            self.repository,
            args.a,
            args.b,
            on,
            via=args.via,
            batch_rows=args.batch_rows,
            token=token(),
        )
