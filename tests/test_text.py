"""The seed kind's text helpers: its stopwords ship with the package and are NLTK's own."""

from __future__ import annotations

import nltk
import pytest
from tests.support.needs import need

from moviegenre.kinds import text
from moviegenre.kinds.text import english_stopwords, seed_tokenize


def test_stopwords_ship_with_the_package_and_need_no_nltk_data(monkeypatch):
    def no_nltk_data(*args, **kwargs):
        raise LookupError("NLTK data looked up")

    monkeypatch.setattr(nltk.data, "find", no_nltk_data)
    monkeypatch.setattr(nltk.data, "load", no_nltk_data)
    english_stopwords.cache_clear()
    try:
        words = english_stopwords()
        assert len(words) == 179 and {"the", "and", "wouldn't", "ourselves"} <= words
        assert seed_tokenize("The brothers can't stop running") == ["brother", "cant", "stop", "run"]
    finally:
        english_stopwords.cache_clear()


def test_stopwords_are_nltks_english_list():
    """The shipped list is NLTK's, so the seed kind tokenises (and scores) as it did with NLTK's."""
    from nltk.corpus import stopwords

    try:
        nltks = stopwords.words("english")
    except LookupError:
        nltks = None
    need(nltks is not None, "NLTK's English stopwords not found: set NLTK_DATA to a folder holding "
                            "corpora/stopwords, or run `.venv/bin/python -m nltk.downloader stopwords`")  # fmt: skip
    assert english_stopwords() == frozenset(nltks)
    assert len(nltks) == len(set(nltks)) == 179


@pytest.mark.parametrize(
    ("plot", "tokens"),
    [
        ("a man and his dog", ["man", "dog"]),
        ("THEY WERE NOT HERE", []),
        ("shouldn't she've?", ["shouldnt", "sheve"]),  # apostrophes dropped before the stopword test
    ],
)
def test_seed_tokenize_drops_stopwords(plot, tokens):
    assert seed_tokenize(plot) == tokens


def test_the_list_is_package_data():
    from importlib import resources

    assert resources.files("moviegenre.kinds").joinpath(text.STOPWORDS_FILE).is_file()
