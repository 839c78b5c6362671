"""An endpoint's settings (`EndpointConfig`), kept apart from the server so that the targets
and the faces that declare them import nothing heavy.

A deployment sets some of these fields through its target's options (`deploy/local_target.py`,
`ENDPOINT_CONFIG_OPTIONS`: an option and the field it sets share one name); they reach the
endpoint process as JSON in `ENDPOINT_CONFIG_ENV`, which names only the fields it sets
(`with_environment`), whether the process is spawned, forked or a container's entrypoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..config import DEFAULT_HEAD_TIMEOUT_SECONDS, ENDPOINT_CONFIG_ENV


@dataclass(frozen=True)
class EndpointConfig:
    model_path: str
    model_ref: str = ""
    max_body_bytes: int = 50 * 1024 * 1024
    timeout_seconds: float = 60.0
    batching: bool = True
    max_batch_rows: int = 256
    max_wait_ms: float = 1.0
    # Seconds a connection may take to send a request's line and headers (slowloris).
    head_timeout_seconds: float = DEFAULT_HEAD_TIMEOUT_SECONDS
    # Started for a SageMaker transform job: CSV and JSON Lines mini-batches (`transform`).
    transform: bool = False
    workers: int = 1
    # Payload capture (`capture.py`): a share of requests and answers kept as Parquet files
    # in `capture_folder`, the oldest removed beyond `capture_max_mb`.
    capture: bool = False
    capture_sample: float = 1.0
    capture_max_mb: int = 100
    capture_folder: str = ""
    capture_flush_seconds: float = 2.0  # how often queued captures become a file
    # Shadow traffic (`shadow.py`): a share of answered requests mirrored to the endpoint at
    # the URL `shadow`, the pairs kept as Parquet files in `shadow_folder` (size-capped).
    shadow: str = ""
    shadow_sample: float = 1.0
    shadow_max_mb: int = 100
    shadow_folder: str = ""
    shadow_flush_seconds: float = 5.0  # how often recorded pairs become a file

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EndpointConfig:
        return cls(**json.loads(text))

    def with_settings(self, settings: Mapping[str, Any]) -> EndpointConfig:
        """This config with the fields `settings` names replaced."""
        return replace(self, **settings)

    def with_environment(self, environ: Mapping[str, str]) -> EndpointConfig:
        """This config with the fields set by `ENDPOINT_CONFIG_ENV` (JSON), if any."""
        text = environ.get(ENDPOINT_CONFIG_ENV)
        return self.with_settings(json.loads(text)) if text else self


def default(name: str) -> Any:
    """A field's default, for the options that set it to show."""
    return next(field.default for field in fields(EndpointConfig) if field.name == name)
