"""The command line: each command end to end on real data, and one-line errors (no tracebacks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from moviegenre.cli import app
from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS

runner = CliRunner()


def run(*args, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    return result


def test_train_then_evaluate_on_held_out_rows(dev_movies, tmp_path):
    genre_lists = [[g for g, on in zip(GENRES, row, strict=True) if on] for row in dev_movies.labels]
    frame = dev_movies.frame.assign(genres=["|".join(names) for names in genre_lists])
    frame.iloc[:1200].to_csv(tmp_path / "train.csv")
    frame.iloc[5800:].to_csv(tmp_path / "heldout.csv")
    trained = run("train", "--data", tmp_path / "train.csv", "--cv", "2", "--out", tmp_path / "m")
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["rows"] == 1200 and summary["cv_macro_auc"] > 0.6
    evaluated = run("evaluate", "--model", tmp_path / "m", "--data", tmp_path / "heldout.csv", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    assert result["n"] == 516
    assert 0.7 < result["macro_auc"] <= 1 and 0.7 < result["micro_auc"] <= 1
    assert set(result["per_genre"]) == set(GENRES)
    # Genres without positives in the held-out rows are reported and left out of the macro.
    for genre in result["genres_without_auc"]:
        assert result["per_genre"][genre] is None


def test_predict_reads_stdin_and_prints_24_keys(small_model_dir):
    result = run("predict", "--model", small_model_dir, "-", input=EXAMPLE_PLOTS["E2"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload)[:24] == list(PROBABILITY_KEYS)
    assert payload["genres"][0] == "Drama"


def test_score_writes_submission_format_and_rejects(small_model_dir, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text(
        ",year,title,plot\n"
        "7,1999,A,a cowboy and an outlaw .\n"
        "8,2000,B,\n"
        "9,2001,C,a ghost haunts a house .\n"
    )
    out = tmp_path / "out" / "scores.csv"
    result = run("score", "--model", small_model_dir, source, "-o", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {"input_rows": 3, "scored": 2, "rejected": 1, "output": str(out),
                       "rejects": str(out.with_name("scores.rejects.csv")), "format": "csv", "partitions": 1,
                       "engine": "local", "workers": 1}
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["ID", *PROBABILITY_KEYS]
    assert scores["ID"].tolist() == [7, 9]
    rejects = pd.read_csv(out.with_name("scores.rejects.csv"))
    assert rejects.to_dict("records") == [
        {"ID": 8, "source": str(source), "row": 2, "reason": "field 'plot' is blank; send the movie's plot text"}
    ]


def test_score_the_real_testing_file(small_model_dir, testing_zip, tmp_path):
    out = tmp_path / "submission.csv"
    result = run("score", "--model", small_model_dir, testing_zip, "-o", out)
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert len(scores) == 3383 and scores["ID"].is_unique
    assert ((scores[list(PROBABILITY_KEYS)] >= 0) & (scores[list(PROBABILITY_KEYS)] <= 1)).all().all()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no temporary files left"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--model", "{missing}", "--data", "{data}"], "does not exist"),
        (["train", "--kind", "nope", "--data", "{data}", "--out", "{tmp}/x"], "unknown model kind"),
        (["score", "--model", "{model}", "{tmp}/none.csv", "-o", "{tmp}/o.csv"], "does not exist"),
        (["score", "--model", "{model}", "{data}", "-o", "{tmp}/o.txt"], "must end in .csv"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(args, message, small_model_dir, tmp_path, dev_zip):
    values = {"missing": tmp_path / "missing", "data": dev_zip, "tmp": tmp_path, "model": small_model_dir}
    result = run(*[a.format(**values) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


#: The least each command needs to get past its argument parsing.
MINIMAL_ARGS = {
    "train": ["--out", "{tmp}/m"],
    "split": ["--out", "{tmp}/s"],
    "evaluate": ["--model", "{tmp}/m", "--data", "{tmp}/d.csv"],
    "predict": ["--model", "{tmp}/m", "a plot"],
    "score": ["--model", "{tmp}/m", "{tmp}/d.csv", "-o", "{tmp}/o.csv"],
    "serve": ["--model", "{tmp}/m", "--port", "1"],
    "explain": ["--model", "{tmp}/m", "a plot"],
    "report": ["--model", "{tmp}/m", "--data", "{tmp}/d.csv", "-o", "{tmp}/r"],
}


def test_every_command_is_checked_for_bad_settings():
    import typer

    assert set(typer.main.get_command(app).commands) == set(MINIMAL_ARGS)


@pytest.mark.parametrize("command", sorted(MINIMAL_ARGS))
def test_bad_settings_are_one_line_from_every_command(command, tmp_path):
    """The console script, as a user runs it: one ``error:`` line naming the variable, before
    the command does anything (nothing written, no model looked for)."""
    args = [a.format(tmp=tmp_path) for a in MINIMAL_ARGS[command]]
    env = {**os.environ, "MOVIEGENRE_MAX_PLOT_CHARS": "abc", "MOVIEGENRE_MAX_ITEMS": "0"}
    proc = subprocess.run([sys.executable, "-m", "moviegenre", command, *args],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: bad setting: ")
    assert "MOVIEGENRE_MAX_PLOT_CHARS='abc': Input should be a valid integer" in line
    assert "MOVIEGENRE_MAX_ITEMS='0': Input should be greater than 0" in line
    assert list(tmp_path.iterdir()) == []


def test_console_script_reports_a_tampered_model_without_traceback(small_model_dir, tmp_path):
    import shutil

    model = shutil.copytree(small_model_dir, tmp_path / "m")
    (model / "model.skops").write_bytes(b"PK\x03\x04 tampered")
    proc = subprocess.run(
        [sys.executable, "-m", "moviegenre", "predict", "--model", str(model), "a plot"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "altered or truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_split_keeps_every_row_once_and_all_columns(dev_zip, tmp_path):
    result = run("split", "--data", dev_zip, "--out", tmp_path, "--test-size", "0.25", "--seed", "3")
    assert result.exit_code == 0, result.output
    train = pd.read_csv(tmp_path / "train.csv", index_col=0)
    heldout = pd.read_csv(tmp_path / "heldout.csv", index_col=0)
    assert (len(train), len(heldout)) == (4737, 1579)
    assert not set(train.index) & set(heldout.index)
    assert list(train.columns) == ["year", "title", "plot", "genres", "rating"]


def test_split_refuses_bad_data_before_writing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(",plot,genres\n1,a plot,\"['Cooking']\"\n")
    result = run("split", "--data", bad, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "unknown genre" in result.stderr
    assert not (tmp_path / "out").exists()


def test_error_text_is_printed_literally(tmp_path):
    # Rich markup would eat "[embed]"; the message must reach the user as written.
    missing = tmp_path / "models[embed]"
    result = run("predict", "--model", missing, "a gunfight in a frontier town")
    assert result.exit_code == 2
    assert f"error: model directory {missing} does not exist" in " ".join(result.stderr.split())


def test_a_bug_is_not_dressed_up_as_a_user_error(small_model_dir, monkeypatch):
    def broken(directory):
        raise RuntimeError("a bug")

    monkeypatch.setattr("moviegenre.cli.artifact.load_model", broken)
    result = run("predict", "--model", small_model_dir, "a gunfight in a frontier town")
    assert isinstance(result.exception, RuntimeError)  # its traceback is shown, not "error: ..."
    assert "error:" not in result.stderr


def test_model_json_records_an_encoder_folder_by_name_only(tmp_path):
    """A model directory travels: an encoder given as a local folder is recorded by its name,
    not by a path of the training machine, and cache folders not at all; a hub name is recorded
    as given."""
    from moviegenre.kinds.registry import describe_params

    folder = tmp_path / "deep" / "my-encoder"
    folder.mkdir(parents=True)
    recorded = describe_params("static", {"encoder": str(folder), "cache_dir": str(tmp_path / "cache")})
    assert recorded == {"encoder": "local folder 'my-encoder'"}
    assert str(tmp_path) not in json.dumps(recorded)
    hub = {"encoder": "sentence-transformers/all-MiniLM-L6-v2"}
    assert describe_params("static", hub) == hub and describe_params("linear", {"C": 1.0}) == {"C": 1.0}


def test_encoder_is_refused_for_a_kind_without_one(tmp_path, dev_zip):
    result = run("train", "--kind", "linear", "--encoder", "x", "--data", dev_zip, "--out", tmp_path / "m")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "takes no option 'encoder'" in result.stderr and "static" in result.stderr
    assert not (tmp_path / "m").exists()


def test_encoder_help_names_the_kinds_that_take_one():
    import typer

    command = typer.main.get_command(app).commands["train"]
    (encoder,) = [param for param in command.params if param.name == "encoder"]
    assert encoder.help.startswith("For the kinds that take an encoder (hybrid, static)")


def test_serve_without_a_model_trains_the_default_through_the_library(tmp_path, monkeypatch):
    calls = {}
    monkeypatch.setenv("MOVIEGENRE_MODEL", str(tmp_path / "models" / "default"))
    monkeypatch.setenv("MOVIEGENRE_DATA_HOME", str(tmp_path / "home"))
    from moviegenre.core.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setattr("moviegenre.training.train.train_default",
                        lambda directory, **kwargs: calls.setdefault("trained", (directory, kwargs)))
    monkeypatch.setattr("moviegenre.api.server.run", lambda settings, **kwargs: calls.setdefault("served", settings))
    try:
        result = run("serve", "--data", tmp_path / "train.csv")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    directory, kwargs = calls["trained"]
    assert directory == tmp_path / "models" / "default"
    assert kwargs["data"] == tmp_path / "train.csv" and kwargs["data_home"] == tmp_path / "home"
    assert calls["served"].model == directory.resolve()


def test_version_prints_the_installed_version():
    import moviegenre

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"moviegenre {moviegenre.__version__}"


def test_explain_help_names_the_kinds_that_explain_from_the_registry():
    import typer

    from moviegenre.kinds.registry import get_kind, kind_names

    explaining = [name for name in kind_names() if get_kind(name).explainer is not None]
    assert "static" in explaining and len(explaining) < len(kind_names())
    help_text = typer.main.get_command(app).commands["explain"].help
    assert help_text.endswith(f"(models of kind {', '.join(explaining)}).")


def test_evaluate_says_the_calibration_methods_in_words():
    from moviegenre.cli import calibration_in_words

    assert calibration_in_words({"identity": 1, "platt": 23, "isotonic": 0}) == (
        "Platt scaling for 23 genres, left as they were (too few examples to fit a map) for 1 genre")
