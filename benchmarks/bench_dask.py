"""Benchmark batch scoring on a real Dask cluster: 1 then 2 workers, against the local engine.

Run it the way a user with a cluster runs moviegenre: it starts ``dask scheduler`` and
``dask worker --nthreads 1`` processes, then ``moviegenre score --engine dask --scheduler ...``
in its own process. The input is the development file's plots repeated to ``--rows`` (default
200,000) with integer IDs and 3 empty plots, in ``--files`` (default 8) Parquet files of
``--row-group`` rows per row group. For each run it measures:

* ``wall_s``: the ``moviegenre score`` command, start to exit (connecting, shipping the model,
  scoring, committing the output);
* ``client_cpu_s``: that command's own CPU time (user + system), and ``client_share``: it
  divided by the cluster's CPU budget, ``wall_s`` x workers;
* ``client_peak_mb``: that command's peak resident memory;
* ``worker_cpu_s``: the worker processes' CPU time over the run;
* ``max_abs_diff`` and ``same_ids``: the output against the local engine's (same IDs in the
  same order, probabilities within 1e-9), and the rejects (the 3 empty plots).

From the per-worker rate and the client's cost per piece it projects the time for 100 million
plots on 8, 32 and 128 workers. Prints a Markdown table and writes JSON to
``benchmarks/results/dask.json``. Both cores must be otherwise idle for the scaling figure.

    moviegenre train --kind linear --data dataTraining-dev.zip --cv 0 --out models/bench
    python benchmarks/bench_dask.py --model models/bench                 # 200,000 plots
    python benchmarks/bench_dask.py --model models/bench --rows 6000     # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from moviegenre.core.data import read_table
from moviegenre.model.card import read_card

REPO = Path(__file__).resolve().parents[1]
DEV_FILE = Path(os.environ.get("MOVIEGENRE_TEST_DATA", REPO.parent / "shared" / "data")) / "dataTraining-dev.zip"
EMPTY_PLOTS = 3
PROJECTED_PLOTS = 100_000_000
PROJECTED_WORKERS = (8, 32, 128)
#: A Dask scheduler handles a few thousand tasks a second (Dask's documentation says about 1 ms
#: of overhead per task); taken as the ceiling for the projection.
SCHEDULER_TASKS_PER_S = 3_000
BIN = Path(sys.executable).parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Model directory to score with.")
    parser.add_argument("--rows", type=int, default=200_000, help="Plots to score (default 200000).")
    parser.add_argument("--files", type=int, default=8, help="Parquet files to spread them over (default 8).")
    parser.add_argument("--row-group", type=int, default=5_000, help="Rows per Parquet row group (default 5000).")
    parser.add_argument("--workers", default="1,2", help="Worker counts, one run each (default 1,2).")
    parser.add_argument("--output-format", choices=["csv", "parquet"], default="csv",
                        help="Output of the Dask runs (default csv).")
    parser.add_argument("--source", type=Path, default=DEV_FILE, help="File whose plots are repeated.")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "dask.json",
                        help="Where to write the results.")
    return parser.parse_args(argv)


def make_input(source: Path, rows: int, files: int, row_group: int, folder: Path) -> list[Path]:
    """``source``'s plots repeated to ``rows``, integer IDs 0..rows-1, 3 empty plots, in ``files`` files."""
    movies = read_table(source)[["year", "title", "plot"]].reset_index(drop=True)
    frame = pd.concat([movies] * -(-rows // len(movies)), ignore_index=True).iloc[:rows]
    frame.insert(0, "ID", np.arange(rows, dtype="int64"))
    frame.loc[[rows // 7, rows // 2, rows - 2], "plot"] = ""
    paths = []
    bounds = np.linspace(0, rows, files + 1).astype(int)
    for number, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        path = folder / f"plots-{number:02d}.parquet"
        frame.iloc[start:stop].to_parquet(path, index=False, row_group_size=row_group)
        paths.append(path)
    frame.iloc[:row_group].to_parquet(folder / "probe.parquet", index=False)  # one piece
    return paths


def score_command(model: Path, inputs: list[Path], out: Path, *extra: str) -> list[str]:
    return [str(BIN / "moviegenre"), "score", "--model", str(model), *map(str, inputs), "-o", str(out),
            "--quiet", *extra]  # fmt: skip


def timed(command: list[str]) -> dict:
    """Run ``command``: its wall time, its own CPU time (it is our only child that exits) and
    its peak memory (resident set, sampled every 50 ms)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        peak = 0
        while process.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, psutil.Process(process.pid).memory_info().rss)
            time.sleep(0.05)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()}")
        summary = json.loads(out.read())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "client_cpu_s": cpu, "client_peak_mb": peak / 2**20, "summary": summary}


class Cluster:
    """``dask scheduler`` and ``workers`` ``dask worker --nthreads 1`` processes, as a user starts them."""

    def __init__(self, workers: int, folder: Path):
        self.workers, self.folder = workers, folder
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Cluster:
        from distributed import Client

        scheduler_file = self.folder / f"scheduler-{self.workers}.json"
        log = open(self.folder / f"cluster-{self.workers}.log", "w")  # noqa: SIM115 - closed with the processes
        self.processes.append(subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
             "--dashboard-address", ":0"], stdout=log, stderr=log))  # fmt: skip
        for _ in range(200):
            if scheduler_file.exists():
                break
            time.sleep(0.1)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(self.workers):
            self.processes.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--no-dashboard",
                 "--local-directory", str(self.folder)], stdout=log, stderr=log))  # fmt: skip
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(self.workers, timeout=120)
        return self

    def worker_cpu_s(self) -> float:
        """CPU time of the worker processes (and their children: Dask's nanny runs the worker)."""
        total = 0.0
        for process in self.processes[1:]:
            for p in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        return total

    def __exit__(self, *exc_info) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def read_scores(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_dir() else pd.read_csv(path)


def compare(reference: Path, candidate: Path) -> dict:
    ref, got = read_scores(reference), read_scores(candidate)
    same_ids = ref["ID"].astype(str).tolist() == got["ID"].astype(str).tolist()
    diff = float(np.max(np.abs(ref.drop(columns="ID").to_numpy() - got.drop(columns="ID").to_numpy())))
    return {"same_ids": same_ids, "max_abs_diff": diff}


def project(results: list[dict], rows: int, pieces: int, input_bytes: int, output_bytes: int) -> dict:
    """Time for :data:`PROJECTED_PLOTS` on more workers, from the 1- and 2-worker runs:
    ``wall = fixed + plots / (workers x per-worker rate)``, the client's CPU per piece, and
    the ceilings: scheduler tasks per second and storage bandwidth."""
    by_workers = {r["workers"]: r for r in results if r["engine"] == "dask"}
    one, two = by_workers.get(1), by_workers.get(2)
    if one is None or two is None or one["wall_s"] <= two["wall_s"]:
        return {}
    rate = rows / (2 * (one["wall_s"] - two["wall_s"]))  # plots/s of one worker
    fixed = max(0.0, one["wall_s"] - rows / rate)
    client_per_piece = max(
        max(0.0, r["client_cpu_s"] - r["client_cpu_s_one_piece"]) / max(1, pieces - 1) for r in by_workers.values()
    )
    client_fixed = max(r["client_cpu_s_one_piece"] for r in by_workers.values())
    pieces_big = PROJECTED_PLOTS * pieces / rows
    bytes_per_plot = (input_bytes + output_bytes) / rows
    table = []
    for workers in PROJECTED_WORKERS:
        wall = fixed + PROJECTED_PLOTS / (workers * rate)
        tasks_per_s = pieces_big / wall
        table.append({
            "workers": workers, "wall_s": wall, "plots_per_s": PROJECTED_PLOTS / wall,
            "client_cpu_s": client_fixed + client_per_piece * pieces_big, "tasks_per_s": tasks_per_s,
            "storage_mb_per_s": bytes_per_plot * PROJECTED_PLOTS / wall / 1e6,
        })  # fmt: skip
    return {
        "per_worker_plots_per_s": rate, "fixed_s": fixed, "client_cpu_s_per_piece": client_per_piece,
        "client_cpu_s_fixed": client_fixed,
        "rows_per_piece": rows / pieces, "bytes_per_plot": bytes_per_plot,
        "workers_at_scheduler_ceiling": SCHEDULER_TASKS_PER_S * (rows / pieces) / rate,
        # The client handles one piece at a time: 1 / client_per_piece pieces a second at most.
        "workers_at_client_ceiling": (rows / pieces) / client_per_piece / rate if client_per_piece else None,
        "runs": table,
    }  # fmt: skip


def markdown(results: list[dict], projection: dict) -> str:
    lines = ["| engine | workers | output | plots | wall s | plots/s | vs 1 worker | client CPU s | "
             "client share of cluster CPU | client peak MB | max diff vs local |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        share = f"{r['client_share']:.1%}" if "client_share" in r else ""
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        lines.append(f"| {r['engine']} | {r['workers']} | {r['format']} | {r['rows']:,} | {r['wall_s']:.1f} | "
                     f"{r['plots_per_s']:,.0f} | {speedup} | {r['client_cpu_s']:.1f} | {share} | "
                     f"{r['client_peak_mb']:.0f} | {diff} |")
    if projection:
        lines += ["", f"Projection for {PROJECTED_PLOTS:,} plots ({projection['per_worker_plots_per_s']:,.0f} "
                  f"plots/s per worker, {projection['fixed_s']:.1f} s fixed, {projection['rows_per_piece']:,.0f} "
                  f"plots per piece; the client: {projection['client_cpu_s_fixed']:.1f} s CPU fixed and "
                  f"{projection['client_cpu_s_per_piece'] * 1000:.1f} ms per piece):", "",
                  "| workers | wall | plots/s | client CPU s | scheduler tasks/s | storage MB/s |",
                  "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for p in projection["runs"]:
            lines.append(f"| {p['workers']} | {p['wall_s'] / 60:.1f} min | {p['plots_per_s']:,.0f} | "
                         f"{p['client_cpu_s']:.0f} | {p['tasks_per_s']:.1f} | {p['storage_mb_per_s']:.0f} |")
    return "\n".join(lines)


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    suffix = ".csv" if args.output_format == "csv" else ".parquet"
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        folder = Path(tmp)
        inputs = make_input(args.source, args.rows, args.files, args.row_group, folder)
        input_bytes = sum(p.stat().st_size for p in inputs)
        print(f"input: {args.rows:,} plots in {len(inputs)} Parquet files", file=sys.stderr)
        reference = folder / f"local{suffix}"
        run = timed(score_command(args.model, inputs, reference))
        results.append({"engine": "local", "workers": 1, **run})
        print(f"local: {run['wall_s']:.1f} s", file=sys.stderr)
        for workers in [int(n) for n in args.workers.split(",")]:
            out = folder / f"dask-{workers}{suffix}"
            with Cluster(workers, folder) as cluster:
                cpu_before = cluster.worker_cpu_s()
                run = timed(score_command(args.model, inputs, out, "--engine", "dask", "--scheduler", cluster.address))
                run["worker_cpu_s"] = cluster.worker_cpu_s() - cpu_before
                # The same command on one piece: what the client spends whatever the input.
                probe = timed(score_command(args.model, [folder / "probe.parquet"], folder / "probe.csv",
                                            "--engine", "dask", "--scheduler", cluster.address))  # fmt: skip
                run["client_cpu_s_one_piece"] = probe["client_cpu_s"]
                run["client_peak_mb_one_piece"] = probe["client_peak_mb"]
            run["client_share"] = run["client_cpu_s"] / (run["wall_s"] * workers)
            run |= compare(reference, out)
            run["rejects_equal"] = (folder / "local.rejects.csv").read_bytes() == (
                folder / f"dask-{workers}.rejects.csv").read_bytes()  # fmt: skip
            results.append({"engine": "dask", "workers": workers, **run})
            print(f"dask x{workers}: {run['wall_s']:.1f} s", file=sys.stderr)
            output_bytes = size_of(out)
            if workers != max(int(n) for n in args.workers.split(",")):
                shutil.rmtree(out) if out.is_dir() else out.unlink()
    for r in results:
        s = r.pop("summary")
        r |= {"format": s["format"], "rows": s["input_rows"], "scored": s["scored"], "rejected": s["rejected"],
              "pieces": s["partitions"], "plots_per_s": s["input_rows"] / r["wall_s"]}  # fmt: skip
    one = next((r for r in results if r["engine"] == "dask" and r["workers"] == 1), None)
    for r in results:
        if one is not None and r["engine"] == "dask":
            r["speedup"] = one["wall_s"] / r["wall_s"]
    projection = project(results, args.rows, results[0]["pieces"], input_bytes, output_bytes)
    report = {
        "benchmark": "batch scoring on an external Dask scheduler and workers, against the local engine",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/bench_dask.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": {"dir": str(args.model), "id": read_card(args.model).id},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "rows": args.rows, "files": args.files, "row_group": args.row_group, "results": results,
        "projection": projection,
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown(results, projection))
    print(f"\nwritten {args.json}", file=sys.stderr)
    bad = [r for r in results if r["engine"] == "dask" and not (
        r["same_ids"] and r["max_abs_diff"] < 1e-9 and r["rejects_equal"] and r["rejected"] == EMPTY_PLOTS)]
    if bad:
        print(f"error: {len(bad)} Dask output(s) differ from the local engine's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
