"""Read the Prometheus text format an endpoint's `/metrics` answers (scoring/metrics.py writes
it): samples by metric name and labels. Only what the format needs here: no escapes inside
label values beyond `\\"`, comments and blank lines skipped."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import InvalidInput

# name{labels} value [timestamp]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> list[Sample]:
    """Every sample in `text`, in order; a line that is not a sample says which."""
    samples = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if match is None:
            raise InvalidInput(f"Line {number} of the metrics is not a Prometheus sample: {line!r}")
        name, labels, value = match.groups()
        samples.append(Sample(name, dict(LABEL.findall(labels or "")), _number(value)))
    return samples


def _number(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    return float(text)


def bound(text: str) -> float:
    """A histogram bucket's `le` label as a number (`+Inf` included)."""
    return _number(text)
