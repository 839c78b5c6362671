"""The server extension, through a real Jupyter server (pytest-jupyter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_sparkserve import __version__
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository import database as db


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_sparkserve": True}}}


async def test_status_reports_the_shared_repository(jp_fetch, home: Path, mlflow_model_dir):
    # Saved by another process on the same SPARKSERVE_HOME (here: the core directly).
    ModelRepository(Settings.from_env()).import_model(mlflow_model_dir, "iris")
    response = await jp_fetch("sparkserve", "api", "v1", "status")
    assert response.code == 200
    body = json.loads(response.body)
    assert body["version"] == __version__
    assert body["home"] == str(home)
    assert body["repository"] == {"models": 1, "versions": 1, "schema_version": db.SCHEMA_VERSION}


async def test_every_handler_refuses_anonymous_requests(jp_fetch):
    from jupyter_sparkserve.server.handlers import handler_routes

    for route, _handler in handler_routes():
        for method in ("GET", "POST", "PUT", "DELETE"):
            with pytest.raises(HTTPClientError) as caught:
                await jp_fetch(
                    *route.split("/"),
                    method=method,
                    headers={"Authorization": ""},  # no token, no cookie
                    allow_nonstandard_methods=True,
                    body=None if method in ("GET", "DELETE") else b"{}",
                )
            # 403 where the method exists; 405 where it does not (checked before auth).
            assert caught.value.code in (403, 405), (route, method)
            if method == "GET":
                assert caught.value.code == 403, route


class TestBrokenConfiguration:
    """A bad setting fails requests with a readable JSON error; the server keeps running."""

    @pytest.fixture
    def jp_server_config(self):
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_sparkserve": True}},
            "SparkserveApp": {"database_url": "definitely not a url"},
        }

    async def test_errors_are_json_with_code_and_message(self, jp_fetch):
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("sparkserve", "api", "v1", "status")
        assert caught.value.code == 400
        body = json.loads(caught.value.response.body)
        assert body["error"] == "INVALID_INPUT"
        assert "SQLAlchemy URL" in body["message"]
        assert "definitely not a url" not in body["message"]  # a URL may hold a password
