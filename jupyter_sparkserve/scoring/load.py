"""A closed-loop HTTP load generator: N keep-alive connections, each sending its next request as
soon as the previous answer arrives (what `wrk` does), every request timed.

`drive` uses `wrk` when it is installed (C, a fraction of the CPU per request) and otherwise
its own client: asyncio (uvloop when there is one) with raw HTTP/1.1 on keep-alive
connections, answers parsed by httptools (the endpoint's own parser, so always installed).

Bias: the client runs on the machine it measures. On a small machine (2 cores) the Python
client needs roughly as much CPU per request as the endpoint, so near saturation the two
compete: throughput reads low and latency high (a request waits for the client's loop to
read its answer), the more so the faster the model. wrk costs far less but still takes a
share. Figures from one generator are comparable with each other (what a sweep needs); across
generators or machines, compare ratios measured in one run.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput

GENERATORS = ("auto", "wrk", "python")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class LoadResult:
    requests: int  # answered within the measured window
    errors: int  # answers other than 2xx, and connection errors
    seconds: float
    p50_ms: float
    p99_ms: float
    generator: str  # "wrk" or "python"

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        figures = {**asdict(self), "rps": round(self.rps, 1)}
        for name in ("p50_ms", "p99_ms"):  # NaN, no answer to time, is not JSON
            figures[name] = None if math.isnan(figures[name]) else round(figures[name], 3)
        return figures


def request_bytes(host: str, port: int, body: bytes, token: str | None = None) -> bytes:
    """One complete `POST /invocations` with a JSON body, keep-alive."""
    head = [
        "POST /invocations HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def choose_generator(generator: str) -> str:
    if generator not in GENERATORS:
        raise InvalidInput(f"The load generator is one of {', '.join(GENERATORS)}.")
    if generator == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if generator == "wrk" and shutil.which("wrk") is None:
        raise InvalidInput("wrk is not installed here (apt-get install wrk); use 'python'.")
    return generator


def drive(
    host: str,
    port: int,
    bodies: Sequence[bytes],
    *,
    clients: int,
    seconds: float,
    warmup: float = 0.5,
    generator: str = "auto",
    token: str | None = None,
) -> LoadResult:
    """Send `bodies` (in turn, each connection starting at its own offset) from `clients`
    connections for `warmup` seconds unmeasured, then `seconds` measured."""
    if clients < 1 or seconds <= 0 or not bodies:
        raise InvalidInput("The load needs at least one client, one body and a duration.")
    if choose_generator(generator) == "wrk":
        # wrk counts whole seconds only: its runs last at least one.
        if warmup > 0:
            _wrk(host, port, bodies, clients, max(1, round(warmup)), token)
        return _wrk(host, port, bodies, clients, max(1, round(seconds)), token)
    requests = [request_bytes(host, port, body, token) for body in bodies]
    return _in_own_loop(lambda: _python_load(host, port, requests, clients, seconds, warmup))


# ------------------------------------------------------------------------ the Python client


class _Run:
    """The shared clock and tallies of one run."""

    def __init__(self, warmup: float, seconds: float) -> None:
        now = time.perf_counter()
        self.measure_from = now + warmup
        self.measure_to = self.measure_from + seconds
        self.latencies: list[float] = []
        self.errors = 0
        self.done: asyncio.Future[None] | None = None
        self.open = 0

    def record(self, started: float, ended: float, ok: bool) -> None:
        # A request counts when it was sent and answered inside the window.
        if started >= self.measure_from and ended <= self.measure_to:
            if ok:
                self.latencies.append(ended - started)
            else:
                self.errors += 1

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run, requests: Sequence[bytes], offset: int) -> None:
        import httptools

        self.run = run
        self.requests = requests
        self.index = offset % len(requests)
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.started = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.started = time.perf_counter()
        self.transport.write(self.requests[self.index])
        self.index = (self.index + 1) % len(self.requests)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:  # a malformed answer: stop this connection (counted as lost)
            self._close()

    def on_message_complete(self) -> None:
        ended = time.perf_counter()
        self.run.record(self.started, ended, ok=200 <= self.parser.get_status_code() < 300)
        if ended < self.run.measure_to:
            self._send()
        else:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.transport = None
            if time.perf_counter() < self.run.measure_to:  # the server closed it mid-run
                self.run.errors += 1
            self.run.closed()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _python_load(
    host: str, port: int, requests: Sequence[bytes], clients: int, seconds: float, warmup: float
) -> LoadResult:
    loop = asyncio.get_running_loop()
    run = _Run(warmup, seconds)
    run.done = loop.create_future()
    connections = []
    for offset in range(clients):
        _, connection = await loop.create_connection(
            lambda offset=offset: _Connection(run, requests, offset), host, port
        )
        connections.append(connection)
        run.open += 1
    # Every connection closes once its answer after the window arrives (30 s: a stuck one).
    try:
        await asyncio.wait_for(asyncio.shield(run.done), warmup + seconds + 30)
    except asyncio.TimeoutError:
        for connection in connections:
            connection._close()
        run.errors += run.open
    latencies = sorted(run.latencies)
    return LoadResult(
        requests=len(latencies),
        errors=run.errors,
        seconds=seconds,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        generator="python",
    )


def _percentile(ordered: Sequence[float], share: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _in_own_loop(make: Callable[[], Coroutine[Any, Any, LoadResult]]) -> LoadResult:
    """Run the client on a thread with a loop of its own: the caller may be inside a running
    loop (a notebook's kernel), where asyncio.run refuses to start."""
    try:
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:  # Windows
        new_loop = asyncio.new_event_loop
    outcome: dict[str, Any] = {}

    def work() -> None:
        loop = new_loop()
        try:
            outcome["result"] = loop.run_until_complete(make())
        except BaseException as error:
            outcome["error"] = error
        finally:
            loop.close()

    thread = threading.Thread(target=work, name="sparkserve-load")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


# --------------------------------------------------------------------------------- wrk

# Each wrk thread runs this script in its own Lua state: the bodies are sent in turn.
_LUA = """local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def _lua_string(body: bytes) -> str:
    return '"' + "".join(f"\\{byte}" for byte in body) + '"'  # decimal escapes: any byte


def _wrk(
    host: str, port: int, bodies: Sequence[bytes], clients: int, seconds: int, token: str | None
) -> LoadResult:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    with tempfile.TemporaryDirectory(prefix="sparkserve-wrk-") as folder:
        script = Path(folder) / "post.lua"
        script.write_text(_LUA % (", ".join(_lua_string(body) for body in bodies), auth))
        threads = min(clients, 2)
        command = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s",
                   "--latency", "--timeout", "30s", "-s", str(script),
                   f"http://{host}:{port}/invocations"]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output, seconds)


def parse_wrk(output: str, seconds: float) -> LoadResult:
    latency = {
        found[0]: float(found[1]) * _UNITS[found[2]]
        for found in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", output, re.MULTILINE)
    if set(latency) != {"50", "99"} or total is None:
        raise RuntimeError(f"Could not read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", output)
    failed = int(non_2xx[1]) if non_2xx else 0
    errors = failed + (sum(int(n) for n in sockets.groups()) if sockets else 0)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    return LoadResult(
        requests=max(0, round(rate * seconds) - failed),  # wrk's rate counts every answer
        errors=errors,
        seconds=seconds,
        p50_ms=latency["50"],
        p99_ms=latency["99"],
        generator="wrk",
    )
