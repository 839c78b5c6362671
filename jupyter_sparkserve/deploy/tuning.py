"""Batching tuned to a latency target: the micro-batcher's `max_batch_rows` and `max_wait_ms`
swept against a model version on this machine, under N concurrent clients sending the
version's input example rows; the setting with the highest throughput whose p99 meets the
target is kept for the version's deployments (`tuned.py`).

Each setting is served by a fresh endpoint process, the one a local deployment runs
(`local.start_endpoint`, forked from the warm scorer when one runs): what is measured is what
will be deployed, and no state (the batcher's load flag, caches, the heap) carries from one
setting into the next. The price is a start per setting: ~3 s spawned, a fraction of a second
forked, so tune starts a warm scorer first where the mode allows it (SPARKSERVE_WARM_SCORER
auto, the default).

The sweep is pruned: `max_batch_rows` grows (at the smallest wait) until throughput stops
rising (by 3%, `RISE`) or p99 leaves the target after meeting it; then, at the best batch
size found, the wait grows by the same rule. Batches larger than all the clients' rows
together cannot fill, so those sizes are not tried. The winner is measured once more; if
that run misses the target, the next best is tried (`CONFIRMATIONS` in all).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import processes
from ..errors import InvalidInput
from ..repository import ModelRepository
from ..scoring.endpoint_config import default
from ..scoring.load import LoadResult, choose_generator, drive
from . import local, tuned

BATCH_ROWS = (1, 4, 16, 64, 256, 1024)
WAITS_MS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
RISE = 1.03  # throughput within 3% of the last is noise on a shared machine: stop growing
CONFIRMATIONS = 3  # winners measured again before giving up on the target
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Setting:
    max_batch_rows: int
    max_wait_ms: float

    def label(self) -> str:
        return f"max_batch_rows {self.max_batch_rows}, max_wait_ms {self.max_wait_ms:g}"


DEFAULT_SETTING = Setting(default("max_batch_rows"), default("max_wait_ms"))


@dataclass(frozen=True)
class Measurement:
    setting: Setting
    load: LoadResult
    meets: bool  # p99 within the target and no errors
    phase: str  # "batch rows", "wait" or "confirm"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.setting), **self.load.to_dict(), "meets": self.meets,
                "phase": self.phase}  # fmt: skip


@dataclass
class TuneResult:
    ref: str
    p99_target_ms: float
    clients: int
    rows: int
    seconds: float
    generator: str
    machine: str
    date: str
    sweep: list[Measurement] = field(default_factory=list)
    chosen: Measurement | None = None  # its confirming run, when one met the target
    saved_to: Path | None = None

    @property
    def best_p99(self) -> Measurement | None:
        timed = [m for m in self.sweep if not math.isnan(m.load.p99_ms)]  # NaN: none answered
        return min(timed, key=lambda m: m.load.p99_ms, default=None)

    @property
    def message(self) -> str:
        if self.chosen is not None:
            load = self.chosen.load
            return (f"{self.chosen.setting.label()}: {load.rps:,.0f} req/s, p99 "
                    f"{load.p99_ms:.2f} ms (target {self.p99_target_ms:g} ms, "
                    f"{self.clients} clients)")  # fmt: skip
        best = self.best_p99
        seen = "" if best is None else (
            f"; the best p99 seen was {best.load.p99_ms:.2f} ms ({best.setting.label()}, "
            f"{best.load.rps:,.0f} req/s)"
        )  # fmt: skip
        clients = f"{self.clients} client{'' if self.clients == 1 else 's'}"
        if any(m.meets for m in self.sweep):  # met once, missed when measured again
            return (
                f"No setting met p99 <= {self.p99_target_ms:g} ms at {clients} both in the "
                f"sweep and when measured again{seen}: this machine's load varies; try a "
                "quieter moment, fewer clients or a looser target. Nothing was saved."
            )
        return (f"No setting meets p99 <= {self.p99_target_ms:g} ms at {clients} on this "
                f"machine{seen}. Nothing was saved.")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        name, _, version = self.ref.rpartition(":")
        chosen = None if self.chosen is None else self.chosen.to_dict()
        return {
            "ref": self.ref,
            "name": name,
            "version": int(version),
            "p99_target_ms": self.p99_target_ms,
            "clients": self.clients,
            "rows_per_request": self.rows,
            "seconds": self.seconds,
            "generator": self.generator,
            "machine": self.machine,
            "date": self.date,
            "chosen": chosen,
            "defaults": asdict(DEFAULT_SETTING),
            "sweep": [measurement.to_dict() for measurement in self.sweep],
            "message": self.message,
            "saved_to": None if self.saved_to is None else str(self.saved_to),
        }


def parse_p99(value: str | float) -> float:
    """A latency target in milliseconds, from `20ms`, `0.02s` or `20` (milliseconds)."""
    found = _DURATION.match(str(value))
    if found is None or float(found[1]) <= 0:
        raise InvalidInput(
            f"The p99 target {str(value)!r} is not a positive duration: write it as 20ms, "
            "0.02s or 20 (milliseconds).",
            field="p99",
        )
    return float(found[1]) * (1000.0 if (found[2] or "ms").lower() == "s" else 1.0)


def tune(
    repository: ModelRepository,
    ref: str,
    p99_ms: float,
    *,
    clients: int = 16,
    seconds: float = 3.0,
    rows: int = 1,
    batch_rows: Sequence[int] = BATCH_ROWS,
    waits_ms: Sequence[float] = WAITS_MS,
    generator: str = "auto",
    progress: Callable[[Measurement], None] = lambda _measurement: None,
    save: bool = True,
) -> TuneResult:
    """Sweep the batching settings of version `ref` under `clients` concurrent clients, each
    request `rows` input example rows, `seconds` measured per setting; keep (when `save`)
    the fastest setting whose p99 meets `p99_ms`. `progress` hears every measurement."""
    if p99_ms <= 0 or clients < 1 or rows < 1 or not 0 < seconds <= 600:
        raise InvalidInput(
            "tune needs a positive p99 target, at least 1 client and 1 row per request, "
            "and 0-600 seconds per setting."
        )
    if not batch_rows or min(batch_rows) < 1 or not waits_ms or min(waits_ms) < 0:
        raise InvalidInput("The batch sizes to try are 1 or more, the waits 0 ms or more.")
    version = repository.resolve(ref)
    bodies = request_bodies(version.local_path(), rows, version.ref)
    result = TuneResult(
        ref=version.ref,
        p99_target_ms=p99_ms,
        clients=clients,
        rows=rows,
        seconds=seconds,
        generator=choose_generator(generator),
        machine=processes.MACHINE,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    sizes = _useful_sizes(batch_rows, clients * rows)
    waits = sorted(wait for wait in waits_ms if 0 <= wait < p99_ms) or [min(waits_ms)]
    _start_warm_scorer()
    with tempfile.TemporaryDirectory(prefix="sparkserve-tune-") as folder:

        def measure(setting: Setting, phase: str) -> Measurement:
            load = measure_setting(
                version.local_path(), setting, bodies, clients=clients, seconds=seconds,
                generator=result.generator, log_file=Path(folder) / "endpoint.log",
            )  # fmt: skip
            meets = load.errors == 0 and load.p99_ms <= p99_ms
            measured = Measurement(setting, load, meets, phase)
            result.sweep.append(measured)
            progress(measured)
            return measured

        size, at_size = _grow(sizes, lambda size: measure(Setting(size, waits[0]), "batch rows"))
        if len(waits) > 1:
            _grow(waits[1:], lambda wait: measure(Setting(size, wait), "wait"), at_size)
        result.chosen = _confirmed(result, measure)
    if result.chosen is not None and save:
        result.saved_to = tuned.save(
            repository.settings.home, version.name, version.version, result.to_dict()
        )
    return result


def measure_setting(
    model_path: Path,
    setting: Setting,
    bodies: Sequence[bytes],
    *,
    clients: int,
    seconds: float,
    generator: str = "auto",
    log_file: Path,
) -> LoadResult:
    """Serve the model with `setting` in a fresh local endpoint and load it; it is stopped
    after, whatever happens."""
    endpoint = local.start_endpoint(model_path, log_file=log_file, settings=asdict(setting))
    try:
        # Warm-up first: the first calls pay for lazy imports and the batcher's first batches.
        return drive(endpoint.host, endpoint.port, bodies, clients=clients, seconds=seconds,
                     warmup=min(1.0, seconds / 2), generator=generator)  # fmt: skip
    finally:
        local.stop_endpoint(endpoint)


def _start_warm_scorer() -> None:
    """Have a warm scorer running to fork the endpoints from, if the mode allows starting
    one; without it (mode off or use, or it failed to start) they are spawned."""
    from ..warm import client, protocol

    if protocol.mode() != "auto" or protocol.in_forked_run:
        return
    try:
        client.start(idle_timeout=protocol.DEFAULT_IDLE_SECONDS)
    except Exception:  # slower without it, not wrong
        return


def _useful_sizes(sizes: Sequence[int], most_rows: int) -> list[int]:
    """The batch sizes worth trying: up to the first one that holds every client's rows."""
    useful: list[int] = []
    for size in sorted(set(sizes)):
        useful.append(size)
        if size >= most_rows:
            break
    return useful


def _grow(
    values: Sequence[Any],
    measure: Callable[[Any], Measurement],
    previous: Measurement | None = None,
) -> tuple[Any, Measurement]:
    """Measure `values` in order (after `previous`, the one before the first) until
    throughput stops rising or the target, once met, is missed; the value that did best (the
    fastest meeting the target, else the lowest p99) and its measurement."""
    best: tuple[Any, Measurement] | None = None
    for value in values:
        current = measure(value)
        if best is None or _better(current, best[1]):
            best = (value, current)
        if previous is not None and (
            current.load.rps < previous.load.rps * RISE or (previous.meets and not current.meets)
        ):
            break
        previous = current
    assert best is not None, "no values to measure"
    return best


def _better(one: Measurement, other: Measurement) -> bool:
    if one.meets != other.meets:
        return one.meets
    if one.meets:
        return one.load.rps > other.load.rps
    return one.load.p99_ms < other.load.p99_ms


def _confirmed(
    result: TuneResult, measure: Callable[[Setting, str], Measurement]
) -> Measurement | None:
    """The fastest setting that met the target, measured once more: a lucky run on a busy
    machine is not a setting to deploy. When the second run misses, the next best is tried."""
    candidates: dict[Setting, Measurement] = {}
    for measured in result.sweep:
        if measured.meets:
            kept = candidates.get(measured.setting)
            if kept is None or measured.load.rps > kept.load.rps:
                candidates[measured.setting] = measured
    ranked = sorted(candidates.values(), key=lambda m: m.load.rps, reverse=True)
    for candidate in ranked[:CONFIRMATIONS]:
        again = measure(candidate.setting, "confirm")
        if again.meets:
            return again
    return None


def request_bodies(model_path: Path, rows: int, ref: str) -> list[bytes]:
    """`dataframe_split` bodies of `rows` rows each, taken in turn from the version's input
    example (one body per starting row), as MLflow's scoring protocol wants them."""
    for name in ("serving_input_example.json", "input_example.json"):
        try:
            example = json.loads((model_path / name).read_text())
        except (OSError, ValueError):
            continue
        split = example.get("dataframe_split", example) if isinstance(example, dict) else None
        if isinstance(split, dict) and isinstance(split.get("data"), list) and split["data"]:
            data, columns = split["data"], split.get("columns")
            bodies = []
            for start in range(len(data)):
                chunk = [data[(start + i) % len(data)] for i in range(rows)]
                frame = {"data": chunk, **({"columns": columns} if columns else {})}
                bodies.append(json.dumps({"dataframe_split": frame}).encode())
            return bodies
    raise InvalidInput(
        f"{ref} has no tabular input example to send: tune loads the endpoint with the "
        "version's input example rows. Save the model with input_example= (a DataFrame)."
    )
