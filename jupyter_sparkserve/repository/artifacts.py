"""The artifact store: one MLflow model folder per model version, in a local folder (here) or
in an S3-compatible bucket (`s3_artifacts.py`, the same interface, chosen by `open_store`).

A version is written into `.staging/<id>/`, flushed to disk, and renamed into
`<name>/v<version>-<id>` in the same transaction that inserts its row, so a reader never sees
a half-written folder and a process killed halfway leaves at worst an unreferenced folder that
`collect_garbage` removes. Garbage collection only ever touches folders shaped like the ones
this store makes, never follows links, and refuses to run on an artifact root that another
repository (another database) also writes to.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Protocol

from ..errors import Conflict, InvalidInput

STAGING = ".staging"
MARKER = ".sparkserve-repository"
# Nobody writes a model for that long: a staging folder untouched this long is a dead save's.
STALE_STAGING_SECONDS = 6 * 3600
_VERSION_FOLDER = re.compile(r"v[0-9]+-[0-9a-f]{12}")
_STAGING_FOLDER = re.compile(r"[0-9a-f]{32}")


class ArtifactStore(Protocol):
    """What the repository asks of a store. `relative` is a version's `artifact_dir`
    (`NAME/vN-ID`); `path` is where its folder is on this machine, or will be once `fetch`ed."""

    @property
    def root(self) -> Path | str: ...  # the folder, or the s3:// URI

    def path(self, relative: str) -> Path: ...
    def fetch(self, relative: str) -> Path: ...
    def relative_of(self, path: Path) -> str: ...
    def claim(self, repository_id: str) -> None: ...
    def owner(self) -> str | None: ...
    def staging(self) -> AbstractContextManager[Path]: ...
    def new_location(self, name: str, version: int) -> str: ...
    def promote(self, source: Path, relative: str) -> Path: ...
    def remove(self, relative: str) -> None: ...
    def remove_model(self, name: str) -> None: ...
    def candidates(self, min_age_seconds: float) -> tuple[list[str], list[Path]]: ...
    def sweep_staging(self, *, min_age_seconds: float = ...) -> list[Path]: ...
    def remove_unreferenced(
        self, candidates: list[str], is_referenced: Callable[[str], bool]
    ) -> list[Path | str]: ...


def open_store(root: Path | str, home: Path) -> ArtifactStore:
    """The store `SPARKSERVE_ARTIFACT_ROOT` names: a folder, or an s3:// URI (read through a
    cache under `home`)."""
    if isinstance(root, Path):
        return LocalArtifactStore(root)
    try:
        from .s3_artifacts import S3ArtifactStore
    except ImportError as error:  # boto3 is an extra
        raise InvalidInput(
            f"The artifact root {root} is an S3 bucket, and S3 needs boto3: "
            "pip install 'jupyter_sparkserve[s3]' (or set SPARKSERVE_ARTIFACT_ROOT to a folder)."
        ) from error
    return S3ArtifactStore(root, cache_root=home / "artifact-cache")


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root: Path = root
        self.staging_root = root / STAGING

    def path(self, relative: str) -> Path:
        return self.root / relative

    def fetch(self, relative: str) -> Path:
        return self.path(relative)  # already here

    def relative_of(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def claim(self, repository_id: str) -> None:
        """Record which repository writes here (first come), so gc can tell a shared root."""
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / MARKER
        if not marker.exists():
            temporary = self.root / f"{MARKER}.{uuid.uuid4().hex}"
            temporary.write_text(repository_id + "\n")
            with suppress(FileExistsError):
                os.link(temporary, marker)  # atomic: fails if another process claimed it first
            temporary.unlink()

    def owner(self) -> str | None:
        try:
            return (self.root / MARKER).read_text().strip() or None
        except FileNotFoundError:
            return None

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh empty folder to write a model into; removed afterwards whatever happens."""
        folder = self.staging_root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def new_location(self, name: str, version: int) -> str:
        return f"{name}/v{version}-{uuid.uuid4().hex[:12]}"

    def promote(self, source: Path, relative: str) -> Path:
        """Flush `source` to disk and rename it to `relative`: it appears whole or not at all."""
        _fsync_tree(source)
        target = self.path(relative)
        for attempt in range(3):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(source, target)
                break
            except FileNotFoundError:
                # A delete of this model's last version removed the (empty) model folder
                # between our mkdir and rename; make it again.
                if attempt == 2:
                    raise
        _fsync_directory(target.parent)
        return target

    def remove(self, relative: str) -> None:
        shutil.rmtree(self.path(relative), ignore_errors=True)

    def remove_model(self, name: str) -> None:
        """Remove the model's folder if it is empty (after deleting its last version)."""
        # Safe against a concurrent save of the same name: promote() makes the folder again.
        with suppress(OSError):
            (self.root / name).rmdir()

    def candidates(self, min_age_seconds: float) -> tuple[list[str], list[Path]]:
        """Version folders and staging folders untouched for `min_age_seconds`: what gc may
        remove if nothing references it. Only names this store makes; links are skipped."""
        cutoff = time.time() - min_age_seconds
        versions: list[str] = []
        if self.root.is_dir():
            for model_dir in _real_dirs(self.root.iterdir()):
                if model_dir.name.startswith("."):
                    continue
                for folder in _real_dirs(model_dir.iterdir()):
                    if _VERSION_FOLDER.fullmatch(folder.name) and _last_touched(folder) < cutoff:
                        versions.append(f"{model_dir.name}/{folder.name}")
        return versions, self._stale_staging(cutoff)

    def sweep_staging(self, *, min_age_seconds: float = STALE_STAGING_SECONDS) -> list[Path]:
        """Remove staging folders of saves that died (untouched for `min_age_seconds`)."""
        stale = self._stale_staging(time.time() - min_age_seconds)
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return stale

    def remove_unreferenced(
        self, candidates: list[str], is_referenced: Callable[[str], bool]
    ) -> list[Path | str]:
        removed: list[Path | str] = []
        for relative in candidates:
            if is_referenced(relative):
                continue
            folder = self.path(relative)
            shutil.rmtree(folder)
            removed.append(folder)
        return removed

    def _stale_staging(self, cutoff: float) -> list[Path]:
        if not self.staging_root.is_dir():
            return []
        return [
            folder
            for folder in _real_dirs(self.staging_root.iterdir())
            if _STAGING_FOLDER.fullmatch(folder.name) and _last_touched(folder) < cutoff
        ]


def _real_dirs(entries: Iterable[Path]) -> Iterator[Path]:
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            yield entry


def _last_touched(folder: Path) -> float:
    """The newest modification time in the tree: a save still writing keeps it fresh."""
    newest = 0.0
    for directory, _subdirs, files in os.walk(folder):
        for name in (directory, *(os.path.join(directory, f) for f in files)):
            with suppress(FileNotFoundError):
                newest = max(newest, os.lstat(name).st_mtime)
    return newest


def _fsync_tree(folder: Path) -> None:
    for directory, _subdirs, files in os.walk(folder):
        for name in files:
            descriptor = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_directory(Path(directory))


def _fsync_directory(directory: Path) -> None:
    with suppress(OSError):  # not every file system lets a directory be fsynced
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def ensure_same_owner(store: ArtifactStore, repository_id: str) -> None:
    owner = store.owner()
    if owner is not None and owner != repository_id:
        raise Conflict(
            f"The artifact store {store.root} also holds models of another repository "
            f"(id {owner}; this one is {repository_id}): collecting garbage here would delete "
            "them. Use the database that owns this folder (SPARKSERVE_DATABASE_URL), or give "
            "this repository its own SPARKSERVE_ARTIFACT_ROOT."
        )
