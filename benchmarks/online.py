"""Online scoring: sparkserve's endpoint against MLflow's own server, in one run.

Both serve the same scikit-learn model on 127.0.0.1; wrk sends single-row `dataframe_split`
requests from 1 and from 64 concurrent connections. Prints requests/s and p50/p99 latency for
each, the ratios, and whether the targets hold (64 clients: >= 40x MLflow's throughput with
p99 < 50 ms; 1 client: p50 <= 1/3 of MLflow's).

    python benchmarks/online.py [--seconds 10] [--workers 1]

Needs `wrk` (apt-get install wrk). MLflow runs with its defaults (`mlflow models serve
--env-manager local`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def benchmark_model(regularization: float = 1.0) -> tuple[Any, Any]:
    """The model every online benchmark serves: a LogisticRegression on 10 floats (`C`:
    `regularization`, another value gives another version); and its features (a DataFrame)."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    features, target = make_classification(n_samples=2000, n_features=10, random_state=0)
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(10)])
    model = LogisticRegression(C=regularization, max_iter=500).fit(frame, target)
    return model, frame


def save_benchmark_model(model_dir: Path) -> Any:
    """`benchmark_model` saved as an MLflow folder at `model_dir`; its features."""
    import mlflow.sklearn

    model, frame = benchmark_model()
    mlflow.sklearn.save_model(model, str(model_dir), input_example=frame.head(3))
    return frame


def one_row_body(frame: Any) -> str:
    """A single-row `dataframe_split` request of `frame`'s first row."""
    return json.dumps(
        {"dataframe_split": {"columns": list(frame.columns), "data": frame.head(1).values.tolist()}}
    )


def post_script(workdir: Path, body: str) -> Path:
    """wrk's script POSTing `body` as JSON, in `workdir`."""
    script = workdir / "post.lua"
    script.write_text(LUA.format(body=body))
    return script


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command[0]} exited:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).read()
            return process
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{command} did not answer /ping in time:\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def wrk(port: int, connections: int, seconds: int, script: Path) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "--timeout", "30s", "-s",
         str(script), f"http://127.0.0.1:{port}/invocations"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in output:
        raise SystemExit(f"errors during the run:\n{output}")
    latency = {
        match[0]: float(match[1]) * UNITS[match[2]]
        for match in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    if set(latency) != {"50", "99"}:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    return {"rps": rate, "p50_ms": latency["50"], "p99_ms": latency["99"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--workers", type=int, default=1, help="sparkserve worker processes.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="sparkserve-online-"))
    model_dir = workdir / "model"
    script = post_script(workdir, one_row_body(save_benchmark_model(model_dir)))

    servers = {
        "MLflow": lambda port: [sys.executable, "-m", "mlflow", "models", "serve", "-m",
                                str(model_dir), "-h", "127.0.0.1", "-p", str(port),
                                "--env-manager", "local"],
        "sparkserve": lambda port: [sys.executable, "-m", "jupyter_sparkserve", "serve",
                                    str(model_dir), "--port", str(port),
                                    "--workers", str(args.workers)],
    }  # fmt: skip
    results: dict[str, dict[int, dict[str, float]]] = {}
    for name, command in servers.items():
        port = free_port()
        process = start(command(port), port, workdir / f"{name}.log")
        try:
            wrk(port, 64, 2, script)  # warm-up
            results[name] = {c: wrk(port, c, args.seconds, script) for c in (1, 64)}
        finally:
            stop(process)

    print(f"\nsingle-row dataframe_split, {args.seconds} s per run, sparkserve workers: "
          f"{args.workers}")  # fmt: skip
    print(f"{'server':<12}{'clients':>8}{'req/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for name, by_clients in results.items():
        for clients, figures in by_clients.items():
            print(f"{name:<12}{clients:>8}{figures['rps']:>12.0f}{figures['p50_ms']:>10.2f}"
                  f"{figures['p99_ms']:>10.2f}")  # fmt: skip
    ours, theirs = results["sparkserve"], results["MLflow"]
    throughput = ours[64]["rps"] / theirs[64]["rps"]
    latency = ours[1]["p50_ms"] / theirs[1]["p50_ms"]
    print(f"\n64 clients: {throughput:.1f}x MLflow's throughput (target >= 40x), "
          f"p99 {ours[64]['p99_ms']:.1f} ms (target < 50 ms)")  # fmt: skip
    print(f"1 client: p50 {latency:.2f} of MLflow's (target <= 0.33)")
    met = throughput >= 40 and ours[64]["p99_ms"] < 50 and latency <= 1 / 3
    print("targets met" if met else "TARGETS NOT MET")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
