"""Shared fixtures: paths to the real data and small models trained once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from moviegenre.artifact import load_model, save_model
from moviegenre.data import load_movies
from moviegenre.examples import EXAMPLE_PLOTS
from moviegenre.train import train

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOVIEGENRE_TEST_DATA", REPO.parent / "shared" / "data"))
NLTK_DATA = REPO.parent / "shared" / "nltk_data"
if "NLTK_DATA" not in os.environ and NLTK_DATA.is_dir():
    os.environ["NLTK_DATA"] = str(NLTK_DATA)

#: The two example plots of the original system's README, re-exported for tests.
E1_PLOT, E2_PLOT = EXAMPLE_PLOTS["E1"], EXAMPLE_PLOTS["E2"]


@pytest.fixture(scope="session")
def dev_zip() -> Path:
    path = SHARED_DATA / "dataTraining-dev.zip"
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set MOVIEGENRE_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def testing_zip() -> Path:
    path = SHARED_DATA / "dataTesting.zip"
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set MOVIEGENRE_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def dev_movies(dev_zip):
    return load_movies(dev_zip, labelled=True)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, dev_movies) -> Path:
    """A linear model trained on 2,000 real movies with 2-fold CV (so thresholds are tuned)."""
    positions = np.sort(np.random.default_rng(0).choice(len(dev_movies), 2000, replace=False))
    model = train("linear", dev_movies.subset(positions), cv_folds=2)
    directory = tmp_path_factory.mktemp("models") / "small-linear"
    save_model(model.pipeline, model.metadata, directory)
    return directory


@pytest.fixture(scope="session")
def small_model(small_model_dir):
    return load_model(small_model_dir)
