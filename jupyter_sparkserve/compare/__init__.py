"""Replay and compare: the same rows answered by two model versions (scored now, in process
or through their endpoints, or recorded by a deployment's shadow), as one report of changed
labels or numeric differences, latency, and input drift against each version's input example,
shown in a notebook or written as a self-contained HTML file.

- `rows`: the rows to compare on (a file, or a deployment's captured requests);
- `predict`: one version's answers for them, timed per batch or request;
- `differences`, `drift`: what changed, and how far the rows are from the input example;
- `report`: the report object, built from two prediction sets whatever produced them;
- `run`: `compare_versions` and `compare_shadow`, the calls every face makes;
- `svg`, `page`: the plots and the HTML.
"""

from .page import body, default_html_path, document, write_html
from .predict import BATCH_ROWS, VIA, Predictions
from .report import CompareReport, Latency, build_report
from .rows import Rows
from .run import compare_shadow, compare_versions

__all__ = [
    "BATCH_ROWS",
    "VIA",
    "CompareReport",
    "Latency",
    "Predictions",
    "Rows",
    "body",
    "build_report",
    "compare_shadow",
    "compare_versions",
    "default_html_path",
    "document",
    "write_html",
]
