"""The report's plots as inline SVG text: horizontal bars and a histogram, with no plotting
library (and nothing fetched when the page opens)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 560
BAR_HEIGHT = 18
GAP = 6
LABEL_WIDTH = 170
COLORS = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#a463f2", "#97bbf5")


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkserve-plot" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-family="sans-serif" fill="#222">{escape(text)}</text>'
    )


def bars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    marks: Sequence[tuple[float, str]] = (),
    colors: Sequence[str] | None = None,
) -> str:
    """One horizontal bar per (label, value); `marks` draw dashed lines at given values
    (such as PSI's 0.1 and 0.25)."""
    top = 22
    height = top + len(items) * (BAR_HEIGHT + GAP) + 18
    largest = max([value for _, value in items] + [mark for mark, _ in marks] + [1e-12])
    span = WIDTH - LABEL_WIDTH - 70
    body = [_text(0, 14, title, size=12)]
    for row, (label, value) in enumerate(items):
        y = top + row * (BAR_HEIGHT + GAP)
        length = max(value, 0.0) / largest * span
        color = (colors or COLORS)[row % len(colors or COLORS)]
        shown = label if len(label) <= 26 else label[:25] + "…"
        body += [
            _text(LABEL_WIDTH - 6, y + 13, shown, anchor="end"),
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{color}"><title>{escape(label)}: {value:.4g}{unit}</title></rect>',
            _text(LABEL_WIDTH + length + 4, y + 13, f"{value:.4g}{unit}"),
        ]
    bottom = top + len(items) * (BAR_HEIGHT + GAP)
    for value, name in marks:
        x = LABEL_WIDTH + value / largest * span
        body += [
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#888" '
            'stroke-dasharray="4 3"/>',
            _text(x, bottom + 12, name, anchor="middle", size=10),
        ]
    return _svg(WIDTH, height, title, body)


def histogram(edges: Sequence[float], counts: Sequence[int], *, title: str, label: str) -> str:
    """Vertical bars over the bins `edges` (one more than `counts`), with the range below."""
    height, top, bottom, left = 220, 22, 40, 40
    plot_width, plot_height = WIDTH - left - 10, height - top - bottom
    tallest = max(max(counts, default=0), 1)
    step = plot_width / max(len(counts), 1)
    body = [_text(0, 14, title, size=12)]
    for index, count in enumerate(counts):
        bar = count / tallest * plot_height
        x = left + index * step
        body.append(
            f'<rect x="{x:.1f}" y="{top + plot_height - bar:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{bar:.1f}" fill="{COLORS[0]}"><title>{edges[index]:.4g} to '
            f"{edges[index + 1]:.4g}: {count:,} rows</title></rect>"
        )
    base = top + plot_height
    body += [
        f'<line x1="{left}" y1="{base}" x2="{left + plot_width}" y2="{base}" stroke="#444"/>',
        _text(left, base + 14, f"{edges[0]:.4g}"),
        _text(left + plot_width, base + 14, f"{edges[-1]:.4g}", anchor="end"),
        _text(left + plot_width / 2, base + 30, label, anchor="middle"),
        _text(left - 4, top + 10, f"{tallest:,}", anchor="end", size=10),
        _text(left - 4, base, "0", anchor="end", size=10),
    ]
    return _svg(WIDTH, height, title, body)
