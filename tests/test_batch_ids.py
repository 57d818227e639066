"""IDs keep their type from input to output, for every pair of input and output formats.

A Parquet ID column of integers stays integers; text IDs (a CSV's, or a Parquet text column)
stay text, leading zeros and all. When the inputs disagree the IDs are written as text, so
every part of a Parquet output has one schema. The engine does not matter (both run
:func:`moviegenre.batch.scoring.score_piece`); the local one is used here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moviegenre.batch.scoring import LocalEngine, score_files

PLOTS = ["a cowboy rides into a frontier town .", "", "a ghost haunts a family house ."]
TEXT_IDS = ["007", "x-2", "9"]
INTEGER_IDS = [7, 8, 9]


def write_input(folder: Path, kind: str) -> Path:
    """``kind``: ``csv`` (text IDs), ``parquet-int`` or ``parquet-text``; the 2nd plot is empty."""
    if kind == "csv":
        path = folder / "movies.csv"
        frame = pd.DataFrame({"ID": TEXT_IDS, "plot": PLOTS})
        frame.to_csv(path, index=False)
        return path
    ids = INTEGER_IDS if kind == "parquet-int" else TEXT_IDS
    path = folder / f"{kind}.parquet"
    pd.DataFrame({"ID": ids, "plot": PLOTS}).to_parquet(path, index=False)
    return path


def read_ids(output: Path) -> pd.Series:
    if output.suffix == ".csv":  # the text as written
        return pd.Series([line.split(",")[0] for line in output.read_text(encoding="utf-8").splitlines()[1:]])
    return pd.read_parquet(output)["ID"]


@pytest.mark.parametrize("out_name", ["scores.csv", "scores.parquet"])
@pytest.mark.parametrize(
    ("kind", "expected"),
    [("csv", ["007", "9"]), ("parquet-text", ["007", "9"]), ("parquet-int", [7, 9])],
)
def test_ids_keep_their_type(small_model, tmp_path, kind, expected, out_name):
    summary = score_files(LocalEngine(small_model), [write_input(tmp_path, kind)], tmp_path / out_name)
    ids = read_ids(summary.output)
    if out_name.endswith(".csv"):
        assert ids.tolist() == [str(i) for i in expected]
    elif isinstance(expected[0], int):
        assert ids.dtype == "int64" and ids.tolist() == expected
    else:
        assert pd.api.types.is_string_dtype(ids) and ids.tolist() == expected
    rejects = pd.read_csv(summary.rejects, dtype=str)
    rejected_id = "8" if kind == "parquet-int" else "x-2"
    assert rejects[["ID", "row"]].to_dict("records") == [{"ID": rejected_id, "row": "2"}]


def test_inputs_of_both_id_types_are_written_as_text(small_model, tmp_path):
    inputs = [write_input(tmp_path, "parquet-int"), write_input(tmp_path, "csv")]
    summary = score_files(LocalEngine(small_model), inputs, tmp_path / "scores.parquet")
    ids = pd.read_parquet(summary.output)["ID"]
    assert pd.api.types.is_string_dtype(ids) and ids.tolist() == ["7", "9", "007", "9"]
    parts = sorted(summary.output.glob("part-*.parquet"))
    assert len(parts) == 2 and all(pd.read_parquet(part)["ID"].dtype == ids.dtype for part in parts)


@pytest.mark.parametrize("out_name", ["scores.csv", "scores.parquet"])
def test_a_missing_integer_id_stays_missing(small_model, tmp_path, out_name):
    source = tmp_path / "movies.parquet"
    frame = pd.DataFrame({"ID": pd.array([7, None, 9], dtype="Int64"), "year": pd.array([1999, None, 2001], dtype="Int64"),
                          "plot": ["a cowboy rides into town .", "a ghost haunts a house .", "a war at sea ."]})  # fmt: skip
    frame.to_parquet(source, index=False)
    summary = score_files(LocalEngine(small_model), [source], tmp_path / out_name)
    assert (summary.scored, summary.rejected) == (3, 0)
    if out_name.endswith(".csv"):
        assert read_ids(summary.output).tolist() == ["7", "", "9"]
    else:
        ids = pq.read_table(summary.output)["ID"]  # pandas would read int64 with a null as float
        assert ids.type == pa.int64() and ids.to_pylist() == [7, None, 9]
