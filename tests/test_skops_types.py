"""skops' trusted scikit-learn types, recorded once: the same list as skops' own walk, without
importing every scikit-learn module, in fresh processes as a first `sparkserve score` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from jupyter_sparkserve.repository import ModelRepository

# Modules that only skops' walk over every estimator imports, not a logistic regression's load.
WALK_ONLY = ("sklearn.neural_network", "sklearn.semi_supervised", "sklearn.gaussian_process")

PROBE = f"""
import json, sys
if sys.argv[1] == "ours":
    from jupyter_sparkserve.scoring.skops_types import import_skops_io
    import_skops_io()
import skops.io._trusted_types as trusted
import sklearn.utils
from jupyter_sparkserve.scoring.skops_types import _trusted_names
print(json.dumps({{
    "names": trusted.SKLEARN_ESTIMATOR_TYPE_NAMES,
    "lists": _trusted_names(trusted),
    "walked": [name for name in {WALK_ONLY!r} if name in sys.modules],
    "real_walk_back": trusted.all_estimators is sklearn.utils.all_estimators,
}}))
"""


def probe(mode: str, cache: Path) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_the_recorded_names_are_skops_own_and_skip_the_walk(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    skops_own = probe("skops", cache)
    first = probe("ours", cache)  # nothing recorded yet: skops walks, the names are kept
    recorded = list((cache / "jupyter_sparkserve").glob("sklearn-estimators-*.json"))
    again = probe("ours", cache)

    assert len(skops_own["names"]) > 100 and skops_own["walked"] == list(WALK_ONLY)
    assert len(recorded) == 1
    assert first["names"] == skops_own["names"] and first["walked"] == list(WALK_ONLY)
    assert again["names"] == skops_own["names"]
    assert again["walked"] == [] and again["real_walk_back"]
    # Every list skops' modules import (ufuncs, dtypes, ...) is the one this process made.
    assert len(first["lists"]) >= 8 and again["lists"] == first["lists"]


def test_a_damaged_record_falls_back_to_skops_walk(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe("ours", cache)
    (record,) = (cache / "jupyter_sparkserve").glob("sklearn-estimators-*.json")
    record.write_text('{"not": "a list"}')
    answer = probe("ours", cache)
    assert answer["walked"] == list(WALK_ONLY)
    assert answer["names"] == probe("skops", cache)["names"]
    # A record without a list skops imports: skops' own module after all.
    names = json.loads(record.read_text())["names"]
    del names["NUMPY_DTYPE_TYPE_NAMES"]
    record.write_text(json.dumps({"names": names}))
    answer = probe("ours", cache)
    assert answer["walked"] == list(WALK_ONLY) and "NUMPY_DTYPE_TYPE_NAMES" in answer["lists"]
    assert probe("ours", cache)["walked"] == []  # recorded whole again


def test_a_fresh_score_loads_a_skops_model_with_the_recorded_names(
    repo: ModelRepository, iris, iris_model, tmp_path: Path
) -> None:
    features, _ = iris
    version = repo.save(iris_model, "iris", input_example=features.head(3))
    source = tmp_path / "in.csv"
    features.to_csv(source, index=False)
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SPARKSERVE_WARM_SCORER": "off",
    }
    for attempt in ("records", "reuses"):
        out = tmp_path / f"{attempt}.csv"
        subprocess.run(
            [sys.executable, "-m", "jupyter_sparkserve", "score", "iris:1", str(source), str(out)],
            env=env,
            check=True,
            capture_output=True,
        )
        expected = iris_model.predict(features)
        assert pd.read_csv(out)["prediction"].tolist() == expected.tolist(), attempt
    assert version.version == 1
