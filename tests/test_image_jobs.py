"""Image builds as jobs and Kubernetes manifests through the faces: REST (a real Jupyter
server, answers checked against openapi.yaml) and the magics (a real kernel), on a real
container engine (Podman's Docker API)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)
from _containers import base_image as base_image
from _containers import container_engine as container_engine
from conftest import FAST_SAVE
from test_magics import bar_finished, start_kernel

from jupyter_sparkserve.cells import CELLS_MIME_TYPE
from jupyter_sparkserve.containers.build_job import BuildSpec
from jupyter_sparkserve.containers.engine import client
from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.workflows import JobRunner

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def iris_saved(repo: ModelRepository, iris, iris_model) -> str:
    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    return "iris:1"


def image_labels(tag: str) -> dict[str, str]:
    engine = client()
    try:
        return engine.images.get(tag).attrs["Config"]["Labels"]
    finally:
        engine.close()


@pytest.mark.slow
async def test_a_build_job_over_rest_reports_steps_and_its_log(
    api: Api, iris_saved: str, base_image: str
) -> None:
    tag = "localhost/sparkserve-tests/iris-job:1"
    started = await api("POST", "models/iris/versions/1/image", body={"tag": tag})
    assert started.status == 202, started.body
    job = started.body
    assert (job["kind"], job["spec"]["model"], job["output_path"]) == ("build", "iris:1", tag)
    assert job["title"] == f"Image {tag} of iris:1"
    assert started.headers["Location"].endswith(f"/jobs/{job['id']}")
    seen = set()
    deadline = time.monotonic() + 600
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        job = (await api("GET", f"jobs/{job['id']}")).body
        seen.add(job["progress_text"].split(",")[0])
    assert job["status"] == "succeeded", job["error"]
    assert job["fraction"] == 1.0 and job["progress_text"].startswith("built, ")
    assert any(text.startswith("step ") for text in seen), seen  # progress moved step by step
    log = (await api("GET", f"jobs/{job['id']}/log")).body["log"]
    assert "STEP" in log and f"Built {tag}" in log
    assert image_labels(tag)["io.sparkserve.model.version"] == "1"
    listed = (await api("GET", "jobs")).body["items"]
    assert [(j["id"], j["kind"]) for j in listed] == [(job["id"], "build")]


async def test_bad_build_settings_get_a_400_naming_the_field(api: Api, iris_saved: str) -> None:
    bad_tag = await api("POST", "models/iris/versions/1/image", body={"tag": "Iris:1"})
    assert bad_tag.status == 400 and "tag" in bad_tag.message
    push = await api("POST", "models/iris/versions/1/image", body={"push": True})
    assert push.status == 400 and "Pushing needs a tag" in push.message
    unknown = await api("POST", "models/iris/versions/1/image", body={"tags": "x"})
    assert unknown.status == 400 and "tags" in unknown.message


async def test_a_build_with_no_engine_is_refused_before_it_is_queued(
    api: Api, iris_saved: str, repo: ModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    refused = await api("POST", "models/iris/versions/1/image", body={})
    assert refused.status == 409
    assert "No container engine answers at unix:///nonexistent/docker.sock" in refused.message
    assert JobRunner(repo).list() == []


def test_build_specs_check_what_they_are_given() -> None:
    assert BuildSpec("iris:2").output == "sparkserve/iris:2"
    assert BuildSpec("iris:2", tag="127.0.0.1:5000/models/iris:2").output.startswith("127.")
    with pytest.raises(InvalidInput, match="not a repository version"):
        BuildSpec("/some/folder")
    with pytest.raises(InvalidInput, match="not an image reference"):
        BuildSpec("iris:1", tag="registry/iris@sha256:" + "0" * 64)  # a tag holds no digest


async def test_kubernetes_manifests_over_rest_validate_and_come_with_cells(
    api: Api, iris_saved: str
) -> None:
    settings = {"replicas": 3, "autoscale": "2-6", "disruption_budget": True}
    answer = await api("POST", "models/iris/versions/1/kubernetes", body=settings)
    assert answer.status == 200, answer.body
    manifest = answer.body
    assert "&id" not in manifest["yaml"]  # labels written out, not as YAML anchors
    documents = list(yaml.safe_load_all(manifest["yaml"]))
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "sparkserve/iris:1"  # what a build tags by default
    assert documents[2]["spec"]["maxReplicas"] == 6
    assert manifest["filename"] == "iris-v1.yaml"
    write, apply = manifest["snippets"]
    assert write["cell"] == f"%%writefile iris-v1.yaml\n{manifest['yaml']}"
    assert apply["cell"] == "%%bash\n# Apply it to the cluster\nkubectl apply -f iris-v1.yaml"

    backwards = await api("POST", "models/iris/versions/1/kubernetes", body={"autoscale": "5-2"})
    assert backwards.status == 400 and "minimum replicas <= maximum" in backwards.message
    digest = "registry.example/iris@sha256:" + "a" * 64
    pinned = await api("POST", "models/iris/versions/1/kubernetes", body={"image": digest})
    assert f"image: {digest}" in pinned.body["yaml"]


@pytest.mark.slow
def test_sfbuild_follows_the_job_and_sfk8s_inserts_the_manifest_cells(
    repo: ModelRepository, iris_saved: str, base_image: str, home: Path, tmp_path: Path
) -> None:
    kernel = start_kernel(home, tmp_path)  # after the engine fixtures: DOCKER_HOST is set
    try:
        tag = "localhost/sparkserve-tests/iris-magic:1"
        built = kernel.ok(f"%sfbuild iris:1 --tag {tag}")
        assert f"Built {tag}" in "".join(built["stdout"])
        assert bar_finished(built)  # the job's progress bar, updated in place
        (job,) = JobRunner(repo).list()
        assert (job.kind, job.status, job.output_path) == ("build", "succeeded", tag)
        assert image_labels(tag)["io.sparkserve.model.name"] == "iris"

        shown = kernel.ok("%sfk8s iris:1 --image registry.example/iris:1 --cells bundle")
        bundle = shown["display"][0][CELLS_MIME_TYPE]
        sources = [cell["source"] for cell in bundle["cells"]]
        assert sources[0].startswith("%%writefile iris-v1.yaml\n")
        assert "image: registry.example/iris:1" in sources[0]
        kernel.ok(sources[0])  # the cell writes the file it names
        written = list(yaml.safe_load_all((tmp_path / "iris-v1.yaml").read_text()))
        assert [document["kind"] for document in written] == ["Deployment", "Service"]
    finally:
        kernel.close()


def test_the_cli_manifest_defaults_to_the_tag_a_build_gives(repo: ModelRepository, iris_saved):
    from click.testing import CliRunner

    from jupyter_sparkserve.cli import main as cli

    answer = CliRunner().invoke(cli, ["--home", str(repo.settings.home), "k8s", "iris:1"])
    assert answer.exit_code == 0, answer.output
    assert "image: sparkserve/iris:1" in answer.stdout


def test_default_tags_hold_only_what_an_image_name_may() -> None:
    from jupyter_sparkserve.containers.context import check_image_reference, image_tag

    for name, tag in [("Churn-", "churn"), ("a_-b", "a-b"), ("a___b", "a-b"), ("a__b", "a__b")]:
        assert image_tag(name, 3) == f"sparkserve/{tag}:3"
        check_image_reference(image_tag(name, 3), "tag")
    pinned_base = "python:3.11-slim@sha256:" + "b" * 64
    assert BuildSpec("iris:1", base_image=pinned_base).base_image == pinned_base


def test_pip_settings_reach_uv_through_its_environment_not_its_command_line() -> None:
    from jupyter_sparkserve.containers.environment import pip_settings, uv_environment

    listing = "\n".join(
        [
            ":env:.find-links='/opt/wheels'",
            "global.find-links='/elsewhere'",
            "global.extra-index-url='file:///a/simple\\nfile:///b/simple'",
            "install.index-url='https://user:secret@mirror.example/simple'",
            "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        ]
    )
    settings = pip_settings(listing)
    assert settings["find-links"] == "/opt/wheels"  # PIP_FIND_LINKS wins over the file
    environ = uv_environment(settings, {})
    assert environ["UV_INDEX_URL"] == "https://user:secret@mirror.example/simple"
    assert environ["UV_EXTRA_INDEX_URL"] == "file:///a/simple file:///b/simple"
    assert environ["UV_FIND_LINKS"] == "/opt/wheels"
    assert environ["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt"
    assert environ["UV_INDEX_STRATEGY"] == "unsafe-best-match"  # pip's way with many indexes


@pytest.mark.slow
def test_two_builds_of_one_environment_share_it_and_a_cancel_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Two makers of the same archive wait for each other (one makes it, one reuses it);
    files are readable by the image's user whatever the umask; a cancel leaves no folder."""
    import tarfile
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from jupyter_sparkserve.containers import environment
    from jupyter_sparkserve.errors import Cancelled

    cache = tmp_path / "environments"
    pinned = ["six==1.17.0"]
    lines: list[str] = []
    old_umask = os.umask(0o077)
    try:
        with ThreadPoolExecutor(2) as pool:
            archives = list(
                pool.map(
                    lambda _: environment.prepare(
                        pinned, cache, site_packages="/opt/x", log=lines.append
                    ),
                    range(2),
                )
            )
    finally:
        os.umask(old_umask)
    assert archives[0] == archives[1] and archives[0].exists()
    assert sum(line.startswith("Reusing") for line in lines) == 1
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [
        archives[0].parent.name
    ]
    with tarfile.open(archives[0]) as archive:
        members = {member.name: member for member in archive.getmembers()}
    assert members["six.py"].mode & 0o444 == 0o444 and members["six.py"].uid == 0
    assert any(name.endswith(".pyc") for name in members)

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        environment.prepare(
            ["six==1.16.0"], cache, site_packages="/opt/x", log=lines.append, cancel=cancel
        )
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [
        archives[0].parent.name
    ]


def test_the_environment_cache_keeps_only_the_archives_used_last(tmp_path: Path) -> None:
    """Old archives go when a new one is made: the newest few and any used within the hour
    stay, so a machine that builds often does not fill its disk (CI once did)."""
    from jupyter_sparkserve.containers import environment

    now = time.time()
    ages_in_days = {"a": 30, "b": 20, "c": 10, "d": 5, "e": 1, "f": 0.01}
    for name, days in ages_in_days.items():
        (tmp_path / name).mkdir()
        marker = tmp_path / name / ".complete"
        marker.write_text("")
        os.utime(marker, (now - days * 86400, now - days * 86400))
    removed = environment.evict(tmp_path, keep=tmp_path / "a", kept=2)
    assert sorted(p.name for p in removed) == ["b", "c", "d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "e", "f"]
