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
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from moviegenre.fast.linear import FastLinear
from moviegenre.fast.maths import expit
from moviegenre.fast.words import Rows, WordTable

#: A character outside printable ASCII and the whitespace a tokenizer's normaliser turns into
#: spaces: a text with one is tokenised whole, not word by word (:meth:`StaticTable.token_ids`).
_NOT_WORD_SAFE = re.compile(r"[^\t\n\r -~]").search
#: Tokenizer steps (by class name) under which a word-safe text's tokens are its
#: whitespace-separated words' tokens, one word after the other: normalisers that work character
#: by character (on printable ASCII, tabs and line breaks made spaces) and pre-tokenizers that
#: split at whitespace (and maybe punctuation) and never join across it. A ``Sequence`` of them
#: is not recognised, and is read whole: slower, never wrong.
_WORD_LOCAL_NORMALIZERS = frozenset({"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"})
_WORD_LOCAL_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit"})


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

    Why not model2vec's ``StaticModel`` itself (it imports no torch, in 0.05-0.1 s)? It
    tokenises every text whole and averages in float16: 3.6e-4 away from the float64 mean, where
    the compiled model is checked against its pipeline to 1e-9; and it is slower. This class
    spends a single plot's time where it must (issue 21, the 3,383 testing plots one at a time,
    in a fresh process):

    - **Word by word.** With a tokenizer whose steps are word-local (a BERT-style normaliser
      and a pre-tokenizer that splits at whitespace: ``_WORD_LOCAL_*``), a text of printable
      ASCII has the tokens of its whitespace-separated words, one word after the other. So each
      word is tokenised once and kept (a :class:`~moviegenre.fast.words.WordTable`; the
      vocabulary's words are precomputed and stored in the bundle), and a text's tokens are a
      gather of its words' rows: 0.33 ms of ``tokenizers`` per plot became about 0.03 ms. Any
      other text (non-ASCII, a control character, a special token's text such as ``[MASK]``)
      goes to the tokenizer whole, as does every text of another kind of tokenizer.
      ``tests/test_static.py`` holds both ways equal on the testing plots and on hostile text.
    - **float32 rows.** numpy converts float16 slowly (2 ns a number): the rows a text uses
      are converted to float32 once, when first used, into a copy that fills as tokens are met,
      and summed in float64 (the same sums: float16 to float32 is exact). Converting the whole
      table at load would cost a cold start 0.1 s.

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
        # word by word, where the tokenizer's steps allow it: a table of the words met, and the
        # added tokens' texts (matched in the raw text, before any step), which a text must not hold
        word_local = (type(tokenizer.normalizer).__name__ in _WORD_LOCAL_NORMALIZERS | {"NoneType"}
                      and type(tokenizer.pre_tokenizer).__name__ in _WORD_LOCAL_PRE_TOKENIZERS)
        self.lowercase = word_local and (type(tokenizer.normalizer).__name__ == "Lowercase"
                                         or bool(getattr(tokenizer.normalizer, "lowercase", False)))
        self._rows = Rows()
        self._words = WordTable([self]) if word_local else None
        added = sorted({token.content for token in tokenizer.get_added_tokens_decoder().values() if token.content},
                       key=len, reverse=True)
        self._added = re.compile("|".join(map(re.escape, added)), re.IGNORECASE).search if added else None
        # float32 copies of the rows used so far (zero pages until written)
        self._rows32 = np.zeros(embeddings.shape, dtype=np.float32)
        self._converted = np.zeros(len(embeddings), dtype=bool)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    @property
    def row_values(self) -> int:
        """The bound of a word's row values (the token ids): a ``RowSource`` of its word table."""
        return len(self.embeddings)

    def config(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "normalize": self.normalize}

    # --- words -------------------------------------------------------------------------------

    def word_row(self, word: str) -> list[int]:
        """A whitespace-free ``word``'s token ids, unknown tokens kept (the row of its word table).

        One ``encode`` a word, not an ``encode_batch`` of a text's new words: a batch goes to
        the tokenizer's thread pool, whose threads, asleep between two requests, take 0.1-0.2 ms
        to wake (4 us a word against 170 us a text's new words, on the testing plots)."""
        return self._tokenizer.encode(word, add_special_tokens=False).ids

    def vocabulary_words(self) -> list[str]:
        """The tokenizer's vocabulary entries that are words of their own (not a word piece such
        as WordPiece's ``##ing``, nor a bracketed entry such as ``[unused0]`` or ``[CLS]``)."""
        prefix = getattr(self._tokenizer.model, "continuing_subword_prefix", None)
        return [token for token in self._tokenizer.get_vocab()
                if not (prefix and token.startswith(prefix)) and not token.startswith("[")]

    def precompute(self, words: Sequence[str], stored: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Know the token ids of ``words`` before they are met: ``stored`` as :meth:`known` gave
        them (from a bundle), or computed here, in one batch, for those of ``words`` that are
        words (no whitespace). Nothing for a tokenizer that is not read word by word."""
        if self._words is None:
            return
        if stored is None:
            words = list(dict.fromkeys(w.lower() if self.lowercase else w for w in words if w.split() == [w]))
        self._words.precompute(words, None if stored is None else [stored])

    def known(self) -> tuple[list[str], tuple[np.ndarray, np.ndarray]] | None:
        """The precomputed words and the (lengths, values) of their token ids, if any."""
        if self._words is None:
            return None
        words, (stored,) = self._words.known()
        return words, stored

    # --- encoding ----------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's token ids, as model2vec's ``StaticModel.tokenize`` gives them: word by word
        where the text allows it, else by the tokenizer (the texts that need it, in one batch)."""
        out: list[np.ndarray | None] = []
        whole: list[int] = []
        cut = [text[: self._max_chars] for text in texts] if self._max_chars is not None else list(texts)
        for i, text in enumerate(cut):
            ids = self._word_ids(text)
            if ids is None:
                whole.append(i)
            out.append(ids)
        if whole:  # (a single text not through the thread pool: see word_row)
            encodings = ([self._tokenizer.encode(cut[whole[0]], add_special_tokens=False)] if len(whole) == 1
                         else self._tokenizer.encode_batch_fast([cut[i] for i in whole], add_special_tokens=False))
            for i, encoding in zip(whole, encodings, strict=True):
                out[i] = self._known_only(np.array(encoding.ids, dtype=np.int64))
        return out  # type: ignore[return-value]

    def _word_ids(self, text: str) -> np.ndarray | None:
        """``text``'s token ids read word by word, or None if the tokenizer must read it whole."""
        if self._words is None or _NOT_WORD_SAFE(text) or (self._added is not None and self._added(text)):
            return None
        with self._words.lock:
            rows = self._words.rows(text)
            if not rows.size:
                return np.zeros(0, dtype=np.int64)
            ids = self._rows.gather(rows)
        if self.max_length is not None:
            ids = ids[: self.max_length]
        return self._known_only(ids)

    def _known_only(self, ids: np.ndarray) -> np.ndarray:
        if self._unk_id is not None and ids.size and (ids == self._unk_id).any():
            ids = ids[ids != self._unk_id]
        return ids

    def embed_ids(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(dim,) float64 embedding of one text's token ids."""
        ids = np.asarray(ids, dtype=np.int64)
        if not ids.size:
            return np.zeros(self.dim)
        converted = self._converted.take(ids)
        if not converted.all():
            fresh = ids[~converted]
            self._rows32[fresh] = self.embeddings[fresh]
            self._converted[fresh] = True
        # the mean numpy takes (a float64 sum, then a division), of float32 rows equal to the table's
        vector = np.add.reduce(self._rows32.take(ids, axis=0), axis=0, dtype=np.float64)
        vector /= ids.size
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


