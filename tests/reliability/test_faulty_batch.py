"""Faulty input to ``moviegenre score``: a clear error naming what and where, and no output.

Malformed CSV lines, a wrong encoding, missing or duplicated columns, an empty file, a header
with no rows: each fails with exit code 2 and one line naming the file and the row, line or
column, and leaves nothing in the output folder: no output, no rejects file, no temporary
file; an output from an earlier run is left as it was. A row that breaks the input contract
(a bad year, a blank plot) is not a faulty file: it is listed in the rejects, the rest scored. Both engines go through the
same reading and writing; the Dask engine is checked on one shared local cluster.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from reliability_support import assert_one_line_error
from tests.support.needs import need_module
from typer.testing import CliRunner

from moviegenre import cli
from moviegenre.batch.scoring import LocalEngine, score_files
from moviegenre.core.errors import DataError, MovieGenreError

GOOD = ",year,title,plot\n1,1999,A,a cowboy rides into a frontier town .\n2,2001,B,a ghost haunts a house .\n"

#: name -> (file name, bytes, what the one-line error must say after the file's path)
BAD_INPUTS: dict[str, tuple[str, bytes, str]] = {
    "extra-field": (
        "in.csv",
        b",year,title,plot\n1,1999,A,a cowboy .\n2,2001,B,a ghost,haunts\n3,2002,C,a war .\n",
        r"is not a well-formed CSV: line 3 has 5 field\(s\); the header has 4",
    ),
    "unterminated-quote": (
        "in.csv",
        b',year,title,plot\n1,1999,A,"a cowboy rides .\n2,2001,B,a ghost .\n',
        r"is not a well-formed CSV: the row starting on line 2 opens a quote that is never closed",
    ),
    "latin-1": (
        "in.csv",
        ",year,title,plot\n1,2001,Amélie,a girl in paris .\n".encode("latin-1"),
        r"is not valid UTF-8: byte 0xe9 at offset \d+ \(line 2\)",
    ),
    "utf-16": (
        "in.csv",
        GOOD.encode("utf-16"),
        r"is not valid UTF-8: byte 0xff at offset 0 \(line 1\)",
    ),
    "no-plot-column": (
        "in.csv",
        b",year,title,synopsis\n1,1999,A,a cowboy .\n",
        r"lacks required column\(s\) \['plot'\]; it has \['year', 'title', 'synopsis'\]",
    ),
    "plot-column-twice": (
        "in.csv",
        b",year,plot,title,plot\n1,1999,a cowboy .,A,a ghost .\n",
        r"column\(s\) \['plot'\] appear more than once in the header",
    ),
    "empty-file": ("in.csv", b"", r"is empty; expected a header line and at least one row"),
    "blank-lines": ("in.csv", b"\n \n\n", r"is empty; expected a header line and at least one row"),
    "header-only": ("in.csv", b",year,title,plot\n", r"has a header but no rows"),
    "zip-of-two-csvs": ("in.zip", b"", r"must hold exactly one \.csv file"),
    "not-a-zip": ("in.zip", b"PK\x03\x04 not really a zip", r"is not a readable zip file"),
    "not-parquet": ("in.parquet", b"PAR1 not really parquet", r"is not a readable Parquet file"),
}


def write_input(folder: Path, name: str) -> Path:
    file_name, content, _ = BAD_INPUTS[name]
    path = folder / file_name
    if name == "zip-of-two-csvs":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.csv", GOOD)
            archive.writestr("b.csv", GOOD)
    else:
        path.write_bytes(content)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


runner = CliRunner()


@pytest.fixture
def score(small_model, small_model_dir):
    """``moviegenre score`` in process, with the session's model (loading it is tested apart)."""

    def load_model(directory):
        assert str(directory) == str(small_model_dir)
        return small_model

    def run(*args):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cli.artifact, "load_model", load_model)
            return runner.invoke(cli.app, ["score", "--model", str(small_model_dir), *map(str, args)])

    return run


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_a_clear_error_and_writes_nothing(score, tmp_path, name):
    source = write_input(tmp_path, name)
    out_dir = tmp_path / "out"
    result = score(source, "-o", out_dir / "scores.csv")
    assert_one_line_error(result, re.escape(str(source)) + r"\b.*" + BAD_INPUTS[name][2])
    assert not out_dir.exists() or leftovers(out_dir) == []


def test_a_bad_second_file_leaves_no_output_and_an_earlier_output_untouched(score, tmp_path):
    good, bad = tmp_path / "good.csv", write_input(tmp_path, "extra-field")
    good.write_text(GOOD, encoding="utf-8")
    out = tmp_path / "out" / "scores.csv"
    assert score(good, "-o", out).exit_code == 0
    earlier = out.read_bytes()

    result = score(good, bad, "-o", out)

    assert_one_line_error(result, re.escape(str(bad)) + ".*line 3")
    assert out.read_bytes() == earlier
    assert leftovers(out.parent) == ["scores.csv"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("out/dir.csv", r"output .*dir\.csv is a directory"),
        ("file.csv/scores.csv", r"cannot write .*scores\.csv"),
    ],
)
def test_an_output_that_cannot_be_written_is_a_clear_error(score, tmp_path, output, message):
    (tmp_path / "out" / "dir.csv").mkdir(parents=True)
    (tmp_path / "file.csv").write_text("a file, not a folder", encoding="utf-8")
    source = tmp_path / "good.csv"
    source.write_text(GOOD, encoding="utf-8")
    result = score(source, "-o", tmp_path / output)
    assert_one_line_error(result, message)
    assert leftovers(tmp_path / "out") == ["dir.csv"]
    assert (tmp_path / "file.csv").read_text(encoding="utf-8") == "a file, not a folder"


def test_a_row_with_a_bad_year_is_a_reject_not_an_error(score, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text(",year,title,plot\n1,1999,A,a cowboy .\n2,MCMXC,B,a ghost .\n", encoding="utf-8")
    out = tmp_path / "out" / "scores.csv"
    result = score(source, "-o", out)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out, dtype=str)["ID"].tolist() == ["1"]
    rejects = pd.read_csv(out.with_name("scores.rejects.csv"), dtype=str)
    assert rejects[["ID", "row"]].to_dict("records") == [{"ID": "2", "row": "2"}]
    assert rejects["reason"][0].startswith("field 'year' ")


def test_the_library_raises_data_errors_not_pandas_errors(small_model, tmp_path):
    for name in BAD_INPUTS:
        folder = tmp_path / name
        folder.mkdir()
        with pytest.raises(DataError):
            score_files(LocalEngine(small_model), [write_input(folder, name)], folder / "out" / "scores.csv")
        assert not (folder / "out").exists() or leftovers(folder / "out") == []


# --- both engines, the Dask one on a local cluster ----------------------------------------------

distributed = need_module("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    ) as local_cluster:
        yield local_cluster.scheduler_address


@pytest.fixture(params=["local", "dask"])
def engine(request, small_model, small_model_dir):
    if request.param == "local":
        return LocalEngine(small_model)
    from moviegenre.batch.dask_engine import DaskEngine

    return DaskEngine(small_model_dir, scheduler=request.getfixturevalue("cluster"))


@pytest.mark.parametrize("name", ["extra-field", "latin-1", "header-only", "no-plot-column"])
@pytest.mark.parametrize("out_name", ["scores.csv", "scores.parquet"])
def test_a_bad_second_file_leaves_nothing_though_the_first_was_written(engine, tmp_path, name, out_name):
    good, bad = tmp_path / "good.csv", write_input(tmp_path, name)
    rows = "".join(f"{i},1999,T{i},a cowboy rides into town number {i} .\n" for i in range(12))
    good.write_text(",year,title,plot\n" + rows, encoding="utf-8")
    out_dir = tmp_path / "out"
    with pytest.raises(MovieGenreError, match=re.escape(str(bad)) + r"\b.*" + BAD_INPUTS[name][2]):
        # Each file is a piece: the first one's part is written to the staging directory
        # (before the second fails, or beside it on the other Dask worker), then all removed.
        score_files(engine, [good, bad], out_dir / out_name, partition_rows=1)
    assert not out_dir.exists() or leftovers(out_dir) == []


def test_dask_engine_from_the_command_line(cluster, small_model_dir, tmp_path):
    bad = write_input(tmp_path, "extra-field")
    result = runner.invoke(cli.app, ["score", "--model", str(small_model_dir), str(bad), "-o",
                                     str(tmp_path / "out" / "scores.csv"), "--engine", "dask",
                                     "--scheduler", cluster])  # fmt: skip
    assert_one_line_error(result, re.escape(str(bad)) + r" is not a well-formed CSV: .*line 3")
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []
