"""The Dask engine against the local engine, on real data and a real 2-worker local cluster."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from moviegenre.batch import score_files
from moviegenre.cli import app
from moviegenre.data import read_table
from moviegenre.errors import DataError, ModelError, MovieGenreError
from moviegenre.genres import PROBABILITY_KEYS

distributed = pytest.importorskip("distributed")  # the optional dask extra

from moviegenre.batch_dask import SUCCESS_MARKER, expand_inputs, score_files_dask  # noqa: E402

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
    score_files(small_model, [testing_zip], out)
    return out


@pytest.fixture(scope="module")
def split_testing_file(tmp_path_factory, testing_zip) -> Path:
    """The testing file cut into three CSV parts, in order: part-1, part-2, part-3."""
    folder = tmp_path_factory.mktemp("parts")
    frame = read_table(testing_zip)
    for number, start in enumerate(range(0, len(frame), 1200), start=1):
        frame.iloc[start : start + 1200].to_csv(folder / f"part-{number}.csv")
    return folder


def _score(cluster, model_dir, inputs, out, **kwargs):
    return score_files_dask(
        model_dir, inputs, out, scheduler=cluster, partition_rows=PARTITION_ROWS, **kwargs
    )


def _read_scores_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"ID": str}, index_col="ID")


def test_csv_output_is_byte_identical_to_the_local_engine(
    cluster, small_model_dir, testing_zip, local_csv, tmp_path
):
    messages: list[str] = []
    out = tmp_path / "scores.csv"
    summary = _score(cluster, small_model_dir, [testing_zip], out, progress=messages.append)
    assert out.read_bytes() == local_csv.read_bytes()
    assert (summary.input_rows, summary.scored, summary.rejected) == (3383, 3383, 0)
    assert summary.partitions == 7 and summary.workers == 2
    # The model went to each worker once, not once per partition.
    assert 1 <= summary.model_loads <= summary.workers < summary.partitions
    assert "scored 3,383 of 3,383 plots read (file 1 of 1)" in messages
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no temporary left


def test_parquet_output_from_globbed_parts_equals_the_local_engine_on_the_whole_file(
    cluster, small_model_dir, split_testing_file, local_csv, tmp_path
):
    out = tmp_path / "scores.parquet"
    summary = _score(cluster, small_model_dir, [str(split_testing_file / "part-*.csv")], out)
    assert (summary.format, summary.input_rows, summary.scored) == ("parquet", 3383, 3383)
    assert (out / SUCCESS_MARKER).is_file()
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["ID", *PROBABILITY_KEYS]
    pd.testing.assert_frame_equal(scores.set_index("ID"), _read_scores_csv(local_csv),
                                  check_exact=True, check_index_type=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]


def test_a_finished_parquet_output_and_stale_rejects_are_replaced_on_rerun(
    cluster, small_model_dir, split_testing_file, tmp_path
):
    out = tmp_path / "scores"  # no suffix: a Parquet directory
    out.mkdir()
    (out / SUCCESS_MARKER).write_text("", encoding="utf-8")
    (out / "part-000009.parquet").write_text("from an earlier run", encoding="utf-8")
    stale = tmp_path / "scores.rejects.csv"
    stale.write_text("ID,source,row,reason\nold,x,1,empty\n", encoding="utf-8")
    part = split_testing_file / "part-3.csv"
    summary = _score(cluster, small_model_dir, [part, part], out)  # 2 x 983 plots
    assert sorted(p.name for p in out.iterdir()) == [
        SUCCESS_MARKER, *(f"part-00000{i}.parquet" for i in range(4))]
    assert len(pd.read_parquet(out)) == summary.scored == 2 * 983
    assert summary.rejects is None and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]


def test_empty_plots_are_rejected_with_their_ids_as_the_local_engine_does(
    cluster, small_model, small_model_dir, tmp_path
):
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
    score_files(small_model, [source, second], local)

    out = tmp_path / "dask" / "out.csv"
    summary = _score(cluster, small_model_dir, [source, second], out)
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
    score_files(small_model, [part], local)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", "--model", str(small_model_dir), str(part),
                                      "-o", str(out), "--engine", "dask", "--workers", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["engine"] == "dask" and summary["workers"] == 2
    assert (summary["scored"], summary["rejected"]) == (983, 0)
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


@pytest.mark.parametrize(
    ("inputs", "out", "message"),
    [
        (["{dir}/nothing-*.csv"], "o.csv", "no files match '{dir}/nothing-*.csv'"),
        (["{dir}/missing.csv"], "o.csv", "{dir}/missing.csv does not exist"),
        (["{data}"], "o.json", "must end in .csv"),
        (["{data}"], "taken", "is not a finished moviegenre Parquet output"),
        (["{data}"], "file.parquet", "is a file; a Parquet output is a directory"),
    ],
)
def test_bad_inputs_and_outputs_fail_before_any_cluster_starts(
    small_model_dir, testing_zip, tmp_path, inputs, out, message
):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "precious.txt").write_text("keep me", encoding="utf-8")
    (tmp_path / "file.parquet").write_text("not a directory", encoding="utf-8")
    fill = {"dir": tmp_path, "data": testing_zip}
    with pytest.raises(DataError, match=re.escape(message.format(**fill))):
        score_files_dask(small_model_dir, [i.format(**fill) for i in inputs], tmp_path / out,
                         scheduler="tcp://127.0.0.1:9")  # never reached
    assert (tmp_path / "taken" / "precious.txt").exists()


def test_a_missing_model_directory_fails_before_any_cluster_starts(testing_zip, tmp_path):
    with pytest.raises(MovieGenreError, match="does not exist"):
        score_files_dask(tmp_path / "no-model", [testing_zip], tmp_path / "o.csv",
                         scheduler="tcp://127.0.0.1:9")


def test_workers_refuse_an_altered_model(cluster, small_model_dir, testing_zip, tmp_path):
    altered = tmp_path / "altered"
    shutil.copytree(small_model_dir, altered)
    with open(altered / "model.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="a Dask worker could not load the model: .*altered"):
        _score(cluster, altered, [testing_zip], tmp_path / "out" / "o.csv")
    assert not (tmp_path / "out" / "o.csv").exists()


def test_an_unreachable_scheduler_is_a_clear_error(small_model_dir, testing_zip, tmp_path):
    with pytest.raises(MovieGenreError, match="could not connect to the Dask scheduler at tcp://"):
        score_files_dask(small_model_dir, [testing_zip], tmp_path / "o.csv",
                         scheduler="tcp://127.0.0.1:9", connect_timeout_s=1)
    assert list(tmp_path.iterdir()) == []


def test_expand_inputs_keeps_explicit_order_and_sorts_glob_matches(tmp_path):
    for name in ["b.csv", "a.csv", "c.txt"]:
        (tmp_path / name).write_text("ID,plot\n1,x\n", encoding="utf-8")
    paths = expand_inputs([tmp_path / "c.txt", str(tmp_path / "*.csv")])
    assert [p.name for p in paths] == ["c.txt", "a.csv", "b.csv"]


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
