"""What the Jupyter server's deployment watcher costs (`deploy/watch.py`), in one run.

A fresh repository with one registered scikit-learn model. Measured, `--rounds` times each,
as the mean wall time of one call:
- baseline: `changes.read`, the small read the sidebar already makes every second (`GET
  changes`) while it is shown;
- a watch round with nothing running (one SELECT);
- a watch round with N local endpoints up (that SELECT, and per endpoint a row read, a pid
  check and a GET /ping on loopback);
and then how long after a SIGKILL of an endpoint a round running every second marks it
failed. Prints each with its ratio to the baseline.

    python benchmarks/watch.py [--rounds 200] [--endpoints 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path


def mean_seconds(call, rounds: int) -> float:
    call()  # once first: connections and imports out of the figure
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sparkserve-watch-bench-"))
    os.environ["SPARKSERVE_HOME"] = str(workdir / "home")
    os.environ.setdefault("SPARKSERVE_WARM_SCORER", "off")  # plain spawned endpoints

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from jupyter_sparkserve.deploy.deployments import Deployments
    from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
    from jupyter_sparkserve.deploy.watch import DeploymentWatcher, check_running
    from jupyter_sparkserve.repository import ModelRepository, changes

    repo = ModelRepository.open()
    frame = pd.DataFrame(np.random.default_rng(0).random((50, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    service = Deployments(repo)
    for index in range(args.endpoints):
        name = f"bench{index}"
        repo.save(model, name, input_example=frame.head(2), pip_requirements=["scikit-learn"])
        MlflowRegistry(repo).register(f"{name}:1")

    baseline = mean_seconds(lambda: changes.read(repo.engine), args.rounds)
    idle = mean_seconds(lambda: check_running(repo), args.rounds)
    deployed = [service.deploy(f"bench{index}:1") for index in range(args.endpoints)]
    try:
        busy = mean_seconds(lambda: check_running(repo), args.rounds)
        print(f"baseline changes.read:             {baseline * 1000:7.3f} ms")
        print(f"watch round, nothing running:      {idle * 1000:7.3f} ms ({idle / baseline:.1f}x)")
        print(
            f"watch round, {args.endpoints} endpoints up:       {busy * 1000:7.3f} ms "
            f"({busy / baseline:.1f}x; {busy / args.endpoints * 1000:.2f} ms per endpoint)"
        )
        print(f"share of the 1 s period with {args.endpoints} up:  {busy * 100:.2f}%")

        watcher = DeploymentWatcher(lambda: repo)
        watcher.start()
        noticed: list[float] = []
        try:
            for deployment in deployed:
                os.killpg(deployment.details["pid"], signal.SIGKILL)
                killed = time.monotonic()
                while service._read(deployment.id).status == "running":  # the row, no check
                    time.sleep(0.01)
                noticed.append(time.monotonic() - killed)
        finally:
            watcher.stop()
        print(
            f"killed endpoint marked failed after {statistics.mean(noticed):.2f} s on average "
            f"(max {max(noticed):.2f} s; the period is 1 s)"
        )
    finally:
        for deployment in service.list(active_only=True):
            service.undeploy(deployment.id)
        repo.close()


if __name__ == "__main__":
    main()
