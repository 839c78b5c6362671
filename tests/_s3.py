"""A team repository for the tests: one fresh PostgreSQL database and one fresh bucket on
moto's S3 server, and each user's own SPARKSERVE_HOME (nothing shared on disk).

moto stands for S3 here (README, "Team repository"): its server speaks S3's REST protocol, so
boto3, the transfer manager and the conditional write of the owner marker run for real; what
AWS adds (eventual listing after deletes in other regions, throttling, KMS, bucket policies)
is not exercised.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from jupyter_sparkserve.config import Settings


@dataclass(frozen=True)
class Team:
    database_url: str
    bucket: str
    root: str  # SPARKSERVE_ARTIFACT_ROOT: s3://BUCKET/PREFIX
    s3: Any  # a boto3 client on moto, to look at the bucket as it is

    def settings(self, home: Path, mlflow: str | None = None) -> Settings:
        """One user's settings: their own home (and cache; and MLflow store unless `mlflow`
        names a shared tracking server), the team's database and bucket."""
        return Settings.from_env(
            home=home, database_url=self.database_url, mlflow_tracking_uri=mlflow
        )

    def objects(self, under: str = "") -> list[str]:
        """Every key in the bucket under the root's prefix (`under` below it)."""
        prefix = self.root.removeprefix(f"s3://{self.bucket}/") + "/" + under
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def new_bucket(s3: Any) -> str:
    name = f"team-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


@contextmanager
def mlflow_server(artifacts: str, folder: Path) -> Iterator[str]:
    """A shared MLflow tracking server on 127.0.0.1 whose artifacts go to `artifacts` (an
    s3:// URI, through boto3's own endpoint variables), as a team runs one; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "mlflow-server.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
        "--artifacts-destination", artifacts,
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=folder, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
