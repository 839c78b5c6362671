"""The report as HTML: one self-contained body (inline SVG plots, inline style, nothing
fetched) that the notebook shows as it is and `write_html` wraps in a page."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

from ..files import write_atomically
from . import svg
from .differences import OutputChanges
from .drift import Drift
from .report import CompareReport

STYLE = """
.sparkserve-compare { font-family: sans-serif; font-size: 13px; color: #222; max-width: 980px; }
.sparkserve-compare h2 { font-size: 18px; margin: 8px 0; }
.sparkserve-compare h3 { font-size: 15px; margin: 18px 0 6px; }
.sparkserve-compare table { border-collapse: collapse; margin: 6px 0; }
.sparkserve-compare th, .sparkserve-compare td { border: 1px solid #ccc; padding: 2px 8px;
  text-align: right; }
.sparkserve-compare th { background: #f2f2f2; }
.sparkserve-compare .figure { font-size: 22px; font-weight: bold; }
.sparkserve-compare .note { color: #8a5300; }
"""
LEVEL_MARKS = ((0.1, "0.1"), (0.25, "0.25"))


def body(report: CompareReport) -> str:
    parts = [
        f"<style>{STYLE}</style>",
        '<div class="sparkserve-compare">',
        f"<h2>{escape(report.a)} vs {escape(report.b)}</h2>",
        f"<p>{report.rows:,} rows from {escape(report.source)}; "
        f'<span class="figure" data-figure="changed-rows">{len(report.changed_rows):,}</span>'
        " rows answered differently.</p>",
    ]
    parts += [f'<p class="note">{escape(note)}</p>' for note in report.notes]
    for output in report.outputs:
        parts += _output(report, output)
    parts += _latency(report)
    for drift in report.drift:
        parts += _drift(drift)
    parts.append("</div>")
    return "\n".join(parts)


def document(report: CompareReport) -> str:
    title = escape(f"{report.a} vs {report.b}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body>\n{body(report)}\n</body></html>\n"
    )


def default_html_path(report: CompareReport, folder: Path) -> Path:
    """`compare-iris-1-vs-iris-2.html` in `folder`."""
    name = f"compare-{report.a}-vs-{report.b}"
    return folder / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") + ".html")


def write_html(report: CompareReport, path: Path) -> Path:
    path = Path(path).expanduser()
    write_atomically(path, document(report))
    return path.absolute()


def _output(report: CompareReport, output: OutputChanges) -> list[str]:
    parts = [
        f"<h3>Output {escape(output.output)} ({output.kind})</h3>",
        f'<p><span class="figure" data-figure="changed-{escape(output.output)}">'
        f"{output.changed:,}</span> of {output.rows:,} rows changed "
        f"({output.changed_share:.2%}).</p>",
    ]
    if output.kind == "labels" and output.transitions:
        items = [(f"{t['a']} → {t['b']}", float(t["rows"])) for t in output.transitions]
        parts.append(svg.bars(items, title=f"{output.output}: changed labels, A → B"))
        parts.append(_table(["row", report.a, report.b], output.shown, ["row", "a", "b"]))
    if output.kind == "numeric" and output.histogram:
        parts.append(
            svg.histogram(
                output.histogram["edges"],
                output.histogram["counts"],
                title=f"{output.output}: distribution of B - A",
                label=f"{report.b} - {report.a}",
            )
        )
        stats = output.stats
        parts.append(
            _table(
                ["mean B - A", "mean |B - A|", "largest |B - A|", "p50", "p99"],
                [stats],
                ["mean", "mean_abs", "max_abs", "p50", "p99"],
            )
        )
        if output.shown:
            parts.append("<p>The rows that changed most:</p>")
            parts.append(
                _table(
                    ["row", report.a, report.b, "B - A"],
                    output.shown,
                    ["row", "a", "b", "difference"],
                )
            )
    if output.changed > len(output.shown):
        parts.append(f"<p>… and {output.changed - len(output.shown):,} more changed rows.</p>")
    return parts


def _latency(report: CompareReport) -> list[str]:
    rows = [side.to_dict() for side in report.latency]
    parts = [
        "<h3>Latency</h3>",
        _table(
            ["version", "how", "calls", "p50 ms", "p99 ms", "mean ms", "failures"],
            rows,
            ["label", "via", "calls", "p50_ms", "p99_ms", "mean_ms", "failures"],
        ),
    ]
    items = []
    for side in report.latency:
        if side.p50_ms is not None and side.p99_ms is not None:
            items += [(f"{side.label} p50", side.p50_ms), (f"{side.label} p99", side.p99_ms)]
    if items:
        colors = [svg.COLORS[0], svg.COLORS[0], svg.COLORS[1], svg.COLORS[1]]
        parts.append(svg.bars(items, title="Latency per call", unit=" ms", colors=colors))
    return parts


def _drift(drift: Drift) -> list[str]:
    parts = [f"<h3>Input drift from the input example of {escape(drift.of)}</h3>"]
    if drift.note:
        parts.append(f'<p class="note">{escape(drift.note)}</p>')
    if not drift.columns:
        return parts
    parts.append(
        svg.bars(
            [(column.column, column.psi) for column in drift.columns],
            title=f"PSI per column ({drift.example_rows:,} example rows)",
            marks=LEVEL_MARKS,
        )
    )
    parts.append(
        _table(
            ["column", "kind", "PSI", "level"],
            [column.to_dict() for column in drift.columns],
            ["column", "kind", "psi", "level"],
        )
    )
    return parts


def _table(headers: list[str], rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    lines = [f"<tr>{head}</tr>"]
    for row in rows:
        cells = "".join(f"<td>{escape(_cell(row.get(key)))}</td>" for key in keys)
        lines.append(f"<tr>{cells}</tr>")
    return "<table>" + "".join(lines) + "</table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
