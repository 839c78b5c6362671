"""The server extension, through a real Jupyter server (pytest-jupyter)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from _api import route_template, spec
from openapi_spec_validator import validate
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
    from tornado import web

    from jupyter_sparkserve.server.handlers import handler_routes

    for route, handler in handler_routes():
        path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)  # any value: auth comes first
        for method in ("GET", "POST", "PUT", "DELETE"):
            defined = getattr(handler, method.lower()) is not getattr(
                web.RequestHandler, method.lower()
            )
            with pytest.raises(HTTPClientError) as caught:
                await jp_fetch(
                    *path.split("/"),
                    method=method,
                    headers={"Authorization": ""},  # no token, no cookie
                    allow_nonstandard_methods=True,
                    body=None if method in ("GET", "DELETE") else b"{}",
                )
            # 403 where the method exists; where it does not, 405, or 403 from the XSRF
            # check that comes first for a POST.
            assert caught.value.code in ((403,) if defined else (403, 405)), (route, method)
            assert json.loads(caught.value.response.body)["error"].startswith("HTTP_4")


def test_the_openapi_spec_is_valid() -> None:
    validate(spec())


def test_the_spec_describes_exactly_the_routes() -> None:
    from tornado import web

    from jupyter_sparkserve.server.handlers import handler_routes

    served = {
        route_template(route): {
            method
            for method in ("get", "post", "put", "delete")
            if getattr(handler, method) is not getattr(web.RequestHandler, method)
        }
        for route, handler in handler_routes()
    }
    described = {
        path: set(operations) - {"parameters"} for path, operations in spec()["paths"].items()
    }
    assert served == described


class TestSmtpSettings:
    """The SMTP traitlets reach job processes only, never the server's own environment
    (which every kernel and endpoint it starts would inherit)."""

    PASSWORD = "smtp-traitlet-s3cret"

    @pytest.fixture
    def jp_server_config(self):
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_sparkserve": True}},
            "SparkserveApp": {
                "smtp_host": "smtp.example.com",
                "smtp_user": "robot",
                "smtp_password": self.PASSWORD,
            },
        }

    async def test_the_password_stays_out_of_the_server_environment(self, jp_fetch, jp_serverapp):
        assert (await jp_fetch("sparkserve", "api", "v1", "status")).code == 200
        assert "SPARKSERVE_SMTP_PASSWORD" not in os.environ
        assert self.PASSWORD not in os.environ.values()
        jobs = jp_serverapp.web_app.settings["sparkserve_services"].jobs()
        assert dict(jobs.settings.smtp_env) == {
            "SPARKSERVE_SMTP_HOST": "smtp.example.com",
            "SPARKSERVE_SMTP_USER": "robot",
            "SPARKSERVE_SMTP_PASSWORD": self.PASSWORD,
        }


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
