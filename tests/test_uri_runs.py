"""Runs on URIs (s3://): only an engine that reads and writes them takes them, each side
is checked before anything starts, and a server's confinement leaves them as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST_SAVE

from jupyter_sparkserve.confinement import Confinement
from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.files import uri_scheme
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.offline import score
from jupyter_sparkserve.workflows import WorkflowSpec


@pytest.fixture
def saved(repo: ModelRepository, iris, iris_model) -> str:
    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    return "iris:1"


def test_uri_schemes_are_told_from_paths() -> None:
    assert uri_scheme("s3://bucket/in/") == "s3"
    assert uri_scheme("S3://bucket") == "s3"
    assert uri_scheme("file:///tmp/x.csv") is None
    assert uri_scheme("/tmp/s3://x") is None
    assert uri_scheme("data/in.csv") is None


def test_a_file_engine_refuses_uris_naming_the_engine_that_takes_them(
    repo: ModelRepository, saved: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match=r"not s3:// URIs: choose engine 'sagemaker'"):
        score(saved, "s3://bucket/in/", tmp_path / "out.csv", repository=repo)


@pytest.mark.parametrize(
    ("source", "target", "side"),
    [("{tmp}/in.csv", "s3://bucket/out/", "input"), ("s3://bucket/in/", "{tmp}/out", "output")],
)
def test_the_sagemaker_engine_takes_s3_on_both_sides(
    repo: ModelRepository, saved: str, tmp_path: Path, source: str, target: str, side: str
) -> None:
    with pytest.raises(InvalidInput, match=rf"reads and writes s3:// URIs: the {side} "):
        score(
            saved,
            source.format(tmp=tmp_path),
            target.format(tmp=tmp_path),
            engine="sagemaker",
            repository=repo,
        )


def test_an_azureml_run_takes_azureml_folders_with_the_default_columns(
    repo: ModelRepository, saved: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInput, match=r"not azureml:// URIs: choose engine 'azureml'"):
        score(saved, "azureml://datastores/d/paths/in/", tmp_path / "o.csv", repository=repo)
    monkeypatch.setenv("SPARKSERVE_AZUREML_COMPUTE", "cpu")
    folder = "azureml://datastores/d/paths/"
    with pytest.raises(InvalidInput, match=r"keeps every input column and names the prediction"):
        score(saved, f"{folder}in/", f"{folder}out/", engine="azureml", keep_columns=["a"],
              repository=repo)  # fmt: skip


def test_a_transform_keeps_every_input_column_or_none(
    repo: ModelRepository, saved: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKSERVE_SAGEMAKER_ROLE", "arn:aws:iam::1:role/x")
    with pytest.raises(InvalidInput, match=r"keeps every input column or none"):
        score(saved, "s3://b/in/", "s3://b/out/", engine="sagemaker", keep_columns=["a"],
              repository=repo)  # fmt: skip
    with pytest.raises(InvalidInput, match=r"leave the output format out"):
        score(saved, "s3://b/in/", "s3://b/out/", engine="sagemaker", output_format="parquet",
              repository=repo)  # fmt: skip


def test_a_servers_confinement_leaves_uris_as_they_are(tmp_path: Path) -> None:
    spec = WorkflowSpec(
        model="iris:1", input="s3://b/in/", output="s3://b/out/", engine="sagemaker"
    )
    confined = Confinement.of(tmp_path).spec(spec)
    assert (confined.input, confined.output) == ("s3://b/in/", "s3://b/out/")
    local = Confinement.of(tmp_path).spec(
        WorkflowSpec(model="iris:1", input="in.csv", output="out.csv")
    )
    assert local.input == str(tmp_path.resolve() / "in.csv")
