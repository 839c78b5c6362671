"""The live monitor's cost on the endpoint it watches, in one run.

One sparkserve endpoint serves a scikit-learn model on 127.0.0.1; wrk sends single-row
`dataframe_split` requests from 64 connections. Rounds alternate: without a monitor, then
with `monitor.Monitor` reading `/metrics` at the default rate (every
`DEFAULT_INTERVAL_SECONDS`, as `%sfmonitor` and the sidebar do), and so on. Prints each
round's requests/s, the median throughput of each kind, and the cost as a ratio (target:
under 1%).

    python benchmarks/monitor.py [--seconds 10] [--rounds 5]

Needs `wrk` (apt-get install wrk). wrk's throughput moves by a few per cent from one round to
the next even on a quiet machine, more than the 1% to be shown, so the verdict rests on the
endpoint's own CPU accounting (psutil, its process): the CPU seconds one /metrics answer costs
it, times the reads per second, as a share of the CPU seconds per second it spends serving
under the same load. The endpoint is CPU-bound under this load, so that share is the
throughput the monitor takes from it. The wrk medians are printed beside it as a check.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online import (  # the same folder
    free_port,
    one_row_body,
    post_script,
    save_benchmark_model,
    start,
    stop,
    wrk,
)

warnings.filterwarnings("ignore")


class Polling:
    """A monitor reading /metrics every `interval` seconds on a thread, as the faces do."""

    def __init__(self, port: int) -> None:
        from jupyter_sparkserve.monitor import DEFAULT_INTERVAL_SECONDS, MetricsSource, Monitor

        source = MetricsSource(f"http://127.0.0.1:{port}/metrics", "benchmark")
        self.monitor, self.interval = Monitor(source), DEFAULT_INTERVAL_SECONDS
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.last = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last = self.monitor.poll()
            self.reads += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Polling:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def metrics_service_seconds(port: int, reads: int = 200) -> float:
    """The median time the idle endpoint takes to answer /metrics: the monitor's work."""
    import time
    import urllib.request

    took = []
    for _ in range(reads):
        started = time.perf_counter()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, every thread's (user and system)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def metrics_cpu_seconds(port: int, pid: int, reads: int = 1000) -> float:
    """The endpoint's CPU seconds per /metrics answer, over `reads` answers in a row."""
    import urllib.request

    before = cpu_seconds(pid)
    for _ in range(reads):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return (cpu_seconds(pid) - before) / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk round.")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds of each kind.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="sparkserve-monitor-"))
    model_dir = workdir / "model"
    script = post_script(workdir, one_row_body(save_benchmark_model(model_dir)))

    port = free_port()
    command = [sys.executable, "-m", "jupyter_sparkserve", "serve", str(model_dir),
               "--port", str(port)]  # fmt: skip
    process = start(command, port, workdir / "sparkserve.log")
    without: list[float] = []
    with_monitor: list[float] = []
    serving_cpu: list[float] = []  # the endpoint's CPU seconds per second under the load
    try:
        wrk(port, 64, 2, script)  # warm-up
        service = metrics_service_seconds(port)
        per_read = metrics_cpu_seconds(port, process.pid)
        print(f"64 connections, {args.seconds} s per round, rounds interleaved")
        for round_number in range(1, args.rounds + 1):
            before = cpu_seconds(process.pid)
            plain = wrk(port, 64, args.seconds, script)["rps"]
            serving_cpu.append((cpu_seconds(process.pid) - before) / args.seconds)
            with Polling(port) as polling:
                watched = wrk(port, 64, args.seconds, script)["rps"]
            without.append(plain)
            with_monitor.append(watched)
            seen = polling.last.requests_per_second if polling.last else None
            print(f"round {round_number}: without {plain:,.0f} req/s, with the monitor "
                  f"{watched:,.0f} req/s ({polling.reads} reads; it saw "
                  f"{seen or 0:,.0f} req/s)")  # fmt: skip
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)

    base, ours = statistics.median(without), statistics.median(with_monitor)
    cost = 1 - ours / base
    paired = statistics.median(w / p for w, p in zip(with_monitor, without, strict=True))
    from jupyter_sparkserve.monitor import DEFAULT_INTERVAL_SECONDS

    share = service / DEFAULT_INTERVAL_SECONDS
    print(
        f"\none /metrics read takes the idle endpoint {service * 1000:.2f} ms (median of 200): "
        f"every {DEFAULT_INTERVAL_SECONDS:g} s that is {share:.4%} of one worker's time"
    )
    print(f"median of the rounds' with/without ratios: {paired:.4f}")  # fmt: skip
    print(f"median without: {base:,.0f} req/s; with the monitor: {ours:,.0f} req/s")
    print(f"wrk throughput with/without: {ours / base:.4f} (cost {cost:+.2%}, within wrk's noise)")
    serving = statistics.median(serving_cpu)
    cpu_share = per_read / DEFAULT_INTERVAL_SECONDS / serving
    print(
        f"\nthe endpoint's CPU: {per_read * 1000:.3f} ms per /metrics answer (mean of 1000), "
        f"{serving:.2f} CPU s/s serving 64 connections"
    )
    print(f"the monitor's share of the endpoint's CPU: {cpu_share:.4%} (target < 1%)")
    print("target met" if cpu_share < 0.01 else "TARGET NOT MET")


if __name__ == "__main__":
    main()
