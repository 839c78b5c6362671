"""The one supervisor of detached processes: endpoints, jobs and the warm scorer start, are
recognised, stopped and reaped here, and nowhere else reads process tables or signals a
process group.

A process is recognised by its pid *and* its start time (psutil's `create_time`), so a pid
the system recycled is never mistaken for (or killed as) one of ours. Children this process
started are reaped by a waiter thread each, which records how they ended; a process started
by another one is found through psutil only, and how it ended through the line `note_end`
appends to its log.

Standard library at import time: psutil is imported by the functions that need it, so the
warm scorer's client (which must start in milliseconds) can use the signalling helpers.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG_TAIL_LINES = 40
POLL_SECONDS = 0.05
# Two readings of one process's start time may differ by the rounding of the boot time the
# kernel reports; a recycled pid starts later than this by far.
START_TOLERANCE_SECONDS = 1.0

# The machine a pid means something on. A shared repository (PostgreSQL) holds jobs and
# endpoints of several machines: only their own machine may judge or signal their processes.
MACHINE = socket.gethostname()

# Children this process started: (pid, start) -> how it ended, filled in by a waiter thread.
_EXITS: dict[tuple[int, float | None], str] = {}
_WAITERS: dict[int, tuple[float | None, threading.Thread]] = {}


# --------------------------------------------------------------------------- identity


def process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None when there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def start_stamp(pid: int) -> int | None:
    """The start time as the job table stores it: centiseconds since the epoch."""
    started = process_start(pid)
    return None if started is None else round(started * 100)


def _stamp_seconds(stamp: int | None) -> float | None:
    if stamp is None:
        return None
    if stamp < 10**10:
        # Written by a release that stored clock ticks after boot (/proc/PID/stat field 22).
        import psutil

        return psutil.boot_time() + stamp / os.sysconf("SC_CLK_TCK")
    return stamp / 100


def is_running(pid: int, start_stamp: int | None) -> bool:
    """Whether `pid` is alive (not a zombie) and is the process stamped `start_stamp`."""
    import psutil

    started = _stamp_seconds(start_stamp)
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > START_TOLERANCE_SECONDS:
            return False
        return process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def is_zombie(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def runs_command(pid: int, command: list[str]) -> bool:
    """Whether `pid` is alive and runs `command` (a recycled pid does not). The interpreter
    (argv[0]) is left out of the comparison: a launcher may rewrite it."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        return process.cmdline()[1:] == list(command[1:])
    except psutil.Error:
        return False


def has_environment(pid: int, name: str) -> bool:
    """Whether process `pid` was started with the environment variable `name` set."""
    import psutil

    try:
        return name in psutil.Process(pid).environ()
    except psutil.Error:
        return False


def pid_alive(pid: int) -> bool:
    """Whether any process has this pid (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    import psutil

    members = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError, psutil.Error):
            if process.info["status"] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                continue
            if os.getpgid(process.pid) == pgid:
                members.append(process.pid)
    return members


# --------------------------------------------------------------------------- signals


def signal_process(pid: int, signum: int) -> None:
    """Send `signum` to one process; one already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def signal_group(pgid: int, signum: int, *, or_leader: bool = False) -> None:
    """Send `signum` to process group `pgid`; a group already gone is not an error.
    `or_leader`: when there is no such group yet (its leader has not made it), signal the
    process `pgid` itself."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        if or_leader:
            signal_process(pgid, signum)


def wait_group_gone(pgid: int, deadline: float) -> bool:
    """Wait until process group `pgid` has no live member; False at `deadline`."""
    while True:
        if not group_members(pgid):
            exit_reason(pgid, wait=1.0)  # a leader of ours is a zombie now: reap it
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def stop_group(pgid: int, timeout: float) -> bool:
    """SIGTERM the group, SIGKILL what is left after half of `timeout`; whether it is gone."""
    deadline = time.monotonic() + timeout
    signal_group(pgid, signal.SIGTERM)
    if wait_group_gone(pgid, time.monotonic() + timeout / 2):
        return True
    signal_group(pgid, signal.SIGKILL)
    return wait_group_gone(pgid, deadline)


# --------------------------------------------------------------------- starting, reaping


def spawn_detached(
    command: list[str], *, env: dict[str, str], log_file: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` in a session of its own (no terminal signals; stopped as a group),
    its output appended to `log_file` after a line saying what was started. A thread waits
    for it, so it never lingers as a zombie, and records how it ended (`exit_reason`)."""
    env = {**env, "PYTHONUNBUFFERED": "1"}  # a crash's last words must reach the log
    note_start(log_file, shlex.join(command))
    with open(log_file, "ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            close_fds=True,
            start_new_session=True,
        )
    reap_in_background(child)
    return child


def reap_in_background(child: subprocess.Popen[Any]) -> None:
    """Wait for `child` on a thread of its own and record how it ended."""
    started = process_start(child.pid)
    key = (child.pid, started)
    _EXITS.pop(key, None)

    def wait() -> None:
        _EXITS[key] = describe_exit(child.wait())

    waiter = threading.Thread(target=wait, name=f"sparkserve-reap-{child.pid}", daemon=True)
    _WAITERS[child.pid] = (started, waiter)
    waiter.start()


def is_child(pid: int) -> bool:
    """Whether `pid` is a child this process started and has not seen end yet."""
    found = _WAITERS.get(pid)
    return found is not None and found[1].is_alive()


def exit_reason(pid: int, wait: float = 0.0) -> str | None:
    """How child `pid` of this process ended ("exited with code 1", "was killed by SIGKILL"),
    waiting up to `wait` seconds for it; None while it runs or when it is not our child."""
    found = _WAITERS.get(pid)
    if found is None:
        return None
    started, waiter = found
    if wait > 0:
        waiter.join(wait)
    return _EXITS.get((pid, started))


def describe_exit(code: int) -> str:
    """How a process ended, from its return code: "exited with code 1", "was killed by SIGKILL"."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# ------------------------------------------------------------------------------- logs


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def note_start(log_file: Path, what: str) -> None:
    """Append the line that says what a process started with its output in `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as log:
        log.write(f"=== {_stamp()} starting: {what}\n")


def note_end(log_file: Path, pid: int, returncode: int) -> None:
    """Append how process `pid` ended, for whoever did not start it (`noted_end` reads it)."""
    with contextlib.suppress(OSError), open(log_file, "a") as log:
        log.write(f"=== {_stamp()} process {pid} {describe_exit(returncode)}\n")


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
        time.sleep(POLL_SECONDS)


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
    # Lines end at "\n" only: a progress bar's "\r" redraws (Spark's) are not lines of their own.
    text = data.decode(errors="replace").removesuffix("\n")
    return "\n".join(text.split("\n")[-lines:])


def with_log_tail(message: str, log_file: Path) -> str:
    """`message` followed by the last lines of `log_file` (or a note that it is empty)."""
    tail = log_tail(log_file)
    if not tail:
        return f"{message}\n(The log {log_file} is empty.)"
    return f"{message}\nLast lines of {log_file}:\n{tail}"


def wait_until(condition: Callable[[], bool], deadline: float) -> bool:
    """Poll `condition` until it holds (True) or `deadline` passes (False)."""
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True
