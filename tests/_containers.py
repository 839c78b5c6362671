"""A real container engine for the tests: Podman's Docker-compatible service (started here
unless DOCKER_HOST already points at an engine that answers), and a base image with Python
made by debootstrap (public registries cannot be reached), cached between runs.

Recipe and reasons: ../shared/ENVIRONMENT.md. CI (.ci/run) installs podman, runc and
debootstrap; a missing one fails the run there and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _endpoint_helpers import free_port
from conftest import require_component

BASE_IMAGE = "localhost/sparkserve-test-base:bookworm"
# The loopback registry's port, chosen now: the engine must list it as insecure (plain http)
# before it starts.
REGISTRY_PORT = free_port()
# Outside the clone, so that it survives between CI runs on the same machine.
CACHE = Path(os.environ.get("SPARKSERVE_TEST_CACHE", "/var/cache/sparkserve-tests"))
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
"""


@pytest.fixture(scope="session")
def container_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DOCKER_HOST of an engine that answers, set for the whole session."""
    from jupyter_sparkserve.containers.engine import ping_engine as availability

    given = os.environ.get("DOCKER_HOST")
    if given and availability().usable:
        before = _image_ids()
        try:
            yield given
        finally:
            _remove_images_made_since(before)
        return
    podman = shutil.which("podman")
    require_component("Podman", podman is not None, "apt-get install podman runc (.ci/run does)")
    folder = tmp_path_factory.mktemp("podman")
    (folder / "containers.conf").write_text(CONTAINERS_CONF)
    (folder / "registries.conf").write_text(
        f'[[registry]]\nlocation = "127.0.0.1:{REGISTRY_PORT}"\ninsecure = true\n'
    )
    socket = folder / "podman.sock"
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(folder / "containers.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(folder / "registries.conf"),
    }
    service = subprocess.Popen(
        [str(podman), "system", "service", "--time=0", f"unix://{socket}"],
        env=env,
        stdout=(folder / "service.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    names = ("DOCKER_HOST", "CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF")
    previous = {name: os.environ.get(name) for name in names}
    os.environ["DOCKER_HOST"] = f"unix://{socket}"
    for name in names[1:]:  # for the podman CLI too
        os.environ[name] = env[name]
    try:
        deadline = time.monotonic() + 30
        while not availability().usable:
            assert service.poll() is None, (folder / "service.log").read_text()
            assert time.monotonic() < deadline, availability().detail
            time.sleep(0.2)
        before = _image_ids()
        try:
            yield os.environ["DOCKER_HOST"]
        finally:
            _remove_images_made_since(before)
    finally:
        service.terminate()
        service.wait(timeout=30)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _image_ids() -> set[str]:
    from jupyter_sparkserve.containers.engine import client

    engine = client()
    try:
        return {image.id for image in engine.images.list(all=True)}
    finally:
        engine.close()


def _remove_images_made_since(before: set[str]) -> None:
    """Every image the session built goes with it (the base image stays, cached): a suite
    builds about forty images of ~700 MB, and repeated runs once filled CI's disk."""
    from jupyter_sparkserve.containers.engine import client

    engine = client(timeout=300)
    try:
        kept = set(before)
        for image in engine.images.list(all=True):
            if any(tag.startswith((BASE_IMAGE, "localhost/podman-pause")) for tag in image.tags):
                kept.add(image.id)
        for container in engine.containers.list(all=True):
            if container.attrs.get("ImageID", container.attrs.get("Image")) not in kept:
                container.remove(force=True)
        for image_id in _image_ids() - kept:
            try:
                engine.images.remove(image_id, force=True)
            except Exception:  # already gone with a parent removed just before
                continue
        engine.images.prune()
    finally:
        engine.close()


@pytest.fixture(scope="session")
def base_image(container_engine: str) -> Iterator[str]:
    """A Debian bookworm image with python3 (the same minor as the tests' Python), made
    once with debootstrap and cached as a tarball; SPARKSERVE_BASE_IMAGE for the session."""
    from jupyter_sparkserve.containers.engine import client

    engine = client()
    try:
        present = bool(engine.images.list(name=BASE_IMAGE))
    finally:
        engine.close()
    if not present:
        tarball = CACHE / "base-bookworm.tar"
        if not tarball.exists():
            _debootstrap(tarball)
        subprocess.run(
            ["podman", "import", str(tarball), BASE_IMAGE], check=True, capture_output=True
        )
    previous = os.environ.get("SPARKSERVE_BASE_IMAGE")
    os.environ["SPARKSERVE_BASE_IMAGE"] = BASE_IMAGE
    try:
        yield BASE_IMAGE
    finally:
        if previous is None:
            os.environ.pop("SPARKSERVE_BASE_IMAGE", None)
        else:
            os.environ["SPARKSERVE_BASE_IMAGE"] = previous


def _debootstrap(tarball: Path) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    require_component(
        "debootstrap", Path(debootstrap).exists(), "apt-get install debootstrap (.ci/run does)"
    )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sparkserve-base-") as workdir:
        root = Path(workdir) / "root"
        subprocess.run(
            [
                debootstrap, "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates", "bookworm", str(root),
                _debian_mirror(),
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


def _debian_mirror() -> str:
    """The machine's own Debian mirror (the only one it may reach)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, container_engine: str) -> Iterator[str]:
    """Debian's docker-registry (distribution) on 127.0.0.1: REGISTRY:PORT."""
    import requests

    binary = shutil.which("docker-registry")
    require_component(
        "docker-registry", binary is not None, "apt-get install docker-registry (.ci/run does)"
    )
    folder = tmp_path_factory.mktemp("registry")
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n  filesystem:\n    rootdirectory: " + str(folder / "storage") + "\n"
        f"http:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n"
    )
    server = subprocess.Popen(
        [str(binary), "serve", str(config)],
        stdout=(folder / "registry.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    address = f"127.0.0.1:{REGISTRY_PORT}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (folder / "registry.log").read_text()
            try:
                if requests.get(f"http://{address}/v2/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (folder / "registry.log").read_text()
            time.sleep(0.2)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)


def serve_image(
    image: str, command: list[str] | None = None, environment: dict[str, str] | None = None
) -> tuple[Any, str]:
    """Run `image` (its own command unless `command`) with port 8080 published on a free
    loopback port; the container and its URL, once /ping answers."""
    import requests
    from _endpoint_helpers import free_port

    from jupyter_sparkserve.containers.engine import client

    engine = client()
    port = free_port()
    try:
        container = engine.containers.run(
            image,
            command=command,
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", port)},
            environment=environment or {},
        )
    finally:
        engine.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).ok:
                return container, url
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, container.logs().decode()
        time.sleep(0.3)
