"""Fast inference for linear models: the fitted pipeline compiled to plain arrays.

The ``linear`` kind is a ColumnTransformer of TF-IDF vectorizers (plot words, plot character
n-grams, title words) and a one-hot decade, under one logistic regression per genre. Everything
after the vectorizers is linear, so the 24 regressions collapse into one coefficient matrix
``W`` (features x genres) and one intercept ``b``: one sparse-by-dense product scores every
genre. :class:`FastLinear` rebuilds the pipeline's features exactly (same tokens, counts,
TF-IDF weights and L2 norms, bit for bit) without scikit-learn's per-call validation, without a
DataFrame, and with the character n-grams of each distinct word looked up once and cached.

A compiled model is stored beside ``model.skops`` as ``fast.npz``: numpy arrays and JSON text
only, read with ``allow_pickle=False``, so reading it runs no code and needs neither
scikit-learn nor skops (:func:`save_bundle`, :func:`load_bundle`).

>>> fast = compile_pipeline(model.pipeline)                   # doctest: +SKIP
>>> fast.predict_proba(["a gunfight in a frontier town"])     # doctest: +SKIP
"""

from __future__ import annotations

import gc
import json
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import filterfalse, repeat
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from .errors import ModelError

BUNDLE_FILE = "fast.npz"
BUNDLE_FORMAT = 1
#: Distinct words whose character n-gram columns are cached per vectorizer (a few hundred
#: bytes each; the cache is emptied when full, so it stays under about 30 MB).
WORD_CACHE_SIZE = 100_000
#: Largest difference from the pipeline's probabilities that :func:`verify` accepts.
TOLERANCE = 1e-9

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_VALUES = np.zeros(0, dtype=np.float64)


class NotCompilable(ValueError):
    """The pipeline has a step or a setting that :class:`FastLinear` does not reproduce."""


# --- vectorizers ---------------------------------------------------------------------------


@dataclass(eq=False)
class TfidfText:
    """One fitted ``TfidfVectorizer`` (word or ``char_wb`` analyzer), as plain data."""

    analyzer: str
    terms: list[str]
    idf: np.ndarray | None
    ngram_range: tuple[int, int]
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    stop_words: list[str] | None = None
    sublinear_tf: bool = False
    norm: str | None = "l2"
    vocabulary: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vocabulary = dict(zip(self.terms, range(len(self.terms)), strict=True))
        self._stop = frozenset(self.stop_words) if self.stop_words else None
        self._findall = re.compile(self.token_pattern).findall
        self._word_cache: dict[str, np.ndarray] = {}

    @property
    def width(self) -> int:
        return len(self.terms)

    def config(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "lowercase": self.lowercase,
            "token_pattern": self.token_pattern,
            "stop_words": self.stop_words,
            "sublinear_tf": self.sublinear_tf,
            "norm": self.norm,
            "use_idf": self.idf is not None,
        }

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted column indices and TF-IDF values of ``text``: one row of ``transform``."""
        if not text:
            return _EMPTY_IDS, _EMPTY_VALUES
        if self.lowercase:
            text = text.lower()
        if self.analyzer == "word":
            ids, counts = self._word_counts(text)
        else:
            ids, counts = self._char_wb_counts(text)
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        # The same operations, in the same order, as TfidfTransformer.transform and
        # sklearn.preprocessing.normalize, so the values are equal bit for bit.
        values = counts
        if self.sublinear_tf:
            np.log(values, out=values)
            values += 1.0
        if self.idf is not None:
            values *= self.idf[ids]
        if self.norm == "l2":
            # normalize sums the squares one by one, left to right: cumsum does too.
            total = float(np.cumsum(values * values)[-1])
            if total != 0.0:
                values /= math.sqrt(total)
        return ids, values

    def _word_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        tokens = self._findall(text)
        if self._stop is not None:
            tokens = list(filterfalse(self._stop.__contains__, tokens))
        grams = _word_ngrams(tokens, self.ngram_range)
        ids = np.fromiter(map(self.vocabulary.get, grams, repeat(-1)), dtype=np.int64, count=len(grams))
        ids = ids[ids >= 0]
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        unique, counts = np.unique(ids, return_counts=True)
        return unique, counts.astype(np.float64)

    def _char_wb_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        # A document's char_wb n-grams are those of its whitespace-separated words taken one
        # by one, so each distinct word is analysed once and its n-grams' columns cached.
        # (scikit-learn first turns whitespace runs into one space; split() alone splits the
        # same way, on the same whitespace characters.)
        words = text.split()
        if not words:
            return _EMPTY_IDS, _EMPTY_VALUES
        try:
            entries = list(map(self._word_cache.__getitem__, words))
        except KeyError:
            entries = self._analyse_words(words)
        ids = np.concatenate(entries)
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        unique, counts = np.unique(ids, return_counts=True)
        return unique, counts.astype(np.float64)

    def _analyse_words(self, words: list[str]) -> list[np.ndarray]:
        cache = self._word_cache
        known = {word: cache.get(word) for word in words}
        fresh = {word: self._char_wb_word(word) for word, entry in known.items() if entry is None}
        if len(cache) + len(fresh) > WORD_CACHE_SIZE:
            cache.clear()
        cache.update(fresh)
        known.update(fresh)
        return [known[word] for word in words]

    def _char_wb_word(self, word: str) -> np.ndarray:
        """scikit-learn's ``_char_wb_ngrams`` for one word, looked up in the vocabulary: the
        columns of its n-grams, sorted, one entry per occurrence."""
        get = self.vocabulary.get
        min_n, max_n = self.ngram_range
        w = " " + word + " "
        w_len = len(w)
        ids = []
        for n in range(min_n, max_n + 1):
            offset = 0
            ids.append(get(w[offset : offset + n], -1))
            while offset + n < w_len:
                offset += 1
                ids.append(get(w[offset : offset + n], -1))
            if offset == 0:  # a word shorter than n is counted once
                break
        found = np.array(ids, dtype=np.int64)
        return np.sort(found[found >= 0])


def _word_ngrams(tokens: list[str], ngram_range: tuple[int, int]) -> list[str]:
    """The n-grams scikit-learn's ``_word_ngrams`` makes of ``tokens``, in the same order."""
    min_n, max_n = ngram_range
    grams = list(tokens) if min_n == 1 else []
    for n in range(max(min_n, 2), max_n + 1):
        grams += map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False))  # n at a time
    return grams


@dataclass(eq=False)
class DecadeOneHot:
    """``decade_of`` then a ``OneHotEncoder(handle_unknown="ignore")``, as plain data."""

    categories: list[str]

    def __post_init__(self) -> None:
        self._index = {label: i for i, label in enumerate(self.categories)}

    @property
    def width(self) -> int:
        return len(self.categories)

    def config(self) -> dict[str, Any]:
        return {"analyzer": "decade", "categories": self.categories}

    def features(self, year: float) -> tuple[np.ndarray, np.ndarray]:
        # The label moviegenre.text.decade_of gives; an unseen decade has no feature.
        label = "unknown" if math.isnan(year) else f"{int(year) // 10 * 10}s"
        i = self._index.get(label)
        if i is None:
            return _EMPTY_IDS, _EMPTY_VALUES
        return np.array([i], dtype=np.int64), np.ones(1)


# --- the compiled model ----------------------------------------------------------------------


@dataclass(eq=False)
class Block:
    """One transformer of the ColumnTransformer: its input column, vectorizer and weight."""

    name: str
    column: str  # "plot", "title" or "year"
    vectorizer: TfidfText | DecadeOneHot
    weight: float
    offset: int = 0


class FastLinear:
    """The linear kind's pipeline as arrays: features per block, then ``expit(X @ W + b)``.

    A :class:`~moviegenre.predict.Scorer`: one plot scores in a fraction of a millisecond
    (25 ms at worst, for 20,000 characters of unseen words).

    Parameters
    ----------
    blocks : list of Block
        The ColumnTransformer's transformers, in its column order.
    coef : ndarray of shape (n_features, n_genres)
        The one-vs-rest coefficients side by side, in their stored dtype.
    intercept : ndarray of shape (n_genres,)
    constant : ndarray of shape (n_genres,)
        NaN for a fitted genre; for a genre that had a single class in training, the
        probability scikit-learn's constant predictor gives (0 or 1).
    """

    quick = True

    def __init__(self, blocks: list[Block], coef: np.ndarray, intercept: np.ndarray, constant: np.ndarray):
        offset = 0
        for block in blocks:
            block.offset = offset
            offset += block.vectorizer.width
        if coef.ndim != 2 or coef.shape[0] != offset:
            raise ValueError(f"coefficients of shape {coef.shape} do not fit {offset} features")
        self.blocks = blocks
        # Scores are computed in float64 from the stored (float32) coefficients, as
        # scikit-learn does; a single plot's rows are converted as they are gathered.
        self.coef = np.ascontiguousarray(coef)
        self._coef64: np.ndarray | None = None
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.constant = np.asarray(constant, dtype=np.float64)
        self._constant_mask = ~np.isnan(self.constant)
        self._blocks_by_column = [(block, block.column) for block in blocks]

    @property
    def n_features(self) -> int:
        return self.coef.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.coef.shape[1]

    def features_one(self, plot: str, title: str = "", year: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
        """Column indices (sorted) and values of one item's feature row."""
        inputs = {"plot": plot, "title": title, "year": year}
        id_parts, value_parts = [], []
        for block, column in self._blocks_by_column:
            ids, values = block.vectorizer.features(inputs[column])
            if ids.size:
                id_parts.append(ids + block.offset if block.offset else ids)
                value_parts.append(values * block.weight if block.weight != 1.0 else values)
        if not id_parts:
            return _EMPTY_IDS, _EMPTY_VALUES
        return np.concatenate(id_parts), np.concatenate(value_parts)

    def transform(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None):
        """The pipeline's feature matrix (a ``scipy.sparse`` CSR matrix), equal to the
        ColumnTransformer's output."""
        from scipy import sparse

        indptr, ids, values = self._rows(plots, titles, years)
        return sparse.csr_matrix((values, ids, indptr), shape=(len(indptr) - 1, self.n_features))

    def _rows(self, plots, titles, years):
        n = len(plots)
        titles = [""] * n if titles is None else titles
        years = np.full(n, np.nan) if years is None else np.asarray(years, dtype=np.float64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        id_parts, value_parts = [], []
        for i, (plot, title, year) in enumerate(zip(plots, titles, years, strict=True)):
            ids, values = self.features_one(plot, title, float(year))
            id_parts.append(ids)
            value_parts.append(values)
            indptr[i + 1] = indptr[i] + ids.size
        ids = np.concatenate(id_parts) if id_parts else _EMPTY_IDS
        values = np.concatenate(value_parts) if value_parts else _EMPTY_VALUES
        return indptr, ids, values

    def predict_proba_one(self, plot: str, title: str = "", year: float = math.nan) -> np.ndarray:
        """(n_genres,) probabilities of one item: the hot path of a single request."""
        ids, values = self.features_one(plot, title, year)
        scores = values @ self.coef[ids] + self.intercept
        return self._probabilities(scores)

    def predict_proba(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None) -> np.ndarray:
        """(n, n_genres) probabilities, equal to the pipeline's ``predict_proba``."""
        if len(plots) == 1:
            title = "" if titles is None else titles[0]
            year = math.nan if years is None else float(np.asarray(years, dtype=np.float64)[0])
            return self.predict_proba_one(plots[0], title, year)[None, :]
        if len(plots) == 0:
            return np.zeros((0, self.n_outputs))
        if self._coef64 is None:
            self._coef64 = self.coef.astype(np.float64)
        return self._probabilities(self.transform(plots, titles, years) @ self._coef64 + self.intercept)

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        proba = expit(scores)
        if self._constant_mask.any():
            proba[..., self._constant_mask] = self.constant[self._constant_mask]
        return proba


# --- compiling a fitted pipeline -----------------------------------------------------------


def compile_pipeline(pipeline: Any) -> FastLinear:
    """Compile a fitted ``linear``-kind pipeline into a :class:`FastLinear`.

    Raises :class:`NotCompilable` naming the first step or setting it cannot reproduce (other
    kinds, custom tokenizers, ...); callers then keep using the pipeline.
    """
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2:
        raise NotCompilable(f"{type(pipeline).__name__} is not a two-step features/classifier Pipeline")
    features, classifier = steps[0][1], steps[1][1]
    blocks = _compile_features(features)
    coef, intercept, constant = _compile_classifier(classifier)
    width = sum(block.vectorizer.width for block in blocks)
    if coef.shape[0] != width:
        raise NotCompilable(f"the classifier has {coef.shape[0]} coefficients for {width} features")
    return FastLinear(blocks, coef, intercept, constant)


def _compile_features(features: Any) -> list[Block]:
    from sklearn.compose import ColumnTransformer

    if type(features) is not ColumnTransformer:
        raise NotCompilable(f"the features step is a {type(features).__name__}, not a ColumnTransformer")
    if not hasattr(features, "transformers_"):
        raise NotCompilable("the ColumnTransformer is not fitted")
    weights = features.transformer_weights or {}
    blocks = []
    for name, transformer, columns in features.transformers_:
        if name == "remainder":
            if transformer != "drop":
                raise NotCompilable("the ColumnTransformer passes columns through")
            continue
        weight = float(weights.get(name, 1.0))
        if columns in ("plot", "title"):
            blocks.append(Block(name, columns, _compile_tfidf(name, transformer), weight))
        elif list(columns) == ["year"]:
            blocks.append(Block(name, "year", _compile_decade(name, transformer), weight))
        else:
            raise NotCompilable(f"transformer {name!r} reads columns {columns!r}")
    return blocks


def _compile_tfidf(name: str, vectorizer: Any) -> TfidfText:
    from sklearn.feature_extraction.text import TfidfVectorizer

    if type(vectorizer) is not TfidfVectorizer:
        raise NotCompilable(f"transformer {name!r} is a {type(vectorizer).__name__}, not a TfidfVectorizer")
    p = vectorizer.get_params()
    unsupported = {
        "analyzer": p["analyzer"] not in ("word", "char_wb"),
        "input": p["input"] != "content",
        "preprocessor": p["preprocessor"] is not None,
        "tokenizer": p["tokenizer"] is not None,
        "strip_accents": p["strip_accents"] is not None,
        "binary": p["binary"],
        "norm": p["norm"] not in ("l2", None),
        "dtype": np.dtype(p["dtype"]) != np.float64,
    }
    bad = [key for key, is_bad in unsupported.items() if is_bad]
    if bad:
        raise NotCompilable(f"transformer {name!r} uses unsupported setting(s) {bad}")
    vocabulary = vectorizer.vocabulary_
    terms = [""] * len(vocabulary)
    for term, index in vocabulary.items():
        terms[int(index)] = term
    if len(set(terms)) != len(terms) or sorted(int(i) for i in vocabulary.values()) != list(range(len(terms))):
        raise NotCompilable(f"transformer {name!r} has a vocabulary whose indices are not 0..n-1")
    stop_words = vectorizer.get_stop_words() if p["analyzer"] == "word" else None
    idf = np.asarray(vectorizer.idf_, dtype=np.float64) if p["use_idf"] else None
    return TfidfText(
        analyzer=p["analyzer"],
        terms=terms,
        idf=idf,
        ngram_range=tuple(p["ngram_range"]),
        lowercase=bool(p["lowercase"]),
        token_pattern=p["token_pattern"],
        stop_words=sorted(stop_words) if stop_words else None,
        sublinear_tf=bool(p["sublinear_tf"]),
        norm=p["norm"],
    )


def _compile_decade(name: str, transformer: Any) -> DecadeOneHot:
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from .text import decade_of

    steps = getattr(transformer, "steps", None)
    if not steps or len(steps) != 2:
        raise NotCompilable(f"transformer {name!r} is not decade_of + OneHotEncoder")
    function, encoder = steps[0][1], steps[1][1]
    if type(function) is not FunctionTransformer or function.func is not decade_of:
        raise NotCompilable(f"transformer {name!r} does not start with decade_of")
    if (
        type(encoder) is not OneHotEncoder
        or encoder.handle_unknown != "ignore"
        or encoder.drop is not None
        or getattr(encoder, "infrequent_categories_", None) not in (None, [None])
        or len(encoder.categories_) != 1
    ):
        raise NotCompilable(f"transformer {name!r} is not a plain one-hot encoder with unknowns ignored")
    return DecadeOneHot([str(c) for c in encoder.categories_[0]])


def _compile_classifier(classifier: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier, _ConstantPredictor

    if type(classifier) is not OneVsRestClassifier or not getattr(classifier, "multilabel_", False):
        raise NotCompilable(f"the classifier is a {type(classifier).__name__}, not a multilabel OneVsRestClassifier")
    columns, intercepts, constants = [], [], []
    width = None
    for estimator in classifier.estimators_:
        if type(estimator) is _ConstantPredictor:
            columns.append(None)
            intercepts.append(0.0)
            constants.append(float(np.asarray(estimator.y_, dtype=np.float64).reshape(-1)[0]))
        elif type(estimator) is LogisticRegression and list(estimator.classes_) == [0, 1]:
            coef = np.asarray(estimator.coef_)
            if coef.shape[0] != 1:
                raise NotCompilable("a genre's logistic regression is not binary")
            columns.append(coef[0])
            width = coef.shape[1]
            intercepts.append(float(np.asarray(estimator.intercept_).reshape(-1)[0]))
            constants.append(math.nan)
        else:
            raise NotCompilable(f"a genre's estimator is a {type(estimator).__name__}")
    if width is None:
        raise NotCompilable("every genre has a constant predictor")
    dtype = next(c.dtype for c in columns if c is not None)
    matrix = np.zeros((width, len(columns)), dtype=dtype)
    for j, column in enumerate(columns):
        if column is not None:
            matrix[:, j] = column
    return matrix, np.array(intercepts), np.array(constants)


# --- checking it against the pipeline ----------------------------------------------------------

#: Items that exercise every block: words, stop words, rare characters, whitespace runs,
#: titles, known/unknown/missing decades, and a plot with no known feature at all.
PROBE_ITEMS: tuple[tuple[str, str, float], ...] = (
    ("who meets by fate ,  shall be sealed by fate .  theresa osborne is running along the beach",
     "Message in a Bottle", 1999.0),
    ("the true story of billy hayes ,  an american college student caught smuggling drugs", "", math.nan),
    ("A gunfight in a frontier town.\n\tThe SHERIFF   rides out; cattle-rustlers flee!", "Dodge", 1880.0),
    ("Zoë and the naïve café owner — über-cool, 1920s jazz; x y z", "Café Society", 2016.0),
    ("qqqq", "zzzz", 3050.0),
)  # fmt: skip


def verify(fast: FastLinear, pipeline: Any, items: Sequence[tuple[str, str, float]] = PROBE_ITEMS) -> float:
    """Largest absolute difference between ``fast`` and ``pipeline`` probabilities on ``items``;
    raises :class:`NotCompilable` when it exceeds :data:`TOLERANCE`."""
    import pandas as pd

    frame = pd.DataFrame(list(items), columns=["plot", "title", "year"]).astype({"year": float})
    expected = np.asarray(pipeline.predict_proba(frame), dtype=float)
    one_by_one = np.vstack([fast.predict_proba_one(*item) for item in items])
    batch = fast.predict_proba(*zip(*items, strict=True))
    worst = float(max(np.abs(one_by_one - expected).max(), np.abs(batch - expected).max()))
    if not worst <= TOLERANCE:
        raise NotCompilable(f"the compiled model differs from the pipeline by {worst:.3g}")
    return worst


# --- the bundle file -------------------------------------------------------------------------


def save_bundle(fast: FastLinear, path: str | Path) -> None:
    """Write ``fast`` as a ``.npz`` of plain arrays (vocabularies and settings as JSON text).

    The coefficients are stored byte-plane by byte-plane: the sign and exponent bytes of
    neighbouring floats are alike, so they compress well where interleaved floats do not.
    """
    blocks = []
    arrays: dict[str, np.ndarray] = {}
    for i, block in enumerate(fast.blocks):
        vectorizer = block.vectorizer
        blocks.append({"name": block.name, "column": block.column, "weight": block.weight, **vectorizer.config()})
        if isinstance(vectorizer, TfidfText):
            arrays[f"terms_{i}"] = _json_bytes(vectorizer.terms)
            if vectorizer.idf is not None:
                arrays[f"idf_{i}"] = vectorizer.idf
    coef = np.ascontiguousarray(fast.coef)
    config = {
        "format": BUNDLE_FORMAT,
        "blocks": blocks,
        "coef_dtype": coef.dtype.str,
        "coef_shape": list(coef.shape),
    }
    arrays["config"] = _json_bytes(config)
    arrays["coef_planes"] = coef.view(np.uint8).reshape(-1, coef.dtype.itemsize).T.copy()
    arrays["intercept"] = fast.intercept
    arrays["constant"] = fast.constant
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def load_bundle(path: str | Path) -> FastLinear:
    """Read a bundle written by :func:`save_bundle` (no pickles: ``allow_pickle=False``).

    Raises :class:`~moviegenre.errors.ModelError` if it is unreadable or inconsistent.
    """
    try:
        with np.load(path, allow_pickle=False) as bundle:
            config = json.loads(bundle["config"].tobytes())
            if config.get("format") != BUNDLE_FORMAT:
                raise ValueError(f"format {config.get('format')!r}, expected {BUNDLE_FORMAT}")
            dtype = np.dtype(config["coef_dtype"])
            if dtype.kind != "f":
                raise ValueError(f"coefficients of dtype {dtype}")
            rows, genres = (int(n) for n in config["coef_shape"])
            planes = bundle["coef_planes"]
            if planes.shape != (dtype.itemsize, rows * genres):
                raise ValueError(f"coefficient planes of shape {planes.shape}")
            coef = np.ascontiguousarray(planes.T).view(dtype).reshape(rows, genres)
            blocks = [_block_from(i, spec, bundle) for i, spec in enumerate(config["blocks"])]
            intercept, constant = bundle["intercept"], bundle["constant"]
            if intercept.shape != (genres,) or constant.shape != (genres,):
                raise ValueError("intercepts do not match the coefficients")
            return FastLinear(blocks, coef, intercept, constant)
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not a readable inference bundle ({type(exc).__name__}: {exc})") from None


def _block_from(i: int, spec: dict[str, Any], bundle: Any) -> Block:
    if spec["column"] not in ("plot", "title", "year"):
        raise ValueError(f"block {i} reads column {spec['column']!r}")
    if spec["analyzer"] == "decade":
        vectorizer: TfidfText | DecadeOneHot = DecadeOneHot([str(c) for c in spec["categories"]])
    elif spec["analyzer"] in ("word", "char_wb"):
        terms = json.loads(bundle[f"terms_{i}"].tobytes())
        idf = bundle[f"idf_{i}"].astype(np.float64, copy=False) if spec["use_idf"] else None
        if idf is not None and idf.shape != (len(terms),):
            raise ValueError(f"block {i} has {len(terms)} terms but {idf.shape} idf weights")
        if spec["norm"] not in ("l2", None):
            raise ValueError(f"block {i} has norm {spec['norm']!r}")
        vectorizer = TfidfText(
            analyzer=spec["analyzer"],
            terms=terms,
            idf=idf,
            ngram_range=tuple(int(n) for n in spec["ngram_range"]),
            lowercase=bool(spec["lowercase"]),
            token_pattern=str(spec["token_pattern"]),
            stop_words=spec["stop_words"],
            sublinear_tf=bool(spec["sublinear_tf"]),
            norm=spec["norm"],
        )
    else:
        raise ValueError(f"block {i} has analyzer {spec['analyzer']!r}")
    return Block(str(spec["name"]), spec["column"], vectorizer, float(spec["weight"]))


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


# --- both cores for a big batch --------------------------------------------------------------

_WORKER_MODEL: FastLinear | None = None


def _set_worker_model(model: FastLinear) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _score_chunk(chunk: tuple[list[str], list[str], np.ndarray]) -> np.ndarray:
    assert _WORKER_MODEL is not None
    return _WORKER_MODEL.predict_proba(*chunk)


def predict_proba_processes(
    fast: FastLinear, plots: Sequence[str], titles: Sequence[str] | None = None, years=None, *,
    workers: int = 2, chunk_rows: int = 500,
) -> np.ndarray:
    """:meth:`FastLinear.predict_proba` on ``workers`` forked processes.

    Tokenising is pure Python and holds the GIL, so threads cannot share the work; forked
    processes inherit the compiled model without copying or pickling it. For batch jobs
    (not inside a server, where forking a threaded process is unsafe). Linux/macOS only.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = len(plots)
    titles = [""] * n if titles is None else list(titles)
    years = np.full(n, np.nan) if years is None else np.asarray(years, dtype=np.float64)
    chunks = [
        (list(plots[start : start + chunk_rows]), titles[start : start + chunk_rows], years[start : start + chunk_rows])
        for start in range(0, n, chunk_rows)
    ]
    if workers <= 1 or len(chunks) <= 1:
        return fast.predict_proba(plots, titles, years)
    context = multiprocessing.get_context("fork")
    gc.freeze()  # the workers' garbage collector then leaves the parent's objects, and pages, alone
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_worker_model, initargs=(fast,)) as pool:
            return np.vstack(list(pool.map(_score_chunk, chunks)))
    finally:
        gc.unfreeze()
