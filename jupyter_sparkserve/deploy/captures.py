"""A deployment's payload capture, for every face: where it is, what it holds, exported to a
Parquet or CSV file, purged. The endpoint writes it (`scoring/capture.py`) under the
deployment's folder; Dismiss deletes that folder with it."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..scoring.capture import captured_files, read_captured
from .local_target import CAPTURE_FOLDER

if TYPE_CHECKING:
    from ..repository import ModelRepository

EXPORT_FORMATS = (".parquet", ".csv")


@dataclass(frozen=True)
class CaptureExport:
    deployment_id: str
    folder: Path
    files: int
    bytes: int
    rows: int
    requests: int
    first: str | None  # the first and last requests' times (UTC, ISO 8601)
    last: str | None
    out: Path | None  # where it was exported, if asked
    purged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment_id,
            "folder": str(self.folder),
            "files": self.files,
            "bytes": self.bytes,
            "rows": self.rows,
            "requests": self.requests,
            "first": self.first,
            "last": self.last,
            "out": str(self.out) if self.out else None,
            "purged": self.purged,
        }


def capture_folder(repository: ModelRepository, deployment_id: str) -> Path:
    """Where deployment `deployment_id` captures (NotFound for an unknown deployment)."""
    from .deployments import Deployments

    service = Deployments(repository)
    deployment = service.get(deployment_id)
    return service.root / deployment.id / CAPTURE_FOLDER


def export_capture(
    repository: ModelRepository,
    deployment_id: str,
    out: Path | None = None,
    *,
    purge: bool = False,
) -> CaptureExport:
    """What deployment `deployment_id` captured: written to `out` (.parquet or .csv) when
    given, then deleted when `purge` (a running endpoint goes on capturing into new files)."""
    if out is not None and Path(out).suffix.lower() not in EXPORT_FORMATS:
        raise InvalidInput(
            f"Export to a .parquet or .csv file, not {Path(out).name!r}.", field="out"
        )
    folder = capture_folder(repository, deployment_id)
    files = captured_files(folder)
    frame = read_captured(folder)
    if out is not None:
        _write(frame, Path(out).expanduser())
    times = frame["__time"]
    export = CaptureExport(
        deployment_id=deployment_id,
        folder=folder,
        files=len(files),
        bytes=sum(path.stat().st_size for path in files),
        rows=len(frame),
        requests=int(frame["__request_id"].nunique()),
        first=times.min().isoformat() if len(frame) else None,
        last=times.max().isoformat() if len(frame) else None,
        out=Path(out).expanduser().resolve() if out is not None else None,
        purged=purge,
    )
    if purge:
        shutil.rmtree(folder, ignore_errors=True)
    return export


def _write(frame: Any, out: Path) -> None:
    """Whole or not at all: a temporary file beside `out`, renamed over it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(handle)
    try:
        if out.suffix.lower() == ".csv":
            frame.to_csv(temp, index=False)
        else:
            frame.to_parquet(temp, index=False)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
