"""AzureML without Azure: a local fake of the parts of Azure Resource Manager that
azure-ai-ml 1.35 calls for managed online endpoints, served over TLS on 127.0.0.1 (azure-core
refuses bearer tokens over plain http), plus an App Service managed-identity token endpoint,
so that azure-identity's DefaultAzureCredential gets its token through its standard chain
(IDENTITY_ENDPOINT and IDENTITY_HEADER), and azure-ai-ml reaches the fake through its own
AZUREML_DEV_URL_MFE.

Replies use the shapes azure-ai-ml's REST models read (the least each needs is noted where it
matters). Long-running operations answer as ARM does: 201/202 with Azure-AsyncOperation, then
InProgress, then Succeeded (or Failed with an error). The workspace hands out its registry's
admin credentials (listKeys); the image itself goes to a real registry under the registry's
name (`_aws.cloud_registry`). The endpoint's scoring URI points back here and is answered by
`scorer` (a test forwards it to the real container). Batch endpoints hold pipeline-component
deployments; invoking one makes a job that goes Queued, Running, then `job_outcome` (or
Canceled when asked). Not covered: ARM's validation of names and SKUs, quotas, real start-up
and run times, the registry's token exchange, the data a batch job reads and writes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

MLS = "Microsoft.MachineLearningServices"
ACR_NAME = "sparkservetests"
ACR_HOST = f"{ACR_NAME}.azurecr.io"
# Where DefaultAzureCredential's chain could find something else first.
CREDENTIAL_ENVS = ("AZURE_", "MSI_", "IDENTITY_", "IMDS_")

# scorer(endpoint, deployment, body, headers) -> (status, reply bytes, content type)
Scorer = Callable[[str, str, bytes, dict[str, str]], tuple[int, bytes, str]]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeArm:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sub, self.rg, self.ws, self.location = str(uuid.UUID(int=7)), "rg", "ws", "westeurope"
        self.identity_header = secrets.token_urlsafe(12)
        self.acr_passwords = [secrets.token_urlsafe(24), secrets.token_urlsafe(24)]
        self.resources: dict[str, dict[str, Any]] = {}  # lower-cased ARM id -> resource
        self.keys: dict[str, dict[str, str]] = {}  # endpoint id -> its keys
        self.operations: dict[str, dict[str, Any]] = {}
        self.fail_provisioning: set[str] = set()  # names whose next PUT ends Failed
        self.primary_key: str | None = None  # a new endpoint's primary key (else a random one)
        self.jobs: dict[str, dict[str, Any]] = {}  # batch jobs by name
        self.job_outcome = "Completed"  # where a job ends once it has run
        self.job_polls = 2  # GETs of a job before it ends (Queued, then Running)
        self.scorer: Scorer = lambda *_: (424, b'{"error": "no scorer"}', "application/json")
        self.log: list[tuple[str, str]] = []  # (method, path) of every request
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{self.rg}"

    @property
    def ws_id(self) -> str:
        return f"{self.group_id}/providers/{MLS}/workspaces/{self.ws}"

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def certificate(self) -> Path:
        return self.folder / "arm.crt"

    @property
    def bundle(self) -> Path:
        return self.folder / "ca-bundle.crt"

    def environment(self) -> dict[str, str]:
        """What a client process needs: the base URL, the trusted certificate, the managed
        identity, and the workspace's standard variables."""
        return {
            "AZUREML_DEV_URL_MFE": self.base_url,
            # requests ignores SSL_CERT_FILE; the system's authorities stay trusted too
            "REQUESTS_CA_BUNDLE": str(self.bundle),
            "CURL_CA_BUNDLE": str(self.bundle),
            "IDENTITY_ENDPOINT": f"{self.base_url}/msi/token",
            "IDENTITY_HEADER": self.identity_header,
            "AZURE_SUBSCRIPTION_ID": self.sub,
            "AZURE_RESOURCE_GROUP": self.rg,
            "AZUREML_WORKSPACE_NAME": self.ws,
        }

    def endpoints(self) -> list[str]:
        prefix = f"{self.ws_id}/onlineEndpoints/".lower()
        return [
            r["name"]
            for k, r in self.resources.items()
            if k.startswith(prefix) and "/" not in k[len(prefix) :]
        ]

    def start(self) -> FakeArm:
        key = self.folder / "arm.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(key), "-out", str(self.certificate), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-addext", "basicConstraints=critical,CA:TRUE"],
            check=True, capture_output=True,
        )  # fmt: skip
        system = Path("/etc/ssl/certs/ca-certificates.crt")
        trusted = system.read_text() if system.exists() else ""
        self.bundle.write_text(trusted + "\n" + self.certificate.read_text())
        handler = type("Handler", (_Handler,), {"arm": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        registry = f"{self.group_id}/providers/Microsoft.ContainerRegistry/registries/{ACR_NAME}"
        self.resources[self.ws_id.lower()] = {
            "id": self.ws_id, "name": self.ws, "type": f"{MLS}/workspaces",
            "location": self.location, "tags": {}, "identity": {"type": "SystemAssigned"},
            "properties": {"containerRegistry": registry, "provisioningState": "Succeeded",
                           "discoveryUrl": f"{self.base_url}/discovery"},
        }  # fmt: skip
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    arm: FakeArm
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path.rstrip("/"), {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with self.arm.lock:
            self.arm.log.append((self.command, path))
        try:
            self._route(self.command, path, query, raw)
        except Exception as error:  # surfaced to the client, as ARM would
            self._send(500, _error("FakeArmError", repr(error)))

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _dispatch

    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        arm = self.arm
        if path == "/msi/token":  # App Service managed identity, api-version 2019-08-01
            if self.headers.get("X-IDENTITY-HEADER") != arm.identity_header:
                return self._send(401, {"error": "bad X-IDENTITY-HEADER"})
            return self._send(200, {
                "access_token": "fake." + secrets.token_urlsafe(16),
                "expires_on": str(int(time.time()) + 3600),
                "resource": query.get("resource", ""), "token_type": "Bearer",
            })  # fmt: skip
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            return self._send(401, _error("AuthenticationFailed", "no bearer token"))
        if path.startswith("/_operations/"):
            return self._operation(path.rsplit("/", 1)[-1])
        found = re.fullmatch(r"/online/(?P<ep>[^/]+)/score", path)
        if found and method == "POST":
            return self._score(found["ep"], raw)
        found = re.fullmatch(r"/batchscore/(?P<ep>[^/]+)/jobs", path)
        if found and method == "POST":
            return self._invoke(found["ep"], json.loads(raw) if raw else {})
        body = json.loads(raw) if raw else None
        ws = re.escape(arm.ws_id)
        with arm.lock:
            if re.fullmatch(ws, path, re.I) and method == "GET":
                return self._send(200, arm.resources[arm.ws_id.lower()])
            if re.fullmatch(ws + "/listKeys", path, re.I) and method == "POST":
                names = ("password", "password2")
                passwords = [
                    {"name": n, "value": v} for n, v in zip(names, arm.acr_passwords, strict=True)
                ]
                return self._send(
                    200,
                    {
                        "containerRegistryCredentials": {
                            "location": arm.location,
                            "username": ACR_NAME,
                            "passwords": passwords,
                        }
                    },
                )
            found = re.fullmatch(
                ws + r"/onlineEndpoints(?:/(?P<ep>[^/]+)(?:/(?P<sub>deployments|listKeys)"
                r"(?:/(?P<dep>[^/]+))?)?)?",
                path, re.I,
            )  # fmt: skip
            if found:
                return self._endpoints(method, found["ep"], found["sub"], found["dep"], body)
            found = re.fullmatch(ws + r"/batchEndpoints/(?P<ep>[^/]+)(?P<rest>/.*)?", path, re.I)
            if found:
                return self._batch(method, path, found["ep"], found["rest"] or "", body)
            found = re.fullmatch(ws + r"/jobs/(?P<job>[^/]+)(?P<cancel>/cancel)?", path, re.I)
            if found:
                return self._job(method, found["job"], bool(found["cancel"]))
            if re.fullmatch(ws + r"(/[^/]+/[^/]+)+", path, re.I):  # environments, components
                return self._resource(method, path, body, {})
        return self._send(404, _error("NotFound", f"no route for {method} {path}"))

    def _endpoints(
        self, method: str, ep: str | None, sub: str | None, dep: str | None, body: Any
    ) -> None:
        arm = self.arm
        if ep is None:
            return self._send(
                200,
                {
                    "value": [
                        arm.resources[k]
                        for k in arm.resources
                        if "/onlineendpoints/" in k and "/deployments/" not in k
                    ]
                },
            )
        ep_id = f"{arm.ws_id}/onlineEndpoints/{ep}"
        if sub is None:
            scoring = f"{arm.base_url}/online/{ep}/score"
            return self._resource(method, ep_id, body, {"scoringUri": scoring, "traffic": {}})
        if ep_id.lower() not in arm.resources:
            return self._send(404, _error("ResourceNotFound", f"endpoint {ep} not found"))
        if sub.lower() == "listkeys" and method == "POST":
            return self._send(200, arm.keys[ep_id.lower()])
        if dep is None:
            prefix = f"{ep_id}/deployments/".lower()
            return self._send(
                200, {"value": [r for k, r in arm.resources.items() if k.startswith(prefix)]}
            )
        # A deployment's reply needs endpointComputeType, scaleSettings and sku to be read.
        defaults = {"endpointComputeType": "Managed", "scaleSettings": {"scaleType": "Default"}}
        return self._resource(method, f"{ep_id}/deployments/{dep}", body, defaults)

    def _batch(self, method: str, path: str, ep: str, rest: str, body: Any) -> None:
        arm = self.arm
        ep_id = f"{arm.ws_id}/batchEndpoints/{ep}"
        if not rest:
            defaults = {"scoringUri": f"{arm.base_url}/batchscore/{ep}/jobs", "defaults": {}}
            return self._resource(method, ep_id, body, defaults)
        if ep_id.lower() not in arm.resources:
            return self._send(404, _error("ResourceNotFound", f"batch endpoint {ep} not found"))
        if rest.lower() == "/deployments" and method == "GET":
            prefix = f"{ep_id}/deployments/".lower()
            found = [r for k, r in arm.resources.items() if k.startswith(prefix)]
            return self._send(200, {"value": found})
        return self._resource(method, path, body, {})

    def _invoke(self, ep: str, body: dict[str, Any]) -> None:
        """The batch endpoint's scoring URI: a job of the deployment named in the header."""
        arm = self.arm
        deployment = self.headers.get("azureml-model-deployment", "")
        deployment_id = f"{arm.ws_id}/batchEndpoints/{ep}/deployments/{deployment}".lower()
        with arm.lock:
            if deployment_id not in arm.resources:
                return self._send(400, _error("BadRequest", f"no deployment {deployment!r}"))
            name = f"batchjob-{uuid.uuid4()}"
            arm.jobs[name] = {
                "id": f"{arm.ws_id}/jobs/{name}", "name": name,
                "type": f"{MLS}/workspaces/jobs", "gets": 0, "request": body,
                "deployment": deployment,
                "properties": {"jobType": "Pipeline", "status": "NotStarted", "jobs": {},
                               "inputs": {}, "outputs": {}, "settings": {}},
            }  # fmt: skip
        reply = {"id": arm.jobs[name]["id"], "name": name, "properties": {"status": "NotStarted"}}
        self._send(200, reply)

    def _job(self, method: str, name: str, cancel: bool) -> None:
        arm = self.arm
        job = arm.jobs.get(name)
        if job is None:
            return self._send(404, _error("UserError", f"job {name} not found"))
        properties = job["properties"]
        if cancel and method == "POST":
            properties["status"] = "Canceled"
            return self._send(202)
        if method != "GET":
            return self._send(405, _error("MethodNotAllowed", method))
        job["gets"] += 1
        if properties["status"] not in ("Completed", "Failed", "Canceled"):
            ended = job["gets"] > arm.job_polls
            properties["status"] = (
                arm.job_outcome if ended else ("Queued", "Running")[job["gets"] > 1]
            )
        reply = {k: v for k, v in job.items() if k not in ("gets", "request", "deployment")}
        return self._send(200, reply)

    def _resource(self, method: str, rid: str, body: Any, defaults: dict[str, Any]) -> None:
        arm = self.arm
        key = rid.lower()
        current = arm.resources.get(key)
        if method == "GET":
            if current is None:
                return self._send(404, _error("ResourceNotFound", f"{rid} not found"))
            return self._send(200, current)
        if method == "DELETE":
            if current is None:
                return self._send(204)
            current["properties"]["provisioningState"] = "Deleting"
            return self._send(202, None, self._async(rid, "delete", location=True))
        if method != "PUT":
            return self._send(405, _error("MethodNotAllowed", method))
        body = body if isinstance(body, dict) else {}
        properties = {**defaults, **(body.get("properties") or {})}
        for server_owned in ("scoringUri",):
            if current is not None:
                properties[server_owned] = current["properties"].get(server_owned)
        name = rid.rsplit("/", 1)[-1]
        failing = name in arm.fail_provisioning
        arm.fail_provisioning.discard(name)
        properties["provisioningState"] = "Updating" if current else "Creating"
        resource = {
            **{k: v for k, v in body.items() if k != "properties"},
            "id": rid, "name": name, "location": body.get("location") or arm.location,
            "type": f"{MLS}/workspaces/" + "/".join(rid[len(arm.ws_id) + 1:].split("/")[0::2]),
            "sku": body.get("sku") or {"name": "Default", "capacity": 1},
            "properties": properties,
            "systemData": {"createdAt": _now(), "lastModifiedAt": _now()},
        }  # fmt: skip
        if "/onlineendpoints/" in key and "/deployments/" not in key and key not in arm.keys:
            arm.keys[key] = {
                "primaryKey": arm.primary_key or secrets.token_urlsafe(24),
                "secondaryKey": secrets.token_urlsafe(24),
            }
        arm.resources[key] = resource
        headers = self._async(rid, "put", location=False, fail=failing)
        self._send(200 if current else 201, resource, headers)

    def _async(self, rid: str, kind: str, *, location: bool, fail: bool = False) -> dict[str, str]:
        operation = uuid.uuid4().hex
        self.arm.operations[operation] = {"resource": rid, "kind": kind, "fail": fail, "polls": 1}
        url = f"{self.arm.base_url}/_operations/{operation}"
        # retry-after-ms: azure-core honours it; a Retry-After must be a whole second or more.
        headers = {"Azure-AsyncOperation": url, "retry-after-ms": "100"}
        return {**headers, "Location": f"{url}?result=1"} if location else headers

    def _operation(self, operation_id: str) -> None:
        arm = self.arm
        with arm.lock:
            operation = arm.operations.get(operation_id)
            if operation is None:
                return self._send(404, _error("NotFound", "no such operation"))
            if operation["polls"] > 0:
                operation["polls"] -= 1
                status = 202 if "result" in self.path else 200
                return self._send(
                    status, {"id": operation_id, "status": "InProgress"}, {"retry-after-ms": "100"}
                )
            key = operation["resource"].lower()
            if operation["kind"] == "delete":
                for child in [k for k in arm.resources if k == key or k.startswith(key + "/")]:
                    del arm.resources[child]
                arm.keys.pop(key, None)
                if "result" in self.path:
                    return self._send(204)
            elif key in arm.resources:
                state = "Failed" if operation["fail"] else "Succeeded"
                arm.resources[key]["properties"]["provisioningState"] = state
        if operation["fail"]:
            error = {
                "code": "DeploymentFailed",
                "message": "The container failed its readiness probe on /ping.",
            }
            return self._send(200, {"id": operation_id, "status": "Failed", "error": error})
        self._send(200, {"id": operation_id, "status": "Succeeded"})

    def _score(self, ep: str, raw: bytes) -> None:
        arm = self.arm
        ep_id = f"{arm.ws_id}/onlineEndpoints/{ep}".lower()
        endpoint = arm.resources.get(ep_id)
        if endpoint is None:
            return self._send(404, _error("NotFound", f"endpoint {ep} not found"))
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if key not in arm.keys.get(ep_id, {}).values():
            return self._send(401, _error("Unauthorized", "bad key"))
        traffic = endpoint["properties"].get("traffic") or {}
        live = [name for name, share in traffic.items() if int(share) > 0]
        if not live:
            return self._send(424, _error("NoTraffic", "no deployment has traffic"))
        status, reply, content_type = arm.scorer(ep, live[0], raw, dict(self.headers))
        self._send(status, raw=reply, content_type=content_type)


@pytest.fixture(scope="session")
def azure_arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeArm]:
    """The fake ARM; its environment set for the session, with anything else that
    DefaultAzureCredential might pick up first taken out."""
    arm = FakeArm(tmp_path_factory.mktemp("arm")).start()
    removed = {k: v for k, v in os.environ.items() if k.startswith(CREDENTIAL_ENVS)}
    previous = {name: os.environ.get(name) for name in arm.environment()}
    for name in removed:
        del os.environ[name]
    os.environ.update(arm.environment())
    try:
        yield arm
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        os.environ.update(removed)
        arm.stop()
