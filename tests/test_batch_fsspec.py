"""Inputs and outputs as fsspec URLs, with fsspec's in-memory filesystem standing in for
object storage (``s3://``, ``gs://``): globs, both output formats, rejects, staging and commit,
with the local engine and with Dask workers (threads of this process, which share the memory
filesystem as the machines of a cluster share a bucket)."""

from __future__ import annotations

import io
import logging
import uuid

import fsspec
import pandas as pd
import pytest
from tests.support.needs import need_module

from moviegenre.batch.outputs import SUCCESS_MARKER
from moviegenre.batch.scoring import LocalEngine, score_files
from moviegenre.core.errors import DataError, OutputError

MOVIES = (
    "ID,year,title,plot\n"
    "a1,1999,One,a detective hunts a serial killer through the rainy city\n"
    "a2,2001,Two,\n"
    "a3,1956,Three,a cowboy rides into a frontier town and faces the outlaws\n"
)


@pytest.fixture
def bucket():
    """A fresh ``memory://`` folder holding ``in/a.csv`` and ``in/b.parquet`` (integer IDs)."""
    fs = fsspec.filesystem("memory")
    root = f"memory://bucket-{uuid.uuid4().hex}"
    fs.pipe(f"{root}/in/a.csv", MOVIES.encode())
    frame = pd.DataFrame({"id": [7, 8], "plot": ["a ghost haunts a house .", "soldiers storm the beaches ."]})
    with fs.open(f"{root}/in/b.parquet", "wb") as handle:
        frame.to_parquet(handle, index=False)
    yield root
    fs.rm(root, recursive=True)


def test_a_glob_of_urls_scores_into_a_parquet_directory_url(small_model, bucket):
    fs = fsspec.filesystem("memory")
    summary = score_files(LocalEngine(small_model), [f"{bucket}/in/*"], f"{bucket}/out/scores.parquet")
    assert (summary.input_rows, summary.scored, summary.rejected, summary.partitions) == (5, 4, 1, 2)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{bucket}/out/scores.parquet", detail=False)) == [
        SUCCESS_MARKER, "part-000000.parquet", "part-000001.parquet"]  # fmt: skip
    with fs.open(f"{bucket}/out/scores.parquet/part-000001.parquet", "rb") as handle:
        assert pd.read_parquet(handle)["ID"].tolist() == ["7", "8"]  # inputs of both ID types: text
    assert summary.rejects == f"{bucket}/out/scores.rejects.csv"
    rejects = pd.read_csv(io.BytesIO(fs.cat(summary.rejects)), dtype=str)
    # A glob's matches are named as fsspec names them (memory:///bucket...; s3://bucket/...).
    assert rejects[["ID", "source", "row"]].to_dict("records") == [
        {"ID": "a2", "source": fs.unstrip_protocol(fs._strip_protocol(f"{bucket}/in/a.csv")), "row": "2"}]  # fmt: skip
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{bucket}/out", detail=False)) == [
        "scores.parquet", "scores.rejects.csv"]  # fmt: skip: no staging left behind


def test_a_csv_url_output_is_the_local_files(small_model, bucket, tmp_path):
    fs = fsspec.filesystem("memory")
    (tmp_path / "a.csv").write_text(MOVIES, encoding="utf-8")
    local = score_files(LocalEngine(small_model), [tmp_path / "a.csv"], tmp_path / "scores.csv")
    remote = score_files(LocalEngine(small_model), [f"{bucket}/in/a.csv"], f"{bucket}/scores.csv")
    assert fs.cat(remote.output) == local.output.read_bytes()


@pytest.mark.parametrize(
    ("source", "out", "error", "message"),
    [
        ("{bucket}/in/nothing-*.csv", "{bucket}/o.csv", DataError, "no files match '{bucket}/in/nothing-*.csv'"),
        ("{bucket}/in/missing.csv", "{bucket}/o.csv", DataError, "{bucket}/in/missing.csv does not exist"),
        ("nosuchfs://bucket/a.csv", "{bucket}/o.csv", DataError, "cannot read nosuchfs://bucket/a.csv"),
        ("{bucket}/in/a.csv", "nosuchfs://bucket/o.csv", OutputError, "cannot write nosuchfs://bucket/o.csv"),
    ],
)
def test_bad_urls_are_clear_errors(small_model, bucket, source, out, error, message):
    with pytest.raises(error, match=message.format(bucket=bucket).replace("*", r"\*")):
        score_files(LocalEngine(small_model), [source.format(bucket=bucket)], out.format(bucket=bucket))


def test_dask_workers_read_and_write_urls(small_model, small_model_dir, bucket):
    distributed = need_module("distributed")
    from moviegenre.batch.dask_engine import DaskEngine

    fs = fsspec.filesystem("memory")
    local = score_files(LocalEngine(small_model), [f"{bucket}/in/*"], f"{bucket}/local.csv")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:  # fmt: skip
        summary = score_files(DaskEngine(small_model_dir, scheduler=cluster.scheduler_address),
                              [f"{bucket}/in/*"], f"{bucket}/dask.csv")  # fmt: skip
    assert (summary.engine, summary.scored, summary.rejected) == ("dask", 4, 1)
    assert fs.cat(summary.output) == fs.cat(local.output)
    assert fs.cat(summary.rejects) == fs.cat(local.rejects)
