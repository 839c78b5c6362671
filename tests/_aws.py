"""AWS without AWS: moto's server (SageMaker, ECR, IAM, STS, S3) behind a small forwarding
proxy on 127.0.0.1 that a test can tell to refuse or rewrite one operation (a failure
injected exactly where a test wants it), and a real registry under ECR's own host name.

What moto stands for and what it does not (README, "What the cloud tests cover"): SageMaker's
control plane is moto's (endpoints are InService at once; invoke_endpoint answers what a test
registers). ECR's API is moto's, but moto cannot receive image layers, so the push goes to
Debian's docker-registry serving TLS on 127.0.0.1:443 under the name ECR's token points at
(a line in /etc/hosts, removed afterwards; the registry's certificate in
/etc/containers/certs.d); the same registry answers as the AzureML workspace's registry.
Recipe: ../shared/ENVIRONMENT.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import require_component

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# Distinctive, so a test can look for it in logs, snippets and the database.
SECRET_KEY = "sparkserve-test-secret-Zq81"

# A reply for one operation (X-Amz-Target, such as "SageMaker.CreateEndpoint"): a status and
# a JSON body in place of moto's, or a function of moto's reply.
Rule = tuple[int, dict[str, Any]] | Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Aws:
    url: str  # AWS_ENDPOINT_URL: the proxy
    moto_url: str
    rules: dict[str, Rule] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)  # every operation asked, in order

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.moto_url)

    def sagemaker_resources(self) -> dict[str, list[str]]:
        sagemaker = self.client("sagemaker")
        return {
            "models": [m["ModelName"] for m in sagemaker.list_models()["Models"]],
            "configs": [
                c["EndpointConfigName"]
                for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
            ],
            "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]],
        }

    def answer_invocations_with(self, body: str, content_type: str = "application/json") -> None:
        """What moto's invoke_endpoint answers next (its API for canned results)."""
        result = {
            "Body": body,
            "ContentType": content_type,
            "InvokedProductionVariant": "AllTraffic",
        }
        requests.post(
            f"{self.moto_url}/moto-api/static/sagemaker/endpoint-results",
            json={"account_id": ACCOUNT, "region": REGION, "results": [result] * 10},
            timeout=10,
        ).raise_for_status()


class _Forward(BaseHTTPRequestHandler):
    aws: Aws

    def log_message(self, *_args: Any) -> None:
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        operation = self.headers.get("X-Amz-Target", "")
        self.aws.calls.append(operation)
        rule = self.aws.rules.get(operation)
        if isinstance(rule, tuple):
            self._reply(rule[0], json.dumps(rule[1]).encode(), "application/x-amz-json-1.1")
            return
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
        }
        answer = requests.request(
            self.command, self.aws.moto_url + self.path, data=body, headers=headers, timeout=60
        )
        content = answer.content
        if rule is not None and answer.ok:
            content = json.dumps(rule(answer.json()), default=str).encode()
        self._reply(answer.status_code, content, answer.headers.get("Content-Type", ""))

    def _reply(self, status: int, content: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


@pytest.fixture(scope="session")
def aws() -> Iterator[Aws]:
    """moto's server and the proxy; boto3's standard variables point every client at them
    for the session (the kernels and servers the tests start inherit them)."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    found = Aws(url="", moto_url=f"http://{host}:{port}")
    handler = type("Forward", (_Forward,), {"aws": found})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    found.url = f"http://127.0.0.1:{proxy.server_address[1]}"
    settings = {
        "AWS_ENDPOINT_URL": found.url,
        "AWS_ACCESS_KEY_ID": "AKIASPARKSERVETEST",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield found
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        proxy.shutdown()
        moto.stop()


@pytest.fixture(scope="session")
def cloud_registry(
    tmp_path_factory: pytest.TempPathFactory, container_engine: str
) -> Iterator[tuple[str, ...]]:
    """docker-registry serving TLS on 127.0.0.1:443 under the host names of the clouds'
    registries (ECR's, and the AzureML workspace's registry), as their tokens name them."""
    from _azure import ACR_HOST

    hosts = (ECR_HOST, ACR_HOST)
    binary = shutil.which("docker-registry")
    require_component("docker-registry", binary is not None, "apt-get install docker-registry")
    require_component("root (for /etc/hosts and port 443)", os.geteuid() == 0, "run CI as root")
    folder = tmp_path_factory.mktemp("cloud-registry")
    certificate, key = folder / "registry.crt", folder / "registry.key"
    names = ",".join(f"DNS:{host}" for host in hosts)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={hosts[0]}", "-addext", f"subjectAltName={names}",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "config.yml").write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:443\n  tls:\n    certificate: {certificate}\n"
        f"    key: {key}\n"
    )
    trusted = [Path("/etc/containers/certs.d") / host for host in hosts]
    for trust in trusted:
        trust.mkdir(parents=True, exist_ok=True)
        shutil.copy(certificate, trust / "ca.crt")
    etc_hosts = Path("/etc/hosts")
    original = etc_hosts.read_text()
    lines = "".join(f"127.0.0.1 {host}  # sparkserve tests\n" for host in hosts)
    etc_hosts.write_text(original.rstrip("\n") + "\n" + lines)
    server = subprocess.Popen(
        [str(binary), "serve", str(folder / "config.yml")],
        stdout=(folder / "registry.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (folder / "registry.log").read_text()
            try:
                if requests.get(f"https://{ECR_HOST}/v2/", verify=str(certificate), timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (folder / "registry.log").read_text()
            time.sleep(0.2)
        yield hosts
    finally:
        server.terminate()
        server.wait(timeout=30)
        etc_hosts.write_text(original)
        for trust in trusted:
            shutil.rmtree(trust, ignore_errors=True)


@pytest.fixture(scope="session")
def ecr_registry(cloud_registry: tuple[str, ...]) -> str:
    return ECR_HOST
