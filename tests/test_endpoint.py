"""The online endpoint (`sparkserve serve`) end to end, with real server processes on 127.0.0.1.

The core is conformance with MLflow: `mlflow models serve` and `sparkserve serve` run on the
same model folders, get the same requests, and must answer the same statuses, the same
predictions and the same error codes. Then micro-batching, the bearer token, limits, worker
processes and the default bind address.

Every server of this module is started at once (they load in parallel) the first time a test
needs one, and all are stopped when the module is done.
"""

from __future__ import annotations

import json
import math
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _endpoint_helpers as helpers
import numpy as np
import pandas as pd
import pytest
import requests

from jupyter_sparkserve.scoring.protocol import ModelInput, ScoringError, parse_request
from jupyter_sparkserve.scoring.scorer import Scorer

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
TOKEN_ENV = "SPARKSERVE_ENDPOINT_TOKEN"
CONFORMANCE_MODELS = ("iris", "two_columns", "scaled", "params_reader")


# ---------------------------------------------------------------------------------- servers


@dataclass
class Fleet:
    """This module's servers by name; indexing waits until that server answers /ping."""

    servers: dict[str, helpers.ServerProcess]
    token: str

    def __getitem__(self, name: str) -> helpers.ServerProcess:
        return self.servers[name].wait_ready()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, mlflow_model_dir: Path) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("endpoint")
    logs = base / "logs"
    logs.mkdir()
    models = base / "models"
    two_columns = helpers.save_two_columns(models / "two-columns")
    scaled = helpers.save_scaled(models / "scaled")
    params_reader = helpers.save_params_reader(models / "params-reader")
    times_ten = helpers.save_times_ten(models / "times-ten")
    times_ten_10ms = helpers.save_times_ten(models / "times-ten-10ms", delay=0.01)
    slow = helpers.save_slow(models / "slow", delay=2.0)
    token = secrets.token_urlsafe(24)

    servers: dict[str, helpers.ServerProcess] = {}

    def sparkserve(name: str, path: Path, *options: str, **keywords: Any) -> None:
        # Its own SPARKSERVE_HOME (the autouse `home` fixture is per test, these outlive tests).
        home = base / "homes" / name
        servers[name] = helpers.start_sparkserve(name, path, logs, home, *options, **keywords)

    try:
        for name, path in (
            ("iris", mlflow_model_dir),
            ("two_columns", two_columns),
            ("scaled", scaled),
            ("params_reader", params_reader),
        ):
            servers[f"mlflow-{name}"] = helpers.start_mlflow(
                f"mlflow-{name}", path, logs, base / "homes" / f"mlflow-{name}"
            )
            sparkserve(f"sparkserve-{name}", path)
        sparkserve("batching", times_ten_10ms)
        sparkserve("token", times_ten, env={TOKEN_ENV: token})
        sparkserve(
            "limits", slow, "--timeout", "0.5", "--max-body-mb", "0.001", "--head-timeout", "1"
        )
        sparkserve("workers", times_ten, "--workers", "2", "--head-timeout", "1")
        sparkserve("no-batching", times_ten, "--no-batching", host=None)  # default --host
        yield Fleet(servers, token)
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def pairs(fleet: Fleet) -> dict[str, tuple[helpers.ServerProcess, helpers.ServerProcess]]:
    """(MLflow's server, ours) on the same model folder, for each conformance model."""
    return {
        name: (fleet[f"mlflow-{name}"], fleet[f"sparkserve-{name}"]) for name in CONFORMANCE_MODELS
    }


def post(
    server: helpers.ServerProcess,
    body: Any,
    content_type: str | None = JSON,
    headers: dict[str, str] | None = None,
    session: requests.Session | None = None,
) -> requests.Response:
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    return (session or requests).post(
        f"{server.url}/invocations", data=body, headers=sent, timeout=60
    )


def split_body(columns: list[str], rows: list[list[Any]], **extra: Any) -> bytes:
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}, **extra}).encode()


def times_ten_body(x: float, z: float = 0.0) -> bytes:
    return split_body(["x", "z"], [[x, z]])


def read_metrics(server: helpers.ServerProcess, headers: dict[str, str] | None = None):
    """`/metrics` as {'name{labels}': value}."""
    response = requests.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    values: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


INVOCATIONS_200 = 'sparkserve_requests_total{path="/invocations",status="200"}'


def assert_json_error(response: requests.Response, error_code: str | None = None) -> dict:
    """Our error bodies are JSON objects with a string `error_code` and `message`."""
    assert response.headers["content-type"].startswith(JSON), response.headers
    payload = response.json()
    assert isinstance(payload, dict), payload
    assert isinstance(payload.get("error_code"), str), payload
    assert isinstance(payload.get("message"), str), payload
    if error_code is not None:
        assert payload["error_code"] == error_code, payload
    return payload


def assert_same_json(ours: Any, theirs: Any, where: str = "$") -> None:
    """Equal JSON values: same types (int is not float, null is not NaN), floats the same
    doubles bit for bit (the JSON texts may spell one differently: 1e-05 and 1e-5)."""
    if isinstance(theirs, float) and math.isnan(theirs):
        assert isinstance(ours, float) and math.isnan(ours), f"{where}: {ours!r} != NaN"
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: {ours!r} != {theirs!r}"
        assert list(ours) == list(theirs), f"{where}: keys {list(ours)} != {list(theirs)}"
        for key in theirs:
            assert_same_json(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), f"{where}: {ours!r} != {theirs!r}"
        assert len(ours) == len(theirs), f"{where}: {len(ours)} items != {len(theirs)}"
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            assert_same_json(mine, other, f"{where}[{index}]")
    else:
        assert type(ours) is type(theirs), f"{where}: {ours!r} is not like {theirs!r}"
        if isinstance(theirs, float):  # the same double to the last bit, not just close
            assert struct.pack("<d", ours) == struct.pack("<d", theirs), f"{where}: {ours!r}"
        else:
            assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


# ------------------------------------------------------------------- conformance with MLflow


@pytest.fixture(scope="module")
def frames(iris: tuple[pd.DataFrame, pd.Series]) -> dict[str, pd.DataFrame]:
    """A few input rows for each conformance model."""
    features, _ = iris
    return {
        # Two rows of each class, so that a column mix-up would change the answers.
        "iris": features.iloc[[0, 1, 50, 51, 100, 101]].reset_index(drop=True),
        "two_columns": helpers.two_columns_example(),
        "scaled": helpers.scaled_example(),
        "params_reader": helpers.scaled_example(),
    }


def _split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"columns": [str(c) for c in frame.columns], "data": frame.to_numpy().tolist()}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict(orient="records")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _with_string(frame: pd.DataFrame) -> bytes:
    split = _split(frame)
    split["data"][0][1] = "abc"
    return _dumps({"dataframe_split": split})


def _with_nan(frame: pd.DataFrame) -> bytes:
    split = _split(frame)
    split["data"][0][0] = float("nan")
    body = _dumps({"dataframe_split": split})  # json.dumps writes NaN as the literal NaN
    assert b"NaN" in body
    return body


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[pd.DataFrame], bytes]
    content_type: str = JSON


COMMON_CASES = [
    Case("split-one-row", lambda f: _dumps({"dataframe_split": _split(f.head(1))})),
    Case("split-many-rows", lambda f: _dumps({"dataframe_split": _split(f)})),
    Case(
        "split-columns-reordered",
        lambda f: _dumps({"dataframe_split": _split(f[list(f.columns)[::-1]])}),
    ),
    Case(
        "split-extra-column",
        lambda f: _dumps({"dataframe_split": _split(f.assign(unused=range(len(f))))}),
    ),
    Case(
        "split-with-params",
        lambda f: _dumps({"dataframe_split": _split(f), "params": {"factor": 2.0}}),
    ),
    Case("split-no-rows", lambda f: _dumps({"dataframe_split": _split(f.head(0))})),
    Case("records", lambda f: _dumps({"dataframe_records": _records(f)})),
    Case("instances", lambda f: _dumps({"instances": _records(f)})),
    Case("inputs", lambda f: _dumps({"inputs": _records(f)})),
    Case("csv", lambda f: f.to_csv(index=False).encode(), CSV),
    Case("parquet", lambda f: f.to_parquet(), PARQUET),
    Case("malformed-json", lambda f: b'{"dataframe_split": {"columns": ['),
    Case("json-list", lambda f: _dumps(f.to_numpy().tolist())),
    Case("unknown-top-level-key", lambda f: _dumps({"dataframe": _split(f)})),
    Case("text-plain", lambda f: _dumps({"dataframe_split": _split(f)}), "text/plain"),
    Case(
        "charset-latin-1",
        lambda f: _dumps({"dataframe_split": _split(f)}),
        "application/json; charset=latin-1",
    ),
    Case(
        "missing-column",
        lambda f: _dumps({"dataframe_split": _split(f.drop(columns=f.columns[-1]))}),
    ),
    Case("string-in-numeric-column", _with_string),
    Case("nan-literal", _with_nan),
]

SCALED_CASES = [  # the model whose predict reads `params` (factor, default 1.0)
    Case("params-int", lambda f: _dumps({"dataframe_split": _split(f), "params": {"factor": 3}})),
    Case(
        "params-wrong-type",
        lambda f: _dumps({"dataframe_split": _split(f), "params": {"factor": "abc"}}),
    ),
    Case(
        "params-unknown-name",
        lambda f: _dumps({"dataframe_split": _split(f), "params": {"other": 5}}),
    ),
    Case(
        "records-with-params",
        lambda f: _dumps({"dataframe_records": _records(f), "params": {"factor": 0.5}}),
    ),
    Case(
        "inputs-with-params",
        lambda f: _dumps({"inputs": _records(f), "params": {"factor": -2.0}}),
    ),
]


PARAMS_READER_CASES = [  # MLflow hands an LLM-style body's model params={}, others None
    Case("llm-messages", lambda f: _dumps({"messages": [{"role": "user", "content": "hi"}]})),
    Case("llm-prompt", lambda f: _dumps({"prompt": "hi", "max_tokens": 5})),
    Case("llm-input", lambda f: _dumps({"input": ["a", "b"]})),
    Case("split-without-params", lambda f: _dumps({"dataframe_split": _split(f)})),
    Case(
        "split-params-without-schema",
        lambda f: _dumps({"dataframe_split": _split(f), "params": {"temperature": 0.1}}),
    ),
]


def _conformance_params() -> list[Any]:
    params = []
    for model in CONFORMANCE_MODELS:
        cases = {"scaled": COMMON_CASES + SCALED_CASES, "params_reader": PARAMS_READER_CASES}
        for case in cases.get(model, COMMON_CASES):
            params.append(pytest.param(model, case, id=f"{model}-{case.name}"))
    return params


@pytest.mark.parametrize(("model", "case"), _conformance_params())
def test_answers_like_mlflow(pairs, frames, model: str, case: Case) -> None:
    """Same request to `mlflow models serve` and to `sparkserve serve` on the same model
    folder: same status; for 200s the same JSON; for errors our JSON error body carries
    MLflow's error_code (when MLflow's error body is JSON at all: its 415s are text)."""
    mlflow_server, our_server = pairs[model]
    body = case.build(frames[model])
    theirs = post(mlflow_server, body, case.content_type)
    ours = post(our_server, body, case.content_type)
    context = (
        f"\nMLflow: {theirs.status_code} {theirs.text[:500]}"
        f"\nours: {ours.status_code} {ours.text[:500]}"
    )
    assert ours.status_code == theirs.status_code, context
    if theirs.status_code == 200:
        assert ours.headers["content-type"].startswith(JSON)
        assert_same_json(json.loads(ours.content), json.loads(theirs.content))
        return
    ours_error = assert_json_error(ours)
    if theirs.headers.get("content-type", "").startswith(JSON):
        assert ours_error["error_code"] == theirs.json()["error_code"], context


def test_media_type_is_case_insensitive(pairs, frames) -> None:
    """Divergence, on MLflow's side: media types are case-insensitive (RFC 9110 8.3.1); we
    score `Application/JSON`, MLflow answers 415."""
    _, ours = pairs["iris"]
    body = _dumps({"dataframe_split": _split(frames["iris"])})
    upper = post(ours, body, "Application/JSON; Charset=UTF-8")
    assert upper.status_code == 200, upper.text
    assert upper.json() == post(ours, body).json()


def test_missing_content_type_is_415(pairs, frames) -> None:
    """Divergence, on MLflow's side: without a Content-Type MLflow fails with a bare 500
    (None.split); we answer 415 with a JSON error."""
    _, ours = pairs["iris"]
    response = post(ours, _dumps({"dataframe_split": _split(frames["iris"])}), None)
    assert response.status_code == 415
    assert_json_error(response, "UNSUPPORTED_MEDIA_TYPE")


# ---------------------------------------- batched answers are the answers of a request alone


@pytest.fixture(scope="module")
def scorers(tmp_path_factory: pytest.TempPathFactory, mlflow_model_dir: Path):
    """In-process scorers (no server: merging is deterministic when we pick the batch)."""
    import mlflow.pyfunc

    base = tmp_path_factory.mktemp("scorer-models")
    paths = {
        "iris": mlflow_model_dir,
        "echo": helpers.save_without_signature(base / "echo", helpers.Echo()),
        "columns_dict": helpers.save_without_signature(base / "dict", helpers.ColumnsDict()),
    }
    loaded = {}
    for name, path in paths.items():
        model_input = ModelInput(mlflow.pyfunc.load_model(str(path)))
        loaded[name] = (Scorer(model_input), model_input)
    return loaded


def _outcome(outcome: bytes | ScoringError) -> tuple[int, Any]:
    if isinstance(outcome, ScoringError):
        return outcome.status, outcome.error_code
    return 200, outcome


IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.mark.parametrize(
    ("model", "bodies"),
    [
        pytest.param(
            "iris",
            [
                split_body(IRIS_COLUMNS, [[5.1, 3.5, 1.4, 0.2]]),
                split_body(IRIS_COLUMNS, [[7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]),
                _dumps({"dataframe_records": [dict.fromkeys(IRIS_COLUMNS, 1.0)]}),
                split_body(IRIS_COLUMNS, [[5.1, "abc", 1.4, 0.2]]),
            ],
            id="iris-rows-and-a-bad-neighbour",
        ),
        pytest.param(
            "columns_dict",
            [split_body(["a"], [[1.0]]), split_body(["a"], [[2.0]])],
            id="dict-predictions",
        ),
        pytest.param(
            "echo",
            [split_body(["a"], [[1]]), split_body(["a"], [[1.5]]), split_body(["a"], [[2]])],
            id="int-next-to-float",
        ),
        pytest.param(
            "iris",
            [
                split_body(IRIS_COLUMNS, []),
                split_body(IRIS_COLUMNS, [[5.1, 3.5, 1.4, 0.2]]),
                split_body(IRIS_COLUMNS, [[6.3, 3.3, 6.0, 2.5]]),
            ],
            id="no-rows-next-to-a-row",
        ),
    ],
)
def test_batched_request_gets_its_solo_answer(scorers, model: str, bodies: list[bytes]) -> None:
    """Micro-batching must be invisible: each request in a merged batch gets exactly the
    status and body it gets when scored alone."""
    scorer, model_input = scorers[model]
    items = [parse_request(body, JSON, model_input) for body in bodies]
    keys = [item.merge_key for item in items]
    assert any(key is not None and keys.count(key) > 1 for key in keys), "nothing to merge"
    alone = [_outcome(scorer.score([item])[0]) for item in items]
    together = [_outcome(outcome) for outcome in scorer.score(items)]
    assert together == alone


def test_llm_style_body_is_answered_like_mlflow(scorers) -> None:
    """In process, against MLflow's own `invocations()` (the function its server calls)."""
    from mlflow.pyfunc.scoring_server import invocations

    scorer, model_input = scorers["echo"]
    body = _dumps({"input": ["hello", "world"]})
    theirs = invocations(body, JSON, model_input.model, model_input.input_schema)
    ours = scorer.score([parse_request(body, JSON, model_input)])[0]
    assert not isinstance(ours, ScoringError), ours.message
    assert theirs.status == 200
    assert json.loads(ours) == json.loads(theirs.response)


# ------------------------------------------------------------------------------ micro-batching


def test_concurrent_requests_each_get_their_own_prediction(fleet: Fleet) -> None:
    """200 concurrent single-row requests (half dataframe_split, half dataframe_records) to
    a model answering 10 * x: every request gets its own row's answer, and the metrics show
    that requests really shared predict calls."""
    server = fleet["batching"]
    rng = np.random.default_rng(20240611)
    xs = (rng.permutation(100_000)[:200] + rng.random(200)).tolist()  # all distinct
    zs = rng.normal(size=200).tolist()
    bodies = [
        times_ten_body(x, z) if i % 2 else _dumps({"dataframe_records": [{"x": x, "z": z}]})
        for i, (x, z) in enumerate(zip(xs, zs, strict=True))
    ]
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def send(index: int) -> tuple[int, int, Any]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            with lock:
                sessions.append(local.session)
        response = post(server, bodies[index], session=local.session)
        return index, response.status_code, response.json()

    try:
        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(send, range(len(bodies))))
    finally:
        for session in sessions:
            session.close()

    for index, status, payload in results:
        assert status == 200, payload
        assert payload == {"predictions": [pytest.approx(xs[index] * 10, rel=1e-12)]}, index

    deadline = time.monotonic() + 5
    while (metrics := read_metrics(server)).get(INVOCATIONS_200) != 200:
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)
    invocations = {key: v for key, v in metrics.items() if 'path="/invocations"' in key}
    assert invocations == {INVOCATIONS_200: 200}
    batches = metrics["sparkserve_batch_requests_count"]
    assert metrics["sparkserve_batch_requests_sum"] == 200
    assert metrics["sparkserve_batch_rows_sum"] == 200
    assert metrics["sparkserve_batch_requests_sum"] / batches > 1, metrics


# -------------------------------------------------------------------------------- bearer token


def test_token_is_required_for_invocations(fleet: Fleet) -> None:
    server = fleet["token"]
    response = post(server, times_ten_body(1.0))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert_json_error(response, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-token",
        "Bearer ",
        "Basic {token}",
        "Bearer {token}x",
        "Bearer {prefix}",
        "{token}",
    ],
    ids=["wrong", "empty", "other-scheme", "longer", "prefix", "no-scheme"],
)
def test_wrong_token_is_refused(fleet: Fleet, authorization: str) -> None:
    server = fleet["token"]
    value = authorization.format(token=fleet.token, prefix=fleet.token[:-1])
    response = post(server, times_ten_body(1.0), headers={"Authorization": value})
    assert response.status_code == 401
    assert_json_error(response, "UNAUTHENTICATED")


def test_right_token_is_accepted(fleet: Fleet) -> None:
    server = fleet["token"]
    for scheme in ("Bearer", "bearer"):  # auth schemes are case-insensitive
        headers = {"Authorization": f"{scheme} {fleet.token}"}
        response = post(server, times_ten_body(1.5), headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [15.0]}


def test_liveness_probes_need_no_token(fleet: Fleet) -> None:
    """/ping and /health stay open for probes; /metrics and /version do not."""
    server = fleet["token"]
    for path in ("/ping", "/health"):
        assert requests.get(f"{server.url}{path}", timeout=10).status_code == 200, path
    for path in ("/metrics", "/version"):
        response = requests.get(f"{server.url}{path}", timeout=10)
        assert response.status_code == 401, path
        assert_json_error(response, "UNAUTHENTICATED")
    authorized = {"Authorization": f"Bearer {fleet.token}"}
    assert read_metrics(server, headers=authorized)


def test_token_never_appears_in_server_output(fleet: Fleet) -> None:
    server = fleet["token"]
    post(server, times_ten_body(2.0), headers={"Authorization": f"Bearer {fleet.token}"})
    post(server, times_ten_body(2.0), headers={"Authorization": f"Bearer {fleet.token}-"})
    post(server, b"{not json", headers={"Authorization": f"Bearer {fleet.token}"})
    output = server.output()
    assert "with a bearer token" in output
    assert fleet.token not in output
    assert fleet.token not in " ".join(server.process.args)


# -------------------------------------------------------------------------------------- limits


def test_body_over_the_limit_is_413(fleet: Fleet) -> None:
    """--max-body-mb 0.001 (1,048 bytes), with a Content-Length and with a chunked body."""
    server = fleet["limits"]
    rows = [[float(i), 0.0] for i in range(100)]
    body = split_body(["x", "z"], rows)
    assert len(body) > 1100
    response = post(server, body)
    assert response.status_code == 413
    assert_json_error(response, "REQUEST_TOO_LARGE")

    chunked = post(server, (body[i : i + 500] for i in range(0, len(body), 500)))
    assert chunked.status_code == 413
    assert_json_error(chunked, "REQUEST_TOO_LARGE")


def test_slow_prediction_hits_the_deadline(fleet: Fleet) -> None:
    """A model sleeping 2 s under --timeout 0.5: 504 DEADLINE_EXCEEDED in about 0.5 s; once
    the abandoned predict call is over the server answers again."""
    server = fleet["limits"]
    started = time.monotonic()
    response = post(server, times_ten_body(1.0))
    assert response.status_code == 504
    assert time.monotonic() - started < 1.8
    assert_json_error(response, "DEADLINE_EXCEEDED")

    deadline = time.monotonic() + 15
    while True:  # x < 0: the slow model answers at once
        quick = post(server, times_ten_body(-1.0))
        if quick.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert quick.status_code == 200, quick.text
    assert quick.json() == {"predictions": [0.0]}


def _trickle_head(port: int, lines: list[bytes], every: float, give_up: float) -> bytes:
    """Open a connection and send `lines` one every `every` seconds (slowloris); what the
    server sent back by the time it closed the connection (b"" if it never answered)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as connection:
        deadline = time.monotonic() + give_up
        for line in lines:
            connection.sendall(line)
            connection.settimeout(every)
            try:
                chunk = connection.recv(4096)
            except TimeoutError:
                continue
            received += chunk
            break  # the server spoke (and closes): the head was cut short
        connection.settimeout(max(0.1, deadline - time.monotonic()))
        while chunk := connection.recv(4096):
            received += chunk
    return received


@pytest.mark.parametrize("server", ["limits", "workers"])
def test_a_request_head_that_trickles_in_is_cut_off(fleet: Fleet, server: str) -> None:
    """Slowloris: one header line every 0.4 s would hold a connection for ever; with
    --head-timeout 1 the endpoint answers 408 and closes it, and keeps serving others.
    (Also in --workers mode, whose spawned processes read the timeout themselves.)"""
    port = fleet[server].port
    head = [b"POST /invocations HTTP/1.1\r\n"] + [b"X-Slow-%d: 1\r\n" % i for i in range(25)]
    started = time.monotonic()
    answer = _trickle_head(port, head, every=0.4, give_up=15)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"REQUEST_TIMEOUT" in answer
    assert time.monotonic() - started < 5  # cut off, not served after 25 lines (10 s)
    silent = _trickle_head(port, [b""], every=3, give_up=10)  # connects, sends nothing
    assert silent.startswith(b"HTTP/1.1 408 "), silent
    assert requests.get(f"http://127.0.0.1:{port}/ping", timeout=10).status_code == 200


def test_get_invocations_is_405(pairs) -> None:
    mlflow_server, ours = pairs["iris"]
    response = requests.get(f"{ours.url}/invocations", timeout=10)
    assert response.status_code == 405
    assert requests.get(f"{mlflow_server.url}/invocations", timeout=10).status_code == 405
    assert_json_error(response)


def test_405_names_the_allowed_method(pairs) -> None:
    mlflow_server, ours = pairs["iris"]
    theirs = requests.get(f"{mlflow_server.url}/invocations", timeout=10)
    assert theirs.headers.get("allow") == "POST"
    response = requests.get(f"{ours.url}/invocations", timeout=10)
    assert response.headers.get("allow") == "POST"


def test_unknown_path_is_404(pairs) -> None:
    mlflow_server, ours = pairs["iris"]
    response = requests.get(f"{ours.url}/no/such/path", timeout=10)
    assert response.status_code == 404
    assert requests.get(f"{mlflow_server.url}/no/such/path", timeout=10).status_code == 404
    assert_json_error(response, "ENDPOINT_NOT_FOUND")


def test_unknown_paths_do_not_each_get_a_metrics_label(pairs) -> None:
    _, ours = pairs["iris"]
    for _ in range(3):
        requests.get(f"{ours.url}/scan-{secrets.token_hex(4)}", timeout=10)
    assert "/scan-" not in requests.get(f"{ours.url}/metrics", timeout=10).text


def test_version_is_the_mlflow_version(pairs) -> None:
    import mlflow

    mlflow_server, ours = pairs["iris"]
    response = requests.get(f"{ours.url}/version", timeout=10)
    assert response.status_code == 200
    assert response.text == mlflow.__version__
    assert response.text == requests.get(f"{mlflow_server.url}/version", timeout=10).text


# ----------------------------------------------------------------- workers, batching off, host


def _score_concurrently(server: helpers.ServerProcess, xs: list[float]) -> None:
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda x: post(server, times_ten_body(x)), xs))
    for x, response in zip(xs, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [pytest.approx(x * 10)]}


def test_two_workers_serve(fleet: Fleet) -> None:
    """--workers 2: two worker processes behind one port, and requests are answered."""
    server = fleet["workers"]
    assert "(2 workers" in server.output()
    commands = server.group_commands()
    if commands is not None:
        assert sum("spawn_main" in command for command in commands) == 2, commands
    _score_concurrently(server, [i + 0.25 for i in range(16)])


def test_no_batching_serves(fleet: Fleet) -> None:
    """--no-batching: concurrent requests are answered right, and no batch is recorded."""
    server = fleet["no-batching"]
    _score_concurrently(server, [i + 0.5 for i in range(16)])
    metrics = read_metrics(server)
    assert metrics[INVOCATIONS_200] == 16
    assert metrics["sparkserve_batch_requests_count"] == 0  # no batcher, no batches


def _listening_addresses(port: int) -> set[str] | None:
    """Local addresses of the TCP sockets listening on `port`, from /proc/net (Linux)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    addresses = set()
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, port_hex = fields[1].partition(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                else:
                    addresses.add(f"ipv6:{address}")
    return addresses


def test_binds_loopback_by_default(fleet: Fleet) -> None:
    """Started without --host: it says it serves on 127.0.0.1, answers there, and (where
    /proc/net tells) listens on 127.0.0.1 only."""
    server = fleet["no-batching"]
    assert f"on http://127.0.0.1:{server.port} " in server.stderr_path.read_text()
    assert requests.get(f"{server.url}/ping", timeout=10).status_code == 200
    addresses = _listening_addresses(server.port)
    if addresses is not None:
        assert addresses == {"127.0.0.1"}


def test_a_model_can_opt_out_of_batching_in_its_metadata(tmp_path: Path, iris_model) -> None:
    import mlflow.sklearn

    from jupyter_sparkserve.scoring.server import EndpointConfig, ScoringApp

    opted_out = tmp_path / "opted-out"
    mlflow.sklearn.save_model(
        iris_model,
        str(opted_out),
        pip_requirements=["scikit-learn"],
        metadata={"sparkserve": {"batching": False}},
    )
    assert ScoringApp(EndpointConfig(model_path=str(opted_out))).batching is False
    plain = tmp_path / "plain"
    mlflow.sklearn.save_model(iris_model, str(plain), pip_requirements=["scikit-learn"])
    assert ScoringApp(EndpointConfig(model_path=str(plain))).batching is True


def test_json_errors_keep_mlflows_words_and_deep_nesting_is_a_counted_400(pairs) -> None:
    """Clients match on MLflow's "Invalid input. " wording for a body that is not JSON; JSON
    nested past Python's recursion limit is the same 400 (MLflow answers a 500 there), in
    JSON and counted by /metrics."""
    mlflow_server, ours = pairs["iris"]
    malformed = b'{"dataframe_split": {"columns": ['
    theirs = post(mlflow_server, malformed).json()["message"]
    mine = post(ours, malformed).json()["message"]
    wording = "Invalid input. Ensure that input is a valid JSON formatted string."
    assert theirs.startswith(wording) and mine.startswith(wording)
    assert "\nInput:" not in mine  # MLflow quotes the whole body back; we do not

    key = 'sparkserve_requests_total{path="/invocations",status="400"}'
    before = read_metrics(ours).get(key, 0.0)
    deep = post(ours, b"[" * 100_000 + b"]" * 100_000)
    assert_json_error(deep, "BAD_REQUEST")
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["message"]
    assert read_metrics(ours).get(key, 0.0) == before + 1


def test_the_numeric_fast_path_predicts_mlflows_bytes(tmp_path: Path) -> None:
    """All-double signature: the fast path hands the flavor the column-major frame MLflow's
    own path builds, so BLAS adds up in the same order and every prediction is the same to
    the last bit. (A row-major frame gives other last bits on this data: the test can fail.)"""
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(5000, 30)), columns=[f"c{i}" for i in range(30)])
    model = LinearRegression().fit(frame, frame.sum(axis=1) + rng.normal(size=5000))
    path = tmp_path / "linear"
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(frame), pip_requirements=["scikit-learn"]
    )
    loaded = mlflow.pyfunc.load_model(str(path))
    model_input = ModelInput(loaded)
    assert model_input.numeric_columns is not None  # the fast path applies
    rows = frame.to_numpy().tolist()
    theirs = np.asarray(loaded.predict(pd.DataFrame(rows, columns=frame.columns)))
    ours = np.asarray(model_input.predict_numeric(list(frame.columns), rows))
    assert ours.tobytes() == theirs.tobytes()
    row_major = pd.DataFrame(np.array(rows, order="C"), columns=frame.columns, copy=False)
    assert np.asarray(row_major).flags.c_contiguous
    row_major = model.predict(row_major)
    assert row_major.tobytes() != theirs.tobytes()
