"""A model served as a local REST endpoint: a detached `sparkserve serve` process.

This module is only the process side: start one, tell whether it still serves, stop it. It
keeps no records; what `start_endpoint` returns (`LocalEndpoint.to_details()`) is what a caller
stores to find the process again, possibly from another process or after a restart.

When a warm scorer runs, the endpoint is forked from it (MLflow, pandas, the flavors and
uvicorn already imported: it answers in a fraction of a second rather than after seconds of
imports), in a session of its own like a spawned one; else `python -m jupyter_sparkserve
serve` is spawned. A process is recognised by its start time, and a spawned one also by its
command line (`processes`), so that a pid recycled by the system is never mistaken for (or
killed as) an endpoint. How a forked one ended is the line the warm scorer notes in its log.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import processes
from ..config import ENDPOINT_CONFIG_ENV, ENDPOINT_TOKEN_ENV, SHADOW_TOKEN_ENV, without_secrets
from ..errors import Conflict, InvalidInput, NotFound, SparkserveError
from ..processes import with_log_tail
from ..warm import client as warm_client

PING_TIMEOUT = 2.0
POLL_INTERVAL = 0.1


class EndpointFailed(SparkserveError):
    """The endpoint process did not start, or could not be stopped."""

    code = "ENDPOINT_FAILED"
    http_status = 500


@dataclass(frozen=True)
class LocalEndpoint:
    pid: int  # also the process group id: the endpoint leads its own session
    host: str
    port: int
    url: str
    log_file: Path
    started_at: float  # time.time() when started
    command: list[str] = field(hash=False)  # never holds the token
    start_stamp: int | None = None  # the process's start (`processes.start_stamp`)
    forked: bool = False  # by the warm scorer: its command line is the scorer's

    def to_details(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "port": self.port,
            "url": self.url,
            "log_file": str(self.log_file),
            "started_at": self.started_at,
            "command": list(self.command),
            "start_stamp": self.start_stamp,
            "forked": self.forked,
        }

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> LocalEndpoint:
        return cls(
            pid=int(details["pid"]),
            host=str(details["host"]),
            port=int(details["port"]),
            url=str(details["url"]),
            log_file=Path(details["log_file"]),
            started_at=float(details["started_at"]),
            command=[str(part) for part in details["command"]],
            # (Details stored before these were recorded have neither.)
            start_stamp=details.get("start_stamp"),
            forked=bool(details.get("forked", False)),
        )


@dataclass(frozen=True)
class EndpointState:
    status: Literal["running", "failed"]
    message: str


def start_endpoint(
    model_path: Path,
    *,
    log_file: Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    token: str | None = None,
    settings: Mapping[str, Any] | None = None,
    workers: int = 1,
    ready_timeout: float = 120.0,
    python: str = sys.executable,
) -> LocalEndpoint:
    """Serve the MLflow model folder `model_path` in a detached process; return once it
    answers GET /ping. On failure nothing is left running and EndpointFailed carries the log.
    `settings`: `EndpointConfig` fields to set (`local_target.endpoint_settings`)."""
    model_path = Path(model_path).expanduser().resolve()
    if not model_path.exists():
        raise NotFound(f"No such file or folder: {model_path}.")
    if workers < 1:
        raise InvalidInput("workers must be 1 or more.")
    if token is not None and not token.strip():
        raise InvalidInput("The token is empty; pass None to serve without authentication.")
    if port is None:
        port = free_port(host)
    else:
        require_free_port(host, port)

    command = [
        python,
        *("-m", "jupyter_sparkserve", "serve", str(model_path)),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
    ]
    # The caller's own token must not leak into an open endpoint, nor any other secret into
    # a process that runs a model's code.
    env = without_secrets()
    if token is not None:
        env[ENDPOINT_TOKEN_ENV] = token  # the environment, unlike the command line, is private
    if settings:
        env[ENDPOINT_CONFIG_ENV] = json.dumps(dict(settings))
    if settings and settings.get("shadow") and os.environ.get(SHADOW_TOKEN_ENV):
        env[SHADOW_TOKEN_ENV] = os.environ[SHADOW_TOKEN_ENV]  # what the shadow asks for
    log_file = Path(log_file)
    pid, forked = _launch(command, env, log_file)
    endpoint = LocalEndpoint(
        pid=pid,
        host=host,
        port=port,
        url=f"http://{url_host(host)}:{port}",
        log_file=log_file,
        started_at=time.time(),
        command=command,
        start_stamp=processes.start_stamp(pid),
        forked=forked,
    )
    try:
        problem = _wait_ready(endpoint, ready_timeout)
    except BaseException:  # even Ctrl-C while waiting must not leave a server behind
        stop_endpoint(endpoint)
        raise
    if problem is None:
        return endpoint
    stop_endpoint(endpoint)  # first, so that the log holds everything it will ever say
    raise EndpointFailed(with_log_tail(f"The endpoint for {model_path} {problem}.", log_file))


def endpoint_state(endpoint: LocalEndpoint) -> EndpointState:
    """Whether the endpoint serves: its own process is alive and answers /ping."""
    pid = endpoint.pid
    reason = processes.exit_reason(pid)
    if reason is None and not _is_ours(endpoint):
        # A child of ours that is not running as itself is exiting (its pid cannot be
        # recycled before we reap it), or the warm scorer is noting how its fork ended:
        # wait a moment for that.
        reason = _how_it_ended(endpoint, PING_TIMEOUT) or "is no longer running"
    if reason is None:
        problem = _ping_problem(endpoint, PING_TIMEOUT)
        if problem is None:
            return EndpointState("running", f"Serving on {endpoint.url} (pid {pid}).")
        # A process dying right now still looks alive for a moment: give it that moment, so
        # the message says how it ended rather than that it stopped answering.
        reason = _how_it_ended(endpoint, 0.5) or f"is running but GET /ping {problem}"
    message = f"The endpoint on {endpoint.url} is not serving: its process {pid} {reason}."
    return EndpointState("failed", with_log_tail(message, endpoint.log_file))


def stop_endpoint(endpoint: LocalEndpoint, timeout: float = 20.0) -> None:
    """Stop the endpoint's whole process group (SIGTERM, then SIGKILL) and wait until its
    port refuses connections. Stopping an endpoint that is already gone does nothing."""
    deadline = time.monotonic() + timeout
    if not _owns_group(endpoint):
        return
    # uvicorn shuts down cleanly on SIGTERM
    if not processes.stop_group(endpoint.pid, timeout):
        raise EndpointFailed(
            f"The endpoint process group {endpoint.pid} survived SIGKILL "
            f"(still alive {timeout:g} s after SIGTERM)."
        )
    while _accepts_connections(endpoint.host, endpoint.port):
        if time.monotonic() >= deadline:
            raise EndpointFailed(
                f"The endpoint's processes are gone but port {endpoint.port} on "
                f"{endpoint.host} still accepts connections."
            )
        time.sleep(POLL_INTERVAL)


# ----------------------------------------------------------------------------- processes


def _launch(command: list[str], env: dict[str, str], log_file: Path) -> tuple[int, bool]:
    """Start the endpoint: forked from the warm scorer when one runs this interpreter (and
    the environment allows it), else spawned. Its pid, and whether it was forked."""
    if command[0] == sys.executable:
        try:
            cwd = Path.cwd()
        except OSError:  # a deleted working folder
            cwd = log_file.parent
        log_file.parent.mkdir(parents=True, exist_ok=True)
        pid = warm_client.run_detached(
            "cli",
            command[3:],  # after `python -m jupyter_sparkserve`
            env={**env, "PYTHONUNBUFFERED": "1"},  # a crash's last words must reach the log
            cwd=cwd,
            log_file=log_file,
            note=shlex.join(command),
            name="sparkserve-serve",
            lasting=True,
        )
        if pid is not None:
            return pid, True
    return processes.spawn_detached(command, env=env, log_file=log_file).pid, False


def _how_it_ended(endpoint: LocalEndpoint, wait: float) -> str | None:
    """How the endpoint's process ended (waiting up to `wait` s to know); None while it runs
    or when nobody noted it: our own child's waiter, or the warm scorer that forked it."""
    reason = processes.exit_reason(endpoint.pid, wait=wait)
    if reason is None and endpoint.forked and not _is_ours(endpoint):
        reason = processes.noted_end(endpoint.log_file, endpoint.pid, wait=wait)
    return reason


def _wait_ready(endpoint: LocalEndpoint, timeout: float) -> str | None:
    """None once the endpoint answers /ping; what went wrong when it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        reason = processes.exit_reason(endpoint.pid)
        if reason is None and endpoint.forked and not _is_ours(endpoint):
            reason = _how_it_ended(endpoint, 1.0) or "is no longer running"
        if reason is not None:
            return f"{reason} before it was ready"
        remaining = deadline - time.monotonic()
        if _ping_problem(endpoint, min(PING_TIMEOUT, max(remaining, 0.1))) is None:
            return None
        if remaining <= 0:
            return f"did not answer GET {endpoint.url}/ping within {timeout:g} s"
        time.sleep(POLL_INTERVAL)


def _is_ours(endpoint: LocalEndpoint) -> bool:
    """Whether the endpoint's process is alive and is the one started: its start time, and
    for a spawned one its command line (a fork runs the warm scorer's)."""
    pid, stamp = endpoint.pid, endpoint.start_stamp
    if stamp is not None and not processes.is_running(pid, stamp):
        return False
    if endpoint.forked:
        return stamp is not None
    return processes.runs_command(pid, endpoint.command) and "serve" in endpoint.command


def _owns_group(endpoint: LocalEndpoint) -> bool:
    """Whether the endpoint's process group still has live processes of the endpoint."""
    if processes.is_child(endpoint.pid):
        return True  # our child, not reaped yet: its pid cannot belong to anyone else
    members = processes.group_members(endpoint.pid)
    if endpoint.pid in members:
        return _is_ours(endpoint)
    # The leader is gone. Its workers (--workers N) may remain; the system does not reuse a
    # pid while a group of that id exists, but check they are endpoint workers anyway.
    return any(processes.has_environment(pid, ENDPOINT_CONFIG_ENV) for pid in members)


# ------------------------------------------------------------------------------- network


def _connect_host(host: str) -> str:
    """Where to connect to reach a server bound to `host` (a wildcard means this machine)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def url_host(host: str) -> str:
    connect = _connect_host(host)
    return f"[{connect}]" if ":" in connect else connect


def _family(host: str) -> socket.AddressFamily:
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]


def free_port(host: str) -> int:
    # The system picks a free port; it stays free for the child unless someone races for it.
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def require_free_port(host: str, port: int | None) -> None:
    """Refuse a port something listens on already (None: a free one is picked later)."""
    if port is not None and port_in_use(host, port):
        raise Conflict(
            f"Port {port} on {host} is already in use; choose another port.", field="port"
        )


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        # Like uvicorn: connections of a previous server in TIME_WAIT do not make it busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise InvalidInput(f"Cannot serve on {host}:{port}: {error.strerror}.") from None
    return _accepts_connections(host, port)


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((_connect_host(host), port), timeout=1.0):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:  # a timeout or an unreachable host: something may still hold the port
        return True


def _ping_problem(endpoint: LocalEndpoint, timeout: float) -> str | None:
    return ping_problem(endpoint.host, endpoint.port, timeout)


def ping_problem(host: str, port: int, timeout: float) -> str | None:
    """None when GET /ping answers 200 within `timeout`; what happened otherwise.
    http.client rather than urllib: an http_proxy setting must not apply to this machine."""
    connection = http.client.HTTPConnection(_connect_host(host), port, timeout=timeout)
    try:
        connection.request("GET", "/ping")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return f"failed ({type(error).__name__}: {error})"
    finally:
        connection.close()
    return None if status == 200 else f"answered {status}"
