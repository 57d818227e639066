"""A real ``moviegenre serve`` in a child process, for tests and benchmarks that need HTTP.

:func:`serve_in_background` starts the server on a free loopback port, waits until it answers,
yields a :class:`BackgroundServer` and stops it on exit. It uses the standard library only, so
a caller needs neither FastAPI nor an HTTP client installed to use it.

    with serve_in_background("models/default") as server:
        urllib.request.urlopen(server.base_url + "/healthz")
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
#: How much of the server's output an error quotes, from its start (where a failed model load
#: is logged, before any access-log line) and from its end (where a crash is).
OUTPUT_HEAD_CHARS = 4000
OUTPUT_TAIL_CHARS = 4000
#: How much of the last answer's body an error quotes (a 503 from /readyz says why).
ANSWER_CHARS = 1000
#: How long a stopped server gets to shut down cleanly before it is killed.
STOP_GRACE_S = 15


class ServerStartError(RuntimeError):
    """The server exited, or did not answer as expected in time; the message quotes its output."""


@dataclass(frozen=True)
class BackgroundServer:
    """A running ``moviegenre serve``: where it answers, its process and its output so far."""

    base_url: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """What the server has written to stdout and stderr."""
        return self.log.read_text(errors="replace")


@contextmanager
def serve_in_background(
    model: Path | str | None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ready_path: str = "/readyz",
    ready_status: int = 200,
    timeout_s: float = 180,
    log: Path | None = None,
    cwd: Path | str | None = None,
    port: int | None = None,
) -> Iterator[BackgroundServer]:
    """Run ``python -m moviegenre serve --model MODEL`` on a free port until ``ready_path``
    answers ``ready_status``; yield it, then stop it (terminate, then kill).

    Parameters
    ----------
    model : path or None
        The model directory; None leaves ``--model`` out, so serve uses (or first trains) the
        default model relative to ``cwd``.
    args : sequence of str
        More ``moviegenre serve`` options, e.g. ``["--workers", "2"]``.
    env : mapping, optional
        Settings for the server, e.g. ``{"MOVIEGENRE_API_KEY": ...}``. The server inherits this
        process's environment without its ``MOVIEGENRE_*`` variables, so a setting in the
        caller's shell cannot change what is served.
    ready_path, ready_status : str, int
        What counts as started: ``/readyz`` 200 (the model is loaded) by default; ``503`` for
        a server expected to run without a usable model, or ``/healthz`` not to wait for the model.
    timeout_s : float
        How long the server has to answer so.
    log : path, optional
        File for the server's stdout and stderr, kept after exit; by default a temporary file
        removed on exit.
    cwd : path, optional
        The server's working directory.
    port : int, optional
        The loopback port to listen on (for a caller that must know it before the server
        answers); by default a free one.

    Raises
    ------
    ServerStartError
        If the server exits or does not answer so within ``timeout_s``; with its output.
    """
    with tempfile.TemporaryDirectory(prefix="moviegenre-serve-") as scratch:
        log = Path(log) if log is not None else Path(scratch) / "serve.log"
        port = free_port() if port is None else port
        command = [sys.executable, "-m", "moviegenre", "serve", "--host", HOST, "--port", str(port), *args]
        if model is not None:
            command += ["--model", str(model)]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGENRE_")}
        # Output goes to a file, not a pipe: nobody reads a pipe while the server runs, and a
        # full one would block it.
        with open(log, "wb") as output:
            process = subprocess.Popen(command, cwd=cwd, env={**environment, **(env or {})},
                                       stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
        server = BackgroundServer(f"http://{HOST}:{port}", process, log)
        try:
            _wait_until_ready(server, ready_path, ready_status, timeout_s)
            yield server
        finally:
            _stop(process)


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it; another process could take it
    before the server binds it, which is unlikely enough for tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_until_ready(server: BackgroundServer, path: str, status: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (answer := _get(server.base_url + path))[0] != status:
        if not server.alive():
            raise _start_error(server, f"exited with {server.process.returncode}")
        if time.monotonic() > deadline:
            last = "no answer" if answer[0] is None else f"last answered {answer[0]}: {answer[1][:ANSWER_CHARS]}"
            raise _start_error(server, f"did not answer {path} with {status} within {timeout_s:g} s ({last})")
        time.sleep(0.2)


def _get(url: str) -> tuple[int | None, str]:
    """The status and body ``url`` answers with; None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError:  # refused (not listening yet), reset or timed out
        return None, ""


def _start_error(server: BackgroundServer, what: str) -> ServerStartError:
    output = server.output()
    if len(output) > OUTPUT_HEAD_CHARS + OUTPUT_TAIL_CHARS:
        output = f"{output[:OUTPUT_HEAD_CHARS]}\n[...]\n{output[-OUTPUT_TAIL_CHARS:]}"
    return ServerStartError(
        f"moviegenre serve at {server.base_url} {what}\ncommand: {' '.join(server.process.args)}\n"
        f"--- its output ({server.log}) ---\n{output}"
    )


def _stop(process: subprocess.Popen) -> None:
    process.terminate()  # uvicorn shuts down cleanly (and stops its workers) on SIGTERM
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
