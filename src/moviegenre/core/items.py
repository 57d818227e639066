"""The input contract: what a movie item is, and when it is valid.

Every door calls this module, so a hostile item gets the same verdict everywhere: the
library's :meth:`~moviegenre.model.genre_model.GenreModel.predict_proba`, the CLI, batch scoring (which
lists such rows as rejects), training data, and the HTTP API (which answers 422, or 413 for an
over-long plot).

An item is a plot string, or a record (a mapping, or a row of a DataFrame) with these fields:

``plot`` (required)
    Text holding at least one letter or digit (so blank text, punctuation or zero-width
    characters alone are refused: a model would answer them with its prior, not a reading),
    at most ``max_plot_chars`` characters (:data:`DEFAULT_MAX_PLOT_CHARS`, 20,000, unless the
    caller passes its own limit: the doors pass ``MOVIEGENRE_MAX_PLOT_CHARS``), and
    no lone surrogate (``"\\ud800"`` is not Unicode text and cannot be encoded).
``title`` (optional)
    Text of at most :data:`MAX_TITLE_CHARS` characters, no lone surrogate. Missing, ``None``
    or NaN mean no title.
``year`` (optional)
    A year between :data:`MIN_YEAR` and :data:`MAX_YEAR` as a number or numeric text.
    Missing, ``None``, NaN or empty text mean unknown.

Other fields of a record are ignored by the library (the API refuses them).

>>> check_item({"plot": "A gunfight in a frontier town.", "year": "1880"}, 0)
('A gunfight in a frontier town.', '', 1880.0)
>>> check_item("  ...  ", 3)
Traceback (most recent call last):
moviegenre.core.errors.InvalidItem: item 3: field 'plot' holds no letter or digit; send the movie's plot text
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from moviegenre.core.errors import DataError, InvalidItem

if TYPE_CHECKING:  # pandas is imported only where a DataFrame is given: a light hot path
    import pandas as pd

#: The longest plot the library accepts when the caller names no limit. Each door (the API,
#: the CLI, batch scoring) passes its configured limit, ``MOVIEGENRE_MAX_PLOT_CHARS``, whose
#: default this is; the library itself reads no setting.
DEFAULT_MAX_PLOT_CHARS = 20_000
MAX_TITLE_CHARS = 1_000
MIN_YEAR, MAX_YEAR = 1800, 2200
PLOT_TOO_LONG = "plot_too_long"
#: "Holds a letter or digit" as a JSON Schema (ECMAScript) pattern, for the API's schema: the
#: same characters as ``[^\W_]`` in Python, the rule this module applies.
PLOT_PATTERN = r"[\p{L}\p{N}]"

Item = str | Mapping[str, Any]

_LETTER_OR_DIGIT = re.compile(r"[^\W_]")  # \w is letters, digits and "_", in every script
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Columns(NamedTuple):
    """Valid items as the columns every scorer takes."""

    plots: list[str]
    titles: list[str]
    years: np.ndarray  # float, NaN where unknown


def _surrogate_reason(text: str) -> str | None:
    if text.isascii():  # (a C check of the string's kind, where the search reads every character)
        return None
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"holds a lone surrogate (U+{ord(found.group()):04X}) at character {found.start()}, "
        "which is not valid Unicode; send valid UTF-8 text"
    )


def check_plot(plot: Any, index: int | None = None, max_chars: int | None = None) -> str:
    """``plot`` if it is a valid plot, else :class:`InvalidItem` saying why."""
    if plot is None:
        raise InvalidItem(index, "plot", "is missing; every movie needs a plot")
    if not isinstance(plot, str):
        raise InvalidItem(index, "plot", f"must be text, not {type(plot).__name__}")
    limit = DEFAULT_MAX_PLOT_CHARS if max_chars is None else max_chars
    if len(plot) > limit:
        raise InvalidItem(
            index, "plot", f"has {len(plot):,} characters; the limit is {limit:,}", code=PLOT_TOO_LONG
        )
    reason = _surrogate_reason(plot)
    if reason is None and _LETTER_OR_DIGIT.search(plot) is None:
        reason = "is blank" if not plot.strip() else "holds no letter or digit"
        reason += "; send the movie's plot text"
    if reason is not None:
        raise InvalidItem(index, "plot", reason)
    return plot


def check_title(title: Any, index: int | None = None) -> str:
    """``title`` as text (``""`` when absent), else :class:`InvalidItem` saying why."""
    if title is None or (isinstance(title, float) and math.isnan(title)):
        return ""
    if not isinstance(title, str):
        raise InvalidItem(index, "title", f"must be text, not {type(title).__name__}")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidItem(index, "title", f"has {len(title):,} characters; the limit is {MAX_TITLE_CHARS:,}")
    reason = _surrogate_reason(title)
    if reason is not None:
        raise InvalidItem(index, "title", reason)
    return title


def check_year(year: Any, index: int | None = None) -> float:
    """``year`` as a float (NaN when unknown), else :class:`InvalidItem` saying why."""
    if year is None:
        return math.nan
    if isinstance(year, str):
        text = year.strip()
        if not text:
            return math.nan
        try:
            value = float(text)
        except ValueError:
            value = None
    elif isinstance(year, int | float | np.integer | np.floating) and not isinstance(year, bool | np.bool_):
        value = float(year)
    else:
        raise InvalidItem(index, "year", f"must be a number or text, not {type(year).__name__}")
    if value is not None and math.isnan(value):
        return math.nan
    if value is None or not MIN_YEAR <= value <= MAX_YEAR:
        raise InvalidItem(index, "year", f"must be a year between {MIN_YEAR} and {MAX_YEAR} or empty, got {year}")
    return value


def check_item(item: Any, index: int | None, max_plot_chars: int | None = None) -> tuple[str, str, float]:
    """``(plot, title, year)`` of one valid item, else :class:`InvalidItem` naming the field."""
    if isinstance(item, str):
        return check_plot(item, index, max_plot_chars), "", math.nan
    if not isinstance(item, Mapping):
        raise InvalidItem(index, "plot", f"expected a plot string or a record, got {type(item).__name__}")
    return (
        check_plot(item.get("plot"), index, max_plot_chars),
        check_title(item.get("title"), index),
        check_year(item.get("year"), index),
    )


def to_columns(items: Iterable[Item] | pd.DataFrame, max_plot_chars: int | None = None) -> Columns:
    """Check every item; return their columns, or raise :class:`InvalidItem` for the first bad one.

    ``items`` is an iterable of items, or a DataFrame with a ``plot`` column (and optional
    ``title`` and ``year``), whose rows are checked alike.
    """
    limit = DEFAULT_MAX_PLOT_CHARS if max_plot_chars is None else max_plot_chars
    if _is_frame(items):
        items = frame_records(items)
    plots, titles, years = [], [], []
    for index, item in enumerate(items):
        plot, title, year = check_item(item, index, limit)
        plots.append(plot)
        titles.append(title)
        years.append(year)
    return Columns(plots, titles, np.array(years, dtype=float))


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a movie frame as records (missing optional columns left out)."""
    if "plot" not in frame.columns:
        raise DataError(f"the items have no 'plot' column; they have {list(frame.columns)}")
    columns = [c for c in ("plot", "title", "year") if c in frame.columns]
    return frame[columns].to_dict("records")


def frame_problems(frame: pd.DataFrame, max_plot_chars: int | None = None) -> list[InvalidItem | None]:
    """Per row of a movie frame, the :class:`InvalidItem` it raises, or ``None`` if it is valid."""
    limit = DEFAULT_MAX_PLOT_CHARS if max_plot_chars is None else max_plot_chars
    problems: list[InvalidItem | None] = []
    for index, record in enumerate(frame_records(frame)):
        try:
            check_item(record, index, limit)
        except InvalidItem as exc:
            problems.append(exc)
        else:
            problems.append(None)
    return problems


def to_frame(items: Iterable[Item] | pd.DataFrame, max_plot_chars: int | None = None) -> pd.DataFrame:
    """Checked items as the ``plot``/``title``/``year`` frame that every pipeline takes."""
    import pandas as pd

    plots, titles, years = to_columns(items, max_plot_chars)
    index = items.index if _is_frame(items) else None
    return pd.DataFrame({"plot": plots, "title": titles, "year": years}, index=index)


def _is_frame(items: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(items, pandas.DataFrame)
