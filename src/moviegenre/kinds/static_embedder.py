"""Static sentence embeddings: a sentence encoder distilled into one vector per token.

model2vec's ``distill`` runs every token of an encoder's vocabulary through the encoder once,
reduces the outputs with PCA and weighs them by estimated token frequency (SIF), giving a
table of token embeddings. A sentence's embedding is then the mean of its tokens' rows: no
network at inference, thousands of plots a second, and close to the encoder's own embeddings
for classification.

:class:`StaticEmbedder` distills the table when it is fitted (which needs torch and
transformers: the ``embed`` extra) and keeps it, with its tokenizer, as plain attributes. It
encodes with :class:`moviegenre.fast.static.StaticTable` (numpy and ``tokenizers`` only), the
same code the compiled model scores with. The table is stored once, in the model directory's
``fast.npz``: the embedder leaves it out of its serialised state and reads it back from there
when its model is loaded (:meth:`StaticEmbedder.use_model_directory`). Distilled tables are
cached in the folder ``cache_dir`` names (``moviegenre train`` passes
``$MOVIEGENRE_DATA_HOME/static``), keyed by the encoder's content and the distillation settings,
so re-training does not distill again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from moviegenre.core.advice import install_extra
from moviegenre.core.errors import ModelError
from moviegenre.core.files import atomic_directory
from moviegenre.core.progress import detail
from moviegenre.fast.static import StaticTable, embedding_text
from moviegenre.kinds.encoders import DEFAULT_ENCODER

#: model2vec's default: BERT's placeholder tokens carry no meaning.
DEFAULT_TOKEN_REMOVE_PATTERN = r"\[unused\d+\]"

_TABLE_FILE = "embeddings.npy"
_TOKENIZER_FILE = "tokenizer.json"
_SETTINGS_FILE = "settings.json"

logger = logging.getLogger(__name__)


class StaticEmbedder(TransformerMixin, BaseEstimator):
    """Encode text columns of a movie frame with a static table distilled from an encoder.

    Parameters
    ----------
    encoder : str, default="sentence-transformers/all-MiniLM-L6-v2"
        The sentence encoder to distill: a hub name or a local folder. Kept as given; only the
        table distilled from it is stored.
    columns : tuple of str, default=("title", "plot")
        Frame columns joined with ". " (empty ones left out) into the text that is encoded.
    pca_dims : int or None, default=256
        Dimensions kept by model2vec's PCA; ``None`` keeps the encoder's own (no PCA).
    sif_coefficient : float or None, default=1e-4
        model2vec's SIF weighting of tokens by Zipf-estimated frequency; ``None`` for none.
    token_remove_pattern : str or None, default=r"\\[unused\\d+\\]"
        Tokens of the encoder's vocabulary matching this regular expression are left out.
    max_length : int or None, default=512
        Tokens kept per text, as model2vec's ``StaticModel.encode`` does; ``None`` keeps all.
    normalize : bool, default=True
        Scale each embedding to unit length.
    cache : bool, default=True
        Keep distilled tables on disk and reuse them.
    cache_dir : str or None, default=None
        Cache folder; ``None`` means no disk cache.

    Attributes
    ----------
    embeddings_ : ndarray of shape (n_tokens, n_features_out_)
        The distilled table, float16 as model2vec distills it (sentences are averaged in
        float64).
    tokenizer_ : str
        The table's tokenizer, as ``tokenizers.Tokenizer.to_str()`` writes it.

    Neither is serialised: the model directory's ``fast.npz`` holds them
    (:meth:`use_model_directory`).
    """

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        columns: tuple[str, ...] = ("title", "plot"),
        pca_dims: int | None = 256,
        sif_coefficient: float | None = 1e-4,
        token_remove_pattern: str | None = DEFAULT_TOKEN_REMOVE_PATTERN,
        max_length: int | None = 512,
        normalize: bool = True,
        cache: bool = True,
        cache_dir: str | None = None,
    ):
        self.encoder = encoder
        self.columns = columns
        self.pca_dims = pca_dims
        self.sif_coefficient = sif_coefficient
        self.token_remove_pattern = token_remove_pattern
        self.max_length = max_length
        self.normalize = normalize
        self.cache = cache
        self.cache_dir = cache_dir

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ gives __dict__ itself
        for name in _NOT_SERIALISED:
            state.pop(name, None)
        return state

    def fit(self, X, y=None):
        from moviegenre.kinds.encoders import resolve_encoder

        folder = resolve_encoder(self.encoder)
        self.embeddings_, self.tokenizer_ = distilled_table(folder, self._distill_settings(), self._cache_dir())
        self.n_features_out_ = int(self.embeddings_.shape[1])
        self.__dict__.pop("_table", None)
        return self

    def transform(self, X) -> np.ndarray:
        """(n, n_features_out_) float64 embeddings of the rows of ``X``."""
        return self.table().encode(self._texts(X))

    def table(self) -> StaticTable:
        """The fitted table as a :class:`~moviegenre.fast.static.StaticTable` (built once)."""
        table = self.__dict__.get("_table")
        if table is None:
            check_is_fitted(self, "n_features_out_")
            if not hasattr(self, "embeddings_"):
                raise ModelError(
                    "this static embedder has no table: load its model with moviegenre.load_model, which "
                    "reads the table from the model directory's fast.npz"
                )
            table = self._table = StaticTable(self.embeddings_, self.tokenizer_, max_length=self.max_length,
                                              normalize=self.normalize)
        return table

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        return np.array([f"static{i}" for i in range(self.n_features_out_)], dtype=object)

    # --- the table, stored in the model directory's fast.npz ----------------------------------

    def model_files(self) -> dict[str, Path]:
        """No file of its own: the table travels in ``fast.npz``, which the static kind's
        compiled form writes."""
        return {}

    def use_model_directory(self, directory: str | Path) -> None:
        """Read the table back from ``directory``'s ``fast.npz`` (its checksum already checked
        by the loader); an unfitted embedder (the template a fitted blend keeps) reads nothing."""
        if not hasattr(self, "n_features_out_"):
            return
        from moviegenre.fast.bundle import BUNDLE_FILE, load_static_table

        table = load_static_table(Path(directory) / BUNDLE_FILE)
        if (table.dim, table.max_length, table.normalize) != (self.n_features_out_, self.max_length, self.normalize):
            raise ModelError(
                f"the static table in {Path(directory) / BUNDLE_FILE} does not fit this model's embedder "
                f"({table.dim} dimensions, max_length {table.max_length}, normalize {table.normalize}); "
                "the model directory is damaged"
            )
        self.embeddings_, self.tokenizer_, self._table = table.embeddings, table.tokenizer_json, table

    def _texts(self, X) -> list[str]:
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.columns if c not in X.columns]
            if missing:
                raise ValueError(f"StaticEmbedder needs column(s) {missing}")
            fields = zip(*(X[c].fillna("").astype(str) for c in self.columns), strict=True)
            return [embedding_text(row) for row in fields]
        return [str(text) for text in np.asarray(X, dtype=object).reshape(-1)]

    def _distill_settings(self) -> dict[str, Any]:
        return {
            "pca_dims": self.pca_dims,
            "sif_coefficient": self.sif_coefficient,
            "token_remove_pattern": self.token_remove_pattern,
            "quantize_to": "float16",
        }

    def _cache_dir(self) -> Path | None:
        if not self.cache or self.cache_dir is None:
            return None
        return Path(self.cache_dir).expanduser()


#: Attributes kept out of the serialised state: the table lives in fast.npz (and ``_table`` is
#: built from it).
_NOT_SERIALISED = ("embeddings_", "tokenizer_", "_table")


def distilled_table(folder: str, settings: dict[str, Any], cache_dir: Path | None) -> tuple[np.ndarray, str]:
    """The table and tokenizer JSON distilled from the encoder in ``folder`` with ``settings``
    (keyword arguments of model2vec's ``distill``): read from ``cache_dir`` when they were
    distilled before, else distilled (a minute or two on a CPU) and cached there."""
    from moviegenre.kinds.embeddings import encoder_identity

    key = hashlib.sha256(json.dumps([encoder_identity(folder), settings], sort_keys=True).encode()).hexdigest()
    place = None if cache_dir is None else cache_dir / key[:32]
    if place is not None and place.is_dir():
        try:
            return _read_table(place)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            warnings.warn(f"static table cache {place} unreadable ({exc}); distilling again", stacklevel=2)
    embeddings, tokenizer_json = _distill(folder, settings)
    if place is not None:
        try:
            with atomic_directory(place) as staging:
                np.save(staging / _TABLE_FILE, embeddings, allow_pickle=False)
                (staging / _TOKENIZER_FILE).write_text(tokenizer_json, encoding="utf-8")
                (staging / _SETTINGS_FILE).write_text(json.dumps({"encoder": folder, **settings}, indent=2) + "\n",
                                                      encoding="utf-8")
        except OSError as exc:  # a read-only home: work uncached
            warnings.warn(f"static table cache {place} not written ({exc})", stacklevel=2)
    return embeddings, tokenizer_json


def _read_table(place: Path) -> tuple[np.ndarray, str]:
    embeddings = np.load(place / _TABLE_FILE, allow_pickle=False)
    tokenizer_json = (place / _TOKENIZER_FILE).read_text(encoding="utf-8")
    StaticTable(embeddings, tokenizer_json)  # consistent, or ValueError
    return embeddings, tokenizer_json


def _distill(folder: str, settings: dict[str, Any]) -> tuple[np.ndarray, str]:
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise ModelError(
            f"distilling static embeddings needs model2vec, torch and transformers ({exc}): "
            f"{install_extra('embed')}"
        ) from None
    logger.info("distilling static embeddings from %s", folder)
    try:
        with _token_progress():
            model = distill(model_name=folder, **settings)
    except Exception as exc:  # file-system, format and torch errors alike
        raise ModelError(f"could not distill static embeddings from {folder} ({type(exc).__name__}: {exc})") from None
    return np.ascontiguousarray(model.embedding), model.tokenizer.to_str()


@contextmanager
def _token_progress() -> Iterator[None]:
    """Within the block, model2vec's "Encoding tokens" bar reports to
    :func:`moviegenre.core.progress.detail` instead of drawing on stderr, where it would fight the
    CLI's status line on a terminal and write one endless line of carriage returns to a log.
    (If model2vec stops using tqdm there, its own bar is left alone.)"""
    from model2vec.distill import inference

    if not hasattr(inference, "tqdm"):
        yield
        return

    class Reported:
        def __init__(self, *, total: int, **_: Any):
            self.total, self.done = total, 0

        def update(self, n: int = 1) -> None:
            self.done += n
            detail(f"distilling the encoder: {self.done:,}/{self.total:,} tokens")

        def close(self) -> None:
            pass

    bar, inference.tqdm = inference.tqdm, Reported
    try:
        yield
    finally:
        inference.tqdm = bar
