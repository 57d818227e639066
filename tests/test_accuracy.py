"""The accuracy the README promises for the `linear` kind, held by the default suite.

README's Models table: 0.908 held-out macro ROC AUC, on the development file split by
``moviegenre split`` (20%, seed 0). The floor sits a little below it: a change that costs
accuracy fails here, while a development split that the tests derive from the public file
(tests/support/data.py), 6,316 movies that may be others than ours, passes too (the rare genres
make macro AUC move by several thousandths from one random split to another). The other kinds' bars take tens
of minutes on two cores and are opt-in (``-m long``).
"""

from __future__ import annotations

import pytest

from moviegenre.core.data import load_movies, split_file
from moviegenre.training.evaluate import roc_metrics
from moviegenre.training.train import train

LINEAR_FLOOR = 0.895  # README: 0.908; this run of the test: 0.9082


@pytest.mark.slow
def test_linear_reaches_the_readme_figure_on_held_out_movies(dev_zip, tmp_path):
    train_path, heldout_path = split_file(dev_zip, tmp_path, test_size=0.2, seed=0)
    seen, unseen = load_movies(train_path, labelled=True), load_movies(heldout_path, labelled=True)
    assert (len(seen), len(unseen)) == (5053, 1263)
    model = train("linear", seen, cv_folds=0)
    macro_auc = roc_metrics(unseen.labels, model.predict_proba(unseen.frame))["macro_auc"]
    assert macro_auc >= LINEAR_FLOOR, f"held-out macro ROC AUC {macro_auc:.4f} < {LINEAR_FLOOR}"
