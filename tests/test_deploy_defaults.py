"""A server's configured defaults for the targets' options (`SparkserveApp.deploy_defaults`):
the Deploy dialog shows them, REST deploys use them where an option is not given, and bad
ones stop the server saying which."""

from __future__ import annotations

from typing import Any

import pytest
from _api import Api, api_fixture  # noqa: F401 (fixtures)
from _endpoint_helpers import free_port
from test_server_deployments import settled

from jupyter_sparkserve.deploy.targets import check_defaults, with_defaults
from jupyter_sparkserve.errors import InvalidInput

PORT = free_port()


@pytest.fixture(name="jp_server_config")
def server_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_sparkserve": True}},
        "SparkserveApp": {
            "allowed_dirs": [str(tmp_path_factory.getbasetemp())],
            "deploy_defaults": {"local": {"port": PORT}, "sagemaker": {"role": "arn:role"}},
        },
    }


async def test_configured_defaults_show_in_status_and_serve_a_deploy(
    api: Api, registered: str
) -> None:
    targets = {t["target"]: t for t in (await api("GET", "status")).body["targets"]}
    defaults = {o["name"]: o["default"] for o in targets["local"]["options"]}
    assert defaults["port"] == PORT and defaults["host"] == "127.0.0.1"
    role = {o["name"]: o["default"] for o in targets["sagemaker"]["options"]}["role"]
    assert role == "arn:role"

    created = await api("POST", "deployments", body={"ref": registered})
    running = await settled(api, created.body["id"])
    assert running.body["url"] == f"http://127.0.0.1:{PORT}", running.body["error"]
    answer = await api("DELETE", f"deployments/{created.body['id']}")
    assert answer.body["status"] == "stopped"


def test_given_options_win_over_the_defaults_and_bad_defaults_are_refused() -> None:
    defaults = {"local": {"port": 9000, "host": "127.0.0.1"}}
    assert with_defaults("local", {"port": 9001, "host": None}, defaults) == {
        "port": 9001,
        "host": "127.0.0.1",
    }
    with pytest.raises(InvalidInput, match="Unknown target 'mars'"):
        check_defaults({"mars": {}})
    with pytest.raises(InvalidInput, match="port"):
        check_defaults({"local": {"port": "eighty"}})
    with pytest.raises(InvalidInput, match="Give local's token per deploy, not as a default"):
        check_defaults({"local": {"token": "secret"}})
