"""Batching settings `sparkserve tune` chose for a model version on this machine, stored as
`SPARKSERVE_HOME/tuning/NAME/VERSION.json` (written whole or not at all), and read back by a
deployment that leaves `max_batch_rows` and `max_wait_ms` unset (`deployments.py`).

They hold for the machine they were measured on only: another machine (a shared home) or a
model changed since gets the endpoint's defaults, not another machine's figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import processes
from ..files import write_atomically

BATCHING_OPTIONS = ("max_batch_rows", "max_wait_ms")


@dataclass(frozen=True)
class TunedBatching:
    max_batch_rows: int
    max_wait_ms: float
    p99_target_ms: float
    clients: int
    machine: str
    date: str

    def options(self) -> dict[str, Any]:
        return {"max_batch_rows": self.max_batch_rows, "max_wait_ms": self.max_wait_ms}

    @property
    def note(self) -> str:
        """What a deployment using them says in its details."""
        return (
            f"batching tuned for p99 <= {self.p99_target_ms:g} ms at {self.clients} clients "
            f"(max_batch_rows {self.max_batch_rows}, max_wait_ms {self.max_wait_ms:g}; "
            f"{self.date[:10]})"
        )


def tuning_file(home: Path, name: str, version: int) -> Path:
    return Path(home) / "tuning" / name / f"{version}.json"


def save(home: Path, name: str, version: int, document: dict[str, Any]) -> Path:
    """Store a tuning's record (`tuning.TuneResult.to_dict()`); its path."""
    path = tuning_file(home, name, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(document, indent=2) + "\n")
    return path


def read(home: Path, name: str, version: int) -> TunedBatching | None:
    """The settings chosen for the version on this machine; None when it was never tuned
    here (or the record is unreadable: the endpoint's defaults are then the safe answer)."""
    try:
        document = json.loads(tuning_file(home, name, version).read_text())
        chosen = document["chosen"]
        tuned = TunedBatching(
            max_batch_rows=int(chosen["max_batch_rows"]),
            max_wait_ms=float(chosen["max_wait_ms"]),
            p99_target_ms=float(document["p99_target_ms"]),
            clients=int(document["clients"]),
            machine=str(document["machine"]),
            date=str(document["date"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return tuned if tuned.machine == processes.MACHINE else None


def fill(
    home: Path, name: str, version: int, options: dict[str, Any]
) -> tuple[dict[str, Any], TunedBatching | None]:
    """A target's parsed options with the tuned batching filled in when the target takes
    both batching options and the deployment set neither (settings given are the user's:
    half a tuned pair is not what was measured). The options, and the tuning used if any."""
    if any(option not in options or options[option] is not None for option in BATCHING_OPTIONS):
        return options, None
    tuned = read(home, name, version)
    if tuned is None:
        return options, None
    return {**options, **tuned.options()}, tuned
