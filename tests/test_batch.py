"""Batch scoring with the local engine: globs, CSV and Parquet outputs, rejects, refusals.

All of this is the orchestration in :mod:`moviegenre.batch.scoring`, the same for every engine; that
the Dask engine writes the same output is in ``test_batch_dask.py``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from moviegenre.batch.inputs import expand_inputs
from moviegenre.batch.outputs import SUCCESS_MARKER
from moviegenre.batch.scoring import LocalEngine, score_files
from moviegenre.cli import app
from moviegenre.core.errors import DataError, UsageError
from moviegenre.core.genres import PROBABILITY_KEYS

#: Two small input files of five movies each; the last of the second has a blank plot.
MOVIES_A = (
    "ID,year,title,plot\n"
    "a1,1999,One,a detective hunts a serial killer through the rainy city\n"
    "a2,2001,Two,two friends fall in love on a summer trip to italy\n"
    "a3,1956,Three,a cowboy rides into a frontier town and faces the outlaws\n"
    "a4,2010,Four,a haunted house terrifies a young family at night\n"
    "a5,1984,Five,astronauts fight an alien creature aboard their ship\n"
)
MOVIES_B = (
    "ID,plot\n"
    "b1,a young wizard learns magic at a school for witches\n"
    "b2,soldiers storm the beaches in the war against the nazis\n"
    "b3,a comedian struggles to make his family laugh at christmas\n"
    "b4,a shark attacks swimmers at a beach resort town\n"
    "b5,   \n"
)


@pytest.fixture
def inputs(tmp_path) -> Path:
    """``in/a.csv`` and ``in/b.csv``, and a ``notes.txt`` that a ``*.csv`` glob must skip."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text(MOVIES_A, encoding="utf-8")
    (folder / "b.csv").write_text(MOVIES_B, encoding="utf-8")
    (folder / "notes.txt").write_text("ID,plot\nx,not scored\n", encoding="utf-8")
    return folder


def expected_scores(model, *sources: str) -> pd.DataFrame:
    """What the model gives the valid rows of ``sources``, as the output should hold them."""
    movies = pd.concat(pd.read_csv(io.StringIO(s), dtype=str, index_col="ID") for s in sources)
    movies = movies[movies["plot"].str.strip() != ""].fillna("")
    return pd.DataFrame(model.predict_proba(movies), columns=list(PROBABILITY_KEYS),
                        index=movies.index.rename("ID"))  # fmt: skip


def read_parquet_scores(directory: Path) -> pd.DataFrame:
    return pd.read_parquet(directory).set_index("ID")


def test_a_glob_scores_into_a_parquet_directory_of_parts_in_input_order(small_model, inputs, tmp_path):
    out = tmp_path / "scores.parquet"
    summary = score_files(LocalEngine(small_model), [str(inputs / "*.csv")], out, partition_rows=2)

    assert (summary.input_rows, summary.scored, summary.rejected) == (10, 9, 1)
    # One piece (and one part) per CSV file, scored two plots at a time.
    assert (summary.format, summary.partitions, summary.engine, summary.workers) == ("parquet", 2, "local", 1)
    assert sorted(p.name for p in out.iterdir()) == [SUCCESS_MARKER, "part-000000.parquet", "part-000001.parquet"]
    assert [len(pd.read_parquet(out / f"part-00000{i}.parquet")) for i in range(2)] == [5, 4]
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["ID", *PROBABILITY_KEYS]
    assert pd.api.types.is_string_dtype(scores["ID"])
    pd.testing.assert_frame_equal(scores.set_index("ID"), expected_scores(small_model, MOVIES_A, MOVIES_B),
                                  check_index_type=False)  # fmt: skip
    rejects = pd.read_csv(summary.rejects, dtype=str)
    assert rejects[["ID", "source", "row"]].to_dict("records") == [
        {"ID": "b5", "source": str(inputs / "b.csv"), "row": "5"}
    ]
    assert rejects["reason"][0].startswith("field 'plot' ")  # the wording is moviegenre.core.items
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "scores.parquet", "scores.rejects.csv"]


@pytest.mark.parametrize("partition_rows", [1, 3])
def test_a_csv_file_and_a_parquet_directory_hold_the_same_scores(small_model, inputs, tmp_path, partition_rows):
    # The same partitions, so the very same floats: a model's last bit may depend on how many
    # plots it scores at once, which is why every engine is handed the same partitions.
    engine, sources = LocalEngine(small_model), [inputs / "a.csv", inputs / "b.csv"]
    csv = score_files(engine, sources, tmp_path / "scores.csv", partition_rows=partition_rows)
    parquet = score_files(engine, sources, tmp_path / "scores", partition_rows=partition_rows)  # no suffix
    assert (csv.format, parquet.format) == ("csv", "parquet")
    assert csv.partitions == parquet.partitions == len(list(parquet.output.glob("part-*.parquet")))
    pd.testing.assert_frame_equal(read_parquet_scores(parquet.output),
                                  pd.read_csv(csv.output, dtype={"ID": str}, index_col="ID"),
                                  check_exact=True, check_index_type=False)  # fmt: skip


def test_integer_parquet_ids_stay_integers_in_a_parquet_output(small_model, tmp_path):
    # Once an ArrowTypeError traceback ("Expected a string or bytes dtype, got int64").
    source = tmp_path / "movies.parquet"
    pd.DataFrame({"id": [7, 9], "plot": ["a cowboy and an outlaw .", "a ghost haunts a house ."]}).to_parquet(source)
    summary = score_files(LocalEngine(small_model), [source], tmp_path / "out")
    ids = pd.read_parquet(summary.output)["ID"]
    assert ids.tolist() == [7, 9] and ids.dtype == "int64"


@pytest.mark.parametrize("out_name", ["scores.csv", "scores.parquet"])
def test_all_rows_rejected_still_makes_a_valid_empty_output(small_model, tmp_path, out_name):
    source = tmp_path / "blank.csv"
    source.write_text("ID,plot\nx1,\nx2,...\n", encoding="utf-8")
    summary = score_files(LocalEngine(small_model), [source], tmp_path / out_name)
    assert (summary.input_rows, summary.scored, summary.rejected, summary.partitions) == (2, 0, 2, 1)
    if summary.format == "csv":
        assert summary.output.read_text(encoding="utf-8") == ",".join(["ID", *PROBABILITY_KEYS]) + "\n"
    else:
        assert list(pd.read_parquet(summary.output).columns) == ["ID", *PROBABILITY_KEYS]
        assert len(pd.read_parquet(summary.output)) == 0


def test_a_finished_parquet_output_and_stale_rejects_are_replaced_on_rerun(small_model, inputs, tmp_path):
    out = tmp_path / "scores"  # no suffix: a Parquet directory
    out.mkdir()
    (out / SUCCESS_MARKER).write_text("", encoding="utf-8")
    (out / "part-000009.parquet").write_text("from an earlier run", encoding="utf-8")
    stale = tmp_path / "scores.rejects.csv"
    stale.write_text("ID,source,row,reason\nold,x,1,empty\n", encoding="utf-8")

    summary = score_files(LocalEngine(small_model), [inputs / "a.csv"] * 2, out, partition_rows=3)

    assert sorted(p.name for p in out.iterdir()) == [SUCCESS_MARKER, "part-000000.parquet", "part-000001.parquet"]
    assert len(pd.read_parquet(out)) == summary.scored == 2 * 5
    assert summary.rejects is None and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "scores"]


def test_progress_counts_rows_as_pieces_finish(small_model, inputs, tmp_path):
    messages: list[str] = []
    counts: list[tuple[int, int]] = []
    score_files(LocalEngine(small_model), [inputs / "a.csv", inputs / "b.csv", inputs / "a.csv"],
                tmp_path / "o.csv", piece_rows=3, progress=messages.append,
                advance=lambda *c: counts.append(c))  # fmt: skip
    # Each file of five rows is cut into pieces of 3 and 2 rows.
    assert counts == [(0, 15), (3, 15), (5, 15), (8, 15), (10, 15), (13, 15), (15, 15)]
    assert messages[-3:] == ["cutting 3 CSV files into pieces of 3 rows", "scoring 15 rows of 3 files",
                             f"moving {tmp_path / 'o.csv'} into place"]  # fmt: skip


class NeverStarted:
    """An engine that fails the test if started: checks must come first."""

    name, workers = "never", 0
    probability_keys = PROBABILITY_KEYS  # known before starting, from the model's card

    def __enter__(self):
        raise AssertionError("the engine was started before the inputs and the output were checked")

    def __exit__(self, *exc_info):
        return None

    def cut(self, job, pieces):
        raise AssertionError("unreachable")

    def run(self, job, pieces):
        raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("sources", "out", "message"),
    [
        (["{dir}/nothing-*.csv"], "o.csv", "no files match '{dir}/nothing-*.csv'"),
        (["{dir}/missing.csv"], "o.csv", "{dir}/missing.csv does not exist"),
        ([], "o.csv", "no input files given"),
        (["{data}"], "o.json", "must end in .csv"),
        (["{data}"], "taken", "is not a finished moviegenre Parquet output"),
        (["{data}"], "file.parquet", "is a file; a Parquet output is a directory"),
        (["{data}"], "dir.csv", "is a directory; give a file name ending in .csv"),
    ],
)
def test_bad_inputs_and_outputs_fail_before_the_engine_starts(inputs, tmp_path, sources, out, message):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "precious.txt").write_text("keep me", encoding="utf-8")
    (tmp_path / "file.parquet").write_text("not a directory", encoding="utf-8")
    (tmp_path / "dir.csv").mkdir()
    fill = {"dir": tmp_path, "data": inputs / "a.csv"}
    with pytest.raises(DataError, match=re.escape(message.format(**fill))):
        score_files(NeverStarted(), [s.format(**fill) for s in sources], tmp_path / out)
    assert (tmp_path / "taken" / "precious.txt").exists()


def test_a_partition_size_below_one_is_refused(small_model, inputs, tmp_path):
    with pytest.raises(UsageError, match="partition_rows must be at least 1, got 0"):
        score_files(LocalEngine(small_model), [inputs / "a.csv"], tmp_path / "o.csv", partition_rows=0)


def test_expand_inputs_keeps_explicit_order_and_sorts_glob_matches(tmp_path):
    for name in ["b.csv", "a.csv", "c.txt"]:
        (tmp_path / name).write_text("ID,plot\n1,x\n", encoding="utf-8")
    paths = expand_inputs([tmp_path / "c.txt", str(tmp_path / "*.csv")])
    assert paths == [str(tmp_path / name) for name in ["c.txt", "a.csv", "b.csv"]]


def test_the_cli_local_engine_takes_a_glob_and_writes_parquet(small_model, small_model_dir, inputs, tmp_path):
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, ["score", "--model", str(small_model_dir), str(inputs / "*.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "input_rows": 10, "scored": 9, "rejected": 1, "output": str(out),
        "rejects": str(tmp_path / "scores.rejects.csv"), "format": "parquet", "partitions": 2,
        "engine": "local", "workers": 1,
    }  # fmt: skip
    assert np.allclose(read_parquet_scores(out).to_numpy(), expected_scores(small_model, MOVIES_A, MOVIES_B))


def test_a_dataset_directory_is_its_data_files_in_name_order(small_model, tmp_path):
    # As Spark and Dask write a Parquet dataset: part files, a _SUCCESS marker, hidden files.
    dataset = tmp_path / "catalogue.parquet"
    (dataset / "year=2001").mkdir(parents=True)
    for name, ids in [("part-1.parquet", ["c", "d"]), ("year=2001/part-0.parquet", ["e"]), ("part-0.parquet", ["a"])]:
        pd.DataFrame({"ID": ids, "plot": ["a cowboy rides into a frontier town ."] * len(ids)}).to_parquet(
            dataset / name, index=False
        )
    (dataset / SUCCESS_MARKER).write_text("", encoding="utf-8")
    (dataset / ".part-2.parquet.crc").write_text("not data", encoding="utf-8")
    summary = score_files(LocalEngine(small_model), [dataset], tmp_path / "scores.csv")
    assert pd.read_csv(summary.output, dtype=str)["ID"].tolist() == ["a", "c", "d", "e"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty is a directory with no data files in it"):
        score_files(LocalEngine(small_model), [dataset, tmp_path / "empty"], tmp_path / "o.csv")


@pytest.mark.parametrize("quiet", [False, True])
def test_the_cli_shows_a_progress_bar_over_rows_on_a_terminal(small_model_dir, inputs, tmp_path, monkeypatch, quiet):
    from rich.console import Console

    from moviegenre import cli

    terminal = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=terminal, force_terminal=True, width=120))
    args = ["score", "--model", str(small_model_dir), str(inputs / "*.csv"), "-o", str(tmp_path / "o.csv")]
    result = CliRunner().invoke(app, args + ["--quiet"] * quiet)
    assert result.exit_code == 0, result.output
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", terminal.getvalue())  # without the terminal's codes
    assert ("10/10 rows" in shown) is not quiet
    assert json.loads(result.stdout)["partitions"] == 2


def test_reading_in_chunks_changes_no_byte(small_model, tmp_path, monkeypatch):
    """A CSV read a few rows at a time gives the bytes of one read whole: the same partitions,
    the same rejects with the same row numbers."""
    from moviegenre.batch import scoring

    rows = "".join(f"m{i},1999,T{i},{'   ' if i % 7 == 3 else f'a cowboy rides into town number {i} .'}\n"
                   for i in range(40))  # fmt: skip
    source = tmp_path / "in.csv"
    source.write_text("ID,year,title,plot\n" + rows, encoding="utf-8")
    for size in (5, 6):  # valid rows per chunk vary: partitions are refilled across chunks
        monkeypatch.setattr(scoring, "READ_ROWS", 10_000)
        whole = score_files(LocalEngine(small_model), [source], tmp_path / f"whole{size}" / "out.csv",
                            partition_rows=size)  # fmt: skip
        monkeypatch.setattr(scoring, "READ_ROWS", 1)  # read partition_rows at a time
        chunked = score_files(LocalEngine(small_model), [source], tmp_path / f"chunked{size}" / "out.csv",
                              partition_rows=size)  # fmt: skip
        assert (chunked.input_rows, chunked.scored, chunked.rejected) == (40, 34, 6)
        assert Path(chunked.output).read_bytes() == Path(whole.output).read_bytes()
        assert Path(chunked.rejects).read_bytes() == Path(whole.rejects).read_bytes()
    assert pd.read_csv(whole.rejects)["row"].tolist() == [4, 11, 18, 25, 32, 39]
