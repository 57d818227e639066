"""README.md's examples, run as a reader would run them, so that they cannot drift.

What is run, in README order, by bash in one temporary working directory:

- every command of a fenced ``console`` block: a line starting with ``$ `` is a command (a
  trailing `` \\`` continues it on the next line); the lines after it, up to the next ``$ `` line
  or the end of the block, are its output as shown to the reader;
- every ``python`` block, in a fresh interpreter.

Other blocks (``bash``, ``text``, ...) are never run: installation, deployment, clusters.

What is checked, for each command: it exits 0, or, when its shown output starts with
``error:``, it exits non-zero and its stderr starts with ``error:``. Then, unless the line before
the block is ``<!-- readme-test: no-output-check -->``, its output (stderr for an error) against
the shown output:

- shown JSON (where ``...`` may stand for array items, key/value pairs or a value): the real
  stdout is JSON of the same shape and the same values, except those that differ run to run.
  Every object has the keys shown, and exactly those when shown without ``...``; an array shown
  without ``...`` has as many items, and the items shown before (after) a ``...`` are the first
  (last) real ones. Values:

  - strings, integers, ``true``, ``false`` and ``null`` equal the real ones: error codes,
    messages, routes, kinds, file names, limits, ``"rejected": 0``;
  - a number with a fraction (a metric, a probability, seconds) stands for any number, or
    ``null`` (a metric the sample cannot give);
  - a model id (``<kind>-YYYYMMDDTHHMMSSZ-<6 hex>``) is a real id of the shown kind, and the
    counts of the data read (``rows``, ``n``, ``input_rows``, ``scored``; the test reads
    samples, the README shows the full files) are integers. Each differs by run, but one shown
    value is one real value in every output that shows it: the model trained is the model
    served and explained, and ``scored`` equals ``input_rows``;
  - a timestamp, a sha256 digest or a version has the same form as the shown one;
  - what a model trained on the sample says, or the sample lacks (``genres``, ``genre``,
    ``genres_without_auc``, ``term``), is genre names (:data:`moviegenre.GENRES`) or text.

  A failing value is named by its path in the JSON, with the shown and the real value.
- shown text: every shown line without ``...`` appears in the real output (stdout and stderr),
  numbers, run-to-run model ids (a model id of the same kind stands for any) and runs of white
  space aside.

The environment: ``PATH`` with this interpreter's ``bin`` first, ``HF_HUB_OFFLINE=1`` and
``MOVIEGENRE_DATA_HOME`` inside the working directory. Nothing is downloaded: a ``curl`` command
that fetches from the internet is skipped, and small samples of the test data files
(:mod:`tests.support.data`) stand in for what it would fetch (``dataTraining.zip``,
``dataTesting.zip``).
A command that talks to ``127.0.0.1:8000`` gets a real ``moviegenre serve`` of the model the
README names in ``moviegenre serve --model DIR`` (default ``models/linear``), started when the
first such command comes, on a free port that replaces 8000 in the commands; one that talks to
``127.0.0.1:8001``, of the model the README serves with ``--port 8001`` (the own-labels
example). The working directory holds a copy of the repository's ``examples/`` folder, as a
clone does. The blocks with
such commands run after all the others, since the README may train that model further down.
Each command runs in its own bash: ``cd`` and ``export`` do not carry over to the next one.

The parser is tested on its own, on small texts, so a failure tells a README mistake from a
parser bug.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import typer
from tests.support.data import DEV_FILE, TESTING_FILE, real_data_file
from tests.support.servers import ServerStartError, serve_in_background

from conftest import REPO
from moviegenre import GENRES
from moviegenre.cli import app

README = REPO / "README.md"
NO_OUTPUT_CHECK = "no-output-check"
MARKERS = {NO_OUTPUT_CHECK}
#: The address the README's API examples use; rewritten to the test server's.
README_SERVER = re.compile(r"(?:127\.0\.0\.1|localhost):(?P<port>800[01])\b")
DEFAULT_SERVED_MODEL = "models/linear"
#: Files the README tells the reader to download, and the sample of the real data standing in
#: for each: (the test data file it is drawn from, see tests/support/data.py; movies in the sample).
STAND_INS = {"dataTraining.zip": (DEV_FILE, 400), "dataTesting.zip": (TESTING_FILE, 200)}
SAMPLE_SEED = 0
COMMAND_TIMEOUT_S = 300
SERVER_START_TIMEOUT_S = 60
SERVER_ERROR_CHARS = 3000


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One ``$ `` command of a console block and the output shown under it."""

    text: str  # as bash gets it: continuation lines kept, with their backslashes
    shown: str
    line: int  # README line of the ``$ ``


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, its text, where it starts and what the test does."""

    lang: str
    body: str
    line: int  # README line of the opening fence
    marker: str | None = None  # the readme-test marker on the line before it
    commands: tuple[Command, ...] = ()

    @property
    def runs(self) -> bool:
        return self.lang in ("console", "python")

    @property
    def checks_output(self) -> bool:
        return self.marker != NO_OUTPUT_CHECK


FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<name>[\w-]+)\s*-->\s*$")


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end])
        lang = opening["lang"].lower()
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        marker = m["name"] if (m := MARKER.match(previous)) else None
        commands = parse_console(body, first_line=i + 2) if lang == "console" else ()
        blocks.append(Block(lang, body, i + 1, marker, commands))
        i = end + 1
    return blocks


def parse_console(body: str, first_line: int = 1) -> tuple[Command, ...]:
    """The commands of a console block and the output shown under each."""
    commands: list[Command] = []
    lines = body.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1  # text before the first command: not output of anything
            continue
        start, parts = i, [lines[i][2:]]
        while parts[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            parts.append(lines[i])
        i += 1
        output_start = i
        while i < len(lines) and not lines[i].startswith("$ "):
            i += 1
        shown = "\n".join(lines[output_start:i]).strip("\n")
        commands.append(Command("\n".join(parts), shown, first_line + start))
    return tuple(commands)


# --- comparing output ------------------------------------------------------------------------


ELLIPSIS = "\u2026readme-test-ellipsis\u2026"


class Abbreviated(dict):
    """A JSON object shown with ``...`` in it: more keys may follow."""


def parse_shown_json(shown: str):
    """The JSON value of shown output that may hold ``...`` abbreviations (with or without the
    commas around them), or None if it is not JSON (does not start with ``{`` or ``[``).

    An object with ``...`` comes back as :class:`Abbreviated`; ``...`` in an array or in place
    of a value comes back as :data:`ELLIPSIS`. Raises ValueError if it starts like JSON but
    does not parse.
    """
    text = shown.strip()
    if not text or text[0] not in "{[":
        return None
    out, stack, in_string, escaped, i = [], [], False, False, 0
    while i < len(text):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif text.startswith("...", i):
            before = "".join(out).rstrip()[-1:]
            after = text[i + 3 :].lstrip()[:1]
            in_object = stack[-1:] == ["{"] and before != ":"
            out.append(", " if before not in ",{[:" else "")
            out.append(f'"{ELLIPSIS}": null' if in_object else f'"{ELLIPSIS}"')
            out.append(", " if after not in ",}]" else "")  # "" is in every string: the end
            i += 3
            continue
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
        out.append(char)
        i += 1

    def object_from(pairs):
        keys = dict(pair for pair in pairs if pair[0] != ELLIPSIS)
        return Abbreviated(keys) if len(keys) < len(pairs) else keys

    return json.loads("".join(out), object_pairs_hook=object_from)


#: Keys whose values depend on the data a command read: the test runs the README on samples
#: (:data:`STAND_INS`), and the README shows counts of the full files. Compared across outputs.
DATA_COUNTS = frozenset({"rows", "n", "input_rows", "scored"})
#: Keys whose values a model trained on the sample says, or that the sample lacks: genre names
#: (one or a list) must be genre names, terms strings.
MODEL_SAYS = frozenset({"genres", "genre", "genres_without_auc", "term"})
GENRE_KEYS = MODEL_SAYS - {"term"}
#: The labels of the own-labels example (``examples/own-labels/catalogue.csv``'s 0/1 columns):
#: what its model says in place of genres.
EXAMPLE_CATALOGUE = REPO / "examples" / "own-labels" / "catalogue.csv"
EXAMPLE_LABELS = frozenset(
    name.removeprefix("tag_")
    for name in (next(csv.reader(EXAMPLE_CATALOGUE.open(encoding="utf-8"))) if EXAMPLE_CATALOGUE.exists() else [])
    if name.startswith("tag_")
)
#: A model id: its kind, when it was trained (UTC) and a random suffix.
MODEL_ID = re.compile(r"(?P<kind>[a-z]+)-\d{8}T\d{6}Z-[0-9a-f]{6}")
#: Strings that differ from run to run, by what they look like: shown and real must both match.
RUN_STRINGS = {
    "a timestamp": re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
    "a sha256 digest": re.compile(r"[0-9a-f]{64}"),
    "a version": re.compile(r"\d+(?:\.\d+)+(?:[.+-]?[0-9A-Za-z]+)*"),
}


class RunValues:
    """The real value each shown value that differs by run (a model id, a count of the sample)
    took first, and where: the README shows one value for one thing, so the outputs must agree."""

    def __init__(self) -> None:
        self.line: int | None = None  # the README line of the command being compared
        self.first: dict[tuple[type, object], tuple[object, str]] = {}

    def agree(self, shown, real, where: str) -> list[str]:
        here = where if self.line is None else f"{where} (README line {self.line})"
        first_real, first_where = self.first.setdefault((type(shown), shown), (real, here))
        if first_real == real:
            return []
        return [f"{where}: got {real!r}, but {first_where} got {first_real!r}; the README shows {shown!r} for both"]


def json_problems(
    shown, real, where: str = "output", key: str | None = None, run: RunValues | None = None
) -> list[str]:
    """How ``real`` differs from ``shown``: missing keys, extra keys where nothing was left out,
    an object or array where the other was shown, and values, as the module's docstring says.
    ``key`` is the key that holds them; ``run`` the values earlier outputs gave (none if None)."""
    run = RunValues() if run is None else run
    if shown == ELLIPSIS:
        return []
    if key in MODEL_SAYS:
        return model_says_problems(shown, real, where, key)
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{where}: shown an object, got {type(real).__name__}"]
        problems = []
        if missing := [k for k in shown if k not in real]:
            problems.append(f"{where}: keys {missing} are shown but missing (real keys: {list(real)})")
        if not isinstance(shown, Abbreviated) and (extra := [k for k in real if k not in shown]):
            problems.append(f"{where}: keys {extra} are not shown; show them, or add '...'")
        for k in shown:
            if k in real:
                problems += json_problems(shown[k], real[k], f"{where}[{k!r}]", k, run)
        return problems
    if isinstance(shown, list):
        return array_problems(shown, real, where, run)
    return value_problems(shown, real, where, key, run)


def array_problems(shown: list, real, where: str, run: RunValues) -> list[str]:
    """Items before the first ``...`` (and between two) are the first real items, items after
    the last ``...`` the last; with no ``...``, the real array has as many items."""
    if not isinstance(real, list):
        return [f"{where}: shown an array, got {type(real).__name__}"]
    if ELLIPSIS not in shown:
        if len(shown) != len(real):
            if not any(isinstance(item, dict | list) for item in shown):
                return [f"{where}: shown {shown!r}, got {real!r}"]
            return [f"{where}: shown {len(shown)} items, got {len(real)}"]
        pairs = list(enumerate(zip(shown, real, strict=True)))
    else:
        after = len(shown) - shown[::-1].index(ELLIPSIS)
        head = [item for item in shown[:after] if item != ELLIPSIS]
        tail = shown[after:]
        if len(real) < len(head) + len(tail):
            return [f"{where}: shown at least {len(head) + len(tail)} items, got {len(real)}"]
        start = len(real) - len(tail)
        pairs = [*enumerate(zip(head, real, strict=False)), *enumerate(zip(tail, real[start:], strict=True), start)]
    return [p for k, (s, r) in pairs for p in json_problems(s, r, f"{where}[{k}]", None, run)]


def value_problems(shown, real, where: str, key: str | None, run: RunValues) -> list[str]:
    """A shown number with a fraction stands for any number (or null: a metric the sample
    cannot give); a count of the data agrees across outputs; a model id has the shown kind and
    agrees across outputs; a string in :data:`RUN_STRINGS` has the same form; anything else
    is the real value."""
    if isinstance(shown, float):
        if real is None or (isinstance(real, int | float) and not isinstance(real, bool)):
            return []
        return [f"{where}: shown a number ({shown!r}), got {real!r}"]
    if key in DATA_COUNTS and type(shown) is int:
        if type(real) is not int:
            return [f"{where}: shown a count ({shown!r}), got {real!r}"]
        return run.agree(shown, real, where)
    if isinstance(shown, str) and (shown_id := MODEL_ID.fullmatch(shown)):
        real_id = MODEL_ID.fullmatch(real) if isinstance(real, str) else None
        if real_id is None or real_id["kind"] != shown_id["kind"]:
            return [f"{where}: shown {shown!r}, got {real!r}, not the id of a {shown_id['kind']!r} model"]
        return run.agree(shown, real, where)
    if isinstance(shown, str):
        for what, form in RUN_STRINGS.items():
            if form.fullmatch(shown):
                ok = isinstance(real, str) and form.fullmatch(real)
                return [] if ok else [f"{where}: shown {what} ({shown!r}), got {real!r}"]
    if type(shown) is type(real) and shown == real:
        return []
    return [f"{where}: shown {shown!r}, got {real!r}"]


def model_says_problems(shown, real, where: str, key: str) -> list[str]:
    """What a model trained on the sample says (or the sample lacks): genre names, terms."""
    if isinstance(shown, list) != isinstance(real, list):
        return [f"{where}: shown {shown!r}, got {real!r}"]
    values = real if isinstance(real, list) else [real]
    if key not in GENRE_KEYS:
        return [] if all(isinstance(v, str) for v in values) else [f"{where}: shown text, got {real!r}"]
    if unknown := [v for v in values if v not in GENRES and v not in EXAMPLE_LABELS]:
        return [f"{where}: {unknown!r} are not genres (moviegenre.GENRES) nor labels of the example catalogue"]
    return []


NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def normalize_text(text: str) -> str:
    """Text with every model id as its kind (``static-<id>``), every number as ``#`` and every
    run of white space as one space."""
    text = MODEL_ID.sub(lambda found: f"{found['kind']}-<id>", ANSI.sub("", text))
    return " ".join(NUMBER.sub("#", text).split())


def text_problems(shown: str, real: str) -> list[str]:
    """The shown lines (those without ``...``) that are not in the real output."""
    haystack = normalize_text(real)
    return [
        f"shown line not in the output: {line.strip()!r}"
        for line in shown.split("\n")
        if line.strip() and "..." not in line and normalize_text(line) not in haystack
    ]


def output_problems(shown: str, stdout: str, stderr: str, run: RunValues | None = None) -> list[str]:
    """How a command's real output differs from what the README shows of it; ``run`` holds
    the values that differ by run as earlier outputs gave them."""
    if not shown.strip():
        return []
    try:
        expected = parse_shown_json(shown)
    except ValueError as exc:
        return [
            f"the shown output starts like JSON but does not parse ({exc}); fix it or mark the block no-output-check"
        ]
    if expected is None:
        return text_problems(shown, stdout + "\n" + stderr)
    try:
        real = json.loads(stdout)
    except json.JSONDecodeError as exc:
        return [f"the README shows JSON, but stdout is not JSON ({exc})"]
    return json_problems(expected, real, run=run)


# --- running ---------------------------------------------------------------------------------


@dataclass
class Result:
    """What one README command (or runnable python block) did."""

    line: int
    command: str
    shown: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    skipped: str | None = None  # why it was not run
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        def tail(text: str, limit: int = 3000) -> str:
            return text if len(text) <= limit else "[...]" + text[-limit:]

        return (
            f"README.md line {self.line}: $ {self.command}\n"
            + "".join(f"  - {problem}\n" for problem in self.problems)
            + f"exit code {self.returncode} after {self.seconds:.1f} s\n"
            f"--- stdout ---\n{tail(self.stdout)}\n--- stderr ---\n{tail(self.stderr)}\n"
        )


def download_target(command: str) -> list[str] | None:
    """For a ``curl`` command that fetches from the internet, the names of the files it would
    save; None for any other command (including ``curl`` to the README's local server)."""
    try:
        words = shlex.split(command.replace("\\\n", " "))
    except ValueError:
        return None
    if not words or words[0] != "curl" or README_SERVER.search(command):
        return None
    return [url.rsplit("/", 1)[-1].split("?")[0] for url in words if url.startswith(("http://", "https://"))]


def talks_to_server(block: Block, port: str | None = None) -> bool:
    """Whether ``block`` talks to a README server (on ``port``, if given)."""
    return any(port in (None, found["port"]) for command in block.commands
               for found in README_SERVER.finditer(command.text))


def served_model(text: str, port: str = "8000") -> str | None:
    """The model directory the README serves on ``port`` for its API examples: the last one a
    code block serves (``moviegenre serve --model DIR``, with ``--port`` if not 8000) before the
    first example that talks to that port; for port 8000, ``models/linear`` when none is named."""
    named = DEFAULT_SERVED_MODEL if port == "8000" else None
    for block in parse_blocks(text):
        if talks_to_server(block, port):
            break
        for command in re.findall(r"moviegenre serve\b[^\n]*", block.body):
            model, given = re.search(r"--model[ =](\S+)", command), re.search(r"--port[ =](\d+)", command)
            if model and (given[1] if given else "8000") == port:
                named = model[1]
    return named


def write_sample(source: Path, target: Path, n: int) -> None:
    """A zip of ``n`` movies of ``source`` (a zip holding one CSV), same columns and member name,
    drawn with a fixed seed."""
    with zipfile.ZipFile(source) as archive:
        (member,) = [name for name in archive.namelist() if name.lower().endswith(".csv")]
        text = archive.read(member).decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    keep = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(rows), min(n, len(rows)), replace=False))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows[k] for k in keep)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, buffer.getvalue())


class ReadmeRunner:
    """Runs a README's runnable blocks in order in ``workdir``; starts the API server on demand."""

    def __init__(self, text: str, workdir: Path, stack: ExitStack):
        self.text, self.workdir, self.stack = text, workdir, stack
        self.server_urls: dict[str, str] = {}
        self.server_errors: dict[str, ServerStartError] = {}
        self.run_values = RunValues()
        bin_dir = Path(sys.prefix) / "bin"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGENRE_")}
        self.env = {
            **env,
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "HF_HUB_OFFLINE": "1",
            "MOVIEGENRE_DATA_HOME": str(workdir / ".moviegenre-data"),
            "COLUMNS": "80",  # Rich wraps help text to it; a CI shell may set another
            "NO_COLOR": "1",
        }

    def run(self, blocks: list[Block]) -> dict[int, list[Result]]:
        """Results by block line, in the order run: README order, except that blocks talking
        to the API come last, since the README may train the model it serves further down."""
        runnable = [block for block in blocks if block.runs]
        ordered = sorted(runnable, key=talks_to_server)  # stable: README order within each group
        return {block.line: self.run_block(block) for block in ordered}

    def run_block(self, block: Block) -> list[Result]:
        if block.lang == "python":
            result = self.execute([sys.executable, "-c", block.body], block.line, "python <block>")
            if result.returncode != 0:
                result.problems.append("the python block raised")
            return [result]
        return [self.run_command(command, block.checks_output) for command in block.commands]

    def run_command(self, command: Command, check_output: bool) -> Result:
        fetched = download_target(command.text)
        if fetched is not None:
            result = Result(command.line, command.text, command.shown, skipped="download")
            if unknown := [name for name in fetched if name not in STAND_INS]:
                result.problems.append(
                    f"downloads {unknown}, for which the test has no stand-in (it has {list(STAND_INS)})"
                )
            return result
        text = command.text
        if README_SERVER.search(text):
            try:
                text = README_SERVER.sub(lambda found: self.server(found["port"]).removeprefix("http://"), text)
            except ServerStartError as exc:
                message = str(exc)[:SERVER_ERROR_CHARS]
                return Result(command.line, command.text, command.shown, problems=[f"no server: {message}"])
        result = self.execute(["bash", "-c", text], command.line, command.text, command.shown)
        expects_error = command.shown.lstrip().startswith("error:")
        if expects_error:
            if result.returncode == 0:
                result.problems.append("the README shows an error, but the command succeeded")
            elif not result.stderr.lstrip().startswith("error:"):
                result.problems.append("the README shows an error, but stderr does not start with 'error:'")
            elif check_output:
                result.problems += text_problems(command.shown, result.stderr)
        elif result.returncode != 0:
            result.problems.append(f"exited with {result.returncode}")
        elif check_output:
            self.run_values.line = command.line
            result.problems += output_problems(command.shown, result.stdout, result.stderr, self.run_values)
        return result

    def execute(self, argv: list[str], line: int, shown_command: str, shown: str = "") -> Result:
        result = Result(line, shown_command, shown)
        start = time.monotonic()
        try:
            done = subprocess.run(argv, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)  # fmt: skip
            result.returncode, result.stdout, result.stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            result.stdout, result.stderr = _text(exc.stdout), _text(exc.stderr)
            result.problems.append(f"still running after {COMMAND_TIMEOUT_S} s; killed")
        result.seconds = time.monotonic() - start
        return result

    def server(self, port: str = "8000") -> str:
        """The URL of the test server standing for the README's ``port``, started on first use;
        a failed start is not retried."""
        if port in self.server_errors:
            raise self.server_errors[port]
        if port not in self.server_urls:
            model = served_model(self.text, port)
            if model is None or not (self.workdir / model).is_dir():
                self.server_errors[port] = ServerStartError(
                    f"the README never made {model}, the model it serves on port {port}"
                    if model else f"the README never serves a model on port {port}")
                raise self.server_errors[port]
            settings = {"MOVIEGENRE_DATA_HOME": self.env["MOVIEGENRE_DATA_HOME"]}
            serving = serve_in_background(
                model, cwd=self.workdir, env=settings, log=self.workdir / f".readme-test-serve-{port}.log",
                timeout_s=SERVER_START_TIMEOUT_S,
            )  # fmt: skip
            try:
                self.server_urls[port] = self.stack.enter_context(serving).base_url
            except ServerStartError as exc:
                self.server_errors[port] = exc
                raise
        return self.server_urls[port]


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


# --- the README ------------------------------------------------------------------------------


README_TEXT = README.read_text(encoding="utf-8") if README.exists() else ""
README_BLOCKS = parse_blocks(README_TEXT)
RUNNABLE = [block for block in README_BLOCKS if block.runs]


@pytest.fixture(scope="module")
def readme_results(tmp_path_factory) -> Iterator[dict[int, list[Result]]]:
    """Every runnable README block run once, in order; results by the block's first line."""
    workdir = tmp_path_factory.mktemp("readme")
    shutil.copytree(REPO / "examples", workdir / "examples")
    for name, (source, n) in STAND_INS.items():
        write_sample(real_data_file(source), workdir / name, n)
    with ExitStack() as stack:
        results = ReadmeRunner(README_TEXT, workdir, stack).run(README_BLOCKS)
    yield results


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"line{b.line}-{b.lang}" for b in RUNNABLE])
def test_readme_block(block, readme_results):
    results = readme_results[block.line]
    failed = [result for result in results if result.problems]
    run_before = list(readme_results)[: list(readme_results).index(block.line)]
    earlier = [line for line in run_before if any(r.problems for r in readme_results[line])]
    note = f"(earlier blocks failed too, at README lines {earlier}; this may follow from them)\n" if earlier else ""
    assert not failed, note + "\n".join(result.report() for result in failed)


def test_readme_has_runnable_examples():
    assert [block for block in README_BLOCKS if block.lang == "console"], "README.md has no ```console block"
    empty = [block.line for block in README_BLOCKS if block.lang == "console" and not block.commands]
    assert not empty, f"console blocks without a '$ ' command at README lines {empty}"


@pytest.mark.parametrize("needle", ["/work/", "/tmp/", "/root/", "../shared"])
def test_readme_names_no_path_of_this_machine(needle):
    lines = [n for n, line in enumerate(README_TEXT.split("\n"), 1) if needle in line]
    assert not lines, f"README.md mentions {needle!r} at lines {lines}"


def test_readme_html_comments_are_only_test_markers():
    comments = re.findall(r"<!--.*?-->", README_TEXT, flags=re.DOTALL)
    other = [c for c in comments if not ((m := MARKER.match(c)) and m["name"] in MARKERS)]
    assert not other, f"HTML comments other than {sorted(f'<!-- readme-test: {m} -->' for m in MARKERS)}: {other}"


def test_readme_mentions_every_command():
    group = typer.main.get_command(app)
    names = [name for name, command in group.commands.items() if not command.hidden]
    assert names
    missing = [name for name in names if not re.search(rf"\bmoviegenre\s+{re.escape(name)}\b", README_TEXT)]
    assert not missing, f"README.md never shows 'moviegenre {missing[0]}' (nor {missing[1:]})"


def test_the_settings_table_lists_every_setting():
    from moviegenre.core.settings import Settings

    section = README_TEXT.split("## Settings\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(MOVIEGENRE_\w+)` \|", section, flags=re.M))
    settings = {f"MOVIEGENRE_{name.upper()}" for name in Settings.model_fields}
    assert listed == settings, f"not in README's Settings table: {settings - listed}; not settings: {listed - settings}"


# --- what the README says the library and the API give ----------------------------------------

#: ``moviegenre.X`` where X is followed by no ``.name``: a name the library exports, unless X is one
#: of the package's modules. ``moviegenre.api.lambda_handler.handler`` is a module path, not one.
README_LIBRARY_NAME = re.compile(r"(?<![\w./-])moviegenre\.([A-Za-z_]\w*)\b(?!\.\w)")


def test_every_library_name_the_readme_shows_is_public_and_importable():
    import importlib
    import pkgutil

    import moviegenre

    modules = {module.name for module in pkgutil.iter_modules(moviegenre.__path__)}
    names = set(README_LIBRARY_NAME.findall(README_TEXT)) - modules
    assert {"InvalidItem", "MovieGenreError", "load_model", "GENRES"} <= names, names  # the rule finds them
    private = sorted(names - set(moviegenre.__all__))
    assert not private, f"README.md names moviegenre.{private[0]}, which is not in moviegenre.__all__ ({private})"
    for name in sorted(names):
        assert getattr(importlib.import_module("moviegenre"), name, None) is not None, name


def readme_error_table() -> set[tuple[int, str]]:
    """(status, code) of each row of README's Errors table."""
    section = README_TEXT.split("### Errors\n", 1)[1].split("\n### ", 1)[0]
    return {(int(status), code) for status, code in re.findall(r"^\| (\d{3}) \| `(\w+)` \|", section, flags=re.M)}


def codes_the_api_names() -> set[str]:
    """Every error code the API's modules name: the code given to ``ApiError`` or ``error_response``
    (a string, or a module constant), and the codes of Starlette's own errors. A code held in a
    variable (``exc.code``) comes from one of these."""
    import ast
    import importlib

    from moviegenre.api import errors

    codes = set(errors._CODES_BY_STATUS.values())
    for path in sorted((REPO / "src" / "moviegenre" / "api").rglob("*.py")):
        module = importlib.import_module(".".join(path.relative_to(REPO / "src").with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = getattr(node, "func", None)
            if getattr(called, "id", getattr(called, "attr", None)) in ("ApiError", "error_response") and len(
                node.args
            ) >= 2:
                code = node.args[1]
                if isinstance(code, ast.Constant):
                    codes.add(code.value)
                elif isinstance(code, ast.Name) and code.id.isupper():
                    codes.add(getattr(module, code.id))
    return codes


def test_the_error_table_lists_every_code_the_api_sends(small_model, tmp_path):
    """Each row of the table is the answer to a real request, and the API names no other code."""
    from fastapi.testclient import TestClient

    from moviegenre.api.app import create_app
    from moviegenre.core.settings import Settings
    from moviegenre.model.genre_model import GenreModel

    class Failing(GenreModel):
        def predict_proba(self, items, **kwargs):
            raise RuntimeError("a bug")

    class Slow(GenreModel):
        def predict_proba(self, items, **kwargs):
            time.sleep(0.5)
            return super().predict_proba(items, **kwargs)

    def app(model=None, **settings):
        limits = {"api_key": None, "max_plot_chars": 100, "max_items": 3, "max_body_bytes": 2_000,
                  "max_explained_items": 2, "model": tmp_path / "no-model", **settings}  # fmt: skip
        return stack.enter_context(TestClient(create_app(model, Settings(**limits)), raise_server_exceptions=False))

    def same(cls, kind: str | None = None):
        card = small_model.metadata if kind is None else {**small_model.metadata, "kind": kind}
        return cls(None, card, scorer=small_model.scorer)

    json_body = {"content-type": "application/json"}
    one = {"id": "1", "plot": "a cowboy rides"}
    with ExitStack() as stack:
        served, keyed, empty = app(small_model), app(small_model, api_key="k"), app()
        seed, failing, slow = app(same(GenreModel, "seed")), app(same(Failing)), app(same(Slow), request_timeout_s=0.05)
        answers = [
            served.post("/v1/predict", content=b'{"items": [', headers=json_body),
            served.post("/v1/predict", content=b'{"items": [{"id": "1", "plot": "\xff"}]}', headers=json_body),
            served.get("/inference?plot=%FF"),
            keyed.get("/inference", params={"plot": "a cowboy rides"}),
            served.get("/no/such/route"),
            served.post("/inference"),
            served.get("/inference", params={"plot": "x" * 101}),
            served.post("/v1/predict", json={"items": [one] * 4}),
            served.post("/v1/predict", json={"items": [one] * 3, "explain": True}),
            served.post("/v1/predict", content=b" " * 3_000, headers=json_body),
            served.get("/inference", params={"plot": "x" * 10_000}),
            served.post("/v1/predict", content=b"plot=x", headers={"content-type": "application/x-www-form-urlencoded"}),
            served.get("/inference", params={"plot": "..."}),
            seed.get("/inference", params={"plot": "a cowboy rides", "explain": "true"}),
            failing.get("/inference", params={"plot": "a cowboy rides"}),
            empty.get("/inference", params={"plot": "a cowboy rides"}),
            slow.post("/v1/predict", json={"items": [one]}),
        ]
    answered = {(response.status_code, response.json()["error"]["code"]) for response in answers}
    # Answered by the server before the app: tests/api/test_api_serve.py sends those requests.
    table = readme_error_table() - {(400, "bad_request"), (431, "headers_too_large")}
    assert answered == table, f"answered, not in the table: {answered - table}; in the table, never answered: {table - answered}"
    unlisted = codes_the_api_names() - {code for _, code in table}
    assert not unlisted, f"the API can answer {sorted(unlisted)}, which README's Errors table does not list"


# --- the parser, on small texts --------------------------------------------------------------


SAMPLE = """\
# Title

```bash
pip install moviegenre
```

```console
$ moviegenre split --data dataTraining.zip \\
    --out data/split
{"train": "data/split/train.csv", "heldout": "data/split/heldout.csv"}

$ moviegenre predict --model models/linear "a plot"
{"p_Action": 0.686, ..., "genres": [...]}
$ moviegenre train --out x
error: something is wrong
```

<!-- readme-test: no-output-check -->

```console
$ moviegenre --help
```

```python
print(1)
```

```text
not run
```

- In a list:

  ```console
  $ echo hi
  hi
  ```
"""


def test_parse_blocks_finds_languages_lines_and_markers():
    blocks = parse_blocks(SAMPLE)
    assert [(b.lang, b.line, b.runs, b.checks_output) for b in blocks] == [
        ("bash", 3, False, True),
        ("console", 7, True, True),
        ("console", 20, True, False),
        ("python", 24, True, True),
        ("text", 28, False, True),
        ("console", 34, True, True),
    ]
    assert blocks[-1].commands == (Command("echo hi", "hi", 35),)


def test_parse_console_joins_continuations_and_splits_outputs():
    split, predict, train = parse_blocks(SAMPLE)[1].commands
    assert split == Command(
        "moviegenre split --data dataTraining.zip \\\n    --out data/split",
        '{"train": "data/split/train.csv", "heldout": "data/split/heldout.csv"}',
        8,
    )
    assert predict.shown == '{"p_Action": 0.686, ..., "genres": [...]}'
    assert (predict.line, train.line) == (12, 14)
    assert train.shown == "error: something is wrong"


def test_unclosed_fence_runs_to_the_end():
    (block,) = parse_blocks("```console\n$ true\n")
    assert block.commands == (Command("true", "", 2),)


@pytest.mark.parametrize(
    ("shown", "real", "problems"),
    [
        ('{"a": 0.5, "b": [0.1, 0.2]}', '{"a": 2, "b": [0.3, 0.4]}', []),
        ('{"a": 0.5, ...}', '{"a": 2.5, "z": 3}', []),
        ('{"a": 0.5}', '{"a": 2.5, "z": 3}', ["output: keys ['z'] are not shown; show them, or add '...'"]),
        ('{"a": 0.5, "b": 0.5}', '{"a": 2.5}', ["output: keys ['b'] are shown but missing (real keys: ['a'])"]),
        ('{"p_Action": 0.686, ..., "genres": [...]}', '{"p_Action": 0.1, "p_War": 0.2, "genres": ["War"]}', []),
        (
            '{"n": 1, "per_genre": {"Action": 0.8972, ...},\n "calibration": {...}}',
            '{"n": 5, "per_genre": {"Action": 1, "War": null}, "calibration": {"brier": 0.1}}',
            [],
        ),
        (
            '{"n": 1, "label_sets": {"micro_f1": 0.6, ...}}',
            '{"n": 1, "label_sets": {"macro_f1": 0.6}}',
            ["output['label_sets']: keys ['micro_f1'] are shown but missing (real keys: ['macro_f1'])"],
        ),
        ('{"a": ..., "b": 1}', '{"a": {"x": 1}, "b": 1}', []),
        ('{\n  "a": 1,\n  ...\n  "z": 2\n}', '{"a": 1, "b": 2, "z": 2}', []),  # pretty-printed, no comma
        ('{"a": 1 ...}', '{"a": 1, "b": 2}', []),
        (
            '{"m": {"id": "x"}}',
            '{"m": {"id": "x", "kind": "linear"}}',
            ["output['m']: keys ['kind'] are not shown; show them, or add '...'"],
        ),
        ('[{"id": 1, ...}, ...]', '[{"id": 1, "g": []}, {"id": 3}]', []),
        ('{"s": "a \\" ... b"}', '{"s": "a \\" ... b"}', []),  # '...' inside a string is text, not an abbreviation
        ('{"a": {}}', '{"a": []}', ["output['a']: shown an object, got list"]),
    ],
)
def test_json_shape(shown, real, problems):
    assert json_problems(parse_shown_json(shown), json.loads(real)) == problems


ROUTES = '["/healthz", "/inference", "/v1/model", "/v1/predict"]'
ID = "linear-20261203T041053Z-e4b1c4"


@pytest.mark.parametrize(
    ("shown", "real", "problems"),
    [
        (
            '{"error": {"code": "invalid_request", "message": "no plot"}}',
            '{"error": {"code": "unsupported_media_type", "message": "no plot"}}',
            ["output['error']['code']: shown 'invalid_request', got 'unsupported_media_type'"],
        ),
        (ROUTES, ROUTES, []),
        (
            ROUTES,
            '["/healthz", "/inference", "/v1/predict"]',
            [f"output: shown {json.loads(ROUTES)!r}, got ['/healthz', '/inference', '/v1/predict']"],
        ),
        (ROUTES, ROUTES.replace("/v1/model", "/v1/models"), ["output[2]: shown '/v1/model', got '/v1/models'"]),
        ('["a", ..., "z"]', '["a", "b", "c", "z"]', []),  # after the last '...': the last items
        ('["a", ..., "z"]', '["a", "z", "c"]', ["output[2]: shown 'z', got 'c'"]),
        ('["a", "b", ...]', '["a"]', ["output: shown at least 2 items, got 1"]),
        ('{"p": 0.25, "auc": 0.9}', '{"p": 0.75, "auc": null}', []),  # null: a metric the sample cannot give
        ('{"p": 0.25}', '{"p": "0.25"}', ["output['p']: shown a number (0.25), got '0.25'"]),
        ('{"max_items": 256, "ok": true, "rejects": null}', '{"max_items": 256, "ok": true, "rejects": null}', []),
        ('{"max_items": 256}', '{"max_items": 255}', ["output['max_items']: shown 256, got 255"]),
        ('{"rejected": 0}', '{"rejected": false}', ["output['rejected']: shown 0, got False"]),
        ('{"ok": true}', '{"ok": "true"}', ["output['ok']: shown True, got 'true'"]),
        ('{"rejects": null}', '{"rejects": "x.csv"}', ["output['rejects']: shown None, got 'x.csv'"]),
        ('{"kind": "linear"}', '{"kind": "static"}', ["output['kind']: shown 'linear', got 'static'"]),
        ('{"rows": 5053, "n": 1263}', '{"rows": 320, "n": 80}', []),  # counts of the sample, not of the file
        ('{"input_rows": 3383, "scored": 3383}', '{"input_rows": 200, "scored": 200}', []),
        (
            '{"input_rows": 3383, "scored": 3383}',
            '{"input_rows": 200, "scored": 199}',
            ["output['scored']: got 199, but output['input_rows'] got 200; the README shows 3383 for both"],
        ),
        ('{"rows": 5053}', '{"rows": "5053"}', ["output['rows']: shown a count (5053), got '5053'"]),
        (f'{{"model": {{"id": "{ID}"}}}}', '{"model": {"id": "linear-20270101T000000Z-0a1b2c"}}', []),
        (
            f'{{"id": "{ID}"}}',
            '{"id": "static-20261203T041053Z-e4b1c4"}',
            [f"output['id']: shown '{ID}', got 'static-20261203T041053Z-e4b1c4', not the id of a 'linear' model"],
        ),
        (f'{{"id": "{ID}"}}', '{"id": "linear"}', [f"output['id']: shown '{ID}', got 'linear', not the id of a 'linear' model"]),
        (
            f'{{"id": "{ID}", "model": {{"id": "{ID}"}}}}',
            '{"id": "linear-20270101T000000Z-0a1b2c", "model": {"id": "linear-20270101T000000Z-ffffff"}}',
            [
                "output['model']['id']: got 'linear-20270101T000000Z-ffffff', but output['id'] got "
                f"'linear-20270101T000000Z-0a1b2c'; the README shows '{ID}' for both"
            ],
        ),
        ('{"created_at": "2026-12-03T04:10:53Z"}', '{"created_at": "2027-01-01T00:00:00.5+00:00"}', []),
        ('{"created_at": "2026-12-03T04:10:53Z"}', '{"created_at": "yesterday"}',
         ["output['created_at']: shown a timestamp ('2026-12-03T04:10:53Z'), got 'yesterday'"]),  # fmt: skip
        (f'{{"sha256": "{"a" * 64}", "numpy": "2.1.3"}}', f'{{"sha256": "{"0" * 64}", "numpy": "2.3.0rc1"}}', []),
        ('{"genres": ["Western", "Action"]}', '{"genres": ["Drama"]}', []),  # what a model trained on a sample says
        ('{"genres": ["Western"]}', '{"genres": ["Drama", "Cowboy"]}', ["output['genres']: ['Cowboy'] are not genres (moviegenre.GENRES) nor labels of the example catalogue"]),
        ('{"genres_without_auc": []}', '{"genres_without_auc": ["News"]}', []),
        ('[{"genre": "Western", "terms": [{"term": "outlaw", "field": "plot"}, ...]}]',
         '[{"genre": "Crime", "terms": [{"term": "gang", "field": "plot"}]}]', []),  # fmt: skip
        ('[{"terms": [{"term": "outlaw", "field": "plot"}, ...]}]', '[{"terms": [{"term": "gang", "field": "title"}]}]',
         ["output[0]['terms'][0]['field']: shown 'plot', got 'title'"]),  # fmt: skip
    ],
)
def test_json_values(shown, real, problems):
    assert json_problems(parse_shown_json(shown), json.loads(real)) == problems


def test_values_that_differ_by_run_agree_across_outputs():
    run = RunValues()
    assert output_problems(f'{{"id": "{ID}", "rows": 5053}}', f'{{"id": "{ID[:-1]}0", "rows": 320}}', "", run) == []
    run.line = 40
    assert output_problems(f'{{"model": {{"id": "{ID}"}}}}', f'{{"model": {{"id": "{ID[:-1]}0"}}}}', "", run) == []
    assert output_problems(f'{{"model": {{"id": "{ID}"}}}}', f'{{"model": {{"id": "{ID}"}}}}', "", run) == [
        f"output['model']['id']: got '{ID}', but output['id'] got '{ID[:-1]}0'; the README shows '{ID}' for both"
    ]
    run.line = 50
    assert output_problems('{"rows": 5053}', '{"rows": 321}', "", run) == [
        "output['rows']: got 321, but output['rows'] got 320; the README shows 5053 for both"
    ]


def test_non_json_output_is_compared_as_text():
    assert parse_shown_json("wrote 12 rows to scores.csv") is None
    with pytest.raises(ValueError):
        parse_shown_json("{not json}")
    assert output_problems("wrote 12 rows\nto scores.csv\nand ... more", "wrote 3,383 rows to scores.csv\n", "") == []
    assert output_problems("took 0.5 s", "", "took 12 s\n") == []
    assert output_problems("wrote 12 rows", "read 12 rows", "") == ["shown line not in the output: 'wrote 12 rows'"]
    shown_id = "model static-20261203T070859Z-2817ae on 140 movies"
    assert output_problems(shown_id, "model static-20261204T101010Z-0a1b2c on 120 movies\n", "") == []
    assert output_problems(shown_id, "model linear-20261204T101010Z-0a1b2c on 120 movies\n", "") != []
    assert output_problems('{"a": 1}', "not json", "") == [
        "the README shows JSON, but stdout is not JSON (Expecting value: line 1 column 1 (char 0))"
    ]


def test_download_commands_are_recognised():
    url = "https://github.com/albahnsen/MIAD_ML_and_NLP/raw/main/datasets/dataTraining.zip"
    assert download_target(f"curl -LO {url}") == ["dataTraining.zip"]
    assert download_target(f"curl -LO {url} \\\n  -LO {url.replace('Training', 'Testing')}") == [
        "dataTraining.zip",
        "dataTesting.zip",
    ]
    assert download_target('curl -s "http://127.0.0.1:8000/inference?plot=x"') is None
    assert download_target("moviegenre train --data dataTraining.zip") is None
    served = "```bash\nmoviegenre serve --model models/hybrid\n```\n"
    api = "```console\n$ curl -s http://127.0.0.1:8000/healthz\n```\n"
    assert (
        served_model(f"`moviegenre serve --model DIR`\n{served}{api}{served.replace('hybrid', 'x')}") == "models/hybrid"
    )
    assert served_model("```bash\nmoviegenre serve --host 0.0.0.0\n```\n") == DEFAULT_SERVED_MODEL
    own = "```bash\nmoviegenre serve --model models/catalogue --port 8001\n```\n"
    second = "```console\n$ curl -s http://127.0.0.1:8001/v1/model\n```\n"
    assert served_model(f"{served}{own}{api}{second}", "8001") == "models/catalogue"
    assert served_model(f"{served}{own}{api}{second}") == "models/hybrid"  # --port 8001 serves another port
    assert served_model(f"{served}{api}", "8001") is None


def test_markers_and_comments():
    assert MARKER.match("<!-- readme-test: no-output-check -->")["name"] == NO_OUTPUT_CHECK
    assert MARKER.match("<!-- a draft -->") is None


RUNNER_SAMPLE = """\
```console
$ curl -LO https://example.org/datasets/dataTraining.zip
$ curl -LO https://example.org/datasets/other.zip
$ printf '{"a": 1, "b": {"c": 2}, "d": 3}\\n'
{"a": 1, "b": {"c": 2}, ...}
$ printf '{"rows": 7}\\n'
{"rows": 5053}
$ printf '{"rows": 8}\\n'
{"rows": 5053}
$ echo "wrote 3 rows"
wrote 12 rows
$ echo "something else"
wrote 12 rows
$ sh -c 'echo "error: no such file" >&2; exit 2'
error: no such file
$ true
error: shown, but it succeeds
$ false
```

```python
open("made-by-python.txt", "w").write("hello")
```

<!-- readme-test: no-output-check -->
```console
$ cat made-by-python.txt
not what it prints
```

```python
raise SystemExit(3)
```
"""


def test_runner_runs_in_order_and_records_problems(tmp_path):
    with ExitStack() as stack:
        results = ReadmeRunner(RUNNER_SAMPLE, tmp_path, stack).run(parse_blocks(RUNNER_SAMPLE))
    first, python, cat, failing_python = results.values()
    assert [r.skipped for r in first[:2]] == ["download", "download"]
    assert [r.problems for r in first] == [
        [],
        [
            "downloads ['other.zip'], for which the test has no stand-in (it has ['dataTraining.zip', 'dataTesting.zip'])"
        ],
        [],
        [],
        ["output['rows']: got 8, but output['rows'] (README line 6) got 7; the README shows 5053 for both"],
        [],
        ["shown line not in the output: 'wrote 12 rows'"],
        [],
        ["the README shows an error, but the command succeeded"],
        ["exited with 1"],
    ]
    assert (python[0].problems, cat[0].problems, cat[0].stdout) == ([], [], "hello")
    assert failing_python[0].returncode == 3 and failing_python[0].problems == ["the python block raised"]
