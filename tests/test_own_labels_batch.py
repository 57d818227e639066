"""``moviegenre score`` of a model of its own labels: the columns are ``ID`` then the model's
``p_<label>`` keys, in its order, escaped where a label needs it, on every engine; and an input
whose columns clash with those is refused before anything is written, on every engine.

The model is trained on the catalogue of ``examples/own-labels`` (in the repository), two of its
labels renamed so that their keys need escaping: ``Crime, Mystery`` and ``100% "true" stories``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.support.needs import need_module
from typer.testing import CliRunner

from moviegenre.batch.inputs import Piece, split_rejects
from moviegenre.batch.pool_engine import ProcessEngine
from moviegenre.batch.scoring import LocalEngine, score_files
from moviegenre.cli import app
from moviegenre.core.data import LabelSpec, load_movies
from moviegenre.core.errors import DataError
from moviegenre.core.genres import PROBABILITY_KEYS
from moviegenre.core.labels import label_of_key
from moviegenre.model.artifact import load_model, save_model
from moviegenre.training.train import train

CATALOGUE = Path(__file__).resolve().parents[1] / "examples" / "own-labels" / "catalogue.csv"
RENAMED = {"tag_Crime & Mystery": "tag_Crime, Mystery", "tag_True stories": 'tag_100% "true" stories'}
TITLE = "Catálogo de prueba"
#: The keys the renamed labels must have: ',' '"' and '%' percent-encoded, the rest kept.
ESCAPED = ("p_Crime%2C Mystery", "p_100%25 %22true%22 stories", "p_Ciencia ficción & Fantasía")
#: Rows scored: enough for several pieces of :data:`PIECE_ROWS`.
ROWS, PIECE_ROWS = 60, 25


@pytest.fixture(scope="module")
def own_model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("own-labels")
    frame = pd.read_csv(CATALOGUE, dtype=str, keep_default_na=False).drop(columns=["tags"]).rename(columns=RENAMED)
    frame.to_csv(folder / "catalogue.csv", index=False)
    movies = load_movies(folder / "catalogue.csv", labelled=True, labels=LabelSpec(prefix="tag_"))
    model = train("linear", movies, cv_folds=0, title=TITLE)
    save_model(model.pipeline, model.card, folder / "model")
    return folder / "model"


@pytest.fixture(scope="module")
def own_model(own_model_dir):
    return load_model(own_model_dir)


@pytest.fixture(scope="module")
def movies_csv(tmp_path_factory) -> Path:
    """:data:`ROWS` movies of the catalogue (ID, year, title, plot), the last one's plot blank."""
    frame = pd.read_csv(CATALOGUE, dtype=str, keep_default_na=False, nrows=ROWS)[["id", "year", "title", "plot"]]
    frame.loc[ROWS - 1, "plot"] = "  "
    path = tmp_path_factory.mktemp("movies") / "movies.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def movies_parquet(movies_csv) -> Path:
    path = movies_csv.with_suffix(".parquet")
    pd.read_csv(movies_csv, dtype=str, keep_default_na=False).to_parquet(path, index=False, row_group_size=PIECE_ROWS)
    return path


@pytest.fixture(scope="module")
def local_csv(own_model, movies_csv, tmp_path_factory) -> Path:
    """The local engine's CSV output: the reference every engine must give byte for byte."""
    out = tmp_path_factory.mktemp("local") / "scores.csv"
    summary = score_files(LocalEngine(own_model), [movies_csv], out, piece_rows=PIECE_ROWS)
    assert (summary.scored, summary.rejected, summary.partitions) == (ROWS - 1, 1, 3)
    return out


def expected(model, movies_csv: Path) -> pd.DataFrame:
    movies = pd.read_csv(movies_csv, dtype=str, keep_default_na=False, index_col="id")
    movies = movies[movies["plot"].str.strip() != ""]
    return pd.DataFrame(model.predict_proba(movies), columns=list(model.probability_keys),
                        index=movies.index.rename("ID"))  # fmt: skip


def test_the_model_keys_are_escaped_and_in_the_models_order(own_model):
    keys = own_model.probability_keys
    assert len(keys) == len(own_model.labels) == 11 and own_model.title == TITLE
    assert set(ESCAPED) <= set(keys)
    assert [label_of_key(key) for key in keys] == list(own_model.labels)


def test_a_csv_output_has_the_models_columns_and_probabilities(own_model, movies_csv, local_csv):
    header = local_csv.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert header == ",".join(["ID", *own_model.probability_keys])
    scores = pd.read_csv(local_csv, dtype={"ID": str}).set_index("ID")
    assert list(scores.columns) == list(own_model.probability_keys)
    assert [label_of_key(column) for column in scores.columns] == list(own_model.labels)
    pd.testing.assert_frame_equal(scores, expected(own_model, movies_csv), check_exact=False, rtol=1e-12)


def test_a_parquet_output_has_the_models_columns_and_schema(own_model, movies_csv, movies_parquet, tmp_path):
    import pyarrow.parquet as pq

    for source in (movies_csv, movies_parquet):
        out = tmp_path / f"{source.suffix[1:]}-scores.parquet"
        summary = score_files(LocalEngine(own_model), [source], out, piece_rows=PIECE_ROWS)
        assert (summary.scored, summary.rejected) == (ROWS - 1, 1)
        for part in sorted(out.glob("part-*.parquet")):
            assert pq.read_schema(part).names == ["ID", *own_model.probability_keys]
        scores = pd.read_parquet(out)
        assert list(scores.columns) == ["ID", *own_model.probability_keys]
        scores["ID"] = scores["ID"].astype(str)
        pd.testing.assert_frame_equal(scores.set_index("ID"), expected(own_model, movies_csv), check_exact=True,
                                      check_index_type=False)  # fmt: skip


def test_a_pool_of_processes_gives_the_local_engines_bytes(own_model_dir, movies_csv, local_csv, tmp_path):
    out = tmp_path / "scores.csv"
    summary = score_files(ProcessEngine(own_model_dir, 2), [movies_csv], out, piece_rows=PIECE_ROWS)
    assert (summary.engine, summary.workers, summary.partitions) == ("local", 2, 3)
    assert out.read_bytes() == local_csv.read_bytes()


def test_dask_workers_give_the_local_engines_bytes(own_model_dir, movies_csv, local_csv, tmp_path):
    distributed = need_module("distributed")  # the optional dask extra
    from moviegenre.batch.dask_engine import DaskEngine

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:  # fmt: skip
        out = tmp_path / "scores.csv"
        engine = DaskEngine(own_model_dir, scheduler=cluster.scheduler_address)
        summary = score_files(engine, [movies_csv], out, piece_rows=PIECE_ROWS)
    assert (summary.engine, summary.partitions) == ("dask", 3)
    assert out.read_bytes() == local_csv.read_bytes()


def test_the_cli_writes_the_models_columns(own_model, own_model_dir, movies_csv, local_csv, tmp_path):
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", "--model", str(own_model_dir), str(movies_csv), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out, nrows=0).columns) == ["ID", *own_model.probability_keys]


def test_the_default_models_csv_header_is_the_original_one(small_model, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("ID,plot\n1,a detective hunts a killer\n", encoding="utf-8")
    out = tmp_path / "scores.csv"
    score_files(LocalEngine(small_model), [source], out)
    assert out.read_text(encoding="utf-8").split("\n", 1)[0] == "ID," + ",".join(PROBABILITY_KEYS)
    assert small_model.probability_keys == PROBABILITY_KEYS


# --- inputs whose columns clash with the output's ------------------------------------------


def _clashing_inputs(folder: Path, column: str) -> dict[str, Path]:
    frame = pd.DataFrame({"id": ["m1", "m2"], "plot": ["a detective hunts a killer", "two friends fall in love"],
                          column: ["0.5", "0.1"]})  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "scored-before.csv", "parquet": folder / "scored-before.parquet"}
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    return paths


def _refused(engine, source: Path, column: str, out_dir: Path) -> None:
    out_dir.mkdir()
    with pytest.raises(DataError) as refused:
        score_files(engine, [source], out_dir / "scores.csv")
    message = str(refused.value)
    assert "\n" not in message
    assert str(source) in message and repr(column) in message and "clash with the model's output columns" in message
    assert list(out_dir.iterdir()) == []  # nothing written, not even a staging directory


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("column", ["p_Crime%2C Mystery", " p_Ciencia ficción & Fantasía "])
def test_the_local_engine_refuses_an_input_with_an_output_column(own_model, tmp_path, kind, column):
    source = _clashing_inputs(tmp_path / "in", column)[kind]
    _refused(LocalEngine(own_model), source, column.strip(), tmp_path / "out")


def test_a_pool_and_dask_refuse_it_before_they_start(own_model_dir, tmp_path):
    column = 'p_100%25 %22true%22 stories'
    inputs = _clashing_inputs(tmp_path / "in", column)
    _refused(ProcessEngine(own_model_dir, 2), inputs["csv"], column, tmp_path / "pool")
    need_module("distributed")
    from moviegenre.batch.dask_engine import DaskEngine

    never = DaskEngine(own_model_dir, scheduler="tcp://127.0.0.1:9", connect_timeout_s=1)  # never reached
    _refused(never, inputs["parquet"], column, tmp_path / "dask")


def test_a_column_only_another_model_writes_is_no_clash(own_model, tmp_path):
    source = _clashing_inputs(tmp_path / "in", "p_Western")["csv"]  # a default genre, not one of its labels
    summary = score_files(LocalEngine(own_model), [source], tmp_path / "scores.csv")
    assert summary.scored == 2


def test_the_default_model_refuses_its_own_columns(small_model, tmp_path):
    source = _clashing_inputs(tmp_path / "in", "p_Drama")["csv"]
    _refused(LocalEngine(small_model), source, "p_Drama", tmp_path / "out")


def test_a_piece_read_on_a_worker_is_checked_too(own_model):
    raw = pd.read_csv(io.StringIO("id,plot,p_Crime%2C Mystery\nm1,a plot,1\n"), dtype=str, index_col="id")
    piece = Piece(0, "somewhere.csv", "/somewhere.csv")
    with pytest.raises(DataError, match=r"somewhere\.csv: column\(s\) 'p_Crime%2C Mystery' clash"):
        split_rejects(raw, piece, 0, 1_000, own_model.probability_keys)
    movies, rejects = split_rejects(raw, piece, 0, 1_000, PROBABILITY_KEYS)
    assert len(movies) == 1 and len(rejects) == 0
    assert np.isfinite(own_model.predict_proba(movies)).all()


def test_a_piece_is_never_scored_by_a_model_of_other_columns(own_model, movies_csv, tmp_path):
    from moviegenre.batch.outputs import PartWriter
    from moviegenre.batch.scoring import Job, score_piece
    from moviegenre.core.errors import MovieGenreError

    job = Job(PartWriter(str(tmp_path), "csv", False, PROBABILITY_KEYS), partition_rows=10)
    with pytest.raises(MovieGenreError, match=r"writes other columns \(11 labels\) than this run planned \(24\)"):
        score_piece(own_model, job, Piece(0, str(movies_csv), str(movies_csv)))
    assert list(tmp_path.iterdir()) == []
