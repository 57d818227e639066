"""Dense sentence embeddings of plots, and the hybrid model that blends them with the linear one.

:class:`SentenceEmbedder` encodes text columns with a sentence encoder (a hub name or a local
sentence-transformers folder, found by :func:`moviegenre.encoders.resolve_encoder`). At
``fit`` the encoder is exported to ONNX (:func:`moviegenre.encoders.export_onnx`, once per
encoder, kept beside the embedding cache), and every embedding, at training and at scoring, is
computed by that export with onnxruntime: what was trained on is what is served. The export's
files travel in the model directory (:meth:`SentenceEmbedder.model_files`); the serialised
embedder holds no path, and :func:`moviegenre.artifact.load_model` points it at the directory it
was loaded from (:meth:`SentenceEmbedder.use_model_directory`).

Embeddings are cached on disk, keyed by the export's identity (the sha256 of its files) and the
sha256 of each text, so re-training or re-scoring the same plots does not re-encode them.

:class:`HybridClassifier` stacks the linear TF-IDF model and a logistic regression on the
embeddings: out-of-fold scores of both feed one small logistic regression per genre.

Scoring needs onnxruntime and tokenizers (the ``onnx`` extra); training also needs torch and
transformers to export the encoder (the ``embed`` extra). Both are imported only when needed.
"""

from __future__ import annotations

import hashlib
import sqlite3
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from .encoders import (
    DEFAULT_ENCODER,
    ENCODER_FILES,
    EXPORT_FORMAT,
    export_identity,
    export_onnx,
    load_onnx_encoder,
    resolve_encoder,
)
from .errors import ModelError

#: The folder of a model directory that holds a hybrid's exported encoder.
ENCODER_DIR = "encoder"

_PROGRESS: ContextVar[Callable[[str], None] | None] = ContextVar("encoding_progress", default=None)


@contextmanager
def encoding_progress(report: Callable[[str], None]) -> Iterator[None]:
    """Within the block, every :class:`SentenceEmbedder` that encodes texts reports how far it
    got to ``report`` (a line such as ``"encoding 640/5,053 texts"``)."""
    token = _PROGRESS.set(report)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


@lru_cache(maxsize=16)
def _folder_fingerprint(folder: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and ".git" not in path.parts:
            digest.update(str(path.relative_to(folder)).encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def encoder_identity(folder: str | Path) -> str:
    """A local encoder folder's content hash, so that a changed encoder is told apart (computed
    once per process while the files' sizes and times stay the same)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return "sha256:" + _folder_fingerprint(str(folder.resolve()), stamp)


class EmbeddingCache:
    """Embeddings on disk, one SQLite file per (encoder identity, text preparation).

    Rows map the sha256 of a text to its float32 vector's raw bytes: no pickle, and SQLite's
    transactions make every write atomic, so a crash or a concurrent writer never leaves a
    half-written vector.
    """

    def __init__(self, directory: Path, namespace: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{hashlib.sha256(namespace.encode()).hexdigest()[:32]}.sqlite"
        self.namespace = namespace

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=60)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (text_sha256 TEXT PRIMARY KEY, vector BLOB)"
        )
        connection.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        connection.execute(
            "INSERT OR IGNORE INTO meta VALUES ('namespace', ?)", (self.namespace,)
        )
        return connection

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of the texts (by sha256) already cached; an unreadable cache finds none."""
        try:
            return self._get(keys)
        except sqlite3.Error as exc:
            warnings.warn(f"embedding cache {self.path} unreadable ({exc})", stacklevel=2)
            return {}

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors by text sha256; a cache that cannot be written is skipped."""
        try:
            self._put(vectors)
        except sqlite3.Error as exc:
            warnings.warn(f"embedding cache {self.path} not written ({exc})", stacklevel=2)

    def _get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._connect() as connection:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT text_sha256, vector FROM embeddings WHERE text_sha256 IN ({marks})",
                    chunk,
                )
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        connection.close()
        return found

    def _put(self, vectors: dict[str, np.ndarray]) -> None:
        with self._connect() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
            )
        connection.close()


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Encode text columns of a movie frame as dense sentence embeddings.

    Parameters
    ----------
    encoder : str, default="sentence-transformers/all-MiniLM-L6-v2"
        A sentence-transformers hub name or the path of a local encoder folder; only read at
        ``fit``, which exports it to ONNX.
    columns : tuple of str, default=("plot",)
        Frame columns joined with ". " into the text that is encoded.
    chunk_words : int or None, default=None
        Encode texts longer than this many words as consecutive chunks and average the chunk
        embeddings (weighted by words), instead of letting the encoder truncate them.
    normalize : bool, default=True
        Scale each embedding to unit length.
    batch_size : int, default=32
        Texts per encoder batch.
    cache : bool, default=True
        Keep embeddings on disk and reuse them for texts already encoded.
    cache_dir : str or None, default=None
        Cache folder (embeddings, and the encoder's ONNX export under ``encoders/``); ``None``
        means ``$MOVIEGENRE_DATA_HOME/embeddings``.

    Fitted, the embedder encodes with the ONNX export of ``encoder``, whose files
    :meth:`model_files` lists for the model directory. Neither the loaded encoder nor where its
    files are is part of the estimator's state: :meth:`use_model_directory` says where they are
    after a model directory is loaded.
    """

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        columns: tuple[str, ...] = ("plot",),
        chunk_words: int | None = None,
        normalize: bool = True,
        batch_size: int = 32,
        cache: bool = True,
        cache_dir: str | None = None,
    ):
        self.encoder = encoder
        self.columns = columns
        self.chunk_words = chunk_words
        self.normalize = normalize
        self.batch_size = batch_size
        self.cache = cache
        self.cache_dir = cache_dir

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ gives __dict__ itself
        state.pop("_encoder_folder", None)  # where the files are is the loader's business
        return state

    def fit(self, X, y=None):
        folder = self._exported_encoder()
        self._encoder_folder = folder
        self.encoder_identity_ = export_identity(folder)
        self.n_features_out_ = self._encoder().dimension
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        texts = self._texts(X)
        if not texts:
            return np.zeros((0, self.n_features_out_), dtype=np.float32)
        keys = [_text_key(text) for text in texts]
        cache = self._cache()
        known = cache.get(keys) if cache is not None else {}
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in known}
        if missing:
            fresh = dict(zip(missing, self._encode(list(missing.values())), strict=True))
            if cache is not None:
                cache.put(fresh)
            known.update(fresh)
        vectors = np.vstack([known[key] for key in keys]).astype(np.float32)
        if self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        return np.array([f"embedding{i}" for i in range(self.n_features_out_)], dtype=object)

    # --- the files beside the model ----------------------------------------------------------

    def model_files(self) -> dict[str, Path]:
        """The files a model directory must hold for this embedder to encode: relative path
        there -> where the file is now (none before ``fit``: an unfitted embedder, such as the
        template a fitted hybrid keeps, reads none)."""
        if not hasattr(self, "n_features_out_"):
            return {}
        folder = self._folder()
        return {f"{ENCODER_DIR}/{name}": folder / name for name in ENCODER_FILES}

    def use_model_directory(self, directory: str | Path) -> None:
        """Encode with the encoder files of the model directory ``directory`` (their checksums
        already checked by the loader)."""
        self._encoder_folder = Path(directory) / ENCODER_DIR

    # --- internals ---------------------------------------------------------------------------

    def _folder(self) -> Path:
        folder = getattr(self, "_encoder_folder", None)
        if folder is None:
            raise ModelError(
                "this sentence embedder does not know where its encoder's files are: load its model "
                "with moviegenre.load_model (a hybrid saved before encoders travelled with the model "
                "must be retrained)"
            )
        return folder

    def _encoder(self):
        return load_onnx_encoder(self._folder(), self.encoder_identity_)

    def _cache_root(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        from .settings import get_settings

        return get_settings().resolved_data_home() / "embeddings"

    def _exported_encoder(self) -> Path:
        """The ONNX export of :attr:`encoder`, made once and kept under the cache folder,
        keyed by the source's content hash."""
        source = resolve_encoder(self.encoder)
        key = hashlib.sha256(f"{encoder_identity(source)}|format={EXPORT_FORMAT}".encode()).hexdigest()[:32]
        target = self._cache_root() / "encoders" / key
        if not all((target / name).is_file() for name in ENCODER_FILES):
            named = Path(self.encoder).expanduser().is_dir()  # a folder: record its name, never its path
            export_onnx(source, target, source=Path(source).name if named else self.encoder)
        return target

    def _texts(self, X) -> list[str]:
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.columns if c not in X.columns]
            if missing:
                raise ValueError(f"SentenceEmbedder needs column(s) {missing}")
            parts = zip(*(X[c].fillna("").astype(str).str.strip() for c in self.columns), strict=True)
            return [". ".join(part for part in row if part) for row in parts]
        return [str(text) for text in np.asarray(X, dtype=object).reshape(-1)]

    def _cache(self) -> EmbeddingCache | None:
        if not self.cache:
            return None
        directory = self._cache_root()
        try:
            return EmbeddingCache(directory, f"{self.encoder_identity_}|chunk_words={self.chunk_words}")
        except OSError as exc:  # a read-only home (a container, a Lambda): work uncached
            warnings.warn(f"embedding cache {directory} unusable ({exc}); not caching", stacklevel=2)
            return None

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not self.chunk_words:
            return self._encode_batch(texts)
        pieces, owners, weights = [], [], []
        for index, text in enumerate(texts):
            words = text.split()
            for start in range(0, max(len(words), 1), self.chunk_words):
                chunk = words[start : start + self.chunk_words]
                pieces.append(" ".join(chunk) or text)
                owners.append(index)
                weights.append(max(len(chunk), 1))
        encoded = self._encode_batch(pieces)
        pooled = np.zeros((len(texts), encoded.shape[1]), dtype=np.float64)
        totals = np.zeros(len(texts))
        np.add.at(pooled, owners, encoded * np.asarray(weights)[:, None])
        np.add.at(totals, owners, weights)
        return (pooled / totals[:, None]).astype(np.float32)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        report = _PROGRESS.get()
        progress = None
        if report is not None:
            def progress(done: int, total: int) -> None:
                report(f"encoding {done:,}/{total:,} texts")
        return self._encoder().encode(texts, batch_size=self.batch_size, progress=progress)


def _scores(estimator, X) -> np.ndarray:
    """Per-genre logits: ``decision_function`` where the estimator has one, else the logit of
    its probabilities."""
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float).reshape(len(X), -1)
    proba = np.clip(np.asarray(estimator.predict_proba(X), dtype=float), 1e-9, 1 - 1e-9)
    return np.log(proba / (1 - proba))


def default_embedding_model(C: float = 1.0) -> BaseEstimator:
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(C=C, max_iter=2000))


class HybridClassifier(ClassifierMixin, BaseEstimator):
    """Stack a text model and a classifier on sentence embeddings, one blend per genre.

    Parameters
    ----------
    text_model : estimator
        Takes the movie frame; its per-genre ``decision_function`` (or the logit of its
        ``predict_proba``) is the first input of each genre's blend.
    embedder : estimator
        Turns the frame into dense embeddings: ``fit``, ``transform`` and ``n_features_out_``
        (a :class:`SentenceEmbedder`, or the static kind's embedder). One that reads files
        beside the model says so with ``model_files()``/``use_model_directory()``.
    embedding_model : estimator or None, default=None
        Multi-label classifier on the embeddings; ``None`` means one-vs-rest logistic
        regression with ``C=1``.
    folds : int, default=5
        Folds of the out-of-fold scores that the blends are fitted on.
    blend_C : float, default=1.0
        Inverse regularisation of each genre's blending logistic regression.
    random_state : int, default=0
        Seed of the folds.

    Each genre's final logit is ``blend_coef_[g] @ [text score, embedding score] +
    blend_intercept_[g]``: a logistic regression fitted on out-of-fold scores, which both
    weighs the two models per genre and calibrates their combination (Platt scaling).
    """

    def __init__(
        self,
        *,
        text_model,
        embedder,
        embedding_model=None,
        folds: int = 5,
        blend_C: float = 1.0,
        random_state: int = 0,
    ):
        self.text_model = text_model
        self.embedder = embedder
        self.embedding_model = embedding_model
        self.folds = folds
        self.blend_C = blend_C
        self.random_state = random_state

    def fit(self, X, y):
        y = np.asarray(y)
        if y.ndim != 2:
            raise ValueError("HybridClassifier needs a 2-D 0/1 label matrix")
        self.embedder_ = clone(self.embedder).fit(X)
        embeddings = self.embedder_.transform(X)
        embedding_model = self.embedding_model
        if embedding_model is None:
            embedding_model = default_embedding_model()
        oof = self._out_of_fold_scores(X, embeddings, y, embedding_model)
        n_labels = y.shape[1]
        self.blend_coef_ = np.zeros((n_labels, 2))
        self.blend_intercept_ = np.zeros(n_labels)
        for g in range(n_labels):
            inputs = oof[:, g, :]
            if 0 < y[:, g].sum() < len(y):
                blend = LogisticRegression(C=self.blend_C).fit(inputs, y[:, g])
                self.blend_coef_[g] = blend.coef_[0]
                self.blend_intercept_[g] = blend.intercept_[0]
            else:  # a label never (or always) seen: a constant, as one-vs-rest does
                self.blend_intercept_[g] = 30.0 if y[:, g].all() else -30.0
        self.text_model_ = clone(self.text_model).fit(X, y)
        self.embedding_model_ = clone(embedding_model).fit(embeddings, y)
        self.n_outputs_ = n_labels
        return self

    def _out_of_fold_scores(self, X, embeddings, y, embedding_model) -> np.ndarray:
        scores = np.zeros((len(y), y.shape[1], 2))
        splitter = KFold(n_splits=self.folds, shuffle=True, random_state=self.random_state)
        for train_idx, test_idx in splitter.split(embeddings):
            rows_train, rows_test = _rows(X, train_idx), _rows(X, test_idx)
            text = clone(self.text_model).fit(rows_train, y[train_idx])
            dense = clone(embedding_model).fit(embeddings[train_idx], y[train_idx])
            scores[test_idx, :, 0] = _scores(text, rows_test)
            scores[test_idx, :, 1] = _scores(dense, embeddings[test_idx])
        return scores

    def base_scores(self, X) -> np.ndarray:
        """(n, n_labels, 2): each genre's text-model and embedding-model logits."""
        check_is_fitted(self, "blend_coef_")
        text = _scores(self.text_model_, X)
        dense = _scores(self.embedding_model_, self.embedder_.transform(X))
        return np.stack([text, dense], axis=2)

    def decision_function(self, X) -> np.ndarray:
        base = self.base_scores(X)
        return np.einsum("ngk,gk->ng", base, self.blend_coef_) + self.blend_intercept_

    def predict_proba(self, X) -> np.ndarray:
        return expit(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        return (self.decision_function(X) >= 0).astype(int)


def _rows(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]
