"""What the warm scorer and its clients share: where the socket is, which code it runs, and
how messages travel. Standard library only: a client must start in milliseconds.

Messages are JSON objects, one per line, on a Unix stream socket. The first message of a run
carries the client's standard input, output and error as SCM_RIGHTS file descriptors, so the
forked run writes straight to the client's terminal or pipes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import socket
import stat
import struct
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import config, processes

RUN_DIR_ENV = config.RUN_DIR_ENV
MODE_ENV = config.WARM_SCORER_ENV
# auto: use a running warm scorer, and start one after a cold `sparkserve score`;
# use: use a running one, never start one; off: always run in a fresh process.
MODES = ("auto", "use", "off")
DEFAULT_MODE = "auto"
OFF_WORDS = ("off", "0", "false", "no", "never")
DEFAULT_IDLE_SECONDS = 20 * 60  # a warm scorer started from the command line stops then
# What a run may execute in the warm process: the command line, or a job's process.
ENTRIES = ("cli", "job")
MAX_MESSAGE_BYTES = 4 << 20
PACKAGE_DIR = Path(__file__).resolve().parent.parent


class ProtocolError(Exception):
    """The other side sent something that is not a message of this protocol."""


# Process limits a run takes from its client (checked and set by `child`).
LIMITS = {
    name: getattr(resource, name)
    for name in (
        "RLIMIT_AS",
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_DATA",
        "RLIMIT_FSIZE",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_STACK",
    )
}
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
# Set in a run forked from the warm scorer: it must not offer to start another.
in_forked_run = False


def mode(environ: Mapping[str, str] | None = None) -> str:
    """auto, use or off, from SPARKSERVE_WARM_SCORER (unset or unknown: auto)."""
    value = (os.environ if environ is None else environ).get(MODE_ENV, "").strip().lower()
    if value in OFF_WORDS:
        return "off"
    return value if value in MODES else DEFAULT_MODE


def run_dir() -> Path:
    """A folder only this user can enter, for the sockets: SPARKSERVE_RUN_DIR, else
    $XDG_RUNTIME_DIR/sparkserve, else /tmp/sparkserve-UID. An existing one that another user
    owns, or that others can enter, is refused rather than used."""
    explicit = os.environ.get(RUN_DIR_ENV)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if explicit:
        path = Path(explicit).expanduser()
    elif runtime and Path(runtime).is_dir():
        path = Path(runtime) / "sparkserve"
    else:
        path = Path(tempfile.gettempdir()) / f"sparkserve-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{path} must be a folder of yours that only you can enter (chmod 700 {path}), "
            f"or set {RUN_DIR_ENV} to one."
        )
    return path


def code_stamp() -> str:
    """Which installation a warm scorer runs: this interpreter, its site-packages folders
    (installing or upgrading any package changes their listing) and this package's files as
    they are now. A client never runs its command in a process holding older code."""
    digest = hashlib.sha256(sys.executable.encode())
    for folder in _site_folders():
        with contextlib.suppress(OSError):
            digest.update(f"{folder}:{os.stat(folder).st_mtime_ns}".encode())
    newest, count = 0, 0
    for folder, _dirs, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
                count += 1
    digest.update(f"{newest}:{count}".encode())
    return digest.hexdigest()[:16]


def _site_folders() -> list[str]:
    import site

    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return folders


def signal_run(pid: int, signum: int) -> None:
    """Send `signum` to a run forked by the warm scorer and everything it started (its
    process group), or to the run alone before it has made its group."""
    processes.signal_group(pid, signum, or_leader=True)


def socket_path(stamp: str) -> Path:
    path = run_dir() / f"scorer-{stamp}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise OSError(
            f"{path} is too long for a Unix socket: set {RUN_DIR_ENV} to a shorter folder."
        )
    return path


def process_context() -> dict[str, Any]:
    """What a client sends of its own process beyond environment and directory."""
    mask = os.umask(0o022)
    os.umask(mask)
    return {
        "umask": mask,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "limits": {name: list(resource.getrlimit(value)) for name, value in LIMITS.items()},
        "cpus": sorted(os.sched_getaffinity(0)),
    }


def lock_path(stamp: str) -> Path:
    return run_dir() / f"scorer-{stamp}.lock"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket."""
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", credentials)[1]


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        data = data[sent:]
    sock.sendall(data)


class Reader:
    """Reads messages (and the file descriptors sent with them) from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.fds: list[int] = []

    def feed(self) -> bool:
        """Read what is available; False at end of stream."""
        data, fds, _flags, _address = socket.recv_fds(self.sock, 1 << 16, 8)
        self.fds.extend(fds)
        if not data:
            return False
        self.buffer += data
        if len(self.buffer) > MAX_MESSAGE_BYTES:
            raise ProtocolError("message too long")
        return True

    def message(self) -> dict[str, Any] | None:
        """The next complete message in the buffer, None if there is none yet."""
        line, newline, rest = self.buffer.partition(b"\n")
        if not newline:
            return None
        self.buffer = rest
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise ProtocolError(f"not JSON: {error}") from None
        if not isinstance(message, dict):
            raise ProtocolError("a message must be a JSON object")
        return message

    def read(self) -> dict[str, Any] | None:
        """Block until the next message; None at end of stream."""
        while True:
            message = self.message()
            if message is not None:
                return message
            if not self.feed():
                return None
