"""A request's predictions never depend on the requests merged next to it.

MLflow scores each request alone; the endpoint merges concurrent requests into one `predict`
call. For a regressor whose BLAS call takes another path for some rows when the call is
larger, merging would change last bits, so the load-time probe (scoring/invariance.py) keeps
such a model to one call per request. Hypothesis sends random frames, in every body shape
the fast paths take, alone and merged, through the endpoint's own scorer, and checks each
request gets the bytes it gets alone and the predictions MLflow's own server function gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from conftest import FAST_SAVE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_sparkserve.scoring.invariance import probe
from jupyter_sparkserve.scoring.protocol import ScoringError, parse_request
from jupyter_sparkserve.scoring.scorer import Scorer
from jupyter_sparkserve.scoring.server import EndpointConfig, ScoringApp

JSON = "application/json"
FEATURES = [f"c{i}" for i in range(12)]


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ScoringApp]:
    """Real MLflow model folders, loaded the way `sparkserve serve` loads them."""
    import lightgbm
    import mlflow.lightgbm
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression, LogisticRegression

    base = tmp_path_factory.mktemp("invariance")
    train = _frame(2000)
    target = train.sum(axis=1) + np.random.default_rng(1).normal(size=len(train))
    signature = infer_signature(train)
    example = train.head(3)
    regressor = LinearRegression().fit(train, target)
    mlflow.sklearn.save_model(regressor, str(base / "regressor"), signature=signature, **FAST_SAVE)
    classifier = LogisticRegression(max_iter=500).fit(train, (target > 0).astype(int))
    mlflow.sklearn.save_model(
        classifier, str(base / "classifier"), input_example=example, **FAST_SAVE
    )
    booster = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1).fit(train, target)
    mlflow.lightgbm.save_model(
        booster, str(base / "booster"), input_example=example, pip_requirements=["lightgbm"]
    )
    return {
        name: ScoringApp(EndpointConfig(model_path=str(base / name)))
        for name in ("regressor", "classifier", "booster")
    }


def test_the_probe_keeps_a_blas_regressor_from_merging_and_lets_the_others_merge(apps) -> None:
    assert not apps["regressor"].merging.merge
    assert "changed with the rows merged next to it" in apps["regressor"].merging.reason
    assert apps["classifier"].merging.merge  # labels: the same bits wherever the row sits
    assert apps["booster"].merging.merge  # trees: one row at a time, floats included
    assert b"sparkserve_merging 0" in apps["regressor"].metrics.render()
    assert b"sparkserve_merging 1" in apps["booster"].metrics.render()


def test_merging_the_regressor_would_change_bits(apps) -> None:
    """What the probe guards against is real on this machine: forced to merge, single rows
    get other last bits than alone (so the property below can fail)."""
    app = apps["regressor"]
    rows = _frame(40, seed=7).to_numpy().tolist()
    items = [parse_request(_split(FEATURES, [row]), JSON, app.model_input) for row in rows]
    forced = Scorer(app.model_input, merge=True)
    alone = [forced.score([item])[0] for item in items]
    assert forced.score(items) != alone


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=64)
request_frames = st.lists(
    st.lists(st.lists(finite, min_size=len(FEATURES), max_size=len(FEATURES)), min_size=1,
             max_size=6),
    min_size=2,
    max_size=8,
)  # fmt: skip
body_shapes = st.sampled_from(["split", "records", "split-reordered"])


@pytest.mark.parametrize("model", ["regressor", "classifier", "booster"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=request_frames, shape=body_shapes)
def test_a_request_gets_the_same_bytes_alone_and_merged(
    apps, model: str, requests: list[list[list[float]]], shape: str
) -> None:
    from mlflow.pyfunc.scoring_server import invocations

    app = apps[model]
    bodies = [_body(rows, shape) for rows in requests]
    items = [parse_request(body, JSON, app.model_input) for body in bodies]
    alone = [app.scorer.score([item])[0] for item in items]
    merged = app.scorer.score(items)
    assert merged == alone
    for body, ours in zip(bodies, alone, strict=True):
        assert not isinstance(ours, ScoringError), ours.message
        theirs = invocations(body, JSON, app.model_input.model, app.model_input.input_schema)
        assert theirs.status == 200, theirs.response
        assert orjson.loads(ours) == orjson.loads(theirs.response)  # floats: equal to the bit


def _body(rows: list[list[float]], shape: str) -> bytes:
    if shape == "records":
        payload: Any = {
            "dataframe_records": [dict(zip(FEATURES, row, strict=True)) for row in rows]
        }
        return orjson.dumps(payload)
    if shape == "split-reordered":  # columns in another order: the general path
        order = FEATURES[::-1]
        return _split(order, [row[::-1] for row in rows])
    return _split(FEATURES, rows)


def _split(columns: list[str], rows: list[list[float]]) -> bytes:
    return orjson.dumps({"dataframe_split": {"columns": columns, "data": rows}})


def test_probe_verdict_is_in_the_endpoint_log(tmp_path: Path, apps, capfd) -> None:
    app = apps["regressor"]
    ScoringApp(EndpointConfig(model_path=app.config.model_path))
    assert "not merging concurrent requests: a row's prediction changed" in capfd.readouterr().err
    verdict = probe(app.model_input, app.config.model_path, max_batch_rows=256)
    assert verdict == app.merging
