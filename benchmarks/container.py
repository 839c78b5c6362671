"""Model images: sparkserve's against the one `mlflow models generate-dockerfile` writes, in
one run, on the same base image and the same model.

Measures, for both: the image's size, a build from nothing (no layer cache; sparkserve's with
an empty environment cache too, so its downloads and install count), the time from `docker
run` to the first successful `/invocations`; for sparkserve: a rebuild after a new version of
the model, and throughput at 64 clients against the container next to the same endpoint on
the host. Prints
the figures, the ratios and whether the targets hold (size <= 1/3 of MLflow's, build <= 1/2,
rebuild < 15 s, first answer < 3 s and <= 1/4 of MLflow's, throughput in the container >= 0.9x
the host's).

    DOCKER_HOST=unix:///path/podman.sock python benchmarks/container.py --base-image IMAGE

Needs a Docker-API engine and `wrk`. Public registries cannot be reached here, so MLflow's
Dockerfile gets its FROM line pointed at the same base (with a venv providing `python` and
`pip` as python:3.X-slim does, and this machine's CA bundle for pip, which needs it to reach
the package index); its build downloads MLflow and the model's requirements from the index
and nginx from the Debian mirror, as it would anywhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from online import benchmark_model, free_port, one_row_body, post_script, start, stop, wrk

warnings.filterwarnings("ignore")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def python_base(engine: Any, base: str, workdir: Path) -> str:
    """The base with `python` and `pip` on PATH (a venv), and this machine's CA for pip."""
    context = workdir / "python-base"
    context.mkdir()
    shutil.copy(CA_BUNDLE, context / "ca.crt")
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        "COPY ca.crt /etc/ssl/certs/host-ca.crt\n"
        "RUN python3 -m venv /opt/python\n"
        "ENV PATH=/opt/python/bin:$PATH PIP_CERT=/etc/ssl/certs/host-ca.crt\n"
    )
    tag = "localhost/sparkserve-bench-python-base:latest"
    engine.images.build(path=str(context), tag=tag, network_mode="host", rm=True)
    return tag


def build_mlflow(engine: Any, model_dir: Path, base: str, workdir: Path) -> tuple[str, float]:
    import subprocess

    context = workdir / "mlflow-image"
    subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "-m", str(model_dir),
         "-d", str(context), "--env-manager", "local"],
        check=True, capture_output=True,
    )  # fmt: skip
    dockerfile = context / "Dockerfile"
    lines = dockerfile.read_text().splitlines()
    lines = [f"FROM {base}" if line.startswith("FROM ") else line for line in lines]
    dockerfile.write_text("\n".join(lines) + "\n")
    tag = "localhost/sparkserve-bench-mlflow:1"
    started = time.monotonic()
    engine.images.build(path=str(context), tag=tag, network_mode="host", rm=True, nocache=True)
    return tag, time.monotonic() - started


def first_answer(engine: Any, image: str, body: str, command: list[str] | None = None) -> float:
    """Seconds from `docker run` to the first 200 from /invocations."""
    import requests

    port = free_port()
    started = time.monotonic()
    container = engine.containers.run(
        image, command=command, detach=True, ports={"8080/tcp": ("127.0.0.1", port)}
    )
    try:
        while time.monotonic() - started < 300:
            try:
                answer = requests.post(
                    f"http://127.0.0.1:{port}/invocations",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=5,
                )
                if answer.status_code == 200:
                    return time.monotonic() - started
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"{image} never answered:\n{container.logs()[-2000:].decode()}")
    finally:
        container.remove(force=True)


def throughput_in_container(engine: Any, image: str, script: Path, seconds: int) -> float:
    import requests

    port = free_port()
    container = engine.containers.run(image, detach=True, ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the container never became ready")
            time.sleep(0.2)
        wrk(port, 64, 2, script)  # warm-up
        return wrk(port, 64, seconds, script)["rps"]
    finally:
        container.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-image", required=True, help="The base both images build on.")
    parser.add_argument("--seconds", type=int, default=8, help="Length of each wrk run.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    from jupyter_sparkserve.config import Settings
    from jupyter_sparkserve.containers import engine as engines
    from jupyter_sparkserve.containers.context import ImageSpec, image_tag
    from jupyter_sparkserve.repository import ModelRepository

    workdir = Path(tempfile.mkdtemp(prefix="sparkserve-container-bench-"))
    engine = engines.client(timeout=1800)
    base = python_base(engine, args.base_image, workdir)
    model, frame = benchmark_model()
    repository = ModelRepository(Settings.from_env(home=workdir / "home"))
    version = repository.save(model, "bench", input_example=frame.head(3))
    body = one_row_body(frame)
    script = post_script(workdir, body)

    mlflow_tag, mlflow_build = build_mlflow(engine, version.path, base, workdir)

    environments = workdir / "environments"  # empty: this build downloads and installs all
    os.environ["UV_CACHE_DIR"] = str(workdir / "uv-cache")  # and uv's own cache is empty
    spec = ImageSpec(version.ref, version.path, image_tag("bench", 1), base)
    for image in engine.images.list(name="sparkserve/bench"):
        engine.images.remove(image.id, force=True)
    started = time.monotonic()
    ours = engines.build_image(spec, environment_cache=environments, layer_cache=False)
    our_build = time.monotonic() - started

    other, _ = benchmark_model(regularization=0.5)
    newer = repository.save(other, "bench", input_example=frame.head(3))
    started = time.monotonic()
    newer_spec = ImageSpec(newer.ref, newer.path, image_tag("bench", 2), base)
    engines.build_image(newer_spec, environment_cache=environments)
    rebuild = time.monotonic() - started

    sizes = {tag: engine.images.get(tag).attrs["Size"] for tag in (mlflow_tag, ours.tag)}
    mlflow_start = first_answer(engine, mlflow_tag, body)
    our_start = first_answer(engine, ours.tag, body)

    in_container = throughput_in_container(engine, ours.tag, script, args.seconds)
    port = free_port()
    host = start(
        [sys.executable, "-m", "jupyter_sparkserve", "serve", str(version.path), "--port",
         str(port)],
        port, workdir / "host.log",
    )  # fmt: skip
    try:
        wrk(port, 64, 2, script)
        on_host = wrk(port, 64, args.seconds, script)["rps"]
    finally:
        stop(host)

    mb = 1024 * 1024
    print(f"\n{'':<34}{'MLflow':>12}{'sparkserve':>12}{'ratio':>8}")
    rows = [
        ("image size (MB)", sizes[mlflow_tag] / mb, sizes[ours.tag] / mb),
        ("build from nothing (s)", mlflow_build, our_build),
        ("docker run -> first answer (s)", mlflow_start, our_start),
    ]
    for label, theirs, mine in rows:
        print(f"{label:<34}{theirs:>12.1f}{mine:>12.1f}{mine / theirs:>8.2f}")
    print(f"{'rebuild after a new version (s)':<34}{'':>12}{rebuild:>12.1f}")
    print(f"{'64 clients req/s: container, host':<34}{in_container:>12.0f}{on_host:>12.0f}"
          f"{in_container / on_host:>8.2f}")  # fmt: skip
    checks = {
        "size <= 1/3 of MLflow's": sizes[ours.tag] <= sizes[mlflow_tag] / 3,
        "build <= 1/2 of MLflow's": our_build <= mlflow_build / 2,
        "rebuild < 15 s": rebuild < 15,
        "first answer < 3 s, <= 1/4 of MLflow's": our_start < 3 and our_start <= mlflow_start / 4,
        "container throughput >= 0.9x the host's": in_container >= 0.9 * on_host,
    }
    for label, held in checks.items():
        print(f"{'met    ' if held else 'NOT MET'} {label}")
    engine.close()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
