"""Build a small "own labels" catalogue from the public movie-genre data.

The course's data tags each movie with some of 24 IMDb genres. This script maps them onto 11
coarse labels of our own, with names that have spaces, accents, "&" and one in Spanish, so that
the catalogue shows that moviegenre trains on any multi-label taxonomy, not only the 24 genres.

The mapping (``MAPPING`` below; a label's order there is the order of the ``tags`` text and of the
``tag_<label>`` columns):

    label                         genres
    ----------------------------  ---------------------------------------
    Action & Adventure            Action, Adventure, War, Western
    Comedy                        Comedy
    Drama                         Drama
    Crime & Mystery               Crime, Mystery, Film-Noir
    Thriller                      Thriller
    Horror                        Horror
    Romance                       Romance
    Ciencia ficción & Fantasía    Sci-Fi, Fantasy
    Family & Animation            Family, Animation
    True stories                  Biography, History, Documentary, News
    Music & Dance                 Music, Musical

Two genres are dropped on purpose (``DROPPED``):

- Short: a running time, not a kind of story; a plot does not tell it.
- Sport: too few movies for a label of its own in a small sample (201 of the 6,316 development
  movies, about 22 expected in 700) and no coarse label it belongs to; every sport movie also
  has another genre (mostly Drama or Comedy), so none is lost.

A movie gets every label one of its genres maps to, so it can get several (Action + Sci-Fi gives
"Action & Adventure|Ciencia ficción & Fantasía"). A movie that gets no label (its only genres are
dropped ones: 4 "Short"-only movies in the development file) is left out, and the script says how
many it left out. A genre that is neither mapped nor dropped is an error, so a change in the data
cannot go unnoticed.

Output: a UTF-8 CSV with the columns ``id`` (the movie's ID, the first, unnamed column of the
input), ``year``, ``title``, ``plot``, ``tags`` (the movie's labels joined with "|", in label
order) and one 0/1 column ``tag_<label>`` per label, in label order. It is written to a temporary
file next to ``--out`` and renamed over it, so a reader never sees half a file. Read it back with
``pandas.read_csv(path, index_col=0)``.

Without ``--size`` every labelled movie is kept. With ``--size N`` the script draws N of the
labelled movies at random (Python's ``random.Random(seed).sample``, so the same file, size and
seed give the same movies) and keeps them in file order.

``catalogue.csv`` next to this script was made from the development subset of the public data
(6,316 of its 7,895 labelled movies) with:

    python examples/own-labels/make_catalogue.py --data dataTraining-dev.zip \\
        --out examples/own-labels/catalogue.csv --size 700 --seed 0

On the public file (https://github.com/albahnsen/MIAD_ML_and_NLP/raw/main/datasets/dataTraining.zip)
the same command makes a catalogue of the same kind, but of other movies, since the draw is from
7,895 movies instead of 6,316.

Needs only the standard library and pandas.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import sys
import tempfile
from pathlib import Path

import pandas as pd

# Coarse label -> the course genres it covers. The order of the labels is the order of the output.
MAPPING: dict[str, list[str]] = {
    "Action & Adventure": ["Action", "Adventure", "War", "Western"],
    "Comedy": ["Comedy"],
    "Drama": ["Drama"],
    "Crime & Mystery": ["Crime", "Mystery", "Film-Noir"],
    "Thriller": ["Thriller"],
    "Horror": ["Horror"],
    "Romance": ["Romance"],
    "Ciencia ficción & Fantasía": ["Sci-Fi", "Fantasy"],
    "Family & Animation": ["Family", "Animation"],
    "True stories": ["Biography", "History", "Documentary", "News"],
    "Music & Dance": ["Music", "Musical"],
}

# Course genres deliberately given no label, with the reason (see the docstring).
DROPPED: dict[str, str] = {
    "Short": "a running time, not a kind of story",
    "Sport": "too rare for a label of its own in a small sample; every sport movie has another genre",
}

SEPARATOR = "|"

GENRE_TO_LABELS: dict[str, list[str]] = {}
for _label, _genres in MAPPING.items():
    assert SEPARATOR not in _label, f"a label may not contain {SEPARATOR!r}: {_label!r}"
    for _genre in _genres:
        GENRE_TO_LABELS.setdefault(_genre, []).append(_label)
assert not set(GENRE_TO_LABELS) & set(DROPPED), "a genre is both mapped and dropped"


def parse_genres(text: str) -> list[str]:
    """Parse genres text like "['Short', 'Drama']" without eval: literal_eval reads only literals."""
    value = ast.literal_eval(text)
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise ValueError(f"genres is not a list of names: {text!r}")
    return value


def labels_of(genres: list[str]) -> list[str]:
    """The coarse labels of a movie with these genres, in label order."""
    unknown = [g for g in genres if g not in GENRE_TO_LABELS and g not in DROPPED]
    if unknown:
        raise ValueError(f"genre(s) neither mapped nor dropped: {unknown}")
    found = {label for g in genres for label in GENRE_TO_LABELS.get(g, [])}
    return [label for label in MAPPING if label in found]


def make_catalogue(movies: pd.DataFrame, size: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, int]:
    """Map the movies' genres to labels; return the catalogue and how many movies got no label."""
    labels = movies["genres"].map(lambda text: labels_of(parse_genres(text)))
    kept = labels.map(len) > 0
    movies, labels = movies[kept], labels[kept]
    if size is not None:
        if not 0 < size <= len(movies):
            raise ValueError(f"--size must be between 1 and {len(movies)}, the labelled movies")
        positions = sorted(random.Random(seed).sample(range(len(movies)), size))
        movies, labels = movies.iloc[positions], labels.iloc[positions]
    out = pd.DataFrame(
        {
            "year": movies["year"],
            "title": movies["title"],
            "plot": movies["plot"],
            "tags": labels.map(SEPARATOR.join),
        }
    )
    for label in MAPPING:
        out[f"tag_{label}"] = labels.map(lambda found, label=label: int(label in found))
    out.index.name = "id"
    return out, int((~kept).sum())


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write the CSV to a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, lineterminator="\n")
        umask = os.umask(0)  # mkstemp makes the file private; give it the usual rw-r--r--
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="dataTraining.zip or its CSV")
    parser.add_argument("--out", required=True, type=Path, help="the CSV to write")
    parser.add_argument("--size", type=int, help="draw this many labelled movies at random (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    args = parser.parse_args(argv)

    movies = pd.read_csv(args.data, index_col=0, encoding="utf-8")
    try:
        catalogue, unlabelled = make_catalogue(movies, args.size, args.seed)
    except ValueError as e:
        parser.error(str(e))
    write_atomically(catalogue, args.out)

    print(f"read {len(movies)} movies from {args.data}; left out {unlabelled} that got no label")
    print(f"wrote {len(catalogue)} movies to {args.out} ({args.out.stat().st_size:,} bytes)")
    for label in MAPPING:
        print(f"  {int(catalogue[f'tag_{label}'].sum()):5d}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
