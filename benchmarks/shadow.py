"""Shadow traffic: what mirroring to a shadow costs the primary endpoint, in one run.

Two primaries serve the same scikit-learn model as benchmarks/online.py: one without a
shadow, one mirroring every request to a shadow endpoint whose model sleeps 1 s per call
(the mirror drops what its queue cannot hold). wrk sends single-row `dataframe_split`
requests from 64 and from 1 connection, the two primaries taking turns round after round;
the medians over the rounds and the ratios (with shadow / without) are printed. Target: the
p99 unchanged within noise. `--fast-shadow` adds a third primary mirroring to a shadow that
answers at once (every request then really goes out, and is recorded).

    python benchmarks/shadow.py [--seconds 10] [--rounds 3] [--fast-shadow]

Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online import free_port, one_row_body, post_script, save_benchmark_model, start, stop, wrk

from jupyter_sparkserve.config import ENDPOINT_CONFIG_ENV

warnings.filterwarnings("ignore")


def save_models(workdir: Path) -> tuple[Path, Path, str]:
    """The primary's model, the sleeping shadow's, and a one-row request body."""
    import mlflow.pyfunc

    primary = workdir / "model"
    frame = save_benchmark_model(primary)

    class Sleepy(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            time.sleep(1.0)
            return [0] * len(model_input)

    sleepy = workdir / "sleepy"
    # Rows declared independent: the load-time merge probe would sleep ~20 times.
    mlflow.pyfunc.save_model(str(sleepy), python_model=Sleepy(),
                             metadata={"sparkserve": {"batching": "merge"}})  # fmt: skip
    return primary, sleepy, one_row_body(frame)


def offer_cost(workdir: Path, body: str) -> dict[str, float]:
    """Microseconds the event loop spends in `ShadowMirror.offer` per request, queued and
    dropped (best of 5 runs of 100,000 calls; no thread consumes meanwhile)."""
    from jupyter_sparkserve.scoring.shadow import ShadowMirror

    data, answer = body.encode(), b'{"predictions": [1]}'
    costs = {}
    for case, limit in (("queued", 10**6), ("dropped", 0)):
        best = float("inf")
        for _ in range(5):
            mirror = ShadowMirror("http://127.0.0.1:9", workdir / "offer",
                                  queue_requests=limit, queue_bytes=10**10)  # fmt: skip
            started = time.perf_counter()
            for _ in range(100_000):
                mirror.offer(data, "application/json", answer, 1.0)
            best = min(best, (time.perf_counter() - started) / 100_000 * 1e6)
        costs[case] = best
    return costs


def serve(model: Path, workdir: Path, name: str, settings: dict | None = None):
    port = free_port()
    command = [sys.executable, "-m", "jupyter_sparkserve", "serve", str(model), "--port", str(port)]
    if settings:
        os.environ[ENDPOINT_CONFIG_ENV] = json.dumps(settings)
    try:
        return port, start(command, port, workdir / f"{name}.log")
    finally:
        os.environ.pop(ENDPOINT_CONFIG_ENV, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="Turns each primary takes.")
    parser.add_argument("--fast-shadow", action="store_true", help="Also a shadow that answers.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    from jupyter_sparkserve.scoring.shadow import read_pairs

    workdir = Path(tempfile.mkdtemp(prefix="sparkserve-shadow-"))
    model, sleepy_model, body = save_models(workdir)
    script = post_script(workdir, body)
    processes = []
    try:
        sleepy_port, process = serve(sleepy_model, workdir, "sleepy-shadow")
        processes.append(process)
        primaries = {
            "no shadow": {},
            "sleeping shadow": {"shadow": f"http://127.0.0.1:{sleepy_port}"},
        }
        if args.fast_shadow:
            fast_port, process = serve(model, workdir, "fast-shadow")
            processes.append(process)
            primaries["fast shadow"] = {"shadow": f"http://127.0.0.1:{fast_port}"}
        ports = {}
        for name, settings in primaries.items():
            if settings:
                settings["shadow_folder"] = str(workdir / f"pairs-{name.replace(' ', '-')}")
            ports[name], process = serve(model, workdir, name.replace(" ", "-"), settings)
            processes.append(process)
            wrk(ports[name], 64, 2, script)  # warm-up
        runs: dict[str, dict[int, list[dict[str, float]]]] = {
            name: {64: [], 1: []} for name in primaries
        }
        for round_ in range(args.rounds):
            order = list(primaries) if round_ % 2 == 0 else list(primaries)[::-1]
            for connections in (64, 1):
                for name in order:
                    runs[name][connections].append(
                        wrk(ports[name], connections, args.seconds, script)
                    )
        recorded = {
            name: read_pairs(Path(settings["shadow_folder"]))
            for name, settings in primaries.items()
            if settings
        }
    finally:
        for process in processes:
            stop(process)

    def median(name: str, connections: int, figure: str) -> float:
        return statistics.median(run[figure] for run in runs[name][connections])

    costs = offer_cost(workdir, body)
    print(f"\nthe event loop's share per request: offer() {costs['queued']:.2f} us queued, "
          f"{costs['dropped']:.2f} us dropped (queue full)")  # fmt: skip
    print(f"single-row dataframe_split, {args.rounds} rounds of {args.seconds} s per "
          "primary and connection count, medians (every run in brackets)")  # fmt: skip
    print(f"{'primary':<18}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}  "
          "per round: p99 ms [req/s]")  # fmt: skip
    for name in primaries:
        for connections in (64, 1):
            each = " ".join(f"{run['p99_ms']:.2f}" for run in runs[name][connections])
            rates = " ".join(f"{run['rps']:.0f}" for run in runs[name][connections])
            print(f"{name:<18}{connections:>6}{median(name, connections, 'rps'):>10.0f}"
                  f"{median(name, connections, 'p50_ms'):>9.2f}"
                  f"{median(name, connections, 'p99_ms'):>9.2f}  {each} [{rates}]")  # fmt: skip
    for name, pairs in recorded.items():
        print(f"{name}: {len(pairs.primary_latency_ms)} requests paired, "
              f"{pairs.shadow_failures} failed at the shadow, {pairs.dropped} dropped "
              "(queue full)")  # fmt: skip
    print()
    for name in list(primaries)[1:]:
        for connections in (64, 1):
            ratios = {
                figure: median(name, connections, figure) / median("no shadow", connections, figure)
                for figure in ("rps", "p50_ms", "p99_ms")
            }
            rps, p50, p99 = (ratios[figure] for figure in ("rps", "p50_ms", "p99_ms"))
            print(
                f"{name}, {connections} conns: throughput x{rps:.2f}, p50 x{p50:.2f}, "
                f"p99 x{p99:.2f} of no shadow's"
            )
            baseline = [run["p99_ms"] for run in runs["no shadow"][connections]]
            ours, low, high = median(name, connections, "p99_ms"), min(baseline), max(baseline)
            verdict = "within" if low <= ours <= high else "OUTSIDE"
            print(
                f"  its median p99 {ours:.2f} ms is {verdict} no shadow's own spread over the "
                f"rounds ({low:.2f}-{high:.2f} ms)"
            )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
