"""The progress callbacks that long work (training, batch scoring, encoding) reports through.

Two channels: a :data:`Progress` told the *stage* (``"cross-validation fold 1/3"``), passed as an
argument; and the *detail* within it (``"encoding 640/5,053 texts"``), which code deep inside a
fit reports with :func:`detail`, heard by whoever called :func:`details_to` around it.

On a terminal the CLI shows both on one status line. Elsewhere (a log file, nohup, CI) a
status line shows nothing, so :class:`LogLines` writes plain lines instead: one per stage, and
the detail at most every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

#: Told what is happening, in a few words (``"cross-validation fold 1/3"``).
Progress = Callable[[str], None]
#: Told how many of a known number of things are done (pieces scored, texts encoded).
Advance = Callable[[int, int], None]

_DETAIL: ContextVar[Progress | None] = ContextVar("progress_detail", default=None)


def quiet(*args: object) -> None:
    """A :data:`Progress` or :data:`Advance` that tells no one."""


@contextmanager
def details_to(report: Progress) -> Iterator[None]:
    """Within the block, :func:`detail` tells ``report``."""
    token = _DETAIL.set(report)
    try:
        yield
    finally:
        _DETAIL.reset(token)


def detail(message: str) -> None:
    """Say how far the current stage got, to whoever listens (:func:`details_to`); no one by default."""
    report = _DETAIL.get()
    if report is not None:
        report(message)


def listening() -> bool:
    """Whether anyone hears :func:`detail` (so that work can skip composing messages)."""
    return _DETAIL.get() is not None


class LogLines:
    """Progress as plain lines on ``stream``, for output that is not a terminal.

    Each stage is a line with the seconds since the first (``[  42s] cross-validation fold
    2/3``); a detail is a line too, at most every ``every_s`` seconds within a stage, so a log
    shows that long work is moving without filling up.
    """

    def __init__(self, stream: TextIO, *, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.current = ""
        self.last_detail = self.started

    def stage(self, message: str) -> None:
        self.current = message
        self.last_detail = self.clock()
        self._write(message)

    def detail(self, message: str) -> None:
        now = self.clock()
        if now - self.last_detail < self.every_s:
            return
        self.last_detail = now
        self._write(f"{self.current}: {message}" if self.current else message)

    def _write(self, text: str) -> None:
        self.stream.write(f"[{self.clock() - self.started:5.0f}s] {text}\n")
        self.stream.flush()


__all__ = ["Advance", "LogLines", "Progress", "detail", "details_to", "listening", "quiet"]
