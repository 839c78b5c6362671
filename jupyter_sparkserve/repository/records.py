"""What the repository hands out: plain frozen dataclasses, JSON-ready through `to_dict`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PYFUNC = "python_function"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    description: str
    flavors: tuple[str, ...]
    tags: Mapping[str, str]
    metrics: Mapping[str, float]
    aliases: tuple[str, ...]
    signature: Mapping[str, Any] | None
    has_input_example: bool
    source: str
    path: Path
    size_bytes: int
    mlflow_version: str
    created_at: datetime
    created_by: str = ""  # who saved or imported it ('' before schema 5)
    # The artifact store's fetch of `path` (a bucket's store downloads it into its cache).
    fetcher: Callable[[], Path] | None = field(default=None, repr=False, compare=False)

    def local_path(self) -> Path:
        """The model folder on this machine, fetched first when the store is a bucket: the one
        call every reader of the files goes through (listing versions downloads nothing)."""
        return self.path if self.fetcher is None else self.fetcher()

    @property
    def flavor(self) -> str:
        """The library flavor (sklearn, xgboost, ...), or python_function for a pyfunc model."""
        return next((f for f in self.flavors if f != PYFUNC), PYFUNC)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "description": self.description,
            "flavor": self.flavor,
            "flavors": list(self.flavors),
            "tags": dict(self.tags),
            "metrics": dict(self.metrics),
            "aliases": list(self.aliases),
            "signature": self.signature,
            "has_input_example": self.has_input_example,
            "source": self.source,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "mlflow_version": self.mlflow_version,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class ModelSummary:
    """One row of the model list: a model and its latest version."""

    name: str
    latest_version: int
    version_count: int
    flavor: str
    description: str
    tags: Mapping[str, str]
    aliases: Mapping[str, int]
    created_at: datetime
    updated_at: datetime
    created_by: str = ""  # who saved the latest version

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "flavor": self.flavor,
            "description": self.description,
            "tags": dict(self.tags),
            "aliases": dict(self.aliases),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class ModelDetails:
    """A model with all its versions, newest first."""

    name: str
    aliases: Mapping[str, int]
    versions: tuple[ModelVersion, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def latest(self) -> ModelVersion:
        return self.versions[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest.version,
            "aliases": dict(self.aliases),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "versions": [version.to_dict() for version in self.versions],
        }


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    total: int = 0
    offset: int = 0
    limit: int = 0

    @property
    def next_offset(self) -> int | None:
        following = self.offset + len(self.items)
        return following if following < self.total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [item.to_dict() for item in self.items],  # type: ignore[attr-defined]
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "next_offset": self.next_offset,
        }
