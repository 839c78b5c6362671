from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_sparkserve.errors import InvalidInput, InvalidName, InvalidReference
from jupyter_sparkserve.repository import ModelRef
from jupyter_sparkserve.repository.names import (
    parse_key_values,
    validate_alias,
    validate_metrics,
    validate_model_name,
    validate_tags,
)


@pytest.mark.parametrize("name", ["iris", "Iris-2", "churn_model.v2", "a", "9lives", "x" * 128])
def test_good_names_are_kept_as_they_are(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        *["", "a/b", "a\\b", "..", "a..b", ".hidden", "-dash", "a b", "a:b", "a@b", "iris."],
        *["x" * 129, None],
    ],
)
def test_bad_names_are_rejected_with_the_rule(name: object) -> None:
    with pytest.raises(InvalidName) as caught:
        validate_model_name(name)
    message = caught.value.message
    assert "letters, digits" in message
    assert "128" in message


def test_alias_rules() -> None:
    assert validate_alias("champion") == "champion"
    for bad in ["", "latest", "v3", "1st", "a b", "a/b", "x" * 65]:
        with pytest.raises(InvalidName, match="alias"):
            validate_alias(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris", ModelRef(name="iris")),
        ("iris:3", ModelRef(name="iris", version=3)),
        ("iris@champion", ModelRef(name="iris", alias="champion")),
        ("iris@latest", ModelRef(name="iris", alias="latest")),
        ("  iris:12 ", ModelRef(name="iris", version=12)),
        ("runs:/0a1b2c/model", ModelRef(uri="runs:/0a1b2c/model")),
        ("models:/iris/1", ModelRef(uri="models:/iris/1")),
        ("models:/iris@champion", ModelRef(uri="models:/iris@champion")),
        ("s3://bucket/models/iris", ModelRef(uri="s3://bucket/models/iris")),
    ],
)
def test_references_parse(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


def test_paths_become_absolute_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ModelRef.parse("./model").uri == str(tmp_path / "model")
    assert ModelRef.parse(f"file://{tmp_path}/m").uri == str(tmp_path / "m")
    assert ModelRef.parse(str(tmp_path / "m")).uri == str(tmp_path / "m")
    assert not ModelRef.parse("./model").in_repository


def test_file_uris_and_path_objects() -> None:
    assert ModelRef.parse("file:/tmp/models/iris").uri == "/tmp/models/iris"
    assert ModelRef.parse("file://localhost/tmp/iris").uri == "/tmp/iris"
    assert ModelRef.parse("file:///tmp/my%20model").uri == "/tmp/my model"
    assert ModelRef.parse(Path("/tmp/x")).uri == "/tmp/x"
    with pytest.raises(InvalidReference, match="on this machine"):
        ModelRef.parse("file://otherhost/tmp/x")


def test_references_print_back_as_written() -> None:
    for text in ["iris", "iris:3", "iris@champion", "runs:/abc/model"]:
        assert str(ModelRef.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "NAME:VERSION"),
        ("iris:0", "positive whole number"),
        ("iris:x", "positive whole number"),
        ("iris:²", "positive whole number"),
        ("iris:\u0661", "positive whole number"),  # ARABIC-INDIC DIGIT ONE
        ("iris:\uff11", "positive whole number"),  # FULLWIDTH DIGIT ONE
        ("iris:", "positive whole number"),
        ("iris@", "alias"),
        ("iris@v2", "reserved"),
        ("bad name:1", "letters, digits"),
        (":3", "model name is required"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, hint: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        ModelRef.parse(text)
    assert hint in caught.value.message


def test_tags_and_metrics_validation() -> None:
    assert validate_tags({"team": "risk", "n": 3}) == {"team": "risk", "n": "3"}
    assert validate_metrics({"acc": 1, "rmse": "0.5"}) == {"acc": 1.0, "rmse": 0.5}
    with pytest.raises(InvalidInput, match="tag values are strings"):
        validate_tags({"team": ["a"]})
    for bad in ("high", True, float("nan"), float("-inf")):
        with pytest.raises(InvalidInput, match="metrics are finite numbers"):
            validate_metrics({"acc": bad})
    with pytest.raises(InvalidInput, match="mapping"):
        validate_tags(["team"])


def test_key_values() -> None:
    assert parse_key_values(["a=1", "b=x=y"], "tag") == {"a": "1", "b": "x=y"}
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_key_values(["novalue"], "tag")
