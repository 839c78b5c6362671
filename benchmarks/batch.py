"""Offline scoring: the local batch engine against `mlflow models predict` and the IO floor.

In one run, on one generated CSV of N rows x 10 floats and one scikit-learn model:
- `mlflow models predict` (the whole command: MLflow's batch scoring as users run it);
- `sparkserve score` (the whole command, CSV in, Parquet out) in a fresh process, as the
  first run on a machine goes (SPARKSERVE_WARM_SCORER=off; which loader read the model,
  sparkserve's own for this scikit-learn folder or MLflow's, is printed with it);
- `sparkserve scorer start`, then `sparkserve score` again: the whole command as every later
  run and every job from Jupyter goes, forked from the warm scorer; its peak memory is the
  scoring child's, as the kernel reports it to the warm scorer (`sparkserve scorer status`);
- each of those three runs 3 times, alternating: its best time and its highest peak count;
- the engine alone (in a fresh process, timed from after the model is loaded) against the IO
  floor: the same CSV read and the same Parquet written by pyarrow with no model at all;
- `sparkserve score` again on an input 5x larger, to show memory does not grow with it.

    python benchmarks/batch.py [--rows 2000000] [--scale 5] [--workdir DIR]

Targets (issues 4 and 15): at least 4x faster than `mlflow models predict` (the warm
command) and at least 2x from a fresh process, at most 1.3x the IO floor's time, peak memory
at most 400 MB and not growing on the larger input. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = [f"x{i}" for i in range(10)]
RUNS = 3  # of each measure on the small input, alternating; the best is kept

# Runs in a fresh interpreter: the engine timed against the floor on the same files, each
# measured in its own process so neither inherits the other's page cache warm-up unfairly
# (both read the file once beforehand).
ENGINE = """
import json, sys, time, resource
from pathlib import Path
from jupyter_sparkserve.scoring import batch
from jupyter_sparkserve.scoring.batch import load_batch_model
from jupyter_sparkserve.scoring.offline import _input_schema
model_path, source, target = sys.argv[1:4]
model = load_batch_model(Path(model_path))
plan = batch.plan_run(source, target, input_schema=_input_schema(Path(model_path)))
started = time.perf_counter()
result = batch.run(model, plan)
print(json.dumps({"seconds": time.perf_counter() - started, "rows": result.rows,
                  "loader": model.loader}))
"""

FLOOR = """
import json, sys, time
import pyarrow as pa, pyarrow.csv as csv, pyarrow.parquet as pq
source, target = sys.argv[1:3]
started = time.perf_counter()
reader = csv.open_csv(source, read_options=csv.ReadOptions(block_size=8 << 20),
                      convert_options=csv.ConvertOptions(column_types={c: pa.float64() for c in
                      [f"x{i}" for i in range(10)]}))
# the same Parquet as the engine's: random doubles are written plain, not dictionary-encoded
writer = pq.ParquetWriter(target, reader.schema.append(pa.field("prediction", pa.float64())),
                          use_dictionary=False)
rows = 0
for batch in reader:
    table = pa.Table.from_batches([batch])
    # the same number of output columns as the engine writes, filled with no model
    table = table.append_column("prediction", table.column("x0"))
    writer.write_table(table)
    rows += batch.num_rows
writer.close()
print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))
"""


def make_csv(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as csv

    if path.exists():
        return
    rng = np.random.default_rng(7)
    temp = path.with_suffix(".tmp")
    with csv.CSVWriter(str(temp), pa.schema([(name, pa.float64()) for name in FEATURES])) as w:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            data = rng.normal(size=(n, len(FEATURES))).round(6)
            w.write_table(pa.table({name: data[:, i] for i, name in enumerate(FEATURES)}))
    temp.rename(path)


def make_model(root: Path) -> Path:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from jupyter_sparkserve.config import Settings
    from jupyter_sparkserve.repository import ModelRepository

    rng = np.random.default_rng(1)
    features = pd.DataFrame(rng.normal(size=(2000, 10)), columns=FEATURES)
    target = (features.sum(axis=1) > 0).astype(int)
    repository = ModelRepository(Settings.from_env(home=root / "home"))
    version = repository.save(
        LogisticRegression().fit(features, target),
        "bench",
        input_example=features.head(3),
        pip_requirements=["scikit-learn", "pandas"],
    )
    return version.path


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB of the process tree's largest process, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stdout = process.stdout.read().decode() if process.stdout else ""
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:3]} failed:\n{stderr[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout


def last_warm_run_mb(sparkserve: str, env: dict[str, str]) -> float:
    """The peak memory of the warm scorer's last run (the forked child that scored)."""
    status = subprocess.run(
        [sparkserve, "scorer", "status", "--json"], env=env, check=True, capture_output=True
    )
    recent = json.loads(status.stdout).get("recent")
    if not recent:  # the run went fresh: the scorer stopped, or the package's code changed
        raise SystemExit("The warm scorer was not running for the warm run: run again.")
    return float(recent[-1]["peak_mb"])


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(16 << 20):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--scale", type=int, default=5, help="the larger input is this x rows")
    parser.add_argument("--workdir", type=Path, help="keep generated data here between runs")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sparkserve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}
    env["SPARKSERVE_HOME"] = str(work / "home")
    run_dir = Path(tempfile.mkdtemp(prefix="sparkserve-bench-run-"))  # this run's warm scorer
    env["SPARKSERVE_RUN_DIR"] = str(run_dir)
    small, large = work / f"rows-{args.rows}.csv", work / f"rows-{args.rows * args.scale}.csv"
    print(f"generating {small.name} and {large.name} in {work} ...", flush=True)
    make_csv(small, args.rows)
    make_csv(large, args.rows * args.scale)
    shutil.rmtree(work / "home", ignore_errors=True)
    model = make_model(work)
    ref = "bench:1"
    print(f"input: {small.stat().st_size / 1e6:.0f} MB CSV, {args.rows:,} rows x 10 floats\n")

    results: dict[str, float] = {}
    warm(small)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()

    mlflow_command = [
        str(bin_dir / "mlflow"), "models", "predict", "-m", str(model), "-i", str(small),
        "-t", "csv", "-o", str(out / "mlflow.json"), "--env-manager", "local",
    ]  # fmt: skip
    sparkserve = str(bin_dir / "sparkserve")
    cold_env = {**env, "SPARKSERVE_WARM_SCORER": "off"}
    cold_command = [sparkserve, "score", ref, str(small), str(out / "cold.parquet")]
    warm_command = [sparkserve, "score", ref, str(small), str(out / "ours.parquet")]
    mlflow_runs, cold_runs, warm_runs = [], [], []
    start_s = 0.0
    for attempt in range(RUNS):  # alternate, keep the best of each: the machine is shared
        mlflow_runs.append(timed(mlflow_command, env)[:2])
        cold_runs.append(timed(cold_command, cold_env)[:2])
        if attempt == 0:
            start_s = timed([sparkserve, "scorer", "start", "--idle-timeout", "600"], env)[0]
        warm_runs.append((timed(warm_command, env)[0], last_warm_run_mb(sparkserve, env)))
    # the best time, and the highest peak memory, of each
    (mlflow_s, mlflow_mb), (cold_s, cold_mb), (warm_s, warm_mb) = (
        (min(s for s, _ in runs), max(mb for _, mb in runs))
        for runs in (mlflow_runs, cold_runs, warm_runs)
    )
    results.update(
        mlflow_s=mlflow_s, mlflow_mb=mlflow_mb, cold_s=cold_s, cold_mb=cold_mb,
        start_s=start_s, warm_s=warm_s, warm_mb=warm_mb,
    )  # fmt: skip

    engine_runs, floor_runs = [], []
    loader = ""
    for _ in range(RUNS):
        _, _, text = timed(
            [sys.executable, "-c", ENGINE, str(model), str(small), str(out / "engine.parquet")],
            env,
        )
        engine_runs.append(json.loads(text)["seconds"])
        loader = json.loads(text)["loader"]
        _, _, text = timed(
            [sys.executable, "-c", FLOOR, str(small), str(out / "floor.parquet")], env
        )
        floor_runs.append(json.loads(text)["seconds"])
    results.update(engine_s=min(engine_runs), floor_s=min(floor_runs))

    warm(large)
    large_s, _, _ = timed([sparkserve, "score", ref, str(large), str(out / "large.parquet")], env)
    large_mb = last_warm_run_mb(sparkserve, env)
    large_cold_s, large_cold_mb, _ = timed(
        [sparkserve, "score", ref, str(large), str(out / "large-cold.parquet")], cold_env
    )
    subprocess.run([sparkserve, "scorer", "stop"], env=env, check=True, capture_output=True)
    results.update(large_s=large_s, large_mb=large_mb, large_cold_s=large_cold_s,
                   large_cold_mb=large_cold_mb)  # fmt: skip

    speedup, cold_speedup = mlflow_s / warm_s, mlflow_s / cold_s
    floor_ratio = results["engine_s"] / results["floor_s"]
    peak_mb = max(cold_mb, warm_mb)
    large_peak_mb = max(large_mb, large_cold_mb)
    print(f"{'run':<46} {'seconds':>8} {'peak MB':>8}")
    print(f"{'mlflow models predict (CSV -> JSON)':<46} {mlflow_s:8.2f} {mlflow_mb:8.0f}")
    print(f"{f'sparkserve score, fresh ({loader} loader)':<46} {cold_s:8.2f} {cold_mb:8.0f}")
    print(f"{'sparkserve scorer start (once)':<46} {start_s:8.2f}")
    print(f"{'sparkserve score, warm (CSV -> Parquet)':<46} {warm_s:8.2f} {warm_mb:8.0f}")
    print(f"{'  engine alone, after model load':<46} {results['engine_s']:8.2f}")
    print(f"{'  IO floor (pyarrow CSV -> Parquet)':<46} {results['floor_s']:8.2f}")
    print(f"{f'sparkserve score, warm, {args.scale}x rows':<46} {large_s:8.2f} {large_mb:8.0f}")
    print(
        f"{f'sparkserve score, fresh process, {args.scale}x rows':<46} {large_cold_s:8.2f} "
        f"{large_cold_mb:8.0f}"
    )
    print()
    checks = [
        (f"{speedup:.1f}x faster than mlflow models predict, warm (target >= 4x)", speedup >= 4),
        (
            f"{cold_speedup:.1f}x faster than mlflow models predict from a fresh process, the "
            "first run on a machine (target >= 2x)",
            cold_speedup >= 2,
        ),
        (f"engine / IO floor = {floor_ratio:.2f} (target <= 1.3)", floor_ratio <= 1.3),
        (f"peak memory {peak_mb:.0f} MB (target <= 400 MB)", peak_mb <= 400),
        (
            f"peak memory on {args.scale}x input {large_peak_mb:.0f} MB (target: not growing, "
            f"<= {peak_mb * 1.1:.0f} MB)",
            large_peak_mb <= max(peak_mb * 1.1, peak_mb + 20),
        ),
    ]
    for text, ok in checks:
        print(f"{'ok  ' if ok else 'MISS'} {text}")
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))
    shutil.rmtree(run_dir, ignore_errors=True)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
