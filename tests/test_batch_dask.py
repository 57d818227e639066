"""The Dask engine against the local engine, on real data and a real 2-worker local cluster.

What does not depend on the engine (globs, output formats, rejects, refusals) is tested with
the local engine in ``test_batch.py``; here, that the Dask engine gives the same output and
what only it does: ship the model to the workers, connect, start a cluster, survive a kill.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from moviegenre.batch import LocalEngine, score_files
from moviegenre.batch_output import SUCCESS_MARKER
from moviegenre.cli import app
from moviegenre.data import read_table
from moviegenre.errors import DataError, ModelError, MovieGenreError

distributed = pytest.importorskip("distributed")  # the optional dask extra

from moviegenre.batch_dask import DaskEngine  # noqa: E402

#: Small partitions so the 3,383-plot testing file spans several tasks on both workers.
PARTITION_ROWS = 500


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, shared by the module's tests."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as local_cluster:
        yield local_cluster.scheduler_address


@pytest.fixture(scope="module")
def local_csv(tmp_path_factory, small_model, testing_zip) -> Path:
    """The local engine's output on the real testing file: the reference."""
    out = tmp_path_factory.mktemp("local") / "scores.csv"
    score_files(LocalEngine(small_model), [testing_zip], out)
    return out


@pytest.fixture(scope="module")
def split_testing_file(tmp_path_factory, testing_zip) -> Path:
    """The testing file cut into three CSV parts, in order: part-1, part-2, part-3."""
    folder = tmp_path_factory.mktemp("parts")
    frame = read_table(testing_zip)
    for number, start in enumerate(range(0, len(frame), 1200), start=1):
        frame.iloc[start : start + 1200].to_csv(folder / f"part-{number}.csv")
    return folder


def _score(engine, inputs, out, **kwargs):
    return score_files(engine, inputs, out, partition_rows=PARTITION_ROWS, **kwargs)


def _read_scores_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"ID": str}, index_col="ID")


def test_csv_output_is_byte_identical_to_the_local_engine(
    cluster, small_model_dir, testing_zip, local_csv, tmp_path
):
    messages: list[str] = []
    out = tmp_path / "scores.csv"
    engine = DaskEngine(small_model_dir, scheduler=cluster)
    summary = _score(engine, [testing_zip], out, progress=messages.append)
    assert out.read_bytes() == local_csv.read_bytes()
    assert (summary.input_rows, summary.scored, summary.rejected) == (3383, 3383, 0)
    assert (summary.engine, summary.format, summary.partitions, summary.workers) == ("dask", "csv", 7, 2)
    # The model went to each worker once, not once per partition.
    assert 1 <= engine.model_loads <= summary.workers < summary.partitions
    assert "scored 3,383 of 3,383 plots read (file 1 of 1)" in messages
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no temporary left


def test_parquet_output_from_globbed_parts_is_the_local_engines(
    cluster, small_model, small_model_dir, split_testing_file, local_csv, tmp_path
):
    inputs = [str(split_testing_file / "part-*.csv")]
    local = _score(LocalEngine(small_model), inputs, tmp_path / "local.parquet")
    summary = _score(DaskEngine(small_model_dir, scheduler=cluster), inputs, tmp_path / "scores.parquet")
    assert (summary.format, summary.input_rows, summary.scored) == ("parquet", 3383, 3383)
    assert summary.partitions == local.partitions == 8  # 3 + 3 + 2 partitions of 500 plots
    parts = sorted(p.name for p in summary.output.iterdir())
    assert parts == sorted(p.name for p in local.output.iterdir())
    assert parts == [SUCCESS_MARKER, *(f"part-{i:06d}.parquet" for i in range(8))]
    for name in parts[1:]:
        pd.testing.assert_frame_equal(pd.read_parquet(summary.output / name),
                                      pd.read_parquet(local.output / name), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(summary.output).set_index("ID"),
                                  _read_scores_csv(local_csv), check_exact=True,
                                  check_index_type=False)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.parquet", "scores.parquet"]


def test_rejects_are_the_local_engines(cluster, small_model, small_model_dir, tmp_path):
    source = tmp_path / "movies.csv"
    source.write_text(
        "ID,year,title,plot\n"
        "a1,1999,One,a detective hunts a killer in the city\n"
        "a2,2001,Two,\n"
        "a3,2003,Three,   \n"
        "a4,2004,Four,two friends fall in love on a summer trip\n",
        encoding="utf-8",
    )
    second = tmp_path / "more.csv"
    second.write_text("ID,plot\nb1,\nb2,a dragon burns a village\n", encoding="utf-8")
    local = tmp_path / "local" / "out.csv"
    score_files(LocalEngine(small_model), [source, second], local)

    out = tmp_path / "dask" / "out.csv"
    summary = _score(DaskEngine(small_model_dir, scheduler=cluster), [source, second], out)
    assert (summary.input_rows, summary.scored, summary.rejected) == (6, 3, 3)
    assert summary.rejects == tmp_path / "dask" / "out.rejects.csv"
    rejects = pd.read_csv(summary.rejects, dtype=str)
    assert list(rejects["ID"]) == ["a2", "a3", "b1"]
    assert list(rejects["row"]) == ["2", "3", "1"]
    assert out.read_bytes() == local.read_bytes()
    assert summary.rejects.read_bytes() == (local.parent / "out.rejects.csv").read_bytes()


def test_cli_starts_a_local_cluster_and_matches_the_local_engine(
    small_model, small_model_dir, split_testing_file, tmp_path
):
    part = split_testing_file / "part-3.csv"
    local = tmp_path / "local.csv"
    score_files(LocalEngine(small_model), [part], local)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", "--model", str(small_model_dir), str(part),
                                      "-o", str(out), "--engine", "dask", "--workers", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["engine"] == "dask" and summary["workers"] == 2
    assert (summary["scored"], summary["rejected"], summary["format"]) == (983, 0, "csv")
    assert out.read_bytes() == local.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2"], "--workers and --scheduler need --engine dask"),
        (["--engine", "dask", "--workers", "2", "--scheduler", "tcp://x:1"], "not both"),
        (["--engine", "spark"], "spark"),
    ],
)
def test_cli_rejects_bad_engine_options(small_model_dir, testing_zip, tmp_path, args, message):
    result = CliRunner().invoke(
        app, ["score", "--model", str(small_model_dir), str(testing_zip), "-o",
              str(tmp_path / "o.csv"), *args]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # rich wraps long messages


def test_bad_inputs_fail_before_any_cluster_starts(small_model_dir, tmp_path):
    engine = DaskEngine(small_model_dir, scheduler="tcp://127.0.0.1:9")  # never reached
    with pytest.raises(DataError, match="no files match"):
        score_files(engine, [str(tmp_path / "nothing-*.csv")], tmp_path / "o.csv")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_model_directory_fails_before_any_cluster_starts(testing_zip, tmp_path):
    engine = DaskEngine(tmp_path / "no-model", scheduler="tcp://127.0.0.1:9")
    with pytest.raises(MovieGenreError, match="does not exist"):
        score_files(engine, [testing_zip], tmp_path / "o.csv")


def test_workers_refuse_an_altered_model(cluster, small_model_dir, testing_zip, tmp_path):
    altered = tmp_path / "altered"
    shutil.copytree(small_model_dir, altered)
    with open(altered / "model.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="a Dask worker could not load the model: .*altered"):
        _score(DaskEngine(altered, scheduler=cluster), [testing_zip], tmp_path / "out" / "o.csv")
    assert not (tmp_path / "out" / "o.csv").exists()


def test_an_unreachable_scheduler_is_a_clear_error(small_model_dir, testing_zip, tmp_path):
    engine = DaskEngine(small_model_dir, scheduler="tcp://127.0.0.1:9", connect_timeout_s=1)
    with pytest.raises(MovieGenreError, match="could not connect to the Dask scheduler at tcp://"):
        score_files(engine, [testing_zip], tmp_path / "o.csv")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory, testing_zip) -> Path:
    """The testing file 20 times over (67,660 plots): long enough to kill a run midway."""
    frame = read_table(testing_zip)
    path = tmp_path_factory.mktemp("big") / "big.csv"
    pd.concat([frame] * 20).to_csv(path)
    return path


@pytest.mark.parametrize(
    "out_name", ["scores.csv", pytest.param("scores.parquet", marks=pytest.mark.slow)]
)
def test_a_run_killed_midway_leaves_no_finished_looking_output(
    cluster, small_model_dir, big_csv, tmp_path, out_name
):
    out_dir = tmp_path / "out"
    command = [sys.executable, "-c", "from moviegenre.cli import app; app()", "score",
               "--model", str(small_model_dir), str(big_csv), "-o", str(out_dir / out_name),
               "--engine", "dask", "--scheduler", cluster]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        assert _wait_for_partial_output(out_dir, out_name, process), "the run never got going"
        assert process.poll() is None, "the run finished before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (out_dir / out_name).exists()
    visible = [p.name for p in out_dir.iterdir() if not p.name.startswith(".")]
    assert visible == []
    assert not list(out_dir.rglob(SUCCESS_MARKER))


def _wait_for_partial_output(out_dir: Path, out_name: str, process, timeout_s: float = 120):
    """True once the hidden temporary output holds a few partitions' worth of rows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        for temporary in out_dir.glob(f".{out_name}.*.part"):
            if temporary.is_file() and temporary.stat().st_size > 1_000_000:
                return True
            if temporary.is_dir() and len(list(temporary.glob("part-*.parquet"))) >= 3:
                return True
        time.sleep(0.05)
    return False
