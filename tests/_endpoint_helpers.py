"""Models and server processes for tests/test_endpoint.py.

The PythonModel classes live in this importable module (the tests folder is on sys.path, and
on the servers' PYTHONPATH) so that cloudpickle stores them by reference and the server
subprocesses can load the saved models.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import requests

TESTS_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
# Pinned requirements: inferring them (MLflow loads the model in a subprocess) is slow.
PIP_REQUIREMENTS = ["pandas"]


# ----------------------------------------------------------------------------------- models


class TwoColumns(mlflow.pyfunc.PythonModel):
    """A DataFrame with two columns: each row's sum and maximum."""

    def predict(self, context, model_input, params=None):
        frame = pd.DataFrame(model_input)
        return pd.DataFrame({"a": frame.sum(axis=1), "b": frame.max(axis=1)})


class Scaled(mlflow.pyfunc.PythonModel):
    """`x + y`, times the `factor` param."""

    def predict(self, context, model_input, params=None):
        factor = (params or {}).get("factor", 1)
        return ((model_input["x"] + model_input["y"]) * factor).to_numpy()


class ParamsReader(mlflow.pyfunc.PythonModel):
    """No signature; reads `params` as a dict, as LLM-style models do: it answers only when
    the server hands it the params MLflow would (a dict for an LLM-style body)."""

    def predict(self, context, model_input, params=None):
        return [params.get("temperature", 0.7)]


class TimesTen(mlflow.pyfunc.PythonModel):
    """The first column times ten: every distinct input gets a distinct, checkable answer.
    `delay` seconds per call make concurrent requests queue up (and so share a batch)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def predict(self, context, model_input, params=None):
        if self.delay:
            time.sleep(self.delay)
        return (pd.DataFrame(model_input).iloc[:, 0] * 10).to_numpy()


class Slow(mlflow.pyfunc.PythonModel):
    """Sleeps `delay` seconds per call: for deadlines."""

    def __init__(self, delay: float = 2.0) -> None:
        self.delay = delay

    def predict(self, context, model_input, params=None):
        if len(model_input) and float(pd.DataFrame(model_input).iloc[0, 0]) < 0:
            return np.zeros(len(model_input))  # the input example check: no need to wait
        time.sleep(self.delay)
        return np.ones(len(model_input))


class Echo(mlflow.pyfunc.PythonModel):
    """No signature; answers its input as it got it."""

    def predict(self, context, model_input, params=None):
        return model_input


class ColumnsDict(mlflow.pyfunc.PythonModel):
    """No signature; answers a dict of two prediction lists (one entry per row in each)."""

    def predict(self, context, model_input, params=None):
        first = pd.DataFrame(model_input).iloc[:, 0]
        return {"label": (first * 10).tolist(), "score": first.tolist()}


def two_columns_example() -> pd.DataFrame:
    return pd.DataFrame({"x1": [1.0, 2.0, 3.5], "x2": [4.0, -1.0, 0.25], "x3": [0.5, 9.0, 2.0]})


def scaled_example() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, 0.25, 4.0]})


def single_column_example() -> pd.DataFrame:
    return pd.DataFrame({"x": [-1.0, -2.0], "z": [-0.5, 0.0]})


def save_two_columns(path: Path) -> Path:
    example = two_columns_example()
    mlflow.pyfunc.save_model(
        str(path),
        python_model=TwoColumns(),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


def save_scaled(path: Path) -> Path:
    from mlflow.models import infer_signature

    example = scaled_example()
    model = Scaled()
    signature = infer_signature(example, model.predict(None, example), params={"factor": 1.0})
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model,
        input_example=example,
        signature=signature,
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


def save_params_reader(path: Path) -> Path:
    mlflow.pyfunc.save_model(
        str(path), python_model=ParamsReader(), pip_requirements=PIP_REQUIREMENTS
    )
    return path


def save_times_ten(path: Path, delay: float = 0.0) -> Path:
    from mlflow.models import infer_signature

    example = single_column_example()
    model = TimesTen(delay)
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model,
        input_example=example,
        signature=infer_signature(example, model.predict(None, example)),
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


def save_slow(path: Path, delay: float = 2.0) -> Path:
    from mlflow.models import infer_signature

    example = single_column_example()
    mlflow.pyfunc.save_model(
        str(path),
        python_model=Slow(delay),
        input_example=example,
        signature=infer_signature(example, np.zeros(len(example))),
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


def save_without_signature(path: Path, model: mlflow.pyfunc.PythonModel) -> Path:
    mlflow.pyfunc.save_model(str(path), python_model=model, pip_requirements=PIP_REQUIREMENTS)
    return path


# -------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server subprocess: its own SPARKSERVE_HOME, the venv's bin first
    on PATH (`mlflow models serve` runs uvicorn from there) and the tests folder importable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    for variable in (
        "SPARKSERVE_DATABASE_URL",
        "SPARKSERVE_ARTIFACT_ROOT",
        "SPARKSERVE_ENDPOINT_TOKEN",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    ):
        env.pop(variable, None)
    env["SPARKSERVE_HOME"] = str(home)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    python_path = [str(TESTS_DIR), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(part for part in python_path if part)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class ServerProcess:
    """A server started in its own process group, its output captured in files."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        log_dir: Path,
        env: Mapping[str, str],
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self.ready = False
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                list(command),
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
            )

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def wait_ready(self, timeout: float = 240.0) -> ServerProcess:
        """Wait for GET /ping to answer 200; fail with the server's output otherwise."""
        if self.ready:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if requests.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    self.ready = True
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer /ping in {timeout:g} s:\n{self.output()}")

    def group_commands(self) -> list[str] | None:
        """Command lines of the live processes in this server's process group (Linux)."""
        proc = Path("/proc")
        if not (proc / "self" / "stat").exists():
            return None
        commands = []
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:  # gone meanwhile
                continue
            # After the command name: state, ppid, pgrp. Z: a zombie, not a live process.
            if int(fields[2]) == self.process.pid and fields[0] != "Z":
                commands.append(command.strip())
        return commands

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Children (uvicorn workers, MLflow's uvicorn) may outlive the group leader.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start_sparkserve(
    name: str,
    model_path: Path,
    log_dir: Path,
    home: Path,
    *options: str,
    host: str | None = "127.0.0.1",
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    port = free_port()
    command = [str(VENV_BIN / "sparkserve"), "serve", str(model_path), "--port", str(port)]
    if host is not None:
        command += ["--host", host]
    command += list(options)
    return ServerProcess(name, command, port, log_dir, server_env(home, env))


def start_mlflow(name: str, model_path: Path, log_dir: Path, home: Path) -> ServerProcess:
    port = free_port()
    command = [
        str(VENV_BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        str(model_path),
        "-p",
        str(port),
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
    ]
    return ServerProcess(name, command, port, log_dir, server_env(home))


def run_endpoint_snippets(snippets: Sequence[Any], workdir: Path) -> tuple[Any, Any]:
    """Run a deployment's python and curl snippets; what each printed, parsed as JSON."""
    import json

    python, curl = snippets
    script = workdir / "score.py"
    script.write_text(python.code)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    python_answer = json.loads(ran.stdout.strip())
    ran = subprocess.run(["bash", "-c", curl.code], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    return python_answer, json.loads(ran.stdout)
