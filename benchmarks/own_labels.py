"""Own labels against a plain baseline: held-out macro ROC AUC on a coarse taxonomy.

    python benchmarks/own_labels.py                    # the default kind, both label shapes
    python benchmarks/own_labels.py --kinds static,linear

The labelled file (``--data``; by default the development file under ``$MOVIEGENRE_TEST_DATA`` or
``../shared/data``, else the public training file) is mapped onto the 11 coarse labels of
``examples/own-labels/make_catalogue.py`` (every movie), then split as ``moviegenre split`` does
(20% held out, seed 0). On that split:

* each kind is trained with ``moviegenre train`` in a fresh process, the labels read from the
  0/1 columns (``--label-prefix tag_``) and, separately, from the list column (``--label-column
  tags --label-sep "|"``), and evaluated with ``moviegenre evaluate`` on the held-out movies;
* the baseline is a plain TF-IDF of the plot (scikit-learn's defaults) and one logistic
  regression per label (``OneVsRestClassifier(LogisticRegression(max_iter=1000))``).

It prints a Markdown table and writes ``benchmarks/results/own_labels.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import REPO, SHARED_DATA, child_environment, machine, run_measured, say  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "own_labels.json"
MAKE_CATALOGUE = REPO / "examples" / "own-labels" / "make_catalogue.py"
SHAPES = {
    "0/1 columns": ["--label-prefix", "tag_"],
    "list column": ["--label-column", "tags", "--label-sep", "|"],
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "moviegenre", *args]


def baseline(train_csv: Path, heldout_csv: Path) -> dict[str, Any]:
    """Macro and micro ROC AUC of TF-IDF + logistic regression on the held-out movies."""
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    seen, held = (pd.read_csv(path, index_col=0, keep_default_na=False) for path in (train_csv, heldout_csv))
    columns = [c for c in seen.columns if c.startswith("tag_")]
    model = make_pipeline(TfidfVectorizer(), OneVsRestClassifier(LogisticRegression(max_iter=1000)))
    model.fit(seen["plot"], seen[columns].to_numpy(int))
    proba = model.predict_proba(held["plot"])
    truth = held[columns].to_numpy(int)
    return {"macro_auc": float(roc_auc_score(truth, proba, average="macro")),
            "micro_auc": float(roc_auc_score(truth, proba, average="micro"))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="Labelled file of the 24 genres (default: the development file).")
    parser.add_argument("--kinds", default="static", help="Comma-separated kinds to train (default: static).")
    parser.add_argument("--encoder", help="Encoder for the kinds that take one (default: theirs).")
    parser.add_argument("--work", type=Path, help="Folder for the files and models (default: a temporary one).")
    args = parser.parse_args(argv)

    data = args.data or SHARED_DATA / "dataTraining-dev.zip"
    if not data.exists():
        from moviegenre.core.data import fetch_public
        from moviegenre.core.settings import get_settings

        data = fetch_public("train", get_settings().resolved_data_home())
    work = args.work or Path(tempfile.mkdtemp(prefix="own-labels-"))
    work.mkdir(parents=True, exist_ok=True)
    mapped = work / "coarse.csv"
    say(f"mapping {data.name} onto the coarse labels")
    subprocess.run([sys.executable, str(MAKE_CATALOGUE), "--data", str(data), "--out", str(mapped)], check=True,
                   env=child_environment(), cwd=REPO, stdout=subprocess.DEVNULL)
    split = json.loads(run_measured(cli("split", "--data", str(mapped), "--out", str(work / "split"),
                                        *SHAPES["0/1 columns"]), work / "split.log")["stdout"])
    train_csv, heldout_csv = Path(split["train"]), Path(split["heldout"])
    rows: list[dict[str, Any]] = []
    say("baseline: TF-IDF + logistic regression")
    rows.append({"model": "TF-IDF + logistic regression (baseline)", "shape": "0/1 columns",
                 **baseline(train_csv, heldout_csv)})
    for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
        for shape, options in SHAPES.items():
            say(f"{kind}: training, labels from the {shape}")
            model = work / f"{kind}-{shape.split()[0].replace('/', '')}"
            encoder = ["--encoder", args.encoder] if args.encoder and kind in ("static", "hybrid") else []
            trained = run_measured(cli("train", "--kind", kind, "--data", str(train_csv), "--out", str(model),
                                       *options, *encoder), work / f"train-{model.name}.log")
            evaluated = json.loads(run_measured(cli("evaluate", "--model", str(model), "--data", str(heldout_csv),
                                                    "--json"), work / f"evaluate-{model.name}.log")["stdout"])
            rows.append({"model": f"moviegenre {kind}", "shape": shape, "macro_auc": evaluated["macro_auc"],
                         "micro_auc": evaluated["micro_auc"], "labels": list(evaluated["per_genre"]),
                         "training_s": round(trained["wall_s"], 1)})
    labels = json.loads((model / "model.json").read_text(encoding="utf-8"))["labels"] if len(rows) > 1 else []
    report = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "data": data.name, "train_rows": sum(1 for _ in open(train_csv, encoding="utf-8")) - 1,
              "heldout_file": heldout_csv.name, "labels": labels, "rows": rows}
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("| model | labels read from | held-out macro ROC AUC | micro ROC AUC |")
    print("|---|---|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['shape']} | {row['macro_auc']:.4f} | {row['micro_auc']:.4f} |")
    return report


if __name__ == "__main__":
    main()
