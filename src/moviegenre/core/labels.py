"""A model's labels: their names, and the output keys (``p_<label>``) they are written under.

A model predicts a set of labels: by default the course's 24 genres
(:data:`~moviegenre.core.genres.GENRES`), or a catalogue's own taxonomy (2 to
:data:`MAX_LABELS` labels). A label name is any Unicode text of 1 to :data:`MAX_LABEL_CHARS`
characters once :func:`label_name` has tidied it (NFC, surrounding white space removed).

**The escaping rule.** Scores are written under ``p_<label>``: the column of ``moviegenre
score`` and the key of ``GET /inference``. Any text can be a JSON key, but not every text can be
a CSV header as it is, so in the key, and only there, these characters are written as ``%``
followed by the two hex digits of each of their UTF-8 bytes (percent-encoding, as in URLs): the
``%`` itself, the comma, the double quote, and every control, format or line/paragraph
separator character (Unicode categories Cc, Cf, Zl, Zp: line breaks, tabs, zero-width
characters). Everything else (letters of any script, spaces, accents, ``&``, ``/``, ``-``) is
kept. So ``Sci-Fi`` is ``p_Sci-Fi``, ``Ciencia ficción & Fantasía`` is ``p_Ciencia ficción &
Fantasía``, ``Crime, Mystery`` is ``p_Crime%2C Mystery`` and ``100%`` is ``p_100%25``. Distinct
labels always get distinct keys, and :func:`label_of_key` reads a key back. The 24 genres need no
escaping: their keys are the original system's.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from urllib.parse import unquote

from moviegenre.core.genres import GENRES, PROBABILITY_KEYS

#: Fewest and most labels a model has.
MIN_LABELS, MAX_LABELS = 2, 1_000
#: Longest label name, in characters.
MAX_LABEL_CHARS = 100
#: What a probability's key starts with.
KEY_PREFIX = "p_"

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def label_name(text: str) -> str:
    """``text`` as a label name: NFC-normalised, surrounding white space removed.

    Raises ``ValueError`` with the reason when it is empty, longer than
    :data:`MAX_LABEL_CHARS`, or holds a lone surrogate (not text).
    """
    if _SURROGATE.search(text):
        raise ValueError(f"label {text[:40]!r} holds a lone surrogate, which is not text")
    name = unicodedata.normalize("NFC", text).strip()
    if not name:
        raise ValueError("a label name is empty")
    if len(name) > MAX_LABEL_CHARS:
        raise ValueError(f"label {name[:40]!r}... has {len(name)} characters; the most is {MAX_LABEL_CHARS}")
    return name


def _escaped(char: str) -> bool:
    return char in '%,"' or unicodedata.category(char) in _ESCAPED_CATEGORIES


def label_key(name: str) -> str:
    """The output key of label ``name``: ``p_`` and the name, escaped (see the module's rule)."""
    return KEY_PREFIX + "".join(
        "".join(f"%{byte:02X}" for byte in char.encode("utf-8")) if _escaped(char) else char for char in name
    )


def label_of_key(key: str) -> str:
    """The label whose :func:`label_key` is ``key``."""
    if not key.startswith(KEY_PREFIX):
        raise ValueError(f"{key!r} is not a probability key: it does not start with {KEY_PREFIX!r}")
    return unquote(key[len(KEY_PREFIX):], errors="strict")


def probability_keys(labels: Sequence[str]) -> tuple[str, ...]:
    """The output keys of ``labels``, in their order (the original system's for the 24 genres)."""
    if tuple(labels) == GENRES:
        return PROBABILITY_KEYS
    return tuple(label_key(name) for name in labels)


def is_course_taxonomy(labels: Sequence[str]) -> bool:
    """Whether ``labels`` are the course's 24 genres, in their order."""
    return tuple(labels) == GENRES


def label_noun(labels: Sequence[str]) -> str:
    """What people call ``labels``: "genre" for the course's 24 genres (texts read as they always
    did), "label" for a taxonomy of one's own."""
    return "genre" if is_course_taxonomy(labels) else "label"


def check_label_set(labels: Sequence[str]) -> list[str]:
    """``labels`` as a model's label set, or ``ValueError``: :data:`MIN_LABELS` to
    :data:`MAX_LABELS` distinct names, each already tidied by :func:`label_name`."""
    if not MIN_LABELS <= len(labels) <= MAX_LABELS:
        raise ValueError(f"a model has {MIN_LABELS} to {MAX_LABELS:,} labels, not {len(labels):,}")
    for name in labels:
        if not isinstance(name, str) or label_name(name) != name:
            raise ValueError(f"{name!r} is not a tidy label name (NFC, no surrounding white space, 1 to "
                             f"{MAX_LABEL_CHARS} characters)")
    repeated = sorted(name for name, n in Counter(labels).items() if n > 1)
    if repeated:
        raise ValueError(f"label(s) {repeated[:5]} appear more than once")
    return list(labels)


def sorted_labels(names: set[str] | Sequence[str]) -> list[str]:
    """Label names in the order a model built from a list column keeps them: alphabetical,
    ignoring case (then by the exact text, so that the order never depends on the file's)."""
    return sorted(set(names), key=lambda name: (name.casefold(), name))


__all__ = [
    "KEY_PREFIX",
    "MAX_LABELS",
    "MAX_LABEL_CHARS",
    "MIN_LABELS",
    "check_label_set",
    "is_course_taxonomy",
    "label_key",
    "label_name",
    "label_noun",
    "label_of_key",
    "probability_keys",
    "sorted_labels",
]
