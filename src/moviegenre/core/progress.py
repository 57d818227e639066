"""The progress callbacks that long work (training, batch scoring, encoding) reports through."""

from __future__ import annotations

from collections.abc import Callable

#: Told what is happening, in a few words (``"cross-validation fold 1/3"``).
Progress = Callable[[str], None]
#: Told how many of a known number of things are done (pieces scored, texts encoded).
Advance = Callable[[int, int], None]


def quiet(*args: object) -> None:
    """A :data:`Progress` or :data:`Advance` that tells no one."""


__all__ = ["Advance", "Progress", "quiet"]
