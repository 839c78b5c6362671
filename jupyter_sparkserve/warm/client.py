"""Talking to the warm scorer: run a command or a job in it, ask how it is, start or stop it.

The run functions return None whenever the warm scorer cannot take the run (none running,
another installation's, stopping, or SPARKSERVE_WARM_SCORER=off): the caller then starts a
fresh process as it would without one. Standard library only, like `protocol`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import SparkserveError
from . import protocol

CONNECT_TIMEOUT = 2.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class WarmScorerError(SparkserveError):
    """The warm scorer could not be started or stopped; the message says why."""

    code = "WARM_SCORER_ERROR"


def _connect(stamp: str | None = None) -> socket.socket | None:
    try:
        path = protocol.socket_path(stamp or protocol.code_stamp())
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(str(path))
    except OSError:  # none there, or a socket file its server left behind
        sock.close()
        return None
    sock.settimeout(None)
    return sock


def _request(message: dict[str, Any], stamp: str | None = None) -> dict[str, Any] | None:
    sock = _connect(stamp)
    if sock is None:
        return None
    with sock:
        protocol.send(sock, message)
        return protocol.Reader(sock).read()


def status() -> dict[str, Any] | None:
    """The running warm scorer's state (pid, preload time, running and recent runs), or None."""
    return _request({"op": "status"})


def run_attached(entry: str, argv: list[str]) -> int | None:
    """Run `entry` with `argv` in a child of the warm scorer, on this process's standard
    streams, directory and environment, forwarding this process's signals to it. Its exit
    code, or None when the warm scorer cannot take the run."""
    if protocol.mode() == "off":
        return None
    stamp = protocol.code_stamp()
    sock = _connect(stamp)
    if sock is None:
        return None
    with sock, _standard_streams() as fds:
        request = _run_request(stamp, entry, argv, os.environ)
        request["umask"] = _current_umask()
        try:
            protocol.send(sock, request, fds)
            reader = protocol.Reader(sock)
            started = reader.read()
        except OSError:
            return None
        if started is None or "pid" not in started:
            return None  # refused (stale code, stopping): run it here instead
        pid = int(started["pid"])
        previous = {sig: signal.signal(sig, _forward_to(pid)) for sig in FORWARDED_SIGNALS}
        try:
            ended = reader.read()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if ended is None:  # the warm scorer died under the run: do not leave it orphaned
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            print("Error: the warm scorer stopped during the run.", file=sys.stderr)
            return 1
        return int(ended["exit"])


def run_detached(
    entry: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_file: Path
) -> int | None:
    """Start `entry` in a session of its own forked from the warm scorer, its output appended
    to `log_file`; its pid, or None when the warm scorer cannot take it."""
    if protocol.mode(env) == "off":
        return None
    stamp = protocol.code_stamp()
    sock = _connect(stamp)
    if sock is None:
        return None
    request = _run_request(stamp, entry, argv, env)
    request.update(cwd=str(cwd), detach=True, log_file=str(log_file), umask=_current_umask())
    with sock:
        try:
            protocol.send(sock, request)
            started = protocol.Reader(sock).read()
        except OSError:
            return None
    return None if started is None or "pid" not in started else int(started["pid"])


def start(
    *, idle_timeout: float | None = None, parent_pid: int | None = None, wait: float = 120.0
) -> dict[str, Any]:
    """Start a warm scorer for this installation unless one runs; return its status once it
    answers (after `wait` seconds at most; 0 to return at once with {})."""
    from ..deploy.local import SMTP_CREDENTIAL_ENVS, TOKEN_ENV, spawn_detached, with_log_tail

    stamp = protocol.code_stamp()
    current = _request({"op": "status"}, stamp)
    if current is not None:
        return current
    log_file = protocol.run_dir() / f"scorer-{stamp}.log"
    command = [sys.executable, "-m", "jupyter_sparkserve.warm.server"]
    if idle_timeout is not None:
        command += ["--idle-timeout", str(idle_timeout)]
    if parent_pid is not None:
        command += ["--parent-pid", str(parent_pid)]
    # Runs get their callers' environments; the server itself needs no secret.
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, *SMTP_CREDENTIAL_ENVS)}
    child = spawn_detached(command, env=env, log_file=log_file, cwd=protocol.run_dir())
    # Reaped when it ends, which can be long after this call (a Jupyter server's lifetime).
    threading.Thread(target=child.wait, name="sparkserve-warm-reaper", daemon=True).start()
    if wait <= 0:
        return {}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        current = _request({"op": "status"}, stamp)
        if current is not None:
            return current
        # Exit code 0 before answering: another start holds the lock and is still preloading.
        if child.poll() not in (None, 0):
            raise WarmScorerError(
                with_log_tail(f"The warm scorer exited with code {child.returncode}.", log_file)
            )
        time.sleep(0.1)
    raise WarmScorerError(
        with_log_tail(f"The warm scorer did not answer within {wait:g} s.", log_file)
    )


def stop(timeout: float = 30.0) -> list[int]:
    """Ask every warm scorer of this user (this installation's and any left by older code)
    to stop once its runs in progress have finished; the pids that were running."""
    try:
        sockets = sorted(protocol.run_dir().glob("scorer-*.sock"))
    except OSError:
        return []
    pids = []
    for path in sockets:
        answer = _request({"op": "stop"}, path.stem.removeprefix("scorer-"))
        if answer is not None:
            pids.append(int(answer["pid"]))
    deadline = time.monotonic() + timeout
    for pid in pids:
        while protocol.pid_alive(pid):
            if time.monotonic() > deadline:
                raise WarmScorerError(
                    f"The warm scorer (pid {pid}) is still finishing runs after {timeout:g} s."
                )
            time.sleep(0.05)
    return pids


def _run_request(
    stamp: str, entry: str, argv: list[str], env: dict[str, str] | os._Environ[str]
) -> dict[str, Any]:
    return {
        "op": "run",
        "stamp": stamp,
        "entry": entry,
        "argv": list(argv),
        "cwd": os.getcwd(),
        "env": dict(env),
    }


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _standard_streams() -> Any:
    """This process's fds 0, 1 and 2; /dev/null stands in for a closed one."""
    fds, opened = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            opened.append(null)
            fds.append(null)
    try:
        yield fds
    finally:
        for fd in opened:
            os.close(fd)


def _forward_to(pid: int) -> Any:
    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    return forward
