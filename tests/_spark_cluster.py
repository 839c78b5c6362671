"""A real Spark standalone cluster on 127.0.0.1, started from the pyspark package: one master
and two workers (1 core, 1 GB each), each worker with its own work folder (where its
executors run and where files Spark distributes land). `benchmarks/spark.py` uses it too.

    with standalone_cluster(folder) as cluster:
        cluster.master_url  # spark://127.0.0.1:PORT
        cluster.state()     # the master's JSON UI: workers, activeapps, completedapps

`hidden=PATH` starts the workers in a mount namespace of their own with an empty tmpfs over
PATH: executors that do not share that folder with the driver, as on separate machines.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKERS = 2
START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def cluster_environment(folder: Path) -> dict[str, str]:
    """What spark-class needs: SPARK_HOME, JAVA_HOME (found as the engine finds java), and
    nothing of the user's own Spark configuration."""
    from jupyter_sparkserve.scoring.spark import _java

    java = _java()
    assert java is not None, "no java for the Spark cluster"
    conf = folder / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "JAVA_HOME": str(Path(java).resolve().parent.parent),
        "SPARK_CONF_DIR": str(conf),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(folder / "logs"),
    }


@dataclass
class StandaloneCluster:
    master_url: str
    ui_url: str
    worker_dirs: list[Path]
    logs: list[Path]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=10) as answer:
            return json.load(answer)

    def application(self, app_id: str) -> dict[str, Any] | None:
        """The application as the master lists it (with `state`), or None."""
        state = self.state()
        for app in state.get("activeapps", []) + state.get("completedapps", []):
            if app["id"] == app_id:
                return app
        return None

    def app_files(self, app_id: str) -> list[Path]:
        """Every file the executors of `app_id` received in their work folders."""
        return sorted(path for folder in self.worker_dirs for path in (folder / app_id).rglob("*"))

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-chars:]}" for log in self.logs)


@contextmanager
def standalone_cluster(
    folder: Path, *, workers: int = WORKERS, hidden: Path | None = None
) -> Iterator[StandaloneCluster]:
    """Start the master and `workers` workers; stop them all at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    env = cluster_environment(folder)
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, ui_port = _free_port(), _free_port()
    cluster = StandaloneCluster(
        master_url=f"spark://127.0.0.1:{port}",
        ui_url=f"http://127.0.0.1:{ui_port}",
        worker_dirs=[folder / f"worker-{index}" for index in range(workers)],
        logs=[],
    )

    def start(name: str, arguments: list[str], prefix: Sequence[str] = ()) -> None:
        log_path = folder / f"{name}.log"
        cluster.logs.append(log_path)
        with log_path.open("wb") as log:
            cluster.processes.append(
                subprocess.Popen(
                    [*prefix, spark_class, *arguments],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # stopped as a group: spark-class execs java
                )
            )

    try:
        start(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui_port),
            ],
        )
        for index, work_dir in enumerate(cluster.worker_dirs):
            work_dir.mkdir(exist_ok=True)
            start(
                f"worker-{index}",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    cluster.master_url,
                    "--host",
                    "127.0.0.1",
                    "--webui-port",
                    str(_free_port()),
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--work-dir",
                    str(work_dir),
                ],
                [] if hidden is None else _behind_tmpfs(hidden),
            )
        _wait_for_workers(cluster, workers)
        yield cluster
    finally:
        for process in cluster.processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in cluster.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait()


def private_mounts_available() -> bool:
    """Whether this user may make a mount namespace (root, or user namespaces allowed)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def _behind_tmpfs(hidden: Path) -> list[str]:
    """A command prefix: run the rest in a new mount namespace with a tmpfs over `hidden`."""
    script = 'mount -t tmpfs sparkserve-hidden "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(hidden)]


def _wait_for_workers(cluster: StandaloneCluster, workers: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    alive = 0
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if process.poll() is not None:
                raise RuntimeError(f"A Spark daemon exited:\n{cluster.log_tail()}")
        with suppress(OSError, ValueError):
            alive = sum(w["state"] == "ALIVE" for w in cluster.state()["workers"])
            if alive >= workers:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{alive} of {workers} workers came up:\n{cluster.log_tail()}")
