"""Peak memory of ``moviegenre score`` on N and 10 x N rows: it must not grow with the file.

The input is the development file's plots repeated to ``--rows`` (default 20,000) and to ten
times that, each as one CSV file (a CSV is one piece, the worst case: a Parquet file is read by
row groups). Each is scored by ``moviegenre score --quiet`` in its own process, and that
process's peak resident memory (``ru_maxrss`` of the child) is measured. A CSV is read
10,000 rows at a time and scored 2,000 at a time, so the ratio of the two peaks should stay
within about 1.2.

    moviegenre train --kind linear --data dataTraining-dev.zip --cv 0 --out models/bench
    python benchmarks/bench_memory.py --model models/bench               # 20,000 and 200,000
    python benchmarks/bench_memory.py --model models/bench --rows 2000   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from moviegenre.core.data import read_table

REPO = Path(__file__).resolve().parents[1]
DEV_FILE = Path(os.environ.get("MOVIEGENRE_TEST_DATA", REPO.parent / "shared" / "data")) / "dataTraining-dev.zip"
BIN = Path(sys.executable).parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Model directory to score with.")
    parser.add_argument("--rows", type=int, default=20_000, help="N: rows of the small file (default 20000).")
    parser.add_argument("--factor", type=int, default=10, help="The large file has N x this rows (default 10).")
    parser.add_argument("--source", type=Path, default=DEV_FILE, help="File whose plots are repeated.")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "memory.json",
                        help="Where to write the results.")
    return parser.parse_args(argv)


def make_csv(movies: pd.DataFrame, rows: int, path: Path) -> Path:
    frame = pd.concat([movies] * -(-rows // len(movies)), ignore_index=True).iloc[:rows]
    frame.index = [f"m{i}" for i in range(rows)]
    frame.to_csv(path)
    return path


def peak_mb(model: Path, source: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``moviegenre score`` on ``source`` in a child process."""
    code = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    command = [str(BIN / "moviegenre"), "score", "--model", str(model), str(source), "-o", str(out), "--quiet"]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    returncode, kilobytes = map(int, result.stdout.split())
    if returncode:
        raise SystemExit(f"moviegenre score failed on {source}: {result.stderr}")
    return kilobytes / 1024, wall


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    movies = read_table(args.source)[["year", "title", "plot"]].reset_index(drop=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="moviegenre-memory-") as folder:
        for rows in (args.rows, args.rows * args.factor):
            source = make_csv(movies, rows, Path(folder) / f"in-{rows}.csv")
            peak, wall = peak_mb(args.model, source, Path(folder) / f"out-{rows}.csv")
            results.append({"rows": rows, "input_mb": round(source.stat().st_size / 1e6, 1),
                            "peak_rss_mb": round(peak, 1), "wall_s": round(wall, 1)})  # fmt: skip
    ratio = results[1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    report = {"runs": results, "peak_ratio": round(ratio, 3), "self_peak_mb":
              round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # fmt: skip
    print("| rows | input MB | peak RSS MB | wall s |\n|---:|---:|---:|---:|")
    for run in results:
        print(f"| {run['rows']:,} | {run['input_mb']} | {run['peak_rss_mb']} | {run['wall_s']} |")
    print(f"peak ratio {args.factor}x rows: {ratio:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
