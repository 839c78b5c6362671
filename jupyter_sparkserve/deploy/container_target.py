"""The `container` target: the version's image (built on deploy, or one given) running on a
Docker-API engine (Docker or Podman, local or remote through DOCKER_HOST).

The port is published on 127.0.0.1 unless told otherwise. The token reaches the container as
an environment variable, never in a label, the image or a log. The container's own state
says whether it serves: one that exited shows `failed` with its log tail. Undeploy stops and
removes the container; the image stays for the next deploy (every layer cached).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import processes
from ..config import BASE_IMAGE_ENV, DOCKER_HOST_ENV, ENDPOINT_CONFIG_ENV, ENDPOINT_TOKEN_ENV
from ..containers import engine
from ..containers.context import DEFAULT_BASE_IMAGE, ImageSpec, base_image, image_tag
from ..containers.environment import cache_folder as environment_cache
from ..containers.layout import CAPTURE_DIR, PORT
from ..errors import Conflict, InvalidInput
from ..options import Option
from ..snippets import Snippet
from .local import EndpointFailed, free_port, ping_problem, require_free_port, url_host
from .local_target import (
    CAPTURE_FOLDER,
    ENDPOINT_CONFIG_OPTIONS,
    ENDPOINT_OPTIONS,
    endpoint_settings,
    endpoint_snippets,
)
from .targets import Availability, DeploymentTarget, Started, StartRequest, TargetState

READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 10
LOG_TAIL_LINES = 20
DEPLOYMENT_LABEL = "io.sparkserve.deployment"
BASE_IMAGE_OPTION = Option(
    "base_image",
    "string",
    f"The image to build on (default: ${BASE_IMAGE_ENV}, else {DEFAULT_BASE_IMAGE}).",
    env=BASE_IMAGE_ENV,
)


class ContainerTarget(DeploymentTarget):
    name = "container"
    title = "A container engine"
    options = (
        *ENDPOINT_OPTIONS,
        Option("image", "string", "An image to run (default: build one for this version)."),
        BASE_IMAGE_OPTION,
        *ENDPOINT_CONFIG_OPTIONS,
    )

    def check(self) -> Availability:
        return engine.availability()

    def preflight(self, options: Mapping[str, Any]) -> None:
        require_free_port(options["host"], options["port"] or None)

    def start(self, request: StartRequest) -> Started:
        options = request.options
        host = options["host"]
        port = options["port"] or free_port(host)
        require_free_port(host, options["port"] or None)
        log_file = request.workdir / "log"
        image = options["image"] or build_deployment_image(request, log_file)
        environment = {ENDPOINT_TOKEN_ENV: options["token"]} if options["token"] else {}
        settings = endpoint_settings(options, CAPTURE_DIR)
        if settings:
            environment[ENDPOINT_CONFIG_ENV] = json.dumps(settings)
        client = engine.client()
        try:
            container = client.containers.run(
                image,
                command=["serve"],
                detach=True,
                name=f"sparkserve-{request.deployment_id}",
                labels={DEPLOYMENT_LABEL: request.deployment_id},
                ports={f"{PORT}/tcp": (host, port)},
                environment=environment,
                **_capture_mount(request.workdir / CAPTURE_FOLDER, bool(settings.get("capture"))),
            )
        except Exception as error:
            raise EndpointFailed(f"The container engine could not run {image}: {error}") from error
        finally:
            client.close()
        details = {
            "container_id": container.id,
            "image": image,
            "host": host,
            "port": port,
            "log_file": str(log_file),
            "token_required": bool(options["token"]),
            "engine": engine.where(),
            "machine": processes.MACHINE,
        }
        problem = self._wait_ready(details)
        if problem is not None:
            tail = _log_tail(container.id)  # a container that timed out still has one
            self.stop(details)
            raise EndpointFailed(f"The container of {image} {problem}.{tail}")
        return Started(f"http://{url_host(host)}:{port}", details)

    def stop(self, details: dict[str, Any]) -> None:
        environ = _engine_environ(details)
        if environ is None:
            raise Conflict(
                f"This container runs on the engine of {details['machine']}, which this machine "
                f"({processes.MACHINE}) cannot reach: stop it from a server or a notebook there."
            )
        client = engine.client(environ)
        try:
            container = client.containers.get(details["container_id"])
            container.stop(timeout=STOP_TIMEOUT_SECONDS)
            container.remove(force=True)
        except Exception as error:
            if not _not_found(error):
                raise EndpointFailed(f"Could not remove the container: {error}") from error
        finally:
            client.close()

    def state(self, details: dict[str, Any]) -> TargetState | None:
        environ = _engine_environ(details)
        if environ is None:
            return None  # another machine's local engine: that machine watches it
        try:
            client = engine.client(environ, timeout=10)
            try:
                container = client.containers.get(details["container_id"])
            finally:
                client.close()
        except Exception as error:
            if _not_found(error):
                return TargetState(False, "Its container is gone (removed outside sparkserve).")
            return TargetState(False, f"The container engine does not answer: {error}")
        if container.status == "running":
            return TargetState(True)
        code = container.attrs.get("State", {}).get("ExitCode")
        tail = _log_tail(container.id)
        # One that has ended is removed, its log kept; a paused or restarting one is left be.
        ended = container.status in ("exited", "dead")
        kept = _keep_log_and_remove(container, details.get("log_file")) if ended else ""
        return TargetState(
            False, f"Its container is {container.status} ({_exit_meaning(code)}).{tail}{kept}"
        )

    def snippets(self, version: Any, url: str, details: dict[str, Any]) -> list[Snippet]:
        return endpoint_snippets(version, url, details)

    def details(self, details: dict[str, Any]) -> list[tuple[str, str]]:
        shown = [
            ("image", str(details.get("image"))),
            ("container", str(details.get("container_id", ""))[:12]),
            ("engine", str(details.get("engine") or engine.where())),
        ]
        if details.get("token_required"):
            shown.append(("token", f"required (${ENDPOINT_TOKEN_ENV})"))
        return shown

    def _wait_ready(self, details: dict[str, Any]) -> str | None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            state = self.state(details)
            if not state.serving:  # its log is in the message (the container is removed)
                return f"stopped before it was ready: {state.message}"
            if ping_problem(details["host"], details["port"], 2.0) is None:
                return None
            if time.monotonic() > deadline:
                return f"did not answer /ping within {READY_TIMEOUT_SECONDS:g} s"
            time.sleep(0.2)


def build_deployment_image(request: StartRequest, log_file: Path) -> str:
    """The deployment's image, built from the fetched model on `options["base_image"]`
    (every layer but the model's cached from earlier builds), its log in `log_file`; the tag."""
    if not request.ref or ":" not in request.ref:
        raise InvalidInput("Building an image needs the version's NAME:VERSION.")
    name, _, version = request.ref.partition(":")
    spec = ImageSpec(
        request.ref,
        request.model_dir,
        image_tag(name, int(version)),
        base_image(request.options.get("base_image")),
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as log:

        def write(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        built = engine.build_image(spec, environment_cache=environment_cache(), log=write)
    return built.tag


def _capture_mount(folder: Path, capture: bool) -> dict[str, Any]:
    """The deployment's capture folder mounted read-write, the endpoint running as this
    user (as the `container` batch engine does), so that its files are this user's."""
    if not capture:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "volumes": {str(folder): {"bind": CAPTURE_DIR, "mode": "rw"}},
        "user": f"{os.getuid()}:{os.getgid()}",
    }


def _log_tail(container_id: str) -> str:
    try:
        client = engine.client(timeout=10)
        try:
            text = (
                client.containers.get(container_id)
                .logs(tail=LOG_TAIL_LINES)
                .decode("utf-8", "replace")
            )
        finally:
            client.close()
    except Exception:
        return ""
    return f"\nIts log ends with:\n{text.rstrip()}" if text.strip() else ""


def _keep_log_and_remove(container: Any, log_file: str | None) -> str:
    """Append a dead container's whole log to the deployment's log file, then remove it: a
    failed deployment leaves nothing on the engine. What to add to its error."""
    if not log_file:
        return ""
    try:
        text = container.logs().decode("utf-8", "replace")
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(f"--- the log of container {container.id[:12]}, which has ended ---\n{text}")
        container.remove(force=True)
    except Exception:  # the engine went away: the container stays, the error says the rest
        return ""
    return f"\nIts whole log is in {log_file}; the container is removed."


def _exit_meaning(code: Any) -> str:
    if isinstance(code, int) and code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        hint = ": killed, often for running out of memory" if name == "SIGKILL" else ""
        return f"exit code {code}, {name}{hint}"
    return f"exit code {code}"


def _not_found(error: Exception) -> bool:
    try:
        import docker.errors
    except ImportError:
        return False
    return isinstance(error, docker.errors.NotFound)


def _engine_environ(details: dict[str, Any]) -> dict[str, str] | None:
    """The environment that reaches the engine running the deployment's container; None when
    it is a local socket of another machine (a shared repository). Deployments recorded
    before engines were ran on this machine's current one."""
    where = str(details.get("engine") or engine.where())
    machine = details.get("machine") or processes.MACHINE
    if where.startswith("unix://") and machine != processes.MACHINE:
        return None
    return {**os.environ, DOCKER_HOST_ENV: where}
