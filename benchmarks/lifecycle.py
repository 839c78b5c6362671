"""Register and Deploy: sparkserve's against MLflow's own, in one run.

One scikit-learn model (a logistic regression on 10 floats, requirements pinned) is saved to a
fresh repository; its MLflow store (SPARKSERVE_HOME/mlflow.db) serves both sides. Measured, each
`--repeat` times alternating, the best and the worst kept:
- Register: `sparkserve register NAME:N` (the whole command, as typed in a shell; with a warm
  scorer running it runs in a child forked from it, as every command does after the first on a
  machine and all of them beside a Jupyter server) against a fresh `python -c` calling
  `mlflow.register_model` of the same folder;
- Deploy to the first answer: `sparkserve deploy NAME:N` (whole command: fetch the registered
  model, start the endpoint, wait for it) and then the first `POST /invocations` answered,
  against `mlflow models serve -m models:/NAME/N --env-manager local` from its start to its first
  answered `POST /invocations` (polled every 20 ms);
- the same two in a long-running process that preloaded MLflow's stores as the Jupyter server
  does at start (what the sidebar's REST calls run), against `mlflow.register_model` in a
  process that has imported MLflow;
- the Deploy again with no warm scorer (`SPARKSERVE_WARM_SCORER=off`): the endpoint is spawned
  as a fresh `python -m jupyter_sparkserve serve`, as before the warm scorer forked endpoints.

    python benchmarks/lifecycle.py [--repeat 3] [--workdir DIR]

Targets (issue 15): Register under 1 s; Deploy to the first answered request under 1.5 s and
at most a quarter of MLflow's. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

FEATURES = [f"x{i}" for i in range(10)]
BODY = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [[0.5] * 10]}}).encode()

MLFLOW_REGISTER = """
import sys, time, mlflow
tracking_uri, folder, name = sys.argv[1:4]
mlflow.set_tracking_uri(tracking_uri)
mlflow.register_model(folder, name)
"""

# A long-running process, as the Jupyter server is: MLflow's stores preloaded at its start,
# a warm scorer running; then Register and Deploy as its REST handlers call them.
IN_PROCESS = """
import json, sys, time, urllib.request
import jupyter_sparkserve.server.app  # what a Jupyter server with the extension has imported
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy import mlflow as registry
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.repository import ModelRepository
refs = sys.argv[1:]
settings = Settings.from_env()
repository = ModelRepository(settings)
registry.preload_in_background(settings)
registry.wait_for_preload()
body = sys.stdin.buffer.read()
out = {"register": [], "deploy": [], "mlflow_register": []}
import mlflow
mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
for ref in refs:
    started = time.perf_counter()
    registry.MlflowRegistry(repository).register(ref)
    out["register"].append(time.perf_counter() - started)
    started = time.perf_counter()
    deployment = Deployments(repository).deploy(ref, "local")
    request = urllib.request.Request(deployment.url + "/invocations", body,
                                     {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    out["deploy"].append(time.perf_counter() - started)
    assert deployment.details["forked"], deployment.details
    Deployments(repository).undeploy(deployment.id)
    folder = str(repository.resolve(ref).path)
    started = time.perf_counter()
    mlflow.register_model(folder, "bench-mlflow-warm")
    out["mlflow_register"].append(time.perf_counter() - started)
print(json.dumps(out))
"""


def make_model(home: Path, versions: int) -> Path:
    """`versions` versions of one model (each Register needs a version never registered)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from jupyter_sparkserve.config import Settings
    from jupyter_sparkserve.repository import ModelRepository

    rng = np.random.default_rng(1)
    features = pd.DataFrame(rng.normal(size=(2000, 10)), columns=FEATURES)
    target = (features.sum(axis=1) > 0).astype(int)
    model = LogisticRegression().fit(features, target)
    repository = ModelRepository(Settings.from_env(home=home))
    for _ in range(versions):
        version = repository.save(
            model, "bench", input_example=features.head(3), pip_requirements=["scikit-learn"]
        )
    repository.close()
    return version.path


def run(command: list[str], env: dict[str, str], **kwargs: Any) -> tuple[float, str]:
    """(wall seconds, stdout) of a whole command."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, **kwargs)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def answer(url: str, deadline: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """POST the row to `url`/invocations until it is answered 200 (polled every 20 ms)."""
    request = urllib.request.Request(
        f"{url}/invocations", BODY, {"Content-Type": "application/json"}
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer in time")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sparkserve_deploy(sparkserve: str, ref: str, env: dict[str, str]) -> tuple[float, bool]:
    """Deploy to the first answer, whole command; (seconds, forked from the warm scorer)."""
    started = time.perf_counter()
    _, out = run([sparkserve, "deploy", ref, "--json"], env)
    deployment = json.loads(out)
    answer(deployment["url"], time.monotonic() + 60)
    seconds = time.perf_counter() - started
    run([sparkserve, "undeploy", deployment["id"]], env)
    return seconds, bool(deployment["details"].get("forked"))


def mlflow_serve(mlflow: str, model_uri: str, env: dict[str, str], log: Path) -> float:
    """`mlflow models serve` from its start to its first answered request."""
    port = free_port()
    command = [mlflow, "models", "serve", "-m", model_uri, "-p", str(port), "-h", "127.0.0.1",
               "--env-manager", "local"]  # fmt: skip
    started = time.perf_counter()
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        answer(f"http://127.0.0.1:{port}", time.monotonic() + 180, process)
        return time.perf_counter() - started
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    n = args.repeat

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sparkserve-lifecycle-"))
    shutil.rmtree(work / "home", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    home = work / "home"
    run_dir = Path(tempfile.mkdtemp(prefix="sparkserve-bench-run-"))  # this run's warm scorer
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}
    env.update(SPARKSERVE_HOME=str(home), SPARKSERVE_RUN_DIR=str(run_dir))
    env.pop("SPARKSERVE_WARM_SCORER", None)
    cold_env = {**env, "SPARKSERVE_WARM_SCORER": "off"}
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": tracking_uri}
    sparkserve, mlflow = str(bin_dir / "sparkserve"), str(bin_dir / "mlflow")

    # Versions 1..n: the commands; n+1..2n: the long-running process; 2n+1..3n: no warm scorer.
    folder = make_model(home, 3 * n)
    # MLflow's store made and migrated once, for both sides, by a first registration.
    run([sys.executable, "-c", MLFLOW_REGISTER, tracking_uri, str(folder), "bench-warmup"], env)
    start_s, _ = run([sparkserve, "scorer", "start", "--idle-timeout", "600"], env)
    print(f"model: {folder}\nwarm scorer started in {start_s:.1f} s\n", flush=True)

    register, mlflow_register, deploy, mlflow_deploy, forked = [], [], [], [], []
    log = work / "mlflow-serve.log"
    for i in range(1, n + 1):  # alternating: the machine is shared
        register.append(run([sparkserve, "register", f"bench:{i}", "--json"], env)[0])
        mlflow_command = [sys.executable, "-c", MLFLOW_REGISTER, tracking_uri, str(folder)]
        mlflow_register.append(run([*mlflow_command, "bench-ml"], env)[0])
        seconds, was_forked = sparkserve_deploy(sparkserve, f"bench:{i}", env)
        deploy.append(seconds)
        forked.append(was_forked)
        mlflow_deploy.append(mlflow_serve(mlflow, f"models:/bench/{i}", mlflow_env, log))
        print(
            f"round {i}: register {register[-1]:.2f} s (MLflow {mlflow_register[-1]:.2f} s), "
            f"deploy {deploy[-1]:.2f} s (MLflow {mlflow_deploy[-1]:.2f} s)",
            flush=True,
        )

    refs = [f"bench:{i}" for i in range(n + 1, 2 * n + 1)]
    _, out = run([sys.executable, "-c", IN_PROCESS, *refs], env, input=BODY.decode())
    in_process = json.loads(out)

    cold_deploy = []
    for i in range(2 * n + 1, 3 * n + 1):
        run([sparkserve, "register", f"bench:{i}"], env)
        cold_deploy.append(sparkserve_deploy(sparkserve, f"bench:{i}", cold_env)[0])
    subprocess.run([sparkserve, "scorer", "stop"], env=env, check=True, capture_output=True)
    shutil.rmtree(run_dir, ignore_errors=True)

    best = {
        "register": min(register),
        "mlflow_register": min(mlflow_register),
        "deploy": min(deploy),
        "mlflow_deploy": min(mlflow_deploy),
        "in_process_register": min(in_process["register"]),
        "in_process_mlflow_register": min(in_process["mlflow_register"]),
        "in_process_deploy": min(in_process["deploy"]),
        "deploy_without_warm_scorer": min(cold_deploy),
    }
    rows = [
        ("Register, whole command", register, mlflow_register, "python -c register_model"),
        ("Deploy to first answer, whole command", deploy, mlflow_deploy, "mlflow models serve"),
        ("Register, long-running process", in_process["register"],
         in_process["mlflow_register"], "register_model, MLflow imported"),
        ("Deploy to first answer, long-running process", in_process["deploy"], mlflow_deploy,
         "mlflow models serve"),
        ("Deploy to first answer, no warm scorer", cold_deploy, mlflow_deploy,
         "mlflow models serve"),
    ]  # fmt: skip
    print(f"\nseconds: best (best-worst of {n})")
    print(f"{'':<46} {'sparkserve':>18} {'MLflow':>18}  MLflow / sparkserve")
    for label, ours, theirs, how in rows:
        ratio = min(theirs) / min(ours)
        print(f"{label:<46} {spread(ours):>18} {spread(theirs):>18}  {ratio:5.1f}x  ({how})")
    print()
    worst_register = max(max(register), max(in_process["register"]))
    checks = [
        (
            f"Register {best['register']:.2f} s as a command, {best['in_process_register']:.2f}"
            f" s in a long-running process (worst {worst_register:.2f} s; target < 1 s)",
            max(best["register"], best["in_process_register"]) < 1.0,
        ),
        (
            f"Deploy to first answer {best['deploy']:.2f} s as a command, "
            f"{best['in_process_deploy']:.2f} s in a long-running process (target < 1.5 s)",
            max(best["deploy"], best["in_process_deploy"]) < 1.5,
        ),
        (
            f"Deploy / MLflow's = {best['deploy'] / best['mlflow_deploy']:.2f} (target <= 0.25)",
            best["deploy"] / best["mlflow_deploy"] <= 0.25,
        ),
        (f"every endpoint forked from the warm scorer: {all(forked)}", all(forked)),
    ]
    for text, ok in checks:
        print(f"{'ok  ' if ok else 'MISS'} {text}")
    print(json.dumps({key: round(value, 3) for key, value in best.items()}))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
