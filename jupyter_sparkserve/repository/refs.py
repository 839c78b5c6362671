"""Model references: `NAME`, `NAME:VERSION`, `NAME@ALIAS`, or an MLflow URI or local path."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..errors import InvalidReference
from .names import validate_alias, validate_model_name

# `runs:/...`, `models:/...`, `file:///...`, `s3://...`: a scheme followed by ':/'.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")

REFERENCE_FORMS = (
    "NAME (latest version), NAME:VERSION, NAME@ALIAS, an MLflow URI such as "
    "runs:/RUN_ID/model or models:/NAME/1, or a path to an MLflow model folder"
)


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. Exactly one of `name` (repository) or `uri` (outside) is set."""

    name: str | None = None
    version: int | None = None
    alias: str | None = None
    uri: str | None = None

    @property
    def in_repository(self) -> bool:
        return self.name is not None

    @classmethod
    def parse(cls, text: object) -> ModelRef:
        if isinstance(text, os.PathLike):  # a Path is always a folder, never a model name
            return cls(uri=str(Path(text).expanduser().resolve()))
        if not isinstance(text, str) or not text.strip():
            raise InvalidReference(f"A model reference is required: {REFERENCE_FORMS}.")
        text = text.strip()
        if text.lower().startswith("file:"):
            return cls(uri=_file_uri_path(text))
        if _URI.match(text):
            return cls(uri=text)
        if "/" in text or "\\" in text or text.startswith((".", "~")):
            return cls(uri=_local_path(text))
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(name=_name(name, text), alias=_alias(alias, text))
        if ":" in text:
            name, _, version = text.partition(":")
            return cls(name=_name(name, text), version=_version(version, text))
        return cls(name=_name(text, text))

    def __str__(self) -> str:
        if self.uri is not None:
            return self.uri
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return str(self.name)


def _name(name: str, text: str) -> str:
    try:
        return validate_model_name(name)
    except InvalidReference:
        raise
    except Exception as error:
        raise InvalidReference(f"Invalid model reference {text!r}: {error}") from None


def _alias(alias: str, text: str) -> str:
    if alias.lower() == "latest":
        return "latest"
    try:
        return validate_alias(alias)
    except Exception as error:
        raise InvalidReference(f"Invalid model reference {text!r}: {error}") from None


def _local_path(text: str) -> str:
    try:
        return str(Path(text).expanduser().resolve())
    except (RuntimeError, KeyError):  # "~someone" for a user this machine does not have
        raise InvalidReference(
            f"Invalid model reference {text!r}: no user {text.split('/')[0][1:]!r} on this "
            f"machine for '~'; {REFERENCE_FORMS}."
        ) from None


def _file_uri_path(text: str) -> str:
    parsed = urlparse(text)
    if parsed.netloc not in ("", "localhost"):
        raise InvalidReference(
            f"Invalid model reference {text!r}: a file: URI names a folder on this machine "
            "(file:///path/to/model)."
        )
    return str(Path(url2pathname(parsed.path)).expanduser().resolve())


def _version(version: str, text: str) -> int:
    if not re.fullmatch(r"[0-9]+", version) or int(version) < 1:
        raise InvalidReference(
            f"Invalid model reference {text!r}: the version after ':' is a positive whole "
            f"number, as in {text.partition(':')[0]}:3."
        )
    return int(version)
