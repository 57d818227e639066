"""Reading and validating datasets: every bad-data case gives an error naming what and where."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from moviegenre.core.data import load_movies, parse_genres, read_table
from moviegenre.core.errors import DataError
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS

HEADER = ",year,title,plot,genres,rating\n"
GOOD_ROWS = (
    "10,1999,A,a cowboy rides into town .,\"['Western']\",7.0\n"
    "11,2001,B,two friends fall in love .,\"['Comedy', 'Romance']\",6.1\n"
)


def write(tmp_path, text, name="movies.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_genres_are_the_originals_24_in_order():
    assert len(GENRES) == 24
    assert GENRES[0] == "Action" and GENRES[-1] == "Western"
    assert PROBABILITY_KEYS[10] == "p_Film-Noir"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("['Comedy', 'Crime', 'Horror']", ["Comedy", "Crime", "Horror"]),
        ("['Sci-Fi']", ["Sci-Fi"]),
        ("Drama|Film-Noir", ["Drama", "Film-Noir"]),
    ],
)
def test_parse_genres_accepts_list_literals_and_pipes(text, expected):
    assert parse_genres(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("['Comedy', 'Cooking']", "unknown genre"),
        ("__import__('os').system('true')", "unknown genre"),
        ("['Comedy'", "not a list"),
        ("[]", "empty"),
        ("", "empty"),
    ],
)
def test_parse_genres_rejects_bad_text_without_evaluating_it(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_genres(text)


def test_load_labelled_csv(tmp_path):
    movies = load_movies(write(tmp_path, HEADER + GOOD_ROWS), labelled=True)
    assert list(movies.frame.index) == ["10", "11"]
    assert movies.labels.shape == (2, 24)
    assert movies.labels[1, GENRES.index("Romance")] == 1
    assert movies.labels.sum() == 3
    assert movies.frame["year"].tolist() == [1999.0, 2001.0]


def test_load_zip_holding_one_csv(tmp_path):
    path = tmp_path / "movies.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("movies.csv", HEADER + GOOD_ROWS)
    assert len(load_movies(path, labelled=True)) == 2


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, ",year,title,genres\n1,2000,A,\"['Drama']\"\n")
    with pytest.raises(DataError, match=r"lacks required column\(s\) \['plot'\]"):
        load_movies(path, labelled=True)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (GOOD_ROWS + "12,2002,C,,\"['Drama']\",5\n13,2003,D,   ,\"['Drama']\",5\n",
         r"data rows 3 \(ID 12\), 4 \(ID 13\): field 'plot' is blank"),
        (GOOD_ROWS + "12,2002,C,a plot .,\"['Drama', 'Cooking']\",5\n",
         r"unknown genre\(s\) \['Cooking'\] in data row 3 \(ID 12\)"),
        ("1,nineteen,A,a plot .,\"['Drama']\",5\n",
         r"data row 1 \(ID 1\): field 'year' must be a year between 1800 and 2200"),
        (GOOD_ROWS + "12,2002,C,... ?!,\"['Drama']\",5\n", r"data row 3 \(ID 12\): field 'plot' holds no letter or digit"),
    ],
    ids=["empty-plots", "unknown-genre", "bad-year", "punctuation-plot"],
)  # fmt: skip
def test_bad_rows_are_named_by_row_and_id(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        load_movies(write(tmp_path, HEADER + rows), labelled=True)


def test_malformed_csv_line_is_reported(tmp_path):
    text = HEADER + GOOD_ROWS + "12,2002,C,a plot,\"['Drama']\",5,extra,fields\n"
    with pytest.raises(DataError, match=r"not a well-formed CSV.*line 4"):
        load_movies(write(tmp_path, text), labelled=True)


def test_wrong_encoding_is_reported_with_line(tmp_path):
    text = HEADER + "1,2000,Amélie,a plot .,\"['Drama']\",5\n"
    with pytest.raises(DataError, match=r"not valid UTF-8.*line 2"):
        load_movies(write(tmp_path, text, encoding="latin-1"), labelled=True)


@pytest.mark.parametrize("content", ["", HEADER])
def test_empty_file_is_reported(tmp_path, content):
    with pytest.raises(DataError, match="empty|no rows"):
        load_movies(write(tmp_path, content), labelled=True)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unsupported file type"):
        read_table(write(tmp_path, "x", name="movies.xlsx"))


def test_zip_with_two_csvs_is_refused(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", HEADER + GOOD_ROWS)
        archive.writestr("b.csv", HEADER + GOOD_ROWS)
    with pytest.raises(DataError, match="exactly one .csv"):
        read_table(path)


def test_real_dev_file_loads_completely(dev_movies):
    assert len(dev_movies) == 6316
    assert dev_movies.labels.shape == (6316, 24)
    assert (dev_movies.labels.sum(axis=1) >= 1).all()
    assert dev_movies.labels[:, GENRES.index("Drama")].mean() > 0.4
    assert np.isnan(dev_movies.frame["year"]).sum() == 0


def test_real_testing_file_loads_unlabelled(testing_zip):
    movies = load_movies(testing_zip, labelled=False)
    assert len(movies) == 3383 and movies.labels is None
    assert movies.frame.index[0] == "1"


def test_a_bom_is_dropped_and_the_id_column_keeps_its_name(tmp_path):
    frame = read_table(write(tmp_path, "\ufeffID,plot\n007,a cowboy rides .\n"))
    assert frame.index.name == "ID" and list(frame.index) == ["007"]
    assert read_table(write(tmp_path, HEADER + GOOD_ROWS)).index.name is None


def test_utf8_is_checked_across_read_blocks(tmp_path):
    """A character cut by a block boundary is fine; a bad byte far in is named exactly."""
    row = "1,2000,Amélie,a girl in paris .,\"['Drama']\",5\n".encode()
    rows = row * (3 * (1 << 20) // len(row))  # ~3 MiB: several 1 MiB blocks, 'é' cut somewhere
    assert len(load_movies(write(tmp_path, HEADER.encode() + rows), labelled=True)) == len(rows) // len(row)
    bad = HEADER.encode() + rows + b"2,2001,B,caf\xe9 .,\"['Drama']\",5\n"
    offset = len(HEADER.encode() + rows) + len("2,2001,B,caf")
    line = 2 + len(rows) // len(row)
    with pytest.raises(DataError, match=rf"not valid UTF-8: byte 0xe9 at offset {offset} \(line {line}\)"):
        load_movies(write(tmp_path, bad), labelled=True)


def test_split_keeps_the_header_as_it_was(tmp_path):
    from moviegenre.core.data import split_file

    rows = "".join(f"{i},1999,T{i},a cowboy rides into town {i} .,\"['Western']\",7\n" for i in range(10))
    train_path, _ = split_file(write(tmp_path, HEADER + rows), tmp_path, test_size=0.2, seed=0)
    assert train_path.read_text(encoding="utf-8").splitlines()[0] == HEADER.strip()
