"""The warm scorer: a process that has already imported MLflow, the model flavors, pandas and
pyarrow, and forks a fresh child for every run. A `sparkserve score` or a job then starts in
milliseconds instead of paying seconds of imports each time.

    python -m jupyter_sparkserve.warm.server [--idle-timeout S] [--parent-pid PID]

One per user and installation (`protocol.code_stamp`), listening on a Unix socket in a folder
only its user can enter; it also refuses a peer whose uid is not its own. It runs one Python
thread, so a fork never copies a lock another Python thread holds (the native pools of
OpenBLAS and jemalloc have fork handlers), and it never opens a database, a model or a
pyarrow thread pool: each child starts clean, as `python -m` would.

A run is either attached (a client waits: the child writes to the client's own standard
streams, the client forwards its signals, and the child's exit status and peak memory come
back when the server reaps it; a client that disappears has its run stopped with SIGTERM) or
detached (a job: a session of its own, output to its log file, the pid returned at once).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import importlib
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import processes
from ..config import WARM_PRELOAD_ENV
from ..processes import note_end
from . import child, protocol

log = logging.getLogger("sparkserve.warm")

# Imported before the first fork; a missing optional one is skipped.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.csv",
    "pyarrow.parquet",
    "pyarrow.json",
    "sqlalchemy",
    "click",
    "jsonschema",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.models",
    "mlflow.sklearn",
    "sklearn",
    "skops.io",  # imports every scikit-learn estimator it trusts: seconds, paid once here
    "jupyter_sparkserve.cli",
    "jupyter_sparkserve.scoring.offline",
    "jupyter_sparkserve.workflows.job_process",
    # An endpoint forked from here (a local deployment) answers without importing a thing.
    "jupyter_sparkserve.scoring.server",
    "jupyter_sparkserve.scoring.connections",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.uvloop",
    # Register and deploy from the command line: MLflow's tracking client and store.
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.artifacts",
)
HISTORY = 20
SERVER_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass
class Run:
    pid: int
    entry: str
    argv: list[str]
    started: float
    detached: bool
    lasting: bool = False  # a service (an endpoint): it does not keep the scorer from idling
    client: Client | None = None  # who waits for an attached run, while it is there
    log_file: str | None = None
    ended: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    peak_mb: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "entry": self.entry,
            "command": self.argv[:2],
            "detached": self.detached,
            "lasting": self.lasting,
            "seconds": round((self.ended or time.time()) - self.started, 3),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "peak_mb": self.peak_mb,
        }


@dataclass
class Client:
    conn: socket.socket
    reader: protocol.Reader
    pending: dict[str, Any] | None = None  # an attached run accepted, waiting for its streams
    run: Run | None = None


@dataclass
class WarmServer:
    stamp: str
    idle_seconds: float
    parent_pid: int | None = None
    started: float = field(default_factory=time.time)
    preload_seconds: float = 0.0
    runs: dict[int, Run] = field(default_factory=dict)
    history: deque[Run] = field(default_factory=lambda: deque(maxlen=HISTORY))
    clients: dict[int, Client] = field(default_factory=dict)
    stopping: bool = False
    inode: int = 0  # of our socket file: never unlink another server's
    lock: Any = None  # the open lock file: closed when stopping, for a successor to start
    startup_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    last_activity: float = field(default_factory=time.monotonic)

    def serve(self, listener: socket.socket, path: Path) -> None:
        self.selector = selectors.DefaultSelector()
        self.listener = listener
        self.path = path
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        os.set_blocking(wake_read, False)
        signal.set_wakeup_fd(wake_write)
        for signum in SERVER_SIGNALS:
            signal.signal(signum, lambda *_: None)  # the wake-up pipe says which
        self.selector.register(wake_read, selectors.EVENT_READ, "wake")
        self.selector.register(listener, selectors.EVENT_READ, "listen")
        self.last_activity = time.monotonic()  # idle from now, not from before the preload
        try:
            while not (self.stopping and not self._attached_runs()):
                for key, _ in self.selector.select(timeout=1.0):
                    self._on_event(key.data, wake_read)
                self._reap()
                self._check_idle()
        finally:
            self._stop_listening()

    def _on_event(self, what: Any, wake_read: int) -> None:
        try:
            if what == "wake":
                self._on_signals(wake_read)
            elif what == "listen":
                self._accept()
            else:
                self._on_client(what)
        except Exception:  # one bad request must not end the runs of everyone else
            log.exception("while handling %s", what)
            if isinstance(what, Client):
                self._drop(what)

    # -------------------------------------------------------------------------- events

    def _on_signals(self, wake_read: int) -> None:
        with contextlib.suppress(BlockingIOError):
            for signum in os.read(wake_read, 512):
                if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    self._begin_stop(f"signal {signal.Signals(signum).name}")

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        uid = protocol.peer_uid(conn)
        if uid != os.getuid():
            log.warning("refused a connection from uid %s", uid)
            conn.close()
            return
        conn.setblocking(False)
        client = Client(conn, protocol.Reader(conn))
        self.clients[conn.fileno()] = client
        self.selector.register(conn, selectors.EVENT_READ, client)
        self.last_activity = time.monotonic()

    def _on_client(self, client: Client) -> None:
        try:
            more = client.reader.feed()
        except (OSError, protocol.ProtocolError):
            more = False
        if not more:  # the client went away (its run, if any, is stopped)
            self._drop(client)
            return
        while client.run is None and client.conn.fileno() != -1:  # after a run: nothing more
            try:
                message = client.reader.message()
            except protocol.ProtocolError as error:
                self._reply(client, {"error": f"Bad request: {error}"}, close=True)
                return
            if message is None:
                return
            self._handle(client, message)

    def _handle(self, client: Client, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op != "streams":
            _close_all(client.reader.fds)  # descriptors come with "streams" only
            client.reader.fds = []
        if op == "status":
            self._reply(client, self.status(), close=True)
        elif op == "stop":
            self._reply(client, {"stopping": True, "pid": os.getpid()}, close=True)
            self._begin_stop("asked to")
        elif op == "run":
            problem = self._run_problem(message)
            if problem is not None:
                self._refuse(client, message, problem)
            elif message.get("detach"):
                self._start_run(client, message, [])
            else:
                # The client's streams are asked for only now: descriptors in flight to a
                # server that then hangs would keep the client's pipes open with it.
                client.pending = message
                self._reply(client, {"ready": True})
        elif op == "streams" and client.pending is not None:
            fds, client.reader.fds = client.reader.fds, []
            if len(fds) != 3:
                _close_all(fds)
                self._refuse(client, client.pending, "A run needs its three standard streams.")
            else:
                self._start_run(client, client.pending, fds)
        else:
            self._reply(client, {"error": f"Unknown op {op!r}."}, close=True)

    def _run_problem(self, request: dict[str, Any]) -> str | None:
        problem = _request_problem(request, self.stamp)
        if problem is None and self.stopping:
            problem = "The warm scorer is stopping."
        return problem or child.context_problem(request, self.startup_env)

    def _refuse(self, client: Client, request: dict[str, Any], problem: str) -> None:
        """The client runs it itself."""
        log.info("refused a run: %s", problem)
        self._reply(client, {"error": problem, "stale": request.get("stamp") != self.stamp})
        self._drop(client)

    def _start_run(self, client: Client, request: dict[str, Any], fds: list[int]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing of ours may reach the child's streams
        # Held from before the fork until the child has its own handlers: a signal sent to
        # the new pid must reach the run, not the wake-up pipe it shares with us.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)
        try:
            pid = os.fork()
        except OSError as error:
            _close_all(fds)
            self._refuse(client, request, f"Could not fork: {error}.")
            return
        else:
            if pid == 0:
                child.run(request, fds, set(SERVER_SIGNALS) - set(blocked))  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _close_all(fds)
        client.pending = None
        detached = bool(request.get("detach"))
        run = Run(
            pid=pid,
            entry=request["entry"],
            argv=list(request["argv"]),
            started=time.time(),
            detached=detached,
            lasting=bool(request.get("lasting")),
            log_file=request.get("log_file"),
        )
        self.runs[pid] = run
        self.last_activity = time.monotonic()
        if detached:
            self._reply(client, {"pid": pid}, close=True)
        else:
            client.run, run.client = run, client
            self._reply(client, {"pid": pid})

    def _reap(self) -> None:
        while True:
            try:  # look without reaping: the end of a detached run is noted first
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None:
                return
            pending = self.runs.get(ended.si_pid)
            if pending is not None and pending.client is None and pending.detached:
                # A reader that finds the pid a zombie waits for this line; once reaped, the
                # pid is simply gone, so the line must be there before.
                killed = ended.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
                if pending.log_file:
                    code = -ended.si_status if killed else ended.si_status
                    note_end(Path(pending.log_file), ended.si_pid, code)
            pid, status, usage = os.wait4(ended.si_pid, 0)
            run = self.runs.pop(pid, None)
            if run is None:
                continue
            run.ended = time.time()
            run.peak_mb = round(usage.ru_maxrss / 1024, 1)
            if os.WIFSIGNALED(status):
                run.signal = os.WTERMSIG(status)
                run.exit_code = 128 + run.signal
            else:
                run.exit_code = os.waitstatus_to_exitcode(status)
            self.history.append(run)
            self.last_activity = time.monotonic()
            if run.client is not None:
                self._reply(run.client, {"exit": run.exit_code, **run.summary()}, close=True)

    def _check_idle(self) -> None:
        if self.parent_pid is not None and not processes.pid_alive(self.parent_pid):
            self._begin_stop(f"its parent {self.parent_pid} is gone")
        idle = time.monotonic() - self.last_activity
        busy = any(not run.lasting for run in self.runs.values())
        if self.idle_seconds > 0 and idle > self.idle_seconds and not busy:
            self._begin_stop(f"idle for {idle:.0f} s")

    def _begin_stop(self, why: str) -> None:
        if not self.stopping:
            log.info("stopping: %s", why)
            self.stopping = True
            self._stop_listening()
            if self.lock is not None:
                self.lock.close()  # a successor may start while our runs finish

    def _stop_listening(self) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(self.listener)
        with contextlib.suppress(OSError):
            if self.path.exists() and os.stat(self.path).st_ino == self.inode:
                self.path.unlink()
        self.listener.close()

    def _attached_runs(self) -> list[Run]:
        return [run for run in self.runs.values() if not run.detached]

    def _reply(self, client: Client, message: dict[str, Any], *, close: bool = False) -> None:
        try:
            client.conn.setblocking(True)
            protocol.send(client.conn, message)
            client.conn.setblocking(False)
        except OSError:
            close = True
        if close:
            self._drop(client)

    def _drop(self, client: Client) -> None:
        """Forget a client; a run still waited for by it is stopped: nobody would see it."""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(client.conn)
        self.clients.pop(client.conn.fileno(), None)
        _close_all(client.reader.fds)
        client.reader.fds = []
        run = client.run
        if run is not None:
            run.client = None
            if run.ended is None:
                protocol.signal_run(run.pid, signal.SIGTERM)
        client.conn.close()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "stamp": self.stamp,
            "socket": str(self.path),
            "started": self.started,
            "preload_seconds": round(self.preload_seconds, 3),
            "idle_timeout": self.idle_seconds,
            "parent_pid": self.parent_pid,
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "in_progress": [run.summary() for run in self.runs.values()],
            "recent": [run.summary() for run in self.history],
        }


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _request_problem(request: dict[str, Any], stamp: str) -> str | None:
    if request.get("stamp") != stamp:
        return "This warm scorer runs other code than the client's."
    if request.get("entry") not in protocol.ENTRIES:
        return f"Unknown entry {request.get('entry')!r}."
    argv = request.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return "argv must be a list of strings."
    env = request.get("env")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        return "env must be an object of strings."
    if not isinstance(request.get("cwd"), str):
        return "cwd must be a string."
    if request.get("detach") and not isinstance(request.get("log_file"), str):
        return "A detached run takes a log_file."
    if not isinstance(request.get("name", ""), str):
        return "name must be a string."
    return None


def preload(extra: list[str]) -> float:
    """Import what runs need, then freeze the heap so children share it page for page."""
    started = time.perf_counter()
    from ..launcher import skip_iri_grammars
    from ..scoring.batch import use_returning_allocator

    skip_iri_grammars()  # as in a fresh command: the runs are commands and jobs

    use_returning_allocator()  # children's pyarrow reads it when they first allocate
    for name in (*PRELOAD, *extra):
        try:
            importlib.import_module(name)
        except ImportError as error:
            log.info("not preloading %s: %s", name, error)
    with contextlib.suppress(Exception):
        # MLflow maps every installed distribution to its modules on a model's first load
        # (about 0.3 s); computed here once, each child inherits the answer.
        from mlflow.utils.requirements_utils import _init_modules_to_packages_map

        _init_modules_to_packages_map()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_sparkserve.warm.server")
    parser.add_argument("--idle-timeout", type=float, default=protocol.DEFAULT_IDLE_SECONDS)
    parser.add_argument("--parent-pid", type=int, help="stop when this process is gone")
    args = parser.parse_args(argv)
    # Our own logger only: a root handler would follow the children onto their streams.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    stamp = protocol.code_stamp()
    path = protocol.socket_path(stamp)
    lock = open(protocol.lock_path(stamp), "a")  # noqa: SIM115 (held until stopping)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another warm scorer serves %s", path)
        return 0
    extra = [m.strip() for m in os.environ.get(WARM_PRELOAD_ENV, "").split(",") if m.strip()]
    server = WarmServer(stamp=stamp, idle_seconds=args.idle_timeout, parent_pid=args.parent_pid)
    server.lock = lock
    server.preload_seconds = preload(extra)
    # Bound under a temporary name and renamed: a client never meets a half-started server.
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    listener.bind(str(temp))
    os.chmod(temp, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    os.replace(temp, path)
    server.inode = os.stat(path).st_ino
    log.info("pid %s serving %s (preloaded in %.1f s)", os.getpid(), path, server.preload_seconds)
    server.serve(listener, path)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
