"""Model images on a real container engine (Podman's Docker API): `sparkserve build`, the
image's `serve` and `score` modes, the `container` deployment target, layer reuse.

One image is built per module (every layer of it is then cached for the deploy tests).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from _containers import base_image as base_image
from _containers import container_engine as container_engine
from _containers import registry as registry
from _endpoint_helpers import free_port, run_endpoint_snippets
from click.testing import CliRunner
from conftest import FAST_SAVE

from jupyter_sparkserve.cli import main as cli
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.containers.engine import availability, client
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.lifecycle import deployment_snippets
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.capture import captured_files, read_captured
from jupyter_sparkserve.scoring.offline import score

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory, iris, iris_model) -> ModelRepository:
    """A repository of this module's own (the autouse `home` is per test): iris:1."""
    home = tmp_path_factory.mktemp("container-home")
    repository = ModelRepository(Settings.from_env(home=home))
    repository.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    return repository


def run_cli(repository: ModelRepository, *arguments: str) -> Any:
    answer = CliRunner().invoke(
        cli, ["--home", str(repository.settings.home), *arguments, "--json"]
    )
    assert answer.exit_code == 0, answer.output
    return json.loads(answer.stdout)


@pytest.fixture(scope="module")
def image(shared_repo: ModelRepository, base_image: str) -> str:
    return run_cli(shared_repo, "build", "iris:1")["image"]


def inspect(tag: str) -> dict[str, Any]:
    engine = client()
    try:
        return engine.images.get(tag).attrs
    finally:
        engine.close()


def test_the_engine_is_usable(container_engine: str) -> None:
    found = availability()
    assert found.usable and found.detail == f"Container engine at {container_engine}."


def test_the_image_says_what_it_holds_and_runs_as_a_user(image: str) -> None:
    config = inspect(image)["Config"]
    labels = config["Labels"]
    assert labels["io.sparkserve.model.name"] == "iris"
    assert labels["io.sparkserve.model.version"] == "1"
    assert "sepal length (cm)" in labels["io.sparkserve.model.signature"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "-m", "jupyter_sparkserve.containers"]
    assert config["Cmd"] == ["serve"]
    assert "8080/tcp" in config["ExposedPorts"]


def test_dockerfile_only_writes_a_context_a_user_can_keep(
    shared_repo: ModelRepository, tmp_path: Path
) -> None:
    written = run_cli(shared_repo, "build", "iris:1", "--dockerfile-only", str(tmp_path / "ctx"))
    dockerfile = Path(written["dockerfile"])
    text = dockerfile.read_text()
    assert "COPY model /opt/ml/model" in text and "USER 10001:10001" in text
    assert text.index("ADD site-packages.tar") < text.index("COPY model")  # env layer first
    with tarfile.open(dockerfile.parent / "site-packages.tar") as archive:
        names = set(archive.getnames())
    assert "sklearn/__init__.py" in names and not any(n.startswith("sklearn/tests/") for n in names)
    assert not any(name.startswith("pip/") for name in names), "no installer in the image"
    requirements = (dockerfile.parent / "requirements.txt").read_text().split()
    assert any(line.startswith("mlflow-skinny==") for line in requirements)
    assert not any(line.startswith("mlflow==") for line in requirements)
    assert any(line.startswith("scikit-learn==") for line in requirements)
    # The web server may be older than here when the index lacks this version; it has it here.
    uvicorn = importlib.metadata.version("uvicorn")
    assert f"uvicorn>=0.30,<={uvicorn}" in requirements
    assert f"uvicorn-{uvicorn}.dist-info/METADATA" in names
    assert (dockerfile.parent / "model" / "MLmodel").exists()


@pytest.fixture(scope="module")
def registered(shared_repo: ModelRepository) -> None:
    MlflowRegistry(shared_repo).register("iris:1")


@pytest.fixture
def container_deployments(shared_repo: ModelRepository, registered: None) -> Iterator[Deployments]:
    service = Deployments(shared_repo)
    yield service
    for deployment in service.list(active_only=True):
        service.undeploy(deployment.id)


def test_deploy_to_a_container_snippets_undeploy_and_a_killed_one_fails(
    shared_repo: ModelRepository, image: str, container_deployments: Deployments, tmp_path: Path
) -> None:
    deployment = container_deployments.deploy("iris:1", "container")
    assert deployment.status == "running", deployment.error
    assert deployment.url.startswith("http://127.0.0.1:")
    assert deployment.details["image"] == image
    container_id = deployment.details["container_id"]

    version = shared_repo.resolve("iris:1")
    frame = pd.DataFrame(**_example(version))
    expected = shared_repo.load_pyfunc("iris:1").predict(frame).tolist()
    snippets = deployment_snippets(shared_repo, deployment.id).snippets
    python_answer, curl_answer = run_endpoint_snippets(snippets, tmp_path)
    assert python_answer == expected
    assert curl_answer["predictions"] == expected

    stopped = container_deployments.undeploy(deployment.id)
    assert stopped.status == "stopped"
    assert not _container_exists(container_id)

    again = container_deployments.deploy("iris:1", "container")
    assert again.status == "running", again.error
    engine = client()
    try:
        engine.containers.get(again.details["container_id"]).kill()
    finally:
        engine.close()
    failed = _wait_for_status(container_deployments, again.id, "failed")
    assert "Its container is exited (exit code 137, SIGKILL" in failed.error
    assert "sparkserve: merging concurrent requests" in failed.error  # the log tail
    assert not _container_exists(again.details["container_id"])  # nothing left on the engine
    kept = Path(again.details["log_file"]).read_text()
    assert "which has ended" in kept and "Serving /opt/ml/model" in kept


def test_the_score_mode_scores_a_mounted_folder_without_network(
    shared_repo: ModelRepository, image: str, iris, tmp_path: Path
) -> None:
    features, _ = iris
    inputs = tmp_path / "in"
    inputs.mkdir()
    for part in range(3):
        features.iloc[part * 50 : (part + 1) * 50].to_csv(inputs / f"part-{part}.csv", index=False)
    outputs = tmp_path / "out"
    outputs.mkdir()
    outputs.chmod(0o777)  # the image's user (uid 10001) writes here
    engine = client()
    try:
        logs = engine.containers.run(
            image,
            command=["score", "/data/in", "/data/out/scored.csv"],
            volumes={str(inputs): {"bind": "/data/in", "mode": "ro"},
                     str(outputs): {"bind": "/data/out", "mode": "rw"}},
            network_mode="none",
            remove=True,
        )  # fmt: skip
    finally:
        engine.close()
    assert b"Scored 150 rows from 3 file(s)" in logs
    on_host = tmp_path / "host.csv"
    score("iris:1", inputs, on_host, repository=shared_repo)
    assert (outputs / "scored.csv").read_bytes() == on_host.read_bytes()


def test_a_new_version_reuses_the_environment_layers(
    shared_repo: ModelRepository, image: str, iris
) -> None:
    from sklearn.linear_model import LogisticRegression

    features, target = iris
    other = LogisticRegression(C=0.1, max_iter=500).fit(features, target)
    version = shared_repo.save(other, "iris", input_example=features.head(3), **FAST_SAVE)
    started = time.monotonic()
    rebuilt = run_cli(shared_repo, "build", version.ref)["image"]
    seconds = time.monotonic() - started
    first, second = (inspect(tag)["RootFS"]["Layers"] for tag in (image, rebuilt))
    assert len(first) == len(second)
    assert first[:-1] == second[:-1], "only the model's layer may differ"
    assert first[-1] != second[-1]
    print(f"rebuild after a new version: {seconds:.1f} s")


def _example(version: Any) -> dict[str, Any]:
    from jupyter_sparkserve.snippets import example_rows

    rows = example_rows(version)
    return {"data": rows["data"], "columns": rows["columns"]}


def _container_exists(container_id: str) -> bool:
    engine = client()
    try:
        return bool(engine.containers.list(all=True, filters={"id": container_id}))
    finally:
        engine.close()


def _wait_for_status(service: Deployments, deployment_id: str, status: str) -> Any:
    deadline = time.monotonic() + 60
    while True:
        found = service.get(deployment_id)
        if found.status == status or time.monotonic() > deadline:
            assert found.status == status, found
            return found
        time.sleep(0.5)


def test_snippets_never_carry_the_token_nor_does_the_capture(
    shared_repo: ModelRepository, image: str, container_deployments: Deployments, iris
) -> None:
    token = "container-secret-token"
    options = {"token": token, "capture": True}
    deployment = container_deployments.deploy("iris:1", "container", options)
    assert deployment.status == "running", deployment.error
    sent = iris[0].head(5)
    scored = requests.post(
        f"{deployment.url}/invocations",
        json={"dataframe_split": sent.to_dict(orient="split", index=False)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert scored.status_code == 200, scored.text
    assert requests.get(f"{deployment.url}/version", timeout=10).status_code == 401
    answer = requests.get(
        f"{deployment.url}/version", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200
    engine = client()
    try:
        attrs = engine.containers.get(deployment.details["container_id"]).attrs
    finally:
        engine.close()
    assert token not in json.dumps(attrs["Config"]["Labels"] or {})
    assert token not in json.dumps(deployment.details)
    python, curl = deployment_snippets(shared_repo, deployment.id).snippets
    assert token not in python.code and token not in curl.code

    # The capture folder is mounted into the container, its files this user's.
    container_deployments.undeploy(deployment.id)  # writes what it queued
    folder = shared_repo.settings.home / "deployments" / deployment.id / "capture"
    captured = read_captured(folder)
    pd.testing.assert_frame_equal(captured[list(sent.columns)], sent)
    assert captured["__prediction"].tolist() == scored.json()["predictions"]
    for path in captured_files(folder):
        assert path.stat().st_uid == os.getuid() and token.encode() not in path.read_bytes()


# ------------------------------------------------------------------------------ Kubernetes


@pytest.fixture(scope="module")
def slow_image(shared_repo: ModelRepository, base_image: str) -> str:
    """An image of a model that takes a second per call (its code travels with it)."""
    import _endpoint_helpers as helpers
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    example = helpers.single_column_example()
    path = shared_repo.settings.home / "slow-model"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=helpers.Slow(1.0),
        input_example=example,
        signature=infer_signature(example, np.zeros(len(example))),
        code_paths=[helpers.__file__],
        pip_requirements=["pandas", "requests"],
    )
    shared_repo.import_model(path, "slow")
    return run_cli(shared_repo, "build", "slow:1")["image"]


def test_kubernetes_manifests_pass_the_schemas(shared_repo: ModelRepository) -> None:
    import kubernetes_validate
    import yaml

    answer = CliRunner().invoke(
        cli,
        [
            "--home", str(shared_repo.settings.home), "k8s", "iris:1",
            "--image", "registry.example/iris:1", "--replicas", "3", "--namespace", "risk",
            "--token-secret", "iris-token", "--autoscale", "2-10", "--disruption-budget",
        ],
    )  # fmt: skip
    assert answer.exit_code == 0, answer.output
    documents = list(yaml.safe_load_all(answer.stdout))
    assert [d["kind"] for d in documents] == [
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    ]  # fmt: skip
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
    pod = documents[0]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert container["livenessProbe"]["httpGet"]["path"] == "/ping"
    assert container["resources"]["requests"]["cpu"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    token = container["env"][0]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "iris-token", "key": "token"}
    assert "value" not in token


def test_kube_play_serves_and_stopping_loses_no_request_in_flight(
    shared_repo: ModelRepository, slow_image: str, tmp_path: Path
) -> None:
    port = free_port()
    manifest = tmp_path / "slow.yaml"
    answer = CliRunner().invoke(
        cli,
        [
            "--home", str(shared_repo.settings.home), "k8s", "slow:1", "--image", slow_image,
            "--replicas", "1", "--host-port", str(port), "--output", str(manifest),
        ],
    )  # fmt: skip
    assert answer.exit_code == 0, answer.output
    played = subprocess.run(
        ["podman", "kube", "play", str(manifest)], capture_output=True, text=True, timeout=300
    )
    assert played.returncode == 0, played.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url)
        body = {"dataframe_split": {"columns": ["x", "z"], "data": [[1.0, 2.0]]}}
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = [
                pool.submit(requests.post, f"{url}/invocations", json=body, timeout=60)
                for _ in range(8)
            ]
            time.sleep(0.4)  # every request is in the model's one-second call now
            # As the kubelet does: SIGTERM to the pod's containers, the pod's network (its
            # infra container) only once they exit. (`podman kube down` tears both down at
            # once, which no Kubernetes does.)
            stop = subprocess.run(
                ["podman", "stop", "--time", "40", *_pod_containers("slow-v1")],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            results = [future.result() for future in answers]
        assert stop.returncode == 0, stop.stderr
        assert [r.status_code for r in results] == [200] * 8
        assert all(r.json() == {"predictions": [1.0]} for r in results)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/ping", timeout=5)
    finally:
        subprocess.run(["podman", "kube", "down", str(manifest)], capture_output=True)


def _pod_containers(deployment: str) -> list[str]:
    """The ids of the app containers (not the infra one) of a Deployment kube play runs."""
    listed = subprocess.run(
        ["podman", "ps", "--format", "json"], capture_output=True, text=True, check=True
    )
    found = [
        container["Id"]
        for container in json.loads(listed.stdout or "[]")
        if (container.get("Labels") or {}).get("app.kubernetes.io/name") == deployment
        and not container.get("IsInfra")
    ]
    assert found, listed.stdout
    return found


def _wait_until_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url}/ping never answered"
        time.sleep(0.3)


def test_push_to_a_registry_then_a_pull_by_digest_runs_and_serves(
    shared_repo: ModelRepository, image: str, registry: str, iris
) -> None:
    tag = f"{registry}/models/iris:1"
    pushed = run_cli(shared_repo, "build", "iris:1", "--tag", tag, "--push")["pushed"]
    assert pushed.startswith(f"{registry}/models/iris@sha256:")
    engine = client()
    port = free_port()
    try:
        engine.images.remove(tag)  # only the registry holds this name now
        pulled = engine.images.pull(pushed)
        container = engine.containers.run(
            pulled.id, detach=True, ports={"8080/tcp": ("127.0.0.1", port)}
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_ready(url)
            rows = _example(shared_repo.resolve("iris:1"))
            answer = requests.post(f"{url}/invocations", json={"dataframe_split": rows}, timeout=30)
            expected = shared_repo.load_pyfunc("iris:1").predict(pd.DataFrame(**rows)).tolist()
            assert answer.json() == {"predictions": expected}
        finally:
            container.remove(force=True)
    finally:
        engine.close()


def test_the_container_engine_scores_like_the_local_one(
    shared_repo: ModelRepository, image: str, iris, tmp_path: Path
) -> None:
    """`sparkserve score --engine container`: the image's score mode on the mounted files,
    with no network, writing what the local engine writes, owned by the caller."""
    features, _ = iris
    inputs = tmp_path / "in"
    inputs.mkdir()
    for part in range(2):
        features.iloc[part * 75 : (part + 1) * 75].to_csv(inputs / f"part-{part}.csv", index=False)
    (tmp_path / "out").mkdir()
    output = tmp_path / "out" / "scored.parquet"
    answer = run_cli(
        shared_repo, "score", "iris:1", str(inputs), str(output), "--engine", "container"
    )
    assert answer["rows"] == 150 and answer["files"] == 2
    local = tmp_path / "local.parquet"
    score("iris:1", inputs, local, repository=shared_repo)
    assert pd.read_parquet(output).equals(pd.read_parquet(local))
    assert output.stat().st_uid == os.getuid()
    assert [p.name for p in output.parent.iterdir()] == ["scored.parquet"]  # nothing partial


def test_status_lists_the_container_engine_and_target(
    shared_repo: ModelRepository, container_engine: str
) -> None:
    status = run_cli(shared_repo, "status")
    engines = {engine["engine"]: engine for engine in status["engines"]}
    assert list(engines)[:1] == ["local"] and engines["container"]["usable"]
    targets = {target["target"]: target for target in status["targets"]}
    assert targets["container"]["usable"]
    assert [o["name"] for o in targets["container"]["options"]] == [
        "host", "port", "token", "image", "base_image",
        "max_batch_rows", "max_wait_ms", "capture", "capture_sample", "capture_max_mb",
    ]  # fmt: skip
