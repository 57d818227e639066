"""The ``static`` kind compiled: static sentence embeddings and the blend with the linear model.

The ``static`` kind blends the linear model with a logistic regression on static sentence
embeddings (a table of token vectors distilled from an encoder, averaged over a text's tokens):
:class:`FastStatic` is :class:`~moviegenre.fast.linear.FastLinear`, a :class:`StaticTable`
(the table and its ``tokenizers`` tokenizer) and the per-genre blend, so it scores as fast,
without torch. Needs numpy and ``tokenizers`` alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from moviegenre.fast.linear import FastLinear
from moviegenre.fast.maths import expit


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
    float64 (model2vec computes in the table's dtype), so the same answer to within 1e-6
    (``tests/test_static.py`` holds them equal).

    Why not model2vec's ``StaticModel`` itself (it imports no torch, in 0.05-0.1 s)? Measured
    on one plot at a time, the 300 first plots of the dev file ("Title. plot", median 630
    characters, 130 tokens), the full MiniLM table (29,525 x 256, float16), best of three
    runs on a shared two-core machine: this class p50 0.27-0.30 ms, p90 0.58-0.62 ms (of which
    the tokenizer 0.19 ms, averaging the rows 0.08 ms); ``StaticModel.encode`` p50 0.41-0.42
    ms, p90 0.74-0.80 ms, and 0.33-0.34 ms p50 only with a float32 copy of the table (twice
    the memory, or a conversion at every cold start). The static kind's whole score is about
    0.8 ms p50 against a 1 ms budget, so the extra 0.1 ms is too much; and ``StaticModel``
    averages in float16, 3.6e-4 away from the float64 mean, where the compiled model is
    checked against its pipeline to 1e-9. Measured with ``time.perf_counter`` around each
    call after 30 warm-up calls (issue 18).

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
    A :class:`~moviegenre.model.genre_model.Scorer`; one plot scores in well under a millisecond.
    """

    quick = True
    #: The compiled form's tag in ``fast.npz`` (:mod:`moviegenre.fast.bundle`).
    form = "static"

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


