"""Dense sentence embeddings of plots, and the hybrid model that blends them with the linear one.

:class:`SentenceEmbedder` encodes text columns with a sentence encoder (a hub name or a local
sentence-transformers folder, found by :func:`moviegenre.kinds.encoders.resolve_encoder`). At
``fit`` the encoder is exported to ONNX (:func:`moviegenre.kinds.encoders.export_onnx`, once per
encoder, kept beside the embedding cache), and every embedding, at training and at scoring, is
computed by that export with onnxruntime: what was trained on is what is served. The export's
files travel in the model directory (:meth:`SentenceEmbedder.model_files`); the serialised
embedder holds no path, and :func:`moviegenre.model.artifact.load_model` points it at the directory it
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
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from moviegenre.core.errors import ModelError
from moviegenre.core.progress import detail, details_to, listening
from moviegenre.kinds.encoders import (
    DEFAULT_ENCODER,
    ENCODER_FILES,
    EXPORT_FORMAT,
    export_identity,
    export_onnx,
    load_onnx_encoder,
    resolve_encoder,
)

#: The folder of a model directory that holds a hybrid's exported encoder.
ENCODER_DIR = "encoder"

def encoding_progress(report: Callable[[str], None]):
    """Within the block, every :class:`SentenceEmbedder` that encodes texts reports how far it
    got to ``report`` (a line such as ``"encoding 640/5,053 texts"``), through
    :func:`moviegenre.core.progress.details_to`."""
    return details_to(report)


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


@lru_cache(maxsize=1)
def _scratch_folder() -> Path:
    """A folder for this process's encoder exports when no cache folder is given: removed when
    the process ends."""
    import tempfile

    holder = tempfile.TemporaryDirectory(prefix="moviegenre-encoders-")
    _SCRATCH.append(holder)  # kept alive, and so not removed, until the process ends
    return Path(holder.name)


_SCRATCH: list[Any] = []


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
        means no disk cache (the export is then made in a temporary folder that lasts as long
        as the process). ``moviegenre train`` passes ``$MOVIEGENRE_DATA_HOME/embeddings``
        (:func:`moviegenre.kinds.registry.prepare_params`).

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
                "with moviegenre.load_model, which points it at the model directory's encoder/"
            )
        return folder

    def _encoder(self):
        return load_onnx_encoder(self._folder(), self.encoder_identity_)

    def _cache_root(self) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir).expanduser()

    def _exported_encoder(self) -> Path:
        """The ONNX export of :attr:`encoder`, made once and kept under the cache folder (a
        temporary folder without one), keyed by the source's content hash."""
        source = resolve_encoder(self.encoder)
        key = hashlib.sha256(f"{encoder_identity(source)}|format={EXPORT_FORMAT}".encode()).hexdigest()[:32]
        root = self._cache_root()
        target = (_scratch_folder() if root is None else root) / "encoders" / key
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
        directory = self._cache_root()
        if not self.cache or directory is None:
            return None
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
        progress = None
        if listening():
            def progress(done: int, total: int) -> None:
                detail(f"encoding {done:,}/{total:,} texts")
        return self._encoder().encode(texts, batch_size=self.batch_size, progress=progress)


