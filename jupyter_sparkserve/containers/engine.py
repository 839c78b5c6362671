"""A Docker-API container engine (Docker, or Podman's Docker-compatible service) through
docker-py: where it is, whether it answers, and building a model version's image."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DOCKER_HOST_ENV
from ..errors import SparkserveError
from ..plugins import Availability
from .context import ImageSpec, write_context
from .environment import ImageBuildError

PING_TIMEOUT_SECONDS = 2.0
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class BuiltImage:
    id: str
    tag: str


def where(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(DOCKER_HOST_ENV) or f"unix://{DEFAULT_DOCKER_SOCKET}"


def client(environ: Mapping[str, str] | None = None, timeout: float = 120.0) -> Any:
    """A docker-py client for the engine at DOCKER_HOST (else the default socket)."""
    try:
        import docker
    except ImportError as error:
        message = "The docker package is not installed (pip install docker)."
        raise ImageBuildError(message) from error
    env = dict(os.environ if environ is None else environ)
    return docker.DockerClient.from_env(environment=env, timeout=timeout)


# The deploy target and the batch engine ask the same engine for one `status`: answers are
# kept a few seconds, by engine address.
_ANSWERS: dict[str, tuple[float, Availability]] = {}
ANSWER_SECONDS = 5.0


def availability(environ: Mapping[str, str] | None = None) -> Availability:
    """Whether an engine answers, in at most a couple of seconds and without side effects."""
    address = where(environ)
    kept = _ANSWERS.get(address)
    if kept is not None and time.monotonic() - kept[0] < ANSWER_SECONDS:
        return kept[1]
    answer = ping_engine(environ)
    _ANSWERS[address] = (time.monotonic(), answer)
    return answer


def ping_engine(environ: Mapping[str, str] | None = None) -> Availability:
    """Ask the engine now (`availability` keeps answers a few seconds)."""
    try:
        engine = client(environ, timeout=PING_TIMEOUT_SECONDS)
        try:
            engine.ping()
        finally:
            engine.close()
    except Exception as error:  # docker-py raises many kinds; every one means "not reachable"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return Availability(False, f"No container engine answers at {where(environ)}: {reason}")
    return Availability(True, f"Container engine at {where(environ)}.")


def build_image(
    spec: ImageSpec,
    *,
    environment_cache: Path,
    context_dir: Path | None = None,
    log: Callable[[str], None] = lambda _line: None,
    layer_cache: bool = True,
    cancel: threading.Event | None = None,
) -> BuiltImage:
    """Write the context (into `context_dir`, else a temporary folder next to the
    environment cache, for hard links, removed afterwards) and build it on the engine with no
    network: the installed environment is in the context."""
    temporary = context_dir is None
    if context_dir is None:
        contexts = environment_cache.parent / "contexts"
        contexts.mkdir(parents=True, exist_ok=True)
        _remove_stale(contexts)
        context_dir = Path(tempfile.mkdtemp(prefix="image-", dir=contexts))
    try:
        cache = environment_cache
        write_context(spec, context_dir, environment_cache=cache, log=log, cancel=cancel)
        return _build(spec, context_dir, log, layer_cache)
    finally:
        if temporary:
            shutil.rmtree(context_dir, ignore_errors=True)


STALE_CONTEXT_SECONDS = 24 * 3600


def _remove_stale(contexts: Path) -> None:
    """Contexts a killed build left behind (a day old: no build takes that long)."""
    for stale in contexts.glob("image-*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_CONTEXT_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)


def _build(
    spec: ImageSpec, context_dir: Path, log: Callable[[str], None], layer_cache: bool
) -> BuiltImage:
    engine = client()
    image_id = ""
    try:
        stream = engine.api.build(
            path=str(context_dir),
            tag=spec.tag,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode="none",
            nocache=not layer_cache,
        )
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(f"Building {spec.tag} failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "")
            for line in text.splitlines():
                if line.strip():
                    log(line.rstrip())
            aux = chunk.get("aux") or {}
            image_id = aux.get("ID", image_id)
        image_id = image_id or engine.images.get(spec.tag).id
    except SparkserveError:  # its own failure, or a cancel from the log callback
        raise
    except Exception as error:
        raise ImageBuildError(f"Building {spec.tag} failed: {error}") from error
    finally:
        engine.close()
    return BuiltImage(id=image_id, tag=spec.tag)


def split_tag(tag: str) -> tuple[str, str]:
    """(REPOSITORY, TAG) of an image reference; TAG is `latest` when it names none (a colon
    before the last slash is a registry's port)."""
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        return tag, "latest"
    return repository, version


def tag_image(source: str, target: str) -> None:
    """Give the engine's image `source` the name `target` too (REPOSITORY:TAG)."""
    repository, version = split_tag(target)
    engine = client()
    try:
        if not engine.images.get(source).tag(repository, tag=version):
            raise ImageBuildError(f"The engine could not tag {source} as {target}.")
    except SparkserveError:
        raise
    except Exception as error:
        raise ImageBuildError(f"Tagging {source} as {target} failed: {error}") from error
    finally:
        engine.close()


def push_image(
    tag: str,
    log: Callable[[str], None] = lambda _line: None,
    *,
    auth_config: Mapping[str, str] | None = None,
) -> str:
    """Push `tag` (REGISTRY/REPOSITORY:TAG) with `auth_config` (a registry's short-lived
    token, never logged), else the engine's credentials for that registry; the pushed image
    as `REPOSITORY@sha256:...`, to pull exactly this image by."""
    repository, version = split_tag(tag)
    engine = client()
    digest = ""
    auth = dict(auth_config) if auth_config else None
    try:
        for chunk in engine.images.push(
            repository, tag=version, stream=True, decode=True, auth_config=auth
        ):
            if "error" in chunk:
                raise ImageBuildError(f"Pushing {tag} failed: {chunk['error'].strip()}")
            if chunk.get("status") and not chunk.get("progressDetail"):
                log(str(chunk["status"]))
            digest = (chunk.get("aux") or {}).get("Digest", digest)
            found = re.search(r"digest: (sha256:[0-9a-f]{64})", str(chunk.get("status", "")))
            digest = found.group(1) if found else digest
    except SparkserveError:
        raise
    except Exception as error:
        raise ImageBuildError(f"Pushing {tag} failed: {error}") from error
    finally:
        engine.close()
    if not digest:
        raise ImageBuildError(f"Pushing {tag} gave no digest: the registry did not confirm it.")
    return f"{repository}@{digest}"
