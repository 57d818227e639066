"""``fast.npz``: a compiled model stored as plain arrays.

A compiled model is stored beside ``model.skops`` as ``fast.npz``: numpy arrays and JSON text
only, read with ``allow_pickle=False``, so reading it runs no code and needs neither
scikit-learn nor skops (:func:`save_bundle`, :func:`load_bundle`). Its config names the
bundle's format (:data:`BUNDLE_FORMAT`, how the file is laid out) and its ``form`` (which
compiled form it holds: :data:`FORMS`). A static bundle is also where the static kind's
distilled table is stored, the only place (:func:`load_static_table`).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from moviegenre.core.errors import ModelError
from moviegenre.fast.linear import Block, DecadeOneHot, FastLinear, TfidfText
from moviegenre.fast.static import FastStatic, StaticTable

BUNDLE_FILE = "fast.npz"
#: The layout of the file, whatever form it holds.
BUNDLE_FORMAT = 6
#: The compiled forms a bundle holds, by their ``form`` tag: a linear model (its blocks'
#: vocabularies and the coefficients), or a static model (the linear model's arrays, plus the
#: static table, its tokenizer, the embedding model and the blend).
FORMS = {FastLinear.form: FastLinear, FastStatic.form: FastStatic}


def save_bundle(fast: FastLinear | FastStatic, path: str | Path) -> None:
    """Write ``fast`` as a ``.npz`` of plain arrays (vocabularies, settings and a static model's
    tokenizer as JSON text).

    The coefficients are stored byte-plane by byte-plane (``coef_plane_<k>``: byte k of every
    float): the sign and exponent bytes of neighbouring floats are alike, so their plane
    compresses well where interleaved floats do not; the mantissa planes barely compress (6%),
    and are stored as they are, since inflating them would cost a cold start 30 ms.
    """
    linear = fast.text if isinstance(fast, FastStatic) else fast
    config, arrays = _linear_arrays(linear)
    config["format"] = BUNDLE_FORMAT
    config["form"] = fast.form
    if isinstance(fast, FastStatic):
        config["static"] = {"columns": list(fast.columns), **fast.table.config()}
        arrays.update(_table_arrays(fast.table))
        arrays["embedding_coef"] = fast.coef
        arrays["embedding_intercept"] = fast.intercept
        arrays["embedding_constant"] = fast.constant
        arrays["blend_coef"] = fast.blend_coef
        arrays["blend_intercept"] = fast.blend_intercept
    arrays["config"] = _json_bytes(config)
    stored = _STORED | {name for name, array in arrays.items() if name.startswith("coef_plane_")
                        and len(zlib.compress(array.tobytes(), 1)) > 0.9 * array.nbytes}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy")
            # the static table barely compresses (7%), and inflating it would cost a cold start
            # a third of a second
            member.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            with archive.open(member, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asarray(array), allow_pickle=False)


_STORED = frozenset({"static_embeddings"})


def _table_arrays(table: StaticTable) -> dict[str, np.ndarray]:
    arrays = {"static_embeddings": table.embeddings,
              "static_tokenizer": np.frombuffer(table.tokenizer_json.encode("utf-8"), dtype=np.uint8)}
    known = table.known()
    if known is not None and known[0]:
        words, (lengths, values) = known
        arrays["static_known_words"] = _json_bytes(words)
        arrays["static_known_lengths"], arrays["static_known_values"] = _compact_rows(lengths, values, table.row_values)
    return arrays


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
            grams = vectorizer.gram_index()
            if grams is not None:
                arrays[f"grams_{i}_extra"] = _json_bytes(grams["extra"])
                for n, keys in grams["keys"].items():
                    arrays[f"grams_{i}_keys_{n}"] = keys
                    arrays[f"grams_{i}_columns_{n}"] = grams["columns"][n].astype(_smallest_uint(vectorizer.width))
    for column in fast.word_tables:
        words, stored = fast.known_words(column)
        if words:
            arrays[f"known_words_{column}"] = _json_bytes(words)
            for i, (lengths, values) in stored.items():
                arrays[f"known_lengths_{i}"], arrays[f"known_values_{i}"] = _compact_rows(
                    lengths, values, fast.blocks[i].vectorizer.row_values)
    coef = np.ascontiguousarray(fast.coef)
    config = {"blocks": blocks, "coef_dtype": coef.dtype.str, "coef_shape": list(coef.shape)}
    for k, plane in enumerate(coef.view(np.uint8).reshape(-1, coef.dtype.itemsize).T):
        arrays[f"coef_plane_{k}"] = np.ascontiguousarray(plane)
    arrays["intercept"] = fast.intercept
    arrays["constant"] = fast.constant
    return config, arrays


def load_bundle(path: str | Path) -> FastLinear | FastStatic:
    """Read a bundle written by :func:`save_bundle` (no pickles: ``allow_pickle=False``).

    Raises :class:`~moviegenre.core.errors.ModelError` if it is unreadable or inconsistent.
    """
    try:
        with np.load(path, allow_pickle=False) as bundle:
            config = _config(bundle)
            linear = _linear_from(config, bundle)
            if config["form"] == FastStatic.form:
                return _static_from(config["static"], linear, bundle)
            return linear
    except _UNREADABLE as exc:
        raise ModelError(f"{path} is not a readable inference bundle ({type(exc).__name__}: {exc})") from None


def load_static_table(path: str | Path) -> StaticTable:
    """The static table of a static bundle, alone (for the static kind's pipeline, whose
    serialised state leaves it out)."""
    try:
        with np.load(path, allow_pickle=False) as bundle:
            config = _config(bundle)
            if config["form"] != FastStatic.form:
                raise ValueError(f"a {config['form']!r} bundle holds no static table")
            return _table_from(config["static"], bundle)
    except _UNREADABLE as exc:
        raise ModelError(f"{path} is not a readable inference bundle ({type(exc).__name__}: {exc})") from None


_UNREADABLE = (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile, json.JSONDecodeError)


def _config(bundle: Any) -> dict[str, Any]:
    config = json.loads(bundle["config"].tobytes())
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise ValueError(f"format {found!r}, expected {BUNDLE_FORMAT}")
    if config.get("form") not in FORMS:
        raise ValueError(f"form {config.get('form')!r}, expected one of {sorted(FORMS)}")
    return config


def _linear_from(config: dict[str, Any], bundle: Any) -> FastLinear:
    dtype = np.dtype(config["coef_dtype"])
    if dtype.kind != "f":
        raise ValueError(f"coefficients of dtype {dtype}")
    rows, genres = (int(n) for n in config["coef_shape"])
    planes = [bundle[f"coef_plane_{k}"] for k in range(dtype.itemsize)]
    if any(plane.shape != (rows * genres,) or plane.dtype != np.uint8 for plane in planes):
        raise ValueError(f"coefficient planes of shapes {[plane.shape for plane in planes]}")
    # interleave the byte planes back into floats: np.stack writes each plane into its byte
    # column in one pass, 5x faster than copying the planes' transpose
    coef = np.stack(planes, axis=-1).view(dtype).reshape(rows, genres)
    blocks = [_block_from(i, spec, bundle) for i, spec in enumerate(config["blocks"])]
    intercept, constant = bundle["intercept"], bundle["constant"]
    if intercept.shape != (genres,) or constant.shape != (genres,):
        raise ValueError("intercepts do not match the coefficients")
    fast = FastLinear(blocks, coef, intercept, constant)
    for column in fast.word_tables:
        if f"known_words_{column}" in bundle.files:
            stored = {i: (bundle[f"known_lengths_{i}"], bundle[f"known_values_{i}"])
                      for i, block in enumerate(blocks) if block.vectorizer in fast.word_tables[column].vectorizers}
            fast.precompute_words(column, json.loads(bundle[f"known_words_{column}"].tobytes()), stored)
    return fast


def _static_from(spec: dict[str, Any], linear: FastLinear, bundle: Any) -> FastStatic:
    return FastStatic(linear, _table_from(spec, bundle), [str(c) for c in spec["columns"]], bundle["embedding_coef"],
                      bundle["embedding_intercept"], bundle["embedding_constant"], bundle["blend_coef"],
                      bundle["blend_intercept"])


def _table_from(spec: dict[str, Any], bundle: Any) -> StaticTable:
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
    if "static_known_words" in bundle.files:
        table.precompute(json.loads(bundle["static_known_words"].tobytes()),
                         (bundle["static_known_lengths"], bundle["static_known_values"]))
    return table


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
            grams=_grams_from(i, bundle),
        )
    else:
        raise ValueError(f"block {i} has analyzer {spec['analyzer']!r}")
    return Block(str(spec["name"]), spec["column"], vectorizer, float(spec["weight"]))


def _grams_from(i: int, bundle: Any) -> dict[str, Any] | None:
    """Block ``i``'s word n-gram index (:meth:`TfidfText.gram_index`), if the bundle stores one."""
    if f"grams_{i}_extra" not in bundle.files:
        return None
    prefix = f"grams_{i}_keys_"
    lengths = [int(name[len(prefix):]) for name in bundle.files if name.startswith(prefix)]
    return {"extra": json.loads(bundle[f"grams_{i}_extra"].tobytes()),
            "keys": {n: bundle[f"{prefix}{n}"] for n in lengths},
            "columns": {n: bundle[f"grams_{i}_columns_{n}"] for n in lengths}}


def _compact_rows(lengths: np.ndarray, values: np.ndarray, row_values: int) -> tuple[np.ndarray, np.ndarray]:
    """A word table's precomputed rows (non-empty) in the smallest unsigned integers that hold
    them: their lengths, and their values, which are below ``row_values``."""
    return lengths.astype(_smallest_uint(int(lengths.max()))), values.astype(_smallest_uint(row_values - 1))


def _smallest_uint(largest: int) -> type:
    return next(dtype for dtype in (np.uint8, np.uint16, np.uint32, np.uint64) if largest <= np.iinfo(dtype).max)


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


