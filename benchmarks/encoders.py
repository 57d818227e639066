"""How the hybrid's encoder is run: sentence-transformers (PyTorch) against its ONNX export,
fp32 and int8, on the same 500 development plots ("title. plot"), 2 threads each.

    python benchmarks/encoders.py [--data dataTraining-dev.zip]

Prints one JSON object: plots/s of each, and the cosine between each export's embeddings and
sentence-transformers' (minimum and mean). Needs the ``embed`` extra and the default encoder
(found offline as ``moviegenre train`` finds it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import SHARED_DATA  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "dataTraining-dev.zip", help="Labelled file.")
    parser.add_argument("--plots", type=int, default=500, help="Plots to encode (default 500).")
    args = parser.parse_args(argv)

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    from moviegenre.core.data import load_movies
    from moviegenre.kinds.encoders import DEFAULT_ENCODER, OnnxEncoder, export_onnx, resolve_encoder

    torch.set_num_threads(2)
    frame = load_movies(args.data, labelled=True).frame.iloc[: args.plots]
    texts = [f"{title}. {plot}" for title, plot in zip(frame["title"], frame["plot"], strict=True)]
    folder = resolve_encoder(DEFAULT_ENCODER)
    result: dict = {"plots": len(texts)}

    reference_model = SentenceTransformer(folder, device="cpu")
    reference_model.encode(texts[:32])
    started = time.perf_counter()
    reference = reference_model.encode(texts, batch_size=32, normalize_embeddings=True)
    result["torch_fp32_plots_per_s"] = len(texts) / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as work:
        fp32, int8 = Path(work) / "fp32", Path(work) / "int8"
        export_onnx(folder, fp32)
        shutil.copytree(fp32, int8)
        quantize_dynamic(str(fp32 / "model.onnx"), str(int8 / "model.onnx"), weight_type=QuantType.QInt8)
        for name, place in (("onnx_fp32", fp32), ("onnx_int8", int8)):
            encoder = OnnxEncoder(place, threads=2)
            encoder.encode(texts[:32])
            started = time.perf_counter()
            embeddings = encoder.encode(texts)
            result[f"{name}_plots_per_s"] = len(texts) / (time.perf_counter() - started)
            cosine = (reference * embeddings).sum(axis=1)
            result[f"{name}_cosine_min"], result[f"{name}_cosine_mean"] = float(cosine.min()), float(cosine.mean())
            result[f"{name}_mb"] = os.path.getsize(place / "model.onnx") / 1e6
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
