"""Where sparkserve keeps things, read from the environment.

One `Settings` value describes a repository: the kernel, the Jupyter server, the CLI and
endpoint processes that share `SPARKSERVE_HOME` see the same models. The server extension
exposes the same fields as traitlets and builds a `Settings` from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "SPARKSERVE_HOME"
DATABASE_URL_ENV = "SPARKSERVE_DATABASE_URL"
ARTIFACT_ROOT_ENV = "SPARKSERVE_ARTIFACT_ROOT"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
REGISTRY_URI_ENV = "MLFLOW_REGISTRY_URI"

DEFAULT_HOME = Path("~/.sparkserve")


@dataclass(frozen=True)
class Settings:
    """Locations of one repository and of the MLflow store it registers into."""

    home: Path
    database_url: str
    artifact_root: Path
    mlflow_tracking_uri: str
    mlflow_registry_uri: str | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        mlflow_tracking_uri: str | None = None,
    ) -> Settings:
        """Settings from explicit values, then the environment, then the embedded defaults."""
        env = os.environ if environ is None else environ
        home_path = Path(home or env.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        artifact_root = env.get(ARTIFACT_ROOT_ENV)
        return cls(
            home=home_path,
            database_url=database_url
            or env.get(DATABASE_URL_ENV)
            or _sqlite_url(home_path / "repository.db"),
            artifact_root=(
                Path(artifact_root).expanduser().resolve()
                if artifact_root
                else home_path / "artifacts"
            ),
            mlflow_tracking_uri=mlflow_tracking_uri
            or env.get(TRACKING_URI_ENV)
            or _sqlite_url(home_path / "mlflow.db"),
            mlflow_registry_uri=env.get(REGISTRY_URI_ENV) or None,
        )


def _sqlite_url(path: Path) -> str:
    # URL.create quotes what a plain f-string would let through ('?' in a folder name).
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=str(path)).render_as_string()


def safe_uri(uri: str) -> str:
    """A URI or SQLAlchemy URL with its password (or whole user info) masked, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unreadable URI>"
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
