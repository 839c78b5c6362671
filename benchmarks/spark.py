"""The Spark engine on `local[2]` and on a two-worker standalone cluster, beside the local
engine, on the same score run.

In one run, on one generated input (a folder of Parquet files, N rows x 10 floats) and one
scikit-learn model (a logistic regression, as benchmarks/batch.py uses):
- the local engine (`engine="local"`), the baseline;
- the Spark engine on `local[2]` (the driver's JVM runs both tasks; Python workers score);
- two floors on `local[2]`, no model: Spark reading and writing the same rows, then also
  passing every row through a Python worker and back as Arrow (`mapInArrow`);
- the Spark engine on a standalone cluster started here from the pyspark package, a master
  and two workers of 1 core and 1 GB each on 127.0.0.1 (tests/_spark_cluster.py).

Each run is `offline.score` into an output folder (one part per task, so Spark writes in
parallel; a single output file is one task on Spark), in a fresh process. For Spark, the
session (JVM, and on the cluster the executors) is started first and timed apart: the score
time is the run itself. Prints rows/s for each and the ratios against the local engine.

    python benchmarks/spark.py [--rows 10000000] [--files 8] [--output folder|file] [--workdir DIR]

`--output file` scores into one Parquet file instead (every row in input order, so on
Spark one task writes it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = [f"x{i}" for i in range(10)]
TESTS = Path(__file__).resolve().parent.parent / "tests"

# One run in a fresh interpreter: prints {"start": s, "score": s, "rows": n}.
RUN = """
import json, sys, time
from pathlib import Path
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.offline import score
home, source, target, engine, master = sys.argv[1:6]
engine, _, kind = engine.partition(":")
repository = ModelRepository(Settings.from_env(home=Path(home)))
started = time.perf_counter()
spark = None
if engine != "local":  # the session first, timed apart; the run then uses it
    from jupyter_sparkserve.scoring import spark as spark_engine
    spark = spark_engine._session({"spark.master": master}, [])
    spark.range(1).count()  # executors registered and used once
start = time.perf_counter() - started
started = time.perf_counter()
if engine in ("spark", "local"):
    rows = score("bench:1", source, target, engine=engine, repository=repository).rows
else:  # a floor: Spark reading and writing the same rows, with no model
    frame = spark.read.parquet(source)
    if kind == "arrow":  # and every row through a Python worker and back, as Arrow
        frame = frame.mapInArrow(lambda batches: batches, frame.schema)
    frame.write.parquet(target)
    rows = spark.read.parquet(target).count()
seconds = time.perf_counter() - started
if spark is not None:
    spark.stop()
print(json.dumps({"start": start, "score": seconds, "rows": rows}))
"""


def make_input(folder: Path, rows: int, files: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if folder.exists():
        return
    rng = np.random.default_rng(7)
    temp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    per_file = -(-rows // files)
    for index, start in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - start)
        data = rng.normal(size=(n, len(FEATURES))).round(6)
        table = pa.table({name: data[:, i] for i, name in enumerate(FEATURES)})
        pq.write_table(table, temp / f"part-{index:03d}.parquet", row_group_size=250_000)
    temp.rename(folder)


def make_model(home: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from jupyter_sparkserve.config import Settings
    from jupyter_sparkserve.repository import ModelRepository

    if home.exists():
        return
    rng = np.random.default_rng(1)
    features = pd.DataFrame(rng.normal(size=(2000, 10)), columns=FEATURES)
    target = (features.sum(axis=1) > 0).astype(int)
    with ModelRepository(Settings.from_env(home=home)) as repository:
        repository.save(
            LogisticRegression().fit(features, target),
            "bench",
            input_example=features.head(3),
            pip_requirements=["scikit-learn", "pandas"],
        )


def run(home: Path, source: Path, target: Path, engine: str, master: str = "") -> dict:
    shutil.rmtree(target, ignore_errors=True)
    target.unlink(missing_ok=True)
    ran = subprocess.run(
        [sys.executable, "-c", RUN, str(home), str(source), str(target), engine, master],
        capture_output=True,
        text=True,
    )
    if ran.returncode != 0:
        raise SystemExit(f"{engine} {master} failed:\n{ran.stderr[-3000:]}")
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    shutil.rmtree(target, ignore_errors=True)
    target.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=8, help="input Parquet files")
    parser.add_argument("--output", choices=["folder", "file"], default="folder")
    parser.add_argument("--workdir", type=Path, help="keep generated data here between runs")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sparkserve-spark-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"input-{args.rows}-{args.files}"
    home = workdir / "home"
    make_input(source, args.rows, args.files)
    make_model(home)
    size = sum(path.stat().st_size for path in source.iterdir()) / 1e6
    print(f"{args.rows:,} rows x {len(FEATURES)} floats, {args.files} Parquet files, {size:.0f} MB")

    out = workdir / ("out" if args.output == "folder" else "out.parquet")
    print(f"output: one {args.output}")
    sys.path.insert(0, str(TESTS))
    from _spark_cluster import standalone_cluster

    results = {"local engine": run(home, source, out, "local")}
    results["spark local[2]"] = run(home, source, out, "spark", "local[2]")
    # What Spark costs without the model, on the same rows: its JVM reading and writing them,
    # then also every row sent to a Python worker and back as Arrow.
    for kind, name in (("jvm", "read + write"), ("arrow", "+ Arrow to Python and back")):
        results[f"  local[2] floor: {name}"] = run(home, source, out, f"floor:{kind}", "local[2]")
    with standalone_cluster(workdir / "cluster") as cluster:
        started = time.perf_counter()
        results["spark standalone (2 workers x 1 core)"] = run(
            home, source, out, "spark", cluster.master_url
        )
        print(f"(cluster up; the run took {time.perf_counter() - started:.1f} s in all)")
    shutil.rmtree(workdir / "cluster", ignore_errors=True)

    base = results["local engine"]["rows"] / results["local engine"]["score"]
    print(f"{'run':40} {'start s':>8} {'score s':>8} {'rows/s':>12} {'vs local':>9}")
    for name, result in results.items():
        assert result["rows"] == args.rows, (name, result)
        rate = result["rows"] / result["score"]
        print(
            f"{name:40} {result['start']:8.1f} {result['score']:8.1f} {rate:12,.0f} "
            f"{rate / base:8.2f}x"
        )


if __name__ == "__main__":
    main()
