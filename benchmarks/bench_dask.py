"""Benchmark batch scoring: the local engine against the Dask engine with 1 and 2 workers.

The input is the real testing file repeated to ``--rows`` plots (default 200,000), written once
to a temporary Parquet file that every engine reads. For each engine it reports:

* ``wall_s``: end to end, as ``moviegenre score`` would run (model load; for Dask, also the
  start of a local cluster and the model's load on each worker);
* ``score_s``: from reading the input to the output being in place;
* ``plots_per_s``: rows / ``score_s``; and the scaling ratio of each run against Dask with one
  worker and against the local engine.

Every Dask output is checked byte for byte against the local engine's. Prints a Markdown table
and writes JSON to ``benchmarks/results/dask.json``.

    moviegenre train --data dataTraining.zip --cv 0 --out models/bench
    python benchmarks/bench_dask.py --model models/bench               # 200,000 plots
    python benchmarks/bench_dask.py --model models/bench --rows 5000   # CI smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from moviegenre.artifact import load_model, read_metadata
from moviegenre.batch import PARTITION_ROWS, LocalEngine, score_files
from moviegenre.data import read_table

REPO = Path(__file__).resolve().parents[1]
TESTING_FILE = Path(
    os.environ.get("MOVIEGENRE_TEST_DATA", REPO.parent / "shared" / "data")
) / "dataTesting.zip"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Model directory to score with.")
    parser.add_argument("--rows", type=int, default=200_000, help="Plots to score (default 200000).")
    parser.add_argument("--workers", default="1,2", help="Dask worker counts (default 1,2).")
    parser.add_argument("--partition-rows", type=int, default=PARTITION_ROWS,
                        help=f"Plots per partition, for every engine (default {PARTITION_ROWS}).")
    parser.add_argument("--source", type=Path, default=TESTING_FILE,
                        help="File to repeat (default: the public testing file).")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "dask.json",
                        help="Where to write the results.")
    return parser.parse_args(argv)


def make_input(source: Path, rows: int, folder: Path) -> Path:
    """``source`` repeated to ``rows`` plots with unique IDs, as one Parquet file."""
    frame = read_table(source)
    copies = -(-rows // len(frame))
    big = pd.concat([frame] * copies).iloc[:rows].reset_index()
    big[big.columns[0]] = [f"{i}-{n // len(frame)}" for n, i in enumerate(big[big.columns[0]])]
    path = folder / f"plots-{rows}.parquet"
    big.to_parquet(path, index=False)
    return path


def run_local(model_dir: Path, data: Path, out: Path, partition_rows: int) -> dict:
    start = time.perf_counter()
    model = load_model(model_dir)
    scoring = time.perf_counter()
    summary = score_files(LocalEngine(model), [data], out, partition_rows=partition_rows)
    end = time.perf_counter()
    return {"engine": "local", "workers": 1, "rows": summary.scored,
            "wall_s": end - start, "score_s": end - scoring}


def run_dask(model_dir: Path, data: Path, out: Path, workers: int, partition_rows: int) -> dict:
    from distributed import LocalCluster

    from moviegenre.batch_dask import DaskEngine

    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        if message.startswith("reading"):
            marks.setdefault("reading", time.perf_counter())

    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
        engine = DaskEngine(model_dir, scheduler=cluster.scheduler_address)
        summary = score_files(engine, [data], out, partition_rows=partition_rows, progress=progress)
        end = time.perf_counter()
    return {"engine": "dask", "workers": workers, "rows": summary.scored,
            "wall_s": end - start, "score_s": end - marks["reading"],
            "partitions": summary.partitions, "model_loads": engine.model_loads}


def markdown_table(results: list[dict]) -> str:
    lines = ["| engine | workers | plots | wall s | scoring s | plots/s | vs Dask x1 | vs local |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['rows']:,} | {r['wall_s']:.1f} | "
            f"{r['score_s']:.1f} | {r['plots_per_s']:,.0f} | "
            f"{_ratio(r.get('vs_dask_1'))} | {_ratio(r.get('vs_local'))} |"
        )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    worker_counts = [int(n) for n in args.workers.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        folder = Path(tmp)
        data = make_input(args.source, args.rows, folder)
        print(f"input: {args.rows:,} plots in {data.name}", file=sys.stderr)
        local_out = folder / "local.csv"
        results = [run_local(args.model, data, local_out, args.partition_rows)]
        print(f"local: {results[-1]['score_s']:.1f} s", file=sys.stderr)
        for workers in worker_counts:
            out = folder / f"dask-{workers}.csv"
            results.append(run_dask(args.model, data, out, workers, args.partition_rows))
            results[-1]["identical_to_local"] = out.read_bytes() == local_out.read_bytes()
            print(f"dask x{workers}: {results[-1]['score_s']:.1f} s", file=sys.stderr)
    for r in results:
        r["plots_per_s"] = r["rows"] / r["score_s"]
    base = {r["engine"] + str(r["workers"]): r["plots_per_s"] for r in results}
    for r in results:
        r["vs_local"] = r["plots_per_s"] / base["local1"]
        if "dask1" in base:
            r["vs_dask_1"] = r["plots_per_s"] / base["dask1"]
    report = {
        "benchmark": "batch scoring, local engine vs Dask",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "model": {"dir": str(args.model), "id": read_metadata(args.model)["id"]},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "rows": args.rows, "partition_rows": args.partition_rows, "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(results))
    print(f"\nwritten {args.json}", file=sys.stderr)
    if not all(r.get("identical_to_local", True) for r in results):
        print("error: a Dask output differs from the local engine's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
