"""Talking to the warm scorer: run a command or a job in it, ask how it is, start or stop it.

The run functions return None whenever the warm scorer cannot take the run (none running,
another installation's, stopping, a process context it cannot give, or
SPARKSERVE_WARM_SCORER=off): the caller then starts a fresh process as it would without one.
Standard library only, like `protocol`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import processes
from ..errors import SparkserveError
from . import protocol

CONNECT_TIMEOUT = 2.0
ANSWER_TIMEOUT = 10.0  # a wedged warm scorer: run the command here instead
# Forwarded to the run's process group, as a terminal would send them to a fresh process.
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGWINCH,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
ORPHAN_WAIT_SECONDS = 30.0
# A start within this long that has not answered yet is in progress, or failed: not again.
RESTART_PAUSE_SECONDS = 60.0


class WarmScorerError(SparkserveError):
    """The warm scorer could not be started or stopped; the message says why."""

    code = "WARM_SCORER_ERROR"


def _connect(stamp: str | None = None) -> socket.socket | None:
    """A connection to this user's warm scorer for `stamp`, None when there is none."""
    try:
        path = protocol.socket_path(stamp or protocol.code_stamp())
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(str(path))
        if protocol.peer_uid(sock) != os.getuid():  # our environment and streams go to it
            raise OSError("the socket's server is another user's")
    except OSError:  # none there, a socket file its server left behind, or not ours
        sock.close()
        return None
    sock.settimeout(ANSWER_TIMEOUT)
    return sock


def _request(message: dict[str, Any], stamp: str | None = None) -> dict[str, Any] | None:
    sock = _connect(stamp)
    if sock is None:
        return None
    with sock:
        try:
            protocol.send(sock, message)
            return protocol.Reader(sock).read()
        except (OSError, protocol.ProtocolError):  # includes a timeout: it is wedged
            return None


def status() -> dict[str, Any] | None:
    """The running warm scorer's state (pid, preload time, runs in progress and recent), or
    None when none answers."""
    return _request({"op": "status"})


def run_attached(entry: str, argv: list[str]) -> int | None:
    """Run `entry` with `argv` in a child of the warm scorer, as this process would: on its
    standard streams, directory, environment and limits, with its signals forwarded. The
    exit code (a run killed by a signal kills this process with it), or None when the warm
    scorer cannot take the run."""
    try:
        if protocol.mode() == "off":
            return None
        stamp = protocol.code_stamp()
        request = _run_request(stamp, entry, argv, dict(os.environ), cwd=os.getcwd())
    except OSError:  # a deleted working folder, a package being reinstalled
        return None
    sock = _connect(stamp)
    if sock is None:
        return None
    with sock, _standard_streams() as fds:
        reader = protocol.Reader(sock)
        try:
            protocol.send(sock, request)
            ready = reader.read()
            if ready is None or not ready.get("ready"):
                return None  # refused: run it here instead
            protocol.send(sock, {"op": "streams"}, fds)
            started = reader.read()
        except (OSError, protocol.ProtocolError):
            return None  # closing the connection stops a run it might start late
        if started is None or "pid" not in started:
            return None  # refused: run it here instead
        pid = int(started["pid"])
        sock.settimeout(None)  # a run takes as long as it takes
        with _forwarding_signals(pid):
            try:
                ended = reader.read()
            except (OSError, protocol.ProtocolError):
                ended = None
        if ended is None:
            return _orphaned(pid)
    if ended.get("signal"):
        _die_by(int(ended["signal"]))
    return int(ended["exit"])


def run_detached(
    entry: str,
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_file: Path,
    note: str,
    name: str = "sparkserve-job",
    lasting: bool = False,
) -> int | None:
    """Start `entry` in a session of its own forked from the warm scorer, its output (after
    a line saying `note` and its pid) appended to `log_file`; its pid, or None when the warm
    scorer cannot take it. `name`: what `ps` shows; `lasting`: a service (an endpoint) that
    runs until stopped, which does not keep a warm scorer from stopping when idle."""
    if protocol.mode(env) == "off":
        return None
    try:
        stamp = protocol.code_stamp()
    except OSError:
        return None
    request = _run_request(stamp, entry, argv, env, cwd=str(cwd))
    request.update(detach=True, log_file=str(log_file), note=note, name=name, lasting=lasting)
    answer = _request(request, stamp)
    return None if answer is None or "pid" not in answer else int(answer["pid"])


def start(
    *, idle_timeout: float | None = None, parent_pid: int | None = None, wait: float = 120.0
) -> dict[str, Any]:
    """Start a warm scorer for this installation unless one runs; return its status once it
    answers (after `wait` seconds at most; 0 to return at once with {})."""
    from ..config import without_secrets
    from ..processes import spawn_detached, with_log_tail

    stamp = protocol.code_stamp()
    current = _request({"op": "status"}, stamp)
    if current is not None:
        return current
    log_file = _log_file(stamp)
    command = [sys.executable, "-m", "jupyter_sparkserve.warm.server"]
    if idle_timeout is not None:
        command += ["--idle-timeout", str(idle_timeout)]
    if parent_pid is not None:
        command += ["--parent-pid", str(parent_pid)]
    # Runs get their callers' environments; the server itself needs no secret.
    child = spawn_detached(
        command, env=without_secrets(), log_file=log_file, cwd=protocol.run_dir()
    )
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


def offer(*, idle_timeout: float | None = None, parent_pid: int | None = None) -> bool:
    """Start a warm scorer in the background for the runs to come, if the mode allows and
    none runs or is starting; never fails (a run that ran fresh has done its job). Whether
    one was started."""
    try:
        if protocol.mode() != "auto" or protocol.in_forked_run:
            return False
        log_file = _log_file(protocol.code_stamp())
        if log_file.exists() and time.time() - log_file.stat().st_mtime < RESTART_PAUSE_SECONDS:
            return False  # one is starting, or failed to a moment ago (its log says why)
        return start(idle_timeout=idle_timeout, parent_pid=parent_pid, wait=0) == {}
    except Exception:
        return False


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
        while processes.pid_alive(pid):
            if time.monotonic() > deadline:
                raise WarmScorerError(
                    f"The warm scorer (pid {pid}) is still finishing runs after {timeout:g} s."
                )
            time.sleep(0.05)
    return pids


def _log_file(stamp: str) -> Path:
    return protocol.run_dir() / f"scorer-{stamp}.log"


def _run_request(
    stamp: str, entry: str, argv: list[str], env: dict[str, str], *, cwd: str
) -> dict[str, Any]:
    return {
        "op": "run",
        "stamp": stamp,
        "entry": entry,
        "argv": list(argv),
        "cwd": cwd,
        "env": env,
        **protocol.process_context(),
    }


@contextlib.contextmanager
def _standard_streams() -> Iterator[list[int]]:
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


@contextlib.contextmanager
def _forwarding_signals(pid: int) -> Iterator[None]:
    """Signals to this process go to the run; Ctrl-Z stops the run, then this process, and
    `fg` continues both."""

    def forward(signum: int, _frame: Any) -> None:
        protocol.signal_run(pid, signum)

    def suspend(_signum: int, _frame: Any) -> None:
        protocol.signal_run(pid, signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT

    def resume(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTSTP, suspend)
        protocol.signal_run(pid, signal.SIGCONT)

    handlers = {sig: forward for sig in FORWARDED_SIGNALS}
    handlers.update({signal.SIGTSTP: suspend, signal.SIGCONT: resume})
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _orphaned(pid: int) -> int:
    """The warm scorer died under the run: stop the run (it cleans up) and wait for it."""
    protocol.signal_run(pid, signal.SIGTERM)
    deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
    while processes.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    print("Error: the warm scorer stopped during the run; the run was stopped.", file=sys.stderr)
    return 1


def _die_by(signum: int) -> None:
    """End this process by the signal that ended the run, as a shell expects."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1)  # a signal that does not kill (SIGCHLD-like) falls through
    sys.exit(128 + signum)
