"""The README's models table, from one run per kind: held-out accuracy and what it costs.

    python benchmarks/models_table.py                       # every kind (about 40 minutes on 2 cores)
    python benchmarks/models_table.py --kinds static,linear  # some kinds; the others keep their last figures

For each kind it trains on the same split of the labelled file (``moviegenre split``: 20% held
out, seed 0) with ``moviegenre train`` in a fresh process (wall time and peak memory), evaluates
on the held-out movies with ``moviegenre evaluate``, measures the model directory (every file,
encoder folders included), and times, in a fresh process, single plots (p50 of one plot per
call) and batch scoring (plots/s) on the testing file (``benchmarks/probes.py inference``).
The seed kind trains on a 2,000-movie sample without cross-validation, as its dense features
need ~3 GB for 2,000 movies.

Results are merged, by kind, into ``benchmarks/results/models.json``, and the table is printed
in Markdown. Data: ``--data`` and ``--testing``, by default the files under
``$MOVIEGENRE_TEST_DATA`` or ``../shared/data``, else the public files (downloaded once).
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

from run import REPO, child_environment, machine, probe, resolve_data, run_measured, say  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "models.json"
KINDS = ("seed", "linear", "static", "hybrid")
#: Training options per kind; the seed kind's dense features do not fit the whole file.
TRAINING = {"seed": ["--sample", "2000", "--cv", "0"]}
#: Kinds without a compiled fast path: fewer single plots and a smaller batch keep the run short.
SLOW = {"seed", "hybrid"}


def split(data: Path, work: Path) -> tuple[Path, Path]:
    folder = work / "split"
    subprocess.run([sys.executable, "-m", "moviegenre", "split", "--data", str(data), "--out", str(folder)],
                   check=True, capture_output=True, env=child_environment(), cwd=REPO)
    return folder / "train.csv", folder / "heldout.csv"


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def bench(kind: str, train: Path, heldout: Path, testing: Path, work: Path, args: argparse.Namespace) -> dict:
    model = work / kind
    options = TRAINING.get(kind, [])
    if args.sample and kind not in TRAINING:
        options = ["--sample", str(args.sample), "--cv", "2"]
    single, batch = (min(args.single, 200), min(args.batch, 1000)) if kind in SLOW else (args.single, args.batch)
    say(f"{kind}: training on {train.name}")
    command = [sys.executable, "-m", "moviegenre", "train", "--kind", kind, "--data", str(train),
               "--out", str(model), *options]  # fmt: skip
    trained = run_measured(command, work / f"train-{kind}.log")
    say(f"{kind}: evaluating on {heldout.name}")
    evaluated = subprocess.run(
        [sys.executable, "-m", "moviegenre", "evaluate", "--model", str(model), "--data", str(heldout), "--json"],
        check=True, capture_output=True, text=True, env=child_environment(), cwd=REPO,
    )  # fmt: skip
    metrics = json.loads(evaluated.stdout)
    say(f"{kind}: single plots and batch")
    timing = probe(["inference", str(model), "--testing", str(testing), "--single", str(single),
                    "--batch-rows", str(batch), "--rounds", "1", "--reloads", "0"], work / f"inference-{kind}.log")
    return {
        "training_command": "moviegenre train --kind " + " ".join([kind, "--data", "train.csv", *options]),
        "training_summary": json.loads(trained["stdout"]),
        "training_s": trained["wall_s"],
        "training_peak_rss_bytes": trained["peak_rss_bytes"],
        "heldout": {
            "movies": metrics["n"],
            "macro_auc": metrics["macro_auc"],
            "micro_auc": metrics["micro_auc"],
            "samples_f1": metrics["label_sets"]["samples_f1"],
            "ece": metrics["calibration"]["ece"],
        },
        "model_bytes": directory_bytes(model),
        "single_p50_ms": timing["single"]["p50_ms"],
        "batch_plots_per_s": timing["batch"]["plots_per_s"],
        "fast_path": timing["fast"],
        **({"bare_encoder": timing["bare_encoder"]} if "bare_encoder" in timing else {}),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def table(results: dict[str, Any]) -> str:
    rows = [
        "| kind | held-out macro ROC AUC | micro | samples F1 | ECE | one plot, p50 | batch "
        "| training time, peak memory | model directory |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        entry = results.get(kind)
        if entry is None:
            continue
        held = entry["heldout"]
        sample = " (2,000-movie sample)" if kind in TRAINING else ""
        rows.append(
            f"| `{kind}` | {held['macro_auc']:.3f} | {held['micro_auc']:.3f} | {held['samples_f1']:.3f} "
            f"| {held['ece']:.3f} | {entry['single_p50_ms']:.2f} ms | {entry['batch_plots_per_s']:,.0f} plots/s "
            f"| {_duration(entry['training_s'])}, {entry['training_peak_rss_bytes'] / 1e9:.2f} GB{sample} "
            f"| {entry['model_bytes'] / 1e6:.0f} MB |"
        )
    return "\n".join(rows)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"Kinds to run (default {','.join(KINDS)}).")
    parser.add_argument("--data", type=Path, help="Labelled file to split (default: the dev file, else public).")
    parser.add_argument("--testing", type=Path, help="Unlabelled plots to time (default: dataTesting.zip).")
    parser.add_argument("--single", type=int, default=1000, help="Single-plot calls to time (default 1000).")
    parser.add_argument("--batch", type=int, default=3383, help="Rows of the batch (default 3383).")
    parser.add_argument("--sample", type=int, help="Train on this many movies, 2-fold CV (a quick check).")
    parser.add_argument("--json", type=Path, default=RESULTS, help="Where results are merged.")
    parser.add_argument("--work-dir", type=Path, help="Keep the models and logs here (default: a temporary folder).")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kind(s) {unknown}; choose from {', '.join(KINDS)}")
    data, testing = resolve_data(args)
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="moviegenre-models-") as folder:
        work = args.work_dir or Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        train, heldout = split(data, work)
        for kind in kinds:
            results[kind] = {**bench(kind, train, heldout, testing, work, args),
                             "machine": machine()}
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nJSON: {args.json}")
    return results


if __name__ == "__main__":
    main()
