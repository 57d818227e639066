"""Benchmark batch scoring on a real Dask cluster and on local processes: 1 then 2 workers.

Run it the way a user runs moviegenre: ``moviegenre score`` in its own process, with
``--engine dask --scheduler ...`` on ``dask scheduler`` and ``dask worker --nthreads 1``
processes started here (the external cluster), with ``--engine dask --workers N`` (the local
cluster the command starts), and with ``--workers N`` alone (the local engine on N processes).
The input is the development file's plots repeated to ``--rows`` (default 200,000) with
integer IDs and 3 empty plots, in three shapes (``--inputs``): ``--files`` (default 8)
Parquet files of ``--row-group`` rows per row group, the same rows as one CSV file, and that
CSV alone in a zip. For each run it measures:

* ``wall_s``: the ``moviegenre score`` command, start to exit (connecting, shipping the model,
  cutting the input into pieces, scoring, committing the output);
* ``client_cpu_s``: that command's own CPU time (user + system, not its children's), and
  ``client_share``: it divided by the cluster's CPU budget, ``wall_s`` x workers;
* ``client_peak_mb``: that command's peak resident memory;
* ``worker_cpu_s``: the external worker processes' CPU time over the run;
* ``same_bytes``, ``max_abs_diff`` and ``same_ids``: the output against the local engine's on
  the same input (the same bytes for a CSV output), and the rejects (the 3 empty plots).

From the per-worker rate and the client's cost per piece on the first input it projects the
time for 100 million plots on 8, 32 and 128 workers. Prints a Markdown table and writes JSON
to ``benchmarks/results/dask.json``. Both cores must be otherwise idle for the scaling figures.

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
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
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
    parser.add_argument("--inputs", default="parquet,csv,zip",
                        help="Input shapes, one set of runs each (default parquet,csv,zip): the Parquet files, "
                        "the same rows as one CSV file, or as that CSV in a zip.")
    parser.add_argument("--clusters", default="external,local",
                        help="Dask clusters (default external,local): `dask worker` processes started here, "
                        "or the local cluster `moviegenre score --workers N` starts.")
    parser.add_argument("--local-workers", type=int, default=2,
                        help="Also run the local engine on this many processes (default 2; 1: skip).")
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
    """Run ``command``: its wall time, its own CPU time (user + system, without its children:
    a local cluster's workers are children of the command) and its peak memory (resident set),
    sampled every 100 ms until it exits."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        peak, cpu = 0, 0.0
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            with contextlib.suppress(psutil.Error):
                times = watched.cpu_times()
                cpu = times.user + times.system
                peak = max(peak, watched.memory_info().rss)
            time.sleep(0.1)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()}")
        summary = json.loads(out.read())
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
    lines = ["| input | engine | workers | plots | pieces | wall s | plots/s | vs 1 worker | client CPU s | "
             "client share of CPU | client peak MB | max diff vs local |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        engine = r["engine"] + (f", {r['cluster']} cluster" if r.get("cluster") else "")
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        diff = "same bytes" if r.get("same_bytes") else diff
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        share = f"{r['client_share']:.1%}" if r["engine"] == "dask" else ""
        lines.append(f"| {r['input']} | {engine} | {r['workers']} | {r['rows']:,} | {r['pieces']} | "
                     f"{r['wall_s']:.1f} | {r['plots_per_s']:,.0f} | {speedup} | {r['client_cpu_s']:.1f} | "
                     f"{share} | {r['client_peak_mb']:.0f} | {diff} |")
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
    kinds = args.inputs.split(",")
    counts = [int(n) for n in args.workers.split(",")]
    results: list[dict] = []
    projection: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        folder = Path(tmp)
        parquet = make_input(args.source, args.rows, args.files, args.row_group, folder)
        inputs = {"parquet": parquet, **one_file_inputs(parquet, folder)}
        for kind in kinds:
            files = inputs[kind]
            input_bytes = sum(p.stat().st_size for p in files)
            print(f"input: {args.rows:,} plots in {len(files)} {kind} file(s)", file=sys.stderr)
            # The local engine on one process: the time to beat, and the output every other run
            # on this input must equal; the same scores as the first input's (the same rows).
            reference = folder / f"{kind}-local{suffix}"
            results.append(run_one(kind, "local", None, 1, score_command(args.model, files, reference), None, None))
            if kind != kinds[0]:
                results[-1] |= compare(folder / f"{kinds[0]}-local{suffix}", reference)
            for cluster_kind in args.clusters.split(","):
                for workers in counts:
                    out = folder / f"{kind}-{cluster_kind}-{workers}{suffix}"
                    results.append(dask_run(args.model, kind, files, out, cluster_kind, workers, folder, reference))
                    output_bytes = size_of(out)
                    shutil.rmtree(out) if out.is_dir() else out.unlink()
            if args.local_workers > 1:
                out = folder / f"{kind}-pool{suffix}"
                command = score_command(args.model, files, out, "--workers", str(args.local_workers))
                results.append(run_one(kind, "local", None, args.local_workers, command, out, reference))
            external = [r for r in results if r["input"] == kind and r.get("cluster") == "external"]
            if kind == kinds[0] and external:
                projection = project(external, args.rows, external[0]["pieces"], input_bytes, output_bytes)
    for r in results:
        base = next((o for o in results if (o["input"], o["engine"], o.get("cluster"), o["workers"])
                     == (r["input"], r["engine"], r.get("cluster"), 1)), None)  # fmt: skip
        if base is not None and r is not base:
            r["speedup"] = base["wall_s"] / r["wall_s"]
    report = {
        "benchmark": "batch scoring on a Dask cluster (external workers, or the local cluster --workers starts) "
                     "and on local processes, against the local engine, for Parquet files, one CSV and one zip",
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
    bad = [r for r in results if "rejects_equal" in r and not (
        r["same_ids"] and r["max_abs_diff"] < 1e-9 and r["rejects_equal"] and r["rejected"] == EMPTY_PLOTS
        and (r["same_bytes"] or r["format"] != "csv"))]
    if bad:
        print(f"error: {len(bad)} output(s) differ from the local engine's", file=sys.stderr)
        return 1
    return 0


def one_file_inputs(parquet: list[Path], folder: Path) -> dict[str, list[Path]]:
    """The rows of the Parquet files as one CSV file, and as that CSV alone in a zip."""
    frame = pd.concat(pd.read_parquet(p) for p in parquet)
    csv_path = folder / "plots.csv"
    frame.to_csv(csv_path, index=False)
    zip_path = folder / "plots.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(csv_path, "plots.csv")
    return {"csv": [csv_path], "zip": [zip_path]}


def dask_run(model: Path, kind: str, files: list[Path], out: Path, cluster_kind: str, workers: int,
             folder: Path, reference: Path) -> dict:  # fmt: skip
    """One ``--engine dask`` run: on external workers started here, or on the local cluster
    that ``--workers`` starts (whose workers' CPU is then the command's children's)."""
    if cluster_kind == "local":
        run = run_one(kind, "dask", "local", workers,
                      score_command(model, files, out, "--engine", "dask", "--workers", str(workers)), out, reference)
        print(f"{kind}: dask, local cluster x{workers}: {run['wall_s']:.1f} s", file=sys.stderr)
        return run
    with Cluster(workers, folder) as cluster:
        cpu_before = cluster.worker_cpu_s()
        run = run_one(kind, "dask", "external", workers,
                      score_command(model, files, out, "--engine", "dask", "--scheduler", cluster.address),
                      out, reference)  # fmt: skip
        run["worker_cpu_s"] = cluster.worker_cpu_s() - cpu_before
        # The same command on one piece: what the client spends whatever the input.
        probe = timed(score_command(model, [folder / "probe.parquet"], folder / "probe.csv",
                                    "--engine", "dask", "--scheduler", cluster.address))  # fmt: skip
        run["client_cpu_s_one_piece"] = probe["client_cpu_s"]
    print(f"{kind}: dask, external x{workers}: {run['wall_s']:.1f} s", file=sys.stderr)
    return run


def rejects_of(output: Path) -> Path:
    return output.with_name(output.name.split(".")[0] + ".rejects.csv")


def run_one(kind: str, engine: str, cluster: str | None, workers: int, command: list[str], out: Path,
            reference: Path | None) -> dict:  # fmt: skip
    run = {"input": kind, "engine": engine, "cluster": cluster, "workers": workers, **timed(command)}
    summary = run.pop("summary")
    run |= {"format": summary["format"], "rows": summary["input_rows"], "scored": summary["scored"],
            "rejected": summary["rejected"], "pieces": summary["partitions"],
            "plots_per_s": summary["input_rows"] / run["wall_s"],
            "client_share": run["client_cpu_s"] / (run["wall_s"] * workers)}  # fmt: skip
    if reference is not None:
        run |= compare(reference, out)
        run["same_bytes"] = out.is_file() and out.read_bytes() == reference.read_bytes()
        run["rejects_equal"] = rejects_of(reference).read_bytes() == rejects_of(out).read_bytes()
    return run


if __name__ == "__main__":
    sys.exit(main())
