"""Shadow traffic (scoring/shadow.py): real endpoint processes on 127.0.0.1, no mocks.

The shadows (a model that sleeps 1 s per call, one that raises) and the primaries mirroring to
them are started once for the module, all at the same time; a primary gets its shadow through
the endpoint's own settings (`ENDPOINT_CONFIG_ENV`), as a deployment hands them over. The
deployment test goes through `Deployments`: a shadow given by its deployment id.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import _endpoint_helpers as helpers
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from jupyter_sparkserve.config import ENDPOINT_CONFIG_ENV
from jupyter_sparkserve.scoring.shadow import ShadowMirror, read_pairs

pytestmark = pytest.mark.slow

JSON = "application/json"
CHANGED = {3.0, 7.0}  # the rows where the "changed" model answers differently
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("double", "x"), ColSpec("double", "z")]),
    outputs=Schema([ColSpec("double")]),
)


def _model_classes() -> dict[str, type]:
    """Defined in a function: cloudpickle saves them by value, for any process to load."""

    class Changed(mlflow.pyfunc.PythonModel):
        """x times ten, except -1 for the rows whose x is in CHANGED."""

        def predict(self, context, model_input, params=None):
            x = model_input["x"].to_numpy()
            return np.where(np.isin(x, [3.0, 7.0]), -1.0, x * 10)

    class Sleepy(mlflow.pyfunc.PythonModel):
        """x times ten, after sleeping 1 s per call."""

        def predict(self, context, model_input, params=None):
            time.sleep(1.0)
            return model_input["x"].to_numpy() * 10

    class TimesTen(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input["x"].to_numpy() * 10

    class Raising(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            raise RuntimeError("this shadow always fails")

    return {"changed": Changed, "sleepy": Sleepy, "raising": Raising, "times_ten": TimesTen}


def save_model(path: Path, model: mlflow.pyfunc.PythonModel) -> Path:
    # Rows declared independent: the load-time merge probe would call a sleeper ~20 times.
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model,
        signature=SIGNATURE,
        metadata={"sparkserve": {"batching": "merge"}},
        pip_requirements=["pandas"],
    )
    return path


def body(xs: list[float]) -> bytes:
    rows = [[x, 0.5] for x in xs]
    return json.dumps({"dataframe_split": {"columns": ["x", "z"], "data": rows}}).encode()


def predictions(response: requests.Response) -> list[float]:
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def wait_for(condition, timeout: float = 30.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Fleet:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: dict[str, helpers.ServerProcess] = {}
        self.folders: dict[str, Path] = {}

    def start(self, name: str, model: Path, **settings: object) -> None:
        env = {ENDPOINT_CONFIG_ENV: json.dumps(settings)} if settings else None
        home = self.base / "homes" / name
        self.servers[name] = helpers.start_sparkserve(
            name, model, self.base / "logs", home, env=env
        )

    def __getitem__(self, name: str) -> helpers.ServerProcess:
        return self.servers[name].wait_ready()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("shadow")
    (base / "logs").mkdir()
    classes = _model_classes()
    models = {name: save_model(base / name, model()) for name, model in classes.items()}
    primary = models["times_ten"]
    fleet = Fleet(base)
    try:
        for name in ("sleepy", "raising", "changed"):
            fleet.start(name, models[name])
        # The primaries know their shadows' ports before these answer.
        for name in ("sleepy", "raising", "changed"):
            folder = base / f"pairs-{name}"
            fleet.folders[name] = folder
            fleet.start(
                f"primary-{name}",
                primary,
                shadow=fleet.servers[name].url,
                shadow_folder=str(folder),
                shadow_flush_seconds=0.5,
            )
        yield fleet
    finally:
        for server in fleet.servers.values():
            server.stop()


# ------------------------------------------------------------------- through the endpoints


def test_a_sleeping_shadow_never_delays_the_primary(fleet: Fleet) -> None:
    primary, _ = fleet["primary-sleepy"], fleet["sleepy"]
    session = requests.Session()
    slowest = 0.0
    for x in range(40):
        started = time.perf_counter()
        answer = predictions(session.post(f"{primary.url}/invocations", data=body([x]),
                                          headers={"Content-Type": JSON}, timeout=10))  # fmt: skip
        slowest = max(slowest, time.perf_counter() - started)
        assert answer == [x * 10.0]
    # 40 requests in far less than the 40 s the shadow needs for them one by one; the
    # slowest well under the shadow's 1 s (the machine is shared: a generous bound).
    assert slowest < 0.5, slowest
    pairs = wait_for(
        lambda: (found := read_pairs(fleet.folders["sleepy"])).shadow_latency_ms.size and found,
        what="a recorded pair",
    )
    assert pairs.shadow_latency_ms.min() >= 1000
    assert pairs.primary_latency_ms.max() < 500
    assert (pairs.shadow["prediction"] == pairs.inputs["x"] * 10).all()


def test_a_failing_shadow_leaves_every_answer_right_and_is_counted(fleet: Fleet) -> None:
    primary, _ = fleet["primary-raising"], fleet["raising"]
    errors: list[str] = []

    def client(start: int) -> None:
        with requests.Session() as session:
            for x in range(start, start + 25):
                response = session.post(f"{primary.url}/invocations", data=body([x, x + 0.5]),
                                        headers={"Content-Type": JSON}, timeout=10)  # fmt: skip
                if response.status_code != 200 or predictions(response) != [x * 10, x * 10 + 5]:
                    errors.append(response.text)

    clients = [threading.Thread(target=client, args=(1000 * i,)) for i in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    assert errors == []
    found = wait_for(
        lambda: (pairs := read_pairs(fleet.folders["raising"])).shadow_failures == 100 and pairs,
        what="100 failures recorded",
    )
    assert found.inputs.empty and found.shadow_latency_ms.empty and found.dropped == 0


def test_the_recorded_pairs_are_what_was_sent_and_answered(fleet: Fleet) -> None:
    primary, _ = fleet["primary-changed"], fleet["changed"]
    sent = [[1.0, 2.0, 3.0], [4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0]]
    for xs in sent:
        answer = predictions(requests.post(f"{primary.url}/invocations", data=body(xs),
                                           headers={"Content-Type": JSON}, timeout=10))  # fmt: skip
        assert answer == [x * 10 for x in xs]
    pairs = wait_for(
        lambda: len((found := read_pairs(fleet.folders["changed"])).inputs) == 10 and found,
        what="10 mirrored rows",
    )
    rows = [x for xs in sent for x in xs]
    expected = pd.DataFrame({"x": rows, "z": [0.5] * len(rows)})
    pd.testing.assert_frame_equal(pairs.inputs, expected)
    assert pairs.primary["prediction"].tolist() == [x * 10 for x in rows]
    assert pairs.shadow["prediction"].tolist() == [-1.0 if x in CHANGED else x * 10 for x in rows]
    changed = pairs.inputs["x"][pairs.primary["prediction"] != pairs.shadow["prediction"]]
    assert set(changed) == CHANGED
    assert len(pairs.primary_latency_ms) == len(pairs.shadow_latency_ms) == len(sent)
    assert pairs.shadow_failures == 0 and pairs.dropped == 0


def test_a_mirrored_request_is_not_mirrored_again(fleet: Fleet) -> None:
    """A primary reached as someone's shadow does not pass the request on (no loops)."""
    primary = fleet["primary-changed"]
    before = len(read_pairs(fleet.folders["changed"]).inputs)
    response = requests.post(f"{primary.url}/invocations", data=body([11.0]),
                             headers={"Content-Type": JSON, "X-Sparkserve-Shadow": "1"},
                             timeout=10)  # fmt: skip
    assert predictions(response) == [110.0]
    time.sleep(2)  # its recorder writes every 0.5 s here
    assert len(read_pairs(fleet.folders["changed"]).inputs) == before


# ------------------------------------------------------------------ the mirror on its own


def test_sampling_is_roughly_honoured(fleet: Fleet, tmp_path: Path) -> None:
    shadow = fleet["changed"]
    mirror = ShadowMirror(shadow.url, tmp_path / "pairs", sample=0.3)
    mirror.start()
    answer = json.dumps({"predictions": [10.0]}).encode()
    for _ in range(1000):
        mirror.offer(body([1.0]), JSON, answer, 1.0)
    wait_for(lambda: mirror.busy() == 0, what="the mirror to send everything")
    mirror.stop()
    pairs = read_pairs(tmp_path / "pairs")
    # Binomial(1000, 0.3): 300 +- 14.5; beyond +-75 about once in 10^7 runs.
    assert 225 <= len(pairs.primary_latency_ms) <= 375
    assert pairs.dropped == 0 and pairs.shadow_failures == 0


def test_a_full_queue_drops_and_counts_never_blocks(fleet: Fleet, tmp_path: Path) -> None:
    shadow = fleet["sleepy"]
    mirror = ShadowMirror(shadow.url, tmp_path / "pairs", senders=1, queue_requests=5)
    mirror.start()
    answer = json.dumps({"predictions": [10.0]}).encode()
    slowest = 0.0
    for _ in range(50):
        started = time.perf_counter()
        mirror.offer(body([1.0]), JSON, answer, 1.0)
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.01, slowest  # a queue append, never a wait for the 1 s shadow
    assert mirror.dropped >= 50 - 5 - 1  # five wait, at most one is in flight
    mirror.stop()  # the five waiting are dropped too; the one in flight is recorded
    pairs = read_pairs(tmp_path / "pairs")
    assert pairs.dropped == mirror.dropped
    assert len(pairs.primary_latency_ms) + pairs.shadow_failures + pairs.dropped == 50
    assert len(pairs.primary_latency_ms) <= 1


def test_a_connection_the_shadow_closed_while_idle_is_opened_again(
    fleet: Fleet, tmp_path: Path
) -> None:
    shadow = fleet["changed"]
    mirror = ShadowMirror(shadow.url, tmp_path / "pairs", senders=1)
    mirror.start()
    answer = json.dumps({"predictions": [10.0]}).encode()
    mirror.offer(body([1.0]), JSON, answer, 1.0)
    wait_for(lambda: mirror.busy() == 0, what="the first request")
    time.sleep(6)  # uvicorn closes a connection idle for 5 s
    mirror.offer(body([2.0]), JSON, answer, 1.0)
    wait_for(lambda: mirror.busy() == 0, what="the second request")
    mirror.stop()
    pairs = read_pairs(tmp_path / "pairs")
    assert pairs.shadow["prediction"].tolist() == [10.0, 20.0]
    assert pairs.shadow_failures == 0


def test_a_dead_shadow_is_counted_as_failures(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{helpers.free_port()}"  # nothing listens there
    mirror = ShadowMirror(url, tmp_path / "pairs")
    mirror.start()
    answer = json.dumps({"predictions": [10.0]}).encode()
    for _ in range(200):
        mirror.offer(body([1.0]), JSON, answer, 1.0)
    wait_for(lambda: mirror.busy() == 0, what="the mirror to give up on everything")
    mirror.stop()
    pairs = read_pairs(tmp_path / "pairs")
    assert pairs.shadow_failures + pairs.dropped == 200
    assert pairs.inputs.empty


# ------------------------------------------------------------------------- as deployments


def test_a_deployment_mirrors_to_a_running_deployment(repo) -> None:
    from jupyter_sparkserve.deploy.deployments import Deployments
    from jupyter_sparkserve.errors import Conflict, InvalidInput

    classes = _model_classes()
    save = {"signature": SIGNATURE, "pip_requirements": ["pandas"]}
    primary_ref = repo.save(classes["times_ten"](), "primary", **save).ref
    shadow_ref = repo.save(classes["changed"](), "candidate", **save).ref
    service = Deployments(repo)
    with pytest.raises(InvalidInput, match="No deployment 'nosuchid' to mirror to") as error:
        service.check(primary_ref, "local", {"shadow": "nosuchid"}, register=True)
    assert error.value.field == "shadow"
    shadow = service.deploy(shadow_ref, "local", register=True)
    try:
        primary = service.deploy(primary_ref, "local", {"shadow": shadow.id}, register=True)
        assert primary.status == "running", primary.error
        shown = dict(primary.shown_details())
        mirrors = f"mirrors 100% of requests to {shadow.url} (deployment {shadow.id})"
        assert shown["shadow"] == mirrors
        xs = [1.0, 3.0, 5.0]
        answer = predictions(requests.post(f"{primary.url}/invocations", data=body(xs),
                                           headers={"Content-Type": JSON}, timeout=10))  # fmt: skip
        assert answer == [10.0, 30.0, 50.0]
        folder = repo.settings.home / "deployments" / primary.id / "shadow"
        pairs = wait_for(lambda: len((found := read_pairs(folder)).inputs) == 3 and found,
                         what="the mirrored rows")  # fmt: skip
        assert pairs.shadow["prediction"].tolist() == [10.0, -1.0, 50.0]
        service.undeploy(primary.id)
    finally:
        service.undeploy(shadow.id)
    # A shadow that is not running is refused, saying so.
    with pytest.raises(Conflict, match=f"Deployment {shadow.id} of {shadow_ref} is stopped"):
        service.check(primary_ref, "local", {"shadow": shadow.id})
