"""A model served as a local REST endpoint: a detached `sparkserve serve` process.

This module is only the process side: start one, tell whether it still serves, stop it. It
keeps no records; what `start_endpoint` returns (`LocalEndpoint.to_details()`) is what a caller
stores to find the process again, possibly from another process or after a restart.

Linux-specific: a process is recognised through /proc, so that a pid recycled by the system
is never mistaken for (or killed as) an endpoint.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import Conflict, InvalidInput, NotFound, SparkserveError

# The same names as in scoring.server, which is not imported here: it pulls in pandas.
TOKEN_ENV = "SPARKSERVE_ENDPOINT_TOKEN"
CONFIG_ENV = "SPARKSERVE_ENDPOINT_CONFIG"  # set in every uvicorn worker of a --workers N server
# SMTP credentials for job reports (workflows.email, which imports this module): an endpoint,
# which runs a model's code, never needs them.
SMTP_CREDENTIAL_ENVS = ("SPARKSERVE_SMTP_USER", "SPARKSERVE_SMTP_PASSWORD")

LOG_TAIL_LINES = 40
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

    def to_details(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "port": self.port,
            "url": self.url,
            "log_file": str(self.log_file),
            "started_at": self.started_at,
            "command": list(self.command),
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
        )


@dataclass(frozen=True)
class EndpointState:
    status: Literal["running", "failed"]
    message: str


# Endpoints this process started: kept so their exit status can be collected (no zombies) and
# reported. Other processes' endpoints are found through /proc only.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_EXIT_REASONS: dict[int, str] = {}


def note_start(log_file: Path, what: str) -> None:
    """Append the line that says what a process started with its output in `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {what}\n")


def note_end(log_file: Path, pid: int, returncode: int) -> None:
    """Append how process `pid` ended, for whoever did not start it (`noted_end` reads it)."""
    with contextlib.suppress(OSError), open(log_file, "a") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"=== {stamp} process {pid} {describe_exit(returncode)}\n")


def noted_end(log_file: Path, pid: int, wait: float = 0.0) -> str | None:
    """How process `pid` ended as `note_end` recorded it ("was killed by SIGKILL"), waiting
    up to `wait` seconds for the line; None when it is not there."""
    marker = f" process {pid} "
    deadline = time.monotonic() + wait
    while True:
        for line in reversed(log_tail(log_file, 5).splitlines()):
            if line.startswith("=== ") and marker in line:
                return line.partition(marker)[2]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def spawn_detached(
    command: list[str], *, env: dict[str, str], log_file: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` in a session of its own (no terminal signals; stopped as a group),
    its output appended to `log_file` after a line saying what was started."""
    env = {**env, "PYTHONUNBUFFERED": "1"}  # a crash's last words must reach the log
    note_start(log_file, shlex.join(command))
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            close_fds=True,
            start_new_session=True,
        )


def start_endpoint(
    model_path: Path,
    *,
    log_file: Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    token: str | None = None,
    workers: int = 1,
    ready_timeout: float = 120.0,
    python: str = sys.executable,
) -> LocalEndpoint:
    """Serve the MLflow model folder `model_path` in a detached process; return once it
    answers GET /ping. On failure nothing is left running and EndpointFailed carries the log."""
    model_path = Path(model_path).expanduser().resolve()
    if not model_path.exists():
        raise NotFound(f"No such file or folder: {model_path}.")
    if workers < 1:
        raise InvalidInput("workers must be 1 or more.")
    if token is not None and not token.strip():
        raise InvalidInput("The token is empty; pass None to serve without authentication.")
    if port is None:
        port = _free_port(host)
    elif _port_in_use(host, port):
        raise Conflict(f"Port {port} on {host} is already in use; choose another port.")

    command = [
        python,
        *("-m", "jupyter_sparkserve", "serve", str(model_path)),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
    ]
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)  # the caller's own token must not leak into an open endpoint
    for name in SMTP_CREDENTIAL_ENVS:
        env.pop(name, None)
    if token is not None:
        env[TOKEN_ENV] = token  # the environment, unlike the command line, is private
    log_file = Path(log_file)
    child = spawn_detached(command, env=env, log_file=log_file)
    _CHILDREN[child.pid] = child
    _EXIT_REASONS.pop(child.pid, None)  # a recycled pid: an old reason is not this one's
    endpoint = LocalEndpoint(
        pid=child.pid,
        host=host,
        port=port,
        url=f"http://{_url_host(host)}:{port}",
        log_file=log_file,
        started_at=time.time(),
        command=command,
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
    reason = _exit_reason(pid)
    if reason is None and not _is_ours(pid, endpoint.command):
        # A child of ours that is not running as itself is exiting (its pid cannot be
        # recycled before we reap it): wait a moment for its exit status.
        reason = _exit_reason(pid, wait=PING_TIMEOUT) or "is no longer running"
    if reason is None:
        problem = _ping_problem(endpoint, PING_TIMEOUT)
        if problem is None:
            return EndpointState("running", f"Serving on {endpoint.url} (pid {pid}).")
        # A process dying right now still looks alive for a moment: give it that moment, so
        # the message says how it ended rather than that it stopped answering.
        reason = _exit_reason(pid, wait=0.5) or f"is running but GET /ping {problem}"
    message = f"The endpoint on {endpoint.url} is not serving: its process {pid} {reason}."
    return EndpointState("failed", with_log_tail(message, endpoint.log_file))


def stop_endpoint(endpoint: LocalEndpoint, timeout: float = 20.0) -> None:
    """Stop the endpoint's whole process group (SIGTERM, then SIGKILL) and wait until its
    port refuses connections. Stopping an endpoint that is already gone does nothing."""
    deadline = time.monotonic() + timeout
    _exit_reason(endpoint.pid)  # collect a dead child of ours first
    if not _owns_group(endpoint):
        return
    signal_group(endpoint.pid, signal.SIGTERM)  # uvicorn shuts down cleanly on SIGTERM
    if not _wait_group_gone(endpoint.pid, time.monotonic() + timeout / 2):
        signal_group(endpoint.pid, signal.SIGKILL)
        if not _wait_group_gone(endpoint.pid, deadline):
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


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ("" when there is none), read from its end."""
    block = 8192
    try:
        with open(path, "rb") as file:
            position = file.seek(0, os.SEEK_END)
            data = b""
            # One newline more than needed: the first line read may be partial.
            while position > 0 and data.count(b"\n") <= lines:
                step = min(block, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


# ----------------------------------------------------------------------------- processes


def _wait_ready(endpoint: LocalEndpoint, timeout: float) -> str | None:
    """None once the endpoint answers /ping; what went wrong when it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        reason = _exit_reason(endpoint.pid)
        if reason is not None:
            return f"{reason} before it was ready"
        remaining = deadline - time.monotonic()
        if _ping_problem(endpoint, min(PING_TIMEOUT, max(remaining, 0.1))) is None:
            return None
        if remaining <= 0:
            return f"did not answer GET {endpoint.url}/ping within {timeout:g} s"
        time.sleep(POLL_INTERVAL)


def _exit_reason(pid: int, wait: float = 0.0) -> str | None:
    """How the endpoint `pid` ended, if this process started it and it has ended (collecting
    its exit status, so it does not linger as a zombie); None otherwise. `wait`: seconds to
    wait for a child of ours to end."""
    child = _CHILDREN.get(pid)
    if child is not None:
        try:
            code = child.wait(wait) if wait > 0 else child.poll()  # poll: waitpid(WNOHANG)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            del _CHILDREN[pid]
            _EXIT_REASONS[pid] = describe_exit(code)
    elif pid not in _EXIT_REASONS:
        # Our child without a Popen (e.g. this module was reloaded): still reap it.
        with contextlib.suppress(ChildProcessError):
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped == pid:
                _EXIT_REASONS[pid] = describe_exit(os.waitstatus_to_exitcode(status))
    return _EXIT_REASONS.get(pid)


def describe_exit(code: int) -> str:
    """How a process ended, from its return code: "exited with code 1", "was killed by SIGKILL"."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a process, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rpartition(")")[2].split()  # the command name in (...) may hold spaces
    return fields[0], int(fields[2])


def _is_ours(pid: int, command: list[str]) -> bool:
    """Whether `pid` is alive and runs this endpoint's command (a recycled pid does not).
    The interpreter (argv[0]) is left out of the comparison: a launcher may rewrite it."""
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return False
    arguments = [arg.decode(errors="replace") for arg in args]
    return (
        "jupyter_sparkserve" in arguments
        and "serve" in arguments
        and arguments[1:] == list(command[1:])
    )


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def _owns_group(endpoint: LocalEndpoint) -> bool:
    """Whether the endpoint's process group still has live processes of the endpoint."""
    if endpoint.pid in _CHILDREN:
        return True  # our child, not reaped yet: its pid cannot belong to anyone else
    members = group_members(endpoint.pid)
    if endpoint.pid in members:
        return _is_ours(endpoint.pid, endpoint.command)
    # The leader is gone. Its workers (--workers N) may remain; the system does not reuse a
    # pid while a group of that id exists, but check they are sparkserve workers anyway.
    return any(_has_endpoint_config(pid) for pid in members)


def _has_endpoint_config(pid: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(item.startswith(f"{CONFIG_ENV}=".encode()) for item in environ.split(b"\0"))


def signal_group(pgid: int, signum: signal.Signals) -> None:
    """Send `signum` to process group `pgid`; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_group_gone(pgid: int, deadline: float) -> bool:
    while True:
        if not group_members(pgid):
            _exit_reason(pgid, wait=1.0)  # after the check: a leader of ours is a zombie now
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL / 2)


# ------------------------------------------------------------------------------- network


def _connect_host(host: str) -> str:
    """Where to connect to reach a server bound to `host` (a wildcard means this machine)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _url_host(host: str) -> str:
    connect = _connect_host(host)
    return f"[{connect}]" if ":" in connect else connect


def _family(host: str) -> socket.AddressFamily:
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]


def _free_port(host: str) -> int:
    # The system picks a free port; it stays free for the child unless someone races for it.
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_in_use(host: str, port: int) -> bool:
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
    """None when GET /ping answers 200 within `timeout`; what happened otherwise.
    http.client rather than urllib: an http_proxy setting must not apply to this machine."""
    connection = http.client.HTTPConnection(
        _connect_host(endpoint.host), endpoint.port, timeout=timeout
    )
    try:
        connection.request("GET", "/ping")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return f"failed ({type(error).__name__}: {error})"
    finally:
        connection.close()
    return None if status == 200 else f"answered {status}"


def with_log_tail(message: str, log_file: Path) -> str:
    """`message` followed by the last lines of `log_file` (or a note that it is empty)."""
    tail = log_tail(log_file)
    if not tail:
        return f"{message}\n(The log {log_file} is empty.)"
    return f"{message}\nLast lines of {log_file}:\n{tail}"
