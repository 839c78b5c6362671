"""Payload capture: a share of an endpoint's requests and answers kept as Parquet files.

The request path does almost nothing: `Recorder.record` appends the request's body and its
answer, as the bytes they are, with the status, arrival time and latency, to an in-memory
queue. A background thread turns what has queued into one Parquet file every few seconds
(one row per request: the body and the answer as sent, compressed; a temporary name, then
renamed: a reader never sees half a file) and removes the oldest files beyond the size cap.
Nothing is decoded while a client waits, nor by the endpoint at all: the work per request
that holds the GIL stays a few list items (BENCHMARKS.md, "Payload capture"). A failing
write is logged, never answered.

When the writer falls behind (more than `QUEUE_LIMIT_BYTES` of bodies waiting), further
requests are still answered but not captured, and the log says how many were left out:
memory stays bounded and no client is slowed. Shutdown (SIGTERM: Undeploy) writes what
has queued before the process exits.

`read_captured(folder)` reads the bodies into a table (`capture_table.py`): one row per
input row, the input columns as sent, then `__request_id`, `__time` (UTC), `__latency_ms`,
`__status` and the predictions as answered (`__prediction`, or `__prediction.KEY` per
output of a model answering records).
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

FLUSH_REQUESTS = 20_000  # a file sooner than every `flush_seconds` when this many wait,
FLUSH_BYTES = 32 * 1024 * 1024  # or this much
CONVERT_SLICE = 1024  # requests turned into Arrow at a time (the GIL yielded between)
QUEUE_LIMIT_BYTES = 256 * 1024 * 1024  # request and answer bodies waiting to be written
PREFIX, SUFFIX = "capture-", ".parquet"
# A file's columns: one row per request.
FILE_COLUMNS = (
    "__run", "__sequence", "__time", "__latency_ms", "__status", "__content_type", "__body",
    "__answer",
)  # fmt: skip


class Captured(NamedTuple):
    """One request as queued: bytes and numbers only, nothing decoded (and nothing for the
    garbage collector to walk while thousands wait)."""

    sequence: int
    arrived: int  # time.time_ns()
    latency: float  # seconds
    status: int
    content_type: str | None
    body: bytes
    answer: bytes


class Recorder:
    """Captures a `sample` share of requests into `folder`, keeping `max_bytes` of files."""

    def __init__(
        self, folder: Path, *, sample: float, max_bytes: int, flush_seconds: float = 2.0
    ) -> None:
        self.folder = Path(folder)
        self.sample = sample
        self.max_bytes = max_bytes
        self.flush_seconds = flush_seconds
        self.written = 0  # requests written to files
        self._run = secrets.token_hex(4)  # request ids are unique across processes and runs
        self._sequence = itertools.count()
        self._queue: deque[Captured] = deque()
        # Bytes queued = added - taken; each counter has one writer (the event loop's thread,
        # the writer's thread), so the request path takes no lock.
        self._added = 0
        self._taken = 0
        self._overflowed = 0  # requests left out for a full queue (the event loop's count)
        self._reported = 0  # of those, the ones the log has told
        self._failed = 0  # requests whose write failed (the writer's count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sparkserve-capture", daemon=True)
        self._files = itertools.count()

    @property
    def dropped(self) -> int:
        """Requests left out: the queue was full, or their write failed."""
        return self._overflowed + self._failed

    # ------------------------------------------------------------------ the request path

    def sampled(self) -> bool:
        return self.sample >= 1.0 or random.random() < self.sample

    def record(
        self,
        body: bytes,
        content_type: str | None,
        arrived: int,
        latency: float,
        status: int,
        answer: bytes,
    ) -> None:
        """Queue a request the endpoint could read (and answered with `status`)."""
        size = len(body) + len(answer)
        if self._added - self._taken + size > QUEUE_LIMIT_BYTES:
            self._overflowed += 1
            return
        self._added += size
        sequence = next(self._sequence)
        self._queue.append(Captured(sequence, arrived, latency, status, content_type, body, answer))

    # -------------------------------------------------------------------------- the writer

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write what has queued, then stop the writer."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            deadline = time.monotonic() + self.flush_seconds
            while time.monotonic() < deadline and not self._full():
                if self._stop.wait(min(0.1, self.flush_seconds)):
                    break
            self._flush()
        self._flush()
        spent = time.thread_time()  # this thread's own CPU time: what capture cost, off-path
        per_request = f", {spent / self.written * 1e6:.1f} us each" if self.written else ""
        _log(
            f"wrote {self.written} request(s) to {self.folder}, left out {self.dropped}; "
            f"the writer used {spent:.2f} s of CPU{per_request}"
        )

    def _full(self) -> bool:
        queued = self._added - self._taken
        return len(self._queue) >= FLUSH_REQUESTS or queued >= FLUSH_BYTES

    def _flush(self) -> None:
        overflowed = self._overflowed
        if overflowed > self._reported:
            left_out = overflowed - self._reported
            _log(f"left out {left_out} request(s): the writer fell behind (answered anyway)")
            self._reported = overflowed
        batch = [self._queue.popleft() for _ in range(len(self._queue))]
        if not batch:
            return
        self._taken += sum(len(c.body) + len(c.answer) for c in batch)
        try:
            self._write(batch)
            self.written += len(batch)
        except Exception as error:  # a full disk, a read-only folder: never the client's
            self._failed += len(batch)
            _log(f"could not write {len(batch)} captured request(s) to {self.folder}: {error}")

    def _write(self, batch: list[Captured]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Converting Python objects to Arrow holds the GIL throughout: in slices, each a
        # fraction of a millisecond with a yield after it, the event loop is never kept
        # waiting for a whole file's worth (that showed as a doubled p99 under load).
        slices = []
        for start in range(0, len(batch), CONVERT_SLICE):
            slices.append(self._record_batch(batch[start : start + CONVERT_SLICE]))
            time.sleep(0)
        table = pa.Table.from_batches(slices)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{PREFIX}{time.time_ns():020d}-{os.getpid()}-{next(self._files)}{SUFFIX}"
        temp = self.folder / f".{name}.tmp"
        try:
            pq.write_table(table, temp, compression="zstd")
            os.replace(temp, self.folder / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        rotate(self.folder, self.max_bytes)

    def _record_batch(self, batch: list[Captured]) -> Any:
        import numpy as np
        import pyarrow as pa

        sequences, arrivals, latencies, statuses, kinds, bodies, answers = zip(*batch, strict=True)
        return pa.record_batch(
            {
                "__run": pa.array([self._run] * len(batch), pa.string()),
                "__sequence": pa.array(sequences, pa.int64()),
                "__time": pa.array(arrivals, pa.timestamp("ns", tz="UTC")),
                "__latency_ms": pa.array(np.array(latencies) * 1000.0),
                "__status": pa.array(statuses, pa.int32()),
                "__content_type": pa.array(kinds, pa.string()),
                "__body": pa.array(bodies, pa.binary()),
                "__answer": pa.array(answers, pa.binary()),
            }
        )


def rotate(folder: Path, max_bytes: int) -> None:
    """Remove the oldest capture files until the folder holds at most `max_bytes` (the
    newest file always stays)."""
    files = captured_files(folder)
    sizes = {path: path.stat().st_size for path in files}
    total = sum(sizes.values())
    for path in files[:-1]:
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= sizes[path]


def _log(message: str) -> None:
    print(f"sparkserve capture: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the reader


def captured_files(folder: Path) -> list[Path]:
    """The folder's complete capture files, oldest first."""
    return sorted(Path(folder).glob(f"{PREFIX}*{SUFFIX}"))


def read_captured(folder: Path) -> Any:
    """Every captured input row in `folder` (see the module's docstring), oldest first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .capture_table import rows_of

    files = captured_files(folder)
    tables = [pq.read_table(path, columns=list(FILE_COLUMNS)) for path in files]
    requests = pa.concat_tables(tables) if tables else None
    return rows_of(requests)
