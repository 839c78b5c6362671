"""Payload capture's cost: one endpoint capturing every request against one that does not.

Two sparkserve endpoints serve the same scikit-learn model as benchmarks/online.py, one with
capture at 100% (Parquet under a temporary folder), one without. wrk sends single-row
`dataframe_split` requests from 64 concurrent connections to each in turn, in interleaved
rounds (the order alternating), so that both meet the same machine. Prints each round's
requests/s, the median ratio and whether capture costs at most 10% of the throughput, then
how many requests the capturing endpoint wrote (it is stopped first: Undeploy's SIGTERM).

    python benchmarks/capture.py [--seconds 8] [--rounds 5]

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
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from online import free_port, one_row_body, post_script, save_benchmark_model, start, stop, wrk  # noqa: E402 (benchmarks/ is the path)

from jupyter_sparkserve.config import ENDPOINT_CONFIG_ENV  # noqa: E402

TARGET = 0.90  # capture keeps at least 90% of the throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    from jupyter_sparkserve.scoring.capture import read_captured

    workdir = Path(tempfile.mkdtemp(prefix="sparkserve-capture-bench-"))
    model_dir = workdir / "model"
    script = post_script(workdir, one_row_body(save_benchmark_model(model_dir)))
    folder = workdir / "capture"

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "jupyter_sparkserve", "serve", str(model_dir),
                "--port", str(port)]  # fmt: skip

    ports, processes = {}, {}
    try:
        for name, settings in (("off", None), ("capture", {"capture": True})):
            if settings:
                os.environ[ENDPOINT_CONFIG_ENV] = json.dumps(
                    {**settings, "capture_folder": str(folder)}
                )
            ports[name] = free_port()
            processes[name] = start(command(ports[name]), ports[name], workdir / f"{name}.log")
            os.environ.pop(ENDPOINT_CONFIG_ENV, None)
            wrk(ports[name], 64, 2, script)  # warm-up
        rates: dict[str, list[float]] = {"off": [], "capture": []}
        p99: dict[str, list[float]] = {"off": [], "capture": []}
        cpu: dict[str, list[float]] = {"off": [], "capture": []}  # CPU µs per request
        for round_ in range(args.rounds):
            order = ["off", "capture"] if round_ % 2 == 0 else ["capture", "off"]
            for name in order:
                before = _cpu_seconds(processes[name].pid)
                figures = wrk(ports[name], 64, args.seconds, script)
                used = _cpu_seconds(processes[name].pid) - before
                rates[name].append(figures["rps"])
                p99[name].append(figures["p99_ms"])
                cpu[name].append(used / (figures["rps"] * args.seconds) * 1e6)
            print(f"round {round_ + 1}: off {rates['off'][-1]:.0f} req/s "
                  f"({cpu['off'][-1]:.0f} CPU us/request), capture "
                  f"{rates['capture'][-1]:.0f} req/s ({cpu['capture'][-1]:.0f} CPU us/request), "
                  f"ratio {rates['capture'][-1] / rates['off'][-1]:.3f}", flush=True)  # fmt: skip
    finally:
        for process in processes.values():
            stop(process)  # SIGTERM: the capturing one writes what it queued

    ratios = [c / o for c, o in zip(rates["capture"], rates["off"], strict=True)]
    ratio = statistics.median(ratios)
    captured = read_captured(folder)
    size = sum(path.stat().st_size for path in folder.glob("*.parquet"))
    print(f"\n64 clients, single-row dataframe_split, {args.rounds} rounds of {args.seconds} s")
    for name in ("off", "capture"):
        print(f"  capture {name:<8} median {statistics.median(rates[name]):>8.0f} req/s, "
              f"p99 {statistics.median(p99[name]):.1f} ms")  # fmt: skip
    print(
        f"capture keeps {ratio:.3f} of the throughput (median of {len(ratios)} rounds; "
        f"each: {', '.join(f'{r:.3f}' for r in ratios)}); target >= {TARGET}"
    )
    print(
        f"captured {captured['__request_id'].nunique()} requests in {size / 1e6:.1f} MB "
        f"(wrk counted about {sum(rates['capture']) * args.seconds:.0f} in the timed runs, "
        "plus the warm-up)"
    )
    cpu_off, cpu_capture = statistics.median(cpu["off"]), statistics.median(cpu["capture"])
    print(
        f"the endpoint's own CPU time per request (less sensitive to a shared machine): "
        f"{cpu_off:.0f} us off, {cpu_capture:.0f} us capturing: capture keeps "
        f"{cpu_off / cpu_capture:.3f}"
    )
    said = [line for line in (workdir / "capture.log").read_text().splitlines() if "wrote" in line]
    print(said[-1] if said else "the capturing endpoint did not say what it wrote")
    print("target met" if ratio >= TARGET else "TARGET NOT MET")
    shutil.rmtree(workdir, ignore_errors=True)


def _cpu_seconds(pid: int) -> float:
    """The endpoint process's CPU time so far, its threads (the capture writer) included."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


if __name__ == "__main__":
    main()
