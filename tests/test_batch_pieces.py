"""One CSV file cut into pieces of rows: the cuts fall between rows whatever the rows hold
(quoted line breaks, CRLF, a BOM, blank lines, non-ASCII text), and scoring in pieces changes
no row, no reject and no error message. That the Dask engine cuts on its workers and writes
the local engine's bytes is in ``test_batch_dask.py``.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from moviegenre.batch.outputs import SUCCESS_MARKER
from moviegenre.batch.pool_engine import ProcessEngine
from moviegenre.batch.scoring import LocalEngine, score_files
from moviegenre.cli import app
from moviegenre.core.errors import DataError
from moviegenre.core.tables import csv_frames, csv_spans, local_opener

BOM = "\ufeff"


def tricky_rows(count: int) -> list[str]:
    """``count`` rows, many of them spread over several lines, with CRLF, quotes, commas and
    non-ASCII text; every fifth plot blank (a reject)."""
    plots = [
        '"a cowboy rides\ninto town, and\r\nmeets ""the kid"""',
        "a detective hunts a killer in the rain",
        '"a line break at the very end\n"',
        '"café, 日本 and naïve ünïcode\r\nacross lines"',
        '"   "',
    ]
    return [f"m{i},{1950 + i},\"T{i}\",{plots[i % len(plots)]}" for i in range(count)]


def write_csv(path: Path, rows: list[str], *, newline: str = "\r\n", bom: bool = True, blanks: bool = True) -> Path:
    lines = ["ID,year,title,plot"]
    for number, row in enumerate(rows):
        lines.append(row)
        if blanks and number % 4 == 2:
            lines.append("")  # a blank line: skipped, not a row
    path.write_bytes(((BOM if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    return path


def read_whole(path: Path) -> pd.DataFrame:
    return next(csv_frames(local_opener(path, path.name), path.name, 1 << 30))


@pytest.mark.parametrize("piece_rows", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_spans_cut_between_rows_and_read_back_every_row_once(tmp_path, piece_rows, newline):
    path = write_csv(tmp_path / "in.csv", tricky_rows(23), newline=newline)
    opener = local_opener(path, "in.csv")
    spans = csv_spans(opener, "in.csv", 1 << 30, piece_rows)

    assert [span.rows for span in spans] == [min(piece_rows, 23 - start) for start in range(0, 23, piece_rows)]
    assert [span.rows_before for span in spans] == list(range(0, 23, piece_rows))
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False)) and spans[-1].end is None
    pieces = [frame for span in spans for frame in csv_frames(opener, "in.csv", 1 << 30, None, span)]
    pd.testing.assert_frame_equal(pd.concat(pieces), read_whole(path), check_exact=True)
    assert read_whole(path).loc["m3", "plot"] == "café, 日本 and naïve ünïcode\r\nacross lines"


def test_a_span_names_the_lines_of_the_file_in_its_errors(tmp_path):
    rows = tricky_rows(12)
    rows[9] = "m9,1999,T9,too,many,fields"
    path = write_csv(tmp_path / "in.csv", rows)
    with pytest.raises(DataError) as whole:
        read_whole(path)
    with pytest.raises(DataError) as cut:
        csv_spans(local_opener(path, "in.csv"), "in.csv", 1 << 30, 4)
    assert str(cut.value) == str(whole.value)
    # The header, rows 0-8 (17 lines: some plots span 2 or 3) and 2 blank lines come before row 9.
    assert "line 21 has 6 field(s); the header has 4" in str(whole.value)


@pytest.mark.parametrize("container", ["csv", "zip"])
def test_scoring_in_pieces_gives_every_row_its_scores_and_numbers_rejects_in_the_file(
    small_model, tmp_path, container
):
    path = write_csv(tmp_path / "in.csv", tricky_rows(41))
    if container == "zip":
        with zipfile.ZipFile(tmp_path / "in.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, "movies.csv")
        path = tmp_path / "in.zip"
    whole = score_files(LocalEngine(small_model), [path], tmp_path / "whole.csv", piece_rows=10_000)
    cut = score_files(LocalEngine(small_model), [path], tmp_path / "cut.parquet", piece_rows=4)

    assert (whole.partitions, cut.partitions) == (1, 11)
    assert (cut.input_rows, cut.scored, cut.rejected) == (whole.input_rows, whole.scored, whole.rejected) == (41, 33, 8)
    assert Path(cut.rejects).read_bytes() == Path(whole.rejects).read_bytes()
    assert pd.read_csv(whole.rejects)["row"].tolist() == [5, 10, 15, 20, 25, 30, 35, 40]
    # Scores in input order; a model's last bit may depend on how many plots it scores at once.
    pd.testing.assert_frame_equal(pd.read_parquet(cut.output).set_index("ID"),
                                  pd.read_csv(whole.output, index_col="ID", dtype={"ID": str}), rtol=1e-12)  # fmt: skip
    # The unzipped copy the pieces were read from is gone: only parts and the marker remain.
    assert sorted(p.name for p in Path(cut.output).iterdir()) == [
        SUCCESS_MARKER, *(f"part-{n:06d}.parquet" for n in range(11))
    ]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failure_in_a_later_piece_leaves_no_output_and_no_copy(small_model, tmp_path):
    rows = tricky_rows(30)
    rows[29] = 'm29,1999,T29,"a quote that never closes'
    path = write_csv(tmp_path / "in.csv", rows, bom=False, blanks=False)
    with zipfile.ZipFile(tmp_path / "in.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, "movies.csv")
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError) as cut:
        score_files(LocalEngine(small_model), [tmp_path / "in.zip"], tmp_path / "out" / "scores.csv", piece_rows=4)
    with pytest.raises(DataError) as whole:
        read_whole(tmp_path / "in.zip")
    assert str(cut.value) == f"{tmp_path / 'in.zip'}{str(whole.value).removeprefix('in.zip')}"
    assert str(whole.value) == "in.zip is not a well-formed CSV: the row starting on line 55 opens a quote that is never closed"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_pool_of_processes_writes_one_process_bytes(small_model, small_model_dir, tmp_path):
    path = write_csv(tmp_path / "in.csv", tricky_rows(41))
    one = score_files(LocalEngine(small_model), [path], tmp_path / "one.csv", piece_rows=4)
    with ProcessEngine(small_model_dir, workers=2) as pool:
        assert pool.workers == 2
        two = score_files(pool, [path], tmp_path / "two.csv", piece_rows=4)
    assert (two.engine, two.workers, two.partitions, two.input_rows, two.rejected) == ("local", 2, 11, 41, 8)
    assert Path(two.output).read_bytes() == Path(one.output).read_bytes()
    assert Path(two.rejects).read_bytes() == Path(one.rejects).read_bytes()


def test_the_cli_scores_on_several_processes_and_a_bad_model_is_one_line(small_model_dir, tmp_path):
    path = write_csv(tmp_path / "in.csv", tricky_rows(12))
    args = ["score", str(path), "-o", str(tmp_path / "out.csv"), "--workers", "2", "--quiet"]
    result = CliRunner().invoke(app, [*args, "--model", str(small_model_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["workers"] == 2
    assert pd.read_csv(tmp_path / "out.csv").shape == (10, 25)

    broken = tmp_path / "broken"
    shutil.copytree(small_model_dir, broken)
    (broken / "model.skops").write_bytes(b"not a model")
    result = CliRunner().invoke(app, [*args, "--model", str(broken)])
    assert result.exit_code == 2, result.output  # a model error
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "model.skops has been altered or truncated" in result.stderr
    assert "Traceback" not in result.output
