"""The ``moviegenre`` command: thin commands over the library."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import artifact
from .data import load_movies, resolve_training_data
from .errors import MovieGenreError
from .models import kind_names
from .predict import as_probability_record
from .settings import get_settings

app = typer.Typer(
    help="Tag movies with genres from their plot: train, evaluate, predict, score, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Labelled CSV/zip (ID first, then year,title,plot,genres). "
        "Default: the public training file, downloaded once.",
    ),
]
ModelOption = Annotated[Path, typer.Option("--model", help="Model directory.")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn moviegenre's own errors into a one-line message and exit code 2."""
    try:
        yield
    except MovieGenreError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except ValueError as exc:  # bad option values caught by the library
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _progress(status):
    return lambda message: status.update(f"[bold]{message}")


def _print_json(payload) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    kind: Annotated[str, typer.Option("--kind", help=f"Model kind: {', '.join(kind_names())}.")] = "linear",
    data: DataOption = None,
    cv: Annotated[int, typer.Option("--cv", help="Cross-validation folds (0 skips CV).")] = 5,
    sample: Annotated[
        int | None, typer.Option("--sample", help="Train on a random sample of N movies.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for folds and sampling.")] = 0,
) -> None:
    """Train a model and write it as a model directory."""
    from .train import train as train_model

    with user_errors(), err.status("[bold]reading data") as status:
        path = resolve_training_data(data, get_settings().resolved_data_home())
        movies = load_movies(path, labelled=True)
        if sample is not None and sample < len(movies):
            import numpy as np

            positions = np.sort(np.random.default_rng(seed).choice(len(movies), sample, replace=False))
            movies = movies.subset(positions)
        model = train_model(kind, movies, cv_folds=cv, seed=seed, progress=_progress(status))
        status.update("[bold]writing model")
        meta = artifact.save_model(model.pipeline, model.metadata, out)
    cv_metrics = meta["metrics"].get("cv", {})
    summary = {"model": str(out), "id": meta["id"], "kind": kind, "rows": len(movies),
               "training_seconds": meta["training_seconds"]}
    if cv_metrics:
        summary |= {"cv_macro_auc": round(cv_metrics["macro_auc"], 4),
                    "cv_micro_auc": round(cv_metrics["micro_auc"], 4),
                    "cv_samples_f1": round(cv_metrics["label_sets"]["samples_f1"], 4)}
    _print_json(summary)


@app.command()
def evaluate(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV/zip to evaluate on.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """ROC AUC (macro, micro, per genre), label-set F1 and calibration on labelled data."""
    from .evaluate import evaluate as evaluate_model

    with user_errors():
        loaded = artifact.load_model(model)
        result = evaluate_model(loaded, load_movies(data, labelled=True))
    if as_json:
        _print_json(result)
        return
    typer.echo(f"model {result['model']['id']} on {result['n']} movies from {data}")
    typer.echo(f"macro ROC AUC {result['macro_auc']:.4f}   micro ROC AUC {result['micro_auc']:.4f}")
    sets = result["label_sets"]
    typer.echo(f"label sets: micro F1 {sets['micro_f1']:.4f}  macro F1 {sets['macro_f1']:.4f}  "
               f"samples F1 {sets['samples_f1']:.4f}")
    for genre, auc in result["per_genre"].items():
        typer.echo(f"  {genre:<12} {'n/a (no positives)' if auc is None else f'{auc:.4f}'}")


@app.command()
def predict(
    model: ModelOption,
    plot: Annotated[str, typer.Argument(help="The plot text, or - to read it from stdin.")],
    title: Annotated[str, typer.Option("--title", help="Optional movie title.")] = "",
) -> None:
    """Print the 24 p_<Genre> probabilities and the predicted genres for one plot."""
    with user_errors():
        text = sys.stdin.read() if plot == "-" else plot
        loaded = artifact.load_model(model)
        proba = loaded.predict_proba([{"plot": text, "title": title}])
    record = as_probability_record(proba[0])
    _print_json({**record, "genres": loaded.label_sets(proba)[0]})


@app.command()
def score(
    model: ModelOption,
    inputs: Annotated[list[Path], typer.Argument(help="CSV/zip/Parquet files with a plot column.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output CSV (ID + 24 p_ columns).")],
) -> None:
    """Batch-score files into the submission format; empty plots go to OUT.rejects.csv."""
    from .batch import score_files

    with user_errors(), err.status("[bold]loading model") as status:
        loaded = artifact.load_model(model)
        summary = score_files(loaded, inputs, out, progress=_progress(status))
    _print_json({"input_rows": summary.input_rows, "scored": summary.scored,
                 "rejected": summary.rejected, "output": str(summary.output),
                 "rejects": None if summary.rejects is None else str(summary.rejects)})
