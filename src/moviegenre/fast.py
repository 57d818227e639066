"""Fast inference for linear models: the fitted pipeline compiled to plain arrays.

The ``linear`` kind is a ColumnTransformer of TF-IDF vectorizers (plot words, plot character
n-grams, title words) and a one-hot decade, under one logistic regression per genre. Everything
after the vectorizers is linear, so the 24 regressions collapse into one coefficient matrix
``W`` (features x genres) and one intercept ``b``: one sparse-by-dense product scores every
genre. :class:`FastLinear` rebuilds the pipeline's features exactly (same tokens, counts,
TF-IDF weights and L2 norms, bit for bit) without scikit-learn's per-call validation, without a
DataFrame, and with the character n-grams of each distinct word looked up once and cached.

The ``static`` kind blends that linear model with a logistic regression on static sentence
embeddings (a table of token vectors distilled from an encoder, averaged over a text's tokens):
:class:`FastStatic` is :class:`FastLinear`, a :class:`StaticTable` (the table and its
``tokenizers`` tokenizer) and the per-genre blend, so it scores as fast, without torch.

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
#: Every format :func:`load_bundle` reads: 1, a linear model; 2, a static model (the linear
#: model's arrays, plus the static table, its tokenizer and the blend).
BUNDLE_FORMATS = (BUNDLE_FORMAT, 2)
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
    bundle_format = 1

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
        return self._probabilities(self._logits_one(plot, title, year))

    def predict_proba(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None) -> np.ndarray:
        """(n, n_genres) probabilities, equal to the pipeline's ``predict_proba``."""
        return self._probabilities(self._logits(plots, titles, years))

    def decision_one(self, plot: str, title: str = "", year: float = math.nan) -> np.ndarray:
        """(n_genres,) scores of one item, equal to the pipeline's ``decision_function``."""
        return self._decisions(self._logits_one(plot, title, year))

    def decision_function(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None) -> np.ndarray:
        """(n, n_genres) scores, equal to the pipeline's ``decision_function``: the logits, and
        for a genre with a single class in training, that class (0 or 1)."""
        return self._decisions(self._logits(plots, titles, years))

    def _logits_one(self, plot: str, title: str, year: float) -> np.ndarray:
        ids, values = self.features_one(plot, title, year)
        return values @ self.coef[ids] + self.intercept

    def _logits(self, plots: Sequence[str], titles: Sequence[str] | None, years) -> np.ndarray:
        if len(plots) == 1:
            title = "" if titles is None else titles[0]
            year = math.nan if years is None else float(np.asarray(years, dtype=np.float64)[0])
            return self._logits_one(plots[0], title, year)[None, :]
        if len(plots) == 0:
            return np.zeros((0, self.n_outputs))
        if self._coef64 is None:
            self._coef64 = self.coef.astype(np.float64)
        return self.transform(plots, titles, years) @ self._coef64 + self.intercept

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        proba = expit(scores)
        if self._constant_mask.any():
            proba[..., self._constant_mask] = self.constant[self._constant_mask]
        return proba

    def _decisions(self, scores: np.ndarray) -> np.ndarray:
        # scikit-learn's constant predictor "decides" its class itself
        if self._constant_mask.any():
            scores[..., self._constant_mask] = self.constant[self._constant_mask]
        return scores


# --- static sentence embeddings ----------------------------------------------------------------


def embedding_text(parts: Sequence[Any]) -> str:
    """The text a static embedder encodes for one item: its fields (title, plot, ...), stripped,
    the empty ones left out, joined by ". "."""
    stripped = (str(part).strip() for part in parts if isinstance(part, str))
    return ". ".join(part for part in stripped if part)


class StaticTable:
    """Static token embeddings and their tokenizer: a sentence is the mean of its tokens' rows.

    Encodes exactly as model2vec's ``StaticModel.encode`` does, with numpy and ``tokenizers``
    alone: the text cut to ``max_length`` x the median token length in characters, tokenised
    without special tokens or padding and truncated to ``max_length`` tokens, unknown tokens
    dropped, the rows of the others averaged and the mean scaled to unit length. Computed in
    float64 (model2vec computes in the table's dtype), so the same answer to within 1e-6.

    Parameters
    ----------
    embeddings : ndarray of shape (n_tokens, dim)
        One row per token id of the tokenizer.
    tokenizer_json : str
        The tokenizer, as ``tokenizers.Tokenizer.to_str()`` writes it.
    max_length : int or None, default=512
        Tokens kept per text (model2vec's default); ``None`` keeps them all.
    normalize : bool, default=True
        Scale each sentence embedding to unit length.
    """

    def __init__(self, embeddings: np.ndarray, tokenizer_json: str, *, max_length: int | None = 512,
                 normalize: bool = True):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(tokenizer_json)
        vocabulary = tokenizer.get_vocab()
        if embeddings.ndim != 2 or embeddings.shape[0] != len(vocabulary):
            raise ValueError(f"a table of shape {embeddings.shape} for a tokenizer of {len(vocabulary)} tokens")
        if sorted(vocabulary.values()) != list(range(len(vocabulary))):
            raise ValueError("the tokenizer's token ids are not 0..n-1")
        tokenizer.no_padding()
        if max_length is None:
            tokenizer.no_truncation()
            self._max_chars = None
        else:
            tokenizer.enable_truncation(max_length)
            self._max_chars = max_length * int(np.median([len(token) for token in vocabulary]))
        self.embeddings = embeddings
        self.tokenizer_json = tokenizer_json
        self.max_length = max_length
        self.normalize = normalize
        self._tokenizer = tokenizer
        self._unk_id = _unknown_token_id(tokenizer, tokenizer_json)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def config(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "normalize": self.normalize}

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, as model2vec's ``StaticModel.tokenize`` gives them."""
        if self._max_chars is not None:
            texts = [text[: self._max_chars] for text in texts]
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        if self._unk_id is None:
            return [encoding.ids for encoding in encodings]
        return [[i for i in encoding.ids if i != self._unk_id] for encoding in encodings]

    def embed_ids(self, ids: list[int]) -> np.ndarray:
        """(dim,) float64 embedding of one text's token ids."""
        if not ids:
            return np.zeros(self.dim)
        vector = self.embeddings[ids].mean(axis=0, dtype=np.float64)
        if self.normalize:
            vector /= math.sqrt(float(vector @ vector)) + 1e-32
        return vector

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float64 sentence embeddings."""
        vectors = np.zeros((len(texts), self.dim))
        for i, ids in enumerate(self.token_ids(texts)):
            vectors[i] = self.embed_ids(ids)
        return vectors


def _unknown_token_id(tokenizer: Any, tokenizer_json: str) -> int | None:
    """model2vec's unknown token: the model's ``unk_token`` (WordPiece, BPE, WordLevel), else the
    Unigram model's ``unk_id``."""
    model = tokenizer.model
    if hasattr(model, "unk_token"):
        return None if model.unk_token is None else tokenizer.token_to_id(model.unk_token)
    return json.loads(tokenizer_json)["model"].get("unk_id")


class FastStatic:
    """The ``static`` kind compiled: the linear model, a linear model on static sentence
    embeddings, and each genre's blend of the two (a ``HybridClassifier``), as arrays.

    Each genre's logit is ``blend_coef[g] @ [text score, embedding score] + blend_intercept[g]``,
    where the text score is :class:`FastLinear`'s and the embedding score a logistic regression
    on the :class:`StaticTable` embedding of the ``columns`` joined by :func:`embedding_text`.
    A :class:`~moviegenre.predict.Scorer`; one plot scores in well under a millisecond.
    """

    quick = True
    bundle_format = 2

    def __init__(self, text: FastLinear, table: StaticTable, columns: Sequence[str], coef: np.ndarray,
                 intercept: np.ndarray, constant: np.ndarray, blend_coef: np.ndarray, blend_intercept: np.ndarray):
        genres = text.n_outputs
        if coef.shape != (table.dim, genres) or intercept.shape != (genres,) or constant.shape != (genres,):
            raise ValueError(f"embedding coefficients of shape {coef.shape} do not fit {table.dim} x {genres}")
        if blend_coef.shape != (genres, 2) or blend_intercept.shape != (genres,):
            raise ValueError(f"blend weights of shape {blend_coef.shape} do not fit {genres} genres")
        unknown = set(columns) - {"plot", "title"}
        if unknown:
            raise ValueError(f"the embeddings read column(s) {sorted(unknown)}")
        self.text = text
        self.table = table
        self.columns = tuple(columns)
        self.coef = np.ascontiguousarray(coef)
        self._coef64 = self.coef.astype(np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.constant = np.asarray(constant, dtype=np.float64)
        self._constant_mask = ~np.isnan(self.constant)
        self.blend_coef = np.asarray(blend_coef, dtype=np.float64)
        self.blend_intercept = np.asarray(blend_intercept, dtype=np.float64)

    @property
    def n_outputs(self) -> int:
        return self.text.n_outputs

    def predict_proba_one(self, plot: str, title: str = "", year: float = math.nan) -> np.ndarray:
        """(n_genres,) probabilities of one item."""
        text = self.text.decision_one(plot, title, year)
        ids = self.table.token_ids([self._text(plot, title)])[0]
        return expit(self._blend(text, self._embedding_scores(self.table.embed_ids(ids))))

    def predict_proba(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None) -> np.ndarray:
        """(n, n_genres) probabilities, equal to the ``HybridClassifier``'s ``predict_proba``."""
        if len(plots) == 0:
            return np.zeros((0, self.n_outputs))
        titles = [""] * len(plots) if titles is None else titles
        text = self.text.decision_function(plots, titles, years)
        embeddings = self.table.encode([self._text(p, t) for p, t in zip(plots, titles, strict=True)])
        return expit(self._blend(text, self._embedding_scores(embeddings)))

    def _text(self, plot: str, title: str) -> str:
        fields = {"plot": plot, "title": title}
        return embedding_text([fields[column] for column in self.columns])

    def _embedding_scores(self, embeddings: np.ndarray) -> np.ndarray:
        scores = embeddings @ self._coef64 + self.intercept
        if self._constant_mask.any():
            scores[..., self._constant_mask] = self.constant[self._constant_mask]
        return scores

    def _blend(self, text: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        # the same operations as HybridClassifier.decision_function's einsum, term by term
        return text * self.blend_coef[:, 0] + embedding * self.blend_coef[:, 1] + self.blend_intercept


# --- compiling a fitted pipeline -----------------------------------------------------------


def compile_pipeline(pipeline: Any) -> FastLinear | FastStatic:
    """Compile a fitted ``linear``-kind pipeline into a :class:`FastLinear`, or a fitted
    ``static``-kind model into a :class:`FastStatic`.

    Raises :class:`NotCompilable` naming the first step or setting it cannot reproduce (other
    kinds, custom tokenizers, ...); callers then keep using the pipeline.
    """
    if hasattr(pipeline, "embedder_"):
        return _compile_static(pipeline)
    return _compile_linear(pipeline)


def _compile_static(hybrid: Any) -> FastStatic:
    from .static import StaticEmbedder

    embedder = hybrid.embedder_
    if type(embedder) is not StaticEmbedder:
        raise NotCompilable(f"the embedder is a {type(embedder).__name__}, not a StaticEmbedder")
    for name in ("text_model_", "embedding_model_", "blend_coef_", "blend_intercept_"):
        if not hasattr(hybrid, name):
            raise NotCompilable(f"the {type(hybrid).__name__} has no {name}")
    text = _compile_linear(hybrid.text_model_)
    coef, intercept, constant = _compile_classifier(hybrid.embedding_model_)
    try:
        return FastStatic(text, embedder.table(), embedder.columns, coef, intercept, constant,
                          np.asarray(hybrid.blend_coef_), np.asarray(hybrid.blend_intercept_))
    except ValueError as exc:
        raise NotCompilable(str(exc)) from None


def _compile_linear(pipeline: Any) -> FastLinear:
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


def verify(fast: FastLinear | FastStatic, pipeline: Any,
           items: Sequence[tuple[str, str, float]] = PROBE_ITEMS) -> float:
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


def save_bundle(fast: FastLinear | FastStatic, path: str | Path) -> None:
    """Write ``fast`` as a ``.npz`` of plain arrays (vocabularies, settings and a static model's
    tokenizer as JSON text).

    The coefficients are stored byte-plane by byte-plane: the sign and exponent bytes of
    neighbouring floats are alike, so they compress well where interleaved floats do not.
    """
    linear = fast.text if isinstance(fast, FastStatic) else fast
    config, arrays = _linear_arrays(linear)
    config["format"] = fast.bundle_format
    if isinstance(fast, FastStatic):
        config["static"] = {"columns": list(fast.columns), **fast.table.config()}
        arrays["static_embeddings"] = fast.table.embeddings
        arrays["static_tokenizer"] = np.frombuffer(fast.table.tokenizer_json.encode("utf-8"), dtype=np.uint8)
        arrays["embedding_coef"] = fast.coef
        arrays["embedding_intercept"] = fast.intercept
        arrays["embedding_constant"] = fast.constant
        arrays["blend_coef"] = fast.blend_coef
        arrays["blend_intercept"] = fast.blend_intercept
    arrays["config"] = _json_bytes(config)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy")
            # the static table barely compresses (7%), and inflating it would cost a cold start
            # a third of a second
            member.compress_type = zipfile.ZIP_STORED if name in _STORED else zipfile.ZIP_DEFLATED
            with archive.open(member, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asarray(array), allow_pickle=False)


_STORED = frozenset({"static_embeddings"})


def _linear_arrays(fast: FastLinear) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
    config = {"blocks": blocks, "coef_dtype": coef.dtype.str, "coef_shape": list(coef.shape)}
    arrays["coef_planes"] = coef.view(np.uint8).reshape(-1, coef.dtype.itemsize).T.copy()
    arrays["intercept"] = fast.intercept
    arrays["constant"] = fast.constant
    return config, arrays


def load_bundle(path: str | Path) -> FastLinear | FastStatic:
    """Read a bundle written by :func:`save_bundle` (no pickles: ``allow_pickle=False``).

    Raises :class:`~moviegenre.errors.ModelError` if it is unreadable or inconsistent.
    """
    try:
        with np.load(path, allow_pickle=False) as bundle:
            config = json.loads(bundle["config"].tobytes())
            if config.get("format") not in BUNDLE_FORMATS:
                raise ValueError(f"format {config.get('format')!r}, expected one of {BUNDLE_FORMATS}")
            linear = _linear_from(config, bundle)
            if config["format"] == FastStatic.bundle_format:
                return _static_from(config["static"], linear, bundle)
            return linear
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not a readable inference bundle ({type(exc).__name__}: {exc})") from None


def _linear_from(config: dict[str, Any], bundle: Any) -> FastLinear:
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


def _static_from(spec: dict[str, Any], linear: FastLinear, bundle: Any) -> FastStatic:
    embeddings = bundle["static_embeddings"]
    if embeddings.dtype.kind != "f":
        raise ValueError(f"a static table of dtype {embeddings.dtype}")
    max_length = spec["max_length"]
    try:
        table = StaticTable(embeddings, bundle["static_tokenizer"].tobytes().decode("utf-8"),
                            max_length=None if max_length is None else int(max_length),
                            normalize=bool(spec["normalize"]))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed tokenizer
        if isinstance(exc, ValueError | KeyError | TypeError):
            raise
        raise ValueError(f"the static tokenizer is unreadable ({exc})") from None
    return FastStatic(linear, table, [str(c) for c in spec["columns"]], bundle["embedding_coef"],
                      bundle["embedding_intercept"], bundle["embedding_constant"], bundle["blend_coef"],
                      bundle["blend_intercept"])


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
