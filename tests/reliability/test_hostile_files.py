"""Hostile input files: every failure is one line naming the file, never a traceback, and bounded.

Each file below is handed to the readers of training and evaluation (``load_movies``) and to
``moviegenre score`` through the CLI (the local engine; a few through ``--engine dask``). A
damaged zip or Parquet file, a file that is not UTF-8, a header too wide or too long, a row
with too many or too few fields or an unclosed quote, a device or a FIFO, a zip that unpacks
past ``MOVIEGENRE_MAX_INPUT_BYTES``: one ``error:`` line naming the file (and the line, row,
member or column), exit code 2. A Parquet plot, title or year of the wrong type is no faulty
file: its rows are rejects with the reason the library gives for such a value.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from reliability_support import assert_one_line_error
from tests.support.needs import need_module
from typer.testing import CliRunner

from moviegenre import cli
from moviegenre.batch.scoring import LocalEngine, score_files
from moviegenre.core.data import load_movies, read_table
from moviegenre.core.errors import DataError
from moviegenre.core.items import check_item
from moviegenre.core.settings import get_settings
from moviegenre.core.tables import MAX_COLUMNS, MAX_HEADER_BYTES

pa = need_module("pyarrow")
pq = need_module("pyarrow.parquet")

GOOD = ",year,title,plot\n1,1999,A,a cowboy rides into a frontier town .\n2,2001,B,a ghost haunts a house .\n"


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def encrypted_zip() -> bytes:
    """A zip whose member has the encryption flag (bit 0) set, as a password-protected one has."""
    data = bytearray(zip_of({"in.csv": GOOD.encode()}))
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    return bytes(data)


def zip_with_method(method: int) -> bytes:
    """A stored zip whose member claims compression ``method`` (97: WavPack), in both headers."""
    data = bytearray(zip_of({"in.csv": GOOD.encode()}, zipfile.ZIP_STORED))
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 8 : local + 10] = method.to_bytes(2, "little")
    data[central + 10 : central + 12] = method.to_bytes(2, "little")
    return bytes(data)


def corrupt_deflate() -> bytes:
    data = bytearray(zip_of({"in.csv": (GOOD * 200).encode()}))
    start = data.find(b"in.csv") + len("in.csv")  # the local header's name, then the data
    data[start + 10 : start + 40] = b"\xff" * 30
    return bytes(data)


def parquet_bytes(table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def binary_plots() -> bytes:
    return parquet_bytes(pa.table({"id": [1, 2], "plot": pa.array([b"a cowboy .", b"caf\xe9 au lait"], pa.binary())}))


def wide_header(names) -> bytes:
    return (",".join(names) + "\n1\n").encode()


#: name -> (file name, bytes, what the one-line error says after the file's path)
HOSTILE: dict[str, tuple[str, bytes, str]] = {
    "zip-encrypted": ("in.zip", encrypted_zip(), r": member in\.csv is encrypted"),
    "zip-unknown-method": ("in.zip", zip_with_method(97), r": member in\.csv uses compression method 97"),
    "zip-corrupt-data": ("in.zip", corrupt_deflate(), r" (could not be read to the end|is not valid UTF-8|is not a well-formed CSV)"),
    "zip-truncated": ("in.zip", zip_of({"in.csv": GOOD.encode()})[:40], r" is not a readable zip file"),
    "zip-no-csv": ("in.zip", zip_of({"in.txt": GOOD.encode()}), r" must hold exactly one \.csv file"),
    "zip-two-csvs": ("in.zip", zip_of({"a.csv": GOOD.encode(), "b.csv": GOOD.encode()}),
                     r" must hold exactly one \.csv file"),
    "parquet-garbage": ("in.parquet", b"PAR1 not really parquet PAR1", r" is not a readable Parquet file"),
    "parquet-truncated": ("in.parquet", parquet_bytes(pa.table({"id": [1], "plot": ["a cowboy ."]}))[:-30],
                          r" is not a readable Parquet file"),
    "parquet-binary-not-utf8": ("in.parquet", binary_plots(),
                                r": column 'plot', data row 2, is not valid UTF-8: byte 0xe9"),
    "parquet-list-ids": ("in.parquet", parquet_bytes(pa.table({"id": [[1, 2]], "plot": ["a cowboy ."]})),
                         r": the ID column 'id' holds list<.*>; an ID must be one integer or text"),
    "csv-latin-1": ("in.csv", ",plot\n1,café au lait\n".encode("latin-1"), r" is not valid UTF-8: byte 0xe9 .*line 2"),
    "csv-utf-8-cut": ("in.csv", ",plot\n1,caf\xc3".encode("latin-1"), r" is not valid UTF-8: byte 0xc3 at offset 11"),
    "csv-empty": ("in.csv", b"", r" is empty"),
    "csv-blank": ("in.csv", b"\n\n\n", r" is empty"),
    "csv-wide-header": ("in.csv", wide_header(["x"] * 20_000),
                        rf": the header has 20,000 columns; the limit is {MAX_COLUMNS:,}"),
    "csv-wide-named-header": ("in.csv", wide_header(f"c{i}" for i in range(100_000)),
                              rf": the header line is longer than {MAX_HEADER_BYTES:,} bytes"),
    "csv-long-header": ("in.csv", b"id," + b"p" * 1_000_000 + b"\n1,a\n",
                        rf": the header line is longer than {MAX_HEADER_BYTES:,} bytes"),
    "csv-extra-field-first-row": ("in.csv", b",year,title,plot\n1,1999,A,a cowboy .,extra\n2,2001,B,a ghost .\n",
                                  r" is not a well-formed CSV: line 2 has 5 field\(s\); the header has 4"),
    "csv-extra-field": ("in.csv", b",year,title,plot\n1,1999,A,a cowboy .\n2,2001,B,a ghost,haunts\n",
                        r" is not a well-formed CSV: line 3 has 5 field\(s\); the header has 4"),
    "csv-missing-field": ("in.csv", b',year,title,plot\n1,1999,A,"a cowboy\n rides ."\n\n2,2001,B\n3,2002,C,a war .\n',
                          r" is not a well-formed CSV: line 5 has 3 field\(s\); the header has 4"),
    "csv-unclosed-quote": ("in.csv", b',year,title,plot\n1,1999,A,a cowboy .\n2,2001,B,"a ghost .\n3,2002,C,war\n',
                           r" is not a well-formed CSV: the row starting on line 3 opens a quote that is never closed"),
}  # fmt: skip


def write(folder: Path, name: str) -> Path:
    file_name, content, _ = HOSTILE[name]
    path = folder / file_name
    path.write_bytes(content)
    return path


runner = CliRunner()


@pytest.fixture
def score(small_model, small_model_dir):
    """``moviegenre score`` in process, with the session's model."""

    def run(*args):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cli.artifact, "load_model", lambda directory: small_model)
            return runner.invoke(cli.app, ["score", "--model", str(small_model_dir), "-q", *map(str, args)])

    return run


@pytest.mark.parametrize("name", list(HOSTILE))
def test_training_readers_give_one_data_error(tmp_path, name):
    source = write(tmp_path, name)
    started = time.perf_counter()
    with pytest.raises(DataError) as raised:
        load_movies(source, labelled=False)
    assert str(raised.value).startswith(str(source)) or str(raised.value).startswith(f"cannot read {source}")
    assert re.search(HOSTILE[name][2], str(raised.value)), str(raised.value)
    assert time.perf_counter() - started < 2, "a header check must take linear time"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_score_prints_one_error_line_and_writes_nothing(score, tmp_path, name):
    source = write(tmp_path, name)
    out = tmp_path / "out"
    result = score(source, "-o", out / "scores.csv")
    assert_one_line_error(result, re.escape(str(source)) + HOSTILE[name][2])
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("name", ["zip-encrypted", "parquet-binary-not-utf8", "csv-missing-field"])
def test_dask_engine_gives_the_same_line(cluster, small_model_dir, tmp_path, name):
    source = write(tmp_path, name)
    result = runner.invoke(cli.app, ["score", "--model", str(small_model_dir), str(source), "-o",
                                     str(tmp_path / "out" / "scores.csv"), "--engine", "dask",
                                     "--scheduler", cluster])  # fmt: skip
    assert_one_line_error(result, re.escape(str(source)) + HOSTILE[name][2])


def test_dask_engine_rejects_a_plot_of_integers_as_the_local_one(cluster, small_model, small_model_dir, tmp_path):
    from moviegenre.batch.dask_engine import DaskEngine

    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2], "plot": pa.array([12345, None], pa.int64())}), source)
    local = score_files(LocalEngine(small_model), [source], tmp_path / "local" / "out.csv")
    dask = score_files(DaskEngine(small_model_dir, scheduler=cluster), [source], tmp_path / "dask" / "out.csv")
    assert (dask.scored, dask.rejected) == (local.scored, local.rejected) == (0, 2)
    assert Path(dask.rejects).read_bytes() == Path(local.rejects).read_bytes()
    assert pd.read_csv(dask.rejects)["reason"].tolist() == [library_reason({"plot": 12345}),
                                                            library_reason({"plot": ""})]  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    distributed = need_module("distributed")
    import logging

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as local_cluster:  # fmt: skip
        yield local_cluster.scheduler_address


# --- files that are not files -------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_devices_and_fifos_are_refused_by_name_before_reading(score, tmp_path):
    endless = tmp_path / "zero.csv"
    endless.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    for source in (endless, fifo):
        with pytest.raises(DataError, match=re.escape(str(source)) + " is not a regular file"):
            load_movies(source, labelled=False)
        assert_one_line_error(score(source, "-o", tmp_path / "out.csv"), re.escape(str(source)) + " is not a regular")
    for parquet in (tmp_path / "zero.parquet",):
        parquet.symlink_to("/dev/zero")
        assert_one_line_error(score(parquet, "-o", tmp_path / "out.csv"), "is not a regular file")


# --- bounded memory -----------------------------------------------------------------------------


@pytest.fixture
def input_limit(monkeypatch):
    def set_limit(value: int) -> None:
        monkeypatch.setenv("MOVIEGENRE_MAX_INPUT_BYTES", str(value))
        get_settings.cache_clear()

    yield set_limit
    monkeypatch.delenv("MOVIEGENRE_MAX_INPUT_BYTES", raising=False)
    get_settings.cache_clear()


def zip_bomb(path: Path, unpacked: int) -> Path:
    """A zip of a few hundred KB whose CSV unpacks to ``unpacked`` bytes of valid rows."""
    row = b"1,1999,A,a cowboy rides into a frontier town .\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("in.csv", "w") as member:
        member.write(b",year,title,plot\n")
        block = row * ((1 << 20) // len(row))
        for _ in range(unpacked // len(block) + 1):
            member.write(block)
    return path


def test_a_zip_past_the_input_bound_is_refused_naming_the_bound(score, input_limit, tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.zip", 20 << 20)
    assert bomb.stat().st_size < 1 << 20
    input_limit(1 << 20)
    message = re.escape(f"{bomb} holds more than {1 << 20:,} bytes (once unzipped), the limit MOVIEGENRE_MAX_INPUT_BYTES")
    with pytest.raises(DataError, match=message):
        load_movies(bomb, labelled=False)
    assert_one_line_error(score(bomb, "-o", tmp_path / "out.csv"), message)


def test_a_parquet_file_past_the_input_bound_is_refused(small_model, tmp_path):
    source = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": list(range(2000)), "plot": ["a cowboy rides into town ." * 20] * 2000}), source)
    with pytest.raises(DataError, match=r"big\.parquet holds [\d,]+ bytes uncompressed, more than 10,000"):
        read_table(source, max_bytes=10_000)
    with pytest.raises(DataError, match=r"big\.parquet holds [\d,]+ bytes uncompressed, more than 10,000"):
        score_files(LocalEngine(small_model), [source], tmp_path / "out.csv", max_input_bytes=10_000)


def test_an_unbounded_member_stops_at_the_bound_in_bounded_memory(tmp_path):
    """A member that unpacks to 200 MB of one quoted field stops at a 20 MB bound, the
    process's peak memory far below what the member would take."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("in.csv", "w") as member:
        member.write(b',plot\n1,"')
        for _ in range(200):
            member.write(b"a" * (1 << 20))
    code = (
        "import sys\n"
        "from moviegenre.core.data import load_movies\n"
        "from moviegenre.core.errors import DataError\n"
        "try:\n    load_movies(sys.argv[1], labelled=False)\nexcept DataError as exc:\n    print(exc)\n"
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would be this test's.
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)\n"
    )
    env = dict(os.environ, MOVIEGENRE_MAX_INPUT_BYTES=str(20 << 20))
    done = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, env=env,
                          timeout=120, check=True)  # fmt: skip
    message, peak_mb = done.stdout.strip().splitlines()
    assert "holds more than 20,971,520 bytes" in message
    assert int(peak_mb) < 300, f"peak RSS {peak_mb} MB"


# --- the contract holds for every Parquet column type --------------------------------------------


def library_reason(value) -> str:
    try:
        check_item(value, None)
    except DataError as exc:
        return str(exc)
    raise AssertionError(f"{value!r} passed the contract")


def test_parquet_values_of_the_wrong_type_are_rejects_with_the_librarys_reason(small_model, tmp_path):
    good = "a cowboy rides into a frontier town ."
    cases = {
        "int-plot": ({"plot": pa.array([12345], pa.int64())}, {"plot": 12345}),
        "list-plot": ({"plot": pa.array([["a cowboy", "rides"]])}, {"plot": ["a cowboy", "rides"]}),
        "struct-plot": ({"plot": pa.array([{"text": good}])}, {"plot": {"text": good}}),
        "int-title": ({"plot": [good], "title": pa.array([7], pa.int32())}, {"plot": good, "title": 7}),
        "list-year": ({"plot": [good], "year": pa.array([[1999]])}, {"plot": good, "year": [1999]}),
        "bool-year": ({"plot": [good], "year": pa.array([True])}, {"plot": good, "year": True}),
    }
    for name, (columns, record) in cases.items():
        source = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"id": pa.array([7], pa.int64()), **columns}), source)
        summary = score_files(LocalEngine(small_model), [source], tmp_path / name / "out.csv")
        assert (summary.scored, summary.rejected) == (0, 1), name
        rejects = pd.read_csv(summary.rejects, dtype=str)
        assert rejects["reason"][0] == library_reason(record), name
        with pytest.raises(DataError, match=re.escape(library_reason(record))):
            load_movies(source, labelled=False)


def test_parquet_text_and_number_columns_are_read_as_before(small_model, tmp_path):
    source = tmp_path / "ok.parquet"
    table = pa.table({"id": pa.array([1, None], pa.int64()), "plot": ["a cowboy rides .", "a ghost ."],
                      "title": pa.array(["A", None]), "year": pa.array([1999, None], pa.int32())})  # fmt: skip
    pq.write_table(table, source)
    frame = read_table(source)
    assert frame.to_dict("list") == {"plot": ["a cowboy rides .", "a ghost ."], "title": ["A", ""], "year": ["1999", ""]}
    summary = score_files(LocalEngine(small_model), [source], tmp_path / "out.parquet")
    assert (summary.scored, summary.rejected) == (2, 0)
    assert pq.read_table(summary.output)["ID"].to_pylist() == [1, None]
