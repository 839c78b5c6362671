"""The sparkserve REST API as the handler tests call it: every answer, success or error, is
checked against jupyter_sparkserve/server/openapi.yaml before the test sees it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

import jupyter_sparkserve.server

SPEC_PATH = Path(jupyter_sparkserve.server.__file__).parent / "openapi.yaml"
PREFIX = "/sparkserve/api/v1"


@cache
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


@cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(spec())


def route_template(route: str) -> str:
    """`sparkserve/api/v1/models/(?P<name>[^/]+)` -> `/models/{name}` (the spec's form)."""
    path = route.removeprefix("sparkserve/api/v1")
    return "/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path).strip("/")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # decoded JSON; None for an empty body
    headers: Any

    @property
    def error(self) -> str:
        return self.body["error"]

    @property
    def message(self) -> str:
        return self.body["message"]


class Api:
    """`await api("POST", "models", body={...})` -> Answer, checked against the spec."""

    def __init__(self, fetch: Any) -> None:
        self.fetch = fetch

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is None and method in ("POST", "PUT"):
            data = b""
        response = await self.fetch(
            "sparkserve",
            "api",
            "v1",
            *path.split("/"),
            method=method,
            body=data,
            params=params,
            headers=headers,
            raise_error=False,
            allow_nonstandard_methods=True,
            request_timeout=180,
        )
        content_type = (response.headers.get("Content-Type") or "").split(";")[0] or None
        if response.code != 204:
            assert content_type == "application/json", (response.code, response.body[:200])
        openapi().validate_response(
            MockRequest(
                "http://localhost",
                method.lower(),
                f"{PREFIX}/{path}",
                args={k: str(v) for k, v in (params or {}).items()},
            ),
            MockResponse(response.body or b"", response.code, content_type=content_type),
        )
        decoded = json.loads(response.body) if response.body else None
        return Answer(response.code, decoded, response.headers)


# Imported by the test modules under other names: a fixture's own name would shadow the
# parameter that requests it.
@pytest.fixture(name="jp_server_config")
def server_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The extension on, with the session's temporary folders (each test's own, the shared
    model folders) allowed to jobs, workflows and imports besides the server's root_dir."""
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_sparkserve": True}},
        "SparkserveApp": {"allowed_dirs": [str(tmp_path_factory.getbasetemp())]},
    }


@pytest.fixture(name="api")
def api_fixture(jp_fetch: Any) -> Api:
    return Api(jp_fetch)
