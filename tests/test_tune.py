"""`sparkserve tune`: batching swept against real local endpoints, loaded by sparkserve's own
load generator (CI has no wrk); the chosen setting is what a deployment of the version runs
unless its options say otherwise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psutil
import pytest
import requests
from click.testing import CliRunner

from jupyter_sparkserve.cli import main
from jupyter_sparkserve.config import ENDPOINT_CONFIG_ENV
from jupyter_sparkserve.deploy import local, tuned
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.tuning import parse_p99, request_bodies, tune
from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.load import drive
from jupyter_sparkserve.warm import client, protocol

GENEROUS_MS = 500.0  # met on a loaded 2-core machine; what is tested is the choice
CLIENTS = 8


def batching_of(pid: int) -> dict[str, object]:
    """The batching fields of EndpointConfig the endpoint process was started with."""
    settings = json.loads(psutil.Process(pid).environ().get(ENDPOINT_CONFIG_ENV, "{}"))
    return {name: settings[name] for name in tuned.BATCHING_OPTIONS if name in settings}


def test_tune_keeps_a_setting_that_meets_the_target_and_deployments_use_it(
    repo: ModelRepository,
    registered: str,
    home: Path,
    warm_run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a user's default: tune starts a warm scorer, and every endpoint forks from it.
    monkeypatch.setenv(protocol.MODE_ENV, "auto")
    heard = []
    result = tune(
        repo, registered, GENEROUS_MS, clients=CLIENTS, seconds=0.5, batch_rows=(1, 8),
        waits_ms=(0.0, 2.0), generator="python", progress=heard.append,
    )  # fmt: skip
    assert heard == result.sweep and len(result.sweep) >= 3  # both dimensions, then confirmed
    assert client.status() is not None  # the endpoints were forked from it
    chosen = result.chosen
    assert chosen is not None and chosen.phase == "confirm", result.message
    assert chosen.meets and chosen.load.p99_ms <= GENEROUS_MS and chosen.load.errors == 0
    fastest_met = max((m for m in result.sweep if m.meets and m.phase != "confirm"),
                      key=lambda m: m.load.rps)  # fmt: skip
    assert chosen.setting == fastest_met.setting  # confirmed at once: nothing missed here
    saved = json.loads(tuned.tuning_file(home, "iris", 1).read_text())
    assert saved["p99_target_ms"] == GENEROUS_MS and saved["clients"] == CLIENTS
    assert saved["machine"] and saved["date"] and len(saved["sweep"]) == len(result.sweep)

    # Measured again, on an endpoint of its own: the load generator's count is the
    # endpoint's (at most one answer per connection lands after the window), and p99 holds.
    version = repo.resolve(registered)
    bodies = request_bodies(version.local_path(), 1, registered)
    settings = {"max_batch_rows": chosen.setting.max_batch_rows,
                "max_wait_ms": chosen.setting.max_wait_ms}  # fmt: skip
    endpoint = local.start_endpoint(
        version.local_path(), log_file=home / "again.log", settings=settings
    )
    try:
        again = drive(endpoint.host, endpoint.port, bodies, clients=CLIENTS, seconds=0.5,
                      warmup=0, generator="python")  # fmt: skip
        metrics = requests.get(f"{endpoint.url}/metrics", timeout=5).text
    finally:
        local.stop_endpoint(endpoint)
    answered = 'sparkserve_requests_total{path="/invocations",status="200"} '
    served = int(next(ln for ln in metrics.splitlines() if ln.startswith(answered)).split()[-1])
    assert 0 <= served - again.requests <= CLIENTS and again.requests > 0
    assert again.errors == 0 and again.p99_ms <= GENEROUS_MS

    # Spawned, not forked: a spawned process's environment is where it read its settings.
    monkeypatch.setenv(protocol.MODE_ENV, "off")
    service = Deployments(repo)
    deployment = service.deploy(registered)
    assert batching_of(deployment.details["pid"]) == settings
    assert f"batching tuned for p99 <= {GENEROUS_MS:g} ms" in deployment.details["tuned_batching"]
    assert ("batching", deployment.details["tuned_batching"]) in deployment.shown_details()
    service.undeploy(deployment.id)

    # An option the deployment sets wins, and the tuned pair is then not used at all.
    explicit = service.deploy(registered, "local", {"max_batch_rows": 3})
    assert batching_of(explicit.details["pid"]) == {"max_batch_rows": 3}
    assert "tuned_batching" not in explicit.details
    service.undeploy(explicit.id)


def test_an_impossible_target_is_said_plainly_and_nothing_is_saved(
    iris_saved: str, home: Path
) -> None:
    answer = CliRunner().invoke(
        main,
        ["tune", iris_saved, "--p99", "0.01ms", "--clients", "1", "--seconds", "0.3",
         "--load", "python", "--json"],
    )  # fmt: skip
    assert answer.exit_code == 1, answer.output
    result = json.loads(answer.stdout)
    assert result["chosen"] is None and result["saved_to"] is None
    assert result["message"].startswith("No setting meets p99 <= 0.01 ms at 1 client")
    said = re.search(r"the best p99 seen was ([\d.]+) ms", result["message"])
    assert said and float(said[1]) == pytest.approx(
        min(m["p99_ms"] for m in result["sweep"]), abs=0.01
    )
    assert not tuned.tuning_file(home, "iris", 1).exists()


@pytest.mark.parametrize(
    ("text", "milliseconds"), [("20ms", 20.0), ("0.02s", 20.0), ("20", 20.0), ("1.5 MS", 1.5)]
)
def test_p99_targets_are_read_with_their_unit(text: str, milliseconds: float) -> None:
    assert parse_p99(text) == pytest.approx(milliseconds)


def test_a_bad_p99_target_says_what_to_write(iris_saved: str) -> None:
    with pytest.raises(InvalidInput, match=r"write it as 20ms, 0\.02s or 20"):
        parse_p99("-3ms")
    answer = CliRunner().invoke(main, ["tune", iris_saved, "--p99", "fast"])
    assert answer.exit_code == 1
    assert "'fast' is not a positive duration: write it as 20ms, 0.02s or 20" in answer.output
