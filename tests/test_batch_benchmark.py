"""The Dask benchmark's input and arithmetic (benchmarks/bench_dask.py); the benchmark itself
starts a real scheduler and workers and takes minutes, so it is run by hand (see README)."""

from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_dask", REPO / "benchmarks" / "bench_dask.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_input_is_files_of_row_groups_with_integer_ids_and_three_empty_plots(bench, dev_zip, tmp_path):
    paths = bench.make_input(dev_zip, 7_000, 3, 1_000, tmp_path)
    assert [p.name for p in paths] == ["plots-00.parquet", "plots-01.parquet", "plots-02.parquet"]
    frame = pd.concat(pd.read_parquet(p) for p in paths)
    assert frame["ID"].dtype == "int64" and frame["ID"].tolist() == list(range(7_000))
    assert (frame["plot"] == "").sum() == bench.EMPTY_PLOTS
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in paths] == [3, 3, 3]  # 2,333 rows each
    assert len(pd.read_parquet(tmp_path / "probe.parquet")) == 1_000


def test_the_projection_follows_from_the_one_and_two_worker_runs(bench):
    runs = [
        {"engine": "local", "workers": 1, "wall_s": 90.0, "client_cpu_s": 88.0},
        {"engine": "dask", "workers": 1, "wall_s": 80.0, "client_cpu_s": 2.4, "client_cpu_s_one_piece": 2.0},
        {"engine": "dask", "workers": 2, "wall_s": 42.0, "client_cpu_s": 2.2, "client_cpu_s_one_piece": 1.9},
    ]
    projection = bench.project(runs, rows=200_000, pieces=41, input_bytes=60_000_000, output_bytes=90_000_000)
    rate = 200_000 / (2 * 38)  # the second worker saved 38 s: half the scoring
    assert projection["per_worker_plots_per_s"] == pytest.approx(rate)
    assert projection["fixed_s"] == pytest.approx(80 - 200_000 / rate)
    assert projection["client_cpu_s_per_piece"] == pytest.approx(0.4 / 40)
    assert projection["bytes_per_plot"] == pytest.approx(750)
    assert projection["workers_at_client_ceiling"] == pytest.approx(200_000 / 41 / 0.01 / rate)
    by_workers = {run["workers"]: run for run in projection["runs"]}
    assert sorted(by_workers) == [8, 32, 128]
    assert by_workers[128]["wall_s"] == pytest.approx(4 + 100_000_000 / (128 * rate))
    assert by_workers[128]["client_cpu_s"] == pytest.approx(2.0 + 0.01 * 100_000_000 * 41 / 200_000)
    # A second worker that did not help gives no projection, rather than a wrong one.
    assert bench.project(runs[:2] + [{**runs[2], "wall_s": 81.0}], 200_000, 41, 1, 1) == {}
