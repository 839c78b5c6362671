"""Writing a user's file whole or not at all; telling a URI from a path."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def uri_scheme(text: str) -> str | None:
    """The scheme of a URI such as s3://bucket/key (`s3`); None for a path (file:// too)."""
    found = _URI.match(text)
    scheme = found.group(0)[:-3].lower() if found else None
    return None if scheme == "file" else scheme


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file next to `path`, then rename it over `path`: a reader
    never sees half a file, and a failure leaves the old one as it was."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
