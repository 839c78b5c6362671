"""Tuned batching: `tune` on the benchmark model, then the chosen settings against the
endpoint's defaults (max_batch_rows 256, max_wait_ms 1), both measured with wrk in this run.

The model is benchmarks/online.py's (a logistic regression on 10 float features, single-row
`dataframe_split` requests). tune sweeps with wrk for a p99 target at N clients; then one
endpoint with the chosen settings and one with the defaults are loaded in turn, `--rounds`
times each (interleaved, so the machine's load falls on both alike), and the medians are
compared. Prints whether the chosen settings' p99 meets the target, and the ratio of
throughputs.

    python benchmarks/tune.py [--p99 20ms] [--clients 64] [--seconds 3] [--rounds 6]

Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online import save_benchmark_model

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p99", default="20ms", help="The latency target (20ms, 0.02s, 20).")
    parser.add_argument("--clients", type=int, default=64, help="Concurrent connections.")
    parser.add_argument("--seconds", type=float, default=3, help="Seconds per tune setting.")
    parser.add_argument("--compare-seconds", type=int, default=3, help="Seconds per wrk run.")
    parser.add_argument("--rounds", type=int, default=6, help="wrk runs of each, interleaved.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="sparkserve-tune-bench-"))
    # A repository and warm scorer of this run's own (tune starts one to fork endpoints from).
    os.environ["SPARKSERVE_HOME"] = str(workdir / "home")
    os.environ["SPARKSERVE_RUN_DIR"] = str(workdir / "run")
    os.environ["SPARKSERVE_WARM_SCORER"] = "auto"
    (workdir / "run").mkdir(mode=0o700)

    from jupyter_sparkserve.deploy import local
    from jupyter_sparkserve.deploy.tuning import (
        DEFAULT_SETTING,
        Measurement,
        parse_p99,
        request_bodies,
        tune,
    )
    from jupyter_sparkserve.repository import ModelRepository
    from jupyter_sparkserve.scoring.load import drive
    from jupyter_sparkserve.warm import client

    save_benchmark_model(workdir / "model")
    repository = ModelRepository.open()
    ref = repository.import_model(workdir / "model", "bench").ref
    p99 = parse_p99(args.p99)

    def heard(measured: Measurement) -> None:
        load = measured.load
        print(f"  {measured.phase:<10} {measured.setting.label():<36} {load.rps:>8,.0f} req/s"
              f"  p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms", flush=True)  # fmt: skip

    print(f"tune {ref} --p99 {p99:g}ms --clients {args.clients} --seconds {args.seconds:g}")
    try:
        result = tune(repository, ref, p99, clients=args.clients, seconds=args.seconds,
                      generator="wrk", progress=heard)  # fmt: skip
        print(result.message)
        if result.chosen is None:
            return
        chosen = result.chosen.setting
        version = repository.resolve(ref)
        bodies = request_bodies(version.local_path(), 1, ref)
        endpoints = {
            name: local.start_endpoint(
                version.local_path(), log_file=workdir / f"{name}.log", settings=asdict(setting)
            )
            for name, setting in (("defaults", DEFAULT_SETTING), ("tuned", chosen))
        }
        runs: dict[str, list] = {name: [] for name in endpoints}
        try:
            for _ in range(args.rounds):
                for name, endpoint in endpoints.items():
                    runs[name].append(drive(endpoint.host, endpoint.port, bodies,
                                            clients=args.clients, seconds=args.compare_seconds,
                                            warmup=1, generator="wrk"))  # fmt: skip
        finally:
            for endpoint in endpoints.values():
                local.stop_endpoint(endpoint)
    finally:
        client.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nwrk, {args.clients} clients, {args.compare_seconds} s x {args.rounds} rounds "
          "interleaved (median; every round in brackets)")  # fmt: skip
    print(f"{'settings':<46}{'req/s':>10}{'p99 ms':>10}   rounds (req/s, p99 ms)")
    medians = {}
    for name, setting in (("defaults", DEFAULT_SETTING), ("tuned", chosen)):
        rps = statistics.median(run.rps for run in runs[name])
        tail = statistics.median(run.p99_ms for run in runs[name])
        medians[name] = (rps, tail)
        each = ", ".join(f"{run.rps:,.0f}/{run.p99_ms:.1f}" for run in runs[name])
        print(f"{name + ' (' + setting.label() + ')':<46}{rps:>10,.0f}{tail:>10.2f}   [{each}]")
    # A round's two runs are seconds apart, so they share the machine's load: their ratio is
    # steadier than the ratio of the medians when other work comes and goes.
    paired = statistics.median(
        ours.rps / theirs.rps for ours, theirs in zip(runs["tuned"], runs["defaults"], strict=True)
    )
    ratio = medians["tuned"][0] / medians["defaults"][0]
    meets = medians["tuned"][1] <= p99
    print(f"\ntuned / defaults throughput: {paired:.2f}x (median of the rounds' ratios; "
          f"{ratio:.2f}x of the medians); tuned p99 {medians['tuned'][1]:.2f} ms "
          f"{'meets' if meets else 'MISSES'} the {p99:g} ms target; defaults' p99 "
          f"{medians['defaults'][1]:.2f} ms")  # fmt: skip
    sys.exit(0 if meets else 1)


if __name__ == "__main__":
    main()
