"""Training never runs two liblinear fits at once.

liblinear (inside scikit-learn) keeps its random number generator in a C++ global and trains
without the GIL, so one-vs-rest fits on two threads race on that generator: training on the
dev file crashed with a segfault, or ran five times longer with fits that never converged.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import sklearn.svm._base as svm_base

from moviegenre.training.train import train


class ConcurrencyProbe:
    """Stands in for scikit-learn's liblinear module and records overlapping ``train_wrap`` calls."""

    def __init__(self, liblinear):
        self._liblinear = liblinear
        self._lock = threading.Lock()
        self.running = self.most = self.calls = 0

    def __getattr__(self, name):
        return getattr(self._liblinear, name)

    def train_wrap(self, *args, **kwargs):
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.005)  # gives a concurrent fit time to overlap, if there is one
            return self._liblinear.train_wrap(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.filterwarnings("ignore:Label not .* is present in all training")
def test_one_vs_rest_fits_run_one_at_a_time(dev_movies, monkeypatch):
    probe = ConcurrencyProbe(svm_base.liblinear)
    monkeypatch.setattr(svm_base, "liblinear", probe)
    train("linear", dev_movies.subset(np.arange(300)), cv_folds=0)
    assert probe.calls >= 20
    assert probe.most == 1
