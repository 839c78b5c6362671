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

import pytest
from conftest import require_component

BASE_IMAGE = "localhost/sparkserve-test-base:bookworm"
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
    from jupyter_sparkserve.containers.engine import availability

    given = os.environ.get("DOCKER_HOST")
    if given and availability().usable:
        yield given
        return
    podman = shutil.which("podman")
    require_component("Podman", podman is not None, "apt-get install podman runc (.ci/run does)")
    folder = tmp_path_factory.mktemp("podman")
    (folder / "containers.conf").write_text(CONTAINERS_CONF)
    socket = folder / "podman.sock"
    env = {**os.environ, "CONTAINERS_CONF": str(folder / "containers.conf")}
    service = subprocess.Popen(
        [str(podman), "system", "service", "--time=0", f"unix://{socket}"],
        env=env,
        stdout=(folder / "service.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    previous = {name: os.environ.get(name) for name in ("DOCKER_HOST", "CONTAINERS_CONF")}
    os.environ["DOCKER_HOST"] = f"unix://{socket}"
    os.environ["CONTAINERS_CONF"] = env["CONTAINERS_CONF"]  # for the podman CLI too
    try:
        deadline = time.monotonic() + 30
        while not availability().usable:
            assert service.poll() is None, (folder / "service.log").read_text()
            assert time.monotonic() < deadline, availability().detail
            time.sleep(0.2)
        yield os.environ["DOCKER_HOST"]
    finally:
        service.terminate()
        service.wait(timeout=30)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
