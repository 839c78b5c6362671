"""The artifact store: one MLflow model folder per model version.

A version is written into `.staging/<id>/` and renamed into `<name>/v<version>-<id>` in the
same transaction that inserts its row, so a reader never sees a half-written folder and a
process killed halfway leaves at worst an unreferenced folder that `collect_garbage` removes.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

STAGING = ".staging"
# A staging folder this old belongs to a save that died: nobody writes for that long.
STALE_STAGING_SECONDS = 6 * 3600


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_root = root / STAGING

    def path(self, relative: str) -> Path:
        return self.root / relative

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
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)  # atomic on one file system: the folder appears whole
        return target

    def remove(self, relative: str) -> None:
        target = self.path(relative)
        shutil.rmtree(target, ignore_errors=True)
        with suppress(OSError):
            target.parent.rmdir()  # the model's folder, once its last version is gone

    def version_folders(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for model_dir in self.root.iterdir():
            if model_dir.name == STAGING or not model_dir.is_dir():
                continue
            for version_dir in model_dir.iterdir():
                yield f"{model_dir.name}/{version_dir.name}"

    def sweep_staging(self, *, min_age_seconds: float = STALE_STAGING_SECONDS) -> list[Path]:
        """Remove staging folders of saves that died (older than `min_age_seconds`)."""
        if not self.staging_root.is_dir():
            return []
        return self._remove_older_than(list(self.staging_root.iterdir()), min_age_seconds)

    def collect_garbage(
        self, referenced: Iterable[str], *, min_age_seconds: float = STALE_STAGING_SECONDS
    ) -> list[Path]:
        """Remove staging folders and the version folders that no row in `referenced` (every
        artifact_dir in the database) points at, when older than `min_age_seconds`."""
        keep = set(referenced)
        orphans = [
            self.path(relative) for relative in self.version_folders() if relative not in keep
        ]
        removed = self._remove_older_than(orphans, min_age_seconds)
        for path in removed:
            with suppress(OSError):
                path.parent.rmdir()  # the model's folder, if that was its last version
        return removed + self.sweep_staging(min_age_seconds=min_age_seconds)

    @staticmethod
    def _remove_older_than(paths: list[Path], min_age_seconds: float) -> list[Path]:
        cutoff = time.time() - min_age_seconds
        removed: list[Path] = []
        for path in paths:
            try:
                if path.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        return removed
