"""moviegenre: tag movies with genres from their plot synopsis.

>>> import moviegenre
>>> model = moviegenre.load_model("models/linear")          # doctest: +SKIP
>>> model.predict_proba(["a gunfight in a frontier town"])  # doctest: +SKIP
"""

from moviegenre.core.errors import DataError, InvalidItem, ModelError, MovieGenreError
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.layout import Layout
from moviegenre.model.artifact import load_model, save_model
from moviegenre.model.card import ModelCard
from moviegenre.model.genre_model import GenreModel

__version__ = "0.1.0"

__all__ = [
    "GENRES",
    "PROBABILITY_KEYS",
    "DataError",
    "GenreModel",
    "InvalidItem",
    "Layout",
    "ModelCard",
    "ModelError",
    "MovieGenreError",
    "load_model",
    "save_model",
]
