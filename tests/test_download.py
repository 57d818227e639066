"""Fetching the public files: from GitHub or a mirror, checked by sha256, cached; a network that is
down is called a network failure; and the test data that the suite derives from them."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import zipfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from tests.support import data as test_data

from moviegenre.core import data
from moviegenre.core.data import PUBLIC_FILES, PublicFile, fetch_public, load_movies
from moviegenre.core.errors import DownloadError, OutputError, SettingsError
from moviegenre.core.files import sha256_of
from moviegenre.core.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    """Each test reads MOVIEGENRE_* afresh, without a mirror unless it sets one."""
    monkeypatch.delenv("MOVIEGENRE_DATA_MIRROR", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def fake_public(monkeypatch, tmp_path) -> Path:
    """A mirror folder holding a small stand-in for the public training file, which the
    downloader is made to expect (its checksum recorded as the published one)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = mirror / "dataTraining.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dataTraining.csv", ",year,title,plot,genres\n1,1999,A,a cowboy rides .,['Western']\n")
    spec = PUBLIC_FILES["train"]
    monkeypatch.setitem(PUBLIC_FILES, "train", PublicFile(spec.url, sha256_of(path), spec.filename))
    return mirror


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_mirror(folder: Path) -> Iterator[str]:
    """A real HTTP server of ``folder`` on a free loopback port; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_mirror_folder_gives_the_file_checked_and_cached(fake_public, tmp_path):
    home = tmp_path / "home"
    path = fetch_public("train", home, mirror=str(fake_public))
    assert path == home / "dataTraining.zip" and sha256_of(path) == PUBLIC_FILES["train"].sha256
    (fake_public / "dataTraining.zip").unlink()
    assert fetch_public("train", home, mirror=str(fake_public)) == path  # cached: the mirror is not read
    assert sorted(p.name for p in home.iterdir()) == ["dataTraining.zip"]  # no partial file left


def test_the_mirror_setting_is_read_and_file_urls_work(fake_public, tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEGENRE_DATA_MIRROR", fake_public.as_uri() + "/")
    assert fetch_public("train", tmp_path / "home").read_bytes() == (fake_public / "dataTraining.zip").read_bytes()


def test_an_http_mirror_gives_the_file_and_a_missing_one_is_the_servers_answer(fake_public, tmp_path):
    with http_mirror(fake_public) as url:
        assert sha256_of(fetch_public("train", tmp_path / "home", mirror=url)) == PUBLIC_FILES["train"].sha256
        with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/dataTesting\.zip: "
                                                r"the server answered HTTP 404"):  # fmt: skip
            fetch_public("test", tmp_path / "home", mirror=url)


def test_a_file_that_is_not_the_public_one_is_refused_and_not_kept(fake_public, tmp_path):
    (fake_public / "dataTraining.zip").write_bytes(b"something else")
    with pytest.raises(DownloadError, match="its sha256 is .*, expected .*: it is not the public file"):
        fetch_public("train", tmp_path / "home", mirror=str(fake_public))
    assert list((tmp_path / "home").iterdir()) == []


def test_a_mirror_without_the_file_says_so(tmp_path):
    with pytest.raises(DownloadError, match=r"cannot read .*dataTesting\.zip: No such file or directory; the "
                                            r"folder that MOVIEGENRE_DATA_MIRROR names must hold dataTesting\.zip"):  # fmt: skip
        fetch_public("test", tmp_path / "home", mirror=str(tmp_path / "empty"))


def test_an_unknown_host_is_a_network_failure_not_a_disk_one(monkeypatch, tmp_path):
    def no_dns(url, timeout):
        raise urllib.error.URLError(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))

    monkeypatch.setattr(data.urllib.request, "urlopen", no_dns)
    with pytest.raises(DownloadError) as caught:
        fetch_public("train", tmp_path / "home")
    message = str(caught.value)
    assert message.startswith(f"cannot download {PUBLIC_FILES['train'].url}: network unreachable (Name or service not known); ")
    assert "MOVIEGENRE_DATA_MIRROR" in message and "--data PATH" in message and "cannot write" not in message


def test_a_refused_connection_and_a_silent_server_are_network_failures(tmp_path):
    with pytest.raises(DownloadError, match=r"network error \(Connection refused\)"):
        fetch_public("test", tmp_path / "home", mirror=f"http://127.0.0.1:{closed_port()}")
    with closing(socket.socket()) as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(DownloadError, match=r"network timed out after 0\.5 s"):
            fetch_public("test", tmp_path / "home", mirror=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5)


def test_a_disk_that_cannot_take_the_file_is_a_write_error(fake_public, tmp_path):
    home = tmp_path / "home"
    home.write_text("a file where the data home should be")
    with pytest.raises(OutputError, match="cannot write"):
        fetch_public("train", home, mirror=str(fake_public))


def test_a_mirror_url_with_another_scheme_is_a_bad_setting(monkeypatch):
    monkeypatch.setenv("MOVIEGENRE_DATA_MIRROR", "ftp://example.org/data")
    with pytest.raises(SettingsError, match=r"MOVIEGENRE_DATA_MIRROR='ftp://example.org/data': a mirror URL starts with"):
        get_settings()
    assert Settings(data_mirror="/srv/mirror").data_mirror == "/srv/mirror"


def test_the_cli_calls_a_network_failure_by_its_name(tmp_path):
    env = {**os.environ, "MOVIEGENRE_DATA_HOME": str(tmp_path / "home"),
           "MOVIEGENRE_DATA_MIRROR": f"http://127.0.0.1:{closed_port()}/"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "moviegenre", "split", "--out", str(tmp_path / "split")],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot download http://127.0.0.1:") and "network error (Connection refused)" in line


# --- the test suite's own data -----------------------------------------------------------------


def test_the_development_split_is_what_moviegenre_split_keeps(dev_zip, tmp_path, monkeypatch):
    """Made from a stand-in for the public training file of its size (7,895 movies): 6,316 of
    them, the same bytes on every run, and loadable as labelled data."""
    with zipfile.ZipFile(dev_zip) as archive:
        rows = list(csv.reader(io.StringIO(archive.read("dataTraining.csv").decode("utf-8"), newline="")))
    header, movies = rows[0], rows[1:]
    extra = [[f"extra-{row[0]}", *row[1:]] for row in movies[: 7895 - len(movies)]]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows([header, *movies, *extra])
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "dataTraining.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dataTraining.csv", buffer.getvalue())
    spec = PUBLIC_FILES["train"]
    monkeypatch.setitem(PUBLIC_FILES, "train", PublicFile(spec.url, sha256_of(mirror / "dataTraining.zip"), spec.filename))
    monkeypatch.setenv("MOVIEGENRE_DATA_MIRROR", str(mirror))

    first, second = (test_data.derive_dev_file(tmp_path / home) for home in ("a", "b"))
    assert first.name == test_data.DEV_FILE and sha256_of(first) == sha256_of(second)
    split = load_movies(first, labelled=True)
    assert len(split) == test_data.DEV_ROWS
    assert split.frame.index.is_unique and set(split.frame.index) <= {row[0] for row in movies + extra}
