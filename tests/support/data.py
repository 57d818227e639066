"""The real data the tests read: found in a folder, or fetched and derived once.

Two files, by the names the tests use:

- ``dataTesting.zip``: the public testing file (3,383 unlabelled movies), byte for byte.
- ``dataTraining-dev.zip``: the development split, 6,316 of the public training file's 7,895
  labelled movies; the project keeps the other 1,579 out of sight as its own test set.

Each is looked for in ``MOVIEGENRE_TEST_DATA`` (by default the ``data`` folder of a ``shared``
folder beside the repository, which is how our CI gets them). A file that is not there is made
from the public files instead, as a user would make it:

- the public files are fetched by moviegenre's own downloader (:func:`fetch_public`): checked
  against their sha256, cached in the data home (``MOVIEGENRE_DATA_HOME``), and taken from
  ``MOVIEGENRE_DATA_MIRROR`` when it is set;
- the development split is what ``moviegenre split --test-size 0.2 --seed 0`` keeps to train on,
  6,316 movies: the same size as ours, drawn by the same rule, zipped under the same member name.

Offline and without the files, the tests that need them skip with one message saying so (in CI
they fail, see :mod:`tests.support.needs`). The outcome is settled once per test session.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

from tests.support.needs import need

from moviegenre.core.data import fetch_public
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_path
from moviegenre.core.settings import get_settings

REPO = Path(__file__).resolve().parents[2]
TEST_DATA_VARIABLE = "MOVIEGENRE_TEST_DATA"
DEFAULT_TEST_DATA = REPO.parent / "shared" / "data"
DEV_FILE, TESTING_FILE = "dataTraining-dev.zip", "dataTesting.zip"
#: How ``moviegenre split`` cuts the public training file into the development split.
DEV_SPLIT = {"test_size": 0.2, "seed": 0}
DEV_ROWS = 6316
#: A download that has not connected or sent a block by then is a network that is down: the
#: tests then skip within seconds instead of waiting on the downloader's own minute.
DOWNLOAD_TIMEOUT_S = 15.0
HOW_TO_GET = (
    f"set {TEST_DATA_VARIABLE} to a folder holding {DEV_FILE} and {TESTING_FILE}, or "
    "MOVIEGENRE_DATA_MIRROR to a folder or URL holding the public dataTraining.zip and dataTesting.zip, "
    "or run the tests online (the public files are then downloaded once)"
)


def data_folder() -> Path:
    """Where the tests look for the data files first."""
    return Path(os.environ.get(TEST_DATA_VARIABLE) or DEFAULT_TEST_DATA)


def real_data_file(name: str) -> Path:
    """The path of ``name`` (:data:`DEV_FILE` or :data:`TESTING_FILE`); when it cannot be had,
    the calling test skips (fails in CI) naming what is missing and how to get it."""
    path, problem = locate(name)
    need(path is not None, f"real data file {name}: {problem}. To get it, {HOW_TO_GET}")
    assert path is not None
    return path


@cache
def locate(name: str) -> tuple[Path | None, str]:
    """``(path, "")`` for a data file that is or could be made available, else ``(None, why)``."""
    found = data_folder() / name
    if found.is_file():
        return found, ""
    where = f"not in {found.parent}"
    try:
        home = get_settings().resolved_data_home()
        if name == TESTING_FILE:
            return fetch_public("test", home, timeout_s=DOWNLOAD_TIMEOUT_S), ""
        if name == DEV_FILE:
            return derive_dev_file(home), ""
    except MovieGenreError as exc:
        problem = str(exc).split("; ", 1)[0]  # the problem without the downloader's advice to CLI users
        return None, f"{where}, and not made from the public files: {problem}"
    raise ValueError(f"no such test data file: {name}")


def derive_dev_file(home: Path) -> Path:
    """The development split of the public training file, made once in ``home``/test-data."""
    target = home / "test-data" / f"seed{DEV_SPLIT['seed']}" / DEV_FILE
    if target.is_file():
        return target
    training = fetch_public("train", home, timeout_s=DOWNLOAD_TIMEOUT_S)
    split_dir = target.parent / "split"
    command = [sys.executable, "-m", "moviegenre", "split", "--data", str(training), "--out", str(split_dir),
               "--test-size", str(DEV_SPLIT["test_size"]), "--seed", str(DEV_SPLIT["seed"])]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise MovieGenreError(f"`moviegenre split` failed: {done.stderr.strip() or done.stdout.strip()}")
    kept = split_dir / "train.csv"
    with kept.open(encoding="utf-8", newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    if rows != DEV_ROWS:
        raise MovieGenreError(f"`moviegenre split` kept {rows} movies of {training}, not {DEV_ROWS}")
    with atomic_path(target) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        # a fixed date, so the same split gives the same bytes (and checksum) on every machine
        archive.writestr(zipfile.ZipInfo("dataTraining.csv", date_time=(2018, 6, 20, 0, 0, 0)), kept.read_bytes(),
                         compress_type=zipfile.ZIP_DEFLATED)  # fmt: skip
    return target
