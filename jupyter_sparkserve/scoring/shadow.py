"""Shadow traffic: an endpoint mirrors a sample of its answered requests to a second endpoint.

The event loop's only part is `ShadowMirror.offer`, after the primary's answer is sent: a coin
toss for the sample, then an append to a bounded queue (a full queue drops the request and
counts it; nothing ever waits). Sender threads post the raw body to the shadow's
`/invocations` with a short timeout, over one kept-alive connection each, and hand each pair
to the recorder; a shadow that refuses connections is left alone for a moment rather than
asked for every request. The recorder thread writes the pairs as they came (raw bodies,
latencies, the shadow's status), a Parquet file every `flush_seconds` (5 s), atomically,
and removes the oldest files beyond the size cap (pairs a failed write held are lost, the
error logged). Nothing is decoded in the endpoint process: `read_pairs`
turns the files into rows and predictions wherever the pairs are read.

Clients get only the primary's answers: a slow, failing or dead shadow costs the primary a
queue append per request. A request that an endpoint received as a mirror (the
`x-sparkserve-shadow` header) is never mirrored again, so two endpoints shadowing each other
do not loop. The shadow's bearer token comes from `SHADOW_TOKEN_ENV`, never recorded.
"""

from __future__ import annotations

import http.client
import os
import random
import sys
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..config import SHADOW_TOKEN_ENV

MIRROR_HEADER = b"x-sparkserve-shadow"  # on requests an endpoint sends to its shadow
TIMEOUT_SECONDS = 5.0  # a shadow slower than this counts as failed
SENDERS = 4  # requests in flight to the shadow at most
QUEUE_REQUESTS = 1000  # waiting to be sent at most, and at most QUEUE_BYTES of bodies
QUEUE_BYTES = 64 * 1024 * 1024
DOWN_SECONDS = 1.0  # after a refused connection, requests are not sent for this long
FLUSH_SECONDS = 5.0  # a file at most this often: a trickle of pairs makes few files
FILE_REQUESTS = 5000  # pairs per file at most
# What a kept-alive connection the shadow closed while idle fails with when used again.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)

# Parquet file metadata: requests not mirrored since the previous file.
DROPPED_KEY = b"sparkserve.shadow.dropped"  # the queue was full
UNSENT_KEY = b"sparkserve.shadow.unsent"  # the shadow was down: counted as its failures


class _Request(NamedTuple):  # (a tuple: made on the event loop, the cheapest record)
    time: float
    content_type: str
    body: bytes
    answer: bytes
    latency_ms: float


@dataclass(frozen=True)
class _Pair:
    request: _Request
    status: int  # 0: no HTTP answer
    answer: bytes | None
    latency_ms: float
    error: str | None


class ShadowMirror:
    """Mirrors requests to `url` (an endpoint's base URL), records the pairs in `folder`."""

    def __init__(
        self,
        url: str,
        folder: Path,
        *,
        sample: float = 1.0,
        max_bytes: int = 100 * 1024 * 1024,
        token: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
        senders: int = SENDERS,
        queue_requests: int = QUEUE_REQUESTS,
        queue_bytes: int = QUEUE_BYTES,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        import pyarrow.parquet  # noqa: F401  (here, not on the recorder's first flush)

        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"The shadow {url!r} is not an http(s) URL.")
        self.url = url
        self.folder = Path(folder)
        self.sample = sample
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.senders = senders
        self.queue_requests = queue_requests
        self.queue_bytes = queue_bytes
        self.flush_seconds = flush_seconds
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = f"{parts.path.removesuffix('/invocations')}/invocations"
        self._token = token if token is not None else os.environ.get(SHADOW_TOKEN_ENV)
        self._pending: deque[_Request] = deque()
        self._pending_bytes = 0
        self._in_flight = 0
        self._ready = threading.Condition(threading.Lock())
        self._pairs: list[_Pair] = []
        self._pairs_lock = threading.Lock()
        self._down_until = 0.0
        self._stopping = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sequence = 0
        # Counters, for the recorder (since its last file) and for anyone curious (totals).
        self.dropped = self.unsent = 0
        self._dropped_written = self._unsent_written = 0

    # ----------------------------------------------------------------- the event loop's side

    def offer(
        self, body: bytes, content_type: str | None, answer: bytes, latency_ms: float
    ) -> None:
        """Queue one answered request for the shadow (or not: the sample, a full queue).
        Never blocks beyond a lock the other threads hold only to pop or count."""
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        # A slow shadow keeps the queue full: that case is told without the lock (a length
        # read a moment stale only drops or queues one request more). `dropped` is written
        # by the offering thread only, until `stop`.
        if len(self._pending) >= self.queue_requests:
            self.dropped += 1
            return
        size = len(body) + len(answer)
        with self._ready:
            if (
                self._stopping
                or len(self._pending) >= self.queue_requests
                or self._pending_bytes + size > self.queue_bytes
            ):
                self.dropped += 1
                return
            self._pending.append(
                _Request(time.time(), content_type or "", body, answer, latency_ms)
            )
            self._pending_bytes += size
            self._ready.notify()

    # ------------------------------------------------------------------------ the threads

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._threads = [
            threading.Thread(target=self._send_loop, name=f"sparkserve-shadow-{i}", daemon=True)
            for i in range(self.senders)
        ]
        self._threads.append(
            threading.Thread(target=self._record_loop, name="sparkserve-shadow-rec", daemon=True)
        )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = TIMEOUT_SECONDS + 1) -> None:
        """Stop sending (what still waits counts as dropped), let the requests in flight end,
        and write what was recorded."""
        with self._ready:
            self._stopping = True
            self.dropped += len(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._ready.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads[:-1]:
            thread.join(max(deadline - time.monotonic(), 0))
        self._stopped.set()
        if self._threads:
            self._threads[-1].join(max(deadline - time.monotonic(), 1))

    def busy(self) -> int:
        """Requests waiting or in flight."""
        with self._ready:
            return len(self._pending) + self._in_flight

    def _next(self, done: bool) -> _Request | None:
        with self._ready:
            self._in_flight -= done
            while not self._pending and not self._stopping:
                self._ready.wait()
            if not self._pending:
                return None
            request = self._pending.popleft()
            self._pending_bytes -= len(request.body) + len(request.answer)
            self._in_flight += 1
            return request

    def _send_loop(self) -> None:
        connection = None
        done = False
        while (request := self._next(done)) is not None:
            done = True
            if time.monotonic() < self._down_until:
                with self._ready:
                    self.unsent += 1
                continue
            if connection is None:
                connection = self._connection()
            pair = self._send(connection, request)  # (closed on failure: opened again next)
            with self._pairs_lock:
                self._pairs.append(pair)

    def _connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.timeout)

    def _send(self, connection: http.client.HTTPConnection, request: _Request) -> _Pair:
        headers = {"Content-Type": request.content_type, MIRROR_HEADER.decode(): "1"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for attempt in (1, 2):
            reused = connection.sock is not None
            started = time.perf_counter()
            try:
                connection.request("POST", self._path, request.body, headers)
                response = connection.getresponse()
                answer = response.read()
                status = response.status
                error = None if status == 200 else f"answered {status}"
            except (OSError, http.client.HTTPException) as failure:
                connection.close()
                if reused and attempt == 1 and isinstance(failure, _STALE):
                    continue  # the shadow closed the idle kept-alive connection: a new one
                if isinstance(failure, ConnectionRefusedError):
                    self._down_until = time.monotonic() + DOWN_SECONDS
                answer, status, error = None, 0, f"{type(failure).__name__}: {failure}"
            break
        latency_ms = (time.perf_counter() - started) * 1000
        return _Pair(request, status, answer, latency_ms, error)

    def _record_loop(self) -> None:
        while not self._stopped.wait(self.flush_seconds):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        while True:
            with self._pairs_lock:
                pairs, self._pairs = self._pairs[:FILE_REQUESTS], self._pairs[FILE_REQUESTS:]
            dropped, unsent = self.dropped, self.unsent
            new_dropped, new_unsent = dropped - self._dropped_written, unsent - self._unsent_written
            if not pairs and not new_dropped and not new_unsent:
                return
            try:
                self._write(pairs, new_dropped, new_unsent)
                self._dropped_written, self._unsent_written = dropped, unsent
                self._remove_oldest()
            except OSError as error:  # a full disk must not end the recorder
                print(f"sparkserve: shadow pairs not written: {error}", flush=True)
                return

    def _write(self, pairs: list[_Pair], dropped: int, unsent: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "time": pa.array(
                    [int(p.request.time * 1e6) for p in pairs], pa.timestamp("us", tz="UTC")
                ),
                "content_type": pa.array([p.request.content_type for p in pairs], pa.string()),
                "request": pa.array([p.request.body for p in pairs], pa.binary()),
                "primary": pa.array([p.request.answer for p in pairs], pa.binary()),
                "primary_latency_ms": pa.array([p.request.latency_ms for p in pairs], pa.float64()),
                "shadow_status": pa.array([p.status for p in pairs], pa.int32()),
                "shadow": pa.array([p.answer for p in pairs], pa.binary()),
                "shadow_latency_ms": pa.array([p.latency_ms for p in pairs], pa.float64()),
                "shadow_error": pa.array([p.error for p in pairs], pa.string()),
            }
        ).replace_schema_metadata({DROPPED_KEY: str(dropped), UNSENT_KEY: str(unsent)})
        self._sequence += 1
        # Named by time first: sorted names are the order written, whichever worker wrote.
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._sequence:06d}.parquet"
        temp = self.folder / f".{name}.tmp"
        try:
            pq.write_table(table, temp)
            os.replace(temp, self.folder / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _remove_oldest(self) -> None:
        files = []
        for path in self.folder.glob("*.parquet"):
            try:
                files.append((path.name, path, path.stat().st_size))
            except FileNotFoundError:  # another worker removed it meanwhile
                continue
        total = sum(size for _, _, size in files)
        for _, path, size in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


def mirror_from_config(config: Any) -> ShadowMirror | None:
    """The endpoint's mirror when its `EndpointConfig` names a shadow, else None."""
    if not config.shadow:
        return None
    if not config.shadow_folder:
        raise ValueError("An endpoint with a shadow needs a shadow_folder for the pairs.")
    print(
        f"sparkserve: mirroring {config.shadow_sample:.0%} of answered requests to "
        f"{config.shadow}, the pairs in {config.shadow_folder}",
        file=sys.stderr,
        flush=True,
    )
    return ShadowMirror(
        config.shadow,
        Path(config.shadow_folder),
        sample=config.shadow_sample,
        max_bytes=int(config.shadow_max_mb * 1024 * 1024),
        flush_seconds=config.shadow_flush_seconds,
    )


# ------------------------------------------------------------------------ reading the pairs


@dataclass
class ShadowPairs:
    """What a shadow recorded: the rows both endpoints answered, their predictions (same
    index), the latency of each paired request, and the requests that got no pair."""

    inputs: Any  # pd.DataFrame, one row per mirrored input row
    primary: Any  # pd.DataFrame of predictions: `prediction`, or one column per output
    shadow: Any  # pd.DataFrame, the same
    primary_latency_ms: Any  # pd.Series, one value per paired request
    shadow_latency_ms: Any  # pd.Series
    shadow_failures: int  # requests the shadow failed, timed out on, or was down for
    dropped: int  # requests not mirrored: the queue was full


def read_pairs(folder: Path) -> ShadowPairs:
    """The pairs recorded in `folder` (a deployment's `shadow` folder), oldest first. A
    request whose answers do not give one prediction per input row on both sides is left
    out (counted as the shadow's failure when the shadow's answer is at fault)."""
    import pandas as pd
    import pyarrow.parquet as pq

    inputs, primary, shadow, primary_ms, shadow_ms = [], [], [], [], []
    failures = dropped = 0
    recorded: list[dict[str, Any]] = []
    for path in sorted(Path(folder).glob("*.parquet")):
        try:
            table = pq.read_table(path)
        except FileNotFoundError:  # rotated out meanwhile
            continue
        metadata = table.schema.metadata or {}
        dropped += int(metadata.get(DROPPED_KEY, 0))
        failures += int(metadata.get(UNSENT_KEY, 0))
        recorded += table.to_pylist()
    # The senders finish out of order: the primary's arrival time is the order it was sent.
    recorded.sort(key=lambda row: row["time"])
    for row in recorded:
        if row["shadow_status"] != 200:
            failures += 1
            continue
        rows = input_rows(row["request"], row["content_type"])
        ours = _predictions(row["primary"], len(rows))
        theirs = _predictions(row["shadow"], len(rows))
        if ours is None:
            continue
        if theirs is None:
            failures += 1
            continue
        inputs.append(rows)
        primary.append(ours)
        shadow.append(theirs)
        primary_ms.append(row["primary_latency_ms"])
        shadow_ms.append(row["shadow_latency_ms"])

    def joined(frames: list[Any]) -> Any:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    return ShadowPairs(
        inputs=joined(inputs),
        primary=joined(primary),
        shadow=joined(shadow),
        primary_latency_ms=pd.Series(primary_ms, dtype="float64", name="primary_latency_ms"),
        shadow_latency_ms=pd.Series(shadow_ms, dtype="float64", name="shadow_latency_ms"),
        shadow_failures=failures,
        dropped=dropped,
    )


def input_rows(body: bytes, content_type: str) -> Any:
    """A request body's input rows as a DataFrame, the columns as sent."""
    import io

    import pandas as pd

    from .protocol import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET, DF_RECORDS, DF_SPLIT

    media = content_type.split(";")[0].strip().lower()
    if media == CONTENT_TYPE_CSV:
        return pd.read_csv(io.BytesIO(body))
    if media == CONTENT_TYPE_PARQUET:
        return pd.read_parquet(io.BytesIO(body))
    document = _json(body)
    payload = document
    if isinstance(document, dict):
        if isinstance(document.get(DF_SPLIT), dict):
            split = document[DF_SPLIT]
            return pd.DataFrame(split.get("data", []), columns=split.get("columns"))
        found = [key for key in (DF_RECORDS, "instances", "inputs") if key in document]
        payload = document[found[0]] if found else document
    if isinstance(payload, dict):
        return pd.DataFrame(payload if _columnar(payload) else [payload])
    if isinstance(payload, list) and all(isinstance(item, dict) for item in payload):
        return pd.DataFrame.from_records(payload)
    if isinstance(payload, list) and all(isinstance(item, list) for item in payload):
        return pd.DataFrame(payload)
    return pd.DataFrame({"input": payload if isinstance(payload, list) else [payload]})


def _columnar(payload: dict[str, Any]) -> bool:
    lengths = {len(v) if isinstance(v, list) else -1 for v in payload.values()}
    return len(lengths) == 1 and -1 not in lengths


def _predictions(answer: bytes | None, n_rows: int) -> Any | None:
    """The answer's predictions as columns, None when they are not one per input row."""
    from ..errors import InvalidInput
    from .batch.model import prediction_frame

    if answer is None:
        return None
    try:
        document = _json(answer)
    except ValueError:
        return None
    predictions = document.get("predictions") if isinstance(document, dict) else document
    try:
        return prediction_frame(predictions, n_rows, "prediction")
    except (InvalidInput, ValueError, TypeError):
        return None


def _json(body: bytes) -> Any:
    import json

    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)  # NaN and Infinity, as MLflow writes them
