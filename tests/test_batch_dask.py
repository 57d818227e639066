"""The Dask engine against the local engine, on real data and a real 2-worker local cluster.

What does not depend on the engine (globs, output formats, rejects, refusals) is tested with
the local engine in ``test_batch.py``; here, that the Dask engine gives the same output and
what only it does: workers that read and write the data themselves, the model shipped to each
worker once, connecting, starting a cluster, surviving a killed worker or a killed client.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import dask
import pandas as pd
import pytest
from tests.support.needs import need_module
from typer.testing import CliRunner

from moviegenre.batch import inputs as batch_input
from moviegenre.batch.outputs import SUCCESS_MARKER
from moviegenre.batch.scoring import LocalEngine
from moviegenre.batch.scoring import score_files as _score_files
from moviegenre.cli import app
from moviegenre.core import tables
from moviegenre.core.data import read_table
from moviegenre.core.errors import DataError, ModelError, MovieGenreError

distributed = need_module("distributed")  # the optional dask extra

from moviegenre.batch.dask_engine import DaskEngine  # noqa: E402

#: Plots per Parquet row group in the test inputs, and the pieces they make.
ROW_GROUP = 250
#: Every row group its own piece, so small inputs still make many tasks.
score_files = functools.partial(_score_files, piece_rows=ROW_GROUP)


def _local_cluster(workers: int = 2):
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    dashboard_address=":0", silence_logs=logging.ERROR)  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, shared by the module's tests."""
    with _local_cluster() as local_cluster:
        yield local_cluster.scheduler_address


@pytest.fixture
def small_pieces(monkeypatch):
    """The CLI cuts pieces of :data:`ROW_GROUP` rows."""
    from moviegenre.core.settings import get_settings

    monkeypatch.setenv("MOVIEGENRE_PIECE_ROWS", str(ROW_GROUP))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def parquet_parts(tmp_path_factory, testing_zip) -> Path:
    """The testing file as three Parquet files of 250-row row groups, with integer IDs and three
    empty plots: part-1 (1,200 plots), part-2 (1,200), part-3 (983)."""
    folder = tmp_path_factory.mktemp("parts")
    frame = read_table(testing_zip).reset_index()
    frame[frame.columns[0]] = frame[frame.columns[0]].astype("int64")
    frame.loc[[5, 1500, 3000], "plot"] = ""
    for number, start in enumerate(range(0, len(frame), 1200), start=1):
        frame.iloc[start : start + 1200].to_parquet(folder / f"part-{number}.parquet", index=False,
                                                    row_group_size=ROW_GROUP)  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def local_csv(tmp_path_factory, small_model, parquet_parts) -> Path:
    """The local engine's output on the three Parquet parts: the reference."""
    out = tmp_path_factory.mktemp("local") / "scores.csv"
    score_files(LocalEngine(small_model), [str(parquet_parts / "part-*.parquet")], out)
    return out


def _read_scores_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col="ID")


def test_workers_read_and_write_the_parts_and_the_output_is_the_local_engines(
    cluster, small_model, small_model_dir, parquet_parts, local_csv, tmp_path, monkeypatch
):
    def not_here(*args):
        raise AssertionError("the client read or scored a piece: the workers must")

    # In this process only: the workers are processes of their own.
    monkeypatch.setattr(batch_input, "_read_parquet_piece", not_here)
    monkeypatch.setattr(tables, "_data_records", not_here)
    counts: list[tuple[int, int]] = []
    engine = DaskEngine(small_model_dir, scheduler=cluster)
    inputs = [str(parquet_parts / "part-*.parquet")]
    summary = score_files(engine, inputs, tmp_path / "scores.csv", advance=lambda *c: counts.append(c))

    assert (tmp_path / "scores.csv").read_bytes() == local_csv.read_bytes()
    assert (summary.input_rows, summary.scored, summary.rejected) == (3383, 3380, 3)
    assert (summary.engine, summary.format, summary.partitions, summary.workers) == ("dask", "csv", 14, 2)
    assert counts[0] == (0, 3383) and counts[-1] == (3383, 3383) and len(counts) == 15  # rows, per piece
    # The model went to each worker once, not once per piece.
    assert 1 <= engine.model_loads <= summary.workers < summary.partitions
    rejects = pd.read_csv(summary.rejects, dtype=str)
    assert rejects[["ID", "row"]].to_dict("records") == [
        {"ID": str(read_table_ids(parquet_parts, n)), "row": str(row)}
        for n, row in [(1, 6), (2, 301), (3, 601)]
    ]
    assert list(rejects["source"]) == [str(parquet_parts / f"part-{n}.parquet") for n in (1, 2, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "scores.rejects.csv"]

    parquet = score_files(DaskEngine(small_model_dir, scheduler=cluster), inputs, tmp_path / "scores.parquet")
    monkeypatch.undo()  # this process reads again, for the local engine
    local = score_files(LocalEngine(small_model), inputs, tmp_path / "local.parquet")
    names = sorted(p.name for p in parquet.output.iterdir())
    assert names == sorted(p.name for p in local.output.iterdir())
    assert names == [SUCCESS_MARKER, *(f"part-{i:06d}.parquet" for i in range(14))]
    for name in names[1:]:
        pd.testing.assert_frame_equal(pd.read_parquet(parquet.output / name),
                                      pd.read_parquet(local.output / name), check_exact=True)
    scores = pd.read_parquet(parquet.output)
    assert scores["ID"].dtype == "int64"  # the input's integer IDs, kept
    pd.testing.assert_frame_equal(scores.set_index("ID"), _read_scores_csv(local_csv), check_exact=True)


def read_table_ids(folder: Path, number: int) -> int:
    """The ID of the empty plot in part-``number``."""
    frame = pd.read_parquet(folder / f"part-{number}.parquet")
    return int(frame.loc[frame["plot"] == "", frame.columns[0]].iloc[0])


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
    summary = score_files(DaskEngine(small_model_dir, scheduler=cluster), [source, second], out)
    assert (summary.input_rows, summary.scored, summary.rejected) == (6, 3, 3)
    assert summary.rejects == tmp_path / "dask" / "out.rejects.csv"
    rejects = pd.read_csv(summary.rejects, dtype=str)
    assert list(rejects["ID"]) == ["a2", "a3", "b1"]
    assert list(rejects["row"]) == ["2", "3", "1"]
    assert out.read_bytes() == local.read_bytes()
    assert summary.rejects.read_bytes() == (local.parent / "out.rejects.csv").read_bytes()


@pytest.mark.parametrize("container", ["csv", "zip"])
def test_one_csv_file_is_cut_and_scored_on_the_workers_into_the_local_engines_bytes(
    cluster, small_model, small_model_dir, testing_zip, tmp_path, monkeypatch, container
):
    """The testing file as one CSV (or one zip) whose plots hold quoted line breaks, CRLF
    included, some right where pieces meet: 14 pieces, cut and scored by the workers."""
    frame = read_table(testing_zip).reset_index()
    for row in range(0, len(frame), 83):  # 83 is prime: breaks land on and around piece boundaries
        frame.loc[row, "plot"] = frame.loc[row, "plot"].replace(" . ", " .\r\n", 1) + "\n"
    frame.loc[[7, ROW_GROUP, 2 * ROW_GROUP + 1], "plot"] = "  "
    source = tmp_path / "movies.csv"
    frame.to_csv(source, index=False, lineterminator="\r\n")
    if container == "zip":
        with zipfile.ZipFile(tmp_path / "movies.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(source, "movies.csv")
        source = tmp_path / "movies.zip"
    local = score_files(LocalEngine(small_model), [source], tmp_path / "local" / "out.csv")

    def not_here(*args):
        raise AssertionError("the client parsed rows: the workers must")

    monkeypatch.setattr(tables, "_data_records", not_here)  # in this process only
    summary = score_files(DaskEngine(small_model_dir, scheduler=cluster), [source], tmp_path / "dask" / "out.csv")
    assert (summary.input_rows, summary.scored, summary.rejected, summary.partitions) == (3383, 3380, 3, 14)
    assert summary.output.read_bytes() == local.output.read_bytes()
    assert summary.rejects.read_bytes() == local.rejects.read_bytes()
    assert pd.read_csv(summary.rejects)["row"].tolist() == [8, ROW_GROUP + 1, 2 * ROW_GROUP + 2]
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == ["out.csv", "out.rejects.csv"]


def test_cli_starts_a_local_cluster_and_matches_the_local_engine(
    small_model, small_model_dir, parquet_parts, tmp_path, small_pieces
):
    part = parquet_parts / "part-3.parquet"
    local = tmp_path / "local.csv"
    score_files(LocalEngine(small_model), [part], local)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", "--model", str(small_model_dir), str(part),
                                      "-o", str(out), "--engine", "dask", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress bar off a terminal
    summary = json.loads(result.stdout)
    assert summary["engine"] == "dask" and summary["workers"] == 2
    assert (summary["scored"], summary["rejected"], summary["format"], summary["partitions"]) == (982, 1, "csv", 4)
    assert out.read_bytes() == local.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://x:1"], "--scheduler needs --engine dask"),
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
        score_files(DaskEngine(altered, scheduler=cluster), [testing_zip], tmp_path / "out" / "o.csv")
    assert not (tmp_path / "out" / "o.csv").exists()


def test_an_unreachable_scheduler_is_a_clear_error(small_model_dir, testing_zip, tmp_path):
    engine = DaskEngine(small_model_dir, scheduler="tcp://127.0.0.1:9", connect_timeout_s=1)
    with pytest.raises(MovieGenreError, match="could not connect to the Dask scheduler at tcp://"):
        score_files(engine, [testing_zip], tmp_path / "o.csv")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory, testing_zip) -> Path:
    """The testing file 10 times over (33,830 plots) in row groups of 2,000: long enough to
    kill a run midway."""
    frame = read_table(testing_zip)
    path = tmp_path_factory.mktemp("big") / "big.parquet"
    pd.concat([frame] * 10).reset_index().to_parquet(path, index=False, row_group_size=2000)
    return path


def _kill_a_busy_worker(scheduler: str) -> int:
    """SIGKILL the process of a worker that is scoring a piece; its pid."""
    with distributed.Client(scheduler, timeout=10) as client:
        processing = client.processing()
        address = next((a for a, keys in processing.items() if keys), next(iter(processing)))
        (pid,) = client.run(os.getpid, workers=[address]).values()
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_worker_killed_midway_is_replaced_and_the_output_is_complete(
    cluster, small_model_dir, parquet_parts, local_csv, tmp_path
):
    killed: list[int] = []

    def kill_after_three(done: int, total: int) -> None:
        if done >= 3 * ROW_GROUP and not killed:  # three pieces in
            killed.append(_kill_a_busy_worker(cluster))

    out = tmp_path / "scores.csv"
    summary = score_files(DaskEngine(small_model_dir, scheduler=cluster), [str(parquet_parts / "part-*.parquet")],
                          out, advance=kill_after_three)  # fmt: skip
    assert killed, "no worker was killed"
    assert (summary.input_rows, summary.scored, summary.rejected) == (3383, 3380, 3)
    assert out.read_bytes() == local_csv.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "scores.rejects.csv"]


def test_workers_that_keep_dying_give_a_clear_error_and_no_output(small_model_dir, parquet_parts, tmp_path):
    out = tmp_path / "scores.parquet"
    out.mkdir()
    (out / SUCCESS_MARKER).write_text("", encoding="utf-8")  # a finished output from an earlier run
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), _local_cluster() as one_strike:
        def kill_after_two(done: int, total: int) -> None:
            if 2 * ROW_GROUP <= done < 3 * ROW_GROUP:  # two pieces in
                _kill_a_busy_worker(one_strike.scheduler_address)

        with pytest.raises(MovieGenreError, match=r"Dask workers kept dying while scoring .*out of memory"):
            score_files(DaskEngine(small_model_dir, scheduler=one_strike.scheduler_address),
                        [str(parquet_parts / "part-*.parquet")], out, advance=kill_after_two)  # fmt: skip
    # The staging directory is removed; a task still running on the surviving worker may
    # write a part into it after that, which leaves it behind, hidden and never finished.
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["scores.parquet"]
    assert [p.name for p in out.iterdir()] == [SUCCESS_MARKER]  # the earlier output, kept


@pytest.mark.parametrize(
    "out_name", ["scores.csv", pytest.param("scores.parquet", marks=pytest.mark.slow)]
)
def test_a_client_killed_midway_leaves_no_finished_looking_output(
    cluster, small_model_dir, big_parquet, tmp_path, out_name
):
    out_dir = tmp_path / "out"
    command = [sys.executable, "-c", "from moviegenre.cli import app; app()", "score",
               "--model", str(small_model_dir), str(big_parquet), "-o", str(out_dir / out_name),
               "--engine", "dask", "--scheduler", cluster]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        assert _wait_for_parts(out_dir, out_name, process), "the run never got going"
        assert process.poll() is None, "the run finished before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (out_dir / out_name).exists()
    visible = [p.name for p in out_dir.iterdir() if not p.name.startswith(".")]
    assert visible == []
    assert not list(out_dir.rglob(SUCCESS_MARKER))


def _wait_for_parts(out_dir: Path, out_name: str, process, timeout_s: float = 120):
    """True once the hidden staging directory holds two finished parts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        for staging in out_dir.glob(f".{out_name}.*.part"):
            if len(list(staging.glob("part-*"))) >= 2:
                return True
        time.sleep(0.05)
    return False
