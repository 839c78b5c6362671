"""A run in a child forked from the warm scorer: it becomes the client's process (streams,
directory, environment, umask, priority, limits, CPUs), runs the command line or a job, and
exits with its code.

Some of a process's context is fixed when an interpreter starts (PYTHONPATH, hash seed,
locale, thread pool sizes, pyarrow's allocator): a fork cannot take on a client's, so a
client whose differ from the server's is refused (`context_problem`) and runs its command
itself, as it would with no warm scorer.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import io
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..config import ARROW_POOL_ENV, DEFAULT_ARROW_POOL
from ..launcher import exit_code
from ..processes import note_start
from . import protocol

# Read once, when an interpreter or a native library starts.
STARTUP_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONWARNINGS",
    "PYTHONSAFEPATH",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)
SIGNALS_TO_RESET = (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP)
PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1


def context_problem(request: dict[str, Any], startup_env: dict[str, str]) -> str | None:
    """Why a child of this server could not be the client's process, or None."""
    env = request["env"]
    differs = [name for name in STARTUP_ENV if env.get(name) != startup_env.get(name)]
    if env.get(ARROW_POOL_ENV, DEFAULT_ARROW_POOL) != startup_env.get(
        ARROW_POOL_ENV, DEFAULT_ARROW_POOL
    ):
        differs.append(ARROW_POOL_ENV)
    if differs:
        return f"The client was started with other {', '.join(differs)} than the warm scorer."
    if os.getuid() == 0:
        return None  # root may set any priority and limit
    if int(request.get("nice", 0)) < os.getpriority(os.PRIO_PROCESS, 0):
        return "The client runs at a higher priority than the warm scorer may give."
    for name, (_soft, hard) in request.get("limits", {}).items():
        ours = resource.getrlimit(protocol.LIMITS[name])[1]
        if ours != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > ours):
            return f"The client's {name} hard limit is above the warm scorer's."
    if not set(request.get("cpus", [])) <= os.sched_getaffinity(0):
        return "The client may use CPUs the warm scorer may not."
    return None


def run(request: dict[str, Any], fds: list[int], blocked: set[signal.Signals]) -> None:
    """In the forked child (signals in `blocked` held since before the fork): become the
    client's process, run the entry, and exit. Never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # the server's pipe: a signal here is not the server's
        for signum in SIGNALS_TO_RESET:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        atexit._clear()  # the server's exit handlers are not this run's
        detached = bool(request.get("detach"))
        _set_name(str(request.get("name") or "sparkserve-job") if detached else "sparkserve-run")
        os.umask(int(request.get("umask", 0o022)))
        if detached:
            os.setsid()  # a job outlives this server, like one started with spawn_detached
            log_fd = os.open(request["log_file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            fds = [os.open(os.devnull, os.O_RDONLY), log_fd, log_fd]
        else:
            os.setpgid(0, 0)  # signals go to the run and everything it starts
            _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the server gone: nobody reports it
        _close_inherited(keep=set(fds))
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds) - {0, 1, 2}:
            os.close(fd)
        _take_context(request)
        if detached:  # before anything the job writes
            note = f"{request.get('note', '')} (forked by the warm scorer as pid {os.getpid()})"
            note_start(Path(request["log_file"]), note)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        code = _run_entry(request["entry"], list(request["argv"]))
    except SystemExit as exit:
        code = exit_code(exit.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # those this run registered
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def _take_context(request: dict[str, Any]) -> None:
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # TZ
    _reopen_standard_streams()
    os.chdir(request["cwd"])
    if "nice" in request:
        os.setpriority(os.PRIO_PROCESS, 0, int(request["nice"]))
    for name, (soft, hard) in request.get("limits", {}).items():
        resource.setrlimit(protocol.LIMITS[name], (soft, hard))
    if request.get("cpus"):
        os.sched_setaffinity(0, request["cpus"])
    import tempfile

    tempfile.tempdir = None  # read again from this run's environment
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # else every child would draw the server's numbers


def _run_entry(entry: str, argv: list[str]) -> int:
    protocol.in_forked_run = True
    if entry == "cli":
        from ..cli import main

        sys.argv = ["sparkserve", *argv]
        main(args=argv, prog_name="sparkserve")
        return 0
    from ..workflows import job_process

    sys.argv = [job_process.__file__, *argv]
    return job_process.main(argv)


def _close_inherited(keep: set[int]) -> None:
    """Close the server's sockets and pipes: only the run's streams stay open."""
    low = 3
    for fd in sorted(fd for fd in keep if fd >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _reopen_standard_streams() -> None:
    """New sys.std* on fds 0-2: the server's were made for its own log file. Buffering
    follows the new streams (a terminal gets lines) and PYTHONUNBUFFERED, as at startup."""
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = _text_stream(1, "strict", os.isatty(1), unbuffered)
    sys.stderr = sys.__stderr__ = _text_stream(2, "backslashreplace", True, unbuffered)


def _text_stream(fd: int, errors: str, line_buffering: bool, unbuffered: bool) -> io.TextIOWrapper:
    binary = open(fd, "wb", buffering=0 if unbuffered else -1, closefd=False)  # noqa: SIM115
    return io.TextIOWrapper(
        binary,  # type: ignore[arg-type]
        encoding="utf-8",
        errors=errors,
        line_buffering=line_buffering,
        write_through=unbuffered,
    )


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _set_name(name: str) -> None:
    """What `ps -o comm` and `top` show: a run, not another warm scorer."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
