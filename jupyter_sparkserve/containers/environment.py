"""An image's Python environment, made on this machine once per set of requirements.

uv installs the pinned requirements and their dependencies into a folder, as Linux wheels for
this machine's architecture (`--python-platform`, so a macOS host builds a Linux image too)
and from where this machine's pip gets packages (its indexes, constraints and certificates,
handed to uv through its environment, never on a command line). What serving never reads is
dropped, every module is compiled to bytecode for the path the image puts it at, and the
folder is archived: one large file reaches the engine and is checked for the layer cache far
faster than ~12,000 small ones, and `ADD` unpacks it. Archives are cached by requirements,
Python and platform; two builds of the same set wait for each other on a lock.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import Cancelled, SparkserveError

ARCHIVE = "site-packages.tar"
LAYOUT = "4"  # part of the cache key: a change in what an archive holds makes new ones
# The oldest glibc the wheels may need: that of Debian bookworm's python:3.X-slim is 2.36.
GLIBC = "2_28"
_NOT_SERVED = ("tests", "include")  # folders below a package
_SOURCE_SUFFIXES = (".pyx", ".pxd", ".pxi", ".h", ".hpp", ".c", ".cc", ".cpp")
_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class ImageBuildError(SparkserveError):
    code = "IMAGE_BUILD_FAILED"
    http_status = 500


def cache_folder() -> Path:
    """Where archives are kept between builds: a cache like pip's, shared by every
    repository of this user."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "jupyter_sparkserve" / "environments"


def target_platform() -> str:
    """uv's name of the platform the image runs on: Linux on this machine's architecture."""
    machine = platform.machine().lower()
    if machine not in _ARCHITECTURES:
        raise ImageBuildError(f"Cannot build Linux images on a {machine} machine.")
    return f"{_ARCHITECTURES[machine]}-manylinux_{GLIBC}"


def prepare(
    pinned: list[str],
    cache: Path,
    *,
    site_packages: str,
    log: Callable[[str], None],
    cancel: threading.Event | None = None,
) -> Path:
    """The archive of `pinned` installed and compiled for `site_packages` (the image's
    path): from `cache`, or made there first."""
    wheels_for = target_platform()
    identity = [LAYOUT, sys.version, wheels_for, site_packages, *pinned]
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    folder = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f".{key}.lock"):
        if (folder / ".complete").exists():
            log(f"Reusing the environment in {folder}")
            (folder / ".complete").touch()  # its time is when it was last used
            return folder / ARCHIVE
        partial = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
        try:
            _make(pinned, partial, wheels_for, site_packages, log, cancel)
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    evict(cache, keep=folder)
    return folder / ARCHIVE


KEPT_ARCHIVES = 4  # each is a few hundred MB
IN_USE_SECONDS = 3600  # an archive used this recently may be on its way into a context


def evict(cache: Path, *, keep: Path, kept: int = KEPT_ARCHIVES) -> list[Path]:
    """Remove the archives used least recently beyond the `kept` newest (never `keep`, nor
    one used within the hour), so that the cache does not grow with every requirement set."""
    complete = []
    for marker in cache.glob("*/.complete"):
        with contextlib.suppress(OSError):
            complete.append((marker.stat().st_mtime, marker.parent))
    complete.sort(reverse=True)
    removed = []
    for used, folder in complete[kept:]:
        if folder != keep and time.time() - used > IN_USE_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _make(
    pinned: list[str],
    partial: Path,
    wheels_for: str,
    site_packages: str,
    log: Callable[[str], None],
    cancel: threading.Event | None,
) -> None:
    requirement_file = partial / "requirements.txt"
    requirement_file.write_text("\n".join(pinned) + "\n")
    installed = partial / "site-packages"
    log(f"Installing {len(pinned)} requirements and their dependencies ({wheels_for})")
    command = [
        _uv(), "pip", "install", "--quiet", "--only-binary", ":all:",
        "--python", sys.executable, "--python-platform", wheels_for,
        "--target", str(installed), "--requirement", str(requirement_file),
    ]  # fmt: skip
    _run(command, partial, cancel, log)
    for step in (_trim, lambda folder: compile_tree(folder, site_packages)):
        _stop_if(cancel)
        step(installed)
    _stop_if(cancel)
    _archive(installed, partial / ARCHIVE)
    shutil.rmtree(installed)
    (partial / ".complete").write_text("\n".join(pinned) + "\n")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One maker of an archive at a time, across processes (two jobs, a deploy)."""
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stop_if(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("Cancelled while preparing the image's environment.")


def _uv() -> str:
    """uv's binary: it downloads and installs in parallel, several times faster than pip."""
    try:
        from uv import find_uv_bin
    except ImportError as error:
        raise ImageBuildError(
            "Building images needs uv: pip install 'jupyter_sparkserve[containers]'."
        ) from error
    return find_uv_bin()


def pip_settings(listing: str) -> dict[str, str]:
    """`pip config list` read: each setting's value where pip would take it from (PIP_*
    variables over the download and install sections over global)."""
    found: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        key, _, text = line.partition("=")
        section, _, name = key.rpartition(".")
        rank = {":env:": 3, "download": 2, "install": 2}.get(section, 1)
        try:
            value = ast.literal_eval(text.strip())  # pip prints each value's repr
        except (ValueError, SyntaxError):
            value = text.strip()
        if rank >= found.get(name, (0, ""))[0]:
            found[name] = (rank, str(value))
    return {name: value for name, (_, value) in found.items()}


def uv_environment(settings: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    """uv's environment carrying pip's settings: indexes (which may hold credentials) stay
    off the command line, where any local user could read them."""
    environ = dict(base)
    environ["UV_INDEX_STRATEGY"] = "unsafe-best-match"  # pip's: the best match of all indexes
    words = {name: settings.get(name, "").split() for name in settings}
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        environ["UV_NO_INDEX"] = "1"
    if settings.get("index-url"):
        environ["UV_INDEX_URL"] = settings["index-url"]
    for variable, name, separator in (
        ("UV_EXTRA_INDEX_URL", "extra-index-url", " "),
        ("UV_FIND_LINKS", "find-links", ","),
        ("UV_CONSTRAINT", "constraint", " "),
        ("UV_INSECURE_HOST", "trusted-host", " "),
    ):
        if words.get(name):
            environ[variable] = separator.join(words[name])
    cert = settings.get("cert") or base.get("REQUESTS_CA_BUNDLE")
    if cert and "SSL_CERT_FILE" not in base:
        environ["SSL_CERT_FILE"] = cert
    if settings.get("proxy"):
        environ.setdefault("HTTPS_PROXY", settings["proxy"])
        environ.setdefault("HTTP_PROXY", settings["proxy"])
    return environ


def _run(
    command: list[str], where: Path, cancel: threading.Event | None, log: Callable[[str], None]
) -> None:
    """Run uv with pip's settings; its output kept for the error; killed on `cancel`."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    if listing.returncode != 0:
        log("pip cannot be asked for its index settings here: uv uses its own (uv.toml, UV_*).")
    environ = uv_environment(pip_settings(listing.stdout), dict(os.environ))
    output = where / ".uv.log"
    with output.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environ)
        while process.poll() is None:
            if cancel is None:
                process.wait()
            elif cancel.wait(0.2):
                process.kill()
                process.wait()
                raise Cancelled("Cancelled while preparing the image's environment.")
    if process.returncode != 0:
        detail = " ".join(output.read_text(errors="replace").strip().splitlines()[-5:])
        raise ImageBuildError(
            f"uv could not install the image's requirements as Linux wheels: {detail}"
        )


def _trim(installed: Path) -> None:
    """Remove what serving never reads: test suites, headers, C and Cython sources, and the
    console scripts in `bin` (written for this machine's interpreter)."""
    shutil.rmtree(installed / "bin", ignore_errors=True)
    for path in sorted(installed.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _NOT_SERVED and path.parent != installed:
            shutil.rmtree(path, ignore_errors=True)
        elif path.suffix in _SOURCE_SUFFIXES and path.is_file():
            path.unlink()


def compile_tree(folder: Path, where: str) -> None:
    """Bytecode for every module of `folder`, recorded as living in `where` (the image's
    path) and checked by hash rather than time, so a copy keeps it valid; a non-root
    container with a read-only file system never has to compile."""
    command = [
        sys.executable, "-m", "compileall", "-q", "-j", "0",
        "--invalidation-mode", "unchecked-hash", "-s", str(folder), "-p", where, str(folder),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:  # a file that is not Python 3 (a template) is harmless
        lines = (done.stdout + done.stderr).strip().splitlines()
        if any(line.startswith("Traceback") for line in lines):
            raise ImageBuildError(f"Compiling {folder} failed: {' '.join(lines[-3:])}")


def _archive(folder: Path, archive: Path) -> None:
    """`folder`'s content as an uncompressed tar: entries sorted, owned by root and readable
    by all (the image's user is not root, whatever this machine's umask), so the same
    environment always makes the same archive."""

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode |= 0o555 if info.isdir() or info.mode & 0o100 else 0o444
        return info

    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            name = str(path.relative_to(folder))
            tar.add(path, arcname=name, recursive=False, filter=owned_by_root)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows (the archive is large), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
