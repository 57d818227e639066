"""Batch scoring of files into the submission format: ``ID`` then the 24 ``p_`` columns.

Rows whose plot is missing or empty cannot be scored; they are listed with their IDs in a
rejects file beside the output and counted in the summary, never silently dropped. Outputs are
written to a temporary file and renamed into place, so an interrupted run leaves nothing that
looks finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import empty_plot_mask, normalise_movies, read_table, require_columns, write_csv_atomically
from .errors import DataError
from .genres import PROBABILITY_KEYS
from .predict import GenreModel

#: Plots scored per call of the model; bounds memory on big files.
CHUNK_ROWS = 10_000
ID_COLUMN = "ID"


@dataclass(frozen=True)
class ScoreSummary:
    input_rows: int
    scored: int
    rejected: int
    output: Path
    rejects: Path | None


def rejects_path_for(output: Path) -> Path:
    return output.with_name(output.stem + ".rejects.csv")


def read_scoring_input(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read one input file; return (movies to score, rejected rows with their reason)."""
    raw = read_table(path)
    if raw.empty:
        raise DataError(f"{path} has a header but no rows; nothing to score")
    require_columns(raw, ["plot"], str(path))
    frame = normalise_movies(raw, str(path))
    empty = empty_plot_mask(frame)
    rejects = pd.DataFrame(
        {
            ID_COLUMN: frame.index[empty],
            "source": str(path),
            "row": np.flatnonzero(empty) + 1,
            "reason": "field 'plot' is empty or missing",
        }
    )
    return frame[~empty], rejects


def score_frame(model: GenreModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Probabilities for ``frame`` (index = IDs) as a submission-format frame."""
    parts = []
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        parts.append(model.predict_proba(chunk))
    proba = np.vstack(parts) if parts else np.zeros((0, len(PROBABILITY_KEYS)))
    out = pd.DataFrame(proba, columns=list(PROBABILITY_KEYS), index=frame.index)
    out.index.name = ID_COLUMN
    return out


def score_files(
    model: GenreModel,
    inputs: list[Path],
    output: Path,
    progress: Callable[[str], None] = lambda message: None,
) -> ScoreSummary:
    """Score every input file into one CSV at ``output`` (rejects beside it, if any)."""
    if not inputs:
        raise DataError("no input files given")
    if output.suffix.lower() != ".csv":
        raise DataError(f"output {output} must end in .csv")
    if output.is_dir():  # found now, not after scoring every input
        raise DataError(f"output {output} is a directory; give a file name ending in .csv")
    scored, rejected, total = [], [], 0
    for path in inputs:
        progress(f"reading {path}")
        frame, rejects = read_scoring_input(path)
        total += len(frame) + len(rejects)
        progress(f"scoring {len(frame)} plots from {path}")
        scored.append(score_frame(model, frame))
        rejected.append(rejects)
    result = pd.concat(scored)
    rejects = pd.concat(rejected, ignore_index=True)
    rejects_path = rejects_path_for(output)
    if len(rejects):
        write_csv_atomically(rejects, rejects_path, index=False)
    elif rejects_path.exists():
        rejects_path.unlink()  # a stale rejects file from an earlier run would mislead
    write_csv_atomically(result, output)
    return ScoreSummary(
        input_rows=total,
        scored=len(result),
        rejected=len(rejects),
        output=output,
        rejects=rejects_path if len(rejects) else None,
    )
