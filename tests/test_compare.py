"""Replay and compare: two real scikit-learn versions whose answers differ on rows known by
construction, compared on files; the report's figures, its HTML in Chromium, and the CLI and
the magic giving the same figures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _lab import browser  # noqa: F401 (the Chromium fixture)
from click.testing import CliRunner
from conftest import FAST_SAVE
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from jupyter_sparkserve.cli import main
from jupyter_sparkserve.compare import compare_versions, write_html
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository

THRESHOLD = 1.0  # version 2 of "rule" flips the label of every row with x2 above it
MARGIN = 0.2  # no row this close to a rule's threshold: both trees agree with the rules there
PLANTED = [7, 123, 250, 404, 777]  # regressor rows given a large x3: the largest moves


def features(rows: int, seed: int) -> pd.DataFrame:
    """x1, x2, x3 uniform on (-3, 3), none within MARGIN of x1 = 0 or x2 = THRESHOLD."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-3, 3, size=(rows * 3, 3))
    away = (np.abs(values[:, 0]) > MARGIN) & (np.abs(values[:, 1] - THRESHOLD) > MARGIN)
    return pd.DataFrame(values[away][:rows], columns=["x1", "x2", "x3"])


def rule_v1(frame: pd.DataFrame) -> np.ndarray:
    return (frame["x1"] > 0).astype(int).to_numpy()


def rule_v2(frame: pd.DataFrame) -> np.ndarray:
    return rule_v1(frame) ^ (frame["x2"] > THRESHOLD).astype(int).to_numpy()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository holding rule:1 and rule:2 (decision trees learning the two rules), rule:3
    (rule:1 saved without an input example), sum:1 and sum:2 (linear regressions whose
    answers differ by x3), the others with the same 500-row input example; yields its home."""
    home = tmp_path_factory.mktemp("compare") / "home"
    repository = ModelRepository(Settings.from_env(home=str(home)))
    train = features(4000, seed=1)
    example = features(500, seed=2)
    for rule in (rule_v1, rule_v2):
        tree = DecisionTreeClassifier(random_state=0).fit(train, rule(train))
        repository.save(tree, "rule", input_example=example, **FAST_SAVE)
    tree = DecisionTreeClassifier(random_state=0).fit(train, rule_v1(train))
    repository.save(tree, "rule", **FAST_SAVE)  # rule:3: rule:1 again, with no input example
    target = 2 * train["x1"] + train["x2"]
    for extra in (0.0, 1.0):
        linear = LinearRegression().fit(train, target + extra * train["x3"])
        repository.save(linear, "sum", input_example=example, **FAST_SAVE)
    repository.close()
    yield home


@pytest.fixture
def repository(saved: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelRepository]:
    monkeypatch.setenv("SPARKSERVE_HOME", str(saved))  # for the magic's own repository
    opened = ModelRepository(Settings.from_env(home=str(saved)))
    yield opened
    opened.close()


def test_changed_labels_are_exactly_the_flipped_rows(
    repository: ModelRepository, tmp_path: Path
) -> None:
    rows = features(1000, seed=3)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    flipped = set(np.flatnonzero(rule_v1(rows) != rule_v2(rows)).tolist())
    assert flipped == set(np.flatnonzero(rows["x2"] > THRESHOLD).tolist())  # the known subset

    report = compare_versions(
        repository, "rule:1", "rule:2", str(tmp_path / "rows.csv"), via="process"
    )
    [output] = report.outputs
    assert output.kind == "labels"
    assert set(output.changed_index) == flipped
    assert output.changed == len(flipped) and report.rows == 1000
    assert output.changed_share == pytest.approx(len(flipped) / 1000)
    # Every change is a flip, both ways, counted by direction.
    ways = {(t["a"], t["b"]): t["rows"] for t in output.transitions}
    assert ways == {
        (0, 1): int(((rows["x2"] > THRESHOLD) & (rows["x1"] <= 0)).sum()),
        (1, 0): int(((rows["x2"] > THRESHOLD) & (rows["x1"] > 0)).sum()),
    }
    # Latency of each: one timed batch per 100 rows.
    assert [side.calls for side in report.latency] == [10, 10]
    assert all(0 < side.p50_ms <= side.p99_ms for side in report.latency)
    # The rows are drawn like the input example (both versions'): no drift on any column.
    [drift] = report.drift
    assert drift.refs == ("rule:1", "rule:2") and drift.example_rows == 500 and not drift.note
    assert {c.column for c in drift.columns} == {"x1", "x2", "x3"}
    assert all(c.psi < 0.1 and c.level == "stable" for c in drift.columns)


def test_numeric_largest_differences_are_the_planted_ones(
    repository: ModelRepository, tmp_path: Path
) -> None:
    rows = features(1000, seed=4)
    rows["x3"] = rows["x3"] / 3  # |x3| < 1 everywhere but the planted rows
    rows.loc[PLANTED, "x3"] = [40.0, -50.0, 60.0, -70.0, 80.0]
    rows.to_parquet(tmp_path / "rows.parquet")

    report = compare_versions(repository, "sum:1", "sum:2", str(tmp_path / "rows.parquet"))
    [output] = report.outputs
    assert output.kind == "numeric"
    largest = [row["row"] for row in output.shown[: len(PLANTED)]]
    assert largest == [777, 404, 250, 123, 7]  # by |B - A|, largest first
    for row in output.shown[: len(PLANTED)]:
        assert row["difference"] == pytest.approx(rows.loc[row["row"], "x3"], abs=1e-6)
    assert output.stats["max_abs"] == pytest.approx(80.0, abs=1e-6)
    assert sum(output.histogram["counts"]) == 1000
    assert output.histogram["edges"][0] == pytest.approx(-70.0, abs=1e-6)
    # The planted rows sit far in x3's tail: x3 drifted from the example, x1 and x2 did not.
    psi = {c.column: c.psi for c in report.drift[0].columns}
    assert psi["x1"] < 0.1 and psi["x2"] < 0.1 and psi["x3"] > 0.25


def test_psi_is_large_for_shifted_rows(repository: ModelRepository, tmp_path: Path) -> None:
    rows = features(1000, seed=5)
    rows["x1"] = rows["x1"] + 4.0
    rows.to_json(tmp_path / "shifted.jsonl", orient="records", lines=True)
    report = compare_versions(
        repository, "rule:1", "rule:2", str(tmp_path / "shifted.jsonl"), via="process"
    )
    psi = {c.column: c for c in report.drift[0].columns}
    assert psi["x1"].psi > 2 and psi["x1"].level == "major"
    assert psi["x2"].psi < 0.1 and psi["x3"].psi < 0.1


def test_a_version_without_input_example_is_named(
    repository: ModelRepository, tmp_path: Path
) -> None:
    rows = features(200, seed=10)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    report = compare_versions(repository, "rule:1", "rule:3", str(tmp_path / "rows.csv"))
    assert report.outputs[0].changed == 0
    with_example, without = report.drift
    assert with_example.refs == ("rule:1",) and len(with_example.columns) == 3
    assert without.refs == ("rule:3",) and without.columns == []
    assert without.note == "rule:3 has no input example (save it with input_example=...)."
    assert without.note in report.summary()


def test_html_report_opens_in_chromium(
    repository: ModelRepository,
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    rows = features(400, seed=6)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    report = compare_versions(repository, "rule:1", "rule:2", str(tmp_path / "rows.csv"))
    path = write_html(report, tmp_path / "report.html")
    assert not list(tmp_path.glob(".report.html.*"))  # the temporary file was renamed

    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.as_uri())
    changed = page.locator('[data-figure="changed-rows"]').inner_text()
    assert changed == f"{len(report.changed_rows):,}" and int(changed) > 0
    assert page.locator('[data-figure="changed-prediction"]').inner_text() == changed
    # A bar chart of label changes, one of latency, one of PSI (one example): all drawn.
    plots = page.locator("svg.sparkserve-plot")
    assert plots.count() == 3
    for index in range(3):
        box = plots.nth(index).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 40
    assert page.locator("svg.sparkserve-plot rect").count() == 2 + 4 + 3
    assert "rule:1 vs rule:2" in page.title()
    assert errors == []
    assert requested == [path.as_uri()]  # nothing else fetched
    page.close()


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    """What both faces must agree on (latency is measured again by each)."""
    return {key: value for key, value in report.items() if key not in ("latency", "html")}


def test_cli_and_magic_give_the_same_figures(
    repository: ModelRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    rows = features(300, seed=7)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["compare", "rule:1", "rule:2", "--on", "rows.csv", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.output)
    assert Path(from_cli["html"]) == tmp_path / "compare-rule-1-vs-rule-2.html"
    assert Path(from_cli["html"]).is_file()
    text = CliRunner().invoke(main, ["compare", "sum:1", "sum:2", "--on", "rows.csv"])
    assert text.exit_code == 0 and "prediction: 300 of 300 rows changed" in text.output

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_sparkserve")
    before = set(shell.user_ns)
    with capture_output() as shown:
        shell.run_line_magic("sfcompare", "rule:1 rule:2 --on rows.csv")
    assert set(shell.user_ns) == before  # no variable unless -o asks for one
    [display] = shown.outputs
    html = display.data["text/html"]
    assert f'data-figure="changed-rows">{from_cli["changed_rows"]}<' in html
    assert html.count("<svg") == 3

    frame = rows.copy()
    shell.user_ns["frame"] = frame
    with capture_output():
        shell.run_line_magic("sfcompare", "rule:1 rule:2 --on frame -o report")
    from_magic = json.loads(json.dumps(shell.user_ns["report"].to_dict()))
    assert _figures(from_magic) | {"source": ""} == _figures(from_cli) | {"source": ""}
    assert from_cli["changed_rows"] == int((rows["x2"] > THRESHOLD).sum())


def test_bad_input_is_said_clearly(repository: ModelRepository, tmp_path: Path) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    rows = features(50, seed=8)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    on = str(tmp_path / "rows.csv")
    with pytest.raises(InvalidInput, match=r"Cannot compare rule:9: Model 'rule' has no version 9"):
        compare_versions(repository, "rule:1", "rule:9", on)
    with pytest.raises(InvalidInput, match=r"Cannot compare nosuch:1: .*nosuch"):
        compare_versions(repository, "nosuch:1", "rule:1", on)
    with pytest.raises(InvalidInput, match=r"missing\.csv does not exist"):
        compare_versions(repository, "rule:1", "rule:2", str(tmp_path / "missing.csv"))
    with pytest.raises(InvalidInput, match=r"neither a file nor a deployment"):
        compare_versions(repository, "rule:1", "rule:2", "nosuchthing")
    rows.drop(columns=["x2"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(InvalidInput, match=r"The rows have no column 'x2', which rule:1 needs"):
        compare_versions(repository, "rule:1", "rule:2", str(tmp_path / "short.csv"))

    failed = CliRunner().invoke(main, ["compare", "rule:1", "rule:2", "--on", "nosuchthing"])
    assert failed.exit_code == 1 and "neither a file nor a deployment" in failed.output
    failed = CliRunner().invoke(main, ["compare", "rule:1", "--on", on])
    assert failed.exit_code == 1 and "Give two versions and the rows" in failed.output
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_sparkserve")
    with pytest.raises(UsageError, match=r"which rule:1 needs"):
        shell.run_line_magic("sfcompare", f"rule:1 rule:2 --on {tmp_path / 'short.csv'}")


def test_compare_on_a_deployments_capture_and_shadow(
    repository: ModelRepository, tmp_path: Path
) -> None:
    """rule:1 deployed with capture on and rule:2's deployment as its shadow, sent rows:
    compare on its id (the captured rows, through both endpoints) and --shadow (the pairs
    the shadow recorded) both find the flipped rows."""
    import requests
    from _endpoint_helpers import free_port

    from jupyter_sparkserve.compare import compare_shadow
    from jupyter_sparkserve.deploy.deployments import Deployments
    from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
    from jupyter_sparkserve.scoring.capture import read_captured
    from jupyter_sparkserve.scoring.shadow import read_pairs

    registry = MlflowRegistry(repository)
    service = Deployments(repository)
    started = []
    try:
        registry.register("rule:2")
        started.append(service.deploy("rule:2", "local", {"port": free_port()}))
        registry.register("rule:1")
        options = {"port": free_port(), "capture": True, "shadow": started[0].id}
        started.append(service.deploy("rule:1", "local", options))
        deployment = started[1]
        rows = features(200, seed=9)
        for start in range(0, 200, 50):
            part = rows.iloc[start : start + 50]
            body = {"dataframe_split": json.loads(part.to_json(orient="split", index=False))}
            answer = requests.post(f"{deployment.url}/invocations", json=body, timeout=60)
            assert answer.status_code == 200, answer.text
        folder = repository.settings.home / "deployments" / deployment.id
        deadline = time.monotonic() + 30
        while not (
            (folder / "capture").is_dir()
            and len(read_captured(folder / "capture")) == 200
            and (folder / "shadow").is_dir()
            and len(read_pairs(folder / "shadow").inputs) == 200
        ):
            assert time.monotonic() < deadline, "the capture or the shadow never held the rows"
            time.sleep(0.2)
        flipped = set(np.flatnonzero(rows["x2"] > THRESHOLD).tolist())

        report = compare_versions(repository, "rule:1", "rule:2", deployment.id, batch_rows=40)
        assert report.source == f"requests captured by {deployment.id}"
        assert set(report.outputs[0].changed_index) == flipped
        first, second = report.latency  # both deployed and running: through their endpoints
        assert first.via.startswith(f"endpoint {deployment.url}") and first.calls == 5
        assert second.via.startswith(f"endpoint {started[0].url}") and second.calls == 5

        # rule:3 is not deployed: scored in process
        mixed = compare_versions(repository, "rule:1", "rule:3", deployment.id)
        assert mixed.outputs[0].changed == 0 and mixed.latency[1].via.startswith("in process")
        assert any("the other in process" in note for note in mixed.notes)

        mirrored = compare_shadow(repository, deployment.id)
        assert (mirrored.a, mirrored.b) == ("rule:1 (primary)", "rule:2 (shadow)")
        assert mirrored.rows == 200 and set(mirrored.outputs[0].changed_index) == flipped
        assert [side.calls for side in mirrored.latency] == [4, 4]
        assert [d.refs for d in mirrored.drift] == [("rule:1", "rule:2")]
        result = CliRunner().invoke(
            main, ["compare", "--shadow", deployment.id, "--html", str(tmp_path / "s.html")]
        )
        assert result.exit_code == 0, result.output
        assert f"prediction: {len(flipped)} of 200 rows changed" in result.output
        assert (tmp_path / "s.html").is_file()
    finally:
        for deployment in reversed(started):
            service.undeploy(deployment.id)
